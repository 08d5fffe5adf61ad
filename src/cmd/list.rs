//! List commands: pushes, pops, ranges, LINSERT/LREM/LTRIM/LPOS, LMOVE. Run on the owning shard.

use bytes::Bytes;

use crate::cmd::access::{self, list, list_mut};
use crate::cmd::args::{self, is, NO_SUCH_KEY, SYNTAX};
use crate::engine::shard::Ctx;
use crate::facade::Reply;
use crate::storage::db::Value;

fn new_list() -> Value {
    Value::List(Box::default())
}

/// Redis's index normalisation for ranges: negative counts from the end; clamped.
fn range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

/// LPUSH / RPUSH / LPUSHX / RPUSHX key element [element ...]
pub fn push(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let name = &args[0];
    let left = is(name, "lpush") || is(name, "lpushx");
    let only_existing = is(name, "lpushx") || is(name, "rpushx");
    let l = if only_existing {
        match access::write(ctx, &args[1], list_mut) {
            Ok(Some(l)) => l,
            Ok(None) => return Reply::Int(0),
            Err(e) => return e,
        }
    } else {
        match access::create(ctx, &args[1], list_mut, new_list) {
            Ok(l) => l,
            Err(e) => return e,
        }
    };
    for e in &args[2..] {
        if left {
            l.push_front(e);
        } else {
            l.push_back(e);
        }
    }
    Reply::Int(l.len() as i64)
}

/// LPOP / RPOP key [count]
pub fn pop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let left = is(&args[0], "lpop");
    if args.len() > 3 {
        // As Redis: checked when it runs, so inside MULTI only this command fails.
        return args::wrong_args(if left { "lpop" } else { "rpop" });
    }
    let count = match args.get(2).map(|c| args::int(c)) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(_) => return args::NOT_POSITIVE,
    };
    let popped = access::update(ctx, &args[1], list_mut, |l| {
        let l = l?;
        let n = count.unwrap_or(1).min(l.len());
        Some((0..n).filter_map(|_| if left { l.pop_front() } else { l.pop_back() }).collect::<Vec<_>>())
    });
    match (popped, count) {
        (Err(e), _) => e,
        (Ok(None), None) => Reply::Nil,
        (Ok(None), Some(_)) => Reply::NilArray,
        (Ok(Some(mut v)), None) => v.pop().map_or(Reply::Nil, Reply::Bulk),
        (Ok(Some(v)), Some(_)) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
    }
}

/// LLEN key
pub fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], list) {
        Ok(l) => Reply::Int(l.map_or(0, |l| l.len() as i64)),
        Err(e) => e,
    }
}

/// LRANGE key start stop
pub fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (start, stop) = match (args::int(&args[2]), args::int(&args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return args::NOT_INT,
    };
    match access::read(ctx, &args[1], list) {
        Ok(Some(l)) => match range(l.len(), start, stop) {
            Some((a, b)) => Reply::bulk_array(l.range(a, b)),
            None => Reply::Array(vec![]),
        },
        Ok(None) => Reply::Array(vec![]),
        Err(e) => e,
    }
}

fn index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// LINDEX key index
///
/// As Redis, the key is looked up before the index is read: nil or WRONGTYPE win.
pub fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let l = match access::read(ctx, &args[1], list) {
        Ok(Some(l)) => l,
        Ok(None) => return Reply::Nil,
        Err(e) => return e,
    };
    match args::int(&args[2]) {
        Ok(i) => index(l.len(), i)
            .and_then(|i| l.get(i))
            .map_or(Reply::Nil, |e| Reply::Bulk(Bytes::copy_from_slice(e))),
        Err(e) => e,
    }
}

/// LSET key index element
///
/// As Redis, the key is looked up before the index is read.
pub fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let l = match access::write_quiet(ctx, &args[1], list_mut) {
        Ok(Some(l)) => l,
        Ok(None) => return NO_SUCH_KEY,
        Err(e) => return e,
    };
    let i = match args::int(&args[2]) {
        Ok(i) => i,
        Err(e) => return e,
    };
    match index(l.len(), i) {
        Some(i) => {
            l.set(i, &args[3]);
            ctx.db.signal(&args[1]);
            Reply::Ok
        }
        None => Reply::error("ERR index out of range"),
    }
}

