//! Failover in the cluster, as Redis 7.0's `cluster.c`: a replica whose primary failed asks
//! the primaries for their votes (`clusterHandleSlaveFailover`), each primary votes at most
//! once per epoch and once per failed primary every two node timeouts
//! (`clusterSendFailoverAuthIfNeeded`), and the replica that gets a majority takes its
//! primary's slots at the election's epoch (`clusterFailoverReplaceYourMaster`). CLUSTER
//! FAILOVER starts one by hand: at once with FORCE, without votes with TAKEOVER, and by
//! default once the replica caught up with its primary, which pauses its writers meanwhile
//! (MFSTART). Plain logic over the state, as [`gossip`]; the bus carries out the effects.

use std::collections::HashMap;

use crate::config::Config;
use crate::engine::cluster::gossip::{self, Effect, Outcome};
use crate::engine::cluster::node::{flag, NodeId};
use crate::engine::cluster::state::State;
use crate::engine::cluster::wire::{self, kind, Body, Message};

/// How long a manual failover may take (Redis's `CLUSTER_MF_TIMEOUT`, ms).
pub(crate) const MANUAL_TIMEOUT: u64 = 5000;
/// The `mflags` bit of a primary paused for a manual failover.
pub(crate) const PAUSED: u8 = 1;
/// The `mflags` bit asking for a vote even though the primary is not failing.
const FORCEACK: u8 = 2;

/// How a manual failover was asked for (CLUSTER FAILOVER's option).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Manual {
    /// Wait until caught up with the primary, which pauses its writers.
    Default,
    /// Elect at once, the primary being up or not.
    Force,
    /// Take the slots without an election.
    Takeover,
}

/// A replica's election and a primary's votes.
#[derive(Debug, Default)]
pub(crate) struct Election {
    /// When the vote request is to be sent (unix ms; 0: no election).
    auth_time: u64,
    /// The request went out.
    auth_sent: bool,
    /// Votes received.
    auth_count: usize,
    /// The election's epoch.
    auth_epoch: u64,
    /// This replica's rank among its primary's replicas (by replication offset).
    auth_rank: usize,
    /// For each failed primary, when this node last voted for one of its replicas (ms).
    voted: HashMap<NodeId, u64>,
    /// A manual failover under way, until when (ms; 0: none).
    manual_end: u64,
    /// The manual failover may elect now.
    manual_can_start: bool,
    /// The primary's offset when it paused for the manual failover.
    manual_master_offset: Option<u64>,
    /// A primary paused for a manual failover of this replica.
    pub(crate) manual_replica: Option<NodeId>,
    /// When "unable to failover" was last logged (ms).
    cant_logged: u64,
}

/// How often "unable to failover" is logged at most (Redis's
/// `CLUSTER_CANT_FAILOVER_RELOG_PERIOD`).
const CANT_RELOG_MS: u64 = 300_000;

impl Election {
    /// Whether a manual failover is under way.
    #[must_use]
    pub(crate) fn manual(&self) -> bool {
        self.manual_end != 0
    }

    /// Ends any manual failover (Redis's `resetManualFailover`).
    pub(crate) fn reset_manual(&mut self) {
        self.manual_end = 0;
        self.manual_can_start = false;
        self.manual_master_offset = None;
        self.manual_replica = None;
    }
}

/// CLUSTER FAILOVER on a replica.
pub(crate) fn start_manual(
    state: &mut State,
    e: &mut Election,
    how: Manual,
    now: u64,
    config: &Config,
    offset: u64,
) -> Outcome {
    let mut out = Outcome::default();
    e.reset_manual();
    e.manual_end = now + MANUAL_TIMEOUT;
    let Some(master) = state.me().master else { return out };
    match how {
        Manual::Takeover => {
            bump_epoch(state);
            replace_master(state, e, config, offset, &mut out);
        }
        Manual::Force => e.manual_can_start = true,
        Manual::Default => {
            let m = gossip::message(state, config, kind::MFSTART, offset, Body::Empty);
            out.effects.push(Effect::Send(master, m));
        }
    }
    out
}

