//! One core's context: its router, a cached configuration, and counters; shared by the core's
//! connections through an `Rc`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::engine::global::Global;
use crate::engine::router::Router;

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

/// Per-core context.
pub struct Core {
    /// Routes work to shards.
    pub router: Rc<Router>,
    /// Process-wide state.
    pub global: Arc<Global>,
    config: RefCell<(u64, Arc<Config>)>,
    /// TLS handshakes running on this core now (bounded by the accept loop).
    pub handshakes_in_flight: Cell<usize>,
}

impl Core {
    /// The context of a core.
    #[must_use]
    pub fn new(router: Rc<Router>, global: Arc<Global>) -> Core {
        let config = (global.config_version(), global.config());
        Core { router, global, config: RefCell::new(config), handshakes_in_flight: Cell::new(0) }
    }

    /// The configuration, re-read only when CONFIG SET changed it.
    #[must_use]
    pub fn config(&self) -> Arc<Config> {
        let version = self.global.config_version();
        let mut cached = self.config.borrow_mut();
        if cached.0 != version {
            *cached = (version, self.global.config());
        }
        cached.1.clone()
    }

    /// Updates this core's counters (kept in the shard, so INFO's fan-out can read them).
    pub fn count(&self, f: impl FnOnce(&mut CoreStats)) {
        f(&mut self.router.host().shard().stats);
    }
}
