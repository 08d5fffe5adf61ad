//! CLUSTER, and the connection commands of cluster mode (READONLY, READWRITE, ASKING): what
//! this node knows of the cluster, and the slot assignments an operator makes. The state, its
//! file and the routing rules are `engine::cluster`'s; each change here is one edit of it.

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::config::EndpointType;
use crate::engine::cluster::node::{flag as node_flag, Node, NodeId};
use crate::engine::cluster::redirect::endpoint;
use crate::engine::cluster::state::State;
use crate::engine::cluster::wire::kind as wire_kind;
use crate::engine::cluster::Cluster;
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::shard::Shard;
use crate::engine::slot::{Slot, SLOTS};
use crate::engine::spec::{acl, flag};
use crate::facade::Reply;

/// The family's commands.
#[rustfmt::skip]
pub(crate) fn commands() -> Vec<Command> {
    let admin = flag::NO_ASYNC_LOADING | flag::ADMIN | flag::STALE;
    vec![
        Command::container("cluster", -2, vec![
            Command::inline("help", 2, |_, _| Ok(help()))
                .flags(flag::LOADING | flag::STALE)
                .docs("cluster", "5.0.0", "O(1)", "Show helpful text about the different subcommands"),
            Command::inline("info", 2, info)
                .flags(flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "3.0.0", "O(1)", "Provides info about Redis Cluster node state"),
            Command::inline("links", 2, |s, _| links(s))
                .flags(flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "7.0.0", "O(N) where N is the total number of Cluster nodes", "Returns a list of all TCP links to and from peer nodes in cluster"),
            Command::inline("myid", 2, |s, _| Ok(Reply::bulk(view(s)?.me().id.as_str())))
                .flags(flag::STALE)
                .docs("cluster", "3.0.0", "O(1)", "Return the node id"),
            Command::inline("nodes", 2, |s, _| Ok(Reply::Verbatim(view(s)?.describe_all(s.client.tls.is_some()))))
                .flags(flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "3.0.0", "O(N) where N is the total number of Cluster nodes", "Get Cluster config for the node"),
            Command::inline("slots", 2, slots)
                .flags(flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "3.0.0", "O(N) where N is the total number of Cluster nodes", "Get array of Cluster slot to node mappings")
                .history(&[("4.0.0", "Added node IDs."), ("7.0.0", "Added additional networking metadata field.")])
                .deprecated("7.0.0", "`CLUSTER SHARDS`"),
            Command::inline("shards", 2, shards)
                .flags(flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "7.0.0", "O(N) where N is the total number of cluster nodes", "Get array of cluster slots to node mappings"),
            Command::inline("keyslot", 3, |s, a| {
                view(s)?;
                Ok(Reply::Int(i64::from(Slot::of(&a[2]).0)))
            })
                .flags(flag::STALE)
                .docs("cluster", "3.0.0", "O(N) where N is the number of bytes in the key", "Returns the hash slot of the specified key"),
            Command::session("countkeysinslot", 3, |s, a| Box::pin(count_keys_in_slot(s, a)))
                .flags(flag::STALE)
                .docs("cluster", "3.0.0", "O(1)", "Return the number of local keys in the specified hash slot"),
            Command::session("getkeysinslot", 4, |s, a| Box::pin(get_keys_in_slot(s, a)))
                .flags(flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "3.0.0", "O(log(N)) where N is the number of requested keys", "Return local key names in the specified hash slot"),
            Command::inline("addslots", -3, |s, a| assign(s, slot_list(&a[2..])?, true))
                .flags(admin)
                .docs("cluster", "3.0.0", "O(N) where N is the total number of hash slot arguments", "Assign new hash slots to receiving node"),
            Command::inline("addslotsrange", -4, |s, a| assign(s, slot_ranges(a, "cluster|addslotsrange")?, true))
                .flags(admin)
                .docs("cluster", "7.0.0", "O(N) where N is the total number of the slots between the start slot and end slot arguments.", "Assign new hash slots to receiving node"),
            Command::inline("delslots", -3, |s, a| assign(s, slot_list(&a[2..])?, false))
                .flags(admin)
                .docs("cluster", "3.0.0", "O(N) where N is the total number of hash slot arguments", "Set hash slots as unbound in receiving node"),
            Command::inline("delslotsrange", -4, |s, a| assign(s, slot_ranges(a, "cluster|delslotsrange")?, false))
                .flags(admin)
                .docs("cluster", "7.0.0", "O(N) where N is the total number of the slots between the start slot and end slot arguments.", "Set hash slots as unbound in receiving node"),
            Command::session("flushslots", 2, |s, _| Box::pin(flush_slots(s)))
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Delete a node's own slots information"),
            Command::session("reset", -2, |s, a| Box::pin(reset(s, a)))
                .flags(flag::ADMIN | flag::STALE | flag::NOSCRIPT)
                .docs("cluster", "3.0.0", "O(N) where N is the number of known nodes. The command may execute a FLUSHALL as a side effect.", "Reset a Redis Cluster node"),
            Command::inline("saveconfig", 2, save_config)
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Forces the node to save cluster state on disk"),
            Command::inline("set-config-epoch", 3, set_config_epoch)
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Set the configuration epoch in a new node"),
            Command::inline("bumpepoch", 2, bump_epoch)
                .flags(admin)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "3.0.0", "O(1)", "Advance the cluster config epoch"),
            Command::inline("replicas", 3, replicas)
                .flags(flag::ADMIN | flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "5.0.0", "O(1)", "List replica nodes of the specified master node"),
            Command::inline("slaves", 3, replicas)
                .flags(flag::ADMIN | flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "3.0.0", "O(1)", "List replica nodes of the specified master node")
                .deprecated("5.0.0", "`CLUSTER REPLICAS`"),
            Command::inline("count-failure-reports", 3, count_failure_reports)
                .flags(flag::ADMIN | flag::STALE)
                .tips(&["nondeterministic_output"])
                .docs("cluster", "3.0.0", "O(N) where N is the number of failure reports", "Return the number of failure reports active for a given node"),
            Command::session("setslot", -4, |s, a| Box::pin(set_slot(s, a)))
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Bind a hash slot to a specific node"),
            Command::inline("meet", -4, meet)
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Force a node cluster to handshake with another node")
                .history(&[("4.0.0", "Added the optional `cluster_bus_port` argument.")]),
            Command::session("replicate", 3, |s, a| Box::pin(replicate(s, a)))
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Reconfigure a node as a replica of the specified master node"),
            Command::inline("failover", -2, failover)
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Forces a replica to perform a manual failover of its master."),
            Command::inline("forget", 3, forget)
                .flags(admin)
                .docs("cluster", "3.0.0", "O(1)", "Remove a node from the nodes table"),
        ])
        .docs("cluster", "3.0.0", "Depends on subcommand.", "A container for cluster commands"),
        Command::session("readonly", 1, |s, _| Box::pin(async move {
            view(s)?;
            s.cluster_readonly = true;
            Ok(Reply::Ok)
        }))
            .flags(flag::FAST | flag::LOADING | flag::STALE)
            .acl(acl::CONNECTION)
            .docs("cluster", "3.0.0", "O(1)", "Enables read queries for a connection to a cluster replica node"),
        Command::session("readwrite", 1, |s, _| Box::pin(async move {
            view(s)?;
            s.cluster_readonly = false;
            Ok(Reply::Ok)
        }))
            .flags(flag::FAST | flag::LOADING | flag::STALE)
            .acl(acl::CONNECTION)
            .docs("cluster", "3.0.0", "O(1)", "Disables read queries for a connection to a cluster replica node"),
        Command::session("asking", 1, |s, _| Box::pin(async move {
            view(s)?;
            s.asking = true;
            Ok(Reply::Ok)
        }))
            .flags(flag::FAST)
            .acl(acl::CONNECTION)
            .docs("cluster", "3.0.0", "O(1)", "Sent by cluster clients after an -ASK redirect"),
    ]
}

