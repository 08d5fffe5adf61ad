//! The replication buffer: the journal's stream kept for replicas, as Redis 7 keeps it (one
//! shared buffer): one copy of the bytes, read by every replica's cursor and kept as the
//! *backlog* (the last `repl-backlog-size` bytes) for partial resynchronizations. A byte is
//! dropped once the backlog no longer covers it and no replica still has to send it.
//!
//! A replica's unsent bytes are its output buffer: past `client-output-buffer-limit replica`
//! its cursor is dropped as the bytes are appended (whatever its link is doing, so a replica
//! that stops reading cannot hold memory), and its link ends when it finds its cursor gone.
//!
//! Offsets are Redis's: the stream's first byte ever has offset 1, and `offset()` (Redis's
//! `master_repl_offset`) is the offset of the last byte written. A cursor is the offset of the
//! next byte its replica needs (a replica at `slave_repl_offset` N asks `PSYNC ... N+1`).

use std::collections::VecDeque;
use std::time::Instant;

use crate::config::OutputLimit;

/// Bytes per block: appending fills the last block, trimming drops whole blocks.
const BLOCK: usize = 16 * 1024;

/// The stream's recent bytes, and where each replica is in them.
#[derive(Debug)]
pub(crate) struct Backlog {
    /// Full blocks, then the one being filled.
    blocks: VecDeque<Vec<u8>>,
    /// Offset of the first byte held (of `blocks[0][0]`).
    first: u64,
    /// Offset of the last byte written (`master_repl_offset`).
    offset: u64,
    /// `repl-backlog-size`: bytes kept for partial resyncs whatever the replicas need.
    size: u64,
    /// Per holder (a replica's link, a full sync under way): the next offset it needs.
    cursors: Vec<Cursor>,
    /// `client-output-buffer-limit replica`.
    limit: OutputLimit,
    /// Holders dropped for passing the limit, until their links ask.
    dropped: Vec<u64>,
}

#[derive(Debug)]
struct Cursor {
    holder: u64,
    at: u64,
    /// Since when its unsent bytes are past the soft limit.
    over_soft: Option<Instant>,
}

impl Backlog {
    /// An empty buffer continuing a stream whose last byte had `offset`.
    #[must_use]
    pub(crate) fn new(size: u64, offset: u64) -> Backlog {
        Backlog {
            blocks: VecDeque::new(),
            first: offset + 1,
            offset,
            size: size.max(1),
            cursors: Vec::new(),
            limit: OutputLimit { hard: 0, soft: 0, soft_secs: 0 },
            dropped: Vec::new(),
        }
    }

    /// `master_repl_offset`: the offset of the last byte written.
    #[must_use]
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset of the first byte a partial resync can start from (`repl_backlog_first_byte_offset`).
    #[must_use]
    pub(crate) fn first_kept(&self) -> u64 {
        self.first.max((self.offset + 1).saturating_sub(self.size))
    }

    /// Bytes the backlog covers (`repl_backlog_histlen`).
    #[must_use]
    pub(crate) fn histlen(&self) -> u64 {
        self.offset + 1 - self.first_kept()
    }

    /// Bytes held in memory, for replicas and backlog together.
    #[must_use]
    pub(crate) fn held(&self) -> u64 {
        self.offset + 1 - self.first
    }

    /// `repl-backlog-size` and `client-output-buffer-limit replica`, as configured now.
    pub(crate) fn configure(&mut self, size: u64, limit: OutputLimit) {
        self.size = size.max(1);
        self.limit = limit;
        self.enforce();
        self.trim();
    }

    /// The output limit in force.
    #[must_use]
    pub(crate) fn limit(&self) -> OutputLimit {
        self.limit
    }

    /// Whether `holder` was dropped for passing the output limit (asked once).
    pub(crate) fn take_dropped(&mut self, holder: u64) -> bool {
        let was = self.dropped.contains(&holder);
        self.dropped.retain(|&h| h != holder);
        was
    }

