//! Replication, the replica's side. REPLICAOF starts a *master link*: a task on the core that
//! ran it, which connects to the primary (TLS with `tls-replication yes`), handshakes as a
//! Redis replica does (PING, AUTH, REPLCONF listening-port and capa, PSYNC), then either
//! continues from its offset (`+CONTINUE`) or takes a full resync: the snapshot (`$<len>` or a
//! diskless `$EOF:<mark>` transfer) is written to a temp file, renamed over the dump file and
//! loaded, or with `repl-diskless-load` parsed as it arrives (straight into an empty dataset,
//! or staged and swapped in whole). The stream is applied through an internal session (each write routed to its shard,
//! transactions atomic), its offset acknowledged every second and when asked. Any failure
//! drops the link with a log line; it connects again a second later, serving what it has.
//!
//! The bytes applied are also fed, as they came, to this server's replication buffer: its own
//! replicas follow the same stream at the same offsets, and a promotion (REPLICAOF NO ONE)
//! keeps the history for them (the primary's id becomes the previous one).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::config::DisklessLoad;
use crate::engine::client::Client;
use crate::engine::core::Core;
use crate::engine::repl_state::{new_replid, LinkState, MasterLink};
use crate::engine::session::Session;
use crate::facade::resp::{Limits, RequestParser};

/// A connection to the primary, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// Why a link ended.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("Error condition on socket for SYNC: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Refused(String),
    #[error("MASTER aborted replication with an error: {0}")]
    Master(String),
    #[error("Timeout connecting to the MASTER...")]
    Timeout,
    #[error("the primary's stream is malformed: {0}")]
    Protocol(String),
    #[error("replication target changed")]
    Stopped,
}

/// REPLICAOF host port: follow that primary (a new link replaces any other); `None` (NO ONE):
/// stop following and become a primary, keeping the data and the history.
pub(crate) fn follow(core: &Rc<Core>, target: Option<(String, u16)>) {
    let global = &core.global;
    let offset = crate::engine::replication::offset(core);
    let generation = {
        let mut st = global.replication();
        st.master_generation += 1;
        match &target {
            Some((host, port)) => {
                // What this server has (as a primary, or from its last primary) may continue
                // the new primary's history: the first PSYNC offers it.
                let mut link = MasterLink::new(host.clone(), *port);
                link.synced = st.master.as_ref().is_some_and(|m| m.synced)
                    || global.journal.with_backlog(|_| ()).is_some();
                st.offset = offset;
                st.master = Some(link);
                global.journal.set_proxy(true);
            }
            None => {
                if st.master.take().is_some() {
                    // The primary's history is ours now; new writes start a new one.
                    st.replid2 = std::mem::replace(&mut st.replid, new_replid());
                    st.second_offset = i64::try_from(st.offset).unwrap_or(i64::MAX).saturating_add(1);
                    global.journal.set_proxy(false);
                    tracing::info!("MASTER MODE enabled");
                }
            }
        }
        st.master_generation
    };
    global.following.store(target.is_some(), Ordering::Release);
    crate::supervise::oom_role(&global.config(), target.is_some());
    if let Some((host, port)) = target {
        tracing::info!("REPLICAOF {host}:{port} enabled");
        // Clients blocked on the primary would wait for writes that can no longer come.
        let demoted = core.clone();
        glommio::spawn_local(async move { crate::engine::blocking::demote_all(&demoted).await }).detach();
        let core = core.clone();
        glommio::spawn_local(async move { run(core, generation).await }).detach();
    }
}

/// REPLICAOF NO ONE, and a promotion asked by a failover: stops following, keeping the data
/// and the history, makes sure the shards log for the stream (the full sync started that;
/// this covers a stream started otherwise, once an EXEC that held the gates has let go of
/// them), and disconnects this server's replicas, which must learn the new replication id.
pub(crate) async fn promote(core: &Rc<Core>) {
    if !core.global.following.load(Ordering::Acquire) {
        return;
    }
    follow(core, None);
    let streaming = core.clone();
    glommio::spawn_local(async move { crate::engine::replication::stream_from_shards(&streaming).await })
        .detach();
    crate::engine::replication::disconnect_replicas(core).await;
}

