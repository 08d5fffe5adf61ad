//! Listening sockets: each core binds every address itself (SO_REUSEPORT), accepts, and runs the
//! TLS handshake of what it accepted.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
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
pub struct Listener {
    tcp: TcpListener,
    tls: Option<Arc<TlsSlot>>,
    addr: SocketAddr,
}

impl Listener {
    /// Binds `addr` on this core; with `tls`, connections get a TLS handshake first, with the
    /// configuration the slot holds when they arrive.
    pub fn bind(addr: SocketAddr, tls: Option<Arc<TlsSlot>>) -> io::Result<Listener> {
        let tcp = TcpListener::bind(addr)?;
        let addr = tcp.local_addr()?;
        Ok(Listener { tcp, tls, addr })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether this is a TLS listener.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The next connection, accepted but not yet handshaken.
    pub async fn accept(&self) -> io::Result<Incoming> {
        let tcp = self.tcp.accept().await?;
        let peer = tcp.peer_addr()?;
        let tls =
            match &self.tls {
                None => None,
                Some(slot) => Some(slot.current().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, "no TLS configuration installed")
                })?),
            };
        Ok(Incoming { tcp, tls, peer, local: self.addr })
    }
}

/// An accepted connection before its handshake.
pub struct Incoming {
    tcp: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    /// The client's address.
    pub peer: SocketAddr,
    /// The address it connected to.
    pub local: SocketAddr,
}

/// A TLS handshake that failed or took too long.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
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
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Sets socket options and runs the TLS handshake if the listener is TLS.
    pub async fn establish(self, keepalive_secs: u64) -> Result<Stream, HandshakeError> {
        // Best effort: a socket option that fails leaves a working connection.
        let _ = self.tcp.set_nodelay(true);
        if keepalive_secs > 0 {
            let _ = set_keepalive(&self.tcp, keepalive_secs);
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

/// Turns on TCP keepalive with the given idle time, as Redis's `tcp-keepalive`.
#[allow(unsafe_code)]
fn set_keepalive(tcp: &TcpStream, secs: u64) -> io::Result<()> {
    // SAFETY: the descriptor belongs to `tcp`, which outlives this borrow; glommio exposes only
    // `AsRawFd`, so the borrow is made by hand.
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(tcp.as_raw_fd()) };
    let keepalive = socket2::TcpKeepalive::new().with_time(Duration::from_secs(secs));
    socket2::SockRef::from(&fd).set_tcp_keepalive(&keepalive)
}
