//! The RDB file around the values: the `REDIS0010` header, aux fields, each database's
//! SELECTDB and RESIZEDB, each key with its expiry, then EOF and the CRC-64 of everything
//! before the checksum (0 when `rdbchecksum no`).
//!
//! Writing is a few byte builders the caller strings together (shards serialize their own keys;
//! one writer assembles the file and keeps the running checksum). Reading streams any
//! [`std::io::Read`] item by item, so a file larger than memory never sits in one buffer.

use std::io::Read;

use bytes::Bytes;

use super::{crc64, write_len, write_string, write_value, RdbError, Reader, MAX_VERSION, VERSION};
use crate::storage::db::Value;

/// Opcodes between entries, as `rdb.h` numbers them.
pub(crate) mod opcode {
    pub(crate) const FUNCTION2: u8 = 245;
    pub(crate) const FUNCTION: u8 = 246;
    pub(crate) const MODULE_AUX: u8 = 247;
    pub(crate) const IDLE: u8 = 248;
    pub(crate) const FREQ: u8 = 249;
    pub(crate) const AUX: u8 = 250;
    pub(crate) const RESIZEDB: u8 = 251;
    pub(crate) const EXPIRETIME_MS: u8 = 252;
    pub(crate) const EXPIRETIME: u8 = 253;
    pub(crate) const SELECTDB: u8 = 254;
    pub(crate) const EOF: u8 = 255;
}

/// The header and the aux fields Redis writes (`redis-ver`, `redis-bits`, `ctime`, `used-mem`,
/// `aof-base`); integers as Redis writes them, integer-encoded.
#[must_use]
pub(crate) fn header(aux: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = format!("REDIS{VERSION:04}").into_bytes();
    for (key, value) in aux {
        out.push(opcode::AUX);
        write_string(&mut out, key.as_bytes(), false);
        write_string(&mut out, value, false);
    }
    out
}

/// A database's start: SELECTDB, and RESIZEDB with its key and expiry counts.
#[must_use]
pub(crate) fn select_db(db: usize, keys: u64, expires: u64) -> Vec<u8> {
    let mut out = vec![opcode::SELECTDB];
    write_len(&mut out, db as u64);
    out.push(opcode::RESIZEDB);
    write_len(&mut out, keys);
    write_len(&mut out, expires);
    out
}

/// Appends one function library (Redis 7.0's `RDB_OPCODE_FUNCTION2`): its code, shebang
/// included, as one string.
pub(crate) fn function(out: &mut Vec<u8>, code: &[u8], compress: bool) {
    out.push(opcode::FUNCTION2);
    write_string(out, code, compress);
}

/// Appends one key: its expiry (absolute, in ms) if any, its type, the key, the value.
pub(crate) fn entry(out: &mut Vec<u8>, key: &[u8], value: &Value, expires_at: Option<u64>, compress: bool) {
    if let Some(at) = expires_at {
        out.push(opcode::EXPIRETIME_MS);
        out.extend_from_slice(&at.to_le_bytes());
    }
    // The type byte comes first, then the key, then the value: split `write_value`'s output.
    let mut value_bytes = Vec::new();
    write_value(&mut value_bytes, value, compress);
    out.push(value_bytes[0]);
    write_string(out, key, compress);
    out.extend_from_slice(&value_bytes[1..]);
}

/// The end: EOF, then the checksum of every byte before it and of EOF itself (`crc` covers what
/// came before), or 0 when checksums are off.
#[must_use]
pub(crate) fn trailer(crc: u64, checksum: bool) -> Vec<u8> {
    let crc = crc64::crc64(crc, &[opcode::EOF]);
    let mut out = vec![opcode::EOF];
    out.extend_from_slice(&(if checksum { crc } else { 0 }).to_le_bytes());
    out
}

