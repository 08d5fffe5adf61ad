//! Replication, the primary's side. SYNC or PSYNC turn a connection into a replica's *link*: a
//! task on the connection's core that sends the replica what it lacks, then follows the
//! journal's stream (every shard's writes in one order, see [`crate::engine::journal`]).
//!
//! - A replica that continues this server's history (its replication id is ours, or our
//!   previous one up to where that ended) and whose next byte the backlog still holds gets
//!   `+CONTINUE` and the stream from there: a partial resynchronization.
//! - Any other gets `+FULLRESYNC <replid> <offset>`, then a snapshot taken at one cut of every
//!   shard (a background save, without fork, whose cut marks the journal: `offset` is the
//!   stream's offset there), then the stream from that cut on. The replication buffer keeps
//!   those bytes for the link while the snapshot is written and sent.
//!
//! The link writes as the socket takes the bytes and reads the replica's `REPLCONF ACK`s in
//! between; nothing blocks a thread. A replica whose unsent stream passes
//! `client-output-buffer-limit replica` is dropped, as Redis drops it.

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::{pin, Pin};
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::client::Client;
use crate::engine::core::Core;
use crate::engine::journal::{sync_holder, Marker};
use crate::engine::repl_state::{new_replid, ApplyGate, Replica, ReplicaState, NO_REPLID};
use crate::engine::router::Tx;
use crate::engine::shard::Shard;
use crate::engine::snapshot::{self, SaveError};
use crate::facade::resp::{Limits, RequestParser};
use crate::facade::ConnError;

/// Bytes of snapshot or stream written per write call.
const CHUNK: usize = 64 * 1024;

/// What REPLCONF told a connection before its SYNC or PSYNC.
#[derive(Debug, Default, Clone)]
pub(crate) struct ReplConf {
    /// `listening-port`: where the replica serves clients.
    pub(crate) port: u16,
    /// `ip-address`: the address it announces.
    pub(crate) ip: Option<String>,
    /// `capa psync2`: it understands `+CONTINUE <replid>`.
    pub(crate) psync2: bool,
    /// `capa eof`: it reads a diskless transfer (`$EOF:<mark>`).
    pub(crate) eof: bool,
    /// `rdb-only 1`: it wants the snapshot alone (redis-cli --rdb).
    pub(crate) rdb_only: bool,
}

/// SYNC or PSYNC: how the link starts.
#[derive(Debug, Clone)]
pub(crate) struct SyncRequest {
    /// PSYNC's replication id and offset (the next byte the replica needs); `None` for SYNC,
    /// which gets the snapshot with no `+FULLRESYNC` line before it.
    pub(crate) psync: Option<(String, i64)>,
    /// What REPLCONF said.
    pub(crate) conf: ReplConf,
}

/// Serves a replica's link until it ends; the connection closes after.
pub(crate) async fn serve_replica<S>(
    stream: &mut S,
    core: &Rc<Core>,
    client: &Rc<Client>,
    request: SyncRequest,
    unread: BytesMut,
) -> ConnError
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let global = &core.global;
    let ip = request.conf.ip.clone().unwrap_or_else(|| client.addr.ip().to_string());
    let name = format!("{ip}:{}", request.conf.port);
    client.replica.set(true);
    global.replication().no_replicas_since = None;
    global.replication().replicas.push(Replica {
        id: client.id,
        ip,
        port: request.conf.port,
        state: ReplicaState::WaitBgsave,
        ack: 0,
        ack_at: Instant::now(),
    });
    tracing::info!("Replica {name} asks for synchronization");
    let mut link = Link { stream, core, client, rbuf: unread, parser: RequestParser::new() };
    let why = link.run(&request, &name).await;
    {
        let mut st = global.replication();
        st.replicas.retain(|r| r.id != client.id);
        if st.replicas.is_empty() {
            st.no_replicas_since = Some(Instant::now());
        }
    }
    global.journal.with_backlog(|b| b.release(client.id));
    tracing::info!("Connection with replica {name} lost: {why}");
    why
}

