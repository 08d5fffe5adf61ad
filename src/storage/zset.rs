//! The sorted set: a dict from member to id, for ZSCORE in O(1), beside an order-statistic
//! B+tree of (score, id) ([`crate::storage::ztree`]), for rank and range in O(log n). Redis's `zset`,
//! with a B+tree where Redis has a skiplist. Up to 128 members of up to 64 bytes, it is one
//! sorted vector of (score, member) instead, as Redis keeps small sets in a listpack: most
//! sorted sets are small, and the dict, member table and tree cost them 1.2 KB from the start.
//!
//! Members get small integer ids (reused once freed), so the tree stores 12 bytes per entry and
//! reads a member only when two scores tie. Order is by score, then member bytes, as in Redis.

use bytes::Bytes;

use crate::storage::dict::{Dict, Key};
use crate::storage::rng::Rng;
use crate::storage::ztree::{Tree, Walk};

/// One end of a score range: `-inf`, `(1.5` (exclusive) or `1.5` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScoreBound {
    /// The score.
    pub(crate) value: f64,
    /// Whether the bound itself is excluded.
    pub(crate) exclusive: bool,
}

/// A score range as ZRANGEBYSCORE and ZCOUNT take it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ScoreRange {
    /// The low end.
    pub(crate) min: ScoreBound,
    /// The high end.
    pub(crate) max: ScoreBound,
}

impl ScoreRange {
    /// Parses `min max` as Redis does; `None` when either is not a float.
    ///
    /// Redis reads bounds with a bare `strtod`, laxer than score arguments: leading spaces
    /// are skipped, out-of-range numbers become infinities or zero, and an empty bound is 0.
    #[must_use]
    pub(crate) fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        fn bound(b: &[u8]) -> Option<ScoreBound> {
            let (exclusive, text) = match b.strip_prefix(b"(") {
                Some(rest) => (true, rest),
                None => (false, b),
            };
            let text = &text[text.iter().take_while(|b| b" \t\n\x0b\x0c\r".contains(b)).count()..];
            let value = if text.is_empty() && text.len() == b.len() - usize::from(exclusive) {
                0.0
            } else {
                crate::num::strtod(text).map(|(f, _)| f).filter(|f| !f.is_nan())?
            };
            Some(ScoreBound { value, exclusive })
        }
        Some(ScoreRange { min: bound(min)?, max: bound(max)? })
    }

    fn above_min(&self, s: f64) -> bool {
        if self.min.exclusive {
            s > self.min.value
        } else {
            s >= self.min.value
        }
    }

    fn below_max(&self, s: f64) -> bool {
        if self.max.exclusive {
            s < self.max.value
        } else {
            s <= self.max.value
        }
    }
}

/// One end of a lex range: `-`, `+`, `[a` (inclusive) or `(a` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LexBound {
    /// Below every member.
    Min,
    /// Above every member.
    Max,
    /// A member, included or not.
    At(Bytes, bool),
}

impl LexBound {
    fn parse(b: &Bytes) -> Option<LexBound> {
        match b.first()? {
            b'-' if b.len() == 1 => Some(LexBound::Min),
            b'+' if b.len() == 1 => Some(LexBound::Max),
            b'[' => Some(LexBound::At(b.slice(1..), false)),
            b'(' => Some(LexBound::At(b.slice(1..), true)),
            _ => None,
        }
    }
}

/// A lex range as ZRANGEBYLEX and ZLEXCOUNT take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LexRange {
    /// The low end.
    pub(crate) min: LexBound,
    /// The high end.
    pub(crate) max: LexBound,
}

impl LexRange {
    /// Parses `min max`; `None` when either is not `-`, `+`, `[x` or `(x`.
    #[must_use]
    pub(crate) fn parse(min: &Bytes, max: &Bytes) -> Option<LexRange> {
        Some(LexRange { min: LexBound::parse(min)?, max: LexBound::parse(max)? })
    }

