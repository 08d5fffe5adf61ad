//! Sorted set commands: ZADD and friends, ranks and ranges (by rank, score and lex), pops,
//! random members, ZSCAN, and the algebra (ZUNION/ZINTER/ZDIFF, their STORE forms, ZINTERCARD).
//!
//! Parsing and the pure parts (range selection, algebra) are separate from key access, so the
//! cross-shard protocols in `moves` reuse them with hops in between.

use bytes::Bytes;

use crate::cmd::access::{self, zset, zset_mut};
use crate::cmd::args::{self, is, SYNTAX, WRONGTYPE};
use crate::cmd::generic::ScanOpts;
use crate::engine::shard::Ctx;
use crate::facade::reply::format_g17;
use crate::facade::Reply;
use crate::storage::db::Value;
use crate::storage::zset::{LexRange, ScoreRange, ZSet};

/// A member with its score.
pub type Scored = (Bytes, f64);

const NOT_FLOAT_RANGE: Reply = Reply::error("ERR min or max is not a float");
const NOT_LEX_RANGE: Reply = Reply::error("ERR min or max not valid string range item");

fn new_zset() -> Value {
    Value::ZSet(ZSet::default())
}

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

/// ZADD's flags.
#[derive(Default, Clone, Copy)]
struct AddFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    ch: bool,
    incr: bool,
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...], ZINCRBY key incr member
pub fn zadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let mut f = AddFlags::default();
    let mut at = 2;
    if is(&args[0], "zincrby") {
        f.incr = true;
    } else {
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
    }
    let pairs = &args[at..];
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return SYNTAX;
    }
    if f.nx && f.xx {
        return Reply::error("ERR XX and NX options at the same time are not compatible");
    }
    if (f.gt || f.lt) && (f.nx || (f.gt && f.lt)) {
        return Reply::error("ERR GT, LT, and/or NX options at the same time are not compatible");
    }
    if f.incr && pairs.len() > 2 {
        return Reply::error("ERR INCR option supports a single increment-element pair");
    }
    let scores = match pairs.chunks_exact(2).map(|p| args::float(&p[0])).collect::<Result<Vec<f64>, _>>() {
        Ok(s) => s,
        Err(e) => return e,
    };
    let (mut added, mut updated, mut last) = (0, 0, None);
    let z = if f.xx {
        match access::write_quiet(ctx, &args[1], zset_mut) {
            Ok(Some(z)) => z,
            Ok(None) => return if f.incr { Reply::Nil } else { Reply::Int(0) },
            Err(e) => return e,
        }
    } else {
        match access::create_quiet(ctx, &args[1], zset_mut, new_zset) {
            Ok(z) => z,
            Err(e) => return e,
        }
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
        ctx.db.signal(&args[1]);
    }
    ctx.db.drop_if_empty(&args[1]);
    if nan {
        Reply::error("ERR resulting score is not a number (NaN)")
    } else if f.incr {
        score_reply(last)
    } else {
        Reply::Int(if f.ch { added + updated } else { added })
    }
}

/// ZREM key member [member ...]
pub fn zrem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let n = access::update_quiet(ctx, &args[1], zset_mut, |z| {
        let n = z.map_or(0, |z| args[2..].iter().filter(|m| z.remove(m).is_some()).count());
        (n, n > 0)
    });
    n.map_or_else(|e| e, |n| Reply::Int(n as i64))
}

/// ZCARD key
pub fn zcard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], zset) {
        Ok(z) => Reply::Int(z.map_or(0, |z| z.len() as i64)),
        Err(e) => e,
    }
}

/// ZSCORE key member
pub fn zscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], zset) {
        Ok(z) => score_reply(z.and_then(|z| z.score(&args[2]))),
        Err(e) => e,
    }
}

/// ZMSCORE key member [member ...]
pub fn zmscore(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], zset) {
        Ok(z) => Reply::Array(args[2..].iter().map(|m| score_reply(z.and_then(|z| z.score(m)))).collect()),
        Err(e) => e,
    }
}

