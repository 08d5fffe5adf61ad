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

struct Node {
    member: Bytes,
    score: f64,
    prev: u32,
    levels: Box<[Level]>,
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
        if self.min.exclusive { s > self.min.value } else { s >= self.min.value }
    }

    fn below_max(&self, s: f64) -> bool {
        if self.max.exclusive { s < self.max.value } else { s <= self.max.value }
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
            LexBound::At(b, excl) => if *excl { m > &b[..] } else { m >= &b[..] },
        }
    }

    fn below_max(&self, m: &[u8]) -> bool {
        match &self.max {
            LexBound::Min => false,
            LexBound::Max => true,
            LexBound::At(b, excl) => if *excl { m < &b[..] } else { m <= &b[..] },
        }
    }
}

fn order(a_score: f64, a: &[u8], b_score: f64, b: &[u8]) -> Ordering {
    a_score.partial_cmp(&b_score).unwrap_or(Ordering::Equal).then_with(|| a.cmp(b))
}

/// A sorted set of unique members, each with a score.
pub struct ZSet {
    scores: Dict<f64>,
    nodes: Vec<Node>,
    free: Vec<u32>,
    tail: u32,
    level: usize,
    rng: u64,
}

impl Default for ZSet {
    fn default() -> ZSet {
        let head = Node {
            member: Bytes::new(),
            score: f64::NEG_INFINITY,
            prev: HEAD,
            levels: vec![Level::default(); MAX_LEVEL].into_boxed_slice(),
        };
        ZSet { scores: Dict::new(), nodes: vec![head], free: Vec::new(), tail: HEAD, level: 1, rng: 0x9e37 }
    }
}

impl ZSet {
    /// How many members.
    #[must_use]
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// Whether there are no members.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    /// The member to score map (for ZSCAN and ZRANDMEMBER).
    #[must_use]
    pub fn scores(&self) -> &Dict<f64> {
        &self.scores
    }

