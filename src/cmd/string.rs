//! String commands: GET, SET and its variants, counters, ranges, MGET/MSET. Run on the owning shard.

use bytes::{Bytes, BytesMut};

use crate::cmd::args::{self, expire_at, is, ExpireIn, NOT_INT, SYNTAX, TOO_BIG, WRONGTYPE};
use crate::cmd::long_double::LongDouble;
use crate::engine::shard::Ctx;
use crate::facade::resp::parse_i64;
use crate::facade::Reply;
use crate::storage::db::{Entry, Value};
use crate::storage::dict::Key;

/// The string under `key`: `Ok(None)` when missing, `Err(WRONGTYPE)` for another type.
fn read_str<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a Key>, Reply> {
    match ctx.db.read(key, ctx.now) {
        None => Ok(None),
        Some(Entry { value: Value::Str(s), .. }) => Ok(Some(s)),
        Some(_) => Err(WRONGTYPE),
    }
}

fn store(ctx: &mut Ctx<'_>, key: &[u8], value: &[u8], expires_at: Option<i64>) {
    match expires_at {
        // An expiry already in the past: Redis sets and deletes in one step.
        Some(at) if at <= ctx.now as i64 => {
            ctx.db.remove(key);
        }
        at => ctx.db.set(key, Value::Str(Key::copy_from_slice(value)), at.map(|a| a as u64)),
    }
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
pub fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match read_str(ctx, &args[1]) {
        Ok(v) => v.map_or(Reply::Nil, bulk_of),
        Err(e) => e,
    }
}

/// SET key value [NX | XX] [GET] [EX s | PX ms | EXAT ts | PXAT ts | KEEPTTL]
pub fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (mut nx, mut xx, mut get, mut keepttl) = (false, false, false, false);
    let mut expiry: Option<(ExpireIn, &Bytes)> = None;
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let next = args.get(i + 1);
        let unit = [("ex", ExpireIn::Seconds), ("px", ExpireIn::Millis)]
            .into_iter()
            .chain([("exat", ExpireIn::UnixSeconds), ("pxat", ExpireIn::UnixMillis)])
            .find(|(w, _)| is(a, w));
        match unit {
            Some((_, unit)) if expiry.is_none() && !keepttl && next.is_some() => {
                expiry = next.map(|n| (unit, n));
                i += 1;
            }
            Some(_) => return SYNTAX,
            None if is(a, "nx") && !xx => nx = true,
            None if is(a, "xx") && !nx => xx = true,
            None if is(a, "get") => get = true,
            None if is(a, "keepttl") && expiry.is_none() => keepttl = true,
            None => return SYNTAX,
        }
        i += 1;
    }
    let at = match expiry {
        Some((unit, n)) => match expire_at(n, unit, ctx.now, true, args) {
            Ok(at) => Some(at),
            Err(e) => return e,
        },
        None => None,
    };
    let old = match read_str(ctx, &args[1]) {
        // Only GET needs the old value; cloning it would touch (and promote) its buffer.
        Ok(v) if get => v.map(Key::to_bytes),
        Ok(v) => v.map(|_| Bytes::new()),
        Err(e) if get => return e,
        // Without GET, SET overwrites a key of any type; it only needs to know it exists.
        Err(_) => Some(Bytes::new()),
    };
    let exists = old.is_some();
    let reply = if get { Reply::from(old) } else { Reply::Ok };
    if (nx && exists) || (xx && !exists) {
        return if get { reply } else { Reply::Nil };
    }
    let at = if keepttl {
        ctx.db.write(&args[1], ctx.now).and_then(|e| e.expires_at()).map(|a| a as i64)
    } else {
        at
    };
    store(ctx, &args[1], &args[2], at);
    reply
}

/// SETNX key value
pub fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    if ctx.db.live(&args[1], ctx.now) {
        return Reply::Int(0);
    }
    store(ctx, &args[1], &args[2], None);
    Reply::Int(1)
}

/// SETEX key seconds value, PSETEX key milliseconds value
pub fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let unit = if is(&args[0], "psetex") { ExpireIn::Millis } else { ExpireIn::Seconds };
    match expire_at(&args[2], unit, ctx.now, true, args) {
        Ok(at) => {
            store(ctx, &args[1], &args[3], Some(at));
            Reply::Ok
        }
        Err(e) => e,
    }
}