    fn above_min(&self, m: &[u8]) -> bool {
        match &self.min {
            LexBound::Min => true,
            LexBound::Max => false,
            LexBound::At(b, excl) => {
                if *excl {
                    m > &b[..]
                } else {
                    m >= &b[..]
                }
            }
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::At(b, excl) => {
                if *excl {
                    m < &b[..]
                } else {
                    m <= &b[..]
                }
            }
        }
    }
}

impl ZSet {
    /// Whether it is in the small form (Redis's listpack encoding).
    #[must_use]
    pub(crate) fn is_small(&self) -> bool {
        matches!(self.0, Repr::Small(_))
    }
}

/// The small form's bounds on this core: members up to `zset-max-listpack-entries`, each of up
/// to `zset-max-listpack-value` bytes (128 and 64 by default), are kept in one sorted vector, as
/// Redis keeps them in a listpack: a sorted set of five short members then costs ~300 bytes,
/// not the ~1,200 of a dict, a member table and a tree leaf.
fn small_limits() -> (usize, usize) {
    let t = crate::storage::encoding::get();
    (t.zset_entries, t.zset_value)
}

/// A sorted set of unique members, each with a score.
pub struct ZSet(Repr);

enum Repr {
    /// (score, member) in order, searched in turn by member: Redis's listpack encoding.
    Small(Vec<(f64, Key)>),
    /// From the first member past `zset-max-listpack-entries` (or longer than `zset-max-listpack-value`) on, for good.
    Large(Box<Large>),
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet(Repr::Small(Vec::new()))
    }
}

/// Orders (score, member) pairs as Redis does: by score, then by member bytes.
fn by_order(a: (f64, &[u8]), b: (f64, &[u8])) -> std::cmp::Ordering {
    a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal).then_with(|| a.1.cmp(b.1))
}

/// A small set's entries from `rank` on, ascending (or descending with `rev`).
fn small_from(v: &[(f64, Key)], rank: usize, rev: bool) -> impl Iterator<Item = &(f64, Key)> {
    let (up, down) =
        if rev { (&v[..0], &v[..v.len().saturating_sub(rank)]) } else { (&v[rank.min(v.len())..], &v[..0]) };
    up.iter().chain(down.iter().rev())
}

/// Where `(score, member)` goes in a small set's vector.
fn small_slot(v: &[(f64, Key)], score: f64, member: &[u8]) -> usize {
    v.partition_point(|(s, m)| by_order((*s, m.as_slice()), (score, member)) == std::cmp::Ordering::Less)
}

