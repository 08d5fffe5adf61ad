//! The list value: a deque of packed chunks, Redis's quicklist of listpacks. A small element
//! costs its bytes and a 4-byte offset, not a 32-byte handle plus an allocation of its own, and
//! a list that grows never moves or re-faults what it already holds.
//!
//! - A **chunk** keeps its elements back to back in one buffer, with where each starts. It only
//!   grows at its physical end: a chunk started by a push at the list's front stores its
//!   elements in reverse (`rev`), so a push at either end of the list is an append. A pop takes
//!   from the physical end (a truncation) or the physical front (`head` counts the elements gone
//!   from there; they are compacted away once they are half the chunk).
//! - A chunk of several elements holds at most [`CHUNK_BYTES`]; a larger element lives alone in
//!   its chunk. Offsets of a second element on are thus below `CHUNK_BYTES` and fit `u32`.
//! - A push that cannot append (the end chunk is full, or grows the other way) starts a chunk.
//!   Edits inside the list (LSET, LINSERT, LREM) repack the chunk they touch.
//! - A popped element is copied out: the buffer it sat in stays with the list.
//!
//! This module knows nothing of Redis commands; `cmd::list` maps them onto it.

use std::collections::VecDeque;

use bytes::Bytes;

/// Bytes per chunk: Redis's default `list-max-listpack-size -2` (8 KiB listpacks).
const CHUNK_BYTES: usize = 8 * 1024;

/// Elements packed back to back; see the module documentation.
#[derive(Clone, Default)]
struct Chunk {
    data: Vec<u8>,
    /// Where each element starts in `data`, in physical order; an element ends where the next
    /// one starts, the last one at the end of `data`.
    starts: Vec<u32>,
    /// How many elements at the physical front are gone.
    head: usize,
    /// Whether the list's order is the reverse of the physical order.
    rev: bool,
}

impl Chunk {
    fn new(rev: bool) -> Chunk {
        Chunk { rev, ..Chunk::default() }
    }

    fn len(&self) -> usize {
        self.starts.len() - self.head
    }

    /// The element at physical position `j`.
    fn physical(&self, j: usize) -> &[u8] {
        let start = self.starts[j] as usize;
        let end = self.starts.get(j + 1).map_or(self.data.len(), |&s| s as usize);
        &self.data[start..end]
    }

    /// The `i`th element in list order.
    fn get(&self, i: usize) -> &[u8] {
        self.physical(if self.rev { self.starts.len() - 1 - i } else { self.head + i })
    }

    /// The elements in list order.
    fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> + ExactSizeIterator {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// Whether `e` may be appended: to an empty chunk always, else within [`CHUNK_BYTES`].
    fn fits(&self, e: &[u8]) -> bool {
        self.len() == 0 || self.data.len() + e.len() <= CHUNK_BYTES
    }

    /// Adds `e` at the physical end (callers check [`Chunk::fits`]).
    fn append(&mut self, e: &[u8]) {
        debug_assert!(self.fits(e));
        if self.len() == 0 {
            self.clear();
        }
        // Below CHUNK_BYTES (see `fits`), or 0 for a lone element.
        self.starts.push(self.data.len() as u32);
        self.data.extend_from_slice(e);
    }

    /// The only element left: the buffer itself when it holds nothing else (a large element
    /// alone in its chunk leaves without a copy), else a copy. The chunk is then spent.
    fn take_last(&mut self) -> Bytes {
        debug_assert_eq!(self.len(), 1);
        let e = if self.starts[self.head] == 0 {
            Bytes::from(std::mem::take(&mut self.data))
        } else {
            Bytes::copy_from_slice(self.physical(self.head))
        };
        self.clear();
        e
    }

    fn clear(&mut self) {
        self.data.clear();
        self.starts.clear();
        self.head = 0;
    }

    /// Removes `k` elements (at most all) at the physical end.
    fn cut_end(&mut self, k: usize) {
        let keep = self.starts.len() - k.min(self.len());
        if keep == self.head {
            return self.clear();
        }
        self.data.truncate(self.starts[keep] as usize);
        self.starts.truncate(keep);
    }

    /// Removes `k` elements (at most all) at the physical front; compacts once the removed
    /// elements are half the chunk, so each removal costs O(1) amortized.
    fn cut_head(&mut self, k: usize) {
        self.head += k.min(self.len());
        if self.head == self.starts.len() {
            return self.clear();
        }
        if self.head * 2 >= self.starts.len() {
            let cut = self.starts[self.head];
            self.data.drain(..cut as usize);
            self.starts.drain(..self.head);
            self.starts.iter_mut().for_each(|s| *s -= cut);
            self.head = 0;
        }
    }

    /// Removes `k` elements at the front (`front`) or the back of the list's order: the
    /// physical end when the chunk grows toward that end of the list, else the physical front.
    fn cut(&mut self, front: bool, k: usize) {
        if self.rev == front {
            self.cut_end(k);
        } else {
            self.cut_head(k);
        }
    }
}

/// Builds chunks from elements in list order, as full as [`CHUNK_BYTES`] allows.
#[derive(Default)]
struct Packer {
    out: Vec<Chunk>,
}

impl Packer {
    fn push(&mut self, e: &[u8]) {
        match self.out.last_mut() {
            Some(c) if c.fits(e) => c.append(e),
            _ => {
                let mut c = Chunk::new(false);
                c.append(e);
                self.out.push(c);
            }
        }
    }
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// The head.
    Left,
    /// The tail.
    Right,
}

/// A list of byte strings with O(1) pushes and pops at both ends.
#[derive(Clone, Default)]
pub(crate) struct List {
    chunks: VecDeque<Chunk>,
    len: usize,
}

impl List {
    /// How many elements.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `e` (copied) at the front.
    pub(crate) fn push_front(&mut self, e: &[u8]) {
        self.push_at(true, e);
    }

