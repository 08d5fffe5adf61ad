//! Startup and shutdown: one pinned glommio executor per core, each binding its listeners,
//! joining the channel mesh, accepting and serving its own connections.
//!
//! The only module that knows both the facade and the server: it plugs sessions into connections.

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::RecvTimeoutError;
use futures::channel::oneshot;
use futures::AsyncWriteExt;
use futures::FutureExt;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::timer::Timer;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::Config;
use crate::engine::client::Client;
use crate::engine::core::Core;
use crate::engine::global::{CoreInfo, Global};
use crate::engine::local::Local;
use crate::engine::router::{Batch, Router};
use crate::engine::session::Session;
use crate::engine::shard::{Evicted, Shard};
use crate::engine::slot::ShardId;
use crate::engine::stats::Rates;
use crate::facade::listener::{Incoming, Listener};
use crate::facade::stream::Stream;
pub use crate::facade::tls::TlsError;
use crate::facade::tls::TlsSlot;
use crate::facade::{self, ConnError};

/// Messages a peer may queue before its sender waits.
const MESH_CAPACITY: usize = 1024;
/// How long every core has to bind its listeners.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a core looks at the shutdown flag.
const SHUTDOWN_POLL: Duration = Duration::from_millis(20);
/// How long shutdown waits for connections to flush and close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The TLS files are unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `server-cpus` or `threads` name cpus that do not exist.
    #[error("{0}")]
    Cpus(String),
    /// An executor could not start (usually RLIMIT_MEMLOCK).
    #[error("executor {shard} on cpu {cpu} could not start: {reason}. {hint}")]
    Executor {
        /// Which executor.
        shard: usize,
        /// Its cpu.
        cpu: usize,
        /// glommio's error.
        reason: String,
        /// What to do about it.
        hint: String,
    },
    /// An address to listen on is in use (by another process, or twice in our own
    /// configuration) or is not one.
    #[error("{0}")]
    Address(String),
    /// A core could not bind an address.
    #[error("core {shard}: {reason}")]
    Bind {
        /// Which core.
        shard: usize,
        /// The address and the error.
        reason: String,
    },
    /// A core did not report in time.
    #[error("startup timed out waiting for executors")]
    Timeout,
    /// Neither `port` nor `tls-port` is set, or every address is optional and none could be
    /// bound (CONFIG SET may later turn both off, as in Redis; startup may not).
    #[error("Configured to not listen anywhere, exiting.")]
    NowhereToListen,
    /// The ACL users could not be set up (`user` directives, `aclfile`).
    #[error("{0}")]
    Acl(String),
    /// Cluster mode could not start: nodes.conf is held by another server, damaged or
    /// unwritable, or the bus port would be out of range.
    #[error("{0}")]
    Cluster(String),
    /// The dump file could not be loaded (the log says why and where).
    #[error("the dataset could not be loaded from disk; see the log")]
    Load,
}

