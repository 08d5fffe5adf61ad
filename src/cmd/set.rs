//! Set commands: members, random picks, SMOVE, and set algebra (SINTER/SUNION/SDIFF and their
//! STORE and CARD forms). The algebra is a pure function over gathered member lists, so the same
//! code serves keys on one shard and keys spread over several.

use bytes::Bytes;

use crate::cmd::access::{self, set, set_mut};
use crate::cmd::args::{self, is};
use crate::cmd::generic::ScanOpts;
use crate::cmd::hash::{sample, scan_dict};
use crate::engine::shard::Ctx;
use crate::facade::Reply;
use crate::storage::db::Value;

fn new_set() -> Value {
    Value::Set(Box::default())
}

/// SADD key member [member ...]
pub fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::create_quiet(ctx, &args[1], set_mut, new_set) {
        Ok(s) => {
            let added = args[2..].iter().filter(|m| s.insert_copy(m, ()).is_none()).count();
            if added > 0 {
                ctx.db.signal(&args[1]);
            }
            Reply::Int(added as i64)
        }
        Err(e) => e,
    }
}

/// SREM key member [member ...]
pub fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    access::remove_members(ctx, &args[1], set_mut, &args[2..])
}

/// SCARD key
pub fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    access::dict_len(ctx, &args[1], set)
}

/// SISMEMBER key member, SMISMEMBER key member [member ...]
pub fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let s = match access::read(ctx, &args[1], set) {
        Ok(s) => s,
        Err(e) => return e,
    };
    let has = |m: &Bytes| Reply::Int(i64::from(s.is_some_and(|s| s.get(m).is_some())));
    if is(&args[0], "smismember") {
        Reply::Array(args[2..].iter().map(has).collect())
    } else {
        has(&args[2])
    }
}

/// SMEMBERS key
pub fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], set) {
        Ok(s) => Reply::Set(s.into_iter().flat_map(|s| s.iter()).map(|(m, ())| Reply::bulk(m)).collect()),
        Err(e) => e,
    }
}

/// SRANDMEMBER key [count], SPOP key [count]
pub fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let pop = is(&args[0], "spop");
    // As Redis: too many arguments is a syntax error before the count is looked at.
    if args.len() > 3 {
        return args::SYNTAX;
    }
    let parse =
        |c: &Bytes| if pop { args::int(c) } else { args::random_count(c).and_then(args::bounded_repeats) };
    let count = match args.get(2).map(parse) {
        None => None,
        Some(Ok(n)) if pop && n < 0 => return Reply::error("ERR value is out of range, must be positive"),
        Some(Ok(n)) => Some(n),
        Some(Err(e)) => return e,
    };
    let mut rng = ctx.rng.fork();
    let picked = {
        let s = match access::read(ctx, &args[1], set) {
            Ok(s) => s,
            Err(e) => return e,
        };
        match (s, count) {
            (None, None) => return Reply::Nil,
            (None, Some(_)) => return if pop { Reply::Set(vec![]) } else { Reply::Array(vec![]) },
            (Some(s), None) => sample(s, 1, &mut rng),
            (Some(s), Some(n)) => sample(s, n, &mut rng),
        }
    };
    if pop {
        let _ = access::update(ctx, &args[1], set_mut, |s| {
            if let Some(s) = s {
                for (m, ()) in &picked {
                    s.remove(m);
                }
            }
        });
    }
    let members = picked.into_iter().map(|(m, ())| Reply::Bulk(m));
    match count {
        None => members.into_iter().next().unwrap_or(Reply::Nil),
        Some(_) if pop => Reply::Set(members.collect()),
        Some(_) => Reply::Array(members.collect()),
    }
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
pub fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (cursor, opts) = match ScanOpts::parse_keyed(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    match access::read(ctx, &args[1], set) {
        Ok(Some(s)) => {
            let (next, found) = scan_dict(s, cursor, &opts);
            ScanOpts::reply(next, found.into_iter().map(|(m, ())| Reply::Bulk(m)).collect())
        }
        Ok(None) => ScanOpts::reply(0, vec![]),
        Err(e) => e,
    }
}

/// The members of the set at `key`, for algebra: `None` when missing, WRONGTYPE for another type.
pub fn members(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Vec<Bytes>>, Reply> {
    Ok(access::read(ctx, key, set)?.map(|s| s.iter().map(|(m, ())| Bytes::copy_from_slice(m)).collect()))
}

/// Which set operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Members in every set.
    Inter,
    /// Members in any set.
    Union,
    /// Members of the first set in no other.
    Diff,
}

/// How a set-algebra command is spelled: its operation, where its keys are, and its form.
#[derive(Debug, Clone)]
pub struct Algebra {
    /// The operation.
    pub op: Op,
    /// The destination (STORE forms).
    pub dest: Option<Bytes>,
    /// The source keys, in order.
    pub sources: Vec<Bytes>,
    /// SINTERCARD's LIMIT (0 = none), when the command is SINTERCARD.
    pub card_limit: Option<usize>,
}

