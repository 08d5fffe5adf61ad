//! HyperLogLog as Redis 7.0 keeps it (`hyperloglog.c`), in a string value: the `HYLL` header
//! (encoding, cached cardinality), then 16384 six-bit registers, either dense (12288 bytes) or
//! sparse (ZERO, XZERO and VAL run opcodes). Every byte is Redis's, so a value moved by DUMP,
//! RDB or replication between ferrokey and redis-server counts the same, and GET shows the
//! same bytes. Pure functions over the string's bytes; a corrupt value is an error, never a
//! panic.

/// Registers: 2^14.
pub(crate) const REGISTERS: usize = 1 << 14;
const P: u32 = 14;
const Q: u32 = 64 - P;
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
/// The header: "HYLL", encoding, 3 unused bytes, the cardinality cache (8 bytes LE).
pub(crate) const HEADER: usize = 16;
/// A dense value's size.
pub(crate) const DENSE_SIZE: usize = HEADER + (REGISTERS * BITS).div_ceil(8);
const DENSE: u8 = 0;
const SPARSE: u8 = 1;
const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;
const ALPHA_INF: f64 = 0.721_347_520_444_481_7;

/// The string is not a HyperLogLog (Redis's `isHLLObjectOrReply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotHll;

/// The HyperLogLog's registers do not read (Redis's INVALIDOBJ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Corrupt;

/// An empty HyperLogLog: sparse, all registers zero (as XZERO runs), its cache valid at 0.
#[must_use]
pub(crate) fn new() -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER + 2 * REGISTERS.div_ceil(XZERO_MAX_LEN));
    v.extend_from_slice(b"HYLL");
    v.push(SPARSE);
    v.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        push_xzero(&mut v, run);
        left -= run;
    }
    v
}

fn push_xzero(v: &mut Vec<u8>, len: usize) {
    let l = len - 1;
    v.extend_from_slice(&[((l >> 8) as u8) | 0x40, (l & 0xff) as u8]);
}

/// Checks that `b` is a HyperLogLog: magic, a known encoding, a dense one's exact size.
///
/// # Errors
/// [`NotHll`].
pub(crate) fn check(b: &[u8]) -> Result<(), NotHll> {
    if b.len() < HEADER || &b[..4] != b"HYLL" || b[4] > SPARSE || (b[4] == DENSE && b.len() != DENSE_SIZE) {
        return Err(NotHll);
    }
    Ok(())
}

/// The cached cardinality, if valid.
#[must_use]
pub(crate) fn cached(b: &[u8]) -> Option<u64> {
    let card: [u8; 8] = b.get(8..16)?.try_into().ok()?;
    (card[7] & 0x80 == 0).then(|| u64::from_le_bytes(card))
}

/// Stores the cardinality in the cache.
pub(crate) fn set_cache(b: &mut [u8], card: u64) {
    if let Some(c) = b.get_mut(8..16) {
        c.copy_from_slice(&card.to_le_bytes());
    }
}

/// Marks the cache stale.
pub(crate) fn invalidate(b: &mut [u8]) {
    if let Some(c) = b.get_mut(15) {
        *c |= 0x80;
    }
}

/// Redis's MurmurHash64A, seed `0xadc83b19`.
fn murmur64a(key: &[u8]) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h: u64 = 0xadc8_3b19 ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut k = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &byte) in tail.iter().enumerate() {
            h ^= u64::from(byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// The register `element` addresses and the length of its run of zeroes plus one (Redis's
/// `hllPatLen`).
#[must_use]
pub(crate) fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element);
    let index = (hash & (REGISTERS as u64 - 1)) as usize;
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = u16::from(regs.get(byte).copied().unwrap_or(0));
    let b1 = u16::from(regs.get(byte + 1).copied().unwrap_or(0));
    (((b0 >> fb) | (b1 << (8 - fb))) as u8) & REGISTER_MAX
}

fn dense_set(regs: &mut [u8], i: usize, v: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    if let Some(b) = regs.get_mut(byte) {
        *b &= !(REGISTER_MAX << fb);
        *b |= v << fb;
    }
    if fb > 2 {
        if let Some(b) = regs.get_mut(byte + 1) {
            let fb8 = 8 - fb;
            *b &= !(REGISTER_MAX >> fb8);
            *b |= v >> fb8;
        }
    }
}

/// One sparse opcode: (register count, value, opcode bytes); `None` past the end, or for an
/// XZERO cut short (a write does not touch such a value).
fn opcode(b: &[u8], at: usize) -> Option<(usize, u8, usize)> {
    let op = *b.get(at)?;
    if op & 0xc0 == 0x40 && at + 1 >= b.len() {
        return None;
    }
    read_opcode(b, at)
}

