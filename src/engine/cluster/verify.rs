//! The dataset against the slot table once it is loaded (Redis's `verifyClusterConfigWithData`):
//! a primary with keys outside database 0 refuses to run; keys of a slot it does not serve make
//! it take the slot when nobody serves it, else mark the slot importing from its owner, so that
//! the keys stay reachable (ASKING) until an operator fixes the slot (`redis-cli --cluster fix`).

use std::rc::Rc;
use std::time::Duration;

use crate::engine::core::Core;
use crate::engine::shard::Shard;
use crate::engine::slot::ShardId;

/// Waits for the dataset to load, then checks it (on core 0, in cluster mode).
pub(crate) async fn after_loading(core: Rc<Core>) {
    while core.global.loading() {
        if core.global.shutting_down() {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let Some(cluster) = &core.global.cluster else { return };
    if cluster.view().me().is(super::node::flag::SLAVE) {
        return;
    }
    let mut other_dbs = false;
    let mut occupied = Vec::new();
    for shard in 0..core.router.shards() {
        let found = core
            .router
            .run(ShardId(shard), None, |sh: &mut Shard| {
                let others = sh.dbs().iter().skip(1).any(|db| db.len() > 0);
                let slots: Vec<u16> =
                    sh.dbs()[0].slot_index().map(|ix| ix.occupied().collect()).unwrap_or_default();
                (others, slots)
            })
            .await;
        let Ok((others, slots)) = found else { return };
        other_dbs |= others;
        occupied.extend(slots);
    }
    if other_dbs {
        tracing::warn!("You can't have keys in a DB different than DB 0 when in Cluster mode. Exiting.");
        core.global.fail_startup();
        return;
    }
    let config = core.config();
    cluster.apply(&config, |state| {
        let me = state.me().id;
        let mut changed = false;
        for &slot in &occupied {
            if state.mine(slot) || state.importing.contains_key(&slot) {
                continue;
            }
            match state.owner(slot).map(|n| n.id) {
                None => {
                    tracing::warn!("I have keys for unassigned slot {slot}. Taking responsibility for it.");
                    state.add_slot(slot, &me);
                }
                Some(owner) => {
                    tracing::warn!(
                        "I have keys for slot {slot}, but the slot is assigned to another node. Setting it to importing state."
                    );
                    state.importing.insert(slot, owner);
                }
            }
            changed = true;
        }
        ((), changed)
    });
}
