//! The connection loop: read bytes, parse requests, hand them to a [`Service`], write replies.
//!
//! Generic over the stream, so plain TCP and TLS share every line of it; knows nothing of commands.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::{select, Either};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::reply::Reply;
use super::resp::{Limits, ProtocolError, RequestParser};

/// Bytes read per read call: starts here, doubles while reads fill it (up to [`MAX_READ`]) and
/// halves after [`SHRINK_AFTER`] reads that used under a quarter of it. An idle connection waits
/// on a buffer this small, so 10k idle connections cost little memory (128 rather than 512 took
/// 420 bytes off each idle plain connection, with no change in µs/op at P=1 or P=16).
const MIN_READ: usize = 128;
const MAX_READ: usize = 64 * 1024;
const SHRINK_AFTER: u32 = 16;
/// Requests handed to the service in one call at most, to bound memory per turn.
const MAX_BATCH: usize = 1024;
/// Buffers larger than this are dropped once empty, so idle connections stay small.
const KEEP_BUFFER: usize = 16 * 1024;

/// Whether the connection goes on after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep reading.
    Continue,
    /// Write what is pending, then close (QUIT, SHUTDOWN, a killed client).
    Close,
    /// Write what is pending, then stop serving requests: the server takes the connection
    /// over (a replica's link, after SYNC or PSYNC).
    Handover,
    /// Write what is pending, then hand the connection to this core, if nothing of the
    /// client's is left in flight (no partial request read, nothing held by the TLS layer);
    /// else keep serving and ask again later.
    Move(usize),
}

/// What the service can interrupt a wait with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Close the connection.
    Close,
    /// Pushes are waiting to be written.
    Push,
}

/// The limits the loop enforces, read from the service before each read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnLimits {
    /// Parser bounds.
    pub(crate) parser: Limits,
    /// `client-query-buffer-limit`.
    pub(crate) query_buffer: usize,
    /// `timeout`: close after this long without a request.
    pub(crate) idle: Option<Duration>,
}

/// The connection's buffers, as CLIENT LIST reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Buffers {
    /// Bytes read and not yet handed to the service (the rest of a pipeline, a partial request).
    pub(crate) query: usize,
    /// The query buffer's capacity.
    pub(crate) query_capacity: usize,
    /// Reply bytes not yet written.
    pub(crate) reply: usize,
    /// The reply buffer's capacity.
    pub(crate) reply_capacity: usize,
}

impl Buffers {
    fn of(rbuf: &BytesMut, wbuf: &BytesMut) -> Buffers {
        Buffers {
            query: rbuf.len(),
            query_capacity: rbuf.capacity(),
            reply: wbuf.len(),
            reply_capacity: wbuf.capacity(),
        }
    }
}

