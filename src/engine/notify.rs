//! Keyspace notifications (`notify-keyspace-events`), as Redis 7.0's `notify.c`: a command
//! body reports what it did to a key ([`Ctx::notify`](crate::engine::shard::Ctx::notify)),
//! and when the event's class is on, subscribers get `__keyspace@<db>__:<key>` → event and
//! `__keyevent@<db>__:<event>` → key.
//!
//! A shard collects its notices while it runs a piece of work (a command, a batch, EXEC's
//! part); the router takes them when that work ends and posts them to every core, whose pub/sub
//! registry delivers them to its subscribers. Posts from one core arrive in order, so a
//! subscriber gets a shard's notices in the order its commands ran. With notifications off a
//! notice costs one test of a flag the shard caches.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::storage::db::{Db, KeyEvent, KeyEvents};

/// A class of events (Redis's `NOTIFY_*`), or a set of them: the setting's own type.
pub(crate) use crate::config::KeyspaceEvents as Class;

/// One notice: what happened to a key of a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Notice {
    /// The database index.
    pub(crate) db: usize,
    /// Redis's event name (`set`, `lpush`, `expired`, ...).
    pub(crate) event: &'static str,
    /// The key.
    pub(crate) key: Bytes,
}

impl Notice {
    /// The messages it publishes under setting `on`: (channel, message) pairs.
    #[must_use]
    pub(crate) fn messages(&self, on: Class) -> Vec<(Bytes, Bytes)> {
        let mut out = Vec::with_capacity(2);
        if on.contains(Class::KEYSPACE) {
            let mut channel = BytesMut::with_capacity(20 + self.key.len());
            channel.extend_from_slice(format!("__keyspace@{}__:", self.db).as_bytes());
            channel.extend_from_slice(&self.key);
            out.push((channel.freeze(), Bytes::from_static(self.event.as_bytes())));
        }
        if on.contains(Class::KEYEVENT) {
            let channel = Bytes::from(format!("__keyevent@{}__:{}", self.db, self.event));
            out.push((channel, self.key.clone()));
        }
        out
    }
}

/// A shard's notices since the router last took them, and the classes on.
#[derive(Debug, Default)]
pub(crate) struct Notices {
    on: Class,
    /// How many cores have subscribers: while none has, nothing is built. Read when a class
    /// is on, so a subscriber that just came gets the next command's notices.
    listeners: Option<Arc<AtomicUsize>>,
    pending: Vec<Notice>,
}

impl Notices {
    /// The classes now on (the shard reads the setting once per configuration change).
    pub(crate) fn set(&mut self, setting: Class) {
        self.on = setting.effective();
        if self.on == Class::default() {
            // Turned off: what was reported and not yet delivered never will be.
            self.pending.clear();
        }
    }

    /// Notices that tell whether anyone listens by `listeners` (how many cores have
    /// subscribers; `Global::subscribers`).
    #[must_use]
    pub(crate) fn new(listeners: Arc<AtomicUsize>) -> Notices {
        Notices { listeners: Some(listeners), ..Notices::default() }
    }

    /// Whether some core has a subscriber (always, when nobody said how to tell).
    fn listened(&self) -> bool {
        self.listeners.as_ref().is_none_or(|n| n.load(Ordering::Acquire) > 0)
    }

    /// What the databases are told: whether anyone listens.
    #[must_use]
    pub(crate) fn listeners(&self) -> Option<Arc<AtomicUsize>> {
        self.listeners.clone()
    }

    /// The classes on, for the messages' channels.
    #[must_use]
    pub(crate) fn on(&self) -> Class {
        self.on
    }

    /// Whether notices of `class` are wanted (the test each report pays).
    #[inline]
    #[must_use]
    pub(crate) fn wants(&self, class: Class) -> bool {
        self.on.intersects(class) && self.listened()
    }

    /// Records `event` of `class` on `key` of database `db`, if that class is on.
    #[inline]
    pub(crate) fn push(&mut self, db: usize, class: Class, event: &'static str, key: &[u8]) {
        if self.wants(class) {
            self.pending.push(Notice { db, event, key: Bytes::copy_from_slice(key) });
        }
    }

    /// Records a notice a database reported itself (its class is on, or it would not have).
    pub(crate) fn push_owned(&mut self, db: usize, event: KeyEvent, key: Bytes) {
        let event = match event {
            KeyEvent::Expired => "expired",
            KeyEvent::New => "new",
            KeyEvent::Miss => "keymiss",
        };
        self.pending.push(Notice { db, event, key });
    }

    /// What the databases should report themselves under the classes on.
    #[must_use]
    pub(crate) fn key_events(&self) -> KeyEvents {
        // By the setting alone: whether anyone listens changes between configurations.
        KeyEvents {
            expired: self.on.intersects(Class::EXPIRED),
            new: self.on.intersects(Class::NEW),
            miss: self.on.intersects(Class::KEY_MISS),
        }
    }

    /// Moves what `dbs` (databases `first`, `first + 1`, ...) reported into the notices, in
    /// order.
    pub(crate) fn collect(&mut self, dbs: &mut [Db], first: usize) {
        for (i, db) in dbs.iter_mut().enumerate() {
            if db.has_events() {
                for (event, key) in db.take_events() {
                    self.push_owned(first + i, event, key);
                }
            }
        }
    }

    /// The notices recorded since last taken.
    pub(crate) fn take(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.pending)
    }

    /// Whether any notice waits.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_publishes_on_the_channels_asked() {
        let n = Notice { db: 3, event: "set", key: Bytes::from_static(b"k") };
        let both = n.messages(Class::parse("KE$").expect("valid"));
        assert_eq!(
            both,
            vec![
                (Bytes::from_static(b"__keyspace@3__:k"), Bytes::from_static(b"set")),
                (Bytes::from_static(b"__keyevent@3__:set"), Bytes::from_static(b"k")),
            ]
        );
        let mut notices = Notices::default();
        notices.set(Class::parse("K$").expect("valid"));
        notices.push(0, Class::LIST, "lpush", b"l");
        assert!(notices.is_empty(), "lists are off");
        notices.push(0, Class::STRING, "set", b"s");
        assert_eq!(notices.take().len(), 1);
    }
}
