//! The incremental, bounded RESP request parser: bytes in, argument vectors out. Does no I/O.
//!
//! It reads what clients send: multibulk requests (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) and inline
//! commands (`GET k\r\n`). It tells "incomplete, read more" (`Ok(None)`) apart from "invalid"
//! (`Err`), which is what makes pipelining work, and it never panics on peer input.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

use crate::num::parse_i64;
use crate::splitargs;

/// The longest line (inline command or length header) Redis accepts before a newline: 64 KiB.
pub(crate) const MAX_INLINE_SIZE: usize = 64 * 1024;
/// Requests this large keep their arguments as views of the read buffer; smaller ones get
/// arguments of their own. A view shares the buffer's reference count: every argument cloned and
/// dropped is an atomic update of that one counter (`shared_v_clone` and `shared_v_drop` took
/// ~12% of server CPU under pipelined SET), and a view kept anywhere keeps the whole buffer
/// alive. A small copy costs less than that. A request this large fills most of its buffer, so
/// a view wastes little, and copying it would cost more than the count it saves.
const SHARE_FRAME_MIN: usize = 64 * 1024;
/// Multibulk arguments an unauthenticated client may send (as Redis).
const UNAUTH_MAX_MULTIBULK: i64 = 10;
/// Bulk length an unauthenticated client may send (as Redis).
const UNAUTH_MAX_BULK: i64 = 16 * 1024;

/// A protocol violation. Its `Display` is the error text Redis sends before closing the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The multibulk count is not a number or is over the limit.
    #[error("Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    /// The bulk length is not a number, negative, or over `proto-max-bulk-len`.
    #[error("Protocol error: invalid bulk length")]
    InvalidBulkLength,
    /// A multibulk element did not start with `$`.
    #[error("Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    /// The multibulk count line ran past 64 KiB without a newline.
    #[error("Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    /// A bulk length line ran past 64 KiB without a newline.
    #[error("Protocol error: too big bulk count string")]
    TooBigBulkCount,
    /// An inline command ran past 64 KiB without a newline.
    #[error("Protocol error: too big inline request")]
    TooBigInline,
    /// An inline command has a quote that is not closed, or is followed by a non-space.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// An unauthenticated client sent more than 10 arguments.
    #[error("Protocol error: unauthenticated multibulk length")]
    UnauthenticatedMultibulk,
    /// An unauthenticated client sent a bulk string longer than 16 KiB.
    #[error("Protocol error: unauthenticated bulk length")]
    UnauthenticatedBulk,
}

/// Bounds the parser enforces, from the `proto-max-bulk-len` directive and Redis's own limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest bulk string accepted.
    pub max_bulk: u64,
    /// Most arguments in one multibulk request.
    pub max_multibulk: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_bulk: 512 * 1024 * 1024, max_multibulk: i32::MAX as u64 }
    }
}

/// Parses requests out of a connection's read buffer.
///
/// A request that arrives in pieces is never re-scanned: the parser keeps how many bytes the
/// request under way needs before an attempt can succeed (a 512 MB value arriving in small
/// reads), and where its multibulk stopped, with the arguments found so far (a request of a
/// million small arguments). The caller only appends to the buffer between attempts and takes
/// nothing off its front, so positions stay valid.
#[derive(Debug, Default)]
pub struct RequestParser {
    /// The buffer must hold at least this many bytes before a new attempt can succeed.
    need: usize,
    /// Argument positions of the request under way, reused across requests.
    ranges: Vec<Range<usize>>,
    /// A multibulk under way: where its next element starts, and how many are left.
    resume: Option<(usize, i64)>,
    /// Elements looked at, for the test that no request is re-scanned.
    #[cfg(test)]
    visited: usize,
}

/// Argument slots kept between requests; a huge request's are given back at the next one.
const KEEP_RANGES: usize = 1024;

impl RequestParser {
    /// A parser with no request under way.
    #[must_use]
    pub fn new() -> RequestParser {
        RequestParser::default()
    }

