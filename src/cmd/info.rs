//! INFO: the server's state and counters, summed over cores, in Redis 7.0's sections, fields and
//! order, so that what clients and tools parse is there with true values (0, `no` or empty where
//! a feature is off or not built yet: persistence, replication, cluster, modules). ferrokey's
//! own sections (`Cores`, `TLS`) and fields come after Redis's.
//!
//! Sections (Redis's rules): no argument or `default` gives the default set, `all` every
//! section, `everything` the same (there are no module sections); several arguments give the
//! union, always in the fixed order below; an unknown name gives nothing, not an error.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::config::{trim_double, Config, ConfigValue};
use crate::engine::global::Global;
use crate::engine::local::CoreStats;
use crate::engine::repl_state::{LinkState, ReplicaState};
use crate::engine::session::Session;
use crate::engine::stats::Stats;
use crate::facade::Reply;
use crate::storage::db::DbStats;

/// The sections in the order INFO prints them: key, title, and whether `default` includes it.
const SECTIONS: &[(&str, &str, bool)] = &[
    ("server", "Server", true),
    ("clients", "Clients", true),
    ("memory", "Memory", true),
    ("persistence", "Persistence", true),
    ("stats", "Stats", true),
    ("replication", "Replication", true),
    ("cpu", "CPU", true),
    ("modules", "Modules", true),
    ("commandstats", "Commandstats", false),
    ("errorstats", "Errorstats", true),
    ("latencystats", "Latencystats", false),
    ("cluster", "Cluster", true),
    ("keyspace", "Keyspace", true),
    ("cores", "Cores", true),
    ("tls", "TLS", true),
];

/// Which sections a request asks for.
struct Selection {
    all: bool,
    default: bool,
    named: BTreeSet<String>,
}

impl Selection {
    fn parse(args: &[Bytes]) -> Selection {
        let mut selection = Selection { all: false, default: args.is_empty(), named: BTreeSet::new() };
        for arg in args {
            match String::from_utf8_lossy(arg).to_ascii_lowercase().as_str() {
                "all" | "everything" => selection.all = true,
                "default" => selection.default = true,
                // Redis's default set names the modules list `module_list`.
                "module_list" => {
                    selection.named.insert("modules".into());
                }
                other => {
                    selection.named.insert(other.to_owned());
                }
            }
        }
        selection
    }

    fn wants(&self, key: &str) -> bool {
        self.all
            || self.named.contains(key)
            || (self.default && SECTIONS.iter().any(|(k, _, default)| *k == key && *default))
    }
}

/// What one core reports: its clients and counters (gathered on that core).
struct CoreFacts {
    cpu: (f64, f64),
    stats: CoreStats,
    commands: Stats,
    rates: [f64; 3],
    /// The bytes its Lua interpreter holds.
    lua_memory: u64,
    blocked: usize,
    blocked_with_timeout: usize,
    max_query: usize,
    max_output: usize,
    /// Memory held by normal clients and by replicas' links, and how many replicas.
    clients_memory: (usize, usize, usize),
    /// TLS clients by "version cipher".
    tls_sessions: Vec<String>,
    tls_buffered: usize,
    /// This core's allocation counter (see [`crate::memory`]).
    allocated: isize,
    channels: Vec<Bytes>,
    patterns: Vec<Bytes>,
    shard_channels: Vec<Bytes>,
    /// MIGRATE's links kept on this core.
    migrate_links: usize,
}

/// What one shard reports: its keyspace and the commands it executed.
struct ShardFacts {
    db: DbStats,
    upkeep: crate::engine::shard::Upkeep,
    /// Per database: keys, keys with a TTL, estimated mean TTL.
    keys: Vec<(usize, usize, u64)>,
    commands: Stats,
    /// The CLIENT TRACKING table.
    tracking: crate::engine::tracking::TableStats,
}

/// Everything INFO prints from, gathered once.
struct Facts {
    cores: Vec<CoreFacts>,
    shards: Vec<ShardFacts>,
    /// Every core's and shard's command statistics, merged.
    commands: Stats,
    config: std::sync::Arc<Config>,
    used_memory: u64,
    rss: u64,
    /// Clients with CLIENT TRACKING on.
    tracking_clients: usize,
}

