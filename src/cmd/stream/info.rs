//! XINFO STREAM [FULL [COUNT n]], GROUPS, CONSUMERS and HELP.

use bytes::Bytes;

use crate::cmd::args::is;
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::stream::args;
use crate::cmd::stream::group::{entries, no_group};
use crate::engine::shard::Ctx;
use crate::facade::Reply;
use crate::storage::access::{self, stream};
use crate::storage::stream::{Group, Stream, UNKNOWN_READ};

fn map(pairs: Vec<(&'static str, Reply)>) -> Reply {
    Reply::Map(pairs.into_iter().map(|(k, v)| (Reply::bulk(k), v)).collect())
}

fn int(n: impl TryInto<i64>) -> Reply {
    Reply::Int(n.try_into().unwrap_or(i64::MAX))
}

/// A group's read counter, nil when unknown.
fn entries_read(g: &Group) -> Reply {
    if g.entries_read == UNKNOWN_READ {
        Reply::Nil
    } else {
        Reply::Int(g.entries_read)
    }
}

/// How many entries the group has yet to read, where that can be known (Redis's
/// `streamReplyWithCGLag`).
fn lag(s: &Stream, g: &Group) -> Reply {
    if s.entries_added == 0 {
        return Reply::Int(0);
    }
    if g.entries_read != UNKNOWN_READ && !s.has_tombstones_from(g.last_id) {
        return int(s.entries_added as i64 - g.entries_read);
    }
    match s.entries_up_to(g.last_id) {
        Some(read) => int(s.entries_added as i64 - read as i64),
        None => Reply::Nil,
    }
}

/// The radix tree Redis keeps its nodes in has about one inner node per key beyond the first
/// and a root: what XINFO reports as `radix-tree-nodes` (Redis's exact count depends on its
/// tree's shape, which ferrokey does not keep).
fn radix_nodes(s: &Stream) -> usize {
    if s.nodes() == 0 {
        1
    } else {
        2 * s.nodes()
    }
}

/// XINFO STREAM key [FULL [COUNT count]]
pub(crate) fn xinfo_stream(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let s = access::read(ctx.db, ctx.now, &a[2], stream)?.ok_or(CmdError::NoSuchKey)?;
    let syntax = || CmdError::subcommand_syntax("xinfo", &a[1]);
    let opts = &a[3..];
    let full = match opts.len() {
        0 => None,
        1 | 3 if is(&opts[0], "full") => {
            if opts.len() == 3 {
                if !is(&opts[1], "count") {
                    return Err(syntax());
                }
                let n = crate::cmd::args::int(&opts[2])?;
                Some(if n < 0 { 10 } else { n as usize })
            } else {
                Some(10)
            }
        }
        _ => return Err(syntax()),
    };
    let mut out = vec![
        ("length", int(s.len())),
        ("radix-tree-keys", int(s.nodes())),
        ("radix-tree-nodes", int(radix_nodes(s))),
        ("last-generated-id", args::id_reply(s.last_id)),
        ("max-deleted-entry-id", args::id_reply(s.max_deleted)),
        ("entries-added", int(s.entries_added)),
        ("recorded-first-entry-id", args::id_reply(s.first_id)),
    ];
    let Some(count) = full else {
        out.push(("groups", int(s.groups.len())));
        out.push(("first-entry", s.first_entry().map_or(Reply::Nil, args::entry)));
        out.push(("last-entry", s.last_entry().map_or(Reply::Nil, args::entry)));
        return Ok(map(out));
    };
    let limit = crate::storage::stream::read::bound(count);
    out.push(("entries", Reply::Array(entries(s, count))));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .take(limit)
                .map(|(id, n)| {
                    Reply::Array(vec![
                        args::id_reply(*id),
                        Reply::Bulk(n.consumer.clone()),
                        Reply::Int(n.delivered),
                        int(n.deliveries),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pending = c
                        .pel
                        .iter()
                        .take(limit)
                        .filter_map(|id| g.pel.get(id).map(|n| (id, n)))
                        .map(|(id, n)| {
                            Reply::Array(vec![
                                args::id_reply(*id),
                                Reply::Int(n.delivered),
                                int(n.deliveries),
                            ])
                        })
                        .collect();
                    map(vec![
                        ("name", Reply::Bulk(cname.clone())),
                        ("seen-time", Reply::Int(c.seen)),
                        ("pel-count", int(c.pel.len())),
                        ("pending", Reply::Array(pending)),
                    ])
                })
                .collect();
            map(vec![
                ("name", Reply::Bulk(name.clone())),
                ("last-delivered-id", args::id_reply(g.last_id)),
                ("entries-read", entries_read(g)),
                ("lag", lag(s, g)),
                ("pel-count", int(g.pel.len())),
                ("pending", Reply::Array(pending)),
                ("consumers", Reply::Array(consumers)),
            ])
        })
        .collect();
    out.push(("groups", Reply::Array(groups)));
    Ok(map(out))
}

/// XINFO GROUPS key
pub(crate) fn xinfo_groups(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let s = access::read(ctx.db, ctx.now, &a[2], stream)?.ok_or(CmdError::NoSuchKey)?;
    Ok(Reply::Array(
        s.groups
            .iter()
            .map(|(name, g)| {
                map(vec![
                    ("name", Reply::Bulk(name.clone())),
                    ("consumers", int(g.consumers.len())),
                    ("pending", int(g.pel.len())),
                    ("last-delivered-id", args::id_reply(g.last_id)),
                    ("entries-read", entries_read(g)),
                    ("lag", lag(s, g)),
                ])
            })
            .collect(),
    ))
}

/// XINFO CONSUMERS key group
pub(crate) fn xinfo_consumers(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let now = ctx.now as i64;
    let (key, group) = (&a[2], &a[3]);
    let s = access::read(ctx.db, ctx.now, key, stream)?.ok_or(CmdError::NoSuchKey)?;
    let g = s.groups.get(&group[..]).ok_or_else(|| no_group(key, group))?;
    Ok(Reply::Array(
        g.consumers
            .iter()
            .map(|(name, c)| {
                map(vec![
                    ("name", Reply::Bulk(name.clone())),
                    ("pending", int(c.pel.len())),
                    ("idle", Reply::Int(now.saturating_sub(c.seen).max(0))),
                ])
            })
            .collect(),
    ))
}

/// XINFO HELP
pub(crate) fn xinfo_help() -> Reply {
    crate::cmd::args::help(
        "XINFO",
        &[
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
        ],
    )
}
