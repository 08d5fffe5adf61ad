//! The sorted set's order: an order-statistic B+tree over (score, member id), with rank and
//! range in O(log n) and a handful of cache misses per operation, whatever the set's size.
//!
//! Redis keeps this order in a skiplist. A skiplist of a million members takes ~20 levels, each
//! a pointer chase to a node nobody else touched: ZADD on such a set cost about seven times what
//! it costs on a thousand members. This tree has 256-byte nodes of 15-16 ways: a million members
//! sit four levels deep, the upper levels stay in cache, and a node's keys are read in one or two
//! cache lines. (Dragonfly replaced Redis's skiplist with a B+tree for the same reason.)
//!
//! - **Leaves** hold up to 16 (score, id) pairs in order and link to their neighbours, so ranges
//!   are walked leaf by leaf. **Inner nodes** hold up to 15 children, how many entries each
//!   subtree holds (for ranks) and separators: every key under child `i` is ≥ `seps[i]` and every
//!   key under child `i - 1` is below it. Separators may be stale (the key they copied is gone);
//!   the order they describe stays true.
//! - Every entry knows its leaf (`slots`), and every node its parent, so removing or re-scoring a
//!   member needs no descent, and its rank is read bottom-up.
//! - Members are compared only when scores tie; they live with the caller (`&[Key]` by id), and
//!   separators keep their own copy (inline when short, else a reference count), because an id
//!   may be reused.
//! - Inserts split full nodes on the way down; removals merge a node that falls below a quarter
//!   full with a neighbour, or even the two out when they would not fit in one.
//!
//! This module knows nothing of Redis: the sorted set (`zset`) owns members and the member dict.

use std::cmp::Ordering;

use crate::storage::dict::{prefetch_lines, Key};

/// "No node" in parent and leaf-neighbour links, and the slot of an absent id.
const NIL: u32 = u32::MAX;
const LEAF_CAP: usize = 16;
/// 15, not 16: an inner node is then four cache lines, its header and separators in the first
/// two (which a descent reads together), counts and children in the other two.
const INNER_CAP: usize = 15;
/// A node below this many entries (or children) is merged or evened out with a neighbour.
const MIN_FILL: usize = LEAF_CAP / 4;
const _: () = assert!(std::mem::size_of::<Leaf>() == 256 && std::mem::size_of::<Inner>() == 256);

/// A member as a comparison may need it: read only when scores tie.
#[derive(Clone, Copy)]
pub(crate) enum Member<'a> {
    /// An entry's member, by id, in the caller's member table.
    Id(&'a [Key], u32),
    /// A separator's copy.
    Sep(&'a Key),
}

impl<'a> Member<'a> {
    /// The member's bytes.
    #[must_use]
    pub(crate) fn get(self) -> &'a [u8] {
        match self {
            Member::Id(members, id) => members[id as usize].as_slice(),
            Member::Sep(k) => k.as_slice(),
        }
    }
}

/// Compares (score, member) pairs: by score, then by member bytes, as Redis orders a zset.
fn cmp(a_score: f64, a: Member<'_>, b_score: f64, b: Member<'_>) -> Ordering {
    a_score.partial_cmp(&b_score).unwrap_or(Ordering::Equal).then_with(|| match (a, b) {
        (Member::Id(_, x), Member::Id(_, y)) if x == y => Ordering::Equal,
        _ => a.get().cmp(b.get()),
    })
}

/// Up to 16 entries in order; scores first, so a search reads two cache lines of them.
#[derive(Clone)]
#[repr(align(64))]
struct Leaf {
    scores: [f64; LEAF_CAP],
    ids: [u32; LEAF_CAP],
    len: u32,
    parent: u32,
    prev: u32,
    next: u32,
}

const EMPTY_LEAF: Leaf =
    Leaf { scores: [0.0; LEAF_CAP], ids: [NIL; LEAF_CAP], len: 0, parent: NIL, prev: NIL, next: NIL };

/// Up to 15 children with their entry counts and separator scores (`seps[0]` is unused); the
/// separators' members live in `Tree::sep_members`, read only on ties.
#[derive(Clone)]
#[repr(C, align(64))]
struct Inner {
    len: u32,
    parent: u32,
    seps: [f64; INNER_CAP],
    counts: [u32; INNER_CAP],
    children: [u32; INNER_CAP],
}

