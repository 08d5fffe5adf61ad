//! The journal: every shard's writes, as the commands that replay them (their effects), merged
//! into one ordered stream: the append-only file's and the replication stream's.
//!
//! **Effects.** A shard logs what each command did into its own [`Effects`] buffer: the request
//! itself when a write command changed something, or what a body logs in its place (`SET ...
//! PXAT` for `SET ... EX`, `SREM` for `SPOP`, `LPOP` for a served `BLPOP`), preceded by a `DEL`
//! for each key it found expired. At the end of each hop (and of each inline command) the shard
//! *publishes* the buffer to the journal: one short lock, no allocation on the common path.
//!
//! **One order for all shards.** Keys belong to one shard, so each shard's order is the order
//! of its keys. What spans shards is a transaction (`Tx`): each shard's part of it, and what the
//! coordinator logs itself (FLUSHALL, a cross-shard RENAME), gather into one *block* that is
//! written as one `MULTI`/`EXEC` once the coordinator *seals* it. Each shard has a *lane*: from
//! the moment a transaction logs on a shard until its block is written, whatever that shard
//! publishes next waits behind it in the lane. Transactions take their gates in shard order and
//! release none before all are held, so a serial order of the blocks exists and the lanes
//! never wait on each other in a cycle.
//!
//! **Tickets and durability.** Every published group gets a ticket, in publish order. The
//! *frontier* is the last ticket up to which every group is in the stream; the writer records
//! the frontier it has written (and fsynced) as *durable*. Under `appendfsync always` a
//! connection waits, before its replies leave, until the tickets of its writes are durable:
//! one write and one fsync cover every connection waiting meanwhile (group commit).
//!
//! **Two consumers.** The AOF writer takes the stream's bytes; replicas read them from the
//! [`Backlog`], which every byte is fed to once replication has started. Logging is on while
//! either consumes.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use ahash::AHashMap;

use crate::engine::backlog::Backlog;
use crate::storage::aof::command;

/// The database a logged command runs in; `NO_DB` for one that names none (FLUSHALL).
const NO_DB: u32 = u32::MAX;

/// Commands logged back to back, each with its database.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    bytes: Vec<u8>,
    /// Per command: where it ends in `bytes`, and its database (or [`NO_DB`]).
    ends: Vec<(usize, u32)>,
}

impl Commands {
    /// Logs `args` as run in database `db` (`None`: a command that names none).
    pub(crate) fn push<A: AsRef<[u8]>>(&mut self, db: Option<usize>, args: &[A]) {
        command(&mut self.bytes, args);
        let db = db.and_then(|d| u32::try_from(d).ok()).unwrap_or(NO_DB);
        self.ends.push((self.bytes.len(), db));
    }

    /// How many commands.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are none.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.ends.clear();
    }

    /// Keeps the first `n` commands.
    fn truncate(&mut self, n: usize) {
        self.ends.truncate(n);
        self.bytes.truncate(self.ends.last().map_or(0, |&(end, _)| end));
    }

    /// Each command's database and bytes.
    fn iter(&self) -> impl Iterator<Item = (u32, &[u8])> {
        let mut start = 0;
        self.ends.iter().map(move |&(end, db)| {
            let slice = &self.bytes[start..end];
            start = end;
            (db, slice)
        })
    }
}

/// What one shard has logged since it last published.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// Whether anything is logged (the AOF is on).
    on: bool,
    commands: Commands,
    /// Commands a body logged itself (not the request as it came): the command's own effect.
    explicit: usize,
    /// Where the atomic unit being logged began (see [`Effects::begin_unit`]).
    unit: Option<usize>,
    /// The commands from this index on form one `MULTI`/`EXEC` when published.
    wrap_from: Option<usize>,
}

impl Effects {
    /// Whether effects are logged.
    #[must_use]
    pub(crate) fn on(&self) -> bool {
        self.on
    }

    /// Starts or stops logging.
    pub(crate) fn set_on(&mut self, on: bool) {
        self.on = on;
        if !on {
            self.commands.clear();
            self.explicit = 0;
        }
    }

    /// Logs a command a body chose as its effect.
    pub(crate) fn push_explicit<A: AsRef<[u8]>>(&mut self, db: Option<usize>, args: &[A]) {
        self.commands.push(db, args);
        self.explicit += 1;
    }

    /// Counts as the command's own effect without logging anything (see `Ctx::log_nothing`).
    pub(crate) fn suppress(&mut self) {
        if self.on {
            self.explicit += 1;
        }
    }

    /// Logs a command as it came (a write that changed something), or a key's expiry.
    pub(crate) fn push<A: AsRef<[u8]>>(&mut self, db: Option<usize>, args: &[A]) {
        self.commands.push(db, args);
    }

    /// How many commands bodies logged themselves, in all (to tell whether one did).
    #[must_use]
    pub(crate) fn explicit(&self) -> usize {
        self.explicit
    }

