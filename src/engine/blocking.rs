//! Blocking pops: BLPOP, BRPOP, BLMPOP, BLMOVE, BRPOPLPUSH on lists; BZPOPMIN, BZPOPMAX,
//! BZMPOP on sorted sets.
//!
//! A client that finds every key empty blocks: it leaves a [`Waiter`] on each key's shard and
//! awaits a delivery. When a command makes such a key non-empty, that shard serves the waiters in
//! the order they blocked, popping on their behalf (Redis's `handleClientsBlockedOnKeys`). A
//! waiter blocked on keys of several shards is served once: the shard that serves it first takes
//! its claim. On timeout the client takes its own claim; if a shard took it first, the element is
//! already on its way and the client waits for it, so no element is ever lost.
//!
//! BLMOVE whose destination lives on another shard is not popped for: the source's shard only
//! wakes it, and the client runs LMOVE itself, atomically across both shards (an element popped
//! here and pushed there a hop later would, for that moment, be in neither list).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt;

use crate::cmd::args::{self, is};
use crate::cmd::list::{self, End, MPop};
use crate::cmd::zset::{self, Scored};
use crate::engine::session::{Session, UNAVAILABLE};
use crate::engine::shard::{Ctx, Shard};
use crate::facade::Reply;
use crate::storage::db::Value;

/// What a waiter pops, from which type of value.
enum Wants {
    /// From a list: `count` elements from `end`.
    List {
        end: End,
        count: usize,
        /// For BLMOVE when the destination is on the same shard: the move happens here,
        /// atomically.
        local_move: Option<(Bytes, End)>,
    },
    /// From a list, but by itself: BLMOVE with the destination on another shard is woken (one
    /// element is kept back for it in this round) and runs LMOVE across both shards.
    Wake,
    /// From a sorted set: `count` members from the low end (or the high one with `max`).
    ZSet { max: bool, count: usize },
}

/// What a shard delivers to a served waiter.
enum Popped {
    List(Vec<Bytes>),
    ZSet(Vec<Scored>),
    /// The key has an element for a [`Wants::Wake`] waiter.
    Wake,
    /// The waiter fails with this error (BLMOVE onto a key of another type).
    Error(Reply),
}

/// A client blocked on a key, as the key's shard keeps it.
pub struct Waiter {
    claimed: Arc<AtomicBool>,
    wants: Wants,
    deliver: mpsc::Sender<(Bytes, Popped)>,
}

impl Waiter {
    /// Whether the waiter was served, or gave up.
    #[must_use]
    pub fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }
}

/// Whether `key` holds a non-empty list (`true`) or sorted set (`false`), and how many
/// elements.
fn poppable(ctx: &mut Ctx<'_>, key: &[u8]) -> Option<(bool, usize)> {
    match &ctx.db.read(key, ctx.now)?.value {
        Value::List(l) if !l.is_empty() => Some((true, l.len())),
        Value::ZSet(z) if !z.is_empty() => Some((false, z.len())),
        _ => None,
    }
}

/// Serves the waiters of every ready key of the context's database: those waiting for the
/// key's type, in the order they blocked. Serving a BLMOVE pushes onto its destination, which
/// may make another key ready: rounds repeat until none is (Redis's
/// `handleClientsBlockedOnKeys`), so a chain of BLMOVEs is served to its end at once.
pub fn serve(ctx: &mut Ctx<'_>) {
    // Elements kept back, per key, for woken BLMOVE waiters, which take them with their own
    // LMOVE after this call.
    let mut kept: Vec<(Bytes, usize)> = Vec::new();
    loop {
        let ready = ctx.db.take_ready();
        if ready.is_empty() {
            return;
        }
        for key in ready {
            let at = match kept.iter().position(|(k, _)| *k == key) {
                Some(at) => at,
                None => {
                    kept.push((key.clone(), 0));
                    kept.len() - 1
                }
            };
            serve_key(ctx, &key, &mut kept[at].1);
            ctx.db.prune_blocked(&key);
        }
    }
}