/// ZRANK key member, ZREVRANK key member
pub fn zrank(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let rev = is(&args[0], "zrevrank");
    match access::read(ctx, &args[1], zset) {
        Ok(Some(z)) => match z.rank(&args[2]) {
            Some(r) => Reply::Int(if rev { z.len() - 1 - r } else { r } as i64),
            None => Reply::Nil,
        },
        Ok(None) => Reply::Nil,
        Err(e) => e,
    }
}

/// ZCOUNT key min max, ZLEXCOUNT key min max
pub fn zcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let by = if is(&args[0], "zlexcount") {
        LexRange::parse(&args[2], &args[3]).map(By::Lex).ok_or(NOT_LEX_RANGE)
    } else {
        ScoreRange::parse(&args[2], &args[3]).map(By::Score).ok_or(NOT_FLOAT_RANGE)
    };
    let by = match by {
        Ok(b) => b,
        Err(e) => return e,
    };
    match access::read(ctx, &args[1], zset) {
        Ok(Some(z)) => Reply::Int(by.ranks(z).len() as i64),
        Ok(None) => Reply::Int(0),
        Err(e) => e,
    }
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

/// A parsed ZRANGE-family request: which members, in which direction, and how to reply.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSpec {
    by: By,
    rev: bool,
    limit: Option<(i64, i64)>,
    withscores: bool,
    /// The source key.
    pub key: Bytes,
    /// ZRANGESTORE's destination.
    pub dest: Option<Bytes>,
}

