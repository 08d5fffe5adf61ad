//! String commands: GET, SET and its variants, counters, ranges, MGET/MSET/MSETNX. They run on
//! the shard that owns their key; MGET and MSET split per shard, MSETNX has a protocol of its
//! own across shards.

use bytes::{Bytes, BytesMut};

use crate::cmd::args::{self, expire_at, is, ExpireIn};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::long_double::LongDouble;
use crate::engine::command::{Command, Merge};
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::shard::Ctx;
use crate::engine::spec::{acl, flag, key, KeyFlags, KeySpec};
use crate::facade::Reply;
use crate::num::parse_i64;
use crate::storage::db::{Entry, Value};
use crate::storage::dict::Key;
use crate::storage::encoding::StrForm;

/// GETRANGE's and SUBSTR's documented complexity.
const SUBSTRING_COMPLEXITY: &str = "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.";

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("get", 2, get)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("string", "1.0.0", "O(1)", "Get the value of a key"),
        Command::shard("set", -3, set)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE | key::VARIABLE_FLAGS).notes("RW and ACCESS due to the optional `GET` argument"))
            .docs("string", "1.0.0", "O(1)", "Set the string value of a key")
            .history(&[("2.6.12", "Added the `EX`, `PX`, `NX` and `XX` options."), ("6.0.0", "Added the `KEEPTTL` option."), ("6.2.0", "Added the `GET`, `EXAT` and `PXAT` option."), ("7.0.0", "Allowed the `NX` and `GET` options to be used together.")])
            .getkeys(set_keys),
        Command::shard("setnx", 3, setnx)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::INSERT))
            .docs("string", "1.0.0", "O(1)", "Set the value of a key, only if the key does not exist"),
        Command::shard("setex", 4, |c, a| setex(c, a, ExpireIn::Seconds))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .docs("string", "2.0.0", "O(1)", "Set the value and expiration of a key"),
        Command::shard("psetex", 4, |c, a| setex(c, a, ExpireIn::Millis))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .docs("string", "2.6.0", "O(1)", "Set the value and expiration in milliseconds of a key"),
        Command::shard("getset", 3, getset)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("string", "1.0.0", "O(1)", "Set the string value of a key and return its old value")
            .deprecated("6.2.0", "`SET` with the `!GET` argument"),
        Command::shard("getdel", 2, getdel)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("string", "6.2.0", "O(1)", "Get the value of a key and delete the key"),
        Command::shard("getex", -2, getex)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE).notes("RW and UPDATE because it changes the TTL"))
            .docs("string", "6.2.0", "O(1)", "Get the value of a key and optionally set its expiration"),
        Command::shard("append", 3, append)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("string", "2.0.0", "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.", "Append a value to a key"),
        Command::shard("strlen", 2, strlen)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("string", "2.2.0", "O(1)", "Get the length of the value stored in a key"),
        Command::shard("incr", 2, |c, a| incr_by(c, &a[1], 1))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("string", "1.0.0", "O(1)", "Increment the integer value of a key by one"),
        Command::shard("decr", 2, |c, a| incr_by(c, &a[1], -1))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("string", "1.0.0", "O(1)", "Decrement the integer value of a key by one"),
        Command::shard("incrby", 3, |c, a| incr_by(c, &a[1], args::int(&a[2])?))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("string", "1.0.0", "O(1)", "Increment the integer value of a key by the given amount"),
        Command::shard("decrby", 3, decrby)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("string", "1.0.0", "O(1)", "Decrement the integer value of a key by the given number"),
        Command::shard("incrbyfloat", 3, incrbyfloat)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("string", "2.6.0", "O(1)", "Increment the float value of a key by the given amount"),
        Command::shard("getrange", 4, getrange)
            .flags(flag::READONLY)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("string", "2.4.0", SUBSTRING_COMPLEXITY, "Get a substring of the string stored at a key"),
        Command::shard("substr", 4, getrange)
            .flags(flag::READONLY)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("string", "1.0.0", SUBSTRING_COMPLEXITY, "Get a substring of the string stored at a key")
            .deprecated("2.0.0", "`GETRANGE`"),
        Command::across("lcs", -3, lcs, |tx, db, a| Box::pin(lcs_across(tx, db, a)))
            .flags(flag::READONLY)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(1, 1, 0).flags(key::RO | key::ACCESS))
            .docs("string", "7.0.0", "O(N*M) where N and M are the lengths of s1 and s2, respectively", "Find longest common substring"),
        Command::shard("setrange", 4, setrange)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("string", "2.2.0", "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.", "Overwrite part of a string at key starting at the specified offset"),
        Command::split("mget", -2, mget, Merge::Positional)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["request_policy:multi_shard"])
            .docs("string", "1.0.0", "O(N) where N is the number of keys to retrieve.", "Get the values of all the given keys"),
        Command::split("mset", -3, mset, Merge::AllOk)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(-1, 2, 0).flags(key::OW | key::UPDATE))
            .tips(&["request_policy:multi_shard", "response_policy:all_succeeded"])
            .docs("string", "1.0.1", "O(N) where N is the number of keys to set.", "Set multiple keys to multiple values"),
        Command::across("msetnx", -3, msetnx, |tx, db, a| Box::pin(msetnx_across(tx, db, a)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::STRING)
            .key(KeySpec::index(1).range(-1, 2, 0).flags(key::OW | key::INSERT))
            .tips(&["request_policy:multi_shard", "response_policy:agg_min"])
            .docs("string", "1.0.1", "O(N) where N is the number of keys to set.", "Set multiple keys to multiple values, only if none of the keys exist"),
    ]
}