/// A replica's link: its connection, and the requests it sends back (acknowledgements).
struct Link<'a, S> {
    stream: &'a mut S,
    core: &'a Rc<Core>,
    client: &'a Rc<Client>,
    rbuf: BytesMut,
    parser: RequestParser,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Link<'_, S> {
    async fn run(&mut self, request: &SyncRequest, name: &str) -> ConnError {
        let holder = self.client.id;
        let partial = request.psync.as_ref().is_some_and(|(id, offset)| self.try_partial(id, *offset));
        if partial {
            let replid = self.core.global.replication().replid.clone();
            let line =
                if request.conf.psync2 { format!("+CONTINUE {replid}\r\n") } else { "+CONTINUE\r\n".into() };
            if let Err(e) = self.send(line.as_bytes()).await {
                return e;
            }
            self.set_state(ReplicaState::Online);
        } else {
            if request.psync.is_some() {
                tracing::info!("Full resync requested by replica {name}");
            }
            let diskless = match self.full_sync(request).await {
                Ok(diskless) => diskless,
                Err(e) => return e,
            };
            tracing::info!("Synchronization with replica {name} succeeded");
            if request.conf.rdb_only {
                return ConnError::Closed;
            }
            if diskless {
                if let Err(e) = self.first_ack(holder).await {
                    return e;
                }
            }
        }
        self.follow(holder).await
    }

    /// A partial resync from `offset` if the history and the backlog allow it (the backlog
    /// then holds the stream from there for this link).
    fn try_partial(&self, replid: &str, offset: i64) -> bool {
        let global = &self.core.global;
        let (ok_id, ours) = {
            let st = global.replication();
            (u64::try_from(offset).is_ok_and(|o| st.continues(replid, o)), st.replid.clone())
        };
        let held = ok_id
            && global
                .journal
                .with_backlog(|b| {
                    let from = offset as u64;
                    b.covers(from) && b.hold(self.client.id, from)
                })
                .unwrap_or(false);
        let mut st = global.replication();
        if held {
            st.sync_partial.0 += 1;
            tracing::info!(
                "Partial resynchronization request from replica accepted. Sending backlog starting from offset {offset}."
            );
        } else if replid != "?" {
            st.sync_partial.1 += 1;
            if ok_id {
                tracing::info!(
                    "Unable to partial resync with replica: lack of backlog (Replica request was: {offset})."
                );
            } else {
                tracing::info!(
                    "Partial resynchronization not accepted: Replication ID mismatch (Replica asked for '{replid}', my replication IDs are '{ours}')"
                );
            }
        }
        held
    }

    /// A full resynchronization: a snapshot at a cut, sent as a bulk; this link then holds the
    /// stream from the cut on. Whether the snapshot went diskless (`$EOF:<mark>`).
    async fn full_sync(&mut self, request: &SyncRequest) -> Result<bool, ConnError> {
        let core = self.core.clone();
        let global = &core.global;
        global.replication().sync_full += 1;
        let config = core.config();
        let diskless = config.repl_diskless_sync && request.conf.eof;
        if diskless && config.repl_diskless_sync_delay > 0 {
            self.keep_alive(glommio::timer::sleep(Duration::from_secs(config.repl_diskless_sync_delay)))
                .await?;
        }
        let id = Cell::new(0);
        // A replica's cut must not fall inside a batch of its primary's stream (see ApplyGate).
        let hold: Cell<Option<ApplyHold<'_>>> = Cell::new(None);
        let release = || drop(hold.take());
        let (outcome, parts) = loop {
            if global.following.load(std::sync::atomic::Ordering::Acquire) {
                hold.set(Some(hold_applies(&core).await));
            }
            let at_cut = async |tx: &Tx, snapshot: u64| {
                id.set(snapshot);
                start_stream(&core, tx, snapshot).await;
                release();
            };
            let (sender, parts) = match diskless {
                true => {
                    let (sender, parts) = futures::channel::mpsc::channel(2);
                    (Some(sender), Some(parts))
                }
                false => (None, None),
            };
            let saving = snapshot::background_save(&core, at_cut, sender).await;
            release();
            match saving {
                Ok(outcome) => break (outcome, parts),
                // Another save (or rewrite) runs: its cut is not ours; start when it ends.
                Err(SaveError::InProgress | SaveError::RewriteInProgress) => {
                    self.keep_alive(glommio::timer::sleep(Duration::from_millis(100))).await?;
                }
                Err(e) => {
                    tracing::warn!("Can't start BGSAVE for replica synchronization: {e}");
                    return Err(ConnError::Closed);
                }
            }
        };
        let id = id.get();
        tracing::info!(
            "Starting BGSAVE for SYNC with target: {}",
            if diskless { "replicas sockets" } else { "disk" }
        );
        let result = self.send_snapshot(request, id, outcome, parts).await;
        global.journal.with_backlog(|b| {
            if result.is_ok() {
                // The stream from the cut on passes from the sync to this link.
                if let Some(offset) = b.pending(sync_holder(id)).map(|n| b.offset() + 1 - n) {
                    b.hold(self.client.id, offset);
                }
            }
            b.release(sync_holder(id));
        });
        result.map(|()| diskless)
    }

    /// After a diskless transfer, waits for the replica's first `REPLCONF ACK` before the
    /// stream (Redis's `repl_start_cmd_stream_on_ack`): the replica knows the transfer ended
    /// when the mark is the last of what it read, so nothing may follow the mark until it has
    /// loaded the snapshot, which that ACK says (it sends one at once). Meanwhile the stream
    /// waits in the backlog, held for this link (`holder`), which its output limit may drop;
    /// the replica proves it is alive with the newlines it sends while it loads, and is
    /// dropped after `repl-timeout` without one.
    async fn first_ack(&mut self, holder: u64) -> Result<(), ConnError> {
        let journal = self.core.global.journal.clone();
        let mut heard = Instant::now();
        let mut buf = vec![0u8; 512];
        loop {
            if self.handle_requests()? {
                return Ok(());
            }
            if self.client.is_killed() {
                return Err(ConnError::Closed);
            }
            if journal.with_backlog(|b| b.pending(holder)).flatten().is_none() {
                return Err(self.dropped(holder));
            }
            if heard.elapsed().as_secs() > self.core.config().repl_timeout {
                tracing::warn!(
                    "Disconnecting timedout replica (no ACK after the transfer): {}",
                    self.client.addr
                );
                return Err(ConnError::Closed);
            }
            let tick = pin!(glommio::timer::sleep(Duration::from_secs(1)));
            match select(pin!(self.stream.read(&mut buf)), tick).await {
                Either::Left((Ok(0), _)) => return Err(ConnError::Eof),
                Either::Left((Ok(n), _)) => {
                    heard = Instant::now();
                    self.rbuf.extend_from_slice(&buf[..n]);
                }
                Either::Left((Err(e), _)) => return Err(ConnError::Io(e)),
                Either::Right(_) => {}
            }
        }
    }

    async fn send_snapshot(
        &mut self,
        request: &SyncRequest,
        id: u64,
        outcome: futures::channel::oneshot::Receiver<Result<snapshot::Saved, SaveError>>,
        parts: Option<futures::channel::mpsc::Receiver<Vec<u8>>>,
    ) -> Result<(), ConnError> {
        let global = &self.core.global;
        let offset = global.journal.sync_point(id).await;
        if request.psync.is_some() {
            let replid = global.replication().replid.clone();
            self.send(format!("+FULLRESYNC {replid} {offset}\r\n").as_bytes()).await?;
        }
        if let Some(mut parts) = parts {
            // Diskless: the parts as the cores make them, between `$EOF:<mark>` and the mark.
            self.set_state(ReplicaState::SendBulk);
            let mark = new_replid();
            self.send(format!("$EOF:{mark}\r\n").as_bytes()).await?;
            while let Some(part) = futures::StreamExt::next(&mut parts).await {
                self.send_while_held(&part, sync_holder(id)).await?;
            }
            match outcome.await {
                Ok(Ok(_)) => self.send(mark.as_bytes()).await?,
                _ => return Err(ConnError::Closed),
            }
            self.set_state(ReplicaState::Online);
            return Ok(());
        }
        let saved = self.keep_alive(outcome).await?;
        match saved {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!("SYNC failed. BGSAVE failed: {e}");
                return Err(ConnError::Closed);
            }
            Err(_) => return Err(ConnError::Closed),
        }
        self.set_state(ReplicaState::SendBulk);
        let config = self.core.config();
        let path = PathBuf::from(&config.dir).join(&config.dbfilename);
        let io = |e: glommio::GlommioError<()>| ConnError::Io(std::io::Error::other(e.to_string()));
        let file = glommio::io::BufferedFile::open(&path).await.map_err(io)?;
        let size = file.file_size().await.map_err(io)?;
        self.send(format!("${size}\r\n").as_bytes()).await?;
        let mut pos = 0;
        while pos < size {
            let chunk = file.read_at(pos, CHUNK).await.map_err(io)?;
            if chunk.is_empty() {
                return Err(ConnError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.send_while_held(&chunk, sync_holder(id)).await?;
            pos += chunk.len() as u64;
        }
        self.stream.flush().await?;
        let _ = file.close().await;
        self.set_state(ReplicaState::Online);
        Ok(())
    }

    /// Waits for `f`, writing a newline to the replica every second meanwhile (it reads them
    /// as "still preparing" and does not time out), and reading what it sends.
    async fn keep_alive<F: Future>(&mut self, f: F) -> Result<F::Output, ConnError> {
        let mut f = pin!(f);
        loop {
            let tick = glommio::timer::sleep(Duration::from_secs(1));
            match select(f.as_mut(), pin!(tick)).await {
                Either::Left((out, _)) => return Ok(out),
                Either::Right(_) => {
                    if self.client.is_killed() {
                        return Err(ConnError::Closed);
                    }
                    self.send(b"\n").await?;
                }
            }
        }
    }

    /// Sends the stream as the backlog gets it, reading acknowledgements in between: while
    /// idle, as they come; under a stream that never pauses, once a millisecond at most,
    /// without waiting (a non-blocking receive), so that WAIT, `min-replicas-max-lag` and the
    /// replica's timeout see its acknowledgements under any load.
    async fn follow(&mut self, holder: u64) -> ConnError {
        let journal = self.core.global.journal.clone();
        let mut out = Vec::with_capacity(CHUNK);
        let mut buf = vec![0u8; 512];
        let mut looked = Instant::now();
        loop {
            if let Err(e) = self.handle_requests() {
                return e;
            }
            if self.client.is_killed() {
                return ConnError::Closed;
            }
            out.clear();
            match journal.with_backlog(|b| b.read(holder, CHUNK, &mut out)).flatten() {
                None => return self.dropped(holder),
                Some(0) => {
                    let read = self.stream.read(&mut buf);
                    let tick = pin!(glommio::timer::sleep(Duration::from_secs(1)));
                    let (ready, killed) = (pin!(journal.repl_ready(holder)), pin!(Killed(self.client)));
                    match select(read, select(select(ready, killed), tick)).await {
                        Either::Left((Ok(0), _)) => return ConnError::Eof,
                        Either::Left((Ok(n), _)) => self.rbuf.extend_from_slice(&buf[..n]),
                        Either::Left((Err(e), _)) => return ConnError::Io(e),
                        // The timeout is judged after what the replica sent was read.
                        Either::Right((Either::Right(_), _)) => {
                            if let Err(e) = self.check_timeout() {
                                return e;
                            }
                        }
                        Either::Right(_) => {}
                    }
                }
                Some(_) => {
                    if let Err(e) = self.send_while_held(&out, holder).await {
                        return e;
                    }
                    if looked.elapsed() >= Duration::from_millis(1) {
                        looked = Instant::now();
                        match futures::FutureExt::now_or_never(self.stream.read(&mut buf)) {
                            Some(Ok(0)) => return ConnError::Eof,
                            Some(Ok(n)) => self.rbuf.extend_from_slice(&buf[..n]),
                            Some(Err(e)) => return ConnError::Io(e),
                            None => {}
                        }
                        // The timeout is judged after what the replica sent was read.
                        if let Err(e) = self.handle_requests().and_then(|_| self.check_timeout()) {
                            return e;
                        }
                    }
                }
            }
        }
    }

    /// Handles what the replica sent: `REPLCONF ACK <offset>` records how far it is; anything
    /// else on a replica's link is ignored, as the replica expects no reply. Whether an ACK
    /// came.
    fn handle_requests(&mut self) -> Result<bool, ConnError> {
        let limits = Limits { max_bulk: 1 << 20, max_multibulk: 1024 };
        let mut acked = false;
        loop {
            // A bare newline proves the replica alive, as an ACK does (Redis sets its
            // `repl_ack_time` for one): it sends them while it loads a snapshot.
            let newlines = self.rbuf.iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
            if newlines > 0 {
                let _ = self.rbuf.split_to(newlines);
                let mut st = self.core.global.replication();
                if let Some(r) = st.replica(self.client.id) {
                    r.ack_at = Instant::now();
                }
            }
            let Some(args) = self.parser.parse(&mut self.rbuf, &limits, true)? else { break };
            if let [cmd, sub, offset, ..] = &args[..] {
                if cmd.eq_ignore_ascii_case(b"replconf") && sub.eq_ignore_ascii_case(b"ack") {
                    if let Some(offset) = std::str::from_utf8(offset).ok().and_then(|o| o.parse().ok()) {
                        self.client.touch();
                        let mut st = self.core.global.replication();
                        if let Some(r) = st.replica(self.client.id) {
                            r.ack = offset;
                            r.ack_at = Instant::now();
                        }
                        st.ack_waiters.drain(..).for_each(std::task::Waker::wake);
                        acked = true;
                    }
                }
            }
        }
        Ok(acked)
    }

    /// Drops the link of a replica that has not acknowledged anything for `repl-timeout`.
    fn check_timeout(&self) -> Result<(), ConnError> {
        let timeout = self.core.config().repl_timeout;
        let silent = self
            .core
            .global
            .replication()
            .replica(self.client.id)
            .is_some_and(|r| r.state == ReplicaState::Online && r.ack_at.elapsed().as_secs() > timeout);
        if silent {
            tracing::warn!("Disconnecting timedout replica (streaming sync): {}", self.client.addr);
            return Err(ConnError::Closed);
        }
        Ok(())
    }

    /// Writes `bytes` while `holder` keeps its place in the replication buffer: a replica that
    /// stopped reading is dropped there for its output limit, and this write then ends too.
    async fn send_while_held(&mut self, bytes: &[u8], holder: u64) -> Result<(), ConnError> {
        let journal = self.core.global.journal.clone();
        let timeout = Duration::from_secs(self.core.config().repl_timeout.max(1));
        let started = Instant::now();
        let mut write = pin!(self.stream.write_all(bytes));
        loop {
            let tick = pin!(glommio::timer::sleep(Duration::from_millis(100)));
            match select(write.as_mut(), tick).await {
                Either::Left((done, _)) => break done?,
                Either::Right(_) => {
                    if journal.with_backlog(|b| b.pending(holder)).flatten().is_none() {
                        return Err(self.dropped(holder));
                    }
                    if self.client.is_killed() {
                        return Err(ConnError::Closed);
                    }
                    // A replica that takes nothing for `repl-timeout` (Redis: "timedout replica").
                    if started.elapsed() > timeout {
                        tracing::warn!(
                            "Disconnecting timedout replica (full sync or stream): {}",
                            self.client.addr
                        );
                        return Err(ConnError::Closed);
                    }
                }
            }
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// The link's place in the replication buffer is gone: dropped for its output limit.
    fn dropped(&self, holder: u64) -> ConnError {
        let over = self.core.global.journal.with_backlog(|b| b.take_dropped(holder)).unwrap_or(false);
        if over {
            tracing::warn!(
                id = self.client.id,
                addr = %self.client.addr,
                "Client scheduled to be closed ASAP for overcoming of output buffer limits."
            );
        } else {
            tracing::warn!(
                id = self.client.id,
                "the replica's link lost its place in the replication buffer"
            );
        }
        ConnError::Closed
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), ConnError> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await?;
        Ok(())
    }

    fn set_state(&self, state: ReplicaState) {
        if let Some(r) = self.core.global.replication().replica(self.client.id) {
            r.state = state;
            r.ack_at = Instant::now();
        }
    }
}

/// Waits until `ready` holds for the apply gate (it may change the gate when it does).
async fn apply_gate(core: &Core, mut ready: impl FnMut(&mut ApplyGate) -> bool) {
    std::future::poll_fn(|cx| {
        let mut st = core.global.replication();
        if ready(&mut st.apply) {
            return Poll::Ready(());
        }
        if !st.apply.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.apply.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    })
    .await;
}

fn wake_apply_gate(gate: &mut ApplyGate) {
    gate.waiters.drain(..).for_each(std::task::Waker::wake);
}

/// The master link starts applying a batch of the stream, once no full sync waits to cut.
pub(crate) async fn enter_apply(core: &Core) {
    apply_gate(core, |g| {
        let free = g.cutting == 0;
        g.applying += usize::from(free);
        free
    })
    .await;
}

/// The batch is applied and fed to this server's own stream.
pub(crate) fn leave_apply(core: &Core) {
    let mut st = core.global.replication();
    st.apply.applying = st.apply.applying.saturating_sub(1);
    wake_apply_gate(&mut st.apply);
}

/// A full sync's hold on a replica's applying, until dropped (a guard: a sync that ends any
/// way, or whose task is dropped, lets the stream be applied again).
struct ApplyHold<'a>(&'a Core);

