//! State shared by every core: the configuration, client ids, the shutdown flag, startup facts.
//!
//! Everything here is read-mostly and lock-free on the request path: cores cache the
//! configuration and re-read it only when its version changes.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::{Config, ConfigError};

/// One executor: its shard index and the cpu it is pinned to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CoreInfo {
    /// The shard (and executor) index.
    pub(crate) shard: usize,
    /// The cpu it runs on.
    pub(crate) cpu: usize,
}

/// What runs after a CONFIG SET commits (installing a TLS configuration built beforehand).
pub(crate) type Commit = Box<dyn FnOnce() + Send>;

/// Checks a CONFIG SET (old, new) against the running server before it commits: can the new
/// ports be bound, do the TLS files and policies build? Returns what to do once it commits, or
/// why it must not. Installed by the runtime, which knows sockets and TLS; the server does not.
pub(crate) type Reconfigure = dyn Fn(&Config, &Config) -> Result<Commit, String> + Send + Sync;

/// Process-wide state.
pub(crate) struct Global {
    /// Every shard's writes, merged into one ordered stream (the AOF's).
    pub(crate) journal: Arc<crate::engine::journal::Journal>,
    reconfigure: OnceLock<Box<Reconfigure>>,
    listen_generation: AtomicU64,
    /// The listen generation each core has bound, by core.
    bound: Vec<AtomicU64>,
    /// The TLS configuration new handshakes use, shared by every core.
    pub(crate) tls: Arc<crate::facade::tls::TlsSlot>,
    /// The ACL users.
    pub(crate) users: crate::engine::acl::Users,
    config: RwLock<Arc<Config>>,
    config_version: AtomicU64,
    next_client_id: AtomicU64,
    clients: AtomicU64,
    max_bulk: AtomicU64,
    latency_tracking: AtomicBool,
    /// Whether the cron expires keys actively (DEBUG SET-ACTIVE-EXPIRE; Redis's
    /// `active_expire_enabled`).
    active_expire: AtomicBool,
    shutdown: AtomicBool,
    /// A signal asked for a shutdown that may first save (core 0 acts on it).
    shutdown_asap: AtomicBool,
    /// The last background save failed (read on every write command, for MISCONF).
    bgsave_failed: AtomicBool,
    aof_failed: AtomicBool,
    /// When the server started.
    pub(crate) started: Instant,
    /// The executors.
    pub(crate) cores: Vec<CoreInfo>,
    /// SLOWLOG's entries, every core's.
    pub(crate) slowlog: crate::engine::slowlog::SlowLog,
    /// Every client's address and name, for a slow command some other core ran.
    pub(crate) peers: crate::engine::slowlog::Peers,
    /// The latency monitor's events, every core's.
    pub(crate) latency: crate::engine::latency::LatencyMonitor,
    /// How many MONITOR clients each core has.
    pub(crate) monitors: Monitors,
    /// How many clients have CLIENT TRACKING on (INFO's `tracking_clients`; a flush tells
    /// them only while there are some).
    pub(crate) tracking_clients: AtomicUsize,
    /// How many cores have pub/sub subscribers (shared with every shard's notices).
    subscribed_cores: Arc<AtomicUsize>,
    /// Which cores have pub/sub subscribers (keyspace notifications go only to those).
    subscribed: Vec<AtomicBool>,
    /// Random 40-hex-digit run id, as INFO shows it.
    pub(crate) run_id: String,
    /// The absolute path of the config file the server started with; empty without one.
    pub(crate) config_file: String,
    /// Each executor's allocation counter as its cron last published it (see [`crate::memory`]).
    allocated: Vec<Counter>,
    /// `maxmemory`, for the checks on every hop and write (0: none).
    maxmemory: AtomicU64,
    /// Memory `maxmemory` does not count (see [`Global::note_not_counted`]).
    not_counted: AtomicU64,
    /// `maxmemory-clients` in bytes, for the check after every read (0: none).
    clients_limit: AtomicU64,
    /// Memory is over `maxmemory` and the last eviction found nothing more to evict: `denyoom`
    /// commands get `-OOM` (read on every such command only while `maxmemory` is set).
    oom: AtomicBool,
    /// The most memory used so far (INFO's `used_memory_peak`).
    peak_memory: AtomicU64,
    /// Memory used once every executor had started (INFO's `used_memory_startup`).
    startup_memory: OnceLock<u64>,
    /// Saves, loads and their figures (INFO persistence).
    persistence: crate::engine::persist::SharedPersist,
    /// The dataset is being loaded: commands without the `loading` flag answer LOADING.
    loading: AtomicBool,
    /// How far loading has come.
    /// How far loading got.
    pub(crate) load_progress: crate::engine::persist::LoadProgress,
    /// Startup failed after the cores started (the dataset did not load): exit with an error.
    startup_failed: AtomicBool,
    /// Replication ids, offsets and the replicas attached.
    replication: std::sync::Mutex<crate::engine::repl_state::ReplState>,
    /// This server follows a primary (read on every write, for READONLY).
    pub(crate) following: AtomicBool,
    /// CLIENT PAUSE and FAILOVER's holds on commands (one atomic read per command).
    pub(crate) pauses: crate::engine::pause::Pauses,
    /// The cluster, with `cluster-enabled yes`.
    pub(crate) cluster: Option<crate::engine::cluster::Cluster>,
}

