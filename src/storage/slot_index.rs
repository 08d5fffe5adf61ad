//! Which keys each Redis Cluster hash slot holds, for the database a cluster node serves
//! (Redis's `slots_to_keys`): CLUSTER COUNTKEYSINSLOT in O(1), GETKEYSINSLOT in O(count), and a
//! slot's keys found or deleted without walking the keyspace.
//!
//! The index holds no key. It keeps each key's dict hash ([`crate::storage::dict::hash`]) in a list per slot,
//! and finds the key again in the keyspace's bucket for that hash ([`Dict::with_hash`]). All
//! of it lives in two flat vectors and two arrays: no allocation per key or per slot. The form
//! before this one, a small set of keys per slot, cost 43 bytes a key and 5% of the CPU of
//! every request although an overwrite never touched it: its small vectors, reallocated one key
//! at a time, shared the allocator's size classes with the keyspace's chains and scattered them
//! (BENCHMARKS.md, "the slot index").
//!
//! Storage does not know how a key maps to its slot: the engine passes the function.

use crate::storage::dict::Dict;

/// A key's hash slot (Redis's `keyHashSlot`).
pub(crate) type SlotOf = fn(&[u8]) -> u16;

/// No node: the end of a list, an empty cell.
const NONE: u32 = u32::MAX;

/// One key of the index: its dict hash and its neighbours in its slot's list. A free node is
/// on the free list, linked by `next`, with `prev` set to [`FREE`].
#[derive(Clone, Copy)]
struct Node {
    hash: u64,
    prev: u32,
    next: u32,
}

/// The `prev` of a node on the free list.
const FREE: u32 = u32::MAX - 1;

/// A cell of the table from a key's hash to its node (open addressing, linear probing): the
/// node, its slot, and the hash's top 16 bits, so that a probe rarely reads a node it passes.
#[derive(Clone, Copy)]
struct Cell {
    node: u32,
    slot: u16,
    tag: u16,
}

const EMPTY: Cell = Cell { node: NONE, slot: 0, tag: 0 };

fn tag(hash: u64) -> u16 {
    (hash >> 48) as u16
}

/// The keys of each slot (fewer than 2³² − 2 in one database). Invariant: a key of the database has exactly one node, in the list
/// of its slot, found from its hash and slot through the table (expired keys not yet reclaimed
/// included, as in Redis). Keys of equal hash and slot are interchangeable here: removing any
/// one of their nodes keeps the counts right, and listing finds them all at the first.
pub(crate) struct SlotIndex {
    slot_of: SlotOf,
    /// Each slot's first node.
    heads: Box<[u32]>,
    /// Each slot's number of keys.
    counts: Box<[u32]>,
    nodes: Vec<Node>,
    /// The first free node.
    free: u32,
    /// Nodes in use.
    live: usize,
    /// A power of two long (or empty), at most three quarters full.
    cells: Vec<Cell>,
}

impl SlotIndex {
    /// An empty index of `slots` slots.
    #[must_use]
    pub(crate) fn new(slot_of: SlotOf, slots: usize) -> SlotIndex {
        SlotIndex {
            slot_of,
            heads: vec![NONE; slots].into_boxed_slice(),
            counts: vec![0; slots].into_boxed_slice(),
            nodes: Vec::new(),
            free: NONE,
            live: 0,
            cells: Vec::new(),
        }
    }

    /// Adds a key the database just gained; `hash` is its [`crate::storage::dict::hash`].
    pub(crate) fn add(&mut self, key: &[u8], hash: u64) {
        let slot = self.slot(key);
        if (self.live + 1) * 4 > self.cells.len() * 3 {
            self.rebuild_cells((self.cells.len() * 2).max(16));
        }
        let head = self.heads[slot];
        let node = Node { hash, prev: NONE, next: head };
        let at = if self.free == NONE {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        } else {
            let at = self.free;
            self.free = self.nodes[at as usize].next;
            self.nodes[at as usize] = node;
            at
        };
        if head != NONE {
            self.nodes[head as usize].prev = at;
        }
        self.heads[slot] = at;
        self.counts[slot] += 1;
        self.live += 1;
        self.place(Cell { node: at, slot: slot as u16, tag: tag(hash) }, hash);
    }

