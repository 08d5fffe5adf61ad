//! LATENCY LATEST / HISTORY / RESET / GRAPH / DOCTOR / HISTOGRAM / HELP: the latency monitor's
//! events (see [`crate::engine::latency`]) and the commands' latency histograms (kept while
//! `latency-tracking` is on, see [`crate::engine::stats`]), with Redis 7.0's replies: its graph
//! (`sparkline.c`) and its doctor's report, word for word.

use std::fmt::Write as _;

use bytes::Bytes;
use hdrhistogram::Histogram;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::latency::Series;
use crate::engine::session::Session;
use crate::engine::spec::flag;
use crate::facade::Reply;
use crate::storage::clock::unix_secs;

/// The tips of the subcommands that read the monitor.
const SPECIAL: &[&str] = &["nondeterministic_output", "request_policy:all_nodes", "response_policy:special"];

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    let admin = flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE;
    vec![Command::container(
        "latency",
        -2,
        vec![
            Command::session("latest", 2, |s, _| Box::pin(async move { Ok(latest(s)) }))
                .flags(admin)
                .tips(SPECIAL)
                .docs("server", "2.8.13", "O(1)", "Return the latest latency samples for all events."),
            Command::session("history", 3, |s, a| Box::pin(async move { Ok(history(s, &a[2])) }))
                .flags(admin)
                .tips(SPECIAL)
                .docs("server", "2.8.13", "O(1)", "Return timestamp-latency samples for the event."),
            Command::session("reset", -2, |s, a| {
                Box::pin(async move { Ok(Reply::Int(s.core.global.latency.reset(&a[2..]) as i64)) })
            })
            .flags(admin)
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .docs("server", "2.8.13", "O(1)", "Reset latency data for one or more events."),
            Command::session("graph", 3, |s, a| Box::pin(async move { graph(s, &a[2]) }))
                .flags(admin)
                .tips(SPECIAL)
                .docs("server", "2.8.13", "O(1)", "Return a latency graph for the event."),
            Command::session("doctor", 2, |s, _| Box::pin(async move { Ok(Reply::Verbatim(doctor(s))) }))
                .flags(admin)
                .tips(SPECIAL)
                .docs("server", "2.8.13", "O(1)", "Return a human readable latency analysis report."),
            Command::session("histogram", -2, |s, a| Box::pin(histogram(s, a)))
                .flags(admin)
                .tips(SPECIAL)
                .docs(
                    "server",
                    "7.0.0",
                    "O(N) where N is the number of commands with latency information being retrieved.",
                    "Return the cumulative distribution of latencies of a subset of commands or all.",
                ),
            Command::inline("help", 2, |_, _| Ok(help())).flags(flag::LOADING | flag::STALE).docs(
                "server",
                "2.8.13",
                "O(1)",
                "Show helpful text about the different subcommands.",
            ),
        ],
    )
    .docs("server", "2.8.13", "Depends on subcommand.", "A container for latency diagnostics commands")]
}

/// LATENCY LATEST: per event, its latest sample's time and latency, and its worst ever.
fn latest(s: &Session) -> Reply {
    let events = s.core.global.latency.events();
    Reply::Array(
        events
            .iter()
            .filter_map(|(name, series)| {
                let last = series.latest()?;
                Some(Reply::Array(vec![
                    Reply::bulk(*name),
                    Reply::Int(last.time as i64),
                    Reply::Int(last.ms as i64),
                    Reply::Int(series.max as i64),
                ]))
            })
            .collect(),
    )
}

/// The series of `event` (named exactly, as Redis looks it up).
fn series(s: &Session, event: &[u8]) -> Option<(&'static str, Series)> {
    s.core.global.latency.events().into_iter().find(|(name, _)| name.as_bytes() == event)
}