    /// Takes what was logged, each command as its arguments joined by spaces (for tests).
    #[cfg(test)]
    pub(crate) fn take_text(&mut self) -> Vec<String> {
        let text = self
            .commands
            .iter()
            .map(|(_, bytes)| {
                let text = String::from_utf8_lossy(bytes);
                let parts: Vec<&str> = text.split("\r\n").collect();
                // *N, then $len and the argument in turn.
                parts.iter().skip(2).step_by(2).copied().collect::<Vec<_>>().join(" ")
            })
            .collect();
        self.commands.clear();
        self.explicit = 0;
        text
    }

    /// An atomic unit (a single-shard EXEC) begins: what it logs is written as one block.
    pub(crate) fn begin_unit(&mut self) {
        self.unit = Some(self.commands.len());
    }

    /// Drops what the open atomic unit logged.
    pub(crate) fn drop_unit(&mut self) {
        if let Some(start) = self.unit {
            self.commands.truncate(start);
        }
    }

    /// Whether an atomic unit is open (its commands are not published before it ends).
    #[must_use]
    pub(crate) fn in_unit(&self) -> bool {
        self.unit.is_some()
    }

    /// The atomic unit ends.
    pub(crate) fn end_unit(&mut self) {
        if let Some(start) = self.unit.take() {
            if self.commands.len().saturating_sub(start) > 1 {
                self.wrap_from = Some(start);
            }
        }
    }
}

/// Something the stream carries besides commands, for the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// An AOF rewrite took its cut here: what follows goes to a new incremental file.
    Rotate {
        /// The rewrite's id.
        id: u64,
    },
    /// A full resynchronization's snapshot took its cut here: its replica's stream starts at
    /// this offset (see [`Journal::sync_point`]).
    Sync {
        /// The snapshot's id.
        id: u64,
    },
}

/// A multi-shard transaction's journal identity (the router's `TxId`, as a number).
pub(crate) type TxKey = u64;

/// A group of commands held back: in a lane behind a block, or in a block not yet written.
#[derive(Debug)]
struct Group {
    ticket: u64,
    commands: Commands,
    wrap_from: Option<usize>,
}

/// An item waiting in a lane.
#[derive(Debug)]
enum Queued {
    /// Commands outside any transaction.
    Group(Group),
    /// The transaction enters this lane here.
    Enter(TxKey),
    /// The transaction's commands on this lane.
    Part(TxKey, Group),
}

#[derive(Debug, Default)]
struct Lane {
    blocked_by: Option<TxKey>,
    queue: VecDeque<Queued>,
}

/// A transaction's commands, gathered from its shards and its coordinator.
#[derive(Debug, Default)]
struct Block {
    groups: Vec<Group>,
    markers: Vec<(u64, Marker)>,
    lanes: Vec<usize>,
    /// Lanes where the transaction is still queued behind another.
    waiting: usize,
    sealed: bool,
    explicit: usize,
}

/// What the writer takes from the stream.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    /// Commands, as the file holds them.
    pub(crate) bytes: Vec<u8>,
    /// Markers, by position in `bytes`.
    pub(crate) markers: Vec<(usize, Marker)>,
    /// Every ticket up to this one is in `bytes` or was taken before.
    pub(crate) frontier: u64,
}

#[derive(Debug)]
struct State {
    /// Bytes for the AOF writer (while the AOF is on).
    out: Vec<u8>,
    /// Bytes written to the stream since they were last handed to its consumers.
    fresh: Vec<u8>,
    /// Whether the AOF writer takes `out`.
    aof: bool,
    /// The replication buffer, once replication has started.
    backlog: Option<Backlog>,
    /// Tasks waiting for the backlog to grow (replicas' links) or for a sync point.
    repl_waiters: Vec<Waker>,
    /// Full syncs' cuts: snapshot id, and the stream offset there.
    sync_points: Vec<(u64, u64)>,
    /// This server is a replica: its replication buffer gets the primary's stream as it came
    /// ([`Journal::feed_raw`]), not what the shards log.
    proxy: bool,
    markers: Vec<(usize, Marker)>,
    /// The database the stream last selected.
    selected: Option<u32>,
    lanes: Vec<Lane>,
    blocks: AHashMap<TxKey, Block>,
    next_ticket: u64,
    /// Tickets of groups held back.
    held: BTreeSet<u64>,
    durable: u64,
    waiters: Vec<(u64, Waker)>,
    writer_idle: bool,
    /// Transactions sealed lately: a hop of one that was cancelled may still publish after its
    /// seal, which must not open its block again (its lanes would wait for good).
    sealed: VecDeque<TxKey>,
}

/// How many sealed transactions the journal remembers.
const SEALED_MEMORY: usize = 1024;

