//! Redis 7's multi-part append-only file, as data: the manifest (which files make up the AOF,
//! in Redis's line format), a reader of the commands an AOF file holds (RESP multibulks, as
//! Redis writes them), and the command form of a key (`aof-use-rdb-preamble no`).
//!
//! Nothing here does I/O beyond the reader it is given; a bad file is an error with its
//! offset, never a panic.

use std::io::BufRead;

use bytes::Bytes;

use crate::storage::db::{Entry, Value};

/// Items per command when a key is written as commands (Redis's `AOF_REWRITE_ITEMS_PER_CMD`).
const ITEMS_PER_COMMAND: usize = 64;
/// The longest manifest line Redis reads (`MANIFEST_MAX_LINE`).
const MANIFEST_MAX_LINE: usize = 1024;

/// What a file of the AOF is to the manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileType {
    /// The base: a snapshot, as RDB (`.base.rdb`) or as commands (`.base.aof`).
    Base,
    /// Replaced by a rewrite, waiting to be deleted.
    History,
    /// Commands since the base.
    Incr,
}

impl FileType {
    fn letter(self) -> char {
        match self {
            FileType::Base => 'b',
            FileType::History => 'h',
            FileType::Incr => 'i',
        }
    }
}

/// A file the manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AofFile {
    /// Its name in the AOF directory.
    pub(crate) name: String,
    /// Its sequence number.
    pub(crate) seq: u64,
    /// What it is.
    pub(crate) kind: FileType,
}

/// The manifest: the base, the history files and the incremental files, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The base file, if any.
    pub(crate) base: Option<AofFile>,
    /// Files a rewrite replaced, to delete.
    pub(crate) history: Vec<AofFile>,
    /// Incremental files, oldest first.
    pub(crate) incrs: Vec<AofFile>,
}

/// Why a manifest was refused (Redis's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ManifestError {
    /// A line longer than Redis reads.
    #[error("The AOF manifest file contains too long line")]
    LineTooLong,
    /// A line that is not `file <name> seq <n> type <t>`.
    #[error("Invalid AOF manifest file format")]
    Format,
    /// A name with a path in it.
    #[error("File can't be a path, just a filename")]
    Path,
    /// Two base files.
    #[error("Found duplicate base file information")]
    DuplicateBase,
    /// Incremental files out of order.
    #[error("Found a non-monotonic sequence number")]
    NonMonotonic,
    /// A type letter Redis does not know.
    #[error("Unknown AOF file type")]
    UnknownType,
    /// No line at all.
    #[error("Found an empty AOF manifest")]
    Empty,
}