/// One executor's figures for `maxmemory`, on a cache line of their own: a core storing its
/// figures does not slow the others' reads of theirs.
#[repr(align(128))]
struct Counter {
    /// Its allocation counter as last published (see [`crate::memory`]).
    allocated: AtomicIsize,
    /// How many keys its shard may evict, as last published.
    evictable: AtomicU64,
    /// Bytes of the excess over `maxmemory` its shard is charged with freeing (negative: it
    /// freed more than it was charged, which later charges take first).
    debt: AtomicI64,
    /// Another shard asked it by a hop to pay its debt, and that hop has not run yet.
    asked: AtomicBool,
    /// The memory its clients hold (`maxmemory-clients`), and its largest client's that may be
    /// evicted, as last published.
    clients: AtomicU64,
    largest_client: AtomicU64,
}

impl Global {
    /// Shared state for a server with `config` running on `cores`.
    #[must_use]
    pub(crate) fn new(
        config: Config,
        cores: Vec<CoreInfo>,
        tls: Arc<crate::facade::tls::TlsSlot>,
        users: crate::engine::acl::Users,
    ) -> Global {
        let seed = crate::num::splitmix(
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
                ^ u64::from(std::process::id()),
        );
        let run_id = format!(
            "{:016x}{:016x}{:08x}",
            seed,
            crate::num::splitmix(seed),
            crate::num::splitmix(seed ^ 1) as u32
        );
        let (max_bulk, latency_tracking) = (config.proto_max_bulk_len.0, config.latency_tracking);
        let slowlog = crate::engine::slowlog::SlowLog::new(cores.len(), &config);
        let latency = crate::engine::latency::LatencyMonitor::new(cores.len(), &config);
        Global {
            users,
            journal: Arc::new(crate::engine::journal::Journal::new(cores.len())),
            reconfigure: OnceLock::new(),
            listen_generation: AtomicU64::new(0),
            bound: cores.iter().map(|_| AtomicU64::new(0)).collect(),
            allocated: cores
                .iter()
                .map(|_| Counter {
                    allocated: AtomicIsize::new(isize::MIN),
                    evictable: AtomicU64::new(0),
                    debt: AtomicI64::new(0),
                    asked: AtomicBool::new(false),
                    clients: AtomicU64::new(0),
                    largest_client: AtomicU64::new(0),
                })
                .collect(),
            maxmemory: AtomicU64::new(config.maxmemory.0),
            not_counted: AtomicU64::new(0),
            clients_limit: AtomicU64::new(config.maxmemory_clients.bytes(config.maxmemory.0)),
            oom: AtomicBool::new(false),
            tls,
            config: RwLock::new(Arc::new(config)),
            config_version: AtomicU64::new(0),
            next_client_id: AtomicU64::new(1),
            clients: AtomicU64::new(0),
            max_bulk: AtomicU64::new(max_bulk),
            latency_tracking: AtomicBool::new(latency_tracking),
            active_expire: AtomicBool::new(true),
            shutdown: AtomicBool::new(false),
            shutdown_asap: AtomicBool::new(false),
            bgsave_failed: AtomicBool::new(false),
            aof_failed: AtomicBool::new(false),
            started: Instant::now(),
            slowlog,
            peers: crate::engine::slowlog::Peers::new(cores.len()),
            latency,
            monitors: Monitors::new(cores.len()),
            tracking_clients: AtomicUsize::new(0),
            subscribed_cores: Arc::default(),
            subscribed: cores.iter().map(|_| AtomicBool::new(false)).collect(),
            cores,
            run_id,
            config_file: String::new(),
            peak_memory: AtomicU64::new(0),
            startup_memory: OnceLock::new(),
            persistence: std::sync::Mutex::new(crate::engine::persist::PersistState {
                last_save: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
                last_bgsave_secs: -1,
                ..Default::default()
            }),
            loading: AtomicBool::new(false),
            load_progress: crate::engine::persist::LoadProgress::default(),
            replication: std::sync::Mutex::default(),
            following: AtomicBool::new(false),
            pauses: crate::engine::pause::Pauses::default(),
            startup_failed: AtomicBool::new(false),
            cluster: None,
        }
    }

