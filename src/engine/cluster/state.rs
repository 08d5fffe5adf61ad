//! What this node believes about the cluster: the nodes, who owns each slot, the slots being
//! migrated or imported, the epochs and the cluster's health. Plain data: the commands and
//! (later) the bus edit a copy, and [`super::Cluster`] publishes it whole.

use std::collections::BTreeMap;

use crate::engine::cluster::node::{flag, Node, NodeId};
use crate::engine::slot::SLOTS;

/// A slot nobody serves.
const UNASSIGNED: u16 = u16::MAX;

/// The cluster's health: what `cluster_state` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Health {
    /// Every slot is served by a node not failing (or full coverage is not required).
    pub(crate) covered: bool,
    /// Primaries serving at least one slot.
    pub(crate) size: usize,
    /// Of those, the ones not failing nor possibly failing.
    pub(crate) reachable: usize,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    /// The known nodes, this one among them.
    nodes: Vec<Node>,
    /// Index of this node in `nodes`.
    myself: usize,
    /// Each slot's owner (an index in `nodes`), or [`UNASSIGNED`].
    slots: Box<[u16]>,
    /// Slots this node is giving away, to whom.
    pub(crate) migrating: BTreeMap<u16, NodeId>,
    /// Slots this node is taking over, from whom.
    pub(crate) importing: BTreeMap<u16, NodeId>,
    /// The highest epoch seen in the cluster.
    pub(crate) current_epoch: u64,
    /// The epoch this node last voted in.
    pub(crate) last_vote_epoch: u64,
    /// Whether the cluster serves (`cluster_state:ok`).
    pub(crate) ok: bool,
    /// For each node, the primaries that reported it failing, and when (unix ms).
    pub(crate) reports: BTreeMap<NodeId, BTreeMap<NodeId, u64>>,
    /// Nodes CLUSTER FORGET removed, not to be learnt again from gossip until then (unix ms).
    pub(crate) forgotten: BTreeMap<NodeId, u64>,
    /// Primaries serving at least one slot.
    pub(crate) size: usize,
}

impl State {
    /// A cluster of one node, this one, serving no slot.
    #[must_use]
    pub(crate) fn alone(me: Node) -> State {
        State {
            nodes: vec![me],
            myself: 0,
            slots: vec![UNASSIGNED; usize::from(SLOTS)].into_boxed_slice(),
            migrating: BTreeMap::new(),
            importing: BTreeMap::new(),
            current_epoch: 0,
            last_vote_epoch: 0,
            ok: false,
            size: 1,
            forgotten: BTreeMap::new(),
            reports: BTreeMap::new(),
        }
    }

    /// This node.
    #[must_use]
    pub(crate) fn me(&self) -> &Node {
        &self.nodes[self.myself]
    }

    /// This node, to change.
    pub(crate) fn me_mut(&mut self) -> &mut Node {
        &mut self.nodes[self.myself]
    }