/// The journal every core logs into.
#[derive(Debug)]
pub(crate) struct Journal {
    /// Whether anything is logged: the AOF is on or replication has started (coordinators ask;
    /// shards have their own flag, set by hops).
    active: AtomicBool,
    /// Whether the AOF is on.
    aof: AtomicBool,
    /// Whether replies wait for their writes to be durable (`appendfsync always`).
    waits: AtomicBool,
    /// The last durable ticket (as `State::durable`), read without the lock.
    durable: AtomicU64,
    state: Mutex<State>,
    wake_writer: Condvar,
}

impl Journal {
    /// A journal with one lane per shard.
    #[must_use]
    pub(crate) fn new(shards: usize) -> Journal {
        Journal {
            active: AtomicBool::new(false),
            aof: AtomicBool::new(false),
            waits: AtomicBool::new(false),
            durable: AtomicU64::new(0),
            state: Mutex::new(State {
                out: Vec::new(),
                fresh: Vec::new(),
                aof: false,
                backlog: None,
                repl_waiters: Vec::new(),
                sync_points: Vec::new(),
                proxy: false,
                markers: Vec::new(),
                selected: None,
                lanes: (0..shards).map(|_| Lane::default()).collect(),
                blocks: AHashMap::new(),
                next_ticket: 1,
                held: BTreeSet::new(),
                durable: 0,
                waiters: Vec::new(),
                writer_idle: false,
                sealed: VecDeque::new(),
            }),
            wake_writer: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether commands are logged.
    #[must_use]
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Whether the AOF is on (takes the stream).
    #[must_use]
    pub(crate) fn aof_on(&self) -> bool {
        self.aof.load(Ordering::Acquire)
    }

    /// Turns the AOF's taking of the stream on or off; replies wait for durability when
    /// `waits` (`appendfsync always`). Call it with every gate held, so that every shard
    /// switches between the same two commands. Returns whether logging stays on.
    pub(crate) fn set_aof(&self, on: bool, waits: bool) -> bool {
        let mut st = self.lock();
        st.aof = on;
        if !on {
            st.selected = None;
        }
        self.aof.store(on, Ordering::Release);
        self.waits.store(on && waits, Ordering::Release);
        let active = on || st.backlog.is_some();
        self.active.store(active, Ordering::Release);
        active
    }

    /// Starts feeding the replication buffer (once; later calls keep it), continuing a stream
    /// whose last byte had `offset`. Call it with every gate held. Returns whether it was
    /// created now.
    pub(crate) fn start_replication(&self, size: u64, offset: u64) -> bool {
        let mut st = self.lock();
        self.active.store(true, Ordering::Release);
        if st.backlog.is_some() {
            return false;
        }
        st.backlog = Some(Backlog::new(size, offset));
        // The replicas' stream names its database before its first command.
        st.selected = None;
        true
    }

    /// A replica's full sync: its replication buffer restarts at the primary's `offset` (its
    /// replicas sync again), and gets the primary's stream from now on.
    pub(crate) fn restart_backlog(&self, offset: u64, size: u64) {
        let mut st = self.lock();
        let limit = st.backlog.as_ref().map(Backlog::limit);
        let mut backlog = Backlog::new(size, offset);
        if let Some(limit) = limit {
            backlog.configure(size, limit);
        }
        st.backlog = Some(backlog);
        st.proxy = true;
        self.active.store(true, Ordering::Release);
        self.kick(&mut st);
    }

    /// Whether the replication buffer gets the primary's stream (a replica) or the shards'
    /// (a primary: after a promotion).
    pub(crate) fn set_proxy(&self, proxy: bool) {
        let mut st = self.lock();
        st.proxy = proxy;
        st.selected = None;
    }

    /// A replica: feeds bytes of its primary's stream, as they came, to its own replicas.
    pub(crate) fn feed_raw(&self, bytes: &[u8]) {
        let mut st = self.lock();
        if st.proxy {
            if let Some(backlog) = st.backlog.as_mut() {
                backlog.append(bytes);
                self.kick(&mut st);
            }
        }
    }

    /// Frees the replication buffer (`repl-backlog-ttl`); returns its last offset, and whether
    /// logging stays on (for the AOF). Call it with every gate held.
    pub(crate) fn stop_replication(&self) -> (Option<u64>, bool) {
        let mut st = self.lock();
        let offset = st.backlog.take().map(|b| b.offset());
        st.proxy = false;
        let active = st.aof;
        self.active.store(active, Ordering::Release);
        (offset, active)
    }

    /// Whether this server's own commands go to replicas: replication has started, and the
    /// server is not a replica passing its primary's stream on.
    #[must_use]
    pub(crate) fn feeds_replicas(&self) -> bool {
        let st = self.lock();
        st.backlog.is_some() && !st.proxy
    }

    /// Runs `f` on the replication buffer, if replication has started.
    pub(crate) fn with_backlog<R>(&self, f: impl FnOnce(&mut Backlog) -> R) -> Option<R> {
        self.lock().backlog.as_mut().map(f)
    }

    /// Feeds a command that belongs to no key and no database (the replicas' PING) into the
    /// replication stream at once, if replication has started; the AOF does not get it.
    pub(crate) fn feed_now(&self, args: &[&[u8]]) {
        let mut st = self.lock();
        if let Some(backlog) = st.backlog.as_mut() {
            let mut bytes = Vec::new();
            command(&mut bytes, args);
            backlog.append(&bytes);
            self.kick(&mut st);
        }
    }

    /// Ready once the replication buffer has bytes past `holder`'s cursor (or the holder has
    /// none): what a replica's link waits on.
    pub(crate) fn repl_ready(&self, holder: u64) -> impl Future<Output = ()> + '_ {
        StreamWait {
            journal: self,
            check: move |st: &mut State| {
                let pending = st.backlog.as_ref().and_then(|b| b.pending(holder));
                pending.is_none_or(|n| n > 0).then_some(())
            },
        }
    }

    /// Ready once every group up to `ticket` is in the stream: a write's place in the
    /// replication stream exists (WAIT), even when it waited in a lane behind a transaction.
    pub(crate) fn in_stream(&self, ticket: u64) -> impl Future<Output = ()> + '_ {
        StreamWait { journal: self, check: move |st: &mut State| (st.frontier() >= ticket).then_some(()) }
    }

