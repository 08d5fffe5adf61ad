//! LZF, the compression RDB strings and list nodes use (`rdbcompression`): liblzf's format. Any
//! valid stream decompresses with Redis's `lzf_decompress`; decompression checks every length
//! and offset, so a corrupt payload is an error, never a read out of bounds.

/// Longest literal run one control byte covers.
const MAX_LITERAL: usize = 32;
/// Farthest back a reference reaches.
const MAX_OFFSET: usize = 1 << 13;
/// Longest match one reference copies: 7 + 255 in its length fields, plus 2.
const MAX_REF: usize = (1 << 8) + (1 << 3);
/// Bits of the match-finder's hash table.
const HASH_BITS: u32 = 14;

/// Compresses `input`; `None` when the result would not be shorter than `limit` bytes (Redis
/// then stores the string as it is).
#[must_use]
pub(crate) fn compress(input: &[u8], limit: usize) -> Option<Vec<u8>> {
    MATCHES.with(|m| {
        let mut m = m.borrow_mut();
        if m.table.is_empty() {
            m.table = vec![0; 1 << HASH_BITS];
        }
        let base = m.next;
        // Positions of this call are stored above `base`: the table never needs clearing.
        m.next = base + input.len() as u64 + 1;
        compress_with(input, limit, &mut m.table, base)
    })
}

/// The match finder's table, kept per thread: a fresh one per string cost 128 KB of zeroing,
/// ~3 µs per key in a snapshot. Entries hold `base + position + 1`; one below a call's base is
/// from an earlier string, so empty for this one (the output is as with a fresh table).
struct Matches {
    table: Vec<u64>,
    next: u64,
}

thread_local! {
    static MATCHES: std::cell::RefCell<Matches> =
        const { std::cell::RefCell::new(Matches { table: Vec::new(), next: 0 }) };
}

fn compress_with(input: &[u8], limit: usize, table: &mut [u64], base: u64) -> Option<Vec<u8>> {
    let n = input.len();
    let mut out = Vec::with_capacity(limit);
    let hash = |i: usize| {
        let v = u32::from(input[i]) << 16 | u32::from(input[i + 1]) << 8 | u32::from(input[i + 2]);
        (v.wrapping_mul(2_654_435_761) >> (32 - HASH_BITS)) as usize
    };
    // The literal run being collected: its control byte's position in `out`, and its length.
    let mut lit_start = out.len();
    out.push(0);
    let mut lit = 0usize;
    let mut i = 0;
    while i + 2 < n {
        let h = hash(i);
        // Entries hold position + 1, so 0 means empty.
        let candidate = table[h];
        table[h] = base + i as u64 + 1;
        if candidate > base {
            let r = (candidate - base - 1) as usize;
            let off = i - r - 1;
            if off < MAX_OFFSET && input[r..r + 3] == input[i..i + 3] {
                let max = (n - i).min(MAX_REF);
                let mut len = 3;
                while len < max && input[r + len] == input[i + len] {
                    len += 1;
                }
                // Close the literal run (or drop its empty control byte).
                if lit == 0 {
                    out.pop();
                } else {
                    out[lit_start] = (lit - 1) as u8;
                }
                let l = len - 2;
                if l < 7 {
                    out.push(((l << 5) | (off >> 8)) as u8);
                } else {
                    out.push(((7 << 5) | (off >> 8)) as u8);
                    out.push((l - 7) as u8);
                }
                out.push((off & 0xff) as u8);
                i += len;
                lit_start = out.len();
                out.push(0);
                lit = 0;
                if out.len() >= limit {
                    return None;
                }
                continue;
            }
        }
        out.push(input[i]);
        lit += 1;
        i += 1;
        if lit == MAX_LITERAL {
            out[lit_start] = (lit - 1) as u8;
            lit_start = out.len();
            out.push(0);
            lit = 0;
        }
        if out.len() >= limit {
            return None;
        }
    }
    while i < n {
        out.push(input[i]);
        lit += 1;
        i += 1;
        if lit == MAX_LITERAL {
            out[lit_start] = (lit - 1) as u8;
            lit_start = out.len();
            out.push(0);
            lit = 0;
        }
    }
    if lit == 0 {
        out.pop();
    } else {
        out[lit_start] = (lit - 1) as u8;
    }
    (out.len() < limit).then_some(out)
}

/// Decompresses `input` into exactly `len` bytes; `None` if it is not a valid stream of that
/// length.
#[must_use]
pub(crate) fn decompress(input: &[u8], len: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(len);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if out.len() + run > len || ip + run > input.len() {
                return None;
            }
            out.extend_from_slice(&input[ip..ip + run]);
            ip += run;
        } else {
            let mut l = ctrl >> 5;
            if l == 7 {
                l += usize::from(*input.get(ip)?);
                ip += 1;
            }
            let back = ((ctrl & 0x1f) << 8) + usize::from(*input.get(ip)?) + 1;
            ip += 1;
            if back > out.len() || out.len() + l + 2 > len {
                return None;
            }
            // Byte i of the match is byte `from + i` of the output, which may be one the
            // match itself writes (a run, when `back` is short): copy what exists, in
            // chunks that double as the output grows.
            let (from, n) = (out.len() - back, l + 2);
            if back == 1 {
                // A run of one byte (the commonest overlap): a fill.
                let byte = out[from];
                out.resize(out.len() + n, byte);
                continue;
            }
            let mut done = 0;
            while done < n {
                let k = (out.len() - from - done).min(n - done);
                out.extend_from_within(from + done..from + done + k);
                done += k;
            }
        }
    }
    (out.len() == len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_that_overlap_their_own_output_decode_as_runs() {
        for period in [1usize, 2, 3, 7, 31, 300] {
            let data: Vec<u8> =
                (0..5000).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789"[i % period % 36]).collect();
            let packed = compress(&data, data.len() - 1).expect("periodic data compresses");
            assert_eq!(decompress(&packed, data.len()).as_deref(), Some(&data[..]), "period {period}");
        }
    }

    #[test]
    fn round_trips_and_refuses_corruption() {
        let mut data = Vec::new();
        for i in 0..5000u32 {
            data.extend_from_slice(format!("key:{} value {}\n", i % 97, i % 13).as_bytes());
        }
        let packed = compress(&data, data.len() - 4).expect("repetitive text compresses");
        assert!(packed.len() < data.len() / 3);
        assert_eq!(decompress(&packed, data.len()).unwrap(), data);
        assert!(compress(b"abcdefgh", 4).is_none(), "incompressible within the limit");
        assert_eq!(decompress(&packed, data.len() + 1), None, "wrong length");
        let mut bad = packed.clone();
        bad[1] = 0xff; // a reference before the start
        assert!(decompress(&bad, data.len()).is_none_or(|d| d != data));
        // Every truncation and random input is refused or decoded, never a panic.
        for cut in 0..packed.len().min(300) {
            let _ = decompress(&packed[..cut], data.len());
        }
        let mut x = 1u64;
        for _ in 0..2000 {
            x = crate::num::mix(x);
            let noise: Vec<u8> = x.to_le_bytes().iter().cycle().take((x % 64) as usize).copied().collect();
            let _ = decompress(&noise, 100);
        }
        // Short and incompressible inputs round-trip when they compress at all.
        for s in [&b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"[..], b"abcabcabcabcabcabcabcabcabcabc"] {
            let p = compress(s, s.len()).unwrap();
            assert_eq!(decompress(&p, s.len()).unwrap(), s);
        }
    }
}