    /// The current configuration.
    #[must_use]
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Bumped by every CONFIG SET; cores compare it with their cached copy.
    #[must_use]
    pub(crate) fn config_version(&self) -> u64 {
        self.config_version.load(Ordering::Acquire)
    }

    /// Installs the check every CONFIG SET passes before it commits (once, at startup).
    pub(crate) fn set_reconfigure(&self, hook: Box<Reconfigure>) {
        let _ = self.reconfigure.set(hook);
    }

    /// CONFIG SET: applies all pairs atomically, or none. A change of listeners bumps
    /// [`Global::listen_generation`]; a TLS change installs a new configuration on every core.
    pub(crate) fn set_config(&self, pairs: &[(String, String)]) -> Result<(), ConfigError> {
        let mut guard = self.config.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = (**guard).clone();
        next.set(pairs)?;
        let commit = match self.reconfigure.get() {
            Some(check) => check(&guard, &next).map_err(|reason| ConfigError::Invalid {
                name: pairs.first().map(|p| p.0.to_ascii_lowercase()).unwrap_or_default(),
                reason,
            })?,
            None => Box::new(|| {}),
        };
        let rebind = (next.port, next.tls_port, &next.bind) != (guard.port, guard.tls_port, &guard.bind);
        if next.requirepass != guard.requirepass {
            self.users.set_requirepass(next.requirepass.as_bytes());
        }
        self.max_bulk.store(next.proto_max_bulk_len.0, Ordering::Relaxed);
        self.maxmemory.store(next.maxmemory.0, Ordering::Relaxed);
        self.clients_limit.store(next.maxmemory_clients.bytes(next.maxmemory.0), Ordering::Relaxed);
        self.latency_tracking.store(next.latency_tracking, Ordering::Relaxed);
        self.slowlog.configure(&next);
        self.latency.configure(&next);
        *guard = Arc::new(next);
        commit();
        if rebind {
            self.listen_generation.fetch_add(1, Ordering::AcqRel);
        }
        self.config_version.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Bumped when the listening addresses change; each core then rebinds.
    #[must_use]
    pub(crate) fn listen_generation(&self) -> u64 {
        self.listen_generation.load(Ordering::Acquire)
    }

    /// Core `core` now listens as listen generation `generation` asks.
    pub(crate) fn note_bound(&self, core: usize, generation: u64) {
        if let Some(b) = self.bound.get(core) {
            b.store(generation, Ordering::Release);
        }
    }

    /// Whether every core listens as listen generation `generation` (or a later one) asks.
    #[must_use]
    pub(crate) fn all_bound(&self, generation: u64) -> bool {
        self.bound.iter().all(|b| b.load(Ordering::Acquire) >= generation)
    }

    /// `proto-max-bulk-len` now: shards read it per command, so CONFIG SET reaches every core.
    #[must_use]
    pub(crate) fn max_bulk(&self) -> u64 {
        self.max_bulk.load(Ordering::Relaxed)
    }

    /// Whether the cron expires keys actively (lookups still expire what they meet).
    #[must_use]
    pub(crate) fn active_expire(&self) -> bool {
        self.active_expire.load(Ordering::Relaxed)
    }

    /// DEBUG SET-ACTIVE-EXPIRE.
    pub(crate) fn set_active_expire(&self, on: bool) {
        self.active_expire.store(on, Ordering::Relaxed);
    }

    /// Core `core` gained its first subscriber (`true`) or lost its last.
    pub(crate) fn note_subscribed_core(&self, core: usize, subscribed: bool) {
        if let Some(flag) = self.subscribed.get(core) {
            flag.store(subscribed, Ordering::Release);
        }
        if subscribed {
            self.subscribed_cores.fetch_add(1, Ordering::AcqRel);
        } else {
            self.subscribed_cores.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// How many cores have pub/sub subscribers: shards build no keyspace notification while
    /// none has.
    #[must_use]
    pub(crate) fn subscribers(&self) -> Arc<AtomicUsize> {
        self.subscribed_cores.clone()
    }

    /// Whether core `core` has pub/sub subscribers.
    #[must_use]
    pub(crate) fn has_subscribers_on(&self, core: usize) -> bool {
        self.subscribed.get(core).is_some_and(|f| f.load(Ordering::Acquire))
    }

    /// `latency-tracking` now: whether commands feed their latency histograms.
    #[must_use]
    pub(crate) fn latency_tracking(&self) -> bool {
        self.latency_tracking.load(Ordering::Relaxed)
    }

    /// Executor `core` publishes its allocation counter (its cron, every 100 ms); returns the
    /// memory used now, by the latest counters, and updates the peak. The first time every
    /// executor has published, that is the startup memory.
    pub(crate) fn note_allocated(&self, core: usize, allocated: isize) -> u64 {
        if let Some(a) = self.allocated.get(core) {
            a.allocated.store(allocated, Ordering::Relaxed);
        }
        let counters: Vec<isize> =
            self.allocated.iter().map(|a| a.allocated.load(Ordering::Relaxed)).collect();
        if counters.contains(&isize::MIN) {
            return 0;
        }
        let used = crate::memory::used(counters);
        let _ = self.startup_memory.set(used);
        self.note_used(used)
    }

    /// Executor `core` publishes its allocation counter between its cron's notes (while
    /// `maxmemory` is set, at the end of each piece of shard work).
    pub(crate) fn publish_allocated(&self, core: usize, allocated: isize) {
        if let Some(a) = self.allocated.get(core) {
            a.allocated.store(allocated, Ordering::Relaxed);
        }
    }

    /// `maxmemory` (0: none).
    #[must_use]
    pub(crate) fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
    }

    /// Notes the memory `maxmemory` does not count, as Redis's `freeMemoryGetNotCountedMemory`:
    /// the replication stream held for replicas beyond what the backlog keeps anyway (a slow
    /// replica must not make the server evict its data). Called by core 0's cron.
    pub(crate) fn note_not_counted(&self) {
        let backlog = self.config().repl_backlog_size.0;
        let held = self.journal.with_backlog(|b| b.held()).unwrap_or(0);
        self.not_counted.store(held.saturating_sub(backlog), Ordering::Relaxed);
    }

    /// INFO's `mem_not_counted_for_evict`.
    #[must_use]
    pub(crate) fn not_counted_for_evict(&self) -> u64 {
        self.not_counted.load(Ordering::Relaxed)
    }

    /// `maxmemory-clients` in bytes (0: none).
    #[must_use]
    pub(crate) fn clients_limit(&self) -> u64 {
        self.clients_limit.load(Ordering::Relaxed)
    }

    /// Core `core` has an evictable client of `size` bytes: what it published as its largest
    /// becomes at least that, so that no other core takes one of its own smaller clients for
    /// the largest before `core` looks again (see [`crate::engine::client_eviction`]).
    pub(crate) fn raise_largest_client(&self, core: usize, size: u64) {
        if let Some(a) = self.allocated.get(core) {
            a.largest_client.fetch_max(size, Ordering::Relaxed);
        }
    }

    /// Core `core` publishes the memory its clients hold, and its largest evictable client's
    /// when it looked.
    pub(crate) fn publish_clients(&self, core: usize, total: u64, largest: Option<u64>) {
        if let Some(a) = self.allocated.get(core) {
            a.clients.store(total, Ordering::Relaxed);
            if let Some(largest) = largest {
                a.largest_client.store(largest, Ordering::Relaxed);
            }
        }
    }

    /// The memory the other cores' clients hold, and the largest evictable one there, as they
    /// last published them.
    #[must_use]
    pub(crate) fn clients_elsewhere(&self, core: usize) -> (u64, u64) {
        let others = self.allocated.iter().enumerate().filter(|(c, _)| *c != core);
        others.fold((0, 0), |(sum, max), (_, a)| {
            (sum + a.clients.load(Ordering::Relaxed), max.max(a.largest_client.load(Ordering::Relaxed)))
        })
    }

    /// Marks shard `core` as asked to evict its share; false when it already was (the hop that
    /// asked has not run yet: one is enough).
    pub(crate) fn ask_to_evict(&self, core: usize) -> bool {
        self.allocated.get(core).is_some_and(|a| !a.asked.swap(true, Ordering::Relaxed))
    }

    /// Shard `core` runs the eviction it was asked for.
    pub(crate) fn asked_to_evict(&self, core: usize) {
        if let Some(a) = self.allocated.get(core) {
            a.asked.store(false, Ordering::Relaxed);
        }
    }

    /// The excess over `maxmemory` already charged to shards and not yet freed.
    #[must_use]
    pub(crate) fn debts(&self) -> u64 {
        self.allocated.iter().map(|a| a.debt.load(Ordering::Relaxed).max(0) as u64).sum()
    }

    /// Charges shard `core` with freeing `bytes` more; returns its debt now.
    pub(crate) fn charge(&self, core: usize, bytes: u64) -> i64 {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.allocated
            .get(core)
            .map_or(0, |a| a.debt.fetch_add(bytes, Ordering::Relaxed).saturating_add(bytes))
    }

    /// Shard `core`'s debt.
    #[must_use]
    pub(crate) fn debt(&self, core: usize) -> i64 {
        self.allocated.get(core).map_or(0, |a| a.debt.load(Ordering::Relaxed))
    }

    /// Shard `core` freed `bytes`.
    pub(crate) fn paid(&self, core: usize, bytes: u64) {
        if let Some(a) = self.allocated.get(core) {
            a.debt.fetch_sub(i64::try_from(bytes).unwrap_or(i64::MAX), Ordering::Relaxed);
        }
    }

    /// Shard `core` is let off what it owes: memory is under the limit (its debt is out of
    /// date), or it has nothing left that may go (the others are charged instead).
    pub(crate) fn forgive(&self, core: usize) {
        if let Some(a) = self.allocated.get(core) {
            let _ = a.debt.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |d| (d > 0).then_some(0));
        }
    }

    /// Shard `core` publishes how many of its keys the policy may evict.
    pub(crate) fn publish_evictable(&self, core: usize, keys: u64) {
        if let Some(a) = self.allocated.get(core) {
            a.evictable.store(keys, Ordering::Relaxed);
        }
    }

    /// Keys each shard may evict, as they last published it (this shard's own is stale).
    pub(crate) fn evictable(&self) -> impl Iterator<Item = u64> + '_ {
        self.allocated.iter().map(|a| a.evictable.load(Ordering::Relaxed))
    }

