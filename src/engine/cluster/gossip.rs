//! The cluster bus's rules, as Redis 7.0's `cluster.c`: what a message does to this node's
//! view of the cluster (`clusterProcessPacket`, the gossip section, slot ownership by epoch,
//! failure reports and FAIL), and the messages this node sends (`clusterBuildMessageHdr`,
//! `clusterSendPing`'s choice of gossip). Plain logic over [`State`] and [`Soft`]: the bus
//! (`bus.rs`) owns the sockets and carries out the [`Effect`]s.

use std::collections::HashMap;

use crate::config::Config;
use crate::engine::cluster::node::{flag, Node, NodeId};
use crate::engine::cluster::state::State;
use crate::engine::cluster::wire::{self, kind, Body, Gossip, Message};
use crate::engine::slot::SLOTS;

/// A failure report is valid for this many node timeouts.
const REPORT_VALIDITY_MULT: u64 = 2;
/// The most nodes learnt from gossip (a cluster has at most 16384 primaries).
const MAX_NODES: usize = 16384;
/// A forgotten node is not learnt again from gossip for this long (ms).
pub(crate) const FORGET_TTL_MS: u64 = 60_000;

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// The link this node opened to the node named so (its PONGs count for liveness).
    Outbound(NodeId),
    /// A link another node opened.
    Inbound,
}

/// What the bus knows of the nodes besides the published state: when each node last sent
/// anything, when handshakes began, when nodes were marked failing.
#[derive(Debug, Default)]
pub(crate) struct Soft {
    /// When each node last sent anything (ms).
    pub(crate) data_received: HashMap<NodeId, u64>,
    /// When each handshake node was created (ms).
    pub(crate) created: HashMap<NodeId, u64>,
    /// When each node was marked failing (ms).
    fail_time: HashMap<NodeId, u64>,
}

impl Soft {
    /// Forgets what was kept about `id`.
    pub(crate) fn forget(&mut self, id: &NodeId) {
        self.data_received.remove(id);
        self.created.remove(id);
        self.fail_time.remove(id);
    }
}

/// What the bus must do after a message or a tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Answer on the link the message came in on.
    Reply(Message),
    /// Send on the outbound link to this node.
    Send(NodeId, Message),
    /// Send to every node with an outbound link.
    Broadcast(Message),
    /// Close the outbound link to this node (its address changed, or it was renamed).
    Close(NodeId),
    /// Replicate this node (this node became, or moved as, its replica).
    Follow(NodeId),
    /// Stop replicating: this replica became a primary.
    Promote,
    /// Pause writers until then (unix ms): a manual failover of one of this node's replicas.
    Pause(u64),
    /// Lift that pause.
    Unpause,
    /// Delete this node's keys in these slots: another primary took them at a newer epoch
    /// while this one stays a primary (Redis's dirty slots and `delKeysInSlot`).
    DropSlots(Vec<u16>),
}

/// What the processing of a message or a tick did.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// For the bus to carry out, in order.
    pub(crate) effects: Vec<Effect>,
    /// nodes.conf must be saved.
    pub(crate) save: bool,
    /// The message's sender, when known (and past its handshake).
    pub(crate) sender: Option<NodeId>,
}

/// The message header this node sends (Redis's `clusterBuildMessageHdr`), with `body`.
#[must_use]
pub(crate) fn message(state: &State, config: &Config, kind: u16, offset: u64, body: Body) -> Message {
    let me = state.me();
    let master = me.master.filter(|_| me.is(flag::SLAVE)).and_then(|m| state.node(&m));
    let owner = master.unwrap_or(me);
    let (port, pport) = ports(me, config.tls_cluster);
    let mut sender = [0u8; 40];
    sender.copy_from_slice(me.id.as_str().as_bytes());
    Message {
        kind,
        port,
        current_epoch: state.current_epoch,
        config_epoch: owner.config_epoch,
        offset,
        sender,
        slots: state.bitmap_of(&owner.id),
        master: master.map(|m| m.id),
        ip: config.cluster_announce_ip.clone(),
        pport,
        cport: me.cport,
        flags: me.flags,
        fail: !state.ok,
        mflags: 0,
        body,
    }
}

/// A node's `port` and `pport` on the wire: the port of the bus's kind, then the other one
/// (as Redis 7.2 sends them; Redis 7.0 reads `pport` only with `tls-cluster`), so TLS clients
/// are sent to TLS ports in either mode.
fn ports(n: &Node, tls_cluster: bool) -> (u16, u16) {
    if tls_cluster {
        (n.tls_port, n.tcp_port)
    } else {
        (n.tcp_port, n.tls_port)
    }
}

