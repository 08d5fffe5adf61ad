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
        format!("ERR invalid expire time in '{}' command", super::command::display_name(args)).into(),
    )
}

/// An integer argument, or the Redis error reply.
pub fn int(arg: &[u8]) -> Result<i64, Reply> {
    parse_i64(arg).ok_or(NOT_INT)
}

/// Most elements HRANDFIELD, SRANDMEMBER or ZRANDMEMBER may return for a negative count: the
/// reply is built in memory before it is sent, so an absurd count must not exhaust the server.
pub const MAX_RANDOM_COUNT: u64 = 10_000_000;

/// A random-elements count (negative: elements may repeat), bounded by [`MAX_RANDOM_COUNT`].
pub fn random_count(arg: &[u8]) -> Result<i64, Reply> {
    let n = int(arg)?;
    if n < 0 && n.unsigned_abs() > MAX_RANDOM_COUNT {
        return Err(Reply::error(
            "ERR count is out of range: at most 10000000 repeated random elements per call",
        ));
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
    Ok((count, with))
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

/// A float argument as Redis's `strtold` accepts it (no spaces, no NaN), or the error reply.
pub fn float(arg: &[u8]) -> Result<f64, Reply> {
    std::str::from_utf8(arg)
        .ok()
        .filter(|s| !s.starts_with(|c: char| c.is_ascii_whitespace()))
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|f| !f.is_nan())
        .ok_or(NOT_FLOAT)
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
