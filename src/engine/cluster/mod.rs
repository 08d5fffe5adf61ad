//! Redis Cluster (`cluster-enabled yes`): this node's view of the cluster, shared by every
//! core, and the rules that send a client to the node serving its keys.
//!
//! - [`state`]: the nodes, the slot table, the epochs (plain data);
//! - [`node`]: one node and its CLUSTER NODES line;
//! - [`nodes_conf`]: nodes.conf, read at startup and replaced after every change;
//! - [`redirect`]: `-MOVED`, `-ASK`, `-CROSSSLOT`, `-TRYAGAIN`, `-CLUSTERDOWN` for a request;
//! - [`wire`]: the bus's messages, byte for byte as Redis 7.0's;
//! - [`gossip`]: what a bus message does to the state, and what this node sends;
//! - [`election`]: replicas' elections, primaries' votes, CLUSTER FAILOVER;
//! - [`migration`]: a replica moving to a primary left without any;
//! - [`bus`]: the bus's listener and links, on core 0;
//! - [`verify`]: the loaded dataset against the slot table, at startup.
//!
//! One [`Cluster`] lives in [`crate::engine::global::Global`]. Changes are rare (a CLUSTER
//! command, a message of the bus): each edits a copy of the state under one lock, saves it,
//! and publishes it whole; every core caches the published `Arc` and looks again only when
//! the version moved, so routing a request reads no shared lock. Inside the node, slots keep
//! their owning shard (`engine::slot`), cluster or not.

pub(crate) mod bus;
pub(crate) mod election;
pub(crate) mod gossip;
pub(crate) mod migration;
pub(crate) mod node;
pub(crate) mod nodes_conf;
pub(crate) mod redirect;
pub(crate) mod state;
pub(crate) mod verify;
pub(crate) mod wire;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::engine::cluster::node::{flag, Node, NodeId};
use crate::engine::cluster::nodes_conf::{ConfError, NodesFile};
use crate::engine::cluster::state::State;

/// How long a primary that was failing waits before it serves again (Redis's
/// `CLUSTER_WRITABLE_DELAY`), from the first check of the state.
const WRITABLE_DELAY: Duration = Duration::from_millis(2000);

/// Whether this process runs in cluster mode (`cluster-enabled` is fixed at startup): for
/// the commands that refuse to run then and see no session (MOVE, COPY ... DB).
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process runs in cluster mode.
#[must_use]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// A pub/sub message for other nodes (Redis's `clusterPropagatePublish`), which the bus
/// sends.
#[derive(Debug, Clone)]
pub(crate) enum Spread {
    /// PUBLISH: to every node.
    Publish {
        /// The channel.
        channel: bytes::Bytes,
        /// The message.
        message: bytes::Bytes,
    },
    /// SPUBLISH: to the nodes of this node's shard (its primary and the primary's replicas).
    Shard {
        /// The shard channel.
        channel: bytes::Bytes,
        /// The message.
        message: bytes::Bytes,
    },
}

impl Spread {
    /// What the message weighs in the bus's queue.
    fn size(&self) -> u64 {
        let (Spread::Publish { channel, message } | Spread::Shard { channel, message }) = self;
        (channel.len() + message.len() + std::mem::size_of::<Spread>()) as u64
    }
}

/// How many bytes of pub/sub messages may wait for the bus (see [`Cluster::propagate`]).
pub(crate) const SPREAD_LIMIT: u64 = 64 << 20;

/// A link of the bus as CLUSTER LINKS shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkView {
    /// This node opened it (`to`), else the peer did (`from`).
    pub(crate) outbound: bool,
    /// The peer.
    pub(crate) node: NodeId,
    /// When it was opened (unix ms).
    pub(crate) created: u64,
    /// Bytes queued and not written yet.
    pub(crate) queued: usize,
}

/// The cluster as this node sees it, shared by the cores.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// The published state.
    current: RwLock<Arc<State>>,
    /// Moves with every publication.
    version: AtomicU64,
    /// The locked nodes.conf and the timing of the health checks; held by each edit, so edits
    /// apply one at a time.
    edits: Mutex<Edits>,
    /// Bus messages sent and received, by type (CLUSTER INFO).
    messages: [[AtomicU64; 11]; 2],
    /// A CLUSTER FAILOVER for the bus to start.
    manual: Mutex<Option<election::Manual>>,
    /// Pub/sub messages for the bus to send, from any core.
    spread: futures::channel::mpsc::UnboundedSender<Spread>,
    /// Their receiving end, until the bus takes it.
    spread_rx: Mutex<Option<futures::channel::mpsc::UnboundedReceiver<Spread>>>,
    /// Bytes of pub/sub messages queued for the bus and not taken yet (bounded by
    /// [`SPREAD_LIMIT`]).
    spread_queued: AtomicU64,
    /// Pub/sub messages dropped because the queue was full.
    spread_dropped: AtomicU64,
    /// The bus's links, as of its last cron.
    links: Mutex<Vec<LinkView>>,
    /// Links closed for passing `cluster-link-sendbuf-limit` (CLUSTER INFO).
    links_over_limit: AtomicU64,
}

