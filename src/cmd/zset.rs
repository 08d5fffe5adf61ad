//! Sorted set commands: ZADD and friends, ranks and ranges (by rank, score and lex), pops,
//! random members, ZSCAN, and the algebra (ZUNION/ZINTER/ZDIFF, their STORE forms, ZINTERCARD);
//! ZMPOP, ZRANGESTORE and the algebra across shards; and the blocking forms BZPOPMIN, BZPOPMAX
//! and BZMPOP.
//!
//! Parsing and the pure parts (range selection, algebra) are separate from key access, so the
//! same code serves keys on one shard and, with hops in between, keys spread over several.

use std::time::Duration;

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::block::{self, unblocked};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::generic::ScanOpts;
use crate::engine::blocking::{self, Waited};
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::Ctx;
use crate::engine::spec::Prefetch;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::engine::waiters::{Served, Wants};
use crate::facade::Reply;
use crate::storage::access::{self, zset, zset_mut};
use crate::storage::db::Value;
use crate::storage::zset::{LexRange, ScoreRange, ZSet};

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("zadd", -4, zadd)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("sorted-set", "1.2.0", "O(log(N)) for each item added, where N is the number of elements in the sorted set.", "Add one or more members to a sorted set, or update its score if it already exists")
            .history(&[("2.4.0", "Accepts multiple elements."), ("3.0.2", "Added the `XX`, `NX`, `CH` and `INCR` options."), ("6.2.0", "Added the `GT` and `LT` options.")])
            .prefetch(Prefetch::Scored { score: 2, member: 3, argc: 4 }),
        Command::shard("zincrby", 4, zincrby)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("sorted-set", "1.2.0", "O(log(N)) where N is the number of elements in the sorted set.", "Increment the score of a member in a sorted set"),
        Command::shard("zrem", -3, zrem)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("sorted-set", "1.2.0", "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed.", "Remove one or more members from a sorted set")
            .history(&[("2.4.0", "Accepts multiple elements.")])
            .prefetch(Prefetch::Member(2)),
        Command::shard("zcard", 2, zcard)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("sorted-set", "1.2.0", "O(1)", "Get the number of members in a sorted set"),
        Command::shard("zcount", 4, |c, a| zcount(c, a, false))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.0.0", "O(log(N)) with N being the number of elements in the sorted set.", "Count the members in a sorted set with scores within the given values"),
        Command::shard("zlexcount", 4, |c, a| zcount(c, a, true))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.8.9", "O(log(N)) with N being the number of elements in the sorted set.", "Count the number of members in a sorted set between a given lexicographical range"),
        Command::shard("zscore", 3, zscore)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "1.2.0", "O(1)", "Get the score associated with the given member in a sorted set")
            .prefetch(Prefetch::Member(2)),
        Command::shard("zmscore", -3, zmscore)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "6.2.0", "O(N) where N is the number of members being requested.", "Get the score associated with the given members in a sorted set"),
        Command::shard("zrank", 3, |c, a| zrank(c, a, false))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.0.0", "O(log(N))", "Determine the index of a member in a sorted set")
            .prefetch(Prefetch::Member(2)),
        Command::shard("zrevrank", 3, |c, a| zrank(c, a, true))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.0.0", "O(log(N))", "Determine the index of a member in a sorted set, with scores ordered from high to low"),
        Command::shard("zrange", -4, |c, a| zrange(c, a, RangeCmd::Range))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned.", "Return a range of members in a sorted set")
            .history(&[("6.2.0", "Added the `REV`, `BYSCORE`, `BYLEX` and `LIMIT` options.")]),
        Command::across("zrangestore", -5, |c, a| zrange(c, a, RangeCmd::Store), |tx, db, a| Box::pin(zrangestore_across(tx, db, a)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "6.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key.", "Store a range of members from sorted set into another key"),
        Command::shard("zrangebyscore", -4, |c, a| zrange(c, a, RangeCmd::ByScore { rev: false }))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "1.0.5", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N)).", "Return a range of members in a sorted set, by score")
            .history(&[("2.0.0", "Added the `WITHSCORES` modifier.")])
            .deprecated("6.2.0", "`ZRANGE` with the `BYSCORE` argument"),
        Command::shard("zrevrangebyscore", -4, |c, a| zrange(c, a, RangeCmd::ByScore { rev: true }))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N)).", "Return a range of members in a sorted set, by score, with scores ordered from high to low")
            .history(&[("2.1.6", "`min` and `max` can be exclusive.")])
            .deprecated("6.2.0", "`ZRANGE` with the `REV` and `BYSCORE` arguments"),
        Command::shard("zrangebylex", -4, |c, a| zrange(c, a, RangeCmd::ByLex { rev: false }))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N)).", "Return a range of members in a sorted set, by lexicographical range")
            .deprecated("6.2.0", "`ZRANGE` with the `BYLEX` argument"),
        Command::shard("zrevrangebylex", -4, |c, a| zrange(c, a, RangeCmd::ByLex { rev: true }))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N)).", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.")
            .deprecated("6.2.0", "`ZRANGE` with the `REV` and `BYLEX` arguments"),
        Command::shard("zrevrange", -4, |c, a| zrange(c, a, RangeCmd::RevRange))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned.", "Return a range of members in a sorted set, by index, with scores ordered from high to low")
            .deprecated("6.2.0", "`ZRANGE` with the `REV` argument"),
        Command::shard("zremrangebyrank", 4, |c, a| zremrange(c, a, RemoveBy::Rank))
            .flags(flag::WRITE)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("sorted-set", "2.0.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.", "Remove all members in a sorted set within the given indexes"),
        Command::shard("zremrangebyscore", 4, |c, a| zremrange(c, a, RemoveBy::Score))
            .flags(flag::WRITE)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("sorted-set", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.", "Remove all members in a sorted set within the given scores"),
        Command::shard("zremrangebylex", 4, |c, a| zremrange(c, a, RemoveBy::Lex))
            .flags(flag::WRITE)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("sorted-set", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation.", "Remove all members in a sorted set between the given lexicographical range"),
        Command::shard("zpopmin", -2, |c, a| zpop(c, a, false))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("sorted-set", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.", "Remove and return members with the lowest scores in a sorted set"),
        Command::shard("zpopmax", -2, |c, a| zpop(c, a, true))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("sorted-set", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped.", "Remove and return members with the highest scores in a sorted set"),
        Command::across("zmpop", -4, zmpop, |tx, db, a| Box::pin(zmpop_across(tx, db, a)))
            .flags(flag::WRITE)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).keynum(0, 1, 1).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("sorted-set", "7.0.0", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.", "Remove and return members with scores in a sorted set"),
        Command::shard("zrandmember", -2, zrandmember)
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("sorted-set", "6.2.0", "O(N) where N is the number of elements returned", "Get one or multiple random elements from a sorted set"),
        Command::shard("zscan", -3, zscan)
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("sorted-set", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..", "Incrementally iterate sorted sets elements and associated scores"),
        Command::across("zunion", -3, |c, a| algebra(c, a, Op::Union, Form::Plain), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Union, Form::Plain)))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "6.2.0", "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.", "Add multiple sorted sets"),
        Command::across("zinter", -3, |c, a| algebra(c, a, Op::Inter, Form::Plain), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Inter, Form::Plain)))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "6.2.0", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.", "Intersect multiple sorted sets"),
        Command::across("zdiff", -3, |c, a| algebra(c, a, Op::Diff, Form::Plain), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Diff, Form::Plain)))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "6.2.0", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.", "Subtract multiple sorted sets"),
        Command::across("zunionstore", -4, |c, a| algebra(c, a, Op::Union, Form::Store), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Union, Form::Store)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::index(2).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.0.0", "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set.", "Add multiple sorted sets and store the resulting sorted set in a new key"),
        Command::across("zinterstore", -4, |c, a| algebra(c, a, Op::Inter, Form::Store), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Inter, Form::Store)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::index(2).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "2.0.0", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set.", "Intersect multiple sorted sets and store the resulting sorted set in a new key"),
        Command::across("zdiffstore", -4, |c, a| algebra(c, a, Op::Diff, Form::Store), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Diff, Form::Store)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::index(2).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "6.2.0", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set.", "Subtract multiple sorted sets and store the resulting sorted set in a new key"),
        Command::across("zintercard", -3, |c, a| algebra(c, a, Op::Inter, Form::Card), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Inter, Form::Card)))
            .flags(flag::READONLY)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("sorted-set", "7.0.0", "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets.", "Intersect multiple sorted sets and return the cardinality of the result"),
        Command::session("bzpopmin", -3, |s, a| Box::pin(bzpop(s, a, false)))
            .flags(flag::WRITE | flag::NOSCRIPT | flag::BLOCKING | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(-2, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("sorted-set", "5.0.0", "O(log(N)) with N being the number of elements in the sorted set.", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available")
            .history(&[("6.0.0", "`timeout` is interpreted as a double instead of an integer.")]),
        Command::session("bzpopmax", -3, |s, a| Box::pin(bzpop(s, a, true)))
            .flags(flag::WRITE | flag::NOSCRIPT | flag::BLOCKING | flag::FAST)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(1).range(-2, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("sorted-set", "5.0.0", "O(log(N)) with N being the number of elements in the sorted set.", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available")
            .history(&[("6.0.0", "`timeout` is interpreted as a double instead of an integer.")]),
        Command::session("bzmpop", -5, |s, a| Box::pin(bzmpop(s, a)))
            .flags(flag::WRITE | flag::BLOCKING)
            .acl(acl::SORTEDSET)
            .key(KeySpec::index(2).keynum(0, 1, 1).flags(key::RW | key::ACCESS | key::DELETE))
            .docs("sorted-set", "7.0.0", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped.", "Remove and return members with scores in a sorted set or block until one is available"),
    ]
}

/// A member with its score.
type Scored = (Bytes, f64);

/// What a pop from several keys gives: the key popped from and its members, or `None` when
/// every key was missing.
type Popped = Option<(Bytes, Vec<Scored>)>;

/// The error for a score bound that is not a float.
const NOT_FLOAT_RANGE: CmdError = CmdError::msg("ERR min or max is not a float");
/// The error for a lex bound that is not `-`, `+`, `[member` or `(member`.
const NOT_LEX_RANGE: CmdError = CmdError::msg("ERR min or max not valid string range item");

/// An empty sorted set, for keys created by a write.
fn new_zset() -> Value {
    Value::zset(ZSet::default())
}

/// A score, or nil when there is none.
fn score_reply(s: Option<f64>) -> Reply {
    s.map_or(Reply::Nil, Reply::Double)
}

/// The WITHSCORES reply: pairs (nested in RESP3), or members alone.
fn scored_reply(items: Vec<Scored>, withscores: bool) -> Reply {
    if withscores {
        Reply::Pairs(items.into_iter().map(|(m, s)| (Reply::Bulk(m), Reply::Double(s))).collect())
    } else {
        Reply::Array(items.into_iter().map(|(m, _)| Reply::Bulk(m)).collect())
    }
}

/// ZADD's flags (GEOADD sets NX, XX and CH).
#[derive(Default, Clone, Copy)]
pub(crate) struct AddFlags {
    pub(crate) nx: bool,
    pub(crate) xx: bool,
    gt: bool,
    lt: bool,
    pub(crate) ch: bool,
    incr: bool,
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let mut f = AddFlags::default();
    let mut at = 2;
    while let Some(a) = args.get(at) {
        let flag = match a.to_ascii_lowercase().as_slice() {
            b"nx" => &mut f.nx,
            b"xx" => &mut f.xx,
            b"gt" => &mut f.gt,
            b"lt" => &mut f.lt,
            b"ch" => &mut f.ch,
            b"incr" => &mut f.incr,
            _ => break,
        };
        *flag = true;
        at += 1;
    }
    add(ctx, &args[1], f, &args[at..])
}

/// ZINCRBY key increment member: ZADD with INCR.
fn zincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    add(ctx, &args[1], AddFlags { incr: true, ..AddFlags::default() }, &args[2..])
}

/// ZADD's work once its flags are parsed: `pairs` is `score member [score member ...]`.
pub(crate) fn add(ctx: &mut Ctx<'_>, key: &[u8], f: AddFlags, pairs: &[Bytes]) -> CmdResult {
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return Err(CmdError::Syntax);
    }
    if f.nx && f.xx {
        return Err(CmdError::msg("ERR XX and NX options at the same time are not compatible"));
    }
    if (f.gt || f.lt) && (f.nx || (f.gt && f.lt)) {
        return Err(CmdError::msg("ERR GT, LT, and/or NX options at the same time are not compatible"));
    }
    if f.incr && pairs.len() > 2 {
        return Err(CmdError::msg("ERR INCR option supports a single increment-element pair"));
    }
    let scores = pairs.chunks_exact(2).map(|p| args::float(&p[0])).collect::<Result<Vec<f64>, _>>()?;
    let (mut added, mut updated, mut last) = (0, 0, None);
    let z = if f.xx {
        match access::write_quiet(ctx.db, ctx.now, key, zset_mut)? {
            Some(z) => z,
            None => return Ok(if f.incr { Reply::Nil } else { Reply::Int(0) }),
        }
    } else {
        access::create_quiet(ctx.db, ctx.now, key, zset_mut, new_zset)?
    };
    let mut nan = false;
    for (pair, &score) in pairs.chunks_exact(2).zip(&scores) {
        let member = &pair[1];
        match z.score(member) {
            Some(_) if f.nx => {}
            Some(cur) => {
                let new = if f.incr { score + cur } else { score };
                if new.is_nan() {
                    nan = true;
                    break;
                }
                if (f.lt && new >= cur) || (f.gt && new <= cur) {
                    continue;
                }
                last = Some(new);
                if new != cur {
                    z.update(member, new);
                    updated += 1;
                }
            }
            None if f.xx => {}
            None => {
                z.add_new(Bytes::copy_from_slice(member), score);
                last = Some(score);
                added += 1;
            }
        }
    }
    if added + updated > 0 {
        ctx.db.signal(key);
        ctx.notify(Class::ZSET, if f.incr { "zincr" } else { "zadd" }, key);
    }
    ctx.db.drop_if_empty(key);
    if nan {
        Err(CmdError::msg("ERR resulting score is not a number (NaN)"))
    } else if f.incr {
        Ok(score_reply(last))
    } else {
        Ok(Reply::Int(if f.ch { added + updated } else { added }))
    }
}

/// ZREM key member [member ...]
fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let n = access::update_quiet(ctx.db, ctx.now, &args[1], zset_mut, |z| {
        let n = z.map_or(0, |z| args[2..].iter().filter(|m| z.remove(m).is_some()).count());
        (n, n > 0)
    })?;
    if n > 0 {
        notify_removal(ctx, "zrem", &args[1]);
    }
    Ok(Reply::Int(n as i64))
}

/// Reports `event`, a removal of members from `key`, then `del` if it emptied (so deleted) the key.
fn notify_removal(ctx: &mut Ctx<'_>, event: &'static str, key: &[u8]) {
    ctx.notify(Class::ZSET, event, key);
    if ctx.notifying(Class::GENERIC) && !ctx.db.live(key, ctx.now) {
        ctx.notify(Class::GENERIC, "del", key);
    }
}

/// ZCARD key
fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(access::read(ctx.db, ctx.now, &args[1], zset)?.map_or(0, |z| z.len() as i64)))
}

