//! A TLS session on a glommio socket, driven through rustls's unbuffered API so that an idle
//! TLS connection holds no buffers. The server's connections use it, and so does
//! ferrokey-benchmark's client side.
//!
//! rustls's buffered connection keeps a receive buffer of at least 4 KiB per connection for
//! its whole life, and copies every record through queues of its own. Here:
//! - ciphertext is read into a per-core inbox and decrypted from there; the connection keeps
//!   only an incomplete record (usually nothing);
//! - replies are encrypted into a per-core outbox and sent from it; the connection keeps only
//!   what the socket did not take;
//! - handshake records (a flight, session tickets, alerts, key updates) wait in the outgoing
//!   queue and leave with the next send: the tickets of TLS 1.3 usually go out in the same
//!   segment as the first reply.
//!
//! The socket is read and written only inside `poll_*` calls (glommio reads and writes
//! synchronously once the socket is ready), so borrowing the per-core buffers for one call is
//! safe: no other connection can run in between.

use std::cell::RefCell;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use rustls::client::{ClientConnectionData, UnbufferedClientConnection};
use rustls::pki_types::ServerName;
use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{
    ConnectionState, EncodeError, EncodeTlsData, EncryptError, InsufficientSizeError, UnbufferedStatus,
    WriteTraffic,
};
use rustls::{ClientConfig, CommonState, ServerConfig};

/// Ciphertext read from the socket in one call at most.
const READ_MAX: usize = 64 * 1024;
/// Ciphertext kept between reads at most: rustls joins a handshake message of up to 64 KiB
/// (a long client certificate chain) in place, across records. More is a broken peer.
const HELD_MAX: usize = 64 * 1024 + 4 * 1024;
/// Plaintext encrypted per write call at most; also the outgoing backlog at which a write
/// waits for the socket.
const WRITE_MAX: usize = 64 * 1024;

thread_local! {
    /// Where this core's connections read ciphertext and decrypt it.
    static INBOX: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Where this core's connections encrypt what they send.
    static OUTBOX: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// One side of a session: rustls's unbuffered server or client connection.
pub(crate) trait Side {
    /// What rustls keeps for this side.
    type Data;
    /// rustls's `process_tls_records`.
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data>;
    /// The negotiated state.
    fn state(&self) -> &CommonState;
}

impl Side for UnbufferedServerConnection {
    type Data = ServerConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn state(&self) -> &CommonState {
        self
    }
}

impl Side for UnbufferedClientConnection {
    type Data = ClientConnectionData;
    fn process<'c, 'i>(&'c mut self, incoming: &'i mut [u8]) -> UnbufferedStatus<'c, 'i, Self::Data> {
        self.process_tls_records(incoming)
    }
    fn state(&self) -> &CommonState {
        self
    }
}

/// A TLS session (server side unless said otherwise) over a glommio socket.
pub(crate) struct TlsConn<S: Side = UnbufferedServerConnection> {
    tcp: TcpStream,
    session: S,
    /// Ciphertext received but not yet usable: an incomplete record, or the records of an
    /// incomplete handshake message. Unallocated when empty.
    held: Vec<u8>,
    /// Decrypted bytes the reader has not taken yet (a record larger than its buffer).
    plain: Vec<u8>,
    plain_at: usize,
    /// Ciphertext the socket has not taken yet, in order; sent before anything newer.
    out: Vec<u8>,
    out_at: usize,
    /// The handshake is complete.
    established: bool,
    /// The peer sent close_notify or closed its socket.
    peer_closed: bool,
    /// close_notify is queued; nothing more may be written.
    closing: bool,
    /// The session failed (its alert is sent); it is not used again.
    failed: bool,
    /// The peer has sent something (its first byte was checked).
    heard: bool,
}

/// The content type of a TLS handshake record: the first byte any TLS peer sends.
const HANDSHAKE_RECORD: u8 = 0x16;

/// What a pass over the received records ended on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// The handshake waits for more bytes from the peer.
    Handshaking,
    /// Established: application data flows both ways.
    Open,
    /// The peer sent close_notify.
    PeerClosed,
}

