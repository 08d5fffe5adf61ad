//! List commands: pushes, pops, ranges, LINSERT/LREM/LTRIM/LPOS, LMOVE and LMPOP (on one
//! shard, or across two or more), and the blocking forms BLPOP, BRPOP, BLMPOP, BLMOVE and
//! BRPOPLPUSH.

use std::time::Duration;

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::block::{self, unblocked, TIMED_OUT};
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::blocking::{self, Waited};
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::Ctx;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::engine::waiters::{Served, Wants};
use crate::facade::Reply;
use crate::storage::access::{self, list, list_mut};
use crate::storage::db::Value;
use crate::storage::list::End;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("lpush", -3, |c, a| push(c, a, End::Left, false))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "1.0.0", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", "Prepend one or multiple elements to a list")
            .history(&[("2.4.0", "Accepts multiple `element` arguments.")]),
        Command::shard("rpush", -3, |c, a| push(c, a, End::Right, false))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "1.0.0", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", "Append one or multiple elements to a list")
            .history(&[("2.4.0", "Accepts multiple `element` arguments.")]),
        Command::shard("lpushx", -3, |c, a| push(c, a, End::Left, true))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "2.2.0", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", "Prepend an element to a list, only if the list exists")
            .history(&[("4.0.0", "Accepts multiple `element` arguments.")]),
        Command::shard("rpushx", -3, |c, a| push(c, a, End::Right, true))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "2.2.0", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", "Append an element to a list, only if the list exists")
            .history(&[("4.0.0", "Accepts multiple `element` arguments.")]),
        Command::shard("lpop", -2, |c, a| pop(c, a, End::Left))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("list", "1.0.0", "O(N) where N is the number of elements returned", "Remove and get the first elements in a list")
            .history(&[("6.2.0", "Added the `count` argument.")]),
        Command::shard("rpop", -2, |c, a| pop(c, a, End::Right))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("list", "1.0.0", "O(N) where N is the number of elements returned", "Remove and get the last elements in a list")
            .history(&[("6.2.0", "Added the `count` argument.")]),
        Command::shard("llen", 2, llen)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("list", "1.0.0", "O(1)", "Get the length of a list"),
        Command::shard("lrange", 4, lrange)
            .flags(flag::READONLY)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("list", "1.0.0", "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.", "Get a range of elements from a list"),
        Command::shard("lindex", 3, lindex)
            .flags(flag::READONLY)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("list", "1.0.0", "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).", "Get an element from a list by its index"),
        Command::shard("lset", 4, lset)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("list", "1.0.0", "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).", "Set the value of an element in a list by its index"),
        Command::shard("linsert", 5, linsert)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "2.2.0", "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).", "Insert an element before or after another element in a list"),
        Command::shard("lrem", 4, lrem)
            .flags(flag::WRITE)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("list", "1.0.0", "O(N+M) where N is the length of the list and M is the number of elements removed.", "Remove elements from a list"),
        Command::shard("ltrim", 4, ltrim)
            .flags(flag::WRITE)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("list", "1.0.0", "O(N) where N is the number of elements to be removed by the operation.", "Trim a list to the specified range"),
        Command::shard("lpos", -3, lpos)
            .flags(flag::READONLY)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("list", "6.0.6", "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.", "Return the index of matching elements on a list"),
        Command::across("lmove", 5, lmove, |tx, db, a| Box::pin(lmove_across(tx, db, a)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "6.2.0", "O(1)", "Pop an element from a list, push it to another list and return it"),
        Command::across("rpoplpush", 3, rpoplpush, |tx, db, a| Box::pin(rpoplpush_across(tx, db, a)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "1.2.0", "O(1)", "Remove the last element in a list, prepend it to another list and return it")
            .deprecated("6.2.0", "`LMOVE` with the `RIGHT` and `LEFT` arguments"),
        Command::across("lmpop", -4, lmpop, |tx, db, a| Box::pin(lmpop_across(tx, db, a)))
            .flags(flag::WRITE)
            .acl(acl::LIST)
            .key(KeySpec::index(1).keynum(0, 1, 1).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("list", "7.0.0", "O(N+M) where N is the number of provided keys and M is the number of elements returned.", "Pop elements from a list"),
        Command::session("blpop", -3, |s, a| Box::pin(blpop(s, a, End::Left)))
            .flags(flag::WRITE | flag::NOSCRIPT | flag::BLOCKING)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(-2, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("list", "2.0.0", "O(N) where N is the number of provided keys.", "Remove and get the first element in a list, or block until one is available")
            .history(&[("6.0.0", "`timeout` is interpreted as a double instead of an integer.")]),
        Command::session("brpop", -3, |s, a| Box::pin(blpop(s, a, End::Right)))
            .flags(flag::WRITE | flag::NOSCRIPT | flag::BLOCKING)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(-2, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("list", "2.0.0", "O(N) where N is the number of provided keys.", "Remove and get the last element in a list, or block until one is available")
            .history(&[("6.0.0", "`timeout` is interpreted as a double instead of an integer.")]),
        Command::session("blmpop", -5, |s, a| Box::pin(blmpop(s, a)))
            .flags(flag::WRITE | flag::BLOCKING)
            .acl(acl::LIST)
            .key(KeySpec::index(2).keynum(0, 1, 1).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("list", "7.0.0", "O(N+M) where N is the number of provided keys and M is the number of elements returned.", "Pop elements from a list, or block until one is available"),
        Command::session("blmove", 6, |s, a| Box::pin(blmove(s, a)))
            .flags(flag::WRITE | flag::DENYOOM | flag::NOSCRIPT | flag::BLOCKING)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "6.2.0", "O(1)", "Pop an element from a list, push it to another list and return it; or block until one is available"),
        Command::session("brpoplpush", 4, |s, a| Box::pin(brpoplpush(s, a)))
            .flags(flag::WRITE | flag::DENYOOM | flag::NOSCRIPT | flag::BLOCKING)
            .acl(acl::LIST)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("list", "2.2.0", "O(1)", "Pop an element from a list, push it to another list and return it; or block until one is available")
            .history(&[("6.0.0", "`timeout` is interpreted as a double instead of an integer.")])
            .deprecated("6.2.0", "`BLMOVE` with the `RIGHT` and `LEFT` arguments"),
    ]
}

fn new_list() -> Value {
    Value::list(Box::default())
}

/// Parses LEFT or RIGHT.
fn end(arg: &[u8]) -> Result<End, CmdError> {
    match () {
        () if is(arg, "left") => Ok(End::Left),
        () if is(arg, "right") => Ok(End::Right),
        () => Err(CmdError::Syntax),
    }
}

/// Redis's index normalisation for ranges: negative counts from the end; clamped.
fn range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 { (len + start).max(0) } else { start };
    let stop = if stop < 0 { len + stop } else { stop.min(len - 1) };
    (start <= stop && start < len && stop >= 0).then_some((start as usize, stop as usize))
}

/// Redis's event for a push at `end`.
fn push_event(end: End) -> &'static str {
    if end == End::Left {
        "lpush"
    } else {
        "rpush"
    }
}

/// Redis's event for a pop from `end`.
fn pop_event(end: End) -> &'static str {
    if end == End::Left {
        "lpop"
    } else {
        "rpop"
    }
}