/// ZSCORE key member
fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(score_reply(access::read(ctx.db, ctx.now, &args[1], zset)?.and_then(|z| z.score(&args[2]))))
}

/// ZMSCORE key member [member ...]
fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let z = access::read(ctx.db, ctx.now, &args[1], zset)?;
    Ok(Reply::Array(args[2..].iter().map(|m| score_reply(z.and_then(|z| z.score(m)))).collect()))
}

/// ZRANK key member, ZREVRANK key member (`rev`)
fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes], rev: bool) -> CmdResult {
    let Some(z) = access::read(ctx.db, ctx.now, &args[1], zset)? else { return Ok(Reply::Nil) };
    Ok(match z.rank(&args[2]) {
        Some(r) => Reply::Int(if rev { z.len() - 1 - r } else { r } as i64),
        None => Reply::Nil,
    })
}

/// ZCOUNT key min max, ZLEXCOUNT key min max (`lex`)
fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes], lex: bool) -> CmdResult {
    let by = if lex {
        By::Lex(LexRange::parse(&args[2], &args[3]).ok_or(NOT_LEX_RANGE)?)
    } else {
        By::Score(ScoreRange::parse(&args[2], &args[3]).ok_or(NOT_FLOAT_RANGE)?)
    };
    Ok(Reply::Int(access::read(ctx.db, ctx.now, &args[1], zset)?.map_or(0, |z| by.ranks(z).len() as i64)))
}

