//! One stream type over plain TCP and TLS; nothing above the facade knows which it is.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

use super::tls_conn::{TlsConn, TlsParts};

/// What a TLS session negotiated, in words the rest of the server can show without knowing TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub(crate) version: String,
    /// The cipher suite, as rustls names it (`TLS13_AES_256_GCM_SHA384`).
    pub(crate) cipher: String,
    /// The subject common name of the client's certificate, as written ("" without one).
    pub(crate) client_cn: String,
    /// The URIs among the client certificate's subject alternative names, in order.
    pub(crate) client_uris: Vec<String>,
    /// Whether the session was resumed (a ticket or cached session) rather than full.
    pub(crate) resumed: bool,
}

/// A client's byte stream, plain or TLS.
pub(crate) enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP; the rustls session lives with the connection on its core.
    Tls(Box<TlsConn>),
}

impl Stream {
    /// The socket's file descriptor (CLIENT LIST's `fd`).
    #[must_use]
    pub(crate) fn fd(&self) -> i32 {
        use std::os::fd::AsRawFd as _;
        match self {
            Stream::Plain(tcp) => tcp.as_raw_fd(),
            Stream::Tls(tls) => tls.tcp().as_raw_fd(),
        }
    }

    /// A descriptor of its own for the same socket (`dup`).
    #[allow(unsafe_code)]
    fn duplicate(&self) -> io::Result<std::os::fd::OwnedFd> {
        // SAFETY: the descriptor belongs to the socket `self` owns, which outlives this borrow;
        // glommio exposes only `AsRawFd`, so the borrow is made by hand.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd()) };
        fd.try_clone_to_owned()
    }

    /// The negotiated TLS parameters; `None` for plain TCP.
    #[must_use]
    pub(crate) fn tls_info(&self) -> Option<TlsInfo> {
        let Stream::Tls(tls) = self else { return None };
        let session = tls.session();
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        let cipher = session.negotiated_cipher_suite().map_or(String::new(), |c| format!("{:?}", c.suite()));
        // rustls keeps the chain it verified, in a resumed session too (the ticket carries it).
        let (client_cn, client_uris) = session
            .peer_certificates()
            .and_then(|c| c.first())
            .map_or_else(Default::default, |c| identity(c));
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        Some(TlsInfo { version, cipher, client_cn, client_uris, resumed })
    }
}

/// A client's stream taken apart to move to another core: a descriptor of its socket and, over
/// TLS, the session. Unlike a [`Stream`], it may cross threads; a [`Stream`] is made of it
/// again on the core it reaches ([`Stream::attach`]). Dropped, it closes the connection.
pub(crate) struct Detached {
    fd: std::os::fd::OwnedFd,
    tls: Option<Box<TlsParts>>,
}

impl Stream {
    /// Takes the stream apart to move it to another core. Nothing may be in flight: the loop
    /// asks at a point where it read nothing past its last request and wrote every reply.
    /// `Err` gives the stream back, whole, when the socket cannot be duplicated (no descriptor
    /// left) or the TLS session holds bytes.
    pub(crate) fn detach(self) -> Result<Detached, Box<(Stream, io::Error)>> {
        // The new core makes a socket of its own from a duplicate: glommio's socket belongs to
        // this core's reactor and closes its descriptor when dropped here.
        let fd = match self.duplicate() {
            Ok(fd) => fd,
            Err(e) => return Err(Box::new((self, e))),
        };
        let tls = match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => match tls.detach() {
                Ok((_, parts)) => Some(Box::new(parts)),
                Err(tls) => {
                    return Err(Box::new((Stream::Tls(tls), io::Error::other("the TLS session holds bytes"))))
                }
            },
        };
        Ok(Detached { fd, tls })
    }

    /// Makes a stream of a detached one, on this core's reactor.
    #[must_use]
    #[allow(unsafe_code)]
    pub(crate) fn attach(detached: Detached) -> Stream {
        use std::os::fd::{FromRawFd as _, IntoRawFd as _};
        // SAFETY: the descriptor is a connected TCP socket whose ownership moves here from the
        // `OwnedFd` (`into_raw_fd` gives it up), as `FromRawFd` requires.
        let tcp = unsafe { TcpStream::from_raw_fd(detached.fd.into_raw_fd()) };
        match detached.tls {
            None => Stream::Plain(tcp),
            Some(parts) => Stream::Tls(Box::new(TlsConn::attach(tcp, *parts))),
        }
    }
}

impl super::connection::Layered for Stream {
    /// What the TLS session holds: received bytes the loop has not read yet, and encrypted
    /// records the socket has not taken yet (a client that stops reading leaves up to one
    /// 64 KiB write there; the rest waits in the loop's own reply buffer).
    fn layer_buffered(&mut self) -> usize {
        let Stream::Tls(tls) = self else { return 0 };
        tls.buffered()
    }
}

/// The subject CN ("" if none) and the SAN URIs of a DER certificate (nothing if it does not
/// parse; rustls verified it, so it does).
fn identity(der: &[u8]) -> (String, Vec<String>) {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Default::default() };
    let cn = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default();
    let uris = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    (cn.to_owned(), uris)
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