const EMPTY_INNER: Inner =
    Inner { len: 0, parent: NIL, seps: [0.0; INNER_CAP], counts: [0; INNER_CAP], children: [NIL; INNER_CAP] };

/// What the tree knows of an id: its score and the leaf holding it.
#[derive(Clone, Copy)]
struct Slot {
    score: f64,
    leaf: u32,
}

/// A node named by its arena index and its height (0: a leaf).
#[derive(Clone, Copy, PartialEq, Eq)]
struct NodeRef {
    id: u32,
    height: u32,
}

/// A walk through the nodes an operation on one entry will touch, loaded one node per
/// [`Tree::advance`], so that a batch's walks, stepped in turn, overlap their cache misses.
#[must_use]
pub(crate) struct Walk {
    /// Up from the entry: the next node to load.
    up: Up,
    /// Down toward `score`.
    down: Down,
    score: f64,
}

/// Where a [`Walk`] is on its way down toward a score.
enum Down {
    /// The inner node whose child is next.
    Node(NodeRef),
    /// The leaf is loading; the members of its entries that tie with the score are next (an
    /// insert compares them).
    Leaf(u32),
    Done,
}

/// Where a [`Walk`] is on its way up from an entry.
enum Up {
    /// The entry's slot is loading; its leaf is next.
    Slot(u32),
    /// The leaf is loading; its parent is next (a removal and a rank walk up from the leaf).
    Leaf(u32),
    Done,
}

/// Starts loading `item` (all its cache lines), if there is one.
fn prefetch<T>(item: Option<&T>) {
    if let Some(item) = item {
        prefetch_lines(std::ptr::from_ref(item).cast(), std::mem::size_of::<T>());
    }
}

/// The order of a sorted set's members. Ids are the caller's; it passes its member table to
/// every call that may compare members.
pub(crate) struct Tree {
    leaves: Vec<Leaf>,
    inners: Vec<Inner>,
    sep_members: Vec<[Key; INNER_CAP]>,
    free_leaves: Vec<u32>,
    free_inners: Vec<u32>,
    slots: Vec<Slot>,
    root: NodeRef,
    len: usize,
}

impl Default for Tree {
    fn default() -> Tree {
        Tree {
            leaves: vec![EMPTY_LEAF],
            inners: Vec::new(),
            sep_members: Vec::new(),
            free_leaves: Vec::new(),
            free_inners: Vec::new(),
            slots: Vec::new(),
            root: NodeRef { id: 0, height: 0 },
            len: 0,
        }
    }
}

impl Tree {
    /// The score of entry `id` (which must be in the tree).
    #[must_use]
    pub(crate) fn score(&self, id: u32) -> f64 {
        self.slots[id as usize].score
    }

    /// Adds entry `id` (absent) with `score`.
    pub(crate) fn insert(&mut self, members: &[Key], id: u32, score: f64) {
        if self.slots.len() <= id as usize {
            self.slots.resize(id as usize + 1, Slot { score: 0.0, leaf: NIL });
        }
        let key = Member::Id(members, id);
        let before = |s: f64, m: Member<'_>| cmp(s, m, score, key) != Ordering::Greater;
        if self.is_full(self.root) {
            let old = self.root;
            let r = self.alloc_inner();
            let node = &mut self.inners[r as usize];
            node.len = 1;
            node.children[0] = old.id;
            node.counts[0] = self.len as u32;
            self.set_parent(old, r);
            self.root = NodeRef { id: r, height: old.height + 1 };
            self.split_child(members, r, 0, old.height);
        }
        let mut n = self.root.id;
        for h in (1..=self.root.height).rev() {
            let mut i = self.route(n, &before);
            let child = NodeRef { id: self.inners[n as usize].children[i], height: h - 1 };
            if self.is_full(child) {
                self.split_child(members, n, i, h - 1);
                if before(
                    self.inners[n as usize].seps[i + 1],
                    Member::Sep(&self.sep_members[n as usize][i + 1]),
                ) {
                    i += 1;
                }
            }
            let node = &mut self.inners[n as usize];
            node.counts[i] += 1;
            n = node.children[i];
        }
        let leaf = &mut self.leaves[n as usize];
        let len = leaf.len as usize;
        let pos = prefix_len(len, |j| before(leaf.scores[j], Member::Id(members, leaf.ids[j])));
        leaf.scores.copy_within(pos..len, pos + 1);
        leaf.ids.copy_within(pos..len, pos + 1);
        leaf.scores[pos] = score;
        leaf.ids[pos] = id;
        leaf.len += 1;
        self.slots[id as usize] = Slot { score, leaf: n };
        self.len += 1;
    }