impl ZSet {
    /// How many members.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        match &self.0 {
            Repr::Small(v) => v.len(),
            Repr::Large(l) => l.len(),
        }
    }

    /// Whether there are no members.
    #[must_use]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The score of `member`.
    #[must_use]
    pub(crate) fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.0 {
            Repr::Small(v) => v.iter().find(|(_, m)| m.as_slice() == member).map(|(s, _)| *s),
            Repr::Large(l) => l.score(member),
        }
    }

    /// Every member with its score, in no particular order (cheaper than in order).
    pub(crate) fn unordered(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let (small, large) = match &self.0 {
            Repr::Small(v) => (Some(v.iter().map(|(s, m)| (m.as_slice(), *s))), None),
            Repr::Large(l) => (None, Some(l.unordered())),
        };
        small.into_iter().flatten().chain(large.into_iter().flatten())
    }

    /// A random member.
    #[must_use]
    pub(crate) fn random(&self, rng: &mut Rng) -> Option<(&[u8], f64)> {
        match &self.0 {
            Repr::Small(v) => v.get(rng.below(v.len())).map(|(s, m)| (m.as_slice(), *s)),
            Repr::Large(l) => l.random(rng),
        }
    }

    /// `count` random members as [`crate::storage::sample::sample`] picks them.
    #[must_use]
    pub(crate) fn sample(&self, count: i64, rng: &mut Rng) -> Vec<(Bytes, f64)> {
        let entry = |(m, s): (&[u8], f64)| (Bytes::copy_from_slice(m), s);
        let all = || self.unordered().map(entry).collect();
        crate::storage::sample::sample_with(self.len(), count, rng, all, |r| {
            self.random(r).map(|e| (e.0, entry(e)))
        })
    }

    /// One ZSCAN step over the member dict: the next cursor and what it found (a small set all at
    /// once, as Redis scans a listpack).
    #[must_use]
    pub(crate) fn scan(
        &self,
        cursor: u64,
        count: usize,
        matches: impl Fn(&[u8]) -> bool,
    ) -> (u64, Vec<(Bytes, f64)>) {
        match &self.0 {
            Repr::Small(v) => (
                0,
                v.iter().filter(|(_, m)| matches(m.as_slice())).map(|(s, m)| (m.to_bytes(), *s)).collect(),
            ),
            Repr::Large(l) => l.scan(cursor, count, matches),
        }
    }

    /// Sets `member`'s score; returns the previous one, if it was there.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        if let Some(prev) = self.update(&member, score) {
            return Some(prev);
        }
        self.add_new(member, score);
        None
    }

    /// Starts loading `member`'s slot of the member dict into cache (see [`Dict::prefetch`]).
    pub(crate) fn prefetch(&self, member: &[u8]) {
        if let Repr::Large(l) = &self.0 {
            l.prefetch(member);
        }
    }

    /// Whether this set is large enough for a [`Walk`] to pay: below ~16k members its tree and
    /// dict fit in a core's L2 cache, and the walk's lookups cost more than the misses it saves
    /// (ZADD on a 1k-member set: 0.95 -> 1.10 µs with walks).
    #[must_use]
    pub(crate) fn worth_walking(&self) -> bool {
        self.len() >= 1 << 14
    }

    /// After [`ZSet::prefetch`] of `member` (once that load has had time to land): starts a
    /// [`Walk`] through the tree nodes that setting `member` to `score` (or, with no score,
    /// reading or removing it) will touch. `None` when there is nothing to load.
    #[must_use]
    pub(crate) fn walk(&self, member: &[u8], score: Option<f64>) -> Option<Walk> {
        match &self.0 {
            Repr::Small(_) => None,
            Repr::Large(l) => l.walk(member, score),
        }
    }

    /// Takes `walk` one node further (see [`crate::storage::ztree::Tree::advance`]); `false` once it is done.
    pub(crate) fn advance(&self, walk: &mut Walk) -> bool {
        match &self.0 {
            Repr::Small(_) => false,
            Repr::Large(l) => l.advance(walk),
        }
    }

    /// Takes the large form whatever the size, as SORT leaves a sorted set it read (Redis's
    /// `zsetConvert(.., OBJ_ENCODING_SKIPLIST)`): OBJECT ENCODING says `skiplist` from then
    /// on, and -0 scores added later keep their sign.
    pub(crate) fn make_large(&mut self) {
        if let Repr::Small(v) = &mut self.0 {
            let mut large = Box::<Large>::default();
            for (s, m) in std::mem::take(v) {
                large.add_new(m.to_bytes(), s);
            }
            self.0 = Repr::Large(large);
        }
    }

    /// Adds `member`, which the caller knows is absent (one lookup fewer than `insert`).
    pub(crate) fn add_new(&mut self, member: Bytes, score: f64) {
        match &mut self.0 {
            Repr::Small(v) if v.len() < small_limits().0 && member.len() <= small_limits().1 => {
                debug_assert!(v.iter().all(|(_, m)| m.as_slice() != &member[..]));
                // As Redis's listpack, which stores -0 as 0 (adding +0 clears the sign).
                let score = score + 0.0;
                let at = small_slot(v, score, &member);
                v.reserve_exact(1);
                v.insert(at, (score, Key::new(member)));
            }
            Repr::Small(v) => {
                let mut large = Box::<Large>::default();
                for (s, m) in std::mem::take(v) {
                    large.add_new(m.to_bytes(), s);
                }
                large.add_new(member, score);
                self.0 = Repr::Large(large);
            }
            Repr::Large(l) => l.add_new(member, score),
        }
    }

    /// Sets the score of `member` if it is present (no allocation); returns the previous score.
    pub fn update(&mut self, member: &[u8], score: f64) -> Option<f64> {
        match &mut self.0 {
            Repr::Small(v) => {
                let i = v.iter().position(|(_, m)| m.as_slice() == member)?;
                let (prev, score) = (v[i].0, score + 0.0);
                if prev != score {
                    let (_, m) = v.remove(i);
                    let at = small_slot(v, score, m.as_slice());
                    v.insert(at, (score, m));
                }
                Some(prev)
            }
            Repr::Large(l) => l.update(member, score),
        }
    }

    /// Removes `member`; returns its score.
    pub(crate) fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.0 {
            Repr::Small(v) => {
                let i = v.iter().position(|(_, m)| m.as_slice() == member)?;
                Some(v.remove(i).0)
            }
            Repr::Large(l) => l.remove(member),
        }
    }

    /// The 0-based rank of `member`, counted from the lowest score.
    #[must_use]
    pub(crate) fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.0 {
            Repr::Small(v) => v.iter().position(|(_, m)| m.as_slice() == member),
            Repr::Large(l) => l.rank(member),
        }
    }

    /// Members from 0-based `rank` on, ascending (or descending with `rev`, where `rank` counts
    /// from the highest score); long members are shared, inline ones copied out.
    pub(crate) fn iter_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (Bytes, f64)> + '_ {
        let (small, large) = match &self.0 {
            Repr::Small(v) => (Some(small_from(v, rank, rev).map(|(s, m)| (m.to_bytes(), *s))), None),
            Repr::Large(l) => (None, Some(l.iter_from(rank, rev))),
        };
        small.into_iter().flatten().chain(large.into_iter().flatten())
    }

    /// As [`ZSet::iter_from`], lending the members instead of copying or sharing them.
    pub(crate) fn slices_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        let (small, large) = match &self.0 {
            Repr::Small(v) => (Some(small_from(v, rank, rev).map(|(s, m)| (m.as_slice(), *s))), None),
            Repr::Large(l) => (None, Some(l.slices_from(rank, rev))),
        };
        small.into_iter().flatten().chain(large.into_iter().flatten())
    }

    /// The 0-based ranks `[start, end)` of the members whose scores fall in `range`.
    #[must_use]
    pub(crate) fn score_ranks(&self, range: &ScoreRange) -> std::ops::Range<usize> {
        match &self.0 {
            Repr::Small(v) => {
                let below = v.partition_point(|(s, _)| !range.above_min(*s));
                let upto = v.partition_point(|(s, _)| range.below_max(*s));
                below..upto.max(below)
            }
            Repr::Large(l) => l.score_ranks(range),
        }
    }

    /// The 0-based ranks `[start, end)` of the members within `range` (all scores equal).
    #[must_use]
    pub(crate) fn lex_ranks(&self, range: &LexRange) -> std::ops::Range<usize> {
        match &self.0 {
            Repr::Small(v) => {
                let below = v.partition_point(|(_, m)| !range.above_min(m.as_slice()));
                let upto = v.partition_point(|(_, m)| range.below_max(m.as_slice()));
                below..upto.max(below)
            }
            Repr::Large(l) => l.lex_ranks(range),
        }
    }
}