impl Drop for ApplyHold<'_> {
    fn drop(&mut self) {
        let mut st = self.0.global.replication();
        st.apply.cutting = st.apply.cutting.saturating_sub(1);
        wake_apply_gate(&mut st.apply);
    }
}

/// A full sync on a replica: no batch starts from now on, and the ones being applied end.
async fn hold_applies(core: &Core) -> ApplyHold<'_> {
    core.global.replication().apply.cutting += 1;
    let hold = ApplyHold(core);
    apply_gate(core, |g| g.applying == 0).await;
    hold
}

/// At a full sync's cut (every gate held): starts the replication stream if it has not
/// started (a new history, with a new replication id), then marks the cut in it.
async fn start_stream(core: &Core, tx: &Tx, id: u64) {
    let global = &core.global;
    let offset = global.replication().offset;
    let config = core.config();
    if global.journal.start_replication(config.repl_backlog_size.0, offset) {
        global.journal.with_backlog(|b| {
            b.configure(config.repl_backlog_size.0, config.client_output_buffer_limit.replica)
        });
        {
            let mut st = global.replication();
            st.replid = new_replid();
            st.replid2 = NO_REPLID.into();
            st.second_offset = -1;
        }
        for &s in tx.shards() {
            let _ = tx.run(s, |sh: &mut Shard| sh.set_journaling(true)).await;
        }
    }
    tx.mark(Marker::Sync { id });
}