    /// Removes entry `id` (present); `members` still holds its member.
    pub(crate) fn remove(&mut self, members: &[Key], id: u32) {
        let leaf = self.slots[id as usize].leaf;
        let pos = self.pos_in(leaf, id);
        let node = &mut self.leaves[leaf as usize];
        let len = node.len as usize;
        node.scores.copy_within(pos + 1..len, pos);
        node.ids.copy_within(pos + 1..len, pos);
        node.len -= 1;
        self.slots[id as usize].leaf = NIL;
        self.len -= 1;
        let (mut child, mut parent) = (leaf, node.parent);
        while parent != NIL {
            let i = self.index_of(parent, child);
            let p = &mut self.inners[parent as usize];
            p.counts[i] -= 1;
            (child, parent) = (parent, p.parent);
        }
        self.rebalance(members, NodeRef { id: leaf, height: 0 });
    }

    /// Moves entry `id` to `score`: in place when its neighbours in the leaf allow it (the common
    /// case for small moves), else removed and inserted again.
    pub(crate) fn rescore(&mut self, members: &[Key], id: u32, score: f64) {
        let Slot { score: old, leaf } = self.slots[id as usize];
        let pos = self.pos_in(leaf, id);
        let node = &self.leaves[leaf as usize];
        let key = Member::Id(members, id);
        // At a leaf's ends the bound is a separator we do not see: moving away from it is safe.
        let above_prev = if pos > 0 {
            cmp(node.scores[pos - 1], Member::Id(members, node.ids[pos - 1]), score, key) == Ordering::Less
        } else {
            score > old
        };
        let below_next = if pos + 1 < node.len as usize {
            cmp(score, key, node.scores[pos + 1], Member::Id(members, node.ids[pos + 1])) == Ordering::Less
        } else {
            score < old
        };
        if above_prev && below_next {
            self.leaves[leaf as usize].scores[pos] = score;
            self.slots[id as usize].score = score;
        } else {
            self.remove(members, id);
            self.insert(members, id, score);
        }
    }

    /// Starts a [`Walk`] for an operation on entry `id` (when present: its slot and member
    /// start loading now) that may move it to `score` (when given). A hint only: a wrong guess
    /// loads nodes for nothing.
    pub(crate) fn walk(&self, members: &[Key], id: Option<u32>, score: Option<f64>) -> Walk {
        let up = match id {
            Some(id) => {
                prefetch(self.slots.get(id as usize));
                prefetch(members.get(id as usize));
                Up::Slot(id)
            }
            None => Up::Done,
        };
        let down = match score {
            Some(_) if self.root.height > 0 => Down::Node(self.root),
            Some(_) => Down::Leaf(self.root.id),
            None => Down::Done,
        };
        Walk { up, down, score: score.unwrap_or(0.0) }
    }

    /// Takes `walk` a node further, up and down, and starts loading the nodes it reaches (the
    /// way down compares scores only, so ties may stray: a wasted prefetch). `false` once
    /// there is nothing left to load.
    pub(crate) fn advance(&self, members: &[Key], walk: &mut Walk) -> bool {
        walk.up = match walk.up {
            Up::Slot(id) => match self.slots.get(id as usize).map(|s| s.leaf).filter(|&l| l != NIL) {
                Some(leaf) => {
                    prefetch(self.leaves.get(leaf as usize));
                    Up::Leaf(leaf)
                }
                None => Up::Done,
            },
            Up::Leaf(leaf) => {
                let parent = self.leaves.get(leaf as usize).map_or(NIL, |l| l.parent);
                prefetch(self.inners.get(parent as usize));
                Up::Done
            }
            Up::Done => Up::Done,
        };
        walk.down = match walk.down {
            Down::Node(n) => {
                let node = &self.inners[n.id as usize];
                let i = prefix_len(node.len as usize - 1, |i| node.seps[i + 1] <= walk.score);
                let child = NodeRef { id: node.children[i], height: n.height - 1 };
                if child.height == 0 {
                    prefetch(self.leaves.get(child.id as usize));
                    Down::Leaf(child.id)
                } else {
                    prefetch(self.inners.get(child.id as usize));
                    Down::Node(child)
                }
            }
            Down::Leaf(leaf) => {
                let leaf = &self.leaves[leaf as usize];
                let entries = leaf.scores.iter().zip(&leaf.ids).take(leaf.len as usize);
                for (_, &id) in entries.filter(|(&s, _)| s == walk.score) {
                    prefetch(members.get(id as usize));
                }
                Down::Done
            }
            Down::Done => Down::Done,
        };
        !matches!((&walk.up, &walk.down), (Up::Done, Down::Done))
    }