    /// Adds `e` (copied) at the back.
    pub(crate) fn push_back(&mut self, e: &[u8]) {
        self.push_at(false, e);
    }

    /// Removes and returns the first element.
    pub(crate) fn pop_front(&mut self) -> Option<Bytes> {
        self.pop_at(true)
    }

    /// Removes and returns the last element.
    pub(crate) fn pop_back(&mut self) -> Option<Bytes> {
        self.pop_at(false)
    }

    /// Removes the first `n` elements (all, if fewer): whole chunks at once.
    pub(crate) fn drop_front(&mut self, n: usize) {
        self.drop_at(true, n);
    }

    /// Removes the last `n` elements (all, if fewer): whole chunks at once.
    pub(crate) fn drop_back(&mut self, n: usize) {
        self.drop_at(false, n);
    }

    /// The chunk at the list's front (`front`) or back.
    fn end_mut(&mut self, front: bool) -> Option<&mut Chunk> {
        if front {
            self.chunks.front_mut()
        } else {
            self.chunks.back_mut()
        }
    }

    /// Drops the chunk at the list's front (`front`) or back.
    fn drop_end_chunk(&mut self, front: bool) {
        if front {
            self.chunks.pop_front();
        } else {
            self.chunks.pop_back();
        }
    }

    /// Appends to the end chunk when it grows toward that end (a chunk of one element may turn
    /// around) and has room; else starts a chunk there.
    fn push_at(&mut self, front: bool, e: &[u8]) {
        match self.end_mut(front) {
            Some(c) if (c.rev == front || c.len() == 1) && c.fits(e) => {
                c.rev = front;
                c.append(e);
            }
            _ => {
                let mut c = Chunk::new(front);
                c.append(e);
                // Exactly one chunk's room for a list's first (most lists are short: the four a
                // deque starts with cost a 5-element list 190 bytes), then doubling.
                if self.chunks.capacity() == 0 {
                    self.chunks.reserve_exact(1);
                }
                if front {
                    self.chunks.push_front(c);
                } else {
                    self.chunks.push_back(c);
                }
            }
        }
        self.len += 1;
    }

    fn pop_at(&mut self, front: bool) -> Option<Bytes> {
        let c = self.end_mut(front)?;
        let e = match c.len() {
            1 => c.take_last(),
            n => Bytes::copy_from_slice(c.get(if front { 0 } else { n - 1 })),
        };
        c.cut(front, 1);
        if c.len() == 0 {
            self.drop_end_chunk(front);
        }
        self.len -= 1;
        Some(e)
    }

    fn drop_at(&mut self, front: bool, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(c) = self.end_mut(front) else { break };
            if c.len() > n {
                c.cut(front, n);
                break;
            }
            n -= c.len();
            self.drop_end_chunk(front);
        }
    }

    /// The chunk holding element `i` (< len) and its index there, counted from the nearer end.
    fn locate(&self, i: usize) -> (usize, usize) {
        debug_assert!(i < self.len);
        if i < self.len / 2 {
            let mut i = i;
            for (c, chunk) in self.chunks.iter().enumerate() {
                if i < chunk.len() {
                    return (c, i);
                }
                i -= chunk.len();
            }
        } else {
            let mut from_back = self.len - 1 - i;
            for (c, chunk) in self.chunks.iter().enumerate().rev() {
                if from_back < chunk.len() {
                    return (c, chunk.len() - 1 - from_back);
                }
                from_back -= chunk.len();
            }
        }
        unreachable!("chunk lengths add up to the list's length")
    }

