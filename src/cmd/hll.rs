//! HyperLogLog: PFADD, PFCOUNT (one key, its cache kept in the value as Redis keeps it, or
//! several merged, on any shards) and PFMERGE (atomic across shards). The representation is
//! Redis's, in a string value (`storage::hll`).

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::string::read_str;
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::shard::Ctx;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::facade::Reply;
use crate::storage::db::{Entry, Value};
use crate::storage::dict::Key;
use crate::storage::encoding::StrForm;
use crate::storage::hll::{self, Corrupt};

const NOT_HLL: CmdError = CmdError::msg("WRONGTYPE Key is not a valid HyperLogLog string value.");
const CORRUPT: CmdError = CmdError::msg("INVALIDOBJ Corrupted HLL object detected");

impl From<Corrupt> for CmdError {
    fn from(_: Corrupt) -> CmdError {
        CORRUPT
    }
}

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("pfadd", -2, pfadd)
            .flags(flag::WRITE | flag::DENYOOM | flag::FAST)
            .acl(acl::HYPERLOGLOG)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::INSERT))
            .docs("hyperloglog", "2.8.9", "O(1) to add every element.", "Adds the specified elements to the specified HyperLogLog."),
        Command::across("pfcount", -2, pfcount, |tx, db, a| Box::pin(pfcount_across(tx, db, a)))
            .flags(flag::READONLY)
            .may_replicate()
            .acl(acl::HYPERLOGLOG)
            .key(
                KeySpec::index(1)
                    .range(-1, 1, 0)
                    .flags(key::RW | key::ACCESS)
                    .notes("RW because it may change the internal representation of the key, and propagate to replicas"),
            )
            .docs("hyperloglog", "2.8.9", "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys.", "Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s)."),
        Command::across("pfmerge", -2, pfmerge, |tx, db, a| Box::pin(pfmerge_across(tx, db, a)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::HYPERLOGLOG)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::INSERT))
            .key(KeySpec::index(2).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .docs("hyperloglog", "2.8.9", "O(N) to merge N HyperLogLogs, but with high constant times.", "Merge N different HyperLogLogs into a single one."),
    ]
}

/// The HyperLogLog under `key`, checked; `None` when missing.
fn read<'a>(ctx: &'a mut Ctx<'_>, key: &[u8]) -> Result<Option<&'a [u8]>, CmdError> {
    match read_str(ctx, key)? {
        None => Ok(None),
        Some(s) => {
            hll::check(s.as_slice()).map_err(|_| NOT_HLL)?;
            Ok(Some(s.as_slice()))
        }
    }
}

/// A HyperLogLog's bytes as kept: in an allocation of exactly their length. A sparse one grows
/// a few bytes at a time; the spare capacity that leaves, and the header `Bytes` allocates to
/// remember it, cost a 46-byte HyperLogLog ~50 bytes more (a dense one has none to shed).
fn stored(mut v: Vec<u8>) -> Bytes {
    v.shrink_to_fit();
    Bytes::from(v)
}

/// Changes the HyperLogLog under `key` through `f` (dense values in place; sparse ones, at
/// most `hll-sparse-max-bytes`, through a copy); `None` when missing. With `unshare` (PFADD,
/// PFMERGE), the value is `raw` from then on, as Redis's `dbUnshareStringValue` leaves it;
/// PFCOUNT's cache update changes Redis's value in place, whatever its encoding.
fn edit<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    unshare: bool,
    f: impl FnOnce(&mut Vec<u8>) -> Result<R, Corrupt>,
) -> Result<Option<R>, CmdError> {
    match ctx.db.write_quiet(key, ctx.now) {
        None => Ok(None),
        Some(Entry { value: Value::Str(s, _, form), .. }) => {
            hll::check(s.as_slice()).map_err(|_| NOT_HLL)?;
            if unshare {
                *form = StrForm::Raw;
            }
            let r = s.edit(|buf| {
                // Both conversions keep the buffer (no copy of a dense value's 12 KiB).
                let mut v: Vec<u8> = std::mem::take(buf).into();
                let r = f(&mut v);
                *buf = stored(v).try_into_mut().unwrap_or_else(|b| bytes::BytesMut::from(&b[..]));
                r
            });
            Ok(Some(r?))
        }
        Some(_) => Err(CmdError::WrongType),
    }
}