    /// Appends stream bytes.
    pub(crate) fn append(&mut self, mut bytes: &[u8]) {
        self.offset += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = match self.blocks.back() {
                Some(b) if b.len() < BLOCK => BLOCK - b.len(),
                _ => {
                    self.blocks.push_back(Vec::with_capacity(BLOCK));
                    BLOCK
                }
            };
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            if let Some(b) = self.blocks.back_mut() {
                b.extend_from_slice(now);
            }
            bytes = rest;
        }
        self.enforce();
        self.trim();
    }

    /// Drops the cursors whose unsent bytes pass the hard limit, or the soft one for longer
    /// than its seconds.
    fn enforce(&mut self) {
        let OutputLimit { hard, soft, soft_secs } = self.limit;
        let end = self.offset + 1;
        let now = Instant::now();
        let dropped = &mut self.dropped;
        self.cursors.retain_mut(|c| {
            let pending = end - c.at;
            if soft > 0 && pending > soft {
                c.over_soft.get_or_insert(now);
            } else {
                c.over_soft = None;
            }
            let over = (hard > 0 && pending > hard)
                || c.over_soft.is_some_and(|t| now.duration_since(t).as_secs() >= soft_secs);
            if over {
                dropped.push(c.holder);
            }
            !over
        });
    }

    /// Whether a stream can be continued from `from` (the next offset a replica needs): the
    /// backlog covers it, or it is the next byte to be written.
    #[must_use]
    pub(crate) fn covers(&self, from: u64) -> bool {
        from >= self.first_kept() && from <= self.offset + 1
    }

    /// Keeps the bytes from `from` on for `holder` (a replica's link) until it moves on or
    /// lets go; false when they are gone already.
    pub(crate) fn hold(&mut self, holder: u64, from: u64) -> bool {
        if from < self.first || from > self.offset + 1 {
            return false;
        }
        match self.cursors.iter_mut().find(|c| c.holder == holder) {
            Some(c) => c.at = from,
            None => self.cursors.push(Cursor { holder, at: from, over_soft: None }),
        }
        true
    }

    /// `holder` no longer needs anything.
    pub(crate) fn release(&mut self, holder: u64) {
        self.cursors.retain(|c| c.holder != holder);
        self.dropped.retain(|&h| h != holder);
        self.trim();
    }

    /// Copies into `into` the bytes from `holder`'s cursor on (at most `max`), moving the
    /// cursor past them; how many, or `None` for a holder with no cursor.
    pub(crate) fn read(&mut self, holder: u64, max: usize, into: &mut Vec<u8>) -> Option<usize> {
        let at = self.cursors.iter().find(|c| c.holder == holder)?.at;
        let mut pos = at;
        let mut block_start = self.first;
        for block in &self.blocks {
            let end = block_start + block.len() as u64;
            if pos < end && pos >= block_start {
                let from = (pos - block_start) as usize;
                let take = (block.len() - from).min(max - (pos - at) as usize);
                into.extend_from_slice(&block[from..from + take]);
                pos += take as u64;
                if (pos - at) as usize == max {
                    break;
                }
            }
            block_start = end;
        }
        let n = (pos - at) as usize;
        if n > 0 {
            if let Some(c) = self.cursors.iter_mut().find(|c| c.holder == holder) {
                c.at = pos;
            }
            self.trim();
        }
        Some(n)
    }

    /// Bytes `holder` still has to send (its output buffer, as Redis counts a replica's).
    #[must_use]
    pub(crate) fn pending(&self, holder: u64) -> Option<u64> {
        self.cursors.iter().find(|c| c.holder == holder).map(|c| self.offset + 1 - c.at)
    }

    /// Drops whole blocks that neither the backlog nor any cursor needs.
    fn trim(&mut self) {
        let keep_from = self.cursors.iter().map(|c| c.at).fold(self.first_kept(), u64::min);
        while let Some(front) = self.blocks.front() {
            let end = self.first + front.len() as u64;
            // The last byte written is always kept (the backlog is at least one byte).
            if end > keep_from {
                break;
            }
            self.first = end;
            self.blocks.pop_front();
        }
        if self.blocks.is_empty() {
            self.first = self.offset + 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn offsets_follow_redis_from_the_offset_it_continues() {
        let mut b = Backlog::new(1024, 100);
        assert_eq!((b.offset(), b.first_kept(), b.histlen()), (100, 101, 0));
        assert!(b.covers(101) && !b.covers(100) && !b.covers(102));
        b.append(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!((b.offset(), b.first_kept(), b.histlen()), (114, 101, 14));
        assert!(b.covers(101) && b.covers(115) && !b.covers(116));
    }

    #[test]
    fn a_cursor_reads_what_follows_it_across_blocks() {
        let mut b = Backlog::new(10 * BLOCK as u64, 0);
        let data = bytes(3 * BLOCK + 100, 7);
        b.append(&data[..5]);
        assert!(b.hold(1, 1 + 5));
        assert!(!b.hold(2, 1 + 6), "past the end");
        b.append(&data[5..BLOCK + 3]);
        b.append(&data[BLOCK + 3..]);
        let mut got = Vec::new();
        while b.read(1, 1000, &mut got).is_some_and(|n| n > 0) {}
        assert_eq!(got, data[5..]);
        assert_eq!(b.pending(1), Some(0));
        assert_eq!(b.read(3, 10, &mut got), None);
    }

    #[test]
    fn the_backlog_keeps_its_size_and_what_a_slow_replica_still_needs() {
        let mut b = Backlog::new(BLOCK as u64, 0);
        assert!(b.hold(9, 1));
        for i in 0..8 {
            b.append(&bytes(BLOCK, i));
        }
        // The replica at the start keeps everything in memory; the backlog covers one block.
        assert_eq!(b.held(), 8 * BLOCK as u64);
        assert_eq!(b.histlen(), BLOCK as u64);
        assert!(!b.covers(1));
        assert_eq!(b.pending(9), Some(8 * BLOCK as u64));
        let mut got = Vec::new();
        b.read(9, 4 * BLOCK, &mut got);
        assert_eq!(
            got,
            bytes(BLOCK, 0)
                .into_iter()
                .chain(bytes(BLOCK, 1))
                .chain(bytes(BLOCK, 2))
                .chain(bytes(BLOCK, 3))
                .collect::<Vec<_>>()
        );
        assert_eq!(b.held(), 4 * BLOCK as u64);
        b.release(9);
        assert!(b.held() <= 2 * BLOCK as u64 && b.held() >= BLOCK as u64);
        // What was dropped cannot be held again.
        assert!(!b.hold(3, 1));
        assert!(b.hold(3, b.first_kept()));
    }

    #[test]
    fn a_replica_past_its_hard_limit_loses_its_cursor_and_its_bytes() {
        let mut b = Backlog::new(BLOCK as u64, 0);
        b.configure(BLOCK as u64, OutputLimit { hard: 4 * BLOCK as u64, soft: 0, soft_secs: 0 });
        assert!(b.hold(1, 1) && b.hold(2, 1));
        for i in 0..6 {
            b.append(&bytes(BLOCK, i));
            let mut sink = Vec::new();
            b.read(2, BLOCK, &mut sink);
        }
        assert_eq!(b.pending(1), None);
        assert!(b.take_dropped(1) && !b.take_dropped(1) && !b.take_dropped(2));
        assert!(b.held() <= 2 * BLOCK as u64, "held {}", b.held());
    }
}