/// How a range names its members.
#[derive(Debug, Clone, PartialEq)]
enum By {
    /// By 0-based rank; negative counts from the end.
    Rank(i64, i64),
    /// By score.
    Score(ScoreRange),
    /// By member, all scores being equal.
    Lex(LexRange),
}

impl By {
    /// The ascending ranks `[start, end)` the range covers in `z`.
    fn ranks(&self, z: &ZSet) -> std::ops::Range<usize> {
        match self {
            By::Score(r) => z.score_ranks(r),
            By::Lex(r) => z.lex_ranks(r),
            By::Rank(start, stop) => {
                let len = z.len() as i64;
                let start = if *start < 0 { (len + start).max(0) } else { *start };
                let stop = if *stop < 0 { len + stop } else { (*stop).min(len - 1) };
                if start > stop || start >= len {
                    0..0
                } else {
                    start as usize..stop as usize + 1
                }
            }
        }
    }
}

/// Which command of the ZRANGE family, as the command table says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeCmd {
    /// ZRANGE, with its BYSCORE, BYLEX, REV, LIMIT and WITHSCORES options.
    Range,
    /// ZRANGESTORE dst src ..., with ZRANGE's options except WITHSCORES.
    Store,
    /// ZRANGEBYSCORE, or ZREVRANGEBYSCORE with `rev`.
    ByScore { rev: bool },
    /// ZRANGEBYLEX, or ZREVRANGEBYLEX with `rev`.
    ByLex { rev: bool },
    /// ZREVRANGE.
    RevRange,
}