/// The string under `key`: `Ok(None)` when missing, `WRONGTYPE` for another type.
pub(crate) fn read_str<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a Key>, CmdError> {
    match ctx.db.read(key, ctx.now) {
        None => Ok(None),
        Some(Entry { value: Value::Str(s, ..), .. }) => Ok(Some(s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// The string under `key` as a write looks it up (Redis's `lookupKeyWrite`): no hit or miss
/// counted, no `keymiss` reported. Not yet a modification (the caller's write is).
pub(crate) fn write_str<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a Key>, CmdError> {
    match ctx.db.write_quiet(key, ctx.now) {
        None => Ok(None),
        Some(Entry { value: Value::Str(s, ..), .. }) => Ok(Some(&*s)),
        Some(_) => Err(CmdError::WrongType),
    }
}

/// Stores a string value with an expiry (Unix ms, if any).
fn store(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], expires_at: Option<i64>) {
    match expires_at {
        // An expiry already in the past: Redis sets and deletes in one step.
        Some(at) if ctx.already_expired(at) => {
            ctx.db.remove(key);
        }
        at => ctx.db.set(key, Value::string(Key::copy_from_slice(value)), at.map(|a| a as u64)),
    }
}

/// Stores a string with no expiry, reported as a `set`: MSET's and MSETNX's pairs.
pub(crate) fn set_plain(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8]) {
    store(ctx, key, value, None);
    ctx.notify(Class::STRING, "set", key);
}

/// Values this short are copied into replies rather than shared: a copy touches only the data,
/// a shared handle also its reference count (another cache line, and an allocation the first
/// time a stored value is shared).
const COPY_REPLY: usize = 128;

/// The reply for a stored string.
fn bulk_of(v: &Key) -> Reply {
    if v.len() <= COPY_REPLY {
        Reply::bulk(v)
    } else {
        Reply::Bulk(v.to_bytes())
    }
}

/// GET key
fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(read_str(ctx, &args[1])?.map_or(Reply::Nil, bulk_of))
}

/// SET's options, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct SetArgs<'a> {
    /// NX (`Some(false)`: only when missing) or XX (`Some(true)`: only when present).
    only_if_exists: Option<bool>,
    /// GET: reply with the old value.
    get: bool,
    /// KEEPTTL: keep the key's expiry.
    keep_ttl: bool,
    /// EX | PX | EXAT | PXAT and its argument, not yet converted.
    expiry: Option<(ExpireIn, &'a [u8])>,
}

impl<'a> SetArgs<'a> {
    /// `[NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts | KEEPTTL]`, in any order.
    fn parse(options: &'a [Bytes]) -> Result<SetArgs<'a>, CmdError> {
        let mut set = SetArgs::default();
        let mut i = 0;
        while i < options.len() {
            let a = &options[i];
            let unit = [("ex", ExpireIn::Seconds), ("px", ExpireIn::Millis)]
                .into_iter()
                .chain([("exat", ExpireIn::UnixSeconds), ("pxat", ExpireIn::UnixMillis)])
                .find(|(w, _)| is(a, w));
            match (unit, options.get(i + 1)) {
                (Some((_, unit)), Some(n)) if set.expiry.is_none() && !set.keep_ttl => {
                    set.expiry = Some((unit, n));
                    i += 1;
                }
                (Some(_), _) => return Err(CmdError::Syntax),
                (None, _) if is(a, "nx") && set.only_if_exists != Some(true) => {
                    set.only_if_exists = Some(false)
                }
                (None, _) if is(a, "xx") && set.only_if_exists != Some(false) => {
                    set.only_if_exists = Some(true)
                }
                (None, _) if is(a, "get") => set.get = true,
                (None, _) if is(a, "keepttl") && set.expiry.is_none() => set.keep_ttl = true,
                (None, _) => return Err(CmdError::Syntax),
            }
            i += 1;
        }
        Ok(set)
    }
}

/// SET's key and what is done with it: read and written with GET, else overwritten (Redis's
/// `setGetKeys`).
fn set_keys(args: &[Bytes], keys: &mut Vec<(usize, KeyFlags)>) {
    let get = args.iter().skip(3).any(|a| is(a, "get"));
    keys.push((1, if get { key::RW | key::ACCESS | key::UPDATE } else { key::OW | key::UPDATE }));
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts | KEEPTTL]
fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let opts = SetArgs::parse(&args[3..])?;
    // As Redis: the syntax, then the expiry's value, then the key's type (for GET).
    let at = opts.expiry.map(|(unit, n)| expire_at(n, unit, ctx.now, true, args)).transpose()?;
    // As Redis: a read lookup for GET's old value, else a write's.
    let found = if opts.get { read_str(ctx, &args[1]) } else { write_str(ctx, &args[1]) };
    let old = match found {
        // Only GET needs the old value; cloning it would touch (and promote) its buffer.
        Ok(v) if opts.get => v.map(Key::to_bytes),
        Ok(v) => v.map(|_| Bytes::new()),
        Err(e) if opts.get => return Err(e),
        // Without GET, SET overwrites a key of any type; it only needs to know it exists.
        Err(_) => Some(Bytes::new()),
    };
    let exists = old.is_some();
    let reply = if opts.get { Reply::from(old) } else { Reply::Ok };
    if opts.only_if_exists.is_some_and(|xx| xx != exists) {
        return Ok(if opts.get { reply } else { Reply::Nil });
    }
    let at = if opts.keep_ttl {
        ctx.db.write(&args[1], ctx.now).and_then(|e| e.expires_at()).map(|a| a as i64)
    } else {
        if let Some(at) = at {
            log_set_pxat(ctx, &args[1], &args[2], at);
        }
        at
    };
    store(ctx, &args[1], &args[2], at);
    ctx.notify(Class::STRING, "set", &args[1]);
    if opts.expiry.is_some() {
        ctx.notify(Class::GENERIC, "expire", &args[1]);
    }
    Ok(reply)
}

/// Logs a string set with an expiry as Redis propagates it: `SET key value PXAT ms`, an
/// absolute time that replays to the same instant.
fn log_set_pxat(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], at: i64) {
    if ctx.journaling() {
        let mut at_text = itoa::Buffer::new();
        let at = at_text.format(at);
        ctx.log(&[b"SET", key, value, b"PXAT", at.as_bytes()]);
    }
}