/// GETSET key value
pub fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match read_str(ctx, &args[1]) {
        Ok(old) => {
            let reply = old.map_or(Reply::Nil, bulk_of);
            store(ctx, &args[1], &args[2], None);
            reply
        }
        Err(e) => e,
    }
}

/// GETDEL key
pub fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match read_str(ctx, &args[1]) {
        Ok(Some(v)) => {
            let reply = bulk_of(v);
            ctx.db.remove(&args[1]);
            reply
        }
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ts | PERSIST]
pub fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    enum Change<'a> {
        Keep,
        Persist,
        In(ExpireIn, &'a [u8]),
        At(i64),
    }
    // As Redis: the options' syntax, then the key, then the expiry's value.
    let mut change = match &args[2..] {
        [] => Change::Keep,
        [p] if is(p, "persist") => Change::Persist,
        [opt, n] => Change::In(
            match () {
                () if is(opt, "ex") => ExpireIn::Seconds,
                () if is(opt, "px") => ExpireIn::Millis,
                () if is(opt, "exat") => ExpireIn::UnixSeconds,
                () if is(opt, "pxat") => ExpireIn::UnixMillis,
                () => return SYNTAX,
            },
            n,
        ),
        _ => return SYNTAX,
    };
    let reply = match read_str(ctx, &args[1]) {
        Ok(Some(v)) => bulk_of(v),
        Ok(None) => return Reply::Nil,
        Err(e) => return e,
    };
    if let Change::In(unit, n) = change {
        change = match expire_at(n, unit, ctx.now, true, args) {
            Ok(at) => Change::At(at),
            Err(e) => return e,
        };
    }
    match change {
        Change::Keep | Change::In(..) => {}
        Change::Persist => {
            ctx.db.set_expiry(&args[1], None);
        }
        Change::At(at) if at <= ctx.now as i64 => {
            ctx.db.remove(&args[1]);
        }
        Change::At(at) => {
            ctx.db.set_expiry(&args[1], Some(at as u64));
        }
    }
    reply
}

/// APPEND key value
pub fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let old = match read_str(ctx, &args[1]) {
        Ok(v) => v.map(Key::to_bytes),
        Err(e) => return e,
    };
    let Some(old) = old else {
        store(ctx, &args[1], &args[2], None);
        return Reply::Int(args[2].len() as i64);
    };
    let len = old.len() + args[2].len();
    if len as u64 > ctx.max_bulk {
        return TOO_BIG;
    }
    let mut joined = BytesMut::with_capacity(len);
    joined.extend_from_slice(&old);
    joined.extend_from_slice(&args[2]);
    replace_value(ctx, &args[1], joined.freeze());
    Reply::Int(len as i64)
}

/// Replaces the value of an existing key, keeping its TTL.
fn replace_value(ctx: &mut Ctx<'_>, key: &[u8], value: Bytes) {
    if let Some(e) = ctx.db.write(key, ctx.now) {
        e.value = Value::Str(Key::new(value));
    }
}

/// STRLEN key
pub fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match read_str(ctx, &args[1]) {
        Ok(v) => Reply::Int(v.map_or(0, |v| v.len() as i64)),
        Err(e) => e,
    }
}

/// INCR, DECR, INCRBY, DECRBY
pub fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let name = &args[0];
    let by = if is(name, "incr") {
        1
    } else if is(name, "decr") {
        -1
    } else {
        match args::int(&args[2]) {
            Ok(n) if is(name, "decrby") => match n.checked_neg() {
                Some(n) => n,
                None => return Reply::error("ERR decrement would overflow"),
            },
            Ok(n) => n,
            Err(e) => return e,
        }
    };
    let current = match read_str(ctx, &args[1]) {
        Ok(None) => 0,
        Ok(Some(v)) => match parse_i64(v.as_slice()) {
            Some(n) => n,
            None => return NOT_INT,
        },
        Err(e) => return e,
    };
    let Some(next) = current.checked_add(by) else {
        return Reply::error("ERR increment or decrement would overflow");
    };
    let text = Bytes::copy_from_slice(itoa::Buffer::new().format(next).as_bytes());
    if ctx.db.live(&args[1], ctx.now) {
        replace_value(ctx, &args[1], text);
    } else {
        ctx.db.set(&args[1], Value::Str(Key::new(text)), None);
    }
    Reply::Int(next)
}

