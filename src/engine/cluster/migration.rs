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

/// Whether `n` is a primary replicas may move to: one that has had replicas (Redis's
/// `MIGRATE_TO`; a replica that failed stays listed, so a listed one counts too).
fn had_replicas(state: &State, n: &Node) -> bool {
    n.is(flag::MIGRATE_TO) || state.replicas_of(&n.id).next().is_some()
}

/// The replicas of `id` not flagged FAIL (Redis's `clusterCountNonFailingSlaves`).
fn working(state: &State, id: &NodeId) -> usize {
    state.replicas_of(id).filter(|r| !r.is(flag::FAIL)).count()
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
    let (mut orphaned, mut max, mut mine) = (0, 0, 0);
    for n in state.nodes().filter(|n| n.flags & (flag::MYSELF | flag::NOADDR | flag::HANDSHAKE) == 0) {
        if !n.is(flag::MASTER) || n.is(flag::FAIL) {
            continue;
        }
        let ok = working(state, &n.id);
        if ok == 0 && !state.ranges_of(&n.id).is_empty() && had_replicas(state, n) {
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
        let ok = if n.is(flag::MASTER) { working(state, &n.id) } else { 0 };
        let is_orphaned = n.is(flag::MASTER) && !n.is(flag::FAIL) && had_replicas(state, n) && ok == 0;
        if is_orphaned {
            if target.is_none() && !state.ranges_of(&n.id).is_empty() {
                target = Some(n.id);
            }
            orphans.since.entry(n.id).or_insert(now);
        } else {
            orphans.since.remove(&n.id);
        }
        if n.is(flag::MASTER) && ok == max {
            for r in state.replicas_of(&n.id) {
                if r.id.as_str() < candidate.as_str() {
                    candidate = r.id;
                }
            }
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