/// Once a second on core 0: the replicas' PING every `repl-ping-replica-period` seconds (it
/// keeps their links from timing out, and moves the offset they acknowledge), and the
/// backlog's size as configured.
pub(crate) async fn tick(core: &Core, last_ping: &mut Instant) {
    let global = &core.global;
    let config = core.config();
    let unused = {
        let st = global.replication();
        st.master.is_none()
            && st.replicas.is_empty()
            && config.repl_backlog_ttl > 0
            && st.no_replicas_since.is_some_and(|t| t.elapsed().as_secs() >= config.repl_backlog_ttl)
    };
    if unused && global.journal.with_backlog(|_| ()).is_some() {
        if !free_stream(core).await {
            return;
        }
        tracing::info!(
            "Replication backlog freed after {} seconds without connected replicas.",
            config.repl_backlog_ttl
        );
        return;
    }
    global
        .journal
        .with_backlog(|b| b.configure(config.repl_backlog_size.0, config.client_output_buffer_limit.replica));
    if global.replication().replicas.is_empty() {
        return;
    }
    let period = Duration::from_secs(config.repl_ping_replica_period.max(1));
    // A failover keeps the stream still, so that a replica can catch up with all of it.
    if last_ping.elapsed() >= period && global.replication().failover.is_none() {
        *last_ping = Instant::now();
        global.journal.feed_now(&[b"PING"]);
    }
}

