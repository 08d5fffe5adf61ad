//! The pseudo-random generator behind random sampling (SRANDMEMBER, SPOP, HRANDFIELD,
//! ZRANDMEMBER, RANDOMKEY): SplitMix64, one per shard, seeded once per process. Every draw
//! advances it, so two calls in the same millisecond draw differently.

/// SplitMix64's increment: the golden ratio in 64 bits.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A generator seeded from the process's random hash keys, the time and `salt` (a shard id).
    #[must_use]
    pub fn seeded(salt: u64) -> Rng {
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Rng(ahash::RandomState::new().hash_one((nanos, salt)))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// A generator of its own, seeded from this one (which moves on): for a command that must
    /// draw while it borrows the keyspace.
    pub fn fork(&mut self) -> Rng {
        Rng(self.next_u64())
    }

    /// A uniform index below `n` (0 when `n` is 0), by Lemire's multiply-shift: its bias is at
    /// most `n / 2^64`.
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }
}

/// One step of SplitMix64 from `seed`: a well-spread 64-bit value (for hashing seeds apart).
#[must_use]
pub fn splitmix(seed: u64) -> u64 {
    mix(seed.wrapping_add(GAMMA))
}

/// SplitMix64's output function: a cheap, well-spread 64-bit mix.
#[must_use]
pub fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
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