    /// The stream offset at the cut of full sync `id`, once the journal has reached it (the
    /// cut's transaction is written after everything that was logged before it).
    pub(crate) fn sync_point(&self, id: u64) -> impl Future<Output = u64> + '_ {
        StreamWait {
            journal: self,
            check: move |st: &mut State| {
                let i = st.sync_points.iter().position(|(found, _)| *found == id)?;
                Some(st.sync_points.swap_remove(i).1)
            },
        }
    }

    /// `appendfsync` changed while logging.
    pub(crate) fn set_waits(&self, waits: bool) {
        self.waits.store(self.aof_on() && waits, Ordering::Release);
    }

    /// Whether a connection's replies wait until its writes are durable.
    #[must_use]
    pub(crate) fn waits(&self) -> bool {
        self.waits.load(Ordering::Relaxed)
    }

    /// Wakes the writer (it has requests besides the stream).
    pub(crate) fn wake(&self) {
        let mut st = self.lock();
        if st.writer_idle {
            st.writer_idle = false;
            self.wake_writer.notify_one();
        }
    }

    /// Publishes what shard `lane` logged, as part of transaction `tx` if it is running one.
    pub(crate) fn publish(&self, lane: usize, tx: Option<TxKey>, effects: &mut Effects) {
        if effects.commands.is_empty() {
            effects.explicit = 0;
            return;
        }
        let mut st = self.lock();
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        let explicit = std::mem::take(&mut effects.explicit);
        let wrap_from = effects.wrap_from.take();
        let tx = tx.filter(|t| !st.sealed.contains(t));
        match tx {
            Some(t) => {
                st.enter(lane, t);
                let group =
                    Group { ticket, commands: std::mem::take(&mut effects.commands), wrap_from: None };
                st.held.insert(ticket);
                let at_head = st.lanes[lane].blocked_by == Some(t);
                let block = st.blocks.entry(t).or_default();
                block.explicit += explicit;
                if at_head {
                    block.groups.push(group);
                } else {
                    st.lanes[lane].queue.push_back(Queued::Part(t, group));
                }
            }
            None => {
                let l = &st.lanes[lane];
                if l.blocked_by.is_none() && l.queue.is_empty() {
                    st.emit_commands(&effects.commands, wrap_from);
                    effects.commands.clear();
                    st.feed();
                    self.kick(&mut st);
                } else {
                    st.held.insert(ticket);
                    let group = Group { ticket, commands: std::mem::take(&mut effects.commands), wrap_from };
                    st.lanes[lane].queue.push_back(Queued::Group(group));
                }
            }
        }
    }

    /// Logs a command of transaction `tx`'s coordinator (it holds every lane in `lanes`).
    pub(crate) fn log_tx(&self, tx: TxKey, lanes: &[usize], db: Option<usize>, args: &[&[u8]]) {
        let mut st = self.lock();
        for &lane in lanes {
            st.enter(lane, tx);
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.held.insert(ticket);
        let mut commands = Commands::default();
        commands.push(db, args);
        st.blocks.entry(tx).or_default().groups.push(Group { ticket, commands, wrap_from: None });
    }

    /// Puts `marker` into the stream as transaction `tx`, which holds every lane in `lanes`.
    pub(crate) fn mark_tx(&self, tx: TxKey, lanes: &[usize], marker: Marker) {
        let mut st = self.lock();
        for &lane in lanes {
            st.enter(lane, tx);
        }
        let ticket = st.next_ticket;
        st.next_ticket += 1;
        st.blocks.entry(tx).or_default().markers.push((ticket, marker));
    }

    /// Commands transaction `tx`'s bodies have logged themselves so far.
    #[must_use]
    pub(crate) fn tx_explicit(&self, tx: TxKey) -> usize {
        self.lock().blocks.get(&tx).map_or(0, |b| b.explicit)
    }

    /// Transaction `tx` is over: its block is written once every lane it entered reaches it.
    pub(crate) fn seal(&self, tx: TxKey) {
        let mut st = self.lock();
        if st.sealed.len() == SEALED_MEMORY {
            st.sealed.pop_front();
        }
        st.sealed.push_back(tx);
        let Some(block) = st.blocks.get_mut(&tx) else { return };
        block.sealed = true;
        st.release(tx);
        st.feed();
        self.kick(&mut st);
    }

    /// Wakes the writer if it sleeps and there is something to write, and the replicas' links
    /// waiting for the stream.
    fn kick(&self, st: &mut State) {
        if st.writer_idle && (!st.out.is_empty() || !st.markers.is_empty()) {
            st.writer_idle = false;
            self.wake_writer.notify_one();
        }
        for w in st.repl_waiters.drain(..) {
            w.wake();
        }
    }

    /// The last ticket given out.
    #[must_use]
    pub(crate) fn last_ticket(&self) -> u64 {
        self.lock().next_ticket - 1
    }

    /// Waits until every group up to `ticket` is durable.
    pub(crate) fn durable(&self, ticket: u64) -> Durable<'_> {
        Durable { journal: self, ticket }
    }

    /// The last durable ticket.
    #[must_use]
    pub(crate) fn durable_now(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Drops every durability waiter's wait (the AOF was turned off): they are told "durable".
    pub(crate) fn release_waiters(&self) {
        let mut st = self.lock();
        st.durable = st.next_ticket - 1;
        self.durable.store(st.durable, Ordering::Release);
        for (_, w) in st.waiters.drain(..) {
            w.wake();
        }
    }

    /// For the writer: waits up to `timeout` for something to write, then takes it; `spare`
    /// (empty, its capacity kept) becomes the stream's buffer, so appending never reallocates
    /// once both buffers have grown.
    pub(crate) fn take(&self, timeout: Duration, spare: Vec<u8>) -> Taken {
        let mut st = self.lock();
        if st.out.is_empty() && st.markers.is_empty() {
            st.writer_idle = true;
            st = self.wake_writer.wait_timeout(st, timeout).unwrap_or_else(|e| e.into_inner()).0;
            st.writer_idle = false;
        }
        let frontier = st.frontier();
        Taken {
            bytes: std::mem::replace(&mut st.out, spare),
            markers: std::mem::take(&mut st.markers),
            frontier,
        }
    }

    /// For the writer: everything up to `frontier` is durable; wakes who waited for it.
    pub(crate) fn made_durable(&self, frontier: u64) {
        let mut st = self.lock();
        st.durable = st.durable.max(frontier);
        let durable = st.durable;
        self.durable.store(durable, Ordering::Release);
        st.waiters.retain(|(t, w)| {
            if *t <= durable {
                w.wake_by_ref();
                false
            } else {
                true
            }
        });
    }

    /// Bytes in the stream not yet taken by the writer (INFO's `aof_buffer_length`).
    #[must_use]
    pub(crate) fn buffered(&self) -> usize {
        self.lock().out.len()
    }
}

