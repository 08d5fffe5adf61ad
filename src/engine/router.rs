//! The router: the only code that sends messages between cores, and each shard's gate.
//!
//! A *hop* is work sent to the core that owns a shard (a closure, or a pipeline's commands as
//! data), where it runs to completion without awaiting. Every shard has a *gate*: a transaction may hold it (multi-shard commands lock the
//! shards they touch, in shard-id order, so they cannot deadlock), and hops that arrive while it is
//! held wait in FIFO order. Work for the local shard skips the mesh and runs inline when the gate is
//! open: the common single-shard path costs no message and no allocation.
//!
//! A *core hop* reaches a core's [`Local`] state (clients, subscribers, counters) instead: it
//! touches no key, so it never waits for the gate.
//!
//! A connection's pipeline sends each other shard one [`Hop::Pipelined`]: its commands as data,
//! which come back whole with their replies (see [`crate::engine::pipelined`]). Other hops are
//! closures, answered by a closure run on the asking core.
//!
//! Hops travel in *batches*: whatever this core's tasks address to one peer during one pass of
//! the executor's loop (many connections' pipelines) goes into that peer's [`Outbox`] queue and
//! leaves as one message, sent by a flush task that runs after the tasks of the pass; answers go
//! back the same way. One message, and at most one wake-up of a parked peer (glommio writes its
//! eventfd only when it sleeps), per peer per pass.
//!
//! One exception: inside [`blocking`] (a `redis.call` of a script holding every shard), a hop
//! leaves at once and the thread waits for its answer.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;

use futures::channel::oneshot;
use glommio::channels::channel_mesh::{Receivers, Senders};

use crate::cmd::error::CmdError;
use crate::engine::global::Global;
use crate::engine::handoff::{self, Drain, Feed, Give};
use crate::engine::journal::Marker;
use crate::engine::local::Local;
use crate::engine::pipelined::{Awaited, Pipelined, Spare};
use crate::engine::shard::{Ctx, Shard, ShardCmd};
use crate::engine::slot::{ShardId, Slot};

/// Work for a shard: runs on its core, atomically with respect to every other hop.
pub(crate) type Job = Box<dyn FnOnce(&mut Shard) + Send>;

/// Work for a shard that borrows it only as it needs it (a script, whose commands each take
/// it in turn): runs on its core, atomically with respect to every other hop.
pub(crate) type FreeJob = Box<dyn FnOnce(&Rc<RefCell<Shard>>) + Send>;

/// Work for a core's local state: runs on that core, at once.
pub(crate) type CoreJob = Box<dyn FnOnce(&Local) + Send>;

/// A multi-shard transaction's id, unique across cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxId(u64);

impl TxId {
    /// No transaction's (for a run that is never parked: the scripts' micro-benchmark).
    pub(crate) const NONE: TxId = TxId(u64::MAX);
}

/// A message between cores.
pub(crate) enum Hop {
    /// Run `job`; as part of transaction `tx` when it is set, then release the gate if `unlock`.
    Run {
        /// The transaction the job belongs to, if any.
        tx: Option<TxId>,
        /// Whether to release the gate after the job.
        unlock: bool,
        /// The work.
        job: Job,
    },
    /// Acquire the gate for `tx`; `granted` fires once it is held.
    Lock {
        /// The transaction asking.
        tx: TxId,
        /// Fired when the gate is held.
        granted: oneshot::Sender<()>,
    },
    /// Acquire the gate, run `job`, release: a transaction's last shard in lock order, whose
    /// one hop needs no round trip while the gate is held.
    LockRun {
        /// The transaction it ends.
        tx: TxId,
        /// The work, run with the gate held.
        job: Job,
    },
    /// Run `job` with the shard's cell (see [`FreeJob`]) when the gate is open.
    Free {
        /// The work.
        job: FreeJob,
    },
    /// Run `job` on the core's local state, never waiting for the gate.
    Core {
        /// The work.
        job: CoreJob,
    },
    /// A reply to a hop this core sent: completes the waiting task, here.
    Reply(Box<dyn FnOnce() + Send>),
    /// A connection's pipelined commands for this core's shard (see [`Pipelined`]): run when
    /// the gate is open, then sent back.
    Pipelined(Pipelined),
    /// A [`Pipelined`] hop this core sent, run: wakes the connection waiting for it, here.
    Answered(Pipelined),
    /// Transaction `tx`, which holds every gate and waits for its hops on its thread (see
    /// [`blocking`]), borrows this core's thread: it takes its hops from `hops`, each at once,
    /// until the feed is dropped, then goes back to its loop.
    Lend {
        /// The transaction borrowing the thread.
        tx: TxId,
        /// Its hops, until it drops the feed.
        hops: Drain<Hop>,
    },
}

/// What one message between cores carries: the hops one core had for another in one pass.
pub(crate) type Batch = Vec<Hop>;

thread_local! {
    /// This core's outbox, for jobs that reply to the core that sent them.
    static OUTBOX: RefCell<Option<Rc<Outbox>>> = const { RefCell::new(None) };
}