impl RangeSpec {
    /// Parses ZRANGE, ZRANGESTORE, ZREVRANGE, Z[REV]RANGEBYSCORE and Z[REV]RANGEBYLEX, with
    /// Redis's checks in Redis's order.
    pub fn parse(args: &[Bytes]) -> Result<RangeSpec, Reply> {
        #[derive(PartialEq, Clone, Copy)]
        enum Kind {
            Auto,
            Rank,
            Score,
            Lex,
        }
        let name = args[0].to_ascii_lowercase();
        let (kind, fixed_rev) = match name.as_slice() {
            b"zrangebyscore" => (Kind::Score, Some(false)),
            b"zrevrangebyscore" => (Kind::Score, Some(true)),
            b"zrangebylex" => (Kind::Lex, Some(false)),
            b"zrevrangebylex" => (Kind::Lex, Some(true)),
            b"zrevrange" => (Kind::Rank, Some(true)),
            _ => (Kind::Auto, None),
        };
        let store = name == b"zrangestore";
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
                return Err(SYNTAX);
            }
            j += 1;
        }
        let rev = rev.unwrap_or(false);
        let kind = if kind == Kind::Auto { Kind::Rank } else { kind };
        // As Redis: a count of -1 ("no limit") is allowed, and ignored, in a range by rank.
        if kind == Kind::Rank && limit.take().is_some_and(|(_, count)| count != -1) {
            return Err(Reply::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if withscores && kind == Kind::Lex {
            return Err(Reply::error("ERR syntax error, WITHSCORES not supported in combination with BYLEX"));
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
    pub fn select(&self, z: &ZSet) -> Vec<Scored> {
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
    pub fn reply(&self, items: Vec<Scored>) -> Reply {
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

/// ZRANGE and its older spellings, when the key is here.
pub fn zrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let run = |ctx: &mut Ctx<'_>| -> Result<Reply, Reply> {
        let spec = RangeSpec::parse(args)?;
        let Some(dest) = &spec.dest else {
            return Ok(
                access::read(ctx, &spec.key, zset)?.map_or(Reply::Array(Vec::new()), |z| spec.reply_from(z))
            );
        };
        let items = access::read(ctx, &spec.key, zset)?.map(|z| spec.select(z)).unwrap_or_default();
        Ok(store(ctx, dest, items))
    };
    run(ctx).unwrap_or_else(|e| e)
}

/// ZRANGESTORE's source half: the selected members of `spec.key` here.
pub fn range_of(ctx: &mut Ctx<'_>, spec: &RangeSpec) -> Result<Vec<Scored>, Reply> {
    Ok(access::read(ctx, &spec.key, zset)?.map(|z| spec.select(z)).unwrap_or_default())
}

/// Stores `items` as the sorted set at `key`, replacing it (deleting it when empty); replies
/// with the stored size, as the STORE forms do.
pub fn store(ctx: &mut Ctx<'_>, key: &[u8], items: Vec<Scored>) -> Reply {
    ctx.db.remove(key);
    let n = items.len();
    if n > 0 {
        ctx.db.set(key, Value::ZSet(items.into_iter().collect()), None);
    }
    Reply::Int(n as i64)
}

/// ZREMRANGEBYRANK, ZREMRANGEBYSCORE, ZREMRANGEBYLEX key min max
pub fn zremrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let name = args[0].to_ascii_lowercase();
    let by = match name.as_slice() {
        b"zremrangebyscore" => ScoreRange::parse(&args[2], &args[3]).map(By::Score).ok_or(NOT_FLOAT_RANGE),
        b"zremrangebylex" => LexRange::parse(&args[2], &args[3]).map(By::Lex).ok_or(NOT_LEX_RANGE),
        _ => args::int(&args[2]).and_then(|a| Ok(By::Rank(a, args::int(&args[3])?))),
    };
    let by = match by {
        Ok(b) => b,
        Err(e) => return e,
    };
    let n = access::update(ctx, &args[1], zset_mut, |z| {
        let Some(z) = z else { return 0 };
        let ranks = by.ranks(z);
        let doomed: Vec<Bytes> = z.iter_from(ranks.start, false).take(ranks.len()).map(|(m, _)| m).collect();
        doomed.iter().for_each(|m| {
            z.remove(m);
        });
        doomed.len()
    });
    n.map_or_else(|e| e, |n| Reply::Int(n as i64))
}

/// Pops up to `count` members from the low (or, with `max`, the high) end of the sorted set at
/// `key`: `None` when the key is missing.
pub fn pop(ctx: &mut Ctx<'_>, key: &[u8], max: bool, count: usize) -> Result<Option<Vec<Scored>>, Reply> {
    access::update(ctx, key, zset_mut, |z| {
        let z = z?;
        let taken: Vec<Scored> = z.iter_from(0, max).take(count).collect();
        for (m, _) in &taken {
            z.remove(m);
        }
        Some(taken)
    })
}

/// ZPOPMIN key [count], ZPOPMAX key [count]
pub fn zpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    if args.len() > 3 {
        return SYNTAX;
    }
    let count = match args.get(2).map(|c| args::int(c)) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n as usize),
        Some(_) => return Reply::error("ERR value is out of range, must be positive"),
    };
    let max = is(&args[0], "zpopmax");
    match access::read(ctx, &args[1], zset) {
        Ok(None) => return Reply::Array(vec![]),
        Err(e) => return e,
        Ok(Some(_)) if count == Some(0) => return Reply::Array(vec![]),
        Ok(Some(_)) => {}
    }
    let popped = match pop(ctx, &args[1], max, count.unwrap_or(1)) {
        Ok(p) => p.unwrap_or_default(),
        Err(e) => return e,
    };
    if count.is_some() {
        scored_reply(popped, true)
    } else {
        Reply::Array(popped.into_iter().flat_map(|(m, s)| [Reply::Bulk(m), Reply::Double(s)]).collect())
    }
}

/// ZMPOP's parsed arguments.
pub struct MPop {
    /// The keys, in order.
    pub keys: Vec<Bytes>,
    /// Whether to pop the highest scores.
    pub max: bool,
    /// How many members at most.
    pub count: usize,
}

impl MPop {
    /// Parses `ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]`.
    pub fn parse(args: &[Bytes]) -> Result<MPop, Reply> {
        let (keys, max, count) = args::mpop(args, |side| match () {
            () if is(side, "min") => Ok(false),
            () if is(side, "max") => Ok(true),
            () => Err(SYNTAX),
        })?;
        Ok(MPop { keys, max, count })
    }
}

