//! Streams in RDB: Redis 7.0's type 19 written (each block as the listpack node Redis would
//! hold, byte for byte), and types 15 (Redis 5-6.2), 19 and 21 (Redis 7.2) read. Every
//! count, ID order and pending-entry reference is checked on the way in.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::num::parse_i64;
use crate::storage::rdb::{invalid, kind, listpack, write_len, write_string, RdbError, Reader};
use crate::storage::stream::block::{DELETED, SAME_FIELDS};
use crate::storage::stream::{Block, Consumer, Group, Nack, Stream, StreamId, UNKNOWN_READ};

/// Appends a stream as type 19's body (the type byte is the caller's).
pub(crate) fn write(out: &mut Vec<u8>, s: &Stream, compress: bool) {
    write_len(out, s.nodes() as u64);
    for (master, block) in s.block_list() {
        write_string(out, &master.to_be(), compress);
        write_string(out, &node(master, block), compress);
    }
    write_len(out, s.len());
    write_id(out, s.last_id);
    write_id(out, s.first_id);
    write_id(out, s.max_deleted);
    write_len(out, s.entries_added);
    write_len(out, s.groups.len() as u64);
    for (name, g) in &s.groups {
        write_string(out, name, compress);
        write_id(out, g.last_id);
        write_len(out, g.entries_read as u64);
        write_len(out, g.pel.len() as u64);
        for (id, nack) in &g.pel {
            out.extend_from_slice(&id.to_be());
            out.extend_from_slice(&nack.delivered.to_le_bytes());
            write_len(out, nack.deliveries);
        }
        write_len(out, g.consumers.len() as u64);
        for (name, c) in &g.consumers {
            write_string(out, name, compress);
            out.extend_from_slice(&c.seen.to_le_bytes());
            write_len(out, c.pel.len() as u64);
            for id in &c.pel {
                out.extend_from_slice(&id.to_be());
            }
        }
    }
}

fn write_id(out: &mut Vec<u8>, id: StreamId) {
    write_len(out, id.ms);
    write_len(out, id.seq);
}

/// The listpack Redis holds for `block`: its master entry, then each entry.
fn node(master: StreamId, block: &Block) -> Vec<u8> {
    let mut lp = listpack::Builder::new();
    let fields: Vec<&[u8]> = block.master_field_names().collect();
    lp.push_int(i64::from(block.live));
    lp.push_int(i64::from(block.deleted));
    lp.push_int(fields.len() as i64);
    fields.iter().for_each(|f| lp.push(f));
    lp.push_int(0);
    for raw in block.iter(master) {
        lp.push_int(i64::from(raw.flags));
        lp.push_int(raw.id.ms.wrapping_sub(master.ms) as i64);
        lp.push_int(raw.id.seq.wrapping_sub(master.seq) as i64);
        let n = raw.pairs.len() as i64;
        if raw.flags & SAME_FIELDS != 0 {
            raw.pairs.for_each(|(_, v)| lp.push(v));
            lp.push_int(n + 3);
        } else {
            lp.push_int(n);
            raw.pairs.for_each(|(f, v)| {
                lp.push(f);
                lp.push(v);
            });
            lp.push_int(2 * n + 4);
        }
    }
    lp.finish()
}

