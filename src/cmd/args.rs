//! Argument parsing shared by command families, and Redis's standard error replies.

use bytes::Bytes;

use crate::facade::resp::parse_i64;
use crate::facade::Reply;

/// `-ERR syntax error`.
pub const SYNTAX: Reply = Reply::error("ERR syntax error");
/// `-WRONGTYPE ...`.
pub const WRONGTYPE: Reply =
    Reply::error("WRONGTYPE Operation against a key holding the wrong kind of value");
/// `-ERR value is not an integer or out of range`.
pub const NOT_INT: Reply = Reply::error("ERR value is not an integer or out of range");
/// `-ERR value is out of range, must be positive`: a count that is negative or not a number.
pub const NOT_POSITIVE: Reply = Reply::error("ERR value is out of range, must be positive");
/// `-ERR value is not a valid float`.
pub const NOT_FLOAT: Reply = Reply::error("ERR value is not a valid float");
/// `-ERR no such key`.
pub const NO_SUCH_KEY: Reply = Reply::error("ERR no such key");
/// `-ERR string exceeds maximum allowed size (proto-max-bulk-len)`.
pub const TOO_BIG: Reply = Reply::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)");

/// `-ERR wrong number of arguments for '<name>' command`.
#[must_use]
pub fn wrong_args(name: &str) -> Reply {
    Reply::Error(format!("ERR wrong number of arguments for '{name}' command").into())
}

/// `-ERR unknown subcommand 'x'. Try CMD HELP.`, with the subcommand as the client wrote it.
#[must_use]
pub fn unknown_subcommand(command: &str, sub: &[u8]) -> Reply {
    Reply::Error(
        format!("ERR unknown subcommand '{}'. Try {command} HELP.", String::from_utf8_lossy(sub)).into(),
    )
}

/// `-ERR invalid expire time in '<name>' command`.
#[must_use]
pub fn invalid_expire(args: &[Bytes]) -> Reply {
    Reply::Error(
        format!("ERR invalid expire time in '{}' command", crate::engine::command::display_name(args)).into(),
    )
}

/// An integer argument, or the Redis error reply.
pub fn int(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or(NOT_INT)
}

/// Most elements HRANDFIELD, SRANDMEMBER or ZRANDMEMBER may return for a negative count: the
/// reply is built in memory before it is sent, so an absurd count must not exhaust the server.
pub const MAX_RANDOM_COUNT: u64 = 10_000_000;

