//! A chained hash table keyed by byte strings whose SCAN cursor keeps Redis's guarantee.
//!
//! Redis's `dictScan` promise: an element present for a whole SCAN is returned at least once,
//! even when the table grows or shrinks between calls. The standard library's maps cannot offer a
//! stable position, so this table keeps power-of-two bucket chains and walks them with Redis's
//! reverse-binary cursor. It never awaits and is never shared: one shard owns each instance.

use bytes::Bytes;
use thin_vec::ThinVec;

const MIN_BUCKETS: usize = 4;
/// Keys this long or shorter are stored inside the entry: a lookup compares them without
/// chasing a pointer (one cache miss less per command on a large keyspace).
const INLINE: usize = 22;

/// A byte string as the dict stores it: short ones inline, longer ones shared. The sorted set's
/// member table uses it too, so a comparison of short members reads no second cache line, and
/// so do string values (a short value costs no allocation, and GET no second cache miss).
#[derive(Clone, Default)]
pub struct Key(Repr);

#[derive(Clone)]
enum Repr {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Bytes),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Inline { len: 0, bytes: [0; INLINE] }
    }
}

impl AsRef<[u8]> for Key {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl Key {
    /// Stores `key`: copied inline when short, else kept as the shared `Bytes`.
    #[must_use]
    pub fn new(key: Bytes) -> Key {
        if key.len() <= INLINE {
            Key::copy_from_slice(&key)
        } else {
            Key(Repr::Heap(key))
        }
    }

    /// Copies `bytes`: inline when short (no allocation), else into a `Bytes` of its own.
    #[must_use]
    pub fn copy_from_slice(bytes: &[u8]) -> Key {
        Key(if bytes.len() <= INLINE {
            let mut inline = [0u8; INLINE];
            inline[..bytes.len()].copy_from_slice(bytes);
            Repr::Inline { len: bytes.len() as u8, bytes: inline }
        } else {
            Repr::Heap(Bytes::copy_from_slice(bytes))
        })
    }

    /// The length in bytes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes as `Bytes`: a shared one is shared again, an inline one copied.
    #[must_use]
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { len, bytes } => Bytes::copy_from_slice(&bytes[..usize::from(*len)]),
            Repr::Heap(b) => b.clone(),
        }
    }

    /// The bytes.
    #[must_use]
    pub fn as_slice(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Repr::Heap(b) => b,
        }
    }
}

/// One chain. Its first entry lives in the bucket array itself, so a lookup in a bucket of one
/// entry (most of them, at load factor 1) touches a single cache line.
/// The rest of the chain is a `ThinVec` (one pointer; length and capacity live in its
/// allocation), so a bucket is the entry plus 8 bytes.
struct Bucket<V> {
    head: Option<(Key, V)>,
    more: ThinVec<(Key, V)>,
}

impl<V> Default for Bucket<V> {
    fn default() -> Bucket<V> {
        Bucket { head: None, more: ThinVec::new() }
    }
}

impl<V> Bucket<V> {
    fn iter(&self) -> impl Iterator<Item = &(Key, V)> {
        self.head.iter().chain(self.more.iter())
    }

    fn find(&self, key: &[u8]) -> Option<&(Key, V)> {
        self.iter().find(|(k, _)| k.as_slice() == key)
    }

    fn find_mut(&mut self, key: &[u8]) -> Option<&mut (Key, V)> {
        self.head.iter_mut().chain(self.more.iter_mut()).find(|(k, _)| k.as_slice() == key)
    }

    fn push(&mut self, entry: (Key, V)) {
        match self.head {
            None => self.head = Some(entry),
            Some(_) => {
                // Most chains that overflow hold one more entry: room for exactly one, not the
                // four a vector starts with (that was ~85 bytes per key at load factor 0.8).
                self.more.reserve_exact(1);
                self.more.push(entry);
            }
        }
    }

