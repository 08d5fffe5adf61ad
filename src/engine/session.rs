//! A client's session and the coordinator that runs its commands.
//!
//! The connection's task is the coordinator: it parses nothing and stores nothing, it decides
//! where each command runs. Commands for one shard, from one read of a pipeline, go to that shard
//! as one hop; the local shard's run inline. Commands whose keys span shards, and commands that
//! change connection state, first settle what is pending, so replies keep request order.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::cmd::args::wrong_args;
use crate::cmd::connection;
use crate::cmd::generic;
use crate::cmd::moves;
use crate::cmd::pubsub;
use crate::cmd::server;
use crate::cmd::transaction;
use crate::engine::blocking;
use crate::engine::client::Client;
use crate::engine::command::{self, Command, Coord, Cross, Kind};
use crate::engine::core::Core;
use crate::engine::router::Tx;
use crate::engine::router::Unavailable;
use crate::engine::shard::{Shard, ShardCmd, ShardFn};
use crate::engine::slot::ShardId;
use crate::facade::resp::Limits;
use crate::facade::{ConnLimits, Event, Flow, Reply, Service};
use crate::storage::db::WatchFlag;

/// The reply for work that could not reach its shard (the server is shutting down).
pub const UNAVAILABLE: Reply = Reply::error("ERR shard unavailable: the server is shutting down");

/// What MULTI has queued.
#[derive(Default)]
pub struct Multi {
    /// The queued requests, in order.
    pub queued: Vec<Vec<Bytes>>,
    /// A request failed to queue: EXEC must answer EXECABORT.
    pub failed: bool,
}

/// One client's session on its core.
pub struct Session {
    /// The core's context.
    pub core: Rc<Core>,
    /// What CLIENT LIST shows of this client.
    pub client: Rc<Client>,
    /// The selected database.
    pub db: usize,
    /// Whether the client speaks RESP3.
    pub resp3: bool,
    /// Whether the client has authenticated (always, when there is no password).
    pub authed: bool,
    /// Set by QUIT, SHUTDOWN and CLIENT KILL of itself: close after this batch's replies.
    pub closing: bool,
    /// Commands queued since MULTI, and whether one of them failed to queue.
    pub multi: Option<Multi>,
    /// The transaction an EXEC is running; hops go through it while it is set.
    pub exec_tx: Option<Rc<Tx>>,
    /// Set by a shard when a key this client WATCHes is modified.
    pub watch_flag: WatchFlag,
    /// The WATCHed keys, with their database.
    pub watched: Vec<(usize, Bytes)>,
    /// Subscribed channels.
    pub channels: BTreeSet<Bytes>,
    /// Subscribed patterns.
    pub patterns: BTreeSet<Bytes>,
    /// Per shard: commands waiting to be sent, with the reply slot each fills.
    batches: Vec<Vec<(usize, ShardCmd)>>,
    /// Replies in request order; `None` while its shard has not answered.
    slots: Vec<Option<Reply>>,
}

impl Session {
    /// A new session for `client` on `core`.
    #[must_use]
    pub fn new(core: Rc<Core>, client: Rc<Client>) -> Session {
        let shards = core.router.shards();
        let authed = core.config().requirepass.is_empty();
        Session {
            core,
            client,
            db: 0,
            resp3: false,
            authed,
            closing: false,
            multi: None,
            exec_tx: None,
            watch_flag: WatchFlag::default(),
            watched: Vec::new(),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            batches: (0..shards).map(|_| Vec::new()).collect(),
            slots: Vec::new(),
        }
    }

