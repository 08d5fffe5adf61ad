//! A shard: the part of the keyspace one core owns (its databases), and, above storage, who
//! watches and who waits on its keys. It runs commands one at a time, to completion, and serves
//! blocked clients after each command, or after each atomic unit (a transaction holding its
//! gate, a whole EXEC).
//!
//! Only the owning core touches a shard; other cores reach it through the router's hops.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::global::Global;
use crate::engine::journal::{Effects, TxKey};
use crate::engine::notify::{Class, Notice, Notices};
use crate::engine::persist::LoadItem;
use crate::engine::slot::{ShardId, Slot, SLOTS};
use crate::engine::spec::Prefetch;
use crate::engine::stats::{Started, Stats};
use crate::engine::tracking::{Invalidation, Reader, Table, TableStats, Track};
use crate::engine::waiters::{Report, Waiter, Waiters};
use crate::engine::watch::{WatchFlag, Watches};
use crate::facade::Reply;
use crate::storage::db::{Budget, Db, DbStats, Entry, MemberRef, SnapshotChunk};
use crate::storage::rdb;
use crate::storage::rng::Rng;
use crate::storage::{clock, evict};

/// What a command executed on a shard sees: its database, the time, and limits.
pub(crate) struct Ctx<'a> {
    /// The client's selected database on this shard.
    pub(crate) db: &'a mut Db,
    /// Unix time in milliseconds, read once per command.
    pub(crate) now: u64,
    /// `proto-max-bulk-len`: the largest string a command may build.
    pub(crate) max_bulk: u64,
    /// The shard's random generator (sampling commands, RANDOMKEY).
    pub(crate) rng: &'a mut Rng,
    /// The shard's other databases, before and after the selected one (COPY ... DB).
    others: (&'a mut [Db], &'a mut [Db]),
    /// What the command logs for the journal (see [`Ctx::log`]).
    effects: &'a mut Effects,
    /// What it reports for keyspace notifications (see [`Ctx::notify`]).
    notices: &'a mut Notices,
    /// The request comes from a client the server obeys ([`ShardCmd::obey`]).
    pub(crate) obey: bool,
}

impl<'a> Ctx<'a> {
    /// Splits `dbs` around database `index` into a context.
    pub(crate) fn new(
        dbs: &'a mut [Db],
        index: usize,
        now: u64,
        max_bulk: u64,
        rng: &'a mut Rng,
        effects: &'a mut Effects,
        notices: &'a mut Notices,
    ) -> Ctx<'a> {
        let (before, rest) = dbs.split_at_mut(index);
        let (db, after) = rest.split_first_mut().expect("database index checked by SELECT");
        Ctx { db, now, max_bulk, rng, others: (before, after), effects, notices, obey: false }
    }

    /// Reports `event` (Redis's name for it: `set`, `lpush`, `del`, ...) of `class` on `key` of
    /// the selected database, for keyspace notifications: Redis's `notifyKeyspaceEvent`, called
    /// where Redis calls it. Nothing is sent unless the class is on.
    #[inline]
    pub(crate) fn notify(&mut self, class: Class, event: &'static str, key: &[u8]) {
        let db = self.index();
        self.notify_in(db, class, event, key);
    }

    /// Whether notices of `class` are sent: a body asks before work done only to report (is
    /// the key gone now?).
    #[inline]
    #[must_use]
    pub(crate) fn notifying(&self, class: Class) -> bool {
        self.notices.wants(class)
    }

    /// As [`Ctx::notify`], for a key of database `db` (COPY ... DB, MOVE).
    pub(crate) fn notify_in(&mut self, db: usize, class: Class, event: &'static str, key: &[u8]) {
        if !self.notices.wants(class) {
            return;
        }
        // What the databases reported themselves so far (a key that expired on lookup, one
        // just created) comes first, as in Redis.
        let index = self.index();
        self.notices.collect(self.others.0, 0);
        self.notices.collect(std::slice::from_mut(self.db), index);
        self.notices.collect(self.others.1, index + 1);
        self.notices.push(db, class, event, key);
    }

    /// Whether an absolute expiry `at` (Unix ms) has already come: the key is then deleted
    /// rather than stored. Never while the AOF is replayed (Redis's `checkAlreadyExpired`).
    #[must_use]
    pub(crate) fn already_expired(&self, at: i64) -> bool {
        at <= self.now as i64 && !self.db.expiry_paused()
    }

    /// Whether the journal records effects: a body that logs its own (see [`Ctx::log`]) need
    /// not build them otherwise.
    #[must_use]
    pub(crate) fn journaling(&self) -> bool {
        self.effects.on()
    }

    /// Logs `args`, run in the selected database, as the effect of what the body did, in place
    /// of the request (`SET k v PXAT ms` for `SET k v EX s`, `LPOP k` for a served `BLPOP`).
    /// Keys found expired so far are logged first, as they were removed first.
    pub(crate) fn log(&mut self, args: &[&[u8]]) {
        if !self.effects.on() {
            return;
        }
        let index = self.index();
        log_expired(self.others.0, 0, self.effects);
        log_expired(std::slice::from_mut(self.db), index, self.effects);
        log_expired(self.others.1, index + 1, self.effects);
        self.effects.push_explicit(Some(index), args);
    }

    /// The command changed nothing worth logging, though it may have touched a key: nothing
    /// is logged as it came (EXPIRE whose condition failed: its relative time must not replay).
    pub(crate) fn log_nothing(&mut self) {
        self.effects.suppress();
    }

    /// How many databases the shard has.
    #[must_use]
    pub(crate) fn databases(&self) -> usize {
        self.others.0.len() + 1 + self.others.1.len()
    }

    /// The selected database's index.
    #[must_use]
    pub(crate) fn index(&self) -> usize {
        self.others.0.len()
    }

    /// Database `i` of the shard, which may be the selected one.
    pub(crate) fn db_at(&mut self, i: usize) -> Option<&mut Db> {
        let selected = self.index();
        match i.cmp(&selected) {
            std::cmp::Ordering::Less => self.others.0.get_mut(i),
            std::cmp::Ordering::Equal => Some(&mut *self.db),
            std::cmp::Ordering::Greater => self.others.1.get_mut(i - selected - 1),
        }
    }
}

