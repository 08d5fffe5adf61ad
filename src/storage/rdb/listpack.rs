//! Redis's listpack: the packed encoding of small hashes, sorted sets and list nodes in RDB
//! (and small sets in Redis 7.2). Built entry by entry as Redis's `lpAppend` builds it (a string
//! that reads as an integer is stored as the smallest integer that holds it); read back with
//! every length, back-length and count checked.
//!
//! Layout: total bytes (u32 LE), element count (u16 LE, 65535 when unknown), entries, 0xFF. An
//! entry is its encoding and data, then its own length backwards in 7-bit groups.

use bytes::Bytes;

use crate::num::parse_i64;

/// The header: total bytes and element count.
const HEADER: usize = 6;
/// The terminator.
const EOF: u8 = 0xff;
/// The count field's "count the entries" value.
const UNKNOWN_COUNT: u16 = u16::MAX;

/// A listpack under construction.
pub(crate) struct Builder {
    buf: Vec<u8>,
    count: usize,
}

impl Builder {
    /// An empty listpack.
    #[must_use]
    pub(crate) fn new() -> Builder {
        let mut buf = Vec::with_capacity(64);
        buf.resize(HEADER, 0);
        Builder { buf, count: 0 }
    }

    /// Appends one element.
    pub(crate) fn push(&mut self, element: &[u8]) {
        let start = self.buf.len();
        match parse_i64(element) {
            Some(v) => encode_int(&mut self.buf, v),
            None => encode_str(&mut self.buf, element),
        }
        let entry = self.buf.len() - start;
        encode_backlen(&mut self.buf, entry);
        self.count += 1;
    }

