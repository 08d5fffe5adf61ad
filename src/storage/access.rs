//! Typed access to a key's value: missing, the right type, or [`WrongType`], with Redis's rule
//! that an emptied container is deleted; and the pops and pushes that blocked clients are
//! served with as well as the commands.

use bytes::Bytes;

use crate::storage::db::{Db, Entry, Value};
use crate::storage::dict_value::{DictValue, Hash, Set};
use crate::storage::list::{End, List};
use crate::storage::zset::ZSet;

/// The key holds a value of another type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the key holds another type")]
pub(crate) struct WrongType;

/// Picks one variant out of a value, by reference.
pub(crate) type Pick<T> = fn(&Value) -> Option<&T>;
/// Picks one variant out of a value, mutably.
pub(crate) type PickMut<T> = fn(&mut Value) -> Option<&mut T>;

/// The value under `key` as `T`: `Ok(None)` when missing, `Err(WRONGTYPE)` for another type.
pub(crate) fn read<'a, T>(
    db: &'a mut Db,
    now: u64,
    key: &[u8],
    pick: Pick<T>,
) -> Result<Option<&'a T>, WrongType> {
    picked(db.read(key, now), pick)
}

/// An entry looked up, as `T` (`Ok(None)` when missing), or WRONGTYPE.
fn picked<T>(entry: Option<&Entry>, pick: Pick<T>) -> Result<Option<&T>, WrongType> {
    entry.map(|Entry { value, .. }| pick(value).ok_or(WrongType)).transpose()
}

/// The value under `key` as `T`, looked up as a write looks (Redis's `lookupKeyWrite`: no hit
/// or miss counted, no `keymiss`) though only read: SPOP's and ZPOPMIN's look before they pop.
pub(crate) fn write_view<'a, T>(
    db: &'a mut Db,
    now: u64,
    key: &[u8],
    pick: Pick<T>,
) -> Result<Option<&'a T>, WrongType> {
    picked(db.write_quiet(key, now).map(|e| &*e), pick)
}

/// Whether `key` holds a `T` (`Ok(false)` when missing), or WRONGTYPE; looked up as a write
/// looks (Redis's `lookupKeyWrite`, which the commands asking this use): no hit or miss counted.
pub(crate) fn exists<T>(db: &mut Db, now: u64, key: &[u8], pick: Pick<T>) -> Result<bool, WrongType> {
    write_view(db, now, key, pick).map(|v| v.is_some())
}

/// The value under `key` as `T`, for writing: `Ok(None)` when missing.
pub(crate) fn write<'a, T>(
    db: &'a mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<T>,
) -> Result<Option<&'a mut T>, WrongType> {
    typed(db.write(key, now), pick)
}

/// Like [`write`], but the caller signals the modification (`Db::signal`) only if it made one.
pub(crate) fn write_quiet<'a, T>(
    db: &'a mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<T>,
) -> Result<Option<&'a mut T>, WrongType> {
    typed(db.write_quiet(key, now), pick)
}

/// The value under `key` as `T`, created empty with `make` when missing.
pub(crate) fn create<'a, T>(
    db: &'a mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<T>,
    make: fn() -> Value,
) -> Result<&'a mut T, WrongType> {
    create_then(db, now, key, pick, make, write)
}

/// Like [`create`], but an existing key counts as modified only when the caller signals it
/// (creating one always does).
pub(crate) fn create_quiet<'a, T>(
    db: &'a mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<T>,
    make: fn() -> Value,
) -> Result<&'a mut T, WrongType> {
    create_then(db, now, key, pick, make, write_quiet)
}

type Access<'a, T> = fn(&'a mut Db, u64, &[u8], PickMut<T>) -> Result<Option<&'a mut T>, WrongType>;

fn create_then<'a, T>(
    db: &'a mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<T>,
    make: fn() -> Value,
    access: Access<'a, T>,
) -> Result<&'a mut T, WrongType> {
    if !db.live(key, now) {
        db.set(key, make(), None);
    }
    access(db, now, key, pick)?.ok_or(WrongType)
}

fn typed<T>(entry: Option<&mut Entry>, pick: PickMut<T>) -> Result<Option<&mut T>, WrongType> {
    match entry {
        None => Ok(None),
        Some(Entry { value, .. }) => pick(value).map(Some).ok_or(WrongType),
    }
}

/// Runs `f` on the value under `key` (if it is a `T`), then deletes the key if `f` emptied it.
/// An existing key counts as modified.
pub(crate) fn update<T, R>(
    db: &mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<T>,
    f: impl FnOnce(Option<&mut T>) -> R,
) -> Result<R, WrongType> {
    update_quiet(db, now, key, pick, |v| {
        let existed = v.is_some();
        (f(v), existed)
    })
}

/// Like [`update`], but `f` says whether it changed anything, and only then is the key
/// signalled as modified (WATCH, blocked clients), as Redis does.
pub(crate) fn update_quiet<T, R>(
    db: &mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<T>,
    f: impl FnOnce(Option<&mut T>) -> (R, bool),
) -> Result<R, WrongType> {
    let (r, changed) = f(write_quiet(db, now, key, pick)?);
    if changed {
        db.signal(key);
    }
    db.drop_if_empty(key);
    Ok(r)
}