/// INCRBYFLOAT key increment
///
/// Added in `long double`, as Redis does, so that the digits match (see [`LongDouble`]).
pub fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    // Redis checks the type, then the value, then the increment.
    let current = match read_str(ctx, &args[1]) {
        Ok(None) => LongDouble::ZERO,
        Ok(Some(v)) => match LongDouble::parse(v.as_slice()) {
            Some(f) => f,
            None => return args::NOT_FLOAT,
        },
        Err(e) => return e,
    };
    let Some(by) = LongDouble::parse(&args[2]) else { return args::NOT_FLOAT };
    let next = match current.checked_add(by) {
        Some(next) if !next.is_infinite() => next,
        _ => return Reply::error("ERR increment would produce NaN or Infinity"),
    };
    let text = Bytes::from(next.to_human());
    if ctx.db.live(&args[1], ctx.now) {
        replace_value(ctx, &args[1], text.clone());
    } else {
        ctx.db.set(&args[1], Value::Str(Key::new(text.clone())), None);
    }
    Reply::Bulk(text)
}

/// GETRANGE key start end
pub fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (start, end) = match (args::int(&args[2]), args::int(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return NOT_INT,
    };
    let value = match read_str(ctx, &args[1]) {
        Ok(v) => v.map(Key::to_bytes).unwrap_or_default(),
        Err(e) => return e,
    };
    let len = value.len() as i64;
    if (start < 0 && end < 0 && start > end) || len == 0 {
        return Reply::Bulk(Bytes::new());
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
    if start > end {
        return Reply::Bulk(Bytes::new());
    }
    Reply::Bulk(value.slice(start as usize..=end as usize))
}

/// SETRANGE key offset value
pub fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let offset = match args::int(&args[2]) {
        Ok(o) if o >= 0 => o as u64,
        Ok(_) => return Reply::error("ERR offset is out of range"),
        Err(e) => return e,
    };
    let patch = &args[3];
    let old = match read_str(ctx, &args[1]) {
        Ok(v) => v.map(Key::to_bytes),
        Err(e) => return e,
    };
    let old_len = old.as_ref().map_or(0, Bytes::len);
    if patch.is_empty() {
        return Reply::Int(old_len as i64);
    }
    let end = offset + patch.len() as u64;
    if end > ctx.max_bulk {
        return TOO_BIG;
    }
    let mut out = BytesMut::from(old.as_deref().unwrap_or_default());
    if out.len() < end as usize {
        out.resize(end as usize, 0);
    }
    out[offset as usize..end as usize].copy_from_slice(patch);
    let len = out.len() as i64;
    match old {
        Some(_) => replace_value(ctx, &args[1], out.freeze()),
        None => ctx.db.set(&args[1], Value::Str(Key::new(out.freeze())), None),
    }
    Reply::Int(len)
}

/// MGET key [key ...]: one shard's part; a key of another type reads as nil.
pub fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    Reply::Array(
        args[1..].iter().map(|k| read_str(ctx, k).ok().flatten().map_or(Reply::Nil, bulk_of)).collect(),
    )
}

/// MSET key value [key value ...]: one shard's part.
pub fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    for pair in args[1..].chunks_exact(2) {
        store(ctx, &pair[0], &pair[1], None);
    }
    Reply::Ok
}

/// MSETNX key value [key value ...], when every key lives on this shard.
pub fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    if args[1..].chunks_exact(2).any(|p| ctx.db.live(&p[0], ctx.now)) {
        return Reply::Int(0);
    }
    mset(ctx, args);
    Reply::Int(1)
}

/// Whether any of `keys` exists: MSETNX's check on one shard.
pub fn any_exists(ctx: &mut Ctx<'_>, keys: &[Bytes]) -> bool {
    keys.iter().any(|k| ctx.db.live(k, ctx.now))
}
