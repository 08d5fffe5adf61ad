//! The sorted set: a skiplist with spans, for rank and range in O(log n), beside a dict from
//! member to score, for ZSCORE in O(1). Redis's `zset`, in safe Rust.
//!
//! The skiplist lives in an arena (`Vec<Node>`) and links nodes by index. Slot 0 is the header:
//! as a forward link, 0 means "none"; as a backward link, "before the first". Freed slots are
//! reused. Order is by score, then member bytes, as in Redis.

use std::cmp::Ordering;

use bytes::Bytes;

use super::dict::{splitmix, Dict};

const MAX_LEVEL: usize = 32;
const HEAD: u32 = 0;

#[derive(Clone, Copy, Default)]
struct Level {
    next: u32,
    /// How many level-0 steps this link spans.
    span: u32,
}

/// One end of a score range: `-inf`, `(1.5` (exclusive) or `1.5` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    /// The score.
    pub value: f64,
    /// Whether the bound itself is excluded.
    pub exclusive: bool,
}

/// A score range as ZRANGEBYSCORE and ZCOUNT take it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    /// The low end.
    pub min: ScoreBound,
    /// The high end.
    pub max: ScoreBound,
}

impl ScoreRange {
    /// Parses `min max` as Redis does; `None` when either is not a float.
    #[must_use]
    pub fn parse(min: &[u8], max: &[u8]) -> Option<ScoreRange> {
        fn bound(b: &[u8]) -> Option<ScoreBound> {
            let (exclusive, text) = match b.strip_prefix(b"(") {
                Some(rest) => (true, rest),
                None => (false, b),
            };
            let value = super::args::float(text).ok()?;
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
pub enum LexBound {
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
pub struct LexRange {
    /// The low end.
    pub min: LexBound,
    /// The high end.
    pub max: LexBound,
}

impl LexRange {
    /// Parses `min max`; `None` when either is not `-`, `+`, `[x` or `(x`.
    #[must_use]
    pub fn parse(min: &Bytes, max: &Bytes) -> Option<LexRange> {
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

fn order(a_score: f64, a: &[u8], b_score: f64, b: &[u8]) -> Ordering {
    a_score.partial_cmp(&b_score).unwrap_or(Ordering::Equal).then_with(|| a.cmp(b))
}

/// A node's member, read only if a comparison needs it: members live apart from the nodes,
/// and reading one on every step of a descent would double its cache misses.
#[derive(Clone, Copy)]
struct Lazy<'a> {
    members: &'a [Bytes],
    id: u32,
}

impl Lazy<'_> {
    fn get(&self) -> &[u8] {
        &self.members[self.id as usize]
    }
}

/// `order` against a lazily read member.
fn order_lazy(a_score: f64, a: Lazy<'_>, b_score: f64, b: &[u8]) -> Ordering {
    a_score.partial_cmp(&b_score).unwrap_or(Ordering::Equal).then_with(|| a.get().cmp(b))
}

/// Levels kept inside the node; 1 node in 4^6 is taller and keeps the rest aside.
const INLINE_LEVELS: usize = 6;

/// A skiplist node: one cache line holding what a descent reads (score and links). The member
/// lives in a parallel vector, read only when scores tie.
#[derive(Clone, Copy)]
#[repr(align(64))]
struct Node {
    score: f64,
    levels: [Level; INLINE_LEVELS],
    prev: u32,
    /// 1 + index into `ZSet::tall` for levels past the inline ones; 0 when none.
    tall: u32,
}

const EMPTY: Node = Node {
    score: f64::NEG_INFINITY,
    levels: [Level { next: 0, span: 0 }; INLINE_LEVELS],
    prev: HEAD,
    tall: 0,
};

/// A sorted set of unique members, each with a score.
pub struct ZSet {
    /// Member to node id.
    ids: Dict<u32>,
    nodes: Vec<Node>,
    members: Vec<Bytes>,
    tall: Vec<Vec<Level>>,
    free: Vec<u32>,
    free_tall: Vec<u32>,
    level: usize,
    rng: u64,
}

impl Default for ZSet {
    fn default() -> ZSet {
        let head = Node { tall: 1, ..EMPTY };
        ZSet {
            ids: Dict::new(),
            nodes: vec![head],
            members: vec![Bytes::new()],
            tall: vec![vec![Level::default(); MAX_LEVEL - INLINE_LEVELS]],
            free: Vec::new(),
            free_tall: Vec::new(),
            level: 1,
            rng: 0x9e37,
        }
    }
}

impl ZSet {
    /// How many members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether there are no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The score of `member`.
    #[must_use]
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.ids.get(member).map(|&id| self.nodes[id as usize].score)
    }

    /// Every member with its score, in no particular order (cheaper than in order).
    pub fn unordered(&self) -> impl Iterator<Item = (&[u8], f64)> + '_ {
        self.ids.iter().map(|(m, &id)| (m, self.nodes[id as usize].score))
    }

    /// A random member.
    #[must_use]
    pub fn random(&self, seed: u64) -> Option<(&[u8], f64)> {
        self.ids.random(seed).map(|(m, &id)| (m, self.nodes[id as usize].score))
    }

    /// `count` random members as [`super::hash_family::sample`] picks them.
    #[must_use]
    pub fn sample(&self, count: i64, seed: u64) -> Vec<(Bytes, f64)> {
        let picked = super::hash_family::sample(&self.ids, count, seed);
        picked.into_iter().map(|(m, id)| (m, self.nodes[id as usize].score)).collect()
    }

    /// One ZSCAN step over the member dict: the next cursor and what it found.
    #[must_use]
    pub fn scan(&self, cursor: u64, opts: &super::generic_family::ScanOpts) -> (u64, Vec<(Bytes, f64)>) {
        let (next, found) = super::hash_family::scan_dict(&self.ids, cursor, opts);
        (next, found.into_iter().map(|(m, id)| (m, self.nodes[id as usize].score)).collect())
    }

    /// Sets `member`'s score; returns the previous one, if it was there.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        if let Some(prev) = self.update(&member, score) {
            return Some(prev);
        }
        self.add_new(member, score);
        None
    }