/// HDEL / SREM: removes `members` from the dict container at `key` (deleting it if emptied);
/// returns how many were there. The key counts as modified only if one was.
pub(crate) fn remove_members<V>(
    db: &mut Db,
    now: u64,
    key: &[u8],
    pick: PickMut<DictValue<V>>,
    members: &[Bytes],
) -> Result<usize, WrongType> {
    update_quiet(db, now, key, pick, |d| {
        let n = d.map_or(0, |d| members.iter().filter(|m| d.remove(m).is_some()).count());
        (n, n > 0)
    })
}

/// HLEN / SCARD: how many entries the dict container at `key` holds (0 when missing).
pub(crate) fn dict_len<V>(
    db: &mut Db,
    now: u64,
    key: &[u8],
    pick: Pick<DictValue<V>>,
) -> Result<usize, WrongType> {
    read(db, now, key, pick).map(|d| d.map_or(0, |d| d.len()))
}

/// Pops up to `count` elements from `end` of the list at `key` (deleting it if emptied);
/// `None` when there is no list.
pub(crate) fn list_pop(
    db: &mut Db,
    now: u64,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Vec<Bytes>>, WrongType> {
    update(db, now, key, list_mut, |l| {
        let l = l?;
        let n = count.min(l.len());
        Some((0..n).filter_map(|_| if end == End::Left { l.pop_front() } else { l.pop_back() }).collect())
    })
}

/// Pushes `e` at `end` of the list at `key`, creating it.
pub(crate) fn list_push(db: &mut Db, now: u64, key: &[u8], end: End, e: &[u8]) -> Result<(), WrongType> {
    let l = create(db, now, key, list_mut, || Value::list(Box::default()))?;
    if end == End::Left {
        l.push_front(e);
    } else {
        l.push_back(e);
    }
    Ok(())
}

/// Whether `key` may take a pushed element: missing, or a list. Counts as a write.
pub(crate) fn list_pushable(db: &mut Db, now: u64, key: &[u8]) -> Result<(), WrongType> {
    write(db, now, key, list_mut).map(drop)
}

/// Pops up to `count` members from the low end (the high one with `max`) of the sorted set at
/// `key` (deleting it if emptied); `None` when there is no sorted set.
pub(crate) fn zset_pop(
    db: &mut Db,
    now: u64,
    key: &[u8],
    max: bool,
    count: usize,
) -> Result<Option<Vec<(Bytes, f64)>>, WrongType> {
    update(db, now, key, zset_mut, |z| {
        let z = z?;
        let taken: Vec<(Bytes, f64)> = z.iter_from(0, max).take(count).collect();
        for (m, _) in &taken {
            z.remove(m);
        }
        Some(taken)
    })
}

macro_rules! pickers {
    ($($read:ident, $write:ident, $variant:ident, $ty:ty;)*) => {$(
        /// Picks this variant by reference.
        #[must_use]
        pub(crate) fn $read(v: &Value) -> Option<&$ty> {
            match v { Value::$variant(x, ..) => Some(&**x), _ => None }
        }
        /// Picks this variant mutably.
        pub(crate) fn $write(v: &mut Value) -> Option<&mut $ty> {
            match v { Value::$variant(x, ..) => Some(&mut **x), _ => None }
        }
    )*};
}

pickers! {
    list, list_mut, List, List;
    stream, stream_mut, Stream, crate::storage::stream::Stream;
}

/// Picks a hash by reference (its dict boxed inside, beside its encoding).
#[must_use]
pub(crate) fn hash(v: &Value) -> Option<&Hash> {
    match v {
        Value::Hash(h, ..) => Some(h),
        _ => None,
    }
}

/// Picks a hash mutably.
pub(crate) fn hash_mut(v: &mut Value) -> Option<&mut Hash> {
    match v {
        Value::Hash(h, ..) => Some(h),
        _ => None,
    }
}

/// Picks a set by reference (its dict boxed inside, beside its encoding).
#[must_use]
pub(crate) fn set(v: &Value) -> Option<&Set> {
    match v {
        Value::Set(s, ..) => Some(s),
        _ => None,
    }
}

/// Picks a set mutably.
pub(crate) fn set_mut(v: &mut Value) -> Option<&mut Set> {
    match v {
        Value::Set(s, ..) => Some(s),
        _ => None,
    }
}

/// Picks a sorted set by reference (not boxed: it is a small vector or a box of its own).
#[must_use]
pub(crate) fn zset(v: &Value) -> Option<&ZSet> {
    match v {
        Value::ZSet(z, ..) => Some(z),
        _ => None,
    }
}

/// Picks a sorted set mutably.
pub(crate) fn zset_mut(v: &mut Value) -> Option<&mut ZSet> {
    match v {
        Value::ZSet(z, ..) => Some(z),
        _ => None,
    }
}
