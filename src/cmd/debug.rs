//! DEBUG: the subcommands tools and test suites use (RELOAD, OBJECT, SLEEP,
//! SET-ACTIVE-EXPIRE, HELP); Redis's others are refused by name. All are refused unless
//! `enable-debug-command` allows them (Redis 7.0's default is `no`; `local` allows loopback
//! clients).

use bytes::Bytes;

use crate::cmd::args::is;
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::snapshot;
use crate::engine::spec::flag;
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![Command::session("debug", -2, |s, a| Box::pin(debug(s, a)))
        .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
        .docs("server", "1.0.0", "Depends on subcommand.", "A container for debugging commands")
        .syscmd()
        // DEBUG SLEEP holds every shard: inside EXEC, the transaction must take them all.
        .fan_out()]
}

/// DEBUG subcommand [argument ...]
async fn debug(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let allowed = match s.core.config().enable_debug_command.as_str() {
        "yes" => true,
        "local" => s.client.addr.ip().is_loopback(),
        _ => false,
    };
    if !allowed {
        return Err(CmdError::msg(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it \
             from a local connection, otherwise you need to set this option in the configuration file, and then \
             restart the server.",
        ));
    }
    let sub = &args[1];
    match args.len() {
        2 if is(sub, "help") => Ok(help()),
        _ if is(sub, "reload") => reload(s, &args[2..]).await,
        3 if is(sub, "object") => object(s, args[2].clone()).await,
        3 if is(sub, "sleep") => sleep(s, &args[2]).await,
        3 if is(sub, "set-active-expire") => {
            s.core.global.set_active_expire(atoi(&args[2]) != 0);
            Ok(Reply::Ok)
        }
        _ if NOT_SUPPORTED.iter().any(|name| is(sub, name)) => Err(CmdError::text(format!(
            "ERR DEBUG {} is not supported by ferrokey",
            String::from_utf8_lossy(&sub[..sub.len().min(64)]).to_ascii_uppercase()
        ))),
        _ => Err(CmdError::subcommand_syntax("debug", sub)),
    }
}

/// Redis 7.0's DEBUG subcommands that ferrokey does not have: crashing on purpose, allocator and
/// encoding internals of Redis's own structures, and test hooks for code ferrokey does not
/// share. A tool that sends one learns so by name.
const NOT_SUPPORTED: &[&str] = &[
    "segfault",
    "panic",
    "restart",
    "crash-and-recover",
    "assert",
    "log",
    "leak",
    "oom",
    "protocol",
    "sdslen",
    "ziplist",
    "listpack",
    "quicklist-packed-threshold",
    "stringmatch-len",
    "change-repl-id",
    "jmap",
    "digest",
    "digest-value",
    "populate",
    "mallctl",
    "mallctl-str",
    "set-skip-checksum-validation",
    "set-active-defrag",
    "aof-flush-sleep",
    "replicate",
    "script",
    "sleep-ms",
    "client-eviction",
    "pause-cron",
    "listpack-entries",
    "error",
    "dict-resizing",
    "set-disable-deny-scripts",
    "config-rewrite-force-all",
    "clusterlink",
    "object-fresh",
];

/// DEBUG HELP: the subcommands ferrokey has.
fn help() -> Reply {
    crate::cmd::args::help(
        "DEBUG",
        &[
            "OBJECT <key>",
            "    Show low level info about the `key` and associated value.",
            "RELOAD [option ...]",
            "    Save the RDB on disk and reload it back to memory. Options: MERGE, NOFLUSH,",
            "    NOSAVE (see Redis's DEBUG HELP).",
            "SET-ACTIVE-EXPIRE <0|1>",
            "    Setting it to 0 disables expiring keys in background when they are not",
            "    accessed (otherwise the Redis behavior). Setting it to 1 reenables back the",
            "    default.",
            "SLEEP <seconds>",
            "    Stop the server for <seconds>. Decimals allowed.",
        ],
    )
}

/// C's `atoi`: optional blanks and sign, then digits while they last (0 when none).
fn atoi(text: &[u8]) -> i64 {
    let text = text.trim_ascii_start();
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let n = digits
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0i64, |n, d| n.wrapping_mul(10).wrapping_add(i64::from(d - b'0')));
    if negative {
        n.wrapping_neg()
    } else {
        n
    }
}

