//! WATCH: which clients watch which keys of one database, and Redis 7.0's rules for when a
//! change of a watched key fails their EXEC.
//!
//! A client's flag is raised when a key it watches is written or removed. A key that was there
//! but expired when watched is logically absent: its removal (by expiry, DEL or a flush) is no
//! change, until it is written again. A flush touches only watched keys that existed. Storage
//! reports the changes of watched keys (see [`Db::observe`]); this module decides what they mean.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

use crate::storage::db::{Change, Db};

/// A WATCHing client's flag: set when a key it watches changes, read by its EXEC.
pub(crate) type WatchFlag = Arc<AtomicBool>;

/// One client's WATCH of one key.
struct Watch {
    flag: WatchFlag,
    /// The key was there but expired when watched.
    expired: bool,
}

/// The watches of one database.
#[derive(Default)]
pub(crate) struct Watches {
    by_key: AHashMap<Bytes, Vec<Watch>>,
}

impl Watches {
    /// `flag`'s client watches `key` (once, however often it asks).
    pub(crate) fn watch(&mut self, db: &mut Db, key: &[u8], flag: &WatchFlag, now: u64) {
        let expired = db.expired_in_place(key, now);
        let watches = self.by_key.entry(Bytes::copy_from_slice(key)).or_default();
        // Drop flags whose client is gone, so abandoned watches do not pile up.
        let before = watches.len();
        watches.retain(|w| Arc::strong_count(&w.flag) > 1);
        (watches.len()..before).for_each(|_| db.unobserve(key));
        if !watches.iter().any(|w| Arc::ptr_eq(&w.flag, flag)) {
            watches.push(Watch { flag: flag.clone(), expired });
            db.observe(key);
        }
    }

    /// `flag`'s client no longer watches `key` (UNWATCH, EXEC, DISCARD, disconnect).
    pub(crate) fn unwatch(&mut self, db: &mut Db, key: &[u8], flag: &WatchFlag) {
        let Some(watches) = self.by_key.get_mut(key) else { return };
        let before = watches.len();
        watches.retain(|w| !Arc::ptr_eq(&w.flag, flag));
        (watches.len()..before).for_each(|_| db.unobserve(key));
        if watches.is_empty() {
            self.by_key.remove(key);
        }
    }

    /// `key` changed: raises its watchers' flags and forgets them (a raised flag stays raised),
    /// except a watch of a key that was already expired, which a removal only clears.
    pub(crate) fn changed(&mut self, db: &mut Db, key: &[u8], change: Change) {
        if change == Change::Ready {
            return;
        }
        let Some(watches) = self.by_key.get_mut(key) else { return };
        let before = watches.len();
        watches.retain_mut(|w| {
            if w.expired && change == Change::Removed {
                w.expired = false;
                return true;
            }
            w.flag.store(true, Ordering::Release);
            false
        });
        (watches.len()..before).for_each(|_| db.unobserve(key));
        if watches.is_empty() {
            self.by_key.remove(key);
        }
    }

    /// Whether `flag`'s watch of `key` must fail its EXEC because the key expired since: it
    /// was live when watched and is expired now, reclaimed or not (Redis's
    /// `isWatchedKeyExpired`; a reclaimed one raised the flag already).
    #[must_use]
    pub(crate) fn expired_since(&self, db: &Db, key: &[u8], flag: &WatchFlag, now: u64) -> bool {
        let live_when_watched = self
            .by_key
            .get(key)
            .and_then(|ws| ws.iter().find(|w| Arc::ptr_eq(&w.flag, flag)))
            .is_some_and(|w| !w.expired);
        live_when_watched && db.expired_in_place(key, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db::Value;
    use crate::storage::dict::Key;

    fn s(v: &str) -> Value {
        Value::string(Key::copy_from_slice(v.as_bytes()))
    }

    fn raised(flag: &WatchFlag) -> bool {
        flag.load(Ordering::Acquire)
    }

    /// Applies what storage reported.
    fn settle(db: &mut Db, w: &mut Watches) {
        for (key, change) in db.take_changes() {
            w.changed(db, &key, change);
        }
    }

    #[test]
    fn a_flush_touches_only_watched_keys_that_existed() {
        let (mut db, mut w) = (Db::default(), Watches::default());
        let (missing, present) = (WatchFlag::default(), WatchFlag::default());
        db.set(b"k", s("v"), None);
        w.watch(&mut db, b"gone", &missing, 0);
        w.watch(&mut db, b"k", &present, 0);
        db.clear();
        settle(&mut db, &mut w);
        assert!(!raised(&missing), "a watched key that did not exist is untouched by a flush");
        assert!(raised(&present));
        db.set(b"gone", s("v"), None);
        settle(&mut db, &mut w);
        assert!(raised(&missing), "the watch survived the flush");
        assert!(!db.observing(), "raised watches are forgotten, and storage stops reporting");
    }

    #[test]
    fn a_key_watched_already_expired_is_absent_until_it_is_written() {
        let (mut db, mut w) = (Db::default(), Watches::default());
        let flag = WatchFlag::default();
        db.set(b"k", s("v"), Some(100));
        w.watch(&mut db, b"k", &flag, 200);
        assert!(db.read(b"k", 200).is_none(), "reclaimed by a read");
        settle(&mut db, &mut w);
        assert!(!raised(&flag), "its removal is no change");
        assert!(!w.expired_since(&db, b"k", &flag, 300));
        db.set(b"k", s("w"), None);
        settle(&mut db, &mut w);
        assert!(raised(&flag), "writing it is");
        let other = WatchFlag::default();
        db.set(b"e", s("v"), Some(100));
        w.watch(&mut db, b"e", &other, 200);
        db.clear();
        settle(&mut db, &mut w);
        assert!(!raised(&other), "nor is a flush that removes it");
    }

    #[test]
    fn a_watched_key_that_expires_fails_exec_even_unreclaimed() {
        let (mut db, mut w) = (Db::default(), Watches::default());
        let flag = WatchFlag::default();
        db.set(b"k", s("v"), Some(100));
        w.watch(&mut db, b"k", &flag, 50);
        assert!(!w.expired_since(&db, b"k", &flag, 99));
        assert!(w.expired_since(&db, b"k", &flag, 100));
        assert!(!raised(&flag), "nothing touched it yet");
        assert!(!w.expired_since(&db, b"k", &WatchFlag::default(), 100), "only its watchers");
    }

    #[test]
    fn watching_twice_is_watching_once() {
        let (mut db, mut w) = (Db::default(), Watches::default());
        let flag = WatchFlag::default();
        w.watch(&mut db, b"k", &flag, 0);
        w.watch(&mut db, b"k", &flag, 0);
        w.unwatch(&mut db, b"k", &flag);
        assert!(!db.observing(), "one unwatch undoes both");
    }
}