/// Runs the server until SIGTERM, SIGINT or SHUTDOWN; returns once every core has stopped.
/// `config_file` is the file `config` was read from (INFO shows it); `set_level` applies a
/// CONFIG SET of `loglevel` to the process's logging.
pub fn run(
    config: Config,
    config_file: Option<&std::path::Path>,
    set_level: crate::logging::SetLevel,
) -> Result<(), StartError> {
    let memlock = raise_memlock();
    crate::engine::stats::calibrate_clock();
    let tls = Arc::new(TlsSlot::new()?);
    if config.tls_port != 0 {
        let built = tls.build(&config)?;
        built.warnings.iter().for_each(|w| tracing::warn!("{w}"));
        tls.install(built);
    }
    let addrs = wanted(&config).map_err(StartError::Address)?;
    if addrs.is_empty() {
        return Err(StartError::NowhereToListen);
    }
    if config.metrics_port != 0
        && (config.metrics_port == config.port || config.metrics_port == config.tls_port)
    {
        return Err(StartError::Address("metrics-port must differ from port and tls-port".into()));
    }
    if config.metrics_port != 0 && config.metrics_tls && config.tls_port == 0 {
        return Err(StartError::Address("metrics-tls yes needs the TLS configuration of a tls-port".into()));
    }
    let metrics = addrs
        .iter()
        .filter(|_| config.metrics_port != 0)
        .map(|(a, _, optional)| (SocketAddr::new(a.ip(), config.metrics_port), *optional));
    let mut metrics: Vec<_> = metrics.collect();
    metrics.dedup_by_key(|(a, _)| *a);
    probe_exclusive(addrs.into_iter().map(|(a, _, optional)| (a, optional)).chain(metrics))
        .map_err(StartError::Address)?;
    let cpus = choose_cpus(&config)?;
    let cores: Vec<CoreInfo> = cpus.iter().enumerate().map(|(shard, &cpu)| CoreInfo { shard, cpu }).collect();
    // Every core runs commands from this one registry; the users table names its commands,
    // so it comes first.
    let _ = crate::engine::command::install(crate::cmd::commands());
    let users =
        crate::engine::acl::Users::at_startup(crate::engine::command::registry().acl_catalog(), &config)
            .map_err(StartError::Acl)?;
    let mut global = Global::new(config.clone(), cores.clone(), tls.clone(), users);
    // Absolute, as Redis shows it (and as a restart from another directory needs it).
    global.config_file = config_file
        .map(|f| std::path::absolute(f).unwrap_or_else(|_| f.to_owned()).display().to_string())
        .unwrap_or_default();
    if config.cluster_enabled {
        if config.cluster_port == 0
            && (if config.tls_cluster { config.tls_port } else { config.port }) > 55535
        {
            return Err(StartError::Cluster(
                "Redis port number too high. Cluster communication port is 10,000 port numbers higher than your \
                 Redis port. Your Redis port number must be 55535 or less."
                    .into(),
            ));
        }
        let cluster = crate::engine::cluster::Cluster::start(&config)
            .map_err(|e| StartError::Cluster(e.to_string()))?;
        global.cluster = Some(cluster);
    }
    let global = Arc::new(global);
    global.set_reconfigure(Box::new(reconfigure(tls.clone(), set_level)));
    watch_signals(global.clone());
    watch_tls_files(global.clone());

    // The dataset on disk, if any, loads while the cores start serving (they answer LOADING):
    // the AOF when it is on (its base, then its commands, replayed by core 0), else the dump.
    let (loads, mut replay) = if config.appendonly {
        let mut startup = crate::engine::aof::open_at_startup(&config).map_err(|e| {
            tracing::error!("{e}");
            StartError::Load
        })?;
        let end = startup.tail_end();
        let loads = startup
            .rdb_base
            .clone()
            .and_then(|base| crate::engine::snapshot::start_loading(&global, base, true, end));
        (loads, Some(startup.start(&global)))
    } else {
        let dump = std::path::Path::new(&config.dir).join(&config.dbfilename);
        (crate::engine::snapshot::start_loading(&global, dump, false, None), None)
    };
    let mut loads = loads.map(|receivers| receivers.into_iter().map(Some).collect::<Vec<_>>());
    if global.startup_failed() {
        return Err(StartError::Load);
    }

    let n = cores.len();
    let mesh = MeshBuilder::<Batch, _>::full(n, MESH_CAPACITY);
    let (ready_tx, ready_rx) = crossbeam_channel::unbounded::<Result<Vec<(SocketAddr, bool)>, String>>();
    let mut gos = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for core in &cores {
        let (go_tx, go_rx) = oneshot::channel::<bool>();
        gos.push(go_tx);
        let (global, mesh, tls, ready) = (global.clone(), mesh.clone(), tls.clone(), ready_tx.clone());
        let shard = core.shard;
        let load = loads.as_mut().and_then(|l| l.get_mut(shard)).and_then(Option::take);
        let load = CoreLoad { rdb: load, replay: if shard == 0 { replay.take() } else { None } };
        // Beside another executor on its cpu, an executor's poll for work yields the cpu on
        // each turn: a plain poll took the cpu from that one (two shards on one cpu served
        // 0.75x the requests with it), a yielding one hands it over at once, and the other's
        // messages then need no wake-up.
        let shares_cpu = cores.iter().filter(|other| other.cpu == core.cpu).count() > 1;
        let spawned = LocalExecutorBuilder::new(Placement::Fixed(core.cpu))
            .name(&format!("ferrokey-{shard}"))
            .io_memory(usize::try_from(config.executor_io_memory.0).unwrap_or(usize::MAX))
            .spin_before_park(Duration::from_micros(config.executor_idle_poll_us))
            .spin_yields(shares_cpu)
            .spawn(move || {
                // The same for its thread's waits outside the loop (a script across shards).
                crate::engine::handoff::share_cpu(shares_cpu);
                core_main(shard, global, mesh, tls, ready, go_rx, load)
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                gos.into_iter().for_each(|g| {
                    let _ = g.send(false);
                });
                return Err(StartError::Executor {
                    shard,
                    cpu: core.cpu,
                    reason: e.to_string(),
                    hint: memlock_hint(memlock, config.executor_io_memory.0),
                });
            }
        }
    }
    drop(ready_tx);

    let mut listening = Vec::new();
    let mut failure = None;
    for _ in 0..n {
        match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(Ok(addrs)) => listening = addrs,
            Ok(Err(reason)) => failure = Some(StartError::Bind { shard: 0, reason }),
            Err(RecvTimeoutError::Timeout) => failure = Some(StartError::Timeout),
            // A core died before reporting: glommio failed inside the executor.
            Err(RecvTimeoutError::Disconnected) => {
                failure = Some(StartError::Executor {
                    shard: 0,
                    cpu: 0,
                    reason: "an executor exited during startup".into(),
                    hint: memlock_hint(memlock, config.executor_io_memory.0),
                });
            }
        }
        if failure.is_some() {
            break;
        }
    }
    let ok = failure.is_none();
    gos.into_iter().for_each(|g| {
        let _ = g.send(ok);
    });
    if let Some(e) = failure {
        return Err(e);
    }
    banner(&config, &cores, &listening);
    if let Err(e) = crate::supervise::apply_oom_score_adj(&config) {
        tracing::warn!("{e}");
    }
    // Redis says it is ready once the dataset is in memory.
    while global.loading() && !global.shutting_down() {
        std::thread::sleep(Duration::from_millis(2));
    }
    if !global.shutting_down() {
        tracing::info!("Ready to accept connections");
        if let Some(note) = crate::supervise::notify_ready(&config) {
            tracing::info!("{note}");
        }
    }
    for h in handles {
        let _ = h.join();
    }
    // Every core has published what it logged: the writer writes it out and fsyncs.
    crate::engine::aof::shutdown(&global);
    if global.startup_failed() {
        return Err(StartError::Load);
    }
    tracing::info!("ferrokey is now ready to exit, bye bye...");
    Ok(())
}

fn banner(config: &Config, cores: &[CoreInfo], listening: &[(SocketAddr, bool)]) {
    tracing::info!(
        "ferrokey {} (Redis {} compatible), pid {}, {} executor(s)",
        env!("CARGO_PKG_VERSION"),
        crate::REDIS_VERSION,
        std::process::id(),
        cores.len()
    );
    for (addr, tls) in listening {
        tracing::info!("Listening on {addr} ({})", if *tls { "TLS" } else { "plain" });
    }
    for c in cores {
        tracing::info!("Executor {} pinned to cpu {}, owns shard {}", c.shard, c.cpu, c.shard);
    }
    if config.requirepass.is_empty() {
        tracing::debug!("no requirepass: every client is authenticated");
    }
}

/// The life of one core.
/// What a core loads at startup: its keys from an RDB file, and (core 0) the AOF's commands.
struct CoreLoad {
    rdb: Option<crate::engine::snapshot::LoadReceiver>,
    replay: Option<crate::engine::aof::ReplayReceiver>,
}

