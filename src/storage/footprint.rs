//! What a key and its value hold in memory (MEMORY USAGE), and what the keyspace's tables cost
//! (MEMORY STATS): estimated from the sizes of ferrokey's own structures, sampling the
//! elements of a container as Redis's `objectComputeSize` does (the mean of the first
//! `samples`, times the count).

use std::mem::size_of;

use crate::storage::db::{Entry, Value};
use crate::storage::dict::{Key, INLINE};

/// What a table slot costs beyond its key and value (a bucket's link and hash).
const SLOT: usize = 8;

/// Bytes a stored string of `len` bytes holds outside its `Key` (none when inline).
fn heap(len: usize) -> usize {
    if len <= INLINE {
        0
    } else {
        len.next_multiple_of(8)
    }
}

/// The mean of `f` over the first `samples` of `items`, times `count`.
fn sampled<'a, T: 'a>(
    items: impl Iterator<Item = T>,
    count: usize,
    samples: usize,
    f: impl Fn(T) -> usize,
) -> usize {
    let (mut seen, mut sum) = (0, 0);
    for item in items.take(samples.max(1)) {
        seen += 1;
        sum += f(item);
    }
    (sum * count).checked_div(seen).unwrap_or(0)
}

/// MEMORY USAGE: the key, its entry and its value.
#[must_use]
pub(crate) fn of_key(key: &[u8], entry: &Entry, samples: usize) -> usize {
    let key_size = size_of::<Key>() + heap(key.len());
    let expires = if entry.expires_at().is_some() { size_of::<Key>() + heap(key.len()) + SLOT } else { 0 };
    key_size + size_of::<Entry>() + SLOT + expires + of_value(&entry.value, samples)
}

/// What `value` holds beyond its place in the entry.
fn of_value(value: &Value, samples: usize) -> usize {
    let element = |len: usize| size_of::<Key>() + heap(len);
    match value {
        Value::Str(s, ..) => heap(s.len()),
        Value::List(l, ..) => {
            size_of::<crate::storage::list::List>()
                + sampled(l.iter(), l.len(), samples, |e| element(e.len()))
        }
        Value::Hash(h, ..) => {
            sampled(h.iter(), h.len(), samples, |(f, v)| element(f.len()) + element(v.len()) + SLOT)
        }
        Value::Set(s, ..) => sampled(s.iter(), s.len(), samples, |(m, ())| element(m.len()) + SLOT),
        Value::ZSet(z, ..) if z.is_small() => {
            sampled(z.unordered(), z.len(), samples, |(m, _)| element(m.len()) + 8)
        }
        // A member in the table (key, id, slot) and in the tree (score and id, 12 bytes, in
        // nodes of up to 64 entries).
        Value::ZSet(z, ..) => {
            sampled(z.unordered(), z.len(), samples, |(m, _)| element(m.len()) + 8 + SLOT + 16)
        }
        // Its blocks (each with its share of the tree), and per group its pending entries
        // (an ID and its record in the group's tree, an ID in the consumer's) and consumers.
        Value::Stream(x, ..) => {
            let groups: usize = x
                .groups
                .iter()
                .map(|(name, g)| {
                    let nack = 16 + size_of::<crate::storage::stream::Nack>() + 16 + 2 * SLOT;
                    let consumers: usize = g.consumers.keys().map(|c| element(c.len()) + 48).sum();
                    element(name.len()) + 96 + g.pel.len() * nack + consumers
                })
                .sum();
            size_of::<crate::storage::stream::Stream>() + x.heap_bytes() + groups
        }
    }
}

/// What a database's tables cost for `keys` keys, `expiring` of them with a TTL (MEMORY
/// STATS's `overhead.hashtable.main` and `.expires`).
#[must_use]
pub(crate) fn tables(keys: usize, expiring: usize) -> (usize, usize) {
    (keys * (size_of::<Key>() + size_of::<Entry>() + SLOT), expiring * (size_of::<Key>() + SLOT))
}