/// A primary receiving MFSTART from one of its replicas: pauses its writers and PINGs the
/// replica with its offset.
pub(crate) fn manual_start_received(
    state: &State,
    e: &mut Election,
    sender: NodeId,
    now: u64,
    config: &Config,
    offset: u64,
) -> Outcome {
    let mut out = Outcome::default();
    if state.node(&sender).and_then(|n| n.master) != Some(state.me().id) {
        return out;
    }
    e.reset_manual();
    e.manual_end = now + MANUAL_TIMEOUT;
    e.manual_replica = Some(sender);
    tracing::info!("Manual failover requested by replica {sender}.");
    out.effects.push(Effect::Pause(now + 2 * MANUAL_TIMEOUT));
    let mut ping = gossip::message(
        state,
        config,
        kind::PING,
        offset,
        Body::Ping { gossip: Vec::new(), hostname: state.me().hostname.clone() },
    );
    ping.mflags |= PAUSED;
    out.effects.push(Effect::Send(sender, ping));
    out
}

/// A replica hearing from its paused primary records the offset to reach.
pub(crate) fn heard_from(state: &State, e: &mut Election, msg: &Message, sender: NodeId) {
    if e.manual()
        && msg.mflags & PAUSED != 0
        && state.me().master == Some(sender)
        && e.manual_master_offset.is_none()
    {
        e.manual_master_offset = Some(msg.offset);
    }
}

/// A primary votes for a replica (Redis's `clusterSendFailoverAuthIfNeeded`).
pub(crate) fn vote(
    state: &mut State,
    e: &mut Election,
    requester: NodeId,
    msg: &Message,
    now: u64,
    config: &Config,
    offset: u64,
) -> Outcome {
    let mut out = Outcome::default();
    let me = state.me();
    let my_id = me.id;
    if me.is(flag::SLAVE) || state.ranges_of(&my_id).is_empty() {
        return out;
    }
    if msg.current_epoch < state.current_epoch || state.last_vote_epoch == state.current_epoch {
        return out;
    }
    let Some(node) = state.node(&requester) else { return out };
    let Some(master) = node.master.filter(|_| node.is(flag::SLAVE)).and_then(|m| state.node(&m)) else {
        return out;
    };
    let force = msg.mflags & FORCEACK != 0;
    if !master.is(flag::FAIL) && !force {
        return out;
    }
    let master_id = master.id;
    let timeout = config.cluster_node_timeout;
    if e.voted.get(&master_id).is_some_and(|&t| now.saturating_sub(t) < timeout.saturating_mul(2)) {
        tracing::info!(
            "Failover auth denied to {requester}: can't vote about this master before {} milliseconds",
            timeout.saturating_mul(2)
        );
        return out;
    }
    for slot in 0..crate::engine::slot::SLOTS {
        if !wire::has_slot(&msg.slots, slot) {
            continue;
        }
        if state.owner(slot).is_some_and(|o| o.config_epoch > msg.config_epoch) {
            tracing::info!(
                "Failover auth denied to {requester}: slot {slot} epoch is greater than the one requested"
            );
            return out;
        }
    }
    state.last_vote_epoch = state.current_epoch;
    e.voted.insert(master_id, now);
    out.save = true;
    tracing::info!("Failover auth granted to {requester} for epoch {}", state.current_epoch);
    let ack = gossip::message(state, config, kind::AUTH_ACK, offset, Body::Empty);
    out.effects.push(Effect::Send(requester, ack));
    out
}

/// A vote for this replica's election.
pub(crate) fn acked(state: &State, e: &mut Election, voter: NodeId, msg: &Message) {
    let Some(n) = state.node(&voter) else { return };
    if n.is(flag::MASTER) && !state.ranges_of(&voter).is_empty() && msg.current_epoch >= e.auth_epoch {
        e.auth_count += 1;
    }
}

