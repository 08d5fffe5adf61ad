//! Key commands (DEL, EXISTS, TYPE, EXPIRE, TTL, RENAME, COPY, OBJECT) and the keyspace-wide
//! ones the session runs over every shard (KEYS, SCAN, RANDOMKEY); the SCAN options the
//! container scans share.

use bytes::Bytes;

use crate::cmd::args::{self, expire_at, is, ExpireIn};
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::{Command, Merge};
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::{now_ms, Ctx};
use crate::engine::slot::ShardId;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::facade::Reply;
use crate::glob;
use crate::num::parse_i64;
use crate::num::splitmix;
use crate::storage::clock;
use crate::storage::db::{Db, Entry, Value};

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::split("del", -2, del, Merge::Sum)
            .flags(flag::WRITE)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RM | key::DELETE))
            .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
            .docs("generic", "1.0.0", "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).", "Delete a key"),
        Command::split("unlink", -2, del, Merge::Sum)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RM | key::DELETE))
            .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
            .docs("generic", "4.0.0", "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.", "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking."),
        Command::split("exists", -2, exists, Merge::Sum)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RO))
            .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
            .docs("generic", "1.0.0", "O(N) where N is the number of keys to check.", "Determine if a key exists")
            .history(&[("3.0.3", "Accepts multiple `key` arguments.")]),
        Command::split("touch", -2, touch, Merge::Sum)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RO))
            .tips(&["request_policy:multi_shard", "response_policy:agg_sum"])
            .docs("generic", "3.2.1", "O(N) where N is the number of keys that will be touched.", "Alters the last access time of a key(s). Returns the number of existing keys specified."),
        Command::shard("type", 2, type_of)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO))
            .docs("generic", "1.0.0", "O(1)", "Determine the type stored at key"),
        Command::session("keys", 2, |s, a| Box::pin(keys(s, a)))
            .flags(flag::READONLY)
            .acl(acl::KEYSPACE | acl::DANGEROUS)
            .tips(&["request_policy:all_shards", "nondeterministic_output_order"])
            .docs("generic", "1.0.0", "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.", "Find all keys matching the given pattern")
            .fan_out(),
        Command::session("scan", -2, |s, a| Box::pin(scan(s, a)))
            .flags(flag::READONLY)
            .acl(acl::KEYSPACE)
            .tips(&["nondeterministic_output", "request_policy:special"])
            .docs("generic", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", "Incrementally iterate the keys space")
            .history(&[("6.0.0", "Added the `TYPE` subcommand.")])
            .fan_out(),
        Command::session("randomkey", 1, |s, _| Box::pin(randomkey(s)))
            .flags(flag::READONLY)
            .acl(acl::KEYSPACE)
            .tips(&["request_policy:all_shards", "nondeterministic_output"])
            .docs("generic", "1.0.0", "O(1)", "Return a random key from the keyspace")
            .fan_out(),
        Command::across("rename", 3, |c, a| rename(c, a, false), |tx, db, a| Box::pin(rename_across(tx, db, a, false)))
            .flags(flag::WRITE)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .docs("generic", "1.0.0", "O(1)", "Rename a key"),
        Command::across("renamenx", 3, |c, a| rename(c, a, true), |tx, db, a| Box::pin(rename_across(tx, db, a, true)))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::OW | key::INSERT))
            .docs("generic", "1.0.0", "O(1)", "Rename a key, only if the new key does not exist")
            .history(&[("3.2.0", "The command no longer returns an error when source and destination names are the same.")]),
        Command::shard("expire", -3, |c, a| expire(c, a, ExpireIn::Seconds))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("generic", "1.0.0", "O(1)", "Set a key's time to live in seconds")
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
        Command::shard("pexpire", -3, |c, a| expire(c, a, ExpireIn::Millis))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("generic", "2.6.0", "O(1)", "Set a key's time to live in milliseconds")
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
        Command::shard("expireat", -3, |c, a| expire(c, a, ExpireIn::UnixSeconds))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("generic", "1.2.0", "O(1)", "Set the expiration for a key as a UNIX timestamp")
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
        Command::shard("pexpireat", -3, |c, a| expire(c, a, ExpireIn::UnixMillis))
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("generic", "2.6.0", "O(1)", "Set the expiration for a key as a UNIX timestamp specified in milliseconds")
            .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
        Command::shard("ttl", 2, |c, a| ttl(c, a, Ttl::Seconds))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("generic", "1.0.0", "O(1)", "Get the time to live for a key in seconds")
            .history(&[("2.8.0", "Added the -2 reply.")]),
        Command::shard("pttl", 2, |c, a| ttl(c, a, Ttl::Millis))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .tips(&["nondeterministic_output"])
            .docs("generic", "2.6.0", "O(1)", "Get the time to live for a key in milliseconds")
            .history(&[("2.8.0", "Added the -2 reply.")]),
        Command::shard("expiretime", 2, |c, a| ttl(c, a, Ttl::UnixSeconds))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("generic", "7.0.0", "O(1)", "Get the expiration Unix timestamp for a key"),
        Command::shard("pexpiretime", 2, |c, a| ttl(c, a, Ttl::UnixMillis))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("generic", "7.0.0", "O(1)", "Get the expiration Unix timestamp for a key in milliseconds"),
        Command::shard("persist", 2, persist)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::UPDATE))
            .docs("generic", "2.2.0", "O(1)", "Remove the expiration from a key"),
        Command::shard("move", 3, move_key)
            .flags(flag::WRITE | flag::FAST)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs("generic", "1.0.0", "O(1)", "Move a key to another database"),
        Command::across("copy", -3, copy, |tx, db, a| Box::pin(copy_across(tx, db, a)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::KEYSPACE)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .docs("generic", "6.2.0", "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.", "Copy a key"),
        Command::container("object", -2, vec![
            Command::shard("encoding", 3, |c, a| object(c, a, Object::Encoding))
                .flags(flag::READONLY)
                .acl(acl::KEYSPACE)
                .key(KeySpec::index(2).range(0, 1, 0).flags(key::RO))
                .tips(&["nondeterministic_output"])
                .docs("generic", "2.2.3", "O(1)", "Inspect the internal encoding of a Redis object"),
            Command::shard("refcount", 3, |c, a| object(c, a, Object::RefCount))
                .flags(flag::READONLY)
                .acl(acl::KEYSPACE)
                .key(KeySpec::index(2).range(0, 1, 0).flags(key::RO))
                .tips(&["nondeterministic_output"])
                .docs("generic", "2.2.3", "O(1)", "Get the number of references to the value of the key"),
            Command::shard("idletime", 3, |c, a| object(c, a, Object::IdleTime))
                .flags(flag::READONLY)
                .acl(acl::KEYSPACE)
                .key(KeySpec::index(2).range(0, 1, 0).flags(key::RO))
                .tips(&["nondeterministic_output"])
                .docs("generic", "2.2.3", "O(1)", "Get the time since a Redis object was last accessed"),
            Command::shard("freq", 3, |c, a| object(c, a, Object::Freq))
                .flags(flag::READONLY)
                .acl(acl::KEYSPACE)
                .key(KeySpec::index(2).range(0, 1, 0).flags(key::RO))
                .tips(&["nondeterministic_output"])
                .docs("generic", "4.0.0", "O(1)", "Get the logarithmic access frequency counter of a Redis object"),
            Command::inline("help", 2, |_, _| Ok(object_help()))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::KEYSPACE)
                .docs("generic", "6.2.0", "O(1)", "Show helpful text about the different subcommands"),
        ])
            .docs("generic", "2.2.3", "Depends on subcommand.", "A container for object introspection commands"),
    ]
}

