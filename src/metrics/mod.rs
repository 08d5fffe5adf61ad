//! The Prometheus endpoint (`metrics-port`, 0: off): HTTP/1.1 on executor 0, plain, or with
//! `metrics-tls yes` TLS with the server's certificates and client-certificate policy.
//! `GET /metrics` answers with what INFO reports, in the text exposition format, named as
//! redis_exporter names it so that its dashboards work, plus ferrokey's per-core series
//! ([`exposition`]). Each request gets one answer and the connection closes.

mod exposition;

use std::io;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};

use crate::engine::client::Client;
use crate::engine::core::Core;
use crate::engine::session::Session;
use crate::facade::listener::{Incoming, Listener};
use crate::facade::Reply;

/// The most a request's head may take.
const MAX_HEAD: usize = 8192;

/// How long a scrape may take from accept to answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// At most this many scrapes are answered at once; more connections are closed at once (a
/// flood of them must not take the descriptors the data ports need).
const MAX_SCRAPES: usize = 16;

/// Accepts scrapes on `listener` until the core stops.
pub(crate) async fn serve(listener: Listener, core: Rc<Core>) {
    let running = Rc::new(std::cell::Cell::new(0usize));
    loop {
        match listener.accept().await {
            // Protected mode refuses remote scrapes as it refuses remote clients.
            Ok(incoming)
                if running.get() >= MAX_SCRAPES || core.with_config(|c| c.protected(incoming.peer.ip())) =>
            {
                tracing::debug!(peer = %incoming.peer, "metrics connection refused");
                drop(incoming);
            }
            Ok(incoming) => {
                running.set(running.get() + 1);
                let (core, running) = (core.clone(), running.clone());
                glommio::spawn_local(async move {
                    answer(incoming, core).await;
                    running.set(running.get() - 1);
                })
                .detach();
            }
            Err(e) => {
                tracing::warn!("accept on metrics port {}: {e}", listener.addr());
                glommio::timer::Timer::new(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Answers one connection's request, within [`REQUEST_TIMEOUT`].
async fn answer(incoming: Incoming, core: Rc<Core>) {
    let peer = incoming.peer;
    let exchange = async { exchange(incoming, &core).await.map_err(glommio::GlommioError::IoError) };
    if let Err(e) = glommio::timer::timeout(REQUEST_TIMEOUT, exchange).await {
        tracing::debug!(%peer, "metrics request: {e}");
    }
}

/// Reads the request's head, writes the answer.
async fn exchange(incoming: Incoming, core: &Rc<Core>) -> io::Result<()> {
    let keepalive = core.with_config(|c| c.tcp_keepalive);
    let mut stream = incoming.establish(keepalive).await.map_err(|e| io::Error::other(e.to_string()))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > MAX_HEAD {
            return respond(&mut stream, "431 Request Header Fields Too Large", "", false).await;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or_default(), words.next().unwrap_or_default());
    let path = target.split('?').next().unwrap_or_default();
    let head_only = method == "HEAD";
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = render(core).await;
            respond(&mut stream, "200 OK", &body, head_only).await
        }
        ("GET" | "HEAD", _) => {
            respond(&mut stream, "404 Not Found", "Not Found: try /metrics\n", head_only).await
        }
        _ => respond(&mut stream, "405 Method Not Allowed", "Method Not Allowed\n", false).await,
    }
}

/// Writes a whole answer and closes.
async fn respond<S>(stream: &mut S, status: &str, body: &str, head_only: bool) -> io::Result<()>
where
    S: futures::AsyncWrite + Unpin,
{
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    if !head_only {
        out.push_str(body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await?;
    stream.close().await
}

/// Every INFO section, as the exposition format.
async fn render(core: &Rc<Core>) -> String {
    let client = Rc::new(Client::internal(core.router.local().0));
    let mut session = Session::new(core.clone(), client);
    let args = [Bytes::from_static(b"INFO"), Bytes::from_static(b"everything")];
    let Ok(Reply::Verbatim(info)) = crate::cmd::info::info(&mut session, &args).await else {
        return "redis_up 0\n".to_owned();
    };
    let histograms: Vec<exposition::Histogram> = crate::cmd::latency::histograms(&session)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|h| (h.name, h.calls, h.buckets))
        .collect();
    let databases = core.with_config(|c| c.databases);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    exposition::render(&info, databases, &histograms, now)
}