/// LATENCY HISTORY event: its samples, oldest first, as (time, latency) pairs.
fn history(s: &Session, event: &[u8]) -> Reply {
    let samples =
        series(s, event).map(|(_, series)| series.samples().collect::<Vec<_>>()).unwrap_or_default();
    Reply::Array(
        samples
            .into_iter()
            .map(|x| Reply::Array(vec![Reply::Int(x.time as i64), Reply::Int(x.ms as i64)]))
            .collect(),
    )
}

/// LATENCY GRAPH event: Redis's ASCII graph of its samples.
fn graph(s: &Session, event: &[u8]) -> CmdResult {
    let Some((name, series)) = series(s, event) else {
        return Err(CmdError::text(format!(
            "ERR No samples available for event '{}'",
            String::from_utf8_lossy(event)
        )));
    };
    let now = unix_secs();
    let samples: Vec<(f64, String)> = series
        .samples()
        .map(|x| {
            let elapsed = now.saturating_sub(x.time);
            let label = match elapsed {
                e if e < 60 => format!("{e}s"),
                e if e < 3600 => format!("{}m", e / 60),
                e if e < 3600 * 24 => format!("{}h", e / 3600),
                e => format!("{}d", e / (3600 * 24)),
            };
            (x.ms as f64, label)
        })
        .collect();
    let high = series.samples().map(|x| x.ms).max().unwrap_or(0);
    let low = series.samples().map(|x| x.ms).min().unwrap_or(0);
    let mut out = format!("{name} - high {high} ms, low {low} ms (all time high {} ms)\n", series.max);
    out.push_str(&"-".repeat(GRAPH_COLUMNS));
    out.push('\n');
    sparkline(&mut out, &samples, GRAPH_COLUMNS, 4);
    Ok(Reply::Verbatim(out))
}

/// Columns of a LATENCY GRAPH.
const GRAPH_COLUMNS: usize = 80;

/// Renders `samples` (value, label) as Redis's filled sparkline (`sparklineRender` with
/// `SPARKLINE_FILL`): `rows` rows of `_o#|`, the labels written downwards below, wrapped every
/// `columns` samples.
fn sparkline(out: &mut String, samples: &[(f64, String)], columns: usize, rows: usize) {
    const FILL: &[u8] = b"_o#";
    let (min, max) =
        samples.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (v, _)| (lo.min(*v), hi.max(*v)));
    let labels = samples.iter().any(|(_, l)| !l.is_empty());
    let relmax = if max - min == 0.0 { 1.0 } else { max - min };
    let steps = (FILL.len() * rows) as i64;
    for (chunk_index, chunk) in samples.chunks(columns.max(1)).enumerate() {
        if chunk_index != 0 {
            out.push('\n');
        }
        let mut row = 0;
        loop {
            let mut more = false;
            let mut chars = vec![b' '; chunk.len()];
            for (j, (value, label)) in chunk.iter().enumerate() {
                // C's `(int)(relval*steps)/relmax`, truncated again into an int.
                let step = (((value - min) * steps as f64).trunc() / relmax) as i64;
                let step = step.clamp(0, steps - 1);
                if row < rows {
                    let index = step - ((rows - row - 1) * FILL.len()) as i64;
                    more = true;
                    if (0..FILL.len() as i64).contains(&index) {
                        chars[j] = FILL[index as usize];
                    } else if index >= FILL.len() as i64 {
                        chars[j] = b'|';
                    }
                } else {
                    // One blank row between the graph and the labels.
                    if labels && row - rows < 1 {
                        more = true;
                        break;
                    }
                    if let Some(&c) = label.as_bytes().get(row - rows - 1) {
                        more = true;
                        chars[j] = c;
                    }
                }
            }
            if !more {
                break;
            }
            row += 1;
            out.push_str(&String::from_utf8_lossy(&chars));
            out.push('\n');
        }
    }
}