/// DEL / UNLINK key [key ...]: how many of this shard's keys were removed.
fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    let mut removed = 0;
    for k in &args[1..] {
        if ctx.db.live(k, now) && ctx.db.remove(k).is_some() {
            ctx.notify(Class::GENERIC, "del", k);
            removed += 1;
        }
    }
    Ok(Reply::Int(removed))
}

/// EXISTS key [key ...]: how many of this shard's keys exist (repeats count again); their
/// access clocks stay as they were.
fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    Ok(Reply::Int(args[1..].iter().filter(|k| ctx.db.read_untouched(k, now).is_some()).count() as i64))
}

/// TOUCH key [key ...]: as EXISTS, but each key found counts as accessed.
fn touch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let now = ctx.now;
    Ok(Reply::Int(args[1..].iter().filter(|k| ctx.db.read(k, now).is_some()).count() as i64))
}

/// TYPE key (not an access).
fn type_of(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    Ok(Reply::status(ctx.db.read_untouched(&args[1], ctx.now).map_or("none", |e| e.value.type_name())))
}

/// RENAME's reply, or RENAMENX's (`nx`) when the rename happened (`done`).
fn renamed(nx: bool, done: bool) -> Reply {
    if nx {
        Reply::Int(i64::from(done))
    } else {
        Reply::Ok
    }
}

