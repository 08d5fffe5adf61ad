//! Redis's RDB serialization of values: what DUMP and RESTORE carry, and what a `dump.rdb`
//! holds for each key. Written as Redis 7.0 writes it (RDB version 10, its encodings for each
//! type at their default size limits); read in every encoding Redis 7.0 and 7.2 write or still
//! load (plain, ziplist, zipmap, intset, quicklist 1 and 2, listpack). Every length, offset and
//! checksum is checked: bad input is an [`RdbError`] naming where it went wrong, never a panic.
//!
//! Pure data: no I/O here; callers hand in bytes and take bytes.

pub(crate) mod crc64;
pub(crate) mod file;
mod intset;
pub(crate) mod listpack;
mod lzf;
mod stream;
mod ziplist;

use bytes::Bytes;

use crate::num::{d2string, parse_i64, strtod};
use crate::storage::db::Value;
use crate::storage::dict::{Dict, Key};
use crate::storage::list::List;
use crate::storage::zset::ZSet;

/// The RDB version ferrokey writes: Redis 7.0's.
pub(crate) const VERSION: u16 = 10;
/// The newest RDB version ferrokey reads: Redis 7.2's.
pub(crate) const MAX_VERSION: u16 = 11;

/// Value types, as `rdb.h` numbers them.
pub(crate) mod kind {
    pub(crate) const STRING: u8 = 0;
    pub(crate) const LIST: u8 = 1;
    pub(crate) const SET: u8 = 2;
    pub(crate) const ZSET: u8 = 3;
    pub(crate) const HASH: u8 = 4;
    pub(crate) const ZSET_2: u8 = 5;
    pub(crate) const MODULE: u8 = 6;
    pub(crate) const MODULE_2: u8 = 7;
    pub(crate) const HASH_ZIPMAP: u8 = 9;
    pub(crate) const LIST_ZIPLIST: u8 = 10;
    pub(crate) const SET_INTSET: u8 = 11;
    pub(crate) const ZSET_ZIPLIST: u8 = 12;
    pub(crate) const HASH_ZIPLIST: u8 = 13;
    pub(crate) const LIST_QUICKLIST: u8 = 14;
    pub(crate) const STREAM_LISTPACKS: u8 = 15;
    pub(crate) const HASH_LISTPACK: u8 = 16;
    pub(crate) const ZSET_LISTPACK: u8 = 17;
    pub(crate) const LIST_QUICKLIST_2: u8 = 18;
    pub(crate) const STREAM_LISTPACKS_2: u8 = 19;
    pub(crate) const SET_LISTPACK: u8 = 20;
    pub(crate) const STREAM_LISTPACKS_3: u8 = 21;
}

/// The bytes of one list node Redis's `list-max-listpack-size -2` allows (the small encodings
/// of the other types follow the configured thresholds, [`encoding`]).
const LIST_NODE_BYTES: usize = 8 * 1024;

/// Special string encodings (the length byte's top bits are `11`).
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Quicklist 2 node containers.
const NODE_PLAIN: u64 = 1;
const NODE_PACKED: u64 = 2;

/// Why RDB data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum RdbError {
    /// The data ends in the middle of something.
    #[error("unexpected end of data at offset {0}")]
    Truncated(usize),
    /// Something read is not valid where it stands.
    #[error("invalid {what} at offset {at}")]
    Invalid {
        /// What was being read.
        what: &'static str,
        /// Where it starts.
        at: usize,
    },
    /// A value type Redis has and ferrokey does not (yet).
    #[error("value type {code} ({name}) at offset {at} is not supported")]
    Unsupported {
        /// The type byte.
        code: u8,
        /// Its name in Redis.
        name: &'static str,
        /// Where it was found.
        at: usize,
    },
    /// A value type no Redis version writes.
    #[error("unknown value type {code} at offset {at}")]
    UnknownType {
        /// The type byte.
        code: u8,
        /// Where it was found.
        at: usize,
    },
}

/// Why RESTORE refused a payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PayloadError {
    /// Too short, from a newer RDB version, or its checksum does not match.
    Footer,
    /// The value inside does not read.
    Data(RdbError),
}

// ---------------------------------------------------------------------------------------------
// Writing