async fn core_main(
    index: usize,
    global: Arc<Global>,
    mesh: MeshBuilder<Batch, glommio::channels::channel_mesh::Full>,
    tls: Arc<TlsSlot>,
    ready: crossbeam_channel::Sender<Result<Vec<(SocketAddr, bool)>, String>>,
    go: oneshot::Receiver<bool>,
    load: CoreLoad,
) {
    crate::memory::mark_executor();
    let config = global.config();
    let mut listen_generation = global.listen_generation();
    let listeners = match bind_all(&config, &tls, &[]) {
        Ok(l) if l.is_empty() => {
            let _ = ready.send(Err(StartError::NowhereToListen.to_string()));
            return;
        }
        Ok(l) => l,
        Err(reason) => {
            let _ = ready.send(Err(reason));
            return;
        }
    };
    // The cluster bus, on executor 0 only.
    let bus = if index == 0 && global.cluster.is_some() {
        match bind_bus(&config) {
            Ok(l) => l,
            Err(reason) => {
                let _ = ready.send(Err(reason));
                return;
            }
        }
    } else {
        Vec::new()
    };
    // The metrics endpoint, on executor 0 only: scrapes are rare.
    let metrics = if index == 0 {
        match bind_metrics(&config, &tls) {
            Ok(l) => l,
            Err(reason) => {
                let _ = ready.send(Err(reason));
                return;
            }
        }
    } else {
        Vec::new()
    };
    global.note_bound(index, listen_generation);
    let _ = ready.send(Ok(listeners.iter().map(|l| (l.addr(), l.is_tls())).collect()));
    drop(ready);
    if go.await != Ok(true) {
        return;
    }
    let shards = global.cores.len();
    let (id, mesh) = if shards > 1 {
        match mesh.join().await {
            Ok((s, r)) => (s.peer_id(), Some((s, r))),
            Err(e) => {
                tracing::error!("core {index} could not join the mesh: {e}");
                global.request_shutdown();
                return;
            }
        }
    } else {
        (0, None)
    };
    let local = Rc::new(Local::default());
    let shard = Shard::new(ShardId(id), global.clone());
    let router = Rc::new(Router::new(ShardId(id), shards, shard, local.clone(), mesh));
    let core = Rc::new(Core::new(router, global.clone()));
    Core::install(&core);
    let weak = Rc::downgrade(&core);
    let notifier = Rc::downgrade(&core);
    let invalidator = Rc::downgrade(&core);
    core.router.try_local(|sh| {
        sh.set_ask_peer(Box::new(move |peer| {
            let Some(core) = weak.upgrade() else { return };
            let ask = async move { core.router.run(peer, None, Shard::evict_as_asked).await };
            glommio::spawn_local(ask).detach();
        }));
        sh.set_deliver(Box::new(move |notices, on| {
            if let Some(core) = notifier.upgrade() {
                deliver_notices(&core, &notices, on);
            }
        }));
        sh.set_invalidate(Box::new(move |batch| {
            if let Some(core) = invalidator.upgrade() {
                deliver_invalidations(&core, batch);
            }
        }));
    });

    if let Some(batches) = load.rdb {
        glommio::spawn_local(crate::engine::snapshot::receive(core.clone(), batches)).detach();
    }
    if let Some(batches) = load.replay {
        glommio::spawn_local(crate::engine::aof::replay(core.clone(), batches)).detach();
    }
    if !bus.is_empty() {
        crate::engine::cluster::bus::start(core.clone(), bus);
    }
    let mut accepts: Vec<Accepting> = listeners.into_iter().map(|l| Accepting::start(l, &core)).collect();
    let cron = glommio::spawn_local(cron(core.clone())).detach();
    let scrapes: Vec<_> = metrics
        .into_iter()
        .map(|l| glommio::spawn_local(crate::metrics::serve(l, core.clone())).detach())
        .collect();
    while !global.shutting_down() {
        Timer::new(SHUTDOWN_POLL).await;
        if index == 0 && global.take_shutdown_asap() {
            crate::engine::snapshot::shutdown_on_signal(&core).await;
        }
        if global.listen_generation() != listen_generation {
            listen_generation = global.listen_generation();
            rebind(&global.config(), &tls, &mut accepts, &core, index).await;
            global.note_bound(index, listen_generation);
        }
    }
    // Stop accepting, ask every connection to finish, and give them a moment to flush.
    accepts.iter().for_each(|a| a.task.cancel());
    scrapes.iter().for_each(glommio::task::JoinHandle::cancel);
    cron.cancel();
    let clients: Vec<Rc<Client>> = local.clients.borrow().values().cloned().collect();
    clients.iter().for_each(|c| c.kill());
    let deadline = std::time::Instant::now() + DRAIN_TIMEOUT;
    while !local.clients.borrow().is_empty() && std::time::Instant::now() < deadline {
        Timer::new(Duration::from_millis(5)).await;
    }
}

/// A listener and the task accepting on it.
struct Accepting {
    listener: Rc<Listener>,
    task: glommio::task::JoinHandle<()>,
}

impl Accepting {
    fn start(listener: Listener, core: &Rc<Core>) -> Accepting {
        let listener = Rc::new(listener);
        let task = glommio::spawn_local(accept_loop(listener.clone(), core.clone())).detach();
        Accepting { listener, task }
    }

    /// Its address and whether it is TLS.
    fn key(&self) -> (SocketAddr, bool) {
        (self.listener.addr(), self.listener.is_tls())
    }

    /// Stops listening at once, then ends the accepting task.
    async fn stop(self) {
        self.listener.close();
        self.task.cancel();
        let _ = self.task.await;
    }
}

/// Every address the configuration asks for: (address, TLS?, optional?).
fn wanted(config: &Config) -> Result<Vec<(SocketAddr, bool, bool)>, String> {
    let mut out = Vec::new();
    for raw in &config.bind {
        // Redis's `-` prefix: skip the address if it is unavailable.
        let (optional, text) = raw.strip_prefix('-').map_or((false, raw.as_str()), |t| (true, t));
        let ip: IpAddr = match if text == "*" { "0.0.0.0".parse() } else { text.parse() } {
            Ok(ip) => ip,
            Err(_) => return Err(format!("bind: '{raw}' is not an IP address")),
        };
        for (port, tls) in [(config.port, false), (config.tls_port, true)] {
            if port != 0 {
                out.push((SocketAddr::new(ip, port), tls, optional));
            }
        }
    }
    Ok(out)
}

/// Binds the metrics endpoint (`metrics-port`) on every `bind` address, TLS with
/// `metrics-tls`; none when the port is 0.
/// Binds the cluster bus port (`cluster-port`, else the client port plus 10000) on every
/// `bind` address; with `tls-cluster`, TLS that requires a certificate of every node, whatever
/// `tls-auth-clients` says (as Redis's bus).
fn bind_bus(config: &Config) -> Result<Vec<Listener>, String> {
    let port = crate::engine::cluster::bus_port(config);
    let tls = if config.tls_cluster {
        let mut strict = config.clone();
        strict.tls_auth_clients = crate::config::TlsAuthClients::Yes;
        let slot = TlsSlot::new().map_err(|e| e.to_string())?;
        let built = slot.build(&strict).map_err(|e| format!("tls-cluster: {e}"))?;
        slot.install(built);
        Some(Arc::new(slot))
    } else {
        None
    };
    let mut ips = Vec::new();
    for (addr, _, optional) in wanted(config)? {
        if !ips.iter().any(|(ip, _)| *ip == addr.ip()) {
            ips.push((addr.ip(), optional));
        }
    }
    let mut listeners = Vec::new();
    for (ip, optional) in ips {
        let addr = SocketAddr::new(ip, port);
        match Listener::bind(addr, tls.clone(), config.tcp_keepalive) {
            Ok(l) => listeners.push(l),
            Err(e) if optional => tracing::info!("skipping optional cluster bus bind {addr}: {e}"),
            Err(e) => return Err(format!("Failed listening on port {port} (cluster), aborting. ({e})")),
        }
    }
    if listeners.is_empty() {
        return Err(format!("Failed listening on port {port} (cluster), aborting."));
    }
    Ok(listeners)
}