/// One thing an RDB file holds, in file order.
pub(crate) enum Item {
    /// An aux field (`redis-ver`, `ctime`, ...).
    Aux(Bytes, Bytes),
    /// The database the following keys belong to.
    SelectDb(u64),
    /// A function library's code (shebang included).
    Function(Bytes),
    /// A key with its value and absolute expiry (ms).
    Entry {
        /// The key.
        key: Bytes,
        /// Its value, framed, to be decoded where it will live.
        value: Packed,
        /// When it expires, if it does.
        expires_at: Option<u64>,
    },
}

/// A value as the file holds it: framed (its extent known, its type one ferrokey holds) but not
/// decoded. A load frames values on one thread and decodes them on the cores that own them.
#[derive(Debug, Clone)]
pub(crate) struct Packed {
    /// Its type byte.
    pub(crate) kind: u8,
    /// Its bytes.
    pub(crate) bytes: Bytes,
    /// Where they start in the file, for errors.
    pub(crate) offset: u64,
}

impl Packed {
    /// Decodes the value.
    ///
    /// # Errors
    /// Content that does not decode, with its offset in the file.
    pub(crate) fn decode(&self) -> Result<Value, RdbError> {
        let mut r = Reader::new(&self.bytes);
        let value = r.value(self.kind).map_err(|e| e.shifted(self.offset))?;
        if r.pos != self.bytes.len() {
            return Err(RdbError::Invalid { what: "value length", at: r.pos }.shifted(self.offset));
        }
        Ok(value)
    }
}

/// Why an RDB file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum LoadError {
    /// Reading the file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Not an RDB file.
    #[error("Wrong signature trying to load DB from file")]
    NotRdb,
    /// From a Redis newer than this server reads.
    #[error("Can't handle RDB format version {0}")]
    Version(u16),
    /// The content does not read.
    #[error("{0}")]
    Format(RdbError),
    /// The content read but its checksum does not match.
    #[error("Wrong RDB checksum expected: ({expected:x}) got ({got:x})")]
    Checksum {
        /// What the file says.
        expected: u64,
        /// What its bytes sum to.
        got: u64,
    },
}

/// How much more to read when an item runs past what is buffered.
const CHUNK: usize = 1 << 20;

/// Reads an RDB file item by item.
pub(crate) struct FileReader<R> {
    src: R,
    buf: Vec<u8>,
    /// How much of `buf` has been consumed.
    start: usize,
    /// The file offset of `buf[0]`.
    base: u64,
    /// Whether `src` has no more bytes.
    drained: bool,
    /// The checksum of every consumed byte.
    crc: u64,
    /// The file's RDB version.
    version: u16,
    /// An expiry (or idle/freq hint) read for the next key.
    pending_expiry: Option<u64>,
    done: bool,
}

impl<R: Read> FileReader<R> {
    /// Reads the header of `src`.
    ///
    /// # Errors
    /// A read error, a file that is not RDB, or one from a newer version.
    pub(crate) fn open(src: R) -> Result<FileReader<R>, LoadError> {
        let mut r = FileReader {
            src,
            buf: Vec::new(),
            start: 0,
            base: 0,
            drained: false,
            crc: 0,
            version: 0,
            pending_expiry: None,
            done: false,
        };
        r.fill(9)?;
        let head = r.buf.get(..9).ok_or(LoadError::NotRdb)?;
        if &head[..5] != b"REDIS" {
            return Err(LoadError::NotRdb);
        }
        let version: u16 =
            std::str::from_utf8(&head[5..9]).ok().and_then(|v| v.parse().ok()).ok_or(LoadError::NotRdb)?;
        if !(1..=MAX_VERSION).contains(&version) {
            return Err(LoadError::Version(version));
        }
        r.version = version;
        r.consume(9);
        Ok(r)
    }

    /// The file's RDB version.
    #[must_use]
    pub(crate) fn version(&self) -> u16 {
        self.version
    }

    /// Bytes read so far (for progress).
    #[must_use]
    pub(crate) fn offset(&self) -> u64 {
        self.base + self.start as u64
    }