impl State {
    /// Hands what the stream gained to the replication buffer; without the AOF, `out` only
    /// passes the bytes on.
    fn feed(&mut self) {
        if self.fresh.is_empty() {
            return;
        }
        if let Some(backlog) = self.backlog.as_mut().filter(|_| !self.proxy) {
            backlog.append(&self.fresh);
        }
        if self.aof {
            self.out.extend_from_slice(&self.fresh);
        }
        self.fresh.clear();
    }

    /// The last ticket up to which every group is in the stream.
    fn frontier(&self) -> u64 {
        self.held.first().map_or(self.next_ticket - 1, |t| t - 1)
    }

    /// Transaction `tx` enters `lane` (once): at once if nothing is ahead, else behind.
    fn enter(&mut self, lane: usize, tx: TxKey) {
        let block = self.blocks.entry(tx).or_default();
        if block.lanes.contains(&lane) {
            return;
        }
        block.lanes.push(lane);
        let l = &mut self.lanes[lane];
        if l.blocked_by.is_none() && l.queue.is_empty() {
            l.blocked_by = Some(tx);
        } else {
            l.queue.push_back(Queued::Enter(tx));
            block.waiting += 1;
        }
    }

    /// Writes every block that is sealed and at the head of all its lanes, starting with `tx`,
    /// and lets its lanes move on.
    fn release(&mut self, tx: TxKey) {
        let mut ready = vec![tx];
        while let Some(t) = ready.pop() {
            let done = self.blocks.get(&t).is_some_and(|b| b.sealed && b.waiting == 0);
            if !done {
                continue;
            }
            let Some(mut block) = self.blocks.remove(&t) else { continue };
            block.groups.sort_by_key(|g| g.ticket);
            let total: usize = block.groups.iter().map(|g| g.commands.len()).sum();
            let mut markers = block.markers.into_iter().peekable();
            if total > 1 {
                // SELECT goes before MULTI, as Redis sends it.
                if let Some((db, _)) = block.groups.iter().flat_map(|g| g.commands.iter()).next() {
                    self.select(db);
                }
                self.emit_one(NO_DB, b"*1\r\n$5\r\nMULTI\r\n");
            }
            for g in &block.groups {
                while let Some((_, m)) = markers.next_if(|(mt, _)| *mt < g.ticket) {
                    self.mark(m);
                }
                for (db, bytes) in g.commands.iter() {
                    self.emit_one(db, bytes);
                }
                self.held.remove(&g.ticket);
            }
            if total > 1 {
                self.emit_one(NO_DB, b"*1\r\n$4\r\nEXEC\r\n");
            }
            for (_, m) in markers {
                self.mark(m);
            }
            for lane in block.lanes {
                if self.lanes[lane].blocked_by == Some(t) {
                    self.lanes[lane].blocked_by = None;
                }
                self.drain(lane, &mut ready);
            }
        }
    }

