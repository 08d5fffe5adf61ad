//! MEMORY: USAGE (what a key holds), STATS and DOCTOR (the server's memory, as INFO's memory
//! section splits it), MALLOC-STATS, PURGE, HELP. Redis 7.0's replies and texts.

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::info::{self, MemoryFigures};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::shard::Ctx;
use crate::engine::spec::{flag, key, KeySpec};
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![Command::container(
        "memory",
        -2,
        vec![
            Command::shard("usage", -3, usage)
                .flags(flag::READONLY)
                .key(KeySpec::index(2).range(0, 1, 0).flags(key::RO))
                .docs(
                    "server",
                    "4.0.0",
                    "O(N) where N is the number of samples.",
                    "Estimate the memory usage of a key",
                ),
            Command::session("stats", 2, |s, _| Box::pin(stats(s)))
                .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
                .docs("server", "4.0.0", "O(1)", "Show memory usage details"),
            Command::session("doctor", 2, |s, _| Box::pin(doctor(s)))
                .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
                .docs("server", "4.0.0", "O(1)", "Outputs memory problems report"),
            Command::inline("malloc-stats", 2, |_, _| {
                Ok(Reply::Verbatim("Stats not supported for the current allocator".into()))
            })
            .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
            .docs(
                "server",
                "4.0.0",
                "Depends on how much memory is allocated, could be slow",
                "Show allocator internal stats",
            ),
            Command::inline("purge", 2, |_, _| Ok(Reply::Ok))
                .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
                .docs(
                    "server",
                    "4.0.0",
                    "Depends on how much memory is allocated, could be slow",
                    "Ask the allocator to release memory",
                ),
            Command::inline("help", 2, |_, _| Ok(help())).flags(flag::LOADING | flag::STALE).docs(
                "server",
                "4.0.0",
                "O(1)",
                "Show helpful text about the different subcommands",
            ),
        ],
    )
    .docs("server", "4.0.0", "Depends on subcommand.", "A container for memory diagnostics commands")]
}