/// Appends an RDB length.
pub(crate) fn write_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// Appends a string as Redis's `rdbSaveRawString` does: as an integer when it reads back as
/// the same text and fits 32 bits, LZF-compressed when `compress` and that saves space, raw
/// otherwise.
pub(crate) fn write_string(out: &mut Vec<u8>, s: &[u8], compress: bool) {
    if s.len() <= 11 {
        if let Some(v) = parse_i64(s) {
            if let Ok(v) = i8::try_from(v) {
                out.extend_from_slice(&[0xc0 | ENC_INT8, v as u8]);
                return;
            }
            if let Ok(v) = i16::try_from(v) {
                out.push(0xc0 | ENC_INT16);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
            if let Ok(v) = i32::try_from(v) {
                out.push(0xc0 | ENC_INT32);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
        }
    }
    if compress && s.len() > 20 {
        if let Some(packed) = lzf::compress(s, s.len() - 4) {
            out.push(0xc0 | ENC_LZF);
            write_len(out, packed.len() as u64);
            write_len(out, s.len() as u64);
            out.extend_from_slice(&packed);
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A list as the listpack nodes of the quicklist Redis would hold it in (each up to 8 KiB, the
/// default `list-max-listpack-size -2`): what a dump writes and DEBUG OBJECT describes.
#[must_use]
pub(crate) fn list_nodes(list: &crate::storage::list::List) -> Vec<Vec<u8>> {
    let mut nodes = Vec::new();
    let mut node = listpack::Builder::new();
    for e in list.iter() {
        if node.len() > 0 && node.bytes() + e.len() + 11 > LIST_NODE_BYTES {
            nodes.push(std::mem::replace(&mut node, listpack::Builder::new()).finish());
        }
        node.push(e);
    }
    if node.len() > 0 {
        nodes.push(node.finish());
    }
    nodes
}

/// Appends a value's type byte and its serialization, in the encoding Redis 7.0 would hold it
/// in (a hash or set as its writes made it, a sorted set as ferrokey holds it).
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value, compress: bool) {
    match value {
        Value::Str(s, ..) => {
            out.push(kind::STRING);
            write_string(out, s.as_slice(), compress);
        }
        Value::List(list, ..) => {
            out.push(kind::LIST_QUICKLIST_2);
            let nodes = list_nodes(list);
            write_len(out, nodes.len() as u64);
            for lp in nodes {
                write_len(out, NODE_PACKED);
                write_string(out, &lp, compress);
            }
        }
        Value::Set(set, ..) => {
            let ints: Option<Vec<i64>> =
                (!set.is_table()).then(|| set.iter().map(|(m, ())| parse_i64(m)).collect()).flatten();
            match ints {
                Some(mut ints) => {
                    ints.sort_unstable();
                    out.push(kind::SET_INTSET);
                    write_string(out, &intset::encode(&ints), compress);
                }
                None => {
                    out.push(kind::SET);
                    write_len(out, set.len() as u64);
                    set.iter().for_each(|(m, ())| write_string(out, m, compress));
                }
            }
        }
        Value::Hash(hash, ..) => {
            if !hash.is_table() {
                let mut lp = listpack::Builder::new();
                for (f, v) in hash.iter() {
                    lp.push(f);
                    lp.push(v.as_slice());
                }
                out.push(kind::HASH_LISTPACK);
                write_string(out, &lp.finish(), compress);
            } else {
                out.push(kind::HASH);
                write_len(out, hash.len() as u64);
                for (f, v) in hash.iter() {
                    write_string(out, f, compress);
                    write_string(out, v.as_slice(), compress);
                }
            }
        }
        Value::ZSet(z, ..) => {
            if z.is_small() {
                let mut lp = listpack::Builder::new();
                for (m, score) in z.slices_from(0, false) {
                    lp.push(m);
                    lp.push(d2string(score).as_bytes());
                }
                out.push(kind::ZSET_LISTPACK);
                write_string(out, &lp.finish(), compress);
            } else {
                // Greatest first, as Redis saves its skiplist (each load then inserts at the head).
                out.push(kind::ZSET_2);
                write_len(out, z.len() as u64);
                for (m, score) in z.slices_from(0, true) {
                    write_string(out, m, compress);
                    out.extend_from_slice(&score.to_le_bytes());
                }
            }
        }
        Value::Stream(s, ..) => {
            out.push(kind::STREAM_LISTPACKS_2);
            stream::write(out, s, compress);
        }
    }
}

/// A DUMP payload: the value as RDB writes it, the RDB version (2 bytes LE), then the CRC-64 of
/// all that (8 bytes LE).
#[must_use]
pub(crate) fn dump(value: &Value, compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    write_value(&mut out, value, compress);
    framed(out)
}

/// `body` as a payload: followed by the RDB version and the CRC-64 of both (DUMP, FUNCTION
/// DUMP).
#[must_use]
pub(crate) fn framed(mut body: Vec<u8>) -> Vec<u8> {
    body.extend_from_slice(&VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

/// The body of a payload whose RDB version ferrokey reads and whose checksum is right.
///
/// # Errors
/// [`PayloadError::Footer`] otherwise.
pub(crate) fn unframed(payload: &[u8]) -> Result<&[u8], PayloadError> {
    if payload.len() < 10 {
        return Err(PayloadError::Footer);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    let crc = u64::from_le_bytes(footer[2..].try_into().map_err(|_| PayloadError::Footer)?);
    if version > MAX_VERSION || crc64::crc64(0, &payload[..payload.len() - 8]) != crc {
        return Err(PayloadError::Footer);
    }
    Ok(body)
}

/// Reads a DUMP payload (Redis's or ferrokey's, RDB version up to [`MAX_VERSION`]).
///
/// # Errors
/// [`PayloadError::Footer`] when the version or checksum is wrong, [`PayloadError::Data`] when
/// the value does not read.
pub(crate) fn restore(payload: &[u8]) -> Result<Value, PayloadError> {
    let mut r = Reader::new(unframed(payload)?);
    let kind = r.byte().map_err(PayloadError::Data)?;
    r.value(kind).map_err(PayloadError::Data)
}

// ---------------------------------------------------------------------------------------------
// Reading

/// A length, or the marker of a specially encoded string.
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// Reads RDB data front to back, knowing its offset for error messages.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `data`.
    #[must_use]
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    /// Whether every byte has been read.
    #[must_use]
    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// Where the next read starts.
    #[must_use]
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The next byte.
    pub(crate) fn byte(&mut self) -> Result<u8, RdbError> {
        let b = *self.data.get(self.pos).ok_or(RdbError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        let end =
            self.pos.checked_add(n).filter(|&e| e <= self.data.len()).ok_or(RdbError::Truncated(self.pos))?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RdbError> {
        let at = self.pos;
        self.take(N)?.try_into().map_err(|_| RdbError::Truncated(at))
    }

    fn len_or_encoding(&mut self) -> Result<Len, RdbError> {
        let at = self.pos;
        let b = self.byte()?;
        Ok(match b >> 6 {
            0 => Len::Plain(u64::from(b & 0x3f)),
            1 => Len::Plain(u64::from(b & 0x3f) << 8 | u64::from(self.byte()?)),
            2 => match b {
                0x80 => Len::Plain(u64::from(u32::from_be_bytes(self.array()?))),
                0x81 => Len::Plain(u64::from_be_bytes(self.array()?)),
                _ => return Err(invalid("length", at)),
            },
            _ => Len::Encoded(b & 0x3f),
        })
    }

    /// A length.
    pub(crate) fn len(&mut self) -> Result<u64, RdbError> {
        let at = self.pos;
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(invalid("length", at)),
        }
    }

    /// A length that counts things still to read (each at least one byte): bounded by what is
    /// left, so a corrupt count cannot make a huge allocation.
    fn count(&mut self) -> Result<usize, RdbError> {
        let at = self.pos;
        let n = self.len()?;
        usize::try_from(n).ok().filter(|&n| n <= self.data.len() - self.pos).ok_or(RdbError::Truncated(at))
    }

    /// A string, in any of its encodings.
    pub(crate) fn string(&mut self) -> Result<Bytes, RdbError> {
        let at = self.pos;
        match self.len_or_encoding()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| RdbError::Truncated(at))?;
                Ok(Bytes::copy_from_slice(self.take(n)?))
            }
            Len::Encoded(ENC_INT8) => Ok(Bytes::from(i64::from(self.byte()? as i8).to_string())),
            Len::Encoded(ENC_INT16) => Ok(Bytes::from(i16::from_le_bytes(self.array()?).to_string())),
            Len::Encoded(ENC_INT32) => Ok(Bytes::from(i32::from_le_bytes(self.array()?).to_string())),
            Len::Encoded(ENC_LZF) => {
                let packed = usize::try_from(self.len()?).map_err(|_| RdbError::Truncated(at))?;
                let len = usize::try_from(self.len()?).map_err(|_| RdbError::Truncated(at))?;
                // LZF expands at most ~1:100 here; a larger claim is corrupt, not a reason to
                // allocate it.
                if len > packed.saturating_mul(128).saturating_add(64) {
                    return Err(invalid("compressed string length", at));
                }
                let data = self.take(packed)?;
                lzf::decompress(data, len).map(Bytes::from).ok_or(invalid("compressed string", at))
            }
            Len::Encoded(_) => Err(invalid("string encoding", at)),
        }
    }

    /// Skips a string in any of its encodings, without decoding it.
    fn skip_string(&mut self) -> Result<(), RdbError> {
        let at = self.pos;
        match self.len_or_encoding()? {
            Len::Plain(n) => {
                self.take(usize::try_from(n).map_err(|_| RdbError::Truncated(at))?)?;
            }
            Len::Encoded(ENC_INT8) => {
                self.take(1)?;
            }
            Len::Encoded(ENC_INT16) => {
                self.take(2)?;
            }
            Len::Encoded(ENC_INT32) => {
                self.take(4)?;
            }
            Len::Encoded(ENC_LZF) => {
                let packed = usize::try_from(self.len()?).map_err(|_| RdbError::Truncated(at))?;
                self.len()?;
                self.take(packed)?;
            }
            Len::Encoded(_) => return Err(invalid("string encoding", at)),
        }
        Ok(())
    }

    /// Skips the value of type `kind` without decoding it, and returns its bytes: a load frames
    /// values on one thread and decodes them on the cores that own them. A type ferrokey cannot
    /// hold (a module's) is refused here, at once.
    pub(crate) fn skip_value(&mut self, kind: u8) -> Result<&'a [u8], RdbError> {
        let at = self.pos;
        match kind {
            kind::STRING
            | kind::LIST_ZIPLIST
            | kind::SET_INTSET
            | kind::SET_LISTPACK
            | kind::HASH_ZIPMAP
            | kind::HASH_ZIPLIST
            | kind::HASH_LISTPACK
            | kind::ZSET_ZIPLIST
            | kind::ZSET_LISTPACK => self.skip_string()?,
            kind::LIST | kind::SET => {
                for _ in 0..self.count()? {
                    self.skip_string()?;
                }
            }
            kind::HASH => {
                for _ in 0..self.count()? {
                    self.skip_string()?;
                    self.skip_string()?;
                }
            }
            kind::LIST_QUICKLIST | kind::LIST_QUICKLIST_2 => {
                for _ in 0..self.count()? {
                    if kind == kind::LIST_QUICKLIST_2 {
                        self.len()?;
                    }
                    self.skip_string()?;
                }
            }
            kind::ZSET | kind::ZSET_2 => {
                for _ in 0..self.count()? {
                    self.skip_string()?;
                    if kind == kind::ZSET_2 {
                        self.take(8)?;
                    } else {
                        match self.byte()? {
                            253..=255 => {}
                            n => {
                                self.take(usize::from(n))?;
                            }
                        }
                    }
                }
            }
            kind::MODULE | kind::MODULE_2 => {
                return Err(RdbError::Unsupported { code: kind, name: "module", at })
            }
            kind::STREAM_LISTPACKS | kind::STREAM_LISTPACKS_2 | kind::STREAM_LISTPACKS_3 => {
                // Read whole: its parts' lengths depend on what it holds.
                stream::read(self, kind)?;
            }
            code => return Err(RdbError::UnknownType { code, at }),
        }
        Ok(&self.data[at..self.pos])
    }

    /// A double written as text with a length byte (253 NaN, 254 +inf, 255 -inf).
    fn text_double(&mut self) -> Result<f64, RdbError> {
        let at = self.pos;
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let text = self.take(usize::from(n))?;
                strtod(text).map(|(d, _)| d).ok_or(invalid("double", at))
            }
        }
    }

    /// The value of type `kind` (the byte before it).
    pub(crate) fn value(&mut self, kind: u8) -> Result<Value, RdbError> {
        let at = self.pos;
        let blob_elements = |r: &mut Reader<'_>, decode: fn(&[u8]) -> Option<Vec<Bytes>>, what| {
            let blob = r.string()?;
            decode(&blob).ok_or(RdbError::Invalid { what, at })
        };
        match kind {
            kind::STRING => Ok(Value::string(Key::new(self.string()?))),
            kind::LIST => {
                let n = self.count()?;
                let items = (0..n).map(|_| self.string()).collect::<Result<Vec<_>, _>>()?;
                list(items, at)
            }
            kind::LIST_ZIPLIST => list(blob_elements(self, ziplist::decode, "ziplist")?, at),
            kind::LIST_QUICKLIST | kind::LIST_QUICKLIST_2 => {
                let nodes = self.count()?;
                let mut items = Vec::new();
                for _ in 0..nodes {
                    let node_at = self.pos;
                    let container = if kind == kind::LIST_QUICKLIST_2 { self.len()? } else { NODE_PACKED };
                    match container {
                        NODE_PLAIN => items.push(self.string()?),
                        NODE_PACKED => {
                            let blob = self.string()?;
                            let decoded = if kind == kind::LIST_QUICKLIST {
                                ziplist::decode(&blob)
                            } else {
                                listpack::decode(&blob)
                            };
                            let elements =
                                decoded.ok_or(RdbError::Invalid { what: "list node", at: node_at })?;
                            // Redis skips empty nodes when loading.
                            items.extend(elements);
                        }
                        _ => return Err(invalid("quicklist container", node_at)),
                    }
                }
                list(items, at)
            }
            kind::SET => {
                let n = self.count()?;
                let items = (0..n).map(|_| self.string()).collect::<Result<Vec<_>, _>>()?;
                set(items, at)
            }
            kind::SET_INTSET => {
                let blob = self.string()?;
                let ints = intset::decode(&blob).ok_or(invalid("intset", at))?;
                set(ints.into_iter().map(|i| Bytes::from(i.to_string())).collect(), at)
            }
            kind::SET_LISTPACK => set(blob_elements(self, listpack::decode, "listpack")?, at),
            kind::HASH => {
                let n = self.count()?;
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(self.string()?);
                    items.push(self.string()?);
                }
                hash(items, at)
            }
            kind::HASH_ZIPMAP => hash(blob_elements(self, ziplist::decode_zipmap, "zipmap")?, at),
            kind::HASH_ZIPLIST => hash(blob_elements(self, ziplist::decode, "ziplist")?, at),
            kind::HASH_LISTPACK => hash(blob_elements(self, listpack::decode, "listpack")?, at),
            kind::ZSET | kind::ZSET_2 => {
                let n = self.count()?;
                let mut items = Vec::new();
                for _ in 0..n {
                    let member = self.string()?;
                    let score = if kind == kind::ZSET_2 {
                        f64::from_le_bytes(self.array()?)
                    } else {
                        self.text_double()?
                    };
                    items.push((member, score));
                }
                zset(items, at)
            }
            kind::ZSET_ZIPLIST | kind::ZSET_LISTPACK => {
                let decode = if kind == kind::ZSET_ZIPLIST { ziplist::decode } else { listpack::decode };
                let elements = blob_elements(self, decode, "packed sorted set")?;
                if elements.len() % 2 != 0 {
                    return Err(invalid("packed sorted set", at));
                }
                let mut items = Vec::with_capacity(elements.len() / 2);
                for pair in elements.chunks_exact(2) {
                    let score = strtod(&pair[1]).map(|(d, _)| d).ok_or(invalid("score", at))?;
                    items.push((pair[0].clone(), score));
                }
                zset(items, at)
            }
            kind::MODULE | kind::MODULE_2 => Err(RdbError::Unsupported { code: kind, name: "module", at }),
            kind::STREAM_LISTPACKS | kind::STREAM_LISTPACKS_2 | kind::STREAM_LISTPACKS_3 => {
                Ok(Value::stream(Box::new(stream::read(self, kind)?)))
            }
            code => Err(RdbError::UnknownType { code, at }),
        }
    }
}

