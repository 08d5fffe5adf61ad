//! What a core keeps besides its shard: its clients, its pub/sub subscribers and its counters.
//! Its own connections reach it directly; other cores reach it by core hops, which touch no
//! key and so never wait for a shard's gate.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::engine::client::Client;
use crate::engine::pubsub::Registry;
use crate::engine::stats::{Rates, Stats};

/// Counters a core keeps for INFO; summed across cores on demand.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CoreStats {
    /// Connections accepted.
    pub(crate) connections: u64,
    /// Connections refused by `maxclients`.
    pub(crate) rejected: u64,
    /// Bytes read from clients (after TLS).
    pub(crate) net_in: u64,
    /// Bytes written to clients (before TLS).
    pub(crate) net_out: u64,
    /// Reads that brought bytes.
    pub(crate) reads: u64,
    /// Writes of replies or pushes.
    pub(crate) writes: u64,
    /// Clients connected now.
    pub(crate) clients: u64,
    /// TLS handshakes completed.
    pub(crate) tls_handshakes: u64,
    /// TLS handshakes that failed (bad certificate, plaintext on the TLS port, timeout).
    pub(crate) tls_handshake_failures: u64,
    /// TLS handshakes that resumed a session (ticket or cache) instead of a full handshake.
    pub(crate) tls_resumed: u64,
    /// TLS clients connected now.
    pub(crate) tls_clients: u64,
    /// Clients dropped by `maxmemory-clients`.
    pub(crate) evicted_clients: u64,
    /// Messages sent to other cores (each a batch of hops, see [`crate::engine::router`]).
    pub(crate) hop_messages: u64,
    /// Hops and replies those messages carried.
    pub(crate) hops: u64,
    /// Messages received from other cores.
    pub(crate) hop_messages_received: u64,
    /// Hops and replies those messages carried.
    pub(crate) hops_received: u64,
    /// Connections that moved to another core (see [`crate::engine::affinity`]).
    pub(crate) moved_out: u64,
    /// Connections that moved here from another core.
    pub(crate) moved_in: u64,
    /// Hops for this core's shard that waited behind its gate (held by a multi-shard
    /// transaction, or with work queued ahead).
    pub(crate) gate_waits: u64,
    /// Times this core's thread was lent to a transaction holding every gate (a script across
    /// shards), waiting for its hops outside the loop (see [`crate::engine::router::blocking`]).
    pub(crate) lends: u64,
    /// Times one of this core's sessions handed every shard's gate, held, to another of its
    /// sessions for its scripts (see [`crate::engine::script::turn`]).
    pub(crate) gate_handovers: u64,
}

/// One core's clients, subscribers and counters.
#[derive(Default)]
pub(crate) struct Local {
    /// The clients connected to this core, by id.
    pub(crate) clients: RefCell<BTreeMap<u64, Rc<Client>>>,
    /// This core's pub/sub subscribers.
    pub(crate) pubsub: RefCell<Registry>,
    /// Whether this core counts among those with subscribers (see [`Local::note_subscribers`]).
    subscribed: std::cell::Cell<bool>,
    /// This core's MONITOR clients.
    pub(crate) monitors: RefCell<Vec<Rc<Client>>>,
    /// This core's counters.
    pub(crate) stats: RefCell<CoreStats>,
    /// The commands its sessions ran themselves (its shard keeps those it executed).
    pub(crate) commands: RefCell<Stats>,
    /// The memory of this core's clients as last counted (`maxmemory-clients`; kept only while
    /// a limit is set).
    pub(crate) clients_memory: std::cell::Cell<u64>,
    /// This core's instantaneous rates, sampled by its cron.
    pub(crate) rates: RefCell<Rates>,
    /// How many more connections may move away from this core in the cron's current period
    /// (see [`crate::engine::affinity::moves_allowed`]).
    pub(crate) moves_left: std::cell::Cell<u32>,
}

impl Local {
    /// After a change of this core's subscriptions: tells `global` whether the core now has
    /// subscribers (shards skip keyspace notifications while no core has any).
    pub(crate) fn note_subscribers(&self, global: &crate::engine::global::Global, core: usize) {
        let now = !self.pubsub.borrow().is_empty();
        if self.subscribed.replace(now) != now {
            global.note_subscribed_core(core, now);
        }
    }

    /// Updates this core's counters.
    pub(crate) fn count(&self, f: impl FnOnce(&mut CoreStats)) {
        f(&mut self.stats.borrow_mut());
    }
}
