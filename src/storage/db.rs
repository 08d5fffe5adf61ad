//! One logical database of one shard: entries, their expiry, lazy and active expiration.
//!
//! Storage never awaits and is touched only by its own core.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::engine::command::MemberRef;
use crate::storage::dict::{Dict, Key};
use crate::storage::rng::Rng;

/// A stored value.
pub enum Value {
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
    pub fn type_name(&self) -> &'static str {
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
    pub fn is_empty_container(&self) -> bool {
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
pub struct Entry {
    /// The value.
    pub value: Value,
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
    pub fn new(value: Value, expires_at: Option<u64>) -> Entry {
        Entry { value, expiry: expiry(expires_at) }
    }

    /// When it expires (Unix ms), if it does.
    #[must_use]
    pub fn expires_at(&self) -> Option<u64> {
        (self.expiry != 0).then_some(self.expiry)
    }

    /// Sets or clears the expiry; returns whether there was one.
    fn set_expires_at(&mut self, expires_at: Option<u64>) -> bool {
        std::mem::replace(&mut self.expiry, expiry(expires_at)) != 0
    }
}

/// Counters one database keeps; the shard sums them for INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct DbStats {
    /// Reads that found their key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Keys removed because their time ran out (lazily or actively).
    pub expired: u64,
}

/// A WATCHing client's flag: set when a key it watches is modified, read by its EXEC.
pub type WatchFlag = Arc<AtomicBool>;

/// One client's WATCH of one key.
struct Watch {
    flag: WatchFlag,
    /// The key was there but expired when WATCHed: logically absent. Its deletion (by expiry,
    /// DEL or a flush) is then no change, as in Redis 7.0.
    expired: bool,
}

/// A database: a dict of entries plus an index of the keys that have a TTL.
///
/// Invariants: a key is in `expires` exactly when its entry has `expires_at`; every mutation of a
/// key goes through `set`, `set_expiry`, `remove`, `write` or `clear`, which flag its watchers.
#[derive(Default)]
pub struct Db {
    entries: Dict<Entry>,
    expires: Dict<()>,
    expire_cursor: u64,
    watchers: AHashMap<Bytes, Vec<Watch>>,
    /// Clients blocked on a key (BLPOP and friends), in the order they blocked.
    blocked: AHashMap<Bytes, VecDeque<crate::engine::blocking::Waiter>>,
    /// Keys with blocked clients that were modified since the shard last served them.
    ready: Vec<Bytes>,
    /// Counters for INFO.
    pub stats: DbStats,
}

impl Db {
    /// Starts loading `key`'s slot of the keyspace into cache (see [`Dict::prefetch`]).
    pub fn prefetch(&self, key: &[u8]) {
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
    pub fn prefetch_members<'a>(&self, members: impl Iterator<Item = MemberRef<'a>>) {
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
                let score = m.score.and_then(|s| crate::cmd::args::float(s).ok());
                Some((z, z.walk(m.member, score)?))
            })
            .collect();
        while !walks.is_empty() {
            walks.retain_mut(|(z, walk)| z.advance(walk));
        }
    }

    /// Number of keys, including expired ones not yet reclaimed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the database holds no keys.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of keys with a TTL.
    #[must_use]
    pub fn expires_len(&self) -> usize {
        self.expires.len()
    }

    /// The live entry under `key`, expiring it first if its time has come. Counts hit or miss.
    pub fn read(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
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
    pub fn write(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        if self.live(key, now) {
            self.signal(key);
            self.entries.get_mut(key)
        } else {
            None
        }
    }

    /// Like [`Db::write`], but not yet a modification: the caller calls [`Db::signal`] if it
    /// changed something (Redis leaves WATCH alone when a write changes nothing).
    pub fn write_quiet(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        if self.live(key, now) {
            self.entries.get_mut(key)
        } else {
            None
        }
    }

    /// Whether `key` exists and is not expired; reclaims it if it is.
    pub fn live(&mut self, key: &[u8], now: u64) -> bool {
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
    pub fn set(&mut self, key: &[u8], value: Value, expires_at: Option<u64>) {
        self.touch(key, false);
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
    pub fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>) -> bool {
        let Some(entry) = self.entries.get_mut(key) else { return false };
        if !self.watchers.is_empty() {
            Self::flag(&mut self.watchers, key, false);
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
    pub fn drop_if_empty(&mut self, key: &[u8]) {
        if self.entries.get(key).is_some_and(|e| e.value.is_empty_container()) {
            self.remove(key);
        }
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.touch(key, true);
        if entry.expires_at().is_some() {
            self.expires.remove(key);
        }
        Some(entry)
    }

    /// Registers `flag` to be set when `key` is next modified (WATCH). A key that is there but
    /// expired is watched as absent: its deletion will not count (Redis 7.0).
    pub fn watch(&mut self, key: &[u8], flag: &WatchFlag, now: u64) {
        let expired = self.entries.get(key).is_some_and(|e| e.expires_at().is_some_and(|at| at <= now));
        let watches = self.watchers.entry(Bytes::copy_from_slice(key)).or_default();
        // Drop flags whose client is gone, so abandoned watches do not pile up.
        watches.retain(|w| Arc::strong_count(&w.flag) > 1);
        if !watches.iter().any(|w| Arc::ptr_eq(&w.flag, flag)) {
            watches.push(Watch { flag: flag.clone(), expired });
        }
    }

    /// Forgets `flag` on `key` (UNWATCH, EXEC, DISCARD, disconnect).
    pub fn unwatch(&mut self, key: &[u8], flag: &WatchFlag) {
        if let Some(watches) = self.watchers.get_mut(key) {
            watches.retain(|w| !Arc::ptr_eq(&w.flag, flag));
            if watches.is_empty() {
                self.watchers.remove(key);
            }
        }
    }

    /// Whether `flag`'s WATCH of `key` must fail its EXEC because the key expired since: it was
    /// live when watched and is expired now, reclaimed or not (Redis's `isWatchedKeyExpired`).
    #[must_use]
    pub fn watch_expired(&self, key: &[u8], flag: &WatchFlag, now: u64) -> bool {
        let watched_live = self
            .watchers
            .get(key)
            .and_then(|ws| ws.iter().find(|w| Arc::ptr_eq(&w.flag, flag)))
            .is_some_and(|w| !w.expired);
        watched_live && self.entries.get(key).and_then(Entry::expires_at).is_some_and(|at| at <= now)
    }

    /// Tells WATCHers and blocked clients that `key` changed.
    pub fn signal(&mut self, key: &[u8]) {
        self.touch(key, false);
    }

    /// [`Db::signal`]; `deleted` when the change removed the key, which is no change to a
    /// client that watched it already expired.
    fn touch(&mut self, key: &[u8], deleted: bool) {
        if !self.watchers.is_empty() {
            Self::flag(&mut self.watchers, key, deleted);
        }
        if !self.blocked.is_empty() && self.blocked.contains_key(key) && !self.ready.iter().any(|k| k == key)
        {
            self.ready.push(Bytes::copy_from_slice(key));
        }
    }

    /// Blocks `waiter` on `key`, behind the clients already blocked there (or before them:
    /// a BLMOVE that was woken but lost its element keeps its place).
    pub fn block(&mut self, key: &[u8], waiter: crate::engine::blocking::Waiter, first_in_line: bool) {
        let queue = self.blocked.entry(Bytes::copy_from_slice(key)).or_default();
        if first_in_line {
            queue.push_front(waiter);
        } else {
            queue.push_back(waiter);
        }
    }

    /// Drops waiters that were served or gave up (their claim is taken).
    pub fn prune_blocked(&mut self, key: &[u8]) {
        if let Some(q) = self.blocked.get_mut(key) {
            q.retain(|w| !w.is_claimed());
            if q.is_empty() {
                self.blocked.remove(key);
            }
        }
    }

    /// Takes the keys that became ready, with their waiters (the shard serves them).
    pub fn take_ready(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.ready)
    }

    /// The first waiter blocked on `key` that `wanted` accepts (others keep their places).
    pub fn next_waiter_where(
        &mut self,
        key: &[u8],
        wanted: impl Fn(&crate::engine::blocking::Waiter) -> bool,
    ) -> Option<crate::engine::blocking::Waiter> {
        let q = self.blocked.get_mut(key)?;
        let at = q.iter().position(wanted)?;
        let w = q.remove(at);
        if q.is_empty() {
            self.blocked.remove(key);
        }
        w
    }

    /// Marks `key` ready so its waiters are served after the current command.
    pub fn mark_ready(&mut self, key: &[u8]) {
        if !self.ready.iter().any(|k| k == key) {
            self.ready.push(Bytes::copy_from_slice(key));
        }
    }

    /// Whether any key with blocked clients changed.
    #[must_use]
    pub fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// Raises the flags of `key`'s watchers and forgets them (a raised flag stays raised). When
    /// the change deleted the key, a watch of an expired key is instead
    /// cleared and kept: the key was logically absent all along.
    fn flag(watchers: &mut AHashMap<Bytes, Vec<Watch>>, key: &[u8], deleted: bool) {
        let Some(watches) = watchers.get_mut(key) else { return };
        watches.retain_mut(|w| {
            if w.expired && deleted {
                w.expired = false;
                return true;
            }
            w.flag.store(true, Ordering::Release);
            false
        });
        if watches.is_empty() {
            watchers.remove(key);
        }
    }

    /// Removes every key (FLUSHDB, FLUSHALL). As Redis 7.0, only the watchers of keys that
    /// were there are touched: watching a missing key survives a flush.
    pub fn clear(&mut self) {
        let watched: Vec<Bytes> =
            self.watchers.keys().filter(|k| self.entries.get(k).is_some()).cloned().collect();
        for key in watched {
            Self::flag(&mut self.watchers, &key, true);
        }
        self.entries.clear();
        self.expires.clear();
        self.expire_cursor = 0;
    }

    /// Visits the live keys of the bucket at `cursor`; returns the next cursor (0 at the end).
    pub fn scan(&self, cursor: u64, now: u64, mut visit: impl FnMut(&[u8], &Entry)) -> u64 {
        self.entries.scan(cursor, |k, e| {
            if e.expires_at().map_or(true, |at| at > now) {
                visit(k, e);
            }
        })
    }

    /// Every live key.
    pub fn keys(&self, now: u64) -> impl Iterator<Item = (&[u8], &Entry)> {
        self.entries.iter().filter(move |(_, e)| e.expires_at().map_or(true, |at| at > now))
    }

    /// A random live key, reclaiming expired ones it meets (bounded tries).
    pub fn random_key(&mut self, rng: &mut Rng, now: u64) -> Option<Bytes> {
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
    pub fn expire_step(&mut self, now: u64, budget: usize) -> (usize, usize) {
        let mut due = Vec::new();
        let mut looked = 0;
        while looked < budget && !self.expires.is_empty() {
            let entries = &self.entries;
            self.expire_cursor = self.expires.scan(self.expire_cursor, |k, ()| {
                looked += 1;
                if entries.get(k).and_then(Entry::expires_at).is_some_and(|at| at <= now) {
                    due.push(Bytes::copy_from_slice(k));
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
        (looked, due.len())
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

    fn raised(flag: &WatchFlag) -> bool {
        flag.load(Ordering::Acquire)
    }

    #[test]
    fn a_flush_touches_only_watched_keys_that_existed() {
        let mut db = Db::default();
        let (missing, present) = (WatchFlag::default(), WatchFlag::default());
        db.set(b"k", s("v"), None);
        db.watch(b"gone", &missing, 0);
        db.watch(b"k", &present, 0);
        db.clear();
        assert!(!raised(&missing), "a watched key that did not exist is untouched by a flush");
        assert!(raised(&present));
        db.set(b"gone", s("v"), None);
        assert!(raised(&missing), "the watch survived the flush");
    }

    #[test]
    fn a_key_watched_already_expired_is_absent_until_it_is_written() {
        let mut db = Db::default();
        let flag = WatchFlag::default();
        db.set(b"k", s("v"), Some(100));
        db.watch(b"k", &flag, 200);
        assert!(db.read(b"k", 200).is_none(), "reclaimed by a read");
        assert!(!raised(&flag), "its deletion is no change");
        assert!(!db.watch_expired(b"k", &flag, 300));
        db.set(b"k", s("w"), None);
        assert!(raised(&flag), "writing it is");
        let other = WatchFlag::default();
        db.set(b"e", s("v"), Some(100));
        db.watch(b"e", &other, 200);
        db.clear();
        assert!(!raised(&other), "nor is a flush that removes it");
    }

    #[test]
    fn a_watched_key_that_expires_fails_exec_even_unreclaimed() {
        let mut db = Db::default();
        let flag = WatchFlag::default();
        db.set(b"k", s("v"), Some(100));
        db.watch(b"k", &flag, 50);
        assert!(!db.watch_expired(b"k", &flag, 99));
        assert!(db.watch_expired(b"k", &flag, 100));
        assert!(!raised(&flag), "nothing touched it yet");
        assert!(!db.watch_expired(b"k", &WatchFlag::default(), 100), "only its watchers");
    }
}