fn invalid(what: &'static str, at: usize) -> RdbError {
    RdbError::Invalid { what, at }
}

fn list(items: Vec<Bytes>, at: usize) -> Result<Value, RdbError> {
    if items.is_empty() {
        return Err(RdbError::Invalid { what: "empty list", at });
    }
    let mut list = List::default();
    items.iter().for_each(|e| list.push_back(e));
    Ok(Value::list(Box::new(list)))
}

fn set(items: Vec<Bytes>, at: usize) -> Result<Value, RdbError> {
    if items.is_empty() {
        return Err(RdbError::Invalid { what: "empty set", at });
    }
    let mut set = Dict::new();
    for m in items {
        if set.insert(m, ()).is_some() {
            return Err(RdbError::Invalid { what: "set (duplicate member)", at });
        }
    }
    Ok(Value::set(Box::new(set)))
}

fn hash(items: Vec<Bytes>, at: usize) -> Result<Value, RdbError> {
    if items.is_empty() || items.len() % 2 != 0 {
        return Err(RdbError::Invalid { what: "hash", at });
    }
    let mut hash = Dict::new();
    let mut it = items.into_iter();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        if hash.insert(f, Key::new(v)).is_some() {
            return Err(RdbError::Invalid { what: "hash (duplicate field)", at });
        }
    }
    Ok(Value::hash(Box::new(hash)))
}