/// LATENCY DOCTOR: Redis's report, its statistics per event and the advice they call for.
fn doctor(s: &Session) -> String {
    let global = &s.core.global;
    let events = global.latency.events();
    let config = s.core.config();
    let threshold = global.latency.threshold();
    if events.is_empty() && threshold == 0 {
        return "I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this Redis instance. You may use \
                \"CONFIG SET latency-monitor-threshold <milliseconds>.\" in order to enable it. If we weren't in a deep \
                space mission I'd suggest to take a look at https://redis.io/topics/latency-monitor.\n"
            .to_owned();
    }
    let mut report = String::new();
    let mut advise = Advice::default();
    let now = unix_secs();
    for (n, (event, series)) in events.iter().enumerate() {
        if n == 0 {
            report.push_str(
                "Dave, I have observed latency spikes in this Redis instance. You don't mind talking about it, do you Dave?\n\n",
            );
        }
        let samples: Vec<u64> = series.samples().map(|x| x.ms).collect();
        let count = samples.len() as u64;
        let avg = samples.iter().sum::<u64>().checked_div(count).unwrap_or(0);
        let mad = samples.iter().map(|&x| avg.abs_diff(x)).sum::<u64>().checked_div(count).unwrap_or(0);
        let oldest = series.samples().map(|x| x.time).min().unwrap_or(now);
        let period = now.saturating_sub(oldest).max(1);
        let _ = write!(
            report,
            "{}. {event}: {count} latency spikes (average {avg}ms, mean deviation {mad}ms, period {:.2} sec). Worst all time event {}ms.",
            n + 1,
            period as f64 / count.max(1) as f64,
            series.max
        );
        advise.note(event, &config, threshold);
        report.push('\n');
    }
    if anon_huge_pages() > 0 {
        advise.disable_thp = true;
        advise.count += 1;
    }
    if events.is_empty() && advise.count == 0 {
        report.push_str(
            "Dave, no latency spike was observed during the lifetime of this Redis instance, not in the slightest bit. \
             I honestly think you ought to sit down calmly, take a stress pill, and think things over.\n",
        );
    } else if advise.count == 0 {
        report.push_str(
            "\nWhile there are latency events logged, I'm not able to suggest any easy fix. Please use the Redis \
             community to get some help, providing this report in your help request.\n",
        );
    } else {
        advise.write(&mut report, &config, threshold);
    }
    report
}

/// What the doctor will advise, as `createLatencyReport`'s flags.
#[derive(Default)]
struct Advice {
    count: usize,
    slowlog_enabled: bool,
    slowlog_tuning: bool,
    slowlog_inspect: bool,
    disk_contention: bool,
    scheduler: bool,
    data_writeback: bool,
    no_appendfsync: bool,
    local_disk: bool,
    ssd: bool,
    write_load_info: bool,
    hz: bool,
    large_objects: bool,
    mass_eviction: bool,
    relax_fsync_policy: bool,
    disable_thp: bool,
}

impl Advice {
    /// What an event calls for.
    fn note(&mut self, event: &str, config: &crate::config::Config, threshold: u64) {
        let is = |name: &str| event.eq_ignore_ascii_case(name);
        if is("command") {
            if config.slowlog_log_slower_than < 0 {
                self.slowlog_enabled = true;
                self.count += 1;
            } else if (config.slowlog_log_slower_than / 1000) as u64 > threshold {
                self.slowlog_tuning = true;
                self.count += 1;
            }
            self.slowlog_inspect = true;
            self.large_objects = true;
            self.count += 2;
        }
        if is("fast-command") {
            self.scheduler = true;
            self.count += 1;
        }
        if is("aof-write-pending-fsync") {
            (self.local_disk, self.disk_contention, self.ssd, self.data_writeback) = (true, true, true, true);
            self.count += 4;
        }
        if is("aof-write-active-child") {
            (self.no_appendfsync, self.data_writeback, self.ssd) = (true, true, true);
            self.count += 3;
        }
        if is("aof-write-alone") {
            (self.local_disk, self.data_writeback, self.ssd) = (true, true, true);
            self.count += 3;
        }
        if is("aof-fsync-always") {
            self.relax_fsync_policy = true;
            self.count += 1;
        }
        if is("aof-fstat") || is("rdb-unlink-temp-file") {
            (self.disk_contention, self.local_disk) = (true, true);
            self.count += 2;
        }
        if is("aof-rewrite-diff-write") || is("aof-rename") {
            (self.write_load_info, self.data_writeback, self.ssd, self.local_disk) = (true, true, true, true);
            self.count += 4;
        }
        if is("expire-cycle") {
            (self.hz, self.large_objects) = (true, true);
            self.count += 2;
        }
        if is("eviction-del") {
            self.large_objects = true;
            self.count += 1;
        }
        if is("eviction-cycle") {
            self.mass_eviction = true;
            self.count += 1;
        }
    }

