//! Set commands: members, random picks, SMOVE, and set algebra (SINTER/SUNION/SDIFF and their
//! STORE and CARD forms). The algebra is a pure function over gathered member lists, so the same
//! code serves keys on one shard and keys spread over several.

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::generic::ScanOpts;
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::shard::Ctx;
use crate::engine::spec::Prefetch;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::facade::Reply;
use crate::storage::access::{self, set, set_mut};
use crate::storage::db::Value;
use crate::storage::sample::sample;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("sadd", -3, sadd)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("set", "1.0.0", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", "Add one or more members to a set")
            .history(&[("2.4.0", "Accepts multiple `member` arguments.")])
            .prefetch(Prefetch::Member(2)),
        Command::shard("srem", -3, srem)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("set", "1.0.0", "O(N) where N is the number of members to be removed.", "Remove one or more members from a set")
            .history(&[("2.4.0", "Accepts multiple `member` arguments.")])
            .prefetch(Prefetch::Member(2)),
        Command::shard("scard", 2, scard)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("set", "1.0.0", "O(1)", "Get the number of members in a set"),
        Command::shard("sismember", 3, |c, a| sismember(c, a, false))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("set", "1.0.0", "O(1)", "Determine if a given value is a member of a set")
            .prefetch(Prefetch::Member(2)),
        Command::shard("smismember", -3, |c, a| sismember(c, a, true))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("set", "6.2.0", "O(N) where N is the number of elements being checked for membership", "Returns the membership associated with the given elements for a set"),
        Command::shard("smembers", 2, smembers)
            .flags(flag::READONLY)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output_order"])
            .docs("set", "1.0.0", "O(N) where N is the set cardinality.", "Get all the members in a set"),
        Command::shard("srandmember", -2, |c, a| srandmember(c, a, false))
            .flags(flag::READONLY)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("set", "1.0.0", "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.", "Get one or multiple random members from a set")
            .history(&[("2.6.0", "Added the optional `count` argument.")]),
        Command::shard("spop", -2, |c, a| srandmember(c, a, true))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .tips(&["nondeterministic_output"])
            .docs("set", "1.0.0", "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.", "Remove and return one or multiple random members from a set")
            .history(&[("3.2.0", "Added the `count` argument.")]),
        Command::shard("sscan", -3, sscan)
            .flags(flag::READONLY)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("set", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..", "Incrementally iterate Set elements"),
        Command::across("smove", 4, smove, |tx, db, a| Box::pin(smove_across(tx, db, a)))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("set", "1.0.0", "O(1)", "Move a member from one set to another"),
        Command::across("sinter", -2, |c, a| algebra(c, a, Op::Inter, Form::Plain), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Inter, Form::Plain)))
            .flags(flag::READONLY)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output_order"])
            .docs("set", "1.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "Intersect multiple sets"),
        Command::across("sunion", -2, |c, a| algebra(c, a, Op::Union, Form::Plain), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Union, Form::Plain)))
            .flags(flag::READONLY)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output_order"])
            .docs("set", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "Add multiple sets"),
        Command::across("sdiff", -2, |c, a| algebra(c, a, Op::Diff, Form::Plain), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Diff, Form::Plain)))
            .flags(flag::READONLY)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output_order"])
            .docs("set", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "Subtract multiple sets"),
        Command::across("sinterstore", -3, |c, a| algebra(c, a, Op::Inter, Form::Store), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Inter, Form::Store)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .key(KeySpec::index(2).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .docs("set", "1.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "Intersect multiple sets and store the resulting set in a key"),
        Command::across("sunionstore", -3, |c, a| algebra(c, a, Op::Union, Form::Store), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Union, Form::Store)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::index(2).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .docs("set", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "Add multiple sets and store the resulting set in a key"),
        Command::across("sdiffstore", -3, |c, a| algebra(c, a, Op::Diff, Form::Store), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Diff, Form::Store)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::SET)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::index(2).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .docs("set", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "Subtract multiple sets and store the resulting set in a key"),
        Command::across("sintercard", -3, |c, a| algebra(c, a, Op::Inter, Form::Card), |tx, db, a| Box::pin(algebra_across(tx, db, a, Op::Inter, Form::Card)))
            .flags(flag::READONLY)
            .acl(acl::SET)
            .key(KeySpec::index(1).keynum(0, 1, 1).flags(key::RO | key::ACCESS))
            .docs("set", "7.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "Intersect multiple sets and return the cardinality of the result"),
    ]
}

