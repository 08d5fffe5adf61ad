//! The x87 80-bit `long double` in which Redis adds INCRBYFLOAT and HINCRBYFLOAT increments:
//! parsed as `strtold` does, added with one rounding to a 64-bit mantissa, printed as
//! `%.17Lf` with the trailing zeros cut (Redis's `LD_STR_HUMAN`). Doubles would print other
//! digits: 0.1 + 0.2 is `0.3` in Redis, 0.30000000000000004 in doubles.
//!
//! Values are exact big-integer arithmetic underneath, rounded once per operation, so the
//! results are the x87's (round to nearest, ties to even). Subnormals are not modelled: a
//! result that small reads as zero, one that large as infinity (Redis refuses both anyway).

use std::cmp::Ordering;

/// Bits in the mantissa of an x87 extended double.
const MANTISSA: u32 = 64;
/// Exponents (of the mantissa's lowest bit) beyond these are infinity, or zero.
const MAX_EXP: i64 = 16384 - MANTISSA as i64;
const MIN_EXP: i64 = -16382 - MANTISSA as i64;
/// Decimal exponents beyond which a number certainly overflows or underflows.
const MAX_DECIMAL_EXP: i64 = 5000;

/// A `long double`: `±mantissa × 2^exp`, the mantissa's top bit set unless it is zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LongDouble {
    negative: bool,
    value: Magnitude,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Magnitude {
    Zero,
    Finite { mantissa: u64, exp: i64 },
    Infinite,
}

impl LongDouble {
    /// Zero.
    pub(crate) const ZERO: LongDouble = LongDouble { negative: false, value: Magnitude::Zero };

    /// Parses `text` as Redis's `string2ld`: all of it a number `strtold` reads (decimal,
    /// hexadecimal, `inf`), no leading space, not NaN, and in range (not overflowing to
    /// infinity, nor a non-zero number rounding to zero).
    #[must_use]
    pub(crate) fn parse(text: &[u8]) -> Option<LongDouble> {
        let (negative, body) = match text.first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let first = *body.first()?;
        if first.is_ascii_alphabetic() {
            let word = body.to_ascii_lowercase();
            return (word == b"inf" || word == b"infinity")
                .then_some(LongDouble { negative, value: Magnitude::Infinite });
        }
        if body.len() > 2 && first == b'0' && (body[1] | 0x20) == b'x' {
            // Hexadecimal: rare enough to go through a double (exact for up to 13 hex digits).
            let (f, out_of_range) = crate::num::strtod(text)?;
            return (!out_of_range && !f.is_nan()).then(|| LongDouble::from_f64(f));
        }
        let value = decimal(body)?;
        Some(LongDouble { negative, value })
    }

    /// The exact value of a double.
    #[must_use]
    pub(crate) fn from_f64(f: f64) -> LongDouble {
        let negative = f.is_sign_negative();
        let value = if f.is_infinite() {
            Magnitude::Infinite
        } else if f == 0.0 {
            Magnitude::Zero
        } else {
            let bits = f.to_bits();
            let raw_exp = ((bits >> 52) & 0x7ff) as i64;
            let frac = bits & ((1 << 52) - 1);
            let (m, e) = if raw_exp == 0 { (frac, -1074) } else { (frac | 1 << 52, raw_exp - 1075) };
            normalize(&Big::from_u64(m), e, false)
        };
        LongDouble { negative, value }
    }

    /// Whether this is an infinity (an overflowed sum).
    #[must_use]
    pub(crate) fn is_infinite(&self) -> bool {
        self.value == Magnitude::Infinite
    }