fn bind_metrics(config: &Config, tls: &Arc<TlsSlot>) -> Result<Vec<Listener>, String> {
    if config.metrics_port == 0 {
        return Ok(Vec::new());
    }
    let mut ips = Vec::new();
    for (addr, _, optional) in wanted(config)? {
        if !ips.iter().any(|(ip, _)| *ip == addr.ip()) {
            ips.push((addr.ip(), optional));
        }
    }
    let mut listeners = Vec::new();
    for (ip, optional) in ips {
        let addr = SocketAddr::new(ip, config.metrics_port);
        match Listener::bind(addr, config.metrics_tls.then(|| tls.clone()), config.tcp_keepalive) {
            Ok(l) => {
                let scheme = if config.metrics_tls { "https" } else { "http" };
                tracing::info!("Metrics on {scheme}://{}/metrics", l.addr());
                listeners.push(l);
            }
            Err(e) if optional => tracing::info!("skipping optional metrics bind {addr}: {e}"),
            Err(e) => return Err(format!("could not bind the metrics port {addr}: {e}")),
        }
    }
    Ok(listeners)
}

/// Binds every wanted address not in `keep` (which are bound already). None at all is fine:
/// CONFIG SET may turn both ports off, as in Redis (startup refuses that before).
fn bind_all(
    config: &Config,
    tls: &Arc<TlsSlot>,
    keep: &[(SocketAddr, bool)],
) -> Result<Vec<Listener>, String> {
    let mut listeners = Vec::new();
    for (addr, is_tls, optional) in wanted(config)? {
        if keep.contains(&(addr, is_tls)) {
            continue;
        }
        match Listener::bind(addr, is_tls.then(|| tls.clone()), config.tcp_keepalive) {
            Ok(l) => listeners.push(l),
            Err(e) if optional => tracing::info!("skipping optional bind {addr}: {e}"),
            Err(e) => return Err(format!("could not bind {addr}: {e}")),
        }
    }
    Ok(listeners)
}

/// CONFIG SET changed the ports: close the listeners no longer wanted, bind the new ones.
/// Established connections are not touched.
async fn rebind(
    config: &Config,
    tls: &Arc<TlsSlot>,
    accepts: &mut Vec<Accepting>,
    core: &Rc<Core>,
    index: usize,
) {
    let Ok(want) = wanted(config) else { return };
    let is_wanted = |key: &(SocketAddr, bool)| want.iter().any(|(a, t, _)| (*a, *t) == *key);
    // Bind the new addresses first: if that fails, the old listeners keep serving.
    let kept: Vec<(SocketAddr, bool)> = accepts.iter().map(Accepting::key).filter(is_wanted).collect();
    let new = match bind_all(config, tls, &kept) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!("core {index}: rebinding after CONFIG SET: {e}; the old listeners stay");
            return;
        }
    };
    let (kept, closed): (Vec<_>, Vec<_>) =
        std::mem::take(accepts).into_iter().partition(|a| is_wanted(&a.key()));
    *accepts = kept;
    for accepting in closed {
        // Stopped before CONFIG SET replies: the old port then refuses, and is free to be
        // taken again (as the other kind, say) by the next CONFIG SET.
        let key = accepting.key();
        accepting.stop().await;
        tracing::info!("core {index}: closed listener {} ({})", key.0, if key.1 { "TLS" } else { "plain" });
    }
    for l in new {
        tracing::info!(
            "core {index}: listening on {} ({})",
            l.addr(),
            if l.is_tls() { "TLS" } else { "plain" }
        );
        accepts.push(Accepting::start(l, core));
    }
}

/// Accepts connections and starts their handshakes. On a TLS port at most
/// `max-new-tls-connections-per-cycle` handshakes start per turn of the loop (then every other
/// ready task runs first): a storm of new TLS clients waits in the kernel's backlog instead of
/// starving the established ones. Half-open handshakes cost no CPU and end at the handshake
/// timeout, so they are not capped: a cap would let a few idle sockets lock out real clients.
async fn accept_loop(listener: Rc<Listener>, core: Rc<Core>) {
    let mut this_turn = 0u64;
    loop {
        if listener.is_tls() {
            this_turn += 1;
            if this_turn > core.config().max_new_tls_connections_per_cycle {
                this_turn = 1;
                // The replies of the turn do not wait for a storm of new clients.
                crate::facade::pass::behind_the_pass(false).await;
            }
        }
        let incoming = match listener.accept().await {
            Ok(i) => i,
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!("accept on {}: {e}", listener.addr());
                Timer::new(Duration::from_millis(10)).await;
                continue;
            }
        };
        glommio::spawn_local(connection(incoming, core.clone())).detach();
    }
}

/// The CONFIG SET check: new ports must be bindable, and a TLS change must build; the built
/// configuration is installed on commit, and a new `loglevel` applied.
fn reconfigure(
    tls: Arc<TlsSlot>,
    set_level: crate::logging::SetLevel,
) -> impl Fn(&Config, &Config) -> Result<crate::engine::global::Commit, String> {
    move |old, new| {
        let mut commit = check_listeners(&tls, old, new)?;
        if new.oom_score_adj != old.oom_score_adj || new.oom_score_adj_values != old.oom_score_adj_values {
            crate::supervise::oom_values(new)?;
            let new = new.clone();
            let before = commit;
            commit = Box::new(move || {
                before();
                if let Err(e) = crate::supervise::apply_oom_score_adj(&new) {
                    tracing::warn!("{e}");
                }
            });
        }
        if new.loglevel == old.loglevel {
            return Ok(commit);
        }
        let (set_level, level) = (set_level.clone(), new.loglevel);
        Ok(Box::new(move || {
            commit();
            set_level(level);
        }))
    }
}

