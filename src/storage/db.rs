//! One logical database of one shard: entries, their expiry, lazy and active expiration.
//!
//! Storage never awaits and is touched only by its own core.

use ahash::AHashMap;
use bytes::Bytes;

use crate::storage::dict::{Dict, Key};
use crate::storage::rng::Rng;

/// A stored value.
pub(crate) enum Value {
    /// A string (also holds integers and floats, as Redis does); up to 22 bytes inline.
    Str(Key),
    /// A list. Containers are boxed so that every entry stays small (strings dominate).
    List(Box<crate::storage::list::List>),
    /// A hash: field to value (a short value inline, as a short string value is).
    Hash(Box<Dict<Key>>),
    /// A set of members.
    Set(Box<Dict<()>>),
    /// A sorted set: members ordered by score (not boxed: a vector while small, else a box).
    ZSet(crate::storage::zset::ZSet),
}

impl Value {
    /// The name TYPE reports.
    #[must_use]
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::List(_) => "list",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
        }
    }

    /// Whether a container holds nothing (Redis deletes such keys).
    #[must_use]
    pub(crate) fn is_empty_container(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Hash(h) => h.is_empty(),
            Value::Set(s) => s.is_empty(),
            Value::ZSet(z) => z.is_empty(),
        }
    }
}

impl Clone for Value {
    fn clone(&self) -> Value {
        let copy = |k: &[u8]| Bytes::copy_from_slice(k);
        match self {
            Value::Str(s) => Value::Str(s.clone()),
            Value::List(l) => Value::List(l.clone()),
            Value::Hash(h) => Value::Hash(Box::new(h.iter().map(|(k, v)| (copy(k), v.clone())).collect())),
            Value::Set(s) => Value::Set(Box::new(s.iter().map(|(k, ())| (copy(k), ())).collect())),
            Value::ZSet(z) => Value::ZSet(z.iter_from(0, false).collect()),
        }
    }
}

/// A value and its absolute expiry time in Unix milliseconds.
#[derive(Clone)]
pub(crate) struct Entry {
    /// The value.
    pub(crate) value: Value,
    /// When it expires, 0 if it does not: 8 bytes where `Option<u64>` takes 16, in every entry
    /// of the keyspace.
    expiry: u64,
}

/// `expires_at` as [`Entry`] stores it. The epoch itself is as past as 1 ms after it, so 0
/// stays free to mean "never".
fn expiry(expires_at: Option<u64>) -> u64 {
    expires_at.map_or(0, |at| at.max(1))
}

impl Entry {
    /// An entry that expires at `expires_at` (Unix ms), if given.
    #[must_use]
    pub(crate) fn new(value: Value, expires_at: Option<u64>) -> Entry {
        Entry { value, expiry: expiry(expires_at) }
    }

    /// When it expires (Unix ms), if it does.
    #[must_use]
    pub(crate) fn expires_at(&self) -> Option<u64> {
        (self.expiry != 0).then_some(self.expiry)
    }

    /// Sets or clears the expiry; returns whether there was one.
    fn set_expires_at(&mut self, expires_at: Option<u64>) -> bool {
        std::mem::replace(&mut self.expiry, expiry(expires_at)) != 0
    }
}

/// Counters one database keeps; the shard sums them for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct DbStats {
    /// Reads that found their key.
    pub(crate) hits: u64,
    /// Reads that did not.
    pub(crate) misses: u64,
    /// Keys removed because their time ran out (lazily or actively).
    pub(crate) expired: u64,
    /// Key modifications (writes, removals, expiry changes): INFO's
    /// `rdb_changes_since_last_save` until persistence resets it at a save.
    pub(crate) changes: u64,
}

/// What a request names inside the container at a key, for [`Db::prefetch_members`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemberRef<'a> {
    /// The container's key.
    pub(crate) key: &'a Bytes,
    /// HSET's first field, SADD's first member, ZADD's member.
    pub(crate) member: &'a Bytes,
    /// The score a plain ZADD gives the member (not yet parsed), for the tree nodes it will touch.
    pub(crate) score: Option<&'a Bytes>,
}

/// How an observed key changed (see [`Db::observe`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// Written: created, overwritten or modified in place.
    Written,
    /// Removed: deleted, expired, or flushed while it existed.
    Removed,
}