/// INFO [section ...]
pub(crate) async fn info(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let selection = Selection::parse(&args[1..]);
    let facts = gather(s, selection.wants("latencystats")).await?;
    let global = &s.core.global;
    let mut out = String::new();
    for (key, title, _) in SECTIONS {
        if !selection.wants(key) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {title}\r\n");
        let body = &mut out;
        match *key {
            "server" => server(body, &facts, global),
            "clients" => clients(body, &facts),
            "memory" => memory(body, &facts, global),
            "persistence" => persistence(body, &facts, global),
            "stats" => stats(body, &facts, global),
            "replication" => replication(body, global, &facts.config),
            "cpu" => cpu(body),
            "commandstats" => commandstats(body, &facts),
            "errorstats" => errorstats(body, &facts),
            "latencystats" => latencystats(body, &facts),
            "cluster" => {
                body.push_str(if global.cluster.is_some() {
                    "cluster_enabled:1\r\n"
                } else {
                    "cluster_enabled:0\r\n"
                });
            }
            "keyspace" => keyspace(body, &facts),
            "cores" => cores(body, &facts, global),
            "tls" => tls(body, &facts, global),
            // Modules: none can be loaded, so the section is its header.
            _ => {}
        }
    }
    Ok(Reply::Verbatim(out))
}