    /// The score of `member`.
    #[must_use]
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).copied()
    }

    /// Sets `member`'s score; returns the previous one, if it was there.
    pub fn insert(&mut self, member: Bytes, score: f64) -> Option<f64> {
        if let Some(old) = self.scores.get_mut(&member) {
            let prev = std::mem::replace(old, score);
            if prev != score {
                self.unlink(prev, &member);
                self.link(member, score);
            }
            return Some(prev);
        }
        self.scores.insert(member.clone(), score);
        self.link(member, score);
        None
    }

    /// Removes `member`; returns its score.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        let score = self.scores.remove(member)?;
        self.unlink(score, member);
        Some(score)
    }

    /// The 0-based rank of `member`, counted from the lowest score.
    #[must_use]
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        let score = self.score(member)?;
        let (_, rank) = self.seek(|s, m| order(s, m, score, member) != Ordering::Greater);
        Some(rank - 1)
    }

    /// The member and score at 0-based `rank`.
    #[must_use]
    pub fn at(&self, rank: usize) -> Option<(&Bytes, f64)> {
        let n = self.node_at(rank)?;
        Some((&self.nodes[n as usize].member, self.nodes[n as usize].score))
    }

    /// Members from 0-based `rank` on, ascending (or descending with `rev`, where `rank`
    /// counts from the highest score).
    pub fn iter_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (&Bytes, f64)> + '_ {
        let start = if rev { self.len().checked_sub(rank + 1).and_then(|r| self.node_at(r)) } else { self.node_at(rank) };
        let mut cur = start.unwrap_or(HEAD);
        std::iter::from_fn(move || {
            if cur == HEAD {
                return None;
            }
            let n = &self.nodes[cur as usize];
            cur = if rev { n.prev } else { n.levels[0].next };
            Some((&n.member, n.score))
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
        let (_, below) = self.seek(|_, m| !range.above_min(m));
        let (_, upto) = self.seek(|_, m| range.below_max(m));
        below..upto.max(below)
    }

    /// Descends to the last node for which `before` holds (`before` must hold for a prefix of
    /// the order); returns it (HEAD when none) and its 1-based rank (0 for HEAD).
    fn seek(&self, before: impl Fn(f64, &[u8]) -> bool) -> (u32, usize) {
        let (mut x, mut rank) = (HEAD, 0usize);
        for i in (0..self.level).rev() {
            loop {
                let l = self.nodes[x as usize].levels[i];
                if l.next == HEAD {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if !before(n.score, &n.member) {
                    break;
                }
                rank += l.span as usize;
                x = l.next;
            }
        }
        (x, rank)
    }

    fn node_at(&self, rank: usize) -> Option<u32> {
        if rank >= self.len() {
            return None;
        }
        let want = rank + 1;
        let (mut x, mut traversed) = (HEAD, 0usize);
        for i in (0..self.level).rev() {
            loop {
                let l = self.nodes[x as usize].levels[i];
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

    fn link(&mut self, member: Bytes, score: f64) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut rank = [0usize; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            rank[i] = if i == self.level - 1 { 0 } else { rank[i + 1] };
            loop {
                let l = self.nodes[x as usize].levels[i];
                if l.next == HEAD {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if order(n.score, &n.member, score, &member) != Ordering::Less {
                    break;
                }
                rank[i] += l.span as usize;
                x = l.next;
            }
            update[i] = x;
        }
        let level = self.random_level();
        if level > self.level {
            for i in self.level..level {
                rank[i] = 0;
                update[i] = HEAD;
                self.nodes[0].levels[i].span = self.len() as u32 - 1;
            }
            self.level = level;
        }
        let node = Node { member, score, prev: HEAD, levels: vec![Level::default(); level].into_boxed_slice() };
        let id = match self.free.pop() {
            Some(id) => {
                self.nodes[id as usize] = node;
                id
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        for i in 0..level {
            let u = update[i] as usize;
            let ul = self.nodes[u].levels[i];
            let before = (rank[0] - rank[i]) as u32;
            self.nodes[id as usize].levels[i] = Level { next: ul.next, span: ul.span - before };
            self.nodes[u].levels[i] = Level { next: id, span: before + 1 };
        }
        for i in level..self.level {
            self.nodes[update[i] as usize].levels[i].span += 1;
        }
        self.nodes[id as usize].prev = update[0];
        let next = self.nodes[id as usize].levels[0].next;
        if next == HEAD {
            self.tail = id;
        } else {
            self.nodes[next as usize].prev = id;
        }
    }

    fn unlink(&mut self, score: f64, member: &[u8]) {
        let mut update = [HEAD; MAX_LEVEL];
        let mut x = HEAD;
        for i in (0..self.level).rev() {
            loop {
                let l = self.nodes[x as usize].levels[i];
                if l.next == HEAD {
                    break;
                }
                let n = &self.nodes[l.next as usize];
                if order(n.score, &n.member, score, member) != Ordering::Less {
                    break;
                }
                x = l.next;
            }
            update[i] = x;
        }
        let id = self.nodes[x as usize].levels[0].next;
        if id == HEAD || self.nodes[id as usize].member != member {
            return;
        }
        for i in 0..self.level {
            let u = update[i] as usize;
            if self.nodes[u].levels[i].next == id {
                let gone = self.nodes[id as usize].levels[i];
                self.nodes[u].levels[i] = Level { next: gone.next, span: self.nodes[u].levels[i].span + gone.span - 1 };
            } else {
                self.nodes[u].levels[i].span -= 1;
            }
        }
        let (prev, next) = (self.nodes[id as usize].prev, self.nodes[id as usize].levels[0].next);
        if next == HEAD {
            self.tail = prev;
        } else {
            self.nodes[next as usize].prev = prev;
        }
        while self.level > 1 && self.nodes[0].levels[self.level - 1].next == HEAD {
            self.level -= 1;
        }
        let n = &mut self.nodes[id as usize];
        n.member = Bytes::new();
        n.levels = Box::new([]);
        self.free.push(id);
        if self.scores.is_empty() {
            // Emptied: give the arena back rather than keep a free list of dead slots.
            *self = ZSet { rng: self.rng, ..ZSet::default() };
        }
    }

    /// The highest-ranked member, if any (for ZPOPMAX without walking).
    #[must_use]
    pub fn last(&self) -> Option<(&Bytes, f64)> {
        (self.tail != HEAD).then(|| (&self.nodes[self.tail as usize].member, self.nodes[self.tail as usize].score))
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
            assert_eq!(z.at(i).map(|(m, s)| (s, m.to_vec())), Some((*s, m.clone())));
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
    fn score_and_lex_ranges() {
        let z: ZSet = [("a", 1.0), ("b", 2.0), ("c", 2.0), ("d", 3.0)].iter().map(|(m, s)| (b(m), *s)).collect();
        let r = |min: &str, max: &str| z.score_ranks(&ScoreRange::parse(min.as_bytes(), max.as_bytes()).unwrap());
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
