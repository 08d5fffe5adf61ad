//! A key's access clock, in the 32 bits an entry has for it. Under an LRU (or no) eviction
//! policy, the time of its last access in hundredths of a second (Redis keeps seconds in 24
//! bits, wrapping every 194 days; 32 bits of hundredths wrap every 497 days, and a flood that
//! writes more than the cache holds within one second still leaves the keys read meanwhile
//! younger than the rest: with whole seconds, a cache refilled several times a second has every
//! key of the same age, and the hot ones go as often as the cold). Under an LFU
//! policy, as Redis: the minute of its last decrement (16 bits) and a logarithmic access
//! counter (8 bits). OBJECT IDLETIME, OBJECT FREQ and eviction read it; lookups update it as
//! Redis's `lookupKey` does.

use std::cell::Cell;

/// The LRU clock's tick, in milliseconds (Redis's `LRU_CLOCK_RESOLUTION` is 1000).
const LRU_TICK_MS: u64 = 10;
/// Redis's `LFU_INIT_VAL`: a new key's counter, so that it is not evicted at once.
pub(crate) const LFU_INIT_VAL: u8 = 5;

/// How the clock is kept: by recency, or by frequency with its two knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// Seconds of the last access (every policy but the LFU ones).
    #[default]
    Lru,
    /// Access frequency: `lfu-log-factor` and `lfu-decay-time` (minutes per halving step).
    Lfu {
        /// How many hits it takes to grow the counter (`lfu-log-factor`).
        log_factor: u32,
        /// Minutes after which the counter drops by one (`lfu-decay-time`).
        decay_time: u32,
    },
}

thread_local! {
    /// The core's time for access clocks (ms), set once per batch of work like a command's
    /// `now`, and the mode its eviction policy asks for.
    static NOW: Cell<u64> = const { Cell::new(0) };
    static MODE: Cell<Mode> = const { Cell::new(Mode::Lru) };
    /// xorshift state for the LFU counter's coin.
    static COIN: Cell<u64> = const { Cell::new(0x9e37_79b9_7f4a_7c15) };
}

/// Unix time in whole seconds (SLOWLOG's and LATENCY's times, LASTSAVE, the AOF's and the
/// snapshot's timestamps).
#[must_use]
pub(crate) fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Sets this core's time and mode for the access clocks of its keys.
pub(crate) fn set_core_clock(now_ms: u64, mode: Mode) {
    NOW.with(|n| n.set(now_ms));
    MODE.with(|m| m.set(mode));
}

/// This core's time (Unix ms) as its shard's last tick set it.
#[must_use]
pub(crate) fn core_now_ms() -> u64 {
    NOW.with(Cell::get)
}

/// This core's mode.
#[must_use]
pub(crate) fn core_mode() -> Mode {
    MODE.with(Cell::get)
}

/// The clock of a key created now on this core.
#[must_use]
pub(crate) fn on_create() -> u32 {
    fresh(MODE.with(Cell::get), NOW.with(Cell::get))
}

/// The clock of a key accessed now on this core.
#[must_use]
pub(crate) fn on_access(clock: u32) -> u32 {
    let coin = COIN.with(|c| {
        let mut x = c.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        c.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    });
    touched(clock, MODE.with(Cell::get), NOW.with(Cell::get), coin)
}

/// The LRU clock at `now_ms` (Redis's `LRU_CLOCK()`, in finer ticks).
#[must_use]
pub(crate) fn lru_clock(now_ms: u64) -> u32 {
    (now_ms / LRU_TICK_MS) as u32
}

/// Redis's `LFUGetTimeInMinutes()` at `now_ms`.
fn minutes(now_ms: u64) -> u32 {
    ((now_ms / 1000 / 60) as u32) & 0xffff
}

/// The clock of a key created at `now_ms`.
#[must_use]
pub(crate) fn fresh(mode: Mode, now_ms: u64) -> u32 {
    match mode {
        Mode::Lru => lru_clock(now_ms),
        Mode::Lfu { .. } => (minutes(now_ms) << 8) | u32::from(LFU_INIT_VAL),
    }
}

/// The clock after an access at `now_ms`; `random` is uniform in [0, 1) (the LFU counter grows
/// with probability 1 / ((counter - 5) * log_factor + 1), as Redis's `LFULogIncr`).
#[must_use]
pub(crate) fn touched(clock: u32, mode: Mode, now_ms: u64, random: f64) -> u32 {
    match mode {
        Mode::Lru => lru_clock(now_ms),
        Mode::Lfu { log_factor, .. } => {
            let mut counter = frequency(clock, mode, now_ms);
            if counter < 255 {
                let base = f64::from(counter.saturating_sub(LFU_INIT_VAL));
                if random < 1.0 / (base * f64::from(log_factor) + 1.0) {
                    counter += 1;
                }
            }
            (minutes(now_ms) << 8) | u32::from(counter)
        }
    }
}

/// Milliseconds since the last access (Redis's `estimateObjectIdleTime`), meaningful under LRU.
#[must_use]
pub(crate) fn idle_ms(clock: u32, now_ms: u64) -> u64 {
    u64::from(lru_clock(now_ms).wrapping_sub(clock)) * LRU_TICK_MS
}

/// The counter after the decay its idle minutes call for (Redis's `LFUDecrAndReturn`),
/// meaningful under LFU.
#[must_use]
pub(crate) fn frequency(clock: u32, mode: Mode, now_ms: u64) -> u8 {
    let counter = (clock & 0xff) as u8;
    let Mode::Lfu { decay_time, .. } = mode else { return counter };
    let last = (clock >> 8) & 0xffff;
    let now = minutes(now_ms);
    let elapsed = if now >= last { now - last } else { 65535 - last + now };
    let periods = elapsed.checked_div(decay_time).unwrap_or(0);
    counter.saturating_sub(u8::try_from(periods).unwrap_or(u8::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LFU: Mode = Mode::Lfu { log_factor: 10, decay_time: 1 };

    #[test]
    fn lru_counts_idle_hundredths_across_the_wrap() {
        let t = 1_700_000_000_000;
        let c = fresh(Mode::Lru, t);
        assert_eq!(idle_ms(c, t + 5_457), 5_450);
        assert_eq!(idle_ms(u32::MAX, 2_000), 2_010);
    }

    #[test]
    fn lfu_grows_logarithmically_and_decays_by_the_minute() {
        let t = 1_700_000_000_000;
        let mut c = fresh(LFU, t);
        assert_eq!(frequency(c, LFU, t), LFU_INIT_VAL);
        // Below the initial value every hit counts; above it, a hit counts with probability
        // 1/((counter - 5) * 10 + 1).
        c = touched(c, LFU, t, 0.99);
        assert_eq!(frequency(c, LFU, t), 6);
        c = touched(c, LFU, t, 0.5);
        assert_eq!(frequency(c, LFU, t), 6, "p = 1/11");
        c = touched(c, LFU, t, 0.05);
        assert_eq!(frequency(c, LFU, t), 7);
        // Three idle minutes, three steps down (decay time 1).
        assert_eq!(frequency(c, LFU, t + 3 * 60_000), 4);
        assert_eq!(frequency(c, Mode::Lfu { log_factor: 10, decay_time: 0 }, t + 3 * 60_000), 7);
    }
}