/// Why a pass failed.
enum Failure {
    /// rustls rejected the peer's records (it may have queued an alert).
    Tls(rustls::Error),
    /// rustls panicked; the session must not be touched again.
    Panicked,
}

/// What to encrypt once the session allows it.
enum Outgoing<'a> {
    Data(&'a [u8]),
    CloseNotify,
}

/// Where a pass puts what it decrypts: the reader's buffer first, then `plain`.
struct Sink<'a> {
    read: &'a mut [u8],
    produced: usize,
    plain: &'a mut Vec<u8>,
}

impl Sink<'_> {
    fn put(&mut self, payload: &[u8]) {
        let n = payload.len().min(self.read.len() - self.produced);
        self.read[self.produced..self.produced + n].copy_from_slice(&payload[..n]);
        self.produced += n;
        self.plain.extend_from_slice(&payload[n..]);
    }
}

/// An established server session with nothing buffered, apart from its socket: what moves to
/// another core with its connection (see [`TlsConn::detach`]). The per-core buffers stay.
pub(crate) struct TlsParts {
    session: UnbufferedServerConnection,
    heard: bool,
}

impl TlsConn<UnbufferedServerConnection> {
    /// The TCP stream under the session.
    #[must_use]
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Takes an established session apart from its socket, to go on over another socket for
    /// the same connection; `Err` gives it back when it holds bytes, is closing or failed.
    pub(crate) fn detach(self: Box<Self>) -> Result<(TcpStream, TlsParts), Box<Self>> {
        if self.buffered() > 0 || !self.established || self.peer_closed || self.closing || self.failed {
            return Err(self);
        }
        let this = *self;
        Ok((this.tcp, TlsParts { session: this.session, heard: this.heard }))
    }

    /// Puts a detached session back on a socket of its connection.
    #[must_use]
    pub(crate) fn attach(tcp: TcpStream, parts: TlsParts) -> Self {
        TlsConn {
            tcp,
            session: parts.session,
            held: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            out: Vec::new(),
            out_at: 0,
            established: true,
            peer_closed: false,
            closing: false,
            failed: false,
            heard: parts.heard,
        }
    }

    /// Runs the server side of a handshake on `tcp` with `config`. The caller bounds it in time.
    pub(crate) async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Self> {
        let session = UnbufferedServerConnection::new(config).map_err(invalid)?;
        TlsConn::handshake(tcp, session).await
    }
}

impl TlsConn<UnbufferedClientConnection> {
    /// Runs the client side of a handshake with the server `name` on `tcp`.
    pub(crate) async fn connect(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<Self> {
        let session = UnbufferedClientConnection::new(config, name).map_err(invalid)?;
        TlsConn::handshake(tcp, session).await
    }
}

impl<S: Side> TlsConn<S> {
    async fn handshake(tcp: TcpStream, session: S) -> io::Result<Self> {
        let mut conn = TlsConn {
            tcp,
            session,
            held: Vec::new(),
            plain: Vec::new(),
            plain_at: 0,
            out: Vec::new(),
            out_at: 0,
            established: false,
            peer_closed: false,
            closing: false,
            failed: false,
            heard: false,
        };
        // A client speaks first: its hello is queued before anything is read.
        let mut sink = Sink { read: &mut [], produced: 0, plain: &mut conn.plain };
        let (_, started) = pass(&mut conn.session, &mut [], &mut sink, &mut conn.out, None);
        started.map_err(|failure| match failure {
            Failure::Tls(e) => invalid(e),
            Failure::Panicked => io::Error::other("TLS session failed"),
        })?;
        std::future::poll_fn(|cx| conn.poll_handshake(cx)).await?;
        Ok(conn)
    }

    /// The session's negotiated state (version, suite, peer certificate, resumption).
    #[must_use]
    pub(crate) fn session(&self) -> &CommonState {
        self.session.state()
    }

