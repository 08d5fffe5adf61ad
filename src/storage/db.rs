//! One logical database of one shard: entries, their expiry, lazy and active expiration.
//!
//! Storage never awaits and is touched only by its own core.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::storage::clock;
use crate::storage::dict::{self, Dict, Key};
use crate::storage::dict_value::{Hash, Set};
use crate::storage::encoding::StrForm;
use crate::storage::rng::Rng;
use crate::storage::slot_index::{SlotIndex, SlotKeys, SlotOf};

/// A key's access clock (LRU time or LFU counter, see [`crate::storage::clock`]).
pub(crate) type Clock = u32;

/// A stored value, with its access clock. Every variant carries the clock as its second field
/// so that it sits in the 7 bytes of padding after the enum's tag (as Redis keeps its 24 bits in
/// the object header): an [`Entry`] is 48 bytes where a clock beside the value made it 56.
/// Values are built by [`Value::string`] and its siblings, which stamp a new key's clock as
/// Redis's `createObject` does; patterns name the payload and skip the clock with `..`.
pub(crate) enum Value {
    /// A string (also holds integers and floats, as Redis does); up to 22 bytes inline. The
    /// form it was written in (for OBJECT ENCODING) fits in the padding after the clock.
    Str(Key, Clock, StrForm),
    /// A list. Containers are boxed so that every entry stays small (strings dominate).
    List(Box<crate::storage::list::List>, Clock),
    /// A hash: field to value (a short value inline, as a short string value is).
    Hash(Hash, Clock),
    /// A set of members.
    Set(Set, Clock),
    /// A sorted set: members ordered by score (not boxed: a vector while small, else a box).
    ZSet(crate::storage::zset::ZSet, Clock),
    /// A stream: entries by ID and consumer groups.
    Stream(Box<crate::storage::stream::Stream>, Clock),
}

const _: () = assert!(std::mem::size_of::<Value>() == 40 && std::mem::size_of::<Entry>() == 48);

impl Value {
    /// A string value, its clock that of a key created now on this core.
    #[must_use]
    pub(crate) fn string(s: Key) -> Value {
        Value::string_as(s, StrForm::ByContent)
    }

    /// A string value written as `form` (see [`StrForm`]).
    #[must_use]
    pub(crate) fn string_as(s: Key, form: StrForm) -> Value {
        Value::Str(s, clock::on_create(), form)
    }

    /// A list value (see [`Value::string`] for its clock).
    #[must_use]
    pub(crate) fn list(l: Box<crate::storage::list::List>) -> Value {
        Value::List(l, clock::on_create())
    }

    /// A hash value (see [`Value::string`] for its clock).
    #[must_use]
    pub(crate) fn hash(h: Box<Dict<Key>>) -> Value {
        Value::Hash(Hash::from_dict(h), clock::on_create())
    }

    /// A set value (see [`Value::string`] for its clock).
    #[must_use]
    pub(crate) fn set(s: Box<Dict<()>>) -> Value {
        Value::Set(Set::from_dict(s), clock::on_create())
    }

    /// A sorted set value (see [`Value::string`] for its clock).
    #[must_use]
    pub(crate) fn zset(z: crate::storage::zset::ZSet) -> Value {
        Value::ZSet(z, clock::on_create())
    }

    /// A stream value (see [`Value::string`] for its clock).
    #[must_use]
    pub(crate) fn stream(s: Box<crate::storage::stream::Stream>) -> Value {
        Value::Stream(s, clock::on_create())
    }

    /// The access clock.
    #[must_use]
    pub(crate) fn clock(&self) -> Clock {
        match self {
            Value::Str(_, c, _)
            | Value::List(_, c)
            | Value::Hash(_, c)
            | Value::Set(_, c)
            | Value::ZSet(_, c)
            | Value::Stream(_, c) => *c,
        }
    }

    /// The access clock, to update.
    fn clock_mut(&mut self) -> &mut Clock {
        match self {
            Value::Str(_, c, _)
            | Value::List(_, c)
            | Value::Hash(_, c)
            | Value::Set(_, c)
            | Value::ZSet(_, c)
            | Value::Stream(_, c) => c,
        }
    }

    /// The name TYPE reports.
    #[must_use]
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(..) => "string",
            Value::List(..) => "list",
            Value::Hash(..) => "hash",
            Value::Set(..) => "set",
            Value::ZSet(..) => "zset",
            Value::Stream(..) => "stream",
        }
    }

    /// Whether a container holds nothing (Redis deletes such keys).
    #[must_use]
    pub(crate) fn is_empty_container(&self) -> bool {
        match self {
            Value::Str(..) => false,
            Value::List(l, ..) => l.is_empty(),
            Value::Hash(h, ..) => h.is_empty(),
            Value::Set(s, ..) => s.is_empty(),
            Value::ZSet(z, ..) => z.is_empty(),
            // An emptied stream stays: its counters and groups live on (as in Redis).
            Value::Stream(..) => false,
        }
    }
}