    /// Adds `member`, which the caller knows is absent (one dict lookup fewer than `insert`).
    pub fn add_new(&mut self, member: Bytes, score: f64) {
        debug_assert!(self.ids.get(&member).is_none());
        let id = self.link(member.clone(), score, self.len() as u32);
        self.ids.insert(member, id);
    }

    /// Sets the score of `member` if it is present (no allocation); returns the previous score.
    pub fn update(&mut self, member: &[u8], score: f64) -> Option<f64> {
        let id = *self.ids.get(member)?;
        let prev = self.nodes[id as usize].score;
        if prev != score {
            self.rescore(id, score);
        }
        Some(prev)
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let id = self.ids.remove(member)?;
        let score = self.nodes[id as usize].score;
        self.unlink(id);
        if self.ids.is_empty() {
            // Emptied: give the arena back rather than keep a free list of dead slots.
            *self = ZSet { rng: self.rng, ..ZSet::default() };
        }
        Some(score)
    }

    /// The 0-based rank of `member`, counted from the lowest score.
    #[must_use]
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let (_, rank) = self.seek(|s, m| order_lazy(s, m, score, member) != Ordering::Greater);
        Some(rank - 1)
    }

    /// Members from 0-based `rank` on, ascending (or descending with `rev`, where `rank`
    /// counts from the highest score).
    pub fn iter_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let start = if rev {
            self.len().checked_sub(rank + 1).and_then(|r| self.node_at(r))
        } else {
            self.node_at(rank)
        };
        let mut cur = start.unwrap_or(HEAD);
        std::iter::from_fn(move || {
            if cur == HEAD {
                return None;
            }
            let (n, id) = (&self.nodes[cur as usize], cur as usize);
            cur = if rev { n.prev } else { n.levels[0].next };
            Some((&self.members[id], n.score))
        })
    }

    /// The 0-based ranks `[start, end)` of the members whose scores fall in `range`.
    #[must_use]
    pub fn score_ranks(&self, range: &ScoreRange) -> std::ops::Range<usize> {
        let (_, below) = self.seek(|s, _| !range.above_min(s));
        let (_, upto) = self.seek(|s, _| range.below_max(s));
        below..upto.max(below)
    }

    /// The 0-based ranks `[start, end)` of the members within `range` (all scores equal).
    #[must_use]
    pub fn lex_ranks(&self, range: &LexRange) -> std::ops::Range<usize> {
        let (_, below) = self.seek(|_, m| !range.above_min(m.get()));
        let (_, upto) = self.seek(|_, m| range.below_max(m.get()));
        below..upto.max(below)
    }

    fn lv(&self, x: u32, i: usize) -> Level {
        let n = &self.nodes[x as usize];
        if i < INLINE_LEVELS {
            n.levels[i]
        } else {
            self.tall[n.tall as usize - 1][i - INLINE_LEVELS]
        }
    }

    fn lv_mut(&mut self, x: u32, i: usize) -> &mut Level {
        let n = &mut self.nodes[x as usize];
        if i < INLINE_LEVELS {
            &mut n.levels[i]
        } else {
            &mut self.tall[n.tall as usize - 1][i - INLINE_LEVELS]
        }
    }

    /// Descends to the last node for which `before` holds (`before` must hold for a prefix of
    /// the order); returns it (HEAD when none) and its 1-based rank (0 for HEAD).
    fn seek(&self, before: impl Fn(f64, Lazy<'_>) -> bool) -> (u32, usize) {
        let (mut x, mut rank) = (HEAD, 0usize);
        for i in (0..self.level).rev() {
            loop {
                let l = self.lv(x, i);
                let lazy = Lazy { members: &self.members, id: l.next };
                if l.next == HEAD || !before(self.nodes[l.next as usize].score, lazy) {
                    break;
                }
                rank += l.span as usize;
                x = l.next;
            }
        }
        (x, rank)
    }

    /// The predecessors of (`score`, `member`) at every level, and their ranks.
    fn path(&self, score: f64, member: &[u8]) -> ([u32; MAX_LEVEL], [usize; MAX_LEVEL]) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.lv(x, i);
                if l.next == HEAD {
                    break;
                }
                let lazy = Lazy { members: &self.members, id: l.next };
                if order_lazy(self.nodes[l.next as usize].score, lazy, score, member) != Ordering::Less {
                    break;
                }
                rank[i] += l.span as usize;
                x = l.next;
            }
            update[i] = x;
        }
        (update, rank)
    }

    fn node_at(&self, rank: usize) -> Option<u32> {
        if rank >= self.len() {
            return None;
        }
        let want = rank + 1;
        let (mut x, mut traversed) = (HEAD, 0usize);
        for i in (0..self.level).rev() {
            loop {
                let l = self.lv(x, i);
                if l.next == HEAD || traversed + l.span as usize > want {
                    break;
                }
                traversed += l.span as usize;
                x = l.next;
            }
            if traversed == want {
                return Some(x);
            }
        }
        None
    }

    fn random_level(&mut self) -> usize {
        self.rng = splitmix(self.rng);
        // Each extra level with probability 1/4, as Redis's ZSKIPLIST_P.
        let mut level = 1;
        let mut bits = self.rng;
        while level < MAX_LEVEL && bits & 3 == 0 {
            level += 1;
            bits >>= 2;
        }
        level
    }

    /// A new node (reusing a free slot) of `height` levels, all unlinked.
    fn alloc(&mut self, member: Bytes, score: f64, height: usize) -> u32 {
        let mut node = Node { score, ..EMPTY };
        if height > INLINE_LEVELS {
            let extra = vec![Level::default(); height - INLINE_LEVELS];
            node.tall = 1 + match self.free_tall.pop() {
                Some(t) => {
                    self.tall[t as usize] = extra;
                    t
                }
                None => {
                    self.tall.push(extra);
                    (self.tall.len() - 1) as u32
                }
            };
        }
        match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                self.members[id as usize] = member;
                id
            }
            None => {
                self.nodes.push(node);
                self.members.push(member);
                (self.nodes.len() - 1) as u32
            }
        }
    }

    /// Links a new node into a list of `len` nodes; returns its id.
    fn link(&mut self, member: Bytes, score: f64, len: u32) -> u32 {
        let (mut update, mut rank) = self.path(score, &member);
        let level = self.random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.lv_mut(HEAD, i).span = len;
            }
            self.level = level;
        }
        let id = self.alloc(member, score, level);
        for i in 0..level {
            let ul = self.lv(update[i], i);
            let before = (rank[0] - rank[i]) as u32;
            *self.lv_mut(id, i) = Level { next: ul.next, span: ul.span - before };
            *self.lv_mut(update[i], i) = Level { next: id, span: before + 1 };
        }
        for (i, &u) in update.iter().enumerate().take(self.level).skip(level) {
            self.lv_mut(u, i).span += 1;
        }
        self.place_after(id, update[0]);
        id
    }

    /// Sets the back links around `id`, just linked after `prev` at level 0.
    fn place_after(&mut self, id: u32, prev: u32) {
        self.nodes[id as usize].prev = prev;
        let next = self.nodes[id as usize].levels[0].next;
        if next != HEAD {
            self.nodes[next as usize].prev = id;
        }
    }

    /// Moves node `id` to `score`: in place when its neighbours allow it (Redis's
    /// `zslUpdateScore`), else unlinked and linked again.
    fn rescore(&mut self, id: u32, score: f64) {
        let (prev, next) = (self.nodes[id as usize].prev, self.nodes[id as usize].levels[0].next);
        let m = &self.members[id as usize];
        let after_prev = prev == HEAD
            || order(self.nodes[prev as usize].score, &self.members[prev as usize], score, m)
                == Ordering::Less;
        let before_next = next == HEAD
            || order(score, m, self.nodes[next as usize].score, &self.members[next as usize])
                == Ordering::Less;
        if after_prev && before_next {
            self.nodes[id as usize].score = score;
            return;
        }
        let member = self.members[id as usize].clone();
        self.unlink(id);
        // The free list is LIFO: the node comes back under the same id, so `ids` stays right.
        let again = self.link(member, score, self.len() as u32 - 1);
        debug_assert_eq!(again, id);
    }

    fn unlink(&mut self, id: u32) {
        let score = self.nodes[id as usize].score;
        let (update, _) = self.path(score, &self.members[id as usize]);
        self.members[id as usize] = Bytes::new();
        for (i, &u) in update.iter().enumerate().take(self.level) {
            let ul = self.lv(u, i);
            if ul.next == id {
                let gone = self.lv(id, i);
                *self.lv_mut(u, i) = Level { next: gone.next, span: ul.span + gone.span - 1 };
            } else {
                self.lv_mut(u, i).span -= 1;
            }
        }
        let (prev, next) = (self.nodes[id as usize].prev, self.nodes[id as usize].levels[0].next);
        if next != HEAD {
            self.nodes[next as usize].prev = prev;
        }
        while self.level > 1 && self.lv(HEAD, self.level - 1).next == HEAD {
            self.level -= 1;
        }
        let tall = self.nodes[id as usize].tall;
        if tall > 0 {
            self.tall[tall as usize - 1] = Vec::new();
            self.free_tall.push(tall - 1);
        }
        self.nodes[id as usize] = EMPTY;
        self.free.push(id);
    }
}