/// Logs a `DEL` for each key of `dbs` (numbered from `first`) that expired since last asked.
fn log_expired(dbs: &mut [Db], first: usize, effects: &mut Effects) {
    for (i, db) in dbs.iter_mut().enumerate() {
        if let Some(keys) = db.take_expired() {
            for key in keys {
                effects.push(Some(first + i), &[&b"DEL"[..], &key]);
            }
        }
    }
}

/// An atomic unit begun by [`Shard::enter_unit`]: whether it sits inside another.
#[must_use]
pub(crate) struct Unit {
    outer: bool,
}

/// A command body that runs on the shard owning its keys; `args[0]` is the command name.
pub(crate) type ShardFn = fn(&mut Ctx<'_>, &[Bytes]) -> CmdResult;

/// A command bound for a shard: its body, the database and the arguments, and what the shard
/// needs to know of the command (its id for statistics, its member for prefetching).
pub(crate) struct ShardCmd {
    /// The command's id in the registry, for its statistics; `None` for a part of a command
    /// split across shards, which the session records whole.
    pub(crate) id: Option<usize>,
    /// What a pipelined batch prefetches for it.
    pub(crate) prefetch: Prefetch,
    /// Its body (a split command's part).
    pub(crate) run: ShardFn,
    /// The database index.
    pub(crate) db: usize,
    /// The arguments, name first.
    pub(crate) args: Vec<Bytes>,
    /// A write command: logged as it came when it changed something and logged nothing itself.
    pub(crate) write: bool,
    /// It may grow memory (`denyoom`): refused with `-OOM` when nothing more can be evicted.
    pub(crate) denyoom: bool,
    /// From a client the server obeys rather than checks (the link to a primary, the AOF
    /// being replayed: Redis's `mustObeyClient`).
    pub(crate) obey: bool,
    /// Who sent it, for the slow log.
    pub(crate) origin: crate::engine::slowlog::Origin,
    /// What the slow log and the latency monitor need of its command.
    pub(crate) observed: crate::engine::spec::Observed,
    /// A read to remember for a tracking client (CLIENT TRACKING), with the read itself.
    pub(crate) track: Option<Track>,
}

/// Who watches and who waits on the keys of one database.
#[derive(Default)]
struct Observers {
    watches: Watches,
    waiters: Waiters,
}

/// The state one core owns.
pub(crate) struct Shard {
    dbs: Vec<Db>,
    /// By database, parallel to `dbs`.
    observers: Vec<Observers>,
    /// Some database has observed keys (a cheap test after every command).
    observing: bool,
    global: Arc<Global>,
    /// The time (Unix ms) the commands of the current hop or batch see; see [`Shard::tick`].
    clock: u64,
    /// An atomic unit is running here (a transaction holds the gate, or one hop runs a whole
    /// EXEC): blocked clients are served when it ends, against the state it leaves.
    atomic: bool,
    /// Draws for random sampling.
    rng: Rng,
    /// The commands this shard executed (see [`crate::engine::stats`]).
    stats: Stats,
    /// The snapshot running here, by id (see [`Shard::begin_snapshot`]).
    snapshot: Option<u64>,
    /// This shard's lane in the journal.
    lane: usize,
    /// What commands logged since the last [`Shard::publish`].
    effects: Effects,
    /// The multi-shard transaction holding the gate, if one does.
    in_tx: Option<TxKey>,
    /// Expiry is frozen in every database (clients are paused).
    expiry_frozen: bool,
    /// What eviction follows, as of the configuration version it was read at.
    eviction: Eviction,
    /// The best candidates for eviction seen so far.
    pool: evict::Pool,
    /// What active expiry and eviction measured, for INFO.
    upkeep: Upkeep,
    /// Sends another shard a hop that makes it evict its share (installed by the runtime once
    /// the router exists; see [`Shard::make_room`]).
    ask_peer: Option<AskPeer>,
    /// Keyspace notifications reported and not yet delivered.
    notices: Notices,
    /// Delivers notices to every core's subscribers (installed by the runtime once the router
    /// exists; see [`Shard::publish`]).
    deliver: Option<Deliver>,
    /// CLIENT TRACKING's table of this shard's keys.
    tracking: Table,
    /// The databases record their modified keys (the table is active).
    recording: bool,
    /// This shard's share of `tracking-table-max-keys` (0: no limit).
    tracking_max: usize,
    /// Delivers invalidations to the tracking clients' cores (installed by the runtime).
    invalidate: Option<Invalidate>,
}

/// What a shard's active expiry and eviction measured, for INFO (Redis's `expired_stale_perc`,
/// `expired_time_cap_reached_count`, `expire_cycle_cpu_milliseconds` and the eviction
/// exceeded times).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Upkeep {
    /// Running average of the share of keys with a TTL that active expiry found expired (0..1;
    /// each cycle weighs 5 %, as Redis's).
    pub(crate) stale: f64,
    /// Cycles that ran out of time.
    pub(crate) time_cap_reached: u64,
    /// Time spent in active expiry, µs.
    pub(crate) expire_us: u64,
    /// Time memory stayed over `maxmemory` with eviction unfinished, µs (past spells).
    pub(crate) over_us: u64,
    /// Since when it is now, if it is.
    pub(crate) over_since: Option<std::time::Instant>,
}

impl Upkeep {
    /// Eviction ended over the limit (still at it, or with nothing left): the spell starts.
    fn over(&mut self) {
        self.over_since.get_or_insert_with(std::time::Instant::now);
    }

