//! A block of stream entries: what Redis keeps in one listpack node of its radix tree, packed
//! tighter. Its key (the master ID) is its first entry's ID; it starts with the master fields
//! (the first entry's field names), and an entry with exactly those fields stores only its
//! values.
//!
//! Layout: master field count, then each field (varint length, bytes); then the entries. An
//! entry: flags (one byte: [`DELETED`], [`SAME_FIELDS`]), the ms delta from the master ID and
//! the sequence (relative to the master's when the ms is the master's), as varints; unless
//! [`SAME_FIELDS`], the field count and the fields; then the values. Deleting an entry sets its
//! flag, as Redis does: the bytes stay until the whole block goes.
//!
//! A block also counts the bytes Redis's listpack for the same entries would take
//! ([`Block::lp_bytes`]), so that blocks split exactly where Redis's nodes do.

use crate::storage::rdb::listpack;
use crate::storage::stream::StreamId;

/// The entry was deleted.
pub(crate) const DELETED: u8 = 1;
/// The entry's fields are the master fields; only its values are stored.
pub(crate) const SAME_FIELDS: u8 = 2;

/// One block of entries.
#[derive(Clone, Debug)]
pub(crate) struct Block {
    data: Vec<u8>,
    /// Where the first entry starts (after the master fields).
    entries_at: u32,
    /// The master field count.
    master_fields: u32,
    /// Entries not deleted.
    pub(crate) live: u32,
    /// Entries deleted (still taking room).
    pub(crate) deleted: u32,
    /// The bytes of Redis's listpack for these entries, less its two counters (which change
    /// size as they grow).
    lp_base: u64,
}

/// One entry as a block holds it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Raw<'a> {
    /// Its ID.
    pub(crate) id: StreamId,
    /// Its flags.
    pub(crate) flags: u8,
    /// Where the next entry starts.
    pub(crate) next: usize,
    /// Its field-value pairs.
    pub(crate) pairs: Pairs<'a>,
}

impl Raw<'_> {
    /// Whether it was deleted.
    #[must_use]
    pub(crate) fn is_deleted(&self) -> bool {
        self.flags & DELETED != 0
    }
}

/// An entry's field-value pairs, read from their packed bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pairs<'a> {
    fields: &'a [u8],
    values: &'a [u8],
    left: usize,
}

impl<'a> Pairs<'a> {
    /// How many pairs remain.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.left
    }
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let (f, fields) = take_bytes(self.fields)?;
        let (v, values) = take_bytes(self.values)?;
        (self.fields, self.values) = (fields, values);
        Some((f, v))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

