//! A chained hash table keyed by byte strings whose SCAN cursor keeps Redis's guarantee.
//!
//! Redis's `dictScan` promise: an element present for a whole SCAN is returned at least once,
//! even when the table grows or shrinks between calls. The standard library's maps cannot offer a
//! stable position, so this table keeps power-of-two bucket chains and walks them with Redis's
//! reverse-binary cursor. Up to 16 entries it is a plain vector instead (small hashes, sets and
//! sorted sets are most of them, and buckets cost them 4x their data). It never awaits and is
//! never shared: one shard owns each instance.

use bytes::{Bytes, BytesMut};
use thin_vec::ThinVec;

use crate::storage::rng::Rng;

const MIN_BUCKETS: usize = 4;
/// Keys this long or shorter are stored inside the entry: a lookup compares them without
/// chasing a pointer (one cache miss less per command on a large keyspace).
pub(crate) const INLINE: usize = 22;

/// A byte string as the dict stores it: short ones inline, longer ones shared. The sorted set's
/// member table uses it too, so a comparison of short members reads no second cache line, and
/// so do string values (a short value costs no allocation, and GET no second cache miss).
#[derive(Clone, Default)]
pub(crate) struct Key(Repr);

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
    pub(crate) fn new(key: Bytes) -> Key {
        if key.len() <= INLINE {
            Key::copy_from_slice(&key)
        } else {
            Key(Repr::Heap(key))
        }
    }

    /// Copies `bytes`: inline when short (no allocation), else into a `Bytes` of its own.
    #[must_use]
    pub(crate) fn copy_from_slice(bytes: &[u8]) -> Key {
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
    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The bytes as `Bytes`: a shared one is shared again, an inline one copied.
    #[must_use]
    pub(crate) fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Repr::Inline { len, bytes } => Bytes::copy_from_slice(&bytes[..usize::from(*len)]),
            Repr::Heap(b) => b.clone(),
        }
    }

    /// Changes the bytes through `f`, given them as a growable buffer: a shared buffer that
    /// nothing else holds is reused without a copy (SETBIT on a large bitmap copies nothing);
    /// an inline or still shared one is copied. Stored back inline when short enough.
    pub(crate) fn edit<R>(&mut self, f: impl FnOnce(&mut BytesMut) -> R) -> R {
        let mut buf = match std::mem::take(&mut self.0) {
            Repr::Inline { len, bytes } => BytesMut::from(&bytes[..usize::from(len)]),
            Repr::Heap(b) => b.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..])),
        };
        let r = f(&mut buf);
        *self = if buf.len() <= INLINE { Key::copy_from_slice(&buf) } else { Key(Repr::Heap(buf.freeze())) };
        r
    }

    /// The bytes.
    #[must_use]
    pub(crate) fn as_slice(&self) -> &[u8] {
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

/// Entries up to this many live in a plain vector, in insertion order, searched in turn: no
/// bucket array with its empty slots and overflow chains (Redis keeps small hashes in a listpack
/// for the same reason). A hash of five short fields took ~930 bytes, ~4.5x Redis's.
const SMALL: usize = 16;

/// The hash function of every dict: ahash, with keys drawn at random once per process (as
/// Redis seeds its siphash once), rather than 32 bytes of keys in every dict.
fn hasher() -> &'static ahash::RandomState {
    static HASHER: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    HASHER.get_or_init(ahash::RandomState::new)
}

/// A hash map from byte-string keys to `V`, with SCAN cursors and random sampling.
pub(crate) struct Dict<V> {
    table: Table<V>,
    len: usize,
}

/// A dict's storage: a vector while small, buckets from the first insert past [`SMALL`] on
/// (never back: a dict that was large tends to become large again, as in Redis).
enum Table<V> {
    Small(Vec<(Key, V)>),
    /// The buckets, and a bound on the longest chain (the longest since the last rehash; it
    /// fits in the enum's padding) for uniform random picks.
    Hashed(Vec<Bucket<V>>, u32),
}

impl<V> Default for Dict<V> {
    fn default() -> Dict<V> {
        Dict::new()
    }
}

/// A key's hash, the one every dict files it under (the slot index keeps it in the key's place).
#[must_use]
pub(crate) fn hash(key: &[u8]) -> u64 {
    hasher().hash_one(key)
}

fn bucket_of(key: &[u8], buckets: usize) -> usize {
    hash(key) as usize & (buckets - 1)
}

impl<V> Dict<V> {
    /// An empty dict.
    #[must_use]
    pub(crate) fn new() -> Dict<V> {
        Dict { table: Table::Small(Vec::new()), len: 0 }
    }

