//! Listening sockets: each core binds every address itself (SO_REUSEPORT), accepts, and runs the
//! TLS handshake of what it accepted.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::sync::Arc;
use std::time::Duration;

use glommio::net::{TcpListener, TcpStream};

use rustls::ServerConfig;

use super::stream::Stream;
use super::tls::TlsSlot;
use super::tls_conn::TlsConn;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound address, plain or TLS.
pub(crate) struct Listener {
    tcp: TcpListener,
    /// A second descriptor of the same socket, to shut it down while the reactor may still
    /// hold a reference to the first (see [`Listener::close`]).
    control: socket2::Socket,
    tls: Option<Arc<TlsSlot>>,
    addr: SocketAddr,
    /// The `tcp-keepalive` set on the listening socket, which accepted sockets inherit.
    keepalive_secs: u64,
}

impl Listener {
    /// Binds `addr` on this core; with `tls`, connections get a TLS handshake first, with the
    /// configuration the slot holds when they arrive.
    ///
    /// TCP_NODELAY and keepalive (`keepalive_secs`, 0 for none) are set on the listening
    /// socket: Linux copies them into every socket it accepts, which then needs no
    /// `setsockopt` of its own (three system calls per connection saved).
    pub(crate) fn bind(
        addr: SocketAddr,
        tls: Option<Arc<TlsSlot>>,
        keepalive_secs: u64,
    ) -> io::Result<Listener> {
        let (tcp, control) = listen(addr, keepalive_secs)?;
        let addr = tcp.local_addr()?;
        Ok(Listener { tcp, control, tls, addr, keepalive_secs })
    }

    /// Stops listening now. Dropping the listener closes its descriptor, but a pending
    /// io_uring accept keeps the socket listening until the reactor has cancelled it; a
    /// shutdown takes it out of the listening state at once, so the port can be taken again
    /// (CONFIG SET tls-port 0, then port as the old tls-port) as soon as this returns.
    pub(crate) fn close(&self) {
        if let Err(e) = self.control.shutdown(std::net::Shutdown::Both) {
            tracing::debug!("shutting down listener {}: {e}", self.addr);
        }
    }

    /// The bound address.
    #[must_use]
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether this is a TLS listener.
    #[must_use]
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The next connection, accepted but not yet handshaken.
    pub(crate) async fn accept(&self) -> io::Result<Incoming> {
        let tcp = self.tcp.accept().await?;
        let peer = tcp.peer_addr()?;
        let tls =
            match &self.tls {
                None => None,
                Some(slot) => Some(slot.current().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "no TLS configuration installed")
                })?),
            };
        Ok(Incoming { tcp, tls, peer, local: self.addr, keepalive_secs: self.keepalive_secs })
    }
}

/// An accepted connection before its handshake.
pub(crate) struct Incoming {
    tcp: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    /// The client's address.
    pub(crate) peer: SocketAddr,
    /// The address it connected to.
    pub(crate) local: SocketAddr,
    /// The keepalive it inherited from the listener.
    keepalive_secs: u64,
}

/// A TLS handshake that failed or took too long.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum HandshakeError {
    /// rustls rejected the client (bad certificate, plaintext on the TLS port, ...).
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// The client did not finish in time.
    #[error("TLS handshake timed out")]
    Timeout,
}

impl Incoming {
    /// Whether the connection is TLS.
    #[must_use]
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sets keepalive to `keepalive_secs` (0: off) unless the socket inherited that value, and
    /// runs the TLS handshake if the listener is TLS.
    pub(crate) async fn establish(self, keepalive_secs: u64) -> Result<Stream, HandshakeError> {
        if keepalive_secs != self.keepalive_secs {
            // CONFIG SET tcp-keepalive since the listener was bound. Best effort: a socket
            // option that fails leaves a working connection.
            let _ = set_stream_keepalive(&self.tcp, keepalive_secs);
        }
        let Some(config) = self.tls else { return Ok(Stream::Plain(self.tcp)) };
        match glommio::timer::timeout(HANDSHAKE_TIMEOUT, async {
            TlsConn::accept(self.tcp, config).await.map_err(glommio::GlommioError::IoError)
        })
        .await
        {
            Ok(tls) => Ok(Stream::Tls(Box::new(tls))),
            Err(glommio::GlommioError::IoError(e)) => Err(HandshakeError::Tls(e)),
            Err(_) => Err(HandshakeError::Timeout),
        }
    }
}

/// A listening socket as glommio's `TcpListener::bind` makes one (SO_REUSEPORT, non-blocking,
/// backlog 1024), with TCP_NODELAY and keepalive set before `listen`, so that every socket it
/// accepts inherits them; and a second descriptor of it, for [`Listener::close`].
/// SO_REUSEADDR as Redis sets it: once shut down, its port can be bound again at once.
#[allow(unsafe_code)]
fn listen(addr: SocketAddr, keepalive_secs: u64) -> io::Result<(TcpListener, socket2::Socket)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_port(true)?;
    sock.set_reuse_address(true)?;
    sock.set_nonblocking(true)?;
    sock.set_nodelay(true)?;
    set_keepalive(&sock, keepalive_secs)?;
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    let control = sock.try_clone()?;
    // SAFETY: the descriptor is a bound, listening TCP socket whose ownership moves here from
    // `sock` (`into_raw_fd` gives it up), as `FromRawFd` requires.
    Ok((unsafe { TcpListener::from_raw_fd(sock.into_raw_fd()) }, control))
}

/// [`set_keepalive`] on an accepted connection (glommio has no call for it).
#[allow(unsafe_code)]
fn set_stream_keepalive(stream: &TcpStream, secs: u64) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `stream`, which outlives this borrow; glommio exposes
    // only `AsRawFd`, so the borrow is made by hand.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(stream.as_raw_fd()) };
    set_keepalive(&socket2::SockRef::from(&fd), secs)
}

/// TCP keepalive with the given idle time, as Redis's `tcp-keepalive`; 0 turns it off.
fn set_keepalive(sock: &socket2::Socket, secs: u64) -> io::Result<()> {
    if secs == 0 {
        return sock.set_keepalive(false);
    }
    sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(secs)))
}