/// A replica's part of each cron tick (Redis's `clusterHandleManualFailover` and
/// `clusterHandleSlaveFailover`).
pub(crate) fn tick(
    state: &mut State,
    e: &mut Election,
    now: u64,
    config: &Config,
    (offset, data_age): (u64, u64),
    rng: &mut crate::storage::rng::Rng,
) -> Outcome {
    let mut out = Outcome::default();
    if e.manual() && e.manual_end < now {
        tracing::info!("Manual failover timed out.");
        if e.manual_replica.is_some() {
            out.effects.push(Effect::Unpause);
        }
        e.reset_manual();
    }
    let me = state.me();
    if !me.is(flag::SLAVE) {
        return out;
    }
    if e.manual() && !e.manual_can_start && e.manual_master_offset.is_some_and(|o| offset >= o) {
        tracing::info!("All master replication stream processed, manual failover can start.");
        e.manual_can_start = true;
    }
    let manual = e.manual() && e.manual_can_start;
    let Some(master) = me.master.and_then(|m| state.node(&m)) else { return out };
    let master_id = master.id;
    if (!manual && (!master.is(flag::FAIL) || config.cluster_replica_no_failover))
        || state.ranges_of(&master_id).is_empty()
    {
        return out;
    }
    let timeout = config.cluster_node_timeout;
    // A replica whose data is too old does not stand (Redis's data-age check): the age since
    // the primary was last heard, less one node timeout.
    let factor = config.cluster_replica_validity_factor;
    let age = if data_age > timeout { data_age - timeout } else { data_age };
    let limit =
        config.repl_ping_replica_period.saturating_mul(1000).saturating_add(timeout.saturating_mul(factor));
    if !manual && factor != 0 && age > limit {
        if now.saturating_sub(e.cant_logged) > CANT_RELOG_MS {
            e.cant_logged = now;
            tracing::warn!(
                "Currently unable to failover: Disconnected from master for longer than allowed. Please check the 'cluster-replica-validity-factor' configuration option."
            );
        }
        return out;
    }
    let auth_timeout = (timeout.saturating_mul(2)).max(2000);
    let auth_retry = auth_timeout.saturating_mul(2);
    let auth_age = now.saturating_sub(e.auth_time);
    if e.auth_time == 0 || (now > e.auth_time && auth_age > auth_retry) {
        e.auth_count = 0;
        e.auth_sent = false;
        e.auth_rank = rank(state, &master_id, offset);
        e.auth_time = if manual {
            e.auth_rank = 0;
            now
        } else {
            now + 500 + (rng.next_u64() % 500) + e.auth_rank as u64 * 1000
        };
        tracing::info!(
            "Start of election delayed for {} milliseconds (rank #{}, offset {offset}).",
            e.auth_time - now,
            e.auth_rank
        );
        return out;
    }
    if !e.auth_sent && !manual {
        let newrank = rank(state, &master_id, offset);
        if newrank > e.auth_rank {
            e.auth_time += (newrank - e.auth_rank) as u64 * 1000;
            e.auth_rank = newrank;
        }
    }
    if now < e.auth_time {
        return out;
    }
    if auth_age > auth_timeout && e.auth_sent {
        return out;
    }
    if !e.auth_sent {
        state.current_epoch = state.current_epoch.wrapping_add(1);
        e.auth_epoch = state.current_epoch;
        e.auth_sent = true;
        tracing::info!("Starting a failover election for epoch {}.", e.auth_epoch);
        let mut request = gossip::message(state, config, kind::AUTH_REQUEST, offset, Body::Empty);
        if e.manual() {
            request.mflags |= FORCEACK;
        }
        out.effects.push(Effect::Broadcast(request));
        out.save = true;
        return out;
    }
    let needed = state.health(false).size / 2 + 1;
    if e.auth_count >= needed {
        tracing::info!("Failover election won: I'm the new master.");
        if state.me().config_epoch < e.auth_epoch {
            state.me_mut().config_epoch = e.auth_epoch;
            tracing::info!("configEpoch set to {} after successful failover", e.auth_epoch);
        }
        replace_master(state, e, config, offset, &mut out);
    }
    out
}

/// How many replicas of `master` that may fail over have replicated more than `offset`.
fn rank(state: &State, master: &NodeId, offset: u64) -> usize {
    let me = state.me().id;
    state
        .replicas_of(master)
        .filter(|r| r.id != me && !r.is(flag::NOFAILOVER) && r.repl_offset > offset)
        .count()
}

/// Gives this node a new epoch without an election, unless its epoch is the highest and its
/// own (Redis's `clusterBumpConfigEpochWithoutConsensus`). Whether it changed.
pub(crate) fn bump_epoch(state: &mut State) -> bool {
    let max = state.max_epoch();
    let mine = state.me().config_epoch;
    if mine == 0 || mine != max {
        state.current_epoch = state.current_epoch.wrapping_add(1);
        let epoch = state.current_epoch;
        state.me_mut().config_epoch = epoch;
        true
    } else {
        false
    }
}

