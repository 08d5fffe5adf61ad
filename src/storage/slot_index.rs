//! Which keys each Redis Cluster hash slot holds, for the database a cluster node serves
//! (Redis's `slots_to_keys`): CLUSTER COUNTKEYSINSLOT in O(1), GETKEYSINSLOT in O(count), and a
//! slot's keys found or deleted without walking the keyspace.
//!
//! Storage does not know how a key maps to its slot: the engine passes the function.

use bytes::Bytes;

use crate::storage::dict::Dict;

/// A key's hash slot (Redis's `keyHashSlot`).
pub(crate) type SlotOf = fn(&[u8]) -> u16;

/// The keys of each slot. Invariant: a key of the database is in exactly the set of its slot
/// (expired keys not yet reclaimed included, as in Redis).
pub(crate) struct SlotIndex {
    slot_of: SlotOf,
    /// One set per slot; a long key shares its bytes with the keyspace.
    slots: Box<[Dict<()>]>,
}

impl SlotIndex {
    /// An empty index of `slots` slots.
    #[must_use]
    pub(crate) fn new(slot_of: SlotOf, slots: usize) -> SlotIndex {
        SlotIndex { slot_of, slots: (0..slots).map(|_| Dict::new()).collect() }
    }

    /// Adds a key the database just gained.
    pub(crate) fn add(&mut self, key: Bytes) {
        let slot = self.slot(&key);
        self.slots[slot].insert(key, ());
    }

    /// Removes a key the database just lost.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        let slot = self.slot(key);
        self.slots[slot].remove(key);
    }

    /// Forgets every key.
    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(Dict::clear);
    }

    /// How many keys `slot` holds (0 for a slot out of range).
    #[must_use]
    pub(crate) fn count(&self, slot: u16) -> usize {
        self.slots.get(usize::from(slot)).map_or(0, Dict::len)
    }

    /// The keys of `slot`, in no particular order.
    pub(crate) fn keys(&self, slot: u16) -> impl Iterator<Item = &[u8]> {
        self.slots.get(usize::from(slot)).into_iter().flat_map(|d| d.iter().map(|(k, ())| k))
    }

    /// The slots that hold keys, in order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.slots.len()).filter(|&s| !self.slots[s].is_empty()).map(|s| s as u16)
    }

    fn slot(&self, key: &[u8]) -> usize {
        usize::from((self.slot_of)(key)) % self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_byte(key: &[u8]) -> u16 {
        key.first().map_or(0, |&b| u16::from(b))
    }

    #[test]
    fn counts_lists_and_forgets_the_keys_of_each_slot() {
        let mut ix = SlotIndex::new(first_byte, 256);
        for k in ["a1", "a2", "b1", "a-very-long-key-kept-on-the-heap-not-inline"] {
            ix.add(Bytes::from(k));
        }
        assert_eq!(ix.count(u16::from(b'a')), 3);
        assert_eq!(ix.count(u16::from(b'b')), 1);
        assert_eq!(ix.count(999), 0);
        ix.remove(b"a1");
        let mut keys: Vec<_> = ix.keys(u16::from(b'a')).map(<[u8]>::to_vec).collect();
        keys.sort();
        assert_eq!(keys, [b"a-very-long-key-kept-on-the-heap-not-inline".to_vec(), b"a2".to_vec()]);
        assert_eq!(ix.occupied().collect::<Vec<_>>(), [u16::from(b'a'), u16::from(b'b')]);
        ix.clear();
        assert_eq!(ix.occupied().count(), 0);
    }
}