/// PFADD key [element ...]
fn pfadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let key = &a[1];
    let max = crate::storage::encoding::get().hll_sparse_max;
    let add_all = |v: &mut Vec<u8>| -> Result<bool, Corrupt> {
        let mut updated = false;
        for e in &a[2..] {
            updated |= hll::add(v, e, max)?;
        }
        if updated {
            hll::invalidate(v);
        }
        Ok(updated)
    };
    match edit(ctx, key, true, add_all)? {
        Some(updated) => {
            if updated {
                ctx.db.signal(key);
                ctx.notify(Class::STRING, "pfadd", key);
            }
            Ok(Reply::Int(i64::from(updated)))
        }
        None => {
            let mut v = hll::new();
            add_all(&mut v)?;
            hll::invalidate(&mut v);
            ctx.db.set(key, Value::string_as(Key::new(stored(v)), StrForm::Raw), None);
            ctx.notify(Class::STRING, "pfadd", key);
            Ok(Reply::Int(1))
        }
    }
}

/// PFCOUNT key [key ...] with every key on this shard.
fn pfcount(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    if a.len() > 2 {
        let mut max = vec![0u8; hll::REGISTERS];
        for key in &a[1..] {
            if let Some(b) = read(ctx, key)? {
                hll::merge_into(&mut max, b)?;
            }
        }
        return Ok(Reply::Int(hll::count_max(&max) as i64));
    }
    let key = &a[1];
    let Some(b) = read(ctx, key)? else { return Ok(Reply::Int(0)) };
    if let Some(card) = hll::cached(b) {
        return Ok(Reply::Int(card as i64));
    }
    // The count goes into the value's cache: a change, propagated as Redis propagates it.
    let card = edit(ctx, key, false, |v| {
        let card = hll::count(v)?;
        hll::set_cache(v, card);
        Ok(card)
    })?
    .unwrap_or(0);
    ctx.db.signal(key);
    ctx.log(&[b"PFCOUNT", key]);
    Ok(Reply::Int(card as i64))
}

/// A key's HyperLogLog bytes, checked, copied for another shard.
fn copy_of(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<Option<Bytes>, CmdError> {
    Ok(read(ctx, key)?.map(Bytes::copy_from_slice))
}

/// Reads every key of `keys` from its shard in order: their registers, merged, and whether one
/// was dense.
async fn merged(tx: &Tx, db: usize, keys: &[Bytes]) -> Result<(Vec<u8>, bool), CmdError> {
    let mut max = vec![0u8; hll::REGISTERS];
    let mut dense = false;
    for key in keys {
        let k = key.clone();
        if let Some(b) = tx.on(tx.shard_of(key), db, move |c| copy_of(c, &k)).await? {
            dense |= hll::is_dense(&b);
            hll::merge_into(&mut max, &b)?;
        }
    }
    Ok((max, dense))
}

/// PFCOUNT over keys on several shards.
async fn pfcount_across(tx: &Tx, db: usize, a: &[Bytes]) -> CmdResult {
    let (max, _) = merged(tx, db, &a[1..]).await?;
    Ok(Reply::Int(hll::count_max(&max) as i64))
}

/// Stores `max` into `dest` (created if missing), dense first when a source was.
fn store(ctx: &mut Ctx<'_>, dest: &[u8], max: &[u8], dense: bool) -> CmdResult {
    let sparse_max = crate::storage::encoding::get().hll_sparse_max;
    if edit(ctx, dest, true, |v| hll::store_max(v, max, dense, sparse_max))?.is_none() {
        let mut v = hll::new();
        hll::store_max(&mut v, max, dense, sparse_max)?;
        ctx.db.set(dest, Value::string_as(Key::new(stored(v)), StrForm::Raw), None);
    } else {
        ctx.db.signal(dest);
    }
    // As Redis: a merge is reported as a mass PFADD.
    ctx.notify(Class::STRING, "pfadd", dest);
    Ok(Reply::Ok)
}

/// PFMERGE destkey [sourcekey ...] with every key on this shard.
fn pfmerge(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut max = vec![0u8; hll::REGISTERS];
    let mut dense = false;
    for key in &a[1..] {
        if let Some(b) = read(ctx, key)? {
            dense |= hll::is_dense(b);
            hll::merge_into(&mut max, b)?;
        }
    }
    store(ctx, &a[1], &max, dense)
}

/// PFMERGE over keys on several shards, atomically.
async fn pfmerge_across(tx: &Tx, db: usize, a: &[Bytes]) -> CmdResult {
    let (max, dense) = merged(tx, db, &a[1..]).await?;
    let dest = a[1].clone();
    tx.on(tx.shard_of(&dest), db, move |c| store(c, &dest, &max, dense)).await
}