    /// Moves `lane`'s queue along while nothing blocks it; a transaction reaching the head
    /// blocks it again (and may become ready: pushed to `ready`).
    fn drain(&mut self, lane: usize, ready: &mut Vec<TxKey>) {
        loop {
            let blocked = self.lanes[lane].blocked_by;
            let Some(front) = self.lanes[lane].queue.front() else { return };
            match (front, blocked) {
                (Queued::Group(_), None) => {
                    if let Some(Queued::Group(g)) = self.lanes[lane].queue.pop_front() {
                        self.emit_commands(&g.commands, g.wrap_from);
                        self.held.remove(&g.ticket);
                    }
                }
                (Queued::Enter(t), None) => {
                    let t = *t;
                    self.lanes[lane].queue.pop_front();
                    self.lanes[lane].blocked_by = Some(t);
                    if let Some(b) = self.blocks.get_mut(&t) {
                        b.waiting -= 1;
                        if b.sealed && b.waiting == 0 {
                            ready.push(t);
                        }
                    }
                }
                (Queued::Part(t, _), Some(b)) if *t == b => {
                    if let Some(Queued::Part(t, g)) = self.lanes[lane].queue.pop_front() {
                        self.blocks.entry(t).or_default().groups.push(g);
                    }
                }
                _ => return,
            }
        }
    }

    fn emit_commands(&mut self, commands: &Commands, wrap_from: Option<usize>) {
        for (i, (db, bytes)) in commands.iter().enumerate() {
            if wrap_from == Some(i) {
                // SELECT goes before MULTI, as Redis sends it.
                self.select(db);
                self.emit_one(NO_DB, b"*1\r\n$5\r\nMULTI\r\n");
            }
            self.emit_one(db, bytes);
        }
        if wrap_from.is_some() {
            self.emit_one(NO_DB, b"*1\r\n$4\r\nEXEC\r\n");
        }
    }

    fn select(&mut self, db: u32) {
        if db != NO_DB && self.selected != Some(db) {
            let mut n_text = itoa::Buffer::new();
            let n = n_text.format(db);
            command(&mut self.fresh, &[b"SELECT", n.as_bytes()]);
            self.selected = Some(db);
        }
    }

    fn emit_one(&mut self, db: u32, bytes: &[u8]) {
        self.select(db);
        self.fresh.extend_from_slice(bytes);
    }

    fn mark(&mut self, marker: Marker) {
        match marker {
            Marker::Rotate { .. } => {
                let at = if self.aof { self.out.len() + self.fresh.len() } else { self.out.len() };
                self.markers.push((at, marker));
            }
            Marker::Sync { id } => {
                self.feed();
                let at = self.backlog.as_ref().map_or(0, Backlog::offset);
                self.sync_points.push((id, at));
                // The stream from here on is the replica's: hold it before it can be trimmed.
                if let Some(b) = self.backlog.as_mut() {
                    b.hold(sync_holder(id), at + 1);
                }
                for w in self.repl_waiters.drain(..) {
                    w.wake();
                }
            }
        }
        // A new file (or a replica fresh from its snapshot) has no database selected.
        self.selected = None;
    }
}