fn new_set() -> Value {
    Value::set(Box::default())
}

/// SADD key member [member ...]
fn sadd(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let s = access::create_quiet(ctx.db, ctx.now, &args[1], set_mut, new_set)?;
    let added = args[2..].iter().filter(|m| s.insert_copy(m, ()).is_none()).count();
    if added > 0 {
        ctx.db.signal(&args[1]);
        ctx.notify(Class::SET, "sadd", &args[1]);
    }
    Ok(Reply::Int(added as i64))
}

/// SREM key member [member ...]
fn srem(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let removed = access::remove_members(ctx.db, ctx.now, &args[1], set_mut, &args[2..])?;
    if removed > 0 {
        ctx.notify(Class::SET, "srem", &args[1]);
        notify_if_deleted(ctx, &args[1]);
    }
    Ok(Reply::Int(removed as i64))
}

/// Reports the deletion of `key` if a removal emptied it.
fn notify_if_deleted(ctx: &mut Ctx<'_>, key: &[u8]) {
    if ctx.notifying(Class::GENERIC) && !ctx.db.live(key, ctx.now) {
        ctx.notify(Class::GENERIC, "del", key);
    }
}

/// SCARD key
fn scard(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(access::dict_len(ctx.db, ctx.now, &args[1], set)? as i64))
}

/// SISMEMBER key member, SMISMEMBER key member [member ...] (`many`)
fn sismember(ctx: &mut Ctx<'_>, args: &[Bytes], many: bool) -> CmdResult {
    let s = access::read(ctx.db, ctx.now, &args[1], set)?;
    let has = |m: &Bytes| Reply::Int(i64::from(s.is_some_and(|s| s.get(m).is_some())));
    Ok(if many { Reply::Array(args[2..].iter().map(has).collect()) } else { has(&args[2]) })
}

/// SMEMBERS key
fn smembers(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let s = access::read(ctx.db, ctx.now, &args[1], set)?;
    Ok(Reply::Set(s.into_iter().flat_map(|s| s.iter()).map(|(m, ())| Reply::bulk(m)).collect()))
}

/// Redis's `SPOP_MOVE_STRATEGY_MUL`: SPOP with a count rebuilds the set from what remains
/// when that is at most a fifth of what it pops.
const SPOP_MOVE_STRATEGY_MUL: usize = 5;

