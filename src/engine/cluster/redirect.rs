//! Which node serves a request (Redis's `getNodeByQuery` and `clusterRedirectClient`): this
//! one, or an error that sends the client elsewhere or says why nobody serves it now.
//!
//! The rule, for the keys of a command (or of every command an EXEC runs): all must hash to
//! one slot (`-CROSSSLOT`); an unassigned slot is `-CLUSTERDOWN Hash slot not served`; a
//! failing cluster is `-CLUSTERDOWN` (reads may go on with `cluster-allow-reads-when-down`);
//! a slot this node is importing serves a client that sent ASKING; a READONLY client of a
//! replica reads its primary's slots there; any other slot of another node is `-MOVED` to it,
//! with the port of the client's own kind (TLS or plain). A slot this node is migrating
//! serves the keys it still has; the keys it no longer has go `-ASK` to the target, which
//! needs a look at the keyspace: [`route`] answers [`Route::Lookup`], and [`OpenSlot`] holds
//! its answer for every count, for the slot's shard to apply where it runs the request.

use bytes::Bytes;

use crate::cmd::error::CmdError;
use crate::config::{Config, EndpointType};
use crate::engine::cluster::node::{flag, Node};
use crate::engine::cluster::state::State;
use crate::engine::slot::{Slot, SLOTS};

/// A published cluster state, with what routing derives from it once per change rather than
/// on every request: the slots served outright.
pub(crate) struct Routing {
    /// The state.
    pub(crate) state: std::sync::Arc<State>,
    /// One bit per slot: the cluster is ok and the slot is this node's, neither migrating nor
    /// importing. Every request for such a slot is served here, whoever asks (a 2 KiB table
    /// the hot path reads, rather than the 32 KiB owner table and the open-slot maps).
    outright: Box<[u64; SLOTS as usize / 64]>,
}

impl Routing {
    /// Derives the routing of `state`.
    #[must_use]
    pub(crate) fn new(state: std::sync::Arc<State>) -> Routing {
        let mut outright = Box::new([0u64; SLOTS as usize / 64]);
        if state.ok {
            for slot in 0..SLOTS {
                if state.mine(slot)
                    && !state.migrating.contains_key(&slot)
                    && !state.importing.contains_key(&slot)
                {
                    outright[usize::from(slot / 64)] |= 1 << (slot % 64);
                }
            }
        }
        Routing { state, outright }
    }

    /// The common case, decided without the rest of [`route`]: `Some(slot)` when every key is
    /// in `slot` and this node serves it outright, `Some(None)` when there is no key.
    pub(crate) fn outright_slot<'a>(&self, mut keys: impl Iterator<Item = &'a [u8]>) -> Option<Option<u16>> {
        let Some(first) = keys.next() else { return Some(None) };
        let slot = Slot::of(first).0;
        (self.outright(slot) && keys.all(|k| k == first || Slot::of(k).0 == slot)).then_some(Some(slot))
    }

    fn outright(&self, slot: u16) -> bool {
        self.outright[usize::from(slot / 64)] & (1 << (slot % 64)) != 0
    }
}

/// What routing needs to know of the request and its client.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Asker {
    /// The command writes (for EXEC, EXEC's own flags: none).
    pub(crate) write: bool,
    /// The command, or any command of the transaction, writes.
    pub(crate) writes_any: bool,
    /// The client sent ASKING (or the command is RESTORE-ASKING).
    pub(crate) asking: bool,
    /// The client sent READONLY.
    pub(crate) readonly: bool,
    /// The client is connected over TLS.
    pub(crate) tls: bool,
    /// The command is MIGRATE (served while its slot is open, whatever it holds).
    pub(crate) migrate: bool,
    /// Sharded pub/sub (SPUBLISH, SSUBSCRIBE, SUNSUBSCRIBE): channels rather than keys.
    pub(crate) shard_pubsub: bool,
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// This node serves it (`slot`: the keys' slot, if they have one).
    Here(Option<u16>),
    /// The slot is open (migrating or importing): count which of the keys exist in database
    /// 0, then call [`route`] again with the counts.
    Lookup(u16),
}