/// RENAME / RENAMENX key newkey (`nx`), when both keys live on this shard.
fn rename(ctx: &mut Ctx<'_>, args: &[Bytes], nx: bool) -> CmdResult {
    if !ctx.db.live(&args[1], ctx.now) {
        return Err(CmdError::NoSuchKey);
    }
    if args[1] == args[2] {
        return Ok(renamed(nx, false));
    }
    // A write's lookup: a destination whose time has come expires first.
    if ctx.db.live(&args[2], ctx.now) && nx {
        return Ok(renamed(nx, false));
    }
    if let Some(entry) = ctx.db.remove(&args[1]) {
        put(ctx.db, &args[2], entry);
        ctx.notify(Class::GENERIC, "rename_from", &args[1]);
        ctx.notify(Class::GENERIC, "rename_to", &args[2]);
    }
    Ok(renamed(nx, true))
}

/// RENAME / RENAMENX across shards: the entry (value and TTL) leaves one shard for the other.
async fn rename_across(tx: &Tx, db: usize, args: &[Bytes], nx: bool) -> CmdResult {
    let (src, dst) = (args[1].clone(), args[2].clone());
    let (from, to) = (tx.shard_of(&src), tx.shard_of(&dst));
    let probe = src.clone();
    if !tx.on(from, db, move |c| Ok(c.db.live(&probe, c.now))).await? {
        return Err(CmdError::NoSuchKey);
    }
    if nx {
        let probe = dst.clone();
        if tx.on(to, db, move |c| Ok(c.db.live(&probe, c.now))).await? {
            return Ok(renamed(nx, false));
        }
    }
    let taken = tx.on(from, db, move |c| {
        let entry = c.db.remove(&src);
        if entry.is_some() {
            c.notify(Class::GENERIC, "rename_from", &src);
        }
        Ok(entry)
    });
    if let Some(entry) = taken.await? {
        tx.on(to, db, move |c| {
            c.db.live(&dst, c.now);
            put(c.db, &dst, entry);
            c.notify(Class::GENERIC, "rename_to", &dst);
            Ok(())
        })
        .await?;
    }
    Ok(renamed(nx, true))
}

/// Stores a whole entry (value and TTL) under `key`: RENAME's and COPY's second half.
pub(crate) fn put(db: &mut Db, key: &[u8], entry: Entry) {
    let expires_at = entry.expires_at();
    // As Redis: what was there is deleted and the key added anew (a `new` key).
    db.remove(key);
    db.set(key, entry.value, expires_at);
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key time [NX | XX | GT | LT]
fn expire(ctx: &mut Ctx<'_>, args: &[Bytes], unit: ExpireIn) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        match () {
            () if is(opt, "nx") => nx = true,
            () if is(opt, "xx") => xx = true,
            () if is(opt, "gt") => gt = true,
            () if is(opt, "lt") => lt = true,
            () => {
                return Err(CmdError::text(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )))
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(CmdError::msg("ERR NX and XX, GT or LT options at the same time are not compatible"));
    }
    if gt && lt {
        return Err(CmdError::msg("ERR GT and LT options at the same time are not compatible"));
    }
    let at = expire_at(&args[2], unit, ctx.now, false, args)?;
    let Some(entry) = ctx.db.write(&args[1], ctx.now) else { return Ok(Reply::Int(0)) };
    let current = entry.expires_at();
    let allowed = match current {
        _ if nx => current.is_none(),
        None if xx || gt => false,
        // No TTL counts as an infinite one: LT always lowers it.
        None => true,
        Some(cur) => !((gt && at <= cur as i64) || (lt && at >= cur as i64)),
    };
    if !allowed {
        ctx.log_nothing();
        return Ok(Reply::Int(0));
    }
    if ctx.already_expired(at) {
        ctx.db.remove(&args[1]);
        ctx.log(&[b"DEL", &args[1]]);
        ctx.notify(Class::GENERIC, "del", &args[1]);
    } else {
        ctx.db.set_expiry(&args[1], Some(at as u64));
        log_pexpireat(ctx, &args[1], at, &args[3..]);
        ctx.notify(Class::GENERIC, "expire", &args[1]);
    }
    Ok(Reply::Int(1))
}