/// SETNX key value
fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if ctx.db.live(&args[1], ctx.now) {
        return Ok(Reply::Int(0));
    }
    store(ctx, &args[1], &args[2], None);
    ctx.notify(Class::STRING, "set", &args[1]);
    Ok(Reply::Int(1))
}

/// SETEX key seconds value, PSETEX key milliseconds value
fn setex(ctx: &mut Ctx<'_>, args: &[Bytes], unit: ExpireIn) -> CmdResult {
    let at = expire_at(&args[2], unit, ctx.now, true, args)?;
    log_set_pxat(ctx, &args[1], &args[3], at);
    store(ctx, &args[1], &args[3], Some(at));
    ctx.notify(Class::STRING, "set", &args[1]);
    ctx.notify(Class::GENERIC, "expire", &args[1]);
    Ok(Reply::Ok)
}

/// GETSET key value
fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let reply = read_str(ctx, &args[1])?.map_or(Reply::Nil, bulk_of);
    store(ctx, &args[1], &args[2], None);
    ctx.notify(Class::STRING, "set", &args[1]);
    Ok(reply)
}

/// GETDEL key
fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(v) = read_str(ctx, &args[1])? else { return Ok(Reply::Nil) };
    let reply = bulk_of(v);
    ctx.db.remove(&args[1]);
    ctx.notify(Class::GENERIC, "del", &args[1]);
    Ok(reply)
}