/// The part of the CONFIG SET check about ports and TLS.
fn check_listeners(
    tls: &Arc<TlsSlot>,
    old: &Config,
    new: &Config,
) -> Result<crate::engine::global::Commit, String> {
    if new.port != 0 && new.port == new.tls_port {
        return Err("Unable to listen on this port: port and tls-port are the same".into());
    }
    for (port, old_port) in [(new.port, old.port), (new.tls_port, old.tls_port)] {
        if port != 0 && port != old_port {
            probe_bind(new, port).map_err(|e| format!("Unable to listen on this port: {e}"))?;
        }
    }
    if new.tls_port != 0 && (new.tls_differs(old) || tls.current().is_none()) {
        let built = tls.build(new).map_err(|e| {
            tracing::warn!("TLS configuration not changed: {e}");
            format!("Unable to update TLS configuration: {e}")
        })?;
        built.warnings.iter().for_each(|w| tracing::warn!("{w}"));
        let tls = tls.clone();
        return Ok(Box::new(move || {
            tls.install(built);
            tracing::info!("TLS configuration reloaded");
        }));
    }
    Ok(Box::new(|| {}))
}

/// Checks that the addresses are free for us alone: nobody listens on any of them.
///
/// Each core binds with SO_REUSEPORT, which another process doing the same (a second ferrokey
/// on the same port) would join silently, splitting the connections between the two, and which
/// would let `port` and `tls-port` share a number. So first every address is bound and
/// listened on *without* SO_REUSEPORT, all held at once: anyone already listening there, or a
/// second of our own addresses on the same one, fails as it would in Redis ("Address already
/// in use"). The probes are closed before the cores bind.
fn probe_exclusive(addrs: impl IntoIterator<Item = (SocketAddr, bool)>) -> Result<(), String> {
    let mut held = Vec::new();
    for (addr, optional) in addrs {
        let probe = || -> std::io::Result<socket2::Socket> {
            let socket =
                socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
            // Ports in TIME_WAIT are free; listening sockets are not.
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(1)?;
            Ok(socket)
        };
        match probe() {
            Ok(socket) => held.push(socket),
            Err(_) if optional => {}
            Err(e) => return Err(format!("could not bind {addr}: {e}")),
        }
    }
    Ok(())
}

/// [`probe_exclusive`] for the addresses of `config.bind` on `port` (a port CONFIG SET changes).
fn probe_bind(config: &Config, port: u16) -> Result<(), String> {
    let wanted = wanted(config)?;
    probe_exclusive(
        wanted.into_iter().filter(|(a, _, _)| a.port() == port).map(|(a, _, optional)| (a, optional)),
    )
}

/// `tls-auto-reload-interval`: a thread (file reads are blocking; never on an executor) that
/// fingerprints the TLS files every interval and reloads when their contents change.
fn watch_tls_files(global: Arc<Global>) {
    let spawned = std::thread::Builder::new().name("ferrokey-tls-watch".into()).spawn(move || {
        let mut last = tls_fingerprint(&global.config());
        let mut waited = 0u64;
        while !global.shutting_down() {
            std::thread::sleep(Duration::from_millis(200));
            waited += 200;
            let config = global.config();
            let interval = config.tls_auto_reload_interval.saturating_mul(1000);
            if interval == 0 || config.tls_port == 0 || waited < interval {
                continue;
            }
            waited = 0;
            let now = tls_fingerprint(&config);
            if now == last {
                continue;
            }
            match global.tls.build(&config) {
                Ok(built) => {
                    global.tls.install(built);
                    tracing::info!("TLS files changed: configuration reloaded");
                    last = now;
                }
                // Half-written files are common while certificates rotate: retry next interval.
                Err(e) => tracing::warn!("TLS files changed but do not load yet: {e}"),
            }
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("tls-auto-reload-interval will not work: {e}");
    }
}

/// A hash of the TLS files' contents (and of the CA directory's files).
fn tls_fingerprint(config: &Config) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for path in [&config.tls_cert_file, &config.tls_key_file, &config.tls_ca_cert_file] {
        std::fs::read(path).unwrap_or_default().hash(&mut h);
    }
    if let Ok(dir) = std::fs::read_dir(&config.tls_ca_cert_dir) {
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for f in files {
            std::fs::read(&f).unwrap_or_default().hash(&mut h);
        }
    }
    h.finish()
}

/// Redis's reply to a client refused by protected mode.
const PROTECTED_MODE: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no \
password is set for the default user. In this mode connections are only accepted from the loopback interface. If \
you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable \
protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to \
Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet \
if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the \
protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then \
restarting the server. 3) If you started the server manually just for testing, restart it with the \
'--protected-mode no' option. 4) Set up an authentication password for the default user. NOTE: You only need to \
do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Publishes a shard's keyspace notifications to the subscribers of every core: the messages
/// are built once and posted to each core, which delivers them in the order posted.
fn deliver_notices(core: &Core, notices: &[crate::engine::notify::Notice], on: crate::engine::notify::Class) {
    let messages: Arc<Vec<(bytes::Bytes, bytes::Bytes)>> =
        Arc::new(notices.iter().flat_map(|n| n.messages(on)).collect());
    let limit = core.with_config(|c| c.client_output_buffer_limit.pubsub);
    for target in (0..core.router.shards()).filter(|&c| core.global.has_subscribers_on(c)) {
        let messages = messages.clone();
        core.router.post_core(ShardId(target), move |local| {
            let pubsub = local.pubsub.borrow();
            for (channel, message) in messages.iter() {
                pubsub.publish(channel, message, limit);
            }
        });
    }
}

/// Posts a shard's CLIENT TRACKING invalidations to the cores of the clients they are for,
/// one message per core.
fn deliver_invalidations(core: &Core, batch: Vec<crate::engine::tracking::Invalidation>) {
    let mut by_core: Vec<Vec<_>> = (0..core.router.shards()).map(|_| Vec::new()).collect();
    for inv in batch {
        if let Some(list) = by_core.get_mut(inv.to.core as usize) {
            list.push(inv);
        }
    }
    for (target, list) in by_core.into_iter().enumerate().filter(|(_, l)| !l.is_empty()) {
        core.router
            .post_core(ShardId(target), move |local| crate::engine::invalidation::deliver(local, &list));
    }
}

