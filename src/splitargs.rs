//! Redis's `sdssplitargs`: splits a line into arguments with double/single quotes and escapes;
//! and its inverse, `sdscatrepr`, which quotes bytes so that they split back.
//!
//! Shared by the inline protocol (`SET k "a b"`) and the redis.conf reader; the quoting by
//! MONITOR's lines and the AOF manifest.

/// The line has a quote that is not closed, or a closing quote followed by a non-space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unbalanced quotes")]
pub(crate) struct UnbalancedQuotes;

/// Splits `line` as Redis does: blanks separate arguments; `"..."` takes `\n \r \t \b \a \\ \"`
/// and `\xHH` escapes; `'...'` takes only `\'`; a closing quote must end the argument.
pub(crate) fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, UnbalancedQuotes> {
    let mut args = Vec::new();
    let mut i = 0;
    // In C the line is a string: a NUL byte ends it. Every later use of `at` relies on that.
    let line = &line[..line.iter().position(|&c| c == 0).unwrap_or(line.len())];
    let at = |i: usize| line.get(i).copied();
    loop {
        // C's isspace(): the ASCII blanks plus vertical tab.
        while at(i).is_some_and(|c| c.is_ascii_whitespace() || c == 0x0b) {
            i += 1;
        }
        if i >= line.len() {
            return Ok(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(i);
            if in_double {
                match (c, at(i + 1)) {
                    (None, _) => return Err(UnbalancedQuotes),
                    (Some(b'\\'), Some(b'x'))
                        if at(i + 2).is_some_and(|h| h.is_ascii_hexdigit())
                            && at(i + 3).is_some_and(|h| h.is_ascii_hexdigit()) =>
                    {
                        current.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                        i += 3;
                    }
                    (Some(b'\\'), Some(e)) => {
                        current.push(match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 8,
                            b'a' => 7,
                            other => other,
                        });
                        i += 1;
                    }
                    (Some(b'"'), next) => {
                        if next.is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err(UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    (Some(c), _) => current.push(c),
                }
            } else if in_single {
                match (c, at(i + 1)) {
                    (None, _) => return Err(UnbalancedQuotes),
                    (Some(b'\\'), Some(b'\'')) => {
                        current.push(b'\'');
                        i += 1;
                    }
                    (Some(b'\''), next) => {
                        if next.is_some_and(|n| !n.is_ascii_whitespace()) {
                            return Err(UnbalancedQuotes);
                        }
                        i += 1;
                        break;
                    }
                    (Some(c), _) => current.push(c),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t' | 0) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(c) => current.push(c),
                }
            }
            i += 1;
        }
        args.push(current);
    }
}

/// Appends `bytes` to `out` as Redis's `sdscatrepr` writes them: in double quotes, with
/// `\\ \" \n \r \t \a \b` escaped and any other byte outside printable ASCII as `\xHH`.
pub(crate) fn repr(bytes: &[u8], out: &mut String) {
    out.push('"');
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\x");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 15)] as char);
            }
        }
    }
    out.push('"');
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(line: &str) -> Result<Vec<String>, UnbalancedQuotes> {
        split(line.as_bytes()).map(|v| v.into_iter().map(|a| String::from_utf8(a).unwrap()).collect())
    }

    #[test]
    fn splits_like_sdssplitargs() {
        assert_eq!(s("  set a  b ").unwrap(), ["set", "a", "b"]);
        assert_eq!(s(r#"set "a b\x41\n" 'it\'s'"#).unwrap(), ["set", "a bA\n", "it's"]);
        assert_eq!(s(r#"foo"bar baz""#).unwrap(), ["foobar baz"]);
        assert_eq!(s(r#""""#).unwrap(), [""]);
        assert_eq!(s(r#""abc"#), Err(UnbalancedQuotes));
        assert_eq!(s(r#""abc"x"#), Err(UnbalancedQuotes));
        assert_eq!(s("'abc"), Err(UnbalancedQuotes));
        assert!(s("").unwrap().is_empty());
    }

    #[test]
    fn nul_ends_the_line_as_in_c() {
        assert_eq!(s("get a\0b c").unwrap(), ["get", "a"]);
        assert_eq!(s("\0\"x").unwrap(), Vec::<String>::new());
        assert_eq!(s("\"abc\0\""), Err(UnbalancedQuotes));
        assert_eq!(s("\x0bget").unwrap(), ["get"]);
    }
}