/// SRANDMEMBER key [count], SPOP key [count] (`pop`)
fn srandmember(ctx: &mut Ctx<'_>, args: &[Bytes], pop: bool) -> CmdResult {
    // As Redis: too many arguments is a syntax error before the count is looked at.
    if args.len() > 3 {
        return Err(CmdError::Syntax);
    }
    let count = match args.get(2) {
        None => None,
        Some(c) if pop => match args::int(c)? {
            n if n < 0 => return Err(CmdError::NotPositive),
            n => Some(n),
        },
        Some(c) => Some(args::bounded_repeats(args::random_count(c)?)?),
    };
    let mut rng = ctx.rng.fork();
    // SPOP looks its key up as a write, SRANDMEMBER as a read (Redis's stats and `keymiss`).
    let found = if pop {
        access::write_view(ctx.db, ctx.now, &args[1], set)?
    } else {
        access::read(ctx.db, ctx.now, &args[1], set)?
    };
    let picked = match (found, count) {
        (None, None) => return Ok(Reply::Nil),
        (None, Some(_)) => return Ok(if pop { Reply::Set(vec![]) } else { Reply::Array(vec![]) }),
        (Some(s), None) => sample(s, 1, &mut rng),
        (Some(s), Some(n)) => sample(s, n, &mut rng),
    };
    if pop {
        access::update(ctx.db, ctx.now, &args[1], set_mut, |s| {
            if let Some(s) = s {
                let size = s.len();
                for (m, ()) in &picked {
                    s.remove(m);
                }
                // Redis pops most of a set by building a new one from what remains
                // (`spopWithCountCommand`'s third case): encoded by its content.
                let remaining = size - picked.len();
                if count.is_some() && remaining > 0 && remaining * SPOP_MOVE_STRATEGY_MUL <= picked.len() {
                    s.rebuilt();
                }
            }
        })?;
        if !picked.is_empty() {
            let deleted =
                (ctx.journaling() || ctx.notifying(Class::GENERIC)) && !ctx.db.live(&args[1], ctx.now);
            ctx.notify(Class::SET, "spop", &args[1]);
            if deleted {
                ctx.notify(Class::GENERIC, "del", &args[1]);
            }
            // The draw is not replayed: what it removed is, as Redis propagates SPOP.
            if ctx.journaling() {
                if count.is_some() && deleted {
                    ctx.log(&[b"DEL", &args[1]]);
                } else {
                    for (m, ()) in &picked {
                        ctx.log(&[b"SREM", &args[1], m]);
                    }
                }
            }
        }
    }
    let members = picked.into_iter().map(|(m, ())| Reply::Bulk(m));
    Ok(match count {
        None => members.into_iter().next().unwrap_or(Reply::Nil),
        Some(_) if pop => Reply::Set(members.collect()),
        Some(_) => Reply::Array(members.collect()),
    })
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
fn sscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (cursor, opts) = ScanOpts::parse_keyed(args)?;
    Ok(match access::read(ctx.db, ctx.now, &args[1], set)? {
        Some(s) => {
            let (next, found) = s.scan_matching(cursor, opts.count, |m| opts.matches(m));
            ScanOpts::reply(next, found.into_iter().map(|(m, ())| Reply::Bulk(m)).collect())
        }
        None => ScanOpts::reply(0, vec![]),
    })
}

/// The members of the set at `key`, for algebra: `None` when missing, WRONGTYPE for another type.
fn members(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Vec<Bytes>>, CmdError> {
    Ok(access::read(ctx.db, ctx.now, key, set)?
        .map(|s| s.iter().map(|(m, ())| Bytes::copy_from_slice(m)).collect()))
}

/// Which set operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    /// Members in every set.
    Inter,
    /// Members in any set.
    Union,
    /// Members of the first set in no other.
    Diff,
}

/// Which form of the operation: the members, stored, or their count (SINTERCARD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    Plain,
    Store,
    Card,
}

/// A set-algebra request: the operation, where its keys are, and its form.
#[derive(Debug, Clone)]
struct Algebra {
    /// The operation.
    op: Op,
    /// The destination (STORE forms).
    dest: Option<Bytes>,
    /// The source keys, in order.
    sources: Vec<Bytes>,
    /// SINTERCARD's LIMIT (0 = none), when the command is SINTERCARD.
    card_limit: Option<usize>,
}

