//! Hash commands: HSET, HGET and friends, counters, HRANDFIELD, HSCAN. They run on the shard
//! that owns their key.

use bytes::Bytes;

use crate::cmd::args;
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::generic::ScanOpts;
use crate::cmd::long_double::LongDouble;
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::shard::Ctx;
use crate::engine::spec::Prefetch;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::facade::Reply;
use crate::num::parse_i64;
use crate::storage::access::{self, hash, hash_mut};
use crate::storage::db::Value;
use crate::storage::dict::Key;
use crate::storage::sample::sample;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("hset", -4, |c, a| hset(c, a, false))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("hash", "2.0.0", "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.", "Set the string value of a hash field")
            .history(&[("4.0.0", "Accepts multiple `field` and `value` arguments.")])
            .prefetch(Prefetch::Member(2)),
        Command::shard("hmset", -4, |c, a| hset(c, a, true))
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("hash", "2.0.0", "O(N) where N is the number of fields being set.", "Set multiple hash fields to multiple values")
            .deprecated("4.0.0", "`HSET` with multiple field-value pairs")
            .prefetch(Prefetch::Member(2)),
        Command::shard("hsetnx", 4, hsetnx)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("hash", "2.0.0", "O(1)", "Set the value of a hash field, only if the field does not exist")
            .prefetch(Prefetch::Member(2)),
        Command::shard("hget", 3, hget)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("hash", "2.0.0", "O(1)", "Get the value of a hash field")
            .prefetch(Prefetch::Member(2)),
        Command::shard("hmget", -3, hmget)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("hash", "2.0.0", "O(N) where N is the number of fields being requested.", "Get the values of all the given hash fields"),
        Command::shard("hdel", -3, hdel)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::DELETE))
            .docs("hash", "2.0.0", "O(N) where N is the number of fields to be removed.", "Delete one or more hash fields")
            .history(&[("2.4.0", "Accepts multiple `field` arguments.")])
            .prefetch(Prefetch::Member(2)),
        Command::shard("hlen", 2, hlen)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("hash", "2.0.0", "O(1)", "Get the number of fields in a hash"),
        Command::shard("hstrlen", 3, hstrlen)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("hash", "3.2.0", "O(1)", "Get the length of the value of a hash field")
            .prefetch(Prefetch::Member(2)),
        Command::shard("hexists", 3, hexists)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("hash", "2.0.0", "O(1)", "Determine if a hash field exists")
            .prefetch(Prefetch::Member(2)),
        Command::shard("hkeys", 2, |c, a| hgetall(c, a, Part::Fields))
            .flags(flag::READONLY)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output_order"])
            .docs("hash", "2.0.0", "O(N) where N is the size of the hash.", "Get all the fields in a hash"),
        Command::shard("hvals", 2, |c, a| hgetall(c, a, Part::Values))
            .flags(flag::READONLY)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output_order"])
            .docs("hash", "2.0.0", "O(N) where N is the size of the hash.", "Get all the values in a hash"),
        Command::shard("hgetall", 2, |c, a| hgetall(c, a, Part::Both))
            .flags(flag::READONLY)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output_order"])
            .docs("hash", "2.0.0", "O(N) where N is the size of the hash.", "Get all the fields and values in a hash"),
        Command::shard("hincrby", 4, hincrby)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("hash", "2.0.0", "O(1)", "Increment the integer value of a hash field by the given number")
            .prefetch(Prefetch::Member(2)),
        Command::shard("hincrbyfloat", 4, hincrbyfloat)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("hash", "2.6.0", "O(1)", "Increment the float value of a hash field by the given amount")
            .prefetch(Prefetch::Member(2)),
        Command::shard("hrandfield", -2, hrandfield)
            .flags(flag::READONLY)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("hash", "6.2.0", "O(N) where N is the number of fields returned", "Get one or multiple random fields from a hash"),
        Command::shard("hscan", -3, hscan)
            .flags(flag::READONLY)
            .acl(acl::HASH)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("hash", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..", "Incrementally iterate hash fields and associated values"),
    ]
}