    /// The advice, in Redis's order and words.
    fn write(&self, report: &mut String, config: &crate::config::Config, threshold: u64) {
        report.push_str("\nI have a few advices for you:\n\n");
        if self.slowlog_enabled {
            let _ = writeln!(
                report,
                "- There are latency issues with potentially slow commands you are using. Try to enable the Slow Log \
                 Redis feature using the command 'CONFIG SET slowlog-log-slower-than {}'. If the Slow log is disabled \
                 Redis is not able to log slow commands execution for you.",
                threshold * 1000
            );
        }
        if self.slowlog_tuning {
            let _ = writeln!(
                report,
                "- Your current Slow Log configuration only logs events that are slower than your configured latency \
                 monitor threshold. Please use 'CONFIG SET slowlog-log-slower-than {}'.",
                threshold * 1000
            );
        }
        let lines: [(bool, &str); 11] = [
            (self.slowlog_inspect, "- Check your Slow Log to understand what are the commands you are running which are too slow to execute. Please check https://redis.io/commands/slowlog for more information.\n"),
            (self.scheduler, "- The system is slow to execute Redis code paths not containing system calls. This usually means the system does not provide Redis CPU time to run for long periods. You should try to:\n  1) Lower the system load.\n  2) Use a computer / VM just for Redis if you are running other software in the same system.\n  3) Check if you have a \"noisy neighbour\" problem.\n  4) Check with 'redis-cli --intrinsic-latency 100' what is the intrinsic latency in your system.\n  5) Check if the problem is allocator-related by recompiling Redis with MALLOC=libc, if you are using Jemalloc. However this may create fragmentation problems.\n"),
            (self.local_disk, "- It is strongly advised to use local disks for persistence, especially if you are using AOF. Remote disks provided by platform-as-a-service providers are known to be slow.\n"),
            (self.ssd, "- SSD disks are able to reduce fsync latency, and total time needed for snapshotting and AOF log rewriting (resulting in smaller memory usage). With extremely high write load SSD disks can be a good option. However Redis should perform reasonably with high load using normal disks. Use this advice as a last resort.\n"),
            (self.data_writeback, "- Mounting ext3/4 filesystems with data=writeback can provide a performance boost compared to data=ordered, however this mode of operation provides less guarantees, and sometimes it can happen that after a hard crash the AOF file will have a half-written command at the end and will require to be repaired before Redis restarts.\n"),
            (self.disk_contention, "- Try to lower the disk contention. This is often caused by other disk intensive processes running in the same computer (including other Redis instances).\n"),
            (self.no_appendfsync, "- Assuming from the point of view of data safety this is viable in your environment, you could try to enable the 'no-appendfsync-on-rewrite' option, so that fsync will not be performed while there is a child rewriting the AOF file or producing an RDB file (the moment where there is high disk contention).\n"),
            (self.relax_fsync_policy && config.appendfsync == crate::config::AppendFsync::Always, "- Your fsync policy is set to 'always'. It is very hard to get good performances with such a setup, if possible try to relax the fsync policy to 'onesec'.\n"),
            (self.write_load_info, "- Latency during the AOF atomic rename operation or when the final difference is flushed to the AOF file at the end of the rewrite, sometimes is caused by very high write load, causing the AOF buffer to get very large. If possible try to send less commands to accomplish the same work, or use Lua scripts to group multiple operations into a single EVALSHA call.\n"),
            (self.hz && config.hz < 100, "- In order to make the Redis keys expiring process more incremental, try to set the 'hz' configuration parameter to 100 using 'CONFIG SET hz 100'.\n"),
            (self.large_objects, "- Deleting, expiring or evicting (because of maxmemory policy) large objects is a blocking operation. If you have very large objects that are often deleted, expired, or evicted, try to fragment those objects into multiple smaller objects.\n"),
        ];
        lines.iter().filter(|(on, _)| *on).for_each(|(_, text)| report.push_str(text));
        if self.mass_eviction {
            report.push_str("- Sudden changes to the 'maxmemory' setting via 'CONFIG SET', or allocation of large objects via sets or sorted sets intersections, STORE option of SORT, Redis Cluster large keys migrations (RESTORE command), may create sudden memory pressure forcing the server to block trying to evict keys. \n");
        }
        if self.disable_thp {
            report.push_str("- I detected a non zero amount of anonymous huge pages used by your process. This creates very serious latency events in different conditions, especially when Redis is persisting on disk. To disable THP support use the command 'echo never > /sys/kernel/mm/transparent_hugepage/enabled', make sure to also add it into /etc/rc.local so that the command will be executed again after a reboot. Note that even if you have already disabled THP, you still need to restart the Redis process to get rid of the huge pages already created.\n");
        }
    }
}