    fn remove(&mut self, key: &[u8]) -> Option<V> {
        if self.head.as_ref().is_some_and(|(k, _)| k.as_slice() == key) {
            let (_, v) = std::mem::replace(&mut self.head, self.more.pop())?;
            if self.more.is_empty() {
                self.more = ThinVec::new();
            }
            return Some(v);
        }
        let pos = self.more.iter().position(|(k, _)| k.as_slice() == key)?;
        let (_, v) = self.more.swap_remove(pos);
        if self.more.is_empty() {
            self.more = ThinVec::new();
        }
        Some(v)
    }

    fn len(&self) -> usize {
        usize::from(self.head.is_some()) + self.more.len()
    }

    fn nth(&self, i: usize) -> Option<&(Key, V)> {
        self.iter().nth(i)
    }
}

/// Prefetches the cache lines of `len` bytes at `at` (a no-op on other architectures).
#[allow(unsafe_code)]
pub(super) fn prefetch_lines(at: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let first = at.wrapping_sub(at as usize & 63);
        for line in (0..(at as usize & 63) + len).step_by(64).map(|off| first.wrapping_add(off)) {
            // SAFETY: a prefetch is only a hint: it never faults, whatever the address, and
            // neither reads into the program nor writes; the lines belong to a live bucket
            // anyway. It needs SSE, which every x86_64 cpu has.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.cast::<i8>());
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (at, len);
}

/// A hash map from byte-string keys to `V`, with SCAN cursors and random sampling.
pub struct Dict<V> {
    buckets: Vec<Bucket<V>>,
    len: usize,
    hasher: ahash::RandomState,
}

impl<V> Default for Dict<V> {
    fn default() -> Dict<V> {
        Dict::new()
    }
}

impl<V> Dict<V> {
    /// An empty dict.
    #[must_use]
    pub fn new() -> Dict<V> {
        Dict {
            buckets: (0..MIN_BUCKETS).map(|_| Bucket::default()).collect(),
            len: 0,
            hasher: ahash::RandomState::new(),
        }
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn bucket_of(&self, key: &[u8]) -> usize {
        self.hasher.hash_one(key) as usize & self.mask()
    }

    /// The value under `key`.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&V> {
        self.buckets[self.bucket_of(key)].find(key).map(|(_, v)| v)
    }

    /// Asks the cpu to start loading `key`'s bucket, so that a lookup soon after finds it in
    /// cache. A pipelined batch prefetches all its keys before running the first command: the
    /// cache misses of a large keyspace then overlap instead of coming one after another.
    pub fn prefetch(&self, key: &[u8]) {
        let bucket = &self.buckets[self.bucket_of(key)];
        prefetch_lines(std::ptr::from_ref(bucket).cast(), std::mem::size_of::<Bucket<V>>());
    }

    /// The value under `key`, mutably.
    pub fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let i = self.bucket_of(key);
        self.buckets[i].find_mut(key).map(|(_, v)| v)
    }

    /// Inserts or replaces; returns the value that was there.
    pub fn insert(&mut self, key: Bytes, value: V) -> Option<V> {
        let i = self.bucket_of(&key);
        if let Some(slot) = self.buckets[i].find_mut(&key) {
            return Some(std::mem::replace(&mut slot.1, value));
        }
        self.buckets[i].push((Key::new(key), value));
        self.len += 1;
        if self.len > self.buckets.len() {
            self.resize(self.buckets.len() * 2);
        }
        None
    }

    /// Removes `key`; returns its value.
    pub fn remove(&mut self, key: &[u8]) -> Option<V> {
        let i = self.bucket_of(key);
        let entry = self.buckets[i].remove(key)?;
        self.len -= 1;
        if self.buckets.len() > MIN_BUCKETS && self.len * 8 < self.buckets.len() {
            self.resize(self.buckets.len() / 2);
        }
        Some(entry)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        *self = Dict { hasher: self.hasher.clone(), ..Dict::new() };
    }

    fn resize(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.buckets, (0..size).map(|_| Bucket::default()).collect());
        for (k, v) in old.into_iter().flat_map(|b| b.head.into_iter().chain(b.more)) {
            let i = self.bucket_of(k.as_slice());
            self.buckets[i].push((k, v));
        }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        self.buckets.iter().flat_map(Bucket::iter).map(|(k, v)| (k.as_slice(), v))
    }

    /// Visits the bucket at `cursor` and returns the next cursor (0 when the walk is over).
    ///
    /// This is Redis's `dictScan` for a single table: the cursor's bits are incremented from the
    /// top, so buckets already visited stay visited when the table doubles or halves.
    pub fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], &V)) -> u64 {
        let mask = self.mask() as u64;
        for (k, v) in self.buckets[(cursor & mask) as usize].iter() {
            visit(k.as_slice(), v);
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits().wrapping_add(1).reverse_bits();
        v
    }

    /// A bucket index chosen from `seed`, then the entry chosen within it; `None` when empty.
    ///
    /// Like Redis's `dictGetRandomKey`, entries in short chains are slightly favoured.
    #[must_use]
    pub fn random(&self, mut seed: u64) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        loop {
            let b = &self.buckets[seed as usize & self.mask()];
            if let Some((k, v)) = b.nth((seed >> 32) as usize % b.len().max(1)) {
                return Some((k.as_slice(), v));
            }
            seed = splitmix(seed);
        }
    }
}

