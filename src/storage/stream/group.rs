//! A stream's consumer group: where it has read to, its pending entries list (PEL: entries
//! delivered and not yet acknowledged, each with its consumer, delivery time and count), and
//! its consumers, each with its own view of the PEL.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use crate::storage::stream::StreamId;

/// Redis's "entries read unknown" (`SCG_INVALID_ENTRIES_READ`).
pub(crate) const UNKNOWN_READ: i64 = -1;

/// One pending entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Nack {
    /// The consumer it was delivered to.
    pub(crate) consumer: Bytes,
    /// When it was last delivered (Unix ms).
    pub(crate) delivered: i64,
    /// How many times it was delivered.
    pub(crate) deliveries: u64,
}

/// One consumer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Consumer {
    /// When it last read or claimed (Unix ms).
    pub(crate) seen: i64,
    /// Its pending entries.
    pub(crate) pel: BTreeSet<StreamId>,
}

/// One consumer group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Group {
    /// The last entry delivered to it.
    pub(crate) last_id: StreamId,
    /// Entries it has read (its logical read counter), or [`UNKNOWN_READ`].
    pub(crate) entries_read: i64,
    /// Pending entries, by ID.
    pub(crate) pel: BTreeMap<StreamId, Nack>,
    /// Consumers, by name.
    pub(crate) consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    /// A group that has read up to `last_id`.
    #[must_use]
    pub(crate) fn new(last_id: StreamId, entries_read: i64) -> Group {
        Group { last_id, entries_read, pel: BTreeMap::new(), consumers: BTreeMap::new() }
    }

    /// Consumer `name`, created (seen now) if missing; whether it was created.
    pub(crate) fn consumer(&mut self, name: &[u8], now: i64) -> (&mut Consumer, bool) {
        // The stored name is shared (a request's bytes are copied once, when created).
        let (key, created) = match self.consumers.get_key_value(name) {
            Some((k, _)) => (k.clone(), false),
            None => (Bytes::copy_from_slice(name), true),
        };
        let c = self.consumers.entry(key).or_insert_with(|| Consumer { seen: now, pel: BTreeSet::new() });
        (c, created)
    }

    /// Consumer `name` seen now (created if missing): its stored name, and whether it was
    /// created.
    pub(crate) fn seen(&mut self, name: &[u8], now: i64) -> (Bytes, bool) {
        let (c, created) = self.consumer(name, now);
        c.seen = now;
        (self.consumer_name(name).unwrap_or_default(), created)
    }

    /// The stored name of consumer `name` (shared with the group's map), if it exists.
    #[must_use]
    pub(crate) fn consumer_name(&self, name: &[u8]) -> Option<Bytes> {
        self.consumers.get_key_value(name).map(|(k, _)| k.clone())
    }

    /// Records entry `id` delivered to `consumer` now, for the first time as far as the group
    /// knows: a pending entry another consumer had moves to this one, its count back to 1
    /// (Redis's XREADGROUP `>`).
    pub(crate) fn deliver_new(&mut self, id: StreamId, consumer: &Bytes, now: i64) {
        let nack = Nack { consumer: consumer.clone(), delivered: now, deliveries: 1 };
        if let Some(old) = self.pel.insert(id, nack) {
            if let Some(c) = self.consumers.get_mut(&old.consumer) {
                c.pel.remove(&id);
            }
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Acknowledges `id`; whether it was pending.
    pub(crate) fn ack(&mut self, id: StreamId) -> bool {
        let Some(nack) = self.pel.remove(&id) else { return false };
        if let Some(c) = self.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
        true
    }

    /// Gives pending entry `id` to `consumer` (XCLAIM), creating the pending entry when
    /// `create` (FORCE) and it is missing; the entry as it now is, or `None` when it was not
    /// pending and not created.
    pub(crate) fn claim(
        &mut self,
        id: StreamId,
        consumer: &Bytes,
        create: bool,
        now: i64,
    ) -> Option<&mut Nack> {
        if !create && !self.pel.contains_key(&id) {
            return None;
        }
        let nack = self.pel.entry(id).or_insert_with(|| Nack {
            consumer: consumer.clone(),
            delivered: now,
            deliveries: 1,
        });
        if nack.consumer != *consumer {
            if let Some(c) = self.consumers.get_mut(&nack.consumer) {
                c.pel.remove(&id);
            }
            nack.consumer = consumer.clone();
        }
        if let Some(c) = self.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
        Some(nack)
    }

    /// Deletes consumer `name`, and its pending entries from the group; how many it had, or
    /// `None` when there is no such consumer.
    pub(crate) fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pel {
            self.pel.remove(id);
        }
        Some(consumer.pel.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_entries_follow_their_consumer() {
        let mut g = Group::new(StreamId::MIN, 0);
        let (alice, bob) = (Bytes::from_static(b"alice"), Bytes::from_static(b"bob"));
        assert!(g.consumer(&alice, 1).1);
        assert!(!g.consumer(&alice, 2).1, "found, not created");
        g.consumer(&bob, 1);
        let id = StreamId::new(1, 0);
        g.deliver_new(id, &alice, 10);
        g.deliver_new(id, &bob, 20);
        assert!(g.consumers[&alice].pel.is_empty() && g.consumers[&bob].pel.contains(&id));
        assert_eq!(g.claim(id, &alice, false, 30).map(|n| n.deliveries), Some(1));
        assert!(g.consumers[&bob].pel.is_empty() && g.consumers[&alice].pel.contains(&id));
        assert!(g.claim(StreamId::new(9, 0), &alice, false, 30).is_none());
        assert_eq!(g.delete_consumer(&alice), Some(1));
        assert!(g.pel.is_empty());
        assert!(!g.ack(id));
    }
}