/// LINSERT key BEFORE | AFTER pivot element
pub fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let after = match () {
        () if is(&args[2], "before") => false,
        () if is(&args[2], "after") => true,
        () => return SYNTAX,
    };
    match access::write(ctx, &args[1], list_mut) {
        Ok(Some(l)) => match l.position(&args[3]) {
            Some(p) => {
                l.insert(if after { p + 1 } else { p }, &args[4]);
                Reply::Int(l.len() as i64)
            }
            None => Reply::Int(-1),
        },
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
}

/// LREM key count element
pub fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let count = match args::int(&args[2]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let removed = access::update_quiet(ctx, &args[1], list_mut, |l| {
        let Some(l) = l else { return (0, false) };
        let removed = l.remove_matching(&args[3], count);
        (removed as i64, removed > 0)
    });
    removed.map_or_else(|e| e, Reply::Int)
}

/// LTRIM key start stop
pub fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (start, stop) = match (args::int(&args[2]), args::int(&args[3])) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return args::NOT_INT,
    };
    let done = access::update(ctx, &args[1], list_mut, |l| {
        if let Some(l) = l {
            match range(l.len(), start, stop) {
                Some((a, b)) => {
                    l.drop_back(l.len() - 1 - b);
                    l.drop_front(a);
                }
                None => l.drop_front(l.len()),
            }
        }
    });
    done.map_or_else(|e| e, |()| Reply::Ok)
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len]
pub fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else { return SYNTAX };
        // COUNT and MAXLEN name themselves in any error, as Redis's do.
        let positive = |what: &'static str| match args::int(v) {
            Ok(n) if n >= 0 => Ok(n as usize),
            _ => Err(Reply::error(what)),
        };
        match () {
            () if is(&args[i], "rank") => {
                rank = match args::int(v) {
                    Ok(n) => n,
                    Err(e) => return e,
                };
                if rank == 0 {
                    return Reply::error(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                         second ... or use negative to start from the end of the list",
                    );
                }
            }
            () if is(&args[i], "count") => match positive("ERR COUNT can't be negative") {
                Ok(n) => count = Some(n),
                Err(e) => return e,
            },
            () if is(&args[i], "maxlen") => match positive("ERR MAXLEN can't be negative") {
                Ok(n) => maxlen = n,
                Err(e) => return e,
            },
            () => return SYNTAX,
        }
        i += 2;
    }
    let l = match access::read(ctx, &args[1], list) {
        Ok(Some(l)) => l,
        Ok(None) => return if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil },
        Err(e) => return e,
    };
    let want = match count {
        // Redis 7.0's `matches - rank + 1` overflows for this rank: COUNT never stops it.
        Some(_) if rank == i64::MIN => usize::MAX,
        Some(0) => usize::MAX,
        Some(n) => n,
        None => 1,
    };
    let (len, scan) = (l.len(), if maxlen == 0 { l.len() } else { maxlen.min(l.len()) });
    let elements: Box<dyn Iterator<Item = (usize, &[u8])>> = if rank > 0 {
        Box::new(l.iter().enumerate().take(scan))
    } else {
        Box::new(l.iter().rev().enumerate().map(|(k, e)| (len - 1 - k, e)).take(scan))
    };
    // Redis 7.0 negates a rank of i64::MIN into itself, which every match satisfies: -1.
    let mut skip = if rank == i64::MIN { 0 } else { rank.unsigned_abs() as usize - 1 };
    let mut found = Vec::new();
    for (p, e) in elements {
        if e == args[2] {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            found.push(p as i64);
            if found.len() >= want {
                break;
            }
        }
    }
    match count {
        Some(_) => Reply::Array(found.into_iter().map(Reply::Int).collect()),
        None => found.first().map_or(Reply::Nil, |&p| Reply::Int(p)),
    }
}

/// Which end of a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The head.
    Left,
    /// The tail.
    Right,
}

