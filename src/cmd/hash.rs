//! Hash commands: HSET, HGET and friends, counters, HRANDFIELD, HSCAN. Run on the owning shard.

use bytes::Bytes;

use crate::cmd::access::{self, hash, hash_mut};
use crate::cmd::args::{self, is};
use crate::cmd::generic::ScanOpts;
use crate::cmd::long_double::LongDouble;
use crate::engine::shard::Ctx;
use crate::facade::resp::parse_i64;
use crate::facade::Reply;
use crate::storage::db::Value;
use crate::storage::dict::{Dict, Key};
use crate::storage::rng::Rng;

fn new_hash() -> Value {
    Value::Hash(Box::default())
}

/// HSET / HMSET key field value [field value ...]
pub fn hset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    if (args.len() - 2) % 2 != 0 {
        return args::wrong_args(&String::from_utf8_lossy(&args[0]).to_lowercase());
    }
    let h = match access::create(ctx, &args[1], hash_mut, new_hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let added = args[2..]
        .chunks_exact(2)
        .filter(|p| h.insert_copy(&p[0], Key::copy_from_slice(&p[1])).is_none())
        .count();
    if is(&args[0], "hmset") {
        Reply::Ok
    } else {
        Reply::Int(added as i64)
    }
}

/// HSETNX key field value
pub fn hsetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::create_quiet(ctx, &args[1], hash_mut, new_hash) {
        Ok(h) if h.get(&args[2]).is_some() => Reply::Int(0),
        Ok(h) => {
            h.insert_copy(&args[2], Key::copy_from_slice(&args[3]));
            ctx.db.signal(&args[1]);
            Reply::Int(1)
        }
        Err(e) => e,
    }
}

/// HGET key field
pub fn hget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], hash) {
        Ok(h) => h.and_then(|h| h.get(&args[2])).map_or(Reply::Nil, Reply::bulk),
        Err(e) => e,
    }
}

/// HMGET key field [field ...]
pub fn hmget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], hash) {
        Ok(h) => Reply::Array(
            args[2..].iter().map(|f| h.and_then(|h| h.get(f)).map_or(Reply::Nil, Reply::bulk)).collect(),
        ),
        Err(e) => e,
    }
}

/// HDEL key field [field ...]
pub fn hdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    access::remove_members(ctx, &args[1], hash_mut, &args[2..])
}

/// HLEN key
pub fn hlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    access::dict_len(ctx, &args[1], hash)
}

/// HSTRLEN key field
pub fn hstrlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], hash) {
        Ok(h) => Reply::Int(h.and_then(|h| h.get(&args[2])).map_or(0, |v| v.len() as i64)),
        Err(e) => e,
    }
}

/// HEXISTS key field
pub fn hexists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    match access::read(ctx, &args[1], hash) {
        Ok(h) => Reply::Int(i64::from(h.is_some_and(|h| h.get(&args[2]).is_some()))),
        Err(e) => e,
    }
}

