//! Server commands: INFO, CONFIG, COMMAND, DBSIZE, FLUSHDB, FLUSHALL, TIME, SHUTDOWN.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;

use crate::cmd::args::{is, unknown_subcommand, wrong_args, SYNTAX};
use crate::engine::command::{self, Command, COMMANDS};
use crate::engine::core::CoreStats;
use crate::engine::session::{Session, UNAVAILABLE};
use crate::engine::slot::ShardId;
use crate::facade::Reply;
use crate::storage::db::DbStats;

/// TIME: Unix seconds and microseconds, as two bulk strings.
#[must_use]
pub fn time() -> Reply {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Reply::Array(vec![Reply::bulk(now.as_secs().to_string()), Reply::bulk(now.subsec_micros().to_string())])
}

/// DBSIZE: keys in the selected database, on every shard.
pub async fn dbsize(s: &Session) -> Reply {
    let db = s.db;
    match s.each_shard(move |shard| shard.dbs()[db].len()).await {
        Ok(sizes) => Reply::Int(sizes.into_iter().sum::<usize>() as i64),
        Err(_) => UNAVAILABLE,
    }
}

/// FLUSHDB / FLUSHALL [ASYNC | SYNC]: atomic across shards (every gate is held at once).
pub async fn flush(s: &Session, args: &[Bytes]) -> Reply {
    if args.len() > 2 || args.get(1).is_some_and(|a| !is(a, "async") && !is(a, "sync")) {
        return SYNTAX;
    }
    let all = is(&args[0], "flushall");
    let db = s.db;
    let wipe = move |sh: &mut crate::engine::shard::Shard| {
        for (i, d) in sh.dbs().iter_mut().enumerate() {
            if all || i == db {
                d.clear();
            }
        }
    };
    // Inside EXEC every shard is already held: wipe through that transaction.
    if s.exec_tx.is_some() {
        return match s.each_shard(wipe).await {
            Ok(_) => Reply::Ok,
            Err(_) => UNAVAILABLE,
        };
    }
    let router = &s.core.router;
    let shards = (0..router.shards()).map(ShardId).collect();
    let Ok(tx) = router.begin(shards).await else { return UNAVAILABLE };
    let work = tx.shards().iter().map(|&shard| (shard, wipe)).collect();
    if tx.finish(work).await.iter().any(Result::is_err) {
        return UNAVAILABLE;
    }
    Reply::Ok
}

/// SHUTDOWN [NOSAVE | SAVE] [NOW] [FORCE] [ABORT]: stops every core. On success the caller
/// gets no reply (`None`): Redis just closes the connection.
pub fn shutdown(s: &mut Session, args: &[Bytes]) -> Option<Reply> {
    for a in &args[1..] {
        if is(a, "abort") {
            return Some(Reply::error("ERR No shutdown in progress."));
        }
        if !["nosave", "save", "now", "force"].iter().any(|w| is(a, w)) {
            return Some(SYNTAX);
        }
    }
    tracing::warn!(client = s.client.id, "User requested shutdown...");
    s.core.global.request_shutdown();
    s.closing = true;
    None
}

/// CONFIG GET | SET | RESETSTAT | HELP
pub async fn config(s: &Session, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_lowercase();
    match sub.as_str() {
        "get" if args.len() >= 3 => {
            let patterns: Vec<&[u8]> = args[2..].iter().map(|a| &a[..]).collect();
            let config = s.core.config();
            Reply::Map(
                config
                    .get(&patterns)
                    .into_iter()
                    .map(|(name, value)| (Reply::bulk(name), Reply::bulk(value)))
                    .collect(),
            )
        }
        "set" if args.len() >= 4 && args.len() % 2 == 0 => {
            let pairs: Vec<(String, String)> = args[2..]
                .chunks_exact(2)
                .map(|p| {
                    (String::from_utf8_lossy(&p[0]).into_owned(), String::from_utf8_lossy(&p[1]).into_owned())
                })
                .collect();
            let global = &s.core.global;
            let before = global.listen_generation();
            if let Err(e) = global.set_config(&pairs) {
                return Reply::Error(format!("ERR {e}").into());
            }
            // As in Redis, the new ports listen once OK is sent. The cores rebind on their own
            // loop turn (within 20 ms); a core that takes longer than a second is left to it.
            let generation = global.listen_generation();
            let deadline = std::time::Instant::now() + Duration::from_secs(1);
            while generation != before
                && !global.all_bound(generation)
                && std::time::Instant::now() < deadline
            {
                glommio::timer::Timer::new(Duration::from_millis(1)).await;
            }
            Reply::Ok
        }
        "resetstat" if args.len() == 2 => {
            // Counters restart from zero on every core; gauges (connected clients) stay.
            let reset = s
                .each_shard(|shard| {
                    shard.stats = CoreStats {
                        clients: shard.stats.clients,
                        tls_clients: shard.stats.tls_clients,
                        ..CoreStats::default()
                    };
                    shard.dbs().iter_mut().for_each(|db| db.stats = DbStats::default());
                })
                .await;
            if reset.is_err() {
                return UNAVAILABLE;
            }
            Reply::Ok
        }
        "help" if args.len() == 2 => Reply::Array(
            [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
            ]
            .map(|l| Reply::Status(l.into()))
            .to_vec(),
        ),
        "get" | "set" | "resetstat" | "help" => wrong_args(&format!("config|{sub}")),
        _ => unknown_subcommand("CONFIG", &args[1]),
    }
}

