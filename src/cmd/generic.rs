//! Key commands (DEL, EXISTS, TYPE, EXPIRE, TTL, RENAME, ...) and the per-shard halves of the
//! keyspace-wide ones (KEYS, SCAN, RANDOMKEY, DBSIZE, FLUSHDB).

use bytes::Bytes;

use crate::cmd::args::{self, expire_at, is, ExpireIn, NO_SUCH_KEY};
use crate::engine::session::{Session, UNAVAILABLE};
use crate::engine::shard::{now_ms, Ctx, Shard};
use crate::engine::slot::ShardId;
use crate::facade::resp::parse_i64;
use crate::facade::Reply;
use crate::glob;
use crate::storage::db::{Db, Entry, Value};
use crate::storage::rng::splitmix;

/// DEL / UNLINK key [key ...]: how many of this shard's keys were removed.
pub fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let now = ctx.now;
    Reply::Int(args[1..].iter().filter(|k| ctx.db.live(k, now) && ctx.db.remove(k).is_some()).count() as i64)
}

/// EXISTS / TOUCH key [key ...]: how many of this shard's keys exist (repeats count again).
pub fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let now = ctx.now;
    Reply::Int(args[1..].iter().filter(|k| ctx.db.read(k, now).is_some()).count() as i64)
}

/// TYPE key
pub fn type_of(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    Reply::status(ctx.db.read(&args[1], ctx.now).map_or("none", |e| e.value.type_name()))
}

/// RENAME / RENAMENX key newkey, when both keys live on this shard.
pub fn rename(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let nx = is(&args[0], "renamenx");
    if !ctx.db.live(&args[1], ctx.now) {
        return NO_SUCH_KEY;
    }
    if args[1] == args[2] {
        return if nx { Reply::Int(0) } else { Reply::Ok };
    }
    if nx && ctx.db.live(&args[2], ctx.now) {
        return Reply::Int(0);
    }
    if let Some(entry) = ctx.db.remove(&args[1]) {
        put(ctx.db, &args[2], entry);
    }
    if nx {
        Reply::Int(1)
    } else {
        Reply::Ok
    }
}

/// Stores a whole entry (value and TTL) under `key`: RENAME's second half.
pub fn put(db: &mut Db, key: &[u8], entry: Entry) {
    let expires_at = entry.expires_at();
    db.set(key, entry.value, expires_at);
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT]
pub fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let unit = match () {
        () if is(&args[0], "expire") => ExpireIn::Seconds,
        () if is(&args[0], "pexpire") => ExpireIn::Millis,
        () if is(&args[0], "expireat") => ExpireIn::UnixSeconds,
        () => ExpireIn::UnixMillis,
    };
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match () {
            () if is(opt, "nx") => nx = true,
            () if is(opt, "xx") => xx = true,
            () if is(opt, "gt") => gt = true,
            () if is(opt, "lt") => lt = true,
            () => {
                return Reply::Error(
                    format!("ERR Unsupported option {}", String::from_utf8_lossy(opt)).into(),
                )
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Reply::error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Reply::error("ERR GT and LT options at the same time are not compatible");
    }
    let at = match expire_at(&args[2], unit, ctx.now, false, args) {
        Ok(at) => at,
        Err(e) => return e,
    };
    let Some(entry) = ctx.db.write(&args[1], ctx.now) else { return Reply::Int(0) };
    let current = entry.expires_at();
    let allowed = match current {
        _ if nx => current.is_none(),
        None if xx || gt => false,
        // No TTL counts as an infinite one: LT always lowers it.
        None => true,
        Some(cur) => !((gt && at <= cur as i64) || (lt && at >= cur as i64)),
    };
    if !allowed {
        return Reply::Int(0);
    }
    if at <= ctx.now as i64 {
        ctx.db.remove(&args[1]);
    } else {
        ctx.db.set_expiry(&args[1], Some(at as u64));
    }
    Reply::Int(1)
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key
pub fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let now = ctx.now;
    let Some(entry) = ctx.db.read(&args[1], now) else { return Reply::Int(-2) };
    let Some(at) = entry.expires_at() else { return Reply::Int(-1) };
    let left = at.saturating_sub(now) as i64;
    Reply::Int(match () {
        () if is(&args[0], "ttl") => (left + 500) / 1000,
        () if is(&args[0], "pttl") => left,
        () if is(&args[0], "expiretime") => at as i64 / 1000,
        () => at as i64,
    })
}

/// PERSIST key
pub fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let has_ttl = ctx.db.write(&args[1], ctx.now).is_some_and(|e| e.expires_at().is_some());
    Reply::Int(i64::from(has_ttl && ctx.db.set_expiry(&args[1], None)))
}

/// KEYS' part on one shard: live keys matching `pattern`.
#[must_use]
pub fn keys(db: &Db, now: u64, pattern: &[u8]) -> Vec<Bytes> {
    let all = pattern == b"*";
    db.keys(now)
        .filter(|(k, _)| all || glob::matches(pattern, k, false))
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect()
}