    /// Makes at least `want` unconsumed bytes available, unless the source ends first.
    fn fill(&mut self, want: usize) -> Result<(), LoadError> {
        if self.start > 0 && self.buf.len() - self.start < want {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.start = 0;
        }
        while self.buf.len() - self.start < want && !self.drained {
            let have = self.buf.len();
            let more = CHUNK.max(want - (have - self.start));
            self.buf.resize(have + more, 0);
            let n = loop {
                match self.src.read(&mut self.buf[have..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.truncate(have);
                        return Err(e.into());
                    }
                }
            };
            self.buf.truncate(have + n);
            self.drained = n == 0;
        }
        Ok(())
    }

    fn consume(&mut self, n: usize) {
        self.crc = crc64::crc64(self.crc, &self.buf[self.start..self.start + n]);
        self.start += n;
    }

    /// The next item; `None` after EOF (whose checksum is checked).
    ///
    /// # Errors
    /// A read error, content that does not read (with its file offset), or a wrong checksum.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>, LoadError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let attempt = {
                let mut r = Reader::new(&self.buf[self.start..]);
                let item = parse_item(&mut r, &mut self.pending_expiry);
                (item, r.pos)
            };
            match attempt {
                (Ok(mut parsed), used) => {
                    if let Parsed::Item(Item::Entry { value, .. }) = &mut parsed {
                        value.offset += self.offset();
                    }
                    self.consume(used);
                    match parsed {
                        Parsed::Item(item) => return Ok(Some(item)),
                        Parsed::Skip => {}
                        Parsed::Eof => return self.checksum().map(|()| None),
                    }
                }
                (Err(RdbError::Truncated(_)), _) if !self.drained => {
                    let want = (self.buf.len() - self.start) * 2 + CHUNK;
                    self.fill(want)?;
                }
                (Err(e), _) => return Err(LoadError::Format(e.shifted(self.offset()))),
            }
        }
    }

    /// After EOF: the 8-byte checksum (from version 5 on); 0 means the writer did not sum.
    fn checksum(&mut self) -> Result<(), LoadError> {
        self.done = true;
        if self.version < 5 {
            return Ok(());
        }
        self.fill(8)?;
        let got = self.crc;
        let stored = self
            .buf
            .get(self.start..self.start + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(LoadError::Format(RdbError::Truncated(self.offset() as usize)))?;
        self.start += 8;
        if stored != 0 && stored != got {
            return Err(LoadError::Checksum { expected: stored, got });
        }
        Ok(())
    }
}

/// What one step of parsing found.
enum Parsed {
    Item(Item),
    /// An opcode that only hints (RESIZEDB, an expiry read for the next key, IDLE, FREQ).
    Skip,
    Eof,
}

fn parse_item(r: &mut Reader<'_>, pending_expiry: &mut Option<u64>) -> Result<Parsed, RdbError> {
    let at = r.pos;
    let op = r.byte()?;
    Ok(match op {
        opcode::EOF => Parsed::Eof,
        opcode::SELECTDB => Parsed::Item(Item::SelectDb(r.len()?)),
        opcode::RESIZEDB => {
            r.len()?;
            r.len()?;
            Parsed::Skip
        }
        opcode::AUX => {
            let key = r.string()?;
            let value = r.string()?;
            Parsed::Item(Item::Aux(key, value))
        }
        opcode::EXPIRETIME_MS => {
            let ms = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| RdbError::Truncated(at))?);
            *pending_expiry = Some(ms);
            Parsed::Skip
        }
        opcode::EXPIRETIME => {
            let secs = u32::from_le_bytes(r.take(4)?.try_into().map_err(|_| RdbError::Truncated(at))?);
            *pending_expiry = Some(u64::from(secs) * 1000);
            Parsed::Skip
        }
        opcode::IDLE => {
            r.len()?;
            Parsed::Skip
        }
        opcode::FREQ => {
            r.byte()?;
            Parsed::Skip
        }
        opcode::MODULE_AUX => return Err(RdbError::Unsupported { code: op, name: "module aux data", at }),
        opcode::FUNCTION2 => Parsed::Item(Item::Function(r.string()?)),
        // Redis 7.0's release candidates wrote functions one by one: no released Redis does.
        opcode::FUNCTION => {
            return Err(RdbError::Unsupported { code: op, name: "pre-GA function format", at })
        }
        kind => {
            let key = r.string()?;
            let offset = r.pos as u64;
            let bytes = Bytes::copy_from_slice(r.skip_value(kind)?);
            let value = Packed { kind, bytes, offset };
            Parsed::Item(Item::Entry { key, value, expires_at: pending_expiry.take() })
        }
    })
}

