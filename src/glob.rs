//! Redis's glob-style pattern matching (`stringmatchlen`), for KEYS, SCAN MATCH and CONFIG GET,
//! and [`Pattern`], a pattern compiled once for the ACL checks that match it on every request.

/// A case-sensitive glob pattern, compiled: one that is a literal, or a literal then `*` (most
/// ACL key and channel patterns: `cache:*`), matches by comparing bytes instead of walking the
/// pattern. It derefs to the pattern as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: Box<[u8]>,
    kind: Kind,
    /// The literal's first 8 bytes (or fewer), little-endian, and the mask of those it has: a
    /// key's first word rejects or (for a literal up to 8 bytes) accepts without memcmp.
    head: u64,
    mask: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// No special character: equal bytes.
    Exact,
    /// A literal of this length, then only `*`: a prefix.
    Prefix(usize),
    /// Anything else.
    Glob,
}

impl Pattern {
    /// The pattern as written.
    #[must_use]
    pub(crate) fn text(&self) -> &[u8] {
        &self.text
    }

    /// Compiles `text`.
    #[must_use]
    pub(crate) fn new(text: &[u8]) -> Pattern {
        let special = |b: &u8| matches!(b, b'*' | b'?' | b'[' | b'\\');
        let kind = match text.iter().position(special) {
            None => Kind::Exact,
            Some(at) if text[at..].iter().all(|&b| b == b'*') => Kind::Prefix(at),
            Some(_) => Kind::Glob,
        };
        let literal = match kind {
            Kind::Exact => text.len(),
            Kind::Prefix(n) => n,
            Kind::Glob => 0,
        };
        let (mut head, mut mask) = ([0u8; 8], [0u8; 8]);
        for (i, &b) in text.iter().take(literal.min(8)).enumerate() {
            head[i] = b;
            mask[i] = 0xff;
        }
        Pattern { text: text.into(), kind, head: u64::from_le_bytes(head), mask: u64::from_le_bytes(mask) }
    }

    /// The byte every match starts with, when the pattern starts with a literal one.
    #[must_use]
    pub(crate) fn first_literal(&self) -> Option<u8> {
        self.text.first().copied().filter(|b| !matches!(b, b'*' | b'?' | b'[' | b'\\'))
    }

    /// Whether `text` matches, as [`matches`] with case.
    #[inline]
    #[must_use]
    pub(crate) fn matches(&self, text: &[u8]) -> bool {
        match self.kind {
            Kind::Exact => text.len() == self.text.len() && self.starts(text, self.text.len()),
            Kind::Prefix(0) => true,
            Kind::Prefix(n) => self.starts(text, n),
            Kind::Glob => matches(&self.text, text, false),
        }
    }

    /// Whether `text` starts with the pattern's first `n` bytes (a literal).
    #[inline]
    fn starts(&self, text: &[u8], n: usize) -> bool {
        if let Some(word) = text.first_chunk::<8>() {
            if u64::from_le_bytes(*word) & self.mask != self.head {
                return false;
            }
            if n <= 8 {
                return true;
            }
        }
        text.starts_with(&self.text[..n])
    }
}

impl std::ops::Deref for Pattern {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.text
    }
}

/// Whether `text` matches `pattern`: `*`, `?`, `[abc]`, `[^a-z]` and `\` escapes, as Redis.
#[must_use]
pub(crate) fn matches(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    // Iterative with one backtracking point per `*`, so hostile patterns stay O(p * t).
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    let eq = |a: u8, b: u8| if nocase { a.eq_ignore_ascii_case(&b) } else { a == b };
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((hit, next)) = class(pattern, p, text[t], nocase) {
                        if hit {
                            p = next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if eq(pattern[p + 1], text[t]) {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if eq(c, text[t]) {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, st)) => {
                p = sp;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `pattern[open] == b'['`; returns (hit, index after).
fn class(pattern: &[u8], open: usize, c: u8, nocase: bool) -> Option<(bool, usize)> {
    let mut i = open + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let fold = |x: u8| if nocase { x.to_ascii_lowercase() } else { x };
    let c = fold(c);
    let mut hit = false;
    loop {
        match pattern.get(i) {
            // An unterminated class matches up to the end of the pattern, like Redis.
            None => break,
            Some(b']') => {
                i += 1;
                break;
            }
            Some(b'\\') if i + 1 < pattern.len() => {
                hit |= fold(pattern[i + 1]) == c;
                i += 2;
            }
            Some(&lo)
                if pattern.get(i + 1) == Some(&b'-') && i + 2 < pattern.len() && pattern[i + 2] != b']' =>
            {
                let (mut a, mut b) = (fold(lo), fold(pattern[i + 2]));
                if a > b {
                    std::mem::swap(&mut a, &mut b);
                }
                hit |= (a..=b).contains(&c);
                i += 3;
            }
            Some(&x) => {
                hit |= fold(x) == c;
                i += 1;
            }
        }
    }
    Some((hit != negate, i))
}

#[cfg(test)]
mod tests {
    use super::{matches, Pattern};

    #[test]
    fn compiled_patterns_match_as_the_matcher_does() {
        // Literals shorter than, equal to and longer than the 8-byte word compared first, and
        // texts on either side of it.
        let patterns: [&[u8]; 15] = [
            b"cache:*",
            b"cache:**",
            b"exact",
            b"*",
            b"",
            b"a?c*",
            b"[ab]*",
            b"x\\*",
            b"*:x",
            b"session:*",
            b"sessions*",
            b"session:abc",
            b"session:",
            b"sessionX*",
            b"session:abcdefgh:*",
        ];
        let texts: [&[u8]; 16] = [
            b"cache:1",
            b"cache:",
            b"cache",
            b"exact",
            b"exactly",
            b"",
            b"abc",
            b"x*",
            b"y:x",
            b"session:",
            b"session:abc",
            b"session:abd",
            b"session",
            b"sessions:1",
            b"session:abcdefgh:1",
            b"session:abcdefgX:1",
        ];
        for p in patterns {
            let compiled = Pattern::new(p);
            for t in texts {
                assert_eq!(
                    compiled.matches(t),
                    matches(p, t, false),
                    "{} {}",
                    p.escape_ascii(),
                    t.escape_ascii()
                );
            }
        }
        assert_eq!(&*Pattern::new(b"cache:*"), b"cache:*");
        assert_eq!(Pattern::new(b"cache:*").first_literal(), Some(b'c'));
        assert_eq!(Pattern::new(b"*:x").first_literal(), None);
    }

    #[test]
    fn redis_glob_semantics() {
        let m = |p: &str, t: &str| matches(p.as_bytes(), t.as_bytes(), false);
        assert!(m("*", ""));
        assert!(m("h?llo", "hello"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("*foo*bar", "xxfooyybar"));
        assert!(!m("*foo*bar", "xxfooyybaz"));
        assert!(m("key:*", "key:1"));
        assert!(!m("a", "ab"));
        assert!(matches(b"MAX*", b"maxclients", true));
        // Pathological pattern terminates quickly.
        let text = "a".repeat(1000);
        assert!(!m("*a*a*a*a*a*a*a*a*b", &text));
    }
}