    /// Bytes held outside the socket: received but unread, and encrypted but unsent.
    #[must_use]
    pub(crate) fn buffered(&self) -> usize {
        self.held.len() + (self.plain.len() - self.plain_at) + (self.out.len() - self.out_at)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.failed {
                return Poll::Ready(Err(Self::failed()));
            }
            if self.established {
                // Session tickets stay queued: they leave with the first reply.
                return Poll::Ready(Ok(()));
            }
            // A whole flight goes out before we wait for the answer.
            ready!(self.poll_send(cx))?;
            if self.peer_closed {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "client closed the connection during the handshake",
                )));
            }
            ready!(self.poll_receive(cx, &mut []))?;
        }
    }

    /// Reads what the socket has, after what was held, and runs the session over it.
    /// Plaintext goes to `read` (the count is returned) and then to `plain`.
    fn poll_receive(&mut self, cx: &mut Context<'_>, read: &mut [u8]) -> Poll<io::Result<usize>> {
        INBOX.with(|inbox| {
            let mut inbox = inbox.borrow_mut();
            let held = self.held.len();
            if inbox.len() < held + READ_MAX {
                inbox.resize(held + READ_MAX, 0);
            }
            inbox[..held].copy_from_slice(&self.held);
            let n = ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut inbox[held..held + READ_MAX]))?;
            if n == 0 {
                // redis-cli and redis-benchmark close without close_notify: an ordinary close.
                // What is held stays: the session may still point into it.
                self.peer_closed = true;
                return Poll::Ready(Ok(0));
            }
            let total = held + n;
            if !self.heard {
                self.heard = true;
                if inbox[held] != HANDSHAKE_RECORD {
                    // Plaintext on the TLS port (redis-cli without --tls, say): closed without a
                    // word, as Redis does. An alert would reach such a client as bytes it takes
                    // for a reply.
                    self.failed = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the peer does not speak TLS (plaintext on a TLS port?)",
                    )));
                }
            }
            let mut sink = Sink { read, produced: 0, plain: &mut self.plain };
            let (used, passed) = pass(&mut self.session, &mut inbox[..total], &mut sink, &mut self.out, None);
            let produced = sink.produced;
            let status = match passed {
                Ok(status) => status,
                Err(failure) => return Poll::Ready(Err(self.fail(cx, failure))),
            };
            self.held.clear();
            if used < total {
                if total - used > HELD_MAX {
                    // What is held no longer matches what rustls consumed: never drive it again.
                    self.failed = true;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "TLS message larger than 64 KiB",
                    )));
                }
                self.held.extend_from_slice(&inbox[used..total]);
            } else {
                self.held = Vec::new();
            }
            self.note(status);
            Poll::Ready(Ok(produced))
        })
    }

    fn note(&mut self, status: Status) {
        match status {
            Status::Handshaking => {}
            Status::Open => self.established = true,
            Status::PeerClosed => self.peer_closed = true,
        }
    }

    /// Queues the alert rustls has for an error, tries once to send it, and returns the error.
    /// The session is not used again: rustls's unbuffered API asserts (panics) when a failed
    /// session is driven on, so after its one queued alert nothing more is asked of it.
    fn fail(&mut self, cx: &mut Context<'_>, failure: Failure) -> io::Error {
        self.failed = true;
        let e = match failure {
            Failure::Tls(e) => e,
            Failure::Panicked => {
                tracing::error!("rustls panicked on this connection's input; connection dropped");
                return io::Error::other("TLS session failed");
            }
        };
        // The alert (if rustls queued one) comes out before rustls looks at any input, so an
        // empty buffer is safe here.
        let alert = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let UnbufferedStatus { state, .. } = self.session.process(&mut []);
            if let Ok(ConnectionState::EncodeTlsData(mut data)) = state {
                let _ = encode(&mut data, &mut self.out);
            }
        }));
        if alert.is_ok() {
            let _ = self.poll_send(cx);
        }
        invalid(e)
    }

    /// The error every call gets once the session has failed.
    fn failed() -> io::Error {
        io::Error::new(io::ErrorKind::BrokenPipe, "TLS session has failed")
    }

    /// Encrypts `what` and sends as much as the socket takes now; the rest is queued.
    fn send(&mut self, cx: &mut Context<'_>, what: Outgoing<'_>) -> io::Result<()> {
        OUTBOX.with(|outbox| {
            let mut outbox = outbox.borrow_mut();
            let mut filled = 0;
            let mut sink = Sink { read: &mut [], produced: 0, plain: &mut self.plain };
            let (used, passed) = pass(
                &mut self.session,
                &mut self.held,
                &mut sink,
                &mut self.out,
                Some((what, &mut outbox, &mut filled)),
            );
            self.held.drain(..used);
            let status = match passed {
                Ok(status) => status,
                Err(failure) => return Err(self.fail(cx, failure)),
            };
            self.note(status);
            if status != Status::Open {
                return Err(io::Error::new(io::ErrorKind::NotConnected, "TLS session is not open"));
            }
            if self.out_at < self.out.len() {
                // Older records first: the new ones queue behind them.
                self.out.extend_from_slice(&outbox[..filled]);
                return match self.poll_send(cx) {
                    Poll::Ready(Err(e)) => Err(e),
                    _ => Ok(()),
                };
            }
            let sent = match Pin::new(&mut self.tcp).poll_write(cx, &outbox[..filled]) {
                Poll::Ready(Ok(n)) => n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => 0,
            };
            if sent < filled {
                self.out.clear();
                self.out_at = 0;
                self.out.extend_from_slice(&outbox[sent..filled]);
            }
            Ok(())
        })
    }

    /// Sends the queued ciphertext; ready when none is left.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_at < self.out.len() {
            let n = ready!(Pin::new(&mut self.tcp).poll_write(cx, &self.out[self.out_at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_at += n;
        }
        if !self.out.is_empty() {
            self.out = Vec::new();
            self.out_at = 0;
        }
        Poll::Ready(Ok(()))
    }

    /// Copies out decrypted bytes the reader has not taken yet, if any.
    fn take_plain(&mut self, buf: &mut [u8]) -> Option<usize> {
        let left = &self.plain[self.plain_at..];
        if left.is_empty() {
            return None;
        }
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.plain_at += n;
        if self.plain_at == self.plain.len() {
            self.plain = Vec::new();
            self.plain_at = 0;
        }
        Some(n)
    }
}