impl FromIterator<(Bytes, f64)> for ZSet {
    fn from_iter<I: IntoIterator<Item = (Bytes, f64)>>(iter: I) -> ZSet {
        let mut z = ZSet::default();
        for (m, s) in iter {
            z.insert(m, s);
        }
        z
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    /// Checks every rank, span and back link against a sorted vector.
    fn check(z: &ZSet, model: &[(f64, Vec<u8>)]) {
        assert_eq!(z.len(), model.len());
        let got: Vec<(f64, Vec<u8>)> = z.iter_from(0, false).map(|(m, s)| (s, m.to_vec())).collect();
        assert_eq!(got, model);
        let back: Vec<(f64, Vec<u8>)> = z.iter_from(0, true).map(|(m, s)| (s, m.to_vec())).collect();
        assert_eq!(back.into_iter().rev().collect::<Vec<_>>(), model);
        for (i, (s, m)) in model.iter().enumerate() {
            assert_eq!(z.rank(m), Some(i));
            assert_eq!(z.iter_from(i, false).next().map(|(m, s)| (s, m.to_vec())), Some((*s, m.clone())));
        }
    }

    #[test]
    fn matches_a_sorted_vector_under_random_edits() {
        let mut z = ZSet::default();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        let mut seed = 7u64;
        for step in 0..4000 {
            seed = splitmix(seed);
            let m = format!("m{}", seed % 300).into_bytes();
            let score = ((seed >> 20) % 50) as f64;
            if seed % 3 == 0 {
                let had = z.remove(&m);
                let pos = model.iter().position(|(_, x)| *x == m);
                assert_eq!(had.is_some(), pos.is_some());
                if let Some(p) = pos {
                    model.remove(p);
                }
            } else {
                z.insert(Bytes::from(m.clone()), score);
                model.retain(|(_, x)| *x != m);
                model.push((score, m));
                model.sort_by(|a, b| order(a.0, &a.1, b.0, &b.1));
            }
            if step % 97 == 0 {
                check(&z, &model);
            }
        }
        check(&z, &model);
    }

    #[test]
    fn tall_nodes_and_in_place_rescoring() {
        // 20k members make nodes taller than the inline levels (1 in 4^6).
        let mut z = ZSet::default();
        for i in 0..20_000u32 {
            z.insert(Bytes::from(format!("m{i:05}")), f64::from(i));
        }
        assert!(z.tall.len() > 1, "some node must be tall");
        for i in (0..20_000u32).step_by(2) {
            z.remove(format!("m{i:05}").as_bytes());
        }
        // Small moves stay in place; big ones relink.
        z.insert(Bytes::from("m00001"), 1.5);
        z.insert(Bytes::from("m19999"), -1.0);
        let model: Vec<(f64, Vec<u8>)> = {
            let mut v: Vec<(f64, Vec<u8>)> =
                (1..20_000u32).step_by(2).map(|i| (f64::from(i), format!("m{i:05}").into_bytes())).collect();
            v[0].0 = 1.5;
            v.last_mut().unwrap().0 = -1.0;
            v.sort_by(|a, b| order(a.0, &a.1, b.0, &b.1));
            v
        };
        check(&z, &model);
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