async fn gather(s: &Session, latency: bool) -> Result<Facts, CmdError> {
    let cores = s
        .core
        .router
        .each_core(move |local| {
            let clients = local.clients.borrow();
            let pubsub = local.pubsub.borrow();
            CoreFacts {
                cpu: usage(nix::sys::resource::UsageWho::RUSAGE_THREAD),
                stats: *local.stats.borrow(),
                commands: local.commands.borrow().snapshot(latency),
                rates: local.rates.borrow().current(),
                blocked: clients.values().filter(|c| c.is_blocked()).count(),
                blocked_with_timeout: clients.values().filter(|c| c.is_blocked_with_timeout()).count(),
                max_query: clients.values().map(|c| c.buffers.get().query).max().unwrap_or(0),
                max_output: clients.values().map(|c| c.output_pending()).max().unwrap_or(0),
                clients_memory: clients.values().fold((0, 0, 0), |(normal, replicas, n), c| {
                    if c.replica.get() {
                        (normal, replicas + c.memory(), n + 1)
                    } else {
                        (normal + c.memory(), replicas, n)
                    }
                }),
                tls_sessions: clients
                    .values()
                    .filter_map(|c| c.tls.as_ref().map(|t| format!("{} {}", t.version, t.cipher)))
                    .collect(),
                tls_buffered: clients.values().map(|c| c.tls_buffered.get()).sum(),
                allocated: crate::memory::here(),
                lua_memory: crate::engine::script::memory_here() as u64,
                channels: pubsub.channels.keys().cloned().collect(),
                patterns: pubsub.patterns.iter().map(|(p, _)| p.clone()).collect(),
                shard_channels: pubsub.shard.keys().cloned().collect(),
                migrate_links: crate::cmd::migrate::cached_links(),
            }
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    let shards = s
        .each_shard(move |shard| ShardFacts {
            db: shard.stats(),
            upkeep: shard.upkeep(),
            keys: shard.dbs().iter().map(|d| (d.len(), d.expires_len(), d.avg_ttl())).collect(),
            commands: shard.command_stats().snapshot(latency),
            tracking: shard.tracking_stats(),
        })
        .await?;
    let mut commands = Stats::default();
    cores.iter().for_each(|c| commands.merge(&c.commands));
    shards.iter().for_each(|sh| commands.merge(&sh.commands));
    let used_memory = s.core.global.note_used(crate::memory::used(cores.iter().map(|c| c.allocated)));
    let tracking_clients = s.core.global.tracking_clients.load(std::sync::atomic::Ordering::Acquire);
    Ok(Facts {
        cores,
        shards,
        commands,
        config: s.core.config(),
        used_memory,
        rss: rss_bytes(),
        tracking_clients,
    })
}

/// Every core's command statistics merged, with the latency histograms if `latency` (LATENCY
/// HISTOGRAM's source; INFO gathers them with the rest).
pub(crate) async fn command_stats(s: &Session, latency: bool) -> Result<Stats, CmdError> {
    let cores = s
        .core
        .router
        .each_core(move |local| local.commands.borrow().snapshot(latency))
        .await
        .map_err(|_| CmdError::Unavailable)?;
    let shards = s.each_shard(move |shard| shard.command_stats().snapshot(latency)).await?;
    let mut all = Stats::default();
    cores.iter().chain(&shards).for_each(|c| all.merge(c));
    Ok(all)
}

/// Appends `name:value\r\n` lines.
macro_rules! fields {
    ($out:expr, $($name:literal => $value:expr),* $(,)?) => {
        $( let _ = write!($out, concat!($name, ":{}\r\n"), $value); )*
    };
}

fn server(out: &mut String, facts: &Facts, global: &Global) {
    let uptime = global.started.elapsed().as_secs();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let config = &facts.config;
    fields!(out,
        "redis_version" => crate::REDIS_VERSION,
        "redis_git_sha1" => "00000000",
        "redis_git_dirty" => 0,
        "redis_build_id" => build_id(),
        "redis_mode" => if global.cluster.is_some() { "cluster" } else { "standalone" },
        "os" => os(),
        "arch_bits" => usize::BITS,
        "monotonic_clock" => "POSIX clock_gettime",
        "multiplexing_api" => "io_uring",
        "atomicvar_api" => "c11-builtin",
        "gcc_version" => "0.0.0",
        "process_id" => std::process::id(),
        "process_supervised" => "no",
        "run_id" => global.run_id,
        "tcp_port" => if config.port != 0 { config.port } else { config.tls_port },
        "server_time_usec" => now.as_micros(),
        "uptime_in_seconds" => uptime,
        "uptime_in_days" => uptime / 86400,
        "hz" => config.hz,
        "configured_hz" => config.hz,
        "lru_clock" => now.as_secs() & ((1 << 24) - 1),
        "executable" => std::env::current_exe().map(|p| p.display().to_string()).unwrap_or_default(),
        "config_file" => global.config_file,
        "io_threads_active" => 0,
        "ferrokey_version" => env!("CARGO_PKG_VERSION"),
        "tls_port" => config.tls_port,
        "executors" => global.cores.len(),
    );
}

fn clients(out: &mut String, facts: &Facts) {
    let sum = |f: fn(&CoreFacts) -> usize| facts.cores.iter().map(f).sum::<usize>();
    let max = |f: fn(&CoreFacts) -> usize| facts.cores.iter().map(f).max().unwrap_or(0);
    fields!(out,
        "connected_clients" => facts.cores.iter().map(|c| c.stats.clients).sum::<u64>(),
        "cluster_connections" => 0,
        "maxclients" => facts.config.maxclients,
        "client_recent_max_input_buffer" => max(|c| c.max_query),
        "client_recent_max_output_buffer" => max(|c| c.max_output),
        "blocked_clients" => sum(|c| c.blocked),
        "tracking_clients" => facts.tracking_clients,
        "clients_in_timeout_table" => sum(|c| c.blocked_with_timeout),
    );
}

/// The memory figures INFO's memory section, MEMORY STATS and MEMORY DOCTOR report, as Redis's
/// `getMemoryOverheadData` splits them.
pub(crate) struct MemoryFigures {
    /// `used_memory`.
    pub(crate) used: u64,
    pub(crate) peak: u64,
    pub(crate) startup: u64,
    /// The replication backlog's bytes.
    pub(crate) backlog: u64,
    /// Memory of replicas' links and of normal clients.
    pub(crate) replicas: u64,
    pub(crate) clients: u64,
    /// How many of each.
    pub(crate) replica_count: u64,
    pub(crate) client_count: u64,
    /// Per non-empty database: its number, and its tables' cost for keys and for TTLs.
    pub(crate) dbs: Vec<(usize, u64, u64)>,
    /// Everything but the data: startup, backlog, clients, tables.
    pub(crate) overhead: u64,
    pub(crate) dataset: u64,
    pub(crate) keys: u64,
    pub(crate) rss: u64,
}

impl MemoryFigures {
    fn of(facts: &Facts, global: &Global) -> MemoryFigures {
        let used = facts.used_memory;
        let sum = |f: fn(&CoreFacts) -> usize| facts.cores.iter().map(|c| f(c) as u64).sum::<u64>();
        let (clients, replicas, replica_count) =
            (sum(|c| c.clients_memory.0), sum(|c| c.clients_memory.1), sum(|c| c.clients_memory.2));
        let client_count =
            facts.cores.iter().map(|c| c.stats.clients).sum::<u64>().saturating_sub(replica_count);
        let dbs: Vec<(usize, u64, u64)> = (0..facts.config.databases)
            .filter_map(|db| {
                let (keys, expires) = facts
                    .shards
                    .iter()
                    .filter_map(|s| s.keys.get(db))
                    .fold((0, 0), |a, k| (a.0 + k.0, a.1 + k.1));
                let (main, ttl) = crate::storage::footprint::tables(keys, expires);
                (keys > 0).then_some((db, main as u64, ttl as u64))
            })
            .collect();
        let keys = facts.shards.iter().flat_map(|s| s.keys.iter()).map(|k| k.0 as u64).sum();
        let startup = global.startup_memory().min(used);
        let backlog = global.journal.with_backlog(|b| b.histlen()).unwrap_or(0);
        let tables: u64 = dbs.iter().map(|d| d.1 + d.2).sum();
        let overhead = (startup + backlog + clients + replicas + tables).min(used);
        MemoryFigures {
            used,
            peak: global.peak_memory().max(used),
            startup,
            backlog,
            replicas,
            clients,
            replica_count,
            client_count,
            dbs,
            overhead,
            dataset: used - overhead,
            keys,
            rss: facts.rss,
        }
    }
}

/// The memory figures, gathered from every core.
pub(crate) async fn memory_figures(s: &Session) -> Result<MemoryFigures, CmdError> {
    let facts = gather(s, false).await?;
    Ok(MemoryFigures::of(&facts, &s.core.global))
}

fn memory(out: &mut String, facts: &Facts, global: &Global) {
    let m = MemoryFigures::of(facts, global);
    let (used, peak, startup, overhead, dataset) = (m.used, m.peak, m.startup, m.overhead, m.dataset);
    let (clients, replicas) = (m.clients, m.replicas);
    let total_system = total_system_memory();
    let maxmemory = facts.config.maxmemory.0;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let signed = |a: u64, b: u64| a as i64 - b as i64;
    // Every core's interpreter, and the script bodies the store keeps.
    let lua: u64 = facts.cores.iter().map(|c| c.lua_memory).sum();
    let store = crate::engine::script::Store::get();
    let scripts = store.bytes();
    fields!(out,
        "used_memory" => used,
        "used_memory_human" => human(used),
        "used_memory_rss" => facts.rss,
        "used_memory_rss_human" => human(facts.rss),
        "used_memory_peak" => peak,
        "used_memory_peak_human" => human(peak),
        "used_memory_peak_perc" => format!("{:.2}%", ratio(used * 100, peak)),
        "used_memory_overhead" => overhead,
        "used_memory_startup" => startup,
        "used_memory_dataset" => dataset,
        "used_memory_dataset_perc" => format!("{:.2}%", ratio(dataset * 100, (used - startup).max(1))),
        // mimalloc keeps no statistics here: what ferrokey counts is what it holds.
        "allocator_allocated" => used,
        "allocator_active" => used,
        "allocator_resident" => facts.rss,
        "total_system_memory" => total_system,
        "total_system_memory_human" => human(total_system),
        "used_memory_lua" => lua,
        "used_memory_vm_eval" => lua,
        "used_memory_lua_human" => human(lua),
        "used_memory_scripts_eval" => scripts,
        "number_of_cached_scripts" => store.len(),
        "number_of_functions" => 0,
        "number_of_libraries" => 0,
        "used_memory_vm_functions" => 0,
        "used_memory_vm_total" => lua,
        "used_memory_vm_total_human" => human(lua),
        "used_memory_functions" => 0,
        "used_memory_scripts" => scripts,
        "used_memory_scripts_human" => human(scripts),
        "maxmemory" => maxmemory,
        "maxmemory_human" => human(maxmemory),
        "maxmemory_policy" => facts.config.maxmemory_policy.show(),
        "allocator_frag_ratio" => "1.00",
        "allocator_frag_bytes" => 0,
        "allocator_rss_ratio" => format!("{:.2}", ratio(facts.rss, used)),
        "allocator_rss_bytes" => signed(facts.rss, used),
        "rss_overhead_ratio" => "1.00",
        "rss_overhead_bytes" => 0,
        "mem_fragmentation_ratio" => format!("{:.2}", ratio(facts.rss, used)),
        "mem_fragmentation_bytes" => signed(facts.rss, used),
        "mem_not_counted_for_evict" => global.not_counted_for_evict(),
        "mem_replication_backlog" => global.journal.with_backlog(|b| b.histlen()).unwrap_or(0),
        "mem_total_replication_buffers" => global.journal.with_backlog(|b| b.held()).unwrap_or(0),
        "mem_clients_slaves" => replicas,
        "mem_clients_normal" => clients,
        "mem_cluster_links" => 0,
        "mem_aof_buffer" => 0,
        "mem_allocator" => "mimalloc",
        "active_defrag_running" => 0,
        "lazyfree_pending_objects" => 0,
        "lazyfreed_objects" => 0,
    );
}

fn persistence(out: &mut String, facts: &Facts, global: &Global) {
    let state = global.persistence();
    let changes = facts.shards.iter().map(|s| s.db.changes).sum::<u64>();
    let background = state.running.as_ref().filter(|r| r.background && !r.rewrite);
    let aof = &state.aof;
    let aof_on = global.config().appendonly;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    fields!(out,
        "loading" => u8::from(global.loading()),
        "async_loading" => 0,
        "current_cow_peak" => 0,
        "current_cow_size" => 0,
        "current_cow_size_age" => 0,
        "current_fork_perc" => "0.00",
        "current_save_keys_processed" => background.map_or(0, |r| r.keys_done.load(std::sync::atomic::Ordering::Relaxed)),
        "current_save_keys_total" => background.map_or(0, |r| r.keys_total),
        "rdb_changes_since_last_save" => changes.saturating_sub(state.changes_at_save),
        "rdb_bgsave_in_progress" => u8::from(background.is_some()),
        // Until a save happens, Redis counts from startup.
        "rdb_last_save_time" => state.last_save,
        "rdb_last_bgsave_status" => if state.bgsave_failed { "err" } else { "ok" },
        "rdb_last_bgsave_time_sec" => state.last_bgsave_secs,
        "rdb_current_bgsave_time_sec" => background.map_or(-1, |r| i64::try_from(now.saturating_sub(r.started)).unwrap_or(-1)),
        "rdb_saves" => state.saves,
        // Without fork there is no copy-on-write: what the save serialized before writes
        // changed it is the memory it cost beyond the dataset.
        "rdb_last_cow_size" => state.last_presaved,
        "rdb_last_load_keys_expired" => state.expired_at_load,
        "rdb_last_load_keys_loaded" => state.loaded,
        "aof_enabled" => u8::from(global.journal.aof_on()),
        "aof_rewrite_in_progress" => u8::from(aof.rewriting),
        "aof_rewrite_scheduled" => u8::from(aof.rewrite_scheduled),
        "aof_last_rewrite_time_sec" => aof.last_rewrite_secs.unwrap_or(-1),
        "aof_current_rewrite_time_sec" => if aof.rewriting { i64::try_from(now.saturating_sub(aof.rewrite_started)).unwrap_or(-1) } else { -1 },
        "aof_last_bgrewrite_status" => if aof.last_rewrite_failed { "err" } else { "ok" },
        "aof_rewrites" => state.aof_rewrites,
        "aof_rewrites_consecutive_failures" => aof.consecutive_failures,
        "aof_last_write_status" => if aof.write_error.is_some() { "err" } else { "ok" },
        "aof_last_cow_size" => 0,
        "module_fork_in_progress" => 0,
        "module_fork_last_cow_size" => 0,
    );
    if aof_on {
        fields!(out,
            "aof_current_size" => aof.current_size,
            "aof_base_size" => aof.base_size,
            "aof_pending_rewrite" => u8::from(aof.rewrite_scheduled),
            "aof_buffer_length" => global.journal.buffered(),
            "aof_pending_bio_fsync" => 0,
            "aof_delayed_fsync" => 0,
        );
    }
}

fn stats(out: &mut String, facts: &Facts, global: &Global) {
    let total = facts.cores.iter().fold(CoreStats::default(), |mut t, c| {
        t.connections += c.stats.connections;
        t.rejected += c.stats.rejected;
        t.net_in += c.stats.net_in;
        t.net_out += c.stats.net_out;
        t.reads += c.stats.reads;
        t.writes += c.stats.writes;
        t.evicted_clients += c.stats.evicted_clients;
        t
    });
    let rate = |i: usize| facts.cores.iter().map(|c| c.rates[i]).sum::<f64>();
    let db = facts.shards.iter().fold(DbStats::default(), |mut t, s| {
        t.hits += s.db.hits;
        t.misses += s.db.misses;
        t.expired += s.db.expired;
        t.evicted += s.db.evicted;
        t
    });
    // Every shard samples its own keys: the server's stale share is their mean. Every shard sees
    // the same total over maxmemory: the server was over while any shard was.
    let stale = facts.shards.iter().map(|s| s.upkeep.stale).sum::<f64>() / facts.shards.len().max(1) as f64;
    let exceeded =
        facts.shards.iter().map(|s| s.upkeep.exceeded_us()).fold((0, 0), |a, b| (a.0.max(b.0), a.1.max(b.1)));
    // A channel or pattern may have subscribers on several cores: count it once.
    let distinct = |f: fn(&CoreFacts) -> &Vec<Bytes>| {
        facts.cores.iter().flat_map(|c| f(c).iter()).collect::<BTreeSet<_>>().len()
    };
    fields!(out,
        "total_connections_received" => total.connections,
        "total_commands_processed" => facts.commands.calls(),
        "instantaneous_ops_per_sec" => rate(0) as u64,
        "total_net_input_bytes" => total.net_in,
        "total_net_output_bytes" => total.net_out,
        "total_net_repl_input_bytes" => 0,
        "total_net_repl_output_bytes" => 0,
        "instantaneous_input_kbps" => format!("{:.2}", rate(1) / 1024.0),
        "instantaneous_output_kbps" => format!("{:.2}", rate(2) / 1024.0),
        "instantaneous_input_repl_kbps" => "0.00",
        "instantaneous_output_repl_kbps" => "0.00",
        "rejected_connections" => total.rejected,
        "sync_full" => global.replication().sync_full,
        "sync_partial_ok" => global.replication().sync_partial.0,
        "sync_partial_err" => global.replication().sync_partial.1,
        "expired_keys" => db.expired,
        "expired_stale_perc" => format!("{:.2}", stale * 100.0),
        "expired_time_cap_reached_count" => facts.shards.iter().map(|s| s.upkeep.time_cap_reached).sum::<u64>(),
        "expire_cycle_cpu_milliseconds" => facts.shards.iter().map(|s| s.upkeep.expire_us).sum::<u64>() / 1000,
        "evicted_keys" => db.evicted,
        "evicted_clients" => total.evicted_clients,
        "total_eviction_exceeded_time" => exceeded.0 / 1000,
        "current_eviction_exceeded_time" => exceeded.1 / 1000,
        "keyspace_hits" => db.hits,
        "keyspace_misses" => db.misses,
        "pubsub_channels" => distinct(|c| &c.channels),
        "pubsub_patterns" => distinct(|c| &c.patterns),
        "pubsubshard_channels" => distinct(|c| &c.shard_channels),
        "latest_fork_usec" => 0,
        "total_forks" => 0,
        "migrate_cached_sockets" => facts.cores.iter().map(|c| c.migrate_links).sum::<usize>(),
        "slave_expires_tracked_keys" => 0,
        "active_defrag_hits" => 0,
        "active_defrag_misses" => 0,
        "active_defrag_key_hits" => 0,
        "active_defrag_key_misses" => 0,
        "total_active_defrag_time" => 0,
        "current_active_defrag_time" => 0,
        "tracking_total_keys" => facts.shards.iter().map(|s| s.tracking.keys).sum::<u64>(),
        "tracking_total_items" => facts.shards.iter().map(|s| s.tracking.items).sum::<u64>(),
        // Every shard follows every prefix: the count is any one's.
        "tracking_total_prefixes" => facts.shards.iter().map(|s| s.tracking.prefixes).max().unwrap_or(0),
        "unexpected_error_replies" => 0,
        "total_error_replies" => facts.commands.error_replies(),
        "dump_payload_sanitizations" => 0,
        "total_reads_processed" => total.reads,
        "total_writes_processed" => total.writes,
        "io_threaded_reads_processed" => 0,
        "io_threaded_writes_processed" => 0,
        "reply_buffer_shrinks" => 0,
        "reply_buffer_expands" => 0,
    );
    for (name, count) in global.users.denials() {
        let _ = write!(out, "{name}:{count}\r\n");
    }
}

fn replication(out: &mut String, global: &Global, config: &Config) {
    let backlog = global.journal.with_backlog(|b| (b.offset(), b.first_kept(), b.histlen()));
    let st = global.replication();
    match &st.master {
        None => {
            fields!(out, "role" => "master");
        }
        Some(m) => {
            let up = m.state == LinkState::Connected;
            let offset = backlog.map_or(st.offset, |b| b.0);
            fields!(out,
                "role" => "slave",
                "master_host" => m.host,
                "master_port" => m.port,
                "master_link_status" => if up { "up" } else { "down" },
                "master_last_io_seconds_ago" => if m.synced { m.last_io.elapsed().as_secs() as i64 } else { -1 },
                "master_sync_in_progress" => u8::from(m.state == LinkState::Transfer),
                "slave_read_repl_offset" => offset,
                "slave_repl_offset" => offset,
            );
            if m.state == LinkState::Transfer {
                let (total, read, last_io) = m.transfer;
                let perc = if total > 0 { read as f64 / total as f64 * 100.0 } else { 0.0 };
                fields!(out,
                    "master_sync_total_bytes" => total,
                    "master_sync_read_bytes" => read,
                    "master_sync_left_bytes" => total as i64 - read as i64,
                    "master_sync_perc" => format!("{perc:.2}"),
                    "master_sync_last_io_seconds_ago" => last_io.elapsed().as_secs(),
                );
            }
            if !up {
                let down = m.down_since.map_or(-1, |d| d.elapsed().as_secs() as i64);
                fields!(out, "master_link_down_since_seconds" => down);
            }
            fields!(out,
                "slave_priority" => config.replica_priority,
                "slave_read_only" => u8::from(config.replica_read_only),
                "replica_announced" => u8::from(config.replica_announced),
            );
        }
    }
    fields!(out, "connected_slaves" => st.replicas.len());
    if config.min_replicas_to_write > 0 && config.min_replicas_max_lag > 0 {
        fields!(out, "min_slaves_good_slaves" => st.good(config.min_replicas_max_lag));
    }
    for (i, r) in st.replicas.iter().enumerate() {
        let online = r.state == ReplicaState::Online;
        let _ = write!(
            out,
            "slave{i}:ip={},port={},state={},offset={},lag={}\r\n",
            r.ip,
            r.port,
            r.state.name(),
            r.ack,
            if online { r.ack_at.elapsed().as_secs() } else { 0 }
        );
    }
    let (offset, first, histlen) = backlog.unwrap_or((st.offset, 0, 0));
    fields!(out,
        "master_failover_state" => st.failover_state(),
        "master_replid" => st.replid,
        "master_replid2" => st.replid2,
        "master_repl_offset" => offset,
        "second_repl_offset" => st.second_offset,
        "repl_backlog_active" => u8::from(backlog.is_some()),
        "repl_backlog_size" => config.repl_backlog_size.0,
        "repl_backlog_first_byte_offset" => first,
        "repl_backlog_histlen" => histlen,
    );
}

fn cpu(out: &mut String) {
    let (user, sys) = usage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    let (child_user, child_sys) = usage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN);
    // Every executor is a main thread: the one this INFO runs on stands for them here (the
    // Cores section has each).
    let (main_user, main_sys) = usage(nix::sys::resource::UsageWho::RUSAGE_THREAD);
    fields!(out,
        "used_cpu_sys" => format!("{sys:.6}"),
        "used_cpu_user" => format!("{user:.6}"),
        "used_cpu_sys_children" => format!("{child_sys:.6}"),
        "used_cpu_user_children" => format!("{child_user:.6}"),
        "used_cpu_sys_main_thread" => format!("{main_sys:.6}"),
        "used_cpu_user_main_thread" => format!("{main_user:.6}"),
    );
}

/// The used commands by full name (Redis prints them in its dict's order; any order parses).
fn by_name(facts: &Facts) -> BTreeMap<String, &crate::engine::stats::CommandStat> {
    let registry = crate::engine::command::registry();
    facts
        .commands
        .commands()
        .filter_map(|(id, stat)| {
            Some((registry.by_id(id)?.full_name.replace([':', '#', '\n', '\r'], "_"), stat))
        })
        .collect()
}

fn commandstats(out: &mut String, facts: &Facts) {
    for (name, c) in by_name(facts) {
        let usec = c.nanos / 1000;
        let per_call = if c.calls == 0 { 0.0 } else { c.nanos as f64 / 1000.0 / c.calls as f64 };
        let _ = write!(
            out,
            "cmdstat_{name}:calls={},usec={usec},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
            c.calls, c.rejected, c.failed
        );
    }
}

fn errorstats(out: &mut String, facts: &Facts) {
    for (prefix, count) in facts.commands.errors() {
        let _ = write!(out, "errorstat_{prefix}:count={count}\r\n");
    }
}

fn latencystats(out: &mut String, facts: &Facts) {
    if !facts.config.latency_tracking {
        return;
    }
    let percentiles = &facts.config.latency_tracking_info_percentiles.0;
    for (name, c) in by_name(facts) {
        let Some(histogram) = &c.latency else { continue };
        let values: Vec<String> = percentiles
            .iter()
            .map(|p| {
                format!("p{}={:.3}", trim_double(*p), histogram.value_at_quantile(p / 100.0) as f64 / 1000.0)
            })
            .collect();
        let _ = write!(out, "latency_percentiles_usec_{name}:{}\r\n", values.join(","));
    }
}

fn keyspace(out: &mut String, facts: &Facts) {
    for db in 0..facts.config.databases {
        let (keys, expires, ttl_sum, weighted) =
            facts.shards.iter().filter_map(|s| s.keys.get(db)).fold((0, 0, 0u64, 0u64), |a, k| {
                (a.0 + k.0, a.1 + k.1, a.2 + k.2 * k.1 as u64, a.3 + k.1 as u64)
            });
        if keys > 0 || expires > 0 {
            // Each shard's estimate, weighted by its keys with a TTL.
            let avg_ttl = ttl_sum.checked_div(weighted).unwrap_or(0);
            let _ = write!(out, "db{db}:keys={keys},expires={expires},avg_ttl={avg_ttl}\r\n");
        }
    }
}

fn cores(out: &mut String, facts: &Facts, global: &Global) {
    for (i, (c, shard)) in facts.cores.iter().zip(&facts.shards).enumerate() {
        let keys: usize = shard.keys.iter().map(|k| k.0).sum();
        let _ = write!(
            out,
            "core{i}:cpu={},clients={},keys={keys},commands={},ops_per_sec={},used_cpu_user={:.6},\
             used_cpu_sys={:.6},used_memory={},hop_messages={},hops={},hop_messages_received={},\
             hops_received={},gate_waits={},lends={},gate_handovers={},moved_in={},moved_out={}\r\n",
            global.cores.get(i).map_or(0, |c| c.cpu),
            c.stats.clients,
            c.commands.calls() + shard.commands.calls(),
            c.rates[0].round() as u64,
            c.cpu.0,
            c.cpu.1,
            c.allocated.max(0),
            c.stats.hop_messages,
            c.stats.hops,
            c.stats.hop_messages_received,
            c.stats.hops_received,
            c.stats.gate_waits,
            c.stats.lends,
            c.stats.gate_handovers,
            c.stats.moved_in,
            c.stats.moved_out,
        );
    }
}

fn tls(out: &mut String, facts: &Facts, global: &Global) {
    let sum = |f: fn(&CoreStats) -> u64| facts.cores.iter().map(|c| f(&c.stats)).sum::<u64>();
    fields!(out,
        "tls_port" => facts.config.tls_port,
        "tls_connected_clients" => sum(|s| s.tls_clients),
        "tls_handshakes_ok" => sum(|s| s.tls_handshakes),
        "tls_handshakes_failed" => sum(|s| s.tls_handshake_failures),
        "tls_handshakes_resumed" => sum(|s| s.tls_resumed),
        "tls_cert_not_after" => global.tls.not_after().unwrap_or(0),
        "tls_config_installs" => global.tls.installs(),
        "tls_buffered_bytes" => facts.cores.iter().map(|c| c.tls_buffered).sum::<usize>(),
    );
    let mut sessions: BTreeMap<&str, usize> = BTreeMap::new();
    for kind in facts.cores.iter().flat_map(|c| &c.tls_sessions) {
        *sessions.entry(kind).or_default() += 1;
    }
    for (kind, n) in sessions {
        let (version, cipher) = kind.split_once(' ').unwrap_or((kind, ""));
        let _ = write!(out, "tls_clients_by_session:version={version},cipher={cipher},clients={n}\r\n");
    }
    for (i, c) in facts.cores.iter().enumerate() {
        let _ = write!(
            out,
            "core{i}:tls_clients={},handshakes_ok={},handshakes_failed={},handshakes_resumed={},\
             buffered_bytes={}\r\n",
            c.stats.tls_clients,
            c.stats.tls_handshakes,
            c.stats.tls_handshake_failures,
            c.stats.tls_resumed,
            c.tls_buffered
        );
    }
}

/// Redis's `bytesToHuman`.
fn human(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut value = n as f64 / 1024.0;
    for unit in UNITS {
        if value < 1024.0 {
            return format!("{value:.2}{unit}");
        }
        value /= 1024.0;
    }
    format!("{n}B")
}

/// A build id as Redis prints its own: lowercase hex, unpadded, from the version.
fn build_id() -> String {
    let seed = env!("CARGO_PKG_VERSION")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{:x}", crate::num::splitmix(seed))
}

/// `sysname release machine`, as uname reports them.
fn os() -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let sysname = std::fs::read_to_string("/proc/sys/kernel/ostype").unwrap_or_else(|_| "Linux".into());
    format!("{} {} {}", sysname.trim(), release.trim(), std::env::consts::ARCH)
}