    /// Looks the request up and checks it; an error also fails a MULTI being queued.
    fn check(&mut self, args: &[Bytes]) -> Result<&'static Command, Reply> {
        let checked = match command::lookup(&args[0]) {
            None => Err(unknown_command(args)),
            Some(cmd) if !cmd.arity_ok(args.len()) => Err(wrong_args(cmd.name)),
            Some(cmd) if !self.authed && !cmd.no_auth() => {
                Err(Reply::error("NOAUTH Authentication required."))
            }
            Some(cmd) if self.multi.is_some() && cmd.flags.contains(&"no_multi") => {
                Err(Reply::error("ERR Command not allowed inside a transaction"))
            }
            Some(cmd) if self.subscribed_resp2() && !allowed_when_subscribed(cmd) => Err(Reply::Error(
                format!(
                    "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / \
                     RESET are allowed in this context",
                    cmd.name
                )
                .into(),
            )),
            Some(cmd) => Ok(cmd),
        };
        if let (Err(_), Some(multi)) = (&checked, self.multi.as_mut()) {
            multi.failed = true;
        }
        checked
    }

    /// Whether the client has any channel or pattern subscription.
    fn subscribed(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty()
    }

    /// RESP2 clients with subscriptions may only run the pub/sub commands (Redis's rule).
    fn subscribed_resp2(&self) -> bool {
        !self.resp3 && self.subscribed()
    }

    async fn dispatch(&mut self, args: Vec<Bytes>, out: &mut BytesMut) {
        let cmd = match self.check(&args) {
            Ok(cmd) => cmd,
            Err(e) => return self.slots.push(Some(e)),
        };
        self.client.last_cmd.set(cmd.name);
        let control = matches!(
            cmd.kind,
            Kind::Coord(
                Coord::Exec | Coord::Discard | Coord::Multi | Coord::Watch | Coord::Quit | Coord::Reset
            )
        );
        if let (Some(multi), false) = (self.multi.as_mut(), control) {
            multi.queued.push(args);
            return self.slots.push(Some(Reply::status("QUEUED")));
        }
        if !cmd.groups_ok(args.len()) {
            return self.slots.push(Some(wrong_args(cmd.name)));
        }
        match cmd.kind {
            Kind::Keyed { run, cross } => {
                let (shard, together) =
                    self.core.router.placement(cmd.key_positions(&args).map(|p| &args[p][..]));
                if together || cross == Cross::Never {
                    self.queue(shard, ShardCmd { run, db: self.db, args });
                } else {
                    self.settle(out).await;
                    // Boxed: a rare path whose large future must not size every idle connection.
                    let reply = Box::pin(self.cross(cmd, run, cross, args)).await;
                    self.slots.push(Some(reply));
                }
            }
            // Pure replies need no ordering against shards: they take their slot.
            Kind::Coord(Coord::Ping) if self.subscribed_resp2() => {
                let msg = args.get(1).cloned().unwrap_or_default();
                self.slots.push(Some(Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(msg)])));
            }
            Kind::Coord(Coord::Ping) => self.slots.push(Some(connection::ping(self, &args))),
            Kind::Coord(Coord::Echo) => self.slots.push(Some(Reply::Bulk(args[1].clone()))),
            Kind::Coord(Coord::Time) => self.slots.push(Some(server::time())),
            Kind::Coord(c) => {
                self.settle(out).await;
                // Encoded at once: HELLO and RESET change the protocol their own reply uses.
                if let Some(reply) = Box::pin(self.coordinate(c, &args)).await {
                    reply.encode(self.resp3, out);
                }
            }
        }
    }

    /// Queues a single-shard command, or runs it now when it is for the local shard and nothing
    /// is ahead of it.
    fn queue(&mut self, shard: ShardId, cmd: ShardCmd) {
        let router = &self.core.router;
        if shard == router.local() && self.batches[shard.0].is_empty() {
            if let Some(reply) = router.try_local(|s| s.exec(&cmd)) {
                return self.slots.push(Some(reply));
            }
        }
        self.batches[shard.0].push((self.slots.len(), cmd));
        self.slots.push(None);
    }

    /// Sends every queued batch (one hop per shard, all at once), waits for the replies, and
    /// encodes every reply so far, in order, into `out`.
    async fn settle(&mut self, out: &mut BytesMut) {
        let router = self.core.router.clone();
        let hops = self.batches.iter_mut().enumerate().filter(|(_, b)| !b.is_empty()).map(|(s, b)| {
            let batch = std::mem::take(b);
            let slots: Vec<usize> = batch.iter().map(|(slot, _)| *slot).collect();
            let hop = router.run(ShardId(s), None, move |shard: &mut Shard| {
                if let [(_, first), _, ..] = &batch[..] {
                    shard.prefetch(first.db, batch.iter().filter_map(|(_, cmd)| cmd.args.get(1)));
                    let members = batch.iter().filter_map(|(_, cmd)| command::member_of(&cmd.args));
                    shard.prefetch_members(first.db, members);
                }
                batch.into_iter().map(|(_, cmd)| shard.exec(&cmd)).collect::<Vec<_>>()
            });
            async move { (slots, hop.await) }
        });
        for (slots, replies) in futures::future::join_all(hops).await {
            match replies {
                Ok(replies) => {
                    for (slot, reply) in slots.into_iter().zip(replies) {
                        self.slots[slot] = Some(reply);
                    }
                }
                Err(Unavailable(_)) => slots.into_iter().for_each(|s| self.slots[s] = Some(UNAVAILABLE)),
            }
        }
        for reply in self.slots.drain(..) {
            reply.unwrap_or(UNAVAILABLE).encode(self.resp3, out);
        }
    }

    /// Runs a command whose keys live on several shards, atomically across them: inside the
    /// running EXEC's transaction if there is one, else in a transaction of its own.
    pub async fn cross(&mut self, cmd: &Command, run: ShardFn, cross: Cross, args: Vec<Bytes>) -> Reply {
        let router = self.core.router.clone();
        let step = cmd.step.max(1) as usize;
        // Each shard's key positions, in request order.
        let mut parts: BTreeMap<ShardId, Vec<usize>> = BTreeMap::new();
        for p in cmd.key_positions(&args) {
            parts.entry(router.shard_of(&args[p])).or_default().push(p);
        }
        let db = self.db;
        // Custom protocols run their own hops; the split commands below need per-shard requests.
        if let Cross::Custom(c) = cross {
            if let Some(tx) = self.exec_tx.clone() {
                return moves::run(c, &tx, db, &router, &args).await;
            }
            let Ok(tx) = router.begin(parts.keys().copied().collect()).await else { return UNAVAILABLE };
            let reply = moves::run(c, &tx, db, &router, &args).await;
            tx.release().await;
            return reply;
        }
        let work: Vec<_> = parts
            .iter()
            .map(|(&s, positions)| {
                let mut sub = Vec::with_capacity(1 + positions.len() * step);
                sub.push(args[0].clone());
                for &p in positions {
                    sub.extend_from_slice(&args[p..p + step]);
                }
                let cmd = ShardCmd { run, db, args: sub };
                (s, move |shard: &mut Shard| shard.exec(&cmd))
            })
            .collect();
        if let Some(tx) = self.exec_tx.clone() {
            let hops = work.into_iter().map(|(s, f)| tx.run(s, f));
            return merge(cross, &parts, args.len(), futures::future::join_all(hops).await);
        }
        // The common case: one message per shard, the last one locking and running at once.
        merge(cross, &parts, args.len(), router.atomically(work).await)
    }

    /// Runs `f` on `shard`: through the running EXEC's transaction if there is one.
    pub async fn run_on<R, F>(&self, shard: ShardId, f: F) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        match &self.exec_tx {
            Some(tx) => tx.run(shard, f).await,
            None => self.core.router.run(shard, None, f).await,
        }
    }

    /// Runs a coordinator command; `None` means no reply at all (SHUTDOWN).
    pub async fn coordinate(&mut self, c: Coord, args: &[Bytes]) -> Option<Reply> {
        Some(match c {
            Coord::Hello => connection::hello(self, args),
            Coord::Auth => connection::auth(self, args),
            Coord::Select => connection::select(self, args),
            Coord::Quit => {
                self.closing = true;
                Reply::Ok
            }
            Coord::Reset => {
                transaction::unwatch_all(self).await;
                pubsub::unsubscribe_all(self);
                connection::reset(self)
            }
            Coord::Block => blocking::block(self, args).await,
            Coord::Subscribe => pubsub::subscribe(self, args),
            Coord::Unsubscribe => pubsub::unsubscribe(self, args),
            Coord::Publish => pubsub::publish(self, args).await,
            Coord::PubSub => pubsub::pubsub(self, args).await,
            Coord::Client => connection::client(self, args).await,
            Coord::Command => server::command(args),
            Coord::Info => server::info(self, args).await,
            Coord::Config => server::config(self, args).await,
            Coord::DbSize => server::dbsize(self).await,
            Coord::FlushDb | Coord::FlushAll => server::flush(self, args).await,
            Coord::Shutdown => return server::shutdown(self, args),
            Coord::Keys => generic::keys_cmd(self, args).await,
            Coord::Scan => generic::scan_cmd(self, args).await,
            Coord::RandomKey => generic::randomkey(self).await,
            Coord::Multi => transaction::multi(self),
            Coord::Exec => Box::pin(transaction::exec(self)).await,
            Coord::Discard => transaction::discard(self).await,
            Coord::Watch => transaction::watch(self, args).await,
            Coord::Unwatch => {
                transaction::unwatch_all(self).await;
                Reply::Ok
            }
            Coord::Ping
            | Coord::Echo
            | Coord::Time
            | Coord::MSetNx
            | Coord::Rename
            | Coord::RenameNx
            | Coord::LMove
            | Coord::SMove
            | Coord::SetAlgebra
            | Coord::LMPop
            | Coord::Copy
            | Coord::ZMPop
            | Coord::ZAlgebra
            | Coord::ZRangeStore => {
                // Dispatched before coordinate() is reached; an error, not a panic, if that changes.
                return Some(Reply::Error(format!("ERR internal: {c:?} reached the coordinator").into()));
            }
        })
    }

    /// Runs `f` on every shard concurrently, without locking; results in shard order.
    pub async fn each_shard<R, F>(&self, f: F) -> Result<Vec<R>, Unavailable>
    where
        R: Send + 'static,
        F: Fn(&mut Shard) -> R + Clone + Send + 'static,
    {
        let hops = (0..self.core.router.shards()).map(|s| self.run_on(ShardId(s), f.clone()));
        futures::future::join_all(hops).await.into_iter().collect()
    }
}