async fn connection(incoming: Incoming, core: Rc<Core>) {
    let config = core.config();
    let (peer, local) = (incoming.peer, incoming.local);
    // Boxed: the handshake's future is large and needed once, not for the connection's life.
    let handshaking = incoming.is_tls();
    if handshaking {
        core.handshakes_in_flight.set(core.handshakes_in_flight.get() + 1);
    }
    let established = Box::pin(incoming.establish(config.tcp_keepalive)).await;
    if handshaking {
        core.handshakes_in_flight.set(core.handshakes_in_flight.get() - 1);
    }
    let mut stream = match established {
        Ok(s) => s,
        Err(e) => {
            core.local().count(|s| s.tls_handshake_failures += 1);
            tracing::info!(%peer, "{e}");
            return;
        }
    };
    let tls_info = stream.tls_info();
    if core.global.clients() >= config.maxclients {
        core.local().count(|s| s.rejected += 1);
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
        let _ = stream.flush().await;
        return;
    }
    if config.protected(peer.ip()) {
        core.local().count(|s| s.rejected += 1);
        tracing::warn!(%peer, "connection refused: protected mode, and no password is set");
        let _ = stream.write_all(PROTECTED_MODE.as_bytes()).await;
        let _ = stream.flush().await;
        return;
    }
    let shard = core.router.local().0;
    let resumed = tls_info.as_ref().is_some_and(|t| t.resumed);
    let client =
        Rc::new(Client::new(core.global.next_client_id(), peer, local, tls_info, shard, stream.fd()));
    core.global.client_connected(1);
    core.local().count(|s| {
        s.connections += 1;
        if client.tls.is_some() {
            s.tls_handshakes += 1;
            s.tls_resumed += u64::from(resumed);
        }
    });
    let mut session = Session::new(core.clone(), client.clone());
    session.log_in_by_certificate();
    serve_client(core, stream, client, session).await;
}

/// Serves a connected client on this core until it leaves, or moves to another core
/// ([`crate::engine::affinity`]).
async fn serve_client(core: Rc<Core>, mut stream: Stream, client: Rc<Client>, mut session: Session) {
    let (peer, tls) = (client.addr, client.tls.is_some());
    core.local().clients.borrow_mut().insert(client.id, client.clone());
    core.global.peers.connected(client.core, client.id, peer);
    core.local().count(|s| {
        s.clients += 1;
        if tls {
            s.tls_clients += 1;
        }
    });
    {
        let name = client.name.borrow();
        if !name.is_empty() {
            core.global.peers.named(client.core, client.id, &name);
        }
    }
    let mut why = loop {
        // A bug that panics in a connection's task ends that connection, with a log line, not
        // the core with every client on it (a command's own panic is caught closer, in the shard).
        let served =
            std::panic::AssertUnwindSafe(facade::serve(&mut stream, &mut session)).catch_unwind().await;
        let why = served.unwrap_or_else(|_| {
            tracing::error!(id = client.id, %peer, "connection task panicked: this is a bug; the connection is closed");
            ConnError::Closed
        });
        let ConnError::Moved(to) = why else { break why };
        // Killed or evicted while its last replies were written: it goes nowhere.
        if client.is_killed() {
            break ConnError::Closed;
        }
        let (carried, carried_session) = (client.carry(), session.carry());
        match stream.detach() {
            Ok(detached) => {
                tracing::debug!(id = client.id, %peer, "connection moves to core {to}");
                leave_core(&core, &client);
                core.local().count(|s| s.moved_out += 1);
                let users = core.global.users.generation();
                let parcel = Parcel { stream: detached, client: carried, session: carried_session, users };
                core.router.post_core(ShardId(to), move |_| {
                    glommio::spawn_local(arrive(parcel)).detach();
                });
                return;
            }
            Err(failed) => {
                let (back, e) = *failed;
                // It stays, and is served on here; it asks again only after another run of calls.
                tracing::info!(id = client.id, %peer, "connection stays on this core: it could not move: {e}");
                session.affinity = crate::engine::affinity::Affinity::default();
                stream = back;
            }
        }
    };
    if let ConnError::Handover(unread) = why {
        // SYNC or PSYNC: the connection is a replica's link from now on.
        why = match session.handover.take() {
            Some(request) => {
                crate::engine::replication::serve_replica(&mut stream, &core, &client, request, unread).await
            }
            None => ConnError::Closed,
        };
    }
    match &why {
        ConnError::Eof | ConnError::Closed | ConnError::Idle => {
            tracing::debug!(id = client.id, %peer, "connection closed: {why}");
        }
        ConnError::Io(_) => tracing::info!(id = client.id, %peer, "connection error: {why}"),
        _ => tracing::warn!(id = client.id, %peer, "client dropped: {why}"),
    }
    // A client that left gets nothing more: as Redis, no close_notify after the client's EOF
    // (it would only draw a reset from a closed socket), the socket is just closed. Otherwise a
    // best effort close_notify for TLS; a peer that stopped reading must not hold us here.
    if !matches!(why, ConnError::Eof) {
        let _ = glommio::timer::timeout(Duration::from_millis(200), async {
            let _ = stream.close().await;
            Ok(())
        })
        .await;
    }
    leave_core(&core, &client);
    core.global.client_connected(-1);
}

/// Takes a client off this core's lists and counts: it left, or moves to another core.
fn leave_core(core: &Core, client: &Client) {
    core.local().clients.borrow_mut().remove(&client.id);
    core.global.peers.disconnected(client.core, client.id);
    crate::engine::client_eviction::forget(core, client);
    core.local().count(|s| {
        s.clients -= 1;
        if client.tls.is_some() {
            s.tls_clients -= 1;
        }
    });
}

/// A connection on its way to another core: what its socket, its TLS session, its client
/// record and its session need there, and the users table's generation when it left. Dropped on
/// the way, it closes the connection.
struct Parcel {
    stream: facade::stream::Detached,
    client: crate::engine::client::Carried,
    session: crate::engine::session::Carried,
    users: u64,
}

/// Serves, on this core, a connection that moved here. While it was on its way it was on no
/// core's lists: a shutdown that began, or a change of the users that disconnected clients,
/// could not reach it, so either closes it now.
async fn arrive(parcel: Parcel) {
    let Some(core) = Core::current() else { return };
    let stream = Stream::attach(parcel.stream);
    if core.global.shutting_down() || core.global.users.generation() != parcel.users {
        tracing::debug!("a connection that moved during a shutdown or a change of users is closed");
        core.global.client_connected(-1);
        return;
    }
    let client = Rc::new(Client::arrive(parcel.client, core.router.local().0, stream.fd()));
    let session = Session::arrive(core.clone(), client.clone(), parcel.session);
    core.local().count(|s| s.moved_in += 1);
    serve_client(core, stream, client, session).await;
}