/// `repl-backlog-ttl` passed without replicas: the buffer goes, and with it the history (a
/// replica that comes later syncs in full, under a new id); the shards log only for the AOF.
async fn free_stream(core: &Core) -> bool {
    let shards = (0..core.router.shards()).map(crate::engine::slot::ShardId).collect();
    let Ok(tx) = core.router.begin(shards).await else { return false };
    // A replica that attached while the gates were taken keeps the stream.
    if !core.global.replication().replicas.is_empty() {
        tx.release().await;
        return false;
    }
    let (offset, active) = core.global.journal.stop_replication();
    {
        let mut st = core.global.replication();
        st.offset = offset.unwrap_or(st.offset);
        st.replid = new_replid();
        st.replid2 = NO_REPLID.into();
        st.second_offset = -1;
        st.no_replicas_since = None;
    }
    for &s in tx.shards() {
        let _ = tx.run(s, move |sh: &mut Shard| sh.set_journaling(active)).await;
    }
    tx.release().await;
    true
}

/// After a promotion: the replication buffer takes the shards' writes again, so every shard
/// logs them (with every gate held, as the stream starts).
pub(crate) async fn stream_from_shards(core: &Core) {
    if core.global.journal.with_backlog(|_| ()).is_none() {
        return;
    }
    let shards = (0..core.router.shards()).map(crate::engine::slot::ShardId).collect();
    if let Ok(tx) = core.router.begin(shards).await {
        for &s in tx.shards() {
            let _ = tx.run(s, |sh: &mut Shard| sh.set_journaling(true)).await;
        }
        tx.release().await;
    }
}