/// Once a second on core 0: `replicaof` in the config file starts following once the dataset
/// has loaded.
pub(crate) fn tick(core: &Rc<Core>) {
    let config = core.config();
    if config.replicaof.len() != 2
        || core.global.loading()
        || core.global.replication().master_generation != 0
    {
        return;
    }
    match config.replicaof[1].parse::<u16>() {
        Ok(port) => follow(core, Some((config.replicaof[0].clone(), port))),
        Err(_) => tracing::warn!("replicaof: invalid port '{}'", config.replicaof[1]),
    }
}

/// The link's life: connect, sync, apply; again a second after any failure.
async fn run(core: Rc<Core>, generation: u64) {
    loop {
        if !current(&core, generation) {
            return;
        }
        match connect_and_sync(&core, generation).await {
            Err(LinkError::Stopped) => return,
            Err(e) => tracing::warn!("{e}"),
            Ok(()) => {}
        }
        set_link(&core, generation, LinkState::Connect);
        glommio::timer::sleep(Duration::from_secs(1)).await;
    }
}

fn current(core: &Core, generation: u64) -> bool {
    core.global.replication().master_generation == generation
}

fn set_link(core: &Core, generation: u64, state: LinkState) {
    let mut st = core.global.replication();
    if st.master_generation == generation {
        if let Some(m) = st.master.as_mut() {
            if m.state == LinkState::Connected && state != LinkState::Connected {
                m.down_since = Some(Instant::now());
            }
            m.state = state;
            m.last_io = Instant::now();
        }
    }
}

async fn connect_and_sync(core: &Rc<Core>, generation: u64) -> Result<(), LinkError> {
    let config = core.config();
    let (host, port) = {
        let st = core.global.replication();
        let m = st.master.as_ref().ok_or(LinkError::Stopped)?;
        (m.host.clone(), m.port)
    };
    set_link(core, generation, LinkState::Connecting);
    tracing::info!("Connecting to MASTER {host}:{port}");
    let timeout = Duration::from_secs(config.repl_timeout.max(1));
    let stream = glommio::timer::timeout(timeout, async { Ok(open(&config, &host, port).await) })
        .await
        .map_err(|_| LinkError::Timeout)??;
    tracing::info!("MASTER <-> REPLICA sync started");
    let mut link = Link { stream, buf: BytesMut::new(), core: core.clone(), generation };
    link.handshake(&config).await?;
    link.apply_stream().await
}

/// Connects to the primary, with TLS when `tls-replication` says so.
async fn open(config: &crate::config::Config, host: &str, port: u16) -> Result<Box<dyn Io>, LinkError> {
    let addr = match host.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port),
        Err(_) => {
            let name = format!("{host}:{port}");
            glommio::executor()
                .spawn_blocking(move || name.to_socket_addrs().ok().and_then(|mut a| a.next()))
                .await
                .ok_or_else(|| LinkError::Refused(format!("cannot resolve {host}")))?
        }
    };
    let tcp = glommio::net::TcpStream::connect(addr).await.map_err(|e| LinkError::Io(e.into()))?;
    let _ = tcp.set_nodelay(true);
    if !config.tls_replication {
        return Ok(Box::new(tcp));
    }
    let tls = crate::facade::tls::client_config(config).map_err(|e| LinkError::Refused(e.to_string()))?;
    let name = match host.parse::<IpAddr>() {
        Ok(ip) => rustls_pki_types::ServerName::IpAddress(ip.into()),
        Err(_) => rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| LinkError::Refused(format!("{host}: {e}")))?,
    };
    let stream = crate::facade::tls_conn::TlsConn::connect(tcp, tls, name).await?;
    Ok(Box::new(stream))
}