/// A peer's address field, kept only when it is an address (it goes into nodes.conf).
fn address(text: &str) -> Option<String> {
    text.parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

/// A peer's hostname, kept only when made of what a hostname may hold.
fn hostname(text: &str) -> String {
    if text.len() < 256 && text.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-') {
        text.to_owned()
    } else {
        String::new()
    }
}

/// Sets a node's client ports from the wire's `port` and `pport` (a TLS port this node
/// knows is kept when the peer sends none).
fn set_ports(n: &mut Node, port: u16, pport: u16, tls_cluster: bool) {
    if tls_cluster {
        (n.tls_port, n.tcp_port) = (port, pport);
    } else {
        n.tcp_port = port;
        if pport != 0 {
            n.tls_port = pport;
        }
    }
}

/// A PING, PONG or MEET with gossip about a few nodes (Redis's `clusterSendPing`): a tenth of
/// the nodes, at least three, at random, then every node possibly failing.
#[must_use]
pub(crate) fn ping(
    state: &State,
    config: &Config,
    kind: u16,
    offset: u64,
    rng: &mut crate::storage::rng::Rng,
) -> Message {
    let nodes: Vec<&Node> = state.nodes().collect();
    let fresh = nodes.len().saturating_sub(2);
    let wanted = (nodes.len() / 10).max(3).min(fresh);
    let mut chosen: Vec<&Node> = Vec::new();
    for _ in 0..wanted * 3 {
        if chosen.len() >= wanted {
            break;
        }
        let n = nodes[rng.below(nodes.len())];
        let skip = n.is(flag::MYSELF)
            || n.is(flag::PFAIL)
            || n.flags & (flag::HANDSHAKE | flag::NOADDR) != 0
            || (!n.connected && state.ranges_of(&n.id).is_empty())
            || chosen.iter().any(|c| c.id == n.id);
        if !skip {
            chosen.push(n);
        }
    }
    let pfail = nodes.iter().filter(|n| n.is(flag::PFAIL) && n.flags & (flag::HANDSHAKE | flag::NOADDR) == 0);
    chosen.extend(pfail);
    let gossip = chosen
        .iter()
        .map(|n| {
            let (port, pport) = ports(n, config.tls_cluster);
            Gossip {
                id: n.id,
                ping_sent: (n.ping_sent / 1000) as u32,
                pong_received: (n.pong_received / 1000) as u32,
                ip: n.ip.clone(),
                port,
                cport: n.cport,
                flags: n.flags,
                pport,
            }
        })
        .collect();
    let hostname = state.me().hostname.clone();
    message(state, config, kind, offset, Body::Ping { gossip, hostname })
}

/// The context of one received message.
#[derive(Debug, Clone)]
pub(crate) struct Arrival<'a> {
    /// The link it came on.
    pub(crate) link: Link,
    /// The peer's address on that link.
    pub(crate) peer_ip: String,
    /// This node's address on that link.
    pub(crate) local_ip: String,
    /// Now (unix ms).
    pub(crate) now: u64,
    /// The configuration.
    pub(crate) config: &'a Config,
    /// This node's replication offset.
    pub(crate) offset: u64,
}