/// One core's connections waiting for their writes to be durable (`appendfsync always`):
/// whichever connection waits first starts the core's *leader*, a task that runs after every
/// connection ready in this turn of the executor has run its commands, then waits on the
/// journal for all of them (one wake of the writer, one write and fsync, one wake of this core
/// per round) and wakes each connection whose writes are durable.
#[derive(Default)]
pub(crate) struct GroupCommit {
    waiting: RefCell<Vec<(u64, Waker)>>,
    leading: Cell<bool>,
}

impl GroupCommit {
    /// Waits until every group up to `ticket` is durable.
    pub(crate) async fn wait(self: &Rc<Self>, journal: &Arc<Journal>, ticket: u64) {
        if journal.durable_now() >= ticket {
            return;
        }
        if !self.leading.replace(true) {
            let (me, journal) = (self.clone(), journal.clone());
            glommio::spawn_local(async move { me.lead(&journal).await }).detach();
        }
        LocalWait { commits: self, journal, ticket }.await;
    }

    async fn lead(&self, journal: &Journal) {
        // Behind every task ready now: the connections read in this turn log their writes first.
        glommio::executor().yield_now().await;
        loop {
            let target = self.waiting.borrow().iter().map(|(t, _)| *t).max();
            let Some(target) = target else { break };
            journal.durable(target).await;
            let durable = journal.durable_now();
            self.waiting.borrow_mut().retain(|(t, w)| {
                if *t <= durable {
                    w.wake_by_ref();
                    false
                } else {
                    true
                }
            });
        }
        self.leading.set(false);
    }
}

/// A connection's wait in its core's [`GroupCommit`].
struct LocalWait<'a> {
    commits: &'a GroupCommit,
    journal: &'a Journal,
    ticket: u64,
}

impl Future for LocalWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.journal.durable_now() >= self.ticket {
            return Poll::Ready(());
        }
        let mut waiting = self.commits.waiting.borrow_mut();
        match waiting.iter_mut().find(|(_, w)| w.will_wake(cx.waker())) {
            Some(entry) => entry.0 = self.ticket,
            None => waiting.push((self.ticket, cx.waker().clone())),
        }
        Poll::Pending
    }
}

/// Waits until a ticket is durable (see [`Journal::durable`]).
pub(crate) struct Durable<'a> {
    journal: &'a Journal,
    ticket: u64,
}

impl Future for Durable<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.journal.lock();
        if st.durable >= self.ticket {
            return Poll::Ready(());
        }
        st.waiters.push((self.ticket, cx.waker().clone()));
        if st.writer_idle {
            st.writer_idle = false;
            self.journal.wake_writer.notify_one();
        }
        Poll::Pending
    }
}

/// The backlog holder that keeps full sync `id`'s stream until its replica's link takes it
/// over (link holders are client ids, which stay far below).
#[must_use]
pub(crate) fn sync_holder(id: u64) -> u64 {
    u64::MAX - id
}

/// Waits until `check` finds what it waits for in the journal's state (re-checked whenever the
/// stream moves on): the futures of [`Journal::repl_ready`], [`Journal::in_stream`] and
/// [`Journal::sync_point`].
pub(crate) struct StreamWait<'a, F> {
    journal: &'a Journal,
    check: F,
}

