//! A stream (Redis's `t_stream.c` data model): entries in ID order, packed into [`Block`]s
//! keyed by their first ID, the stream's counters (length, last ID, entries added, the
//! largest deleted ID), and its consumer groups ([`group`]).
//!
//! Blocks split where Redis's listpack nodes split (`stream-node-max-bytes`,
//! `stream-node-max-entries`, measured in Redis's listpack bytes), so XINFO's node count and
//! `~` trimming, which drops whole nodes only, give Redis's answers.

pub(crate) mod block;
pub(crate) mod group;
pub(crate) mod id;
pub(crate) mod read;

use std::collections::BTreeMap;

use bytes::Bytes;

pub(crate) use block::Block;
pub(crate) use block::Pairs;
use block::Raw;
pub(crate) use group::{Consumer, Group, Nack, UNKNOWN_READ};
pub(crate) use id::StreamId;

/// Where new blocks start (the two `stream-node-max-*` directives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NodeLimits {
    /// `stream-node-max-bytes` (0: no limit).
    pub(crate) max_bytes: u64,
    /// `stream-node-max-entries` (0: no limit).
    pub(crate) max_entries: u64,
}

impl Default for NodeLimits {
    fn default() -> NodeLimits {
        NodeLimits { max_bytes: 4096, max_entries: 100 }
    }
}

/// How XADD and XTRIM trim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop the entries below this ID.
    MinId(StreamId),
}

/// One entry: its ID and field-value pairs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry<'a> {
    /// Its ID.
    pub(crate) id: StreamId,
    /// Its pairs.
    pub(crate) pairs: Pairs<'a>,
}

/// A stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stream {
    blocks: BTreeMap<StreamId, Block>,
    len: u64,
    /// The largest ID ever added (or set by XSETID).
    pub(crate) last_id: StreamId,
    /// The first live entry's ID, `0-0` when empty.
    pub(crate) first_id: StreamId,
    /// The largest ID deleted (XDEL; trimming does not count), `0-0` if none.
    pub(crate) max_deleted: StreamId,
    /// Entries ever added.
    pub(crate) entries_added: u64,
    /// Consumer groups, by name.
    pub(crate) groups: BTreeMap<Bytes, Group>,
}

impl Stream {
    /// An empty stream.
    #[must_use]
    pub(crate) fn new() -> Stream {
        Stream::default()
    }

    /// Entries, deleted ones excluded.
    #[must_use]
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Whether it holds no entries (an empty stream is still a key, unlike other types).
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many blocks (Redis's radix-tree keys: its listpack nodes).
    #[must_use]
    pub(crate) fn nodes(&self) -> usize {
        self.blocks.len()
    }

    /// The bytes its blocks hold, for MEMORY USAGE.
    #[must_use]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.blocks.values().map(|b| b.heap_bytes() + 64).sum()
    }

    /// Appends entry `id`, which must be above [`Stream::last_id`] (the caller checks), with
    /// `pairs` (field, value, ...).
    pub(crate) fn append(&mut self, id: StreamId, pairs: &[impl AsRef<[u8]>], limits: NodeLimits) {
        let raw_len: u64 = pairs.iter().map(|p| p.as_ref().len() as u64).sum();
        match self.blocks.last_entry() {
            Some(mut last) if !last.get().is_full(raw_len, limits.max_bytes, limits.max_entries) => {
                let master = *last.key();
                last.get_mut().push(master, id, pairs);
            }
            _ => {
                self.blocks.insert(id, Block::new(id, pairs));
            }
        }
        if self.len == 0 {
            self.first_id = id;
        }
        self.len += 1;
        self.entries_added += 1;
        self.last_id = id;
    }