    /// Appends an integer element.
    pub(crate) fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        encode_int(&mut self.buf, v);
        let entry = self.buf.len() - start;
        encode_backlen(&mut self.buf, entry);
        self.count += 1;
    }

    /// The size the listpack would have if finished now.
    #[must_use]
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len() + 1
    }

    /// Elements appended so far.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The finished listpack.
    #[must_use]
    pub(crate) fn finish(mut self) -> Vec<u8> {
        self.buf.push(EOF);
        let total = u32::try_from(self.buf.len()).unwrap_or(u32::MAX);
        self.buf[..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(UNKNOWN_COUNT);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// The size of a listpack with no elements (header and terminator).
pub(crate) const EMPTY_BYTES: usize = HEADER + 1;

/// The bytes `element` takes in a listpack (encoding, data and back-length), as
/// [`Builder::push`] would write it.
#[must_use]
pub(crate) fn element_size(element: &[u8]) -> usize {
    let encoded = match parse_i64(element) {
        Some(v) => int_encoding_size(v),
        None if element.len() < 64 => 1 + element.len(),
        None if element.len() < 4096 => 2 + element.len(),
        None => 5 + element.len(),
    };
    encoded + backlen_size(encoded)
}

/// The bytes the integer `v` takes in a listpack, back-length included.
#[must_use]
pub(crate) fn int_size(v: i64) -> usize {
    let encoded = int_encoding_size(v);
    encoded + backlen_size(encoded)
}

fn int_encoding_size(v: i64) -> usize {
    if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if i16::try_from(v).is_ok() {
        3
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        4
    } else if i32::try_from(v).is_ok() {
        5
    } else {
        9
    }
}

fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

fn encode_int(out: &mut Vec<u8>, v: i64) {
    if (0..=127).contains(&v) {
        out.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = (if v < 0 { (1 << 13) + v } else { v }) as u16;
        out.extend_from_slice(&[0xc0 | (u >> 8) as u8, u as u8]);
    } else if let Ok(v) = i16::try_from(v) {
        out.push(0xf1);
        out.extend_from_slice(&v.to_le_bytes());
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        out.push(0xf2);
        out.extend_from_slice(&v.to_le_bytes()[..3]);
    } else if let Ok(v) = i32::try_from(v) {
        out.push(0xf3);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(0xf4);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn encode_str(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 64 {
        out.push(0x80 | len as u8);
    } else if len < 4096 {
        out.extend_from_slice(&[0xe0 | (len >> 8) as u8, len as u8]);
    } else {
        out.push(0xf0);
        out.extend_from_slice(&(len as u32).to_le_bytes());
    }
    out.extend_from_slice(s);
}

/// The entry's length, written so that it reads backwards: the first byte holds the high
/// group, every later byte has its high bit set, the last holds the low 7 bits. The byte counts
/// follow Redis's `lpEncodeBacklen` thresholds exactly (16383 takes three bytes there).
fn encode_backlen(out: &mut Vec<u8>, len: usize) {
    let n = backlen_size(len);
    for i in (0..n).rev() {
        let group = ((len >> (7 * i)) & 127) as u8;
        out.push(if i == n - 1 { group } else { group | 128 });
    }
}

/// The length a back-length ending at `end` (exclusive) records, and where it starts.
fn decode_backlen(buf: &[u8], end: usize) -> Option<(usize, usize)> {
    let mut value = 0usize;
    let mut shift = 0;
    let mut at = end;
    loop {
        at = at.checked_sub(1)?;
        let b = buf[at];
        value |= usize::from(b & 127) << shift;
        if b & 128 == 0 {
            return Some((value, at));
        }
        shift += 7;
        if shift > 28 {
            return None;
        }
    }
}

/// Reads a listpack's elements (integers as their decimal text), checking its structure.
#[must_use]
pub(crate) fn decode(lp: &[u8]) -> Option<Vec<Bytes>> {
    if lp.len() < HEADER + 1 {
        return None;
    }
    let total = u32::from_le_bytes(lp[..4].try_into().ok()?) as usize;
    let count = u16::from_le_bytes(lp[4..6].try_into().ok()?);
    if total != lp.len() || lp[total - 1] != EOF {
        return None;
    }
    let mut out = Vec::new();
    let mut p = HEADER;
    while lp[p] != EOF {
        let start = p;
        let b = lp[p];
        let (element, next): (Bytes, usize) = if b & 0x80 == 0 {
            (Bytes::from(i64::from(b).to_string()), p + 1)
        } else if b & 0xc0 == 0x80 {
            let len = usize::from(b & 0x3f);
            (Bytes::copy_from_slice(lp.get(p + 1..p + 1 + len)?), p + 1 + len)
        } else if b & 0xe0 == 0xc0 {
            let raw = (u16::from(b & 0x1f) << 8) | u16::from(*lp.get(p + 1)?);
            let v = if raw >= 1 << 12 { i64::from(raw) - (1 << 13) } else { i64::from(raw) };
            (Bytes::from(v.to_string()), p + 2)
        } else if b & 0xf0 == 0xe0 {
            let len = (usize::from(b & 0x0f) << 8) | usize::from(*lp.get(p + 1)?);
            (Bytes::copy_from_slice(lp.get(p + 2..p + 2 + len)?), p + 2 + len)
        } else {
            let int = |n: usize| -> Option<(Bytes, usize)> {
                let raw = lp.get(p + 1..p + 1 + n)?;
                let mut bytes = [0u8; 8];
                bytes[..n].copy_from_slice(raw);
                // Sign-extend from the top byte.
                if raw[n - 1] & 0x80 != 0 {
                    bytes[n..].fill(0xff);
                }
                Some((Bytes::from(i64::from_le_bytes(bytes).to_string()), p + 1 + n))
            };
            match b {
                0xf0 => {
                    let len = u32::from_le_bytes(lp.get(p + 1..p + 5)?.try_into().ok()?) as usize;
                    let end = (p + 5).checked_add(len)?;
                    (Bytes::copy_from_slice(lp.get(p + 5..end)?), end)
                }
                0xf1 => int(2)?,
                0xf2 => int(3)?,
                0xf3 => int(4)?,
                0xf4 => int(8)?,
                _ => return None,
            }
        };
        // The back-length must follow and record exactly this entry's size.
        let entry = next - start;
        let mut expected = Vec::with_capacity(5);
        encode_backlen(&mut expected, entry);
        let after = next.checked_add(expected.len())?;
        if lp.get(next..after)? != expected.as_slice() || decode_backlen(lp, after)? != (entry, next) {
            return None;
        }
        out.push(element);
        p = after;
        if p >= total {
            return None;
        }
    }
    if p != total - 1 || (count != UNKNOWN_COUNT && usize::from(count) != out.len()) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_as_redis_and_reads_back() {
        // Redis 7.0: RPUSH-style listpack of "a", "1", "-1", "5000" is
        // total 22, count 4; 0x81 'a' 0x02 | 0x01 0x01 | 0xdf 0xff 0x02 | 0xd3 0x88 0x02 | ...
        let elements: Vec<&[u8]> = vec![b"a", b"1", b"-1", b"5000", b"70000", b"-9000000000", b"01"];
        let mut b = Builder::new();
        elements.iter().for_each(|e| b.push(e));
        let lp = b.finish();
        assert_eq!(&lp[6..9], &[0x81, b'a', 2]);
        assert_eq!(&lp[9..11], &[0x01, 1]);
        assert_eq!(&lp[11..14], &[0xdf, 0xff, 2], "-1 as a 13-bit integer");
        let back: Vec<Bytes> = decode(&lp).unwrap();
        assert_eq!(back.iter().map(|b| &b[..]).collect::<Vec<_>>(), elements);
        let long = vec![b'x'; 5000];
        let mut b = Builder::new();
        b.push(&long);
        b.push(&long[..100]);
        let lp = b.finish();
        assert_eq!(decode(&lp).unwrap()[0].len(), 5000);
        for cut in 0..lp.len() {
            assert!(decode(&lp[..cut]).is_none());
        }
    }

    #[test]
    fn back_lengths_read_backwards() {
        for len in [1, 127, 128, 16382, 16383, 2_097_150, 2_097_151, 300_000_000] {
            let mut out = vec![0u8; 3];
            encode_backlen(&mut out, len);
            assert_eq!(decode_backlen(&out, out.len()), Some((len, 3)), "{len}");
        }
    }
}