impl Manifest {
    /// Parses a manifest as Redis 7.0 does (`aofLoadManifestFromFile`); on error, the line
    /// number (1-based, when a line was being parsed) and the reason.
    ///
    /// # Errors
    /// The reasons Redis gives, with the line.
    pub(crate) fn parse(text: &[u8]) -> Result<Manifest, (Option<usize>, ManifestError)> {
        let mut manifest = Manifest::default();
        let mut lines = 0;
        let mut last_incr = 0;
        for (n, raw) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            let at = Some(n + 1);
            if raw.len() > MANIFEST_MAX_LINE || !raw.ends_with(b"\n") && raw.len() == MANIFEST_MAX_LINE {
                return Err((at, ManifestError::LineTooLong));
            }
            lines += 1;
            if raw.first() == Some(&b'#') {
                continue;
            }
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_matches(|c| " \t\r\n".contains(c));
            if line.is_empty() {
                return Err((at, ManifestError::Format));
            }
            let args = crate::splitargs::split(line.as_bytes()).map_err(|_| (at, ManifestError::Format))?;
            if args.len() < 6 || args.len() % 2 != 0 {
                return Err((at, ManifestError::Format));
            }
            let (mut name, mut seq, mut kind) = (None, 0u64, None);
            for pair in args.chunks(2) {
                let key = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                match key.as_str() {
                    "file" => {
                        let file = String::from_utf8_lossy(&pair[1]).into_owned();
                        if file.contains('/') {
                            return Err((at, ManifestError::Path));
                        }
                        name = Some(file);
                    }
                    "seq" => seq = atoll(&pair[1]),
                    "type" => kind = pair[1].first().copied(),
                    _ => {}
                }
            }
            let (Some(name), true, Some(kind)) = (name, seq > 0, kind) else {
                return Err((at, ManifestError::Format));
            };
            match kind {
                b'b' => {
                    if manifest.base.is_some() {
                        return Err((at, ManifestError::DuplicateBase));
                    }
                    manifest.base = Some(AofFile { name, seq, kind: FileType::Base });
                }
                b'h' => manifest.history.push(AofFile { name, seq, kind: FileType::History }),
                b'i' => {
                    if seq <= last_incr {
                        return Err((at, ManifestError::NonMonotonic));
                    }
                    last_incr = seq;
                    manifest.incrs.push(AofFile { name, seq, kind: FileType::Incr });
                }
                _ => return Err((at, ManifestError::UnknownType)),
            }
        }
        if lines == 0 {
            return Err((None, ManifestError::Empty));
        }
        Ok(manifest)
    }

    /// The manifest as Redis writes it: the base, the history files, the incremental files.
    #[must_use]
    pub(crate) fn to_text(&self) -> String {
        let mut out = String::new();
        for f in self.base.iter().chain(&self.history).chain(&self.incrs) {
            let name = if needs_quotes(&f.name) { quoted(&f.name) } else { f.name.clone() };
            out.push_str(&format!("file {name} seq {} type {}\n", f.seq, f.kind.letter()));
        }
        out
    }

    /// The highest sequence number of base files and of incremental files the manifest names
    /// (history included), so that new files never reuse a name.
    #[must_use]
    pub(crate) fn last_seqs(&self) -> (u64, u64) {
        let base = self.base.iter().chain(&self.history).filter(|f| is_base_name(&f.name)).map(|f| f.seq);
        let incr = self.incrs.iter().chain(&self.history).filter(|f| !is_base_name(&f.name)).map(|f| f.seq);
        (base.max().unwrap_or(0), incr.max().unwrap_or(0))
    }
}

fn is_base_name(name: &str) -> bool {
    name.contains(".base.")
}

/// C's `atoll`: leading digits, 0 when none.
fn atoll(text: &[u8]) -> u64 {
    text.iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(0u64, |n, &b| n.saturating_mul(10).saturating_add(u64::from(b - b'0')))
}

/// Whether Redis writes the name quoted (`sdsneedsrepr`).
fn needs_quotes(name: &str) -> bool {
    name.bytes().any(|b| b"\\\"\n\r\t\x07\x08 ".contains(&b) || !(0x20..0x7f).contains(&b))
}

/// The name as `sdscatrepr` writes it.
fn quoted(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    crate::splitargs::repr(name.as_bytes(), &mut out);
    out
}

/// Why reading an AOF's commands stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The file ends inside a command (a crash while writing): the last whole command ends at
    /// `valid_up_to`.
    #[error("short read")]
    Truncated {
        /// Where the last whole command ends.
        valid_up_to: u64,
    },
    /// Bytes that are not RESP commands.
    #[error("Bad file format at offset {offset}")]
    Format {
        /// Where.
        offset: u64,
    },
    /// The reader failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The commands of an AOF file (or of the tail after an RDB preamble), one at a time.
pub(crate) struct CommandReader<R> {
    src: R,
    offset: u64,
    line: Vec<u8>,
    /// Refuses lengths above this (`proto-max-bulk-len`).
    max_bulk: u64,
}

impl<R: BufRead> CommandReader<R> {
    /// Reads commands from `src`, which starts at file offset `offset`.
    pub(crate) fn new(src: R, offset: u64, max_bulk: u64) -> CommandReader<R> {
        CommandReader { src, offset, line: Vec::new(), max_bulk }
    }