    /// Memory is under the limit: the spell, if any, ends.
    fn under(&mut self) {
        if let Some(since) = self.over_since.take() {
            self.over_us += since.elapsed().as_micros() as u64;
        }
    }

    /// The time over the limit, µs: in total, and in the current spell.
    #[must_use]
    pub(crate) fn exceeded_us(&self) -> (u64, u64) {
        let current = self.over_since.map_or(0, |t| t.elapsed().as_micros() as u64);
        (self.over_us + current, current)
    }
}

/// Asks shard `ShardId` to evict its share of the excess now, by a hop from this core.
pub(crate) type AskPeer = Box<dyn Fn(ShardId)>;

/// How a shard hands its keyspace notifications on: the notices, and the classes on (which
/// channels they go to).
pub(crate) type Deliver = Box<dyn Fn(Vec<Notice>, Class)>;

/// How a shard hands its CLIENT TRACKING invalidations on.
pub(crate) type Invalidate = Box<dyn Fn(Vec<Invalidation>)>;

/// The `maxmemory` settings a shard follows (read again when the configuration changes).
#[derive(Debug, Clone, Copy, Default)]
struct Eviction {
    version: Option<u64>,
    /// 0: no limit.
    maxmemory: u64,
    /// `None`: noeviction.
    policy: Option<evict::Policy>,
    samples: usize,
    /// A replica leaves eviction to its primary (`replica-ignore-maxmemory`).
    replica_ignores: bool,
    /// How long one call may evict (`maxmemory-eviction-tenacity`); `None`: until done.
    time_limit: Option<std::time::Duration>,
    mode: clock::Mode,
}

impl Eviction {
    fn of(c: &crate::config::Config, version: u64) -> Eviction {
        use crate::config::MaxmemoryPolicy as P;
        let policy = c.maxmemory_policy;
        let rank = match policy {
            P::VolatileLru | P::AllkeysLru => Some(evict::Rank::Lru),
            P::VolatileLfu | P::AllkeysLfu => Some(evict::Rank::Lfu),
            P::VolatileRandom | P::AllkeysRandom => Some(evict::Rank::Random),
            P::VolatileTtl => Some(evict::Rank::Ttl),
            P::Noeviction => None,
        };
        // Redis's evictionTimeLimitUs: 50 µs per step up to 10, then 15 % more per step.
        let tenacity = c.maxmemory_eviction_tenacity.min(100);
        let time_limit = match tenacity {
            100 => None,
            t if t <= 10 => Some(50.0 * t as f64),
            t => Some(500.0 * 1.15f64.powi(t as i32 - 10)),
        }
        .map(|us| std::time::Duration::from_micros(us as u64));
        let mode = if policy.lfu() {
            clock::Mode::Lfu {
                log_factor: u32::try_from(c.lfu_log_factor).unwrap_or(u32::MAX),
                decay_time: u32::try_from(c.lfu_decay_time).unwrap_or(u32::MAX),
            }
        } else {
            clock::Mode::Lru
        };
        Eviction {
            version: Some(version),
            maxmemory: c.maxmemory.0,
            policy: rank.map(|rank| evict::Policy { rank, volatile: policy.volatile() }),
            samples: usize::try_from(c.maxmemory_samples).unwrap_or(5).max(1),
            replica_ignores: c.replica_ignore_maxmemory,
            time_limit,
            mode,
        }
    }
}

/// How much a call to [`Shard::make_room`] frees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Room {
    /// Before a write: its share of the excess; and when nothing at all may go, the server is
    /// out of memory (`-OOM` for what would grow it).
    Whole,
    /// The cron's: its share of the excess (a shard that takes no writes still gives up its
    /// part).
    Share,
}

/// What eviction achieved (Redis's `EVICT_OK`, `EVICT_RUNNING`, `EVICT_FAIL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Evicted {
    /// Under the limit (or nothing to do).
    Enough,
    /// Still over, out of time for now.
    Running,
    /// Still over, and nothing more may be evicted.
    Nothing,
}

impl Shard {
    /// An empty shard with `databases` databases.
    #[must_use]
    pub(crate) fn new(id: ShardId, global: Arc<Global>) -> Shard {
        let notices = Notices::new(global.subscribers());
        let databases = global.config().databases;
        // While the AOF is replayed nothing expires (see `Db::pause_expiry`).
        let replaying = global.load_progress.aof_pending.load(std::sync::atomic::Ordering::Acquire);
        let db = || {
            let mut db = Db::default();
            db.pause_expiry(replaying);
            db
        };
        let mut dbs: Vec<Db> = (0..databases).map(|_| db()).collect();
        if global.config().cluster_enabled {
            // A cluster node serves database 0 only, and keeps its keys by slot.
            dbs[0].index_slots(|key| Slot::of(key).0, usize::from(SLOTS));
        }
        Shard {
            dbs,
            observers: (0..databases).map(|_| Observers::default()).collect(),
            observing: false,
            global,
            clock: now_ms(),
            atomic: false,
            rng: Rng::seeded(id.0 as u64),
            stats: Stats::default(),
            snapshot: None,
            lane: id.0,
            effects: Effects::default(),
            in_tx: None,
            expiry_frozen: false,
            eviction: Eviction::default(),
            pool: evict::Pool::default(),
            ask_peer: None,
            notices,
            deliver: None,
            upkeep: Upkeep::default(),
            tracking: Table::default(),
            recording: false,
            tracking_max: 0,
            invalidate: None,
        }
    }

    /// Installs how this shard delivers CLIENT TRACKING invalidations (see [`Shard::publish`]).
    pub(crate) fn set_invalidate(&mut self, invalidate: Invalidate) {
        self.invalidate = Some(invalidate);
    }

    /// Installs how this shard delivers keyspace notifications (see [`Shard::publish`]).
    pub(crate) fn set_deliver(&mut self, deliver: Deliver) {
        self.deliver = Some(deliver);
    }