/// The cluster, or the error of a server not in cluster mode.
fn cluster(s: &Session) -> Result<&Cluster, CmdError> {
    s.core.global.cluster.as_ref().ok_or(CmdError::ClusterDisabled)
}

/// The cluster's published state.
fn view(s: &Session) -> Result<std::sync::Arc<State>, CmdError> {
    Ok(cluster(s)?.view())
}

/// Applies `change` to the cluster's state, saving nodes.conf.
fn edit<T>(s: &Session, change: impl FnOnce(&mut State) -> Result<T, CmdError>) -> Result<T, CmdError> {
    cluster(s)?.edit(&s.core.config(), true, change)
}

/// CLUSTER HELP
fn help() -> Reply {
    args::help(
        "cluster",
        &[
            "ADDSLOTS <slot> [<slot> ...]",
            "    Assign slots to current node.",
            "ADDSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Assign slots which are between <start-slot> and <end-slot> to current node.",
            "BUMPEPOCH",
            "    Advance the cluster config epoch.",
            "COUNT-FAILURE-REPORTS <node-id>",
            "    Return number of failure reports for <node-id>.",
            "COUNTKEYSINSLOT <slot>",
            "    Return the number of keys in <slot>.",
            "DELSLOTS <slot> [<slot> ...]",
            "    Delete slots information from current node.",
            "DELSLOTSRANGE <start slot> <end slot> [<start slot> <end slot> ...]",
            "    Delete slots information which are between <start-slot> and <end-slot> from current node.",
            "FAILOVER [FORCE|TAKEOVER]",
            "    Promote current replica node to being a master.",
            "FORGET <node-id>",
            "    Remove a node from the cluster.",
            "GETKEYSINSLOT <slot> <count>",
            "    Return key names stored by current node in a slot.",
            "FLUSHSLOTS",
            "    Delete current node own slots information.",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MEET <ip> <port> [<bus-port>]",
            "    Connect nodes into a working cluster.",
            "MYID",
            "    Return the node id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "REPLICATE <node-id>",
            "    Configure current node as replica to <node-id>.",
            "RESET [HARD|SOFT]",
            "    Reset current node (default: soft).",
            "SET-CONFIG-EPOCH <epoch>",
            "    Set config epoch of current node.",
            "SETSLOT <slot> (IMPORTING <node-id>|MIGRATING <node-id>|STABLE|NODE <node-id>)",
            "    Set slot state.",
            "REPLICAS <node-id>",
            "    Return <node-id> replicas.",
            "SAVECONFIG",
            "    Force saving cluster configuration on disk.",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "LINKS",
            "    Return information about all network links between this node and its peers.",
            "    Output format is an array where each array element is a map containing attributes of a link",
        ],
    )
}