    /// `self + other`, rounded once; `None` for infinity minus infinity (NaN).
    #[must_use]
    pub(crate) fn checked_add(self, other: LongDouble) -> Option<LongDouble> {
        let (a, b) = match (self.value, other.value) {
            (Magnitude::Infinite, Magnitude::Infinite) if self.negative != other.negative => return None,
            (Magnitude::Infinite, _) => return Some(self),
            (_, Magnitude::Infinite) => return Some(other),
            (Magnitude::Zero, Magnitude::Zero) => {
                return Some(LongDouble { negative: self.negative && other.negative, value: Magnitude::Zero })
            }
            (Magnitude::Zero, _) => return Some(other),
            (_, Magnitude::Zero) => return Some(self),
            (Magnitude::Finite { mantissa: ma, exp: ea }, Magnitude::Finite { mantissa: mb, exp: eb }) => {
                ((ma, ea), (mb, eb))
            }
        };
        // Far apart, the smaller addend only breaks the tie of rounding the larger one: stand it
        // in by a unit far enough below for any value there to round alike.
        let gap = 2 * i64::from(MANTISSA) + 2;
        let (a, b) = match a.1 - b.1 {
            d if d > gap => (a, (1, a.1 - gap)),
            d if d < -gap => ((1, b.1 - gap), b),
            _ => (a, b),
        };
        let low = a.1.min(b.1);
        let (x, y) = (Big::from_u64(a.0).shl((a.1 - low) as u32), Big::from_u64(b.0).shl((b.1 - low) as u32));
        let (negative, sum) = if self.negative == other.negative {
            (self.negative, x.add(&y))
        } else {
            match x.cmp(&y) {
                Ordering::Equal => return Some(LongDouble::ZERO),
                Ordering::Greater => (self.negative, x.sub(&y)),
                Ordering::Less => (other.negative, y.sub(&x)),
            }
        };
        Some(LongDouble { negative, value: normalize(&sum, low, false) })
    }

    /// `%.17Lf` with trailing zeros (and a bare point) cut, `-0` as `0`: Redis's
    /// `ld2string(LD_STR_HUMAN)`; `inf` and `-inf` for infinities.
    #[must_use]
    pub(crate) fn to_human(self) -> String {
        let (mantissa, exp) = match self.value {
            Magnitude::Infinite => return if self.negative { "-inf" } else { "inf" }.to_owned(),
            Magnitude::Zero => return "0".to_owned(),
            Magnitude::Finite { mantissa, exp } => (mantissa, exp),
        };
        // round(value × 10^17), ties to even.
        let scaled = Big::from_u64(mantissa).mul_pow10(17);
        let units = if exp >= 0 {
            scaled.shl(exp as u32)
        } else {
            let shift = exp.unsigned_abs() as u32;
            let (q, half, sticky) = scaled.shr_round_bits(shift);
            if half && (sticky || q.is_odd()) {
                q.add(&Big::from_u64(1))
            } else {
                q
            }
        };
        let mut digits = units.to_decimal();
        if digits.len() < 18 {
            digits = format!("{digits:0>18}");
        }
        let (int, frac) = digits.split_at(digits.len() - 17);
        let frac = frac.trim_end_matches('0');
        let text = if frac.is_empty() { int.to_owned() } else { format!("{int}.{frac}") };
        if self.negative && text != "0" {
            format!("-{text}")
        } else {
            text
        }
    }
}

/// A decimal body (no sign): digits with an optional point and exponent, correctly rounded.
fn decimal(body: &[u8]) -> Option<Magnitude> {
    let mut digits = Vec::with_capacity(body.len());
    let (mut i, mut point, mut frac_digits) = (0, false, 0i64);
    while let Some(&b) = body.get(i) {
        match b {
            b'0'..=b'9' => {
                digits.push(b - b'0');
                frac_digits += i64::from(point);
            }
            b'.' if !point => point = true,
            _ => break,
        }
        i += 1;
    }
    if digits.is_empty() {
        return None;
    }
    let mut exp10 = 0i64;
    if i < body.len() {
        if body[i] | 0x20 != b'e' {
            return None;
        }
        let text = std::str::from_utf8(&body[i + 1..]).ok()?;
        let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Saturate: anything this far out is infinity or zero.
        exp10 =
            text.parse::<i64>().unwrap_or(if text.starts_with('-') { i64::MIN / 2 } else { i64::MAX / 2 });
    }
    let first = digits.iter().position(|&d| d != 0);
    let Some(first) = first else { return Some(Magnitude::Zero) };
    let digits = &digits[first..];
    let exp10 = exp10.saturating_sub(frac_digits);
    let magnitude = exp10.saturating_add(digits.len() as i64);
    if !(-MAX_DECIMAL_EXP..=MAX_DECIMAL_EXP).contains(&magnitude) {
        return None; // out of range either way: ERANGE
    }
    let n = Big::from_digits(digits);
    let value = if exp10 >= 0 {
        normalize(&n.mul_pow10(exp10 as u32), 0, false)
    } else {
        // n / 10^-exp10, with enough quotient bits to round: 2 more than the mantissa.
        let den = Big::from_u64(1).mul_pow10(exp10.unsigned_abs() as u32);
        let k = (den.bits() + i64::from(MANTISSA) + 2 - n.bits()).max(0);
        let (q, rest) = n.shl(k as u32).div_rem(&den);
        normalize(&q, -k, !rest.is_zero())
    };
    (value != Magnitude::Infinite && value != Magnitude::Zero).then_some(value)
}