    /// Memory in use now, as `maxmemory` counts it: this executor's own counter read fresh
    /// (`here`), the others' as they last published them, and every other thread's, less what it
    /// does not count ([`Global::note_not_counted`]).
    #[must_use]
    pub(crate) fn used_now(&self, core: usize, here: isize) -> u64 {
        let others = self.allocated.iter().enumerate().filter(|(c, _)| *c != core);
        let counters = others.map(|(_, a)| a.allocated.load(Ordering::Relaxed)).filter(|&v| v != isize::MIN);
        crate::memory::used(counters.chain(std::iter::once(here)))
            .saturating_sub(self.not_counted.load(Ordering::Relaxed))
    }

    /// Whether `denyoom` commands are refused (see `oom`).
    #[must_use]
    pub(crate) fn oom(&self) -> bool {
        self.oom.load(Ordering::Relaxed)
    }

    /// Records whether eviction could bring memory under `maxmemory`.
    pub(crate) fn set_oom(&self, oom: bool) {
        if self.oom.load(Ordering::Relaxed) != oom {
            self.oom.store(oom, Ordering::Relaxed);
        }
    }

    /// Notes `used` bytes in use (INFO computes it afresh); returns it, having updated the peak.
    pub(crate) fn note_used(&self, used: u64) -> u64 {
        self.peak_memory.fetch_max(used, Ordering::Relaxed);
        used
    }

