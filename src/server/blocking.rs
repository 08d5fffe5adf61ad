//! Blocking list pops: BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH.
//!
//! A client that finds every key empty blocks: it leaves a [`Waiter`] on each key's shard and
//! awaits a delivery. When a command makes such a key non-empty, that shard serves the waiters in
//! the order they blocked, popping on their behalf (Redis's `handleClientsBlockedOnKeys`). A
//! waiter blocked on keys of several shards is served once: the shard that serves it first takes
//! its claim. On timeout the client takes its own claim; if a shard took it first, the element is
//! already on its way and the client waits for it, so no element is ever lost.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt;

use super::args::{self, is};
use super::list_family::{self, End, MPop};
use super::session::{Session, UNAVAILABLE};
use super::shard::{Ctx, Shard};
use crate::facade::Reply;

/// A client blocked on a key, as the key's shard keeps it.
pub struct Waiter {
    claimed: Arc<AtomicBool>,
    end: End,
    count: usize,
    /// For BLMOVE when the destination is on the same shard: the move happens here, atomically.
    local_move: Option<(Bytes, End)>,
    deliver: mpsc::Sender<(Bytes, Vec<Bytes>)>,
}

impl Waiter {
    /// Whether the waiter was served, or gave up.
    #[must_use]
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }
}

/// Serves the waiters of every ready key of the context's database.
pub fn serve(ctx: &mut Ctx<'_>) {
    for key in ctx.db.take_ready() {
        loop {
            let Ok(Some(list)) = super::access::read(ctx, &key, super::access::list) else { break };
            if list.is_empty() {
                break;
            }
            let Some(mut w) = ctx.db.next_waiter(&key) else { break };
            if w.claimed.swap(true, Ordering::AcqRel) {
                continue;
            }
            let Ok(Some(popped)) = list_family::pop_many(ctx, &key, w.end, w.count) else { break };
            if let Some((dst, to)) = &w.local_move {
                if let Some(e) = popped.first() {
                    if list_family::push_one(ctx, dst, *to, e.clone()).is_err() {
                        // The destination changed type meanwhile: put the element back.
                        let _ = list_family::push_one(ctx, &key, w.end, e.clone());
                    }
                }
            }
            // The receiver lives until the client has its claim settled: this cannot be lost.
            let _ = w.deliver.try_send((key.clone(), popped));
        }
        ctx.db.prune_blocked(&key);
    }
}

/// What a blocking command pops and how it replies.
enum Form {
    /// BLPOP / BRPOP: `[key, element]`.
    Pop(End),
    /// BLMPOP: `[key, [elements]]`.
    MPop(End, usize),
    /// BLMOVE / BRPOPLPUSH: the element.
    Move(End, Bytes, End),
}

/// Parses a blocking timeout in seconds (fractions allowed; 0 blocks forever).
fn timeout(arg: &[u8]) -> Result<Option<Duration>, Reply> {
    let secs = args::float(arg).map_err(|_| Reply::error("ERR timeout is not a float or out of range"))?;
    if secs < 0.0 {
        return Err(Reply::error("ERR timeout is negative"));
    }
    if !secs.is_finite() || secs > 1e12 {
        return Err(Reply::error("ERR timeout is out of range"));
    }
    Ok((secs > 0.0).then(|| Duration::from_secs_f64(secs)))
}

/// BLPOP / BRPOP / BLMPOP / BLMOVE / BRPOPLPUSH
pub async fn block(s: &mut Session, args: &[Bytes]) -> Reply {
    let parsed = (|| -> Result<(Vec<Bytes>, Form, Option<Duration>), Reply> {
        let name = &args[0];
        if is(name, "blpop") || is(name, "brpop") {
            let end = if is(name, "blpop") { End::Left } else { End::Right };
            let keys = args[1..args.len() - 1].to_vec();
            Ok((keys, Form::Pop(end), timeout(&args[args.len() - 1])?))
        } else if is(name, "blmpop") {
            let t = timeout(&args[1])?;
            let mpop = MPop::parse(&args[1..])?;
            Ok((mpop.keys, Form::MPop(mpop.end, mpop.count), t))
        } else if is(name, "brpoplpush") {
            Ok((
                vec![args[1].clone()],
                Form::Move(End::Right, args[2].clone(), End::Left),
                timeout(&args[3])?,
            ))
        } else {
            let (from, to) = (End::parse(&args[3])?, End::parse(&args[4])?);
            Ok((vec![args[1].clone()], Form::Move(from, args[2].clone(), to), timeout(&args[5])?))
        }
    })();
    let (keys, form, limit) = match parsed {
        Ok(p) => p,
        Err(e) => return e,
    };
    // First, without blocking: the ordinary command does the work (atomically, across shards).
    let now_args = immediate_args(&keys, &form);
    let reply = run_now(s, now_args).await;
    let empty = matches!(reply, Reply::Nil | Reply::NilArray);
    if !empty || s.exec_tx.is_some() {
        return reply;
    }
    wait(s, keys, form, limit).await
}

/// The non-blocking command equivalent to a blocking one.
fn immediate_args(keys: &[Bytes], form: &Form) -> Vec<Bytes> {
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let end = |e: End| b(if e == End::Left { "LEFT" } else { "RIGHT" });
    match form {
        Form::Move(from, dst, to) => vec![b("LMOVE"), keys[0].clone(), dst.clone(), end(*from), end(*to)],
        Form::Pop(e) | Form::MPop(e, _) => {
            let count = if let Form::MPop(_, c) = form { *c } else { 1 };
            let mut a = vec![b("LMPOP"), Bytes::from(keys.len().to_string())];
            a.extend(keys.iter().cloned());
            a.extend([end(*e), b("COUNT"), Bytes::from(count.to_string())]);
            a
        }
    }
}