/// Hops waiting to leave this core, one queue per peer, and the senders that carry them.
struct Outbox {
    queues: Vec<RefCell<Batch>>,
    senders: Senders<Batch>,
    /// A flush task is scheduled or running.
    flushing: Cell<bool>,
    /// Where the messages and hops sent are counted.
    local: Rc<Local>,
    /// This core's pipelined hops in flight: those a gone peer's channel sends back fail.
    awaited: Rc<Awaited>,
}

impl Outbox {
    /// Queues `hop` for `peer`, scheduling a flush after the tasks of this pass.
    fn push(self: &Rc<Self>, peer: usize, hop: Hop) {
        let_go();
        self.queues[peer].borrow_mut().push(hop);
        if !self.flushing.replace(true) {
            let me = self.clone();
            glommio::spawn_local(async move { me.flush().await }).detach();
        }
    }

    /// Counts one message carrying `batch`.
    fn count_sent(&self, batch: &Batch) {
        self.local.count(|s| {
            s.hop_messages += 1;
            s.hops += batch.len() as u64;
        });
    }

    /// Sends every queue as one message each, until none is left (hops queued while a send
    /// waited for room go in the next round). A peer that is gone drops its batch: the tasks
    /// waiting for those hops get [`Unavailable`] (their reply channels close, or their
    /// pipelined hops fail here).
    async fn flush(&self) {
        // glommio runs a task it spawns at once, inside the push that spawned it: every
        // task ready to run goes first (the rest of a received batch's hops, the other
        // connections of the pass), so that one message carries what they add.
        glommio::executor().yield_now().await;
        // Requests that arrived meanwhile (completions not yet reaped) are likely to add hops
        // for the same peers: let their tasks run first, so one message carries them all.
        if glommio::executor().io_pending() {
            glommio::executor().yield_to_reactor().await;
        }
        loop {
            let mut any = false;
            for (peer, queue) in self.queues.iter().enumerate() {
                let batch = std::mem::take(&mut *queue.borrow_mut());
                if batch.is_empty() {
                    continue;
                }
                any = true;
                self.count_sent(&batch);
                if let Err(glommio::GlommioError::Closed(glommio::ResourceType::Channel(lost))) =
                    self.senders.send_to(peer, batch).await
                {
                    self.fail(lost);
                }
            }
            if !any {
                break;
            }
        }
        self.flushing.set(false);
    }

    /// `lost` will never reach its peer: the pipelined hops in it fail here (the other hops'
    /// reply channels close as they drop).
    fn fail(&self, lost: Batch) {
        for hop in lost {
            if let Hop::Pipelined(hop) = hop {
                self.awaited.fail(hop.ticket());
            }
        }
    }
}

/// Sends `reply` to run on core `to` (the core that sent the hop being answered), batched with
/// this core's other traffic there; runs it at once if `to` is this core or there are no peers.
fn reply_to(to: ShardId, reply: Box<dyn FnOnce() + Send>) {
    let outbox = OUTBOX.with(|o| o.borrow().clone());
    match outbox {
        Some(outbox) if to.0 < outbox.queues.len() && outbox.senders.peer_id() != to.0 => {
            outbox.push(to.0, Hop::Reply(reply));
        }
        _ => reply(),
    }
}

thread_local! {
    /// A gate the free job running on this core asked to keep (see [`keep_gate`]).
    static KEEP_GATE: Cell<Option<TxId>> = const { Cell::new(None) };
}

/// Called by a free job (see [`Router::run_free`]): when it returns, its shard's gate stays
/// held for transaction `tx` (made by [`Router::tx_id`] on the core that sent the job, which
/// takes it with [`Router::adopt`]); nothing else runs on the shard in between. A script that
/// went past `busy-reply-threshold` keeps its shard this way while its core serves others.
pub(crate) fn keep_gate(tx: TxId) {
    KEEP_GATE.with(|k| k.set(Some(tx)));
}

thread_local! {
    /// Hops from this core block until they are answered (see [`blocking`]).
    static BLOCKING: Cell<bool> = const { Cell::new(false) };
    /// By peer, the threads lent to this core's [`blocking`] spans (see [`Hop::Lend`]): each
    /// runs the hops given here at once, until [`let_go`] drops its feed.
    static LENT: RefCell<Vec<Option<Feed<Hop>>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with every hop it makes to another core sent at once and waited for on this
/// thread, so that a future built on hops ([`Router::run`], [`Router::on_core`], a [`Tx`]'s)
/// is ready when first polled: for a `redis.call` of a script holding every shard, which
/// runs its commands where it stands (the core has nothing else to run that names a key
/// while every gate is its). Only a
/// run holding every shard's gate does this: a peer runs the hop without waiting for
/// anything from this core (nothing else holds a gate there, and no other run can block,
/// since none holds every gate), so the wait ends.
///
/// A peer's thread is lent to the span: the first hop of the transaction to a peer asks it
/// ([`Hop::Lend`]), and from then on the peer waits on a channel for the span's hops instead
/// of going back to its loop, so that each one costs two thread switches and no pass of
/// either loop. Every gate is the transaction's, so the peer had nothing to run that names a
/// key. The peers stay lent after the span, for the next script of a pipeline that keeps the
/// gates, until [`let_go`]: the run lets them go when it ends or pauses, and any hop sent the
/// usual way lets them go first (so that a peer is back in its loop before a message for it
/// leaves).
pub(crate) fn blocking<R>(f: impl FnOnce() -> R) -> R {
    /// Restores the mode even if `f` unwinds.
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BLOCKING.with(|b| b.set(self.0));
        }
    }
    let _restore = Restore(BLOCKING.with(|b| b.replace(true)));
    f()
}