/// A parsed ZRANGE-family request: which members, in which direction, and how to reply.
#[derive(Debug, Clone, PartialEq)]
struct RangeSpec {
    by: By,
    rev: bool,
    limit: Option<(i64, i64)>,
    withscores: bool,
    /// The source key.
    key: Bytes,
    /// ZRANGESTORE's destination.
    dest: Option<Bytes>,
}

impl RangeSpec {
    /// Parses ZRANGE, ZRANGESTORE, ZREVRANGE, Z[REV]RANGEBYSCORE and Z[REV]RANGEBYLEX (which one
    /// `cmd` says), with Redis's checks in Redis's order.
    fn parse(args: &[Bytes], cmd: RangeCmd) -> Result<RangeSpec, CmdError> {
        #[derive(PartialEq, Clone, Copy)]
        enum Kind {
            Auto,
            Rank,
            Score,
            Lex,
        }
        let (kind, fixed_rev) = match cmd {
            RangeCmd::ByScore { rev } => (Kind::Score, Some(rev)),
            RangeCmd::ByLex { rev } => (Kind::Lex, Some(rev)),
            RangeCmd::RevRange => (Kind::Rank, Some(true)),
            RangeCmd::Range | RangeCmd::Store => (Kind::Auto, None),
        };
        let store = cmd == RangeCmd::Store;
        let (dest, base) = if store { (Some(args[1].clone()), 2) } else { (None, 1) };
        let (mut kind, mut rev, mut limit, mut withscores) = (kind, fixed_rev, None, false);
        let mut j = base + 3;
        while j < args.len() {
            let a = &args[j];
            let left = args.len() - j - 1;
            if !store && is(a, "withscores") {
                withscores = true;
            } else if is(a, "limit") && left >= 2 {
                limit = Some((args::int(&args[j + 1])?, args::int(&args[j + 2])?));
                j += 2;
            } else if fixed_rev.is_none() && rev.is_none() && is(a, "rev") {
                rev = Some(true);
            } else if kind == Kind::Auto && is(a, "bylex") {
                kind = Kind::Lex;
            } else if kind == Kind::Auto && is(a, "byscore") {
                kind = Kind::Score;
            } else {
                return Err(CmdError::Syntax);
            }
            j += 1;
        }
        let rev = rev.unwrap_or(false);
        let kind = if kind == Kind::Auto { Kind::Rank } else { kind };
        // As Redis: a count of -1 ("no limit") is allowed, and ignored, in a range by rank.
        if kind == Kind::Rank && limit.take().is_some_and(|(_, count)| count != -1) {
            return Err(CmdError::msg(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if withscores && kind == Kind::Lex {
            return Err(CmdError::msg(
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        let (mut lo, mut hi) = (&args[base + 1], &args[base + 2]);
        if rev && kind != Kind::Rank {
            std::mem::swap(&mut lo, &mut hi);
        }
        let by = match kind {
            Kind::Score => By::Score(ScoreRange::parse(lo, hi).ok_or(NOT_FLOAT_RANGE)?),
            Kind::Lex => By::Lex(LexRange::parse(lo, hi).ok_or(NOT_LEX_RANGE)?),
            _ => By::Rank(args::int(lo)?, args::int(hi)?),
        };
        Ok(RangeSpec { by, rev, limit, withscores, key: args[base].clone(), dest })
    }

    /// The selected members with their scores, in reply order.
    #[must_use]
    fn select(&self, z: &ZSet) -> Vec<Scored> {
        match self.window(z) {
            Some((from, n)) => z.iter_from(from, self.rev).take(n).collect(),
            None => Vec::new(),
        }
    }

    /// The first rank (counted from the top in reverse) and how many members the range
    /// selects; `None` when it selects none.
    fn window(&self, z: &ZSet) -> Option<(usize, usize)> {
        let ranks = self.by.ranks(z);
        let (offset, count) = match self.limit {
            Some((o, _)) if o < 0 => return None,
            Some((o, c)) => (o as usize, if c < 0 { usize::MAX } else { c as usize }),
            None => (0, usize::MAX),
        };
        let n = ranks.len().saturating_sub(offset).min(count);
        if n == 0 {
            return None;
        }
        // Rank ranges already count from the top in reverse; score and lex ranks do not.
        let from = match self.by {
            By::Score(_) | By::Lex(_) if self.rev => z.len() - ranks.end + offset,
            _ => ranks.start + offset,
        };
        Some((from, n))
    }

    /// The reply for the selected members (ZRANGESTORE replies with the stored count instead).
    #[must_use]
    fn reply(&self, items: Vec<Scored>) -> Reply {
        scored_reply(items, self.withscores)
    }

    /// The reply for the members of `z` the range selects; without scores it is encoded
    /// straight from the set, with no copy of each member of its own.
    fn reply_from(&self, z: &ZSet) -> Reply {
        if self.withscores {
            return self.reply(self.select(z));
        }
        match self.window(z) {
            Some((from, n)) => Reply::bulk_array(z.slices_from(from, self.rev).take(n).map(|(m, _)| m)),
            None => Reply::Array(Vec::new()),
        }
    }
}

/// ZRANGE and its older spellings (which one `cmd` says), and ZRANGESTORE when both keys are
/// here.
fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes], cmd: RangeCmd) -> CmdResult {
    let spec = RangeSpec::parse(args, cmd)?;
    let Some(dest) = &spec.dest else {
        let z = access::read(ctx.db, ctx.now, &spec.key, zset)?;
        return Ok(z.map_or(Reply::Array(Vec::new()), |z| spec.reply_from(z)));
    };
    let items = range_of(ctx, &spec)?;
    Ok(store_as(ctx, dest, items, "zrangestore"))
}

/// ZRANGESTORE with source and destination on different shards.
async fn zrangestore_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let spec = RangeSpec::parse(args, RangeCmd::Store)?;
    let Some(dest) = spec.dest.clone() else { return Err(CmdError::Syntax) };
    let src_shard = tx.shard_of(&spec.key);
    let items = tx.on(src_shard, db, move |c| range_of(c, &spec)).await?;
    tx.on(tx.shard_of(&dest), db, move |c| Ok(store_as(c, &dest, items, "zrangestore"))).await
}

/// ZRANGESTORE's source half: the selected members of `spec.key` here.
fn range_of(ctx: &mut Ctx<'_>, spec: &RangeSpec) -> Result<Vec<Scored>, CmdError> {
    Ok(access::read(ctx.db, ctx.now, &spec.key, zset)?.map(|z| spec.select(z)).unwrap_or_default())
}

/// Stores `items` as the sorted set at `key`, replacing it (deleting it when empty); replies
/// with the stored size, as the STORE forms do (GEOSEARCHSTORE's too).
pub(crate) fn store(ctx: &mut Ctx<'_>, key: &[u8], items: Vec<Scored>) -> Reply {
    Reply::Int(replace(ctx, key, items).0 as i64)
}

/// [`store`], reporting `event` on `key`, or `del` when an empty result deleted it.
fn store_as(ctx: &mut Ctx<'_>, key: &[u8], items: Vec<Scored>, event: &'static str) -> Reply {
    let (n, existed) = replace(ctx, key, items);
    if n > 0 {
        ctx.notify(Class::ZSET, event, key);
    } else if existed {
        ctx.notify(Class::GENERIC, "del", key);
    }
    Reply::Int(n as i64)
}

/// Replaces `key` with the sorted set of `items`, or deletes it when there are none: how many
/// members were stored, and whether the key was there (expired or not, as Redis's `dbDelete`).
pub(crate) fn replace(ctx: &mut Ctx<'_>, key: &[u8], items: Vec<Scored>) -> (usize, bool) {
    let n = items.len();
    if n == 0 {
        return (0, ctx.db.remove(key).is_some());
    }
    // As Redis's `setKey`: a destination whose time has come expires first; one that is there
    // is overwritten, else the key is new.
    let existed = ctx.db.live(key, ctx.now);
    ctx.db.set(key, Value::zset(items.into_iter().collect()), None);
    (n, existed)
}

/// What ZREMRANGEBY* ranges over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RemoveBy {
    /// ZREMRANGEBYRANK.
    Rank,
    /// ZREMRANGEBYSCORE.
    Score,
    /// ZREMRANGEBYLEX.
    Lex,
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX key min max (which one `by` says)
fn zremrange(ctx: &mut Ctx<'_>, args: &[Bytes], by: RemoveBy) -> CmdResult {
    let event = match by {
        RemoveBy::Rank => "zremrangebyrank",
        RemoveBy::Score => "zremrangebyscore",
        RemoveBy::Lex => "zremrangebylex",
    };
    let by = match by {
        RemoveBy::Score => By::Score(ScoreRange::parse(&args[2], &args[3]).ok_or(NOT_FLOAT_RANGE)?),
        RemoveBy::Lex => By::Lex(LexRange::parse(&args[2], &args[3]).ok_or(NOT_LEX_RANGE)?),
        RemoveBy::Rank => By::Rank(args::int(&args[2])?, args::int(&args[3])?),
    };
    let n = access::update(ctx.db, ctx.now, &args[1], zset_mut, |z| {
        let Some(z) = z else { return 0 };
        let ranks = by.ranks(z);
        let doomed: Vec<Bytes> = z.iter_from(ranks.start, false).take(ranks.len()).map(|(m, _)| m).collect();
        doomed.iter().for_each(|m| {
            z.remove(m);
        });
        doomed.len()
    })?;
    if n > 0 {
        notify_removal(ctx, event, &args[1]);
    }
    Ok(Reply::Int(n as i64))
}

/// ZPOPMIN key [count], ZPOPMAX key [count] (`max`)
fn zpop(ctx: &mut Ctx<'_>, args: &[Bytes], max: bool) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match args.get(2).map(|c| args::int(c)) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(_) => return Err(CmdError::NotPositive),
    };
    match access::write_view(ctx.db, ctx.now, &args[1], zset)? {
        None => return Ok(Reply::Array(vec![])),
        Some(_) if count == Some(0) => return Ok(Reply::Array(vec![])),
        Some(_) => {}
    }
    let popped = access::zset_pop(ctx.db, ctx.now, &args[1], max, count.unwrap_or(1))?.unwrap_or_default();
    notify_pop(ctx, &args[1], max);
    Ok(if count.is_some() { scored_reply(popped, true) } else { Reply::Array(flat(popped).collect()) })
}

/// Members and scores one after the other: `member, score, member, score, ...`.
fn flat(popped: Vec<Scored>) -> impl Iterator<Item = Reply> {
    popped.into_iter().flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)])
}