/// Applies `msg` to the state (Redis's `clusterProcessPacket`).
pub(crate) fn receive(
    state: &mut State,
    soft: &mut Soft,
    msg: &Message,
    at: &Arrival<'_>,
    rng: &mut crate::storage::rng::Rng,
) -> Outcome {
    let mut out = Outcome::default();
    let config = at.config;
    let claimed = msg.sender_id();
    let handshaking = |state: &State, id: &NodeId| state.node(id).is_some_and(|n| n.is(flag::HANDSHAKE));
    let mut sender: Option<NodeId> = match at.link {
        Link::Outbound(id) if !handshaking(state, &id) => Some(id),
        _ => claimed.filter(|id| state.node(id).is_some() && !handshaking(state, id)),
    };
    if let Some(s) = sender {
        soft.data_received.insert(s, at.now);
        if msg.current_epoch > state.current_epoch {
            state.current_epoch = msg.current_epoch;
            out.save = true;
        }
        if let Some(n) = state.node_mut(&s) {
            if msg.config_epoch > n.config_epoch && msg.master.is_none() {
                n.config_epoch = msg.config_epoch;
                out.save = true;
            }
            n.repl_offset = msg.offset;
        }
    }
    let is_ping = matches!(msg.kind, kind::PING | kind::PONG | kind::MEET);
    if msg.kind == kind::PING || msg.kind == kind::MEET {
        let me = state.me_mut();
        if (msg.kind == kind::MEET || me.ip.is_empty())
            && config.cluster_announce_ip.is_empty()
            && me.ip != at.local_ip
        {
            me.ip.clone_from(&at.local_ip);
            out.save = true;
        }
        if sender.is_none() && msg.kind == kind::MEET {
            let id = NodeId::random();
            let mut n = Node::new(id, flag::HANDSHAKE);
            n.ip = address(&msg.ip).unwrap_or_else(|| at.peer_ip.clone());
            set_ports(&mut n, msg.port, msg.pport, config.tls_cluster);
            n.cport = msg.cport;
            *state.node_or_add(id) = n;
            soft.created.insert(id, at.now);
            out.save = true;
        }
    }
    if is_ping {
        if let Link::Outbound(link_node) = at.link {
            if handshaking(state, &link_node) {
                match (sender, claimed) {
                    (Some(known), _) => {
                        // Met again under an address of a node already known.
                        update_address(state, &known, msg, at, &mut out);
                        state.remove(&link_node);
                        soft.forget(&link_node);
                        out.effects.push(Effect::Close(link_node));
                        out.save = true;
                        return finish(state, msg, at, out, rng);
                    }
                    (None, Some(real)) => {
                        state.rename(&link_node, real);
                        soft.created.remove(&link_node);
                        if let Some(n) = state.node_mut(&real) {
                            n.flags = (n.flags & !(flag::HANDSHAKE | flag::MEET))
                                | (msg.flags & (flag::MASTER | flag::SLAVE));
                        }
                        // The bus keeps the link under the node's old name: let it reconnect.
                        out.effects.push(Effect::Close(link_node));
                        sender = Some(real);
                        out.save = true;
                    }
                    (None, None) => return finish(state, msg, at, out, rng),
                }
            } else if claimed != Some(link_node) {
                // Another node answers at this address: its address is no longer known.
                if let Some(n) = state.node_mut(&link_node) {
                    n.flags |= flag::NOADDR;
                    n.ip.clear();
                    (n.tcp_port, n.tls_port, n.cport) = (0, 0, 0);
                }
                out.effects.push(Effect::Close(link_node));
                out.save = true;
                return finish(state, msg, at, out, rng);
            }
        }
        if let Some(s) = sender {
            let nofailover = msg.flags & flag::NOFAILOVER;
            if let Some(n) = state.node_mut(&s) {
                n.flags = (n.flags & !flag::NOFAILOVER) | nofailover;
            }
            if msg.kind == kind::PING {
                update_address(state, &s, msg, at, &mut out);
            }
        }
        if let (Link::Outbound(id), kind::PONG) = (at.link, msg.kind) {
            let fail_time = soft.fail_time.get(&id).copied().unwrap_or(0);
            let timeout = config.cluster_node_timeout;
            let has_slots = !state.ranges_of(&id).is_empty();
            if let Some(n) = state.node_mut(&id) {
                n.pong_received = at.now;
                n.ping_sent = 0;
                if n.is(flag::PFAIL) {
                    n.flags &= !flag::PFAIL;
                    out.save = true;
                } else if n.is(flag::FAIL)
                    && (n.is(flag::SLAVE)
                        || !has_slots
                        || at.now.saturating_sub(fail_time) > timeout.saturating_mul(2))
                {
                    tracing::info!("Clear FAIL state for node {id}: is reachable again.");
                    n.flags &= !flag::FAIL;
                    out.save = true;
                }
            }
        }
        if let Some(s) = sender {
            role(state, &s, msg, &mut out);
            slots(state, soft, &s, msg, at, &mut out);
            collision(state, &s, msg, &mut out);
            gossip_section(state, soft, Some(s), msg, at, &mut out);
            if let (Body::Ping { hostname: name, .. }, Some(n)) = (&msg.body, state.node_mut(&s)) {
                let name = hostname(name);
                if n.hostname != name {
                    n.hostname = name;
                    out.save = true;
                }
            }
        } else if msg.kind == kind::MEET {
            // As Redis: the gossip of an unknown node counts only in its MEET.
            gossip_section(state, soft, None, msg, at, &mut out);
        }
    } else if let Some(s) = sender {
        match (&msg.body, msg.kind) {
            (Body::Fail(about), _) => {
                if let Some(n) = state.node_mut(about) {
                    if !n.is(flag::FAIL) && !n.is(flag::MYSELF) {
                        tracing::info!("FAIL message received from {s} about {about}");
                        n.flags = (n.flags | flag::FAIL) & !flag::PFAIL;
                        soft.fail_time.insert(*about, at.now);
                        out.save = true;
                    }
                }
            }
            (Body::Update { config_epoch, id, slots: bits }, _) => {
                let known = state.node(id).is_some_and(|n| n.config_epoch < *config_epoch);
                if known {
                    if let Some(n) = state.node_mut(id) {
                        if n.is(flag::SLAVE) {
                            n.flags = (n.flags & !flag::SLAVE) | flag::MASTER;
                        }
                        n.config_epoch = *config_epoch;
                    }
                    state.set_master_of(id, None);
                    update_slots(state, config, id, *config_epoch, bits, &mut out);
                    out.save = true;
                }
            }
            _ => {}
        }
    }
    finish(state, msg, at, out, rng)
}