/// CLUSTER INFO
fn info(s: &Session, _: &[Bytes]) -> CmdResult {
    let state = view(s)?;
    let (assigned, ok, pfail, fail) = state.slot_health();
    let me = state.me();
    let text = format!(
        "cluster_state:{}\r\ncluster_slots_assigned:{assigned}\r\ncluster_slots_ok:{ok}\r\n\
         cluster_slots_pfail:{pfail}\r\ncluster_slots_fail:{fail}\r\ncluster_known_nodes:{}\r\n\
         cluster_size:{}\r\ncluster_current_epoch:{}\r\ncluster_my_epoch:{}\r\n{}\
         total_cluster_links_buffer_limit_exceeded:{}\r\n",
        if state.ok { "ok" } else { "fail" },
        state.nodes().count(),
        state.size,
        state.current_epoch,
        state.shown_epoch(me),
        messages(cluster(s)?),
        cluster(s)?.links_over_limit(),
    );
    Ok(Reply::Verbatim(text))
}

/// CLUSTER LINKS: the bus's links, each as a map of direction, node, create-time, events and
/// its send buffer.
fn links(s: &Session) -> CmdResult {
    let links = cluster(s)?.links();
    Ok(Reply::Array(
        links
            .into_iter()
            .map(|l| {
                let events = if l.queued > 0 { "rw" } else { "r" };
                Reply::Map(vec![
                    (Reply::bulk("direction"), Reply::bulk(if l.outbound { "to" } else { "from" })),
                    (Reply::bulk("node"), Reply::bulk(l.node.as_str())),
                    (Reply::bulk("create-time"), Reply::Int(l.created as i64)),
                    (Reply::bulk("events"), Reply::bulk(events)),
                    (Reply::bulk("send-buffer-allocated"), Reply::Int(l.queued as i64)),
                    (Reply::bulk("send-buffer-used"), Reply::Int(l.queued as i64)),
                ])
            })
            .collect(),
    ))
}

/// CLUSTER INFO's message counters: each type with a count, then the total, sent then
/// received.
fn messages(cluster: &Cluster) -> String {
    use std::fmt::Write;
    let (sent, received) = cluster.messages();
    let mut out = String::new();
    for (counts, what) in [(sent, "sent"), (received, "received")] {
        for (name, n) in wire_kind::NAMES.iter().zip(counts).filter(|(_, n)| *n > 0) {
            let _ = write!(out, "cluster_stats_messages_{name}_{what}:{n}\r\n");
        }
        let _ = write!(out, "cluster_stats_messages_{what}:{}\r\n", counts.iter().sum::<u64>());
    }
    out
}