#[derive(Debug)]
struct Edits {
    file: NodesFile,
    /// When the health was first checked.
    first_check: Option<Instant>,
    /// When the reachable primaries were last a minority.
    among_minority: Option<Instant>,
}

impl Cluster {
    /// Locks and loads nodes.conf (`cluster-config-file` under `dir`), or makes this node a
    /// new one, takes the addresses of the configuration, and saves.
    ///
    /// # Errors
    /// The file is held by another server, damaged, or cannot be written.
    pub(crate) fn start(config: &Config) -> Result<Cluster, ConfError> {
        let path = Path::new(&config.dir).join(&config.cluster_config_file);
        let (mut file, text) = NodesFile::open(&path)?;
        let mut state = match text {
            Some(text) => {
                let state = nodes_conf::parse(&text, &path, config.tls_cluster)?;
                tracing::info!("Node configuration loaded, I'm {}", state.me().id);
                state
            }
            None => {
                let me = Node::new(NodeId::random(), flag::MYSELF | flag::MASTER);
                tracing::info!("No cluster configuration found, I'm {}", me.id);
                State::alone(me)
            }
        };
        announce(&mut state, config);
        file.save(&state, config.tls_cluster)?;
        ENABLED.store(true, Ordering::Relaxed);
        let (spread, spread_rx) = futures::channel::mpsc::unbounded();
        Ok(Cluster {
            current: RwLock::new(Arc::new(state)),
            version: AtomicU64::new(1),
            edits: Mutex::new(Edits { file, first_check: None, among_minority: None }),
            messages: Default::default(),
            manual: Mutex::new(None),
            spread,
            spread_rx: Mutex::new(Some(spread_rx)),
            spread_queued: AtomicU64::new(0),
            spread_dropped: AtomicU64::new(0),
            links: Mutex::default(),
            links_over_limit: AtomicU64::new(0),
        })
    }

    /// The published state.
    #[must_use]
    pub(crate) fn view(&self) -> Arc<State> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Moves with every change of the published state.
    #[must_use]
    pub(crate) fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Applies `change` to a copy of the state; when it succeeds, checks the cluster's health,
    /// saves nodes.conf (when `save`) and publishes the copy. A failed save is logged and the
    /// change stays (Redis exits instead; ferrokey keeps serving with the old file).
    ///
    /// # Errors
    /// `change`'s, and then nothing changed.
    pub(crate) fn edit<T, E>(
        &self,
        config: &Config,
        save: bool,
        change: impl FnOnce(&mut State) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut edits = self.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut state = State::clone(&self.view());
        let done = change(&mut state)?;
        edits.check_health(&mut state, config);
        if save {
            if let Err(e) = edits.file.save(&state, config.tls_cluster) {
                tracing::warn!("{e}");
            }
        }
        self.publish(state);
        Ok(done)
    }

    /// Applies a change of the bus (a message, a tick) to a copy of the state, and publishes
    /// it: `change` says whether nodes.conf must be saved too (Redis's `CLUSTER_TODO_SAVE_CONFIG`).
    pub(crate) fn apply<T>(&self, config: &Config, change: impl FnOnce(&mut State) -> (T, bool)) -> T {
        let mut edits = self.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = self.view();
        let mut state = State::clone(&before);
        let (done, save) = change(&mut state);
        edits.check_health(&mut state, config);
        if save {
            if let Err(e) = edits.file.save(&state, config.tls_cluster) {
                tracing::warn!("{e}");
            }
        }
        if state != *before {
            self.publish(state);
        }
        done
    }

    /// Asks the bus for a manual failover (CLUSTER FAILOVER).
    pub(crate) fn request_failover(&self, how: election::Manual) {
        *self.manual.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(how);
    }

    /// The manual failover asked for, if any.
    pub(crate) fn take_failover(&self) -> Option<election::Manual> {
        self.manual.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Hands a pub/sub message to the bus for the other nodes; drops it (counted, and logged
    /// now and then) when [`SPREAD_LIMIT`] bytes wait already: a bus core that cannot keep
    /// up must not make every core's PUBLISHes pile up in memory.
    pub(crate) fn propagate(&self, what: Spread) {
        let size = what.size();
        if self.spread_queued.fetch_add(size, Ordering::AcqRel).saturating_add(size) > SPREAD_LIMIT {
            self.spread_queued.fetch_sub(size, Ordering::AcqRel);
            let dropped = self.spread_dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    "the cluster bus is behind by more than {SPREAD_LIMIT} bytes of pub/sub messages: \
                     {dropped} dropped so far"
                );
            }
            return;
        }
        let _ = self.spread.unbounded_send(what);
    }

    /// The bus took `what` off the queue [`Cluster::propagate`] fills.
    pub(crate) fn spread_taken(&self, what: &Spread) {
        self.spread_queued.fetch_sub(what.size(), Ordering::AcqRel);
    }