/// What GETEX does to the expiry.
enum ExpiryChange<'a> {
    Keep,
    Persist,
    In(ExpireIn, &'a [u8]),
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ts | PERSIST]
fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // As Redis: the options' syntax, then the key, then the expiry's value.
    let change = match &args[2..] {
        [] => ExpiryChange::Keep,
        [p] if is(p, "persist") => ExpiryChange::Persist,
        [opt, n] => ExpiryChange::In(
            match () {
                () if is(opt, "ex") => ExpireIn::Seconds,
                () if is(opt, "px") => ExpireIn::Millis,
                () if is(opt, "exat") => ExpireIn::UnixSeconds,
                () if is(opt, "pxat") => ExpireIn::UnixMillis,
                () => return Err(CmdError::Syntax),
            },
            n,
        ),
        _ => return Err(CmdError::Syntax),
    };
    let Some(v) = read_str(ctx, &args[1])? else { return Ok(Reply::Nil) };
    let reply = bulk_of(v);
    match change {
        ExpiryChange::Keep => {}
        ExpiryChange::Persist => {
            if ctx.db.read(&args[1], ctx.now).is_some_and(|e| e.expires_at().is_some()) {
                ctx.db.set_expiry(&args[1], None);
                ctx.log(&[b"PERSIST", &args[1]]);
                ctx.notify(Class::GENERIC, "persist", &args[1]);
            }
        }
        ExpiryChange::In(unit, n) => match expire_at(n, unit, ctx.now, true, args)? {
            at if ctx.already_expired(at) => {
                ctx.db.remove(&args[1]);
                ctx.log(&[b"DEL", &args[1]]);
                ctx.notify(Class::GENERIC, "del", &args[1]);
            }
            at => {
                ctx.db.set_expiry(&args[1], Some(at as u64));
                crate::cmd::generic::log_pexpireat(ctx, &args[1], at, &[]);
                ctx.notify(Class::GENERIC, "expire", &args[1]);
            }
        },
    }
    Ok(reply)
}