/// Lets every peer lent to this core go back to its loop (see [`blocking`]).
pub(crate) fn let_go() {
    LENT.with(|l| {
        if let Ok(mut lent) = l.try_borrow_mut() {
            lent.clear();
        }
    });
}

/// The shard could not be reached: its core is shutting down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {0} is unavailable")]
pub(crate) struct Unavailable(pub(crate) usize);

/// The local shard and its gate, and the core's local state.
struct Host {
    /// This core's shard.
    me: ShardId,
    shard: Rc<RefCell<Shard>>,
    local: Rc<Local>,
    holder: Cell<Option<TxId>>,
    waiting: RefCell<VecDeque<Hop>>,
    /// The pipelined hops this core's connections wait for.
    awaited: Rc<Awaited>,
}

impl Host {
    /// Whether a hop outside any transaction may run now.
    fn open(&self) -> bool {
        self.holder.get().is_none() && self.waiting.borrow().is_empty()
    }

    /// Takes a hop from a peer or from this core: runs it, grants it, or queues it.
    fn admit(&self, hop: Hop) {
        match hop {
            Hop::Core { job } => job(&self.local),
            Hop::Reply(done) => done(),
            Hop::Answered(hop) => self.awaited.answer(hop),
            Hop::Pipelined(hop) if self.open() => self.run_pipelined(hop),
            Hop::Run { tx: Some(tx), unlock, job } if self.holder.get() == Some(tx) => {
                self.run_job(job);
                if unlock {
                    self.release();
                }
            }
            Hop::Run { tx: None, job, .. } if self.open() => self.run_job(job),
            Hop::Free { job } if self.open() => self.run_free(job),
            Hop::Lock { tx, granted } if self.open() => self.grant(tx, granted),
            // Holding the gate only while the job runs is holding it atomically: nothing else
            // runs on this core meanwhile.
            Hop::LockRun { tx, job } if self.open() => self.run_atomic(tx, job),
            Hop::Lend { tx, hops } if self.holder.get() == Some(tx) => self.lend(&hops),
            // Never sent by a transaction that does not hold this gate. Waiting for it would
            // stall the sender's thread for good: dropped, its hop's reply channel closes.
            Hop::Lend { tx, .. } => {
                tracing::error!(?tx, holder = ?self.holder.get(), "a thread was asked for by a transaction not holding its gate");
            }
            hop => {
                // Work that a held gate (or the queue behind it) keeps waiting.
                self.local.count(|s| s.gate_waits += 1);
                self.waiting.borrow_mut().push_back(hop);
            }
        }
    }

    /// Runs the hops of the transaction that holds this gate and borrows this thread, as
    /// they come, until it lets go (see [`Hop::Lend`]).
    fn lend(&self, hops: &Drain<Hop>) {
        self.local.count(|s| s.lends += 1);
        while let Some(hop) = hops.next() {
            self.admit(hop);
        }
    }

    fn run_job(&self, job: Job) {
        let mut shard = self.shard.borrow_mut();
        shard.tick();
        job(&mut shard);
        shard.publish();
    }

    /// Runs a connection's pipelined commands and sends them back with their replies (or
    /// hands them to the task waiting here, when they were this core's own).
    fn run_pipelined(&self, mut hop: Pipelined) {
        {
            let mut shard = self.shard.borrow_mut();
            shard.tick();
            hop.run_on(&mut shard);
            // Published before the answer leaves: a caller that waits for its writes to be
            // durable must find them in the journal.
            shard.publish();
        }
        if hop.from == self.me {
            return self.awaited.answer(hop);
        }
        match OUTBOX.with(|o| o.borrow().clone()) {
            Some(outbox) if hop.from.0 < outbox.queues.len() => outbox.push(hop.from.0, Hop::Answered(hop)),
            // Hops come from peers only through the mesh, whose outbox is set up first.
            _ => tracing::error!(from = hop.from.0, "a pipelined hop from a peer, and no way back"),
        }
    }

    fn run_free(&self, job: FreeJob) {
        self.free_here(job);
    }

    /// Runs `f` with the shard's cell as a free job (see [`FreeJob`]): the clock read before,
    /// a gate it asked to keep kept, and what it logged published after (a script's effects
    /// as one unit, before anything else logs).
    fn free_here<R>(&self, f: impl FnOnce(&Rc<RefCell<Shard>>) -> R) -> R {
        self.shard.borrow_mut().tick();
        let r = f(&self.shard);
        self.keep_if_asked();
        self.shard.borrow_mut().publish();
        r
    }

    /// A free job asked to keep the gate (see [`keep_gate`]): it is held from now on, before
    /// anything else can run here.
    fn keep_if_asked(&self) {
        if let Some(tx) = KEEP_GATE.with(Cell::take) {
            self.holder.set(Some(tx));
        }
    }