    /// Removes a key the database just lost; `hash` is its [`crate::storage::dict::hash`]. A key that is not
    /// there changes nothing.
    pub(crate) fn remove(&mut self, key: &[u8], hash: u64) {
        let slot = self.slot(key);
        let Some(mut hole) = self.find(slot as u16, hash) else { return };
        let node = self.cells[hole].node;
        let Node { prev, next, .. } = self.nodes[node as usize];
        match prev {
            NONE => self.heads[slot] = next,
            p => self.nodes[p as usize].next = next,
        }
        if next != NONE {
            self.nodes[next as usize].prev = prev;
        }
        self.nodes[node as usize] = Node { hash: 0, prev: FREE, next: self.free };
        self.free = node;
        self.counts[slot] -= 1;
        self.live -= 1;
        // Backward-shift deletion: each following cell of the run moves into the hole unless
        // its home lies between the hole and it.
        let mask = self.cells.len() - 1;
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let cell = self.cells[at];
            if cell.node == NONE {
                break;
            }
            let home = self.nodes[cell.node as usize].hash as usize & mask;
            if (at.wrapping_sub(home) & mask) >= (at.wrapping_sub(hole) & mask) {
                self.cells[hole] = cell;
                hole = at;
            }
        }
        self.cells[hole] = EMPTY;
        if self.nodes.len() > 64 && self.live * 4 < self.nodes.len() {
            self.compact();
        }
    }

    /// Forgets every key.
    pub(crate) fn clear(&mut self) {
        *self = SlotIndex::new(self.slot_of, self.heads.len());
    }

    /// How many keys `slot` holds (0 for a slot out of range).
    #[must_use]
    pub(crate) fn count(&self, slot: u16) -> usize {
        self.counts.get(usize::from(slot)).map_or(0, |&n| n as usize)
    }

    /// The slots that hold keys, in order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = u16> + '_ {
        (0..self.counts.len()).filter(|&s| self.counts[s] > 0).map(|s| s as u16)
    }

    /// Up to `limit` keys of `slot`, in no particular order, looked up in `keys`: the dict the
    /// index follows.
    pub(crate) fn keys<'a, V>(&self, keys: &'a Dict<V>, slot: u16, limit: usize) -> Vec<&'a [u8]> {
        let mut found = Vec::new();
        // Hashes shared by two keys of the slot: their first node listed them all.
        let mut shared: Vec<u64> = Vec::new();
        let mut at = self.heads.get(usize::from(slot)).copied().unwrap_or(NONE);
        while at != NONE && found.len() < limit {
            let Node { hash, next, .. } = self.nodes[at as usize];
            at = next;
            if shared.contains(&hash) {
                continue;
            }
            let before = found.len();
            keys.with_hash(hash, |k| {
                if (self.slot_of)(k) == slot {
                    found.push(k);
                }
            });
            if found.len() > before + 1 {
                shared.push(hash);
            }
        }
        found.truncate(limit);
        found
    }

    fn slot(&self, key: &[u8]) -> usize {
        usize::from((self.slot_of)(key)) % self.heads.len()
    }

    /// The cell of a node of `slot` with `hash`.
    fn find(&self, slot: u16, hash: u64) -> Option<usize> {
        if self.cells.is_empty() {
            return None;
        }
        let mask = self.cells.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let cell = self.cells[at];
            if cell.node == NONE {
                return None;
            }
            if cell.slot == slot && cell.tag == tag(hash) && self.nodes[cell.node as usize].hash == hash {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// Puts `cell` in the first empty cell from its home on (there is one: the table is at most
    /// three quarters full).
    fn place(&mut self, cell: Cell, hash: u64) {
        let mask = self.cells.len() - 1;
        let mut at = hash as usize & mask;
        while self.cells[at].node != NONE {
            at = (at + 1) & mask;
        }
        self.cells[at] = cell;
    }

    /// Makes the table `size` cells and fills it from the slots' lists.
    fn rebuild_cells(&mut self, size: usize) {
        self.cells = vec![EMPTY; size];
        for slot in 0..self.heads.len() {
            let mut at = self.heads[slot];
            while at != NONE {
                let Node { hash, next, .. } = self.nodes[at as usize];
                self.place(Cell { node: at, slot: slot as u16, tag: tag(hash) }, hash);
                at = next;
            }
        }
    }

    /// Renumbers the nodes in use from 0, slot by slot, when fewer than a quarter of the nodes
    /// are: the memory of a database that shrank is given back.
    fn compact(&mut self) {
        let mut nodes = Vec::with_capacity(self.live);
        for slot in 0..self.heads.len() {
            let mut at = self.heads[slot];
            let mut prev = NONE;
            if at != NONE {
                self.heads[slot] = nodes.len() as u32;
            }
            while at != NONE {
                let Node { hash, next, .. } = self.nodes[at as usize];
                let here = nodes.len() as u32;
                nodes.push(Node { hash, prev, next: if next == NONE { NONE } else { here + 1 } });
                prev = here;
                at = next;
            }
        }
        self.nodes = nodes;
        self.free = NONE;
        let size = (self.live * 2).next_power_of_two().max(16);
        self.rebuild_cells(size);
    }
}

/// An index with the dict it follows: what the database shows of its slots.
pub(crate) struct SlotKeys<'a, V> {
    pub(crate) index: &'a SlotIndex,
    pub(crate) dict: &'a Dict<V>,
}