impl Clone for Value {
    fn clone(&self) -> Value {
        let copy = |k: &[u8]| Bytes::copy_from_slice(k);
        match self {
            Value::Str(s, c, f) => Value::Str(s.clone(), *c, *f),
            Value::List(l, c) => Value::List(l.clone(), *c),
            Value::Hash(h, c) => {
                Value::Hash(h.copy_with(|h| h.iter().map(|(k, v)| (copy(k), v.clone())).collect()), *c)
            }
            Value::Set(s, c) => {
                Value::Set(s.copy_with(|s| s.iter().map(|(k, ())| (copy(k), ())).collect()), *c)
            }
            Value::ZSet(z, c) if z.is_small() => Value::ZSet(z.iter_from(0, false).collect(), *c),
            Value::ZSet(z, c) => {
                // As Redis's zsetDup: a copy keeps the encoding (and the scores exactly), even
                // of a set that shrank.
                let mut copy = crate::storage::zset::ZSet::default();
                copy.make_large();
                z.iter_from(0, false).for_each(|(member, score)| copy.add_new(member, score));
                Value::ZSet(copy, *c)
            }
            Value::Stream(x, c) => Value::Stream(x.clone(), *c),
        }
    }
}

/// A value and its absolute expiry time in Unix milliseconds.
#[derive(Clone)]
pub(crate) struct Entry {
    /// The value.
    pub(crate) value: Value,
    /// When it expires, 0 if it does not: 8 bytes where `Option<u64>` takes 16, in every entry
    /// of the keyspace. The top bit is the snapshot mark (see [`Db::begin_snapshot`]): expiry
    /// times are at most `i64::MAX`, so it is never part of one.
    expiry: u64,
}

/// The bit of [`Entry::expiry`] that holds the snapshot mark.
const MARK: u64 = 1 << 63;

/// `expires_at` as [`Entry`] stores it. The epoch itself is as past as 1 ms after it, so 0
/// stays free to mean "never".
fn expiry(expires_at: Option<u64>) -> u64 {
    expires_at.map_or(0, |at| at.clamp(1, !MARK))
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
        let at = self.expiry & !MARK;
        (at != 0).then_some(at)
    }

    /// Sets or clears the expiry, keeping the mark; returns whether there was one.
    fn set_expires_at(&mut self, expires_at: Option<u64>) -> bool {
        let had = self.expiry & !MARK != 0;
        self.expiry = (self.expiry & MARK) | expiry(expires_at);
        had
    }

    /// Its access clock (kept in the value, see [`Value`]).
    #[must_use]
    pub(crate) fn access(&self) -> Clock {
        self.value.clock()
    }

    /// Records an access now on this core (Redis's `lookupKey` updating `lru`).
    fn accessed(&mut self) {
        let c = self.value.clock_mut();
        *c = clock::on_access(*c);
    }

    /// Replaces the value, keeping the key's access clock (as APPEND or SETRANGE change a
    /// string in place in Redis).
    pub(crate) fn replace_value(&mut self, value: Value) {
        let c = self.access();
        self.value = value;
        *self.value.clock_mut() = c;
    }

    /// The snapshot mark.
    fn mark(&self) -> bool {
        self.expiry & MARK != 0
    }

    /// Sets the snapshot mark.
    fn set_mark(&mut self, mark: bool) {
        self.expiry = (self.expiry & !MARK) | if mark { MARK } else { 0 };
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
    /// Keys removed to bring memory under `maxmemory`.
    pub(crate) evicted: u64,
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
    /// Not a change WATCH sees, but one blocked clients look at again (a stream's group
    /// destroyed).
    Ready,
}

/// A database: a dict of entries plus an index of the keys that have a TTL.
///
/// Invariants: a key is in `expires` exactly when its entry has `expires_at`; every mutation of a
/// What happened to a key that a database reports itself for keyspace notifications (the
/// commands report the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyEvent {
    /// It expired and was removed (Redis's `expired`).
    Expired,
    /// It was created (`new`).
    New,
    /// A read found no key (`keymiss`).
    Miss,
}

/// Which [`KeyEvent`]s a database records.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KeyEvents {
    /// Keys that expired.
    pub(crate) expired: bool,
    /// Keys created.
    pub(crate) new: bool,
    /// Reads that missed.
    pub(crate) miss: bool,
}

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
    /// The mark of an entry the running snapshot needs no more (saved, or written after its
    /// cut), which every entry has when none runs; a snapshot starts by flipping it.
    mark: bool,
    /// The snapshot in progress, if one is.
    snapshot: Option<Box<Snapshot>>,
    /// Whether keys removed because they expired are recorded (the journal logs their DEL).
    report_expired: bool,
    /// Keys removed because they expired, in order, until taken.
    expired_keys: Vec<Bytes>,
    /// Which key events are recorded for keyspace notifications (see [`Db::take_events`]).
    events_on: KeyEvents,
    /// Key events since last taken, in order.
    events: Vec<(KeyEvent, Bytes)>,
    /// How many cores have subscribers: key events are recorded only while one does.
    listeners: Option<Arc<AtomicUsize>>,
    /// Whether every modified key is recorded (see [`Db::record_modified`]).
    recording: bool,
    /// Keys modified since last taken, in order (duplicates kept), while recording, each with
    /// whether a command changed it (not expiry or eviction).
    modified: Vec<(Bytes, bool)>,
    /// The database was flushed since last taken, while recording.
    flushed: bool,
    /// Nothing expires: the AOF is being replayed (its commands were logged against the clock
    /// of their time; as in Redis, keys expire only once it is loaded).
    expiry_paused: bool,
    /// Expired keys read as missing but stay: clients are paused (CLIENT PAUSE, FAILOVER), and
    /// as in Redis the dataset and the stream stand still until the pause ends.
    expiry_frozen: bool,
    /// The keys of each hash slot, in cluster mode (see [`Db::index_slots`]).
    slots: Option<Box<SlotIndex>>,
}

/// Writes one entry as a snapshot file holds it (`key`, the entry, whether to compress). The
/// engine passes RDB's writer: storage does not know the file format.
pub(crate) type EntryWriter = fn(&mut Vec<u8>, &[u8], &Entry, bool);