/// A sorted set past the small encoding: members by id, a dict to the ids, a tree of ids.
#[derive(Default)]
struct Large {
    /// Member to id.
    ids: Dict<u32>,
    /// Id to member (inline when short); freed ids hold an empty member until reused.
    members: Vec<Key>,
    free: Vec<u32>,
    /// The order, with each id's score.
    tree: Tree,
}

impl Large {
    /// How many members.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The score of `member`.
    #[must_use]
    pub(crate) fn score(&self, member: &[u8]) -> Option<f64> {
        self.ids.get(member).map(|&id| self.tree.score(id))
    }

    /// Every member with its score, in no particular order (cheaper than in order).
    pub(crate) fn unordered(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        self.ids.iter().map(|(m, &id)| (m, self.tree.score(id)))
    }

    /// A random member.
    #[must_use]
    pub(crate) fn random(&self, rng: &mut Rng) -> Option<(&[u8], f64)> {
        self.ids.random(rng).map(|(m, &id)| (m, self.tree.score(id)))
    }

    /// One ZSCAN step over the member dict: the next cursor and what it found.
    #[must_use]
    pub(crate) fn scan(
        &self,
        cursor: u64,
        count: usize,
        matches: impl Fn(&[u8]) -> bool,
    ) -> (u64, Vec<(Bytes, f64)>) {
        let (next, found) = self.ids.scan_matching(cursor, count, matches);
        (next, found.into_iter().map(|(m, id)| (m, self.tree.score(id))).collect())
    }