    /// Runs a job of transaction `tx` that holds the gate while it runs: one atomic unit.
    fn run_atomic(&self, tx: TxId, job: Job) {
        let mut shard = self.shard.borrow_mut();
        shard.tick();
        shard.atomically_in(tx.0, job);
    }

    fn grant(&self, tx: TxId, granted: oneshot::Sender<()>) {
        self.holder.set(Some(tx));
        self.shard.borrow_mut().begin_tx(tx.0);
        // The requester is gone (its connection closed): nobody will unlock, so release now.
        if granted.send(()).is_err() {
            self.release();
        }
    }

    /// Releases the gate: the transaction's atomic unit ends (its blocked clients are served,
    /// before anything else runs), then the hops that waited run in order.
    fn release(&self) {
        self.holder.set(None);
        self.shard.borrow_mut().end_tx();
        loop {
            let Some(hop) = self.waiting.borrow_mut().pop_front() else { return };
            match hop {
                Hop::Run { job, .. } => self.run_job(job),
                Hop::Free { job } => {
                    self.run_free(job);
                    // It kept the gate (a busy script): the rest waits for it.
                    if self.holder.get().is_some() {
                        return;
                    }
                }
                Hop::LockRun { tx, job } => self.run_atomic(tx, job),
                Hop::Core { job } => job(&self.local),
                Hop::Reply(done) => done(),
                Hop::Pipelined(hop) => self.run_pipelined(hop),
                Hop::Answered(hop) => self.awaited.answer(hop),
                // Only admitted while its transaction holds the gate (never queued).
                Hop::Lend { .. } => {}
                Hop::Lock { tx, granted } => {
                    self.grant(tx, granted);
                    if self.holder.get().is_some() {
                        return;
                    }
                }
            }
        }
    }
}

/// A pipelined hop's answer (see [`Router::send_pipelined`]): its commands back with their
/// replies, or [`Unavailable`] when the shard's core is gone. Dropped before it came, the hop is
/// dropped when it does.
pub(crate) struct Answer<'r> {
    awaited: &'r Awaited,
    shard: ShardId,
    ticket: usize,
    taken: bool,
}

impl std::future::Future for Answer<'_> {
    type Output = Result<Pipelined, Unavailable>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // Polled again after it finished: its ticket may serve another hop by now.
        if self.taken {
            return std::task::Poll::Ready(Err(Unavailable(self.shard.0)));
        }
        let answer = std::task::ready!(self.awaited.poll(self.ticket, cx));
        self.taken = true;
        std::task::Poll::Ready(answer.ok_or(Unavailable(self.shard.0)))
    }
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        if !self.taken {
            self.awaited.abandon(self.ticket);
        }
    }
}

/// Routes work to shards; one per core, shared by that core's connections.
pub(crate) struct Router {
    me: ShardId,
    shards: usize,
    host: Rc<Host>,
    outbox: Option<Rc<Outbox>>,
    next_tx: Cell<u64>,
    global: Arc<Global>,
    /// Vectors kept from pipelined hops that came back, for the next ones.
    spare: Spare,
}

impl Router {
    /// The router of core `me` of `shards`, hosting `shard` and `local`, with the mesh to its
    /// peers (none when alone); starts the tasks that admit their hops.
    #[must_use]
    pub(crate) fn new(
        me: ShardId,
        shards: usize,
        shard: Shard,
        local: Rc<Local>,
        mesh: Option<(Senders<Batch>, Receivers<Batch>)>,
    ) -> Router {
        let global = shard.global().clone();
        let host = Rc::new(Host {
            me,
            shard: Rc::new(RefCell::new(shard)),
            local,
            holder: Cell::new(None),
            waiting: RefCell::default(),
            awaited: Rc::default(),
        });
        let outbox = mesh.map(|(senders, mut receivers)| {
            let queues = (0..senders.nr_consumers()).map(|_| RefCell::default()).collect();
            let local = host.local.clone();
            let awaited = host.awaited.clone();
            let outbox = Rc::new(Outbox { queues, senders, flushing: Cell::new(false), local, awaited });
            // Before the receiving tasks: glommio runs a task it spawns at once, and a peer
            // that started first may have sent hops already, whose answers leave by the outbox.
            OUTBOX.with(|o| *o.borrow_mut() = Some(outbox.clone()));
            for (peer, rx) in receivers.streams() {
                let host = host.clone();
                glommio::spawn_local(async move {
                    while let Some(batch) = rx.recv().await {
                        host.local.count(|s| {
                            s.hop_messages_received += 1;
                            s.hops_received += batch.len() as u64;
                        });
                        for hop in batch {
                            host.admit(hop);
                        }
                    }
                    // The peer is gone: what this core's connections wait for from it never comes.
                    host.awaited.fail_all_to(ShardId(peer));
                })
                .detach();
            }
            outbox
        });
        Router { me, shards, host, outbox, next_tx: Cell::new(0), global, spare: Spare::default() }
    }

    /// This core's shard.
    #[must_use]
    pub(crate) fn local(&self) -> ShardId {
        self.me
    }

    /// This core's local state (clients, subscribers, counters).
    #[must_use]
    pub(crate) fn local_state(&self) -> &Rc<Local> {
        &self.host.local
    }

    /// How many shards there are.
    #[must_use]
    pub(crate) fn shards(&self) -> usize {
        self.shards
    }