/// What a running snapshot of a database has yet to do.
struct Snapshot {
    write: EntryWriter,
    compress: bool,
    /// Where the walk of the table is (a [`Dict::scan`] cursor).
    cursor: u64,
    /// The table as FLUSHDB or FLUSHALL left it during the snapshot: the walk goes on over it,
    /// since the live table then holds only keys written after the cut.
    frozen: Option<Dict<Entry>>,
    /// Entries saved just before a write changed or removed them, not yet handed out.
    pending: Vec<u8>,
    pending_keys: u64,
    /// Bytes saved before a mutation, in all (INFO's `rdb_last_cow_size`).
    presaved: u64,
}

impl Snapshot {
    /// Saves an entry the walk has not reached, before a write changes or removes it.
    fn save(&mut self, key: &[u8], entry: &Entry) {
        let before = self.pending.len();
        (self.write)(&mut self.pending, key, entry, self.compress);
        self.pending_keys += 1;
        self.presaved += (self.pending.len() - before) as u64;
    }
}

/// How much one piece of a snapshot may take: a piece runs on the shard's core between
/// commands, so its time is their delay.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Bytes of output, about.
    pub(crate) bytes: usize,
    /// Time.
    pub(crate) time: std::time::Duration,
    /// Asked between buckets: `true` ends the piece early (the core has work waiting).
    pub(crate) stop: Option<fn() -> bool>,
}

/// A piece of a database's snapshot (see [`Db::snapshot_chunk`]).
#[derive(Debug, Default)]
pub(crate) struct SnapshotChunk {
    /// Entries, as the snapshot file holds them.
    pub(crate) bytes: Vec<u8>,
    /// How many.
    pub(crate) keys: u64,
    /// Whether the snapshot of this database is complete.
    pub(crate) done: bool,
    /// When done: bytes the snapshot saved before mutations.
    pub(crate) presaved: u64,
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
                Some(Value::Hash(h, ..)) => h.prefetch(m.member),
                Some(Value::Set(s, ..)) => s.prefetch(m.member),
                Some(Value::ZSet(z, ..)) => {
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
        self.lookup(key, now, true, true)
    }

    /// Like [`Db::read`], but the key's access clock is left alone (Redis's `LOOKUP_NOTOUCH`:
    /// TYPE, EXISTS, TTL).
    pub(crate) fn read_untouched(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.lookup(key, now, false, true)
    }

    /// Like [`Db::read_untouched`], and a miss is no `keymiss` event (Redis's
    /// `LOOKUP_NONOTIFY`: OBJECT, MEMORY USAGE, DEBUG OBJECT).
    pub(crate) fn read_unnoticed(&mut self, key: &[u8], now: u64) -> Option<&Entry> {
        self.lookup(key, now, false, false)
    }

    fn lookup(&mut self, key: &[u8], now: u64, touch: bool, notify: bool) -> Option<&Entry> {
        let expired = match self.entries.get_mut(key) {
            None => {
                self.stats.misses += 1;
                if notify {
                    self.record(KeyEvent::Miss, key);
                }
                return None;
            }
            Some(e) => {
                let expired = e.expires_at().is_some_and(|at| at <= now) && !self.expiry_paused;
                if touch && !expired {
                    e.accessed();
                }
                expired
            }
        };
        if expired {
            self.expire(key);
            self.stats.misses += 1;
            if notify {
                self.record(KeyEvent::Miss, key);
            }
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
            let entry = self.entries.get_mut(key)?;
            entry.accessed();
            Some(entry)
        } else {
            None
        }
    }

    /// Like [`Db::write`], but not yet a modification: the caller calls [`Db::signal`] if it
    /// changed something (Redis leaves WATCH alone when a write changes nothing).
    pub(crate) fn write_quiet(&mut self, key: &[u8], now: u64) -> Option<&mut Entry> {
        if self.live(key, now) {
            if self.snapshot.is_some() {
                self.presave(key);
            }
            let entry = self.entries.get_mut(key)?;
            entry.accessed();
            Some(entry)
        } else {
            None
        }
    }

    /// Whether `key` exists and is not expired; reclaims it if it is.
    pub(crate) fn live(&mut self, key: &[u8], now: u64) -> bool {
        match self.entries.get(key) {
            None => false,
            Some(e) if e.expires_at().is_some_and(|at| at <= now) && !self.expiry_paused => {
                self.expire(key);
                false
            }
            Some(_) => true,
        }
    }

    /// Stores `value` under `key` with the given expiry, replacing any entry.
    pub(crate) fn set(&mut self, key: &[u8], value: Value, expires_at: Option<u64>) {
        self.touch(key, Change::Written);
        let mut new = Entry::new(value, expires_at);
        new.set_mark(self.mark);
        if let Some(entry) = self.entries.get_mut(key) {
            let had_ttl = entry.expires_at().is_some();
            // As Redis's dbOverwrite: under LFU the new value keeps the key's counter.
            if matches!(clock::core_mode(), clock::Mode::Lfu { .. }) {
                *new.value.clock_mut() = entry.access();
            }
            *entry = new;
            self.reindex_ttl(key, had_ttl, expires_at.is_some());
            return;
        }
        let key = Bytes::copy_from_slice(key);
        if self.events_on.new && self.listened() {
            self.events.push((KeyEvent::New, key.clone()));
        }
        if expires_at.is_some() {
            self.expires.insert(key.clone(), ());
        }
        if let Some(ix) = self.slots.as_deref_mut() {
            ix.add(&key, dict::hash(&key));
        }
        self.entries.insert(key, new);
    }

