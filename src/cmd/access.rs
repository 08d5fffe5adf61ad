//! Typed access to a key's value for the container families: missing, the right type, or
//! WRONGTYPE, with Redis's rule that an emptied container is deleted.

use bytes::Bytes;

use crate::cmd::args::WRONGTYPE;
use crate::engine::shard::Ctx;
use crate::facade::Reply;
use crate::storage::db::{Entry, Value};
use crate::storage::dict::Dict;

/// Picks one variant out of a value, by reference.
pub type Pick<T> = fn(&Value) -> Option<&T>;
/// Picks one variant out of a value, mutably.
pub type PickMut<T> = fn(&mut Value) -> Option<&mut T>;

/// The value under `key` as `T`: `Ok(None)` when missing, `Err(WRONGTYPE)` for another type.
pub fn read<'a, T>(ctx: &'a mut Ctx<'_>, key: &[u8], pick: Pick<T>) -> Result<Option<&'a T>, Reply> {
    match ctx.db.read(key, ctx.now) {
        None => Ok(None),
        Some(Entry { value, .. }) => pick(value).map(Some).ok_or(WRONGTYPE),
    }
}

/// Whether `key` holds a `T` (`Ok(false)` when missing), or WRONGTYPE.
pub fn exists<T>(ctx: &mut Ctx<'_>, key: &[u8], pick: Pick<T>) -> Result<bool, Reply> {
    read(ctx, key, pick).map(|v| v.is_some())
}

/// The value under `key` as `T`, for writing: `Ok(None)` when missing.
pub fn write<'a, T>(ctx: &'a mut Ctx<'_>, key: &[u8], pick: PickMut<T>) -> Result<Option<&'a mut T>, Reply> {
    typed(ctx.db.write(key, ctx.now), pick)
}

/// Like [`write`], but the caller signals the modification (`Db::signal`) only if it made one.
pub fn write_quiet<'a, T>(
    ctx: &'a mut Ctx<'_>,
    key: &[u8],
    pick: PickMut<T>,
) -> Result<Option<&'a mut T>, Reply> {
    typed(ctx.db.write_quiet(key, ctx.now), pick)
}

/// The value under `key` as `T`, created empty with `make` when missing.
pub fn create<'a, T>(
    ctx: &'a mut Ctx<'_>,
    key: &[u8],
    pick: PickMut<T>,
    make: fn() -> Value,
) -> Result<&'a mut T, Reply> {
    create_then(ctx, key, pick, make, write)
}

/// Like [`create`], but an existing key counts as modified only when the caller signals it
/// (creating one always does).
pub fn create_quiet<'a, T>(
    ctx: &'a mut Ctx<'_>,
    key: &[u8],
    pick: PickMut<T>,
    make: fn() -> Value,
) -> Result<&'a mut T, Reply> {
    create_then(ctx, key, pick, make, write_quiet)
}

type Access<'a, 'c, T> = fn(&'a mut Ctx<'c>, &[u8], PickMut<T>) -> Result<Option<&'a mut T>, Reply>;

fn create_then<'a, 'c, T>(
    ctx: &'a mut Ctx<'c>,
    key: &[u8],
    pick: PickMut<T>,
    make: fn() -> Value,
    access: Access<'a, 'c, T>,
) -> Result<&'a mut T, Reply> {
    if !ctx.db.live(key, ctx.now) {
        ctx.db.set(key, make(), None);
    }
    access(ctx, key, pick)?.ok_or(WRONGTYPE)
}

fn typed<T>(entry: Option<&mut Entry>, pick: PickMut<T>) -> Result<Option<&mut T>, Reply> {
    match entry {
        None => Ok(None),
        Some(Entry { value, .. }) => pick(value).map(Some).ok_or(WRONGTYPE),
    }
}

/// Runs `f` on the value under `key` (if it is a `T`), then deletes the key if `f` emptied it.
/// An existing key counts as modified.
pub fn update<T, R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    pick: PickMut<T>,
    f: impl FnOnce(Option<&mut T>) -> R,
) -> Result<R, Reply> {
    update_quiet(ctx, key, pick, |v| {
        let existed = v.is_some();
        (f(v), existed)
    })
}

/// Like [`update`], but `f` says whether it changed anything, and only then is the key
/// signalled as modified (WATCH, blocked clients), as Redis does.
pub fn update_quiet<T, R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    pick: PickMut<T>,
    f: impl FnOnce(Option<&mut T>) -> (R, bool),
) -> Result<R, Reply> {
    let (r, changed) = f(write_quiet(ctx, key, pick)?);
    if changed {
        ctx.db.signal(key);
    }
    ctx.db.drop_if_empty(key);
    Ok(r)
}

/// HDEL / SREM: removes `members` from the dict container at `key` (deleting it if emptied);
/// replies how many were there. The key counts as modified only if one was.
pub fn remove_members<V>(ctx: &mut Ctx<'_>, key: &[u8], pick: PickMut<Dict<V>>, members: &[Bytes]) -> Reply {
    let n = update_quiet(ctx, key, pick, |d| {
        let n = d.map_or(0, |d| members.iter().filter(|m| d.remove(m).is_some()).count());
        (n, n > 0)
    });
    n.map_or_else(|e| e, |n| Reply::Int(n as i64))
}

/// HLEN / SCARD: how many entries the dict container at `key` holds (0 when missing).
pub fn dict_len<V>(ctx: &mut Ctx<'_>, key: &[u8], pick: Pick<Dict<V>>) -> Reply {
    match read(ctx, key, pick) {
        Ok(d) => Reply::Int(d.map_or(0, |d| d.len() as i64)),
        Err(e) => e,
    }
}

macro_rules! pickers {
    ($($read:ident, $write:ident, $variant:ident, $ty:ty;)*) => {$(
        /// Picks this variant by reference.
        #[must_use]
        pub fn $read(v: &Value) -> Option<&$ty> {
            match v { Value::$variant(x) => Some(&**x), _ => None }
        }
        /// Picks this variant mutably.
        pub fn $write(v: &mut Value) -> Option<&mut $ty> {
            match v { Value::$variant(x) => Some(&mut **x), _ => None }
        }
    )*};
}

pickers! {
    list, list_mut, List, crate::storage::list::List;
    hash, hash_mut, Hash, crate::storage::dict::Dict<crate::storage::dict::Key>;
    set, set_mut, Set, crate::storage::dict::Dict<()>;
}

/// Picks a sorted set by reference (not boxed: it is a small vector or a box of its own).
#[must_use]
pub fn zset(v: &Value) -> Option<&crate::storage::zset::ZSet> {
    match v {
        Value::ZSet(z) => Some(z),
        _ => None,
    }
}

/// Picks a sorted set mutably.
pub fn zset_mut(v: &mut Value) -> Option<&mut crate::storage::zset::ZSet> {
    match v {
        Value::ZSet(z) => Some(z),
        _ => None,
    }
}
