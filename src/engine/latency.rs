//! The latency monitor (LATENCY LATEST / HISTORY / GRAPH / DOCTOR / RESET): for each event
//! class that took at least `latency-monitor-threshold` milliseconds, the worst latency of
//! each second it happened in (the last 160 such seconds) and the worst ever, as Redis 7.0's
//! `latency.c` keeps them.
//!
//! Events: `command` and `fast-command` (a command's run, by its `fast` flag), recorded where
//! commands are measured (see [`crate::engine::stats`]); `expire-cycle` (a cron pass of active
//! expiry) and `eviction-cycle` (one round of evicting for `maxmemory`), on the shard that ran
//! them. Each core keeps its own series under a lock only LATENCY takes besides it; LATENCY
//! merges them second by second.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::config::Config;
use crate::engine::slowlog::lock;

/// Seconds kept per event (`LATENCY_TS_LEN`).
const SERIES_LEN: usize = 160;

/// The worst latency of one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// The second, in Unix time.
    pub(crate) time: u64,
    /// Milliseconds.
    pub(crate) ms: u64,
}

/// One event class's samples, oldest first, and its worst ever.
#[derive(Debug, Clone, Default)]
pub(crate) struct Series {
    samples: VecDeque<Sample>,
    /// The worst latency since the event was created or reset.
    pub(crate) max: u64,
}

impl Series {
    /// Adds a latency of `ms` at second `now`: the second's sample keeps the worst.
    fn add(&mut self, now: u64, ms: u64) {
        self.max = self.max.max(ms);
        if let Some(last) = self.samples.back_mut() {
            if last.time == now {
                last.ms = last.ms.max(ms);
                return;
            }
        }
        self.samples.push_back(Sample { time: now, ms });
        if self.samples.len() > SERIES_LEN {
            self.samples.pop_front();
        }
    }

    /// Adds another core's samples of the same event: the worst of each second, the last
    /// [`SERIES_LEN`] seconds.
    fn merge(&mut self, other: &Series) {
        self.max = self.max.max(other.max);
        let mut by_second: BTreeMap<u64, u64> = BTreeMap::new();
        for s in self.samples.iter().chain(&other.samples) {
            let ms = by_second.entry(s.time).or_default();
            *ms = (*ms).max(s.ms);
        }
        let skip = by_second.len().saturating_sub(SERIES_LEN);
        self.samples = by_second.into_iter().skip(skip).map(|(time, ms)| Sample { time, ms }).collect();
    }

    /// The samples, oldest first.
    pub(crate) fn samples(&self) -> impl ExactSizeIterator<Item = Sample> + '_ {
        self.samples.iter().copied()
    }

    /// The latest sample.
    #[must_use]
    pub(crate) fn latest(&self) -> Option<Sample> {
        self.samples.back().copied()
    }
}

/// Every core's event series, and the threshold.
pub(crate) struct LatencyMonitor {
    cores: Vec<Mutex<BTreeMap<&'static str, Series>>>,
    /// `latency-monitor-threshold` in milliseconds (0: off).
    threshold: AtomicU64,
}

impl LatencyMonitor {
    /// No events yet, for `cores` cores, with `config`'s threshold.
    #[must_use]
    pub(crate) fn new(cores: usize, config: &Config) -> LatencyMonitor {
        let monitor = LatencyMonitor {
            cores: (0..cores.max(1)).map(|_| Mutex::default()).collect(),
            threshold: AtomicU64::new(0),
        };
        monitor.configure(config);
        monitor
    }

    /// Takes the threshold of a new configuration (CONFIG SET).
    pub(crate) fn configure(&self, config: &Config) {
        self.threshold.store(config.latency_monitor_threshold, Ordering::Relaxed);
    }

    /// `latency-monitor-threshold` now (ms; 0: off).
    #[must_use]
    pub(crate) fn threshold(&self) -> u64 {
        self.threshold.load(Ordering::Relaxed)
    }

    /// Records `event` on core `core` if `nanos` reach the threshold (Redis's
    /// `latencyAddSampleIfNeeded`, which compares whole milliseconds).
    #[inline]
    pub(crate) fn add_if_needed(&self, core: usize, event: &'static str, nanos: u64) {
        let threshold = self.threshold();
        let ms = nanos / 1_000_000;
        if threshold > 0 && ms >= threshold {
            self.add(core, event, ms);
        }
    }

    /// Records a command's run of `nanos`: `fast-command` for a `fast` one, else `command`.
    #[inline]
    pub(crate) fn command(&self, core: usize, fast: bool, nanos: u64) {
        self.add_if_needed(core, if fast { "fast-command" } else { "command" }, nanos);
    }

    fn add(&self, core: usize, event: &'static str, ms: u64) {
        let now = crate::storage::clock::unix_secs();
        lock(&self.cores[core % self.cores.len()]).entry(event).or_default().add(now, ms);
    }

    /// Every event of the server, its cores' series merged, by name.
    #[must_use]
    pub(crate) fn events(&self) -> BTreeMap<&'static str, Series> {
        let mut all: BTreeMap<&'static str, Series> = BTreeMap::new();
        for core in &self.cores {
            for (event, series) in lock(core).iter() {
                all.entry(event).or_default().merge(series);
            }
        }
        all
    }

    /// LATENCY RESET: forgets the named events (in any letter case), or every event; returns
    /// how many there were.
    pub(crate) fn reset(&self, events: &[Bytes]) -> usize {
        let hit =
            |name: &str| events.is_empty() || events.iter().any(|e| e.eq_ignore_ascii_case(name.as_bytes()));
        let mut gone = std::collections::BTreeSet::new();
        for core in &self.cores {
            lock(core).retain(|name, _| {
                let reset = hit(name);
                if reset {
                    gone.insert(*name);
                }
                !reset
            });
        }
        gone.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_keeps_its_worst_and_cores_merge_by_second() {
        let mut a = Series::default();
        a.add(10, 5);
        a.add(10, 7);
        a.add(10, 3);
        a.add(12, 4);
        let mut b = Series::default();
        b.add(11, 9);
        b.add(12, 6);
        a.merge(&b);
        let samples: Vec<_> = a.samples().map(|s| (s.time, s.ms)).collect();
        assert_eq!(samples, vec![(10, 7), (11, 9), (12, 6)]);
        assert_eq!(a.max, 9);
    }

    #[test]
    fn a_series_keeps_its_last_160_seconds() {
        let mut s = Series::default();
        (0..200).for_each(|t| s.add(t, t));
        assert_eq!(s.samples().len(), SERIES_LEN);
        assert_eq!(s.samples().next().map(|s| s.time), Some(40));
        assert_eq!(s.max, 199);
    }
}
