//! Consumer groups: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER, DELCONSUMER, HELP), XACK,
//! XPENDING, XCLAIM and XAUTOCLAIM.

use bytes::Bytes;

use crate::cmd::args::is;
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::stream::args;
use crate::cmd::stream::entries::new_stream;
use crate::engine::notify::Class;
use crate::engine::shard::Ctx;
use crate::facade::Reply;
use crate::storage::access::{self, stream_mut};
use crate::storage::stream::read::{self as group_read, copy, Claim};
use crate::storage::stream::{Group, Stream, StreamId, UNKNOWN_READ};

fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// The error for a missing key or group (XPENDING, XCLAIM, XAUTOCLAIM).
fn no_key_or_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::text(format!("NOGROUP No such key '{}' or consumer group '{}'", text(key), text(group)))
}

/// The error for a missing group of an existing key (XGROUP, XINFO CONSUMERS).
pub(crate) fn no_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::text(format!("NOGROUP No such consumer group '{}' for key name '{}'", text(group), text(key)))
}

fn syntax(sub: &[u8]) -> CmdError {
    CmdError::subcommand_syntax("xgroup", sub)
}

/// XGROUP's subcommands that take a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    /// CREATE key group id|$ [MKSTREAM] [ENTRIESREAD n]
    Create,
    /// SETID key group id|$ [ENTRIESREAD n]
    SetId,
    /// DESTROY key group
    Destroy,
    /// CREATECONSUMER key group consumer
    CreateConsumer,
    /// DELCONSUMER key group consumer
    DelConsumer,
}