/// Serves the waiters of `key` while it holds elements beyond the `kept` ones.
fn serve_key(ctx: &mut Ctx<'_>, key: &Bytes, kept: &mut usize) {
    while let Some((list, len)) = poppable(ctx, key) {
        if len <= *kept {
            return;
        }
        let wanted = |w: &Waiter| matches!(w.wants, Wants::List { .. } | Wants::Wake) == list;
        let Some(mut w) = ctx.db.next_waiter_where(key, wanted) else { return };
        if w.claimed.swap(true, Ordering::AcqRel) {
            continue;
        }
        let popped = match &w.wants {
            Wants::Wake => {
                *kept += 1;
                Popped::Wake
            }
            Wants::List { end, count, local_move } => {
                if let Some((dst, _)) = local_move {
                    // As Redis: a destination of another type fails this client with WRONGTYPE
                    // and pops nothing.
                    if let Err(e) = list::check_pushable(ctx, dst) {
                        let _ = w.deliver.try_send((key.clone(), Popped::Error(e)));
                        continue;
                    }
                }
                let count = (*count).min(len - *kept);
                let Ok(Some(popped)) = list::pop_many(ctx, key, *end, count) else { return };
                if let (Some((dst, to)), Some(e)) = (local_move, popped.first()) {
                    // Checked above; the push also makes the destination ready for its waiters.
                    let _ = list::push_one(ctx, dst, *to, e.clone());
                }
                Popped::List(popped)
            }
            Wants::ZSet { max, count } => {
                let Ok(Some(popped)) = zset::pop(ctx, key, *max, *count) else { return };
                Popped::ZSet(popped)
            }
        };
        // The receiver lives until the client has its claim settled: this cannot be lost.
        let _ = w.deliver.try_send((key.clone(), popped));
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
    /// BZPOPMIN / BZPOPMAX (`true` for max): `[key, member, score]`.
    ZPop(bool),
    /// BZMPOP: `[key, [[member, score], ...]]`.
    ZMPop(bool, usize),
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
        } else if is(name, "bzpopmin") || is(name, "bzpopmax") {
            let keys = args[1..args.len() - 1].to_vec();
            Ok((keys, Form::ZPop(is(name, "bzpopmax")), timeout(&args[args.len() - 1])?))
        } else if is(name, "bzmpop") {
            let t = timeout(&args[1])?;
            let mpop = zset::MPop::parse(&args[1..])?;
            Ok((mpop.keys, Form::ZMPop(mpop.max, mpop.count), t))
        } else if is(name, "brpoplpush") {
            Ok((
                vec![args[1].clone()],
                Form::Move(End::Right, args[2].clone(), End::Left),
                timeout(&args[3])?,
            ))
        } else if is(name, "blmove") && args.len() == 6 {
            let (from, to) = (End::parse(&args[3])?, End::parse(&args[4])?);
            Ok((vec![args[1].clone()], Form::Move(from, args[2].clone(), to), timeout(&args[5])?))
        } else {
            Err(Reply::Error(
                format!(
                    "ERR internal: '{}' is not a blocking command",
                    crate::engine::command::display_name(args)
                )
                .into(),
            ))
        }
    })();
    let (keys, form, limit) = match parsed {
        Ok(p) => p,
        Err(e) => return e,
    };
    // First, without blocking: the ordinary command does the work (atomically, across shards).
    let now_args = immediate_args(&keys, &form);
    let reply = run_now(s, now_args.clone()).await;
    let empty = matches!(reply, Reply::Nil | Reply::NilArray);
    if !empty || s.exec_tx.is_some() {
        return match form {
            Form::ZPop(_) => flatten_zmpop(reply),
            Form::Pop(_) => flatten_lmpop(reply),
            _ => reply,
        };
    }
    let deadline = limit.map(|d| std::time::Instant::now() + d);
    let mut first_in_line = false;
    loop {
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return TIMED_OUT,
            },
        };
        match wait(s, &keys, &form, left, first_in_line).await {
            Waited::Reply(reply) => return reply,
            Waited::Woken => {
                // A BLMOVE across shards: move it ourselves, atomically. A client that was not
                // blocked may have taken the element since; then we wait again, first in line.
                let reply = run_now(s, now_args.clone()).await;
                if !matches!(reply, Reply::Nil) {
                    return reply;
                }
                first_in_line = true;
            }
        }
    }
}