/// A node as CLUSTER SLOTS lists it: endpoint, port, id, and the other names it has.
fn slots_node(node: &Node, kind: EndpointType, tls: bool) -> Reply {
    let preferred = match kind {
        EndpointType::UnknownEndpoint => Reply::Nil,
        kind => Reply::bulk(endpoint(node, kind)),
    };
    let mut more = Vec::new();
    if kind != EndpointType::Ip {
        more.push((Reply::bulk("ip"), Reply::bulk(&node.ip)));
    }
    if kind != EndpointType::Hostname && !node.hostname.is_empty() {
        more.push((Reply::bulk("hostname"), Reply::bulk(&node.hostname)));
    }
    Reply::Array(vec![
        preferred,
        Reply::Int(i64::from(node.client_port(tls))),
        Reply::bulk(node.id.as_str()),
        Reply::Map(more),
    ])
}

/// CLUSTER SLOTS: each run of slots with one owner, its primary and its replicas that are
/// not failing and have replicated something.
fn slots(s: &Session, _: &[Bytes]) -> CmdResult {
    let state = view(s)?;
    let kind = s.core.with_config(|c| c.cluster_preferred_endpoint_type);
    let tls = s.client.tls.is_some();
    let my_offset = crate::engine::replication::offset(&s.core);
    let runs = state.runs().map(|(first, last, owner)| {
        let owner = state.at(owner);
        let mut entry =
            vec![Reply::Int(i64::from(first)), Reply::Int(i64::from(last)), slots_node(owner, kind, tls)];
        let offset = |r: &Node| if r.is(node_flag::MYSELF) { my_offset } else { r.repl_offset };
        let available = state.replicas_of(&owner.id).filter(|r| !r.is(node_flag::FAIL) && offset(r) != 0);
        entry.extend(available.map(|r| slots_node(r, kind, tls)));
        Reply::Array(entry)
    });
    Ok(Reply::Array(runs.collect()))
}

/// CLUSTER SHARDS: each primary with its slots, then it and its replicas.
fn shards(s: &Session, _: &[Bytes]) -> CmdResult {
    let state = view(s)?;
    let kind = s.core.with_config(|c| c.cluster_preferred_endpoint_type);
    let tls_cluster = s.core.with_config(|c| c.tls_cluster);
    let text = |t: &str| Reply::bulk(t);
    let describe = |n: &Node| {
        let mut fields = vec![(text("id"), text(n.id.as_str()))];
        if n.tcp_port != 0 {
            fields.push((text("port"), Reply::Int(i64::from(n.tcp_port))));
        }
        if n.tls_port != 0 && (tls_cluster || n.tcp_port == 0 || n.is(node_flag::MYSELF)) {
            fields.push((text("tls-port"), Reply::Int(i64::from(n.tls_port))));
        }
        fields.push((text("ip"), text(&n.ip)));
        fields.push((text("endpoint"), text(&endpoint(n, kind))));
        if !n.hostname.is_empty() {
            fields.push((text("hostname"), text(&n.hostname)));
        }
        let replica = n.is(node_flag::SLAVE);
        fields.push((text("role"), text(if replica { "replica" } else { "master" })));
        fields.push((text("replication-offset"), Reply::Int(n.repl_offset as i64)));
        let health = if n.is(node_flag::FAIL) {
            "fail"
        } else if replica && n.repl_offset == 0 {
            "loading"
        } else {
            "online"
        };
        fields.push((text("health"), text(health)));
        Reply::Map(fields)
    };
    let primaries = state.nodes().filter(|n| n.is(node_flag::MASTER) && !n.is(node_flag::HANDSHAKE));
    let shards = primaries.map(|p| {
        let ranges = state.ranges_of(&p.id);
        let slots = ranges.iter().flat_map(|&(a, b)| [Reply::Int(i64::from(a)), Reply::Int(i64::from(b))]);
        let nodes = std::iter::once(p).chain(state.replicas_of(&p.id)).map(describe);
        Reply::Map(vec![
            (text("slots"), Reply::Array(slots.collect())),
            (text("nodes"), Reply::Array(nodes.collect())),
        ])
    });
    Ok(Reply::Array(shards.collect()))
}