/// One sparse opcode as Redis's readers (count, merge, conversion to dense) take it: an XZERO
/// cut short by the end reads its second byte as 0, the NUL Redis's strings end with, so a
/// value corrupt that way counts as corrupt as in Redis (its run overshoots the registers).
fn read_opcode(b: &[u8], at: usize) -> Option<(usize, u8, usize)> {
    let op = *b.get(at)?;
    Some(match op & 0xc0 {
        0x00 => (usize::from(op & 0x3f) + 1, 0, 1),
        0x40 => ((usize::from(op & 0x3f) << 8 | usize::from(b.get(at + 1).copied().unwrap_or(0))) + 1, 0, 2),
        _ => (usize::from(op & 0x3) + 1, ((op >> 2) & 0x1f) + 1, 1),
    })
}

fn val_op(value: u8, len: usize) -> u8 {
    ((value - 1) << 2) | (len as u8 - 1) | 0x80
}

/// Rewrites a sparse value dense (Redis's `hllSparseToDense`).
fn to_dense(b: &mut Vec<u8>) -> Result<(), Corrupt> {
    if b[4] == DENSE {
        return Ok(());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HEADER].copy_from_slice(&b[..HEADER]);
    dense[4] = DENSE;
    let (mut at, mut idx) = (HEADER, 0usize);
    while let Some((run, value, len)) = read_opcode(b, at) {
        if value > 0 {
            if idx + run > REGISTERS {
                break;
            }
            (idx..idx + run).for_each(|i| dense_set(&mut dense[HEADER..], i, value));
        }
        idx += run;
        at += len;
    }
    if idx != REGISTERS {
        return Err(Corrupt);
    }
    *b = dense;
    Ok(())
}

