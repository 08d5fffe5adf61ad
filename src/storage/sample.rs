//! Random sampling as Redis's SRANDMEMBER, HRANDFIELD and ZRANDMEMBER do it: a positive count
//! gives distinct entries, a negative one entries that may repeat; every draw uniform.

use bytes::Bytes;

use crate::storage::dict::Dict;
use crate::storage::rng::Rng;

/// Redis's random sampling: a positive count gives distinct entries (all of them when the count
/// reaches the size), a negative one `|count|` entries that may repeat.
pub(crate) fn sample<V: Clone>(d: &Dict<V>, count: i64, rng: &mut Rng) -> Vec<(Bytes, V)> {
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
pub(crate) fn sample_with<'a, T: Clone>(
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