/// ZMPOP's parsed arguments.
struct MPop {
    /// The keys, in order.
    keys: Vec<Bytes>,
    /// Whether to pop the highest scores.
    max: bool,
    /// How many members at most.
    count: usize,
}

impl MPop {
    /// Parses `numkeys key [key ...] MIN|MAX [COUNT count]` after `args[0]` (the name, or
    /// BZMPOP's timeout).
    fn parse(args: &[Bytes]) -> Result<MPop, CmdError> {
        let (keys, max, count) = args::mpop(args, |side| match () {
            () if is(side, "min") => Ok(false),
            () if is(side, "max") => Ok(true),
            () => Err(CmdError::Syntax),
        })?;
        Ok(MPop { keys, max, count })
    }
}

/// The ZMPOP (and BZMPOP) reply for members popped from a key: `[key, [[member, score], ...]]`,
/// or a null array.
fn mpop_reply(popped: Popped) -> Reply {
    let Some((key, popped)) = popped else { return Reply::NilArray };
    let pairs = popped.into_iter().map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]));
    Reply::Array(vec![Reply::Bulk(key), Reply::Array(pairs.collect())])
}

/// The BZPOPMIN / BZPOPMAX reply: `[key, member, score]`, or a null array.
fn zpop_reply(popped: Popped) -> Reply {
    let Some((key, popped)) = popped else { return Reply::NilArray };
    Reply::Array(std::iter::once(Reply::Bulk(key)).chain(flat(popped)).collect())
}

