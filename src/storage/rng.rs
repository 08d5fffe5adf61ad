//! The pseudo-random generator behind random sampling (SRANDMEMBER, SPOP, HRANDFIELD,
//! ZRANDMEMBER, RANDOMKEY): SplitMix64, one per shard, seeded once per process. Every draw
//! advances it, so two calls in the same millisecond draw differently.

use crate::num::{mix, GAMMA};

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator starting from `seed` (tests replay a fixed sequence).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator seeded from the process's random hash keys, the time and `salt` (a shard id).
    #[must_use]
    pub(crate) fn seeded(salt: u64) -> Rng {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Rng(ahash::RandomState::new().hash_one((nanos, salt)))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// A generator of its own, seeded from this one (which moves on): for a command that must
    /// draw while it borrows the keyspace.
    pub(crate) fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    /// A uniform index below `n` (0 when `n` is 0), by Lemire's multiply-shift: its bias is at
    /// most `n / 2^64`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn below_is_uniform_and_in_range() {
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[rng.below(10)] += 1;
        }
        // Chi-square with 9 degrees of freedom: 27.9 is its 0.1% tail.
        let chi: f64 = counts.iter().map(|&c| (f64::from(c) - 10_000.0).powi(2) / 10_000.0).sum();
        assert!(chi < 27.9, "chi-square {chi}: {counts:?}");
        assert_eq!(rng.below(0), 0);
    }
}