    /// Installs how this shard asks its peers to evict (see [`Shard::make_room`]).
    pub(crate) fn set_ask_peer(&mut self, ask: AskPeer) {
        self.ask_peer = Some(ask);
    }

    /// Evicts this shard's share of the excess, as another shard asked.
    pub(crate) fn evict_as_asked(&mut self) -> Evicted {
        self.global.asked_to_evict(self.lane);
        self.make_room(Room::Share)
    }

    /// Reads the clock for the commands that follow. Called once per hop and once per batch of
    /// inline commands rather than per command: like Redis's cached `mstime`, the commands of one
    /// batch see the same millisecond.
    pub(crate) fn tick(&mut self) {
        self.clock = now_ms();
        let version = self.global.config_version();
        if self.eviction.version != Some(version) {
            let config = self.global.config();
            crate::storage::encoding::set(crate::storage::encoding::Thresholds::of(&config));
            let next = Eviction::of(&config, version);
            if next.policy != self.eviction.policy {
                self.pool.clear();
            }
            self.eviction = next;
            self.notices.set(config.notify_keyspace_events);
            let shards = self.global.cores.len().max(1);
            self.tracking_max =
                usize::try_from(config.tracking_table_max_keys.div_ceil(shards as u64)).unwrap_or(usize::MAX);
            let (events, listeners) = (self.notices.key_events(), self.notices.listeners());
            self.dbs.iter_mut().for_each(|d| d.report_events(events, listeners.clone()));
        }
        clock::set_core_clock(self.clock, self.eviction.mode);
        // While clients are paused, expired keys read as missing but stay (engine::pause).
        let frozen = self.global.pauses.active();
        if frozen != self.expiry_frozen {
            self.expiry_frozen = frozen;
            self.dbs.iter_mut().for_each(|d| d.freeze_expiry(frozen));
        }
    }

    /// Evicts keys of this shard by the policy until it has paid what it is charged with of
    /// the excess over `maxmemory`, within the tenacity's time. Not on a replica
    /// (`replica-ignore-maxmemory`, Redis's default), while loading or while clients are
    /// paused, nor inside an atomic unit (Redis evicts between commands). Records the outcome
    /// for the `-OOM` check.
    ///
    /// Every shard sees the same total (each core's published counter; see
    /// [`Global::used_now`]). The part of the excess no shard has been charged with yet is
    /// split among all of them in proportion to the keys each may evict, so shards shrink alike
    /// and the data is evicted where it is; each shard then frees what it is charged with. (A
    /// core's own memory counter is no measure of its shard's data: a value is allocated where
    /// its request was read and freed where its key lives.) Charging only the unclaimed part
    /// keeps one excess from being charged twice when a shard runs again before the others
    /// paid; a shard that frees more than its charge (a key is bigger than a small charge)
    /// keeps the difference as credit. A shard charged with a part worth a hop (1/64 of
    /// `maxmemory`) is asked to pay by one (`ask_peer`; one on its way at a time) rather than at
    /// its next write or cron cycle: otherwise the shard taking the writes would pay for all,
    /// losing its recent keys while the other kept old ones.
    pub(crate) fn make_room(&mut self, room: Room) -> Evicted {
        let e = self.eviction;
        let global = self.global.clone();
        if e.maxmemory == 0
            || self.atomic
            || global.loading()
            || global.pauses.active()
            || (e.replica_ignores && global.following.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Evicted::Enough;
        }
        let start = crate::memory::here();
        let excess = global.used_now(self.lane, start).saturating_sub(e.maxmemory);
        if excess == 0 {
            self.upkeep.under();
            global.forgive(self.lane);
            global.set_oom(false);
            return Evicted::Enough;
        }
        let Some(policy) = e.policy else {
            self.upkeep.over();
            global.set_oom(true);
            return Evicted::Nothing;
        };
        let mine = self.evictable(policy.volatile);
        let keys = |c: usize, published: u64| if c == self.lane { mine } else { published };
        let all: u64 = global.evictable().enumerate().map(|(c, n)| keys(c, n)).sum();
        if all == 0 {
            // Nothing anywhere may go (no key at all, or none with a TTL under a volatile
            // policy): the server is out of memory.
            global.forgive(self.lane);
            self.upkeep.over();
            global.set_oom(true);
            return Evicted::Nothing;
        }
        let unclaimed = excess.saturating_sub(global.debts());
        if unclaimed > 0 {
            let worth = i64::try_from(e.maxmemory / 64).unwrap_or(i64::MAX).max(1);
            for (c, n) in global.evictable().enumerate() {
                let part = (u128::from(unclaimed) * u128::from(keys(c, n)) / u128::from(all)) as u64;
                if part == 0 {
                    continue;
                }
                let debt = global.charge(c, part);
                if c != self.lane && debt >= worth && global.ask_to_evict(c) {
                    if let Some(ask) = &self.ask_peer {
                        ask(ShardId(c));
                    }
                }
            }
        }
        let others = all - mine;
        let target = global.debt(self.lane).min(i64::try_from(excess).unwrap_or(i64::MAX));
        let began = std::time::Instant::now();
        let mut evicted = 0u32;
        let outcome = loop {
            let freed = start.saturating_sub(crate::memory::here()) as i64;
            if freed >= target {
                break Evicted::Enough;
            }
            let Some((db, key)) = self.pool.pick(&mut self.dbs, policy, e.samples, &mut self.rng, self.clock)
            else {
                // Nothing here may go: the others are charged instead. Before a write, the
                // server is out of memory unless they still hold what may go.
                global.forgive(self.lane);
                if room == Room::Whole && others == 0 {
                    global.set_oom(true);
                    break Evicted::Nothing;
                }
                break Evicted::Enough;
            };
            self.dbs[db].evict(&key);
            self.notices.push(db, Class::EVICTED, "evicted", &key);
            evicted += 1;
            if evicted % 16 == 0 && e.time_limit.is_some_and(|l| began.elapsed() >= l) {
                break Evicted::Running;
            }
        };
        let nanos = u64::try_from(began.elapsed().as_nanos()).unwrap_or(u64::MAX);
        global.latency.add_if_needed(self.lane, "eviction-cycle", nanos);
        global.paid(self.lane, start.saturating_sub(crate::memory::here()).max(0) as u64);
        if outcome == Evicted::Enough {
            global.set_oom(false);
        } else {
            self.upkeep.over();
        }
        outcome
    }