/// Reads a stream of type `kind` (15, 19 or 21).
pub(crate) fn read(r: &mut Reader<'_>, kind: u8) -> Result<Stream, RdbError> {
    let v2 = kind >= kind::STREAM_LISTPACKS_2;
    let mut s = Stream::new();
    let mut last_entry: Option<StreamId> = None;
    for _ in 0..r.count()? {
        let at = r.pos();
        let key = r.string()?;
        let master = StreamId::from_be(&key).ok_or(invalid("stream node key", at))?;
        let at = r.pos();
        let lp = r.string()?;
        let entries = node_entries(master, &lp).ok_or(invalid("stream listpack", at))?;
        if entries.is_empty() {
            continue;
        }
        for (id, ..) in &entries {
            if last_entry.is_some_and(|l| *id <= l) {
                return Err(invalid("stream entry order", at));
            }
            last_entry = Some(*id);
        }
        s.load_block(&entries);
    }
    let at = r.pos();
    let length = r.len()?;
    if length != s.len() {
        return Err(invalid("stream length", at));
    }
    let last_id = read_id(r)?;
    // A live entry above the last ID would make the next one added go before it; deleted ones
    // there (Redis's XSETID allows it) are dropped.
    if s.last_entry().is_some_and(|l| l.id > last_id) {
        return Err(invalid("stream last ID", at));
    }
    s.drop_deleted_above(last_id);
    let (first_id, max_deleted, added) = if v2 {
        (read_id(r)?, read_id(r)?, r.len()?)
    } else {
        // Redis 5-6.2 kept none of these: Redis 7 derives them as it loads.
        let first = s.first_entry().map_or(StreamId::MAX, |e| e.id);
        (first, StreamId::MIN, s.len())
    };
    if added < s.len() {
        return Err(invalid("stream entries added", at));
    }
    s.set_counters(last_id, first_id, max_deleted, added);
    for _ in 0..r.count()? {
        let at = r.pos();
        let name = r.string()?;
        let last = read_id(r)?;
        let entries_read =
            if v2 { r.len()? as i64 } else { s.entries_up_to(last).map_or(UNKNOWN_READ, |n| n as i64) };
        if entries_read < UNKNOWN_READ {
            return Err(invalid("stream group entries read", at));
        }
        let mut g = Group::new(last, entries_read);
        // Who owns each pending entry, as the consumers are read (every one must be owned).
        let mut owned: BTreeSet<StreamId> = BTreeSet::new();
        for _ in 0..r.count()? {
            let id = raw_id(r)?;
            let delivered = i64::from_le_bytes(array(r)?);
            let deliveries = r.len()?;
            let nack = Nack { consumer: Bytes::new(), delivered, deliveries };
            if g.pel.insert(id, nack).is_some() {
                return Err(invalid("stream group PEL (duplicate ID)", at));
            }
        }
        for _ in 0..r.count()? {
            let name = r.string()?;
            let seen = i64::from_le_bytes(array(r)?);
            if kind == kind::STREAM_LISTPACKS_3 {
                array::<8>(r)?;
            }
            let mut pel = BTreeSet::new();
            for _ in 0..r.count()? {
                let id = raw_id(r)?;
                let nack =
                    g.pel.get_mut(&id).ok_or(invalid("consumer PEL entry missing from the group PEL", at))?;
                if !pel.insert(id) || !owned.insert(id) {
                    return Err(invalid("stream consumer PEL (duplicate ID)", at));
                }
                nack.consumer = name.clone();
            }
            if g.consumers.insert(name, Consumer { seen, pel }).is_some() {
                return Err(invalid("stream consumer (duplicate name)", at));
            }
        }
        if owned.len() != g.pel.len() {
            return Err(invalid("stream group PEL entry without a consumer", at));
        }
        if s.groups.insert(name, g).is_some() {
            return Err(invalid("stream group (duplicate name)", at));
        }
    }
    Ok(s)
}

fn read_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    Ok(StreamId::new(r.len()?, r.len()?))
}

fn raw_id(r: &mut Reader<'_>) -> Result<StreamId, RdbError> {
    let at = r.pos();
    StreamId::from_be(r.take(16)?).ok_or(RdbError::Truncated(at))
}

fn array<const N: usize>(r: &mut Reader<'_>) -> Result<[u8; N], RdbError> {
    let at = r.pos();
    r.take(N)?.try_into().map_err(|_| RdbError::Truncated(at))
}

/// One entry read from a node: ID, deleted, pairs.
type Loaded = (StreamId, bool, Vec<Bytes>);