/// A link's connection and what it has read and not yet used.
struct Link {
    stream: Box<dyn Io>,
    buf: BytesMut,
    core: Rc<Core>,
    generation: u64,
}

impl Link {
    async fn send(&mut self, args: &[&[u8]]) -> Result<(), LinkError> {
        let mut out = Vec::new();
        crate::storage::aof::command(&mut out, args);
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads more bytes, within `repl-timeout`.
    async fn fill(&mut self) -> Result<(), LinkError> {
        let timeout = Duration::from_secs(self.core.config().repl_timeout.max(1));
        let mut chunk = vec![0u8; 64 * 1024];
        let n = glommio::timer::timeout(timeout, async { Ok(self.stream.read(&mut chunk).await) })
            .await
            .map_err(|_| LinkError::Timeout)??;
        if n == 0 {
            return Err(LinkError::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// One reply line (without its CRLF); newlines a primary sends while it prepares a
    /// snapshot are skipped.
    async fn line(&mut self) -> Result<String, LinkError> {
        loop {
            while self.buf.first() == Some(&b'\n') {
                let _ = self.buf.split_to(1);
            }
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(end + 2);
                return Ok(String::from_utf8_lossy(&line[..end]).into_owned());
            }
            if self.buf.len() > 64 * 1024 {
                return Err(LinkError::Protocol("a reply line longer than 64 KB".into()));
            }
            self.fill().await?;
        }
    }

    async fn request(&mut self, args: &[&[u8]]) -> Result<String, LinkError> {
        self.send(args).await?;
        self.line().await
    }

    async fn handshake(&mut self, config: &crate::config::Config) -> Result<(), LinkError> {
        set_link(&self.core, self.generation, LinkState::Handshake);
        let pong = self.request(&[b"PING"]).await?;
        // As Redis: an error asking for authentication still shows the primary is there.
        if !(pong.starts_with('+') || pong.starts_with("-NOAUTH") || pong.starts_with("-NOPERM")) {
            return Err(LinkError::Master(format!("Error reply to PING from master: '{pong}'")));
        }
        if !config.masterauth.is_empty() {
            let reply = if config.masteruser.is_empty() {
                self.request(&[b"AUTH", config.masterauth.as_bytes()]).await?
            } else {
                self.request(&[b"AUTH", config.masteruser.as_bytes(), config.masterauth.as_bytes()]).await?
            };
            if reply.starts_with('-') {
                return Err(LinkError::Master(format!("Unable to AUTH to MASTER: {reply}")));
            }
        }
        let port = announced_port(config).to_string();
        let reply = self.request(&[b"REPLCONF", b"listening-port", port.as_bytes()]).await?;
        if reply.starts_with('-') {
            tracing::info!("(Non critical) Master does not understand REPLCONF listening-port: {reply}");
        }
        if !config.replica_announce_ip.is_empty() {
            let _ =
                self.request(&[b"REPLCONF", b"ip-address", config.replica_announce_ip.as_bytes()]).await?;
        }
        let _ = self.request(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"]).await?;
        let (replid, offset, failover) = {
            let st = self.core.global.replication();
            let failover = st.failing_over();
            match st.master.as_ref().is_some_and(|m| m.synced) {
                true => (st.replid.clone(), (st.offset + 1).to_string(), failover),
                false => ("?".to_owned(), "-1".to_owned(), failover),
            }
        };
        // A failover asks the target to become the primary first (see engine::failover).
        let reply = if failover {
            self.request(&[b"PSYNC", replid.as_bytes(), offset.as_bytes(), b"FAILOVER"]).await?
        } else {
            self.request(&[b"PSYNC", replid.as_bytes(), offset.as_bytes()]).await?
        };
        if failover {
            let accepted = reply.starts_with("+FULLRESYNC") || reply.starts_with("+CONTINUE");
            if let Some(f) = self.core.global.replication().failover.as_mut() {
                f.answer = Some(if accepted { Ok(()) } else { Err(reply.clone()) });
            }
            if !accepted {
                return Err(LinkError::Master(reply));
            }
        }
        if let Some(rest) = reply.strip_prefix("+FULLRESYNC ") {
            let mut parts = rest.split(' ');
            // As Redis, a signed offset; far from overflowing whatever is added to it.
            let offset = parts
                .clone()
                .nth(1)
                .and_then(|o| o.parse::<i64>().ok())
                .filter(|o| (0..i64::MAX / 2).contains(o));
            let (Some(id), Some(offset)) = (parts.next(), offset.map(|o| o as u64)) else {
                return Err(LinkError::Protocol(format!("bad +FULLRESYNC line: {reply}")));
            };
            tracing::info!("Full resync from master: {id}:{offset}");
            self.full_sync(id.to_owned(), offset).await
        } else if let Some(rest) = reply.strip_prefix("+CONTINUE") {
            let id = rest.trim();
            tracing::info!("Successful partial resynchronization with master.");
            let changed = {
                let mut st = self.core.global.replication();
                let changed = !id.is_empty() && id != st.replid;
                if changed {
                    // The primary changed history (it was promoted): ours continues under its id.
                    st.replid2 = std::mem::replace(&mut st.replid, id.to_owned());
                    st.second_offset = i64::try_from(st.offset).unwrap_or(i64::MAX).saturating_add(1);
                }
                changed
            };
            if changed {
                crate::engine::replication::disconnect_replicas(&self.core).await;
            }
            tracing::info!("MASTER <-> REPLICA sync: Master accepted a Partial Resynchronization.");
            Ok(())
        } else {
            Err(LinkError::Master(reply))
        }
    }

    /// The snapshot of a full resync: loaded as it arrives (`repl-diskless-load`), or first
    /// written to a temp file, renamed over the dump file and loaded from it.
    async fn full_sync(&mut self, replid: String, offset: u64) -> Result<(), LinkError> {
        set_link(&self.core, self.generation, LinkState::Transfer);
        self.progress(0, 0);
        let header = self.line().await?;
        let config = self.core.config();
        let direct = match config.repl_diskless_load {
            DisklessLoad::Disabled => None,
            DisklessLoad::OnEmptyDb => crate::engine::snapshot::hold_if_empty(&self.core).await.map(Some),
            DisklessLoad::Swapdb => Some(None),
        };
        match direct {
            Some(direct) => self.load_diskless(&header, direct).await?,
            None => self.load_through_disk(&header, &config).await?,
        }
        {
            let mut st = self.core.global.replication();
            st.replid = replid;
            st.replid2 = crate::engine::repl_state::NO_REPLID.into();
            st.second_offset = -1;
            st.offset = offset;
            if let Some(m) = st.master.as_mut() {
                m.synced = true;
                m.db = 0;
            }
        }
        // Our replicas' history restarts at the primary's offset. The shards log what they
        // apply too, so that a promotion finds them logging for the stream it then feeds.
        self.core.global.journal.restart_backlog(offset, config.repl_backlog_size.0);
        crate::engine::replication::stream_from_shards(&self.core).await;
        tracing::info!("MASTER <-> REPLICA sync: Finished with success");
        Ok(())
    }

    /// `repl-diskless-load`: the snapshot goes to a loader thread as it arrives, straight into
    /// an empty dataset (`direct`: every gate held, clients answered LOADING) or staged until
    /// it loaded whole (`swapdb`, the old data serving meanwhile).
    async fn load_diskless(
        &mut self,
        header: &str,
        direct: Option<crate::engine::router::Tx>,
    ) -> Result<(), LinkError> {
        tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory (diskless)");
        let (chunks, received) = futures::channel::mpsc::channel(16);
        let core = self.core.clone();
        let _loading = direct.is_some().then(|| Loading::start(&core));
        let generation = self.generation;
        let still = || current(&core, generation);
        let loading = crate::engine::snapshot::load_streamed(&core, received, direct, still);
        let receiving = async {
            let mut sink = Sink::Loader(chunks);
            let mut verify = Verify::default();
            let n = self.receive_into(header, &mut sink, &mut verify).await?;
            drop(sink);
            verify
                .check()
                .map_err(|e| LinkError::Refused(format!("the primary's snapshot is damaged ({e})")))?;
            Ok::<u64, LinkError>(n)
        };
        let (received, loaded) = futures::join!(receiving, loading);
        // The loader's reason first: a transfer it stopped only reports that it stopped.
        let keys = loaded.map_err(|e| {
            if e.emptied {
                self.unsynced();
            }
            LinkError::Refused(format!(
                "Failed trying to load the MASTER synchronization DB from socket: {}",
                e.reason
            ))
        })?;
        let bytes = received?;
        if !current(&self.core, self.generation) {
            return Err(LinkError::Stopped);
        }
        tracing::info!("MASTER <-> REPLICA sync: loaded {keys} keys ({bytes} bytes) from the socket");
        Ok(())
    }

    /// `repl-diskless-load disabled`: to a temp file, fsynced, renamed over the dump file,
    /// loaded from there.
    async fn load_through_disk(
        &mut self,
        header: &str,
        config: &crate::config::Config,
    ) -> Result<(), LinkError> {
        let dir = PathBuf::from(&config.dir);
        let temp = dir.join(format!("temp-{}.{}.rdb", std::process::id(), self.generation));
        let target = dir.join(&config.dbfilename);
        // Readable too: glommio probes a new device with a read, which a write-only file fails.
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(&temp)
            .await
            .map_err(glommio_io)?;
        let written = self.receive(header, &file).await;
        let written = match written {
            Ok(n) => file.fdatasync().await.map_err(glommio_io).map(|()| n),
            Err(e) => Err(e),
        };
        let _ = file.close().await;
        let bytes = match written {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_file(&temp);
                return Err(e);
            }
        };
        tracing::info!("MASTER <-> REPLICA sync: receiving {bytes} bytes from master to disk");
        if !current(&self.core, self.generation) {
            let _ = std::fs::remove_file(&temp);
            return Err(LinkError::Stopped);
        }
        std::fs::rename(&temp, &target)?;
        tracing::info!("MASTER <-> REPLICA sync: Loading DB in memory");
        let _loading = Loading::start(&self.core);
        crate::engine::snapshot::reload(&self.core, true, false).await.map_err(|e| {
            // The data was flushed first: what is left is no copy a PSYNC could continue.
            self.unsynced();
            LinkError::Refused(format!(
                "Failed trying to load the MASTER synchronization DB from disk: {}",
                e.unwrap_or_default()
            ))
        })
    }

    /// This server no longer holds a copy of the primary's data: the next PSYNC asks for a
    /// full sync.
    fn unsynced(&self) {
        if let Some(m) = self.core.global.replication().master.as_mut() {
            m.synced = false;
        }
    }

    /// Writes the snapshot's bytes to `file`: `$<len>` of them, or up to the `$EOF:<mark>`
    /// mark, checking them as they pass ([`Verify`]). Returns how many.
    async fn receive(&mut self, header: &str, file: &glommio::io::BufferedFile) -> Result<u64, LinkError> {
        let mut verify = Verify::default();
        let n = self.receive_into(header, &mut Sink::File(file), &mut verify).await?;
        verify.check().map_err(|e| {
            LinkError::Refused(format!("the primary's snapshot is damaged ({e}); the data here is kept"))
        })?;
        Ok(n)
    }

    /// Passes the snapshot's bytes to `sink`: `$<len>` of them, or up to the `$EOF:<mark>`
    /// mark, through `verify`. Returns how many.
    async fn receive_into(
        &mut self,
        header: &str,
        sink: &mut Sink<'_>,
        verify: &mut Verify,
    ) -> Result<u64, LinkError> {
        let body = header.strip_prefix('$').ok_or_else(|| {
            LinkError::Master(format!("Bad protocol from MASTER, the first byte is not '$': {header}"))
        })?;
        let mut pos = 0u64;
        if let Some(mark) = body.strip_prefix("EOF:") {
            let mark = mark.as_bytes().to_vec();
            if mark.len() != 40 {
                return Err(LinkError::Protocol(format!("bad EOF mark: {header}")));
            }
            loop {
                if let Some(at) = self.buf.windows(40).position(|w| w == mark.as_slice()) {
                    let last = self.buf.split_to(at + 40);
                    verify.update(&last[..at]);
                    pos += sink.put(pos, &last[..at]).await?;
                    return Ok(pos);
                }
                // Keep what may be the start of the mark.
                let keep = self.buf.len().min(39);
                let done = self.buf.split_to(self.buf.len() - keep);
                verify.update(&done);
                pos += sink.put(pos, &done).await?;
                self.progress(0, pos);
                self.fill().await?;
            }
        }
        let len: u64 = body.parse().map_err(|_| LinkError::Protocol(format!("bad bulk length: {header}")))?;
        while pos < len {
            if self.buf.is_empty() {
                self.fill().await?;
            }
            let take = self.buf.len().min(usize::try_from(len - pos).unwrap_or(usize::MAX));
            let part = self.buf.split_to(take);
            verify.update(&part);
            pos += sink.put(pos, &part).await?;
            self.progress(len, pos);
        }
        Ok(pos)
    }

    /// Applies the stream: each command through an internal session, the offset acknowledged
    /// every second and whenever the primary asks (`REPLCONF GETACK`).
    ///
    /// The offset moves, and the bytes go on to our own replicas, only once the commands are
    /// applied and only at a command boundary outside a transaction: a link that drops inside
    /// MULTI ... EXEC asks for the transaction again (as Redis's replica, which keeps its
    /// offset at such boundaries). The selected database outlives the link, for a `+CONTINUE`
    /// does not name it again.
    async fn apply_stream(&mut self) -> Result<(), LinkError> {
        set_link(&self.core, self.generation, LinkState::Connected);
        let core = self.core.clone();
        let client = Rc::new(Client::internal(core.router.local().0));
        let mut session = Session::new(core.clone(), client);
        session.replaying = true;
        session.authed = true;
        session.superuser = true;
        session.db = core.global.replication().master.as_ref().map_or(0, |m| m.db);
        let mut parser = RequestParser::new();
        let limits = Limits { max_bulk: 1 << 32, max_multibulk: i32::MAX as u64 };
        let mut out = BytesMut::new();
        let mut acked = Instant::now();
        // The bytes read and not yet applied, as they came (the parser consumes `buf`).
        let mut raw = self.buf.clone();
        self.ack().await?;
        loop {
            if !current(&core, self.generation) {
                return Err(LinkError::Stopped);
            }
            // Commands up to the end of what was read, or up to a GETACK; a transaction only
            // whole.
            let mut batch: Vec<Vec<Bytes>> = Vec::new();
            let (mut consumed, mut committed, mut committed_batch) = (0usize, 0usize, 0usize);
            let mut in_multi = false;
            let mut getack = false;
            loop {
                let before = self.buf.len();
                match parser.parse(&mut self.buf, &limits, true) {
                    Ok(Some(args)) => {
                        consumed += before - self.buf.len();
                        let name = &args[0];
                        let is_getack = args.len() >= 2
                            && name.eq_ignore_ascii_case(b"replconf")
                            && args[1].eq_ignore_ascii_case(b"getack");
                        if name.eq_ignore_ascii_case(b"multi") {
                            in_multi = true;
                        } else if name.eq_ignore_ascii_case(b"exec") || name.eq_ignore_ascii_case(b"discard")
                        {
                            in_multi = false;
                        }
                        if !is_getack && !name.eq_ignore_ascii_case(b"ping") {
                            batch.push(args);
                        }
                        if !in_multi {
                            (committed, committed_batch) = (consumed, batch.len());
                        }
                        if is_getack && !in_multi {
                            getack = true;
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return Err(LinkError::Protocol(e.to_string())),
                }
            }
            if consumed > committed {
                // An open transaction: its bytes wait, unparsed, for the rest of it.
                batch.truncate(committed_batch);
                self.buf = BytesMut::from(&raw[committed..]);
                parser = RequestParser::new();
            }
            // CLIENT PAUSE holds the primary's stream too, as Redis's replica holds it.
            if core.global.pauses.active() {
                core.global.pauses.released(true).await;
            }
            // Applied and fed as one step against a full sync's cut here (see ApplyGate).
            crate::engine::replication::enter_apply(&core).await;
            if !batch.is_empty() {
                crate::facade::Service::call(&mut session, &mut batch, &mut out).await;
                out.clear();
            }
            if committed > 0 {
                let applied = raw.split_to(committed);
                self.core.global.journal.feed_raw(&applied);
                let mut st = self.core.global.replication();
                st.offset += committed as u64;
                if let Some(m) = st.master.as_mut() {
                    m.db = session.db;
                }
            }
            crate::engine::replication::leave_apply(&core);
            if getack {
                self.ack().await?;
                acked = Instant::now();
                continue;
            }
            if acked.elapsed() >= Duration::from_secs(1) {
                self.ack().await?;
                acked = Instant::now();
            }
            let tick = pin!(glommio::timer::sleep(Duration::from_secs(1)));
            let mut chunk = vec![0u8; 64 * 1024];
            let read = pin!(self.stream.read(&mut chunk));
            match select(read, tick).await {
                Either::Left((Ok(0), _)) => {
                    return Err(LinkError::Io(std::io::ErrorKind::UnexpectedEof.into()))
                }
                Either::Left((Ok(n), _)) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    raw.extend_from_slice(&chunk[..n]);
                    set_link(&self.core, self.generation, LinkState::Connected);
                }
                Either::Left((Err(e), _)) => return Err(e.into()),
                Either::Right(_) => {
                    let silent = self.core.global.replication().master.as_ref().map(|m| m.last_io.elapsed());
                    if silent.is_some_and(|s| s.as_secs() > self.core.config().repl_timeout) {
                        return Err(LinkError::Timeout);
                    }
                }
            }
        }
    }

    /// Records how far the snapshot's transfer is (`total` 0: not told).
    fn progress(&self, total: u64, read: u64) {
        let mut st = self.core.global.replication();
        if st.master_generation == self.generation {
            if let Some(m) = st.master.as_mut() {
                m.transfer = (total, read, Instant::now());
            }
        }
    }

    async fn ack(&mut self) -> Result<(), LinkError> {
        let offset = self.core.global.replication().offset.to_string();
        self.send(&[b"REPLCONF", b"ACK", offset.as_bytes()]).await
    }
}

/// Checks a snapshot as it arrives: Redis's RDB header with a version this server reads, and
/// the CRC64 trailer over everything before it (zero when the primary does not checksum), so
/// that a damaged transfer is refused before this server's data is replaced.
#[derive(Default)]
struct Verify {
    crc: u64,
    /// The first 9 bytes (`REDIS` and the version).
    head: Vec<u8>,
    /// The last 8 bytes seen: the trailer, once everything has passed.
    tail: Vec<u8>,
}

impl Verify {
    fn update(&mut self, bytes: &[u8]) {
        if self.head.len() < 9 {
            let take = (9 - self.head.len()).min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
        }
        self.tail.extend_from_slice(bytes);
        if self.tail.len() > 8 {
            let n = self.tail.len() - 8;
            self.crc = crate::storage::rdb::crc64::crc64(self.crc, &self.tail[..n]);
            self.tail.drain(..n);
        }
    }

    fn check(&self) -> Result<(), String> {
        let version = self
            .head
            .strip_prefix(b"REDIS")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or("not an RDB file")?;
        if !(1..=crate::storage::rdb::MAX_VERSION).contains(&version) {
            return Err(format!(
                "RDB version {version}, this server reads 1 to {}",
                crate::storage::rdb::MAX_VERSION
            ));
        }
        let stored =
            <[u8; 8]>::try_from(self.tail.as_slice()).map(u64::from_le_bytes).map_err(|_| "truncated")?;
        if stored != 0 && stored != self.crc {
            return Err(format!("checksum {stored:016x}, computed {:016x}", self.crc));
        }
        Ok(())
    }
}

/// The port this replica announces: `replica-announce-port`, else its TLS port when the link
/// is TLS (the port that works for whoever reads it from the primary), else its plain port.
fn announced_port(config: &crate::config::Config) -> u16 {
    if config.replica_announce_port != 0 {
        config.replica_announce_port
    } else if config.tls_replication && config.tls_port != 0 {
        config.tls_port
    } else {
        config.port
    }
}

/// Clients are answered LOADING while a full sync's snapshot is loaded over the dataset (as
/// Redis's replica does), until dropped.
struct Loading<'a>(&'a Core);

impl Loading<'_> {
    fn start(core: &Core) -> Loading<'_> {
        core.global.set_loading(true);
        Loading(core)
    }
}

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.0.global.set_loading(false);
    }
}