impl Drop for Session {
    /// A client that leaves while WATCHing: its watches are dropped from the shards in the
    /// background (a flag whose client is gone would otherwise linger until its key changes).
    fn drop(&mut self) {
        pubsub::unsubscribe_all(self);
        if self.watched.is_empty() {
            return;
        }
        let (router, watched, flag) =
            (self.core.router.clone(), std::mem::take(&mut self.watched), self.watch_flag.clone());
        glommio::spawn_local(async move {
            for (db, key) in watched {
                let flag = flag.clone();
                let shard = router.shard_of(&key);
                let _ =
                    router.run(shard, None, move |sh: &mut Shard| sh.dbs()[db].unwatch(&key, &flag)).await;
            }
        })
        .detach();
    }
}

/// Puts per-shard replies of a split command back together.
fn merge(
    cross: Cross,
    parts: &BTreeMap<ShardId, Vec<usize>>,
    argc: usize,
    replies: Vec<Result<Reply, Unavailable>>,
) -> Reply {
    let mut values = vec![Reply::Nil; argc];
    let mut sum = 0;
    for (positions, reply) in parts.values().zip(replies) {
        match reply {
            Err(_) => return UNAVAILABLE,
            Ok(e @ Reply::Error(_)) => return e,
            Ok(Reply::Int(n)) => sum += n,
            Ok(Reply::Array(items)) => {
                for (&p, item) in positions.iter().zip(items) {
                    values[p] = item;
                }
            }
            Ok(_) => {}
        }
    }
    match cross {
        Cross::Sum => Reply::Int(sum),
        Cross::Positional => {
            let mut keyed: Vec<Reply> = Vec::new();
            let mut positions: Vec<usize> = parts.values().flatten().copied().collect();
            positions.sort_unstable();
            for p in positions {
                keyed.push(std::mem::replace(&mut values[p], Reply::Nil));
            }
            Reply::Array(keyed)
        }
        _ => Reply::Ok,
    }
}