/// A PING or MEET is answered with a PONG on its link, whoever sent it.
fn finish(
    state: &State,
    msg: &Message,
    at: &Arrival<'_>,
    mut out: Outcome,
    rng: &mut crate::storage::rng::Rng,
) -> Outcome {
    if out.sender.is_none() {
        out.sender = match at.link {
            Link::Outbound(id) => Some(id),
            Link::Inbound => msg.sender_id(),
        }
        .filter(|id| state.node(id).is_some_and(|n| !n.is(flag::HANDSHAKE)));
    }
    if msg.kind == kind::PING || msg.kind == kind::MEET {
        out.effects.insert(0, Effect::Reply(ping(state, at.config, kind::PONG, at.offset, rng)));
    }
    out
}

/// Takes a sender's address from its PING on a link it opened (Redis's
/// `nodeUpdateAddressIfNeeded`).
fn update_address(state: &mut State, id: &NodeId, msg: &Message, at: &Arrival<'_>, out: &mut Outcome) {
    if at.link == Link::Outbound(*id) {
        return;
    }
    let ip = address(&msg.ip).unwrap_or_else(|| at.peer_ip.clone());
    let tls_cluster = at.config.tls_cluster;
    let Some(n) = state.node_mut(id) else { return };
    let (port, pport) = ports(n, tls_cluster);
    if n.ip == ip && port == msg.port && pport == msg.pport && n.cport == msg.cport {
        return;
    }
    n.ip = ip;
    set_ports(n, msg.port, msg.pport, tls_cluster);
    n.cport = msg.cport;
    n.flags &= !flag::NOADDR;
    tracing::info!("Address updated for node {id}, now {}:{}", n.ip, msg.port);
    out.effects.push(Effect::Close(*id));
    out.save = true;
    if state.me().master == Some(*id) && state.me().is(flag::SLAVE) {
        out.effects.push(Effect::Follow(*id));
    }
}

/// The sender's role: a primary, or the replica of the primary it names.
fn role(state: &mut State, id: &NodeId, msg: &Message, out: &mut Outcome) {
    let Some(n) = state.node_mut(id) else { return };
    match msg.master {
        None => {
            if !n.is(flag::MASTER) || n.master.is_some() {
                // A replica promoted: replicas may migrate to it (Redis's
                // `clusterSetNodeAsMaster`).
                let promoted = if n.is(flag::SLAVE) { flag::MIGRATE_TO } else { 0 };
                n.flags = (n.flags & !flag::SLAVE) | flag::MASTER | promoted;
                state.set_master_of(id, None);
                out.save = true;
            }
        }
        Some(master) => {
            if n.is(flag::MASTER) {
                n.flags = (n.flags & !(flag::MASTER | flag::MIGRATE_TO)) | flag::SLAVE;
                out.save = true;
                let own: Vec<(u16, u16)> = state.ranges_of(id);
                for (a, b) in own {
                    (a..=b).for_each(|s| {
                        state.del_slot(s);
                    });
                }
            }
            if state.node(&master).is_some() {
                if state.node(id).is_some_and(|n| n.master != Some(master)) {
                    state.set_master_of(id, Some(master));
                    out.save = true;
                }
                if let Some(m) = state.node_mut(&master) {
                    m.flags |= flag::MIGRATE_TO;
                }
            }
        }
    }
}

/// The sender's slots: claimed by epoch (`clusterUpdateSlotsConfigWith`), and an UPDATE back
/// when it claims slots another node holds at a higher epoch.
fn slots(
    state: &mut State,
    _soft: &mut Soft,
    id: &NodeId,
    msg: &Message,
    at: &Arrival<'_>,
    out: &mut Outcome,
) {
    let Some(sender) = state.node(id) else { return };
    let master_id = if sender.is(flag::MASTER) { Some(*id) } else { sender.master };
    let Some(master_id) = master_id else { return };
    if state.node(&master_id).is_none() {
        return;
    }
    let dirty = state.bitmap_of(&master_id)[..] != msg.slots[..];
    if !dirty {
        return;
    }
    if sender.is(flag::MASTER) {
        update_slots(state, at.config, id, msg.config_epoch, &msg.slots, out);
    }
    for slot in 0..SLOTS {
        if !wire::has_slot(&msg.slots, slot) {
            continue;
        }
        match state.owner(slot) {
            Some(owner) if owner.id != *id && owner.config_epoch > msg.config_epoch => {
                let body = Body::Update {
                    config_epoch: owner.config_epoch,
                    id: owner.id,
                    slots: state.bitmap_of(&owner.id),
                };
                let update = message(state, at.config, kind::UPDATE, at.offset, body);
                out.effects.push(Effect::Send(*id, update));
                break;
            }
            _ => {}
        }
    }
}