/// Physical memory, from /proc/meminfo.
fn total_system_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

fn usage(who: nix::sys::resource::UsageWho) -> (f64, f64) {
    nix::sys::resource::getrusage(who).map_or((0.0, 0.0), |u| {
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        (secs(u.user_time()), secs(u.system_time()))
    })
}

/// Resident set size, from /proc (a memory read of kernel state, not disk I/O).
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()))
        .map_or(0, |pages| pages * 4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_redis_prints_them() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(990_432), "967.22K");
        assert_eq!(human(32 * 1024), "32.00K");
        assert_eq!(human(3 << 30), "3.00G");
    }

    #[test]
    fn sections_are_selected_as_redis_selects_them() {
        let sel = |args: &[&str]| {
            let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
            let s = Selection::parse(&args);
            SECTIONS.iter().filter(|(k, _, _)| s.wants(k)).map(|(k, _, _)| *k).collect::<Vec<_>>()
        };
        assert!(!sel(&[]).contains(&"commandstats"));
        assert!(sel(&[]).contains(&"errorstats"));
        assert_eq!(sel(&["all"]).len(), SECTIONS.len());
        assert_eq!(sel(&["KEYSPACE", "server", "cpu"]), vec!["server", "cpu", "keyspace"]);
        assert_eq!(sel(&["module_list"]), vec!["modules"]);
        assert!(sel(&["nosuch"]).is_empty());
        assert!(sel(&["default", "commandstats"]).contains(&"commandstats"));
    }
}
