//! INFO: the server's state and counters, summed over cores, in Redis's sections.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::local::CoreStats;
use crate::engine::session::Session;
use crate::facade::Reply;
use crate::storage::db::DbStats;

/// What one core reports for INFO.
struct CoreReport {
    cpu: (f64, f64),
    blocked: usize,
    stats: CoreStats,
    db: DbStats,
    keys: Vec<(usize, usize)>,
    /// TLS clients by "version cipher".
    tls_sessions: Vec<String>,
    /// Bytes rustls holds for this core's clients.
    tls_buffered: usize,
    /// This core's allocation counter (see [`crate::memory`]).
    allocated: isize,
}

/// INFO [section ...]
pub(crate) async fn info(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let wanted: Vec<String> = args[1..].iter().map(|a| String::from_utf8_lossy(a).to_lowercase()).collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
    let want = |section: &str| all || wanted.iter().any(|w| w == section);
    let cores = s
        .core
        .router
        .each_core(|local| {
            let clients = local.clients.borrow();
            CoreReport {
                cpu: thread_cpu(),
                blocked: clients.values().filter(|c| c.is_blocked()).count(),
                tls_sessions: clients
                    .values()
                    .filter_map(|c| c.tls.as_ref().map(|t| format!("{} {}", t.version, t.cipher)))
                    .collect(),
                tls_buffered: clients.values().map(|c| c.tls_buffered.get()).sum(),
                allocated: crate::memory::here(),
                stats: *local.stats.borrow(),
                db: DbStats::default(),
                keys: Vec::new(),
            }
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    let shards = s
        .each_shard(|shard| {
            (shard.stats(), shard.dbs().iter().map(|d| (d.len(), d.expires_len())).collect::<Vec<_>>())
        })
        .await?;
    let reports: Vec<CoreReport> = cores
        .into_iter()
        .zip(shards)
        .map(|(mut r, (db, keys))| {
            r.db = db;
            r.keys = keys;
            r
        })
        .collect();
    let total = reports.iter().fold(CoreStats::default(), |mut t, r| {
        t.connections += r.stats.connections;
        t.rejected += r.stats.rejected;
        t.commands += r.stats.commands;
        t.net_in += r.stats.net_in;
        t.net_out += r.stats.net_out;
        t.clients += r.stats.clients;
        t.tls_handshakes += r.stats.tls_handshakes;
        t.tls_handshake_failures += r.stats.tls_handshake_failures;
        t.tls_resumed += r.stats.tls_resumed;
        t.tls_clients += r.stats.tls_clients;
        t
    });
    let config = s.core.config();
    let global = &s.core.global;
    let uptime = global.started.elapsed().as_secs();
    let mut out = String::new();
    let mut section = |name: &str, body: String| {
        if want(&name.to_lowercase()) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let _ = write!(out, "# {name}\r\n{body}");
        }
    };
    section(
        "Server",
        format!(
            "redis_version:{}\r\nferrokey_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\n\
             arch_bits:64\r\nmultiplexing_api:io_uring\r\nprocess_id:{}\r\nrun_id:{}\r\n\
             tcp_port:{}\r\ntls_port:{}\r\nuptime_in_seconds:{}\r\nuptime_in_days:{}\r\nhz:{}\r\n\
             executors:{}\r\nconfig_file:\r\n",
            crate::REDIS_VERSION,
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::process::id(),
            global.run_id,
            config.port,
            config.tls_port,
            uptime,
            uptime / 86400,
            config.hz,
            global.cores.len(),
        ),
    );
    section(
        "Clients",
        format!(
            "connected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n",
            total.clients,
            config.maxclients,
            reports.iter().map(|r| r.blocked).sum::<usize>()
        ),
    );
    let rss = rss_bytes();
    let used = crate::memory::used(reports.iter().map(|r| r.allocated));
    let mib = |b: u64| b as f64 / 1048576.0;
    section(
        "Memory",
        format!(
            "used_memory:{used}\r\nused_memory_human:{:.2}M\r\nused_memory_rss:{rss}\r\n\
             used_memory_rss_human:{:.2}M\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\n\
             maxmemory_policy:noeviction\r\nmem_fragmentation_ratio:{:.2}\r\nmem_allocator:mimalloc\r\n",
            mib(used),
            mib(rss),
            if used > 0 { rss as f64 / used as f64 } else { 0.0 },
        ),
    );
    let (hits, misses, expired) =
        reports.iter().fold((0, 0, 0), |a, r| (a.0 + r.db.hits, a.1 + r.db.misses, a.2 + r.db.expired));
    section(
        "Stats",
        format!(
            "total_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
             total_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\n\
             expired_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\n",
            total.connections,
            total.commands,
            total.net_in,
            total.net_out,
            total.rejected,
            expired,
            hits,
            misses
        ),
    );
    let (user, sys) = process_cpu();
    section("CPU", format!("used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\n"));
    let mut cores = String::new();
    for (i, r) in reports.iter().enumerate() {
        let keys: usize = r.keys.iter().map(|k| k.0).sum();
        let _ = write!(
            cores,
            "core{i}:cpu={},clients={},keys={keys},commands={},used_cpu_user={:.6},used_cpu_sys={:.6}\r\n",
            global.cores.get(i).map_or(0, |c| c.cpu),
            r.stats.clients,
            r.stats.commands,
            r.cpu.0,
            r.cpu.1,
        );
    }
    section("Cores", cores);
    let mut tls = format!(
        "tls_port:{}\r\ntls_connected_clients:{}\r\ntls_handshakes_ok:{}\r\ntls_handshakes_failed:{}\r\n\
         tls_handshakes_resumed:{}\r\ntls_cert_not_after:{}\r\ntls_config_installs:{}\r\ntls_buffered_bytes:{}\r\n",
        config.tls_port,
        total.tls_clients,
        total.tls_handshakes,
        total.tls_handshake_failures,
        total.tls_resumed,
        global.tls.not_after().unwrap_or(0),
        global.tls.installs(),
        reports.iter().map(|r| r.tls_buffered).sum::<usize>(),
    );
    let mut sessions: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for kind in reports.iter().flat_map(|r| &r.tls_sessions) {
        *sessions.entry(kind).or_default() += 1;
    }
    for (kind, n) in sessions {
        let (version, cipher) = kind.split_once(' ').unwrap_or((kind, ""));
        let _ = write!(tls, "tls_clients_by_session:version={version},cipher={cipher},clients={n}\r\n");
    }
    for (i, r) in reports.iter().enumerate() {
        let _ = write!(
            tls,
            "core{i}:tls_clients={},handshakes_ok={},handshakes_failed={},handshakes_resumed={},\
             buffered_bytes={}\r\n",
            r.stats.tls_clients,
            r.stats.tls_handshakes,
            r.stats.tls_handshake_failures,
            r.stats.tls_resumed,
            r.tls_buffered
        );
    }
    section("TLS", tls);
    let mut keyspace = String::new();
    for db in 0..config.databases {
        let (keys, expires) =
            reports.iter().filter_map(|r| r.keys.get(db)).fold((0, 0), |a, k| (a.0 + k.0, a.1 + k.1));
        if keys > 0 {
            let _ = write!(keyspace, "db{db}:keys={keys},expires={expires},avg_ttl=0\r\n");
        }
    }
    section("Keyspace", keyspace);
    Ok(Reply::Verbatim(out))
}

/// (user, system) CPU seconds of the calling thread.
fn thread_cpu() -> (f64, f64) {
    usage(nix::sys::resource::UsageWho::RUSAGE_THREAD)
}

fn process_cpu() -> (f64, f64) {
    usage(nix::sys::resource::UsageWho::RUSAGE_SELF)
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