/// Raises register `index` to `count` if lower; whether it changed. A sparse value that would
/// pass `sparse_max` bytes, or a count beyond what sparse holds, turns dense (Redis's
/// `hllSparseSet` and `hllDenseSet`).
///
/// # Errors
/// [`Corrupt`] for registers that do not read.
pub(crate) fn set(b: &mut Vec<u8>, index: usize, count: u8, sparse_max: usize) -> Result<bool, Corrupt> {
    if b[4] == DENSE {
        let regs = &mut b[HEADER..];
        if count > dense_get(regs, index) {
            dense_set(regs, index, count);
            return Ok(true);
        }
        return Ok(false);
    }
    if count > VAL_MAX_VALUE {
        return promote(b, index, count);
    }
    // Find the opcode covering `index`.
    let (mut at, mut first, mut prev) = (HEADER, 0usize, None);
    let (run, value, oplen) = loop {
        let Some((run, value, len)) = opcode(b, at) else { return Err(Corrupt) };
        if index < first + run {
            break (run, value, len);
        }
        prev = Some(at);
        at += len;
        first += run;
    };
    let is_val = b[at] & 0x80 != 0;
    if is_val && value >= count {
        return Ok(false);
    }
    if (is_val || oplen == 1) && run == 1 {
        b[at] = val_op(count, 1);
    } else {
        // Split the run: what comes before `index`, `index` itself, what comes after.
        let last = first + run - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        let zeros = |seq: &mut Vec<u8>, len: usize| {
            if len > ZERO_MAX_LEN {
                push_xzero(seq, len);
            } else {
                seq.push((len - 1) as u8);
            }
        };
        if is_val {
            if index != first {
                seq.push(val_op(value, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(value, last - index));
            }
        } else {
            if index != first {
                zeros(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                zeros(&mut seq, last - index);
            }
        }
        if seq.len() > oplen && b.len() + seq.len() - oplen > sparse_max {
            return promote(b, index, count);
        }
        b.splice(at..at + oplen, seq);
    }
    // Merge adjacent VAL opcodes of one value, up to five opcodes from the one before.
    let mut p = prev.unwrap_or(HEADER);
    let mut scan = 5;
    while p < b.len() && scan > 0 {
        scan -= 1;
        let op = b[p];
        if op & 0xc0 == 0x40 {
            p += 2;
            continue;
        }
        if op & 0xc0 == 0 {
            p += 1;
            continue;
        }
        if let Some(&next) = b.get(p + 1) {
            if next & 0x80 != 0 {
                let (v1, v2) = (((op >> 2) & 0x1f) + 1, ((next >> 2) & 0x1f) + 1);
                let len = usize::from(op & 3) + usize::from(next & 3) + 2;
                if v1 == v2 && len <= VAL_MAX_LEN {
                    b[p + 1] = val_op(v1, len);
                    b.remove(p);
                    continue;
                }
            }
        }
        p += 1;
    }
    invalidate(b);
    Ok(true)
}

fn promote(b: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, Corrupt> {
    to_dense(b)?;
    let regs = &mut b[HEADER..];
    if count > dense_get(regs, index) {
        dense_set(regs, index, count);
    }
    Ok(true)
}

/// Adds `element`; whether a register changed (PFADD).
///
/// # Errors
/// [`Corrupt`].
pub(crate) fn add(b: &mut Vec<u8>, element: &[u8], sparse_max: usize) -> Result<bool, Corrupt> {
    let (index, count) = pattern(element);
    set(b, index, count, sparse_max)
}

/// Raises `max` to this HyperLogLog's registers (Redis's `hllMerge`).
///
/// # Errors
/// [`Corrupt`].
pub(crate) fn merge_into(max: &mut [u8], b: &[u8]) -> Result<(), Corrupt> {
    if b[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate().take(REGISTERS) {
            *m = (*m).max(dense_get(&b[HEADER..], i));
        }
        return Ok(());
    }
    let (mut at, mut i) = (HEADER, 0usize);
    while let Some((run, value, len)) = read_opcode(b, at) {
        if value > 0 {
            if i + run > REGISTERS {
                break;
            }
            max[i..i + run].iter_mut().for_each(|m| *m = (*m).max(value));
        }
        i += run;
        at += len;
    }
    if i != REGISTERS {
        return Err(Corrupt);
    }
    Ok(())
}

/// Sets every non-zero register of `max` into `b` (PFMERGE's destination), dense first when
/// `dense`.
///
/// # Errors
/// [`Corrupt`].
pub(crate) fn store_max(b: &mut Vec<u8>, max: &[u8], dense: bool, sparse_max: usize) -> Result<(), Corrupt> {
    if dense {
        to_dense(b)?;
    }
    for (i, &m) in max.iter().enumerate() {
        if m > 0 {
            // A corrupt sparse destination is skipped as Redis skips it (its return unchecked).
            let _ = set(b, i, m, sparse_max);
        }
    }
    invalidate(b);
    Ok(())
}

/// Whether the value is dense.
#[must_use]
pub(crate) fn is_dense(b: &[u8]) -> bool {
    b.get(4) == Some(&DENSE)
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let before = z;
        z += x * y;
        y += y;
        if before == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let before = z;
        y *= 0.5;
        z -= (1.0 - x).powf(2.0) * y;
        if before == z {
            return z / 3.0;
        }
    }
}

/// The estimate from a histogram of register values (Redis's `hllCount`, Ertl's estimator).
fn estimate(histo: &[u32; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - f64::from(histo[Q as usize + 1])) / m);
    for j in (1..=Q as usize).rev() {
        z += f64::from(histo[j]);
        z *= 0.5;
    }
    z += m * sigma(f64::from(histo[0]) / m);
    (ALPHA_INF * m * m / z).round() as u64
}

/// The cardinality of a HyperLogLog's registers (not its cache).
///
/// # Errors
/// [`Corrupt`] for sparse registers that do not add up to 16384.
pub(crate) fn count(b: &[u8]) -> Result<u64, Corrupt> {
    let mut histo = [0u32; 64];
    if b[4] == DENSE {
        for i in 0..REGISTERS {
            histo[usize::from(dense_get(&b[HEADER..], i))] += 1;
        }
    } else {
        let (mut at, mut idx) = (HEADER, 0usize);
        while let Some((run, value, len)) = read_opcode(b, at) {
            idx += run;
            if idx > REGISTERS {
                return Err(Corrupt);
            }
            histo[usize::from(value)] += run as u32;
            at += len;
        }
        if idx != REGISTERS {
            return Err(Corrupt);
        }
    }
    Ok(estimate(&histo))
}

/// The cardinality of registers held one per byte (PFCOUNT over several keys).
#[must_use]
pub(crate) fn count_max(max: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    max.iter().for_each(|&r| histo[usize::from(r & 63)] += 1);
    estimate(&histo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_near_the_truth_sparse_and_dense() {
        let mut h = new();
        assert_eq!(count(&h), Ok(0));
        for i in 0..1000u32 {
            add(&mut h, format!("element-{i}").as_bytes(), 3000).unwrap();
        }
        assert!(!is_dense(&h));
        let sparse = count(&h).unwrap();
        assert!((980..=1020).contains(&sparse), "{sparse}");
        for i in 1000..100_000u32 {
            add(&mut h, format!("element-{i}").as_bytes(), 3000).unwrap();
        }
        assert!(is_dense(&h) && h.len() == DENSE_SIZE);
        let dense = count(&h).unwrap();
        assert!((98_000..=102_000).contains(&dense), "{dense}");
        let mut max = vec![0u8; REGISTERS];
        merge_into(&mut max, &h).unwrap();
        assert_eq!(count_max(&max), dense);
    }

    #[test]
    fn corrupt_registers_are_errors() {
        let mut h = new();
        h.truncate(HEADER + 1);
        assert_eq!(count(&h), Err(Corrupt));
        assert_eq!(add(&mut h, b"x", 3000).err(), Some(Corrupt));
        assert_eq!(check(b"HYLL"), Err(NotHll));
        let mut dense = vec![0u8; DENSE_SIZE - 1];
        dense[..4].copy_from_slice(b"HYLL");
        assert_eq!(check(&dense), Err(NotHll));
    }
}