/// Reports a pop from `end` of `key`, then the key's deletion if the pop emptied it (Redis's
/// `listElementsRemoved`).
fn notify_pop(ctx: &mut Ctx<'_>, key: &[u8], end: End) {
    ctx.notify(Class::LIST, pop_event(end), key);
    if ctx.notifying(Class::GENERIC) && !ctx.db.live(key, ctx.now) {
        ctx.notify(Class::GENERIC, "del", key);
    }
}

/// Reports a move as Redis's LMOVE does: the push onto `dst`, the pop from `src`, then the
/// deletion of `src` if `emptied`.
fn notify_move(ctx: &mut Ctx<'_>, src: &[u8], dst: &[u8], from: End, to: End, emptied: bool) {
    ctx.notify(Class::LIST, push_event(to), dst);
    ctx.notify(Class::LIST, pop_event(from), src);
    if emptied {
        ctx.notify(Class::GENERIC, "del", src);
    }
}

/// LPUSH / RPUSH / LPUSHX / RPUSHX key element [element ...]: at `at`, and with `only_existing`
/// only onto a list that is there.
fn push(ctx: &mut Ctx<'_>, args: &[Bytes], at: End, only_existing: bool) -> CmdResult {
    let l = if only_existing {
        match access::write(ctx.db, ctx.now, &args[1], list_mut)? {
            Some(l) => l,
            None => return Ok(Reply::Int(0)),
        }
    } else {
        access::create(ctx.db, ctx.now, &args[1], list_mut, new_list)?
    };
    for e in &args[2..] {
        if at == End::Left {
            l.push_front(e);
        } else {
            l.push_back(e);
        }
    }
    let len = l.len() as i64;
    ctx.notify(Class::LIST, push_event(at), &args[1]);
    Ok(Reply::Int(len))
}