/// Where a snapshot's bytes go as they arrive.
enum Sink<'a> {
    /// The temp file (`repl-diskless-load disabled`).
    File(&'a glommio::io::BufferedFile),
    /// The loader thread (diskless load).
    Loader(futures::channel::mpsc::Sender<Bytes>),
}

impl Sink<'_> {
    /// Passes `bytes`, which start at `pos` of the snapshot; returns how many.
    async fn put(&mut self, pos: u64, bytes: &[u8]) -> Result<u64, LinkError> {
        if bytes.is_empty() {
            return Ok(0);
        }
        match self {
            Sink::File(file) => {
                let n = file.write_at(bytes.to_vec(), pos).await.map_err(glommio_io)?;
                if n != bytes.len() {
                    return Err(LinkError::Io(std::io::Error::other("short write to the sync file")));
                }
            }
            Sink::Loader(chunks) => {
                futures::SinkExt::send(chunks, Bytes::copy_from_slice(bytes))
                    .await
                    .map_err(|_| LinkError::Refused("the loader stopped".into()))?;
            }
        }
        Ok(bytes.len() as u64)
    }
}

fn glommio_io(e: glommio::GlommioError<()>) -> LinkError {
    LinkError::Io(std::io::Error::other(e.to_string()))
}

/// Whether the link to the primary is up (following the stream).
#[must_use]
pub(crate) fn link_up(core: &Core) -> bool {
    core.global.replication().master.as_ref().is_some_and(|m| m.state == LinkState::Connected)
}