    /// The 0-based rank of entry `id` (present): its place in the leaf plus, on the way up, the
    /// entries of every subtree to its left.
    #[must_use]
    pub(crate) fn rank(&self, id: u32) -> usize {
        let leaf = self.slots[id as usize].leaf;
        let mut rank = self.pos_in(leaf, id);
        let (mut child, mut parent) = (leaf, self.leaves[leaf as usize].parent);
        while parent != NIL {
            let i = self.index_of(parent, child);
            let p = &self.inners[parent as usize];
            rank += p.counts[..i].iter().map(|&c| c as usize).sum::<usize>();
            (child, parent) = (parent, p.parent);
        }
        rank
    }

    /// How many entries satisfy `before`, which must hold for a prefix of the order (the rank
    /// where it stops holding).
    #[must_use]
    pub(crate) fn count(&self, members: &[Key], before: impl Fn(f64, Member<'_>) -> bool) -> usize {
        let (mut n, mut total) = (self.root.id, 0usize);
        for _ in 0..self.root.height {
            let i = self.route(n, &before);
            let node = &self.inners[n as usize];
            total += node.counts[..i].iter().map(|&c| c as usize).sum::<usize>();
            n = node.children[i];
        }
        let leaf = &self.leaves[n as usize];
        total + prefix_len(leaf.len as usize, |j| before(leaf.scores[j], Member::Id(members, leaf.ids[j])))
    }

    /// Entries (id, score) from 0-based `rank` on, ascending, or descending with `rev`.
    pub(crate) fn iter_from(&self, rank: usize, rev: bool) -> impl Iterator<Item = (u32, f64)> + '_ {
        let mut at = self.at(rank);
        std::iter::from_fn(move || {
            let (leaf, pos) = at?;
            let node = &self.leaves[leaf as usize];
            let item = (node.ids[pos], node.scores[pos]);
            at = if rev {
                match pos.checked_sub(1) {
                    Some(p) => Some((leaf, p)),
                    None => self.step(node.prev, |l| l.prev, |l| l.len as usize - 1),
                }
            } else if pos + 1 < node.len as usize {
                Some((leaf, pos + 1))
            } else {
                self.step(node.next, |l| l.next, |_| 0)
            };
            Some(item)
        })
    }

    /// The first non-empty leaf from `leaf` on (following `link`), at the position `pick` chooses.
    fn step(
        &self,
        mut leaf: u32,
        link: impl Fn(&Leaf) -> u32,
        pick: impl Fn(&Leaf) -> usize,
    ) -> Option<(u32, usize)> {
        while leaf != NIL {
            let node = &self.leaves[leaf as usize];
            if node.len > 0 {
                return Some((leaf, pick(node)));
            }
            leaf = link(node);
        }
        None
    }

    /// The leaf and position of the entry at 0-based `rank`.
    fn at(&self, mut rank: usize) -> Option<(u32, usize)> {
        if rank >= self.len {
            return None;
        }
        let mut n = self.root.id;
        for _ in 0..self.root.height {
            let node = &self.inners[n as usize];
            let mut i = 0;
            while rank >= node.counts[i] as usize {
                rank -= node.counts[i] as usize;
                i += 1;
            }
            n = node.children[i];
        }
        Some((n, rank))
    }