/// A database: a dict of entries plus an index of the keys that have a TTL.
///
/// Invariants: a key is in `expires` exactly when its entry has `expires_at`; every mutation of a
/// key goes through `set`, `set_expiry`, `remove`, `write`, `signal` or `clear`, which record
/// the change of an observed key.
#[derive(Default)]
pub(crate) struct Db {
    entries: Dict<Entry>,
    expires: Dict<()>,
    expire_cursor: u64,
    /// Keys someone above storage watches or waits on, with how many observe each.
    observed: AHashMap<Bytes, u32>,
    /// Changes of observed keys, in order, until taken.
    changes: Vec<(Bytes, Change)>,
    /// Counters for INFO.
    pub(crate) stats: DbStats,
    /// Estimated mean time to live (ms) of the keys with a TTL, kept by active expiry as Redis
    /// keeps it: each step's sample mean moves it by a fiftieth.
    avg_ttl: u64,
}

impl Db {
    /// Starts loading `key`'s slot of the keyspace into cache (see [`Dict::prefetch`]).
    pub(crate) fn prefetch(&self, key: &[u8]) {
        self.entries.prefetch(key);
    }

    /// Starts loading, for each member a batch's commands name in a hash, set or sorted set
    /// (HSET's field, SADD's member), its slot in the container: the second cache miss of such a
    /// command. Call it after [`Db::prefetch`] of every key of the batch, so that these lookups
    /// mostly hit.
    ///
    /// A sorted set goes further, in rounds: each round takes every member's walk one node
    /// deeper into the tree (its slot, its leaf, the leaf's parent; the path toward a plain
    /// ZADD's new score), so that the misses of a round overlap. Walks that end in cache cost a
    /// few comparisons.
    pub(crate) fn prefetch_members<'a>(&self, members: impl Iterator<Item = MemberRef<'a>>) {
        let mut walks = Vec::new();
        for m in members {
            match self.entries.get(m.key).map(|e| &e.value) {
                Some(Value::Hash(h)) => h.prefetch(m.member),
                Some(Value::Set(s)) => s.prefetch(m.member),
                Some(Value::ZSet(z)) => {
                    z.prefetch(m.member);
                    if z.worth_walking() {
                        walks.push((z, m));
                    }
                }
                _ => {}
            }
        }
        if walks.is_empty() {
            return;
        }
        let mut walks: Vec<_> = walks
            .into_iter()
            .filter_map(|(z, m)| {
                // A hint only: an exotic score (hexadecimal, `inf`) just walks no further.
                let score = m.score.and_then(|s| std::str::from_utf8(s).ok()?.parse::<f64>().ok());
                Some((z, z.walk(m.member, score)?))
            })
            .collect();
        while !walks.is_empty() {
            walks.retain_mut(|(z, walk)| z.advance(walk));
        }
    }

    /// Number of keys, including expired ones not yet reclaimed.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Number of keys with a TTL.
    #[must_use]
    pub(crate) fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// The live entry under `key`, expiring it first if its time has come. Counts hit or miss.
    pub(crate) fn read(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        // One lookup on the hot path; a second only when the key must be reclaimed.
        let expired = match self.entries.get(key) {
            None => {
                self.stats.misses += 1;
                return None;
            }
            Some(e) => e.expires_at().is_some_and(|at| at <= now),
        };
        if expired {
            self.remove(key);
            self.stats.expired += 1;
            self.stats.misses += 1;
            return None;
        }
        self.stats.hits += 1;
        self.entries.get(key)
    }

    /// The live entry under `key`, for writing (no hit/miss counted). Counts as a modification
    /// for WATCH even if the caller ends up changing nothing.
    pub(crate) fn write(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        if self.live(key, now) {
            self.signal(key);
            self.entries.get_mut(key)
        } else {
            None
        }
    }

    /// Like [`Db::write`], but not yet a modification: the caller calls [`Db::signal`] if it
    /// changed something (Redis leaves WATCH alone when a write changes nothing).
    pub(crate) fn write_quiet(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        if self.live(key, now) {
            self.entries.get_mut(key)
        } else {
            None
        }
    }

    /// Whether `key` exists and is not expired; reclaims it if it is.
    pub(crate) fn live(&mut self, key: &[u8], now: u64) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if e.expires_at().is_some_and(|at| at <= now) => {
                self.remove(key);
                self.stats.expired += 1;
                false
            }
            Some(_) => true,
        }
    }

    /// Stores `value` under `key` with the given expiry, replacing any entry.
    pub(crate) fn set(&mut self, key: &[u8], value: Value, expires_at: Option<u64>) {
        self.touch(key, Change::Written);
        if let Some(entry) = self.entries.get_mut(key) {
            let had_ttl = entry.expires_at().is_some();
            *entry = Entry::new(value, expires_at);
            self.reindex_ttl(key, had_ttl, expires_at.is_some());
            return;
        }
        let key = Bytes::copy_from_slice(key);
        if expires_at.is_some() {
            self.expires.insert(key.clone(), ());
        }
        self.entries.insert(key, Entry::new(value, expires_at));
    }

    /// Sets or clears the expiry of an existing key; returns whether the key exists.
    pub(crate) fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>) -> bool {
        let Some(entry) = self.entries.get_mut(key) else { return false };
        self.stats.changes += 1;
        if !self.observed.is_empty() && self.observed.contains_key(key) {
            self.changes.push((Bytes::copy_from_slice(key), Change::Written));
        }
        let had_ttl = entry.set_expires_at(expires_at);
        self.reindex_ttl(key, had_ttl, expires_at.is_some());
        true
    }

    /// Keeps the TTL index in step when an existing key gains or loses its expiry.
    fn reindex_ttl(&mut self, key: &[u8], had_ttl: bool, has_ttl: bool) {
        match (had_ttl, has_ttl) {
            (false, true) => {
                self.expires.insert(Bytes::copy_from_slice(key), ());
            }
            (true, false) => {
                self.expires.remove(key);
            }
            _ => {}
        }
    }

    /// Deletes `key` if it holds an empty container (after a pop or a removal).
    pub(crate) fn drop_if_empty(&mut self, key: &[u8]) {
        if self.entries.get(key).is_some_and(|e| e.value.is_empty_container()) {
            self.remove(key);
        }
    }

    /// Removes `key`; returns its entry.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.touch(key, Change::Removed);
        if entry.expires_at().is_some() {
            self.expires.remove(key);
        }
        Some(entry)
    }

    /// Starts recording the changes of `key` (a client WATCHes it, or blocks on it); one call
    /// per observer.
    pub(crate) fn observe(&mut self, key: &[u8]) {
        *self.observed.entry(Bytes::copy_from_slice(key)).or_default() += 1;
    }

    /// One observer of `key` is done with it.
    pub(crate) fn unobserve(&mut self, key: &[u8]) {
        if let Some(n) = self.observed.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.observed.remove(key);
            }
        }
    }

    /// Whether any key is observed.
    #[must_use]
    pub(crate) fn observing(&self) -> bool {
        !self.observed.is_empty()
    }

    /// Takes the recorded changes, in order.
    pub(crate) fn take_changes(&mut self) -> Vec<(Bytes, Change)> {
        std::mem::take(&mut self.changes)
    }

    /// Whether changes wait to be taken.
    #[cfg(test)]
    #[must_use]
    pub(crate) fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }

    /// Whether `key` is there but expired at `now`, not yet reclaimed.
    #[must_use]
    pub(crate) fn expired_in_place(&self, key: &[u8], now: u64) -> bool {
        self.entries.get(key).and_then(Entry::expires_at).is_some_and(|at| at <= now)
    }

    /// Records that `key` changed (for WATCH and blocked clients), when someone observes it.
    pub(crate) fn signal(&mut self, key: &[u8]) {
        self.touch(key, Change::Written);
    }

    fn touch(&mut self, key: &[u8], change: Change) {
        self.stats.changes += 1;
        if !self.observed.is_empty() && self.observed.contains_key(key) {
            self.changes.push((Bytes::copy_from_slice(key), change));
        }
    }

    /// Removes every key (FLUSHDB, FLUSHALL). Only observed keys that were there change, as
    /// Redis 7.0 touches only watched keys that existed.
    pub(crate) fn clear(&mut self) {
        let removed: Vec<Bytes> =
            self.observed.keys().filter(|k| self.entries.get(k).is_some()).cloned().collect();
        self.changes.extend(removed.into_iter().map(|k| (k, Change::Removed)));
        self.stats.changes += self.entries.len() as u64;
        self.entries.clear();
        self.expires.clear();
        self.expire_cursor = 0;
    }

    /// Visits the live keys of the bucket at `cursor`; returns the next cursor (0 at the end).
    pub(crate) fn scan(&self, cursor: u64, now: u64, mut visit: impl FnMut(&[u8], &Entry)) -> u64 {
        self.entries.scan(cursor, |k, e| {
            if e.expires_at().is_none_or(|at| at > now) {
                visit(k, e);
            }
        })
    }

    /// Every live key.
    pub(crate) fn keys(&self, now: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.entries.iter().filter(move |(_, e)| e.expires_at().is_none_or(|at| at > now))
    }

    /// A random live key, reclaiming expired ones it meets (bounded tries).
    pub(crate) fn random_key(&mut self, rng: &mut Rng, now: u64) -> Option<Bytes> {
        for _ in 0..100 {
            let (key, expired) = {
                let (k, e) = self.entries.random(rng)?;
                (Bytes::copy_from_slice(k), e.expires_at().is_some_and(|at| at <= now))
            };
            if !expired {
                return Some(key);
            }
            self.remove(&key);
            self.stats.expired += 1;
        }
        None
    }

    /// One step of active expiry: walks the TTL index from where the last step stopped, looking at
    /// up to `budget` keys, and reclaims the expired ones. Returns (looked at, reclaimed).
    pub(crate) fn expire_step(&mut self, now: u64, budget: usize) -> (usize, usize) {
        let mut due = Vec::new();
        let mut looked = 0;
        let (mut ttl_sum, mut ttl_samples) = (0u64, 0u64);
        while looked < budget && !self.expires.is_empty() {
            let entries = &self.entries;
            self.expire_cursor = self.expires.scan(self.expire_cursor, |k, ()| {
                looked += 1;
                match entries.get(k).and_then(Entry::expires_at) {
                    Some(at) if at <= now => due.push(Bytes::copy_from_slice(k)),
                    Some(at) => {
                        ttl_sum = ttl_sum.saturating_add(at - now);
                        ttl_samples += 1;
                    }
                    None => {}
                }
            });
            if self.expire_cursor == 0 {
                break;
            }
        }
        for key in &due {
            self.remove(key);
        }
        self.stats.expired += due.len() as u64;
        if self.expires.is_empty() {
            self.avg_ttl = 0;
        } else if let Some(sample) = ttl_sum.checked_div(ttl_samples) {
            self.avg_ttl = if self.avg_ttl == 0 { sample } else { self.avg_ttl / 50 * 49 + sample / 50 };
        }
        (looked, due.len())
    }

    /// The estimated mean time to live, in ms, of the keys with a TTL (INFO keyspace's `avg_ttl`).
    #[must_use]
    pub(crate) fn avg_ttl(&self) -> u64 {
        if self.expires.is_empty() {
            0
        } else {
            self.avg_ttl
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(Key::copy_from_slice(v.as_bytes()))
    }

    #[test]
    fn lazy_expiry_and_ttl_index() {
        let mut db = Db::default();
        db.set(b"a", s("1"), Some(100));
        db.set(b"b", s("2"), None);
        assert_eq!(db.expires_len(), 1);
        assert!(db.read(b"a", 99).is_some());
        assert!(db.read(b"a", 100).is_none());
        assert_eq!(db.len(), 1);
        assert_eq!(db.expires_len(), 0);
        db.set_expiry(b"b", Some(5));
        assert_eq!(db.expires_len(), 1);
        db.set(b"b", s("3"), None);
        assert_eq!(db.expires_len(), 0, "SET without KEEPTTL clears the TTL index");
    }

    #[test]
    fn active_expiry_reclaims_untouched_keys() {
        let mut db = Db::default();
        for i in 0..1000 {
            db.set(format!("k{i}").as_bytes(), s("v"), Some(if i % 2 == 0 { 10 } else { 1000 }));
        }
        let mut total = 0;
        for _ in 0..100 {
            total += db.expire_step(500, 50).1;
        }
        assert_eq!(total, 500);
        assert_eq!(db.len(), 500);
        assert_eq!(db.expires_len(), 500);
    }

    #[test]
    fn only_observed_keys_report_their_changes() {
        let mut db = Db::default();
        db.set(b"quiet", s("v"), None);
        assert!(!db.has_changes(), "nobody observes");
        db.observe(b"k");
        db.observe(b"k");
        db.set(b"k", s("v"), None);
        db.signal(b"k");
        db.remove(b"k");
        db.set(b"k", s("w"), Some(10));
        assert!(db.read(b"k", 20).is_none(), "expired on read");
        db.remove(b"quiet");
        let changes = db.take_changes();
        let kinds: Vec<Change> = changes.iter().map(|(_, c)| *c).collect();
        assert_eq!(
            kinds,
            [Change::Written, Change::Written, Change::Removed, Change::Written, Change::Removed]
        );
        db.unobserve(b"k");
        db.set(b"k", s("v"), None);
        assert!(db.has_changes(), "still observed once");
        db.take_changes();
        db.unobserve(b"k");
        db.set(b"k", s("v"), None);
        assert!(!db.has_changes() && !db.observing());
    }

    #[test]
    fn a_flush_reports_only_observed_keys_that_existed() {
        let mut db = Db::default();
        db.set(b"k", s("v"), None);
        db.observe(b"k");
        db.observe(b"gone");
        db.clear();
        assert_eq!(db.take_changes(), [(Bytes::from_static(b"k"), Change::Removed)]);
    }
}