    /// The messages [`Cluster::propagate`] queued, for the bus (once).
    pub(crate) fn take_spread(&self) -> Option<futures::channel::mpsc::UnboundedReceiver<Spread>> {
        self.spread_rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// The bus's links (CLUSTER LINKS), as of its last cron.
    #[must_use]
    pub(crate) fn links(&self) -> Vec<LinkView> {
        self.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// The bus publishes its links.
    pub(crate) fn set_links(&self, links: Vec<LinkView>) {
        *self.links.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = links;
    }

    /// Counts a link closed for passing `cluster-link-sendbuf-limit`.
    pub(crate) fn count_link_over_limit(&self) {
        self.links_over_limit.fetch_add(1, Ordering::Relaxed);
    }

    /// Links closed for passing `cluster-link-sendbuf-limit` since startup.
    #[must_use]
    pub(crate) fn links_over_limit(&self) -> u64 {
        self.links_over_limit.load(Ordering::Relaxed)
    }

    /// Counts a bus message of type `kind`, sent or received.
    pub(crate) fn count(&self, kind: u16, sent: bool) {
        if let Some(c) = self.messages[usize::from(!sent)].get(usize::from(kind)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The messages counted, by type: `(sent, received)`.
    #[must_use]
    pub(crate) fn messages(&self) -> ([u64; 11], [u64; 11]) {
        let read = |i: usize| std::array::from_fn(|k| self.messages[i][k].load(Ordering::Relaxed));
        (read(0), read(1))
    }

    /// Saves nodes.conf now (CLUSTER SAVECONFIG).
    ///
    /// # Errors
    /// Why the file could not be written.
    pub(crate) fn save(&self, config: &Config) -> Result<(), ConfError> {
        let mut edits = self.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        edits.file.save_synced(&self.view(), config.tls_cluster)
    }

    /// The periodic check of the cluster's health (Redis's `clusterCron` calling
    /// `clusterUpdateState`), every 100 ms on core 0; also takes changed announce settings.
    pub(crate) fn tick(&self, config: &Config) {
        let mut edits = self.edits.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut state = State::clone(&self.view());
        announce(&mut state, config);
        edits.check_health(&mut state, config);
        if state != *self.view() {
            self.publish(state);
        }
    }

    fn publish(&self, state: State) {
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(state);
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

impl Edits {
    /// Redis's `clusterUpdateState`: a primary that was failing waits `WRITABLE_DELAY` from the
    /// first check, and one that was among a minority waits the rejoin delay
    /// (`cluster-node-timeout`, within 0.5 to 5 s), before it serves again.
    fn check_health(&mut self, state: &mut State, config: &Config) {
        let now = Instant::now();
        let first = *self.first_check.get_or_insert(now);
        let master = state.me().is(flag::MASTER);
        if master && !state.ok && now.duration_since(first) < WRITABLE_DELAY {
            return;
        }
        let health = state.health(config.cluster_require_full_coverage);
        state.size = health.size;
        let majority = health.reachable > health.size / 2;
        if !majority {
            self.among_minority = Some(now);
        }
        let ok = health.covered && majority;
        if ok != state.ok {
            let rejoin = Duration::from_millis(config.cluster_node_timeout.clamp(500, 5000));
            if ok && master && self.among_minority.is_some_and(|t| now.duration_since(t) < rejoin) {
                return;
            }
            tracing::info!("Cluster state changed: {}", if ok { "ok" } else { "fail" });
            state.ok = ok;
        }
    }
}

/// This node's addresses from the configuration (Redis's `deriveAnnouncedPorts` and the
/// announce settings): its client ports, bus port, hostname, and `nofailover`.
fn announce(state: &mut State, config: &Config) {
    let me = state.me_mut();
    me.tcp_port = if config.cluster_announce_port != 0 { config.cluster_announce_port } else { config.port };
    me.tls_port = if config.cluster_announce_tls_port != 0 {
        config.cluster_announce_tls_port
    } else {
        config.tls_port
    };
    me.cport = bus_port(config);
    if config.cluster_announce_bus_port != 0 {
        me.cport = config.cluster_announce_bus_port;
    }
    if !config.cluster_announce_ip.is_empty() {
        me.ip.clone_from(&config.cluster_announce_ip);
    }
    me.hostname.clone_from(&config.cluster_announce_hostname);
    if config.cluster_replica_no_failover {
        me.flags |= flag::NOFAILOVER;
    } else {
        me.flags &= !flag::NOFAILOVER;
    }
}

/// The port the bus listens on: `cluster-port`, else the client port (the TLS one with
/// `tls-cluster`) plus 10000.
#[must_use]
pub(crate) fn bus_port(config: &Config) -> u16 {
    if config.cluster_port != 0 {
        return config.cluster_port;
    }
    let port = if config.tls_cluster { config.tls_port } else { config.port };
    port.wrapping_add(10000)
}

/// Unix time in milliseconds.
#[must_use]
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}