/// LPOP / RPOP key [count]
fn pop(ctx: &mut Ctx<'_>, args: &[Bytes], from: End) -> CmdResult {
    if args.len() > 3 {
        // As Redis: checked when it runs, so inside MULTI only this command fails.
        return Err(CmdError::arity(if from == End::Left { "lpop" } else { "rpop" }));
    }
    let count = match args.get(2).map(|c| args::int(c)) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(_) => return Err(CmdError::NotPositive),
    };
    let popped = access::list_pop(ctx.db, ctx.now, &args[1], from, count.unwrap_or(1))?;
    if popped.as_ref().is_some_and(|p| !p.is_empty()) {
        notify_pop(ctx, &args[1], from);
    }
    Ok(match (popped, count) {
        (None, None) => Reply::Nil,
        (None, Some(_)) => Reply::NilArray,
        (Some(mut v), None) => v.pop().map_or(Reply::Nil, Reply::Bulk),
        (Some(v), Some(_)) => Reply::Array(v.into_iter().map(Reply::Bulk).collect()),
    })
}

/// LLEN key
fn llen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(access::read(ctx.db, ctx.now, &args[1], list)?.map_or(0, |l| l.len() as i64)))
}

/// LRANGE key start stop
fn lrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (start, stop) = (args::int(&args[2])?, args::int(&args[3])?);
    Ok(match access::read(ctx.db, ctx.now, &args[1], list)? {
        Some(l) => match range(l.len(), start, stop) {
            Some((a, b)) => Reply::bulk_array(l.range(a, b)),
            None => Reply::Array(vec![]),
        },
        None => Reply::Array(vec![]),
    })
}

fn index(len: usize, i: i64) -> Option<usize> {
    let i = if i < 0 { len as i64 + i } else { i };
    (0..len as i64).contains(&i).then_some(i as usize)
}

/// LINDEX key index
///
/// As Redis, the key is looked up before the index is read: nil or WRONGTYPE win.
fn lindex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(l) = access::read(ctx.db, ctx.now, &args[1], list)? else { return Ok(Reply::Nil) };
    let i = args::int(&args[2])?;
    Ok(index(l.len(), i)
        .and_then(|i| l.get(i))
        .map_or(Reply::Nil, |e| Reply::Bulk(Bytes::copy_from_slice(e))))
}

/// LSET key index element
///
/// As Redis, the key is looked up before the index is read.
fn lset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let Some(l) = access::write_quiet(ctx.db, ctx.now, &args[1], list_mut)? else {
        return Err(CmdError::NoSuchKey);
    };
    let i = args::int(&args[2])?;
    let Some(i) = index(l.len(), i) else { return Err(CmdError::msg("ERR index out of range")) };
    l.set(i, &args[3]);
    ctx.db.signal(&args[1]);
    ctx.notify(Class::LIST, "lset", &args[1]);
    Ok(Reply::Ok)
}

/// LINSERT key BEFORE | AFTER pivot element
fn linsert(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let after = match () {
        () if is(&args[2], "before") => false,
        () if is(&args[2], "after") => true,
        () => return Err(CmdError::Syntax),
    };
    let Some(l) = access::write(ctx.db, ctx.now, &args[1], list_mut)? else { return Ok(Reply::Int(0)) };
    let Some(p) = l.position(&args[3]) else { return Ok(Reply::Int(-1)) };
    l.insert(if after { p + 1 } else { p }, &args[4]);
    let len = l.len() as i64;
    ctx.notify(Class::LIST, "linsert", &args[1]);
    Ok(Reply::Int(len))
}