/// Logs an expiry as Redis propagates it: `PEXPIREAT key ms [options]`, an absolute time.
pub(crate) fn log_pexpireat(ctx: &mut Ctx<'_>, key: &[u8], at: i64, options: &[Bytes]) {
    if ctx.journaling() {
        let mut at_text = itoa::Buffer::new();
        let at = at_text.format(at);
        let mut logged: Vec<&[u8]> = vec![b"PEXPIREAT", key, at.as_bytes()];
        logged.extend(options.iter().map(|o| &o[..]));
        ctx.log(&logged);
    }
}

/// What TTL-like commands report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ttl {
    /// TTL: seconds left, rounded.
    Seconds,
    /// PTTL: milliseconds left.
    Millis,
    /// EXPIRETIME: the Unix time in seconds.
    UnixSeconds,
    /// PEXPIRETIME: the Unix time in milliseconds.
    UnixMillis,
}

/// TTL / PTTL / EXPIRETIME / PEXPIRETIME key
fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes], unit: Ttl) -> CmdResult {
    let now = ctx.now;
    let Some(entry) = ctx.db.read_untouched(&args[1], now) else { return Ok(Reply::Int(-2)) };
    let Some(at) = entry.expires_at() else { return Ok(Reply::Int(-1)) };
    let left = at.saturating_sub(now) as i64;
    Ok(Reply::Int(match unit {
        Ttl::Seconds => (left + 500) / 1000,
        Ttl::Millis => left,
        Ttl::UnixSeconds => at as i64 / 1000,
        Ttl::UnixMillis => at as i64,
    }))
}

/// PERSIST key
fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let has_ttl = ctx.db.write(&args[1], ctx.now).is_some_and(|e| e.expires_at().is_some());
    let persisted = has_ttl && ctx.db.set_expiry(&args[1], None);
    if persisted {
        ctx.notify(Class::GENERIC, "persist", &args[1]);
    }
    Ok(Reply::Int(i64::from(persisted)))
}

/// KEYS' part on one shard: live keys matching `pattern`.
fn keys_here(db: &Db, now: u64, pattern: &[u8]) -> Vec<Bytes> {
    let all = pattern == b"*";
    db.keys(now)
        .filter(|(k, _)| all || glob::matches(pattern, k, false))
        .map(|(k, _)| Bytes::copy_from_slice(k))
        .collect()
}

/// SCAN options after the cursor.
#[derive(Debug, Clone, Default)]
pub(crate) struct ScanOpts {
    /// MATCH pattern.
    pub(crate) pattern: Option<Bytes>,
    /// COUNT hint.
    pub(crate) count: usize,
    /// TYPE filter.
    pub(crate) type_name: Option<String>,
}