/// APPEND key value
fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(old) = write_str(ctx, &args[1])?.map(Key::to_bytes) else {
        store(ctx, &args[1], &args[2], None);
        ctx.notify(Class::STRING, "append", &args[1]);
        return Ok(Reply::Int(args[2].len() as i64));
    };
    let len = old.len() + args[2].len();
    if len as u64 > ctx.max_bulk {
        return Err(CmdError::TooBig);
    }
    let mut joined = BytesMut::with_capacity(len);
    joined.extend_from_slice(&old);
    joined.extend_from_slice(&args[2]);
    replace_value(ctx, &args[1], joined.freeze(), StrForm::Raw);
    ctx.notify(Class::STRING, "append", &args[1]);
    Ok(Reply::Int(len as i64))
}

/// Stores the string `value` written as `form` at `key`: an existing key keeps its TTL, a
/// missing one is created without.
fn replace_value(ctx: &mut Ctx<'_>, key: &[u8], value: Bytes, form: StrForm) {
    let value = Value::string_as(Key::new(value), form);
    match ctx.db.write(key, ctx.now) {
        Some(e) => e.replace_value(value),
        None => ctx.db.set(key, value, None),
    }
}

/// STRLEN key
fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(read_str(ctx, &args[1])?.map_or(0, |v| v.len() as i64)))
}

/// DECRBY key decrement
fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let by = args::int(&args[2])?.checked_neg().ok_or(CmdError::msg("ERR decrement would overflow"))?;
    incr_by(ctx, &args[1], by)
}

/// INCR, DECR, INCRBY, DECRBY: adds `by` to the integer at `key` (0 when missing).
fn incr_by(ctx: &mut Ctx<'_>, key: &[u8], by: i64) -> CmdResult {
    let current = match write_str(ctx, key)? {
        None => 0,
        Some(v) => parse_i64(v.as_slice()).ok_or(CmdError::NotInteger)?,
    };
    let next = current.checked_add(by).ok_or(CmdError::msg("ERR increment or decrement would overflow"))?;
    let text = Bytes::copy_from_slice(itoa::Buffer::new().format(next).as_bytes());
    replace_value(ctx, key, text, StrForm::ByContent);
    ctx.notify(Class::STRING, "incrby", key);
    Ok(Reply::Int(next))
}

/// INCRBYFLOAT key increment
///
/// Added in `long double`, as Redis does, so that the digits match (see [`LongDouble`]).
fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Redis checks the type, then the value, then the increment.
    let current = match write_str(ctx, &args[1])? {
        None => LongDouble::ZERO,
        Some(v) => LongDouble::parse(v.as_slice()).ok_or(CmdError::NotFloat)?,
    };
    let by = LongDouble::parse(&args[2]).ok_or(CmdError::NotFloat)?;
    let next = match current.checked_add(by) {
        Some(next) if !next.is_infinite() => next,
        _ => return Err(CmdError::msg("ERR increment would produce NaN or Infinity")),
    };
    let text = Bytes::from(next.to_human());
    replace_value(ctx, &args[1], text.clone(), StrForm::Text);
    ctx.notify(Class::STRING, "incrbyfloat", &args[1]);
    // The sum, not the increment: the float arithmetic is not replayed.
    ctx.log(&[b"SET", &args[1], &text, b"KEEPTTL"]);
    Ok(Reply::Bulk(text))
}

/// GETRANGE key start end
fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (start, end) = (args::int(&args[2])?, args::int(&args[3])?);
    let value = read_str(ctx, &args[1])?.map(Key::to_bytes).unwrap_or_default();
    let len = value.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
    if start > end {
        return Ok(Reply::Bulk(Bytes::new()));
    }
    Ok(Reply::Bulk(value.slice(start as usize..=end as usize)))
}