fn new_hash() -> Value {
    Value::hash(Box::default())
}

/// HSET key field value [field value ...]; HMSET (`ok`), which replies OK.
fn hset(ctx: &mut Ctx<'_>, args: &[Bytes], ok: bool) -> CmdResult {
    if (args.len() - 2) % 2 != 0 {
        return Err(CmdError::arity(if ok { "hmset" } else { "hset" }));
    }
    let h = access::create(ctx.db, ctx.now, &args[1], hash_mut, new_hash)?;
    let added = args[2..]
        .chunks_exact(2)
        .filter(|p| h.insert_copy(&p[0], Key::copy_from_slice(&p[1])).is_none())
        .count();
    ctx.notify(Class::HASH, "hset", &args[1]);
    Ok(if ok { Reply::Ok } else { Reply::Int(added as i64) })
}

/// HSETNX key field value
fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let h = access::create_quiet(ctx.db, ctx.now, &args[1], hash_mut, new_hash)?;
    if h.get(&args[2]).is_some() {
        return Ok(Reply::Int(0));
    }
    h.insert_copy(&args[2], Key::copy_from_slice(&args[3]));
    ctx.db.signal(&args[1]);
    ctx.notify(Class::HASH, "hset", &args[1]);
    Ok(Reply::Int(1))
}

/// HGET key field
fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let h = access::read(ctx.db, ctx.now, &args[1], hash)?;
    Ok(h.and_then(|h| h.get(&args[2])).map_or(Reply::Nil, Reply::bulk))
}

/// HMGET key field [field ...]
fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let h = access::read(ctx.db, ctx.now, &args[1], hash)?;
    Ok(Reply::Array(
        args[2..].iter().map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Nil, Reply::bulk)).collect(),
    ))
}

/// HDEL key field [field ...]
fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let removed = access::remove_members(ctx.db, ctx.now, &args[1], hash_mut, &args[2..])?;
    if removed > 0 {
        ctx.notify(Class::HASH, "hdel", &args[1]);
        if ctx.notifying(Class::GENERIC) && !ctx.db.live(&args[1], ctx.now) {
            ctx.notify(Class::GENERIC, "del", &args[1]);
        }
    }
    Ok(Reply::Int(removed as i64))
}

/// HLEN key
fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::Int(access::dict_len(ctx.db, ctx.now, &args[1], hash)? as i64))
}

/// HSTRLEN key field
fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let h = access::read(ctx.db, ctx.now, &args[1], hash)?;
    Ok(Reply::Int(h.and_then(|h| h.get(&args[2])).map_or(0, |v| v.len() as i64)))
}

/// HEXISTS key field
fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let h = access::read(ctx.db, ctx.now, &args[1], hash)?;
    Ok(Reply::Int(i64::from(h.is_some_and(|h| h.get(&args[2]).is_some()))))
}

/// What of a hash HKEYS, HVALS and HGETALL reply with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Fields,
    Values,
    Both,
}

/// HKEYS / HVALS / HGETALL key
fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes], part: Part) -> CmdResult {
    let h = access::read(ctx.db, ctx.now, &args[1], hash)?;
    let pairs = h.into_iter().flat_map(|h| h.iter());
    Ok(match part {
        Part::Fields => Reply::Array(pairs.map(|(k, _)| Reply::bulk(k)).collect()),
        Part::Values => Reply::Array(pairs.map(|(_, v)| Reply::bulk(v)).collect()),
        Part::Both => Reply::Map(pairs.map(|(k, v)| (Reply::bulk(k), Reply::bulk(v))).collect()),
    })
}