async fn run_now(s: &mut Session, args: Vec<Bytes>) -> Reply {
    let Some(cmd) = super::command::lookup(&args[0]) else { return UNAVAILABLE };
    let super::command::Kind::Keyed { run, cross } = cmd.kind else { return UNAVAILABLE };
    let router = s.core.router.clone();
    let mut keys = cmd.key_positions(&args);
    let shard = keys.next().map_or(router.local(), |p| router.shard_of(&args[p]));
    if keys.all(|p| router.shard_of(&args[p]) == shard) {
        let cmd = super::shard::ShardCmd { run, db: s.db, args };
        s.run_on(shard, move |sh: &mut Shard| sh.exec(&cmd)).await.unwrap_or(UNAVAILABLE)
    } else {
        s.cross(cmd, run, cross, args).await
    }
}

/// Blocks until a shard serves us, the timeout passes, or the client is unblocked or killed.
async fn wait(s: &mut Session, keys: Vec<Bytes>, form: Form, limit: Option<Duration>) -> Reply {
    let claimed = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::channel(keys.len());
    let router = s.core.router.clone();
    let db = s.db;
    let (end, count) = match &form {
        Form::Pop(e) => (*e, 1),
        Form::MPop(e, c) => (*e, *c),
        Form::Move(e, _, _) => (*e, 1),
    };
    for key in &keys {
        let shard = router.shard_of(key);
        let local_move = match &form {
            Form::Move(_, dst, to) if router.shard_of(dst) == shard => Some((dst.clone(), *to)),
            _ => None,
        };
        let waiter = Waiter { claimed: claimed.clone(), end, count, local_move, deliver: tx.clone() };
        let key = key.clone();
        // Between our attempt and this registration a push may have come: serve it now.
        let registered = router
            .run(shard, None, move |sh: &mut Shard| {
                sh.with_db(db, |c| {
                    c.db.block(&key, waiter);
                    if matches!(super::access::read(c, &key, super::access::list), Ok(Some(l)) if !l.is_empty()) {
                        c.db.mark_ready(&key);
                    }
                });
            })
            .await;
        if registered.is_err() {
            return UNAVAILABLE;
        }
    }
    drop(tx);
    s.client.set_blocked(true);
    let client = s.client.clone();
    let interrupted = async {
        let stop = std::future::poll_fn(|cx| client.poll_unblock(cx));
        match limit {
            Some(d) => match futures::future::select(
                std::pin::pin!(stop),
                std::pin::pin!(glommio::timer::Timer::new(d)),
            )
            .await
            {
                futures::future::Either::Left((why, _)) => why,
                futures::future::Either::Right(_) => Unblock::Timeout,
            },
            None => stop.await,
        }
    };
    let outcome = match futures::future::select(std::pin::pin!(rx.next()), std::pin::pin!(interrupted)).await
    {
        futures::future::Either::Left((got, _)) => Ok(got),
        futures::future::Either::Right((why, _)) => {
            if claimed.swap(true, Ordering::AcqRel) {
                // A shard served us in the meantime: its delivery is on the way.
                Ok(rx.next().await)
            } else {
                Err(why)
            }
        }
    };
    s.client.set_blocked(false);
    for key in &keys {
        let key = key.clone();
        let _ = router
            .run(router.shard_of(&key), None, move |sh: &mut Shard| sh.dbs()[db].prune_blocked(&key))
            .await;
    }
    match outcome {
        Ok(Some((key, popped))) => deliver(s, form, key, popped).await,
        Ok(None) => UNAVAILABLE,
        Err(Unblock::Error) => Reply::error("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
        Err(Unblock::Timeout) => match form {
            Form::Move(..) => Reply::Nil,
            _ => Reply::NilArray,
        },
    }
}

/// Why a blocked client stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblock {
    /// Its timeout passed, or CLIENT UNBLOCK ... TIMEOUT.
    Timeout,
    /// CLIENT UNBLOCK ... ERROR, or the connection is closing.
    Error,
}

async fn deliver(s: &mut Session, form: Form, key: Bytes, mut popped: Vec<Bytes>) -> Reply {
    match form {
        Form::Pop(_) => match popped.pop() {
            Some(e) => Reply::Array(vec![Reply::Bulk(key), Reply::Bulk(e)]),
            None => Reply::NilArray,
        },
        Form::MPop(..) => list_family::mpop_reply(key, popped),
        Form::Move(from, dst, to) => {
            let Some(e) = popped.pop() else { return Reply::Nil };
            let router = s.core.router.clone();
            if router.shard_of(&dst) != router.shard_of(&key) {
                // Served on the source's shard; the destination is elsewhere: push it there.
                let (db, pushed, src) = (s.db, e.clone(), key.clone());
                let done = router
                    .run(router.shard_of(&dst), None, move |sh: &mut Shard| {
                        sh.with_db(db, |c| list_family::push_one(c, &dst, to, pushed))
                    })
                    .await;
                if !matches!(done, Ok(Ok(()))) {
                    let back = e.clone();
                    let _ = router
                        .run(router.shard_of(&src), None, move |sh: &mut Shard| {
                            sh.with_db(db, |c| list_family::push_one(c, &src, from, back))
                        })
                        .await;
                    return Reply::Nil;
                }
            }
            Reply::Bulk(e)
        }
    }
}
