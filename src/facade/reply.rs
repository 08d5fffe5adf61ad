//! Reply values and their RESP2/RESP3 encoding; knows nothing of which command produced them.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use crate::num::format_g17;

/// One reply, built by whichever core executed the command and encoded by the connection's core.
///
/// `Reply` is `Send`: a shard on another core builds it, the owning connection encodes it with the
/// protocol version its client negotiated.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `+OK`.
    Ok,
    /// A simple string such as `+PONG`.
    Status(Cow<'static, str>),
    /// An error; the text carries its code (`ERR ...`, `WRONGTYPE ...`) without the leading `-`.
    Error(Cow<'static, str>),
    /// An integer.
    Int(i64),
    /// A bulk string.
    Bulk(Bytes),
    /// The null bulk string (`$-1` in RESP2, `_` in RESP3).
    Nil,
    /// The null array (`*-1` in RESP2, `_` in RESP3).
    NilArray,
    /// An array.
    Array(Vec<Reply>),
    /// An array of bulk strings, already encoded (`$len` lines and their data, without the
    /// array's own header): the same in RESP2 and RESP3. Built by [`Reply::bulk_array`], so a
    /// range read copies each element once, straight from the keyspace, instead of into a bulk
    /// string of its own first.
    BulkArray {
        /// How many bulk strings `body` holds.
        len: usize,
        /// Their encoding.
        body: Bytes,
    },
    /// A map; RESP2 flattens it into an array of alternating keys and values.
    Map(Vec<(Reply, Reply)>),
    /// Pairs (HRANDFIELD WITHVALUES, later WITHSCORES): a flat array in RESP2, an array of
    /// two-element arrays in RESP3, as Redis 7 sends them.
    Pairs(Vec<(Reply, Reply)>),
    /// Keyed replies (XREAD's streams): a map in RESP3, an array of two-element arrays in
    /// RESP2, as Redis sends them.
    Keyed(Vec<(Reply, Reply)>),
    /// Several replies to one request, sent one after the other (SUBSCRIBE a b confirms each).
    Several(Vec<Reply>),
    /// An out-of-band push (pub/sub messages): `>` in RESP3, an array in RESP2.
    Push(Vec<Reply>),
    /// A set; RESP2 sends it as an array.
    Set(Vec<Reply>),
    /// A double; RESP2 sends it as a bulk string.
    Double(f64),
    /// A double already printed (GEOPOS's `%.17Lf` coordinates): `,text` in RESP3, a bulk
    /// string in RESP2.
    DoubleText(String),
    /// A boolean; RESP2 sends it as the integer 1 or 0.
    Bool(bool),
    /// Verbatim text (`=` with a `txt` format in RESP3); RESP2 sends it as a bulk string.
    Verbatim(String),
}

impl Reply {
    /// A simple-string reply from a static string.
    #[must_use]
    pub(crate) const fn status(text: &'static str) -> Reply {
        Reply::Status(Cow::Borrowed(text))
    }

    /// A bulk reply holding a copy of `data`.
    #[must_use]
    pub fn bulk(data: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(data.as_ref()))
    }

    /// An array of bulk strings holding copies of `items`, encoded as it is built.
    #[must_use]
    pub(crate) fn bulk_array<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Reply {
        let mut body = BytesMut::new();
        let mut len = 0;
        for item in items {
            put_bulk(&mut body, item);
            len += 1;
        }
        Reply::BulkArray { len, body: body.freeze() }
    }

    /// The elements of a [`Reply::BulkArray`], decoded again (a script reads them as values);
    /// empty for any other reply.
    #[must_use]
    pub(crate) fn bulk_items(&self) -> Vec<Bytes> {
        let Reply::BulkArray { body, .. } = self else { return Vec::new() };
        self.bulk_slices().map(|item| body.slice_ref(item)).collect()
    }

    /// The bulk strings of a [`Reply::BulkArray`], in place (nothing for another reply).
    pub(crate) fn bulk_slices(&self) -> impl Iterator<Item = &[u8]> {
        let body: &[u8] = match self {
            Reply::BulkArray { body, .. } => body,
            _ => &[],
        };
        let mut at = 0;
        std::iter::from_fn(move || {
            let end = body.get(at..)?.iter().position(|&c| c == b'\r')?;
            let n: usize = std::str::from_utf8(body.get(at + 1..at + end)?)
                .ok()
                .and_then(|t| t.parse().ok())
                .unwrap_or(0);
            let start = at + end + 2;
            let item = body.get(start..(start + n).min(body.len()))?;
            at = start + n + 2;
            Some(item)
        })
    }

    /// Appends the encoding of this reply to `out`, in RESP3 when `resp3` is set, else RESP2.
    pub fn encode(&self, resp3: bool, out: &mut BytesMut) {
        match self {
            Reply::Ok => out.put_slice(b"+OK\r\n"),
            Reply::Status(s) => line(out, b'+', s.as_bytes()),
            Reply::Error(e) => line(out, b'-', e.as_bytes()),
            Reply::Int(n) => {
                out.put_u8(b':');
                put_int(out, *n);
                out.put_slice(b"\r\n");
            }
            Reply::Bulk(b) => put_bulk(out, b),
            Reply::Nil if resp3 => out.put_slice(b"_\r\n"),
            Reply::Nil => out.put_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.put_slice(b"_\r\n"),
            Reply::NilArray => out.put_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', items.len());
                items.iter().for_each(|r| r.encode(resp3, out));
            }
            Reply::BulkArray { len, body } => {
                header(out, b'*', *len);
                out.put_slice(body);
            }
            Reply::Several(replies) => replies.iter().for_each(|r| r.encode(resp3, out)),
            Reply::Push(items) => {
                header(out, if resp3 { b'>' } else { b'*' }, items.len());
                items.iter().for_each(|r| r.encode(resp3, out));
            }
            Reply::Set(items) => {
                header(out, if resp3 { b'~' } else { b'*' }, items.len());
                items.iter().for_each(|r| r.encode(resp3, out));
            }
            Reply::Map(pairs) | Reply::Keyed(pairs) if resp3 => {
                header(out, b'%', pairs.len());
                for (k, v) in pairs {
                    k.encode(resp3, out);
                    v.encode(resp3, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', pairs.len());
                } else {
                    header(out, b'*', pairs.len() * 2);
                }
                for (k, v) in pairs {
                    k.encode(resp3, out);
                    v.encode(resp3, out);
                }
            }
            Reply::Pairs(pairs) | Reply::Keyed(pairs) if resp3 || matches!(self, Reply::Keyed(_)) => {
                header(out, b'*', pairs.len());
                for (a, b) in pairs {
                    out.put_slice(b"*2\r\n");
                    a.encode(resp3, out);
                    b.encode(resp3, out);
                }
            }
            Reply::Pairs(pairs) | Reply::Keyed(pairs) => {
                header(out, b'*', pairs.len() * 2);
                for (a, b) in pairs {
                    a.encode(resp3, out);
                    b.encode(resp3, out);
                }
            }
            Reply::Double(d) if resp3 => line(out, b',', format_g17(*d).as_bytes()),
            Reply::Double(d) => put_bulk(out, format_g17(*d).as_bytes()),
            Reply::DoubleText(text) if resp3 => line(out, b',', text.as_bytes()),
            Reply::DoubleText(text) => put_bulk(out, text.as_bytes()),
            Reply::Bool(b) if resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Reply::Bool(b) => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Reply::Verbatim(text) if resp3 => {
                header(out, b'=', text.len() + 4);
                out.put_slice(b"txt:");
                out.put_slice(text.as_bytes());
                out.put_slice(b"\r\n");
            }
            Reply::Verbatim(text) => put_bulk(out, text.as_bytes()),
        }
    }
}