/// Rebinds the slots `sender` claims at `epoch` that are unassigned or held at a lower epoch
/// (Redis's `clusterUpdateSlotsConfigWith`); if this node lost its last slot to it, it
/// follows it.
fn update_slots(
    state: &mut State,
    config: &Config,
    sender: &NodeId,
    epoch: u64,
    bits: &[u8; wire::SLOT_BYTES],
    out: &mut Outcome,
) {
    let me = state.me();
    if *sender == me.id {
        return;
    }
    let current_master = if me.is(flag::MASTER) { Some(me.id) } else { me.master };
    let myself = me.id;
    let (mut sender_slots, mut migrated_our_slots) = (0usize, 0usize);
    let mut dirty = Vec::new();
    for slot in 0..SLOTS {
        if !wire::has_slot(bits, slot) {
            continue;
        }
        sender_slots += 1;
        let owner = state.owner(slot).map(|o| (o.id, o.config_epoch));
        if owner.is_some_and(|(o, _)| o == *sender) || state.importing.contains_key(&slot) {
            continue;
        }
        if owner.is_none_or(|(_, e)| e < epoch) {
            if owner.is_some_and(|(o, _)| Some(o) == current_master) {
                migrated_our_slots += 1;
            }
            if owner.is_some_and(|(o, _)| o == myself) {
                dirty.push(slot);
            }
            state.del_slot(slot);
            state.add_slot(slot, sender);
            out.save = true;
        }
    }
    // Our primary (or this primary) lost its last slot to the sender: follow it, unless
    // replica migration is off and the sender took only part of what we had (Redis's
    // `cluster-allow-replica-migration`).
    let emptied = current_master.is_some_and(|cm| state.ranges_of(&cm).is_empty());
    if migrated_our_slots > 0
        && emptied
        && (config.cluster_allow_replica_migration || sender_slots == migrated_our_slots)
    {
        tracing::info!("Configuration change detected. Reconfiguring myself as a replica of {sender}");
        set_master(state, *sender);
        out.effects.push(Effect::Follow(*sender));
        out.save = true;
        return;
    }
    // A replica whose primary turned replica (it lost its last slot and nothing else moved
    // us) follows the grandmaster rather than a replica.
    let grandmaster = state.me().master.and_then(|m| state.node(&m)?.master).filter(|g| *g != myself);
    if let Some(gm) = grandmaster {
        tracing::info!("I'm a sub-replica! Reconfiguring myself as a replica of grandmaster {gm}");
        set_master(state, gm);
        out.effects.push(Effect::Follow(gm));
        out.save = true;
        return;
    }
    if !dirty.is_empty() && state.me().is(flag::MASTER) {
        out.effects.push(Effect::DropSlots(dirty));
    }
}

/// Makes this node a replica of `master` (Redis's `clusterSetMaster`).
pub(crate) fn set_master(state: &mut State, master: NodeId) {
    let was_master = state.me().is(flag::MASTER);
    let me = state.me_mut();
    if was_master {
        me.flags = (me.flags & !(flag::MASTER | flag::MIGRATE_TO)) | flag::SLAVE;
    }
    let my_id = me.id;
    state.set_master_of(&my_id, Some(master));
    if was_master {
        state.migrating.clear();
        state.importing.clear();
    }
}

/// Two primaries with one configuration epoch: the one with the smaller name takes a new one
/// (Redis's `clusterHandleConfigEpochCollision`).
fn collision(state: &mut State, id: &NodeId, msg: &Message, out: &mut Outcome) {
    let me = state.me();
    let Some(sender) = state.node(id) else { return };
    if !me.is(flag::MASTER) || !sender.is(flag::MASTER) || msg.config_epoch != me.config_epoch {
        return;
    }
    if sender.id.as_str() <= me.id.as_str() {
        return;
    }
    state.current_epoch = state.current_epoch.wrapping_add(1);
    let epoch = state.current_epoch;
    state.me_mut().config_epoch = epoch;
    tracing::info!("WARNING: configEpoch collision with node {id}. configEpoch set to {epoch}");
    out.save = true;
}