    /// Publishes how many keys the policy may evict here, for the other shards' split of the
    /// excess: after every piece of work while `maxmemory` is set, and every cron cycle (so that
    /// a limit just set finds the counts there).
    pub(crate) fn publish_evictable(&self) {
        let keys = self.evictable(self.eviction.policy.is_some_and(|p| p.volatile));
        self.global.publish_evictable(self.lane, keys);
    }

    /// How many keys the policy may evict here (all, or those with a TTL).
    fn evictable(&self, volatile: bool) -> u64 {
        self.dbs.iter().map(|d| if volatile { d.expires_len() } else { d.len() }).sum::<usize>() as u64
    }

    /// Runs one command. A bug that panics costs that command an error reply and a log line,
    /// not the shard (and with it every client of the server).
    pub(crate) fn exec(&mut self, cmd: &ShardCmd) -> Reply {
        if cmd.write
            && self.eviction.maxmemory > 0
            && self.make_room(Room::Whole) == Evicted::Nothing
            && cmd.denyoom
        {
            return Reply::from(CmdError::Oom);
        }
        if self.recording {
            // What eviction just removed was no change of this command's.
            self.collect_modified(None);
        }
        let started = Started::now();
        let max_bulk = self.global.max_bulk();
        let logging = self.effects.on().then(|| (self.dbs[cmd.db].stats.changes, self.effects.explicit()));
        let mut ctx = Ctx::new(
            &mut self.dbs,
            cmd.db,
            self.clock,
            max_bulk,
            &mut self.rng,
            &mut self.effects,
            &mut self.notices,
        );
        ctx.obey = cmd.obey;
        let run = std::panic::AssertUnwindSafe(|| (cmd.run)(&mut ctx, &cmd.args));
        let reply = match std::panic::catch_unwind(run) {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => Reply::from(e),
            Err(_) => {
                let name = String::from_utf8_lossy(&cmd.args[0]).to_lowercase();
                tracing::error!(command = %name, "command panicked: this is a bug; the client got an error");
                Reply::from(CmdError::Internal)
            }
        };
        // Serving the clients it unblocked is not the command's time, as in Redis.
        let nanos = started.elapsed_ns();
        if let Some((changes, explicit)) = logging {
            self.log_command(cmd, changes, explicit);
        }
        if self.recording {
            self.collect_modified(cmd.origin.client());
        }
        if let Some(track) = &cmd.track {
            // After its own changes, as Redis remembers a read after the command ran.
            track
                .keys
                .iter()
                .filter_map(|&p| cmd.args.get(p))
                .for_each(|k| self.tracking.remember(k, track.reader));
            self.sync_recording();
        }
        self.settle();
        if let Some(id) = cmd.id {
            self.stats.called(id, nanos, &reply, self.global.latency_tracking());
            self.observe(cmd, nanos);
        }
        reply
    }

    /// Hands a command that took `nanos` to the slow log and the latency monitor, when it was
    /// slow enough for them (two loads and compares otherwise).
    fn observe(&self, cmd: &ShardCmd, nanos: u64) {
        let global = &self.global;
        global.latency.command(self.lane, cmd.observed.fast, nanos);
        if global.slowlog.is_slow(nanos) {
            if let Some((peer, name)) = global.peers.of(cmd.origin) {
                global.slowlog.push(self.lane, cmd.observed, &cmd.args, nanos, peer, name);
            }
        }
    }

    /// Logs what `cmd` did: the keys it found expired, then its own effect: what its body
    /// logged, or else the request as it came if it is a write that changed something in its
    /// database. (A body that writes to another database logs itself, as COPY ... DB does; so
    /// do the expiries it met there, through [`Ctx::log`].)
    fn log_command(&mut self, cmd: &ShardCmd, changes_before: u64, explicit_before: usize) {
        log_expired(std::slice::from_mut(&mut self.dbs[cmd.db]), cmd.db, &mut self.effects);
        if cmd.write
            && self.effects.explicit() == explicit_before
            && self.dbs[cmd.db].stats.changes != changes_before
        {
            self.effects.push(Some(cmd.db), &cmd.args);
        }
    }

    /// Logs a `DEL` for every key that expired since last asked.
    fn log_expired(&mut self) {
        log_expired(&mut self.dbs, 0, &mut self.effects);
    }

    /// Hands what was logged since the last call to the journal, as part of the transaction
    /// holding the gate if one does. The router calls it at the end of every piece of work it
    /// runs here, before the reply leaves.
    pub(crate) fn publish(&mut self) {
        self.deliver_notices();
        self.deliver_invalidations();
        if self.eviction.maxmemory > 0 {
            self.global.publish_allocated(self.lane, crate::memory::here());
            self.publish_evictable();
        }
        // A unit still open (a busy script paused with its shard held) publishes whole, at
        // its end: the stream never carries half of it.
        if !self.effects.on() || self.effects.in_unit() {
            return;
        }
        self.log_expired();
        self.global.journal.publish(self.lane, self.in_tx, &mut self.effects);
    }

    /// Hands the keyspace notifications reported so far (the databases' own included) to every
    /// core's subscribers.
    fn deliver_notices(&mut self) {
        if self.notices.on() == Class::default() {
            return;
        }
        self.notices.collect(&mut self.dbs, 0);
        if !self.notices.is_empty() {
            let notices = self.notices.take();
            if let Some(deliver) = &self.deliver {
                deliver(notices, self.notices.on());
            }
        }
    }