/// C's `strtod` as Redis calls it: the longest prefix that is a number (0 when none).
fn strtod(text: &[u8]) -> f64 {
    let text = std::str::from_utf8(&text[..text.len().min(64)]).unwrap_or("").trim_start();
    (1..=text.len()).rev().find_map(|n| text.get(..n)?.parse::<f64>().ok()).unwrap_or(0.0)
}

/// DEBUG SLEEP seconds: the server does nothing for that long, as Redis's single thread does.
/// Every shard's executor sleeps at once, inside one transaction over all of them, so no
/// command of any client runs meanwhile. Zero, negative or not a number: no sleep (`nanosleep`
/// refuses a negative time).
async fn sleep(s: &mut Session, seconds: &[u8]) -> CmdResult {
    let micros = crate::storage::geohash::c_to_i64(strtod(seconds) * 1_000_000.0);
    if micros > 0 {
        let until = std::time::Instant::now() + std::time::Duration::from_micros(micros as u64);
        // Two shards of one core sleep one after the other: each sleeps until the same moment.
        crate::cmd::server::on_every_shard(s, None, |_| {
            move |_: &mut crate::engine::shard::Shard| {
                std::thread::sleep(until.saturating_duration_since(std::time::Instant::now()))
            }
        })
        .await?;
    }
    Ok(Reply::Ok)
}

/// DEBUG OBJECT key: Redis's line about a value (`Value at`, `refcount`, `encoding`, the
/// length its dump would take, the access clock, and for a list its quicklist's nodes), read
/// without counting as an access.
async fn object(s: &mut Session, key: Bytes) -> CmdResult {
    let config = s.core.config();
    let (compress, fill, compressed) =
        (config.rdbcompression, config.list_max_listpack_size, config.list_compress_depth != 0);
    let shard = s.core.router.shard_of(&key);
    s.on_db(shard, move |ctx| {
        let now = ctx.now;
        let entry = ctx.db.read_unnoticed(&key, now).ok_or(CmdError::msg("ERR no such key"))?;
        let value = &entry.value;
        let mut dump = Vec::new();
        crate::storage::rdb::write_value(&mut dump, value, compress);
        let clock = entry.access();
        let lru = match crate::storage::clock::core_mode() {
            crate::storage::clock::Mode::Lru => (clock / 100) & 0xFF_FFFF,
            crate::storage::clock::Mode::Lfu { .. } => clock & 0xFF_FFFF,
        };
        let mut extra = String::new();
        if let crate::storage::db::Value::List(list, ..) = value {
            let nodes = crate::storage::rdb::list_nodes(list);
            let size: usize = nodes.iter().map(Vec::len).sum();
            let avg = list.len() as f64 / nodes.len().max(1) as f64;
            extra = format!(
                " ql_nodes:{} ql_avg_node:{avg:.2} ql_listpack_max:{fill} ql_compressed:{} ql_uncompressed_size:{size}",
                nodes.len(),
                i32::from(compressed)
            );
        }
        Ok(Reply::Status(
            format!(
                "Value at:{:p} refcount:{} encoding:{} serializedlength:{} lru:{lru} lru_seconds_idle:{}{extra}",
                std::ptr::from_ref(value),
                crate::cmd::generic::refcount(value),
                crate::cmd::generic::encoding(value),
                dump.len().saturating_sub(1),
                crate::storage::clock::idle_ms(clock, now) / 1000,
            )
            .into(),
        ))
    })
    .await
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves, empties every database and loads the file
/// back (MERGE is accepted: a loaded key always replaces one of the same name; Redis without
/// MERGE stops on a duplicate).
async fn reload(s: &mut Session, options: &[Bytes]) -> CmdResult {
    let (mut noflush, mut nosave) = (false, false);
    for o in options {
        if is(o, "noflush") {
            noflush = true;
        } else if is(o, "nosave") {
            nosave = true;
        } else if !is(o, "merge") {
            return Err(CmdError::msg(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    match snapshot::reload(&s.core, nosave, noflush).await {
        Ok(()) => Ok(Reply::Ok),
        Err(None) => Err(CmdError::msg("ERR")),
        Err(Some(reason)) => {
            tracing::warn!("DEBUG RELOAD: {reason}");
            Err(CmdError::msg("ERR Error trying to load the RDB dump"))
        }
    }
}