impl RdbError {
    /// The same error with its offset moved by `base` (from a buffer's start to the file's).
    #[must_use]
    pub(crate) fn shifted(self, base: u64) -> RdbError {
        let b = base as usize;
        match self {
            RdbError::Truncated(at) => RdbError::Truncated(at + b),
            RdbError::Invalid { what, at } => RdbError::Invalid { what, at: at + b },
            RdbError::Unsupported { code, name, at } => RdbError::Unsupported { code, name, at: at + b },
            RdbError::UnknownType { code, at } => RdbError::UnknownType { code, at: at + b },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::dict::Key;

    fn sample_file(checksum: bool) -> Vec<u8> {
        let mut file = header(&[("redis-ver", b"7.0.0"), ("redis-bits", b"64")]);
        function(&mut file, b"#!lua name=lib\nredis.register_function('f', function() return 1 end)", true);
        file.extend(select_db(0, 2, 1));
        entry(&mut file, b"a", &Value::string(Key::new(Bytes::from_static(b"1"))), None, true);
        entry(
            &mut file,
            b"b",
            &Value::string(Key::new(Bytes::from("x".repeat(3000)))),
            Some(1_900_000_000_000),
            true,
        );
        file.extend(select_db(3, 1, 0));
        entry(&mut file, b"c", &Value::string(Key::new(Bytes::from_static(b"v"))), None, true);
        let crc = crc64::crc64(0, &file);
        file.extend(trailer(crc, checksum));
        file
    }

    fn read_all(file: &[u8]) -> Result<Vec<String>, LoadError> {
        let mut r = FileReader::open(file)?;
        let mut out = Vec::new();
        while let Some(item) = r.next_item()? {
            out.push(match item {
                Item::Aux(k, v) => {
                    format!("aux {}={}", String::from_utf8_lossy(&k), String::from_utf8_lossy(&v))
                }
                Item::SelectDb(db) => format!("db {db}"),
                Item::Function(code) => format!("function {}", code.len()),
                Item::Entry { key, expires_at, .. } => {
                    format!("key {} {expires_at:?}", String::from_utf8_lossy(&key))
                }
            });
        }
        Ok(out)
    }

    #[test]
    fn writes_and_reads_a_file() {
        let items = read_all(&sample_file(true)).unwrap();
        assert_eq!(
            items,
            [
                "aux redis-ver=7.0.0",
                "aux redis-bits=64",
                "function 68",
                "db 0",
                "key a None",
                "key b Some(1900000000000)",
                "db 3",
                "key c None"
            ]
        );
        assert!(read_all(&sample_file(false)).is_ok(), "a zero checksum is not checked");
    }

    #[test]
    fn damage_is_an_error_with_its_offset_never_a_panic() {
        let file = sample_file(true);
        let mut flipped = file.clone();
        flipped[40] ^= 0x01;
        assert!(read_all(&flipped).is_err());
        for cut in 0..file.len() {
            assert!(read_all(&file[..cut]).is_err(), "truncated at {cut}");
        }
        assert!(matches!(read_all(b"REDIS0012"), Err(LoadError::Version(12))));
        assert!(matches!(read_all(b"HELLO0010"), Err(LoadError::NotRdb)));
        let mut x = 3u64;
        for _ in 0..2000 {
            x = crate::num::mix(x);
            let mut bad = file.clone();
            let i = 9 + (x as usize) % (bad.len() - 9);
            bad[i] = (x >> 40) as u8;
            let _ = read_all(&bad);
        }
    }
}