impl ScanOpts {
    /// Parses `[MATCH p] [COUNT n] [TYPE t]`.
    pub(crate) fn parse(args: &[Bytes]) -> Result<ScanOpts, CmdError> {
        let mut opts = ScanOpts { count: 10, ..ScanOpts::default() };
        let mut it = args.iter();
        while let Some(opt) = it.next() {
            let value = it.next().ok_or(CmdError::Syntax)?;
            match () {
                () if is(opt, "match") => opts.pattern = Some(value.clone()),
                () if is(opt, "count") => {
                    opts.count = match args::int(value)? {
                        n if n < 1 => return Err(CmdError::Syntax),
                        n => n as usize,
                    }
                }
                () if is(opt, "type") => {
                    opts.type_name = Some(String::from_utf8_lossy(value).to_lowercase());
                }
                () => return Err(CmdError::Syntax),
            }
        }
        Ok(opts)
    }

    /// The cursor and options of HSCAN, SSCAN and ZSCAN: `key cursor [MATCH p] [COUNT n]`.
    pub(crate) fn parse_keyed(args: &[Bytes]) -> Result<(u64, ScanOpts), CmdError> {
        Ok((args::cursor(&args[2])?, ScanOpts::parse(&args[3..])?))
    }

    /// Whether `key` passes MATCH (everything does without one).
    #[must_use]
    pub(crate) fn matches(&self, key: &[u8]) -> bool {
        self.pattern.as_ref().is_none_or(|p| glob::matches(p, key, false))
    }

    /// A container scan's reply: the next cursor and what this step found.
    #[must_use]
    pub(crate) fn reply(next: u64, items: Vec<Reply>) -> Reply {
        Reply::Array(vec![Reply::bulk(next.to_string()), Reply::Array(items)])
    }
}

/// SCAN's part on one shard, as Redis's `scanGenericCommand`: walks buckets from `cursor` until
/// `count` keys are gathered (or ten times as many buckets were seen), then filters.
fn scan_here(db: &Db, now: u64, mut cursor: u64, opts: &ScanOpts) -> (u64, Vec<Bytes>) {
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
        .filter(|(k, t)| opts.matches(k) && opts.type_name.as_ref().is_none_or(|want| want == t))
        .map(|(k, _)| k)
        .collect();
    (cursor, keys)
}

/// COPY's parsed arguments.
struct CopyArgs {
    /// The source key.
    src: Bytes,
    /// The destination key.
    dst: Bytes,
    /// The destination database, when DB is given.
    db: Option<usize>,
    /// Whether REPLACE was given.
    replace: bool,
}

impl CopyArgs {
    /// Parses `COPY source destination [DB destination-db] [REPLACE]`; `databases` bounds DB.
    fn parse(args: &[Bytes], databases: usize) -> Result<CopyArgs, CmdError> {
        let mut c = CopyArgs { src: args[1].clone(), dst: args[2].clone(), db: None, replace: false };
        let mut i = 3;
        while i < args.len() {
            if is(&args[i], "replace") {
                c.replace = true;
                i += 1;
            } else if is(&args[i], "db") && i + 1 < args.len() {
                match args::int(&args[i + 1])? {
                    n if n >= 0 && (n as usize) < databases => c.db = Some(n as usize),
                    _ => return Err(CmdError::msg("ERR DB index is out of range")),
                }
                i += 2;
            } else {
                return Err(CmdError::Syntax);
            }
        }
        Ok(c)
    }
}

/// COPY when both keys live on this shard.
fn copy(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let c = CopyArgs::parse(args, ctx.databases())?;
    let target = c.db.unwrap_or(ctx.index());
    if crate::engine::cluster::enabled() && (target != 0 || ctx.index() != 0) {
        return Err(CmdError::msg("ERR Copying to another database is not allowed in cluster mode"));
    }
    if target == ctx.index() && c.src == c.dst {
        return Err(CmdError::msg("ERR source and destination objects are the same"));
    }
    let now = ctx.now;
    let Some(entry) = ctx.db.read(&c.src, now).cloned() else { return Ok(Reply::Int(0)) };
    let Some(dest) = ctx.db_at(target) else { return Err(CmdError::msg("ERR DB index is out of range")) };
    if dest.live(&c.dst, now) && !c.replace {
        return Ok(Reply::Int(0));
    }
    put(dest, &c.dst, entry);
    ctx.notify_in(target, Class::GENERIC, "copy_to", &c.dst);
    // Logged by itself: with DB it changes another database than its own.
    if ctx.journaling() {
        ctx.log(&args.iter().map(|a| &a[..]).collect::<Vec<_>>());
    }
    Ok(Reply::Int(1))
}

