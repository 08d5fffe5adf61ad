//! What the benchmark sends: the named tests (redis-benchmark's `-t` list) or a custom command,
//! as RESP templates whose `__rand_int__` placeholders are filled per request.

use super::KeyPattern;

/// One test: its name (as redis-benchmark prints it) and its request template.
#[derive(Debug, Clone)]
pub struct Test {
    /// `SET`, `GET`, `LRANGE_100`, or the custom command's name.
    pub name: String,
    /// The request's arguments; `__rand_int__` is replaced in every argument that holds it.
    pub args: Vec<Vec<u8>>,
}

/// The tests `-t` accepts, in the order they run.
pub const TESTS: &[&str] = &[
    "ping",
    "set",
    "get",
    "incr",
    "lpush",
    "rpush",
    "lpop",
    "rpop",
    "sadd",
    "hset",
    "spop",
    "zadd",
    "zpopmin",
    "lrange_100",
    "mset",
];

/// Stands for the payload in a template; replaced by `-d` bytes (or a size from
/// `--data-size-range`) per request.
pub const DATA: &[u8] = b"__data__";

/// The request templates for the named test; `None` if it is not one.
#[must_use]
pub fn named(test: &str, random: bool) -> Option<Test> {
    let v = DATA.to_vec();
    let a = |s: &str| s.as_bytes().to_vec();
    let args = match test.to_ascii_lowercase().as_str() {
        "ping" => vec![a("PING")],
        "set" => vec![a("SET"), a("key:__rand_int__"), v],
        "get" => vec![a("GET"), a("key:__rand_int__")],
        "incr" => vec![a("INCR"), a("counter:__rand_int__")],
        "lpush" => vec![a("LPUSH"), a("mylist"), v],
        "rpush" => vec![a("RPUSH"), a("mylist"), v],
        "lpop" => vec![a("LPOP"), a("mylist")],
        "rpop" => vec![a("RPOP"), a("mylist")],
        "sadd" => vec![a("SADD"), a("myset"), a("element:__rand_int__")],
        "hset" => vec![a("HSET"), a("myhash"), a("element:__rand_int__"), v],
        "spop" => vec![a("SPOP"), a("myset")],
        "zadd" => vec![
            a("ZADD"),
            a("myzset"),
            a(if random { "__rand_int__" } else { "0" }),
            a("element:__rand_int__"),
        ],
        "zpopmin" => vec![a("ZPOPMIN"), a("myzset")],
        "lrange_100" => vec![a("LRANGE"), a("mylist"), a("0"), a("99")],
        "mset" => {
            let mut m = vec![a("MSET")];
            for _ in 0..10 {
                m.push(a("key:__rand_int__"));
                m.push(v.clone());
            }
            m
        }
        _ => return None,
    };
    Some(Test { name: test.to_ascii_uppercase(), args })
}

/// A custom command given after the flags (`SET key:__rand_int__ x`).
#[must_use]
pub fn custom(words: &[String]) -> Test {
    let name = words.first().map_or(String::new(), |w| w.to_ascii_uppercase());
    Test { name, args: words.iter().map(|w| w.as_bytes().to_vec()).collect() }
}

/// Picks the numbers that replace `__rand_int__`, per `--key-pattern`.
pub struct KeyGen {
    pattern: KeyPattern,
    range: u64,
    state: u64,
    next_seq: u64,
}