impl From<i64> for Reply {
    fn from(n: i64) -> Reply {
        Reply::Int(n)
    }
}

impl From<Bytes> for Reply {
    fn from(b: Bytes) -> Reply {
        Reply::Bulk(b)
    }
}

impl From<Option<Bytes>> for Reply {
    fn from(b: Option<Bytes>) -> Reply {
        b.map_or(Reply::Nil, Reply::Bulk)
    }
}

fn line(out: &mut BytesMut, kind: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(kind);
    // A simple string or error may not carry CR or LF; Redis replaces them with spaces.
    if text.iter().any(|&c| c == b'\r' || c == b'\n') {
        out.extend(text.iter().map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }));
    } else {
        out.put_slice(text);
    }
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, kind: u8, len: usize) {
    out.put_u8(kind);
    out.put_slice(itoa::Buffer::new().format(len).as_bytes());
    out.put_slice(b"\r\n");
}

fn put_int(out: &mut BytesMut, n: i64) {
    out.put_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn put_bulk(out: &mut BytesMut, data: &[u8]) {
    out.reserve(data.len() + 16);
    header(out, b'$', data.len());
    out.put_slice(data);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, resp3: bool) -> String {
        let mut out = BytesMut::new();
        r.encode(resp3, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn resp2_and_resp3_shapes() {
        assert_eq!(enc(&Reply::Nil, false), "$-1\r\n");
        assert_eq!(enc(&Reply::Nil, true), "_\r\n");
        assert_eq!(enc(&Reply::NilArray, false), "*-1\r\n");
        let map = Reply::Map(vec![(Reply::bulk("a"), Reply::Int(1))]);
        assert_eq!(enc(&map, false), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&map, true), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&Reply::Double(1.5), true), ",1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), false), "$3\r\n1.5\r\n");
        assert_eq!(enc(&Reply::Bool(true), false), ":1\r\n");
        assert_eq!(enc(&Reply::Verbatim("hi".into()), true), "=6\r\ntxt:hi\r\n");
        assert_eq!(enc(&Reply::Error("ERR a\r\nb".into()), false), "-ERR a  b\r\n");
    }

    #[test]
    fn a_bulk_array_encodes_as_an_array_of_bulks_in_both_protocols() {
        let items: [&[u8]; 3] = [b"a", b"", b"xyz"];
        let built = Reply::bulk_array(items);
        let plain = Reply::Array(items.iter().map(Reply::bulk).collect());
        for resp3 in [false, true] {
            assert_eq!(enc(&built, resp3), "*3\r\n$1\r\na\r\n$0\r\n\r\n$3\r\nxyz\r\n");
            assert_eq!(enc(&built, resp3), enc(&plain, resp3));
            assert_eq!(enc(&Reply::bulk_array(std::iter::empty()), resp3), "*0\r\n");
        }
        // Inside another reply (EXEC's array) it is one element.
        assert_eq!(
            enc(&Reply::Array(vec![Reply::Int(1), built]), false),
            "*2\r\n:1\r\n*3\r\n$1\r\na\r\n$0\r\n\r\n$3\r\nxyz\r\n"
        );
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(format_g17(1.1), "1.1000000000000001");
        assert_eq!(format_g17(3.5e20), "3.5e+20");
        assert_eq!(format_g17(1e-5), "1.0000000000000001e-05");
        assert_eq!(format_g17(123_456_789_012_345_678.0), "1.2345678901234568e+17");
        assert_eq!(format_g17(2.0), "2");
        assert_eq!(format_g17(-0.5), "-0.5");
    }
}
