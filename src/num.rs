//! Numbers: Redis's number syntax, shared by storage (score bounds) and commands (arguments):
//! what C's `strtod` reads, hexadecimal floats included; and SplitMix64's mixing function, for
//! seeds and ids.

/// What C's `strtod` makes of the whole of `text`: the value and whether it was out of range
/// (`ERANGE`: a finite number too large for a double, or a non-zero one that rounds to zero).
/// `None` unless every byte belongs to the number. Leading spaces are the caller's business.
#[must_use]
pub(crate) fn strtod(text: &[u8]) -> Option<(f64, bool)> {
    let (negative, body) = match text.first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let hex = body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x';
    // The digits before the exponent: any but zero means the number is not zero.
    let (magnitude, nonzero) = if hex {
        let mantissa = body[2..].split(|&b| b | 0x20 == b'p').next().unwrap_or_default();
        (hex_float(&body[2..])?, mantissa.iter().any(|&b| b.is_ascii_hexdigit() && b != b'0'))
    } else {
        let mantissa = body.split(|&b| b | 0x20 == b'e').next().unwrap_or_default();
        (
            std::str::from_utf8(body).ok()?.parse::<f64>().ok()?,
            mantissa.iter().any(|b| (b'1'..=b'9').contains(b)),
        )
    };
    // `inf` and `infinity` are in range; a number that overflows to infinity is not.
    let literal = body.first().is_some_and(u8::is_ascii_alphabetic);
    let out_of_range = magnitude.is_infinite() && !literal || magnitude == 0.0 && nonzero;
    Some((if negative { -magnitude } else { magnitude }, out_of_range))
}

/// A hexadecimal float after its `0x`: digits, an optional point and digits (one digit at
/// least), an optional binary exponent `p[+-]n`.
fn hex_float(text: &[u8]) -> Option<f64> {
    let (mut mantissa, mut exponent, mut digits, mut point) = (0u128, 0i64, 0usize, false);
    let mut i = 0;
    while let Some(&b) = text.get(i) {
        if b == b'.' && !point {
            point = true;
        } else if let Some(d) = (b as char).to_digit(16) {
            digits += 1;
            if mantissa >> 120 == 0 {
                mantissa = mantissa << 4 | u128::from(d);
                exponent -= if point { 4 } else { 0 };
            } else {
                exponent += if point { 0 } else { 4 };
            }
        } else {
            break;
        }
        i += 1;
    }
    if digits == 0 {
        return None;
    }
    if let Some(rest) = text.get(i..).filter(|r| !r.is_empty()) {
        let rest = rest.strip_prefix(b"p").or_else(|| rest.strip_prefix(b"P"))?;
        let e: i64 = std::str::from_utf8(rest).ok()?.parse().ok()?;
        exponent = exponent.saturating_add(e);
    }
    let exponent = i32::try_from(exponent.clamp(-5000, 5000)).ok()?;
    // Scale in two steps so that neither factor overflows or underflows on its own.
    Some(mantissa as f64 * 2f64.powi(exponent / 2) * 2f64.powi(exponent - exponent / 2))
}

/// SplitMix64's increment: the golden ratio in 64 bits.
pub(crate) const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// One step of SplitMix64 from `seed`: a well-spread 64-bit value (for hashing seeds apart).
#[must_use]
pub fn splitmix(seed: u64) -> u64 {
    mix(seed.wrapping_add(GAMMA))
}

/// SplitMix64's output function: a cheap, well-spread 64-bit mix.
#[must_use]
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A double as C's `printf("%.17g")` writes it: how Redis 7.0 replies with a double (scores).
#[must_use]
pub(crate) fn format_g17(d: f64) -> String {
    if d.is_nan() {
        return "nan".to_owned();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if d == 0.0 {
        return if d.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    // %g picks its style from the exponent of the 17-digit scientific form.
    let sci = format!("{d:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        format!("{}e{}{:02}", trim(mantissa), if exp < 0 { '-' } else { '+' }, exp.unsigned_abs())
    } else {
        trim(&format!("{d:.*}", (16 - exp) as usize)).to_owned()
    }
}

/// A double as Redis 7.0's `d2string` writes it (scores in listpacks and ZSCAN): an integer
/// within ±2^52 plainly, anything else as `%.17g`.
#[must_use]
pub(crate) fn d2string(d: f64) -> String {
    if d == d.trunc() && d > -4_503_599_627_370_495.0 && d < 4_503_599_627_370_496.0 && d != 0.0 {
        format!("{}", d as i64)
    } else {
        format_g17(d)
    }
}

/// Parses a decimal integer the way Redis's `string2ll` does: no spaces, no `+`, no leading zeros.
#[must_use]
pub(crate) fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first()? {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 20 || (digits[0] == b'0' && (digits.len() > 1 || neg)) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        let d = i64::from(d - b'0');
        v = if neg { v.checked_mul(10)?.checked_sub(d)? } else { v.checked_mul(10)?.checked_add(d)? };
    }
    Some(v)
}