impl<V> FromIterator<(Bytes, V)> for Dict<V> {
    fn from_iter<I: IntoIterator<Item = (Bytes, V)>>(iter: I) -> Dict<V> {
        let mut d = Dict::new();
        for (k, v) in iter {
            d.insert(k, v);
        }
        d
    }
}

/// One step of SplitMix64: a cheap, well-spread pseudo-random sequence.
#[must_use]
pub fn splitmix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn insert_get_remove() {
        let mut d = Dict::new();
        for i in 0..1000u32 {
            assert!(d.insert(Bytes::from(i.to_string()), i).is_none());
        }
        assert_eq!(d.len(), 1000);
        assert_eq!(d.get(b"500"), Some(&500));
        assert_eq!(d.insert(Bytes::from("500"), 7), Some(500));
        for i in 0..990u32 {
            assert!(d.remove(i.to_string().as_bytes()).is_some());
        }
        assert_eq!(d.len(), 10);
        assert!(d.buckets.len() <= 128, "shrinks as it empties");
        assert_eq!(d.get(b"995"), Some(&995));
        assert!(d.random(42).is_some());
    }

    #[test]
    fn scan_survives_resizes() {
        let mut d = Dict::new();
        for i in 0..100u32 {
            d.insert(Bytes::from(format!("stable{i}")), ());
        }
        let mut seen = HashSet::new();
        let (mut cursor, mut step) = (0u64, 0u32);
        loop {
            cursor = d.scan(cursor, |k, _| {
                seen.insert(k.to_vec());
            });
            // Grow the table mid-walk, then shrink it back.
            step += 1;
            if step == 3 {
                for i in 0..2000u32 {
                    d.insert(Bytes::from(format!("tmp{i}")), ());
                }
            }
            if step == 200 {
                for i in 0..2000u32 {
                    d.remove(format!("tmp{i}").as_bytes());
                }
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..100u32 {
            assert!(seen.contains(format!("stable{i}").as_bytes()), "stable{i} missed");
        }
        // Long keys live on the heap; short ones inline: both are found.
        let long = "k".repeat(100);
        d.insert(Bytes::from(long.clone()), ());
        assert!(d.get(long.as_bytes()).is_some());
        assert!(d.get(b"stable1").is_some());
        for i in 0..100u32 {
            assert_eq!(d.remove(format!("stable{i}").as_bytes()), Some(()));
        }
    }
}