    /// Sets or clears the expiry of an existing key; returns whether the key exists.
    pub(crate) fn set_expiry(&mut self, key: &[u8], expires_at: Option<u64>) -> bool {
        if self.snapshot.is_some() {
            self.presave(key);
        }
        let Some(entry) = self.entries.get_mut(key) else { return false };
        self.stats.changes += 1;
        if !self.observed.is_empty() && self.observed.contains_key(key) {
            self.changes.push((Bytes::copy_from_slice(key), Change::Written));
        }
        if self.recording {
            self.modified.push((Bytes::copy_from_slice(key), true));
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
        if let Some(snap) = self.snapshot.as_deref_mut() {
            if entry.mark() != self.mark {
                snap.save(key, &entry);
            }
        }
        self.touch_only(key, Change::Removed);
        if entry.expires_at().is_some() {
            self.expires.remove(key);
        }
        if let Some(ix) = self.slots.as_deref_mut() {
            ix.remove(key, dict::hash(key));
        }
        Some(entry)
    }

    /// Removes `key` because its time ran out: counted, and recorded when asked. Not while
    /// expiry is frozen: the key then only reads as missing.
    fn expire(&mut self, key: &[u8]) {
        if self.expiry_frozen {
            return;
        }
        if self.remove(key).is_some() {
            self.removed_by_server();
            self.stats.expired += 1;
            if self.report_expired {
                self.expired_keys.push(Bytes::copy_from_slice(key));
            }
            self.record(KeyEvent::Expired, key);
        }
    }

    /// Records `event` on `key` if it is reported and someone may receive it.
    #[inline]
    fn record(&mut self, event: KeyEvent, key: &[u8]) {
        let on = match event {
            KeyEvent::Expired => self.events_on.expired,
            KeyEvent::New => self.events_on.new,
            KeyEvent::Miss => self.events_on.miss,
        };
        if on && self.listened() {
            self.events.push((event, Bytes::copy_from_slice(key)));
        }
    }

    /// Whether some core has a subscriber (always, when nobody said how to tell).
    fn listened(&self) -> bool {
        self.listeners.as_ref().is_none_or(|n| n.load(std::sync::atomic::Ordering::Acquire) > 0)
    }

    /// Chooses the key events recorded for keyspace notifications, and how to tell whether
    /// anyone listens (`listeners`: how many cores have subscribers).
    pub(crate) fn report_events(&mut self, on: KeyEvents, listeners: Option<Arc<AtomicUsize>>) {
        self.events_on = on;
        self.listeners = listeners;
        if on == KeyEvents::default() {
            self.events.clear();
        }
    }

    /// Stores a loaded key (a snapshot, a full sync): as [`Db::set`], but not a `new` key for
    /// keyspace notifications (Redis's `dbAddRDBLoad`).
    pub(crate) fn set_loaded(&mut self, key: &[u8], value: Value, expires_at: Option<u64>) {
        let new = std::mem::replace(&mut self.events_on.new, false);
        self.set(key, value, expires_at);
        self.events_on.new = new;
    }

    /// Whether key events wait to be taken.
    #[must_use]
    pub(crate) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Takes the key events recorded since the last call, in order.
    pub(crate) fn take_events(&mut self) -> Vec<(KeyEvent, Bytes)> {
        std::mem::take(&mut self.events)
    }

    /// Evicts `key` (for `maxmemory`): removed, counted, and recorded for the journal's DEL
    /// as an expired key is. Whether it was there.
    pub(crate) fn evict(&mut self, key: &[u8]) -> bool {
        if self.remove(key).is_none() {
            return false;
        }
        self.removed_by_server();
        self.stats.evicted += 1;
        if self.report_expired {
            self.expired_keys.push(Bytes::copy_from_slice(key));
        }
        true
    }

    /// A random key that may be evicted (only one with a TTL when `volatile`).
    pub(crate) fn random_candidate(&self, volatile: bool, rng: &mut Rng) -> Option<Bytes> {
        let key = if volatile { self.expires.random(rng)?.0 } else { self.entries.random(rng)?.0 };
        Some(Bytes::copy_from_slice(key))
    }

    /// Up to `n` random keys that may be evicted, with their entries, for `f` (Redis's
    /// `dictGetSomeKeys` sample: repeats are possible and harmless).
    pub(crate) fn sample_candidates(
        &self,
        volatile: bool,
        n: usize,
        rng: &mut Rng,
        mut f: impl FnMut(&[u8], &Entry),
    ) {
        if volatile {
            self.expires.some(n, rng, |key, ()| {
                if let Some(entry) = self.entries.get(key) {
                    f(key, entry);
                }
            });
        } else {
            self.entries.some(n, rng, f);
        }
    }

    /// The entry of `key` if it may be evicted (it has a TTL, when `volatile`).
    #[must_use]
    pub(crate) fn candidate(&self, key: &[u8], volatile: bool) -> Option<&Entry> {
        self.entries.get(key).filter(|e| !volatile || e.expires_at().is_some())
    }

    /// Stops or resumes expiry (see `expiry_paused`).
    pub(crate) fn pause_expiry(&mut self, paused: bool) {
        self.expiry_paused = paused;
    }

    /// Freezes expiry or thaws it (see `expiry_frozen`).
    pub(crate) fn freeze_expiry(&mut self, frozen: bool) {
        self.expiry_frozen = frozen;
    }

    /// Whether expiry is paused.
    #[must_use]
    pub(crate) fn expiry_paused(&self) -> bool {
        self.expiry_paused
    }

    /// Whether an expiry at `at` (Unix ms) has come at `now`: never while expiry is paused.
    #[must_use]
    pub(crate) fn is_due(&self, at: u64, now: u64) -> bool {
        at <= now && !self.expiry_paused
    }

    /// Starts or stops recording the keys that expire (see [`Db::take_expired`]).
    pub(crate) fn report_expired(&mut self, on: bool) {
        self.report_expired = on;
        if !on {
            self.expired_keys.clear();
        }
    }

    /// Takes the keys that expired since the last call, in order.
    pub(crate) fn take_expired(&mut self) -> Option<Vec<Bytes>> {
        (!self.expired_keys.is_empty()).then(|| std::mem::take(&mut self.expired_keys))
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

    /// Whether `key` is there and live at `now`, neither reclaimed, touched nor counted (the
    /// cluster's look at an open slot).
    #[must_use]
    pub(crate) fn holds(&self, key: &[u8], now: u64) -> bool {
        self.entries.get(key).is_some_and(|e| e.expires_at().is_none_or(|at| !self.is_due(at, now)))
    }

    /// Whether `key` is there but expired at `now`, not yet reclaimed.
    #[must_use]
    pub(crate) fn expired_in_place(&self, key: &[u8], now: u64) -> bool {
        self.entries.get(key).and_then(Entry::expires_at).is_some_and(|at| self.is_due(at, now))
    }

    /// Counts a change of `key` that WATCH does not see (Redis's `dirty++` without
    /// `signalModifiedKey`: a stream's consumer groups); with `ready`, blocked clients look at
    /// the key again. The caller reached the key through [`Db::write_quiet`].
    pub(crate) fn count_change(&mut self, key: &[u8], ready: bool) {
        self.stats.changes += 1;
        if ready && !self.observed.is_empty() && self.observed.contains_key(key) {
            self.changes.push((Bytes::copy_from_slice(key), Change::Ready));
        }
    }

    /// Records that `key` changed (for WATCH and blocked clients), when someone observes it.
    pub(crate) fn signal(&mut self, key: &[u8]) {
        self.touch(key, Change::Written);
    }

    /// Records a change about to happen: a running snapshot saves the key first.
    fn touch(&mut self, key: &[u8], change: Change) {
        if self.snapshot.is_some() {
            self.presave(key);
        }
        self.touch_only(key, change);
    }

    /// Records a change whose old value needs no saving.
    fn touch_only(&mut self, key: &[u8], change: Change) {
        self.stats.changes += 1;
        if !self.observed.is_empty() && self.observed.contains_key(key) {
            self.changes.push((Bytes::copy_from_slice(key), change));
        }
        if self.recording {
            self.modified.push((Bytes::copy_from_slice(key), true));
        }
    }

    /// The key just removed went by expiry or eviction, not by the command (Redis's
    /// `signalModifiedKey(NULL, ...)`).
    fn removed_by_server(&mut self) {
        if let Some(last) = self.modified.last_mut().filter(|_| self.recording) {
            last.1 = false;
        }
    }

    /// Starts or stops recording every modified key (written, removed, expired, evicted, its
    /// TTL changed) and flushes, for client-side caching's invalidations (Redis's
    /// `signalModifiedKey`). Stopping drops what was not taken.
    pub(crate) fn record_modified(&mut self, on: bool) {
        self.recording = on;
        if !on {
            self.modified = Vec::new();
            self.flushed = false;
        }
    }

    /// Takes the keys modified since the last call, in order, each with whether a command
    /// changed it (not expiry or eviction), and whether the database was flushed meanwhile.
    pub(crate) fn take_modified(&mut self) -> (Vec<(Bytes, bool)>, bool) {
        (std::mem::take(&mut self.modified), std::mem::take(&mut self.flushed))
    }

    /// Whether modified keys or a flush wait to be taken.
    #[must_use]
    pub(crate) fn has_modified(&self) -> bool {
        !self.modified.is_empty() || self.flushed
    }

    /// Removes every key (FLUSHDB, FLUSHALL). Only observed keys that were there change, as
    /// Redis 7.0 touches only watched keys that existed.
    pub(crate) fn clear(&mut self) {
        let removed: Vec<Bytes> =
            self.observed.keys().filter(|k| self.entries.get(k).is_some()).cloned().collect();
        self.changes.extend(removed.into_iter().map(|k| (k, Change::Removed)));
        self.stats.changes += self.entries.len() as u64;
        if self.recording {
            // A flush invalidates every key at once, not one by one (Redis's
            // `trackingInvalidateKeysOnFlush`).
            self.flushed = true;
        }
        if let Some(snap) = self.snapshot.as_deref_mut() {
            if snap.frozen.is_none() {
                // The walk goes on over the table as it was, from where it was.
                snap.frozen = Some(std::mem::take(&mut self.entries));
            }
        }
        self.entries.clear();
        self.expires.clear();
        if let Some(ix) = self.slots.as_deref_mut() {
            ix.clear();
        }
        self.expire_cursor = 0;
    }

    /// SWAPDB: this database's keys and the other's trade places, while what belongs to the
    /// database number stays (the keys clients watch or wait on, the running snapshot, the
    /// counters, the expiry switches). A watched or awaited key present on either side before
    /// the swap changes (Redis's `touchAllWatchedKeysInDb` and `scanDatabaseForReadyKeys`).
    ///
    /// A snapshot running on either side first saves every entry it has not reached (its cut
    /// is the table as it was): O(keys) then, nothing otherwise. Each table takes its mark
    /// along, so every entry keeps meaning "saved" to the side it lands on.
    pub(crate) fn swap_with(&mut self, other: &mut Db) {
        self.save_unreached();
        other.save_unreached();
        let touched = |db: &Db, with: &Db| -> Vec<Bytes> {
            db.observed
                .keys()
                .filter(|k| db.entries.get(k).is_some() || with.entries.get(k).is_some())
                .cloned()
                .collect()
        };
        let (mine, theirs) = (touched(self, other), touched(other, self));
        std::mem::swap(&mut self.entries, &mut other.entries);
        std::mem::swap(&mut self.expires, &mut other.expires);
        std::mem::swap(&mut self.slots, &mut other.slots);
        std::mem::swap(&mut self.expire_cursor, &mut other.expire_cursor);
        std::mem::swap(&mut self.avg_ttl, &mut other.avg_ttl);
        std::mem::swap(&mut self.mark, &mut other.mark);
        self.changes.extend(mine.into_iter().map(|k| (k, Change::Written)));
        other.changes.extend(theirs.into_iter().map(|k| (k, Change::Written)));
    }

    /// SWAPDB of a database with itself: nothing moves, but as in Redis every watched or
    /// awaited key that is there changes.
    pub(crate) fn swap_with_itself(&mut self) {
        let there: Vec<Bytes> =
            self.observed.keys().filter(|k| self.entries.get(k).is_some()).cloned().collect();
        self.changes.extend(there.into_iter().map(|k| (k, Change::Written)));
    }

    /// Saves for the running snapshot (unless it walks a table a flush froze) every entry its
    /// walk has not reached yet.
    fn save_unreached(&mut self) {
        let mark = self.mark;
        let Some(snap) = self.snapshot.as_deref_mut() else { return };
        if snap.frozen.is_some() {
            return;
        }
        let mut cursor = 0;
        loop {
            cursor = self.entries.scan_mut(cursor, |key, entry| {
                if entry.mark() != mark {
                    snap.save(key, entry);
                    entry.set_mark(mark);
                }
            });
            if cursor == 0 {
                break;
            }
        }
    }

    /// Visits the live keys of the bucket at `cursor`; returns the next cursor (0 at the end).
    pub(crate) fn scan(&self, cursor: u64, now: u64, mut visit: impl FnMut(&[u8], &Entry)) -> u64 {
        self.entries.scan(cursor, |k, e| {
            if e.expires_at().is_none_or(|at| at > now) {
                visit(k, e);
            }
        })
    }

    /// Keeps the keys of each hash slot from now on (a cluster node's database): `slot_of`
    /// maps a key to one of `slots` slots. The keys already there are indexed at once.
    pub(crate) fn index_slots(&mut self, slot_of: SlotOf, slots: usize) {
        let mut ix = SlotIndex::new(slot_of, slots);
        for (key, _) in self.entries.iter() {
            ix.add(key, dict::hash(key));
        }
        self.slots = Some(Box::new(ix));
    }

    /// The keys of each hash slot, when kept (see [`Db::index_slots`]).
    #[must_use]
    pub(crate) fn slot_index(&self) -> Option<SlotKeys<'_, Entry>> {
        self.slots.as_deref().map(|index| SlotKeys { index, dict: &self.entries })
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
            if !expired || self.expiry_paused {
                return Some(key);
            }
            self.expire(&key);
        }
        None
    }