    /// Takes one complete request off the front of `buf`.
    ///
    /// Returns `Ok(Some(args))` with the request's arguments (empty requests such as a blank inline
    /// line or `*0` are skipped), `Ok(None)` when `buf` holds only part of a request, and `Err` on a
    /// protocol violation, after which the connection must be closed.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<Vec<Bytes>>, ProtocolError> {
        loop {
            if buf.is_empty() || buf.len() < self.need {
                return Ok(None);
            }
            let inline = buf[0] != b'*';
            let parsed = if inline { self.inline(buf)? } else { self.multibulk(buf, limits, authenticated)? };
            let Some(end) = parsed else { return Ok(None) };
            self.need = 0;
            if self.ranges.capacity() > KEEP_RANGES && self.ranges.len() <= KEEP_RANGES {
                self.ranges.shrink_to(KEEP_RANGES);
            }
            if inline && buf[..end].iter().any(|&c| matches!(c, b'"' | b'\'' | 0 | 0x0b)) {
                // Quotes, NUL and vertical tab are rare: the shared splitter (C's rules) handles
                // them, into owned arguments.
                let args = splitargs::split(&buf[..end]).map_err(|_| ProtocolError::UnbalancedQuotes)?;
                buf.advance(end);
                if args.is_empty() {
                    continue;
                }
                return Ok(Some(args.into_iter().map(Bytes::from).collect()));
            }
            if self.ranges.is_empty() {
                buf.advance(end);
                continue;
            }
            let args = if end >= SHARE_FRAME_MIN {
                let frame = buf.split_to(end).freeze();
                self.ranges.drain(..).map(|r| frame.slice(r)).collect()
            } else {
                let args = self.ranges.drain(..).map(|r| Bytes::copy_from_slice(&buf[r])).collect();
                buf.advance(end);
                args
            };
            return Ok(Some(args));
        }
    }

    fn multibulk(
        &mut self,
        buf: &[u8],
        limits: &Limits,
        authenticated: bool,
    ) -> Result<Option<usize>, ProtocolError> {
        let (mut pos, mut left) = match self.resume.take() {
            Some(resume) => resume,
            None => {
                let Some(eol) = find_crlf(buf, 1) else {
                    if buf.len() > MAX_INLINE_SIZE {
                        return Err(ProtocolError::TooBigMultibulkCount);
                    }
                    return Ok(None);
                };
                let count = parse_i64(&buf[1..eol]).ok_or(ProtocolError::InvalidMultibulkLength)?;
                if count > limits.max_multibulk as i64 {
                    return Err(ProtocolError::InvalidMultibulkLength);
                }
                if !authenticated && count > UNAUTH_MAX_MULTIBULK {
                    return Err(ProtocolError::UnauthenticatedMultibulk);
                }
                self.ranges.clear();
                (eol + 2, count.max(0))
            }
        };
        while left > 0 {
            #[cfg(test)]
            {
                self.visited += 1;
            }
            if pos >= buf.len() {
                self.resume = Some((pos, left));
                return Ok(None);
            }
            if buf[pos] != b'$' {
                return Err(ProtocolError::ExpectedDollar(buf[pos]));
            }
            let Some(eol) = find_crlf(buf, pos + 1) else {
                if buf.len() - pos > MAX_INLINE_SIZE {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                self.resume = Some((pos, left));
                return Ok(None);
            };
            let len = parse_i64(&buf[pos + 1..eol]).ok_or(ProtocolError::InvalidBulkLength)?;
            if len < 0 || len as u64 > limits.max_bulk {
                return Err(ProtocolError::InvalidBulkLength);
            }
            if !authenticated && len > UNAUTH_MAX_BULK {
                return Err(ProtocolError::UnauthenticatedBulk);
            }
            let start = eol + 2;
            let end = start + len as usize;
            if buf.len() < end + 2 {
                self.need = end + 2;
                self.resume = Some((pos, left));
                return Ok(None);
            }
            self.ranges.push(start..end);
            // Like Redis, the two bytes after the data are taken as CRLF without looking.
            pos = end + 2;
            left -= 1;
        }
        Ok(Some(pos))
    }

    fn inline(&mut self, buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
        self.ranges.clear();
        let Some(nl) = buf.iter().position(|&c| c == b'\n') else {
            if buf.len() > MAX_INLINE_SIZE {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(None);
        };
        let mut i = 0;
        while i < nl {
            while i < nl && buf[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while i < nl && !buf[i].is_ascii_whitespace() {
                i += 1;
            }
            if i > start {
                self.ranges.push(start..i);
            }
        }
        Ok(Some(nl + 1))
    }
}

/// The position of the first CRLF at or after `from`. A loop, not a recursion: a line of a
/// million bare CRs must cost time, never stack.
fn find_crlf(buf: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let at = from + buf.get(from..)?.iter().position(|&c| c == b'\r')?;
        match buf.get(at + 1) {
            Some(b'\n') => return Some(at),
            // A bare CR: keep looking after it.
            Some(_) => from = at + 1,
            None => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_requests_do_not_hold_the_read_buffer() {
        let big = vec![b'x'; SHARE_FRAME_MIN];
        let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n".to_vec();
        input.extend_from_slice(format!("*2\r\n$4\r\nECHO\r\n${}\r\n", big.len()).as_bytes());
        input.extend_from_slice(&big);
        input.extend_from_slice(b"\r\n");
        let mut buf = BytesMut::from(&input[..]);
        let whole = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.capacity();
        let inside = |b: &Bytes| whole.contains(&(b.as_ptr() as usize));
        let mut p = RequestParser::new();
        let small = p.parse(&mut buf, &Limits::default(), true).unwrap().unwrap();
        assert_eq!(small[2], &b"vv"[..]);
        assert!(!small.iter().any(inside), "a small request's arguments are copies");
        let large = p.parse(&mut buf, &Limits::default(), true).unwrap().unwrap();
        assert_eq!(large[1], &big[..]);
        assert!(inside(&large[1]), "a large request's arguments are views of the buffer");
    }

    /// A line of bare CRs is scanned in a loop: on a thread with a 64 KiB stack, where a
    /// recursion per CR would overflow long before the end.
    #[test]
    fn a_run_of_carriage_returns_does_not_recurse() {
        let run = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| {
                let mut p = RequestParser::new();
                let mut header = b"*1\r\n$".to_vec();
                header.extend(std::iter::repeat_n(b'\r', MAX_INLINE_SIZE - 16));
                let partial = p.parse(&mut BytesMut::from(&header[..]), &Limits::default(), true);
                let mut count = b"*".to_vec();
                count.extend(std::iter::repeat_n(b'\r', 1_000_000));
                let too_big =
                    RequestParser::new().parse(&mut BytesMut::from(&count[..]), &Limits::default(), true);
                (partial, too_big)
            })
            .unwrap();
        let (partial, too_big) = run.join().expect("no stack overflow");
        assert_eq!(partial, Ok(None));
        assert_eq!(too_big, Err(ProtocolError::TooBigMultibulkCount));
    }

    /// A request of many small arguments arriving in small reads: each element is looked at
    /// about once, not once per read (which made it quadratic).
    #[test]
    fn a_request_in_small_reads_is_not_rescanned() {
        let n = 100_000;
        let mut input = format!("*{n}\r\n").into_bytes();
        for i in 0..n {
            let arg = (i % 1000).to_string();
            input.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        input.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
        let mut p = RequestParser::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in input.chunks(256) {
            buf.extend_from_slice(piece);
            while let Some(args) = p.parse(&mut buf, &Limits::default(), true).unwrap() {
                got.push(args);
            }
        }
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].len(), n);
        assert_eq!(got[0][n - 1], Bytes::from(((n - 1) % 1000).to_string()));
        assert_eq!(got[1], vec![Bytes::from("PING")]);
        let reads = input.len().div_ceil(256);
        assert!(p.visited <= n + 1 + reads, "{} element visits for {n} elements in {reads} reads", p.visited);
        assert!(p.ranges.capacity() <= KEEP_RANGES, "a huge request's slots are given back");
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(input);
        let mut out = vec![];
        while let Some(args) = p.parse(&mut buf, &Limits::default(), true)? {
            out.push(args.into_iter().map(|a| a.to_vec()).collect());
        }
        Ok(out)
    }

    #[test]
    fn multibulk_at_every_split_point() {
        let input = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n";
        for split in 0..=input.len() {
            let mut p = RequestParser::new();
            let mut buf = BytesMut::from(&input[..split]);
            let mut got = vec![];
            while let Some(a) = p.parse(&mut buf, &Limits::default(), true).unwrap() {
                got.push(a);
            }
            buf.extend_from_slice(&input[split..]);
            while let Some(a) = p.parse(&mut buf, &Limits::default(), true).unwrap() {
                got.push(a);
            }
            assert_eq!(got.len(), 2, "split at {split}");
            assert_eq!(got[0], vec![Bytes::from("GET"), Bytes::from("key")]);
            assert_eq!(got[1], vec![Bytes::from("PING")]);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn inline_commands_and_quotes() {
        let got = parse_all(b"SET a \"b c\\x41\\n\"\r\n\r\nGET 'it\\'s'\nPING\r\n").unwrap();
        assert_eq!(got[0], vec![b"SET".to_vec(), b"a".to_vec(), b"b cA\n".to_vec()]);
        assert_eq!(got[1], vec![b"GET".to_vec(), b"it's".to_vec()]);
        assert_eq!(got[2], vec![b"PING".to_vec()]);
        assert_eq!(parse_all(b"GET \"abc\r\n"), Err(ProtocolError::UnbalancedQuotes));
        assert_eq!(parse_all(b"GET \"abc\"x\r\n"), Err(ProtocolError::UnbalancedQuotes));
    }

    #[test]
    fn hostile_lengths() {
        assert_eq!(parse_all(b"*abc\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*99999999999\r\n"), Err(ProtocolError::InvalidMultibulkLength));
        assert_eq!(parse_all(b"*1\r\n$-1\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse_all(b"*1\r\n$600000000\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse_all(b"*1\r\n$99999999999999999999999\r\n"), Err(ProtocolError::InvalidBulkLength));
        assert_eq!(parse_all(b"*1\r\n:1\r\n"), Err(ProtocolError::ExpectedDollar(b':')));
        assert_eq!(parse_all(&[b'x'; MAX_INLINE_SIZE + 1]), Err(ProtocolError::TooBigInline));
        let mut big = b"*".to_vec();
        big.extend(std::iter::repeat_n(b'1', MAX_INLINE_SIZE + 1));
        assert_eq!(parse_all(&big), Err(ProtocolError::TooBigMultibulkCount));
        // Empty and negative counts are skipped, as Redis does.
        assert_eq!(parse_all(b"*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n").unwrap().len(), 1);
    }

    #[test]
    fn unauthenticated_limits() {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        assert_eq!(
            p.parse(&mut buf, &Limits::default(), false),
            Err(ProtocolError::UnauthenticatedMultibulk)
        );
        let mut buf = BytesMut::from(&b"*1\r\n$20000\r\n"[..]);
        assert_eq!(p.parse(&mut buf, &Limits::default(), false), Err(ProtocolError::UnauthenticatedBulk));
    }

    #[test]
    fn large_bulk_waits_for_its_bytes() {
        let mut p = RequestParser::new();
        let mut buf = BytesMut::from(&b"*1\r\n$10\r\n01234"[..]);
        assert_eq!(p.parse(&mut buf, &Limits::default(), true), Ok(None));
        assert_eq!(p.need, 21, "9 header bytes, 10 of data, CRLF");
        buf.extend_from_slice(b"56789\r\n");
        assert_eq!(p.parse(&mut buf, &Limits::default(), true).unwrap().unwrap()[0], "0123456789");
    }

    /// Random and mutated inputs, fed in random pieces: the parser returns requests, asks for
    /// more, or reports an error; it never panics and never loops without progress.
    #[test]
    fn random_input_never_panics() {
        let mut seed = 0x5eed_u64;
        let mut next = || {
            seed = crate::num::splitmix(seed);
            seed
        };
        let seeds: [&[u8]; 4] =
            [b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"SET a \"b\"\r\n", b"*1\r\n$-1\r\n", b"*3\r\n$1\r\n"];
        for round in 0..20_000 {
            let mut input: Vec<u8> = seeds[round % seeds.len()].to_vec();
            for _ in 0..(next() % 8) {
                let at = (next() as usize) % (input.len() + 1);
                match next() % 3 {
                    0 => input.insert(at, next() as u8),
                    1 if at < input.len() => input[at] = b"*$\r\n-0123456789\"' x"[(next() % 18) as usize],
                    _ => input.truncate(at),
                }
            }
            let limits = Limits { max_bulk: 1 << 20, max_multibulk: 1 << 20 };
            let mut parser = RequestParser::new();
            let mut buf = BytesMut::new();
            let mut fed = 0;
            while fed < input.len() {
                let piece = 1 + (next() as usize) % (input.len() - fed);
                buf.extend_from_slice(&input[fed..fed + piece]);
                fed += piece;
                while let Ok(Some(args)) = parser.parse(&mut buf, &limits, next() % 2 == 0) {
                    assert!(!args.is_empty());
                }
            }
        }
    }

    #[test]
    fn integers_parse_strictly() {
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"+1", b" 1", b"01", b"-0", b"9223372036854775808", b"1a"] {
            assert_eq!(parse_i64(bad), None, "{bad:?}");
        }
    }
}