/// This replica becomes a primary with its primary's slots, and tells everyone.
fn replace_master(state: &mut State, e: &mut Election, config: &Config, offset: u64, out: &mut Outcome) {
    let Some(old) = state.me().master else { return };
    let me = state.me_mut();
    me.flags = (me.flags & !flag::SLAVE) | flag::MASTER;
    let my_id = me.id;
    state.set_master_of(&my_id, None);
    for (a, b) in state.ranges_of(&old) {
        for slot in a..=b {
            state.del_slot(slot);
            state.add_slot(slot, &my_id);
        }
    }
    e.reset_manual();
    e.auth_time = 0;
    out.save = true;
    out.effects.push(Effect::Promote);
    let pong = gossip::message(
        state,
        config,
        kind::PONG,
        offset,
        Body::Ping { gossip: Vec::new(), hostname: state.me().hostname.clone() },
    );
    out.effects.push(Effect::Broadcast(pong));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cluster::node::Node;

    /// Three primaries (a is this node's view) and b's replica r.
    fn cluster() -> (State, NodeId, NodeId, NodeId) {
        let mut me = Node::new(NodeId::random(), flag::MYSELF | flag::MASTER);
        me.config_epoch = 1;
        let mut s = State::alone(me);
        let a = s.me().id;
        let (b, c, r) = (NodeId::random(), NodeId::random(), NodeId::random());
        for (id, epoch) in [(b, 2), (c, 3)] {
            let n = s.node_or_add(id);
            n.flags = flag::MASTER;
            n.config_epoch = epoch;
        }
        let n = s.node_or_add(r);
        n.flags = flag::SLAVE;
        n.master = Some(b);
        for (slot, id) in [(0, a), (1, b), (2, c)] {
            s.add_slot(slot, &id);
        }
        s.current_epoch = 3;
        (s, b, c, r)
    }

    #[test]
    fn a_primary_votes_once_for_a_failed_primary_s_replica() {
        let config = Config::default();
        let (mut s, b, _, r) = cluster();
        let mut e = Election::default();
        let mut request = gossip::message(&s, &config, kind::AUTH_REQUEST, 0, Body::Empty);
        request.current_epoch = 4;
        request.config_epoch = 2;
        request.slots = s.bitmap_of(&b);
        s.current_epoch = 4;
        // b is up: no vote.
        assert!(vote(&mut s, &mut e, r, &request, 1000, &config, 0).effects.is_empty());
        s.node_mut(&b).unwrap().flags |= flag::FAIL;
        let out = vote(&mut s, &mut e, r, &request, 1000, &config, 0);
        assert!(matches!(&out.effects[..], [Effect::Send(to, m)] if *to == r && m.kind == kind::AUTH_ACK));
        assert_eq!(s.last_vote_epoch, 4);
        // Not twice in one epoch, nor for the same primary within two timeouts.
        assert!(vote(&mut s, &mut e, r, &request, 1001, &config, 0).effects.is_empty());
        s.current_epoch = 5;
        request.current_epoch = 5;
        assert!(vote(&mut s, &mut e, r, &request, 2000, &config, 0).effects.is_empty());
    }

    #[test]
    fn a_replica_with_a_majority_takes_its_primary_s_slots() {
        let config = Config::default();
        // The replica's view: it is r, replicating b.
        let mut me = Node::new(NodeId::random(), flag::MYSELF | flag::SLAVE);
        let b = NodeId::random();
        me.master = Some(b);
        let mut s = State::alone(me);
        let r = s.me().id;
        let (a, c) = (NodeId::random(), NodeId::random());
        for (id, epoch) in [(a, 1), (b, 2), (c, 3)] {
            let n = s.node_or_add(id);
            n.flags = flag::MASTER;
            n.config_epoch = epoch;
        }
        for (slot, id) in [(0, a), (1, b), (2, c)] {
            s.add_slot(slot, &id);
        }
        s.current_epoch = 3;
        s.node_mut(&b).unwrap().flags |= flag::FAIL;
        let mut e = Election::default();
        let mut rng = crate::storage::rng::Rng::new(5);
        tick(&mut s, &mut e, 10_000, &config, (0, 0), &mut rng);
        let due = e.auth_time;
        assert!((10_500..11_000).contains(&due), "rank 0 waits 500 to 1000 ms: {due}");
        let out = tick(&mut s, &mut e, due, &config, (0, 0), &mut rng);
        assert!(out
            .effects
            .iter()
            .any(|x| matches!(x, Effect::Broadcast(m) if m.kind == kind::AUTH_REQUEST)));
        assert_eq!(s.current_epoch, 4);
        let mut ack = gossip::message(&s, &config, kind::AUTH_ACK, 0, Body::Empty);
        ack.current_epoch = 4;
        acked(&s, &mut e, a, &ack);
        assert!(!tick(&mut s, &mut e, due + 10, &config, (0, 0), &mut rng)
            .effects
            .contains(&Effect::Promote));
        acked(&s, &mut e, c, &ack);
        let out = tick(&mut s, &mut e, due + 20, &config, (0, 0), &mut rng);
        assert!(out.effects.contains(&Effect::Promote));
        assert!(s.me().is(flag::MASTER) && s.mine(1));
        assert_eq!(s.me().config_epoch, 4);
        let _ = r;
    }
}