/// The replication id changed (a promotion, or our primary's did): every replica's link ends,
/// so that each learns the new id as it reconnects (a partial resync), as Redis does.
pub(crate) async fn disconnect_replicas(core: &Core) {
    let _ = core
        .router
        .each_core(|local| {
            local.clients.borrow().values().filter(|c| c.replica.get()).for_each(|c| c.kill());
        })
        .await;
}

/// `master_repl_offset`.
#[must_use]
pub(crate) fn offset(core: &Core) -> u64 {
    let global = &core.global;
    global.journal.with_backlog(|b| b.offset()).unwrap_or_else(|| global.replication().offset)
}

/// WAIT numreplicas timeout: how many replicas acknowledged every write made before it,
/// waiting up to `timeout` (never, for zero) until `wanted` have. The replicas are asked to
/// acknowledge at once (`REPLCONF GETACK *` in the stream).
pub(crate) async fn wait_for_replicas(core: &Core, wanted: usize, timeout: Option<Duration>) -> usize {
    let global = &core.global;
    // Every write made before the WAIT (the client's among them) has its place in the stream
    // first: one queued behind a cross-shard transaction is not there yet.
    global.journal.in_stream(global.journal.last_ticket()).await;
    let target = offset(core);
    let now = global.replication().acked(target);
    if now >= wanted {
        return now;
    }
    // Not while clients are paused (as Redis): the stream stays still; replicas acknowledge
    // every second anyway.
    if !global.pauses.active() {
        global.journal.feed_now(&[b"REPLCONF", b"GETACK", b"*"]);
    }
    let acks = pin!(Acks { core, target, wanted });
    match timeout {
        None => acks.await,
        Some(t) => match select(acks, pin!(glommio::timer::sleep(t))).await {
            Either::Left((n, _)) => n,
            Either::Right(_) => global.replication().acked(target),
        },
    }
}

/// Ready once `wanted` replicas acknowledged `target`.
struct Acks<'a> {
    core: &'a Core,
    target: u64,
    wanted: usize,
}

impl Future for Acks<'_> {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let mut st = self.core.global.replication();
        let n = st.acked(self.target);
        if n >= self.wanted {
            return Poll::Ready(n);
        }
        if !st.ack_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.ack_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Ready when the client is killed.
struct Killed<'a>(&'a Client);

impl Future for Killed<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.0.set_waker(cx.waker());
        if self.0.is_killed() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// The arguments of SYNC or PSYNC as a request for the link.
#[must_use]
pub(crate) fn request(args: &[Bytes], conf: &ReplConf) -> SyncRequest {
    let psync = match args {
        [_, id, offset, ..] => Some((
            String::from_utf8_lossy(id).into_owned(),
            std::str::from_utf8(offset).ok().and_then(|o| o.parse().ok()).unwrap_or(-1),
        )),
        _ => None,
    };
    SyncRequest { psync, conf: conf.clone() }
}