    /// The child of inner node `n` to descend into for a prefix predicate: the last child whose
    /// separator satisfies it (or the first child).
    fn route(&self, n: u32, before: &impl Fn(f64, Member<'_>) -> bool) -> usize {
        let (node, seps) = (&self.inners[n as usize], &self.sep_members[n as usize]);
        prefix_len(node.len as usize - 1, |i| before(node.seps[i + 1], Member::Sep(&seps[i + 1])))
    }

    fn pos_in(&self, leaf: u32, id: u32) -> usize {
        let node = &self.leaves[leaf as usize];
        node.ids[..node.len as usize]
            .iter()
            .position(|&x| x == id)
            .expect("an entry is in the leaf its slot names")
    }

    fn index_of(&self, parent: u32, child: u32) -> usize {
        let node = &self.inners[parent as usize];
        node.children[..node.len as usize]
            .iter()
            .position(|&c| c == child)
            .expect("a node is among its parent's children")
    }

    fn fill(&self, n: NodeRef) -> usize {
        if n.height == 0 {
            self.leaves[n.id as usize].len as usize
        } else {
            self.inners[n.id as usize].len as usize
        }
    }

    fn is_full(&self, n: NodeRef) -> bool {
        self.fill(n) == if n.height == 0 { LEAF_CAP } else { INNER_CAP }
    }

    fn parent(&self, n: NodeRef) -> u32 {
        if n.height == 0 {
            self.leaves[n.id as usize].parent
        } else {
            self.inners[n.id as usize].parent
        }
    }

    fn set_parent(&mut self, n: NodeRef, parent: u32) {
        if n.height == 0 {
            self.leaves[n.id as usize].parent = parent;
        } else {
            self.inners[n.id as usize].parent = parent;
        }
    }

    /// Points the children of inner node `n` (at `height`) at it, and, for a leaf level, the
    /// entries' slots at their leaves.
    fn adopt(&mut self, n: NodeRef) {
        if n.height == 0 {
            let node = &self.leaves[n.id as usize];
            for &id in &node.ids[..node.len as usize] {
                self.slots[id as usize].leaf = n.id;
            }
        } else {
            let node = self.inners[n.id as usize].clone();
            for &c in &node.children[..node.len as usize] {
                self.set_parent(NodeRef { id: c, height: n.height - 1 }, n.id);
            }
        }
    }

    fn alloc_leaf(&mut self) -> u32 {
        match self.free_leaves.pop() {
            Some(id) => {
                self.leaves[id as usize] = EMPTY_LEAF;
                id
            }
            None => {
                self.leaves.push(EMPTY_LEAF);
                (self.leaves.len() - 1) as u32
            }
        }
    }

    fn alloc_inner(&mut self) -> u32 {
        match self.free_inners.pop() {
            Some(id) => {
                self.inners[id as usize] = EMPTY_INNER;
                id
            }
            None => {
                self.inners.push(EMPTY_INNER);
                self.sep_members.push(std::array::from_fn(|_| Key::default()));
                (self.inners.len() - 1) as u32
            }
        }
    }

    fn free(&mut self, n: NodeRef) {
        if n.height == 0 {
            self.free_leaves.push(n.id);
        } else {
            self.sep_members[n.id as usize] = std::array::from_fn(|_| Key::default());
            self.free_inners.push(n.id);
        }
    }

    /// Splits the full child `i` of inner node `p` (which has room) in two halves.
    fn split_child(&mut self, members: &[Key], p: u32, i: usize, height: u32) {
        let c = self.inners[p as usize].children[i];
        let (r, sep, sep_member, counts) = if height == 0 {
            let (keep, moved) = (LEAF_CAP / 2, LEAF_CAP - LEAF_CAP / 2);
            let r = self.alloc_leaf();
            let mut left = self.leaves[c as usize].clone();
            let right = &mut self.leaves[r as usize];
            right.scores[..moved].copy_from_slice(&left.scores[keep..]);
            right.ids[..moved].copy_from_slice(&left.ids[keep..]);
            right.len = moved as u32;
            right.parent = p;
            right.prev = c;
            right.next = left.next;
            let (sep, sep_member) = (right.scores[0], members[right.ids[0] as usize].clone());
            left.len = keep as u32;
            if left.next != NIL {
                self.leaves[left.next as usize].prev = r;
            }
            left.next = r;
            self.leaves[c as usize] = left;
            self.adopt(NodeRef { id: r, height: 0 });
            (r, sep, sep_member, (keep as u32, moved as u32))
        } else {
            let (keep, moved) = (INNER_CAP.div_ceil(2), INNER_CAP - INNER_CAP.div_ceil(2));
            let r = self.alloc_inner();
            let mut left = self.inners[c as usize].clone();
            let right = &mut self.inners[r as usize];
            right.seps[1..moved].copy_from_slice(&left.seps[keep + 1..]);
            right.counts[..moved].copy_from_slice(&left.counts[keep..]);
            right.children[..moved].copy_from_slice(&left.children[keep..]);
            right.len = moved as u32;
            right.parent = p;
            left.len = keep as u32;
            let counts = (left.counts[..keep].iter().sum(), right.counts[..moved].iter().sum());
            let sep = left.seps[keep];
            self.inners[c as usize] = left;
            let (lm, rm) = two_mut(&mut self.sep_members, c as usize, r as usize);
            for (j, m) in lm[keep..].iter_mut().enumerate() {
                rm[j] = std::mem::take(m);
            }
            let sep_member = std::mem::take(&mut rm[0]);
            self.adopt(NodeRef { id: r, height });
            (r, sep, sep_member, counts)
        };
        let node = &mut self.inners[p as usize];
        let len = node.len as usize;
        node.seps.copy_within(i + 1..len, i + 2);
        node.counts.copy_within(i + 1..len, i + 2);
        node.children.copy_within(i + 1..len, i + 2);
        node.seps[i + 1] = sep;
        node.counts[i] = counts.0;
        node.counts[i + 1] = counts.1;
        node.children[i + 1] = r;
        node.len += 1;
        let seps = &mut self.sep_members[p as usize];
        seps[i + 1..=len].rotate_right(1);
        seps[i + 1] = sep_member;
    }

    /// Restores the fill of node `n` after it lost an entry or a child: merged into or with a
    /// neighbour when both fit in one node, else evened out with it; upward as parents shrink.
    fn rebalance(&mut self, members: &[Key], mut n: NodeRef) {
        loop {
            if n == self.root {
                while self.root.height > 0 && self.inners[self.root.id as usize].len == 1 {
                    let old = self.root;
                    self.root =
                        NodeRef { id: self.inners[old.id as usize].children[0], height: old.height - 1 };
                    self.set_parent(self.root, NIL);
                    self.free(old);
                }
                return;
            }
            if self.fill(n) >= MIN_FILL {
                return;
            }
            let p = self.parent(n);
            let i = self.index_of(p, n.id);
            let left = match i {
                0 if self.inners[p as usize].len > 1 => 0,
                0 => return,
                _ => i - 1,
            };
            let (a, b) = {
                let node = &self.inners[p as usize];
                (node.children[left], node.children[left + 1])
            };
            let (a, b) = (NodeRef { id: a, height: n.height }, NodeRef { id: b, height: n.height });
            let cap = if n.height == 0 { LEAF_CAP } else { INNER_CAP };
            if self.fill(a) + self.fill(b) > cap {
                self.even_out(members, p, left, a, b);
                return;
            }
            self.merge(p, left, a, b);
            n = NodeRef { id: p, height: n.height + 1 };
        }
    }

    /// Moves everything of `b` (child `left + 1` of `p`) into `a` (child `left`) and drops `b`.
    fn merge(&mut self, p: u32, left: usize, a: NodeRef, b: NodeRef) {
        if a.height == 0 {
            let right = self.leaves[b.id as usize].clone();
            let node = &mut self.leaves[a.id as usize];
            let (at, n) = (node.len as usize, right.len as usize);
            node.scores[at..at + n].copy_from_slice(&right.scores[..n]);
            node.ids[at..at + n].copy_from_slice(&right.ids[..n]);
            node.len += right.len;
            node.next = right.next;
            if right.next != NIL {
                self.leaves[right.next as usize].prev = a.id;
            }
        } else {
            let right = self.inners[b.id as usize].clone();
            let sep = self.inners[p as usize].seps[left + 1];
            let node = &mut self.inners[a.id as usize];
            let (at, n) = (node.len as usize, right.len as usize);
            node.seps[at] = sep;
            node.seps[at + 1..at + n].copy_from_slice(&right.seps[1..n]);
            node.counts[at..at + n].copy_from_slice(&right.counts[..n]);
            node.children[at..at + n].copy_from_slice(&right.children[..n]);
            node.len += right.len;
            let sep_member = std::mem::take(&mut self.sep_members[p as usize][left + 1]);
            let (am, bm) = two_mut(&mut self.sep_members, a.id as usize, b.id as usize);
            am[at] = sep_member;
            for j in 1..n {
                am[at + j] = std::mem::take(&mut bm[j]);
            }
        }
        self.adopt(a);
        self.free(b);
        let node = &mut self.inners[p as usize];
        let len = node.len as usize;
        node.counts[left] += node.counts[left + 1];
        node.seps.copy_within(left + 2..len, left + 1);
        node.counts.copy_within(left + 2..len, left + 1);
        node.children.copy_within(left + 2..len, left + 1);
        node.len -= 1;
        let seps = &mut self.sep_members[p as usize];
        seps[left + 1..len].rotate_left(1);
        seps[len - 1] = Key::default();
    }

    /// Shares the contents of siblings `a` and `b` (children `left` and `left + 1` of `p`)
    /// evenly between them; the separator between them moves accordingly.
    fn even_out(&mut self, members: &[Key], p: u32, left: usize, a: NodeRef, b: NodeRef) {
        if a.height == 0 {
            let (x, y) = (self.leaves[a.id as usize].clone(), self.leaves[b.id as usize].clone());
            let (xl, yl) = (x.len as usize, y.len as usize);
            let scores: Vec<f64> = x.scores[..xl].iter().chain(&y.scores[..yl]).copied().collect();
            let ids: Vec<u32> = x.ids[..xl].iter().chain(&y.ids[..yl]).copied().collect();
            let half = scores.len() / 2;
            let l = &mut self.leaves[a.id as usize];
            l.scores[..half].copy_from_slice(&scores[..half]);
            l.ids[..half].copy_from_slice(&ids[..half]);
            l.len = half as u32;
            let r = &mut self.leaves[b.id as usize];
            r.scores[..scores.len() - half].copy_from_slice(&scores[half..]);
            r.ids[..ids.len() - half].copy_from_slice(&ids[half..]);
            r.len = (scores.len() - half) as u32;
            self.inners[p as usize].seps[left + 1] = scores[half];
            self.inners[p as usize].counts[left] = half as u32;
            self.inners[p as usize].counts[left + 1] = (scores.len() - half) as u32;
            self.sep_members[p as usize][left + 1] = members[ids[half] as usize].clone();
        } else {
            let (x, y) = (self.inners[a.id as usize].clone(), self.inners[b.id as usize].clone());
            let (xl, yl) = (x.len as usize, y.len as usize);
            let parent_sep = self.inners[p as usize].seps[left + 1];
            let parent_member = std::mem::take(&mut self.sep_members[p as usize][left + 1]);
            // Every child with the separator on its left (unused for the first).
            let mut seps: Vec<(f64, Key)> = Vec::with_capacity(xl + yl);
            for j in 0..xl {
                seps.push((x.seps[j], std::mem::take(&mut self.sep_members[a.id as usize][j])));
            }
            seps.push((parent_sep, parent_member));
            for j in 1..yl {
                seps.push((y.seps[j], std::mem::take(&mut self.sep_members[b.id as usize][j])));
            }
            let counts: Vec<u32> = x.counts[..xl].iter().chain(&y.counts[..yl]).copied().collect();
            let children: Vec<u32> = x.children[..xl].iter().chain(&y.children[..yl]).copied().collect();
            let half = children.len() / 2;
            let mut seps = seps.into_iter();
            for (node, range) in [(a.id, 0..half), (b.id, half..children.len())] {
                let start = range.start;
                let inner = &mut self.inners[node as usize];
                inner.len = range.len() as u32;
                inner.counts[..range.len()].copy_from_slice(&counts[range.clone()]);
                inner.children[..range.len()].copy_from_slice(&children[range.clone()]);
                for j in range {
                    let (s, m) = seps.next().unwrap_or_default();
                    if j == start && node == b.id {
                        self.inners[p as usize].seps[left + 1] = s;
                        self.sep_members[p as usize][left + 1] = m;
                    } else {
                        self.inners[node as usize].seps[j - start] = s;
                        self.sep_members[node as usize][j - start] = m;
                    }
                }
            }
            let node = &mut self.inners[p as usize];
            node.counts[left] = counts[..half].iter().sum();
            node.counts[left + 1] = counts[half..].iter().sum();
        }
        self.adopt(a);
        self.adopt(b);
    }
}

#[cfg(test)]
impl Tree {
    /// Asserts every invariant: counts, parents, slots, separators, fill, and the leaf chain.
    pub(crate) fn check(&self, members: &[Key]) {
        let mut leaves = Vec::new();
        let n = self.check_node(members, self.root, NIL, &mut leaves);
        assert_eq!(n, self.len);
        for pair in leaves.windows(2) {
            assert_eq!(self.leaves[pair[0] as usize].next, pair[1]);
            assert_eq!(self.leaves[pair[1] as usize].prev, pair[0]);
        }
        if let (Some(first), Some(last)) = (leaves.first(), leaves.last()) {
            assert_eq!(self.leaves[*first as usize].prev, NIL);
            assert_eq!(self.leaves[*last as usize].next, NIL);
        }
    }