/// Pops up to `count` members from the low end (the high one with `max`) of the first sorted
/// set of `keys`, all on this shard: the key and what was popped.
fn zmpop_here(ctx: &mut Ctx<'_>, keys: &[Bytes], max: bool, count: usize) -> Result<Popped, CmdError> {
    for key in keys {
        if let Some(popped) = access::zset_pop(ctx.db, ctx.now, key, max, count)? {
            log_zpop(ctx, key, max, popped.len());
            notify_pop(ctx, key, max);
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

/// Logs a pop of `n` members as `ZPOPMIN key n` or `ZPOPMAX key n`: what ZMPOP, BZPOPMIN and
/// BZMPOP did, in the form Redis propagates.
fn log_zpop(ctx: &mut Ctx<'_>, key: &[u8], max: bool, n: usize) {
    if ctx.journaling() {
        let mut n_text = itoa::Buffer::new();
        let n = n_text.format(n);
        ctx.log(&[if max { b"ZPOPMAX" } else { b"ZPOPMIN" }, key, n.as_bytes()]);
    }
}

/// Reports a pop from `key`: `zpopmin` (`zpopmax` with `max`), then `del` if it emptied it.
fn notify_pop(ctx: &mut Ctx<'_>, key: &[u8], max: bool) {
    notify_removal(ctx, if max { "zpopmax" } else { "zpopmin" }, key);
}

/// [`zmpop_here`] over keys on several shards, all held by `tx`: the first non-empty sorted
/// set, in key order, gives.
async fn zmpop_across_keys(
    tx: &Tx,
    db: usize,
    keys: &[Bytes],
    max: bool,
    count: usize,
) -> Result<Popped, CmdError> {
    for key in keys {
        let k = key.clone();
        let popped = tx.on(tx.shard_of(key), db, move |c| {
            let popped = access::zset_pop(c.db, c.now, &k, max, count)?;
            if let Some(p) = &popped {
                log_zpop(c, &k, max, p.len());
                notify_pop(c, &k, max);
            }
            Ok(popped)
        });
        if let Some(popped) = popped.await? {
            return Ok(Some((key.clone(), popped)));
        }
    }
    Ok(None)
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count], when every key is here.
fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let m = MPop::parse(args)?;
    Ok(mpop_reply(zmpop_here(ctx, &m.keys, m.max, m.count)?))
}

/// ZMPOP over keys on several shards.
async fn zmpop_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let m = MPop::parse(args)?;
    Ok(mpop_reply(zmpop_across_keys(tx, db, &m.keys, m.max, m.count).await?))
}

/// Pops from the first non-empty sorted set of `keys`, wherever they live, atomically.
async fn zmpop_now(s: &Session, keys: &[Bytes], max: bool, count: usize) -> Result<Popped, CmdError> {
    let (db, here_keys) = (s.db, keys.to_vec());
    s.over_keys(
        keys,
        move |c| zmpop_here(c, &here_keys, max, count),
        async |tx: &Tx| zmpop_across_keys(tx, db, keys, max, count).await,
    )
    .await
}

/// What a blocking pop of sorted sets gets: `count` members from the low end (the high one
/// with `max`) of the first of `keys` to have any, now or within `limit`; `None` inside EXEC
/// when none has any. `Err` holds the command's result when the wait ends unserved or fails.
async fn block_zpop(
    s: &mut Session,
    keys: &[Bytes],
    max: bool,
    count: usize,
    limit: Option<Duration>,
) -> Result<Popped, CmdResult> {
    // First, without blocking: the ordinary pop (atomic across shards).
    if let Some(popped) = zmpop_now(s, keys, max, count).await.map_err(Err)? {
        return Ok(Some(popped));
    }
    // Inside MULTI/EXEC a blocking pop never blocks, as in Redis.
    if !s.may_block() {
        return Ok(None);
    }
    match blocking::wait(s, keys, |_, _| Wants::ZSet { max, count }, limit, false).await {
        Ok(Waited::Served(key, Served::ZSet(popped))) => Ok(Some((key, popped))),
        Ok(Waited::Served(_, Served::Failed(e))) | Err(e) => Err(Err(e)),
        Ok(Waited::Served(..)) => Err(Err(CmdError::Internal)),
        Ok(Waited::Stopped(why)) => Err(unblocked(why)),
    }
}

/// BZPOPMIN / BZPOPMAX (`max`) key [key ...] timeout: `[key, member, score]`.
async fn bzpop(s: &mut Session, args: &[Bytes], max: bool) -> CmdResult {
    let limit = block::timeout(&args[args.len() - 1])?;
    let keys = &args[1..args.len() - 1];
    match block_zpop(s, keys, max, 1, limit).await {
        Ok(popped) => Ok(zpop_reply(popped)),
        Err(result) => result,
    }
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]: `[key, [[member, score], ...]]`.
async fn bzmpop(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let limit = block::timeout(&args[1])?;
    let m = MPop::parse(&args[1..])?;
    match block_zpop(s, &m.keys, m.max, m.count, limit).await {
        Ok(popped) => Ok(mpop_reply(popped)),
        Err(result) => result,
    }
}

/// ZRANDMEMBER key [count [WITHSCORES]]
fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (count, withscores) = args::random_args(args, "withscores")?;
    let mut rng = ctx.rng.fork();
    let z = access::read(ctx.db, ctx.now, &args[1], zset)?;
    let Some(count) = count else {
        return Ok(z.and_then(|z| z.random(&mut rng)).map_or(Reply::Nil, |(m, _)| Reply::bulk(m)));
    };
    let Some(z) = z else { return Ok(Reply::Array(vec![])) };
    Ok(scored_reply(z.sample(count, &mut rng), withscores))
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (cursor, opts) = ScanOpts::parse_keyed(args)?;
    let Some(z) = access::read(ctx.db, ctx.now, &args[1], zset)? else {
        return Ok(ScanOpts::reply(0, vec![]));
    };
    // A small set comes whole and in order, as from Redis's listpack encoding.
    let (next, found) = if z.len() <= 128 {
        let all = z.iter_from(0, false).filter(|(m, _)| opts.matches(m)).collect();
        (0, all)
    } else {
        z.scan(cursor, opts.count, |m| opts.matches(m))
    };
    let items =
        found.into_iter().flat_map(|(m, s)| [Reply::Bulk(m), Reply::bulk(crate::num::d2string(s))]).collect();
    Ok(ScanOpts::reply(next, items))
}