    /// Number of entries.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no entries.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value under `key`.
    #[must_use]
    pub(crate) fn get(&self, key: &[u8]) -> Option<&V> {
        let entry = match &self.table {
            Table::Small(v) => v.iter().find(|(k, _)| k.as_slice() == key),
            Table::Hashed(b, _) => b[bucket_of(key, b.len())].find(key),
        };
        entry.map(|(_, v)| v)
    }

    /// Asks the cpu to start loading `key`'s bucket (a small dict's first entries), so that a
    /// lookup soon after finds it in cache. A pipelined batch prefetches all its keys before
    /// running the first command: the cache misses of a large keyspace then overlap instead of
    /// coming one after another.
    pub(crate) fn prefetch(&self, key: &[u8]) {
        match &self.table {
            Table::Small(v) => {
                prefetch_lines(v.as_ptr().cast(), (v.len() * std::mem::size_of::<(Key, V)>()).min(256))
            }
            Table::Hashed(b, _) => {
                let bucket = &b[bucket_of(key, b.len())];
                prefetch_lines(std::ptr::from_ref(bucket).cast(), std::mem::size_of::<Bucket<V>>());
            }
        }
    }

    /// The value under `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut V> {
        let entry = match &mut self.table {
            Table::Small(v) => v.iter_mut().find(|(k, _)| k.as_slice() == key),
            Table::Hashed(b, _) => {
                let i = bucket_of(key, b.len());
                b[i].find_mut(key)
            }
        };
        entry.map(|(_, v)| v)
    }

    /// Inserts or replaces; returns the value that was there. A long `key` is kept as it is
    /// (shared), a short one copied inline.
    pub(crate) fn insert(&mut self, key: Bytes, value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(&key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(Key::new(key), value);
        None
    }

    /// [`Dict::insert`] of a copy of `key`: a short one costs no allocation at all (HSET's
    /// fields, SADD's members, which arrive inside a request).
    pub(crate) fn insert_copy(&mut self, key: &[u8], value: V) -> Option<V> {
        if let Some(slot) = self.get_mut(key) {
            return Some(std::mem::replace(slot, value));
        }
        self.insert_new(Key::copy_from_slice(key), value);
        None
    }

    /// Adds `key`, which is absent.
    fn insert_new(&mut self, key: Key, value: V) {
        self.len += 1;
        match &mut self.table {
            Table::Small(v) if v.len() < SMALL => {
                // Exactly the room needed: small dicts are many, and their size is the point.
                v.reserve_exact(1);
                v.push((key, value));
            }
            Table::Small(v) => {
                let entries = std::mem::take(v);
                self.table = Table::Hashed(Vec::new(), 0);
                self.rehash(2 * SMALL, entries.into_iter().chain([(key, value)]));
            }
            Table::Hashed(b, longest) => {
                let i = bucket_of(key.as_slice(), b.len());
                b[i].push((key, value));
                *longest = (*longest).max(b[i].len() as u32);
                let size = b.len();
                if self.len > size {
                    self.resize(size * 2);
                }
            }
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<V> {
        let value = match &mut self.table {
            Table::Small(v) => {
                let pos = v.iter().position(|(k, _)| k.as_slice() == key)?;
                // In order, as Redis's listpack: HGETALL of a small hash keeps insertion order.
                v.remove(pos).1
            }
            Table::Hashed(b, _) => {
                let i = bucket_of(key, b.len());
                let (value, size) = (b[i].remove(key)?, b.len());
                if size > MIN_BUCKETS && (self.len - 1) * 8 < size {
                    self.resize(size / 2);
                }
                value
            }
        };
        self.len -= 1;
        Some(value)
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        *self = Dict::new();
    }

    /// Rehashes a hashed table into `size` buckets.
    fn resize(&mut self, size: usize) {
        if let Table::Hashed(b, _) = &mut self.table {
            let old = std::mem::take(b);
            self.rehash(size, old.into_iter().flat_map(|b| b.head.into_iter().chain(b.more)));
        }
    }

    /// Makes the table `size` empty buckets and puts `entries` in them.
    fn rehash(&mut self, size: usize, entries: impl Iterator<Item = (Key, V)>) {
        let mut buckets: Vec<Bucket<V>> = (0..size).map(|_| Bucket::default()).collect();
        let mut longest = 0;
        for (k, v) in entries {
            let i = bucket_of(k.as_slice(), size);
            buckets[i].push((k, v));
            longest = longest.max(buckets[i].len() as u32);
        }
        self.table = Table::Hashed(buckets, longest);
    }

    /// Visits the keys whose [`hash`] is `hash`: one bucket's worth of them is compared.
    pub(crate) fn with_hash<'a>(&'a self, hash: u64, mut visit: impl FnMut(&'a [u8])) {
        let candidates: &'a [(Key, V)] = match &self.table {
            Table::Small(v) => v,
            Table::Hashed(b, _) => {
                let bucket = &b[hash as usize & (b.len() - 1)];
                for (k, _) in bucket.head.iter() {
                    if self::hash(k.as_slice()) == hash {
                        visit(k.as_slice());
                    }
                }
                &bucket.more
            }
        };
        for (k, _) in candidates {
            if self::hash(k.as_slice()) == hash {
                visit(k.as_slice());
            }
        }
    }

    /// Every entry, in no particular order (insertion order while small).
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8], &V)> {
        let (small, hashed) = match &self.table {
            Table::Small(v) => (Some(v.iter()), None),
            Table::Hashed(b, _) => (None, Some(b.iter().flat_map(Bucket::iter))),
        };
        small.into_iter().flatten().chain(hashed.into_iter().flatten()).map(|(k, v)| (k.as_slice(), v))
    }

    /// Visits the bucket at `cursor` and returns the next cursor (0 when the walk is over). A
    /// small dict is visited whole, whatever the cursor, as Redis scans a listpack.
    ///
    /// This is Redis's `dictScan` for a single table: the cursor's bits are incremented from the
    /// top, so buckets already visited stay visited when the table doubles or halves.
    pub(crate) fn scan(&self, cursor: u64, mut visit: impl FnMut(&[u8], &V)) -> u64 {
        let b = match &self.table {
            Table::Small(v) => {
                v.iter().for_each(|(k, v)| visit(k.as_slice(), v));
                return 0;
            }
            Table::Hashed(b, _) => b,
        };
        let mask = (b.len() - 1) as u64;
        for (k, v) in b[(cursor & mask) as usize].iter() {
            visit(k.as_slice(), v);
        }
        let mut v = cursor | !mask;
        v = v.reverse_bits().wrapping_add(1).reverse_bits();
        v
    }

    /// [`Dict::scan`] with each entry mutable (a snapshot marks what it has saved).
    pub(crate) fn scan_mut(&mut self, cursor: u64, mut visit: impl FnMut(&[u8], &mut V)) -> u64 {
        let b = match &mut self.table {
            Table::Small(v) => {
                v.iter_mut().for_each(|(k, v)| visit(k.as_slice(), v));
                return 0;
            }
            Table::Hashed(b, _) => b,
        };
        let mask = (b.len() - 1) as u64;
        let bucket = &mut b[(cursor & mask) as usize];
        for (k, v) in bucket.head.iter_mut().chain(bucket.more.iter_mut()) {
            visit(k.as_slice(), v);
        }
        (cursor | !mask).reverse_bits().wrapping_add(1).reverse_bits()
    }

    /// A SCAN step of HSCAN, SSCAN or ZSCAN: buckets from `cursor` until about `count`
    /// entries passing `matches` are found (or ten times `count` buckets were visited); returns
    /// the next cursor and what was found.
    pub(crate) fn scan_matching(
        &self,
        mut cursor: u64,
        count: usize,
        matches: impl Fn(&[u8]) -> bool,
    ) -> (u64, Vec<(Bytes, V)>)
    where
        V: Clone,
    {
        let mut found = Vec::new();
        let mut budget = count.saturating_mul(10).max(1);
        loop {
            cursor = self.scan(cursor, |k, v| {
                if matches(k) {
                    found.push((Bytes::copy_from_slice(k), v.clone()));
                }
            });
            budget -= 1;
            if cursor == 0 || budget == 0 || found.len() >= count {
                return (cursor, found);
            }
        }
    }

    /// An entry drawn uniformly at random; `None` when empty.
    ///
    /// A chained table cannot index its n-th entry, so this draws a bucket and a position below
    /// the longest chain's length until the position holds an entry: every entry is equally
    /// likely (Redis's `dictGetFairRandomKey` only approximates that). At the table's lowest
    /// load, 1/8, with chains of four, that is 32 draws on average.
    pub(crate) fn random(&self, rng: &mut Rng) -> Option<(&[u8], &V)> {
        if self.len == 0 {
            return None;
        }
        let (b, longest) = match &self.table {
            Table::Small(v) => return v.get(rng.below(v.len())).map(|(k, v)| (k.as_slice(), v)),
            Table::Hashed(b, longest) => (b, (*longest).max(1) as usize),
        };
        loop {
            if let Some((k, v)) = b[rng.below(b.len())].nth(rng.below(longest)) {
                return Some((k.as_slice(), v));
            }
        }
    }
}