/// How many of a request's keys exist here, for an open slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Present {
    /// Keys found.
    pub(crate) existing: usize,
    /// Keys missing.
    pub(crate) missing: usize,
}

/// A request for an open slot, routed before it reaches the keyspace: [`route`]'s answer for
/// each way its keys can be found (all here, some, none), so that the shard owning the slot
/// counts them and runs the request in one step. Counted in one step and run in a later one,
/// the request could find a key that MIGRATE (which holds the shard meanwhile) then moves
/// away: it would recreate the key here, beside the one the target now has.
#[derive(Debug, Clone)]
pub(crate) struct OpenSlot {
    keys: Vec<Bytes>,
    /// The refusal when every key is here, when some are, when none is; `None` serves it.
    refusals: [Option<CmdError>; 3],
}

impl OpenSlot {
    /// Routes the request whose keys are `keys` (all of one slot) for each count of them
    /// present, `route` answering for one count.
    pub(crate) fn decide(
        keys: Vec<Bytes>,
        mut route: impl FnMut(Present) -> Result<Route, CmdError>,
    ) -> OpenSlot {
        let n = keys.len();
        let mut refusal = |existing: usize| route(Present { existing, missing: n - existing }).err();
        let (all, none) = (refusal(n), refusal(0));
        let some = if n > 1 { refusal(1) } else { none.clone() };
        OpenSlot { keys, refusals: [all, some, none] }
    }

    /// The answer when it is the same whatever the keyspace holds (`Some(None)`: served here),
    /// or `None` when the keys must be counted.
    #[must_use]
    pub(crate) fn settled(&self) -> Option<Option<&CmdError>> {
        let [all, some, none] = &self.refusals;
        (all == some && some == none).then_some(all.as_ref())
    }

    /// The first key (every key is in the slot, so on its shard).
    #[must_use]
    pub(crate) fn first_key(&self) -> Option<&Bytes> {
        self.keys.first()
    }

    /// The refusal for what the slot's shard holds now (`holds`: whether a key is there, in
    /// database 0, as Redis counts), or `None` to serve the request.
    #[must_use]
    pub(crate) fn refusal(&self, holds: impl Fn(&[u8]) -> bool) -> Option<CmdError> {
        let existing = self.keys.iter().filter(|k| holds(k)).count();
        let at = match existing {
            n if n == self.keys.len() => 0,
            0 => 2,
            _ => 1,
        };
        self.refusals[at].clone()
    }
}

/// Routes a request whose keys are `keys`, with what the keyspace holds of them (`present`)
/// once [`Route::Lookup`] asked for it.
///
/// # Errors
/// The redirection or refusal, with Redis's text.
pub(crate) fn route<'a>(
    routing: &Routing,
    config: &Config,
    keys: impl IntoIterator<Item = &'a [u8]>,
    asker: &Asker,
    present: Option<Present>,
) -> Result<Route, CmdError> {
    let mut keys = keys.into_iter();
    let Some(first) = keys.next() else { return Ok(Route::Here(None)) };
    let slot = Slot::of(first).0;
    let mut multiple = false;
    for key in keys {
        if key != first {
            if Slot::of(key).0 != slot {
                return Err(CmdError::CrossSlot);
            }
            multiple = true;
        }
    }
    if routing.outright(slot) {
        return Ok(Route::Here(Some(slot)));
    }
    let state = &*routing.state;
    let Some(owner) = state.owner(slot) else { return Err(CmdError::SlotNotServed) };
    let mine = state.mine(slot);
    let migrating = if mine { state.migrating.get(&slot) } else { None };
    let importing = if migrating.is_none() { state.importing.get(&slot) } else { None };
    let open = (migrating.is_some() || importing.is_some()) && !asker.shard_pubsub;
    if !state.ok {
        let down = if asker.shard_pubsub {
            !config.cluster_allow_pubsubshard_when_down
        } else {
            !config.cluster_allow_reads_when_down
        };
        if down {
            return Err(CmdError::ClusterDown);
        }
        if !asker.shard_pubsub && asker.write {
            return Err(CmdError::ClusterDownReadOnly);
        }
    }
    if open && asker.migrate {
        return Ok(Route::Here(Some(slot)));
    }
    if open {
        let Some(present) = present else { return Ok(Route::Lookup(slot)) };
        if let Some(target) = migrating {
            if present.missing > 0 {
                if present.existing > 0 {
                    return Err(CmdError::TryAgain);
                }
                let target = state.node(target).ok_or(CmdError::TryAgain)?;
                let (endpoint, port) = address(target, config, asker.tls);
                return Err(CmdError::Ask { slot, endpoint, port });
            }
        }
        if importing.is_some() && asker.asking {
            if multiple && present.missing > 0 {
                return Err(CmdError::TryAgain);
            }
            return Ok(Route::Here(Some(slot)));
        }
    }
    if asker.shard_pubsub && asker.asking && importing.is_some() {
        // Sharded pub/sub counts no keys: an importing node serves it after ASKING.
        return Ok(Route::Here(Some(slot)));
    }
    let me = state.me();
    if (asker.readonly || asker.shard_pubsub)
        && !asker.writes_any
        && me.is(flag::SLAVE)
        && me.master.as_ref() == Some(&owner.id)
    {
        return Ok(Route::Here(Some(slot)));
    }
    if mine {
        return Ok(Route::Here(Some(slot)));
    }
    let (endpoint, port) = address(owner, config, asker.tls);
    Err(CmdError::Moved { slot, endpoint, port })
}