fn put_bytes(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn take_bytes(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = take_varint(b)?;
    let len = usize::try_from(len).ok()?;
    Some((rest.get(..len)?, rest.get(len..)?))
}

/// Skips `n` length-prefixed byte strings.
fn skip_bytes(mut b: &[u8], n: usize) -> Option<&[u8]> {
    for _ in 0..n {
        b = take_bytes(b)?.1;
    }
    Some(b)
}

/// Redis's listpack integer for `v`, as it appends it (`lpAppendInteger` takes an i64).
fn lp_int(v: u64) -> u64 {
    listpack::int_size(v as i64) as u64
}

impl Block {
    /// A block whose first entry is `id` with `pairs` (field, value, field, value, ...).
    #[must_use]
    pub(crate) fn new(id: StreamId, pairs: &[impl AsRef<[u8]>]) -> Block {
        let mut data = Vec::with_capacity(64);
        let n = pairs.len() / 2;
        put_varint(&mut data, n as u64);
        // Redis's master entry: count, deleted, field count, the fields, a 0 terminator.
        let mut lp_base = listpack::EMPTY_BYTES as u64 + lp_int(n as u64) + lp_int(0);
        for f in pairs.iter().step_by(2) {
            put_bytes(&mut data, f.as_ref());
            lp_base += listpack::element_size(f.as_ref()) as u64;
        }
        let entries_at = data.len() as u32;
        let mut block = Block { data, entries_at, master_fields: n as u32, live: 0, deleted: 0, lp_base };
        block.push(id, id, pairs);
        block
    }

    /// The bytes Redis's listpack node for these entries would take.
    #[must_use]
    pub(crate) fn lp_bytes(&self) -> u64 {
        self.lp_base + lp_int(u64::from(self.live)) + lp_int(u64::from(self.deleted))
    }

    /// The bytes this block holds (its data's allocation).
    #[must_use]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.data.capacity()
    }

    /// Entries in it, deleted ones included.
    #[must_use]
    pub(crate) fn entries(&self) -> u64 {
        u64::from(self.live) + u64::from(self.deleted)
    }

    fn master_fields(&self) -> &[u8] {
        self.data.get(..self.entries_at as usize).and_then(|h| take_varint(h).map(|(_, f)| f)).unwrap_or(&[])
    }

    /// The master field names, in order.
    pub(crate) fn master_field_names(&self) -> impl Iterator<Item = &[u8]> {
        let mut rest = self.master_fields();
        (0..self.master_fields).map_while(move |_| {
            let (f, tail) = take_bytes(rest)?;
            rest = tail;
            Some(f)
        })
    }

    fn same_fields(&self, pairs: &[impl AsRef<[u8]>]) -> bool {
        pairs.len() / 2 == self.master_fields as usize
            && self.master_field_names().zip(pairs.iter().step_by(2)).all(|(m, f)| m == f.as_ref())
    }

    /// Appends entry `id` (above every entry here) to the block keyed `master`.
    pub(crate) fn push(&mut self, master: StreamId, id: StreamId, pairs: &[impl AsRef<[u8]>]) {
        let same = self.same_fields(pairs);
        let n = (pairs.len() / 2) as u64;
        self.data.push(if same { SAME_FIELDS } else { 0 });
        // Entries come in ID order, so neither difference wraps (a file's order is checked).
        let ms_delta = id.ms.wrapping_sub(master.ms);
        put_varint(&mut self.data, ms_delta);
        put_varint(&mut self.data, if ms_delta == 0 { id.seq.wrapping_sub(master.seq) } else { id.seq });
        // Redis: flags, ms-diff, seq-diff, [field count, fields and values | values], lp-count.
        let mut lp = lp_int(u64::from(same) * 2) + lp_int(ms_delta) + lp_int(id.seq.wrapping_sub(master.seq));
        if same {
            for v in pairs.iter().skip(1).step_by(2) {
                lp += listpack::element_size(v.as_ref()) as u64;
            }
            lp += lp_int(n + 3);
        } else {
            put_varint(&mut self.data, n);
            for f in pairs.iter().step_by(2) {
                put_bytes(&mut self.data, f.as_ref());
            }
            lp += lp_int(n);
            for p in pairs {
                lp += listpack::element_size(p.as_ref()) as u64;
            }
            lp += lp_int(2 * n + 4);
        }
        for v in pairs.iter().skip(1).step_by(2) {
            put_bytes(&mut self.data, v.as_ref());
        }
        self.lp_base += lp;
        self.live += 1;
    }

    /// Whether Redis would start a new node rather than append an entry whose fields and
    /// values total `raw_len` bytes (`streamAppendItem`'s checks).
    #[must_use]
    pub(crate) fn is_full(&self, raw_len: u64, max_bytes: u64, max_entries: u64) -> bool {
        let max_bytes = if max_bytes == 0 || max_bytes > 1 << 30 { 1 << 30 } else { max_bytes };
        self.lp_bytes() + raw_len >= max_bytes || (max_entries != 0 && self.entries() >= max_entries)
    }

    /// The entry at byte `at` of the block keyed `master`; `None` past the last.
    #[must_use]
    pub(crate) fn raw(&self, master: StreamId, at: usize) -> Option<Raw<'_>> {
        let (&flags, rest) = self.data.get(at..)?.split_first()?;
        let (ms_delta, rest) = take_varint(rest)?;
        let (seq, rest) = take_varint(rest)?;
        let id = if ms_delta == 0 {
            StreamId::new(master.ms, master.seq.wrapping_add(seq))
        } else {
            StreamId::new(master.ms.wrapping_add(ms_delta), seq)
        };
        let (fields, n, values) = if flags & SAME_FIELDS != 0 {
            (self.master_fields(), self.master_fields as usize, rest)
        } else {
            let (n, fields) = take_varint(rest)?;
            let n = usize::try_from(n).ok()?;
            (fields, n, skip_bytes(fields, n)?)
        };
        let end = skip_bytes(values, n)?;
        let next = self.data.len() - end.len();
        Some(Raw { id, flags, next, pairs: Pairs { fields, values, left: n } })
    }

    /// Where the first entry starts.
    #[must_use]
    pub(crate) fn first_at(&self) -> usize {
        self.entries_at as usize
    }

    /// Every entry, deleted ones included, in order (for the block keyed `master`).
    pub(crate) fn iter(&self, master: StreamId) -> impl Iterator<Item = Raw<'_>> {
        let mut at = self.first_at();
        std::iter::from_fn(move || {
            let raw = self.raw(master, at)?;
            at = raw.next;
            Some(raw)
        })
    }

    /// Every entry's start, deleted ones included, in order.
    #[must_use]
    pub(crate) fn offsets(&self, master: StreamId) -> Vec<usize> {
        let mut out = Vec::with_capacity(self.entries() as usize);
        let mut at = self.first_at();
        while let Some(raw) = self.raw(master, at) {
            out.push(at);
            at = raw.next;
        }
        out
    }

    /// Marks the entry at byte `at` deleted; whether it was live.
    pub(crate) fn delete_at(&mut self, at: usize) -> bool {
        match self.data.get_mut(at) {
            Some(flags) if *flags & DELETED == 0 => {
                *flags |= DELETED;
                self.live -= 1;
                self.deleted += 1;
                true
            }
            _ => false,
        }
    }

    /// The last entry's ID, deleted or not (Redis's `lpGetEdgeStreamID(lp, 0, ...)`).
    #[must_use]
    pub(crate) fn last_id(&self, master: StreamId) -> StreamId {
        let mut at = self.first_at();
        let mut last = master;
        while let Some(raw) = self.raw(master, at) {
            last = raw.id;
            at = raw.next;
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::rdb::listpack::Builder;

    /// The listpack Redis builds for the same entries, to compare sizes with.
    fn redis_lp(master: StreamId, entries: &[(StreamId, Vec<&[u8]>)]) -> usize {
        let mut b = Builder::new();
        let fields: Vec<&[u8]> = entries[0].1.iter().step_by(2).copied().collect();
        b.push_int(entries.len() as i64);
        b.push_int(0);
        b.push_int(fields.len() as i64);
        fields.iter().for_each(|f| b.push(f));
        b.push_int(0);
        for (id, pairs) in entries {
            let same =
                pairs.len() / 2 == fields.len() && pairs.iter().step_by(2).zip(&fields).all(|(a, b)| a == b);
            b.push_int(if same { 2 } else { 0 });
            b.push_int(id.ms.wrapping_sub(master.ms) as i64);
            b.push_int(id.seq.wrapping_sub(master.seq) as i64);
            let n = (pairs.len() / 2) as i64;
            if same {
                pairs.iter().skip(1).step_by(2).for_each(|v| b.push(v));
                b.push_int(n + 3);
            } else {
                b.push_int(n);
                pairs.iter().for_each(|p| b.push(p));
                b.push_int(2 * n + 4);
            }
        }
        b.finish().len()
    }

    #[test]
    fn entries_read_back_and_size_as_redis_listpacks() {
        let m = StreamId::new(1000, 5);
        let entries: Vec<(StreamId, Vec<&[u8]>)> = vec![
            (m, vec![b"name", b"ann", b"age", b"42"]),
            (StreamId::new(1000, 9), vec![b"name", b"bob", b"age", b"-7"]),
            (StreamId::new(90_000, 0), vec![b"other", b"x"]),
            (StreamId::new(90_001, 3), vec![b"name", &[b'z'; 300][..], b"age", b"1"]),
        ];
        let mut block = Block::new(entries[0].0, &entries[0].1);
        for (id, pairs) in &entries[1..] {
            block.push(m, *id, pairs);
        }
        assert_eq!(block.lp_bytes() as usize, redis_lp(m, &entries));
        let mut at = block.first_at();
        for (id, pairs) in &entries {
            let raw = block.raw(m, at).unwrap();
            assert_eq!(raw.id, *id);
            let flat: Vec<&[u8]> = raw.pairs.flat_map(|(f, v)| [f, v]).collect();
            assert_eq!(&flat, pairs);
            at = raw.next;
        }
        assert!(block.raw(m, at).is_none());
        assert_eq!(block.last_id(m), StreamId::new(90_001, 3));
        assert!(block.delete_at(block.first_at()));
        assert!(!block.delete_at(block.first_at()), "deleted once");
        assert_eq!((block.live, block.deleted), (3, 1));
    }
}