    /// One step of active expiry: walks the TTL index from where the last step stopped, looking at
    /// up to `budget` keys, and reclaims the expired ones. Returns (looked at, reclaimed).
    pub(crate) fn expire_step(&mut self, now: u64, budget: usize) -> (usize, usize) {
        if self.expiry_paused || self.expiry_frozen {
            return (0, 0);
        }
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
            self.expire(key);
        }
        if self.expires.is_empty() {
            self.avg_ttl = 0;
        } else if let Some(sample) = ttl_sum.checked_div(ttl_samples) {
            self.avg_ttl = if self.avg_ttl == 0 { sample } else { self.avg_ttl / 50 * 49 + sample / 50 };
        }
        (looked, due.len())
    }

    /// Starts a snapshot at this instant (the cut): from now on every entry there is saved once,
    /// either by the walk of [`Db::snapshot_chunk`] or, if a write comes first, just before the
    /// write changes it (serialize before mutate). O(1): flipping the database's mark makes every
    /// entry unsaved at once, and entries written later get the new mark.
    pub(crate) fn begin_snapshot(&mut self, write: EntryWriter, compress: bool) {
        self.abort_snapshot();
        self.mark = !self.mark;
        self.snapshot = Some(Box::new(Snapshot {
            write,
            compress,
            cursor: 0,
            frozen: None,
            pending: Vec::new(),
            pending_keys: 0,
            presaved: 0,
        }));
    }

    /// The next piece of the running snapshot, appended to `into` until it holds
    /// `budget.bytes` or the piece has run `budget.time`, whichever comes first: the entries
    /// saved before
    /// mutations first, then the walk's next buckets. The last piece has `done` set, and the
    /// snapshot is over; with none running the piece is empty and done.
    pub(crate) fn snapshot_chunk(&mut self, budget: Budget, mut into: Vec<u8>) -> SnapshotChunk {
        let mark = self.mark;
        let Some(snap) = self.snapshot.as_deref_mut() else {
            return SnapshotChunk { bytes: into, done: true, ..SnapshotChunk::default() };
        };
        if into.is_empty() {
            into = std::mem::take(&mut snap.pending);
        } else {
            into.extend_from_slice(&snap.pending);
            snap.pending.clear();
        }
        let mut chunk = SnapshotChunk {
            bytes: into,
            keys: std::mem::take(&mut snap.pending_keys),
            done: false,
            presaved: 0,
        };
        let (write, compress) = (snap.write, snap.compress);
        let table = match &mut snap.frozen {
            Some(frozen) => frozen,
            None => &mut self.entries,
        };
        let started = std::time::Instant::now();
        let mut buckets = 0u32;
        while chunk.bytes.len() < budget.bytes {
            // The clock and `stop` are read every 16 buckets: ~1 ns a bucket.
            buckets += 1;
            if buckets % 16 == 0
                && (started.elapsed() >= budget.time || budget.stop.is_some_and(|stop| stop()))
            {
                break;
            }
            snap.cursor = table.scan_mut(snap.cursor, |key, entry| {
                if entry.mark() != mark {
                    write(&mut chunk.bytes, key, entry, compress);
                    entry.set_mark(mark);
                    chunk.keys += 1;
                }
            });
            if snap.cursor == 0 {
                chunk.done = true;
                break;
            }
        }
        if chunk.done {
            chunk.presaved = snap.presaved;
            self.snapshot = None;
        }
        chunk
    }

    /// Ends the running snapshot unfinished (its file failed, or FLUSHALL cancelled it): the
    /// entries it had not reached take the mark, so the next one starts even. O(keys), rare.
    pub(crate) fn abort_snapshot(&mut self) {
        if self.snapshot.take().is_none() {
            return;
        }
        let mark = self.mark;
        let mut cursor = 0;
        loop {
            cursor = self.entries.scan_mut(cursor, |_, entry| entry.set_mark(mark));
            if cursor == 0 {
                break;
            }
        }
    }

    /// Saves `key` for the running snapshot if it has not reached it: a write is about to
    /// change it.
    #[cold]
    fn presave(&mut self, key: &[u8]) {
        let mark = self.mark;
        let Some(snap) = self.snapshot.as_deref_mut() else { return };
        if snap.frozen.is_some() {
            // The live table holds only keys written after the cut.
            return;
        }
        if let Some(entry) = self.entries.get_mut(key) {
            if entry.mark() != mark {
                snap.save(key, entry);
                entry.set_mark(mark);
            }
        }
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
        Value::string(Key::copy_from_slice(v.as_bytes()))
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
    fn the_slot_index_follows_every_write_and_removal() {
        // Slots by first byte, so that the test knows them.
        fn first(k: &[u8]) -> u16 {
            k.first().map_or(0, |&b| u16::from(b))
        }
        let count = |db: &Db, c: u8| db.slot_index().map_or(usize::MAX, |ix| ix.count(u16::from(c)));
        let mut db = Db::default();
        db.set(b"a1", s("1"), None);
        db.index_slots(first, 256);
        assert_eq!(count(&db, b'a'), 1, "keys already there are indexed");
        db.set(b"a2", s("2"), Some(100));
        db.set(b"a2", s("3"), Some(100));
        db.set(b"b-a-long-key-on-the-heap-beyond-inline", s("4"), None);
        assert_eq!((count(&db, b'a'), count(&db, b'b')), (2, 1), "an overwrite adds nothing");
        assert!(db.read(b"a2", 100).is_none());
        assert_eq!(count(&db, b'a'), 1, "an expired key leaves its slot");
        db.remove(b"a1");
        assert_eq!(count(&db, b'a'), 0);
        let mut other = Db::default();
        db.swap_with(&mut other);
        assert!(db.slot_index().is_none() && count(&other, b'b') == 1, "the index goes with the keys");
        other.clear();
        assert_eq!(count(&other, b'b'), 0);
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

    #[test]
    fn a_copy_keeps_a_sorted_set_s_encoding_and_scores() {
        let mut z = crate::storage::zset::ZSet::default();
        z.make_large();
        z.add_new(Bytes::from_static(b"a"), -0.0);
        let copy = Value::zset(z).clone();
        let Value::ZSet(copy, _) = copy else { panic!("a sorted set") };
        assert!(!copy.is_small(), "a shrunk skiplist stays one when copied, as Redis's zsetDup");
        let scores: Vec<f64> = copy.iter_from(0, false).map(|(_, s)| s).collect();
        assert!(scores[0].is_sign_negative());
    }

    #[test]
    fn while_recording_every_modified_key_and_flush_is_reported() {
        let mut db = Db::default();
        db.set(b"before", s("v"), None);
        assert!(!db.has_modified(), "not recording yet");
        db.record_modified(true);
        db.set(b"a", s("v"), None);
        db.set_expiry(b"a", Some(1));
        assert!(!db.live(b"a", 2), "expired");
        db.remove(b"nosuch");
        db.remove(b"before");
        let (keys, flushed) = db.take_modified();
        let keys: Vec<(&[u8], bool)> = keys.iter().map(|(k, by)| (&k[..], *by)).collect();
        assert_eq!(keys, [(&b"a"[..], true), (b"a", true), (b"a", false), (b"before", true)]);
        assert!(!flushed);
        db.clear();
        assert_eq!(db.take_modified(), (Vec::new(), true));
        db.record_modified(false);
        db.set(b"c", s("v"), None);
        assert!(!db.has_modified());
    }

    /// A snapshot writer for tests: `key=value[@expiry];`.
    fn text(out: &mut Vec<u8>, key: &[u8], entry: &Entry, _compress: bool) {
        out.extend_from_slice(key);
        out.push(b'=');
        if let Value::Str(v, ..) = &entry.value {
            out.extend_from_slice(v.as_slice());
        }
        if let Some(at) = entry.expires_at() {
            out.extend_from_slice(format!("@{at}").as_bytes());
        }
        out.push(b';');
    }

    /// Pieces of a few entries, never cut short by time.
    const SMALL: Budget = Budget { bytes: 64, time: std::time::Duration::from_secs(1), stop: None };

    /// Runs the snapshot to its end in small pieces, calling `between` after each piece, and
    /// returns what it saved, sorted.
    fn drain(db: &mut Db, mut between: impl FnMut(&mut Db, usize)) -> Vec<String> {
        let mut saved = Vec::new();
        for step in 0.. {
            let chunk = db.snapshot_chunk(SMALL, Vec::new());
            let text = String::from_utf8(chunk.bytes).unwrap();
            let entries: Vec<String> = text.split_terminator(';').map(str::to_owned).collect();
            assert_eq!(entries.len() as u64, chunk.keys);
            saved.extend(entries);
            if chunk.done {
                break;
            }
            between(db, step);
        }
        saved.sort();
        saved
    }

    fn filled(n: usize) -> (Db, Vec<String>) {
        let mut db = Db::default();
        let mut expected = Vec::new();
        for i in 0..n {
            db.set(format!("k{i}").as_bytes(), s(&format!("v{i}")), None);
            expected.push(format!("k{i}=v{i}"));
        }
        expected.sort();
        (db, expected)
    }

    #[test]
    fn a_snapshot_saves_every_key_once_as_it_was_at_the_cut() {
        let (mut db, expected) = filled(500);
        db.begin_snapshot(text, false);
        let saved = drain(&mut db, |db, step| {
            // Overwrite, delete, expire and grow the table while the walk goes on.
            let k = format!("k{}", step * 7 % 500);
            db.set(k.as_bytes(), s("new"), None);
            db.remove(format!("k{}", (step * 13 + 1) % 500).as_bytes());
            db.set_expiry(format!("k{}", (step * 3 + 2) % 500).as_bytes(), Some(5));
            if let Some(e) = db.write_quiet(format!("k{}", (step * 11 + 3) % 500).as_bytes(), 0) {
                e.value = s("changed in place");
            }
            for j in 0..20 {
                db.set(format!("late{step}-{j}").as_bytes(), s("x"), None);
            }
        });
        assert_eq!(saved, expected);
        assert!(db.snapshot.is_none());
        // The next snapshot starts even: it saves the table as it now is, once.
        let now: Vec<String> = {
            let mut v: Vec<String> = db
                .keys(0)
                .map(|(k, e)| {
                    let mut out = Vec::new();
                    text(&mut out, k, e, false);
                    String::from_utf8(out[..out.len() - 1].to_vec()).unwrap()
                })
                .collect();
            v.sort();
            v
        };
        db.begin_snapshot(text, false);
        assert_eq!(drain(&mut db, |_, _| {}), now);
    }

    #[test]
    fn a_flush_during_a_snapshot_leaves_the_snapshot_whole() {
        let (mut db, expected) = filled(300);
        db.begin_snapshot(text, false);
        let saved = drain(&mut db, |db, step| {
            if step == 1 {
                db.clear();
                db.set(b"after", s("flush"), None);
            }
            if step == 3 {
                db.clear();
            }
        });
        assert_eq!(saved, expected);
    }

    /// SWAPDB while one side's snapshot walks: the snapshot still saves its side as it was at
    /// the cut, the other side's snapshot too, and the next snapshots find every entry saved
    /// once, each table's marks having come along with it.
    #[test]
    fn a_swap_during_snapshots_leaves_both_whole() {
        let (mut zero, expected_zero) = filled(300);
        let mut one = Db::default();
        for i in 0..200 {
            one.set(format!("o{i}").as_bytes(), s("w"), None);
        }
        let mut expected_one: Vec<String> = (0..200).map(|i| format!("o{i}=w")).collect();
        expected_one.sort();
        zero.begin_snapshot(text, false);
        one.begin_snapshot(text, false);
        let first = zero.snapshot_chunk(SMALL, Vec::new());
        let mut saved_zero: Vec<String> =
            String::from_utf8(first.bytes).unwrap().split_terminator(';').map(str::to_owned).collect();
        zero.swap_with(&mut one);
        zero.set(b"o1", s("after"), None);
        one.set(b"k1", s("after"), None);
        saved_zero.extend(drain(&mut zero, |_, _| {}));
        saved_zero.sort();
        assert_eq!(saved_zero, expected_zero);
        assert_eq!(drain(&mut one, |_, _| {}), expected_one);
        // The tables moved: 0 holds the o keys, 1 the k keys, and a new snapshot saves each once.
        assert_eq!(zero.len(), 200);
        zero.begin_snapshot(text, false);
        assert_eq!(drain(&mut zero, |_, _| {}).len(), 200);
        one.begin_snapshot(text, false);
        assert_eq!(drain(&mut one, |_, _| {}).len(), 300);
    }

    #[test]
    fn an_aborted_snapshot_leaves_the_next_one_whole() {
        let (mut db, expected) = filled(200);
        db.begin_snapshot(text, false);
        let _ = db.snapshot_chunk(SMALL, Vec::new());
        db.abort_snapshot();
        db.begin_snapshot(text, false);
        assert_eq!(drain(&mut db, |_, _| {}), expected);
    }
}
