//! What INFO's commandstats, errorstats and latencystats report: per command, its calls, the
//! time they took, how many were rejected before running and how many failed, and a latency
//! histogram; per error prefix (`ERR`, `WRONGTYPE`, ...), how many error replies were sent.
//!
//! Whoever runs a command's body records it, once: a shard for the commands it executes, the
//! session for the commands it runs itself (connection-level, split across shards, across
//! shards), so each core keeps two [`Stats`] (its shard's and its sessions') and INFO merges
//! every core's. As in Redis 7.0:
//! - a call that replied with an error is *failed*; an error nested in EXEC's reply belongs to
//!   the queued command that produced it, not to EXEC;
//! - a request refused before it ran (arity, NOAUTH, not allowed in MULTI or in a subscribed
//!   context) is *rejected* and is not a call; an unknown command has no entry, and counts only
//!   as an error reply;
//! - a blocking command's time leaves out the time it spent blocked.
//!
//! Time comes from the TSC through `quanta` (about 13 ns a read on this VM against 34 ns for
//! `Instant::now`), read twice per command.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hdrhistogram::Histogram;

use crate::facade::Reply;

/// The clock commands are timed with.
fn clock() -> &'static quanta::Clock {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock against the system's: up to 200 ms, so the runtime does it at startup,
/// before any executor serves (done lazily, it stalled the first command that ran).
pub(crate) fn calibrate_clock() {
    clock();
}

/// A point in time to measure a command from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Started(u64);

impl Started {
    /// Now.
    #[must_use]
    pub(crate) fn now() -> Started {
        Started(clock().raw())
    }

    /// Nanoseconds since `self`.
    #[must_use]
    pub(crate) fn elapsed_ns(self) -> u64 {
        clock().delta_as_nanos(self.0, clock().raw())
    }
}

/// Latencies are recorded in nanoseconds from 1 ns to 1 s with 2 significant digits, as Redis's
/// histograms are (values above the range are clamped to it).
const LATENCY_MAX_NS: u64 = 1_000_000_000;

/// One command's counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct CommandStat {
    /// Calls, whatever they replied.
    pub(crate) calls: u64,
    /// Time spent in those calls, in nanoseconds.
    pub(crate) nanos: u64,
    /// Requests refused before running.
    pub(crate) rejected: u64,
    /// Calls that replied with an error.
    pub(crate) failed: u64,
    /// Latency histogram (nanoseconds), created by the first call while `latency-tracking` is on.
    pub(crate) latency: Option<Box<Histogram<u32>>>,
}

impl CommandStat {
    /// Adds `other`'s counts to these.
    fn merge(&mut self, other: &CommandStat) {
        self.calls += other.calls;
        self.nanos += other.nanos;
        self.rejected += other.rejected;
        self.failed += other.failed;
        if let Some(theirs) = &other.latency {
            match &mut self.latency {
                Some(ours) => {
                    // Both histograms have the same bounds, so adding cannot fail.
                    let _ = ours.add(&**theirs);
                }
                None => self.latency = Some(theirs.clone()),
            }
        }
    }

    /// Whether anything was counted (INFO shows only such commands).
    #[must_use]
    pub(crate) fn is_used(&self) -> bool {
        self.calls > 0 || self.rejected > 0 || self.failed > 0
    }
}

/// Command and error counters, indexed by registry id.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stats {
    commands: Vec<CommandStat>,
    /// Error replies by prefix.
    errors: BTreeMap<String, u64>,
    /// Every error reply.
    error_replies: u64,
}

impl Stats {
    fn command(&mut self, id: usize) -> &mut CommandStat {
        if id >= self.commands.len() {
            self.commands.resize_with(id + 1, CommandStat::default);
        }
        &mut self.commands[id]
    }

    /// Records a call of command `id` that took `nanos` and replied `reply`; its latency goes
    /// into the command's histogram when `latency` (the `latency-tracking` setting) is on.
    pub(crate) fn called(&mut self, id: usize, nanos: u64, reply: &Reply, latency: bool) {
        let failed = self.count_error(reply);
        let stat = self.command(id);
        stat.calls += 1;
        stat.nanos += nanos;
        stat.failed += u64::from(failed);
        if latency {
            let histogram = stat.latency.get_or_insert_with(|| {
                Box::new(
                    Histogram::new_with_bounds(1, LATENCY_MAX_NS, 2).expect("the bounds are valid constants"),
                )
            });
            histogram.saturating_record(nanos.clamp(1, LATENCY_MAX_NS));
        }
    }

    /// Records a request refused before it ran: command `id`'s, or an unknown command's.
    pub(crate) fn rejected(&mut self, id: Option<usize>, reply: &Reply) {
        self.count_error(reply);
        if let Some(id) = id {
            self.command(id).rejected += 1;
        }
    }

    /// Counts `reply` in the error statistics if it is an error; returns whether it was.
    pub(crate) fn count_error(&mut self, reply: &Reply) -> bool {
        let Reply::Error(text) = reply else { return false };
        self.error_replies += 1;
        let prefix = error_prefix(text);
        match self.errors.get_mut(prefix) {
            Some(n) => *n += 1,
            None => {
                self.errors.insert(prefix.to_owned(), 1);
            }
        }
        true
    }

    /// A copy for INFO, with the latency histograms only if `latency` (they are large).
    #[must_use]
    pub(crate) fn snapshot(&self, latency: bool) -> Stats {
        let commands = self
            .commands
            .iter()
            .map(|c| CommandStat { latency: if latency { c.latency.clone() } else { None }, ..*c })
            .collect();
        Stats { commands, errors: self.errors.clone(), error_replies: self.error_replies }
    }