/// The reply of a blocking command whose timeout passed: a null array, even for BLMOVE and
/// BRPOPLPUSH (whose non-blocking form, as inside MULTI, answers a null bulk), as Redis does.
const TIMED_OUT: Reply = Reply::NilArray;

/// How a wait ended.
enum Waited {
    /// With the client's reply.
    Reply(Reply),
    /// A cross-shard BLMOVE was woken to move an element itself.
    Woken,
}

/// The non-blocking command equivalent to a blocking one.
fn immediate_args(keys: &[Bytes], form: &Form) -> Vec<Bytes> {
    let b = |s: &'static str| Bytes::from_static(s.as_bytes());
    let end = |e: End| b(if e == End::Left { "LEFT" } else { "RIGHT" });
    match form {
        Form::Move(from, dst, to) => vec![b("LMOVE"), keys[0].clone(), dst.clone(), end(*from), end(*to)],
        Form::ZPop(max) | Form::ZMPop(max, _) => {
            let count = if let Form::ZMPop(_, c) = form { *c } else { 1 };
            let mut a = vec![b("ZMPOP"), Bytes::from(keys.len().to_string())];
            a.extend(keys.iter().cloned());
            a.extend([b(if *max { "MAX" } else { "MIN" }), b("COUNT"), Bytes::from(count.to_string())]);
            a
        }
        Form::Pop(e) | Form::MPop(e, _) => {
            let count = if let Form::MPop(_, c) = form { *c } else { 1 };
            let mut a = vec![b("LMPOP"), Bytes::from(keys.len().to_string())];
            a.extend(keys.iter().cloned());
            a.extend([end(*e), b("COUNT"), Bytes::from(count.to_string())]);
            a
        }
    }
}

/// LMPOP's `[key, [element]]` as BLPOP's `[key, element]`.
fn flatten_lmpop(reply: Reply) -> Reply {
    match reply {
        Reply::Array(mut kv) if kv.len() == 2 => match kv.pop() {
            Some(Reply::Array(mut popped)) if popped.len() == 1 => {
                kv.append(&mut popped);
                Reply::Array(kv)
            }
            _ => Reply::NilArray,
        },
        other => other,
    }
}

/// ZMPOP's `[key, [[member, score]]]` as BZPOPMIN's `[key, member, score]`.
fn flatten_zmpop(reply: Reply) -> Reply {
    match reply {
        Reply::Array(mut kv) if kv.len() == 2 => match kv.pop() {
            Some(Reply::Array(pairs)) => {
                let mut flat = kv;
                for p in pairs {
                    if let Reply::Array(p) = p {
                        flat.extend(p);
                    }
                }
                Reply::Array(flat)
            }
            _ => Reply::NilArray,
        },
        other => other,
    }
}

async fn run_now(s: &mut Session, args: Vec<Bytes>) -> Reply {
    let Some(cmd) = crate::engine::command::lookup(&args[0]) else { return UNAVAILABLE };
    let crate::engine::command::Kind::Keyed { run, cross } = cmd.kind else { return UNAVAILABLE };
    let (shard, together) = s.core.router.placement(cmd.key_positions(&args).map(|p| &args[p][..]));
    if together {
        let cmd = crate::engine::shard::ShardCmd { run, db: s.db, args };
        s.run_on(shard, move |sh: &mut Shard| sh.exec(&cmd)).await.unwrap_or(UNAVAILABLE)
    } else {
        s.cross(cmd, run, cross, args).await
    }
}

