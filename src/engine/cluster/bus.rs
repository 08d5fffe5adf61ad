//! The cluster bus's sockets, on core 0: the listener on the bus port, one outbound link to
//! every known node (a PING or MEET when it opens, PINGs from the cron), and the inbound links
//! other nodes opened (answered with PONGs on the same link). Every message goes through
//! [`gossip::receive`] under the cluster's edit lock; this file carries out the effects.
//!
//! A frame that is not one (`RCmb` and a length of at least a header) closes its link, as in
//! Redis; a frame that is one but does not parse is dropped with a log line; nothing a peer
//! sends is trusted before [`wire::decode`] checked its lengths.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use glommio::timer::Timer;

use crate::engine::cluster::election::{self, Election};
use crate::engine::cluster::gossip::{self, Arrival, Effect, Link, Outcome, Soft};
use crate::engine::cluster::node::{flag, NodeId};
use crate::engine::cluster::wire::{self, kind, Message};
use crate::engine::core::Core;
use crate::facade::listener::Listener;
use crate::storage::rng::Rng;

/// How often the cron runs (Redis's `clusterCron`).
const CRON_PERIOD: Duration = Duration::from_millis(100);
/// The largest frame accepted (a PUBLISH of a large message is the largest Redis sends).
const MAX_FRAME: usize = 1 << 30;

/// What a link's writer task and its owner share.
#[derive(Default)]
struct Sending {
    /// Bytes queued and not written yet (CLUSTER LINKS' send buffer, which
    /// `cluster-link-sendbuf-limit` bounds).
    queued: std::cell::Cell<usize>,
    /// The link is closed: the writer drops what is queued and ends.
    closed: std::cell::Cell<bool>,
}

/// The sending half of a link: frames queued for its writer task. Dropping it closes the link:
/// nothing queued is written any more.
struct Writer {
    tx: mpsc::UnboundedSender<Bytes>,
    sending: Rc<Sending>,
}

impl Writer {
    /// A writer, and the end its writer task reads.
    fn new() -> (Writer, mpsc::UnboundedReceiver<Bytes>) {
        let (tx, rx) = mpsc::unbounded();
        (Writer { tx, sending: Rc::default() }, rx)
    }

    fn send(&self, frame: Bytes) {
        if self.sending.closed.get() {
            return;
        }
        self.sending.queued.set(self.sending.queued.get() + frame.len());
        let _ = self.tx.unbounded_send(frame);
    }

    /// Bytes queued and not written yet.
    fn queued(&self) -> usize {
        self.sending.queued.get()
    }

    /// Closes the link: the writer task drops what is queued and ends.
    fn close(&self) {
        self.sending.closed.set(true);
        self.tx.close_channel();
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.close();
    }
}

/// A link another node opened.
struct Inbound {
    writer: Writer,
    /// When it was accepted (unix ms).
    created: u64,
    /// The node it belongs to, once a message of a known node came on it.
    node: std::cell::Cell<Option<NodeId>>,
    /// Closed for passing the send buffer limit.
    closed: std::cell::Cell<bool>,
}

/// An open outbound link.
struct Outbound {
    /// Tells this link from the one that replaces it.
    generation: u64,
    /// Frames to write.
    writer: Writer,
    /// When it was opened (unix ms).
    created: u64,
    /// Whether the connection is established (a PING was sent on it).
    up: bool,
}

/// The bus of core 0.
struct Bus {
    core: Rc<Core>,
    soft: RefCell<Soft>,
    links: RefCell<HashMap<NodeId, Outbound>>,
    rng: RefCell<Rng>,
    election: RefCell<Election>,
    /// The last link generation handed out.
    generations: std::cell::Cell<u64>,
    /// Pub/sub messages that came over the bus, for this node's subscribers.
    inbox: RefCell<Option<mpsc::UnboundedSender<Delivery>>>,
    /// The slots this node's shard served at the last look, and the state's version then.
    served: RefCell<(u64, Vec<bool>)>,
    /// The links other nodes opened.
    inbound: RefCell<Vec<Rc<Inbound>>>,
    /// Primaries seen orphaned, for replica migration.
    orphans: RefCell<super::migration::Orphans>,
}

/// A PUBLISH (`shard`: PUBLISHSHARD) from another node, to deliver here.
struct Delivery {
    shard: bool,
    channel: bytes::Bytes,
    message: bytes::Bytes,
}