/// Bytes of anonymous huge pages the process maps (`/proc/self/smaps`' `AnonHugePages`), as
/// Redis checks for the doctor.
fn anon_huge_pages() -> u64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps_rollup") else { return 0 };
    smaps
        .lines()
        .filter_map(|l| l.strip_prefix("AnonHugePages:"))
        .filter_map(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .sum::<u64>()
        * 1024
}

/// LATENCY HISTOGRAM [command ...]: per command with a histogram (all of them, or those
/// named, a container's subcommands included), its calls and cumulative counts by bucket.
async fn histogram(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let stats = crate::cmd::info::command_stats(s, true).await?;
    let registry = crate::engine::command::registry();
    let with_histogram: Vec<(usize, &Histogram<u32>)> =
        stats.commands().filter_map(|(id, c)| Some((id, c.latency.as_deref()?))).collect();
    let of = |id: usize| with_histogram.iter().find(|(i, _)| *i == id).map(|(_, h)| *h);
    let mut wanted: Vec<(String, &Histogram<u32>)> = Vec::new();
    if args.len() == 2 {
        for &(id, h) in &with_histogram {
            if let Some(cmd) = registry.by_id(id) {
                wanted.push((cmd.full_name.clone(), h));
            }
        }
    } else {
        for name in &args[2..] {
            let Some(cmd) = lookup(registry, name) else { continue };
            if let Some(h) = of(cmd.id) {
                wanted.push((cmd.full_name.clone(), h));
            }
            for sub in &cmd.subcommands {
                if let Some(h) = of(sub.id) {
                    wanted.push((sub.full_name.clone(), h));
                }
            }
        }
    }
    Ok(Reply::Map(wanted.into_iter().map(|(name, h)| (Reply::bulk(name), cdf(h))).collect()))
}

/// One command's latency histogram, as LATENCY HISTOGRAM reports it.
pub(crate) struct CommandHistogram {
    /// The command's full name (`client|list`).
    pub(crate) name: String,
    /// Its calls.
    pub(crate) calls: u64,
    /// Cumulative counts by bucket top, µs (see [`buckets`]).
    pub(crate) buckets: Vec<(u64, u64)>,
}