/// Blocks until a shard serves us, the timeout passes, or the client is unblocked or killed.
/// `first_in_line` puts us before the clients already blocked (a BLMOVE that was woken but
/// found its element taken keeps its place).
async fn wait(
    s: &mut Session,
    keys: &[Bytes],
    form: &Form,
    limit: Option<Duration>,
    first_in_line: bool,
) -> Waited {
    let claimed = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::channel(keys.len());
    let router = s.core.router.clone();
    let db = s.db;
    for key in keys {
        let shard = router.shard_of(key);
        let wants = match form {
            Form::Pop(end) => Wants::List { end: *end, count: 1, local_move: None },
            Form::MPop(end, count) => Wants::List { end: *end, count: *count, local_move: None },
            Form::Move(end, dst, to) if router.shard_of(dst) == shard => {
                Wants::List { end: *end, count: 1, local_move: Some((dst.clone(), *to)) }
            }
            Form::Move(..) => Wants::Wake,
            Form::ZPop(max) => Wants::ZSet { max: *max, count: 1 },
            Form::ZMPop(max, count) => Wants::ZSet { max: *max, count: *count },
        };
        let waiter = Waiter { claimed: claimed.clone(), wants, deliver: tx.clone() };
        let key = key.clone();
        // Between our attempt and this registration a push may have come: the shard looks
        // again after this hop, and serves us if so.
        let registered = router
            .run(shard, None, move |sh: &mut Shard| {
                sh.with_db(db, |c| {
                    c.db.block(&key, waiter, first_in_line);
                    c.db.mark_ready(&key);
                });
            })
            .await;
        if registered.is_err() {
            return Waited::Reply(UNAVAILABLE);
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
    for key in keys {
        let key = key.clone();
        let _ = router
            .run(router.shard_of(&key), None, move |sh: &mut Shard| sh.dbs()[db].prune_blocked(&key))
            .await;
    }
    Waited::Reply(match outcome {
        Ok(Some((_, Popped::Wake))) => return Waited::Woken,
        Ok(Some((_, Popped::Error(e)))) => e,
        Ok(Some((key, Popped::List(popped)))) => deliver(form, key, popped),
        Ok(Some((key, Popped::ZSet(popped)))) => match form {
            Form::ZMPop(..) => zset::mpop_reply(key, popped),
            _ => {
                let mut flat = vec![Reply::Bulk(key)];
                flat.extend(popped.into_iter().flat_map(|(m, sc)| [Reply::Bulk(m), Reply::Double(sc)]));
                Reply::Array(flat)
            }
        },
        Ok(None) => UNAVAILABLE,
        Err(Unblock::Error) => Reply::error("UNBLOCKED client unblocked via CLIENT UNBLOCK"),
        Err(Unblock::Timeout) => TIMED_OUT,
    })
}

/// Why a blocked client stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unblock {
    /// Its timeout passed, or CLIENT UNBLOCK ... TIMEOUT.
    Timeout,
    /// CLIENT UNBLOCK ... ERROR, or the connection is closing.
    Error,
}

fn deliver(form: &Form, key: Bytes, mut popped: Vec<Bytes>) -> Reply {
    match form {
        Form::Pop(_) => match popped.pop() {
            Some(e) => Reply::Array(vec![Reply::Bulk(key), Reply::Bulk(e)]),
            None => Reply::NilArray,
        },
        Form::MPop(..) => list::mpop_reply(key, popped),
        // Sorted-set forms receive sorted-set deliveries; see wait().
        Form::ZPop(_) | Form::ZMPop(..) => Reply::NilArray,
        // Only a BLMOVE within one shard is served this way; the shard already moved it.
        Form::Move(..) => popped.pop().map_or(Reply::Nil, Reply::Bulk),
    }
}
