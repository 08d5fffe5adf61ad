//! Argument parsing shared by the command families: integers, floats as Redis's `string2d`
//! reads them, cursors, expiries, counts. Errors are [`CmdError`]s.

use bytes::Bytes;

use crate::cmd::error::CmdError;
use crate::num::parse_i64;

/// The lowercase name `args[0]` of a request, for error messages that quote it.
#[must_use]
pub(crate) fn display_name(args: &[Bytes]) -> String {
    String::from_utf8_lossy(&args[0]).to_lowercase()
}

/// `-ERR invalid expire time in '<name>' command`.
#[must_use]
pub(crate) fn invalid_expire(args: &[Bytes]) -> CmdError {
    CmdError::InvalidExpire(display_name(args))
}

/// A HELP reply as Redis's `addReplyHelp` builds it: a header naming `command` (uppercase),
/// the lines, and the HELP line itself.
#[must_use]
pub(crate) fn help(command: &str, lines: &[&'static str]) -> crate::facade::Reply {
    use crate::facade::Reply;
    let mut out = Vec::with_capacity(lines.len() + 3);
    out.push(Reply::Status(
        format!("{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:").into(),
    ));
    out.extend(lines.iter().map(|l| Reply::status(l)));
    out.push(Reply::status("HELP"));
    out.push(Reply::status("    Prints this help."));
    Reply::Array(out)
}

/// An integer argument.
pub(crate) fn int(arg: &[u8]) -> Result<i64, CmdError> {
    parse_i64(arg).ok_or(CmdError::NotInteger)
}

/// An `int` argument as Redis's `getIntFromObjectOrReply` reads it: an integer, then within
/// 32 bits.
pub(crate) fn int32(arg: &[u8]) -> Result<i32, CmdError> {
    i32::try_from(int(arg)?).map_err(|_| {
        CmdError::msg("ERR value is out of range, value must between -2147483648 and 2147483647")
    })
}

/// Most elements HRANDFIELD, SRANDMEMBER or ZRANDMEMBER may return for a negative count: the
/// reply is built in memory before it is sent, so an absurd count must not exhaust the server.
pub(crate) const MAX_RANDOM_COUNT: u64 = 10_000_000;

/// A random-elements count (negative: elements may repeat). Redis accepts -LONG_MAX to
/// LONG_MAX and then tries to build the reply; past [`MAX_RANDOM_COUNT`] repeated elements
/// ferrokey refuses, with the text of Redis's range errors.
pub(crate) fn random_count(arg: &[u8]) -> Result<i64, CmdError> {
    let n = int(arg)?;
    if n == i64::MIN {
        return Err(CmdError::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    Ok(n)
}

/// Refuses a count of more than [`MAX_RANDOM_COUNT`] repeated elements (checked after the
/// syntax, as Redis checks its own bound for the WITH forms).
pub(crate) fn bounded_repeats(n: i64) -> Result<i64, CmdError> {
    if n < 0 && n.unsigned_abs() > MAX_RANDOM_COUNT {
        return Err(CmdError::OutOfRange);
    }
    Ok(n)
}

/// HRANDFIELD's and ZRANDMEMBER's `key [count [FLAG]]`: the count, if given, and whether the
/// flag (WITHVALUES, WITHSCORES) follows it.
pub(crate) fn random_args(args: &[Bytes], flag: &str) -> Result<(Option<i64>, bool), CmdError> {
    let count = args.get(2).map(|c| random_count(c)).transpose()?;
    let with = match args.get(3) {
        None => false,
        Some(a) if is(a, flag) && args.len() == 4 => true,
        Some(_) => return Err(CmdError::Syntax),
    };
    // Redis's bound when the reply pairs each element with its value or score.
    if with && count.is_some_and(|n| n.unsigned_abs() > (i64::MAX / 2) as u64) {
        return Err(CmdError::OutOfRange);
    }
    Ok((count.map(bounded_repeats).transpose()?, with))
}

/// `X numkeys key [key ...] SIDE [COUNT count]`, the shape of LMPOP and ZMPOP (`args[0]` is the
/// word before the key count: the name, or BLMPOP's timeout): the keys, the side as `side`
/// parses it, and the count (1 when not given). Errors come in Redis's order.
pub(crate) fn mpop<T>(
    args: &[Bytes],
    side: impl FnOnce(&Bytes) -> Result<T, CmdError>,
) -> Result<(Vec<Bytes>, T, usize), CmdError> {
    let n = match int(&args[1]) {
        Ok(n) if n > 0 => n as usize,
        _ => return Err(CmdError::msg("ERR numkeys should be greater than 0")),
    };
    let Some(word) = args.get(2 + n) else { return Err(CmdError::Syntax) };
    let side = side(word)?;
    let count = match &args[3 + n..] {
        [] => 1,
        [c, v] if is(c, "count") => match int(v) {
            Ok(v) if v > 0 => v as usize,
            _ => return Err(CmdError::msg("ERR count should be greater than 0")),
        },
        _ => return Err(CmdError::Syntax),
    };
    Ok((args[2..2 + n].to_vec(), side, count))
}

/// A SCAN-family cursor: an unsigned decimal, or `-ERR invalid cursor`.
pub(crate) fn cursor(arg: &[u8]) -> Result<u64, CmdError> {
    std::str::from_utf8(arg)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
        .ok_or(CmdError::msg("ERR invalid cursor"))
}

/// A float argument as Redis's `string2d` takes it, or the error reply: all of it a number
/// `strtod` reads (decimal, hexadecimal, `inf`), no leading space, not NaN, and not out of a
/// double's range (`1e400`, or `1e-400` that would round to zero).
pub(crate) fn float(arg: &[u8]) -> Result<f64, CmdError> {
    match crate::num::strtod(arg) {
        Some((f, out_of_range)) if !arg[0].is_ascii_whitespace() && !f.is_nan() => {
            if out_of_range && (f.is_infinite() || f == 0.0) {
                Err(CmdError::NotFloat)
            } else {
                Ok(f)
            }
        }
        _ => Err(CmdError::NotFloat),
    }
}

/// Whether `arg` equals the ASCII keyword `word`, ignoring case.
#[must_use]
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// The unit and base of an expiry argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExpireIn {
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
pub(crate) fn expire_at(
    arg: &[u8],
    unit: ExpireIn,
    now: u64,
    positive: bool,
    args: &[Bytes],
) -> Result<i64, CmdError> {
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
            assert_eq!(float(text.as_bytes()), Err(CmdError::NotFloat), "{text:?}");
        }
    }
}