impl<'a, V> SlotKeys<'a, V> {
    /// How many keys `slot` holds (0 for a slot out of range).
    #[must_use]
    pub(crate) fn count(&self, slot: u16) -> usize {
        self.index.count(slot)
    }

    /// The slots that hold keys, in order.
    pub(crate) fn occupied(&self) -> impl Iterator<Item = u16> + 'a {
        let index = self.index;
        index.occupied()
    }

    /// Up to `limit` keys of `slot`, in no particular order.
    #[must_use]
    pub(crate) fn keys(&self, slot: u16, limit: usize) -> Vec<&'a [u8]> {
        self.index.keys(self.dict, slot, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::dict;

    fn first_byte(key: &[u8]) -> u16 {
        key.first().map_or(0, |&b| u16::from(b))
    }

    /// A dict and its index, kept together as [`crate::storage::db::Db`] keeps them.
    struct Both {
        keys: Dict<()>,
        ix: SlotIndex,
    }

    impl Both {
        fn new() -> Both {
            Both { keys: Dict::new(), ix: SlotIndex::new(first_byte, 256) }
        }

        fn add(&mut self, k: &[u8]) {
            if self.keys.insert_copy(k, ()).is_none() {
                self.ix.add(k, dict::hash(k));
            }
        }

        fn remove(&mut self, k: &[u8]) {
            if self.keys.remove(k).is_some() {
                self.ix.remove(k, dict::hash(k));
            }
        }

        fn sorted(&self, slot: u8) -> Vec<Vec<u8>> {
            let mut keys: Vec<_> = self
                .ix
                .keys(&self.keys, u16::from(slot), usize::MAX)
                .into_iter()
                .map(<[u8]>::to_vec)
                .collect();
            keys.sort();
            keys
        }
    }

    #[test]
    fn counts_lists_and_forgets_the_keys_of_each_slot() {
        let mut b = Both::new();
        for k in ["a1", "a2", "b1", "a-very-long-key-kept-on-the-heap-not-inline"] {
            b.add(k.as_bytes());
        }
        assert_eq!(b.ix.count(u16::from(b'a')), 3);
        assert_eq!(b.ix.count(u16::from(b'b')), 1);
        assert_eq!(b.ix.count(999), 0);
        b.remove(b"a1");
        assert_eq!(b.sorted(b'a'), [b"a-very-long-key-kept-on-the-heap-not-inline".to_vec(), b"a2".to_vec()]);
        assert_eq!(b.ix.keys(&b.keys, u16::from(b'a'), 1).len(), 1, "at most the limit");
        assert_eq!(b.ix.occupied().collect::<Vec<_>>(), [u16::from(b'a'), u16::from(b'b')]);
        b.ix.clear();
        assert_eq!(b.ix.occupied().count(), 0);
    }

    #[test]
    fn stays_exact_through_growth_removal_and_compaction() {
        // Many keys over a few slots, removed in an order unlike the insertion's, so that the
        // table grows, deletions shift cells back, and the nodes are compacted twice.
        let mut b = Both::new();
        let key = |i: u32| format!("{}{i}", char::from(b'a' + (i % 5) as u8)).into_bytes();
        for i in 0..5000 {
            b.add(&key(i));
        }
        for i in (0..5000).filter(|i| i % 7 != 3) {
            b.remove(&key((i * 2857) % 5000));
        }
        let left: Vec<u32> = (0..5000).filter(|i| b.keys.get(&key(*i)).is_some()).collect();
        assert!(!left.is_empty() && left.len() < 1500, "{}", left.len());
        assert!(b.ix.nodes.len() < 1500, "compacted: {} nodes", b.ix.nodes.len());
        for s in 0..5u8 {
            let mut want: Vec<Vec<u8>> =
                left.iter().filter(|&&i| i % 5 == u32::from(s)).map(|&i| key(i)).collect();
            want.sort();
            assert_eq!(b.ix.count(u16::from(b'a' + s)), want.len());
            assert_eq!(b.sorted(b'a' + s), want, "slot {}", char::from(b'a' + s));
        }
        for &i in &left {
            b.remove(&key(i));
        }
        assert_eq!((b.ix.occupied().count(), b.ix.live), (0, 0));
        b.add(b"z");
        assert_eq!(b.sorted(b'z'), [b"z".to_vec()]);
    }

    #[test]
    fn a_key_not_there_is_removed_without_effect() {
        let mut b = Both::new();
        b.add(b"a1");
        b.ix.remove(b"a2", dict::hash(b"a2"));
        b.ix.remove(b"b1", dict::hash(b"a1"));
        assert_eq!((b.ix.count(u16::from(b'a')), b.sorted(b'a')), (1, vec![b"a1".to_vec()]));
    }
}
