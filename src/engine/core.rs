//! One core's context: its router, the command registry, a cached configuration; shared by
//! the core's connections through an `Rc`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use crate::config::Config;
use crate::engine::command::Commands;
use crate::engine::global::Global;
use crate::engine::local::Local;
use crate::engine::router::Router;

/// Per-core context.
pub struct Core {
    /// Routes work to shards and cores.
    pub router: Rc<Router>,
    /// Process-wide state.
    pub global: Arc<Global>,
    /// Every command.
    pub commands: &'static Commands,
    config: RefCell<(u64, Arc<Config>)>,
    /// TLS handshakes running on this core now (bounded by the accept loop).
    pub handshakes_in_flight: Cell<usize>,
}

impl Core {
    /// The context of a core.
    #[must_use]
    pub fn new(router: Rc<Router>, global: Arc<Global>, commands: &'static Commands) -> Core {
        let config = (global.config_version(), global.config());
        Core { router, global, commands, config: RefCell::new(config), handshakes_in_flight: Cell::new(0) }
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

    /// This core's clients, subscribers and counters.
    #[must_use]
    pub fn local(&self) -> &Local {
        self.router.local_state()
    }
}