/// Starts the bus on `listeners` (core 0, cluster mode).
pub(crate) fn start(core: Rc<Core>, listeners: Vec<Listener>) {
    let bus = Rc::new(Bus {
        core,
        soft: RefCell::default(),
        links: RefCell::default(),
        rng: RefCell::new(Rng::seeded(0xb05)),
        election: RefCell::default(),
        generations: std::cell::Cell::new(0),
        inbox: RefCell::default(),
        served: RefCell::default(),
        inbound: RefCell::default(),
        orphans: RefCell::default(),
    });
    for listener in listeners {
        glommio::spawn_local(accept(bus.clone(), listener)).detach();
    }
    let (tx, rx) = mpsc::unbounded();
    *bus.inbox.borrow_mut() = Some(tx);
    glommio::spawn_local(deliver(bus.core.clone(), rx)).detach();
    if let Some(out) = bus.core.global.cluster.as_ref().and_then(|c| c.take_spread()) {
        glommio::spawn_local(spread(bus.clone(), out)).detach();
    }
    glommio::spawn_local(super::verify::after_loading(bus.core.clone())).detach();
    glommio::spawn_local(cron(bus)).detach();
}

/// Deletes the keys this node holds in `slots`, which another primary took (Redis's
/// `delKeysInSlot`: as in Redis 7.0, not propagated; the new owner has the keys that count).
async fn drop_slots(core: &Rc<Core>, slots: Vec<u16>) {
    for slot in slots {
        // Not if the slot came back meanwhile (ours again, or being imported).
        let back = core.global.cluster.as_ref().is_none_or(|c| {
            let state = c.view();
            state.mine(slot) || state.importing.contains_key(&slot)
        });
        if back {
            continue;
        }
        let shard = crate::engine::slot::Slot(slot).shard(core.router.shards());
        let deleted = core
            .router
            .run(shard, None, move |sh: &mut crate::engine::shard::Shard| {
                let db = &mut sh.dbs()[0];
                let keys: Vec<bytes::Bytes> = db
                    .slot_index()
                    .map(|ix| {
                        ix.keys(slot, usize::MAX).into_iter().map(bytes::Bytes::copy_from_slice).collect()
                    })
                    .unwrap_or_default();
                keys.iter().filter(|k| db.remove(k).is_some()).count()
            })
            .await
            .unwrap_or(0);
        if deleted > 0 {
            tracing::info!("Deleted {deleted} keys of slot {slot}, now served by another node");
        }
    }
}

/// Sends what PUBLISH and SPUBLISH queued on any core (Redis's `clusterPropagatePublish`):
/// PUBLISH to every node, PUBLISHSHARD to the other nodes of this node's shard.
async fn spread(bus: Rc<Bus>, mut queued: mpsc::UnboundedReceiver<super::Spread>) {
    while let Some(what) = queued.next().await {
        let Some(cluster) = &bus.core.global.cluster else { return };
        cluster.spread_taken(&what);
        let state = cluster.view();
        let config = bus.core.config();
        let offset = crate::engine::replication::offset(&bus.core);
        let (kind, channel, message) = match what {
            super::Spread::Publish { channel, message } => (kind::PUBLISH, channel, message),
            super::Spread::Shard { channel, message } => (kind::PUBLISHSHARD, channel, message),
        };
        let body = wire::Body::Publish { channel: channel.to_vec(), message: message.to_vec() };
        let m = gossip::message(&state, &config, kind, offset, body);
        if kind == kind::PUBLISH {
            bus.carry_out(vec![Effect::Broadcast(m)], None);
            continue;
        }
        // The shard's other nodes: one encoding for all of them.
        let primary = state.my_primary();
        let frame = Bytes::from(m.encode());
        let links = bus.links.borrow();
        let shard = state
            .nodes()
            .filter(|n| n.id == primary || (n.is(flag::SLAVE) && n.master == Some(primary)))
            .filter(|n| n.flags & (flag::MYSELF | flag::HANDSHAKE) == 0)
            .filter_map(|n| links.get(&n.id).filter(|l| l.up));
        for link in shard {
            bus.send_frame(&link.writer, kind, frame.clone());
        }
    }
}