/// `n × 2^exp` (plus a non-zero remainder below it if `sticky`) rounded to 64 bits.
fn normalize(n: &Big, exp: i64, sticky: bool) -> Magnitude {
    let bits = n.bits();
    if bits == 0 {
        return Magnitude::Zero;
    }
    let drop = bits - i64::from(MANTISSA);
    let (mantissa, exp) = if drop <= 0 {
        (n.shl(drop.unsigned_abs() as u32).low_u64(), exp + drop)
    } else {
        let (q, half, rest) = n.shr_round_bits(drop as u32);
        let up = half && (rest || sticky || q.is_odd());
        let q = if up { q.add(&Big::from_u64(1)) } else { q };
        // Rounding up can carry into a 65th bit.
        if q.bits() > i64::from(MANTISSA) {
            (q.shr_round_bits(1).0.low_u64(), exp + drop + 1)
        } else {
            (q.low_u64(), exp + drop)
        }
    };
    if exp > MAX_EXP {
        Magnitude::Infinite
    } else if exp < MIN_EXP {
        Magnitude::Zero
    } else {
        Magnitude::Finite { mantissa, exp }
    }
}

/// An unsigned big integer, little-endian 32-bit limbs, no high zero limbs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(n: u64) -> Big {
        Big(vec![n as u32, (n >> 32) as u32]).trimmed()
    }

    fn from_digits(digits: &[u8]) -> Big {
        let mut n = Big(Vec::new());
        for chunk in digits.chunks(9) {
            let value = chunk.iter().fold(0u32, |v, &d| v * 10 + u32::from(d));
            n = n.mul_small(10u32.pow(chunk.len() as u32)).add(&Big::from_u64(u64::from(value)));
        }
        n
    }

    fn trimmed(mut self) -> Big {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
        self
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn is_odd(&self) -> bool {
        self.0.first().is_some_and(|l| l & 1 == 1)
    }

    fn bits(&self) -> i64 {
        self.0.last().map_or(0, |top| (self.0.len() as i64 - 1) * 32 + i64::from(32 - top.leading_zeros()))
    }

    fn bit(&self, i: u32) -> bool {
        self.0.get((i / 32) as usize).is_some_and(|l| l >> (i % 32) & 1 == 1)
    }

    fn low_u64(&self) -> u64 {
        u64::from(self.0.first().copied().unwrap_or(0)) | u64::from(self.0.get(1).copied().unwrap_or(0)) << 32
    }

    fn mul_small(&self, m: u32) -> Big {
        let mut carry = 0u64;
        let mut out: Vec<u32> = self
            .0
            .iter()
            .map(|&l| {
                let v = u64::from(l) * u64::from(m) + carry;
                carry = v >> 32;
                v as u32
            })
            .collect();
        out.push(carry as u32);
        Big(out).trimmed()
    }

    fn mul_pow10(&self, mut e: u32) -> Big {
        let mut n = self.clone();
        while e > 0 {
            let step = e.min(9);
            n = n.mul_small(10u32.pow(step));
            e -= step;
        }
        n
    }

    fn add(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len().max(other.0.len()) + 1);
        let mut carry = 0u64;
        for i in 0..self.0.len().max(other.0.len()) {
            let v = u64::from(self.0.get(i).copied().unwrap_or(0))
                + u64::from(other.0.get(i).copied().unwrap_or(0))
                + carry;
            out.push(v as u32);
            carry = v >> 32;
        }
        out.push(carry as u32);
        Big(out).trimmed()
    }

    /// `self - other`; `other` must not be larger.
    fn sub(&self, other: &Big) -> Big {
        let mut out = Vec::with_capacity(self.0.len());
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let mut v = i64::from(self.0[i]) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(v < 0);
            v += borrow << 32;
            out.push(v as u32);
        }
        Big(out).trimmed()
    }

    fn shl(&self, bits: u32) -> Big {
        if self.is_zero() {
            return Big(Vec::new());
        }
        let (limbs, rest) = ((bits / 32) as usize, bits % 32);
        let mut out = vec![0u32; limbs];
        let mut carry = 0u32;
        for &l in &self.0 {
            out.push(if rest == 0 { l } else { l << rest | carry });
            carry = if rest == 0 { 0 } else { l >> (32 - rest) };
        }
        out.push(carry);
        Big(out).trimmed()
    }

    /// `self >> bits`, with the highest bit shifted out and whether any lower one was set.
    fn shr_round_bits(&self, bits: u32) -> (Big, bool, bool) {
        if bits == 0 {
            return (self.clone(), false, false);
        }
        let half = self.bit(bits - 1);
        let sticky = (0..bits - 1).any(|i| self.bit(i));
        let (limbs, rest) = ((bits / 32) as usize, bits % 32);
        let src = self.0.get(limbs..).unwrap_or(&[]);
        let out = (0..src.len())
            .map(|i| {
                let hi = src.get(i + 1).copied().unwrap_or(0);
                if rest == 0 {
                    src[i]
                } else {
                    src[i] >> rest | hi << (32 - rest)
                }
            })
            .collect();
        (Big(out).trimmed(), half, sticky)
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// Quotient and remainder, bit by bit: quotients here have under a hundred bits.
    fn div_rem(&self, den: &Big) -> (Big, Big) {
        let mut rem = self.clone();
        let mut q = Big(Vec::new());
        let top = self.bits() - den.bits();
        for i in (0..=top.max(-1)).rev() {
            let shifted = den.shl(i as u32);
            if rem.cmp(&shifted) != Ordering::Less {
                rem = rem.sub(&shifted);
                q = q.add(&Big::from_u64(1).shl(i as u32));
            }
        }
        (q, rem)
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".to_owned();
        }
        let mut chunks = Vec::new();
        let mut n = self.0.clone();
        while !n.is_empty() {
            let mut rem = 0u64;
            for l in n.iter_mut().rev() {
                let v = rem << 32 | u64::from(*l);
                *l = (v / 1_000_000_000) as u32;
                rem = v % 1_000_000_000;
            }
            while n.last() == Some(&0) {
                n.pop();
            }
            chunks.push(rem as u32);
        }
        let mut text = chunks.pop().map_or_else(String::new, |c| c.to_string());
        for c in chunks.iter().rev() {
            text.push_str(&format!("{c:09}"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(steps: &[&str]) -> String {
        let mut v = LongDouble::ZERO;
        for s in steps {
            v = v.checked_add(LongDouble::parse(s.as_bytes()).unwrap()).unwrap();
            v = LongDouble::parse(v.to_human().as_bytes()).unwrap();
        }
        v.to_human()
    }

    /// Each sequence of INCRBYFLOATs, and what redis-server 7.0.15 (x86-64) replied last.
    #[test]
    fn sums_print_as_redis_does() {
        for (steps, want) in [
            (&["0.1", "0.2"][..], "0.3"),
            (&["1000002.5", "-0.1"], "1000002.39999999999997726"),
            (&["2.5", "-0.1", "-0.1", "-0.1"], "2.2"),
            (&["10.50", "0.1"], "10.6"),
            (&["5.0e3", "2.0e2"], "5200"),
            (&["-9223372036854775807", "1"], "-9223372036854775806"),
            (&["3", "-3"], "0"),
            (&["-0", "-0"], "0"),
            (&["1e-17"], "0.00000000000000001"),
            (&["1e-18"], "0"),
            (&["-1e-18"], "0"),
        ] {
            assert_eq!(sum(steps), want, "{steps:?}");
        }
        let big = LongDouble::parse(b"1e400").unwrap().to_human();
        assert!(
            big.starts_with("10000000000000000000281880683947586514586453433629052038625910693539685534"),
            "{big}"
        );
        assert_eq!(big.len(), 401);
    }

    #[test]
    fn parsing_follows_string2ld() {
        for bad in ["", " 1", "1 ", "abc", "nan", "1e", "1e99999", "-1e99999", "1e-99999", "0x", "."] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        for good in ["0", "-0.0", "inf", "-Infinity", "0x10", "1e4000", ".5", "5.", "+7", "0e-99999"] {
            assert!(LongDouble::parse(good.as_bytes()).is_some(), "{good:?}");
        }
        let inf = LongDouble::parse(b"inf").unwrap();
        assert!(inf.checked_add(LongDouble::parse(b"-inf").unwrap()).is_none());
        assert!(LongDouble::parse(b"1.1e4932")
            .unwrap()
            .checked_add(LongDouble::parse(b"1.1e4932").unwrap())
            .unwrap()
            .is_infinite());
    }
}