/// The gossip of a PING, PONG or MEET (Redis's `clusterProcessGossipSection`): failure
/// reports from primaries, fresher PONG times, new nodes.
fn gossip_section(
    state: &mut State,
    soft: &mut Soft,
    sender: Option<NodeId>,
    msg: &Message,
    at: &Arrival<'_>,
    out: &mut Outcome,
) {
    let Body::Ping { gossip, .. } = &msg.body else { return };
    let timeout = at.config.cluster_node_timeout;
    let sender_master = sender.and_then(|s| state.node(&s)).is_some_and(|n| n.is(flag::MASTER));
    for g in gossip {
        let failing = g.flags & (flag::FAIL | flag::PFAIL) != 0;
        // An address that is not one is never stored (it would go into nodes.conf).
        let ip = address(&g.ip);
        if let Some(n) = state.node(&g.id) {
            let (id, myself) = (n.id, n.is(flag::MYSELF));
            if let (Some(s), true, false) = (sender, sender_master, myself) {
                if failing {
                    state.reports.entry(id).or_default().insert(s, at.now);
                    mark_failing(state, soft, &id, at, out);
                } else if let Some(r) = state.reports.get_mut(&id) {
                    r.remove(&s);
                }
            }
            let reports = state.valid_reports(&id, at.now, timeout.saturating_mul(REPORT_VALIDITY_MULT));
            let Some(n) = state.node_mut(&id) else { continue };
            if !failing && n.ping_sent == 0 && reports == 0 {
                let pong = u64::from(g.pong_received) * 1000;
                if pong <= at.now + 500 && pong > n.pong_received {
                    n.pong_received = pong;
                }
            }
            let Some(ip) = ip else { continue };
            let moved = !n.ip.eq_ignore_ascii_case(&ip)
                || ports(n, at.config.tls_cluster).0 != g.port
                || n.cport != g.cport;
            if n.flags & (flag::FAIL | flag::PFAIL) != 0 && g.flags & flag::NOADDR == 0 && !failing && moved {
                n.ip.clone_from(&ip);
                set_ports(n, g.port, g.pport, at.config.tls_cluster);
                n.cport = g.cport;
                n.flags &= !flag::NOADDR;
                out.effects.push(Effect::Close(id));
                out.save = true;
            }
        } else if sender.is_some()
            && g.flags & flag::NOADDR == 0
            && state.forgotten.get(&g.id).is_none_or(|&until| until <= at.now)
            && state.nodes().count() < MAX_NODES
            && ip.is_some()
        {
            let mut n = Node::new(g.id, g.flags & !(flag::MYSELF | flag::HANDSHAKE | flag::MEET));
            n.ip = ip.unwrap_or_default();
            set_ports(&mut n, g.port, g.pport, at.config.tls_cluster);
            n.cport = g.cport;
            *state.node_or_add(g.id) = n;
            out.save = true;
        }
    }
}

/// PFAIL becomes FAIL once a majority of the primaries serving slots report the node
/// (Redis's `markNodeAsFailingIfNeeded`); the FAIL is broadcast.
fn mark_failing(state: &mut State, soft: &mut Soft, id: &NodeId, at: &Arrival<'_>, out: &mut Outcome) {
    let Some(n) = state.node(id) else { return };
    if !n.is(flag::PFAIL) || n.is(flag::FAIL) {
        return;
    }
    let needed = state.health(false).size / 2 + 1;
    let mine = usize::from(state.me().is(flag::MASTER));
    if state.valid_reports(id, at.now, at.config.cluster_node_timeout.saturating_mul(REPORT_VALIDITY_MULT))
        + mine
        < needed
    {
        return;
    }
    tracing::info!("Marking node {id} as failing (quorum reached).");
    if let Some(n) = state.node_mut(id) {
        n.flags = (n.flags | flag::FAIL) & !flag::PFAIL;
    }
    soft.fail_time.insert(*id, at.now);
    out.effects.push(Effect::Broadcast(message(state, at.config, kind::FAIL, at.offset, Body::Fail(*id))));
    out.save = true;
}