impl Algebra {
    /// Parses SINTER/SUNION/SDIFF (`key [key ...]`), their STORE forms (`destination key [key
    /// ...]`) and SINTERCARD (`numkeys key [key ...] [LIMIT limit]`).
    fn parse(args: &[Bytes], op: Op, form: Form) -> Result<Algebra, CmdError> {
        match form {
            Form::Card => {
                let n = match args::int(&args[1]) {
                    Ok(n) if n > 0 => n as usize,
                    _ => return Err(CmdError::msg("ERR numkeys should be greater than 0")),
                };
                if args.len() < 2 + n {
                    return Err(CmdError::msg("ERR Number of keys can't be greater than number of args"));
                }
                let limit = match &args[2 + n..] {
                    [] => 0,
                    [l, v] if is(l, "limit") => match args::int(v) {
                        Ok(v) if v >= 0 => v as usize,
                        _ => return Err(CmdError::msg("ERR LIMIT can't be negative")),
                    },
                    _ => return Err(CmdError::Syntax),
                };
                Ok(Algebra { op, dest: None, sources: args[2..2 + n].to_vec(), card_limit: Some(limit) })
            }
            Form::Store => {
                Ok(Algebra { op, dest: Some(args[1].clone()), sources: args[2..].to_vec(), card_limit: None })
            }
            Form::Plain => Ok(Algebra { op, dest: None, sources: args[1..].to_vec(), card_limit: None }),
        }
    }

    /// Whether Redis would store the result as a table whatever it holds: SDIFFSTORE, when its
    /// cost estimate picks the algorithm that adds the whole first set before removing the
    /// others, converts on the way if the first set needs a table (`sinterGenericCommand`).
    fn stores_table(&self, sets: &[Option<Vec<Bytes>>]) -> bool {
        let Some(Some(first)) = sets.first() else { return false };
        let same_set = self.sources[1..].iter().any(|k| *k == self.sources[0]);
        if self.op != Op::Diff || same_set {
            return false;
        }
        let present = sets.iter().flatten();
        let one_work = present.clone().count() * first.len() / 2;
        let two_work: usize = present.map(Vec::len).sum();
        one_work > two_work
            && (first.len() > crate::storage::encoding::get().set_intset_entries
                || first.iter().any(|m| crate::num::parse_i64(m).is_none()))
    }