/// What a RESP2 client with subscriptions may still run.
fn allowed_when_subscribed(cmd: &Command) -> bool {
    ["subscribe", "psubscribe", "unsubscribe", "punsubscribe", "ping", "quit", "reset"].contains(&cmd.name)
}

/// `-ERR unknown command 'x', with args beginning with: 'a' 'b' `, as Redis 7 words it.
fn unknown_command(args: &[Bytes]) -> Reply {
    let shown = |b: &Bytes| String::from_utf8_lossy(&b[..b.len().min(128)]).into_owned();
    let mut text = format!("ERR unknown command '{}', with args beginning with: ", shown(&args[0]));
    for a in &args[1..] {
        text.push_str(&format!("'{}' ", shown(a)));
    }
    Reply::Error(text.into())
}

impl Service for Session {
    fn limits(&self) -> ConnLimits {
        let c = self.core.config();
        ConnLimits {
            parser: Limits { max_bulk: c.proto_max_bulk_len.0, max_multibulk: i32::MAX as u64 },
            query_buffer: usize::try_from(c.client_query_buffer_limit.0).unwrap_or(usize::MAX),
            // Like Redis, `timeout` does not apply to subscribers.
            idle: (c.timeout > 0 && !self.subscribed()).then(|| Duration::from_secs(c.timeout)),
        }
    }