/// SCAN options after the cursor.
#[derive(Debug, Clone, Default)]
pub struct ScanOpts {
    /// MATCH pattern.
    pub pattern: Option<Bytes>,
    /// COUNT hint.
    pub count: usize,
    /// TYPE filter.
    pub type_name: Option<String>,
}

impl ScanOpts {
    /// Parses `[MATCH p] [COUNT n] [TYPE t]`.
    pub fn parse(args: &[Bytes]) -> Result<ScanOpts, Reply> {
        let mut opts = ScanOpts { count: 10, ..ScanOpts::default() };
        let mut it = args.iter();
        while let Some(opt) = it.next() {
            let value = it.next().ok_or(args::SYNTAX)?;
            match () {
                () if is(opt, "match") => opts.pattern = Some(value.clone()),
                () if is(opt, "count") => {
                    opts.count = match args::int(value)? {
                        n if n < 1 => return Err(args::SYNTAX),
                        n => n as usize,
                    }
                }
                () if is(opt, "type") => {
                    opts.type_name = Some(String::from_utf8_lossy(value).to_lowercase());
                }
                () => return Err(args::SYNTAX),
            }
        }
        Ok(opts)
    }

    /// The cursor and options of HSCAN, SSCAN and ZSCAN: `key cursor [MATCH p] [COUNT n]`.
    pub fn parse_keyed(args: &[Bytes]) -> Result<(u64, ScanOpts), Reply> {
        Ok((args::cursor(&args[2])?, ScanOpts::parse(&args[3..])?))
    }

    /// Whether `key` passes MATCH (everything does without one).
    #[must_use]
    pub fn matches(&self, key: &[u8]) -> bool {
        self.pattern.as_ref().map_or(true, |p| glob::matches(p, key, false))
    }

    /// A container scan's reply: the next cursor and what this step found.
    #[must_use]
    pub fn reply(next: u64, items: Vec<Reply>) -> Reply {
        Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(items)])
    }
}

/// SCAN's part on one shard, as Redis's `scanGenericCommand`: walks buckets from `cursor` until
/// `count` keys are gathered (or ten times as many buckets were seen), then filters.
#[must_use]
pub fn scan(db: &Db, now: u64, mut cursor: u64, opts: &ScanOpts) -> (u64, Vec<Bytes>) {
    let mut found: Vec<(Bytes, &'static str)> = Vec::new();
    let mut budget = opts.count.saturating_mul(10);
    loop {
        cursor = db.scan(cursor, now, |k, e| found.push((Bytes::copy_from_slice(k), e.value.type_name())));
        budget -= 1;
        if cursor == 0 || budget == 0 || found.len() >= opts.count {
            break;
        }
    }
    let keys = found
        .into_iter()
        .filter(|(k, t)| opts.matches(k) && opts.type_name.as_ref().map_or(true, |want| want == t))
        .map(|(k, _)| k)
        .collect();
    (cursor, keys)
}

/// COPY's parsed arguments.
pub struct CopyArgs {
    /// The source key.
    pub src: Bytes,
    /// The destination key.
    pub dst: Bytes,
    /// The destination database, when DB is given.
    pub db: Option<usize>,
    /// Whether REPLACE was given.
    pub replace: bool,
}

impl CopyArgs {
    /// Parses `COPY source destination [DB destination-db] [REPLACE]`; `databases` bounds DB.
    pub fn parse(args: &[Bytes], databases: usize) -> Result<CopyArgs, Reply> {
        let mut c = CopyArgs { src: args[1].clone(), dst: args[2].clone(), db: None, replace: false };
        let mut i = 3;
        while i < args.len() {
            if is(&args[i], "replace") {
                c.replace = true;
                i += 1;
            } else if is(&args[i], "db") && i + 1 < args.len() {
                match args::int(&args[i + 1]) {
                    Ok(n) if n >= 0 && (n as usize) < databases => c.db = Some(n as usize),
                    Ok(_) => return Err(Reply::error("ERR DB index is out of range")),
                    Err(e) => return Err(e),
                }
                i += 2;
            } else {
                return Err(args::SYNTAX);
            }
        }
        Ok(c)
    }
}

/// COPY when both keys live on this shard.
pub fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let c = match CopyArgs::parse(args, ctx.databases()) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let target = c.db.unwrap_or(ctx.index());
    if target == ctx.index() && c.src == c.dst {
        return Reply::error("ERR source and destination objects are the same");
    }
    let now = ctx.now;
    let Some(entry) = ctx.db.read(&c.src, now).cloned() else { return Reply::Int(0) };
    let Some(target) = ctx.db_at(target) else { return Reply::error("ERR DB index is out of range") };
    if target.live(&c.dst, now) && !c.replace {
        return Reply::Int(0);
    }
    put(target, &c.dst, entry);
    Reply::Int(1)
}

/// OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ | HELP key
pub fn object(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_lowercase();
    if sub == "help" && args.len() == 2 {
        return Reply::Array(
            [
                "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ENCODING <key>",
                "FREQ <key>",
                "IDLETIME <key>",
                "REFCOUNT <key>",
            ]
            .map(|l| Reply::Status(l.into()))
            .to_vec(),
        );
    }
    if !["encoding", "refcount", "idletime", "freq"].contains(&sub.as_str()) {
        return args::unknown_subcommand("OBJECT", &args[1]);
    }
    if args.len() != 3 {
        return args::wrong_args(&format!("object|{sub}"));
    }
    let Some(entry) = ctx.db.read(&args[2], ctx.now) else { return Reply::Nil };
    match sub.as_str() {
        "encoding" => Reply::bulk(encoding(&entry.value)),
        "refcount" => Reply::Int(1),
        // Access times are not tracked yet: every key reads as just used.
        "idletime" => Reply::Int(0),
        _ => Reply::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when \
             switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
    }
}

/// The encoding Redis 7.0 would report for a value of this shape.
fn encoding(value: &Value) -> &'static str {
    match value {
        Value::Str(s) if s.len() <= 20 && parse_i64(s.as_slice()).is_some() => "int",
        Value::Str(s) if s.len() <= 44 => "embstr",
        Value::Str(_) => "raw",
        Value::List(l) if l.len() <= 128 && l.iter().all(|e| e.len() <= 64) => "listpack",
        Value::List(_) => "quicklist",
        Value::Hash(h) if h.len() <= 128 && h.iter().all(|(k, v)| k.len() <= 64 && v.len() <= 64) => {
            "listpack"
        }
        Value::Hash(_) => "hashtable",
        Value::Set(s) if s.len() <= 512 && s.iter().all(|(m, ())| parse_i64(m).is_some()) => "intset",
        Value::Set(_) => "hashtable",
        Value::ZSet(z) if z.len() <= 128 && z.unordered().all(|(m, _)| m.len() <= 64) => "listpack",
        Value::ZSet(_) => "skiplist",
    }
}

/// KEYS pattern, gathered from every shard.
pub async fn keys_cmd(s: &Session, args: &[Bytes]) -> Reply {
    let (db, pattern) = (s.db, args[1].clone());
    let found = s.each_shard(move |shard| shard.with_db(db, |ctx| keys(ctx.db, ctx.now, &pattern))).await;
    match found {
        Ok(found) => Reply::Array(found.into_iter().flatten().map(Reply::Bulk).collect()),
        Err(_) => UNAVAILABLE,
    }
}

/// Bits of a SCAN cursor that hold the shard-local cursor; the shard index sits above them.
const SHARD_SHIFT: u32 = 48;

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: one cursor over every shard.
///
/// The cursor is `shard << 48 | local cursor`; each call walks one shard, and moving to the
/// next shard starts its walk at 0, so Redis's guarantee holds shard by shard.
pub async fn scan_cmd(s: &Session, args: &[Bytes]) -> Reply {
    let cursor = match args::cursor(&args[1]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let opts = match ScanOpts::parse(&args[2..]) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let router = &s.core.router;
    let shard = (cursor >> SHARD_SHIFT) as usize;
    if shard >= router.shards() {
        return Reply::Array(vec![Reply::bulk("0"), Reply::Array(vec![])]);
    }
    let local = cursor & ((1 << SHARD_SHIFT) - 1);
    let db = s.db;
    let walked = router
        .run(ShardId(shard), None, move |sh: &mut Shard| {
            sh.with_db(db, |ctx| scan(ctx.db, ctx.now, local, &opts))
        })
        .await;
    let Ok((next, keys)) = walked else { return UNAVAILABLE };
    let next = match next {
        0 if shard + 1 < router.shards() => ((shard + 1) as u64) << SHARD_SHIFT,
        0 => 0,
        n => (shard as u64) << SHARD_SHIFT | n,
    };
    Reply::Array(vec![
        Reply::bulk(next.to_string()),
        Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
    ])
}

/// RANDOMKEY: a random key of a random shard that has any.
pub async fn randomkey(s: &Session) -> Reply {
    let router = &s.core.router;
    let n = router.shards();
    let first = splitmix(now_ms() ^ s.client.id.rotate_left(32)) as usize;
    let db = s.db;
    for i in 0..n {
        let shard = ShardId((first + i) % n);
        let key = s
            .run_on(shard, move |sh: &mut Shard| sh.with_db(db, |ctx| ctx.db.random_key(ctx.rng, ctx.now)))
            .await;
        match key {
            Ok(Some(k)) => return Reply::Bulk(k),
            Ok(None) => {}
            Err(_) => return UNAVAILABLE,
        }
    }
    Reply::Nil
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::db::Value;

    #[test]
    fn scan_walks_every_key_once_per_pass() {
        let mut db = Db::default();
        for i in 0..500 {
            db.set(
                format!("key:{i}").as_bytes(),
                Value::Str(crate::storage::dict::Key::copy_from_slice(b"v")),
                None,
            );
        }
        let opts = ScanOpts { count: 7, pattern: Some(Bytes::from_static(b"key:1*")), ..ScanOpts::default() };
        let (mut cursor, mut seen) = (0, Vec::new());
        loop {
            let (next, keys) = scan(&db, 0, cursor, &opts);
            seen.extend(keys);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 111, "key:1, key:10-19, key:100-199");
    }
}
