//! A stream entry's ID: milliseconds and a sequence number, ordered as a pair, written
//! `ms-seq`, and stored big-endian (16 bytes) where Redis's RDB keys nodes and pending entries.

use std::fmt;

/// A stream entry's ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct StreamId {
    /// Unix milliseconds (or any number the client chose).
    pub(crate) ms: u64,
    /// The sequence number within the millisecond.
    pub(crate) seq: u64,
}

impl StreamId {
    /// `0-0`: below every entry (no entry may have it).
    pub(crate) const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest ID.
    pub(crate) const MAX: StreamId = StreamId { ms: u64::MAX, seq: u64::MAX };

    /// The ID `ms-seq`.
    #[must_use]
    pub(crate) const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// Whether this is `0-0`.
    #[must_use]
    pub(crate) fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The next ID (Redis's `streamIncrID`), `None` past the largest.
    #[must_use]
    pub(crate) fn next(self) -> Option<StreamId> {
        match self.seq.checked_add(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self.ms.checked_add(1).map(|ms| StreamId { ms, seq: 0 }),
        }
    }

    /// The previous ID (Redis's `streamDecrID`), `None` below `0-0`.
    #[must_use]
    pub(crate) fn prev(self) -> Option<StreamId> {
        match self.seq.checked_sub(1) {
            Some(seq) => Some(StreamId { ms: self.ms, seq }),
            None => self.ms.checked_sub(1).map(|ms| StreamId { ms, seq: u64::MAX }),
        }
    }

    /// The 16 bytes Redis keys it by: ms then seq, big-endian.
    #[must_use]
    pub(crate) fn to_be(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }

    /// Reads [`StreamId::to_be`]'s 16 bytes; `None` for another length.
    #[must_use]
    pub(crate) fn from_be(b: &[u8]) -> Option<StreamId> {
        let ms = u64::from_be_bytes(b.get(..8)?.try_into().ok()?);
        let seq = u64::from_be_bytes(b.get(8..16)?.try_into().ok()?);
        (b.len() == 16).then_some(StreamId { ms, seq })
    }

    /// `ms-seq` as bytes.
    #[must_use]
    pub(crate) fn to_bytes(self) -> bytes::Bytes {
        bytes::Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// An ID as a client writes one: `ms` or `ms-seq`, where `ms-*` asks for the next sequence
/// number (XADD only) and a missing sequence is left for the caller to fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Written {
    /// The milliseconds.
    pub(crate) ms: u64,
    /// The sequence: `Some` when given, `None` when absent.
    pub(crate) seq: Option<u64>,
    /// `ms-*`.
    pub(crate) any_seq: bool,
}

/// Parses `ms[-seq]` or `ms-*` (Redis's `streamGenericParseIDOrReply` on plain numbers: each
/// part an unsigned 64-bit decimal, as `string2ull` reads it).
#[must_use]
pub(crate) fn parse(text: &[u8]) -> Option<Written> {
    if text.len() > 127 {
        return None;
    }
    match text.iter().position(|&b| b == b'-') {
        None => Some(Written { ms: ull(text)?, seq: None, any_seq: false }),
        Some(dash) => {
            let ms = ull(&text[..dash])?;
            let rest = &text[dash + 1..];
            if rest == b"*" {
                return Some(Written { ms, seq: None, any_seq: true });
            }
            Some(Written { ms, seq: Some(ull(rest)?), any_seq: false })
        }
    }
}

/// Redis's `string2ull`: `string2ll`'s strict decimal when it reads one (a negative refused);
/// else C's `strtoull` on the whole text (leading spaces, a sign, leading zeros; a `-` negates
/// modulo 2^64 as C does), refusing overflow and trailing bytes.
fn ull(s: &[u8]) -> Option<u64> {
    if let Some(v) = crate::num::parse_i64(s) {
        return u64::try_from(v).ok();
    }
    let mut rest = s;
    while let [b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r', tail @ ..] = rest {
        rest = tail;
    }
    let negative = match rest.first() {
        Some(b'-') => true,
        Some(b'+') => false,
        _ => return digits(rest),
    };
    let v = digits(&rest[1..])?;
    Some(if negative { v.wrapping_neg() } else { v })
}

/// One or more decimal digits and nothing else, without overflow.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |v, &d| v.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_order_step_and_print() {
        assert!(StreamId::new(1, u64::MAX) < StreamId::new(2, 0));
        assert_eq!(StreamId::new(1, u64::MAX).next(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.next(), None);
        assert_eq!(StreamId::new(2, 0).prev(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::MIN.prev(), None);
        assert_eq!(StreamId::new(5, 7).to_string(), "5-7");
        assert_eq!(StreamId::from_be(&StreamId::new(5, 7).to_be()), Some(StreamId::new(5, 7)));
    }

    #[test]
    fn parses_as_redis() {
        assert_eq!(parse(b"12"), Some(Written { ms: 12, seq: None, any_seq: false }));
        assert_eq!(parse(b"12-3"), Some(Written { ms: 12, seq: Some(3), any_seq: false }));
        assert_eq!(parse(b"12-*"), Some(Written { ms: 12, seq: None, any_seq: true }));
        // strtoull's leniency, as Redis's string2ull falls back to it.
        assert_eq!(parse(b"+1-007"), Some(Written { ms: 1, seq: Some(7), any_seq: false }));
        assert_eq!(parse(b" 1"), Some(Written { ms: 1, seq: None, any_seq: false }));
        assert_eq!(parse(b"1--05").and_then(|w| w.seq), Some(5u64.wrapping_neg()));
        for bad in [&b""[..], b"-1", b"1-", b"a-1", b"1-2-3", b"18446744073709551616", b"1--5", b"1 "] {
            assert_eq!(parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
