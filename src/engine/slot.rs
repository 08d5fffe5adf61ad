//! Redis hash slots (CRC16/XMODEM of the key or its `{hashtag}`, mod 16384) and their owning shard.

/// Number of hash slots, as in Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// A Redis hash slot, `0..16384`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Slot(pub(crate) u16);

/// The index of a shard, which is also the index of the core (executor) that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(pub usize);

impl Slot {
    /// The slot of `key`: only the part between the first `{` and the next `}` counts, when that
    /// part is not empty (Redis's hashtag rule).
    #[must_use]
    pub fn of(key: &[u8]) -> Slot {
        let tagged = key
            .iter()
            .position(|&c| c == b'{')
            .and_then(|open| {
                let rest = &key[open + 1..];
                rest.iter().position(|&c| c == b'}').map(|close| &rest[..close])
            })
            .filter(|tag| !tag.is_empty());
        Slot(crc16(tagged.unwrap_or(key)) % SLOTS)
    }

    /// Its number, `0..16384`.
    #[must_use]
    pub fn number(self) -> u16 {
        self.0
    }

    /// The shard owning this slot when the slots are split into `shards` contiguous ranges.
    #[must_use]
    pub fn shard(self, shards: usize) -> ShardId {
        ShardId(usize::from(self.0) * shards / usize::from(SLOTS))
    }
}

/// CRC16/XMODEM (polynomial 0x1021), the checksum Redis Cluster uses for key slots.
#[must_use]
pub(crate) fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)])
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis_cluster() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(Slot::of(b"foo"), Slot(12182));
        assert_eq!(Slot::of(b"bar"), Slot(5061));
        assert_eq!(Slot::of(b"{user1000}.following"), Slot::of(b"user1000"));
        assert_eq!(Slot::of(b"foo{}{bar}"), Slot(crc16(b"foo{}{bar}") % SLOTS));
        assert_eq!(Slot::of(b"foo{{bar}}zap"), Slot::of(b"{bar"));
    }

    #[test]
    fn shards_split_slots_evenly() {
        assert_eq!(Slot(0).shard(2), ShardId(0));
        assert_eq!(Slot(8191).shard(2), ShardId(0));
        assert_eq!(Slot(8192).shard(2), ShardId(1));
        assert_eq!(Slot(16383).shard(3), ShardId(2));
        assert_eq!(Slot(16383).shard(1), ShardId(0));
    }
}