/// XGROUP's subcommands, in Redis's order of checks (`xgroupCommand`).
pub(crate) fn xgroup(ctx: &mut Ctx<'_>, a: &[Bytes], sub: Sub) -> CmdResult {
    let (key, group) = (&a[2], &a[3]);
    let (mut mkstream, mut entries_read) = (false, None);
    let mut i = 5;
    while i < a.len() {
        if sub == Sub::Create && is(&a[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if matches!(sub, Sub::Create | Sub::SetId) && is(&a[i], "entriesread") && i + 1 < a.len() {
            let n = crate::cmd::args::int(&a[i + 1])?;
            if n < 0 && n != UNKNOWN_READ {
                return Err(CmdError::msg("ERR value for ENTRIESREAD must be positive or -1"));
            }
            entries_read = Some(n);
            i += 2;
        } else {
            return Err(syntax(&a[1]));
        }
    }
    let exists = access::exists(ctx.db, ctx.now, key, access::stream)?;
    if !mkstream {
        if !exists {
            return Err(CmdError::msg(
                "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the \
                 MKSTREAM option to create an empty stream automatically.",
            ));
        }
        let has_group = access::write_view(ctx.db, ctx.now, key, access::stream)?
            .is_some_and(|s| s.groups.contains_key(group));
        if !has_group && matches!(sub, Sub::SetId | Sub::CreateConsumer | Sub::DelConsumer) {
            return Err(no_group(key, group));
        }
    }
    match sub {
        Sub::Create if a.len() > 8 => Err(syntax(&a[1])),
        Sub::SetId if a.len() != 5 && a.len() != 7 => Err(syntax(&a[1])),
        Sub::Create => {
            let id = match &a[4][..] {
                b"$" => None,
                id => Some(args::strict(id)?),
            };
            let created = !exists;
            let s = if created {
                access::create(ctx.db, ctx.now, key, stream_mut, new_stream)?
            } else {
                access::write_quiet(ctx.db, ctx.now, key, stream_mut)?.ok_or(CmdError::Internal)?
            };
            if s.groups.contains_key(group) {
                return Err(CmdError::msg("BUSYGROUP Consumer Group name already exists"));
            }
            let last = id.unwrap_or(s.last_id);
            s.groups.insert(
                Bytes::copy_from_slice(group),
                Group::new(last, entries_read.unwrap_or(UNKNOWN_READ)),
            );
            if !created {
                ctx.db.count_change(key, false);
            }
            ctx.notify(Class::STREAM, "xgroup-create", key);
            Ok(Reply::Ok)
        }
        Sub::SetId => {
            let s = access::write_quiet(ctx.db, ctx.now, key, stream_mut)?.ok_or(CmdError::Internal)?;
            let id = match &a[4][..] {
                b"$" => s.last_id,
                id => args::id(id, 0, false)?,
            };
            let g = s.groups.get_mut(&group[..]).ok_or(CmdError::Internal)?;
            g.last_id = id;
            g.entries_read = entries_read.unwrap_or(UNKNOWN_READ);
            ctx.db.count_change(key, false);
            ctx.notify(Class::STREAM, "xgroup-setid", key);
            Ok(Reply::Ok)
        }
        Sub::Destroy => {
            let s = access::write_quiet(ctx.db, ctx.now, key, stream_mut)?.ok_or(CmdError::Internal)?;
            if s.groups.remove(&group[..]).is_none() {
                return Ok(Reply::Int(0));
            }
            ctx.notify(Class::STREAM, "xgroup-destroy", key);
            // Its blocked readers fail, as in Redis.
            ctx.db.count_change(key, true);
            Ok(Reply::Int(1))
        }
        Sub::CreateConsumer => {
            let now = ctx.now as i64;
            let s = access::write_quiet(ctx.db, ctx.now, key, stream_mut)?.ok_or(CmdError::Internal)?;
            let g = s.groups.get_mut(&group[..]).ok_or(CmdError::Internal)?;
            if g.consumers.contains_key(&a[4][..]) {
                return Ok(Reply::Int(0));
            }
            g.consumer(&a[4], now);
            ctx.db.count_change(key, false);
            ctx.notify(Class::STREAM, "xgroup-createconsumer", key);
            Ok(Reply::Int(1))
        }
        Sub::DelConsumer => {
            let s = access::write_quiet(ctx.db, ctx.now, key, stream_mut)?.ok_or(CmdError::Internal)?;
            let g = s.groups.get_mut(&group[..]).ok_or(CmdError::Internal)?;
            match g.delete_consumer(&a[4]) {
                Some(pending) => {
                    ctx.db.count_change(key, false);
                    ctx.notify(Class::STREAM, "xgroup-delconsumer", key);
                    Ok(Reply::Int(pending as i64))
                }
                None => Ok(Reply::Int(0)),
            }
        }
    }
}

/// XGROUP HELP
pub(crate) fn xgroup_help() -> Reply {
    crate::cmd::args::help(
        "XGROUP",
        &[
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
        ],
    )
}

/// The stream under `key` and its group `group`, for writing; `None` when either is missing.
fn group_of<'a>(ctx: &'a mut Ctx<'_>, key: &[u8], group: &[u8]) -> Result<Option<&'a mut Stream>, CmdError> {
    Ok(access::write_quiet(ctx.db, ctx.now, key, stream_mut)?.filter(|s| s.groups.contains_key(group)))
}

/// XACK key group id [id ...]
pub(crate) fn xack(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (key, group) = (&a[1], &a[2]);
    if group_of(ctx, key, group)?.is_none() {
        return Ok(Reply::Int(0));
    }
    let ids = a[3..].iter().map(|i| args::strict(i)).collect::<Result<Vec<_>, _>>()?;
    let Some(s) = group_of(ctx, key, group)? else { return Ok(Reply::Int(0)) };
    let g = s.groups.get_mut(&group[..]).ok_or(CmdError::Internal)?;
    let acked = ids.into_iter().filter(|id| g.ack(*id)).count();
    if acked > 0 {
        ctx.db.count_change(key, false);
    }
    Ok(Reply::Int(acked as i64))
}

/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]
pub(crate) fn xpending(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() != 3 && !(6..=9).contains(&a.len()) {
        return Err(CmdError::Syntax);
    }
    struct Range {
        idle: i64,
        start: StreamId,
        end: StreamId,
        count: usize,
        consumer: Option<Bytes>,
    }
    let range = if a.len() >= 6 {
        let (mut idle, mut at) = (0, 3);
        if is(&a[3], "idle") {
            idle = crate::cmd::args::int(&a[4])?;
            if a.len() < 8 {
                return Err(CmdError::Syntax);
            }
            at = 5;
        }
        let count = args::count(&a[at + 2])?;
        let start = args::start(&a[at])?;
        let end = args::end(&a[at + 1])?;
        Some(Range { idle, start, end, count, consumer: a.get(at + 3).cloned() })
    } else {
        None
    };
    let (key, group) = (&a[1], &a[2]);
    let now = ctx.now as i64;
    let s = access::read(ctx.db, ctx.now, key, access::stream)?;
    let g = s.and_then(|s| s.groups.get(&group[..])).ok_or_else(|| no_key_or_group(key, group))?;
    let Some(r) = range else {
        if g.pel.is_empty() {
            return Ok(Reply::Array(vec![Reply::Int(0), Reply::Nil, Reply::Nil, Reply::NilArray]));
        }
        let first = g.pel.keys().next().copied().unwrap_or_default();
        let last = g.pel.keys().next_back().copied().unwrap_or_default();
        let consumers: Vec<Reply> = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(name, c)| {
                Reply::Array(vec![Reply::Bulk(name.clone()), Reply::Bulk(c.pel.len().to_string().into())])
            })
            .collect();
        return Ok(Reply::Array(vec![
            Reply::Int(g.pel.len() as i64),
            args::id_reply(first),
            args::id_reply(last),
            Reply::Array(consumers),
        ]));
    };
    if r.count == 0 || r.start > r.end {
        return Ok(Reply::Array(Vec::new()));
    }
    let ids: Box<dyn Iterator<Item = StreamId>> = match &r.consumer {
        Some(name) => match g.consumers.get(&name[..]) {
            Some(c) => Box::new(c.pel.range(r.start..=r.end).copied()),
            None => return Ok(Reply::Array(Vec::new())),
        },
        None => Box::new(g.pel.range(r.start..=r.end).map(|(id, _)| *id)),
    };
    let mut out = Vec::new();
    for id in ids {
        let Some(nack) = g.pel.get(&id) else { continue };
        let idle = now.saturating_sub(nack.delivered).max(0);
        if r.idle != 0 && idle < r.idle {
            continue;
        }
        out.push(Reply::Array(vec![
            args::id_reply(id),
            Reply::Bulk(nack.consumer.clone()),
            Reply::Int(idle),
            Reply::Int(nack.deliveries as i64),
        ]));
        if out.len() == r.count {
            break;
        }
    }
    Ok(Reply::Array(out))
}