/// A slot argument (Redis's `getSlotOrReply`).
fn slot(arg: &[u8]) -> Result<u16, CmdError> {
    args::int(arg)
        .ok()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|&n| n < SLOTS)
        .ok_or(CmdError::msg("ERR Invalid or out of range slot"))
}

/// ADDSLOTS / DELSLOTS's slots: all parsed before any is checked.
fn slot_list(args: &[Bytes]) -> Result<Vec<u16>, CmdError> {
    args.iter().map(|a| slot(a)).collect()
}

/// ADDSLOTSRANGE / DELSLOTSRANGE's pairs, expanded.
fn slot_ranges(args: &[Bytes], name: &str) -> Result<Vec<u16>, CmdError> {
    if args.len() % 2 == 1 {
        return Err(CmdError::arity(name));
    }
    let mut slots = Vec::new();
    for pair in args[2..].chunks(2) {
        let (first, last) = (slot(&pair[0])?, slot(&pair[1])?);
        if first > last {
            return Err(CmdError::text(format!(
                "ERR start slot number {first} is greater than end slot number {last}"
            )));
        }
        slots.extend(first..=last);
    }
    Ok(slots)
}

/// ADDSLOTS (`add`) or DELSLOTS of `slots`: all or none.
fn assign(s: &Session, slots: Vec<u16>, add: bool) -> CmdResult {
    edit(s, |state| {
        let mut seen = vec![false; usize::from(SLOTS)];
        for &slot in &slots {
            match (add, state.owner(slot).is_some()) {
                (false, false) => {
                    return Err(CmdError::text(format!("ERR Slot {slot} is already unassigned")))
                }
                (true, true) => return Err(CmdError::text(format!("ERR Slot {slot} is already busy"))),
                _ => {}
            }
            if std::mem::replace(&mut seen[usize::from(slot)], true) {
                return Err(CmdError::text(format!("ERR Slot {slot} specified multiple times")));
            }
        }
        let me = state.me().id;
        for slot in slots {
            state.importing.remove(&slot);
            if add {
                state.add_slot(slot, &me);
            } else {
                state.del_slot(slot);
            }
        }
        Ok(Reply::Ok)
    })
}

/// How many keys `slot` holds in database 0, and the first `limit` of them: from the slot's
/// shard's index of its keys (see [`crate::storage::slot_index`]), O(`limit`).
async fn keys_in_slot(s: &Session, slot: u16, limit: usize) -> Result<(usize, Vec<Bytes>), CmdError> {
    let shard = Slot(slot).shard(s.core.router.shards());
    s.run_on(shard, move |sh: &mut Shard| {
        let Some(ix) = sh.dbs()[0].slot_index() else { return (0, Vec::new()) };
        (ix.count(slot), ix.keys(slot, limit).into_iter().map(Bytes::copy_from_slice).collect())
    })
    .await
    .map_err(|_| CmdError::Unavailable)
}

/// CLUSTER COUNTKEYSINSLOT slot
async fn count_keys_in_slot(s: &mut Session, args: &[Bytes]) -> CmdResult {
    view(s)?;
    let slot = u16::try_from(args::int(&args[2])?)
        .ok()
        .filter(|&n| n < SLOTS)
        .ok_or(CmdError::msg("ERR Invalid slot"))?;
    Ok(Reply::Int(keys_in_slot(s, slot, 0).await?.0 as i64))
}

/// CLUSTER GETKEYSINSLOT slot count
async fn get_keys_in_slot(s: &mut Session, args: &[Bytes]) -> CmdResult {
    view(s)?;
    let (slot, count) = (args::int(&args[2])?, args::int(&args[3])?);
    let invalid = CmdError::msg("ERR Invalid slot or number of keys");
    let slot = u16::try_from(slot).ok().filter(|&n| n < SLOTS).ok_or(invalid.clone())?;
    let count = usize::try_from(count).map_err(|_| invalid)?;
    let keys = keys_in_slot(s, slot, count).await?.1;
    Ok(Reply::Array(keys.into_iter().map(Reply::Bulk).collect()))
}

/// Whether database 0 holds no key.
async fn db0_empty(s: &Session) -> Result<bool, CmdError> {
    Ok(s.each_shard(|sh: &mut Shard| sh.dbs()[0].len()).await?.iter().all(|&n| n == 0))
}