/// The ZMPOP reply for members popped from `key`: `[key, [[member, score], ...]]`.
#[must_use]
pub fn mpop_reply(key: Bytes, popped: Vec<Scored>) -> Reply {
    let pairs = popped.into_iter().map(|(m, s)| Reply::Array(vec![Reply::Bulk(m), Reply::Double(s)]));
    Reply::Array(vec![Reply::Bulk(key), Reply::Array(pairs.collect())])
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count], when every key is here.
pub fn zmpop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let run = |ctx: &mut Ctx<'_>| -> Result<Reply, Reply> {
        let mpop = MPop::parse(args)?;
        for key in mpop.keys {
            if let Some(popped) = pop(ctx, &key, mpop.max, mpop.count)? {
                return Ok(mpop_reply(key, popped));
            }
        }
        Ok(Reply::NilArray)
    };
    run(ctx).unwrap_or_else(|e| e)
}

/// ZRANDMEMBER key [count [WITHSCORES]]
pub fn zrandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (count, withscores) = match args::random_args(args, "withscores") {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let mut rng = ctx.rng.fork();
    let z = match access::read(ctx, &args[1], zset) {
        Ok(z) => z,
        Err(e) => return e,
    };
    let Some(count) = count else {
        return z.and_then(|z| z.random(&mut rng)).map_or(Reply::Nil, |(m, _)| Reply::bulk(m));
    };
    let Some(z) = z else { return Reply::Array(vec![]) };
    scored_reply(z.sample(count, &mut rng), withscores)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
pub fn zscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (cursor, opts) = match ScanOpts::parse_keyed(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let z = match access::read(ctx, &args[1], zset) {
        Ok(Some(z)) => z,
        Ok(None) => return ScanOpts::reply(0, vec![]),
        Err(e) => return e,
    };
    // A small set comes whole and in order, as from Redis's listpack encoding.
    let (next, found) = if z.len() <= 128 {
        let all = z.iter_from(0, false).filter(|(m, _)| opts.matches(m)).collect();
        (0, all)
    } else {
        z.scan(cursor, &opts)
    };
    let items = found.into_iter().flat_map(|(m, s)| [Reply::Bulk(m), Reply::bulk(score_text(s))]).collect();
    ScanOpts::reply(next, items)
}

/// A score as Redis's `d2string` writes it (ZSCAN): integers plainly, others as `%.17g`.
fn score_text(s: f64) -> String {
    if s == s.trunc() && s.abs() < 4.5e15 && s != 0.0 {
        format!("{}", s as i64)
    } else {
        format_g17(s)
    }
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
    Union,
    Inter,
    Diff,
}

/// A parsed ZUNION / ZINTER / ZDIFF (and STORE forms, ZINTERCARD).
pub struct ZAlgebra {
    op: Op,
    /// The destination (STORE forms).
    pub dest: Option<Bytes>,
    /// The input keys.
    pub sources: Vec<Bytes>,
    /// The options, parsed; Redis reports their errors only after checking the keys' types.
    options: Result<(Vec<f64>, Aggregate, bool, Option<usize>), Reply>,
}

impl ZAlgebra {
    /// Parses the command; errors in the key count come now, errors in the options later.
    pub fn parse(args: &[Bytes]) -> Result<ZAlgebra, Reply> {
        let name = String::from_utf8_lossy(&args[0]).to_lowercase();
        let op = match () {
            () if name.starts_with("zunion") => Op::Union,
            () if name.starts_with("zinter") => Op::Inter,
            () => Op::Diff,
        };
        let store = name.ends_with("store");
        let card = name == "zintercard";
        let at = if store { 2 } else { 1 };
        let n = args::int(&args[at])?;
        if n < 1 {
            return Err(Reply::Error(
                format!("ERR at least 1 input key is needed for '{name}' command").into(),
            ));
        }
        if n as usize > args.len() - at - 1 {
            return Err(SYNTAX);
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
                            .map_err(|_| Reply::error("ERR weight value is not a float"))?;
                    }
                    j += 1 + n;
                } else if op != Op::Diff && !card && left >= 2 && is(a, "aggregate") {
                    let v = &args[j + 1];
                    agg = match () {
                        () if is(v, "sum") => Aggregate::Sum,
                        () if is(v, "min") => Aggregate::Min,
                        () if is(v, "max") => Aggregate::Max,
                        () => return Err(SYNTAX),
                    };
                    j += 2;
                } else if !store && !card && is(a, "withscores") {
                    withscores = true;
                    j += 1;
                } else if card && left >= 2 && is(a, "limit") {
                    match args::int(&args[j + 1]) {
                        Ok(l) if l >= 0 => limit = Some(l as usize),
                        _ => return Err(Reply::error("ERR LIMIT can't be negative")),
                    }
                    j += 2;
                } else {
                    return Err(SYNTAX);
                }
            }
            Ok((weights, agg, withscores, limit.or(card.then_some(0))))
        })();
        Ok(ZAlgebra { op, dest: store.then(|| args[1].clone()), sources, options })
    }

    /// Every key the command touches (destination first).
    #[must_use]
    pub fn keys(&self) -> Vec<Bytes> {
        self.dest.iter().chain(&self.sources).cloned().collect()
    }

    /// Combines the gathered inputs (in source order; `None` = missing) into the reply, and the
    /// members to store when there is a destination.
    pub fn compute(&self, inputs: Vec<Option<Vec<Scored>>>) -> Result<(Reply, Option<Vec<Scored>>), Reply> {
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
pub fn members(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Vec<Scored>>, Reply> {
    let Some(entry) = ctx.db.read(key, ctx.now) else { return Ok(None) };
    match &entry.value {
        Value::ZSet(z) => Ok(Some(z.iter_from(0, false).collect())),
        Value::Set(s) => Ok(Some(s.iter().map(|(m, ())| (Bytes::copy_from_slice(m), 1.0)).collect())),
        _ => Err(WRONGTYPE),
    }
}

/// The algebra when every key lives on this shard.
pub fn algebra(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let run = |ctx: &mut Ctx<'_>| -> Result<Reply, Reply> {
        let alg = ZAlgebra::parse(args)?;
        let inputs = alg.sources.iter().map(|k| members(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let (reply, stored) = alg.compute(inputs)?;
        if let (Some(dest), Some(items)) = (&alg.dest, stored) {
            store(ctx, dest, items);
        }
        Ok(reply)
    };
    run(ctx).unwrap_or_else(|e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<Bytes> {
        s.split(' ').map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[test]
    fn range_parsing_follows_redis_order_of_checks() {
        let p = |s: &str| RangeSpec::parse(&args(s));
        assert!(p("ZRANGE k 0 -1 REV WITHSCORES").is_ok());
        assert_eq!(
            p("ZRANGE k 0 1 LIMIT 0 1").unwrap_err(),
            Reply::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
            )
        );
        assert_eq!(p("ZRANGEBYSCORE k 0 1 REV").unwrap_err(), SYNTAX);
        assert_eq!(p("ZRANGE k a b BYSCORE").unwrap_err(), NOT_FLOAT_RANGE);
        assert_eq!(p("ZRANGESTORE d k 0 1 WITHSCORES").unwrap_err(), SYNTAX);
        let rev = p("ZREVRANGEBYSCORE k (5 1").unwrap();
        assert_eq!(rev.by, By::Score(ScoreRange::parse(b"1", b"(5").unwrap()));
    }

    #[test]
    fn select_applies_limit_and_direction() {
        let z: ZSet = (1..=5).map(|i| (Bytes::from(format!("m{i}")), f64::from(i))).collect();
        let names = |s: &str| {
            RangeSpec::parse(&args(s)).unwrap().select(&z).into_iter().map(|(m, _)| m).collect::<Vec<_>>()
        };
        assert_eq!(names("ZRANGE k 1 2"), ["m2", "m3"]);
        assert_eq!(names("ZRANGE k 0 1 REV"), ["m5", "m4"]);
        assert_eq!(names("ZRANGE k 2 4 BYSCORE LIMIT 1 5"), ["m3", "m4"]);
        assert_eq!(names("ZRANGE k 4 1 BYSCORE REV LIMIT 1 2"), ["m3", "m2"]);
        assert!(names("ZRANGE k 1 5 BYSCORE LIMIT -1 2").is_empty());
    }
}