/// Whether a client blocked on `key` (BLPOP and friends) must stop waiting here, and the error
/// it gets (Redis's `clusterRedirectBlockedClientIfNeeded`, which its clientsCron runs about
/// once a second for each blocked client): `-CLUSTERDOWN` when the cluster fails (even with
/// reads allowed: the write that would serve the client may never come), `-CLUSTERDOWN Hash
/// slot not served` when the slot lost its owner, `-MOVED` when another node serves it and
/// this one is not importing it. A READONLY client of a replica reading without writing stays
/// where its primary's slots are. Every key of a blocked command is in one slot: the first
/// one decides.
#[must_use]
pub(crate) fn blocked(routing: &Routing, config: &Config, key: &[u8], asker: &Asker) -> Option<CmdError> {
    let state = &*routing.state;
    if !state.ok {
        return Some(CmdError::ClusterDown);
    }
    let slot = Slot::of(key).0;
    if state.mine(slot) || state.importing.contains_key(&slot) {
        return None;
    }
    let Some(owner) = state.owner(slot) else { return Some(CmdError::SlotNotServed) };
    let me = state.me();
    if asker.readonly && !asker.write && me.is(flag::SLAVE) && me.master.as_ref() == Some(&owner.id) {
        return None;
    }
    let (endpoint, port) = address(owner, config, asker.tls);
    Some(CmdError::Moved { slot, endpoint, port })
}

/// A node's endpoint as `cluster-preferred-endpoint-type` names it, and its client port of
/// the kind of the client's connection.
#[must_use]
pub(crate) fn address(node: &Node, config: &Config, tls: bool) -> (String, u16) {
    (endpoint(node, config.cluster_preferred_endpoint_type), node.client_port(tls))
}