/// Periodic work: active expiry, `hz` times a second; the instantaneous rates and the memory
/// counter, every 100 ms (every cycle when `hz` is 10 or less); on core 0, save points and
/// scheduled background saves, every second.
async fn cron(core: Rc<Core>) {
    let mut sampled = Instant::now();
    let mut persisted = Instant::now();
    let mut pinged = Instant::now();
    let mut hopped = (0, 0);
    loop {
        let hz = core.config().hz.max(1);
        let period = 1000 / hz;
        // Through the gate: a key must not expire in the middle of a transaction. Not while
        // clients are paused: the dataset and the stream stay still (see engine::pause).
        let expire =
            core.global.pauses.kind() == crate::engine::pause::PauseKind::Off && core.global.active_expire();
        let shard_calls = core
            .router
            .run(core.router.local(), None, move |sh: &mut Shard| {
                if expire {
                    sh.active_expire(period);
                }
                // Over `maxmemory`, every shard gives up its share (a shard that takes no
                // writes too).
                sh.publish_evictable();
                let evicted = sh.make_room(crate::engine::shard::Room::Share);
                (sh.command_stats().calls(), evicted)
            })
            .await;
        let (shard_calls, mut evicted) = match shard_calls {
            Ok((calls, evicted)) => (Some(calls), evicted),
            Err(_) => (None, Evicted::Enough),
        };
        // Out of time but still over: go on between other work for the rest of the cycle, as
        // Redis's eviction timer does, so that a lowered maxmemory is reached promptly.
        let cycle_end = Instant::now() + Duration::from_millis(period / 2);
        while evicted == Evicted::Running && Instant::now() < cycle_end {
            crate::engine::snapshot::let_others_in().await;
            evicted = core
                .router
                .run(core.router.local(), None, |sh: &mut Shard| {
                    sh.make_room(crate::engine::shard::Room::Share)
                })
                .await
                .unwrap_or(Evicted::Enough);
        }
        if core.router.local().0 == 0 && persisted.elapsed() >= Duration::from_secs(1) {
            persisted = Instant::now();
            crate::engine::snapshot::tick(&core).await;
            crate::engine::aof::tick(&core).await;
            crate::engine::replication::tick(&core, &mut pinged).await;
            crate::engine::replica::tick(&core);
        }
        crate::engine::client_eviction::cron(&core);
        if core.router.local().0 == 0 {
            if let Some(cluster) = &core.global.cluster {
                cluster.tick(&core.config());
            }
            core.global.note_not_counted();
        }
        if sampled.elapsed() >= Rates::PERIOD {
            sampled = Instant::now();
            let local = core.local();
            let now = {
                let s = local.stats.borrow();
                (s.hops, s.hop_messages)
            };
            let (hops, messages) = (now.0.saturating_sub(hopped.0), now.1.saturating_sub(hopped.1));
            local.moves_left.set(crate::engine::affinity::moves_allowed(hops, messages));
            hopped = now;
            let (net_in, net_out) = {
                let s = local.stats.borrow();
                (s.net_in, s.net_out)
            };
            let calls = local.commands.borrow().calls() + shard_calls.unwrap_or(0);
            local.rates.borrow_mut().sample(sampled, [calls, net_in, net_out]);
            core.global.note_allocated(core.router.local().0, crate::memory::here());
        }
        Timer::new(Duration::from_millis(period)).await;
    }
}

fn choose_cpus(config: &Config) -> Result<Vec<usize>, StartError> {
    let available: Vec<usize> =
        core_affinity::get_core_ids().unwrap_or_default().into_iter().map(|c| c.id).collect();
    let mut cpus =
        if config.server_cpus.0.is_empty() { available.clone() } else { config.server_cpus.0.clone() };
    // `threads 0` with no cpus named: every cpu but the first, which is left to the kernel's
    // network processing, the clients on this host and everything else (see `auto_cpus`).
    if config.threads == 0 && config.server_cpus.0.is_empty() {
        cpus = auto_cpus(&cpus);
    }
    if let Some(missing) = cpus.iter().find(|c| !available.contains(c)) {
        return Err(StartError::Cpus(format!(
            "server-cpus names cpu {missing}, but this process may run on {available:?}"
        )));
    }
    if config.threads > 0 {
        if config.threads > cpus.len() {
            return Err(StartError::Cpus(format!(
                "threads {} but only {} cpu(s) available: {cpus:?}",
                config.threads,
                cpus.len()
            )));
        }
        cpus.truncate(config.threads);
    }
    if cpus.is_empty() {
        return Err(StartError::Cpus("no cpu available".into()));
    }
    Ok(cpus)
}

/// The cpus `threads 0` uses: all of `available` but the first (one, on a single cpu). An
/// executor that shares its cpu with something busy makes every hop to its shard wait for the
/// scheduler, and on a 2-cpu host a second executor costs more in cross-core wake-ups than it
/// gives (BENCHMARKS.md, issue 20: a new user's redis-benchmark beside the server served
/// 0.55-0.65x redis-server's P=1 requests/s with two executors, 0.97-1.10x with one); on a
/// large host one cpu of many is little to give up.
fn auto_cpus(available: &[usize]) -> Vec<usize> {
    match available {
        [_, rest @ ..] if !rest.is_empty() => rest.to_vec(),
        all => all.to_vec(),
    }
}