impl Algebra {
    /// Parses SINTER/SUNION/SDIFF, their STORE forms, and SINTERCARD.
    pub fn parse(args: &[Bytes]) -> Result<Algebra, Reply> {
        let name = String::from_utf8_lossy(&args[0]).to_lowercase();
        let op = match &name[..6.min(name.len())] {
            "sinter" => Op::Inter,
            "sunion" => Op::Union,
            _ => Op::Diff,
        };
        if name == "sintercard" {
            let n = match args::int(&args[1]) {
                Ok(n) if n > 0 => n as usize,
                Ok(_) => return Err(Reply::error("ERR numkeys should be greater than 0")),
                Err(_) => return Err(Reply::error("ERR numkeys should be greater than 0")),
            };
            if args.len() < 2 + n {
                return Err(Reply::error("ERR Number of keys can't be greater than number of args"));
            }
            let mut limit = 0;
            let rest = &args[2 + n..];
            match rest {
                [] => {}
                [l, v] if is(l, "limit") => match args::int(v) {
                    Ok(v) if v >= 0 => limit = v as usize,
                    _ => return Err(Reply::error("ERR LIMIT can't be negative")),
                },
                _ => return Err(args::SYNTAX),
            }
            return Ok(Algebra { op, dest: None, sources: args[2..2 + n].to_vec(), card_limit: Some(limit) });
        }
        let store = name.ends_with("store");
        let (dest, sources) = if store { (Some(args[1].clone()), &args[2..]) } else { (None, &args[1..]) };
        Ok(Algebra { op, dest, sources: sources.to_vec(), card_limit: None })
    }

    /// Every key the command touches (destination first).
    #[must_use]
    pub fn keys(&self) -> Vec<Bytes> {
        self.dest.iter().chain(&self.sources).cloned().collect()
    }

    /// Combines the gathered sets, in source order (`None` = missing key).
    #[must_use]
    pub fn compute(&self, sets: Vec<Option<Vec<Bytes>>>) -> Vec<Bytes> {
        let mut sets = sets.into_iter();
        let first: std::collections::HashSet<Bytes> =
            sets.next().flatten().unwrap_or_default().into_iter().collect();
        let result = sets.fold(first, |acc, s| {
            let s: std::collections::HashSet<Bytes> = s.unwrap_or_default().into_iter().collect();
            match self.op {
                Op::Inter => acc.intersection(&s).cloned().collect(),
                Op::Union => acc.union(&s).cloned().collect(),
                Op::Diff => acc.difference(&s).cloned().collect(),
            }
        });
        result.into_iter().collect()
    }

    /// The reply, given the result (the STORE forms pass the stored cardinality).
    #[must_use]
    pub fn reply(&self, result: Vec<Bytes>) -> Reply {
        match (self.card_limit, &self.dest) {
            (Some(limit), _) => {
                let n = result.len();
                Reply::Int(if limit > 0 { n.min(limit) } else { n } as i64)
            }
            (None, Some(_)) => Reply::Int(result.len() as i64),
            (None, None) => Reply::Set(result.into_iter().map(Reply::Bulk).collect()),
        }
    }
}

/// Stores `members` as the set at `key` (deleting it when empty), as the STORE forms do.
pub fn store(ctx: &mut Ctx<'_>, key: &[u8], members: &[Bytes]) {
    ctx.db.remove(key);
    if !members.is_empty() {
        ctx.db.set(
            key,
            Value::Set(Box::new(members.iter().map(|m| (Bytes::copy_from_slice(m), ())).collect())),
            None,
        );
    }
}

/// Set algebra when every key lives on this shard.
pub fn algebra(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let run = |ctx: &mut Ctx<'_>| -> Result<Reply, Reply> {
        let alg = Algebra::parse(args)?;
        let sets = alg.sources.iter().map(|k| members(ctx, k)).collect::<Result<Vec<_>, _>>()?;
        let result = alg.compute(sets);
        if let Some(dest) = &alg.dest {
            store(ctx, dest, &result);
        }
        Ok(alg.reply(result))
    };
    run(ctx).unwrap_or_else(|e| e)
}

/// SMOVE source destination member (one shard).
pub fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let run = |ctx: &mut Ctx<'_>| -> Result<Reply, Reply> {
        // As Redis: a missing source is 0 whatever the destination holds.
        if !access::exists(ctx, &args[1], set)? {
            return Ok(Reply::Int(0));
        }
        access::exists(ctx, &args[2], set)?;
        if !take_member(ctx, &args[1], &args[3])? {
            return Ok(Reply::Int(0));
        }
        add_member(ctx, &args[2], &args[3])?;
        Ok(Reply::Int(1))
    };
    run(ctx).unwrap_or_else(|e| e)
}

/// Whether `key` holds a set (`Ok(false)` when missing), or WRONGTYPE.
pub fn exists(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<bool, Reply> {
    access::exists(ctx, key, set)
}

/// Removes `member` from the set at `key`; whether it was there.
pub fn take_member(ctx: &mut Ctx<'_>, key: &[u8], member: &[u8]) -> Result<bool, Reply> {
    access::update(ctx, key, set_mut, |s| s.is_some_and(|s| s.remove(member).is_some()))
}

/// Adds `member` to the set at `key` (creating it).
pub fn add_member(ctx: &mut Ctx<'_>, key: &[u8], member: &[u8]) -> Result<(), Reply> {
    access::create(ctx, key, set_mut, new_set)?.insert_copy(member, ());
    Ok(())
}