    /// Starts loading `member`'s slot of the member dict into cache (see [`Dict::prefetch`]).
    pub(crate) fn prefetch(&self, member: &[u8]) {
        self.ids.prefetch(member);
    }

    /// After [`ZSet::prefetch`] of `member` (once that load has had time to land): starts a
    /// [`Walk`] through the tree nodes that setting `member` to `score` (or, with no score,
    /// reading or removing it) will touch. `None` when there is nothing to load.
    #[must_use]
    pub(crate) fn walk(&self, member: &[u8], score: Option<f64>) -> Option<Walk> {
        let id = self.ids.get(member).copied();
        (id.is_some() || score.is_some()).then(|| self.tree.walk(&self.members, id, score))
    }

    /// Takes `walk` one node further (see [`crate::storage::ztree::Tree::advance`]); `false` once it is done.
    pub(crate) fn advance(&self, walk: &mut Walk) -> bool {
        self.tree.advance(&self.members, walk)
    }

    /// Adds `member`, which the caller knows is absent (one dict lookup fewer than `insert`).
    pub(crate) fn add_new(&mut self, member: Bytes, score: f64) {
        debug_assert!(self.ids.get(&member).is_none());
        let id = match self.free.pop() {
            Some(id) => {
                self.members[id as usize] = Key::new(member.clone());
                id
            }
            None => {
                self.members.push(Key::new(member.clone()));
                (self.members.len() - 1) as u32
            }
        };
        self.tree.insert(&self.members, id, score);
        self.ids.insert(member, id);
    }

    /// Sets the score of `member` if it is present (no allocation); returns the previous score.
    pub(crate) fn update(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let id = *self.ids.get(member)?;
        let prev = self.tree.score(id);
        if prev != score {
            self.tree.rescore(&self.members, id, score);
        }
        Some(prev)
    }