    fn authenticated(&self) -> bool {
        self.authed
    }

    async fn call(&mut self, requests: &mut Vec<Vec<Bytes>>, out: &mut BytesMut) -> Flow {
        self.client.touch();
        self.core.router.host().shard().tick();
        let n = requests.len() as u64;
        if requests.len() > 1 {
            // The local keys of a pipelined batch: their cache misses overlap before any runs.
            let router = &self.core.router;
            let local = router.local();
            router.try_local(|shard| {
                let here = |key: &Bytes| router.shard_of(key) == local;
                let keys = requests.iter().filter_map(|args| args.get(1));
                shard.prefetch(self.db, keys.filter(|key| here(key)));
                // Only container commands pay for the second pass (and its routing).
                let members = requests.iter().filter_map(|args| command::member_of(args));
                shard.prefetch_members(self.db, members.filter(|m| here(m.key)));
            });
        }
        for args in requests.drain(..) {
            self.dispatch(args, out).await;
            // A killed client (CLIENT KILL, or it hung up while blocked) runs nothing more.
            if self.closing || self.client.is_killed() {
                break;
            }
        }
        self.settle(out).await;
        self.core.count(|s| s.commands += n);
        self.client.db.set(self.db);
        if self.closing || self.client.is_killed() {
            Flow::Close
        } else {
            Flow::Continue
        }
    }

    type Waiting = Rc<Client>;

    fn waiting(&self) -> Rc<Client> {
        self.client.clone()
    }

    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Event> {
        // Register first: a caller may ignore Push (while writing) and must still be woken by a
        // later kill, whose wake would otherwise find no waker.
        self.client.set_waker(cx.waker());
        if self.client.is_killed() {
            return Poll::Ready(Event::Close);
        }
        if self.client.has_pushes() {
            return Poll::Ready(Event::Push);
        }
        Poll::Pending
    }

    fn take_pushes(&mut self, out: &mut BytesMut) {
        self.client.take_pushes(out);
    }

    fn on_io(&self, read: usize, written: usize, pending: usize) {
        self.client.qbuf.set(pending);
        self.core.count(|s| {
            s.net_in += read as u64;
            s.net_out += written as u64;
        });
    }

    fn on_layer_buffered(&self, bytes: usize) {
        self.client.tls_buffered.set(bytes);
    }
}