impl End {
    /// Parses LEFT or RIGHT.
    pub fn parse(arg: &[u8]) -> Result<End, Reply> {
        match () {
            () if is(arg, "left") => Ok(End::Left),
            () if is(arg, "right") => Ok(End::Right),
            () => Err(SYNTAX),
        }
    }
}

/// The ends LMOVE / RPOPLPUSH name.
pub fn move_ends(args: &[Bytes]) -> Result<(End, End), Reply> {
    if is(&args[0], "rpoplpush") {
        return Ok((End::Right, End::Left));
    }
    Ok((End::parse(&args[3])?, End::parse(&args[4])?))
}

/// Whether `key` holds a list (`Ok(false)` when missing), or WRONGTYPE.
pub fn exists(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<bool, Reply> {
    access::exists(ctx, key, list)
}

/// Whether `key` may receive a pushed element (missing, or a list).
pub fn check_pushable(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<(), Reply> {
    access::write(ctx, key, list_mut).map(drop)
}

/// Pops one element from `end` of the list at `key`.
pub fn pop_one(ctx: &mut Ctx<'_>, key: &[u8], end: End) -> Result<Option<Bytes>, Reply> {
    access::update(ctx, key, list_mut, |l| {
        let l = l?;
        if end == End::Left {
            l.pop_front()
        } else {
            l.pop_back()
        }
    })
}

/// Pushes `e` at `end` of the list at `key` (creating it).
pub fn push_one(ctx: &mut Ctx<'_>, key: &[u8], end: End, e: Bytes) -> Result<(), Reply> {
    let l = access::create(ctx, key, list_mut, new_list)?;
    if end == End::Left {
        l.push_front(&e);
    } else {
        l.push_back(&e);
    }
    Ok(())
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT, RPOPLPUSH source destination (one shard).
pub fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (from, to) = match move_ends(args) {
        Ok(e) => e,
        Err(e) => return e,
    };
    let run = |ctx: &mut Ctx<'_>| -> Result<Reply, Reply> {
        // As Redis: a missing source is nil whatever the destination holds.
        if !exists(ctx, &args[1])? {
            return Ok(Reply::Nil);
        }
        check_pushable(ctx, &args[2])?;
        let Some(e) = pop_one(ctx, &args[1], from)? else { return Ok(Reply::Nil) };
        push_one(ctx, &args[2], to, e.clone())?;
        Ok(Reply::Bulk(e))
    };
    run(ctx).unwrap_or_else(|e| e)
}

/// LMPOP's parsed arguments: the keys, the end, and how many to pop.
pub struct MPop {
    /// The keys, in order.
    pub keys: Vec<Bytes>,
    /// Which end.
    pub end: End,
    /// How many elements at most.
    pub count: usize,
}

impl MPop {
    /// Parses `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
    pub fn parse(args: &[Bytes]) -> Result<MPop, Reply> {
        let (keys, end, count) = args::mpop(args, |side| End::parse(side))?;
        Ok(MPop { keys, end, count })
    }
}

/// Pops up to `count` elements from `end` of the list at `key`: `None` when it is missing.
pub fn pop_many(ctx: &mut Ctx<'_>, key: &[u8], end: End, count: usize) -> Result<Option<Vec<Bytes>>, Reply> {
    access::update(ctx, key, list_mut, |l| {
        let l = l?;
        let n = count.min(l.len());
        Some((0..n).filter_map(|_| if end == End::Left { l.pop_front() } else { l.pop_back() }).collect())
    })
}

/// The LMPOP reply for elements popped from `key`.
#[must_use]
pub fn mpop_reply(key: Bytes, popped: Vec<Bytes>) -> Reply {
    Reply::Array(vec![Reply::Bulk(key), Reply::Array(popped.into_iter().map(Reply::Bulk).collect())])
}

/// LMPOP when every key lives on this shard.
pub fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let run = |ctx: &mut Ctx<'_>| -> Result<Reply, Reply> {
        let mpop = MPop::parse(args)?;
        for key in mpop.keys {
            if let Some(popped) = pop_many(ctx, &key, mpop.end, mpop.count)? {
                return Ok(mpop_reply(key, popped));
            }
        }
        Ok(Reply::NilArray)
    };
    run(ctx).unwrap_or_else(|e| e)
}