impl<T, F: FnMut(&mut State) -> Option<T> + Unpin> Future for StreamWait<'_, F> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let journal = self.journal;
        let mut st = journal.lock();
        if let Some(found) = (self.check)(&mut st) {
            return Poll::Ready(found);
        }
        if !st.repl_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.repl_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effects(cmds: &[&[&[u8]]]) -> Effects {
        let mut e = Effects { on: true, ..Effects::default() };
        for c in cmds {
            e.push(Some(0), c);
        }
        e
    }

    fn aof_journal(lanes: usize) -> Journal {
        let j = Journal::new(lanes);
        j.set_aof(true, false);
        j
    }

    fn text(j: &Journal) -> String {
        let taken = j.take(Duration::ZERO, Vec::new());
        String::from_utf8(taken.bytes)
            .unwrap()
            .split("\r\n")
            .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn commands_outside_transactions_go_straight_to_the_stream() {
        let j = aof_journal(2);
        j.publish(0, None, &mut effects(&[&[b"SET", b"a", b"1"]]));
        j.publish(1, None, &mut effects(&[&[b"SET", b"b", b"2"]]));
        assert_eq!(text(&j), "SELECT 0 SET a 1 SET b 2");
    }

    #[test]
    fn a_lane_waits_behind_an_unsealed_transaction_and_blocks_come_whole() {
        let j = aof_journal(2);
        // Transaction 7 writes on both shards; shard 1 then runs a later write of its own.
        j.publish(0, Some(7), &mut effects(&[&[b"SET", b"a", b"1"]]));
        j.publish(1, Some(7), &mut effects(&[&[b"SET", b"b", b"1"]]));
        j.publish(1, None, &mut effects(&[&[b"SET", b"b", b"2"]]));
        j.publish(0, None, &mut effects(&[&[b"SET", b"a", b"2"]]));
        let before = j.last_ticket();
        assert_eq!(text(&j), "", "nothing passes the unsealed transaction");
        assert!(j.lock().frontier() < before);
        j.seal(7);
        // Then each lane in turn.
        assert_eq!(text(&j), "SELECT 0 MULTI SET a 1 SET b 1 EXEC SET a 2 SET b 2");
        assert_eq!(j.lock().frontier(), before);
    }

    #[test]
    fn a_transaction_queued_behind_another_waits_for_it_even_when_sealed_first() {
        let j = aof_journal(2);
        j.publish(0, Some(1), &mut effects(&[&[b"SET", b"a", b"1"]]));
        // Transaction 2 takes shard 0 after 1 released it, and shard 1.
        j.publish(0, Some(2), &mut effects(&[&[b"SET", b"a", b"2"]]));
        j.publish(1, Some(2), &mut effects(&[&[b"SET", b"b", b"2"]]));
        j.seal(2);
        assert_eq!(text(&j), "");
        j.seal(1);
        assert_eq!(text(&j), "SELECT 0 SET a 1 MULTI SET a 2 SET b 2 EXEC");
    }

    #[test]
    fn a_coordinator_command_orders_after_what_its_lanes_held() {
        let j = aof_journal(2);
        j.publish(0, Some(1), &mut effects(&[&[b"SET", b"a", b"1"]]));
        j.publish(0, None, &mut effects(&[&[b"SET", b"x", b"1"]]));
        // FLUSHALL holds both lanes; it must come after SET x.
        j.log_tx(2, &[0, 1], None, &[b"FLUSHALL"]);
        j.seal(2);
        assert_eq!(text(&j), "");
        j.seal(1);
        assert_eq!(text(&j), "SELECT 0 SET a 1 SET x 1 FLUSHALL");
    }

    #[test]
    fn a_unit_is_wrapped_and_selects_come_before_multi() {
        let j = aof_journal(1);
        let mut e = Effects { on: true, ..Effects::default() };
        e.push(Some(3), &[&b"SET"[..], b"z", b"0"]);
        e.begin_unit();
        e.push(Some(3), &[&b"SET"[..], b"a", b"1"]);
        e.push(Some(3), &[&b"SET"[..], b"b", b"1"]);
        e.end_unit();
        j.publish(0, None, &mut e);
        assert_eq!(text(&j), "SELECT 3 SET z 0 MULTI SET a 1 SET b 1 EXEC");
    }

    #[test]
    fn replicas_get_the_aofs_bytes_and_a_sync_point_at_its_cut() {
        let j = aof_journal(2);
        j.publish(0, None, &mut effects(&[&[b"SET", b"a", b"1"]]));
        assert!(j.start_replication(1 << 20, 500));
        assert!(!j.start_replication(1 << 20, 0));
        // A cut: transaction 7 holds both lanes and marks the stream.
        j.mark_tx(7, &[0, 1], Marker::Sync { id: 3 });
        j.seal(7);
        let at = futures::executor::block_on(j.sync_point(3));
        assert_eq!(at, 500);
        j.publish(1, None, &mut effects(&[&[b"SET", b"b", b"2"]]));
        j.feed_now(&[b"PING"]);
        let aof = text(&j);
        assert_eq!(aof, "SELECT 0 SET a 1 SELECT 0 SET b 2");
        let mut repl = Vec::new();
        j.with_backlog(|b| b.read(sync_holder(3), 1 << 20, &mut repl)).flatten();
        assert_eq!(
            String::from_utf8(repl).unwrap(),
            "*2\r\n$6\r\nSELECT\r\n$1\r\n0\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$1\r\n2\r\n*1\r\n$4\r\nPING\r\n"
        );
        assert_eq!(j.with_backlog(|b| b.offset()), Some(500 + 23 + 27 + 14));
    }

    #[test]
    fn without_the_aof_the_stream_only_feeds_the_replicas() {
        let j = Journal::new(1);
        j.start_replication(1 << 20, 0);
        j.publish(0, None, &mut effects(&[&[b"SET", b"a", b"1"]]));
        assert_eq!(j.buffered(), 0);
        assert_eq!(j.with_backlog(|b| b.offset()), Some(23 + 27));
    }

    #[test]
    fn a_write_held_behind_a_transaction_is_in_the_stream_once_the_block_is() {
        use futures::FutureExt;
        let j = aof_journal(2);
        j.mark_tx(9, &[0, 1], Marker::Rotate { id: 1 });
        j.publish(0, None, &mut effects(&[&[b"SET", b"a", b"1"]]));
        let ticket = j.last_ticket();
        assert!(j.in_stream(ticket).now_or_never().is_none(), "held behind transaction 9");
        j.seal(9);
        assert!(j.in_stream(ticket).now_or_never().is_some());
    }
}