impl KeyGen {
    /// A generator over `0..range` (`range` 0: placeholders stay as written).
    #[must_use]
    pub fn new(pattern: KeyPattern, range: u64, seed: u64) -> KeyGen {
        KeyGen { pattern, range, state: seed | 1, next_seq: seed % range.max(1) }
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: cheap, and good enough to spread keys.
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A raw random number (for picking sizes and mixes).
    pub fn raw(&mut self) -> u64 {
        self.random()
    }

    /// The next number.
    pub fn key(&mut self) -> u64 {
        let r = self.range.max(1);
        match self.pattern {
            KeyPattern::Uniform => self.random() % r,
            KeyPattern::Sequential => {
                let n = self.next_seq % r;
                self.next_seq += 1;
                n
            }
            KeyPattern::Gaussian => {
                // Sum of four uniforms: close enough to a normal centred on the middle of the range.
                let sum: u64 = (0..4).map(|_| self.random() % r).sum();
                sum / 4
            }
        }
    }

    /// Whether placeholders are replaced at all (`-r` given).
    #[must_use]
    pub fn active(&self) -> bool {
        self.range > 0
    }
}

/// Appends `test`'s request as RESP to `out`, replacing `__rand_int__` with a 12-digit number
/// (as redis-benchmark does) and the payload placeholder by `x` bytes of a size in `data`.
pub fn encode(test: &Test, keys: &mut KeyGen, data: (usize, usize), out: &mut Vec<u8>) {
    const PLACEHOLDER: &[u8] = b"__rand_int__";
    out.extend_from_slice(b"*");
    out.extend_from_slice(itoa::Buffer::new().format(test.args.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    for arg in &test.args {
        if arg == DATA {
            let size = if data.1 > data.0 {
                data.0 + (keys.raw() % (data.1 - data.0 + 1) as u64) as usize
            } else {
                data.0
            };
            out.extend_from_slice(b"$");
            out.extend_from_slice(itoa::Buffer::new().format(size).as_bytes());
            out.extend_from_slice(b"\r\n");
            out.resize(out.len() + size, b'x');
            out.extend_from_slice(b"\r\n");
            continue;
        }
        // A 12-digit number replaces each 12-byte placeholder: the length never changes, so
        // the argument is copied once, with the numbers written in place.
        out.extend_from_slice(b"$");
        out.extend_from_slice(itoa::Buffer::new().format(arg.len()).as_bytes());
        out.extend_from_slice(b"\r\n");
        let start = out.len();
        out.extend_from_slice(arg);
        if keys.active() {
            let mut from = 0;
            while let Some(i) = find(&out[start + from..], PLACEHOLDER) {
                let at = start + from + i;
                write_digits(&mut out[at..at + PLACEHOLDER.len()], keys.key());
                from += i + PLACEHOLDER.len();
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// Writes `n` as zero-padded decimal filling `dst` (its low digits, if it is too long).
fn write_digits(dst: &mut [u8], mut n: u64) {
    for d in dst.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The length of the first complete RESP reply in `buf` and whether it is an error; `None` if
/// more bytes are needed, `Some(Err)` if the bytes are not RESP (or nest deeper than 64).
pub fn reply_len(buf: &[u8]) -> Option<Result<(usize, bool), ()>> {
    nested_len(buf, 64)
}

fn nested_len(buf: &[u8], depth: u32) -> Option<Result<(usize, bool), ()>> {
    if depth == 0 {
        return Some(Err(()));
    }
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = &buf[1..end];
    let head = end + 2;
    let number = || std::str::from_utf8(line).ok().and_then(|s| s.parse::<i64>().ok());
    match buf.first()? {
        b'+' | b':' | b'_' | b'#' | b',' | b'(' => Some(Ok((head, false))),
        b'-' => Some(Ok((head, true))),
        b'$' | b'=' | b'!' => {
            let Some(n) = number() else { return Some(Err(())) };
            if n < 0 {
                return Some(Ok((head, false)));
            }
            let total = head + n as usize + 2;
            (buf.len() >= total).then_some(Ok((total, buf[0] == b'!')))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let Some(n) = number() else { return Some(Err(())) };
            let items = if matches!(buf[0], b'%' | b'|') { n * 2 } else { n };
            let mut at = head;
            for _ in 0..items.max(0) {
                match nested_len(&buf[at..], depth - 1)? {
                    Ok((len, _)) => at += len,
                    Err(()) => return Some(Err(())),
                }
            }
            Some(Ok((at, false)))
        }
        _ => Some(Err(())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_placeholders() {
        let t = named("set", true).unwrap();
        let mut keys = KeyGen::new(KeyPattern::Sequential, 100, 5);
        let mut out = Vec::new();
        encode(&t, &mut keys, (3, 3), &mut out);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$16\r\nkey:000000000005\r\n$3\r\nxxx\r\n");
        let mut plain = KeyGen::new(KeyPattern::Uniform, 0, 1);
        out.clear();
        encode(&named("get", false).unwrap(), &mut plain, (3, 3), &mut out);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n");
    }

    #[test]
    fn reply_lengths() {
        assert_eq!(reply_len(b"+OK\r\n+OK"), Some(Ok((5, false))));
        assert_eq!(reply_len(b"-ERR x\r\n"), Some(Ok((8, true))));
        assert_eq!(reply_len(b"$3\r\nabc\r\n"), Some(Ok((9, false))));
        assert_eq!(reply_len(b"$3\r\nab"), None);
        assert_eq!(reply_len(b"*2\r\n$1\r\na\r\n:1\r\n"), Some(Ok((15, false))));
        assert_eq!(reply_len(b"*2\r\n$1\r\na\r\n"), None);
        assert_eq!(reply_len(b"$-1\r\n"), Some(Ok((5, false))));
        assert_eq!(reply_len(b"?\r\n"), Some(Err(())));
        assert_eq!(reply_len(&b"*1\r\n".repeat(100)), Some(Err(())), "a hostile nesting is refused");
    }
}