impl<V> Dict<V> {
    /// Up to `n` entries for `f`, from consecutive buckets starting at a random one (Redis's
    /// `dictGetSomeKeys`, which eviction samples with): not each entry equally likely, as
    /// [`Dict::random`] is, but one random jump and then sequential reads, where `random`
    /// makes a random read per draw and several draws per entry in a sparse table. Looks at
    /// most `10 * n` buckets.
    pub(crate) fn some(&self, n: usize, rng: &mut Rng, mut f: impl FnMut(&[u8], &V)) {
        let n = n.min(self.len);
        if n == 0 {
            return;
        }
        match &self.table {
            Table::Small(v) => {
                let start = rng.below(v.len());
                v.iter().cycle().skip(start).take(n).for_each(|(k, val)| f(k.as_slice(), val));
            }
            Table::Hashed(b, _) => {
                let (mut at, mut seen) = (rng.below(b.len()), 0);
                for _ in 0..(10 * n).min(b.len()) {
                    for (k, val) in b[at].iter() {
                        f(k.as_slice(), val);
                        seen += 1;
                        if seen == n {
                            return;
                        }
                    }
                    at = (at + 1) % b.len();
                }
            }
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
        assert!(matches!(&d.table, Table::Hashed(b, _) if b.len() <= 128), "shrinks as it empties");
        assert_eq!(d.get(b"995"), Some(&995));
        assert!(d.random(&mut Rng::new(42)).is_some());
    }

    #[test]
    fn small_dicts_keep_insertion_order_and_grow_into_buckets() {
        let mut d = Dict::new();
        for i in 0..SMALL as u32 {
            d.insert(Bytes::from(format!("f{i}")), i);
        }
        assert!(matches!(&d.table, Table::Small(v) if v.len() == SMALL));
        d.remove(b"f3");
        d.insert(Bytes::from("f3"), 33);
        let order: Vec<&[u8]> = d.iter().map(|(k, _)| k).collect();
        assert_eq!((order[2], order[SMALL - 1]), (&b"f2"[..], &b"f3"[..]), "in insertion order");
        let mut seen = Vec::new();
        assert_eq!(d.scan(12345, |k, _| seen.push(k.to_vec())), 0, "a small dict is scanned whole");
        assert_eq!(seen.len(), SMALL);
        assert!((0..50).all(|seed| d.random(&mut Rng::new(seed)).is_some()));
        // One more grows it into buckets, where every entry is still found.
        d.insert(Bytes::from("grown"), 99);
        assert!(matches!(&d.table, Table::Hashed(b, _) if b.len() == 2 * SMALL));
        assert_eq!(d.len(), SMALL + 1);
        assert_eq!((d.get(b"f3"), d.get(b"grown"), d.get(b"f0")), (Some(&33), Some(&99), Some(&0)));
        assert_eq!(d.iter().count(), SMALL + 1);
        for i in 0..SMALL as u32 {
            assert!(d.remove(format!("f{i}").as_bytes()).is_some());
        }
        assert_eq!((d.len(), d.get(b"grown")), (1, Some(&99)));
        d.clear();
        assert!(d.is_empty() && d.random(&mut Rng::new(1)).is_none() && matches!(&d.table, Table::Small(_)));
    }

    /// Chi-square of `draws` uniform draws over `d`'s entries (its degrees of freedom are
    /// `d.len() - 1`).
    fn chi_square(d: &Dict<u32>, draws: u32, rng: &mut Rng) -> f64 {
        let mut counts = std::collections::HashMap::new();
        for _ in 0..draws {
            *counts.entry(*d.random(rng).unwrap().1).or_insert(0u32) += 1;
        }
        let expected = f64::from(draws) / d.len() as f64;
        d.iter().map(|(_, v)| (f64::from(*counts.get(v).unwrap_or(&0)) - expected).powi(2) / expected).sum()
    }

    #[test]
    fn random_draws_every_entry_equally_often() {
        let mut rng = Rng::new(3);
        // A hashed table with chains of every length, thinned by removals (which keep the
        // longest-chain bound as it was): each entry must still be equally likely.
        let mut d = Dict::new();
        for i in 0..400u32 {
            d.insert(Bytes::from(format!("m{i}")), i);
        }
        for i in (0..400u32).filter(|i| i % 3 == 0) {
            d.remove(format!("m{i}").as_bytes());
        }
        // 265 degrees of freedom: 351 is the 0.03% tail.
        let chi = chi_square(&d, 266 * 200, &mut rng);
        assert!(chi < 351.0, "hashed: chi-square {chi}");
        let mut small = Dict::new();
        for i in 0..10u32 {
            small.insert(Bytes::from(format!("s{i}")), i);
        }
        // 9 degrees of freedom: 30.2 is the 0.04% tail.
        let chi = chi_square(&small, 20_000, &mut rng);
        assert!(chi < 30.2, "small: chi-square {chi}");
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