/// What the server plugs into a connection.
#[allow(async_fn_in_trait)]
pub(crate) trait Service {
    /// The limits now (they may change with CONFIG SET).
    fn limits(&self) -> ConnLimits;
    /// Whether the client has authenticated (unauthenticated clients get tighter parser bounds).
    fn authenticated(&self) -> bool;
    /// Handles `requests` in order, appending each encoded reply to `out`.
    async fn call(&mut self, requests: &mut Vec<Vec<Bytes>>, out: &mut BytesMut) -> Flow;
    /// Ready when the server wants this connection closed (CLIENT KILL, shutdown), or when it has
    /// pushes (pub/sub messages) to write.
    fn poll_event(&self, cx: &mut Context<'_>) -> Poll<Event>;
    /// Appends the pending pushes, encoded, to `out`.
    fn take_pushes(&mut self, out: &mut BytesMut);
    /// Notes traffic: bytes read and bytes about to be written, once per read.
    fn on_io(&self, read: usize, written: usize);
    /// Notes the connection's buffers: before each call (what its commands see of their own
    /// client), before a write, and after it.
    fn on_buffers(&self, buffers: Buffers);
    /// Notes how many bytes the stream's own layer (TLS) holds now: after every exchange, and
    /// whenever a write has to wait for the client to read.
    fn on_layer_buffered(&self, bytes: usize);
    /// What the loop watches while `call` runs.
    type Waiting: Waiting;
    /// A handle on the call about to run, kept by the loop beside it.
    fn waiting(&self) -> Self::Waiting;
}

/// A call seen from beside it: whether it waits for other clients (a blocking command), and how
/// to tell it that its client is gone.
///
/// While a call waits, the loop reads ahead (into the query buffer, as Redis does for a blocked
/// client), so a client that hangs up is noticed then and not after the call: a blocked pop
/// must not take an element for a client that is no longer there.
pub(crate) trait Waiting {
    /// Whether the call now waits for other clients. Checked each time the loop's task is
    /// polled, right after the call: no waker of its own.
    fn is_waiting(&self) -> bool;
    /// The client hung up (or its socket failed) while the call waited: end the call.
    fn hung_up(&self);
}

/// A stream that may keep bytes in a layer of its own between the socket and the loop.
pub(crate) trait Layered {
    /// Bytes held in that layer now: received plaintext not yet read plus records not yet sent.
    /// Plain TCP holds none.
    fn layer_buffered(&mut self) -> usize {
        0
    }
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ConnError {
    /// The client closed the connection (including TLS without close_notify).
    #[error("client closed the connection")]
    Eof,
    /// The service asked to close (QUIT, SHUTDOWN, CLIENT KILL).
    #[error("closed by the server")]
    Closed,
    /// The client broke the protocol; it got Redis's error reply first.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    /// The query buffer grew past `client-query-buffer-limit`.
    #[error("closing client that reached max query buffer length ({0} bytes)")]
    QueryBuffer(usize),
    /// No request within `timeout`.
    #[error("idle timeout")]
    Idle,
    /// A socket or TLS error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The service took the connection over ([`Flow::Handover`]); the bytes read past the
    /// request that asked for it.
    #[error("taken over by the server")]
    Handover(BytesMut),
    /// The connection moves to this core ([`Flow::Move`]): nothing is pending on it.
    #[error("moved to core {0}")]
    Moved(usize),
}

/// Serves one client until it leaves, breaks the protocol, or the service closes it.
pub(crate) async fn serve<S, H>(stream: &mut S, svc: &mut H) -> ConnError
where
    S: AsyncRead + AsyncWrite + Layered + Unpin,
    H: Service,
{
    let mut parser = RequestParser::new();
    let mut rbuf = BytesMut::new();
    let mut wbuf = BytesMut::new();
    let mut requests = Vec::new();
    let mut chunk = MIN_READ;
    let mut small_reads = 0;
    loop {
        let limits = svc.limits();
        let start = rbuf.len();
        rbuf.resize(start + chunk, 0);
        let read = until_event(svc, limits.idle, true, stream.read(&mut rbuf[start..])).await;
        let n = match read {
            Ok(Ok(0)) => return ConnError::Eof,
            Ok(Ok(n)) => n,
            Ok(Err(e)) if is_eof(&e) => return ConnError::Eof,
            Ok(Err(e)) => return ConnError::Io(e),
            Err(Stop::Push) => {
                // A message for a subscriber: the read is abandoned (no bytes were taken), the
                // pushes are written, and the loop reads again.
                rbuf.truncate(start);
                svc.take_pushes(&mut wbuf);
                svc.on_io(0, wbuf.len());
                if let Err(why) = flush(stream, svc, &mut wbuf).await {
                    return why;
                }
                continue;
            }
            Err(Stop::End(why)) => return why,
        };
        rbuf.truncate(start + n);
        if n == chunk {
            chunk = (chunk * 2).min(MAX_READ);
            small_reads = 0;
        } else if n < chunk / 4 && chunk > MIN_READ {
            small_reads += 1;
            if small_reads >= SHRINK_AFTER {
                chunk /= 2;
                small_reads = 0;
            }
        }
        if rbuf.len() > limits.query_buffer {
            return ConnError::QueryBuffer(rbuf.len());
        }
        let mut flow = Flow::Continue;
        let mut broken = None;
        let mut ahead = Ahead::default();
        loop {
            // Unauthenticated clients are handled one request at a time: AUTH changes the bounds.
            let batch = if svc.authenticated() { MAX_BATCH } else { 1 };
            while requests.len() < batch {
                match parser.parse(&mut rbuf, &limits.parser, svc.authenticated()) {
                    Ok(Some(args)) => requests.push(args),
                    Ok(None) => break,
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                }
            }
            if requests.is_empty() {
                break;
            }
            svc.on_buffers(Buffers::of(&rbuf, &wbuf));
            let waiting = svc.waiting();
            let call = svc.call(&mut requests, &mut wbuf);
            let reading = read_ahead(stream, &waiting, &mut rbuf, limits.query_buffer, &mut ahead);
            // The call comes first: each poll, the read-ahead sees whether it now waits.
            flow = match select(pin!(call), pin!(reading)).await {
                Either::Left((flow, _)) => flow,
                Either::Right((never, _)) => match never {},
            };
            requests.clear();
            if ahead.gone.is_some() {
                break;
            }
            if matches!(flow, Flow::Move(_)) && !rbuf.is_empty() {
                // Requests wait in the buffer: no move now, they are served first.
                flow = Flow::Continue;
            }
            if flow != Flow::Continue || broken.is_some() {
                break;
            }
        }
        if let Some(why) = ahead.gone.take() {
            // Nobody to write the replies to.
            return why;
        }
        if let Some(e) = broken {
            Reply::Error(format!("ERR {e}").into()).encode(false, &mut wbuf);
        }
        // Pushes that came during the calls follow their replies now, not at the next wait for
        // a read: a client that keeps sending gets them too.
        svc.take_pushes(&mut wbuf);
        svc.on_io(n + ahead.read, wbuf.len());
        svc.on_buffers(Buffers::of(&rbuf, &wbuf));
        // The replies wait until the other connections ready in this pass of the executor
        // have run their requests too, and leave with theirs (see `pass`).
        if !wbuf.is_empty() {
            super::pass::until_the_pass_ends().await;
        }
        if let Err(why) = flush(stream, svc, &mut wbuf).await {
            return why;
        }
        svc.on_buffers(Buffers::of(&rbuf, &wbuf));
        if let Some(e) = broken {
            return ConnError::Protocol(e);
        }
        match flow {
            Flow::Close => return ConnError::Closed,
            Flow::Handover => return ConnError::Handover(rbuf),
            Flow::Move(core) if rbuf.is_empty() && stream.layer_buffered() == 0 => {
                return ConnError::Moved(core)
            }
            Flow::Move(_) | Flow::Continue => {}
        }
        // Between requests, keep no more buffer than the next read needs.
        if rbuf.is_empty() && rbuf.capacity() > chunk.max(KEEP_BUFFER / 4) {
            rbuf = BytesMut::new();
        }
    }
}

/// What [`read_ahead`] did beside one call.
#[derive(Default)]
struct Ahead {
    /// Bytes it added to the query buffer.
    read: usize,
    /// Why the connection ended, if the client hung up meanwhile.
    gone: Option<ConnError>,
}

/// While the call beside it waits for other clients, reads what the client sends into `rbuf`
/// (up to `limit`; the loop enforces the limit itself afterwards); when the client hangs up,
/// records why and tells the call. Never completes: the call ends the race.
async fn read_ahead<S, W>(
    stream: &mut S,
    waiting: &W,
    rbuf: &mut BytesMut,
    limit: usize,
    ahead: &mut Ahead,
) -> std::convert::Infallible
where
    S: AsyncRead + Unpin,
    W: Waiting,
{
    // Allocated only once a call waits: most calls never do, and every connection's task
    // carries its futures' state for its whole life.
    let mut buf = Vec::new();
    while rbuf.len() <= limit {
        std::future::poll_fn(|_| if waiting.is_waiting() { Poll::Ready(()) } else { Poll::Pending }).await;
        buf.resize(MIN_READ * 32, 0);
        // Dropped unfinished when the call ends first: the stream keeps what it had in flight
        // for the loop's next read, as when a push interrupts a read.
        ahead.gone = Some(match stream.read(&mut buf).await {
            Ok(0) => ConnError::Eof,
            Ok(n) => {
                rbuf.extend_from_slice(&buf[..n]);
                ahead.read += n;
                continue;
            }
            Err(e) if is_eof(&e) => ConnError::Eof,
            Err(e) => ConnError::Io(e),
        });
        waiting.hung_up();
        break;
    }
    std::future::pending().await
}

/// Writes `wbuf` out (unless the connection is closed meanwhile) and empties it.
/// While a write waits (the client is not reading), the service hears how much the stream's
/// layer holds; and once more when it is done.
async fn flush<S, H>(stream: &mut S, svc: &H, wbuf: &mut BytesMut) -> Result<(), ConnError>
where
    S: AsyncWrite + Layered + Unpin,
    H: Service,
{
    if wbuf.is_empty() {
        return Ok(());
    }
    let written = until_event(svc, None, false, async {
        let mut at = 0;
        while at < wbuf.len() {
            let n = std::future::poll_fn(|cx| {
                let polled = std::pin::Pin::new(&mut *stream).poll_write(cx, &wbuf[at..]);
                if polled.is_pending() {
                    svc.on_layer_buffered(stream.layer_buffered());
                }
                polled
            })
            .await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            at += n;
        }
        stream.flush().await
    });
    let done = written.await;
    svc.on_layer_buffered(stream.layer_buffered());
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(ConnError::Io(e)),
        Err(Stop::End(why)) => return Err(why),
        Err(Stop::Push) => unreachable!("pushes do not interrupt a write"),
    }
    wbuf.clear();
    if wbuf.capacity() > KEEP_BUFFER {
        *wbuf = BytesMut::new();
    }
    Ok(())
}

/// Why a wait ended before its future.
enum Stop {
    /// Pushes are waiting (only when the wait accepts them).
    Push,
    /// The connection must end.
    End(ConnError),
}

/// Runs `fut` unless the service closes the connection, `idle` passes, or (when `pushes`)
/// pushes arrive first.
async fn until_event<H: Service, T>(
    svc: &H,
    idle: Option<Duration>,
    pushes: bool,
    fut: impl Future<Output = T>,
) -> Result<T, Stop> {
    let event = std::future::poll_fn(|cx| match svc.poll_event(cx) {
        Poll::Ready(Event::Push) if !pushes => Poll::Pending,
        other => other,
    });
    let stop = async {
        match idle {
            Some(d) => match select(pin!(event), pin!(glommio::timer::Timer::new(d))).await {
                Either::Left((Event::Push, _)) => Stop::Push,
                Either::Left((Event::Close, _)) => Stop::End(ConnError::Closed),
                Either::Right(_) => Stop::End(ConnError::Idle),
            },
            None => match event.await {
                Event::Push => Stop::Push,
                Event::Close => Stop::End(ConnError::Closed),
            },
        }
    };
    match select(pin!(fut), pin!(stop)).await {
        Either::Left((out, _)) => Ok(out),
        Either::Right((why, _)) => Err(why),
    }
}

/// redis-cli and redis-benchmark close TLS without close_notify: that is an ordinary close.
fn is_eof(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
    )
}
