//! A stream's entries: XADD, XTRIM, XDEL, XSETID, XLEN, XRANGE and XREVRANGE.

use bytes::Bytes;

use crate::cmd::args::is;
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::stream::args::{self, NewId};
use crate::engine::notify::Class;
use crate::engine::shard::Ctx;
use crate::facade::Reply;
use crate::storage::access::{self, stream, stream_mut};
use crate::storage::db::Value;
use crate::storage::encoding;
use crate::storage::stream::{Stream, StreamId};

/// A new, empty stream value.
pub(crate) fn new_stream() -> Value {
    Value::stream(Box::new(Stream::new()))
}

/// The bound on an entry's fields and values together (Redis's `STREAM_LISTPACK_MAX_SIZE`).
const MAX_ENTRY_BYTES: u64 = 1 << 30;

const TOP_ITEM: CmdError =
    CmdError::msg("ERR The ID specified in XADD is equal or smaller than the target stream top item");

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [...]
pub(crate) fn xadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let limits = encoding::get().stream_nodes;
    let p = args::add_or_trim(a, true, limits.max_entries, ctx.obey)?;
    let Some((new, id_at)) = p.id else { return Err(CmdError::arity("xadd")) };
    let fields = &a[id_at + 1..];
    if fields.len() < 2 || fields.len() % 2 != 0 {
        return Err(CmdError::arity("xadd"));
    }
    if new == NewId::Given(StreamId::MIN) {
        return Err(CmdError::msg("ERR The ID specified in XADD must be greater than 0-0"));
    }
    let key = &a[1];
    let generated = !matches!(new, NewId::Given(..));
    let rewrite = ctx.journaling() && (generated || p.trim.is_some_and(|t| t.approx));
    if !access::exists(ctx.db, ctx.now, key, stream)? && p.nomkstream {
        return Ok(Reply::Nil);
    }
    // Created now if missing (and left so should the ID be refused, as in Redis); an existing
    // stream counts as changed only once the entry is in.
    let s = access::create_quiet(ctx.db, ctx.now, key, stream_mut, new_stream)?;
    if s.last_id == StreamId::MAX {
        return Err(CmdError::msg(
            "ERR The stream has exhausted the last possible ID, unable to add more items",
        ));
    }
    let last = s.last_id;
    let id = match new {
        NewId::Auto if ctx.now > last.ms => StreamId::new(ctx.now, 0),
        NewId::Auto => last.next().ok_or(TOP_ITEM)?,
        NewId::Seq(ms) if ms == last.ms => StreamId::new(ms, last.seq.checked_add(1).ok_or(TOP_ITEM)?),
        NewId::Seq(ms) => StreamId::new(ms, 0),
        NewId::Given(id) => id,
    };
    if id <= last {
        return Err(TOP_ITEM);
    }
    if fields.iter().map(|f| f.len() as u64).sum::<u64>() > MAX_ENTRY_BYTES {
        return Err(CmdError::msg("ERR Elements are too large to be stored"));
    }
    s.append(id, fields, limits);
    let trimmed = p.trim.as_ref().map_or(0, |t| s.trim(t.rule, t.approx, t.limit));
    // What the trim reached, for the rewritten request only (the first ID costs a decode).
    let reached = rewrite.then(|| (s.len(), s.first_stored_id()));
    ctx.db.signal(key);
    ctx.notify(Class::STREAM, "xadd", key);
    if trimmed > 0 {
        ctx.notify(Class::STREAM, "xtrim", key);
    }
    if let Some(reached) = reached {
        let logged = args::rewritten(a, p.trim.as_ref(), reached, generated.then_some((id_at, id)));
        let logged: Vec<&[u8]> = logged.iter().map(|b| &b[..]).collect();
        ctx.log(&logged);
    }
    Ok(args::id_reply(id))
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
pub(crate) fn xtrim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let p = args::add_or_trim(a, false, encoding::get().stream_nodes.max_entries, ctx.obey)?;
    let Some(t) = p.trim else { return Err(CmdError::Syntax) };
    let key = &a[1];
    let rewrite = t.approx && ctx.journaling();
    let Some(s) = access::write_quiet(ctx.db, ctx.now, key, stream_mut)? else { return Ok(Reply::Int(0)) };
    let deleted = s.trim(t.rule, t.approx, t.limit);
    if deleted == 0 {
        return Ok(Reply::Int(0));
    }
    let reached = rewrite.then(|| (s.len(), s.first_stored_id()));
    ctx.db.signal(key);
    ctx.notify(Class::STREAM, "xtrim", key);
    if let Some(reached) = reached {
        let logged = args::rewritten(a, Some(&t), reached, None);
        let logged: Vec<&[u8]> = logged.iter().map(|b| &b[..]).collect();
        ctx.log(&logged);
    }
    Ok(Reply::Int(deleted as i64))
}