/// A node's preferred endpoint: its ip, its hostname (`?` when it has none), or nothing.
#[must_use]
pub(crate) fn endpoint(node: &Node, kind: EndpointType) -> String {
    match kind {
        EndpointType::Ip => node.ip.clone(),
        EndpointType::Hostname if node.hostname.is_empty() => "?".into(),
        EndpointType::Hostname => node.hostname.clone(),
        EndpointType::UnknownEndpoint => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cluster::node::NodeId;

    /// Two primaries, this one with slots 0..8191 and the other with the rest.
    fn two() -> (State, NodeId) {
        let mut me = Node::new(NodeId::random(), flag::MYSELF | flag::MASTER);
        me.ip = "127.0.0.1".into();
        let mut s = State::alone(me);
        let other = NodeId::random();
        let o = s.node_or_add(other);
        o.flags = flag::MASTER;
        o.ip = "127.0.0.2".into();
        o.tcp_port = 7001;
        o.tls_port = 8001;
        let my_id = s.me().id;
        for slot in 0..16384 {
            s.add_slot(slot, if slot < 8192 { &my_id } else { &other });
        }
        s.ok = true;
        (s, other)
    }

    /// The routing of `s` as a core derives it.
    fn at(s: &State) -> Routing {
        Routing::new(std::sync::Arc::new(s.clone()))
    }

    #[test]
    fn only_an_ok_cluster_s_own_settled_slots_are_served_outright() {
        let (mut s, other) = two();
        s.migrating.insert(5061, other);
        s.importing.insert(12182, other);
        let r = at(&s);
        assert!(r.outright(0) && r.outright(8191), "this node's slots");
        assert!(!r.outright(5061), "a migrating slot looks at its keys first");
        assert!(!r.outright(8192) && !r.outright(12182), "another node's slots, imported or not");
        s.ok = false;
        assert!(!at(&s).outright(0), "a failing cluster refuses or limits everything");
    }

    #[test]
    fn a_blocked_client_leaves_when_its_slot_goes_elsewhere_or_unserved() {
        let (mut s, other) = two();
        let config = Config::default();
        // "bar" is slot 5061 (here), "foo" 12182 (there).
        assert_eq!(blocked(&at(&s), &config, b"bar", &Asker::default()), None);
        let moved = blocked(&at(&s), &config, b"foo", &Asker::default()).map(|e| e.to_string());
        assert_eq!(moved.as_deref(), Some("MOVED 12182 127.0.0.2:7001"));
        s.importing.insert(12182, other);
        assert_eq!(blocked(&at(&s), &config, b"foo", &Asker::default()), None, "importing: keys may come");
        s.del_slot(5061);
        assert_eq!(blocked(&at(&s), &config, b"bar", &Asker::default()), Some(CmdError::SlotNotServed));
        s.ok = false;
        let reads_allowed = Config { cluster_allow_reads_when_down: true, ..Config::default() };
        assert_eq!(blocked(&at(&s), &reads_allowed, b"foo", &Asker::default()), Some(CmdError::ClusterDown));
    }

    fn keys(k: &[&'static str]) -> Vec<&'static [u8]> {
        k.iter().map(|k| k.as_bytes()).collect()
    }

    #[test]
    fn keys_of_another_node_are_moved_with_the_client_s_port() {
        let (s, _) = two();
        let config = Config::default();
        // "bar" is slot 5061 (here), "foo" 12182 (there).
        assert_eq!(
            route(&at(&s), &config, keys(&["bar"]), &Asker::default(), None),
            Ok(Route::Here(Some(5061)))
        );
        let moved = route(&at(&s), &config, keys(&["foo"]), &Asker::default(), None).unwrap_err();
        assert_eq!(moved.to_string(), "MOVED 12182 127.0.0.2:7001");
        let tls = Asker { tls: true, ..Asker::default() };
        assert_eq!(
            route(&at(&s), &config, keys(&["foo"]), &tls, None).unwrap_err().to_string(),
            "MOVED 12182 127.0.0.2:8001"
        );
        assert_eq!(
            route(&at(&s), &config, keys(&["foo", "bar"]), &Asker::default(), None),
            Err(CmdError::CrossSlot)
        );
        assert_eq!(
            route(&at(&s), &config, keys(&["{foo}a", "{foo}b"]), &Asker::default(), None)
                .unwrap_err()
                .to_string(),
            "MOVED 12182 127.0.0.2:7001"
        );
        assert_eq!(route(&at(&s), &config, keys(&[]), &Asker::default(), None), Ok(Route::Here(None)));
    }

    #[test]
    fn a_down_cluster_refuses_or_serves_reads_as_configured() {
        let (mut s, _) = two();
        s.ok = false;
        let mut config = Config::default();
        assert_eq!(
            route(&at(&s), &config, keys(&["bar"]), &Asker::default(), None),
            Err(CmdError::ClusterDown)
        );
        config.cluster_allow_reads_when_down = true;
        assert!(route(&at(&s), &config, keys(&["bar"]), &Asker::default(), None).is_ok());
        let write = Asker { write: true, writes_any: true, ..Asker::default() };
        assert_eq!(route(&at(&s), &config, keys(&["bar"]), &write, None), Err(CmdError::ClusterDownReadOnly));
        s.del_slot(5061);
        assert_eq!(
            route(&at(&s), &config, keys(&["bar"]), &Asker::default(), None),
            Err(CmdError::SlotNotServed)
        );
    }

    #[test]
    fn open_slots_ask_or_serve_by_what_is_here() {
        let (mut s, other) = two();
        let config = Config::default();
        s.migrating.insert(5061, other);
        let ask = Asker::default();
        assert_eq!(route(&at(&s), &config, keys(&["bar"]), &ask, None), Ok(Route::Lookup(5061)));
        let gone = Some(Present { existing: 0, missing: 1 });
        assert_eq!(
            route(&at(&s), &config, keys(&["bar"]), &ask, gone).unwrap_err().to_string(),
            "ASK 5061 127.0.0.2:7001"
        );
        let half = Some(Present { existing: 1, missing: 1 });
        assert_eq!(route(&at(&s), &config, keys(&["bar", "bar{bar}"]), &ask, half), Err(CmdError::TryAgain));
        let all = Some(Present { existing: 1, missing: 0 });
        assert!(route(&at(&s), &config, keys(&["bar"]), &ask, all).is_ok());
        // Importing: served after ASKING only.
        s.importing.insert(12182, other);
        let here = Some(Present { existing: 0, missing: 1 });
        assert!(matches!(route(&at(&s), &config, keys(&["foo"]), &ask, here), Err(CmdError::Moved { .. })));
        let asking = Asker { asking: true, ..Asker::default() };
        assert_eq!(route(&at(&s), &config, keys(&["foo"]), &asking, here), Ok(Route::Here(Some(12182))));
    }

    #[test]
    fn an_open_slot_s_routes_are_decided_before_its_keys_are_counted() {
        let (mut s, other) = two();
        let config = Config::default();
        s.migrating.insert(5061, other);
        let routing = at(&s);
        let decide = |names: &[&'static str]| {
            let owned = names.iter().map(|k| Bytes::copy_from_slice(k.as_bytes())).collect();
            OpenSlot::decide(owned, |present| {
                route(&routing, &config, keys(names), &Asker::default(), Some(present))
            })
        };
        let one = decide(&["bar"]);
        assert_eq!(one.settled(), None);
        assert_eq!(one.refusal(|_| true), None);
        assert_eq!(one.refusal(|_| false).unwrap().to_string(), "ASK 5061 127.0.0.2:7001");
        let two_keys = decide(&["bar", "{bar}1"]);
        assert_eq!(two_keys.refusal(|k| k == b"bar"), Some(CmdError::TryAgain));
        assert_eq!(two_keys.refusal(|_| true), None);
        // Importing without ASKING: MOVED whatever is here, decided without counting.
        s.migrating.clear();
        s.importing.insert(12182, other);
        let routing = at(&s);
        let owned = vec![Bytes::from_static(b"foo")];
        let moved = OpenSlot::decide(owned, |present| {
            route(&routing, &config, keys(&["foo"]), &Asker::default(), Some(present))
        });
        assert!(matches!(moved.settled(), Some(Some(CmdError::Moved { .. }))));
    }

    #[test]
    fn a_readonly_client_reads_its_primary_s_slots_on_a_replica() {
        let (mut s, other) = two();
        let config = Config::default();
        let my_id = s.me().id;
        for slot in 0..8192 {
            s.del_slot(slot);
            s.add_slot(slot, &other);
        }
        let me = s.me_mut();
        me.flags = flag::MYSELF | flag::SLAVE;
        me.master = Some(other);
        let _ = my_id;
        let readonly = Asker { readonly: true, ..Asker::default() };
        assert!(route(&at(&s), &config, keys(&["foo"]), &readonly, None).is_ok());
        let write = Asker { readonly: true, write: true, writes_any: true, ..Asker::default() };
        assert!(matches!(route(&at(&s), &config, keys(&["foo"]), &write, None), Err(CmdError::Moved { .. })));
        assert!(matches!(
            route(&at(&s), &config, keys(&["foo"]), &Asker::default(), None),
            Err(CmdError::Moved { .. })
        ));
    }
}