    /// Adds a block read from a file: `entries` in order, each above the last, with their
    /// deleted flags (a deleted entry keeps its place, as in the file).
    pub(crate) fn load_block(&mut self, entries: &[(StreamId, bool, Vec<Bytes>)]) {
        let Some((first, _, pairs)) = entries.first() else { return };
        let mut block = Block::new(*first, pairs);
        for (id, _, pairs) in &entries[1..] {
            block.push(*first, *id, pairs);
        }
        let mut at = block.first_at();
        for (_, deleted, _) in entries {
            let next = block.raw(*first, at).map_or(at, |r| r.next);
            if *deleted {
                block.delete_at(at);
            }
            at = next;
        }
        // A block of deleted entries only stays, as Redis keeps such a node.
        self.len += u64::from(block.live);
        self.blocks.insert(*first, block);
    }

    /// Sets the counters a file records (after its blocks are loaded).
    pub(crate) fn set_counters(
        &mut self,
        last_id: StreamId,
        first_id: StreamId,
        max_deleted: StreamId,
        added: u64,
    ) {
        self.last_id = last_id;
        self.first_id = first_id;
        self.max_deleted = max_deleted;
        self.entries_added = added;
    }

    /// Removes the deleted entries stored above `id` (none live may be: the caller checked), so
    /// that an entry added after `id` is the last stored (XSETID below a deleted entry, a file
    /// whose last entries were deleted above its last ID).
    pub(crate) fn drop_deleted_above(&mut self, id: StreamId) {
        while let Some(last) = self.blocks.last_entry() {
            let master = *last.key();
            let block = last.get();
            if block.last_id(master) <= id {
                return;
            }
            let kept: Vec<(StreamId, bool, Vec<Bytes>)> = block
                .iter(master)
                .filter(|r| r.id <= id || !r.is_deleted())
                .map(|r| {
                    (
                        r.id,
                        r.is_deleted(),
                        r.pairs.flat_map(|(f, v)| [f, v]).map(Bytes::copy_from_slice).collect(),
                    )
                })
                .collect();
            last.remove();
            if kept.is_empty() {
                continue;
            }
            let live_before = self.len;
            self.load_block(&kept);
            // load_block counted the block's live entries again.
            self.len = live_before;
            return;
        }
    }

    /// The blocks and their master IDs, in order (RDB writes each as a listpack node).
    pub(crate) fn block_list(&self) -> impl Iterator<Item = (StreamId, &Block)> {
        self.blocks.iter().map(|(&m, b)| (m, b))
    }

    /// The first entry's ID, deleted or not (what an approximate MINID trim propagates);
    /// the largest ID when there is no block (Redis's `streamGetEdgeID`).
    #[must_use]
    pub(crate) fn first_stored_id(&self) -> StreamId {
        self.blocks.iter().next().and_then(|(&m, b)| b.iter(m).next()).map_or(StreamId::MAX, |r| r.id)
    }