/// LREM key count element
fn lrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let count = args::int(&args[2])?;
    let (removed, emptied) = access::update_quiet(ctx.db, ctx.now, &args[1], list_mut, |l| {
        let Some(l) = l else { return ((0, false), false) };
        let removed = l.remove_matching(&args[3], count);
        ((removed as i64, l.is_empty()), removed > 0)
    })?;
    if removed > 0 {
        ctx.notify(Class::LIST, "lrem", &args[1]);
    }
    if emptied {
        ctx.notify(Class::GENERIC, "del", &args[1]);
    }
    Ok(Reply::Int(removed))
}

/// LTRIM key start stop
fn ltrim(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (start, stop) = (args::int(&args[2])?, args::int(&args[3])?);
    let emptied = access::update(ctx.db, ctx.now, &args[1], list_mut, |l| {
        let l = l?;
        match range(l.len(), start, stop) {
            Some((a, b)) => {
                l.drop_back(l.len() - 1 - b);
                l.drop_front(a);
            }
            None => l.drop_front(l.len()),
        }
        Some(l.is_empty())
    })?;
    if let Some(emptied) = emptied {
        ctx.notify(Class::LIST, "ltrim", &args[1]);
        if emptied {
            ctx.notify(Class::GENERIC, "del", &args[1]);
        }
    }
    Ok(Reply::Ok)
}

/// LPOS key element [RANK rank] [COUNT num] [MAXLEN len]
fn lpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (mut rank, mut count, mut maxlen) = (1i64, None, 0usize);
    let mut i = 3;
    while i < args.len() {
        let Some(v) = args.get(i + 1) else { return Err(CmdError::Syntax) };
        // COUNT and MAXLEN name themselves in any error, as Redis's do.
        let positive = |what: &'static str| match args::int(v) {
            Ok(n) if n >= 0 => Ok(n as usize),
            _ => Err(CmdError::msg(what)),
        };
        match () {
            () if is(&args[i], "rank") => {
                rank = args::int(v)?;
                if rank == 0 {
                    return Err(CmdError::msg(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the \
                         second ... or use negative to start from the end of the list",
                    ));
                }
            }
            () if is(&args[i], "count") => count = Some(positive("ERR COUNT can't be negative")?),
            () if is(&args[i], "maxlen") => maxlen = positive("ERR MAXLEN can't be negative")?,
            () => return Err(CmdError::Syntax),
        }
        i += 2;
    }
    let Some(l) = access::read(ctx.db, ctx.now, &args[1], list)? else {
        return Ok(if count.is_some() { Reply::Array(vec![]) } else { Reply::Nil });
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
    Ok(match count {
        Some(_) => Reply::Array(found.into_iter().map(Reply::Int).collect()),
        None => found.first().map_or(Reply::Nil, |&p| Reply::Int(p)),
    })
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT, when both lists live on this shard.
fn lmove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (from, to) = (end(&args[3])?, end(&args[4])?);
    Ok(lmove_here(ctx, &args[1], &args[2], from, to)?.map_or(Reply::Nil, Reply::Bulk))
}

/// RPOPLPUSH source destination, when both lists live on this shard.
fn rpoplpush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(lmove_here(ctx, &args[1], &args[2], End::Right, End::Left)?.map_or(Reply::Nil, Reply::Bulk))
}

/// Moves one element from `from` of `src` to `to` of `dst`, both on this shard; the element,
/// or `None` when `src` has none. As Redis: a missing source is nil whatever the destination
/// holds, and both types are checked before anything moves.
pub(crate) fn lmove_here(
    ctx: &mut Ctx<'_>,
    src: &[u8],
    dst: &[u8],
    from: End,
    to: End,
) -> Result<Option<Bytes>, CmdError> {
    if !access::exists(ctx.db, ctx.now, src, list)? {
        return Ok(None);
    }
    access::list_pushable(ctx.db, ctx.now, dst)?;
    let Some(e) = access::list_pop(ctx.db, ctx.now, src, from, 1)?.and_then(|mut v| v.pop()) else {
        return Ok(None);
    };
    access::list_push(ctx.db, ctx.now, dst, to, &e)?;
    log_move(ctx, src, dst, from, to);
    let emptied = ctx.notifying(Class::GENERIC) && !ctx.db.live(src, ctx.now);
    notify_move(ctx, src, dst, from, to, emptied);
    Ok(Some(e))
}

/// The name of `end` as LMOVE takes it.
fn end_name(end: End) -> &'static [u8] {
    if end == End::Left {
        b"LEFT"
    } else {
        b"RIGHT"
    }
}