/// HINCRBY key field increment
fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let by = args::int(&args[3])?;
    let h = access::create(ctx.db, ctx.now, &args[1], hash_mut, new_hash)?;
    let current = match h.get(&args[2]) {
        None => 0,
        Some(v) => parse_i64(v.as_slice()).ok_or(CmdError::msg("ERR hash value is not an integer"))?,
    };
    let next = current.checked_add(by).ok_or(CmdError::msg("ERR increment or decrement would overflow"))?;
    h.insert_copy(&args[2], Key::copy_from_slice(itoa::Buffer::new().format(next).as_bytes()));
    ctx.notify(Class::HASH, "hincrby", &args[1]);
    Ok(Reply::Int(next))
}

/// HINCRBYFLOAT key field increment (in `long double`, as INCRBYFLOAT)
fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let by = match LongDouble::parse(&args[3]) {
        Some(f) if f.is_infinite() => return Err(CmdError::msg("ERR value is NaN or Infinity")),
        Some(f) => f,
        None => return Err(CmdError::NotFloat),
    };
    let h = access::create(ctx.db, ctx.now, &args[1], hash_mut, new_hash)?;
    let current = match h.get(&args[2]) {
        None => LongDouble::ZERO,
        Some(v) => LongDouble::parse(v.as_slice()).ok_or(CmdError::msg("ERR hash value is not a float"))?,
    };
    // A finite increment on a finite value: an infinity here is an overflow.
    let next = match current.checked_add(by) {
        Some(next) if !next.is_infinite() => next,
        _ => return Err(CmdError::msg("ERR increment would produce NaN or Infinity")),
    };
    let text = Bytes::from(next.to_human());
    h.insert_copy(&args[2], Key::copy_from_slice(&text));
    // The sum, not the increment: the float arithmetic is not replayed.
    ctx.log(&[b"HSET", &args[1], &args[2], &text]);
    ctx.notify(Class::HASH, "hincrbyfloat", &args[1]);
    Ok(Reply::Bulk(text))
}

/// HRANDFIELD key [count [WITHVALUES]]
fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (count, with_values) = args::random_args(args, "withvalues")?;
    let mut rng = ctx.rng.fork();
    let h = access::read(ctx.db, ctx.now, &args[1], hash)?;
    let picked = match (h, count) {
        (h, None) => {
            return Ok(h.and_then(|h| h.random(&mut rng)).map_or(Reply::Nil, |(k, _)| Reply::bulk(k)))
        }
        (None, Some(_)) => return Ok(Reply::Array(vec![])),
        (Some(h), Some(count)) => sample(h, count, &mut rng),
    };
    Ok(if with_values {
        Reply::Pairs(picked.into_iter().map(|(k, v)| (Reply::Bulk(k), Reply::bulk(v))).collect())
    } else {
        Reply::Array(picked.into_iter().map(|(k, _)| Reply::Bulk(k)).collect())
    })
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let (cursor, opts) = ScanOpts::parse_keyed(args)?;
    Ok(match access::read(ctx.db, ctx.now, &args[1], hash)? {
        Some(h) => {
            let (next, found) = h.scan_matching(cursor, opts.count, |k| opts.matches(k));
            ScanOpts::reply(
                next,
                found.into_iter().flat_map(|(k, v)| [Reply::Bulk(k), Reply::bulk(v)]).collect(),
            )
        }
        None => ScanOpts::reply(0, vec![]),
    })
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::Fixture;

    #[test]
    fn fields_counters_and_errors() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("HSET h a 1 b 2"), ":2\r\n");
        assert_eq!(f.resp("HSET h a 3"), ":0\r\n", "an update adds no field");
        assert_eq!(f.resp("HINCRBY h a 4"), ":7\r\n");
        assert_eq!(f.resp("HINCRBY h b x"), "-ERR value is not an integer or out of range\r\n");
        assert_eq!(f.resp("HSET h c"), "-ERR wrong number of arguments for 'hset' command\r\n");
        assert_eq!(f.resp("HDEL h a b"), ":2\r\n");
        assert_eq!(f.resp("HLEN h"), ":0\r\n");
        assert_eq!(f.resp("EXISTS h"), ":0\r\n", "an emptied hash is deleted");
    }
}