    /// Checks the subtree at `n`; returns its entry count and collects its leaves in order.
    fn check_node(&self, members: &[Key], n: NodeRef, parent: u32, leaves: &mut Vec<u32>) -> usize {
        assert_eq!(self.parent(n), parent);
        if n != self.root {
            assert!(self.fill(n) >= MIN_FILL, "node underfull: {}", self.fill(n));
        }
        if n.height == 0 {
            let leaf = &self.leaves[n.id as usize];
            for j in 0..leaf.len as usize {
                assert_eq!(self.slots[leaf.ids[j] as usize].leaf, n.id);
                assert_eq!(self.slots[leaf.ids[j] as usize].score, leaf.scores[j]);
                if j > 0 {
                    let (a, b) = (Member::Id(members, leaf.ids[j - 1]), Member::Id(members, leaf.ids[j]));
                    assert_eq!(cmp(leaf.scores[j - 1], a, leaf.scores[j], b), Ordering::Less);
                }
            }
            leaves.push(n.id);
            return leaf.len as usize;
        }
        let node = &self.inners[n.id as usize];
        let mut total = 0;
        for i in 0..node.len as usize {
            let child = NodeRef { id: node.children[i], height: n.height - 1 };
            let first_leaf = leaves.len();
            let count = self.check_node(members, child, n.id, leaves);
            assert_eq!(count, node.counts[i] as usize);
            total += count;
            // Every key under child i is at or above its separator; the previous child's below.
            let sep = Member::Sep(&self.sep_members[n.id as usize][i]);
            for &leaf in &leaves[first_leaf..] {
                let l = &self.leaves[leaf as usize];
                for j in 0..l.len as usize {
                    let key = Member::Id(members, l.ids[j]);
                    if i > 0 {
                        assert_ne!(cmp(l.scores[j], key, node.seps[i], sep), Ordering::Less);
                    }
                }
            }
            if i + 1 < node.len as usize {
                let next = Member::Sep(&self.sep_members[n.id as usize][i + 1]);
                for &leaf in &leaves[first_leaf..] {
                    let l = &self.leaves[leaf as usize];
                    for j in 0..l.len as usize {
                        let key = Member::Id(members, l.ids[j]);
                        assert_eq!(cmp(l.scores[j], key, node.seps[i + 1], next), Ordering::Less);
                    }
                }
            }
        }
        total
    }
}

/// How many of `0..n` satisfy `pred`, which holds for a prefix of them: a binary search, so a
/// node of tied scores costs four member reads, not sixteen.
fn prefix_len(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, n);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Mutable references to two different elements of a slice.
fn two_mut<T>(v: &mut [T], a: usize, b: usize) -> (&mut T, &mut T) {
    debug_assert_ne!(a, b);
    if a < b {
        let (x, y) = v.split_at_mut(b);
        (&mut x[a], &mut y[0])
    } else {
        let (x, y) = v.split_at_mut(a);
        (&mut y[0], &mut x[b])
    }
}