    /// The shard owning `key`.
    #[must_use]
    pub(crate) fn shard_of(&self, key: &[u8]) -> ShardId {
        if self.shards == 1 {
            return ShardId(0);
        }
        Slot::of(key).shard(self.shards)
    }

    /// Where a command naming `keys` runs: the first key's shard, or this core's when it names
    /// none (a bad key count, which the command itself reports); and whether every key lives
    /// there. Every path that runs a keyed command, and EXEC choosing what to lock, asks this.
    pub(crate) fn placement<'a>(&self, mut keys: impl Iterator<Item = &'a [u8]>) -> (ShardId, bool) {
        let shard = keys.next().map_or(self.me, |k| self.shard_of(k));
        (shard, keys.all(|k| self.shard_of(k) == shard))
    }

    /// Runs `f` on the local shard now if its gate is open. The caller ticks the shard's clock
    /// (once per batch: see [`Shard::tick`]).
    ///
    /// What `f` logs for the journal stays in the shard's buffer (the next hop there, a
    /// transaction taking the gate, or [`Router::publish_local`] publishes it): a pipelined
    /// batch of inline writes publishes once.
    pub(crate) fn try_local<R>(&self, f: impl FnOnce(&mut Shard) -> R) -> Option<R> {
        self.host.open().then(|| f(&mut self.host.shard.borrow_mut()))
    }

    /// Runs `f` on `with` and the local shard's cell at once, as a free job of this core (see
    /// [`FreeJob`]), when its gate is open; else gives `with` back.
    pub(crate) fn try_free_local<T, R>(
        &self,
        with: T,
        f: impl FnOnce(&Rc<RefCell<Shard>>, T) -> R,
    ) -> Result<R, T> {
        if !self.host.open() {
            return Err(with);
        }
        Ok(self.host.free_here(|cell| f(cell, with)))
    }

    /// Publishes what the local shard has logged (see [`Shard::publish`]): called before a
    /// connection's replies leave. Between hops the buffer holds only what inline commands
    /// logged with the gate open, so whoever holds the gate now has nothing in it.
    pub(crate) fn publish_local(&self) {
        if let Ok(mut shard) = self.host.shard.try_borrow_mut() {
            shard.publish();
        }
    }

    /// Runs `f` on core `core`'s local state and returns its result; this core's at once.
    pub(crate) async fn on_core<R, F>(&self, core: ShardId, f: F) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&Local) -> R + Send + 'static,
    {
        if core == self.me {
            return Ok(f(&self.host.local));
        }
        if BLOCKING.with(Cell::get) {
            return self.hop_blocking(core, None, |done| Hop::Core {
                job: Box::new(move |local| done.give(f(local))),
            });
        }
        let (done, result) = oneshot::channel();
        let me = self.me;
        let job: CoreJob = Box::new(move |local| {
            let r = f(local);
            reply_to(me, Box::new(move || drop(done.send(r))));
        });
        self.send(core, Hop::Core { job }).await?;
        result.await.map_err(|_| Unavailable(core.0))
    }

    /// Runs `f` on core `core`'s local state without waiting for it (this core's at once):
    /// messages to one core arrive in the order they were posted, the way a monitor's lines
    /// must. Dropped if the core is gone.
    pub(crate) fn post_core(&self, core: ShardId, f: impl FnOnce(&Local) + Send + 'static) {
        if core == self.me {
            f(&self.host.local);
        } else if let Some(outbox) = &self.outbox {
            outbox.push(core.0, Hop::Core { job: Box::new(f) });
        }
    }

    /// Runs `f` on every core's local state, concurrently; results in core order.
    pub(crate) async fn each_core<R, F>(&self, f: F) -> Result<Vec<R>, Unavailable>
    where
        R: Send + 'static,
        F: Fn(&Local) -> R + Clone + Send + 'static,
    {
        let hops = (0..self.shards).map(|c| self.on_core(ShardId(c), f.clone()));
        futures::future::join_all(hops).await.into_iter().collect()
    }

    /// An empty vector for a connection's pipelined commands for one shard (see
    /// [`Router::send_pipelined`]), with the room of an earlier one when there is one.
    pub(crate) fn pipeline_batch(&self) -> Vec<(usize, ShardCmd)> {
        self.spare.cmds()
    }

    /// Sends a connection's pipelined `cmds` (each with the pipeline slot its reply fills) to
    /// `shard`, to run there in order as a [`Router::run`] outside any transaction would; the
    /// [`Answer`] waits for them to come back with their replies (see [`Pipelined`]). They
    /// leave with what this core sends that shard in the same pass.
    pub(crate) fn send_pipelined(&self, shard: ShardId, cmds: Vec<(usize, ShardCmd)>) -> Answer<'_> {
        let awaited = &self.host.awaited;
        let hop = awaited.send(self.me, shard, cmds, self.spare.replies());
        let ticket = hop.ticket();
        if BLOCKING.with(Cell::get) {
            // The thread waits for each hop of a blocking span itself.
            let answered = self.run_waiting(shard, None, false, move |s| {
                let mut hop = hop;
                hop.run_on(s);
                hop
            });
            match answered {
                Ok(hop) => awaited.answer(hop),
                Err(_) => awaited.fail(ticket),
            }
        } else if shard == self.me {
            self.host.admit(Hop::Pipelined(hop));
        } else if let Some(outbox) = &self.outbox {
            // As in `send`: the shard judges memory with this core's counter as it is now.
            if self.global.maxmemory() > 0 {
                self.global.publish_allocated(self.me.0, crate::memory::here());
            }
            outbox.push(shard.0, Hop::Pipelined(hop));
        } else {
            awaited.fail(ticket);
        }
        Answer { awaited, shard, ticket, taken: false }
    }

    /// Keeps the vectors of a pipelined hop that came back, emptied, for the next pipeline.
    pub(crate) fn recycle(&self, hop: Pipelined) {
        self.spare.keep(hop.cmds, hop.replies);
    }

    /// Runs `f` on `shard` and returns its result. Local work with an open gate runs inline.
    pub(crate) async fn run<R, F>(&self, shard: ShardId, tx: Option<TxId>, f: F) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        self.run_inner(shard, tx, false, f).await
    }

    /// Runs `f` on `shard` with the shard's cell, which it borrows as it needs (see
    /// [`FreeJob`]), and returns its result. Local work with an open gate runs inline.
    pub(crate) async fn run_free<R, F>(&self, shard: ShardId, f: F) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&Rc<RefCell<Shard>>) -> R + Send + 'static,
    {
        if shard == self.me && self.host.open() {
            return Ok(self.host.free_here(f));
        }
        let (done, result) = oneshot::channel();
        let me = self.me;
        let job: FreeJob = Box::new(move |cell| {
            let r = f(cell);
            cell.borrow_mut().publish();
            reply_to(me, Box::new(move || drop(done.send(r))));
        });
        self.send(shard, Hop::Free { job }).await?;
        result.await.map_err(|_| Unavailable(shard.0))
    }

    async fn run_inner<R, F>(
        &self,
        shard: ShardId,
        tx: Option<TxId>,
        unlock: bool,
        f: F,
    ) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        if BLOCKING.with(Cell::get) {
            return self.run_waiting(shard, tx, unlock, f);
        }
        let f = match self.run_here(shard, tx, unlock, f) {
            Ok(r) => return Ok(r),
            Err(f) => f,
        };
        let (done, result) = oneshot::channel();
        // Published before the reply leaves: a caller that waits for its writes to be durable
        // must find them in the journal.
        let me = self.me;
        let job: Job = Box::new(move |s| {
            let r = f(s);
            s.publish();
            reply_to(me, Box::new(move || drop(done.send(r))));
        });
        self.send(shard, Hop::Run { tx, unlock, job }).await?;
        result.await.map_err(|_| Unavailable(shard.0))
    }

    /// Runs `f` now when it is for this core's shard and may run (its gate held by `tx`, or
    /// open for work outside any transaction); else gives it back.
    fn run_here<R, F>(&self, shard: ShardId, tx: Option<TxId>, unlock: bool, f: F) -> Result<R, F>
    where
        F: FnOnce(&mut Shard) -> R,
    {
        if shard != self.me {
            return Err(f);
        }
        // Its transaction holds the gate, or it is outside any and the gate is open.
        let may = match tx {
            Some(_) => self.host.holder.get() == tx,
            None => self.host.open(),
        };
        if !may {
            return Err(f);
        }
        let r = {
            let mut shard = self.host.shard.borrow_mut();
            shard.tick();
            let r = f(&mut shard);
            shard.publish();
            r
        };
        if unlock {
            self.host.release();
        }
        Ok(r)
    }

    /// Runs `f` on `shard` inside [`blocking`]: at once when it may run here, else as a hop
    /// waited for on this thread.
    fn run_waiting<R, F>(
        &self,
        shard: ShardId,
        tx: Option<TxId>,
        unlock: bool,
        f: F,
    ) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        let f = match self.run_here(shard, tx, unlock, f) {
            Ok(r) => return Ok(r),
            Err(f) => f,
        };
        self.hop_blocking(shard, tx, |done| Hop::Run {
            tx,
            unlock,
            job: Box::new(move |s| {
                let r = f(s);
                s.publish();
                done.give(r);
            }),
        })
    }

    /// Sends the hop `make` builds to `peer` at once, with what this core had queued for it
    /// ahead, and waits on this thread for the answer it sends back (see [`blocking`]). A hop
    /// of transaction `tx` borrows the peer's thread for the rest of the span.
    fn hop_blocking<R: Send + 'static>(
        &self,
        peer: ShardId,
        tx: Option<TxId>,
        make: impl FnOnce(Give<R>) -> Hop,
    ) -> Result<R, Unavailable> {
        let outbox = self.outbox.as_ref().ok_or(Unavailable(peer.0))?;
        if self.global.maxmemory() > 0 {
            self.global.publish_allocated(self.me.0, crate::memory::here());
        }
        let (done, answer) = handoff::answer();
        // What this core had queued for the peer goes first.
        let mut queue = outbox.queues[peer.0].borrow_mut();
        queue.push(make(done));
        // A lent peer's thread waits for these: no message, no pass of its loop, and the queue
        // keeps its room. Giving runs nothing of this core's.
        let given = LENT.with(|l| match l.borrow().get(peer.0) {
            Some(Some(lent)) => {
                outbox.local.count(|s| s.hops += queue.len() as u64);
                // A peer that let go of its feed takes none: what it did not take is lost.
                let lost: Batch = queue.drain(..).filter_map(|hop| lent.give(hop).err()).collect();
                Some(lost)
            }
            _ => None,
        });
        let unsent = match given {
            Some(lost) if lost.is_empty() => None,
            Some(lost) => {
                drop(queue);
                outbox.fail(lost);
                return Err(Unavailable(peer.0));
            }
            None => Some(std::mem::take(&mut *queue)),
        };
        drop(queue);
        if let Some(mut batch) = unsent {
            if let Some(tx) = tx {
                let (lend, hops) = handoff::queue();
                LENT.with(|l| {
                    let mut l = l.borrow_mut();
                    if l.len() <= peer.0 {
                        l.resize_with(peer.0 + 1, || None);
                    }
                    l[peer.0] = Some(lend);
                });
                batch.push(Hop::Lend { tx, hops });
            }
            outbox.count_sent(&batch);
            loop {
                match outbox.senders.try_send_to(peer.0, batch) {
                    Ok(()) => break,
                    // The peer drains its queue without this core's help.
                    Err(glommio::GlommioError::WouldBlock(glommio::ResourceType::Channel(back))) => {
                        batch = back;
                        std::thread::yield_now();
                    }
                    Err(glommio::GlommioError::Closed(glommio::ResourceType::Channel(lost))) => {
                        outbox.fail(lost);
                        return Err(Unavailable(peer.0));
                    }
                    Err(_) => return Err(Unavailable(peer.0)),
                }
            }
        }
        answer.wait().ok_or(Unavailable(peer.0))
    }

    async fn send(&self, shard: ShardId, hop: Hop) -> Result<(), Unavailable> {
        if shard == self.me {
            self.host.admit(hop);
            return Ok(());
        }
        // Under `maxmemory`, the shard that gets this hop judges memory with this core's counter
        // as it is now: what this core allocated for the hop (the values it parsed) included.
        if self.global.maxmemory() > 0 {
            self.global.publish_allocated(self.me.0, crate::memory::here());
        }
        let outbox = self.outbox.as_ref().ok_or(Unavailable(shard.0))?;
        outbox.push(shard.0, hop);
        Ok(())
    }

    /// Runs one job on each of `work`'s shards (sorted, distinct) atomically across them: every
    /// shard but the last is locked in order, then the last runs its job as it takes its gate
    /// (one message, no round trip with the gate held); only once it has run do the others run
    /// theirs and release. (Releasing them earlier would let a reader take them and reach the
    /// last shard before this job does.) Results follow `work`'s order.
    pub(crate) async fn atomically<R, F>(
        self: &Rc<Self>,
        mut work: Vec<(ShardId, F)>,
    ) -> Vec<Result<R, Unavailable>>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        let Some((last, last_job)) = work.pop() else { return Vec::new() };
        let tx = match self.begin(work.iter().map(|(s, _)| *s).collect()).await {
            Ok(tx) => tx,
            Err(e) => {
                let mut failed: Vec<Result<R, Unavailable>> = work.iter().map(|_| Err(e)).collect();
                failed.push(Err(e));
                return failed;
            }
        };
        let (done, result) = oneshot::channel();
        // Published by the unit around it (`Shard::atomically_in`), as one block.
        let me = self.me;
        let job: Job = Box::new(move |s| {
            let r = last_job(s);
            reply_to(me, Box::new(move || drop(done.send(r))));
        });
        let last_result = match self.send(last, Hop::LockRun { tx: tx.id, job }).await {
            Ok(()) => result.await.map_err(|_| Unavailable(last.0)),
            Err(e) => Err(e),
        };
        let mut results = tx.finish(work).await;
        results.push(last_result);
        results
    }

    /// A new transaction id, unique across cores.
    #[must_use]
    pub(crate) fn tx_id(&self) -> TxId {
        let n = self.next_tx.get();
        self.next_tx.set(n + 1);
        TxId((self.me.0 as u64) << 48 | n)
    }

    /// The transaction `id` whose gate on `shard` a free job kept (see [`keep_gate`]): release
    /// it as any other.
    pub(crate) fn adopt(self: &Rc<Self>, id: TxId, shard: ShardId) -> Tx {
        Tx { id, router: self.clone(), locked: vec![shard] }
    }

    /// Locks `shards` (sorted, distinct) for a new transaction, in order, and returns it.
    pub(crate) async fn begin(self: &Rc<Self>, shards: Vec<ShardId>) -> Result<Tx, Unavailable> {
        debug_assert!(shards.windows(2).all(|w| w[0] < w[1]));
        let mut tx = Tx { id: self.tx_id(), router: self.clone(), locked: Vec::with_capacity(shards.len()) };
        for shard in shards {
            let (granted, wait) = oneshot::channel();
            self.send(shard, Hop::Lock { tx: tx.id, granted }).await?;
            wait.await.map_err(|_| Unavailable(shard.0))?;
            tx.locked.push(shard);
        }
        Ok(tx)
    }
}

