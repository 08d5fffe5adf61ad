//! What a core keeps besides its shard: its clients, its pub/sub subscribers and its counters.
//! Its own connections reach it directly; other cores reach it by core hops, which touch no
//! key and so never wait for a shard's gate.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use crate::engine::client::Client;
use crate::engine::pubsub::Registry;

/// Counters a core keeps for INFO; summed across cores on demand.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoreStats {
    /// Connections accepted.
    pub connections: u64,
    /// Connections refused by `maxclients`.
    pub rejected: u64,
    /// Commands processed.
    pub commands: u64,
    /// Bytes read from clients (after TLS).
    pub net_in: u64,
    /// Bytes written to clients (before TLS).
    pub net_out: u64,
    /// Clients connected now.
    pub clients: u64,
    /// TLS handshakes completed.
    pub tls_handshakes: u64,
    /// TLS handshakes that failed (bad certificate, plaintext on the TLS port, timeout).
    pub tls_handshake_failures: u64,
    /// TLS handshakes that resumed a session (ticket or cache) instead of a full handshake.
    pub tls_resumed: u64,
    /// TLS clients connected now.
    pub tls_clients: u64,
}

/// One core's clients, subscribers and counters.
#[derive(Default)]
pub struct Local {
    /// The clients connected to this core, by id.
    pub clients: RefCell<BTreeMap<u64, Rc<Client>>>,
    /// This core's pub/sub subscribers.
    pub pubsub: RefCell<Registry>,
    /// This core's counters.
    pub stats: RefCell<CoreStats>,
}

impl Local {
    /// Updates this core's counters.
    pub fn count(&self, f: impl FnOnce(&mut CoreStats)) {
        f(&mut self.stats.borrow_mut());
    }
}