/// Delivers the PUBLISHes other nodes sent to this node's subscribers, on every core, in the
/// order they came: whatever arrived meanwhile goes in one hop per core.
async fn deliver(core: Rc<Core>, mut inbox: mpsc::UnboundedReceiver<Delivery>) {
    while let Some(first) = inbox.next().await {
        let mut batch = vec![first];
        while let Ok(more) = inbox.try_recv() {
            batch.push(more);
        }
        // A PUBLISH nobody here listens to goes no further (Redis checks its subscribers
        // first too); shard channels are not counted per core, so they always go.
        let listened = core.global.subscribers().load(std::sync::atomic::Ordering::Acquire) > 0;
        batch.retain(|d| d.shard || listened);
        if batch.is_empty() {
            continue;
        }
        let batch = std::sync::Arc::new(batch);
        let limit = core.config().client_output_buffer_limit.pubsub;
        let _ = core
            .router
            .each_core(move |local| {
                let registry = local.pubsub.borrow();
                for d in batch.iter() {
                    if d.shard {
                        registry.publish_shard(&d.channel, &d.message, limit);
                    } else {
                        registry.publish(&d.channel, &d.message, limit);
                    }
                }
            })
            .await;
    }
}

async fn accept(bus: Rc<Bus>, listener: Listener) {
    while !bus.core.global.shutting_down() {
        match listener.accept().await {
            Ok(incoming) => {
                let (peer, local) = (incoming.peer.ip().to_string(), incoming.local.ip().to_string());
                let bus = bus.clone();
                glommio::spawn_local(async move {
                    match incoming.establish(0).await {
                        Ok(stream) => inbound(bus, stream, peer, local).await,
                        Err(e) => tracing::warn!("Error accepting cluster node connection from {peer}: {e}"),
                    }
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!("Error accepting cluster node connection: {e}");
                Timer::new(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one frame, or `None` at the end of the stream or on a framing error (logged).
async fn read_frame<R: futures::AsyncRead + Unpin>(r: &mut R, from: &str) -> Option<Vec<u8>> {
    let mut head = [0u8; 8];
    r.read_exact(&mut head).await.ok()?;
    let len = match wire::frame_len(&head) {
        Ok(len) if len <= MAX_FRAME => len,
        Ok(len) => {
            tracing::warn!("A cluster bus message of {len} bytes from {from}: closing the link");
            return None;
        }
        Err(e) => {
            tracing::warn!("{e} from {from}: closing the link");
            return None;
        }
    };
    // Grown as bytes arrive: a length alone reserves nothing.
    let mut frame = Vec::with_capacity(len.min(64 << 10));
    frame.extend_from_slice(&head);
    (&mut *r).take((len - 8) as u64).read_to_end(&mut frame).await.ok()?;
    (frame.len() == len).then_some(frame)
}

/// Writes what `rx` brings until it ends, the link is closed, the stream fails, or a write
/// stalls for `stall` (a peer that stopped reading: its link is given up rather than held).
async fn write_all<W: futures::AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    sending: Rc<Sending>,
    stall: Duration,
) {
    while let Some(frame) = rx.next().await {
        if sending.closed.get() {
            break;
        }
        let written = glommio::timer::timeout(stall, async {
            Ok(w.write_all(&frame).await.is_ok() && w.flush().await.is_ok())
        })
        .await;
        sending.queued.set(sending.queued.get().saturating_sub(frame.len()));
        if !matches!(written, Ok(true)) {
            break;
        }
    }
    // What is left is dropped with `rx`, and nothing more is queued.
    sending.closed.set(true);
    sending.queued.set(0);
    let _ = w.close().await;
}

/// How long a write to a node may stall before its link is given up: the node timeout (at
/// least a second), after which the node counts as failing anyway.
fn stall(bus: &Bus) -> Duration {
    Duration::from_millis(bus.core.config().cluster_node_timeout.max(1000))
}

/// A link another node opened: its PINGs and MEETs are answered on it.
async fn inbound(bus: Rc<Bus>, stream: crate::facade::stream::Stream, peer: String, local: String) {
    let (mut r, w) = stream.split();
    let (writer, rx) = Writer::new();
    let task = glommio::spawn_local(write_all(w, rx, writer.sending.clone(), stall(&bus))).detach();
    let link = Rc::new(Inbound {
        writer,
        created: super::unix_ms(),
        node: std::cell::Cell::new(None),
        closed: std::cell::Cell::new(false),
    });
    bus.inbound.borrow_mut().push(link.clone());
    while let Some(frame) = read_frame(&mut r, &peer).await {
        if link.closed.get() {
            break;
        }
        bus.receive(&frame, Link::Inbound, &peer, &local, Some(&link));
    }
    bus.inbound.borrow_mut().retain(|l| !Rc::ptr_eq(l, &link));
    link.writer.close();
    drop(link);
    let _ = task.await;
}

impl Bus {
    /// Processes one frame that came on `link`; `reply` is that link's writer.
    fn receive(&self, frame: &[u8], link: Link, peer: &str, local: &str, reply: Option<&Inbound>) {
        let msg = match wire::decode(frame) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!("Dropping a cluster bus message from {peer}: {e}");
                return;
            }
        };
        let Some(cluster) = &self.core.global.cluster else { return };
        cluster.count(msg.kind, false);
        let config = self.core.config();
        let arrival = Arrival {
            link,
            peer_ip: peer.to_owned(),
            local_ip: local.to_owned(),
            now: super::unix_ms(),
            config: &config,
            offset: crate::engine::replication::offset(&self.core),
        };
        let (now, offset) = (arrival.now, arrival.offset);
        let outcome = cluster.apply(&config, |state| {
            let mut out = gossip::receive(
                state,
                &mut self.soft.borrow_mut(),
                &msg,
                &arrival,
                &mut self.rng.borrow_mut(),
            );
            if let Some(sender) = out.sender {
                let e = &mut self.election.borrow_mut();
                election::heard_from(state, e, &msg, sender);
                let more = match msg.kind {
                    kind::AUTH_REQUEST => election::vote(state, e, sender, &msg, now, &config, offset),
                    kind::AUTH_ACK => {
                        election::acked(state, e, sender, &msg);
                        Outcome::default()
                    }
                    kind::MFSTART => election::manual_start_received(state, e, sender, now, &config, offset),
                    _ => Outcome::default(),
                };
                out.effects.extend(more.effects);
                out.save |= more.save;
            }
            let save = out.save;
            (out, save)
        });
        if let (Some(sender), Some(link)) = (outcome.sender, reply) {
            if link.node.get().is_none() {
                link.node.set(Some(sender));
                // One inbound link per node: an older one of the same node is closed (Redis's
                // `setClusterNodeToInboundClusterLink`).
                for old in self.inbound.borrow().iter() {
                    if !std::ptr::eq(old.as_ref(), link) && old.node.get() == Some(sender) {
                        old.closed.set(true);
                        old.writer.close();
                    }
                }
            }
        }
        if outcome.sender.is_some() {
            // Only a known node's PUBLISH is delivered (Redis's `getNodeFromLinkAndMsg`).
            if let wire::Body::Publish { channel, message } = msg.body {
                if let Some(inbox) = self.inbox.borrow().as_ref() {
                    let shard = msg.kind == kind::PUBLISHSHARD;
                    let _ = inbox.unbounded_send(Delivery {
                        shard,
                        channel: channel.into(),
                        message: message.into(),
                    });
                }
            }
        }
        self.carry_out(outcome.effects, reply.map(|l| &l.writer));
    }

    /// Drops the shard-channel subscriptions of the slots this node's shard stopped serving
    /// since the last look (Redis's `removeChannelsInSlot` as `clusterDelSlot` calls it).
    fn forget_lost_slots(&self, state: &super::state::State, version: u64) {
        let lost = {
            let mut served = self.served.borrow_mut();
            if served.0 == version {
                return;
            }
            let now = state.served_by_my_shard();
            let lost: Vec<bool> = if served.1.is_empty() {
                Vec::new()
            } else {
                served.1.iter().zip(&now).map(|(&was, &is)| was && !is).collect()
            };
            *served = (version, now);
            lost
        };
        if !lost.contains(&true) {
            return;
        }
        let lost = std::sync::Arc::new(lost);
        let core = self.core.clone();
        let limit = core.config().client_output_buffer_limit.pubsub;
        glommio::spawn_local(async move {
            let _ = core
                .router
                .each_core(move |local| {
                    let gone = |c: &[u8]| {
                        lost.get(usize::from(crate::engine::slot::Slot::of(c).0)).copied().unwrap_or(false)
                    };
                    local.pubsub.borrow_mut().drop_shard_channels(gone, limit);
                })
                .await;
        })
        .detach();
    }

    fn carry_out(&self, effects: Vec<Effect>, reply: Option<&Writer>) {
        for effect in effects {
            match effect {
                Effect::Reply(m) => {
                    if let Some(w) = reply {
                        self.send_on(w, &m);
                    }
                }
                Effect::Send(id, m) => {
                    let links = self.links.borrow();
                    if let Some(link) = links.get(&id).filter(|l| l.up) {
                        self.send_on(&link.writer, &m);
                    }
                }
                Effect::Broadcast(m) => {
                    // Encoded once, whatever the number of links.
                    let frame = Bytes::from(m.encode());
                    for link in self.links.borrow().values().filter(|l| l.up) {
                        self.send_frame(&link.writer, m.kind, frame.clone());
                    }
                }
                Effect::Close(id) => {
                    self.links.borrow_mut().remove(&id);
                }
                Effect::Follow(id) => {
                    if self.election.borrow().manual_replica.is_some() {
                        self.election.borrow_mut().reset_manual();
                        self.core.global.pauses.unpause(crate::engine::pause::Purpose::Failover);
                    }
                    self.follow(&id);
                }
                Effect::Promote => {
                    let core = self.core.clone();
                    glommio::spawn_local(async move { crate::engine::replica::promote(&core).await })
                        .detach();
                }
                Effect::Pause(until) => {
                    let left = Duration::from_millis(until.saturating_sub(super::unix_ms()));
                    self.core.global.pauses.pause(
                        crate::engine::pause::Purpose::Failover,
                        crate::engine::pause::PauseKind::Write,
                        Some(std::time::Instant::now() + left),
                    );
                }
                Effect::Unpause => self.core.global.pauses.unpause(crate::engine::pause::Purpose::Failover),
                Effect::DropSlots(slots) => {
                    let core = self.core.clone();
                    glommio::spawn_local(async move { drop_slots(&core, slots).await }).detach();
                }
            }
        }
    }

    fn send_on(&self, w: &Writer, m: &Message) {
        self.send_frame(w, m.kind, Bytes::from(m.encode()));
    }

    /// Queues an encoded message of type `kind` on `w`.
    fn send_frame(&self, w: &Writer, kind: u16, frame: Bytes) {
        if let Some(cluster) = &self.core.global.cluster {
            cluster.count(kind, true);
        }
        w.send(frame);
    }

    /// Replicates the node named `id` (at its client port of the replication link's kind).
    fn follow(&self, id: &NodeId) {
        let Some(cluster) = &self.core.global.cluster else { return };
        let state = cluster.view();
        let Some(master) = state.node(id) else { return };
        let port = master.client_port(self.core.with_config(|c| c.tls_replication));
        if master.ip.is_empty() || port == 0 {
            return;
        }
        crate::engine::replica::follow(&self.core, Some((master.ip.clone(), port)));
    }

    /// Sends a PING (or the MEET a CLUSTER MEET asked for) on the link to `id`.
    fn ping(&self, id: &NodeId, kind: u16) {
        let Some(cluster) = &self.core.global.cluster else { return };
        let config = self.core.config();
        let offset = crate::engine::replication::offset(&self.core);
        let now = super::unix_ms();
        let m = cluster.apply(&config, |state| {
            let m = gossip::ping(state, &config, kind, offset, &mut self.rng.borrow_mut());
            if let Some(n) = state.node_mut(id) {
                if kind == wire::kind::PING && n.ping_sent == 0 {
                    n.ping_sent = now;
                }
                n.flags &= !flag::MEET;
            }
            (m, false)
        });
        if let Some(link) = self.links.borrow().get(id) {
            self.send_on(&link.writer, &m);
        }
    }
}

/// A stream of either kind.
pub(crate) trait Io: futures::AsyncRead + futures::AsyncWrite + Unpin {}
impl<T: futures::AsyncRead + futures::AsyncWrite + Unpin> Io for T {}

/// A link to another node's client port (MIGRATE's): TCP within `timeout`, then TLS with
/// `tls`.
///
/// # Errors
/// Why it could not connect.
pub(crate) async fn connect(
    config: &crate::config::Config,
    host: &str,
    port: u16,
    tls: bool,
    timeout: Duration,
) -> Result<Box<dyn Io>, String> {
    let ip: std::net::IpAddr = match host.parse() {
        Ok(ip) => ip,
        Err(_) => {
            use std::net::ToSocketAddrs;
            let name = format!("{host}:{port}");
            glommio::executor()
                .spawn_blocking(move || name.to_socket_addrs().ok().and_then(|mut a| a.next()))
                .await
                .map(|a| a.ip())
                .ok_or_else(|| format!("cannot resolve {host}"))?
        }
    };
    let addr = std::net::SocketAddr::new(ip, port);
    let tcp = glommio::timer::timeout(timeout, async { glommio::net::TcpStream::connect(addr).await })
        .await
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    if tls {
        tls_connect(config, tcp, ip).await
    } else {
        Ok(Box::new(tcp))
    }
}

/// The client side of TLS to a node's bus (`tls-cluster`): this node's certificate
/// (`tls-client-cert-file`, else `tls-cert-file`), the node's verified against the CA.
async fn tls_connect(
    config: &crate::config::Config,
    tcp: glommio::net::TcpStream,
    ip: std::net::IpAddr,
) -> Result<Box<dyn Io>, String> {
    let tls = crate::facade::tls::client_config(config).map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::IpAddress(ip.into());
    let stream =
        crate::facade::tls_conn::TlsConn::connect(tcp, tls, name).await.map_err(|e| e.to_string())?;
    Ok(Box::new(stream))
}

/// An outbound link to `id` at `addr`: connects, greets (MEET or PING), then reads the node's
/// answers; ends when the link is closed from either side.
async fn outbound(
    bus: Rc<Bus>,
    id: NodeId,
    addr: std::net::SocketAddr,
    meet: bool,
    (rx, sending): (mpsc::UnboundedReceiver<Bytes>, Rc<Sending>),
    generation: u64,
) {
    let timeout = Duration::from_millis(bus.core.config().cluster_node_timeout.max(1000));
    let connected =
        glommio::timer::timeout(timeout, async { glommio::net::TcpStream::connect(addr).await }).await;
    let tcp = match connected {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("Connecting to cluster node {id} at {addr}: {e}");
            bus.link_failed(&id, generation);
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let (local, peer) =
        (tcp.local_addr().map(|a| a.ip().to_string()).unwrap_or_default(), addr.ip().to_string());
    let stream: Box<dyn Io> = if bus.core.with_config(|c| c.tls_cluster) {
        match tls_connect(&bus.core.config(), tcp, addr.ip()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("TLS with cluster node {id} at {addr} failed: {e}");
                bus.link_failed(&id, generation);
                return;
            }
        }
    } else {
        Box::new(tcp)
    };
    let (mut r, w) = stream.split();
    let writer = glommio::spawn_local(write_all(w, rx, sending, stall(&bus))).detach();
    if let Some(link) = bus.links.borrow_mut().get_mut(&id).filter(|l| l.generation == generation) {
        link.up = true;
    }
    bus.ping(&id, if meet { kind::MEET } else { kind::PING });
    while let Some(frame) = read_frame(&mut r, &peer).await {
        // Frames after the link was replaced or closed are not this link's to process.
        if bus.links.borrow().get(&id).is_none_or(|l| l.generation != generation) {
            break;
        }
        bus.receive(&frame, Link::Outbound(id), &peer, &local, None);
    }
    let _ = writer.await;
    bus.link_failed(&id, generation);
}

impl Bus {
    /// The election's part of the cron: a CLUSTER FAILOVER asked for, a replica's election,
    /// and a paused primary's PINGs to the replica taking over.
    fn elect(&self, config: &crate::config::Config, now: u64) {
        let Some(cluster) = &self.core.global.cluster else { return };
        let offset = crate::engine::replication::offset(&self.core);
        if let Some(how) = cluster.take_failover() {
            let out = cluster.apply(config, |state| {
                let out =
                    election::start_manual(state, &mut self.election.borrow_mut(), how, now, config, offset);
                let save = out.save;
                (out, save)
            });
            self.carry_out(out.effects, None);
        }
        let out = cluster.apply(config, |state| {
            let out = election::tick(
                state,
                &mut self.election.borrow_mut(),
                now,
                config,
                (offset, self.data_age()),
                &mut self.rng.borrow_mut(),
            );
            let save = out.save;
            (out, save)
        });
        self.carry_out(out.effects, None);
        let replica = self.election.borrow().manual_replica;
        if let Some(replica) = replica {
            let state = cluster.view();
            let body = wire::Body::Ping { gossip: Vec::new(), hostname: state.me().hostname.clone() };
            let mut ping = gossip::message(&state, config, kind::PING, offset, body);
            ping.mflags |= election::PAUSED;
            self.carry_out(vec![Effect::Send(replica, ping)], None);
        }
    }

    /// Closes every link whose unsent bytes passed `limit` (`cluster-link-sendbuf-limit`, 0
    /// for none), as Redis's cron does; an outbound one opens again on the next tick.
    fn bound_send_buffers(&self, limit: u64) {
        if limit == 0 {
            return;
        }
        let over = |w: &Writer| w.queued() as u64 > limit;
        let log = |dir: &str, node: Option<NodeId>, w: &Writer| {
            let node = node.map(|n| n.to_string()).unwrap_or_default();
            tracing::warn!(
                "Freeing cluster link({dir} node {node}, used memory: {}) due to exceeding send buffer memory limit.",
                w.queued()
            );
            if let Some(cluster) = &self.core.global.cluster {
                cluster.count_link_over_limit();
            }
        };
        self.links.borrow_mut().retain(|id, l| {
            let keep = !over(&l.writer);
            if !keep {
                log("to", Some(*id), &l.writer);
            }
            keep
        });
        self.inbound.borrow_mut().retain(|l| {
            let keep = !over(&l.writer);
            if !keep {
                log("from", l.node.get(), &l.writer);
                l.closed.set(true);
                l.writer.close();
            }
            keep
        });
    }

    /// The links as CLUSTER LINKS shows them: by node in the state's order, each node's
    /// outbound link first; inbound links not yet tied to a node are not shown (as in Redis).
    fn link_views(&self, state: &super::state::State) -> Vec<super::LinkView> {
        let (links, inbound) = (self.links.borrow(), self.inbound.borrow());
        let mut views = Vec::new();
        for n in state.nodes() {
            if let Some(l) = links.get(&n.id) {
                views.push(super::LinkView {
                    outbound: true,
                    node: n.id,
                    created: l.created,
                    queued: l.writer.queued(),
                });
            }
            for l in inbound.iter().filter(|l| l.node.get() == Some(n.id) && !l.closed.get()) {
                views.push(super::LinkView {
                    outbound: false,
                    node: n.id,
                    created: l.created,
                    queued: l.writer.queued(),
                });
            }
        }
        views
    }

    /// How old this replica's data is (ms): since its primary last sent anything, or since
    /// the link went down (Redis's `data_age`); very old when it never synced.
    fn data_age(&self) -> u64 {
        use crate::engine::repl_state::LinkState;
        let st = self.core.global.replication();
        let never = u64::from(u32::MAX);
        match st.master.as_ref() {
            Some(m) if m.state == LinkState::Connected => m.last_io.elapsed().as_millis() as u64,
            Some(m) => m.down_since.map_or(never, |t| t.elapsed().as_millis() as u64),
            None => never,
        }
    }

    /// The outbound link to `id` ended or never opened: a PING is then pending, as Redis
    /// counts a failed connection, so that a node that cannot be reached becomes PFAIL.
    fn link_failed(&self, id: &NodeId, generation: u64) {
        let mut links = self.links.borrow_mut();
        if links.get(id).is_none_or(|l| l.generation != generation) {
            // A link that was replaced or closed already: its end changes nothing.
            return;
        }
        links.remove(id);
        drop(links);
        let Some(cluster) = &self.core.global.cluster else { return };
        let now = super::unix_ms();
        cluster.apply(&self.core.config(), |state| {
            if let Some(n) = state.node_mut(id) {
                if n.ping_sent == 0 {
                    n.ping_sent = now;
                }
                n.connected = false;
            }
            ((), false)
        });
    }
}

/// Every 100 ms: drops stale handshakes, marks silent nodes PFAIL, opens missing links, and
/// PINGs: a node whose PONG is older than half the node timeout, and once a second the node
/// heard from least recently among five at random.
async fn cron(bus: Rc<Bus>) {
    let mut tick: u64 = 0;
    while !bus.core.global.shutting_down() {
        Timer::new(CRON_PERIOD).await;
        tick += 1;
        let Some(cluster) = &bus.core.global.cluster else { return };
        let config = bus.core.config();
        let now = super::unix_ms();
        let timeout = config.cluster_node_timeout;
        let outcome = cluster.apply(&config, |state| {
            let out = gossip::expire(state, &mut bus.soft.borrow_mut(), now, &config);
            let save = out.save;
            (out, save)
        });
        bus.carry_out(outcome.effects, None);
        bus.elect(&config, now);
        let outcome = cluster.apply(&config, |state| {
            let out = super::migration::tick(state, &mut bus.orphans.borrow_mut(), now, &config);
            let save = out.save;
            (out, save)
        });
        bus.carry_out(outcome.effects, None);
        let version = cluster.version();
        let state = cluster.view();
        bus.forget_lost_slots(&state, version);
        // Links to open, and the links' view for CLUSTER NODES.
        for n in state.nodes().filter(|n| n.flags & (flag::MYSELF | flag::NOADDR) == 0) {
            if bus.links.borrow().contains_key(&n.id) || n.ip.is_empty() || n.cport == 0 {
                continue;
            }
            let Ok(ip) = n.ip.parse::<std::net::IpAddr>() else { continue };
            let (writer, rx) = Writer::new();
            let sending = writer.sending.clone();
            let generation = bus.generations.get() + 1;
            bus.generations.set(generation);
            bus.links.borrow_mut().insert(n.id, Outbound { generation, writer, created: now, up: false });
            let addr = std::net::SocketAddr::new(ip, n.cport);
            let meet = n.is(flag::MEET);
            glommio::spawn_local(outbound(bus.clone(), n.id, addr, meet, (rx, sending), generation)).detach();
        }
        let mut to_ping: Vec<NodeId> = Vec::new();
        if tick % 10 == 0 {
            let linked: Vec<_> = state
                .nodes()
                .filter(|n| n.flags & (flag::MYSELF | flag::HANDSHAKE) == 0 && n.ping_sent == 0)
                .filter(|n| bus.links.borrow().get(&n.id).is_some_and(|l| l.up))
                .collect();
            let mut oldest: Option<&crate::engine::cluster::node::Node> = None;
            for _ in 0..5.min(linked.len()) {
                let n = linked[bus.rng.borrow_mut().below(linked.len())];
                if oldest.is_none_or(|o| n.pong_received < o.pong_received) {
                    oldest = Some(n);
                }
            }
            to_ping.extend(oldest.map(|n| n.id));
        }
        let mut recycle = Vec::new();
        for n in state.nodes().filter(|n| n.flags & (flag::MYSELF | flag::NOADDR | flag::HANDSHAKE) == 0) {
            let links = bus.links.borrow();
            let Some(link) = links.get(&n.id).filter(|l| l.up) else { continue };
            let data = bus.soft.borrow().data_received.get(&n.id).copied().unwrap_or(0);
            if now.saturating_sub(link.created) > timeout
                && n.ping_sent != 0
                && now.saturating_sub(n.ping_sent) > timeout / 2
                && now.saturating_sub(data) > timeout / 2
            {
                recycle.push(n.id);
            } else if n.ping_sent == 0 && now.saturating_sub(n.pong_received) > timeout / 2 {
                to_ping.push(n.id);
            }
        }
        for id in recycle {
            bus.links.borrow_mut().remove(&id);
        }
        to_ping.sort();
        to_ping.dedup();
        for id in to_ping {
            bus.ping(&id, kind::PING);
        }
        bus.bound_send_buffers(config.cluster_link_sendbuf_limit.0);
        cluster.set_links(bus.link_views(&state));
        let up: Vec<NodeId> = bus.links.borrow().iter().filter(|(_, l)| l.up).map(|(id, _)| *id).collect();
        let changed = state.nodes().any(|n| !n.is(flag::MYSELF) && n.connected != up.contains(&n.id));
        if changed {
            cluster.apply(&config, |state| {
                let ids: Vec<NodeId> = state.nodes().map(|n| n.id).collect();
                for id in ids {
                    if let Some(n) = state.node_mut(&id) {
                        n.connected = up.contains(&id);
                    }
                }
                ((), false)
            });
        }
    }
}