/// How ZUNION and ZINTER combine the scores of a member found in several inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aggregate {
    Sum,
    Min,
    Max,
}

/// Which algebra.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// ZUNION, ZUNIONSTORE: members of any input.
    Union,
    /// ZINTER, ZINTERSTORE, ZINTERCARD: members of every input.
    Inter,
    /// ZDIFF, ZDIFFSTORE: members of the first input in no other.
    Diff,
}

impl Op {
    /// The event of its STORE form.
    fn stored(self) -> &'static str {
        match self {
            Op::Union => "zunionstore",
            Op::Inter => "zinterstore",
            Op::Diff => "zdiffstore",
        }
    }
}

/// Which form of the algebra: the result, stored (`destination numkeys ...`), or its count
/// (ZINTERCARD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Plain,
    Store,
    Card,
}

/// A parsed ZUNION / ZINTER / ZDIFF (and STORE forms, ZINTERCARD).
struct ZAlgebra {
    op: Op,
    /// The destination (STORE forms).
    dest: Option<Bytes>,
    /// The input keys.
    sources: Vec<Bytes>,
    /// The options, parsed; Redis reports their errors only after checking the keys' types.
    options: Result<(Vec<f64>, Aggregate, bool, Option<usize>), CmdError>,
}

impl ZAlgebra {
    /// Parses the command (`op` in `form`, as the command table says); errors in the key count
    /// come now, errors in the options later.
    fn parse(args: &[Bytes], op: Op, form: Form) -> Result<ZAlgebra, CmdError> {
        let (store, card) = (form == Form::Store, form == Form::Card);
        let at = if store { 2 } else { 1 };
        let n = args::int(&args[at])?;
        if n < 1 {
            return Err(CmdError::text(format!(
                "ERR at least 1 input key is needed for '{}' command",
                args::display_name(args)
            )));
        }
        if n as usize > args.len() - at - 1 {
            return Err(CmdError::Syntax);
        }
        let n = n as usize;
        let sources = args[at + 1..at + 1 + n].to_vec();
        let options = (|| {
            let (mut weights, mut agg, mut withscores, mut limit) =
                (vec![1.0; n], Aggregate::Sum, false, None);
            let mut j = at + 1 + n;
            while j < args.len() {
                let left = args.len() - j;
                let a = &args[j];
                if op != Op::Diff && !card && left > n && is(a, "weights") {
                    for (i, w) in weights.iter_mut().enumerate() {
                        *w = args::float(&args[j + 1 + i])
                            .map_err(|_| CmdError::msg("ERR weight value is not a float"))?;
                    }
                    j += 1 + n;
                } else if op != Op::Diff && !card && left >= 2 && is(a, "aggregate") {
                    let v = &args[j + 1];
                    agg = match () {
                        () if is(v, "sum") => Aggregate::Sum,
                        () if is(v, "min") => Aggregate::Min,
                        () if is(v, "max") => Aggregate::Max,
                        () => return Err(CmdError::Syntax),
                    };
                    j += 2;
                } else if !store && !card && is(a, "withscores") {
                    withscores = true;
                    j += 1;
                } else if card && left >= 2 && is(a, "limit") {
                    match args::int(&args[j + 1]) {
                        Ok(l) if l >= 0 => limit = Some(l as usize),
                        _ => return Err(CmdError::msg("ERR LIMIT can't be negative")),
                    }
                    j += 2;
                } else {
                    return Err(CmdError::Syntax);
                }
            }
            Ok((weights, agg, withscores, limit.or(card.then_some(0))))
        })();
        Ok(ZAlgebra { op, dest: store.then(|| args[1].clone()), sources, options })
    }