/// Logs a move as `LMOVE`: what BLMOVE and BRPOPLPUSH did, in their non-blocking form.
fn log_move(ctx: &mut Ctx<'_>, src: &[u8], dst: &[u8], from: End, to: End) {
    ctx.log(&[b"LMOVE", src, dst, end_name(from), end_name(to)]);
}

/// Logs a pop of `n` elements from `end` of `key` as `LPOP key n` or `RPOP key n`: what LMPOP,
/// BLPOP and BLMPOP did, in the form Redis propagates.
pub(crate) fn log_pop(ctx: &mut Ctx<'_>, key: &[u8], end: End, n: usize) {
    if ctx.journaling() {
        let mut n_text = itoa::Buffer::new();
        let n = n_text.format(n);
        ctx.log(&[if end == End::Left { b"LPOP" } else { b"RPOP" }, key, n.as_bytes()]);
    }
}

/// LMOVE across shards.
async fn lmove_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let (from, to) = (end(&args[3])?, end(&args[4])?);
    Ok(move_across(tx, db, &args[1], &args[2], from, to).await?.map_or(Reply::Nil, Reply::Bulk))
}

/// RPOPLPUSH across shards.
async fn rpoplpush_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    Ok(move_across(tx, db, &args[1], &args[2], End::Right, End::Left).await?.map_or(Reply::Nil, Reply::Bulk))
}

/// [`lmove_here`] with the lists on two shards, both held by `tx`.
pub(crate) async fn move_across(
    tx: &Tx,
    db: usize,
    src: &Bytes,
    dst: &Bytes,
    from: End,
    to: End,
) -> Result<Option<Bytes>, CmdError> {
    let (s_src, s_dst) = (tx.shard_of(src), tx.shard_of(dst));
    let (probe_src, probe_dst) = (src.clone(), dst.clone());
    if !tx.on(s_src, db, move |c| Ok(access::exists(c.db, c.now, &probe_src, list)?)).await? {
        return Ok(None);
    }
    tx.on(s_dst, db, move |c| Ok(access::list_pushable(c.db, c.now, &probe_dst)?)).await?;
    let popped_from = src.clone();
    let (popped, emptied) = tx
        .on(s_src, db, move |c| {
            let popped = access::list_pop(c.db, c.now, &popped_from, from, 1)?;
            Ok((popped, c.notifying(Class::GENERIC) && !c.db.live(&popped_from, c.now)))
        })
        .await?;
    let Some(e) = popped.and_then(|mut v| v.pop()) else { return Ok(None) };
    let (src, dst, pushed) = (src.clone(), dst.clone(), e.clone());
    tx.on(s_dst, db, move |c| {
        access::list_push(c.db, c.now, &dst, to, &pushed)?;
        // After the push, so that a destination found expired is deleted first: the
        // transaction's block holds the pop too, and one LMOVE replays both.
        log_move(c, &src, &dst, from, to);
        // The source's events too, in Redis's order: the push first.
        notify_move(c, &src, &dst, from, to, emptied);
        Ok(())
    })
    .await?;
    Ok(Some(e))
}

/// LMPOP's parsed arguments: the keys, the end, and how many to pop.
struct MPop {
    /// The keys, in order.
    keys: Vec<Bytes>,
    /// Which end.
    end: End,
    /// How many elements at most.
    count: usize,
}

impl MPop {
    /// Parses `numkeys key [key ...] LEFT|RIGHT [COUNT count]` after `args[0]` (the name, or
    /// BLMPOP's timeout).
    fn parse(args: &[Bytes]) -> Result<MPop, CmdError> {
        let (keys, end, count) = args::mpop(args, |side| end(side))?;
        Ok(MPop { keys, end, count })
    }
}

/// The LMPOP reply for elements popped from `key`.
fn mpop_reply(popped: Option<(Bytes, Vec<Bytes>)>) -> Reply {
    match popped {
        Some((key, popped)) => {
            Reply::Array(vec![Reply::Bulk(key), Reply::Array(popped.into_iter().map(Reply::Bulk).collect())])
        }
        None => Reply::NilArray,
    }
}