/// Consumer `name` of `g` seen now (created if missing, which sets `created`): its stored name.
fn seen(g: &mut Group, name: &[u8], now: i64, created: &mut bool) -> Bytes {
    let (name, new) = g.seen(name, now);
    *created = new;
    name
}

/// Logs the XCLAIM Redis propagates for a claimed (or purged) pending entry.
fn log_claim(ctx: &mut Ctx<'_>, key: &[u8], group: &[u8], claim: &Claim<'_>) {
    let mut log = |args: &[&[u8]]| ctx.log(args);
    group_read::log_claim(&mut log, key, group, claim);
}

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]
pub(crate) fn xclaim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&a[1], &a[2], &a[3]);
    let s = access::read(ctx.db, ctx.now, key, access::stream)?;
    if !s.is_some_and(|s| s.groups.contains_key(&group[..])) {
        return Err(no_key_or_group(key, group));
    }
    let min_idle = crate::cmd::args::int(&a[4])
        .map_err(|_| CmdError::msg("ERR Invalid min-idle-time argument for XCLAIM"))?
        .max(0);
    let mut ids = Vec::new();
    let mut i = 5;
    while let Some(id) = a.get(i).and_then(|arg| args::strict(arg).ok()) {
        ids.push((id, i));
        i += 1;
    }
    let now = ctx.now as i64;
    let (mut force, mut justid, mut delivery, mut retry, mut lastid) = (false, false, None, None, None);
    while i < a.len() {
        let more = a.len() - 1 - i;
        let opt = &a[i];
        let value = |what: &'static str| {
            crate::cmd::args::int(&a[i + 1])
                .map_err(|_| CmdError::text(format!("ERR Invalid {what} option argument for XCLAIM")))
        };
        if is(opt, "force") {
            force = true;
        } else if is(opt, "justid") {
            justid = true;
        } else if is(opt, "idle") && more > 0 {
            delivery = Some(now.checked_sub(value("IDLE")?).unwrap_or(-1));
            i += 1;
        } else if is(opt, "time") && more > 0 {
            delivery = Some(value("TIME")?);
            i += 1;
        } else if is(opt, "retrycount") && more > 0 {
            retry = Some(value("RETRYCOUNT")?);
            i += 1;
        } else if is(opt, "lastid") && more > 0 {
            lastid = Some(args::strict(&a[i + 1])?);
            i += 1;
        } else {
            return Err(CmdError::text(format!("ERR Unrecognized XCLAIM option '{}'", text(opt))));
        }
        i += 1;
    }
    let delivery = delivery.filter(|d| (0..=now).contains(d)).unwrap_or(now);
    let Some(s) = group_of(ctx, key, group)? else { return Err(no_key_or_group(key, group)) };
    let mut set_last = false;
    if let Some(l) = lastid {
        let g = s.groups.get_mut(&group[..]).ok_or(CmdError::Internal)?;
        if l > g.last_id {
            g.last_id = l;
            set_last = true;
        }
    }
    let mut out = Vec::new();
    let mut effects: Vec<(usize, Bytes, i64, u64)> = Vec::new();
    let mut changed = set_last;
    let mut name: Option<Bytes> = None;
    let mut created = false;
    for (id, at) in ids {
        let exists = s.get(id).is_some();
        let g = s.groups.get_mut(&group[..]).ok_or(CmdError::Internal)?;
        if !exists {
            // An entry deleted from the stream leaves the PEL (Redis 7.0).
            if let Some(nack) = g.pel.get(&id).cloned() {
                effects.push((at, nack.consumer.clone(), nack.delivered, nack.deliveries));
                g.ack(id);
                changed = true;
            }
            continue;
        }
        let pending = g.pel.get(&id).cloned();
        if pending.is_none() && !force {
            continue;
        }
        if let Some(nack) = &pending {
            if min_idle > 0 && now.saturating_sub(nack.delivered) < min_idle {
                continue;
            }
        }
        let who = name.get_or_insert_with(|| seen(g, consumer, now, &mut created)).clone();
        // A pending entry FORCE creates starts delivered once, as Redis's NACK does.
        let Some(nack) = g.claim(id, &who, true, now) else { continue };
        nack.delivered = delivery;
        match retry.filter(|r| *r >= 0) {
            Some(r) => nack.deliveries = r as u64,
            None if !justid => nack.deliveries += 1,
            None => {}
        }
        effects.push((at, who.clone(), nack.delivered, nack.deliveries));
        changed = true;
        out.push(if justid {
            args::id_reply(id)
        } else {
            s.get(id).map(args::entry).unwrap_or(Reply::NilArray)
        });
    }
    let (last, read) =
        s.groups.get(&group[..]).map_or((StreamId::MIN, UNKNOWN_READ), |g| (g.last_id, g.entries_read));
    if changed {
        ctx.db.count_change(key, false);
    }
    if created {
        ctx.notify(Class::STREAM, "xgroup-createconsumer", key);
    }
    let any = !effects.is_empty();
    for (at, who, time, count) in effects {
        log_claim(ctx, key, group, &Claim { consumer: &who, id: &a[at], time, count, last });
    }
    if set_last && !any {
        let mut log = |args: &[&[u8]]| ctx.log(args);
        group_read::log_setid(&mut log, key, group, last, read);
    }
    if !any && !set_last {
        ctx.log_nothing();
    }
    Ok(Reply::Array(out))
}

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]
pub(crate) fn xautoclaim(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let (key, group, consumer) = (&a[1], &a[2], &a[3]);
    let min_idle = crate::cmd::args::int(&a[4])
        .map_err(|_| CmdError::msg("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?
        .max(0);
    let start = args::start(&a[5])?;
    let (mut count, mut justid) = (100usize, false);
    let mut i = 6;
    while i < a.len() {
        if is(&a[i], "count") && i + 1 < a.len() {
            let n = crate::cmd::args::int(&a[i + 1]).ok().filter(|n| (1..=i64::MAX / 16).contains(n));
            count = n.ok_or(CmdError::msg("ERR COUNT must be > 0"))? as usize;
            i += 2;
        } else if is(&a[i], "justid") {
            justid = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let now = ctx.now as i64;
    let s = access::read(ctx.db, ctx.now, key, access::stream)?;
    if !s.is_some_and(|s| s.groups.contains_key(&group[..])) {
        return Err(no_key_or_group(key, group));
    }
    let Some(s) = group_of(ctx, key, group)? else { return Err(no_key_or_group(key, group)) };
    let mut attempts = count.saturating_mul(10);
    let pending: Vec<StreamId> = {
        let g = s.groups.get(&group[..]).ok_or(CmdError::Internal)?;
        g.pel.range(start..).map(|(id, _)| *id).take(attempts.saturating_add(1)).collect()
    };
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut effects: Vec<(StreamId, Bytes, i64, u64)> = Vec::new();
    let mut name: Option<Bytes> = None;
    let mut created = false;
    let mut next = 0;
    while next < pending.len() && attempts > 0 && count > 0 {
        let id = pending[next];
        next += 1;
        attempts -= 1;
        let exists = s.get(id).is_some();
        let g = s.groups.get_mut(&group[..]).ok_or(CmdError::Internal)?;
        if !exists {
            if let Some(nack) = g.pel.get(&id).cloned() {
                effects.push((id, nack.consumer.clone(), nack.delivered, nack.deliveries));
                g.ack(id);
            }
            deleted.push(args::id_reply(id));
            count -= 1;
            continue;
        }
        if min_idle > 0 && g.pel.get(&id).is_some_and(|n| now.saturating_sub(n.delivered) < min_idle) {
            continue;
        }
        let who = name.get_or_insert_with(|| seen(g, consumer, now, &mut created)).clone();
        let Some(nack) = g.claim(id, &who, false, now) else { continue };
        nack.delivered = now;
        if !justid {
            nack.deliveries += 1;
        }
        effects.push((id, who.clone(), nack.delivered, nack.deliveries));
        claimed.push(if justid {
            args::id_reply(id)
        } else {
            s.get(id).map(args::entry).unwrap_or(Reply::NilArray)
        });
        count -= 1;
    }
    let cursor = pending.get(next).copied().unwrap_or(StreamId::MIN);
    let last = s.groups.get(&group[..]).map_or(StreamId::MIN, |g| g.last_id);
    if effects.is_empty() {
        ctx.log_nothing();
    } else {
        ctx.db.count_change(key, false);
    }
    if created {
        ctx.notify(Class::STREAM, "xgroup-createconsumer", key);
    }
    for (id, who, time, n) in effects {
        let id = id.to_string();
        log_claim(ctx, key, group, &Claim { consumer: &who, id: id.as_bytes(), time, count: n, last });
    }
    Ok(Reply::Array(vec![args::id_reply(cursor), Reply::Array(claimed), Reply::Array(deleted)]))
}

/// The entries of `s` as copied replies (for XINFO's FULL form).
pub(crate) fn entries(s: &Stream, count: usize) -> Vec<Reply> {
    s.range(StreamId::MIN, StreamId::MAX)
        .take(group_read::bound(count))
        .map(|e| args::copied(&copy(e)))
        .collect()
}