    /// Combines the gathered inputs (in source order; `None` = missing) into the reply, and the
    /// members to store when there is a destination.
    fn compute(&self, inputs: Vec<Option<Vec<Scored>>>) -> Result<(Reply, Option<Vec<Scored>>), CmdError> {
        let (weights, agg, withscores, limit) = self.options.clone()?;
        let weighted = |s: f64, w: f64| {
            let v = s * w;
            if v.is_nan() {
                0.0
            } else {
                v
            }
        };
        let combine = |acc: f64, v: f64| match agg {
            Aggregate::Sum => {
                let s = acc + v;
                if s.is_nan() {
                    0.0
                } else {
                    s
                }
            }
            // Redis's comparisons, which keep the first of two equal scores (0 and -0).
            Aggregate::Min => {
                if v < acc {
                    v
                } else {
                    acc
                }
            }
            Aggregate::Max => {
                if v > acc {
                    v
                } else {
                    acc
                }
            }
        };
        let mut inputs: Vec<(Vec<Scored>, f64)> =
            inputs.into_iter().zip(weights).map(|(i, w)| (i.unwrap_or_default(), w)).collect();
        // Redis combines the sets smallest first (a stable sort), which decides what a sum of
        // opposite infinities becomes; DIFF keeps its first set first.
        if self.op != Op::Diff {
            inputs.sort_by_key(|(i, _)| i.len());
        }
        let mut acc: ahash::AHashMap<Bytes, f64> = ahash::AHashMap::new();
        match self.op {
            Op::Union => {
                for (input, w) in &inputs {
                    for (m, s) in input {
                        let v = weighted(*s, *w);
                        acc.entry(m.clone()).and_modify(|a| *a = combine(*a, v)).or_insert(v);
                    }
                }
            }
            Op::Inter => {
                let maps: Vec<ahash::AHashMap<&Bytes, f64>> =
                    inputs.iter().map(|(i, _)| i.iter().map(|(m, s)| (m, *s)).collect()).collect();
                if let Some(((first, w0), rest)) = inputs.split_first() {
                    'members: for (m, s) in first {
                        let mut v = weighted(*s, *w0);
                        for (k, (_, w)) in rest.iter().enumerate() {
                            let Some(&o) = maps[k + 1].get(m) else { continue 'members };
                            v = combine(v, weighted(o, *w));
                        }
                        acc.insert(m.clone(), v);
                    }
                }
            }
            Op::Diff => {
                let others: std::collections::HashSet<&Bytes> =
                    inputs.iter().skip(1).flat_map(|(i, _)| i.iter().map(|(m, _)| m)).collect();
                if let Some((first, _)) = inputs.first() {
                    for (m, s) in first.iter().filter(|(m, _)| !others.contains(m)) {
                        acc.insert(m.clone(), *s);
                    }
                }
            }
        }
        inputs.clear();
        if let Some(limit) = limit {
            let n = acc.len();
            return Ok((Reply::Int(if limit > 0 { n.min(limit) } else { n } as i64), None));
        }
        let mut items: Vec<Scored> = acc.into_iter().collect();
        items.sort_by(|a, b| {
            a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.0.cmp(&b.0))
        });
        if self.dest.is_some() {
            return Ok((Reply::Int(items.len() as i64), Some(items)));
        }
        Ok((scored_reply(items, withscores), None))
    }
}

/// The members of the sorted set (or, scored 1, the set) at `key`, as the algebra reads them.
fn members(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Vec<Scored>>, CmdError> {
    let Some(entry) = ctx.db.read(key, ctx.now) else { return Ok(None) };
    match &entry.value {
        Value::ZSet(z, ..) => Ok(Some(z.iter_from(0, false).collect())),
        Value::Set(s, ..) => Ok(Some(s.iter().map(|(m, ())| (Bytes::copy_from_slice(m), 1.0)).collect())),
        _ => Err(CmdError::WrongType),
    }
}

/// The algebra (`op` in `form`) when every key lives on this shard.
fn algebra(ctx: &mut Ctx<'_>, args: &[Bytes], op: Op, form: Form) -> CmdResult {
    let alg = ZAlgebra::parse(args, op, form)?;
    let inputs = alg.sources.iter().map(|k| members(ctx, k)).collect::<Result<Vec<_>, _>>()?;
    let (reply, stored) = alg.compute(inputs)?;
    if let (Some(dest), Some(items)) = (&alg.dest, stored) {
        store_as(ctx, dest, items, op.stored());
    }
    Ok(reply)
}

/// The algebra (`op` in `form`) across shards: every input is gathered, combined on this core,
/// and the result stored on the destination's shard.
async fn algebra_across(tx: &Tx, db: usize, args: &[Bytes], op: Op, form: Form) -> CmdResult {
    let alg = ZAlgebra::parse(args, op, form)?;
    let gathers =
        alg.sources.iter().cloned().map(|key| tx.on(tx.shard_of(&key), db, move |c| members(c, &key)));
    let inputs = futures::future::join_all(gathers).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let (reply, stored) = alg.compute(inputs)?;
    if let (Some(dest), Some(items)) = (alg.dest.clone(), stored) {
        tx.on(tx.shard_of(&dest), db, move |c| Ok(store_as(c, &dest, items, op.stored()))).await?;
    }
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The arguments of a command line, split on spaces.
    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[test]
    fn range_parsing_follows_redis_order_of_checks() {
        let p = |cmd: RangeCmd, s: &str| RangeSpec::parse(&args(s), cmd);
        assert!(p(RangeCmd::Range, "ZRANGE k 0 -1 REV WITHSCORES").is_ok());
        assert_eq!(
            p(RangeCmd::Range, "ZRANGE k 0 1 LIMIT 0 1").unwrap_err(),
            CmdError::msg(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
            )
        );
        let by_score = RangeCmd::ByScore { rev: false };
        assert_eq!(p(by_score, "ZRANGEBYSCORE k 0 1 REV").unwrap_err(), CmdError::Syntax);
        assert_eq!(p(RangeCmd::Range, "ZRANGE k a b BYSCORE").unwrap_err(), NOT_FLOAT_RANGE);
        assert_eq!(p(RangeCmd::Store, "ZRANGESTORE d k 0 1 WITHSCORES").unwrap_err(), CmdError::Syntax);
        let rev = p(RangeCmd::ByScore { rev: true }, "ZREVRANGEBYSCORE k (5 1").unwrap();
        assert_eq!(rev.by, By::Score(ScoreRange::parse(b"1", b"(5").unwrap()));
    }

    #[test]
    fn select_applies_limit_and_direction() {
        let z: ZSet = (1..=5).map(|i| (Bytes::from(format!("m{i}")), f64::from(i))).collect();
        let names = |s: &str| {
            let spec = RangeSpec::parse(&args(s), RangeCmd::Range).unwrap();
            spec.select(&z).into_iter().map(|(m, _)| m).collect::<Vec<_>>()
        };
        assert_eq!(names("ZRANGE k 1 2"), ["m2", "m3"]);
        assert_eq!(names("ZRANGE k 0 1 REV"), ["m5", "m4"]);
        assert_eq!(names("ZRANGE k 2 4 BYSCORE LIMIT 1 5"), ["m3", "m4"]);
        assert_eq!(names("ZRANGE k 4 1 BYSCORE REV LIMIT 1 2"), ["m3", "m2"]);
        assert!(names("ZRANGE k 1 5 BYSCORE LIMIT -1 2").is_empty());
    }
}