    /// Combines the gathered sets, in source order (`None` = missing key).
    fn compute(&self, sets: Vec<Option<Vec<Bytes>>>) -> Vec<Bytes> {
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
    fn reply(&self, result: Vec<Bytes>) -> Reply {
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

/// Stores `members` as the set at `key` (deleting it when empty), as the STORE forms of `op`
/// do, encoded by its content or as a table (see [`Algebra::stores_table`]).
fn store(ctx: &mut Ctx<'_>, key: &[u8], members: &[Bytes], table: bool, op: Op) {
    if members.is_empty() {
        if ctx.db.remove(key).is_some() {
            ctx.notify(Class::GENERIC, "del", key);
        }
    } else {
        // As Redis's `setKey`: a destination whose time has come expires first; one that is
        // there is overwritten, else the key is new.
        ctx.db.live(key, ctx.now);
        let mut value =
            Value::set(Box::new(members.iter().map(|m| (Bytes::copy_from_slice(m), ())).collect()));
        if let (true, Some(s)) = (table, set_mut(&mut value)) {
            s.make_table();
        }
        ctx.db.set(key, value, None);
        let event = match op {
            Op::Inter => "sinterstore",
            Op::Union => "sunionstore",
            Op::Diff => "sdiffstore",
        };
        ctx.notify(Class::SET, event, key);
    }
}

/// Set algebra when every key lives on this shard.
fn algebra(ctx: &mut Ctx<'_>, args: &[Bytes], op: Op, form: Form) -> CmdResult {
    let alg = Algebra::parse(args, op, form)?;
    let sets = alg.sources.iter().map(|k| members(ctx, k)).collect::<Result<Vec<_>, _>>()?;
    let table = alg.stores_table(&sets);
    let result = alg.compute(sets);
    if let Some(dest) = &alg.dest {
        store(ctx, dest, &result, table, op);
    }
    Ok(alg.reply(result))
}

/// Set algebra across shards: every source set is gathered, combined on this core, and the
/// result stored on the destination's shard.
async fn algebra_across(tx: &Tx, db: usize, args: &[Bytes], op: Op, form: Form) -> CmdResult {
    let alg = Algebra::parse(args, op, form)?;
    let gathers =
        alg.sources.iter().cloned().map(|key| tx.on(tx.shard_of(&key), db, move |c| members(c, &key)));
    let sets = futures::future::join_all(gathers).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let table = alg.stores_table(&sets);
    let result = alg.compute(sets);
    if let Some(dest) = alg.dest.clone() {
        let stored = result.clone();
        tx.on(tx.shard_of(&dest), db, move |c| {
            store(c, &dest, &stored, table, op);
            Ok(())
        })
        .await?;
    }
    Ok(alg.reply(result))
}

/// SMOVE source destination member, when both sets live on this shard. As Redis: a missing
/// source is 0 whatever the destination holds, and both types are checked before the member
/// moves.
fn smove(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if !access::exists(ctx.db, ctx.now, &args[1], set)? {
        return Ok(Reply::Int(0));
    }
    access::exists(ctx.db, ctx.now, &args[2], set)?;
    if args[1] == args[2] {
        // As Redis: a no-op, which only answers whether the member is there.
        let s = access::write_view(ctx.db, ctx.now, &args[1], set)?;
        return Ok(Reply::Int(i64::from(s.is_some_and(|s| s.get(&args[3]).is_some()))));
    }
    if !take_member(ctx, &args[1], &args[3])? {
        return Ok(Reply::Int(0));
    }
    add_member(ctx, &args[2], &args[3])?;
    Ok(Reply::Int(1))
}

/// SMOVE across shards.
async fn smove_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let (src, dst, member) = (args[1].clone(), args[2].clone(), args[3].clone());
    let (s_src, s_dst) = (tx.shard_of(&src), tx.shard_of(&dst));
    let (probe_src, probe_dst) = (src.clone(), dst.clone());
    if !tx.on(s_src, db, move |c| Ok(access::exists(c.db, c.now, &probe_src, set)?)).await? {
        return Ok(Reply::Int(0));
    }
    tx.on(s_dst, db, move |c| Ok(access::exists(c.db, c.now, &probe_dst, set)?)).await?;
    let m = member.clone();
    if !tx.on(s_src, db, move |c| take_member(c, &src, &m)).await? {
        return Ok(Reply::Int(0));
    }
    tx.on(s_dst, db, move |c| add_member(c, &dst, &member)).await?;
    Ok(Reply::Int(1))
}

/// Removes `member` from the set at `key`; whether it was there.
fn take_member(ctx: &mut Ctx<'_>, key: &[u8], member: &[u8]) -> Result<bool, CmdError> {
    let taken =
        access::update(ctx.db, ctx.now, key, set_mut, |s| s.is_some_and(|s| s.remove(member).is_some()))?;
    if taken {
        ctx.notify(Class::SET, "srem", key);
        notify_if_deleted(ctx, key);
    }
    Ok(taken)
}

/// Adds `member` to the set at `key` (creating it).
fn add_member(ctx: &mut Ctx<'_>, key: &[u8], member: &[u8]) -> Result<(), CmdError> {
    if access::create(ctx.db, ctx.now, key, set_mut, new_set)?.insert_copy(member, ()).is_none() {
        ctx.notify(Class::SET, "sadd", key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::Fixture;

    #[test]
    fn members_and_algebra_on_one_shard() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("SADD a 1 2 3"), ":3\r\n");
        assert_eq!(f.resp("SADD b 2 3 4"), ":3\r\n");
        assert_eq!(f.resp("SINTERCARD 2 a b"), ":2\r\n");
        assert_eq!(f.resp("SINTERCARD 2 a b LIMIT 1"), ":1\r\n");
        assert_eq!(f.resp("SMISMEMBER a 1 4"), "*2\r\n:1\r\n:0\r\n");
        assert_eq!(f.resp("SRANDMEMBER a -5").matches("\r\n$1\r\n").count(), 5, "a negative count repeats");
        assert_eq!(f.resp("SPOP a 0"), "*0\r\n");
        assert_eq!(f.resp("SCARD a"), ":3\r\n");
    }
}