    /// Adds `other`'s counts to these (INFO sums every core's).
    pub(crate) fn merge(&mut self, other: &Stats) {
        for (id, stat) in other.commands.iter().enumerate() {
            if stat.is_used() {
                self.command(id).merge(stat);
            }
        }
        for (prefix, n) in &other.errors {
            *self.errors.entry(prefix.clone()).or_default() += n;
        }
        self.error_replies += other.error_replies;
    }

    /// The counters of every command that was used, with its registry id.
    pub(crate) fn commands(&self) -> impl Iterator<Item = (usize, &CommandStat)> {
        self.commands.iter().enumerate().filter(|(_, s)| s.is_used())
    }

    /// Calls of every command (INFO's `total_commands_processed`).
    #[must_use]
    pub(crate) fn calls(&self) -> u64 {
        self.commands.iter().map(|s| s.calls).sum()
    }

    /// Error replies by prefix, in byte order (as Redis's radix tree lists them).
    pub(crate) fn errors(&self) -> impl Iterator<Item = (&str, u64)> {
        self.errors.iter().map(|(p, n)| (p.as_str(), *n))
    }

    /// Every error reply (INFO's `total_error_replies`).
    #[must_use]
    pub(crate) fn error_replies(&self) -> u64 {
        self.error_replies
    }
}

/// How many samples the instantaneous rates average, as Redis's `STATS_METRIC_SAMPLES`.
const RATE_SAMPLES: usize = 16;

/// INFO's instantaneous rates (operations per second, input and output bytes per second): the
/// mean of the last [`RATE_SAMPLES`] rates, each measured between two samples of the counters
/// taken about 100 ms apart by the core's cron, as Redis measures them.
#[derive(Debug, Default)]
pub(crate) struct Rates {
    last: Option<(std::time::Instant, [u64; 3])>,
    rates: [[f64; 3]; RATE_SAMPLES],
    next: usize,
}

impl Rates {
    /// The interval between samples.
    pub(crate) const PERIOD: std::time::Duration = std::time::Duration::from_millis(100);

    /// Samples `counters` (commands, bytes in, bytes out) at `now`, if a period has passed.
    pub(crate) fn sample(&mut self, now: std::time::Instant, counters: [u64; 3]) {
        match self.last {
            Some((at, _)) if now.duration_since(at) < Self::PERIOD => {}
            Some((at, before)) => {
                let secs = now.duration_since(at).as_secs_f64();
                let mut rate = [0.0; 3];
                for (r, (n, b)) in rate.iter_mut().zip(counters.iter().zip(before)) {
                    *r = n.saturating_sub(b) as f64 / secs;
                }
                self.rates[self.next] = rate;
                self.next = (self.next + 1) % RATE_SAMPLES;
                self.last = Some((now, counters));
            }
            None => self.last = Some((now, counters)),
        }
    }

    /// The mean rates: operations, input bytes and output bytes per second.
    #[must_use]
    pub(crate) fn current(&self) -> [f64; 3] {
        let mut mean = [0.0; 3];
        for rate in &self.rates {
            for (m, r) in mean.iter_mut().zip(rate) {
                *m += r / RATE_SAMPLES as f64;
            }
        }
        mean
    }
}

/// An error's statistics key: its first word (searched in the first 31 bytes, as Redis searches
/// the first 32 of `-ERR ...`), or `ERR` when there is no space.
fn error_prefix(text: &str) -> &str {
    let head = &text.as_bytes()[..text.len().min(31)];
    match head.iter().position(|&b| b == b' ') {
        // A space is ASCII, so the split is on a character boundary.
        Some(end) => &text[..end],
        None => "ERR",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_average_the_last_samples() {
        let mut r = Rates::default();
        let t0 = std::time::Instant::now();
        r.sample(t0, [0, 0, 0]);
        assert_eq!(r.current(), [0.0; 3]);
        // 100 commands in 100 ms: 1000/s in one of 16 samples.
        r.sample(t0 + Rates::PERIOD, [100, 1000, 0]);
        r.sample(t0 + Rates::PERIOD + Rates::PERIOD / 2, [500, 1000, 0]);
        let [ops, input, output] = r.current();
        assert!((ops - 1000.0 / 16.0).abs() < 1e-6, "{ops}");
        assert!((input - 10_000.0 / 16.0).abs() < 1e-6, "{input}");
        assert_eq!(output, 0.0);
    }

    #[test]
    fn errors_are_keyed_by_their_first_word() {
        assert_eq!(error_prefix("WRONGTYPE Operation against a key"), "WRONGTYPE");
        assert_eq!(error_prefix("ERR syntax error"), "ERR");
        assert_eq!(error_prefix("NOSPACE"), "ERR");
        assert_eq!(error_prefix(&format!("{} x", "A".repeat(40))), "ERR");
    }

    #[test]
    fn calls_failures_and_rejections_are_counted_apart() {
        let mut a = Stats::default();
        a.called(3, 1500, &Reply::Ok, true);
        a.called(3, 500, &Reply::Error("WRONGTYPE x".into()), true);
        a.rejected(Some(3), &Reply::Error("ERR wrong number of arguments".into()));
        a.rejected(None, &Reply::Error("ERR unknown command".into()));
        let mut total = Stats::default();
        total.merge(&a);
        total.merge(&a);
        let (id, get) = total.commands().next().unwrap();
        assert_eq!((id, get.calls, get.nanos, get.failed, get.rejected), (3, 4, 4000, 2, 2));
        assert_eq!(get.latency.as_ref().unwrap().len(), 4);
        assert_eq!(total.errors().collect::<Vec<_>>(), vec![("ERR", 4), ("WRONGTYPE", 2)]);
        assert_eq!((total.calls(), total.error_replies()), (4, 6));
    }
}