/// The link's state as ROLE names it.
#[must_use]
pub(crate) fn role_state(state: LinkState) -> &'static str {
    match state {
        LinkState::Connect => "connect",
        LinkState::Connecting | LinkState::Handshake => "connecting",
        LinkState::Transfer => "sync",
        LinkState::Connected => "connected",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rdb() -> Vec<u8> {
        let mut file = crate::storage::rdb::file::header(&[("redis-ver", b"7.0.15")]);
        let crc = crate::storage::rdb::crc64::crc64(0, &file);
        file.extend(crate::storage::rdb::file::trailer(crc, true));
        file
    }

    #[test]
    fn a_snapshot_checks_in_any_split_and_damage_is_refused() {
        let good = rdb();
        for split in 0..good.len() {
            let mut v = Verify::default();
            v.update(&good[..split]);
            v.update(&good[split..]);
            assert_eq!(v.check(), Ok(()), "split at {split}");
        }
        let mut flipped = good.clone();
        flipped[12] ^= 1;
        let mut v = Verify::default();
        v.update(&flipped);
        assert!(v.check().unwrap_err().starts_with("checksum"));
        let mut v = Verify::default();
        v.update(&good[..good.len() - 3]);
        assert!(v.check().is_err());
        let mut v = Verify::default();
        v.update(b"garbage that is not a dump at all");
        assert_eq!(v.check(), Err("not an RDB file".into()));
    }
}