    /// Hands the keys modified since last asked (by client `by`, if one did) to the tracking
    /// table.
    fn collect_modified(&mut self, by: Option<u64>) {
        for db in &mut self.dbs {
            if !db.has_modified() {
                continue;
            }
            let (keys, flushed) = db.take_modified();
            if flushed {
                self.tracking.flushed();
            }
            // A key that expired or was evicted during a command is no change of its client's
            // for BCAST's NOLOOP, while default mode skips the client running the command
            // either way (Redis compares with its `current_client`).
            keys.iter().for_each(|(k, by_cmd)| self.tracking.changed(k, by, by.filter(|_| *by_cmd)));
        }
        self.tracking.limit(self.tracking_max);
        self.sync_recording();
    }

    /// Has the databases record their modified keys exactly while the tracking table needs
    /// them.
    fn sync_recording(&mut self) {
        let on = self.tracking.active();
        if on != self.recording {
            self.recording = on;
            self.dbs.iter_mut().for_each(|d| d.record_modified(on));
        }
    }

    /// Hands the CLIENT TRACKING invalidations so far to the tracking clients' cores.
    fn deliver_invalidations(&mut self) {
        if self.recording {
            self.collect_modified(None);
        }
        if self.tracking.pending() {
            let batch = self.tracking.take();
            if let Some(invalidate) = &self.invalidate {
                invalidate(batch);
            }
        }
    }

    /// Remembers `keys` as read by `reader` (a read that spans shards, remembered before it
    /// runs; see [`crate::engine::caching`]).
    pub(crate) fn remember(&mut self, keys: &[Bytes], reader: Reader) {
        keys.iter().for_each(|k| self.tracking.remember(k, reader));
        self.tracking.limit(self.tracking_max);
        self.sync_recording();
    }

    /// `reader` follows `prefixes` in BCAST mode.
    pub(crate) fn follow(&mut self, prefixes: &[Bytes], reader: Reader) {
        self.tracking.follow(prefixes, reader);
        self.sync_recording();
    }

    /// Client `id` follows no prefix any more.
    pub(crate) fn unfollow(&mut self, id: u64) {
        self.tracking.unfollow(id);
        self.sync_recording();
    }

    /// What INFO shows of this shard's tracking table.
    #[must_use]
    pub(crate) fn tracking_stats(&self) -> TableStats {
        self.tracking.stats()
    }

    /// Starts or stops logging effects (the AOF turned on or off): called on every shard with
    /// every gate held.
    /// Turning it on also ends the pause of expiry the AOF's replay holds.
    pub(crate) fn set_journaling(&mut self, on: bool) {
        self.effects.set_on(on);
        self.dbs.iter_mut().for_each(|d| {
            d.report_expired(on);
            if on {
                d.pause_expiry(false);
            }
        });
    }

    /// Runs `f` as one atomic unit: clients blocked on keys it makes ready are served once it
    /// has finished, as Redis serves them after a whole command, EXEC or script. Units nest;
    /// the outermost one serves. What it logs is written as one `MULTI`/`EXEC`.
    pub(crate) fn atomically<R>(&mut self, f: impl FnOnce(&mut Shard) -> R) -> R {
        let unit = self.enter_unit();
        let r = f(self);
        self.leave_unit(unit);
        r
    }

    /// Begins an atomic unit (see [`Shard::atomically`]) for work that borrows the shard in
    /// pieces (a script's commands); end it with [`Shard::leave_unit`] and what this returns.
    pub(crate) fn enter_unit(&mut self) -> Unit {
        let outer = std::mem::replace(&mut self.atomic, true);
        if !outer {
            self.effects.begin_unit();
        }
        Unit { outer }
    }

    /// Ends the atomic unit `unit` began, dropping what it logged (a script cut off by
    /// SHUTDOWN NOSAVE: the stream never carries part of it).
    pub(crate) fn abandon_unit(&mut self, unit: Unit) {
        self.effects.drop_unit();
        self.leave_unit(unit);
    }

    /// Ends the atomic unit `unit` began.
    pub(crate) fn leave_unit(&mut self, unit: Unit) {
        if !unit.outer {
            self.log_expired();
            self.effects.end_unit();
            self.end_atomic();
        }
    }

    /// Runs `f` as one atomic unit of transaction `tx` (its last shard, whose one hop takes the
    /// gate, runs and releases it).
    pub(crate) fn atomically_in<R>(&mut self, tx: TxKey, f: impl FnOnce(&mut Shard) -> R) -> R {
        self.in_tx = Some(tx);
        let r = self.atomically(f);
        self.publish();
        self.in_tx = None;
        r
    }

    /// Transaction `tx` took the gate: an atomic unit begins that lasts until
    /// [`Shard::end_tx`].
    pub(crate) fn begin_tx(&mut self, tx: TxKey) {
        self.publish();
        self.in_tx = Some(tx);
        self.atomic = true;
    }

    /// The transaction released the gate (its hops published what they logged); the clients
    /// blocked on every key it made ready are served.
    pub(crate) fn end_tx(&mut self) {
        self.in_tx = None;
        self.end_atomic();
        self.publish();
    }

    /// The atomic unit ended: serves the clients blocked on every key it made ready.
    fn end_atomic(&mut self) {
        self.atomic = false;
        self.settle();
    }