    /// Removes `member`; returns its score.
    pub(crate) fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let id = self.ids.remove(member)?;
        let score = self.tree.score(id);
        self.tree.remove(&self.members, id);
        if self.ids.is_empty() {
            // Emptied: give the arenas back rather than keep free lists of dead slots.
            *self = Large::default();
        } else {
            self.members[id as usize] = Key::default();
            self.free.push(id);
        }
        Some(score)
    }

    /// The 0-based rank of `member`, counted from the lowest score.
    #[must_use]
    pub(crate) fn rank(&self, member: &[u8]) -> Option<usize> {
        self.ids.get(member).map(|&id| self.tree.rank(id))
    }

    /// Members from 0-based `rank` on, ascending (or descending with `rev`, where `rank` counts
    /// from the highest score); long members are shared, inline ones copied out.
    pub(crate) fn iter_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (Bytes, f64)> + '_ {
        self.ids_from(rank, rev).map(|(id, score)| (self.members[id as usize].to_bytes(), score))
    }

    /// As [`ZSet::iter_from`], lending the members instead of copying or sharing them.
    pub(crate) fn slices_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        self.ids_from(rank, rev).map(|(id, score)| (self.members[id as usize].as_slice(), score))
    }

    /// Member ids and scores from `rank` on, as [`ZSet::iter_from`] orders them.
    fn ids_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (u32, f64)> + '_ {
        let start = if rev { self.len().checked_sub(rank + 1).unwrap_or(usize::MAX) } else { rank };
        self.tree.iter_from(start, rev)
    }

    /// The 0-based ranks `[start, end)` of the members whose scores fall in `range`.
    #[must_use]
    pub(crate) fn score_ranks(&self, range: &ScoreRange) -> std::ops::Range<usize> {
        let below = self.tree.count(&self.members, |s, _| !range.above_min(s));
        let upto = self.tree.count(&self.members, |s, _| range.below_max(s));
        below..upto.max(below)
    }

    /// The 0-based ranks `[start, end)` of the members within `range` (all scores equal).
    #[must_use]
    pub(crate) fn lex_ranks(&self, range: &LexRange) -> std::ops::Range<usize> {
        let below = self.tree.count(&self.members, |_, m| !range.above_min(m.get()));
        let upto = self.tree.count(&self.members, |_, m| range.below_max(m.get()));
        below..upto.max(below)
    }
}