/// CLUSTER FLUSHSLOTS
async fn flush_slots(s: &mut Session) -> CmdResult {
    view(s)?;
    if !db0_empty(s).await? {
        return Err(CmdError::msg("ERR DB must be empty to perform CLUSTER FLUSHSLOTS."));
    }
    edit(s, |state| {
        let me = state.me().id;
        for (first, last) in state.ranges_of(&me) {
            (first..=last).for_each(|slot| {
                state.del_slot(slot);
            });
        }
        Ok(Reply::Ok)
    })
}

/// CLUSTER RESET [HARD|SOFT]: forget every other node and every slot; HARD also takes a new
/// name and zeroes the epochs.
async fn reset(s: &mut Session, args: &[Bytes]) -> CmdResult {
    view(s)?;
    let hard = match args.get(2) {
        None => false,
        Some(a) if is(a, "hard") => true,
        Some(a) if is(a, "soft") => false,
        Some(_) => return Err(CmdError::Syntax),
    };
    if args.len() > 3 {
        return Err(CmdError::subcommand_syntax("cluster", &args[1]));
    }
    if view(s)?.me().is(node_flag::MASTER) && !db0_empty(s).await? {
        return Err(CmdError::msg("ERR CLUSTER RESET can't be called with master nodes containing keys"));
    }
    edit(s, |state| {
        let mut me = state.me().clone();
        me.flags = (me.flags & !(node_flag::SLAVE | node_flag::MIGRATE_TO)) | node_flag::MASTER;
        me.master = None;
        let epochs = if hard {
            me.id = NodeId::random();
            me.config_epoch = 0;
            (0, 0)
        } else {
            (state.current_epoch, state.last_vote_epoch)
        };
        *state = State::alone(me);
        (state.current_epoch, state.last_vote_epoch) = epochs;
        Ok(Reply::Ok)
    })
}

/// CLUSTER SAVECONFIG
fn save_config(s: &Session, _: &[Bytes]) -> CmdResult {
    cluster(s)?
        .save(&s.core.config())
        .map_err(|e| CmdError::text(format!("ERR error saving the cluster node config: {e}")))?;
    Ok(Reply::Ok)
}

/// CLUSTER SET-CONFIG-EPOCH epoch
fn set_config_epoch(s: &Session, args: &[Bytes]) -> CmdResult {
    view(s)?;
    let epoch = args::int(&args[2])?;
    edit(s, |state| {
        if epoch < 0 {
            return Err(CmdError::text(format!("ERR Invalid config epoch specified: {epoch}")));
        }
        if state.nodes().count() > 1 {
            return Err(CmdError::msg(
                "ERR The user can assign a config epoch only when the node does not know any other node.",
            ));
        }
        if state.me().config_epoch != 0 {
            return Err(CmdError::msg("ERR Node config epoch is already non-zero"));
        }
        state.me_mut().config_epoch = epoch as u64;
        state.current_epoch = state.current_epoch.max(epoch as u64);
        Ok(Reply::Ok)
    })
}

/// CLUSTER BUMPEPOCH
fn bump_epoch(s: &Session, _: &[Bytes]) -> CmdResult {
    edit(s, |state| {
        let bumped = crate::engine::cluster::election::bump_epoch(state);
        let epoch = state.me().config_epoch;
        Ok(Reply::Status(format!("{} {epoch}", if bumped { "BUMPED" } else { "STILL" }).into()))
    })
}

/// The node named by `arg`, or `ERR Unknown node`.
fn known<'a>(state: &'a State, arg: &[u8]) -> Result<&'a Node, CmdError> {
    NodeId::parse(arg)
        .and_then(|id| state.node(&id))
        .ok_or_else(|| CmdError::text(format!("ERR Unknown node {}", String::from_utf8_lossy(arg))))
}

/// CLUSTER REPLICAS / SLAVES node-id
fn replicas(s: &Session, args: &[Bytes]) -> CmdResult {
    let state = view(s)?;
    let node = known(&state, &args[2])?;
    if node.is(node_flag::SLAVE) {
        return Err(CmdError::msg("ERR The specified node is not a master"));
    }
    let tls = s.client.tls.is_some();
    Ok(Reply::Array(state.replicas_of(&node.id).map(|r| Reply::bulk(state.describe(r, tls))).collect()))
}