/// MOVE key db: the entry (value and TTL) leaves this database for `db`, on the same shard
/// (a key's shard does not depend on its database).
fn move_key(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    if crate::engine::cluster::enabled() {
        return Err(CmdError::msg("ERR MOVE is not allowed in cluster mode"));
    }
    let target = args::int32(&args[2])?;
    let target = usize::try_from(target)
        .ok()
        .filter(|&t| t < ctx.databases())
        .ok_or(CmdError::msg("ERR DB index is out of range"))?;
    if target == ctx.index() {
        return Err(CmdError::msg("ERR source and destination objects are the same"));
    }
    let now = ctx.now;
    if !ctx.db.live(&args[1], now) {
        return Ok(Reply::Int(0));
    }
    if ctx.db_at(target).is_some_and(|t| t.live(&args[1], now)) {
        return Ok(Reply::Int(0));
    }
    let Some(entry) = ctx.db.remove(&args[1]) else { return Ok(Reply::Int(0)) };
    if let Some(t) = ctx.db_at(target) {
        put(t, &args[1], entry);
    }
    ctx.notify(Class::GENERIC, "move_from", &args[1]);
    ctx.notify_in(target, Class::GENERIC, "move_to", &args[1]);
    // Logged by itself, as COPY ... DB: it changes another database than its own.
    if ctx.journaling() {
        ctx.log(&args.iter().map(|a| &a[..]).collect::<Vec<_>>());
    }
    Ok(Reply::Int(1))
}

/// COPY with source and destination on different shards: the entry (value and TTL) is cloned
/// on the source's shard and stored on the destination's.
async fn copy_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let databases = tx.on(tx.shard_of(&args[1]), db, |c| Ok(c.databases())).await?;
    let c = CopyArgs::parse(args, databases)?;
    let target = c.db.unwrap_or(db);
    let src = c.src.clone();
    let Some(entry) =
        tx.on(tx.shard_of(&src), db, move |ctx| Ok(ctx.db.read(&src, ctx.now).cloned())).await?
    else {
        return Ok(Reply::Int(0));
    };
    let (dst, replace) = (c.dst.clone(), c.replace);
    let copied = tx
        .on(tx.shard_of(&dst), target, move |ctx| {
            if ctx.db.live(&dst, ctx.now) && !replace {
                return Ok(false);
            }
            put(ctx.db, &dst, entry);
            ctx.notify(Class::GENERIC, "copy_to", &dst);
            Ok(true)
        })
        .await?;
    Ok(Reply::Int(i64::from(copied)))
}

/// What OBJECT reports of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    Encoding,
    RefCount,
    IdleTime,
    Freq,
}