/// The periodic part of failure detection (in Redis's `clusterCron`): handshakes that took
/// too long are dropped; a node that has not answered a PING within the node timeout is
/// possibly failing (PFAIL).
pub(crate) fn expire(state: &mut State, soft: &mut Soft, now: u64, config: &Config) -> Outcome {
    let mut out = Outcome::default();
    let timeout = config.cluster_node_timeout;
    let handshake_timeout = timeout.max(1000);
    // A handshake the bus had not seen yet (CLUSTER MEET's) starts now.
    let stale: Vec<NodeId> = state
        .nodes()
        .filter(|n| n.is(flag::HANDSHAKE))
        .filter(|n| now.saturating_sub(*soft.created.entry(n.id).or_insert(now)) > handshake_timeout)
        .map(|n| n.id)
        .collect();
    state.forgotten.retain(|_, until| *until > now);
    for id in stale {
        tracing::debug!("Handshake with node {id} timed out");
        state.remove(&id);
        soft.forget(&id);
        out.effects.push(Effect::Close(id));
    }
    let silent: Vec<NodeId> = state
        .nodes()
        .filter(|n| n.flags & (flag::MYSELF | flag::NOADDR | flag::HANDSHAKE | flag::PFAIL | flag::FAIL) == 0)
        .filter(|n| n.ping_sent != 0)
        .filter(|n| {
            let since_data = soft.data_received.get(&n.id).map_or(u64::MAX, |&d| now.saturating_sub(d));
            now.saturating_sub(n.ping_sent).min(since_data) > timeout
        })
        .map(|n| n.id)
        .collect();
    for id in silent {
        tracing::debug!("*** NODE {id} possibly failing");
        if let Some(n) = state.node_mut(&id) {
            n.flags |= flag::PFAIL;
        }
        out.save = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(port: u16) -> State {
        let mut me = Node::new(NodeId::random(), flag::MYSELF | flag::MASTER);
        me.tcp_port = port;
        me.cport = port + 10000;
        State::alone(me)
    }

    fn arrival(config: &Config, link: Link) -> Arrival<'_> {
        Arrival {
            link,
            peer_ip: "127.0.0.1".into(),
            local_ip: "127.0.0.1".into(),
            now: 1_000_000,
            config,
            offset: 0,
        }
    }

    #[test]
    fn a_meet_then_a_ping_make_two_nodes_know_each_other() {
        let config = Config::default();
        let mut rng = crate::storage::rng::Rng::new(1);
        let (mut a, mut b) = (node(7000), node(7001));
        let (mut sa, mut sb) = (Soft::default(), Soft::default());
        // a was told to MEET b: it knows b under a made-up name, in handshake.
        let hs = NodeId::random();
        let n = a.node_or_add(hs);
        n.flags = flag::HANDSHAKE | flag::MEET;
        (n.ip, n.tcp_port, n.cport) = ("127.0.0.1".into(), 7001, 17001);
        let meet = ping(&a, &config, kind::MEET, 0, &mut rng);
        let out = receive(
            &mut b,
            &mut sb,
            &wire::decode(&meet.encode()).unwrap(),
            &arrival(&config, Link::Inbound),
            &mut rng,
        );
        assert_eq!(b.me().ip, "127.0.0.1", "b learnt its address");
        assert_eq!(b.nodes().filter(|n| n.is(flag::HANDSHAKE)).count(), 1);
        let Some(Effect::Reply(pong)) = out.effects.first() else { panic!("{:?}", out.effects) };
        let out = receive(&mut a, &mut sa, pong, &arrival(&config, Link::Outbound(hs)), &mut rng);
        assert!(out.effects.contains(&Effect::Close(hs)));
        let b_id = b.me().id;
        let known = a.node(&b_id).expect("renamed to b's real name");
        assert!(known.is(flag::MASTER) && !known.is(flag::HANDSHAKE));
        // b gives itself slots; its next PING tells a.
        b.add_slot(5, &b_id);
        b.me_mut().config_epoch = 1;
        let p = ping(&b, &config, kind::PING, 0, &mut rng);
        receive(&mut a, &mut sa, &p, &arrival(&config, Link::Inbound), &mut rng);
        assert_eq!(a.owner_id(5), Some(b_id));
        assert_eq!(a.node(&b_id).unwrap().config_epoch, 1);
    }

    #[test]
    fn a_higher_epoch_takes_slots_and_a_lower_one_gets_an_update() {
        let config = Config::default();
        let mut rng = crate::storage::rng::Rng::new(2);
        let mut a = node(7000);
        let mut sa = Soft::default();
        let a_id = a.me().id;
        a.add_slot(1, &a_id);
        a.me_mut().config_epoch = 5;
        let mut b = node(7001);
        let b_id = b.me().id;
        b.add_slot(1, &b_id);
        b.me_mut().config_epoch = 3;
        a.node_or_add(b_id).flags = flag::MASTER;
        let p = ping(&b, &config, kind::PING, 0, &mut rng);
        let out = receive(&mut a, &mut sa, &p, &arrival(&config, Link::Inbound), &mut rng);
        assert_eq!(a.owner_id(1), Some(a_id), "a lower epoch does not take the slot");
        assert!(out
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Send(to, m) if *to == b_id && m.kind == kind::UPDATE)));
        b.me_mut().config_epoch = 9;
        let p = ping(&b, &config, kind::PING, 0, &mut rng);
        let out = receive(&mut a, &mut sa, &p, &arrival(&config, Link::Inbound), &mut rng);
        assert_eq!(a.owner_id(1), Some(b_id));
        assert!(out.effects.contains(&Effect::Follow(b_id)), "a lost its last slot: it follows b");
        assert!(a.me().is(flag::SLAVE));
    }

    #[test]
    fn a_replica_follows_a_new_owner_of_part_of_its_primary_s_slots_only_if_migration_is_allowed() {
        let mut rng = crate::storage::rng::Rng::new(4);
        // r replicates a, which serves slots 1 and 2; b, at a higher epoch, takes both and
        // also serves slot 3 (more than a had).
        for (allowed, b_slots, follows) in
            [(true, &[1, 2, 3][..], true), (false, &[1, 2, 3][..], false), (false, &[1, 2][..], true)]
        {
            let config = Config { cluster_allow_replica_migration: allowed, ..Config::default() };
            let mut r = node(7002);
            r.me_mut().flags = flag::MYSELF | flag::SLAVE;
            let (a_id, r_id) = (NodeId::random(), r.me().id);
            r.node_or_add(a_id).flags = flag::MASTER;
            r.set_master_of(&r_id, Some(a_id));
            r.add_slot(1, &a_id);
            r.add_slot(2, &a_id);
            let mut b = node(7001);
            let b_id = b.me().id;
            for &slot in b_slots {
                b.add_slot(slot, &b_id);
            }
            b.me_mut().config_epoch = 9;
            r.node_or_add(b_id).flags = flag::MASTER;
            let p = ping(&b, &config, kind::PING, 0, &mut rng);
            let out = receive(&mut r, &mut Soft::default(), &p, &arrival(&config, Link::Inbound), &mut rng);
            assert_eq!(r.owner_id(1), Some(b_id), "the slots move either way");
            assert_eq!(out.effects.contains(&Effect::Follow(b_id)), follows, "{allowed} {b_slots:?}");
            assert_eq!(r.me().master == Some(b_id), follows);
        }
    }

    #[test]
    fn silent_nodes_become_pfail_then_fail_by_majority() {
        let config = Config { cluster_node_timeout: 1000, ..Config::default() };
        let mut a = node(7000);
        let mut sa = Soft::default();
        let a_id = a.me().id;
        a.add_slot(0, &a_id);
        let (b, c) = (NodeId::random(), NodeId::random());
        for (id, slot) in [(b, 1), (c, 2)] {
            a.node_or_add(id).flags = flag::MASTER;
            a.add_slot(slot, &id);
        }
        a.node_mut(&b).unwrap().ping_sent = 1;
        expire(&mut a, &mut sa, 1_000_000, &config);
        assert!(a.node(&b).unwrap().is(flag::PFAIL));
        // c reports b failing: with a's own view, 2 of 3 primaries.
        let mut rng = crate::storage::rng::Rng::new(3);
        let mut from_c = ping(&a, &config, kind::PING, 0, &mut rng);
        from_c.sender.copy_from_slice(c.as_str().as_bytes());
        from_c.slots = a.bitmap_of(&c);
        from_c.body = Body::Ping {
            gossip: vec![Gossip {
                id: b,
                ping_sent: 0,
                pong_received: 0,
                ip: String::new(),
                port: 1,
                cport: 2,
                flags: flag::MASTER | flag::PFAIL,
                pport: 0,
            }],
            hostname: String::new(),
        };
        let out = receive(&mut a, &mut sa, &from_c, &arrival(&config, Link::Inbound), &mut rng);
        assert!(a.node(&b).unwrap().is(flag::FAIL));
        // Gossip about a node at an address that is not one teaches nothing (it would go
        // into nodes.conf).
        let stranger = NodeId::random();
        from_c.body = Body::Ping {
            gossip: vec![Gossip {
                id: stranger,
                ping_sent: 0,
                pong_received: 0,
                ip: "1.2.3.4 x\n".into(),
                port: 1,
                cport: 2,
                flags: flag::MASTER,
                pport: 0,
            }],
            hostname: "bad host\nname".into(),
        };
        receive(&mut a, &mut sa, &from_c, &arrival(&config, Link::Inbound), &mut rng);
        assert!(a.node(&stranger).is_none());
        assert_eq!(a.node(&c).unwrap().hostname, "");
        assert!(out.effects.iter().any(|e| matches!(e, Effect::Broadcast(m) if m.kind == kind::FAIL)));
    }
}