    /// Live entries from `start` to `end` (inclusive), in ID order.
    #[must_use]
    pub(crate) fn range(&self, start: StreamId, end: StreamId) -> Range<'_> {
        let blocks = if start > end {
            None
        } else {
            let from = self.blocks.range(..=start).next_back().map_or(start, |(k, _)| *k);
            Some(self.blocks.range(from..=end))
        };
        Range { blocks, current: None, start, end }
    }

    /// Live entries from `end` down to `start` (inclusive), in reverse ID order.
    #[must_use]
    pub(crate) fn range_rev(&self, start: StreamId, end: StreamId) -> RevRange<'_> {
        let blocks = (start <= end).then(|| self.blocks.range(..=end).rev());
        RevRange { blocks, current: None, offsets: Vec::new(), start, end }
    }

    /// The live entry `id`, if there is one.
    #[must_use]
    pub(crate) fn get(&self, id: StreamId) -> Option<Entry<'_>> {
        self.range(id, id).next()
    }

    /// The first and last live entries.
    #[must_use]
    pub(crate) fn first_entry(&self) -> Option<Entry<'_>> {
        self.range(StreamId::MIN, StreamId::MAX).next()
    }

    /// The last live entry.
    #[must_use]
    pub(crate) fn last_entry(&self) -> Option<Entry<'_>> {
        self.range_rev(StreamId::MIN, StreamId::MAX).next()
    }

    /// Deletes entry `id` (XDEL); whether it was there. A block left with no live entry goes;
    /// the largest deleted ID and the first ID follow.
    pub(crate) fn delete(&mut self, id: StreamId) -> bool {
        let Some((&master, block)) = self.blocks.range_mut(..=id).next_back() else { return false };
        let mut at = block.first_at();
        let found = loop {
            match block.raw(master, at) {
                Some(raw) if raw.id == id => break (!raw.is_deleted()).then_some(at),
                Some(raw) if raw.id < id => at = raw.next,
                _ => break None,
            }
        };
        let Some(at) = found else { return false };
        block.delete_at(at);
        if block.live == 0 {
            self.blocks.remove(&master);
        }
        self.len -= 1;
        if id > self.max_deleted {
            self.max_deleted = id;
        }
        if self.len == 0 {
            self.first_id = StreamId::MIN;
        } else if id == self.first_id {
            self.first_id = self.first_entry().map_or(StreamId::MIN, |e| e.id);
        }
        true
    }

    /// Trims as Redis's `streamTrim`: whole blocks from the front while the rule allows, then
    /// (unless `approx`) entries inside the next block; at most `limit` entries when not 0.
    /// How many entries went.
    pub(crate) fn trim(&mut self, rule: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some(mut first) = self.blocks.first_entry() {
            if let Trim::MaxLen(max) = rule {
                if self.len <= max {
                    break;
                }
            }
            let master = *first.key();
            let live = u64::from(first.get().live);
            if limit != 0 && deleted + live > limit {
                break;
            }
            let whole = match rule {
                Trim::MaxLen(max) => self.len - live >= max,
                Trim::MinId(min) => first.get().last_id(master) < min,
            };
            if whole {
                first.remove();
                self.len -= live;
                deleted += live;
                continue;
            }
            if approx {
                break;
            }
            let block = first.get_mut();
            let mut at = block.first_at();
            while let Some(raw) = block.raw(master, at) {
                let stop = match rule {
                    Trim::MaxLen(max) => self.len <= max,
                    Trim::MinId(min) => raw.id >= min,
                };
                if stop {
                    break;
                }
                let next = raw.next;
                if block.delete_at(at) {
                    self.len -= 1;
                    deleted += 1;
                }
                at = next;
            }
            break;
        }
        self.first_id =
            if self.len == 0 { StreamId::MIN } else { self.first_entry().map_or(StreamId::MIN, |e| e.id) };
        deleted
    }

    /// Whether XDEL may have left a hole between `start` and the end (Redis's
    /// `streamRangeHasTombstones` with no end).
    #[must_use]
    pub(crate) fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.len == 0 || self.max_deleted.is_zero() || self.first_id > self.max_deleted {
            return false;
        }
        start <= self.max_deleted
    }

    /// The number of entries added up to and including `id`, where it can be known (Redis's
    /// `streamEstimateDistanceFromFirstEverEntry`); `None` when not.
    #[must_use]
    pub(crate) fn entries_up_to(&self, id: StreamId) -> Option<u64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if self.len == 0 && id <= self.last_id {
            return Some(self.entries_added);
        }
        match id.cmp(&self.last_id) {
            std::cmp::Ordering::Equal => return Some(self.entries_added),
            std::cmp::Ordering::Greater => return None,
            std::cmp::Ordering::Less => {}
        }
        if self.max_deleted.is_zero() || self.max_deleted < self.first_id {
            match id.cmp(&self.first_id) {
                std::cmp::Ordering::Less => return Some(self.entries_added - self.len),
                std::cmp::Ordering::Equal => return Some(self.entries_added - self.len + 1),
                std::cmp::Ordering::Greater => {}
            }
        }
        None
    }
}

/// Live entries of a stream in ID order ([`Stream::range`]).
pub(crate) struct Range<'a> {
    blocks: Option<std::collections::btree_map::Range<'a, StreamId, Block>>,
    current: Option<(StreamId, &'a Block, usize)>,
    start: StreamId,
    end: StreamId,
}