fn zset(items: Vec<(Bytes, f64)>, at: usize) -> Result<Value, RdbError> {
    if items.is_empty() {
        return Err(RdbError::Invalid { what: "empty sorted set", at });
    }
    let mut seen = Dict::new();
    for (m, score) in &items {
        if score.is_nan() {
            return Err(RdbError::Invalid { what: "sorted set (NaN score)", at });
        }
        if seen.insert(m.clone(), ()).is_some() {
            return Err(RdbError::Invalid { what: "sorted set (duplicate member)", at });
        }
    }
    Ok(Value::zset(items.into_iter().collect::<ZSet>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> Vec<Value> {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let mut long_list = List::default();
        (0..3000).for_each(|i| long_list.push_back(format!("element-{i}").as_bytes()));
        let mut short_list = List::default();
        ["a", "1", "-70000", ""].iter().for_each(|e| short_list.push_back(e.as_bytes()));
        let mut stream = crate::storage::stream::Stream::new();
        for i in 1..=250u64 {
            let id = crate::storage::stream::StreamId::new(1000 + i / 3, i % 3);
            let pairs = if i % 7 == 0 {
                vec![b("other"), b(&i.to_string())]
            } else {
                vec![b("f"), b("v"), b("n"), b(&i.to_string())]
            };
            stream.append(id, &pairs, crate::storage::stream::NodeLimits::default());
        }
        stream.delete(crate::storage::stream::StreamId::new(1001, 0));
        let mut g = crate::storage::stream::Group::new(crate::storage::stream::StreamId::new(1010, 0), 30);
        let alice = b("alice");
        g.consumer(&alice, 5);
        g.deliver_new(crate::storage::stream::StreamId::new(1002, 1), &alice, 7);
        stream.groups.insert(b("g"), g);
        vec![
            Value::string(Key::new(b("hello"))),
            Value::string(Key::new(b("12345"))),
            Value::string(Key::new(b("-129"))),
            Value::string(Key::new(b("3000000000"))),
            Value::string(Key::new(Bytes::from("x".repeat(500)))),
            Value::list(Box::new(short_list)),
            Value::list(Box::new(long_list)),
            Value::set(Box::new((0..100).map(|i| (b(&(i * 7 - 300).to_string()), ())).collect())),
            Value::set(Box::new((0..600).map(|i| (b(&i.to_string()), ())).collect())),
            Value::set(Box::new(["a", "b", "1"].iter().map(|m| (b(m), ())).collect())),
            Value::hash(Box::new(
                (0..10).map(|i| (b(&format!("f{i}")), Key::new(b(&i.to_string())))).collect(),
            )),
            Value::hash(Box::new((0..600).map(|i| (b(&format!("f{i}")), Key::new(b("v")))).collect())),
            Value::zset((0..10).map(|i| (b(&format!("m{i}")), f64::from(i) * 1.5 - 3.0)).collect()),
            Value::zset((0..300).map(|i| (b(&format!("m{i}")), f64::from(i) / 7.0)).collect()),
            Value::zset(
                [("inf", f64::INFINITY), ("ninf", f64::NEG_INFINITY), ("z", -0.0)]
                    .iter()
                    .map(|(m, s)| (b(m), *s))
                    .collect(),
            ),
            Value::stream(Box::new(stream)),
            Value::stream(Box::new(crate::storage::stream::Stream::new())),
        ]
    }

    /// What a value holds, comparable.
    fn contents(v: &Value) -> (String, Vec<String>) {
        let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match v {
            Value::Str(k, ..) => ("string".into(), vec![s(k.as_slice())]),
            Value::List(l, ..) => ("list".into(), l.iter().map(s).collect()),
            Value::Set(set, ..) => {
                let mut m: Vec<String> = set.iter().map(|(m, ())| s(m)).collect();
                m.sort();
                ("set".into(), m)
            }
            Value::Hash(h, ..) => {
                let mut m: Vec<String> =
                    h.iter().map(|(f, v)| format!("{}={}", s(f), s(v.as_slice()))).collect();
                m.sort();
                ("hash".into(), m)
            }
            Value::ZSet(z, ..) => {
                ("zset".into(), z.slices_from(0, false).map(|(m, sc)| format!("{}={sc}", s(m))).collect())
            }
            Value::Stream(x, ..) => {
                let mut all: Vec<String> = x
                    .range(crate::storage::stream::StreamId::MIN, crate::storage::stream::StreamId::MAX)
                    .map(|e| format!("{} {:?}", e.id, e.pairs.map(|(f, v)| (s(f), s(v))).collect::<Vec<_>>()))
                    .collect();
                all.push(format!(
                    "{} {} {} {} {}",
                    x.len(),
                    x.last_id,
                    x.first_id,
                    x.max_deleted,
                    x.entries_added
                ));
                all.push(format!("{:?}", x.groups));
                ("stream".into(), all)
            }
        }
    }

    #[test]
    fn every_type_round_trips_through_dump_and_restore() {
        for v in values() {
            for compress in [false, true] {
                let payload = dump(&v, compress);
                let back = restore(&payload).unwrap_or_else(|e| panic!("{:?}: {e:?}", contents(&v)));
                assert_eq!(contents(&back), contents(&v));
            }
        }
    }

    #[test]
    fn encodings_follow_redis_limits() {
        let kinds: Vec<u8> = values().iter().map(|v| dump(v, true)[0]).collect();
        assert_eq!(
            kinds,
            [
                kind::STRING,
                kind::STRING,
                kind::STRING,
                kind::STRING,
                kind::STRING,
                kind::LIST_QUICKLIST_2,
                kind::LIST_QUICKLIST_2,
                kind::SET_INTSET,
                kind::SET,
                kind::SET,
                kind::HASH_LISTPACK,
                kind::HASH,
                kind::ZSET_LISTPACK,
                kind::ZSET_2,
                kind::ZSET_LISTPACK,
                kind::STREAM_LISTPACKS_2,
                kind::STREAM_LISTPACKS_2,
            ]
        );
        // Integers as Redis encodes them: "12345" is an INT16, "3000000000" stays text.
        assert_eq!(&dump(&values()[1], true)[1..4], &[0xc1, 0x39, 0x30]);
        assert_eq!(dump(&values()[3], true)[1], 10);
        // A long repetitive string is LZF-compressed.
        assert_eq!(dump(&values()[4], true)[1], 0xc3);
    }

    #[test]
    fn corrupt_payloads_are_refused_never_a_panic() {
        let payload = dump(&values()[13], false);
        let mut flipped = payload.clone();
        flipped[20] ^= 1;
        assert_eq!(restore(&flipped).err(), Some(PayloadError::Footer), "checksum");
        let mut newer = payload.clone();
        let n = newer.len();
        newer[n - 10] = 12;
        assert_eq!(restore(&newer).err(), Some(PayloadError::Footer), "version");
        // With a valid footer over corrupt bodies: every truncation and byte flip reads or is
        // refused.
        let refooter = |body: &[u8]| {
            let mut p = body.to_vec();
            p.extend_from_slice(&VERSION.to_le_bytes());
            let crc = crc64::crc64(0, &p);
            p.extend_from_slice(&crc.to_le_bytes());
            p
        };
        for v in values() {
            let body = &dump(&v, true)[..];
            let body = &body[..body.len() - 10];
            for cut in 0..body.len().min(200) {
                assert!(restore(&refooter(&body[..cut])).is_err());
            }
            let mut x = 7u64;
            for _ in 0..300 {
                x = crate::num::mix(x);
                let mut bad = body.to_vec();
                let i = (x as usize) % bad.len();
                bad[i] ^= (x >> 32) as u8 | 1;
                let _ = restore(&refooter(&bad));
            }
        }
        assert!(matches!(
            restore(&refooter(&[kind::MODULE_2, 0])),
            Err(PayloadError::Data(RdbError::Unsupported { name: "module", .. }))
        ));
    }
}