    /// Applies what storage reported since the last command (watch flags, ready keys), then,
    /// outside an atomic unit, serves blocked clients until no key they wait on is ready. A
    /// BLMOVE served pushes onto its destination, which may ready another key: rounds repeat,
    /// so a chain of BLMOVEs is served to its end at once.
    fn settle(&mut self) {
        if !self.observing {
            return;
        }
        let mut outbox = Vec::new();
        for i in 0..self.dbs.len() {
            let mut kept = Vec::new();
            loop {
                let (db, obs) = (&mut self.dbs[i], &mut self.observers[i]);
                for (key, change) in db.take_changes() {
                    obs.watches.changed(db, &key, change);
                    obs.waiters.changed(&key);
                }
                if self.atomic || !obs.waiters.has_ready() {
                    break;
                }
                let effects = &mut self.effects;
                let mut log = |args: &[&[u8]]| {
                    if effects.on() {
                        effects.push_explicit(Some(i), args);
                    }
                };
                let notices = &mut self.notices;
                let mut notify =
                    |class: Class, event: &'static str, key: &[u8]| notices.push(i, class, event, key);
                let mut report = Report { log: &mut log, notify: &mut notify };
                obs.waiters.serve_round(db, self.clock, &mut kept, &mut report, &mut outbox);
            }
        }
        if !outbox.is_empty() {
            self.publish();
            for (mut to, delivery) in outbox {
                // The receiver lives until the client has its claim settled: this cannot be lost.
                let _ = to.try_send(delivery);
            }
        }
        self.observing = self.dbs.iter().any(Db::observing);
    }