impl<'a> Iterator for Range<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            if let Some((master, block, at)) = self.current {
                let Some(raw) = block.raw(master, at) else {
                    self.current = None;
                    continue;
                };
                self.current = Some((master, block, raw.next));
                if raw.id > self.end {
                    self.blocks = None;
                    self.current = None;
                    return None;
                }
                if raw.is_deleted() || raw.id < self.start {
                    continue;
                }
                return Some(entry(raw));
            }
            let (&master, block) = self.blocks.as_mut()?.next()?;
            self.current = Some((master, block, block.first_at()));
        }
    }
}

fn entry(raw: Raw<'_>) -> Entry<'_> {
    Entry { id: raw.id, pairs: raw.pairs }
}

/// Live entries of a stream in reverse ID order ([`Stream::range_rev`]).
pub(crate) struct RevRange<'a> {
    blocks: Option<std::iter::Rev<std::collections::btree_map::Range<'a, StreamId, Block>>>,
    current: Option<(StreamId, &'a Block)>,
    offsets: Vec<usize>,
    start: StreamId,
    end: StreamId,
}

impl<'a> Iterator for RevRange<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            if let Some((master, block)) = self.current {
                let Some(at) = self.offsets.pop() else {
                    self.current = None;
                    continue;
                };
                let raw = block.raw(master, at)?;
                if raw.id < self.start {
                    self.blocks = None;
                    self.current = None;
                    return None;
                }
                if raw.is_deleted() || raw.id > self.end {
                    continue;
                }
                return Some(entry(raw));
            }
            let (&master, block) = self.blocks.as_mut()?.next()?;
            self.offsets = block.offsets(master);
            self.current = Some((master, block));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> StreamId {
        StreamId::new(ms, 0)
    }

    fn stream(n: u64, limits: NodeLimits) -> Stream {
        let mut s = Stream::new();
        for i in 1..=n {
            s.append(id(i), &[&b"f"[..], format!("{i}").as_bytes()], limits);
        }
        s
    }

    fn ids<'a>(it: impl Iterator<Item = Entry<'a>>) -> Vec<u64> {
        it.map(|e| e.id.ms).collect()
    }

    #[test]
    fn ranges_both_ways_across_blocks() {
        let s = stream(25, NodeLimits { max_bytes: 4096, max_entries: 10 });
        assert_eq!(s.nodes(), 3);
        assert_eq!(ids(s.range(id(8), id(12))), vec![8, 9, 10, 11, 12]);
        assert_eq!(ids(s.range_rev(id(8), id(12))), vec![12, 11, 10, 9, 8]);
        assert_eq!(ids(s.range(id(30), id(40))), Vec::<u64>::new());
        assert_eq!(ids(s.range(id(5), id(4))), Vec::<u64>::new());
        assert_eq!(s.get(id(25)).map(|e| e.pairs.collect::<Vec<_>>()), Some(vec![(&b"f"[..], &b"25"[..])]));
    }

    #[test]
    fn deletes_and_trims_as_redis() {
        let limits = NodeLimits { max_bytes: 4096, max_entries: 10 };
        let mut s = stream(25, limits);
        assert!(s.delete(id(1)));
        assert!(!s.delete(id(1)));
        assert_eq!((s.len(), s.first_id, s.max_deleted), (24, id(2), id(1)));
        // `~` drops whole blocks only: 24 - 9 >= 12, then 15 - 10 < 12.
        assert_eq!(s.trim(Trim::MaxLen(12), true, 0), 9);
        assert_eq!(s.trim(Trim::MaxLen(12), false, 0), 3);
        assert_eq!((s.len(), s.first_id), (12, id(14)));
        assert_eq!(s.trim(Trim::MinId(id(21)), false, 0), 7);
        assert_eq!(ids(s.range(StreamId::MIN, StreamId::MAX)), vec![21, 22, 23, 24, 25]);
        // A limit stops before a block that would pass it.
        let mut s = stream(25, limits);
        assert_eq!(s.trim(Trim::MaxLen(0), false, 15), 10);
    }
}