/// A multi-shard transaction holding the gates of its shards. End it with [`Tx::finish`];
/// dropping it unfinished releases the gates from a background task.
#[must_use]
pub(crate) struct Tx {
    id: TxId,
    router: Rc<Router>,
    locked: Vec<ShardId>,
}

impl Tx {
    /// The locked shards, in order.
    #[must_use]
    pub(crate) fn shards(&self) -> &[ShardId] {
        &self.locked
    }

    /// Whether the journal records effects.
    #[must_use]
    pub(crate) fn journaling(&self) -> bool {
        self.router.global.journal.active()
    }

    /// Logs a command the coordinator ran through this transaction (FLUSHALL, a cross-shard
    /// RENAME) as its effect, in the transaction's block: after everything its shards logged
    /// before it took them, before anything they log after it.
    pub(crate) fn log(&self, db: Option<usize>, args: &[&[u8]]) {
        let journal = &self.router.global.journal;
        if journal.active() {
            let lanes: Vec<usize> = self.locked.iter().map(|s| s.0).collect();
            journal.log_tx(self.id.0, &lanes, db, args);
        }
    }

    /// Puts `marker` into the journal at this transaction's place.
    pub(crate) fn mark(&self, marker: Marker) {
        let lanes: Vec<usize> = self.locked.iter().map(|s| s.0).collect();
        self.router.global.journal.mark_tx(self.id.0, &lanes, marker);
    }