    /// The offset after the last command read.
    #[must_use]
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The next command, `None` at a clean end of file. `#` lines (annotations) are skipped.
    ///
    /// # Errors
    /// A command cut short by the end of the file, bytes that are not a command, or I/O.
    pub(crate) fn next_command(&mut self) -> Result<Option<Vec<Bytes>>, ReadError> {
        let start = self.offset;
        let mut pos = start;
        loop {
            let Some(line) = self.read_line(&mut pos, start)? else { return Ok(None) };
            if line.first() == Some(&b'#') {
                self.offset = pos;
                continue;
            }
            if line.first() != Some(&b'*') {
                return Err(ReadError::Format { offset: self.offset });
            }
            let argc =
                parse_len(&line[1..]).filter(|&n| n >= 1).ok_or(ReadError::Format { offset: self.offset })?;
            let mut args = Vec::with_capacity(argc.min(1024) as usize);
            for _ in 0..argc {
                let Some(line) = self.read_line(&mut pos, start)? else {
                    return Err(ReadError::Truncated { valid_up_to: start });
                };
                if line.first() != Some(&b'$') {
                    return Err(ReadError::Format { offset: pos });
                }
                let len = parse_len(&line[1..])
                    .filter(|&n| n <= self.max_bulk)
                    .ok_or(ReadError::Format { offset: pos })?;
                let len = usize::try_from(len).map_err(|_| ReadError::Format { offset: pos })?;
                let mut arg = vec![0; len + 2];
                if let Err(e) = self.src.read_exact(&mut arg) {
                    return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                        ReadError::Truncated { valid_up_to: start }
                    } else {
                        e.into()
                    });
                }
                pos += arg.len() as u64;
                if !arg.ends_with(b"\r\n") {
                    return Err(ReadError::Format { offset: pos });
                }
                arg.truncate(len);
                args.push(Bytes::from(arg));
            }
            self.offset = pos;
            return Ok(Some(args));
        }
    }

    /// One line without its CRLF; `None` at a clean end of file (nothing read). A line cut
    /// short by the end is a truncated command begun at `start`.
    fn read_line(&mut self, pos: &mut u64, start: u64) -> Result<Option<Vec<u8>>, ReadError> {
        self.line.clear();
        let n = std::io::Read::take(&mut self.src, 64 * 1024).read_until(b'\n', &mut self.line)?;
        if n == 0 {
            return if *pos == start { Ok(None) } else { Err(ReadError::Truncated { valid_up_to: start }) };
        }
        *pos += n as u64;
        if !self.line.ends_with(b"\n") {
            return if n == 64 * 1024 {
                Err(ReadError::Format { offset: *pos })
            } else {
                Err(ReadError::Truncated { valid_up_to: start })
            };
        }
        self.line.pop();
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        Ok(Some(std::mem::take(&mut self.line)))
    }
}

fn parse_len(text: &[u8]) -> Option<u64> {
    (!text.is_empty() && text.len() <= 19 && text.iter().all(u8::is_ascii_digit)).then(|| atoll(text))
}

/// Appends `key` as the commands that rebuild it (Redis's rewrite without an RDB preamble):
/// SET, RPUSH, SADD, ZADD or HMSET in batches of 64 items, then PEXPIREAT if it expires.
pub(crate) fn entry_as_commands(out: &mut Vec<u8>, key: &[u8], entry: &Entry) {
    fn batches<'a>(out: &mut Vec<u8>, name: &[u8], key: &[u8], items: impl Iterator<Item = Vec<&'a [u8]>>) {
        let mut args: Vec<&[u8]> = vec![name, key];
        let mut n = 0;
        for item in items {
            args.extend(item);
            n += 1;
            if n == ITEMS_PER_COMMAND {
                command(out, &args);
                args.truncate(2);
                n = 0;
            }
        }
        if n > 0 {
            command(out, &args);
        }
    }
    match &entry.value {
        Value::Str(s, ..) => command(out, &[b"SET", key, s.as_slice()]),
        Value::List(l, ..) => batches(out, b"RPUSH", key, l.iter().map(|e| vec![e])),
        Value::Set(s, ..) => batches(out, b"SADD", key, s.iter().map(|(m, ())| vec![m])),
        Value::Hash(h, ..) => batches(out, b"HMSET", key, h.iter().map(|(f, v)| vec![f, v.as_slice()])),
        Value::ZSet(z, ..) => {
            let scored: Vec<(String, &[u8])> =
                z.slices_from(0, false).map(|(m, score)| (crate::num::format_g17(score), m)).collect();
            batches(out, b"ZADD", key, scored.iter().map(|(s, m)| vec![s.as_bytes(), *m]));
        }
        Value::Stream(x, ..) => stream_as_commands(out, key, x),
    }
    if let Some(at) = entry.expires_at() {
        command(out, &[b"PEXPIREAT", key, itoa::Buffer::new().format(at).as_bytes()]);
    }
}