    /// The most memory used so far.
    #[must_use]
    pub(crate) fn peak_memory(&self) -> u64 {
        self.peak_memory.load(Ordering::Relaxed)
    }

    /// The memory used once every executor had started (0 until then).
    #[must_use]
    pub(crate) fn startup_memory(&self) -> u64 {
        self.startup_memory.get().copied().unwrap_or(0)
    }

    /// A new, never reused client id.
    #[must_use]
    pub(crate) fn next_client_id(&self) -> u64 {
        self.next_client_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Clients connected on every core (for `maxclients`).
    #[must_use]
    pub(crate) fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Notes a client connecting (`+1`) or leaving (`-1`).
    pub(crate) fn client_connected(&self, delta: i64) {
        if delta >= 0 {
            self.clients.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            self.clients.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    /// The persistence state (a short lock: INFO and saves take it).
    pub(crate) fn persistence(&self) -> std::sync::MutexGuard<'_, crate::engine::persist::PersistState> {
        self.persistence.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replication's shared state (held briefly: never across an await).
    pub(crate) fn replication(&self) -> std::sync::MutexGuard<'_, crate::engine::repl_state::ReplState> {
        self.replication.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the dataset is being loaded.
    #[must_use]
    pub(crate) fn loading(&self) -> bool {
        self.loading.load(Ordering::Acquire)
    }

    /// Loading starts (before any core serves), or is over. While it runs the allocator keeps
    /// the pages it frees (see [`crate::memory::hold_freed_pages`]).
    pub(crate) fn set_loading(&self, loading: bool) {
        if self.loading.swap(loading, Ordering::AcqRel) != loading {
            crate::memory::hold_freed_pages(loading);
        }
    }

    /// The loader has sent every key.
    pub(crate) fn load_sent(&self) {
        self.load_progress.sent.store(true, Ordering::Release);
        self.load_check();
    }

    /// A core has put every key it was sent into its shard.
    pub(crate) fn core_loaded(&self) {
        self.load_progress.cores_done.fetch_add(1, Ordering::AcqRel);
        self.load_check();
    }

    /// Ends loading once everything is in.
    pub(crate) fn load_check(&self) {
        if self.load_progress.finished(self.cores.len()) && !self.startup_failed() {
            self.set_loading(false);
        }
    }

    /// Startup failed after the cores started: they stop, and the process exits with an error.
    pub(crate) fn fail_startup(&self) {
        self.startup_failed.store(true, Ordering::Release);
        self.request_shutdown();
    }

    /// Whether startup failed after the cores started.
    #[must_use]
    pub(crate) fn startup_failed(&self) -> bool {
        self.startup_failed.load(Ordering::Acquire)
    }

    /// Asks every core to stop (SIGTERM, SIGINT, SHUTDOWN).
    pub(crate) fn request_shutdown(&self) {
        if !self.shutdown.swap(true, Ordering::AcqRel) {
            // A supervising systemd hears that the stop is the server's own.
            crate::supervise::notify_stopping(&self.config());
        }
    }

    /// Records whether the last background save failed (see [`Global::refuses_writes`]).
    pub(crate) fn set_bgsave_failed(&self, failed: bool) {
        self.bgsave_failed.store(failed, Ordering::Release);
    }

    /// Records whether the last write to the AOF failed (writes then get `-MISCONF`).
    pub(crate) fn set_aof_failed(&self, failed: bool) {
        self.aof_failed.store(failed, Ordering::Release);
    }

    /// Whether the last write to the AOF failed: one relaxed load, for every write command.
    #[must_use]
    pub(crate) fn aof_failed(&self) -> bool {
        self.aof_failed.load(Ordering::Relaxed)
    }

    /// Whether the last background save failed: one relaxed load, for every write command.
    /// Writes then get `-MISCONF` if save points are set and `stop-writes-on-bgsave-error` is on
    /// (Redis's `writeCommandsDeniedByDiskError`).
    #[must_use]
    pub(crate) fn bgsave_failed(&self) -> bool {
        self.bgsave_failed.load(Ordering::Relaxed)
    }

    /// SIGTERM, SIGINT: a shutdown that saves first when save points are set (as Redis's
    /// `shutdown_asap`); returns whether one was already asked for.
    pub(crate) fn request_shutdown_asap(&self) -> bool {
        self.shutdown_asap.swap(true, Ordering::AcqRel)
    }

    /// Takes a pending [`Global::request_shutdown_asap`].
    pub(crate) fn take_shutdown_asap(&self) -> bool {
        self.shutdown_asap.swap(false, Ordering::AcqRel)
    }

    /// Whether shutdown was asked for.
    #[must_use]
    pub(crate) fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }
}

/// How many monitors each core has.
pub(crate) struct Monitors {
    by_core: Vec<AtomicUsize>,
    total: AtomicUsize,
}

impl Monitors {
    /// No monitors, on `cores` cores.
    #[must_use]
    pub(crate) fn new(cores: usize) -> Monitors {
        Monitors {
            by_core: (0..cores.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            total: AtomicUsize::new(0),
        }
    }

    /// Whether any client monitors (the test every command pays).
    #[inline]
    #[must_use]
    pub(crate) fn any(&self) -> bool {
        self.total.load(Ordering::Relaxed) > 0
    }

    /// A client of core `core` started (`true`) or stopped monitoring.
    pub(crate) fn count(&self, core: usize, started: bool) {
        let Some(n) = self.by_core.get(core) else { return };
        if started {
            n.fetch_add(1, Ordering::Relaxed);
            self.total.fetch_add(1, Ordering::Relaxed);
        } else {
            n.fetch_sub(1, Ordering::Relaxed);
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The cores that have monitors now.
    pub(crate) fn cores(&self) -> impl Iterator<Item = usize> + '_ {
        self.by_core.iter().enumerate().filter(|(_, n)| n.load(Ordering::Relaxed) > 0).map(|(c, _)| c)
    }
}