/// A random-elements count (negative: elements may repeat). Redis accepts -LONG_MAX to
/// LONG_MAX and then tries to build the reply; past [`MAX_RANDOM_COUNT`] repeated elements
/// ferrokey refuses, with the text of Redis's range errors.
pub fn random_count(arg: &[u8]) -> Result<i64, Reply> {
    let n = int(arg)?;
    if n == i64::MIN {
        return Err(Reply::error(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    Ok(n)
}

/// Refuses a count of more than [`MAX_RANDOM_COUNT`] repeated elements (checked after the
/// syntax, as Redis checks its own bound for the WITH forms).
pub fn bounded_repeats(n: i64) -> Result<i64, Reply> {
    if n < 0 && n.unsigned_abs() > MAX_RANDOM_COUNT {
        return Err(Reply::error("ERR value is out of range"));
    }
    Ok(n)
}

/// HRANDFIELD's and ZRANDMEMBER's `key [count [FLAG]]`: the count, if given, and whether the
/// flag (WITHVALUES, WITHSCORES) follows it.
pub fn random_args(args: &[Bytes], flag: &str) -> Result<(Option<i64>, bool), Reply> {
    let count = args.get(2).map(|c| random_count(c)).transpose()?;
    let with = match args.get(3) {
        None => false,
        Some(a) if is(a, flag) && args.len() == 4 => true,
        Some(_) => return Err(SYNTAX),
    };
    // Redis's bound when the reply pairs each element with its value or score.
    if with && count.is_some_and(|n| n.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err(Reply::error("ERR value is out of range"));
    }
    Ok((count.map(bounded_repeats).transpose()?, with))
}

/// `X numkeys key [key ...] SIDE [COUNT count]`, the shape of LMPOP and ZMPOP (`args[0]` is the
/// word before the key count: the name, or BLMPOP's timeout): the keys, the side as `side`
/// parses it, and the count (1 when not given). Errors come in Redis's order.
pub fn mpop<T>(
    args: &[Bytes],
    side: impl FnOnce(&Bytes) -> Result<T, Reply>,
) -> Result<(Vec<Bytes>, T, usize), Reply> {
    let n = match int(&args[1]) {
        Ok(n) if n > 0 => n as usize,
        _ => return Err(Reply::error("ERR numkeys should be greater than 0")),
    };
    let Some(word) = args.get(2 + n) else { return Err(SYNTAX) };
    let side = side(word)?;
    let count = match &args[3 + n..] {
        [] => 1,
        [c, v] if is(c, "count") => match int(v) {
            Ok(v) if v > 0 => v as usize,
            _ => return Err(Reply::error("ERR count should be greater than 0")),
        },
        _ => return Err(SYNTAX),
    };
    Ok((args[2..2 + n].to_vec(), side, count))
}

/// A SCAN-family cursor: an unsigned decimal, or `-ERR invalid cursor`.
pub fn cursor(arg: &[u8]) -> Result<u64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or(Reply::error("ERR invalid cursor"))
}

/// A float argument as Redis's `string2d` takes it, or the error reply: all of it a number
/// `strtod` reads (decimal, hexadecimal, `inf`), no leading space, not NaN, and not out of a
/// double's range (`1e400`, or `1e-400` that would round to zero).
pub fn float(arg: &[u8]) -> Result<f64, Reply> {
    match strtod(arg) {
        Some((f, out_of_range)) if !arg[0].is_ascii_whitespace() && !f.is_nan() => {
            if out_of_range && (f.is_infinite() || f == 0.0) {
                Err(NOT_FLOAT)
            } else {
                Ok(f)
            }
        }
        _ => Err(NOT_FLOAT),
    }
}

/// What C's `strtod` makes of the whole of `text`: the value and whether it was out of range
/// (`ERANGE`: a finite number too large for a double, or a non-zero one that rounds to zero).
/// `None` unless every byte belongs to the number. Leading spaces are the caller's business.
#[must_use]
pub fn strtod(text: &[u8]) -> Option<(f64, bool)> {
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

/// Whether `arg` equals the ASCII keyword `word`, ignoring case.
#[must_use]
pub fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The unit and base of an expiry argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpireIn {
    /// Seconds from now (EX, EXPIRE, SETEX).
    Seconds,
    /// Milliseconds from now (PX, PEXPIRE, PSETEX).
    Millis,
    /// A Unix time in seconds (EXAT, EXPIREAT).
    UnixSeconds,
    /// A Unix time in milliseconds (PXAT, PEXPIREAT).
    UnixMillis,
}

/// The absolute expiry (Unix ms) that `arg` names, as Redis computes it, overflow-checked.
///
/// `positive` requires a value above zero (SET, SETEX, GETEX); EXPIRE accepts any value.
pub fn expire_at(arg: &[u8], unit: ExpireIn, now: u64, positive: bool, args: &[Bytes]) -> Result<i64, Reply> {
    let n = int(arg)?;
    if positive && n <= 0 {
        return Err(invalid_expire(args));
    }
    let ms = match unit {
        ExpireIn::Seconds | ExpireIn::UnixSeconds => n.checked_mul(1000),
        ExpireIn::Millis | ExpireIn::UnixMillis => Some(n),
    }
    .ok_or_else(|| invalid_expire(args))?;
    match unit {
        ExpireIn::Seconds | ExpireIn::Millis => {
            ms.checked_add(now as i64).ok_or_else(|| invalid_expire(args))
        }
        ExpireIn::UnixSeconds | ExpireIn::UnixMillis => Ok(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What redis-server 7.0 accepts as a score (`ZADD k <arg> m`), and the value it stores.
    #[test]
    fn floats_parse_as_redis_string2d() {
        for (text, want) in [
            ("1.5", 1.5),
            ("-0.25", -0.25),
            (".5", 0.5),
            ("5.", 5.0),
            ("+3", 3.0),
            ("1e2", 100.0),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("0x10", 16.0),
            ("0x1.8p1", 3.0),
            ("-0X.8", -0.5),
            ("1e-310", 1e-310),
            ("0e-999", 0.0),
        ] {
            assert_eq!(float(text.as_bytes()), Ok(want), "{text}");
        }
        for text in
            ["", " 1", "1 ", "1e", "0x", "0xp1", "abc", "nan", "1e400", "-1e400", "1e-400", "0x1p99999"]
        {
            assert_eq!(float(text.as_bytes()), Err(NOT_FLOAT), "{text:?}");
        }
    }
}