/// HKEYS / HVALS / HGETALL key
pub fn hgetall(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let h = match access::read(ctx, &args[1], hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let pairs = h.into_iter().flat_map(|h| h.iter());
    match () {
        () if is(&args[0], "hkeys") => Reply::Array(pairs.map(|(k, _)| Reply::bulk(k)).collect()),
        () if is(&args[0], "hvals") => Reply::Array(pairs.map(|(_, v)| Reply::bulk(v)).collect()),
        () => Reply::Map(pairs.map(|(k, v)| (Reply::bulk(k), Reply::bulk(v))).collect()),
    }
}

/// HINCRBY key field increment
pub fn hincrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let by = match args::int(&args[3]) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let h = match access::create(ctx, &args[1], hash_mut, new_hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let current = match h.get(&args[2]) {
        None => 0,
        Some(v) => match parse_i64(v.as_slice()) {
            Some(n) => n,
            None => return Reply::error("ERR hash value is not an integer"),
        },
    };
    let Some(next) = current.checked_add(by) else {
        return Reply::error("ERR increment or decrement would overflow");
    };
    h.insert_copy(&args[2], Key::copy_from_slice(itoa::Buffer::new().format(next).as_bytes()));
    Reply::Int(next)
}

/// HINCRBYFLOAT key field increment (in `long double`, as INCRBYFLOAT)
pub fn hincrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let by = match LongDouble::parse(&args[3]) {
        Some(f) if f.is_infinite() => return Reply::error("ERR value is NaN or Infinity"),
        Some(f) => f,
        None => return args::NOT_FLOAT,
    };
    let h = match access::create(ctx, &args[1], hash_mut, new_hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let current = match h.get(&args[2]) {
        None => LongDouble::ZERO,
        Some(v) => match LongDouble::parse(v.as_slice()) {
            Some(f) => f,
            None => return Reply::error("ERR hash value is not a float"),
        },
    };
    // A finite increment on a finite value: an infinity here is an overflow.
    let next = match current.checked_add(by) {
        Some(next) if !next.is_infinite() => next,
        _ => return Reply::error("ERR increment would produce NaN or Infinity"),
    };
    let text = Bytes::from(next.to_human());
    h.insert_copy(&args[2], Key::copy_from_slice(&text));
    Reply::Bulk(text)
}

/// HRANDFIELD key [count [WITHVALUES]]
pub fn hrandfield(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (count, with_values) = match args::random_args(args, "withvalues") {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    let mut rng = ctx.rng.fork();
    let h = match access::read(ctx, &args[1], hash) {
        Ok(h) => h,
        Err(e) => return e,
    };
    let picked = match (h, count) {
        (h, None) => return h.and_then(|h| h.random(&mut rng)).map_or(Reply::Nil, |(k, _)| Reply::bulk(k)),
        (None, Some(_)) => return Reply::Array(vec![]),
        (Some(h), Some(count)) => sample(h, count, &mut rng),
    };
    if with_values {
        Reply::Pairs(picked.into_iter().map(|(k, v)| (Reply::Bulk(k), Reply::bulk(v))).collect())
    } else {
        Reply::Array(picked.into_iter().map(|(k, _)| Reply::Bulk(k)).collect())
    }
}

/// Redis's random sampling: a positive count gives distinct entries (all of them when the count
/// reaches the size), a negative one `|count|` entries that may repeat.
pub fn sample<V: Clone>(d: &Dict<V>, count: i64, rng: &mut Rng) -> Vec<(Bytes, V)> {
    let entry = |(k, v): (&[u8], &V)| (Bytes::copy_from_slice(k), v.clone());
    sample_with(
        d.len(),
        count,
        rng,
        || d.iter().map(entry).collect(),
        |r| d.random(r).map(|e| (e.0, entry(e))),
    )
}

/// [`sample`] over any container of `len` entries: `all` lists them, `pick` draws one
/// uniformly, with the key that tells distinct entries apart.
///
/// A count of a quarter of the size or more draws from the listed entries (indices for
/// repeats, a partial shuffle for distinct ones); a smaller one picks from the container, and
/// for distinct entries draws again on a repeat. Either way each draw is uniform.
pub fn sample_with<'a, T: Clone>(
    len: usize,
    count: i64,
    rng: &mut Rng,
    all: impl FnOnce() -> Vec<T>,
    pick: impl Fn(&mut Rng) -> Option<(&'a [u8], T)>,
) -> Vec<T> {
    if count >= 0 && count as usize >= len {
        return all();
    }
    let want = usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX);
    if want.saturating_mul(4) >= len {
        let mut items = all();
        if count < 0 {
            return (0..want).map(|_| items[rng.below(len)].clone()).collect();
        }
        for i in 0..want {
            let j = i + rng.below(len - i);
            items.swap(i, j);
        }
        items.truncate(want);
        return items;
    }
    let mut out = Vec::with_capacity(want);
    let mut seen = std::collections::HashSet::new();
    while out.len() < want {
        let Some((k, item)) = pick(rng) else { break };
        if count < 0 || seen.insert(k) {
            out.push(item);
        }
    }
    out
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
pub fn hscan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let (cursor, opts) = match ScanOpts::parse_keyed(args) {
        Ok(parsed) => parsed,
        Err(e) => return e,
    };
    match access::read(ctx, &args[1], hash) {
        Ok(Some(h)) => {
            let (next, found) = scan_dict(h, cursor, &opts);
            ScanOpts::reply(
                next,
                found.into_iter().flat_map(|(k, v)| [Reply::Bulk(k), Reply::bulk(v)]).collect(),
            )
        }
        Ok(None) => ScanOpts::reply(0, vec![]),
        Err(e) => e,
    }
}

/// A SCAN step over a container dict, with MATCH applied to its keys.
pub fn scan_dict<V: Clone>(d: &Dict<V>, mut cursor: u64, opts: &ScanOpts) -> (u64, Vec<(Bytes, V)>) {
    let mut found = Vec::new();
    let mut budget = opts.count.saturating_mul(10);
    loop {
        cursor = d.scan(cursor, |k, v| {
            if opts.matches(k) {
                found.push((Bytes::copy_from_slice(k), v.clone()));
            }
        });
        budget -= 1;
        if cursor == 0 || budget == 0 || found.len() >= opts.count {
            return (cursor, found);
        }
    }
}