    /// The element at `i`, if there is one.
    #[must_use]
    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        (i < self.len).then(|| {
            let (c, k) = self.locate(i);
            self.chunks[c].get(k)
        })
    }

    /// Every element, front to back (reversible).
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &[u8]> {
        self.chunks.iter().flat_map(Chunk::iter)
    }

    /// The index of the first element equal to `e`.
    #[must_use]
    pub(crate) fn position(&self, e: &[u8]) -> Option<usize> {
        self.iter().position(|x| x == e)
    }

    /// The elements from `start` to `stop` inclusive (`start <= stop < len`), front to back.
    pub(crate) fn range(&self, start: usize, stop: usize) -> impl Iterator<Item = &[u8]> {
        debug_assert!(start <= stop && stop < self.len);
        let (c, k) = self.locate(start);
        self.chunks.range(c..).flat_map(Chunk::iter).skip(k).take(stop - start + 1)
    }

    /// Replaces chunk `c` by the chunks `fill` packs (from it), keeping the length right.
    fn repack(&mut self, c: usize, fill: impl FnOnce(&Chunk, &mut Packer)) {
        let mut packer = Packer::default();
        fill(&self.chunks[c], &mut packer);
        let old = self.chunks.remove(c).map_or(0, |old| old.len());
        self.len = self.len - old + packer.out.iter().map(Chunk::len).sum::<usize>();
        for (k, chunk) in packer.out.into_iter().enumerate() {
            self.chunks.insert(c + k, chunk);
        }
    }

    /// Replaces the element at `i` (< len) by `e`.
    pub(crate) fn set(&mut self, i: usize, e: &[u8]) {
        let (c, k) = self.locate(i);
        self.repack(c, |old, out| {
            old.iter().enumerate().for_each(|(j, x)| out.push(if j == k { e } else { x }));
        });
    }

    /// Inserts `e` before the element at `i` (`i == len`: at the back).
    pub(crate) fn insert(&mut self, i: usize, e: &[u8]) {
        match i {
            0 => self.push_front(e),
            _ if i >= self.len => self.push_back(e),
            _ => {
                let (c, k) = self.locate(i);
                self.repack(c, |old, out| {
                    for (j, x) in old.iter().enumerate() {
                        if j == k {
                            out.push(e);
                        }
                        out.push(x);
                    }
                });
            }
        }
    }

    /// LREM: removes up to `count` elements equal to `e` from the front (`count > 0`), from the
    /// back (`count < 0`) or all of them (`count == 0`); returns how many. Only the chunks that
    /// held one are repacked.
    pub(crate) fn remove_matching(&mut self, e: &[u8], count: i64) -> usize {
        let mut left =
            if count == 0 { usize::MAX } else { usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX) };
        let (from_back, before) = (count < 0, self.len);
        let mut c = if from_back { self.chunks.len() } else { 0 };
        while left > 0 {
            if from_back {
                if c == 0 {
                    break;
                }
                c -= 1;
            } else if c == self.chunks.len() {
                break;
            }
            let chunk = &self.chunks[c];
            let mut hits: Vec<usize> =
                chunk.iter().enumerate().filter(|(_, x)| *x == e).map(|(j, _)| j).collect();
            if hits.is_empty() {
                c += usize::from(!from_back);
                continue;
            }
            let take = hits.len().min(left);
            if from_back {
                hits.drain(..hits.len() - take);
            } else {
                hits.truncate(take);
            }
            left -= take;
            let chunks_before = self.chunks.len();
            self.repack(c, |old, out| {
                let mut hits = hits.iter().peekable();
                for (j, x) in old.iter().enumerate() {
                    if hits.peek() == Some(&&j) {
                        hits.next();
                    } else {
                        out.push(x);
                    }
                }
            });
            if !from_back {
                // Past the chunks the repack left in its place (none, if it emptied).
                c += (self.chunks.len() + 1).saturating_sub(chunks_before);
            }
        }
        before - self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n.max(1)
        }
    }

    fn check(l: &List, model: &VecDeque<Vec<u8>>) {
        assert_eq!(l.len(), model.len());
        assert!(l.iter().eq(model.iter().map(Vec::as_slice)));
        assert!(l.iter().rev().eq(model.iter().rev().map(Vec::as_slice)));
        assert_eq!(l.chunks.iter().map(Chunk::len).sum::<usize>(), l.len());
        for c in &l.chunks {
            assert!(c.len() > 0, "no empty chunk stays");
            assert!(c.len() == 1 || c.data.len() <= CHUNK_BYTES, "several elements within a chunk's bytes");
        }
        if !model.is_empty() {
            let n = model.len();
            for (a, b) in [(0, n - 1), (n / 3, n / 2), (n - 1, n - 1), (n / 2, n - 1)] {
                assert!(l.range(a, b).eq(model.range(a..=b).map(Vec::as_slice)), "range {a}..={b}");
            }
            for i in [0, n / 2, n - 1] {
                assert_eq!(l.get(i), Some(model[i].as_slice()));
            }
        }
        assert_eq!(l.get(model.len()), None);
    }

    /// Every operation against a `VecDeque` model, with small elements (hundreds per chunk), a
    /// few large ones (alone in a chunk) and many repeats (for LREM).
    #[test]
    fn matches_a_deque_under_random_operations() {
        let mut rng = Rng(7);
        let (mut l, mut model) = (List::default(), VecDeque::new());
        let mut most_chunks = 0;
        for step in 0..60_000 {
            let e: Vec<u8> = match rng.below(50) {
                0 => vec![b'L'; CHUNK_BYTES + rng.below(3000) as usize],
                1 => vec![b'm'; 3000 + rng.below(3000) as usize],
                _ => format!("e{}", rng.below(40)).into_bytes(),
            };
            let n = model.len();
            match rng.below(100) {
                0..=29 => {
                    l.push_front(&e);
                    model.push_front(e);
                }
                30..=59 => {
                    l.push_back(&e);
                    model.push_back(e);
                }
                60..=71 => assert_eq!(l.pop_front().map(|b| b.to_vec()), model.pop_front()),
                72..=83 => assert_eq!(l.pop_back().map(|b| b.to_vec()), model.pop_back()),
                84..=87 if n > 0 => {
                    let i = rng.below(n as u64) as usize;
                    l.set(i, &e);
                    model[i] = e;
                }
                88..=91 => {
                    let i = rng.below(n as u64 + 1) as usize;
                    l.insert(i, &e);
                    model.insert(i, e);
                }
                92..=94 => {
                    let count = rng.below(7) as i64 - 3;
                    let target = format!("e{}", rng.below(40)).into_bytes();
                    let removed = l.remove_matching(&target, count);
                    let mut left = if count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                    let mut kept: Vec<Vec<u8>> = Vec::new();
                    let mut drop = |x: &Vec<u8>| {
                        let hit = *x == target && left > 0;
                        left -= usize::from(hit);
                        hit
                    };
                    if count < 0 {
                        model.iter().rev().for_each(|x| {
                            if !drop(x) {
                                kept.insert(0, x.clone())
                            }
                        });
                    } else {
                        model.iter().for_each(|x| {
                            if !drop(x) {
                                kept.push(x.clone())
                            }
                        });
                    }
                    assert_eq!(removed, model.len() - kept.len());
                    model = kept.into();
                }
                95..=96 => {
                    let k = rng.below(n as u64 / 4 + 2) as usize;
                    l.drop_front(k);
                    model.drain(..k.min(n));
                }
                97..=98 => {
                    let k = rng.below(n as u64 / 4 + 2) as usize;
                    l.drop_back(k);
                    model.truncate(n.saturating_sub(k));
                }
                _ => {}
            }
            most_chunks = most_chunks.max(l.chunks.len());
            if step % 500 == 0 {
                check(&l, &model);
            }
        }
        check(&l, &model);
        assert!(most_chunks > 20, "the lists spanned {most_chunks} chunks at most");
    }

    #[test]
    fn a_large_element_leaves_without_a_copy() {
        let mut l = List::default();
        l.push_back(b"small");
        let big = vec![7u8; 1 << 20];
        l.push_back(&big);
        l.push_front(&big);
        assert_eq!(l.chunks.len(), 3, "each large element alone in its chunk");
        let (front, back) = (l.chunks[0].data.as_ptr(), l.chunks[2].data.as_ptr());
        let popped = l.pop_back().unwrap();
        assert_eq!((popped.as_ptr(), &popped[..]), (back, &big[..]));
        let popped = l.pop_front().unwrap();
        assert_eq!((popped.as_ptr(), &popped[..]), (front, &big[..]));
        assert_eq!(l.pop_front().unwrap(), &b"small"[..]);
        assert!(l.is_empty());
    }

    /// Queues and stacks, the common shapes, only ever append to and cut from chunks: the
    /// memory a small element costs stays near its size.
    #[test]
    fn small_elements_pack_tightly_whichever_end_grows() {
        for front in [true, false] {
            let mut l = List::default();
            for i in 0..100_000u32 {
                let e = format!("{i:016}");
                if front {
                    l.push_front(e.as_bytes());
                } else {
                    l.push_back(e.as_bytes());
                }
            }
            let bytes: usize = l.chunks.iter().map(|c| c.data.capacity() + 4 * c.starts.capacity()).sum();
            assert!(bytes < 100_000 * 24, "{bytes} bytes for 100k 16-byte elements");
            // Drained from the other end, as a queue is.
            for i in 0..100_000u32 {
                let e = if front { l.pop_back() } else { l.pop_front() };
                assert_eq!(e.unwrap(), format!("{i:016}").as_bytes());
            }
            assert!(l.is_empty() && l.chunks.is_empty());
        }
    }
}