    /// Commands the transaction's bodies logged themselves so far (a cross-shard command whose
    /// shards logged its effect is not logged again as it came).
    #[must_use]
    pub(crate) fn explicit(&self) -> usize {
        self.router.global.journal.tx_explicit(self.id.0)
    }

    /// Runs `f` on one of the transaction's shards, keeping the gate.
    pub(crate) async fn run<R, F>(&self, shard: ShardId, f: F) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        self.router.run_inner(shard, self.tx_of(shard), false, f).await
    }

    /// [`Tx::run`] inside [`blocking`]: answered before it returns.
    pub(crate) fn run_blocking<R, F>(&self, shard: ShardId, f: F) -> Result<R, Unavailable>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        debug_assert!(BLOCKING.with(Cell::get), "a blocking run outside `blocking`");
        let tx = self.tx_of(shard);
        self.router.run_waiting(shard, tx, false, f)
    }

    /// The transaction to run a hop for `shard` in: this one, when it holds the shard.
    fn tx_of(&self, shard: ShardId) -> Option<TxId> {
        if self.locked.contains(&shard) {
            return Some(self.id);
        }
        // A bug in the caller's choice of shards. Sent as part of the transaction, the hop
        // would wait for a gate this transaction never takes, and close it for good.
        tracing::error!(shard = shard.0, locked = ?self.locked, "transaction ran on a shard it does not hold");
        None
    }

    /// The shard owning `key`.
    #[must_use]
    pub(crate) fn shard_of(&self, key: &[u8]) -> ShardId {
        self.router.shard_of(key)
    }

    /// Runs `f` against database `db` of `shard` inside this transaction (the shard must be
    /// one it holds); an unreachable shard is [`CmdError::Unavailable`].
    pub(crate) async fn on<T, F>(&self, shard: ShardId, db: usize, f: F) -> Result<T, CmdError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Ctx<'_>) -> Result<T, CmdError> + Send + 'static,
    {
        match self.run(shard, move |s: &mut Shard| s.with_db(db, f)).await {
            Ok(r) => r,
            Err(Unavailable(_)) => Err(CmdError::Unavailable),
        }
    }

    /// Releases every gate, with no more work.
    pub(crate) async fn release(self) {
        let _ = self.finish(Vec::<(ShardId, fn(&mut Shard))>::new()).await;
    }

    /// Runs each `(shard, f)` as that shard's last hop, releasing its gate in the same hop, and
    /// releases the gates of the other shards; all concurrently. Results follow `work`'s order.
    pub(crate) async fn finish<R, F>(mut self, work: Vec<(ShardId, F)>) -> Vec<Result<R, Unavailable>>
    where
        R: Send + 'static,
        F: FnOnce(&mut Shard) -> R + Send + 'static,
    {
        let locked = std::mem::take(&mut self.locked);
        let (router, id) = (&self.router, Some(self.id));
        let rest = locked.iter().filter(|s| !work.iter().any(|(w, _)| w == *s));
        let unlocks = futures::future::join_all(rest.map(|&shard| router.run_inner(shard, id, true, |_| ())));
        let jobs = futures::future::join_all(
            work.into_iter().map(|(shard, f)| router.run_inner(shard, id, true, f)),
        );
        let results = futures::future::join(jobs, unlocks).await.0;
        self.router.global.journal.seal(self.id.0);
        results
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        // Once its gates are released nothing more is logged as this transaction's: its block
        // may be written once its lanes reach it.
        if self.locked.is_empty() {
            self.router.global.journal.seal(self.id.0);
            return;
        }
        let (router, id, locked) = (self.router.clone(), self.id, std::mem::take(&mut self.locked));
        glommio::spawn_local(async move {
            for shard in locked {
                let _ = router.run_inner(shard, Some(id), true, |_| ()).await;
            }
            router.global.journal.seal(id.0);
        })
        .detach();
    }
}