/// Raises RLIMIT_MEMLOCK's soft limit to its hard limit; returns the soft limit now in force.
fn raise_memlock() -> u64 {
    use rlimit::Resource;
    match Resource::MEMLOCK.get() {
        Ok((soft, hard)) if soft < hard => match Resource::MEMLOCK.set(hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!("could not raise RLIMIT_MEMLOCK to {hard}: {e}");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(_) => 0,
    }
}

fn memlock_hint(memlock: u64, io_memory: u64) -> String {
    format!(
        "RLIMIT_MEMLOCK is {memlock} bytes and each executor registers executor-io-memory \
         ({io_memory} bytes) and needs at least 512 KiB: raise it with `ulimit -l unlimited` \
         (or systemd `LimitMEMLOCK=infinity`), or lower executor-io-memory"
    )
}

/// SIGTERM and SIGINT ask for a clean shutdown, which core 0 carries out (saving first when
/// save points are set); a second one exits at once. SIGHUP reopens the log file.
fn watch_signals(global: Arc<Global>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot watch signals: {e}");
            return;
        }
    };
    std::thread::Builder::new()
        .name("ferrokey-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    // Not a stop: logrotate moved the log file away.
                    crate::logging::reopen();
                    continue;
                }
                if global.shutting_down() || global.request_shutdown_asap() {
                    tracing::warn!("second signal {sig}: exiting now");
                    std::process::exit(1);
                }
                if global.loading() {
                    // As Redis: saving now would overwrite the file being loaded with part of it.
                    tracing::warn!("Received shutdown signal during loading, scheduling shutdown.");
                    global.request_shutdown();
                } else {
                    tracing::warn!("Received signal {sig}, scheduling shutdown...");
                }
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::warn!("cannot watch signals: {e}"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protected_mode_refuses_only_remote_clients_without_a_password() {
        let mut c = Config::default();
        let remote: std::net::IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: std::net::IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(c.protected(remote));
        assert!(!c.protected("127.0.0.2".parse().unwrap()));
        assert!(!c.protected("::1".parse().unwrap()));
        assert!(!c.protected(mapped));
        c.requirepass = "secret".into();
        assert!(!c.protected(remote));
        c.requirepass.clear();
        c.protected_mode = false;
        assert!(!c.protected(remote));
    }

    #[test]
    fn threads_0_leaves_the_first_cpu_unless_it_is_the_only_one() {
        assert_eq!(auto_cpus(&[0, 1]), vec![1]);
        assert_eq!(auto_cpus(&[0, 1, 2, 3]), vec![1, 2, 3]);
        assert_eq!(auto_cpus(&[5]), vec![5]);
        assert!(auto_cpus(&[]).is_empty());
    }
}

#[cfg(test)]
mod mesh_tests {
    //! The mesh between cores, with routers built by hand (the router's own module may not name
    //! the command registry these tests use).
    use super::*;
    use crate::engine::command::Run;
    use crate::engine::shard::ShardCmd;
    use crate::engine::slot::Slot;
    use crate::facade::reply::Reply;
    use bytes::Bytes;

    /// A server's shared state with `n` cores, for routers built by hand.
    fn global(n: usize) -> Arc<Global> {
        let config = crate::config::Config::default();
        let _ = crate::engine::command::install(crate::cmd::commands());
        let catalog = crate::engine::command::registry().acl_catalog();
        let users = crate::engine::acl::Users::at_startup(catalog, &config).expect("default users");
        let tls = Arc::new(crate::facade::tls::TlsSlot::new().expect("a TLS slot"));
        let cores = (0..n).map(|shard| crate::engine::global::CoreInfo { shard, cpu: 0 }).collect();
        Arc::new(Global::new(config, cores, tls, users))
    }

    /// `args` as a shard runs them (a command whose body is a shard's).
    fn shard_cmd(args: &[&str]) -> ShardCmd {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect();
        let cmd = crate::engine::command::registry().resolve(&args).expect("a known command");
        let Run::Shard(run) = cmd.run else { panic!("{} does not run on a shard", cmd.name) };
        cmd.shard_cmd(run, 0, args)
    }

    /// A key that `shard` of 2 owns.
    fn key_of(shard: ShardId, i: usize) -> String {
        (i..).map(|n| format!("key:{n}")).find(|k| Slot::of(k.as_bytes()).shard(2) == shard).expect("a key")
    }

    /// Hops that one pass of a core addresses to a peer leave as one message, and the peer's
    /// answers to them as one message back, also when nothing waits on either core's reactor
    /// (glommio runs a spawned task at once: the flush must let the pass end first).
    #[test]
    fn the_hops_of_one_pass_and_their_answers_each_travel_as_one_message() {
        const HOPS: usize = 8;
        let global = global(2);
        let mesh = MeshBuilder::<Batch, _>::full(2, 64);
        let (done, finished) = oneshot::channel::<()>();
        let mut done = Some(done);
        let mut finished = Some(finished);
        let executors: Vec<_> = (0..2)
            .map(|i| {
                let (global, mesh) = (global.clone(), mesh.clone());
                // The first sends, the second serves.
                let (done, finished) = if i == 0 { (done.take(), None) } else { (None, finished.take()) };
                LocalExecutorBuilder::new(Placement::Unbound)
                    .spawn(move || async move {
                        let (senders, receivers) = mesh.join().await.expect("the mesh");
                        let me = ShardId(senders.peer_id());
                        let shard = Shard::new(me, global.clone());
                        let router =
                            Router::new(me, 2, shard, Rc::new(Local::default()), Some((senders, receivers)));
                        let Some(done) = done else {
                            // Serves until the other is done.
                            let _ = finished.expect("the serving core's signal").await;
                            return None;
                        };
                        let other = ShardId(1 - me.0);
                        // One pass: every hop is sent before any is awaited.
                        let keys: Vec<String> = (0..HOPS).map(|i| key_of(other, i * 1000)).collect();
                        let answers: Vec<_> = keys
                            .iter()
                            .enumerate()
                            .map(|(i, k)| {
                                let cmds =
                                    vec![(i, shard_cmd(&["set", k, "v"])), (i, shard_cmd(&["get", k]))];
                                router.send_pipelined(other, cmds)
                            })
                            .collect();
                        for answer in answers {
                            let hop = answer.await.expect("the other shard answers");
                            assert_eq!(hop.cmds.len(), 2);
                            assert!(
                                matches!(hop.replies[..], [Reply::Ok, Reply::Bulk(ref v)] if &v[..] == b"v")
                            );
                        }
                        let sent = |l: &Local| {
                            let s = l.stats.borrow();
                            (s.hop_messages, s.hops)
                        };
                        let here = sent(router.local_state());
                        let there = router.on_core(other, sent).await.expect("the other core");
                        let _ = done.send(());
                        Some((here, there))
                    })
                    .expect("an executor")
            })
            .collect();
        let counts: Vec<_> = executors.into_iter().map(|e| e.join().expect("the executor ends")).collect();
        let ((messages, hops), (answers, answered)) = counts[0].expect("the sending core's counts");
        assert_eq!((messages, hops), (1, HOPS as u64), "the pass's hops left in {messages} messages");
        assert_eq!((answers, answered), (1, HOPS as u64), "their answers came in {answers} messages");
    }
}