/// COMMAND [COUNT | LIST | INFO name... | DOCS name...]
#[must_use]
pub fn command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.get(1) else {
        return Reply::Array(COMMANDS.iter().map(info_of).collect());
    };
    let named = || args[2..].iter().map(|n| command::lookup(n));
    match () {
        () if is(sub, "count") && args.len() == 2 => Reply::Int(COMMANDS.len() as i64),
        () if is(sub, "list") => Reply::Array(COMMANDS.iter().map(|c| Reply::bulk(c.name)).collect()),
        () if is(sub, "info") => {
            if args.len() == 2 {
                return Reply::Array(COMMANDS.iter().map(info_of).collect());
            }
            Reply::Array(named().map(|c| c.map_or(Reply::NilArray, info_of)).collect())
        }
        () if is(sub, "docs") => {
            let docs: Vec<&Command> =
                if args.len() == 2 { COMMANDS.iter().collect() } else { named().flatten().collect() };
            Reply::Map(docs.into_iter().map(|c| (Reply::bulk(c.name), docs_of(c))).collect())
        }
        () if ["count", "list", "info", "docs", "help"].iter().any(|w| is(sub, w)) => {
            wrong_args(&format!("command|{}", String::from_utf8_lossy(sub).to_lowercase()))
        }
        () => unknown_subcommand("COMMAND", sub),
    }
}

fn info_of(c: &Command) -> Reply {
    let category = match c.group {
        "string" => "@string",
        "generic" => "@keyspace",
        "connection" => "@connection",
        _ => "@admin",
    };
    Reply::Array(vec![
        Reply::bulk(c.name),
        Reply::Int(i64::from(c.arity)),
        Reply::Set(c.flags.iter().map(|f| Reply::status(f)).collect()),
        Reply::Int(i64::from(c.first_key)),
        Reply::Int(i64::from(c.last_key)),
        Reply::Int(i64::from(c.step)),
        Reply::Set(vec![Reply::status(category)]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn docs_of(c: &Command) -> Reply {
    Reply::Map(vec![
        (Reply::bulk("summary"), Reply::bulk(c.summary)),
        (Reply::bulk("since"), Reply::bulk(c.since)),
        (Reply::bulk("group"), Reply::bulk(c.group)),
    ])
}

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
pub async fn info(s: &Session, args: &[Bytes]) -> Reply {
    let wanted: Vec<String> = args[1..].iter().map(|a| String::from_utf8_lossy(a).to_lowercase()).collect();
    let all = wanted.is_empty() || wanted.iter().any(|w| w == "all" || w == "everything" || w == "default");
    let want = |section: &str| all || wanted.iter().any(|w| w == section);
    let reports = s
        .each_shard(|shard| CoreReport {
            cpu: thread_cpu(),
            blocked: shard.clients.values().filter(|c| c.is_blocked()).count(),
            tls_sessions: shard
                .clients
                .values()
                .filter_map(|c| c.tls.as_ref().map(|t| format!("{} {}", t.version, t.cipher)))
                .collect(),
            tls_buffered: shard.clients.values().map(|c| c.tls_buffered.get()).sum(),
            allocated: crate::memory::here(),
            stats: shard.stats,
            db: shard.stats(),
            keys: shard.dbs().iter().map(|d| (d.len(), d.expires_len())).collect(),
        })
        .await;
    let Ok(reports) = reports else { return UNAVAILABLE };
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
    Reply::Verbatim(out)
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