/// OBJECT ENCODING | REFCOUNT | IDLETIME | FREQ key
fn object(ctx: &mut Ctx<'_>, args: &[Bytes], what: Object) -> CmdResult {
    // Introspection is not an access (Redis's LOOKUP_NOTOUCH).
    let now = ctx.now;
    let Some(entry) = ctx.db.read_unnoticed(&args[2], now) else { return Ok(Reply::Nil) };
    let mode = clock::core_mode();
    let lfu = matches!(mode, clock::Mode::Lfu { .. });
    match what {
        Object::Encoding => Ok(Reply::bulk(encoding(&entry.value))),
        Object::RefCount => Ok(Reply::Int(refcount(&entry.value))),
        Object::IdleTime if lfu => Err(CmdError::msg(
            "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when switching \
             between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
        Object::IdleTime => Ok(Reply::Int((clock::idle_ms(entry.access(), now) / 1000) as i64)),
        Object::Freq if lfu => Ok(Reply::Int(i64::from(clock::frequency(entry.access(), mode, now)))),
        Object::Freq => Err(CmdError::msg(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when \
             switching between policies at runtime LRU and LFU data will take some time to adjust.",
        )),
    }
}

/// OBJECT HELP
fn object_help() -> Reply {
    args::help(
        "OBJECT",
        &[
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
        ],
    )
}

/// The encoding Redis 7.0 would report for this value, which the writes that made it decided
/// as they would have in Redis (lists are always quicklists in 7.0).
pub(crate) fn encoding(value: &Value) -> &'static str {
    match value {
        Value::Str(s, _, form) => crate::storage::encoding::string_name(s.as_slice(), *form),
        Value::List(..) => "quicklist",
        Value::Hash(h, ..) if h.is_table() => "hashtable",
        Value::Hash(..) => "listpack",
        Value::Set(s, ..) if s.is_table() => "hashtable",
        Value::Set(..) => "intset",
        Value::ZSet(z, ..) if z.is_small() => "listpack",
        Value::ZSet(..) => "skiplist",
        Value::Stream(..) => "stream",
    }
}

/// OBJECT REFCOUNT: Redis shares the integers 0..9999 (`OBJ_SHARED_INTEGERS`) as string values,
/// with the refcount `INT_MAX`, unless `maxmemory` is set with an LRU or LFU policy; every other
/// value has its own (1).
pub(crate) fn refcount(value: &Value) -> i64 {
    let shared = crate::storage::encoding::get().shared_integers
        && matches!(value, Value::Str(s, ..) if s.len() <= 4 && parse_i64(s.as_slice()).is_some_and(|n| (0..10_000).contains(&n)));
    if shared {
        i64::from(i32::MAX)
    } else {
        1
    }
}

/// KEYS pattern, gathered from every shard.
async fn keys(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let (db, pattern) = (s.db, args[1].clone());
    let found =
        s.each_shard(move |shard| shard.with_db(db, |ctx| keys_here(ctx.db, ctx.now, &pattern))).await?;
    Ok(Reply::Array(found.into_iter().flatten().map(Reply::Bulk).collect()))
}

/// Bits of a SCAN cursor that hold the shard-local cursor; the shard index sits above them.
const SHARD_SHIFT: u32 = 48;

/// SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]: one cursor over every shard.
///
/// The cursor is `shard << 48 | local cursor`; each call walks one shard, and moving to the
/// next shard starts its walk at 0, so Redis's guarantee holds shard by shard.
async fn scan(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let cursor = args::cursor(&args[1])?;
    let opts = ScanOpts::parse(&args[2..])?;
    let shards = s.core.router.shards();
    let shard = (cursor >> SHARD_SHIFT) as usize;
    if shard >= shards {
        return Ok(ScanOpts::reply(0, vec![]));
    }
    let local = cursor & ((1 << SHARD_SHIFT) - 1);
    let (next, keys) =
        s.on_db(ShardId(shard), move |ctx| Ok(scan_here(ctx.db, ctx.now, local, &opts))).await?;
    let next = match next {
        0 if shard + 1 < shards => ((shard + 1) as u64) << SHARD_SHIFT,
        0 => 0,
        n => (shard as u64) << SHARD_SHIFT | n,
    };
    Ok(ScanOpts::reply(next, keys.into_iter().map(Reply::Bulk).collect()))
}

/// RANDOMKEY: a random key of a random shard that has any.
async fn randomkey(s: &mut Session) -> CmdResult {
    let n = s.core.router.shards();
    let first = splitmix(now_ms() ^ s.client.id.rotate_left(32)) as usize;
    for i in 0..n {
        let shard = ShardId((first + i) % n);
        if let Some(k) = s.on_db(shard, |ctx| Ok(ctx.db.random_key(ctx.rng, ctx.now))).await? {
            return Ok(Reply::Bulk(k));
        }
    }
    Ok(Reply::Nil)
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
                Value::string(crate::storage::dict::Key::copy_from_slice(b"v")),
                None,
            );
        }
        let opts = ScanOpts { count: 7, pattern: Some(Bytes::from_static(b"key:1*")), ..ScanOpts::default() };
        let (mut cursor, mut seen) = (0, Vec::new());
        loop {
            let (next, keys) = scan_here(&db, 0, cursor, &opts);
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