/// A node's entries in order, as Redis's iterator reads them; `None` when it does not parse.
fn node_entries(master: StreamId, lp: &[u8]) -> Option<Vec<Loaded>> {
    let elements = listpack::decode(lp)?;
    let mut it = elements.into_iter();
    let int = |e: Option<Bytes>| e.as_deref().and_then(parse_i64);
    let live = int(it.next())?;
    let deleted = int(it.next())?;
    let m = usize::try_from(int(it.next())?).ok()?;
    let fields: Vec<Bytes> = it.by_ref().take(m).collect();
    if fields.len() != m || int(it.next())? != 0 {
        return None;
    }
    let total = usize::try_from(live.checked_add(deleted)?).ok()?;
    let mut out = Vec::new();
    for _ in 0..total {
        let flags = int(it.next())?;
        let ms = master.ms.wrapping_add(int(it.next())? as u64);
        let seq = master.seq.wrapping_add(int(it.next())? as u64);
        let mut pairs = Vec::new();
        if flags & i64::from(SAME_FIELDS) != 0 {
            for f in &fields {
                pairs.push(f.clone());
                pairs.push(it.next()?);
            }
        } else {
            let n = usize::try_from(int(it.next())?).ok()?;
            for _ in 0..2 * n {
                pairs.push(it.next()?);
            }
        }
        int(it.next())?;
        out.push((StreamId::new(ms, seq), flags & i64::from(DELETED) != 0, pairs));
    }
    it.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::stream::NodeLimits;

    /// Redis 7.0.15's DUMP of `XADD s 5-10 a 1 b hello; XADD s 6-0 a 2 b x; XADD s 6-1 c 3;
    /// XDEL s 6-0`, then groups "123" ($) and "g1" (0) with alice reading one entry and bob
    /// created (the payload body, without the type byte and footer).
    const REDIS_DUMP: &str = concat!(
        "01100000000000000005000000000000000a404444000000190002010101020181610281620200010201000100010101",
        "8568656c6c6f06050103010101dff6020201817802050100010101dff702010181630203010601ff020601050a060003",
        "02c07b060181ffffffffffffffff0000026731050a81ffffffffffffffff010000000000000005000000000000000adb",
        "17d843a2010000010205616c696365db17d843a2010000010000000000000005000000000000000a03626f62db17d843",
        "a201000000",
    );

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn reads_redis_and_writes_it_back_byte_for_byte() {
        let bytes = hex(REDIS_DUMP);
        let s = read(&mut Reader::new(&bytes), kind::STREAM_LISTPACKS_2).unwrap();
        assert_eq!(
            (s.len(), s.nodes(), s.last_id, s.first_id),
            (2, 1, StreamId::new(6, 1), StreamId::new(5, 10))
        );
        assert_eq!((s.max_deleted, s.entries_added), (StreamId::new(6, 0), 3));
        let g1 = &s.groups[&b"g1"[..]];
        assert_eq!(g1.pel[&StreamId::new(5, 10)].consumer, &b"alice"[..]);
        assert_eq!(g1.entries_read, UNKNOWN_READ);
        let mut out = Vec::new();
        write(&mut out, &s, false);
        assert_eq!(out, bytes);
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let bytes = hex(REDIS_DUMP);
        for cut in [1, 10, 40, 90, bytes.len() - 1] {
            assert!(read(&mut Reader::new(&bytes[..cut]), kind::STREAM_LISTPACKS_2).is_err(), "cut at {cut}");
        }
        let mut s = Stream::new();
        s.append(StreamId::new(1, 1), &[&b"f"[..], b"v"], NodeLimits::default());
        let mut out = Vec::new();
        write(&mut out, &s, false);
        out[2 + 16 + 2 + 7] = 0x7f; // the master entry's terminator is no longer 0
        assert!(read(&mut Reader::new(&out), kind::STREAM_LISTPACKS_2).is_err());
    }
}
