//! One core's context: its router and a cached configuration; shared by the core's
//! connections through an `Rc`.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use crate::config::Config;
use crate::engine::global::Global;
use crate::engine::local::Local;
use crate::engine::router::Router;

thread_local! {
    /// The core of this thread's executor (see [`Core::current`]).
    static CURRENT: RefCell<Weak<Core>> = const { RefCell::new(Weak::new()) };
}

/// Per-core context.
pub(crate) struct Core {
    /// Routes work to shards and cores.
    pub(crate) router: Rc<Router>,
    /// Process-wide state.
    pub(crate) global: Arc<Global>,
    config: RefCell<(u64, Arc<Config>)>,
    /// The cluster's state as last published (cluster mode only).
    cluster: RefCell<Option<(u64, crate::engine::cluster::redirect::Routing)>>,
    /// TLS handshakes running on this core now (bounded by the accept loop).
    pub(crate) handshakes_in_flight: Cell<usize>,
    /// This core's connections waiting for their writes to reach the disk.
    pub(crate) commits: Rc<crate::engine::journal::GroupCommit>,
}

impl Core {
    /// The context of a core.
    #[must_use]
    pub(crate) fn new(router: Rc<Router>, global: Arc<Global>) -> Core {
        let config = (global.config_version(), global.config());
        Core {
            router,
            global,
            config: RefCell::new(config),
            cluster: RefCell::new(None),
            handshakes_in_flight: Cell::new(0),
            commits: Rc::default(),
        }
    }

    /// The configuration, re-read only when CONFIG SET changed it.
    #[must_use]
    pub(crate) fn config(&self) -> Arc<Config> {
        self.cached_config().1.clone()
    }

    /// Reads the configuration without taking a reference to it (for checks on every command).
    pub(crate) fn with_config<R>(&self, f: impl FnOnce(&Config) -> R) -> R {
        f(&self.cached_config().1)
    }

    /// Reads the cluster's state and its routing, re-read only when it changed; `None`
    /// outside cluster mode.
    pub(crate) fn with_cluster<R>(
        &self,
        f: impl FnOnce(&crate::engine::cluster::redirect::Routing) -> R,
    ) -> Option<R> {
        let cluster = self.global.cluster.as_ref()?;
        let version = cluster.version();
        let mut cached = self.cluster.borrow_mut();
        if cached.as_ref().is_none_or(|(v, _)| *v != version) {
            *cached = Some((version, crate::engine::cluster::redirect::Routing::new(cluster.view())));
        }
        cached.as_ref().map(|(_, routing)| f(routing))
    }

    fn cached_config(&self) -> std::cell::RefMut<'_, (u64, Arc<Config>)> {
        let version = self.global.config_version();
        let mut cached = self.config.borrow_mut();
        if cached.0 != version {
            *cached = (version, self.global.config());
        }
        cached
    }

    /// Makes `core` what [`Core::current`] returns on this thread (its executor's).
    pub(crate) fn install(core: &Rc<Core>) {
        CURRENT.with(|current| *current.borrow_mut() = Rc::downgrade(core));
    }

    /// The core whose executor runs on this thread: work sent to a core as a plain closure
    /// (a [`Router::on_core`] hop) reaches its context through it.
    #[must_use]
    pub(crate) fn current() -> Option<Rc<Core>> {
        CURRENT.with(|current| current.borrow().upgrade())
    }

    /// This core's clients, subscribers and counters.
    #[must_use]
    pub(crate) fn local(&self) -> &Local {
        self.router.local_state()
    }
}