    /// Starts loading the keyspace slots of a batch's keys into cache before the batch runs; the
    /// first argument after the name is taken as the key (a guess that only wastes a prefetch
    /// when wrong).
    pub(crate) fn prefetch<'a>(&self, db: usize, keys: impl Iterator<Item = &'a Bytes>) {
        if let Some(db) = self.dbs.get(db) {
            keys.for_each(|key| db.prefetch(key));
        }
    }

    /// After [`Shard::prefetch`]: starts loading, for each command of the batch on a member of a
    /// container (HSET's field, SADD's member), the member's slot in its hash, set or sorted
    /// set, the second cache miss of such a command, and for sorted sets the tree nodes it will
    /// touch (see [`Db::prefetch_members`]).
    pub(crate) fn prefetch_members<'a>(&self, db: usize, members: impl Iterator<Item = MemberRef<'a>>) {
        if let Some(db) = self.dbs.get(db) {
            db.prefetch_members(members);
        }
    }

    /// Runs `f` with the context of database `db`, then settles what it changed.
    pub(crate) fn with_db<R>(&mut self, db: usize, f: impl FnOnce(&mut Ctx<'_>) -> R) -> R {
        let max_bulk = self.global.max_bulk();
        let r = f(&mut Ctx::new(
            &mut self.dbs,
            db,
            self.clock,
            max_bulk,
            &mut self.rng,
            &mut self.effects,
            &mut self.notices,
        ));
        self.log_expired();
        self.settle();
        r
    }

    /// `flag`'s client watches `key` in database `db`.
    pub(crate) fn watch(&mut self, db: usize, key: &[u8], flag: &WatchFlag) {
        self.observers[db].watches.watch(&mut self.dbs[db], key, flag, self.clock);
        self.observing = true;
    }

    /// `flag`'s client stops watching `key` in database `db`.
    pub(crate) fn unwatch(&mut self, db: usize, key: &[u8], flag: &WatchFlag) {
        self.observers[db].watches.unwatch(&mut self.dbs[db], key, flag);
    }

    /// Whether any of `watched` (database, key), all on this shard, expired since `flag`'s
    /// client WATCHed it: EXEC then fails, as in Redis 7.0.
    #[must_use]
    pub(crate) fn watches_expired(&self, watched: &[(usize, Bytes)], flag: &WatchFlag) -> bool {
        watched.iter().any(|(db, key)| {
            self.observers
                .get(*db)
                .is_some_and(|o| o.watches.expired_since(&self.dbs[*db], key, flag, self.clock))
        })
    }

    /// Blocks `waiter` on `key` in database `db`; the key is looked at once more at once.
    pub(crate) fn block(&mut self, db: usize, key: &[u8], waiter: Waiter, first_in_line: bool) {
        self.observers[db].waiters.block(&mut self.dbs[db], key, waiter, first_in_line);
        self.observing = true;
        self.settle();
    }

    /// Forgets the waiters of `key` in database `db` that were served or gave up.
    pub(crate) fn prune_blocked(&mut self, db: usize, key: &[u8]) {
        self.observers[db].waiters.prune(&mut self.dbs[db], key);
    }

    /// Takes snapshot `id`'s cut of every database (O(1) each; see [`Db::begin_snapshot`]),
    /// ending any other; returns each database's keys and keys with a TTL, and the change count.
    /// Entries are written as RDB, or as `commands` (an AOF base without RDB preamble).
    pub(crate) fn begin_snapshot(
        &mut self,
        id: u64,
        compress: bool,
        commands: bool,
    ) -> (Vec<(u64, u64)>, u64) {
        fn write(out: &mut Vec<u8>, key: &[u8], entry: &Entry, compress: bool) {
            rdb::file::entry(out, key, &entry.value, entry.expires_at(), compress);
        }
        fn write_commands(out: &mut Vec<u8>, key: &[u8], entry: &Entry, _: bool) {
            crate::storage::aof::entry_as_commands(out, key, entry);
        }
        self.snapshot = Some(id);
        let writer: crate::storage::db::EntryWriter = if commands { write_commands } else { write };
        let sizes = self
            .dbs
            .iter_mut()
            .map(|d| {
                d.begin_snapshot(writer, compress);
                (d.len() as u64, d.expires_len() as u64)
            })
            .collect();
        (sizes, self.stats().changes)
    }

    /// The next piece, within `budget`, of snapshot `id` of database `db`; done and empty
    /// when that snapshot is not (or no longer) running here.
    pub(crate) fn snapshot_chunk(
        &mut self,
        id: u64,
        db: usize,
        budget: Budget,
        into: Vec<u8>,
    ) -> SnapshotChunk {
        match self.dbs.get_mut(db) {
            Some(d) if self.snapshot == Some(id) => d.snapshot_chunk(budget, into),
            _ => SnapshotChunk { bytes: into, done: true, ..SnapshotChunk::default() },
        }
    }

    /// Ends snapshot `id` unfinished, if it is the one running.
    pub(crate) fn abort_snapshot(&mut self, id: u64) {
        if self.snapshot == Some(id) {
            self.snapshot = None;
            self.dbs.iter_mut().for_each(Db::abort_snapshot);
        }
    }

    /// Puts keys loaded from a snapshot into their databases.
    ///
    /// # Errors
    /// A value that does not decode (the keys before it stay).
    pub(crate) fn load(&mut self, batch: Vec<LoadItem>) -> Result<(), rdb::RdbError> {
        let mut result = Ok(());
        for item in batch {
            let value = match item.value.decode() {
                Ok(v) => v,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            };
            if let Some(db) = self.dbs.get_mut(item.db) {
                db.set_loaded(&item.key, value, item.expires_at);
            }
        }
        self.settle();
        result
    }

    /// The state every core shares.
    #[must_use]
    pub(crate) fn global(&self) -> &Arc<Global> {
        &self.global
    }

    /// Every database.
    pub(crate) fn dbs(&mut self) -> &mut [Db] {
        &mut self.dbs
    }

    /// Cluster mode: how a request for an open slot of this shard's is routed, by which of its
    /// keys database 0 holds now. Asked in the step that then runs the request.
    #[must_use]
    pub(crate) fn open_slot_refusal(
        &self,
        open: &crate::engine::cluster::redirect::OpenSlot,
    ) -> Option<CmdError> {
        let now = now_ms();
        open.refusal(|key| self.dbs[0].holds(key, now))
    }

    /// Removes every key of database `db`, or of every database (FLUSHDB, FLUSHALL).
    /// FLUSHALL also ends the snapshot running here (after the wipe: nothing left to walk).
    pub(crate) fn flush(&mut self, db: Option<usize>) {
        for (i, d) in self.dbs.iter_mut().enumerate() {
            if db.is_none_or(|db| db == i) {
                d.clear();
            }
        }
        if db.is_none() {
            if let Some(id) = self.snapshot {
                self.abort_snapshot(id);
            }
        }
        self.settle();
    }

    /// SWAPDB on this shard: databases `a` and `b` trade their keys (see [`Db::swap_with`]);
    /// clients blocked on a key the swap brings are served. `count` counts the change (once
    /// for the whole command, as Redis's `dirty++`).
    pub(crate) fn swap_dbs(&mut self, a: usize, b: usize, count: bool) {
        if a == b {
            self.dbs[a].swap_with_itself();
        } else {
            let (low, high) = (a.min(b), a.max(b));
            let (before, after) = self.dbs.split_at_mut(high);
            before[low].swap_with(&mut after[0]);
        }
        if count {
            self.dbs[a].stats.changes += 1;
        }
        self.settle();
    }

    /// Sums the counters of every database.
    #[must_use]
    pub(crate) fn stats(&self) -> DbStats {
        self.dbs.iter().fold(DbStats::default(), |mut acc, db| {
            acc.hits += db.stats.hits;
            acc.misses += db.stats.misses;
            acc.expired += db.stats.expired;
            acc.evicted += db.stats.evicted;
            acc.changes += db.stats.changes;
            acc
        })
    }

    /// The statistics of the commands this shard executed.
    #[must_use]
    pub(crate) fn command_stats(&self) -> &Stats {
        &self.stats
    }

    /// Zeroes the counters of every database and command (CONFIG RESETSTAT).
    pub(crate) fn reset_stats(&mut self) {
        // Like Redis's `dirty`, the count of changes is not a statistic: it stays.
        self.dbs
            .iter_mut()
            .for_each(|db| db.stats = DbStats { changes: db.stats.changes, ..DbStats::default() });
        self.stats = Stats::default();
    }

    /// One active-expiry cycle over every database, bounded by `budget` keys looked at per step
    /// and by `deadline_ms`; repeats a database while more than a quarter of what it saw expired.
    pub(crate) fn active_expire(&mut self, period_ms: u64) {
        self.tick();
        // Redis's slow cycle, scaled by `active-expire-effort` (1..10, rescaled to 0..9): more
        // keys per sample, more of the cycle's time, fewer stale keys tolerated.
        let effort = self.global.config().active_expire_effort.clamp(1, 10) - 1;
        let per_loop = 20 + 5 * effort as usize;
        let time_perc = 25 + 2 * effort;
        let acceptable_stale = 10 - effort;
        let started = std::time::Instant::now();
        let limit = std::time::Duration::from_micros((time_perc * 1000 * period_ms / 100).max(1));
        let (mut sampled, mut expired, mut capped) = (0, 0, false);
        'dbs: for db in &mut self.dbs {
            for iteration in 0u32.. {
                let (looked, reclaimed) = db.expire_step(now_ms(), per_loop);
                sampled += looked;
                expired += reclaimed;
                if iteration % 16 == 15 && started.elapsed() > limit {
                    capped = true;
                    break 'dbs;
                }
                if looked == 0 || (reclaimed * 100 / looked) as u64 <= acceptable_stale {
                    break;
                }
            }
        }
        let current = if sampled == 0 { 0.0 } else { expired as f64 / sampled as f64 };
        self.upkeep.stale = current * 0.05 + self.upkeep.stale * 0.95;
        self.upkeep.time_cap_reached += u64::from(capped);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.global.latency.add_if_needed(self.lane, "expire-cycle", nanos);
        self.upkeep.expire_us += started.elapsed().as_micros() as u64;
        self.settle();
    }

    /// What active expiry and eviction measured.
    #[must_use]
    pub(crate) fn upkeep(&self) -> Upkeep {
        self.upkeep
    }
}

/// Unix time in milliseconds.
#[must_use]
pub(crate) fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