    /// Every known node.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter()
    }

    /// The node named `id`.
    #[must_use]
    pub(crate) fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| n.id == *id)
    }

    /// The node named `id`, to change.
    pub(crate) fn node_mut(&mut self, id: &NodeId) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.id == *id)
    }

    /// Gives the node named `old` the name `new` (a handshake learnt the real one).
    pub(crate) fn rename(&mut self, old: &NodeId, new: NodeId) {
        if let Some(n) = self.node_mut(old) {
            n.id = new;
        }
        for n in &mut self.nodes {
            if n.master.as_ref() == Some(old) {
                n.master = Some(new);
            }
        }
        for id in self.migrating.values_mut().chain(self.importing.values_mut()) {
            if id == old {
                *id = new;
            }
        }
    }

    /// The slots of the node named `id` as the bus's bitmap.
    #[must_use]
    pub(crate) fn bitmap_of(&self, id: &NodeId) -> Box<[u8; 2048]> {
        let mut bits = Box::new([0u8; 2048]);
        for (a, b) in self.ranges_of(id) {
            for slot in a..=b {
                bits[usize::from(slot / 8)] |= 1 << (slot % 8);
            }
        }
        bits
    }

    /// The node named `id`, added (with no flags) when unknown.
    pub(crate) fn node_or_add(&mut self, id: NodeId) -> &mut Node {
        let at = match self.nodes.iter().position(|n| n.id == id) {
            Some(at) => at,
            None => {
                self.nodes.push(Node::new(id, 0));
                self.nodes.len() - 1
            }
        };
        &mut self.nodes[at]
    }

    /// Makes the node named `id` this node (loading nodes.conf).
    pub(crate) fn set_myself(&mut self, id: &NodeId) {
        if let Some(at) = self.nodes.iter().position(|n| n.id == *id) {
            self.myself = at;
        }
    }

    /// Forgets the node named `id` (never this one): its slots become unassigned, the slots
    /// moving to or from it stable, and its replicas primary-less.
    pub(crate) fn remove(&mut self, id: &NodeId) {
        let Some(at) = self.nodes.iter().position(|n| n.id == *id) else { return };
        if at == self.myself {
            return;
        }
        let master = self.nodes.remove(at).master;
        let at = at as u16;
        for owner in self.slots.iter_mut() {
            if *owner == at {
                *owner = UNASSIGNED;
            } else if *owner != UNASSIGNED && *owner > at {
                *owner -= 1;
            }
        }
        if self.myself > usize::from(at) {
            self.myself -= 1;
        }
        self.reports.remove(id);
        for r in self.reports.values_mut() {
            r.remove(id);
        }
        self.migrating.retain(|_, to| to != id);
        self.importing.retain(|_, from| from != id);
        for n in &mut self.nodes {
            if n.master.as_ref() == Some(id) {
                n.master = None;
            }
        }
        if let Some(master) = master {
            self.replica_left(&master);
        }
    }

    /// How many failure reports about `id` are younger than `validity` ms (older ones are
    /// dropped).
    pub(crate) fn valid_reports(&mut self, id: &NodeId, now: u64, validity: u64) -> usize {
        self.reports.get_mut(id).map_or(0, |r| {
            r.retain(|_, at| now.saturating_sub(*at) <= validity);
            r.len()
        })
    }

    /// The owner of `slot`.
    #[must_use]
    pub(crate) fn owner(&self, slot: u16) -> Option<&Node> {
        self.nodes.get(usize::from(*self.slots.get(usize::from(slot))?))
    }

    /// Whether this node serves `slot`.
    #[must_use]
    pub(crate) fn mine(&self, slot: u16) -> bool {
        self.slots.get(usize::from(slot)).is_some_and(|&o| usize::from(o) == self.myself)
    }

    /// Gives `slot` to the node named `id`, unless the slot is assigned already (Redis's
    /// `clusterAddSlot`). Whether it was given.
    ///
    /// A primary getting its first slot becomes a target of replica migration when some other
    /// primary has replicas (Redis's `clusterNodeSetSlotBit`, `MIGRATE_TO`).
    pub(crate) fn add_slot(&mut self, slot: u16, id: &NodeId) -> bool {
        let Some(at) = self.nodes.iter().position(|n| n.id == *id) else { return false };
        match self.slots.get_mut(usize::from(slot)) {
            Some(owner) if *owner == UNASSIGNED => *owner = at as u16,
            _ => return false,
        }
        let first = {
            let n = &mut self.nodes[at];
            n.slot_count = n.slot_count.saturating_add(1);
            n.slot_count == 1
        };
        if first && self.masters_have_replicas() {
            self.nodes[at].flags |= flag::MIGRATE_TO;
        }
        true
    }

    /// Makes `slot` unassigned, whoever served it. Whether it was assigned.
    pub(crate) fn del_slot(&mut self, slot: u16) -> bool {
        match self.slots.get_mut(usize::from(slot)) {
            Some(owner) if *owner != UNASSIGNED => {
                let at = usize::from(std::mem::replace(owner, UNASSIGNED));
                if let Some(n) = self.nodes.get_mut(at) {
                    n.slot_count = n.slot_count.saturating_sub(1);
                }
                true
            }
            _ => false,
        }
    }

    /// Whether some primary has a replica (Redis's `clusterMastersHaveSlaves`).
    fn masters_have_replicas(&self) -> bool {
        self.nodes.iter().any(|n| n.master.is_some_and(|m| self.node(&m).is_some_and(|p| !p.is(flag::SLAVE))))
    }

    /// Makes the node named `id` the replica of `master`, or no one's. A primary left with no
    /// replica stops being a target of replica migration (Redis's `clusterNodeRemoveSlave`).
    pub(crate) fn set_master_of(&mut self, id: &NodeId, master: Option<NodeId>) {
        let Some(n) = self.node_mut(id) else { return };
        let old = std::mem::replace(&mut n.master, master);
        if let Some(old) = old.filter(|o| Some(*o) != master) {
            self.replica_left(&old);
        }
    }

    /// A replica of `master` left it: without any other, `master` loses `MIGRATE_TO`.
    fn replica_left(&mut self, master: &NodeId) {
        if self.replicas_of(master).next().is_none() {
            if let Some(m) = self.node_mut(master) {
                m.flags &= !flag::MIGRATE_TO;
            }
        }
    }

    /// The slots the node named `id` serves, as ascending ranges of consecutive slots.
    #[must_use]
    pub(crate) fn ranges_of(&self, id: &NodeId) -> Vec<(u16, u16)> {
        let Some(at) = self.nodes.iter().position(|n| n.id == *id) else { return Vec::new() };
        self.runs().filter(|&(_, _, owner)| owner == at).map(|(a, b, _)| (a, b)).collect()
    }

    /// Every maximal run of consecutive slots with one owner, ascending: `(first, last, owner)`.
    pub(crate) fn runs(&self) -> impl Iterator<Item = (u16, u16, usize)> + '_ {
        let mut slot = 0usize;
        std::iter::from_fn(move || {
            while slot < self.slots.len() && self.slots[slot] == UNASSIGNED {
                slot += 1;
            }
            let first = slot;
            let owner = *self.slots.get(first)?;
            while slot < self.slots.len() && self.slots[slot] == owner {
                slot += 1;
            }
            Some((first as u16, (slot - 1) as u16, usize::from(owner)))
        })
    }

    /// The node at `at` (an owner from [`State::runs`]).
    #[must_use]
    pub(crate) fn at(&self, at: usize) -> &Node {
        &self.nodes[at]
    }

    /// The primary of this node's shard: itself, or the primary it replicates.
    #[must_use]
    pub(crate) fn my_primary(&self) -> NodeId {
        let me = self.me();
        match &me.master {
            Some(master) if me.is(flag::SLAVE) => *master,
            _ => me.id,
        }
    }

    /// Which slots this node's shard serves (Redis's `clusterGetNodesServingMySlots`'s slots).
    #[must_use]
    pub(crate) fn served_by_my_shard(&self) -> Vec<bool> {
        let primary = self.my_primary();
        let at = self.nodes.iter().position(|n| n.id == primary).map(|a| a as u16);
        self.slots.iter().map(|&o| Some(o) == at).collect()
    }

    /// The replicas of the node named `id`, in the order they were learnt.
    pub(crate) fn replicas_of<'a>(&'a self, id: &'a NodeId) -> impl Iterator<Item = &'a Node> + 'a {
        self.nodes.iter().filter(move |n| n.master.as_ref() == Some(id) && n.is(flag::SLAVE))
    }

    /// The epoch shown for `node`: its primary's, for a replica whose primary is known.
    #[must_use]
    pub(crate) fn shown_epoch(&self, node: &Node) -> u64 {
        match node.master.as_ref().and_then(|m| self.node(m)) {
            Some(master) if node.is(flag::SLAVE) => master.config_epoch,
            _ => node.config_epoch,
        }
    }

    /// The node's line in CLUSTER NODES (and nodes.conf), without its newline, with the client
    /// port for a client on TLS (`tls`) or not.
    #[must_use]
    pub(crate) fn describe(&self, node: &Node, tls: bool) -> String {
        use std::fmt::Write;
        let mut line = format!("{} {}:{}@{}", node.id, node.ip, node.client_port(tls), node.cport);
        if !node.hostname.is_empty() {
            let _ = write!(line, ",{}", node.hostname);
        }
        let master = node.master.map_or_else(|| "-".to_owned(), |m| m.to_string());
        let link = if node.connected || node.is(flag::MYSELF) { "connected" } else { "disconnected" };
        let _ = write!(
            line,
            " {} {master} {} {} {} {link}",
            node.flag_names(),
            node.ping_sent,
            node.pong_received,
            self.shown_epoch(node)
        );
        for (a, b) in self.ranges_of(&node.id) {
            if a == b {
                let _ = write!(line, " {a}");
            } else {
                let _ = write!(line, " {a}-{b}");
            }
        }
        if node.is(flag::MYSELF) {
            let mut open: BTreeMap<u16, String> = BTreeMap::new();
            for (slot, from) in &self.importing {
                open.insert(*slot, format!(" [{slot}-<-{from}]"));
            }
            // Migrating wins over importing, as Redis shows one of them.
            for (slot, to) in &self.migrating {
                open.insert(*slot, format!(" [{slot}->-{to}]"));
            }
            open.values().for_each(|o| line.push_str(o));
        }
        line
    }

    /// CLUSTER NODES: every node's line, each ending in a newline.
    #[must_use]
    pub(crate) fn describe_all(&self, tls: bool) -> String {
        self.nodes.iter().map(|n| self.describe(n, tls) + "\n").collect()
    }

    /// Counts of assigned slots: `(assigned, ok, pfail, fail)`.
    #[must_use]
    pub(crate) fn slot_health(&self) -> (usize, usize, usize, usize) {
        let (mut assigned, mut ok, mut pfail, mut fail) = (0, 0, 0, 0);
        for &owner in self.slots.iter().filter(|&&o| o != UNASSIGNED) {
            assigned += 1;
            let node = &self.nodes[usize::from(owner)];
            if node.is(flag::FAIL) {
                fail += 1;
            } else if node.is(flag::PFAIL) {
                pfail += 1;
            } else {
                ok += 1;
            }
        }
        (assigned, ok, pfail, fail)
    }

    /// The cluster's health as Redis's `clusterUpdateState` counts it.
    #[must_use]
    pub(crate) fn health(&self, full_coverage: bool) -> Health {
        let covered = !full_coverage
            || self.slots.iter().all(|&o| o != UNASSIGNED && !self.nodes[usize::from(o)].is(flag::FAIL));
        let mut serving = vec![false; self.nodes.len()];
        for &o in self.slots.iter().filter(|&&o| o != UNASSIGNED) {
            serving[usize::from(o)] = true;
        }
        let (mut size, mut reachable) = (0, 0);
        for (node, _) in self.nodes.iter().zip(&serving).filter(|(n, &s)| n.is(flag::MASTER) && s) {
            size += 1;
            if !node.is(flag::FAIL) && !node.is(flag::PFAIL) {
                reachable += 1;
            }
        }
        Health { covered, size, reachable }
    }

    /// The highest configuration epoch of any node, or the current epoch if higher.
    #[must_use]
    pub(crate) fn max_epoch(&self) -> u64 {
        self.nodes.iter().map(|n| n.config_epoch).max().unwrap_or(0).max(self.current_epoch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl State {
        /// The name of `slot`'s owner.
        pub(crate) fn owner_id(&self, slot: u16) -> Option<NodeId> {
            self.owner(slot).map(|n| n.id)
        }

        /// How many slots the node named `id` serves.
        pub(crate) fn count_of(&self, id: &NodeId) -> usize {
            self.ranges_of(id).iter().map(|(a, b)| usize::from(b - a) + 1).sum()
        }
    }

    fn me() -> State {
        let mut n = Node::new(NodeId::random(), flag::MYSELF | flag::MASTER);
        n.ip = "127.0.0.1".into();
        n.tcp_port = 7000;
        n.cport = 17000;
        State::alone(n)
    }

    #[test]
    fn runs_and_lines_read_as_redis_s() {
        let mut s = me();
        let id = s.me().id;
        for slot in (0..=5).chain([7, 16383]) {
            assert!(s.add_slot(slot, &id));
        }
        assert!(!s.add_slot(7, &id), "assigned already");
        assert_eq!(s.ranges_of(&id), vec![(0, 5), (7, 7), (16383, 16383)]);
        assert_eq!(s.count_of(&id), 8);
        s.importing.insert(9, NodeId::parse(&[b'a'; 40]).unwrap());
        let line = s.describe(s.me(), false);
        assert_eq!(
            line,
            format!(
                "{id} 127.0.0.1:7000@17000 myself,master - 0 0 0 connected 0-5 7 16383 [9-<-{}]",
                "a".repeat(40)
            )
        );
        assert_eq!(s.health(true), Health { covered: false, size: 1, reachable: 1 });
        assert!(s.health(false).covered);
        assert_eq!(s.slot_health(), (8, 8, 0, 0));
    }

    #[test]
    fn migration_targets_are_primaries_that_had_replicas_or_got_slots_beside_some() {
        let mut s = me();
        let (a, b, r) = (NodeId::random(), NodeId::random(), NodeId::random());
        for id in [a, b] {
            s.node_or_add(id).flags = flag::MASTER;
        }
        s.add_slot(1, &a);
        assert!(!s.node(&a).unwrap().is(flag::MIGRATE_TO), "no primary has replicas yet");
        s.node_or_add(r).flags = flag::SLAVE;
        s.set_master_of(&r, Some(a));
        s.node_mut(&a).unwrap().flags |= flag::MIGRATE_TO; // as gossip marks a primary gaining one
        s.add_slot(2, &b);
        assert!(s.node(&b).unwrap().is(flag::MIGRATE_TO), "a first slot while a has a replica");
        assert_eq!((s.node(&b).unwrap().slot_count, s.node(&a).unwrap().slot_count), (1, 1));
        s.set_master_of(&r, Some(b));
        assert!(!s.node(&a).unwrap().is(flag::MIGRATE_TO), "a's last replica left");
        s.remove(&r);
        assert!(!s.node(&b).unwrap().is(flag::MIGRATE_TO), "b's last replica was forgotten");
        s.del_slot(2);
        assert_eq!(s.node(&b).unwrap().slot_count, 0);
    }

    #[test]
    fn forgetting_a_node_frees_its_slots_and_keeps_the_others() {
        let mut s = me();
        let me_id = s.me().id;
        let other = NodeId::random();
        s.node_or_add(other).flags = flag::MASTER;
        let third = NodeId::random();
        s.node_or_add(third).flags = flag::MASTER;
        s.add_slot(1, &other);
        s.add_slot(2, &third);
        s.add_slot(3, &me_id);
        s.remove(&other);
        assert!(s.owner(1).is_none());
        assert_eq!(s.owner(2).map(|n| n.id), Some(third));
        assert!(s.mine(3));
        assert_eq!(s.me().id, me_id);
    }
}