/// Pops up to `count` elements from `end` of the first non-empty list of `keys`, all on this
/// shard: the key and what was popped.
pub(crate) fn mpop_here(
    ctx: &mut Ctx<'_>,
    keys: &[Bytes],
    end: End,
    count: usize,
) -> Result<Option<(Bytes, Vec<Bytes>)>, CmdError> {
    for key in keys {
        if let Some(popped) = access::list_pop(ctx.db, ctx.now, key, end, count)? {
            log_pop(ctx, key, end, popped.len());
            notify_pop(ctx, key, end);
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

/// [`mpop_here`] over keys on several shards, all held by `tx`: the first non-empty list, in
/// key order, gives.
pub(crate) async fn mpop_across(
    tx: &Tx,
    db: usize,
    keys: &[Bytes],
    end: End,
    count: usize,
) -> Result<Option<(Bytes, Vec<Bytes>)>, CmdError> {
    for key in keys {
        let k = key.clone();
        let pop = move |c: &mut Ctx<'_>| {
            let popped = access::list_pop(c.db, c.now, &k, end, count)?;
            if let Some(p) = &popped {
                log_pop(c, &k, end, p.len());
                notify_pop(c, &k, end);
            }
            Ok(popped)
        };
        if let Some(popped) = tx.on(tx.shard_of(key), db, pop).await? {
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

/// LMPOP when every key lives on this shard.
fn lmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let m = MPop::parse(args)?;
    Ok(mpop_reply(mpop_here(ctx, &m.keys, m.end, m.count)?))
}

/// LMPOP over keys on several shards.
async fn lmpop_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let m = MPop::parse(args)?;
    Ok(mpop_reply(mpop_across(tx, db, &m.keys, m.end, m.count).await?))
}

/// Pops from the first non-empty list of `keys`, wherever they live, atomically.
async fn mpop_now(
    s: &Session,
    keys: &[Bytes],
    end: End,
    count: usize,
) -> Result<Option<(Bytes, Vec<Bytes>)>, CmdError> {
    let (db, here_keys) = (s.db, keys.to_vec());
    s.over_keys(
        keys,
        move |c| mpop_here(c, &here_keys, end, count),
        async |tx: &Tx| mpop_across(tx, db, keys, end, count).await,
    )
    .await
}

/// What a blocking pop waits for: `count` elements from `end`, then the reply's shape.
async fn block_pop(
    s: &mut Session,
    keys: &[Bytes],
    end: End,
    count: usize,
    limit: Option<Duration>,
) -> Result<Option<(Bytes, Vec<Bytes>)>, CmdResult> {
    // First, without blocking: the ordinary pop (atomic across shards).
    if let Some(popped) = mpop_now(s, keys, end, count).await.map_err(Err)? {
        return Ok(Some(popped));
    }
    // Inside MULTI/EXEC a blocking pop never blocks, as in Redis.
    if !s.may_block() {
        return Ok(None);
    }
    match blocking::wait(s, keys, |_, _| Wants::List { end, count, then_push: None }, limit, false).await {
        Ok(Waited::Served(key, Served::List(popped))) => Ok(Some((key, popped))),
        Ok(Waited::Served(_, Served::Failed(e))) | Err(e) => Err(Err(e)),
        Ok(Waited::Served(..)) => Err(Err(CmdError::Internal)),
        Ok(Waited::Stopped(why)) => Err(unblocked(why)),
    }
}

/// BLPOP / BRPOP key [key ...] timeout: `[key, element]`.
async fn blpop(s: &mut Session, args: &[Bytes], end: End) -> CmdResult {
    let limit = block::timeout(&args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    Ok(match block_pop(s, keys, end, 1, limit).await {
        Ok(Some((key, mut popped))) => match popped.pop() {
            Some(e) => Reply::Array(vec![Reply::Bulk(key), Reply::Bulk(e)]),
            None => Reply::NilArray,
        },
        Ok(None) => Reply::NilArray,
        Err(reply) => return reply,
    })
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]: `[key, [elements]]`.
async fn blmpop(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let limit = block::timeout(&args[1])?;
    let m = MPop::parse(&args[1..])?;
    match block_pop(s, &m.keys, m.end, m.count, limit).await {
        Ok(popped) => Ok(mpop_reply(popped)),
        Err(reply) => reply,
    }
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
async fn blmove(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let (from, to) = (end(&args[3])?, end(&args[4])?);
    let limit = block::timeout(&args[5])?;
    block_move(s, &args[1], &args[2], from, to, limit).await
}

/// BRPOPLPUSH source destination timeout
async fn brpoplpush(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let limit = block::timeout(&args[3])?;
    block_move(s, &args[1], &args[2], End::Right, End::Left, limit).await
}

/// Moves one element from `src` to `dst` now, wherever they live, atomically.
async fn move_now(
    s: &Session,
    src: &Bytes,
    dst: &Bytes,
    from: End,
    to: End,
) -> Result<Option<Bytes>, CmdError> {
    let (db, a, b) = (s.db, src.clone(), dst.clone());
    s.over_keys(
        &[src.clone(), dst.clone()],
        move |c| lmove_here(c, &a, &b, from, to),
        async |tx: &Tx| move_across(tx, db, src, dst, from, to).await,
    )
    .await
}

/// BLMOVE and BRPOPLPUSH. With the destination on the source's shard, that shard moves the
/// element itself, atomically; with it on another shard, the source's shard only wakes the
/// client (keeping one element back for it in that round) and the client runs the move across
/// both shards, so no reader ever sees the element in neither list. Should a client that was
/// not blocked take the element first, the client blocks again at the head of the queue.
async fn block_move(
    s: &mut Session,
    src: &Bytes,
    dst: &Bytes,
    from: End,
    to: End,
    limit: Option<Duration>,
) -> CmdResult {
    if let Some(e) = move_now(s, src, dst, from, to).await? {
        return Ok(Reply::Bulk(e));
    }
    if !s.may_block() {
        return Ok(Reply::Nil);
    }
    // Counted as waiting from here to the end, its tries between waits included.
    let _waiting = crate::engine::waiters::Counted::new();
    let deadline = limit.map(|d| std::time::Instant::now() + d);
    let dst_shard = s.core.router.shard_of(dst);
    let mut first_in_line = false;
    loop {
        let left = match deadline {
            None => None,
            Some(d) => match d.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(TIMED_OUT),
            },
        };
        let wants = |_: &Bytes, shard| {
            if shard == dst_shard {
                Wants::List { end: from, count: 1, then_push: Some((dst.clone(), to)) }
            } else {
                Wants::Wake
            }
        };
        match blocking::wait(s, std::slice::from_ref(src), wants, left, first_in_line).await? {
            Waited::Served(_, Served::List(mut popped)) => {
                return Ok(popped.pop().map_or(Reply::Nil, Reply::Bulk))
            }
            Waited::Served(_, Served::Failed(e)) => return Err(e),
            Waited::Served(_, Served::Woken) => {
                if let Some(e) = move_now(s, src, dst, from, to).await? {
                    return Ok(Reply::Bulk(e));
                }
                first_in_line = true;
            }
            Waited::Served(_, Served::ZSet(_) | Served::Stream(_)) => return Err(CmdError::Internal),
            Waited::Stopped(why) => return unblocked(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::Fixture;

    #[test]
    fn pushes_pops_and_ranges() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("RPUSH l a b c d"), ":4\r\n");
        assert_eq!(f.resp("LPOP l 2"), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
        assert_eq!(f.resp("LRANGE l 0 -1"), "*2\r\n$1\r\nc\r\n$1\r\nd\r\n");
        assert_eq!(f.resp("LMOVE l m RIGHT LEFT"), "$1\r\nd\r\n");
        assert_eq!(f.resp("RPOP l"), "$1\r\nc\r\n");
        assert_eq!(f.resp("EXISTS l"), ":0\r\n", "an emptied list is deleted");
        assert_eq!(f.resp("LPOP m 0"), "*0\r\n");
        assert_eq!(f.resp("LPOP m -1"), "-ERR value is out of range, must be positive\r\n");
    }

    #[test]
    fn lpos_and_linsert_follow_redis() {
        let mut f = Fixture::new();
        f.run("RPUSH l a b a c a");
        assert_eq!(f.resp("LPOS l a RANK -1"), ":4\r\n");
        assert_eq!(f.resp("LPOS l a COUNT 0 MAXLEN 3"), "*2\r\n:0\r\n:2\r\n");
        assert_eq!(f.resp("LINSERT l BEFORE c x"), ":6\r\n");
        assert_eq!(f.resp("LINSERT l AFTER nosuch x"), ":-1\r\n");
        assert_eq!(f.resp("LINSERT nokey AFTER a x"), ":0\r\n");
    }
}