/// SETRANGE key offset value
fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = match args::int(&args[2])? {
        o if o >= 0 => o as u64,
        _ => return Err(CmdError::msg("ERR offset is out of range")),
    };
    let patch = &args[3];
    let old = write_str(ctx, &args[1])?.map(Key::to_bytes);
    let old_len = old.as_ref().map_or(0, Bytes::len);
    if patch.is_empty() {
        return Ok(Reply::Int(old_len as i64));
    }
    let end = offset + patch.len() as u64;
    if end > ctx.max_bulk {
        return Err(CmdError::TooBig);
    }
    let mut out = BytesMut::from(old.as_deref().unwrap_or_default());
    if out.len() < end as usize {
        out.resize(end as usize, 0);
    }
    out[offset as usize..end as usize].copy_from_slice(patch);
    let len = out.len() as i64;
    replace_value(ctx, &args[1], out.freeze(), StrForm::Raw);
    ctx.notify(Class::STRING, "setrange", &args[1]);
    Ok(Reply::Int(len))
}

/// LCS's error for a key of another type.
const LCS_NOT_STRING: &str = "ERR The specified keys must contain string values";

/// The string at `key` for LCS: empty when missing.
fn lcs_operand(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Bytes, CmdError> {
    match ctx.db.read(key, ctx.now) {
        None => Ok(Bytes::new()),
        Some(Entry { value: Value::Str(s, ..), .. }) => Ok(s.to_bytes()),
        Some(_) => Err(CmdError::msg(LCS_NOT_STRING)),
    }
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN], both keys on this shard.
fn lcs(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // Both types first, then the options, as Redis.
    let a = lcs_operand(ctx, &args[1]);
    let b = lcs_operand(ctx, &args[2]);
    lcs_of(&a?, &b?, &args[3..], ctx.max_bulk)
}

/// LCS with its keys on two shards: each read where it lives, the answer computed with the
/// second.
async fn lcs_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let key = args[1].clone();
    let a = tx.on(tx.shard_of(&key), db, move |c| Ok(lcs_operand(c, &key))).await?;
    let (key, options) = (args[2].clone(), args[3..].to_vec());
    tx.on(tx.shard_of(&args[2]), db, move |c| {
        let b = lcs_operand(c, &key);
        lcs_of(&a?, &b?, &options, c.max_bulk)
    })
    .await
}

/// The longest common subsequence of `a` and `b` as LCS `options` ask for it, by Redis's
/// dynamic programming table and walk back (the same string and ranges among equals).
fn lcs_of(a: &[u8], b: &[u8], options: &[Bytes], max_bulk: u64) -> CmdResult {
    let (mut get_len, mut get_idx, mut with_len, mut min_len) = (false, false, false, 0i64);
    let mut i = 0;
    while i < options.len() {
        let opt = &options[i];
        if is(opt, "idx") {
            get_idx = true;
        } else if is(opt, "len") {
            get_len = true;
        } else if is(opt, "withmatchlen") {
            with_len = true;
        } else if is(opt, "minmatchlen") && i + 1 < options.len() {
            min_len = args::int(&options[i + 1])?.max(0);
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if get_len && get_idx {
        return Err(CmdError::msg("ERR If you want both the length and indexes, please just use IDX."));
    }
    if a.len() as u64 >= u64::from(u32::MAX - 1) || b.len() as u64 >= u64::from(u32::MAX - 1) {
        return Err(CmdError::msg("ERR String too long for LCS"));
    }
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1) * (blen as u64 + 1);
    if cells * 4 > max_bulk {
        return Err(CmdError::msg(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        ));
    }
    let width = blen + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let total = table[alen * width + blen];
    if get_len && !get_idx {
        return Ok(Reply::Int(i64::from(total)));
    }
    // Walk back from the end, as Redis does: the common string, and the matched ranges.
    let mut common = vec![0u8; total as usize];
    let mut idx = total as usize;
    let mut matches = Vec::new();
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    let (mut i, mut j) = (alen, blen);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[idx - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if table[(i - 1) * width + j] > table[i * width + j - 1] {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        if emit {
            let len = a_end.wrapping_sub(a_start).wrapping_add(1);
            if get_idx && (min_len == 0 || len as i64 >= min_len) {
                let range =
                    |s: usize, e: usize| Reply::Array(vec![Reply::Int(s as i64), Reply::Int(e as i64)]);
                let mut m = vec![range(a_start, a_end), range(b_start, b_end)];
                if with_len {
                    m.push(Reply::Int(len as i64));
                }
                matches.push(Reply::Array(m));
            }
            a_start = alen;
        }
    }
    if get_idx {
        return Ok(Reply::Map(vec![
            (Reply::bulk("matches"), Reply::Array(matches)),
            (Reply::bulk("len"), Reply::Int(i64::from(total))),
        ]));
    }
    Ok(Reply::Bulk(Bytes::from(common)))
}

/// MGET key [key ...]: one shard's part; a key of another type reads as nil.
fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Array(
        args[1..].iter().map(|k| read_str(ctx, k).ok().flatten().map_or(Reply::Nil, bulk_of)).collect(),
    ))
}