/// CLUSTER COUNT-FAILURE-REPORTS node-id
fn count_failure_reports(s: &Session, args: &[Bytes]) -> CmdResult {
    let state = view(s)?;
    let node = known(&state, &args[2])?;
    let validity = s.core.with_config(|c| c.cluster_node_timeout).saturating_mul(2);
    let now = crate::engine::cluster::unix_ms();
    let reports = state
        .reports
        .get(&node.id)
        .map_or(0, |r| r.values().filter(|&&at| now.saturating_sub(at) <= validity).count());
    Ok(Reply::Int(reports as i64))
}

/// CLUSTER MEET ip port [bus-port]: a node in handshake, to be greeted with a MEET.
fn meet(s: &Session, args: &[Bytes]) -> CmdResult {
    view(s)?;
    if args.len() > 5 {
        return Err(CmdError::subcommand_syntax("cluster", &args[1]));
    }
    let text = |a: &Bytes| String::from_utf8_lossy(a).into_owned();
    let port = args::int(&args[3])
        .map_err(|_| CmdError::text(format!("ERR Invalid TCP base port specified: {}", text(&args[3]))))?;
    let cport = match args.get(4) {
        Some(a) => args::int(a)
            .map_err(|_| CmdError::text(format!("ERR Invalid TCP bus port specified: {}", text(a))))?,
        None => port.saturating_add(10000),
    };
    let invalid = || {
        CmdError::text(format!("ERR Invalid node address specified: {}:{}", text(&args[2]), text(&args[3])))
    };
    let ip: std::net::IpAddr = text(&args[2]).parse().map_err(|_| invalid())?;
    let (port, cport) = match (u16::try_from(port), u16::try_from(cport)) {
        (Ok(p), Ok(c)) if p != 0 && c != 0 => (p, c),
        _ => return Err(invalid()),
    };
    let tls_cluster = s.core.with_config(|c| c.tls_cluster);
    edit(s, |state| {
        let ip = ip.to_string();
        let pending = state.nodes().any(|n| {
            n.is(node_flag::HANDSHAKE) && n.ip == ip && n.cport == cport && n.client_port(tls_cluster) == port
        });
        if !pending {
            let mut n = Node::new(NodeId::random(), node_flag::HANDSHAKE | node_flag::MEET);
            n.ip = ip;
            if tls_cluster {
                n.tls_port = port;
            } else {
                n.tcp_port = port;
            }
            n.cport = cport;
            let id = n.id;
            *state.node_or_add(id) = n;
        }
        Ok(Reply::Ok)
    })
}

/// CLUSTER SETSLOT slot IMPORTING node | MIGRATING node | STABLE | NODE node: a slot's
/// migration, and its new owner.
async fn set_slot(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let state = view(s)?;
    if state.me().is(node_flag::SLAVE) {
        return Err(CmdError::msg("ERR Please use SETSLOT only with masters."));
    }
    let slot = slot(&args[2])?;
    let action = String::from_utf8_lossy(&args[3]).to_ascii_lowercase();
    let invalid =
        CmdError::msg("ERR Invalid CLUSTER SETSLOT action or number of arguments. Try CLUSTER HELP");
    let target = |unknown: &str| -> Result<NodeId, CmdError> {
        let arg = args.get(4).ok_or(invalid.clone())?;
        let node = NodeId::parse(arg)
            .and_then(|id| state.node(&id))
            .ok_or_else(|| CmdError::text(format!("ERR {unknown} {}", String::from_utf8_lossy(arg))))?;
        if node.is(node_flag::SLAVE) {
            return Err(CmdError::msg("ERR Target node is not a master"));
        }
        Ok(node.id)
    };
    let me = state.me().id;
    let mine = state.mine(slot);
    match (action.as_str(), args.len()) {
        ("migrating", 5) => {
            if !mine {
                return Err(CmdError::text(format!("ERR I'm not the owner of hash slot {slot}")));
            }
            let to = target("I don't know about node")?;
            edit(s, |st| {
                st.migrating.insert(slot, to);
                Ok(Reply::Ok)
            })
        }
        ("importing", 5) => {
            if mine {
                return Err(CmdError::text(format!("ERR I'm already the owner of hash slot {slot}")));
            }
            let from = target("I don't know about node")?;
            edit(s, |st| {
                st.importing.insert(slot, from);
                Ok(Reply::Ok)
            })
        }
        ("stable", 4) => edit(s, |st| {
            st.migrating.remove(&slot);
            st.importing.remove(&slot);
            Ok(Reply::Ok)
        }),
        ("node", 5) => {
            let to = target("Unknown node")?;
            let keys = keys_in_slot(s, slot, 0).await?.0;
            if mine && to != me && keys != 0 {
                return Err(CmdError::text(format!(
                    "ERR Can't assign hashslot {slot} to a different node while I still hold keys for this hash slot."
                )));
            }
            let migrate_replica = s.core.with_config(|c| c.cluster_allow_replica_migration);
            let follow = edit(s, |st| {
                if keys == 0 {
                    st.migrating.remove(&slot);
                }
                st.del_slot(slot);
                st.add_slot(slot, &to);
                if mine && to != me && st.ranges_of(&me).is_empty() && migrate_replica {
                    tracing::info!(
                        "Configuration change detected. Reconfiguring myself as a replica of {to}"
                    );
                    crate::engine::cluster::gossip::set_master(st, to);
                    return Ok(st
                        .node(&to)
                        .map(|n| (n.ip.clone(), n.client_port(s.core.with_config(|c| c.tls_replication)))));
                }
                if to == me && st.importing.remove(&slot).is_some() {
                    // The slot is ours at a new epoch, so that the cluster takes our claim.
                    crate::engine::cluster::election::bump_epoch(st);
                }
                Ok(None)
            })?;
            if let Some(primary) = follow {
                crate::engine::replica::follow(&s.core, Some(primary));
            }
            Ok(Reply::Ok)
        }
        _ => Err(invalid),
    }
}