/// XDEL key id [id ...]
pub(crate) fn xdel(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let key = &a[1];
    if !access::exists(ctx.db, ctx.now, key, stream)? {
        return Ok(Reply::Int(0));
    }
    let ids = a[2..].iter().map(|i| args::strict(i)).collect::<Result<Vec<_>, _>>()?;
    let Some(s) = access::write_quiet(ctx.db, ctx.now, key, stream_mut)? else { return Ok(Reply::Int(0)) };
    let deleted = ids.into_iter().filter(|id| s.delete(*id)).count();
    if deleted > 0 {
        ctx.db.signal(key);
        ctx.notify(Class::STREAM, "xdel", key);
    }
    Ok(Reply::Int(deleted as i64))
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
pub(crate) fn xsetid(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let id = args::strict(&a[2])?;
    let (mut added, mut max_deleted) = (None, None);
    let mut i = 3;
    while i < a.len() {
        let Some(value) = a.get(i + 1) else { return Err(CmdError::Syntax) };
        if is(&a[i], "entriesadded") {
            let n = crate::cmd::args::int(value)?;
            added = Some(u64::try_from(n).map_err(|_| CmdError::msg("ERR entries_added must be positive"))?);
        } else if is(&a[i], "maxdeletedid") {
            let m = args::strict(value)?;
            if id < m {
                return Err(CmdError::msg(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                ));
            }
            max_deleted = Some(m);
        } else {
            return Err(CmdError::Syntax);
        }
        i += 2;
    }
    let key = &a[1];
    let Some(s) = access::write_quiet(ctx.db, ctx.now, key, stream_mut)? else {
        return Err(CmdError::NoSuchKey);
    };
    if !s.is_empty() {
        if s.last_entry().is_some_and(|e| id < e.id) {
            return Err(CmdError::msg(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            ));
        }
        if added.is_some_and(|n| n < s.len()) {
            return Err(CmdError::msg(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            ));
        }
    }
    // Entries deleted above the new last ID go: nothing reads them, and the next entry added
    // must be the last one stored.
    s.drop_deleted_above(id);
    s.last_id = id;
    if let Some(n) = added {
        s.entries_added = n;
    }
    if let Some(m) = max_deleted.filter(|m| !m.is_zero()) {
        s.max_deleted = m;
    }
    ctx.db.count_change(key, false);
    ctx.notify(Class::STREAM, "xsetid", key);
    Ok(Reply::Ok)
}

/// XLEN key
pub(crate) fn xlen(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let s = access::read(ctx.db, ctx.now, &a[1], stream)?;
    Ok(Reply::Int(s.map_or(0, |s| s.len() as i64)))
}

/// XRANGE key start end [COUNT count], and XREVRANGE key end start [COUNT count] (`rev`).
pub(crate) fn xrange(ctx: &mut Ctx<'_>, a: &[Bytes], rev: bool) -> CmdResult {
    let (start, end) = if rev { (&a[3], &a[2]) } else { (&a[2], &a[3]) };
    let (start, end) = (args::start(start)?, args::end(end)?);
    let mut count = None;
    let mut i = 4;
    while i < a.len() {
        if !is(&a[i], "count") || i + 1 >= a.len() {
            return Err(CmdError::Syntax);
        }
        count = Some(args::count(&a[i + 1])?);
        i += 2;
    }
    let Some(s) = access::read(ctx.db, ctx.now, &a[1], stream)? else { return Ok(Reply::Array(Vec::new())) };
    let limit = match count {
        Some(0) => return Ok(Reply::NilArray),
        Some(n) => n,
        None => usize::MAX,
    };
    let entries: Vec<Reply> = if rev {
        s.range_rev(start, end).take(limit).map(args::entry).collect()
    } else {
        s.range(start, end).take(limit).map(args::entry).collect()
    };
    Ok(Reply::Array(entries))
}
