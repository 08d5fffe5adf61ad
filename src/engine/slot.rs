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
        let tagged = has_brace(key)
            .then(|| {
                let open = key.iter().position(|&c| c == b'{')?;
                let rest = &key[open + 1..];
                rest.iter().position(|&c| c == b'}').map(|close| &rest[..close])
            })
            .flatten()
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

/// Whether `key` holds a `{`: most keys do not, and this says so eight bytes at a time, with
/// no branch per byte, before any search for a hash tag.
fn has_brace(key: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const BRACES: u64 = u64::from_ne_bytes([b'{'; 8]);
    let mut chunks = key.chunks_exact(8);
    // A byte of `x` is zero where the key has a `{`; the classic zero-byte test finds one.
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let found = chunks.by_ref().any(|c| {
        let word = u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        zero_byte(word ^ BRACES)
    });
    found || chunks.remainder().contains(&b'{')
}

/// CRC16/XMODEM (polynomial 0x1021), the checksum Redis Cluster uses for key slots.
///
/// Eight bytes at a time ("slicing by 8"): a byte followed by `k` more contributes
/// `CRC16_TABLES[k][byte]`, so the eight lookups of a chunk are independent of each other and
/// only the first two depend on the checksum so far. Routing hashes every key of every
/// command in cluster mode; a key of 16 bytes costs two chunks instead of 16 dependent steps.
#[must_use]
pub(crate) fn crc16(data: &[u8]) -> u16 {
    let t = &CRC16_TABLES;
    let mut chunks = data.chunks_exact(8);
    let mut crc = 0u16;
    for c in &mut chunks {
        let [hi, lo] = crc.to_be_bytes();
        crc = t[7][usize::from(hi ^ c[0])]
            ^ t[6][usize::from(lo ^ c[1])]
            ^ t[5][usize::from(c[2])]
            ^ t[4][usize::from(c[3])]
            ^ t[3][usize::from(c[4])]
            ^ t[2][usize::from(c[5])]
            ^ t[1][usize::from(c[6])]
            ^ t[0][usize::from(c[7])];
    }
    chunks.remainder().iter().fold(crc, |crc, &b| (crc << 8) ^ t[0][usize::from((crc >> 8) as u8 ^ b)])
}

/// `CRC16_TABLES[k][b]`: the checksum of byte `b` followed by `k` zero bytes.
const CRC16_TABLES: [[u16; 256]; 8] = {
    let mut tables = [[0u16; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            bit += 1;
        }
        tables[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[k - 1][i];
            tables[k][i] = (prev << 8) ^ tables[0][(prev >> 8) as usize];
            i += 1;
        }
        k += 1;
    }
    tables
};

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum bit by bit, as the polynomial defines it.
    fn crc16_bitwise(data: &[u8]) -> u16 {
        let mut crc = 0u16;
        for &b in data {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
            }
        }
        crc
    }

    #[test]
    fn sliced_crc16_matches_the_bitwise_definition_at_every_length() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..80 {
            for _ in 0..20 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                assert_eq!(crc16(&data), crc16_bitwise(&data), "{data:?}");
            }
        }
    }

    #[test]
    fn a_brace_is_found_wherever_it_is() {
        for len in 0..40 {
            let mut key = vec![b'a'; len];
            assert!(!has_brace(&key));
            for at in 0..len {
                key[at] = b'{';
                assert!(has_brace(&key), "{len} {at}");
                key[at] = 0xFB; // differs from `{` only in the high bit
                assert!(!has_brace(&key), "{len} {at}");
                key[at] = b'a';
            }
        }
    }

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