/// Every command's latency histogram (the metrics endpoint's source).
pub(crate) async fn histograms(s: &Session) -> Result<Vec<CommandHistogram>, CmdError> {
    let stats = crate::cmd::info::command_stats(s, true).await?;
    let registry = crate::engine::command::registry();
    Ok(stats
        .commands()
        .filter_map(|(id, c)| {
            let h = c.latency.as_deref()?;
            let name = registry.by_id(id)?.full_name.clone();
            Some(CommandHistogram { name, calls: h.len(), buckets: buckets(h) })
        })
        .collect())
}

/// A command by name, or a subcommand as `container|sub` (Redis's `lookupCommandBySds`).
fn lookup<'a>(registry: &'a crate::engine::command::Commands, name: &[u8]) -> Option<&'a Command> {
    let mut parts = name.splitn(2, |&b| b == b'|');
    let top = registry.get(parts.next()?)?;
    match parts.next() {
        None => Some(top),
        Some(sub) => top.subcommand(sub),
    }
}

/// One command's entry: its calls and its [`buckets`].
fn cdf(h: &Histogram<u32>) -> Reply {
    let buckets =
        buckets(h).into_iter().map(|(top, n)| (Reply::Int(top as i64), Reply::Int(n as i64))).collect();
    Reply::Map(vec![
        (Reply::bulk("calls"), Reply::Int(h.len() as i64)),
        (Reply::bulk("histogram_usec"), Reply::Map(buckets)),
    ])
}

/// The cumulative count at each power-of-two bucket from 1024 ns where the count grew, keyed
/// by the bucket's top in microseconds, as Redis's `fillCommandCDF` walks its histogram
/// (`hdr_iter_log_init(.., 1024, 2)`).
fn buckets(h: &Histogram<u32>) -> Vec<(u64, u64)> {
    let mut buckets = Vec::new();
    let mut recorded = h
        .iter_recorded()
        .map(|v| (h.lowest_equivalent(v.value_iterated_to()), v.count_at_value()))
        .peekable();
    let (mut level, mut cumulative) = (1024u64, 0u64);
    while recorded.peek().is_some() {
        let bound = h.lowest_equivalent(level);
        let before = cumulative;
        while let Some(&(low, count)) = recorded.peek() {
            if low > bound {
                break;
            }
            cumulative += u64::from(count);
            recorded.next();
        }
        if cumulative > before {
            buckets.push((h.highest_equivalent(level) / 1000, cumulative));
        }
        level = level.saturating_mul(2);
    }
    buckets
}

/// LATENCY HELP
fn help() -> Reply {
    crate::cmd::args::help(
        "LATENCY",
        &[
            "DOCTOR",
            "    Return a human readable latency analysis report.",
            "GRAPH <event>",
            "    Return an ASCII latency graph for the <event> class.",
            "HISTORY <event>",
            "    Return time-latency samples for the <event> class.",
            "LATEST",
            "    Return the latest latency samples for all events.",
            "RESET [<event> ...]",
            "    Reset latency data of one or more <event> classes.",
            "    (default: reset all data for all event classes)",
            "HISTOGRAM [COMMAND ...]",
            "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
            "    If no commands are specified then all histograms are replied.",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_graph_is_redis_s_sparkline() {
        // As Redis 7.0's sparklineRender(.., 80, 4, SPARKLINE_FILL) draws these samples: steps
        // 0, 6 and 11 of 12, three characters a row from the top; a blank row; the labels.
        let samples: Vec<(f64, String)> =
            [(1.0, "3s"), (5.0, "2s"), (9.0, "1s")].iter().map(|(v, l)| (*v, (*l).to_owned())).collect();
        let mut out = String::new();
        sparkline(&mut out, &samples, 80, 4);
        assert_eq!(out, "  #\n _|\n ||\n_||\n   \n321\nsss\n");
    }
}