/// A stream as Redis's rewrite writes it: each entry's XADD (or, when empty, an XADD trimmed
/// away at once, which leaves the key), XSETID with its counters, each group's XGROUP CREATE,
/// and each consumer as its pending entries' XCLAIMs or, with none, XGROUP CREATECONSUMER.
fn stream_as_commands(out: &mut Vec<u8>, key: &[u8], x: &crate::storage::stream::Stream) {
    use crate::storage::stream::StreamId;
    let text = |id: StreamId| id.to_string();
    if x.is_empty() {
        command(out, &[&b"XADD"[..], key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    }
    for e in x.range(StreamId::MIN, StreamId::MAX) {
        let id = text(e.id);
        let mut args: Vec<&[u8]> = vec![b"XADD", key, id.as_bytes()];
        e.pairs.for_each(|(f, v)| args.extend([f, v]));
        command(out, &args);
    }
    let (last, added, deleted) = (text(x.last_id), x.entries_added.to_string(), text(x.max_deleted));
    command(
        out,
        &[
            &b"XSETID"[..],
            key,
            last.as_bytes(),
            b"ENTRIESADDED",
            added.as_bytes(),
            b"MAXDELETEDID",
            deleted.as_bytes(),
        ],
    );
    for (name, g) in &x.groups {
        let (last, read) = (text(g.last_id), g.entries_read.to_string());
        command(
            out,
            &[&b"XGROUP"[..], b"CREATE", key, name, last.as_bytes(), b"ENTRIESREAD", read.as_bytes()],
        );
        for (consumer, c) in &g.consumers {
            if c.pel.is_empty() {
                command(out, &[&b"XGROUP"[..], b"CREATECONSUMER", key, name, consumer]);
            }
            for id in &c.pel {
                let Some(nack) = g.pel.get(id) else { continue };
                let (id, time, count) = (text(*id), nack.delivered.to_string(), nack.deliveries.to_string());
                command(
                    out,
                    &[
                        &b"XCLAIM"[..],
                        key,
                        name,
                        consumer,
                        b"0",
                        id.as_bytes(),
                        b"TIME",
                        time.as_bytes(),
                        b"RETRYCOUNT",
                        count.as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}

/// Appends `SELECT db` as a command.
pub(crate) fn select_as_command(out: &mut Vec<u8>, db: usize) {
    command(out, &[b"SELECT", itoa::Buffer::new().format(db).as_bytes()]);
}

/// Appends one command as a RESP multibulk.
pub(crate) fn command<A: AsRef<[u8]>>(out: &mut Vec<u8>, args: &[A]) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in args {
        let arg = arg.as_ref();
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_refuse_what_redis_refuses() {
        let text =
            b"file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.3.incr.aof seq 3 type i\n\
                     file appendonly.aof.4.incr.aof seq 4 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base.as_ref().unwrap().seq, 2);
        assert_eq!(m.incrs.len(), 2);
        assert_eq!(m.to_text().as_bytes(), text);
        assert_eq!(m.last_seqs(), (2, 4));
        let quoted = Manifest {
            incrs: vec![AofFile { name: "a b".into(), seq: 1, kind: FileType::Incr }],
            ..Manifest::default()
        };
        assert_eq!(quoted.to_text(), "file \"a b\" seq 1 type i\n");
        assert_eq!(Manifest::parse(quoted.to_text().as_bytes()).unwrap(), quoted);
        for (bad, why) in [
            (&b""[..], ManifestError::Empty),
            (b"file a seq 1\n", ManifestError::Format),
            (b"file a seq 0 type i\n", ManifestError::Format),
            (b"file x/a seq 1 type i\n", ManifestError::Path),
            (b"file a seq 1 type b\nfile b seq 2 type b\n", ManifestError::DuplicateBase),
            (b"file a seq 2 type i\nfile b seq 2 type i\n", ManifestError::NonMonotonic),
            (b"file a seq 1 type x\n", ManifestError::UnknownType),
            (b"\n", ManifestError::Format),
        ] {
            assert_eq!(Manifest::parse(bad).map_err(|e| e.1), Err(why), "{}", String::from_utf8_lossy(bad));
        }
        assert_eq!(Manifest::parse(b"# only a comment\n").unwrap(), Manifest::default());
    }

    #[test]
    fn commands_are_read_with_offsets_and_a_cut_tail_is_truncation() {
        let mut file = Vec::new();
        command(&mut file, &[&b"SELECT"[..], b"0"]);
        file.extend_from_slice(b"#TS:1700000000\r\n");
        command(&mut file, &[&b"SET"[..], b"k", b"v\r\nwith crlf"]);
        let whole = file.len() as u64;
        command(&mut file, &[&b"INCR"[..], b"counter"]);
        let mut r = CommandReader::new(&file[..], 0, 1 << 20);
        assert_eq!(r.next_command().unwrap().unwrap(), [&b"SELECT"[..], b"0"]);
        assert_eq!(r.next_command().unwrap().unwrap(), [&b"SET"[..], b"k", b"v\r\nwith crlf"]);
        assert_eq!(r.offset(), whole);
        assert!(r.next_command().unwrap().is_some());
        assert!(r.next_command().unwrap().is_none());
        // Every cut inside the last command is a truncation back to the end of the one before.
        for cut in (whole as usize + 1)..file.len() {
            let mut r = CommandReader::new(&file[..cut], 0, 1 << 20);
            r.next_command().unwrap();
            r.next_command().unwrap();
            match r.next_command() {
                Err(ReadError::Truncated { valid_up_to }) => assert_eq!(valid_up_to, whole),
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        for garbage in [&b"GET k\r\n"[..], b"*x\r\n", b"*1\r\n+OK\r\n", b"*1\r\n$2\r\nabcd\r\n"] {
            let mut r = CommandReader::new(garbage, 0, 1 << 20);
            assert!(matches!(r.next_command(), Err(ReadError::Format { .. })), "{garbage:?}");
        }
    }

    #[test]
    fn damaged_files_are_errors_never_panics() {
        let mut seed = 0xa0f_u64;
        let mut next = || {
            seed = crate::num::splitmix(seed);
            seed
        };
        let mut good = Vec::new();
        command(&mut good, &[&b"SELECT"[..], b"0"]);
        command(&mut good, &[&b"SET"[..], b"key", b"value"]);
        command(&mut good, &[&b"RPUSH"[..], b"list", b"a", b"b", b"c"]);
        let manifest =
            b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        for _ in 0..20_000 {
            let mut file = good.clone();
            let mut text = manifest.to_vec();
            for _ in 0..(1 + next() % 6) {
                for bytes in [&mut file, &mut text] {
                    let at = (next() as usize) % (bytes.len() + 1);
                    match next() % 3 {
                        0 => bytes.insert(at, b"*$\r\n-0123456789 \"#x"[(next() % 18) as usize]),
                        1 if at < bytes.len() => bytes[at] = next() as u8,
                        _ => bytes.truncate(at),
                    }
                }
            }
            let mut r = CommandReader::new(&file[..], 0, 1 << 20);
            for _ in 0..100 {
                match r.next_command() {
                    Ok(Some(args)) => assert!(!args.is_empty()),
                    Ok(None) | Err(_) => break,
                }
            }
            let _ = Manifest::parse(&text);
        }
    }
}