/// MEMORY USAGE key [SAMPLES count]: the options are checked before the key is looked up.
fn usage(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut samples = 5usize;
    let mut i = 3;
    while i < args.len() {
        if is(&args[i], "samples") && i + 1 < args.len() {
            let n = args::int(&args[i + 1])?;
            if n < 0 {
                return Err(CmdError::Syntax);
            }
            samples = if n == 0 { usize::MAX } else { usize::try_from(n).unwrap_or(usize::MAX) };
            i += 2;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now;
    let Some(entry) = ctx.db.read_unnoticed(&args[2], now) else { return Ok(Reply::Nil) };
    Ok(Reply::Int(crate::storage::footprint::of_key(&args[2], entry, samples) as i64))
}

/// MEMORY STATS: Redis's 27 fields and one map per database with keys, in its order.
async fn stats(s: &mut Session) -> CmdResult {
    let m = info::memory_figures(s).await?;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let int = |n: u64| Reply::Int(i64::try_from(n).unwrap_or(i64::MAX));
    let signed = |a: u64, b: u64| Reply::Int(a as i64 - b as i64);
    let mut fields: Vec<(&str, Reply)> = vec![
        ("peak.allocated", int(m.peak)),
        ("total.allocated", int(m.used)),
        ("startup.allocated", int(m.startup)),
        ("replication.backlog", int(m.backlog)),
        ("clients.slaves", int(m.replicas)),
        ("clients.normal", int(m.clients)),
        ("cluster.links", int(0)),
        ("aof.buffer", int(0)),
        ("lua.caches", int(0)),
        ("functions.caches", int(0)),
    ];
    let dbs: Vec<(String, Reply)> = m
        .dbs
        .iter()
        .map(|&(db, main, expires)| {
            let map = Reply::Map(vec![
                (Reply::bulk("overhead.hashtable.main"), int(main)),
                (Reply::bulk("overhead.hashtable.expires"), int(expires)),
                (Reply::bulk("overhead.hashtable.slot-to-keys"), int(0)),
            ]);
            (format!("db.{db}"), map)
        })
        .collect();
    let net = m.used.saturating_sub(m.startup).max(1);
    // Redis computes the percentages in single precision.
    let float = |x: f64| Reply::Double(f64::from(x as f32));
    let rest: Vec<(&str, Reply)> = vec![
        ("overhead.total", int(m.overhead)),
        ("keys.count", int(m.keys)),
        ("keys.bytes-per-key", int(net.checked_div(m.keys).unwrap_or(0))),
        ("dataset.bytes", int(m.dataset)),
        ("dataset.percentage", float(ratio(m.dataset * 100, net))),
        ("peak.percentage", float(ratio(m.used * 100, m.peak))),
        // mimalloc keeps no statistics of its own here: what ferrokey counts is what it holds.
        ("allocator.allocated", int(m.used)),
        ("allocator.active", int(m.used)),
        ("allocator.resident", int(m.rss)),
        ("allocator-fragmentation.ratio", float(1.0)),
        ("allocator-fragmentation.bytes", int(0)),
        ("allocator-rss.ratio", float(ratio(m.rss, m.used))),
        ("allocator-rss.bytes", signed(m.rss, m.used)),
        ("rss-overhead.ratio", float(1.0)),
        ("rss-overhead.bytes", int(0)),
        ("fragmentation", float(ratio(m.rss, m.used))),
        ("fragmentation.bytes", signed(m.rss, m.used)),
    ];
    let mut map: Vec<(Reply, Reply)> = fields.drain(..).map(|(k, v)| (Reply::bulk(k), v)).collect();
    map.extend(dbs.into_iter().map(|(k, v)| (Reply::Bulk(Bytes::from(k)), v)));
    map.extend(rest.into_iter().map(|(k, v)| (Reply::bulk(k), v)));
    Ok(Reply::Map(map))
}

/// MEMORY DOCTOR: Redis's report, by its conditions and in its words.
async fn doctor(s: &mut Session) -> CmdResult {
    let m = info::memory_figures(s).await?;
    Ok(Reply::Verbatim(report(&m)))
}

/// The doctor's report on `m`.
fn report(m: &MemoryFigures) -> String {
    if m.used < 5 << 20 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in \
                these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I \
                will be back to our programming as soon as I finished rebooting.\n"
            .into();
    }
    let frag = if m.used == 0 { 1.0 } else { m.rss as f64 / m.used as f64 };
    let frag_bytes = m.rss.saturating_sub(m.used);
    let issues = [
        (
            m.peak as f64 / m.used as f64 > 1.5,
            " * Peak memory: In the past this instance used more than 150% the memory that is currently using. The \
             allocator is normally not able to release memory after a peak, so you can expect to see a big \
             fragmentation ratio, however this is actually harmless and is only due to the memory peak, and if the \
             Redis instance Resident Set Size (RSS) is currently bigger than expected, the memory will be used as \
             soon as you fill the Redis instance with more data. If the memory peak was only occasional and you want \
             to try to reclaim memory, please try the MEMORY PURGE command, otherwise the only other option is to \
             shutdown and restart the instance.\n\n"
                .to_owned(),
        ),
        (
            frag > 1.4 && frag_bytes > 10 << 20,
            " * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means \
             that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations \
             Redis performed). This problem is usually due either to a large peak memory (check if there is a peak \
             memory entry above in the report) or may result from a workload that causes the allocator to fragment \
             memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are \
             using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \
             \"mimalloc\".\n\n"
                .to_owned(),
        ),
        (
            m.replica_count > 0 && m.replicas > 10 << 20,
            " * Big replica buffers: The replica output buffers in this instance are greater than 10MB for each replica \
             (on average). This likely means that there is some replica instance that is struggling receiving data, \
             either because it is too slow or because of networking issues. As a result, data piles on the master \
             output buffers. Please try to identify what replica is not receiving data correctly and why. You can use \
             the INFO output in order to check the replicas delays and the CLIENT LIST command to check the output \
             buffers of each replica.\n\n"
                .to_owned(),
        ),
        (
            m.client_count > 0 && m.clients / m.client_count > 200 << 10,
            " * Big client buffers: The clients output buffers in this instance are greater than 200K per client (on \
             average). This may result from different causes, like Pub/Sub clients subscribed to channels bot not \
             receiving data fast enough, so that data piles on the Redis instance output buffer, or clients sending \
             commands with large replies or very large sequences of commands in the same pipeline. Please use the \
             CLIENT LIST command in order to investigate the issue if it causes problems in your instance, or to \
             understand better why certain clients are using a big amount of memory.\n\n"
                .to_owned(),
        ),
    ];
    let found: Vec<&String> = issues.iter().filter(|(on, _)| *on).map(|(_, text)| text).collect();
    if found.is_empty() {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this \
                base.\n"
            .into();
    }
    let mut out = String::from("Sam, I detected a few issues in this Redis instance memory implants:\n\n");
    found.iter().for_each(|t| out.push_str(t));
    out.push_str("I'm here to keep you safe, Sam. I want to help you.\n");
    out
}

/// MEMORY HELP
fn help() -> Reply {
    args::help(
        "MEMORY",
        &[
            "DOCTOR",
            "    Return memory problems reports.",
            "MALLOC-STATS",
            "    Return internal statistics report from the memory allocator.",
            "PURGE",
            "    Attempt to purge dirty pages for reclamation by the allocator.",
            "STATS",
            "    Return information about the memory usage of the server.",
            "USAGE <key> [SAMPLES <count>]",
            "    Return memory in bytes used by <key> and its value. Nested values are",
            "    sampled up to <count> times (default: 5, 0 means sample all).",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(used: u64, peak: u64) -> MemoryFigures {
        MemoryFigures {
            used,
            peak,
            startup: 1 << 20,
            backlog: 0,
            replicas: 0,
            clients: 0,
            replica_count: 0,
            client_count: 1,
            dbs: Vec::new(),
            overhead: 1 << 20,
            dataset: used - (1 << 20),
            keys: 0,
            rss: used,
        }
    }

    #[test]
    fn the_doctor_speaks_as_redis() {
        assert!(report(&figures(2 << 20, 2 << 20)).starts_with("Hi Sam, this instance is empty"));
        assert!(report(&figures(64 << 20, 64 << 20)).starts_with("Hi Sam, I can't find any memory issue"));
        let peaked = report(&figures(64 << 20, 200 << 20));
        assert!(peaked.starts_with("Sam, I detected a few issues") && peaked.contains(" * Peak memory:"));
        assert!(peaked.ends_with("I'm here to keep you safe, Sam. I want to help you.\n"));
    }
}