/// CLUSTER REPLICATE node-id: this empty primary becomes a replica of that one.
async fn replicate(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let state = view(s)?;
    let node = known(&state, &args[2])?;
    if node.is(node_flag::MYSELF) {
        return Err(CmdError::msg("ERR Can't replicate myself"));
    }
    if node.is(node_flag::SLAVE) {
        return Err(CmdError::msg("ERR I can only replicate a master, not a replica."));
    }
    let me = state.me();
    if me.is(node_flag::MASTER) && (!state.ranges_of(&me.id).is_empty() || !db0_empty(s).await?) {
        return Err(CmdError::msg("ERR To set a master the node must be empty and without assigned slots."));
    }
    let (id, ip) = (node.id, node.ip.clone());
    let port = node.client_port(s.core.with_config(|c| c.tls_replication));
    edit(s, |state| {
        crate::engine::cluster::gossip::set_master(state, id);
        Ok(())
    })?;
    crate::engine::replica::follow(&s.core, Some((ip, port)));
    Ok(Reply::Ok)
}

/// CLUSTER FAILOVER [FORCE | TAKEOVER], on a replica: the bus runs it.
fn failover(s: &Session, args: &[Bytes]) -> CmdResult {
    use crate::engine::cluster::election::Manual;
    let state = view(s)?;
    let how = match args.get(2) {
        _ if args.len() > 3 => return Err(CmdError::subcommand_syntax("cluster", &args[1])),
        None => Manual::Default,
        Some(a) if is(a, "force") => Manual::Force,
        Some(a) if is(a, "takeover") => Manual::Takeover,
        Some(_) => return Err(CmdError::Syntax),
    };
    let me = state.me();
    if me.is(node_flag::MASTER) {
        return Err(CmdError::msg("ERR You should send CLUSTER FAILOVER to a replica"));
    }
    let Some(master) = me.master.and_then(|m| state.node(&m)) else {
        return Err(CmdError::msg("ERR I'm a replica but my master is unknown to me"));
    };
    if how == Manual::Default && (master.is(node_flag::FAIL) || !master.connected) {
        return Err(CmdError::msg("ERR Master is down or failed, please use CLUSTER FAILOVER FORCE"));
    }
    cluster(s)?.request_failover(how);
    Ok(Reply::Ok)
}

/// CLUSTER FORGET node-id
fn forget(s: &Session, args: &[Bytes]) -> CmdResult {
    edit(s, |state| {
        let node = known(state, &args[2])?;
        if node.is(node_flag::MYSELF) {
            return Err(CmdError::msg("ERR I tried hard but I can't forget myself..."));
        }
        let id = node.id;
        if state.me().is(node_flag::SLAVE) && state.me().master == Some(id) {
            return Err(CmdError::msg("ERR Can't forget my master!"));
        }
        state.remove(&id);
        state
            .forgotten
            .insert(id, crate::engine::cluster::unix_ms() + crate::engine::cluster::gossip::FORGET_TTL_MS);
        Ok(Reply::Ok)
    })
}