/// Runs the session over `incoming` until it needs more bytes: decrypts records into `sink`,
/// queues handshake records on `out`, and once the session is open encrypts `outgoing` into the
/// outbox (`filled` bytes of it). Returns the bytes of `incoming` used up (also on error: the
/// caller must drop exactly those before the session sees the buffer again), and the status.
fn pass<S: Side>(
    session: &mut S,
    incoming: &mut [u8],
    sink: &mut Sink<'_>,
    out: &mut Vec<u8>,
    outgoing: Option<(Outgoing<'_>, &mut Vec<u8>, &mut usize)>,
) -> (usize, Result<Status, Failure>) {
    // rustls asserts its own invariants; should one fail on a peer's input, this connection
    // ends and the core goes on.
    std::panic::catch_unwind(AssertUnwindSafe(|| {
        let (used, status) = pass_unguarded(session, incoming, sink, out, outgoing);
        (used, status.map_err(Failure::Tls))
    }))
    .unwrap_or((0, Err(Failure::Panicked)))
}

/// [`pass`] without the guard.
fn pass_unguarded<S: Side>(
    session: &mut S,
    incoming: &mut [u8],
    sink: &mut Sink<'_>,
    out: &mut Vec<u8>,
    mut outgoing: Option<(Outgoing<'_>, &mut Vec<u8>, &mut usize)>,
) -> (usize, Result<Status, rustls::Error>) {
    let mut used = 0;
    loop {
        let UnbufferedStatus { mut discard, state } = session.process(&mut incoming[used..]);
        let stepped = state.and_then(|state| step(state, &mut discard, sink, out, &mut outgoing));
        used += discard;
        match stepped {
            Ok(None) => {}
            Ok(Some(status)) => return (used, Ok(status)),
            Err(e) => return (used, Err(e)),
        }
    }
}

/// Handles one state of the session; `Some` when the pass is over.
fn step<D>(
    state: ConnectionState<'_, '_, D>,
    discard: &mut usize,
    sink: &mut Sink<'_>,
    out: &mut Vec<u8>,
    outgoing: &mut Option<(Outgoing<'_>, &mut Vec<u8>, &mut usize)>,
) -> Result<Option<Status>, rustls::Error> {
    Ok(match state {
        ConnectionState::ReadTraffic(mut traffic) => {
            while let Some(record) = traffic.next_record() {
                let record = record?;
                *discard += record.discard;
                sink.put(record.payload);
            }
            None
        }
        // 0-RTT is never enabled (`max_early_data_size` stays 0), so no early data arrives.
        ConnectionState::ReadEarlyData(_) => {
            return Err(rustls::Error::General("unexpected 0-RTT data".into()));
        }
        ConnectionState::EncodeTlsData(mut data) => {
            encode(&mut data, out)?;
            None
        }
        // The records leave from `out`, in order, with the next send.
        ConnectionState::TransmitTlsData(transmit) => {
            transmit.done();
            None
        }
        ConnectionState::BlockedHandshake => Some(Status::Handshaking),
        ConnectionState::WriteTraffic(mut traffic) => {
            if let Some((what, outbox, filled)) = outgoing.take() {
                *filled = encrypt(&mut traffic, what, outbox)?;
            }
            Some(Status::Open)
        }
        ConnectionState::PeerClosed | ConnectionState::Closed => Some(Status::PeerClosed),
        _ => Some(Status::Handshaking),
    })
}

/// Appends a handshake record to `out`.
fn encode<D>(data: &mut EncodeTlsData<'_, D>, out: &mut Vec<u8>) -> Result<(), rustls::Error> {
    let at = out.len();
    let mut room = 512;
    loop {
        out.resize(at + room, 0);
        match data.encode(&mut out[at..]) {
            Ok(n) => {
                out.truncate(at + n);
                return Ok(());
            }
            Err(EncodeError::InsufficientSize(InsufficientSizeError { required_size })) => {
                room = required_size
            }
            Err(EncodeError::AlreadyEncoded) => {
                out.truncate(at);
                return Ok(());
            }
        }
    }
}

/// Encrypts `what` at the start of `outbox` (grown as needed, never shrunk); returns its length.
fn encrypt<D>(
    traffic: &mut WriteTraffic<'_, D>,
    what: Outgoing<'_>,
    outbox: &mut Vec<u8>,
) -> Result<usize, rustls::Error> {
    // A record adds 22 bytes (TLS 1.3) or 29 (TLS 1.2 AES-GCM) to at most 16 KiB.
    let want = match what {
        Outgoing::Data(data) => data.len() + (data.len() / 16384 + 1) * 32,
        Outgoing::CloseNotify => 64,
    };
    if outbox.len() < want {
        outbox.resize(want, 0);
    }
    loop {
        let done = match what {
            Outgoing::Data(data) => traffic.encrypt(data, outbox),
            Outgoing::CloseNotify => traffic.queue_close_notify(outbox),
        };
        match done {
            Ok(n) => return Ok(n),
            Err(EncryptError::InsufficientSize(InsufficientSizeError { required_size })) => {
                outbox.resize(required_size.max(outbox.len() + 1), 0);
            }
            Err(EncryptError::EncryptExhausted) => return Err(rustls::Error::EncryptError),
        }
    }
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<S: Side + Unpin> AsyncRead for TlsConn<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if let Some(n) = this.take_plain(buf) {
                return Poll::Ready(Ok(n));
            }
            if this.failed {
                return Poll::Ready(Err(Self::failed()));
            }
            if this.peer_closed {
                return Poll::Ready(Ok(0));
            }
            // Tickets, alerts and key updates leave before we wait; if the socket is full, the
            // same waker hears when it drains.
            if let Poll::Ready(Err(e)) = this.poll_send(cx) {
                return Poll::Ready(Err(e));
            }
            let n = ready!(this.poll_receive(cx, buf))?;
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
        }
    }
}

impl<S: Side + Unpin> AsyncWrite for TlsConn<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.out.len() - this.out_at >= WRITE_MAX {
            ready!(this.poll_send(cx))?;
        }
        if this.failed {
            return Poll::Ready(Err(Self::failed()));
        }
        if this.closing {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let data = &buf[..buf.len().min(WRITE_MAX)];
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        this.send(cx, Outgoing::Data(data))?;
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_send(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing && this.established && !this.failed {
            this.closing = true;
            this.send(cx, Outgoing::CloseNotify)?;
        }
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.tcp).poll_close(cx)
    }
}