/// A whole set at once (the STORE commands), in the form its final size calls for: as Redis
/// builds a skiplist and converts only a small result, where -0 scores become 0.
impl FromIterator<(Bytes, f64)> for ZSet {
    fn from_iter<I: IntoIterator<Item = (Bytes, f64)>>(iter: I) -> ZSet {
        let items: Vec<(Bytes, f64)> = iter.into_iter().collect();
        let (entries, value) = small_limits();
        let small = items.len() <= entries && items.iter().all(|(m, _)| m.len() <= value);
        let mut z = if small { ZSet::default() } else { ZSet(Repr::Large(Box::default())) };
        for (m, s) in items {
            z.insert(m, s);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::*;

    /// The small form's bounds by default.
    const SMALL: usize = crate::storage::encoding::Thresholds::DEFAULT.zset_entries;
    const SMALL_MEMBER: usize = crate::storage::encoding::Thresholds::DEFAULT.zset_value;
    use crate::num::splitmix;
    use crate::storage::rng::Rng;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn order(a: &(f64, Vec<u8>), b: &(f64, Vec<u8>)) -> Ordering {
        a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal).then_with(|| a.1.cmp(&b.1))
    }

    /// Checks the tree's invariants, then every rank and both iteration orders against a sorted
    /// vector.
    fn check(z: &ZSet, model: &[(f64, Vec<u8>)]) {
        match &z.0 {
            Repr::Large(l) => l.tree.check(&l.members),
            Repr::Small(v) => {
                assert!(v.len() <= SMALL && v.iter().all(|(_, m)| m.len() <= SMALL_MEMBER));
                assert!(v.windows(2).all(|w| by_order(
                    (w[0].0, w[0].1.as_slice()),
                    (w[1].0, w[1].1.as_slice())
                )
                .is_lt()));
            }
        }
        assert_eq!(z.len(), model.len());
        let got: Vec<(f64, Vec<u8>)> = z.iter_from(0, false).map(|(m, s)| (s, m.to_vec())).collect();
        assert_eq!(got, model);
        let back: Vec<(f64, Vec<u8>)> = z.iter_from(0, true).map(|(m, s)| (s, m.to_vec())).collect();
        assert_eq!(back.into_iter().rev().collect::<Vec<_>>(), model);
        for (i, (s, m)) in model.iter().enumerate() {
            assert_eq!(z.rank(m), Some(i));
            assert_eq!(z.score(m), Some(*s));
            assert_eq!(z.iter_from(i, false).next().map(|(m, s)| (s, m.to_vec())), Some((*s, m.clone())));
            let from_top = &model[model.len() - 1 - i];
            assert_eq!(z.slices_from(i, true).next().map(|(m, s)| (s, m.to_vec())), Some(from_top.clone()));
        }
        assert_eq!(z.iter_from(model.len(), false).count() + z.iter_from(model.len(), true).count(), 0);
    }

    #[test]
    fn small_sets_are_a_sorted_vector_until_too_many_or_too_long() {
        let is_small = |z: &ZSet| matches!(z.0, Repr::Small(_));
        let mut z = ZSet::default();
        for i in 0..SMALL {
            z.insert(Bytes::from(format!("m{i:03}")), (i % 7) as f64);
        }
        assert!(is_small(&z));
        let range = ScoreRange::parse(b"(2", b"4").unwrap();
        assert_eq!(z.score_ranks(&range).len(), z.unordered().filter(|(_, s)| *s > 2.0 && *s <= 4.0).count());
        let sample = z.sample(-300, &mut Rng::new(9));
        assert_eq!(sample.len(), 300, "a negative count repeats");
        let mut distinct = z.sample(50, &mut Rng::new(9));
        distinct.sort_by(|a, b| a.0.cmp(&b.0));
        distinct.dedup_by(|a, b| a.0 == b.0);
        assert_eq!(distinct.len(), 50);
        let (cursor, mut found) = z.scan(0, 1, |m| crate::glob::matches(b"m00*", m, false));
        found.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!((cursor, found), (0, (0..10).map(|i| (b(&format!("m{i:03}")), (i % 7) as f64)).collect()));
        z.insert(b("one more"), 0.5);
        assert!(!is_small(&z), "past 128 members");
        assert_eq!((z.len(), z.rank(b"one more"), z.score(b"m127")), (SMALL + 1, Some(19), Some(1.0)));
        let mut z = ZSet::default();
        z.insert(b("short"), 1.0);
        z.insert(Bytes::from(vec![b'x'; SMALL_MEMBER + 1]), 2.0);
        assert!(!is_small(&z), "a member longer than 64 bytes");
        assert_eq!(z.iter_from(0, false).map(|(_, s)| s).collect::<Vec<_>>(), [1.0, 2.0]);
    }

    /// Random inserts, re-scores and removals over `members` names and `scores` distinct scores,
    /// checked against a sorted vector every `every` steps.
    fn random_edits(steps: usize, members: u64, scores: u64, remove_one_in: u64, every: usize) {
        let mut z = ZSet::default();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut seed = 7u64;
        for step in 0..steps {
            seed = splitmix(seed);
            let m = format!("m{}", seed % members).into_bytes();
            let score = ((seed >> 20) % scores) as f64;
            if (seed >> 40) % remove_one_in == 0 {
                let had = z.remove(&m);
                let pos = model.iter().position(|(_, x)| *x == m);
                assert_eq!(had.is_some(), pos.is_some());
                if let Some(p) = pos {
                    assert_eq!(had, Some(model.remove(p).0));
                }
            } else {
                z.insert(Bytes::from(m.clone()), score);
                model.retain(|(_, x)| *x != m);
                model.push((score, m));
                model.sort_by(order);
            }
            if step % every == 0 {
                check(&z, &model);
            }
        }
        check(&z, &model);
    }

    #[test]
    fn matches_a_sorted_vector_under_random_edits() {
        // Few members, many ties: member order decides, leaves split and merge at the root.
        // Small sets (the sorted-vector encoding): many ties, never past 100 members.
        random_edits(3000, 100, 20, 3, 31);
        random_edits(4000, 300, 50, 3, 97);
        // Deep trees: thousands of members, inner nodes split, merge and even out.
        random_edits(60_000, 5000, 1_000_000, 2, 5_000);
        // Grow large, then mostly shrink.
        random_edits(30_000, 20_000, 7, 9, 10_000);
    }

    #[test]
    fn grows_and_drains_in_order() {
        let mut z = ZSet::default();
        for i in 0..20_000u32 {
            z.insert(Bytes::from(format!("m{i:05}")), f64::from(i));
        }
        for i in (0..20_000u32).step_by(2) {
            z.remove(format!("m{i:05}").as_bytes());
        }
        // Small moves stay in place; big ones move.
        z.insert(Bytes::from("m00001"), 1.5);
        z.insert(Bytes::from("m19999"), -1.0);
        let mut model: Vec<(f64, Vec<u8>)> =
            (1..20_000u32).step_by(2).map(|i| (f64::from(i), format!("m{i:05}").into_bytes())).collect();
        model[0].0 = 1.5;
        model.last_mut().unwrap().0 = -1.0;
        model.sort_by(order);
        check(&z, &model);
        // Drain from the front, as ZPOPMIN does, then refill the emptied set.
        loop {
            let Some((m, _)) = z.iter_from(0, false).next() else { break };
            z.remove(&m);
            model.remove(0);
            if model.len() % 1000 == 0 {
                check(&z, &model);
            }
        }
        assert!(z.is_empty());
        z.insert(b("again"), 1.0);
        check(&z, &[(1.0, b"again".to_vec())]);
    }

    #[test]
    fn prefetch_walks_end_within_a_few_rounds_whatever_they_are_given() {
        let mut z = ZSet::default();
        for i in 0..40_000u32 {
            z.insert(Bytes::from(format!("m{i:05}")), f64::from(i % 1000));
        }
        for i in (0..40_000u32).step_by(3) {
            z.remove(format!("m{i:05}").as_bytes());
        }
        assert!(z.worth_walking());
        assert!(z.walk(b"absent", None).is_none(), "nothing to load");
        let members = [&b"m00001"[..], b"m39998", b"absent"];
        let cases = members.iter().flat_map(|m| {
            [None, Some(-1.0), Some(500.0), Some(f64::INFINITY), Some(f64::NEG_INFINITY), Some(f64::NAN)]
                .map(|s| (*m, s))
        });
        for (member, score) in cases {
            let Some(mut walk) = z.walk(member, score) else {
                assert!(score.is_none() && member == b"absent");
                continue;
            };
            // Up: slot, leaf, parent. Down: one node a level (four levels here), then the leaf's ties.
            let rounds = std::iter::repeat_n((), 10).take_while(|()| z.advance(&mut walk)).count();
            assert!(rounds < 6, "{member:?} {score:?}: {rounds} rounds");
        }
        assert_eq!(z.len(), 40_000 - 13_334);
    }

    #[test]
    fn score_and_lex_ranges() {
        let z: ZSet =
            [("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0)].iter().map(|(m, s)| (b(m), *s)).collect();
        let r =
            |min: &str, max: &str| z.score_ranks(&ScoreRange::parse(min.as_bytes(), max.as_bytes()).unwrap());
        assert_eq!(r("2", "2"), 1..3);
        assert_eq!(r("(1", "(3"), 1..3);
        assert_eq!(r("-inf", "+inf"), 0..4);
        assert_eq!(r("5", "9"), 4..4);
        assert_eq!(r("3", "1"), 3..3);
        let flat: ZSet = ["a", "b", "c", "d"].iter().map(|m| (b(m), 0.0)).collect();
        let l = |min: &str, max: &str| flat.lex_ranks(&LexRange::parse(&b(min), &b(max)).unwrap());
        assert_eq!(l("-", "+"), 0..4);
        assert_eq!(l("[b", "(d"), 1..3);
        assert_eq!(l("(a", "[a"), 1..1);
        assert!(LexRange::parse(&b("a"), &b("+")).is_none());
    }
}