/// MSET key value [key value ...]: one shard's part.
fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    for pair in args[1..].chunks_exact(2) {
        set_plain(ctx, &pair[0], &pair[1]);
    }
    Ok(Reply::Ok)
}

/// MSETNX key value [key value ...], when every key lives on this shard.
fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if args[1..].chunks_exact(2).any(|p| ctx.db.live(&p[0], ctx.now)) {
        return Ok(Reply::Int(0));
    }
    mset(ctx, args)?;
    Ok(Reply::Int(1))
}

/// MSETNX across shards: every shard checks its keys; only if none exists does every shard
/// write.
async fn msetnx_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let pairs: Vec<(Bytes, Bytes)> =
        args[1..].chunks_exact(2).map(|p| (p[0].clone(), p[1].clone())).collect();
    let checks = pairs.iter().map(|(k, _)| {
        let k = k.clone();
        tx.on(tx.shard_of(&k), db, move |c| Ok(c.db.live(&k, c.now)))
    });
    for exists in futures::future::join_all(checks).await {
        if exists? {
            return Ok(Reply::Int(0));
        }
    }
    let writes = pairs.into_iter().map(|(k, v)| {
        tx.on(tx.shard_of(&k), db, move |c| {
            set_plain(c, &k, &v);
            Ok(())
        })
    });
    for written in futures::future::join_all(writes).await {
        written?;
    }
    Ok(Reply::Int(1))
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::Fixture;

    #[test]
    fn set_options_and_expiry() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("SET k v PX 100"), "+OK\r\n");
        assert_eq!(f.resp("SET k w NX GET"), "$1\r\nv\r\n", "NX GET returns the old value, sets nothing");
        assert_eq!(f.resp("PTTL k"), ":100\r\n");
        f.now += 100;
        assert_eq!(f.resp("GET k"), "$-1\r\n", "expired at its millisecond");
        assert_eq!(f.resp("SET k v KEEPTTL EX 1"), "-ERR syntax error\r\n");
        assert_eq!(f.resp("SET k v EX 0"), "-ERR invalid expire time in 'set' command\r\n");
    }

    #[test]
    fn counters_keep_redis_limits_and_texts() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("INCRBY n 9223372036854775807"), ":9223372036854775807\r\n");
        assert_eq!(f.resp("INCR n"), "-ERR increment or decrement would overflow\r\n");
        assert_eq!(f.resp("SET s abc"), "+OK\r\n");
        assert_eq!(f.resp("INCR s"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(f.resp("INCRBYFLOAT f 0.1"), "$3\r\n0.1\r\n");
        assert_eq!(f.resp("APPEND s def"), ":6\r\n");
        assert_eq!(f.resp("GETRANGE s -3 -1"), "$3\r\ndef\r\n");
        assert_eq!(f.resp("LPUSH l x"), ":1\r\n");
        assert_eq!(f.resp("GET l"), "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
    }
}
