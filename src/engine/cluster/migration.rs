//! Replica migration (Redis's `clusterHandleSlaveMigration`): when a primary that serves slots
//! and had replicas is left with none working (it is "orphaned"), a replica of the primary with
//! the most working replicas moves to it, so that one more failure does not lose its slots. Of
//! all such replicas, the one with the smallest name moves, and only while its own primary
//! keeps more than `cluster-migration-barrier` working replicas, after the orphan stayed
//! orphaned for [`DELAY_MS`].

use std::collections::HashMap;

use crate::config::Config;
use crate::engine::cluster::gossip::{self, Effect, Outcome};
use crate::engine::cluster::node::{flag, Node, NodeId};
use crate::engine::cluster::state::State;

/// How long a primary stays orphaned before a replica moves to it (Redis's
/// `CLUSTER_SLAVE_MIGRATION_DELAY`).
pub(crate) const DELAY_MS: u64 = 5000;

/// Since when each primary has been seen orphaned (Redis's `orphaned_time`).
#[derive(Debug, Default)]
pub(crate) struct Orphans {
    since: HashMap<NodeId, u64>,
}

/// Each primary's replicas, counted in one pass over the nodes (the cron then costs O(nodes),
/// not O(nodes²), in a large cluster).
#[derive(Default)]
struct Counts {
    /// Replicas listed, failed ones included.
    listed: HashMap<NodeId, usize>,
    /// Replicas not flagged FAIL (Redis's `clusterCountNonFailingSlaves`).
    working: HashMap<NodeId, usize>,
}

impl Counts {
    fn of(state: &State) -> Counts {
        let mut c = Counts::default();
        for r in state.nodes().filter(|n| n.is(flag::SLAVE)) {
            let Some(m) = r.master else { continue };
            *c.listed.entry(m).or_default() += 1;
            if !r.is(flag::FAIL) {
                *c.working.entry(m).or_default() += 1;
            }
        }
        c
    }

    fn working(&self, id: &NodeId) -> usize {
        self.working.get(id).copied().unwrap_or(0)
    }

    /// Whether `n` is a primary replicas may move to: one that has had replicas (Redis's
    /// `MIGRATE_TO`; a replica that failed stays listed, so a listed one counts too).
    fn had_replicas(&self, n: &Node) -> bool {
        n.is(flag::MIGRATE_TO) || self.listed.get(&n.id).is_some_and(|&k| k > 0)
    }
}

/// The replica side of the cron: moves this replica to an orphaned primary when it is the one
/// to move (see the module's header).
pub(crate) fn tick(state: &mut State, orphans: &mut Orphans, now: u64, config: &Config) -> Outcome {
    let mut out = Outcome::default();
    let me = state.me();
    if !me.is(flag::SLAVE) || !config.cluster_allow_replica_migration {
        return out;
    }
    let Some(my_master) = me.master else { return out };
    let counts = Counts::of(state);
    let (mut orphaned, mut max, mut mine) = (0, 0, 0);
    for n in state.nodes().filter(|n| n.flags & (flag::MYSELF | flag::NOADDR | flag::HANDSHAKE) == 0) {
        if !n.is(flag::MASTER) || n.is(flag::FAIL) {
            continue;
        }
        let ok = counts.working(&n.id);
        if ok == 0 && n.slot_count > 0 && counts.had_replicas(n) {
            orphaned += 1;
        }
        max = max.max(ok);
        if n.id == my_master {
            mine = ok;
        }
    }
    if orphaned == 0 || max < 2 || mine != max || !state.ok {
        return out;
    }
    let healthy = state.replicas_of(&my_master).filter(|r| r.flags & (flag::FAIL | flag::PFAIL) == 0).count();
    if healthy as u64 <= config.cluster_migration_barrier {
        return out;
    }
    let mut candidate = state.me().id;
    let mut target: Option<NodeId> = None;
    for n in state.nodes() {
        let ok = if n.is(flag::MASTER) { counts.working(&n.id) } else { 0 };
        let is_orphaned = n.is(flag::MASTER) && !n.is(flag::FAIL) && counts.had_replicas(n) && ok == 0;
        if is_orphaned {
            if target.is_none() && n.slot_count > 0 {
                target = Some(n.id);
            }
            orphans.since.entry(n.id).or_insert(now);
        } else {
            orphans.since.remove(&n.id);
        }
    }
    // The replicas of the primaries with the most working replicas: the smallest name moves.
    let most: std::collections::HashSet<NodeId> =
        state.nodes().filter(|n| n.is(flag::MASTER) && counts.working(&n.id) == max).map(|n| n.id).collect();
    for r in state.nodes().filter(|r| r.is(flag::SLAVE)) {
        if r.master.as_ref().is_some_and(|m| most.contains(m)) && r.id.as_str() < candidate.as_str() {
            candidate = r.id;
        }
    }
    let Some(target) = target else { return out };
    let since = orphans.since.get(&target).copied().unwrap_or(now);
    if candidate == state.me().id && now.saturating_sub(since) > DELAY_MS {
        tracing::warn!("Migrating to orphaned master {target}");
        gossip::set_master(state, target);
        orphans.since.clear();
        out.effects.push(Effect::Follow(target));
        out.save = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(c: char) -> NodeId {
        NodeId::parse(c.to_string().repeat(40).as_bytes()).unwrap()
    }

    /// This node (named `me`) in a cluster where a has replicas r1 and r2, b has one, and c
    /// serves slots with only a failed replica left.
    fn cluster(me: NodeId) -> State {
        let mut s = State::alone(Node::new(me, flag::MYSELF | flag::SLAVE));
        for m in [id('a'), id('b'), id('c')] {
            s.node_or_add(m).flags = flag::MASTER;
        }
        for (r, m) in [(id('1'), id('a')), (id('2'), id('a')), (id('3'), id('b')), (id('4'), id('c'))] {
            s.node_or_add(r).flags |= if r == id('4') { flag::SLAVE | flag::FAIL } else { flag::SLAVE };
            s.set_master_of(&r, Some(m));
        }
        for (slot, m) in [(0, id('a')), (1, id('b')), (2, id('c'))] {
            s.add_slot(slot, &m);
        }
        s.ok = true;
        s
    }

    /// What this node's cron does once the orphan has been orphaned past the delay.
    fn after_the_delay(s: &mut State, config: &Config) -> Vec<Effect> {
        let mut orphans = Orphans::default();
        assert!(tick(s, &mut orphans, 1_000, config).effects.is_empty(), "not orphaned long enough");
        tick(s, &mut orphans, 1_000 + DELAY_MS + 1, config).effects
    }

    #[test]
    fn the_smallest_replica_of_the_best_served_primary_moves_to_an_orphan_after_the_delay() {
        let config = Config::default();
        let mut s = cluster(id('1'));
        assert_eq!(after_the_delay(&mut s, &config), vec![Effect::Follow(id('c'))]);
        assert_eq!(s.me().master, Some(id('c')));
        assert!(after_the_delay(&mut cluster(id('2')), &config).is_empty(), "1 moves, not 2");
        let barrier = Config { cluster_migration_barrier: 2, ..Config::default() };
        assert!(after_the_delay(&mut cluster(id('1')), &barrier).is_empty(), "a keeps two");
    }
}
