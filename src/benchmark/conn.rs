//! One benchmark connection: connect (plain or TLS), then send pipelines and time their replies;
//! and the `--connect-rate` loop of short-lived connections.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use hdrhistogram::Histogram;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::keygen;
use super::report::Errors;
use super::workload::{self, Test};
use super::BenchError;
use super::Live;
use super::Options;
use super::TlsOptions;

/// A client byte stream, plain or TLS.
trait Io: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> Io for T {}

/// The rustls client configuration the options ask for (aws-lc-rs, never the process default).
pub fn client_config(t: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, BenchError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| BenchError::Tls(e.to_string()))?;
    let builder = if t.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(Lenient { chain: None, provider }))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let Some(ca) = &t.cacert else {
            return Err(BenchError::Tls("--cacert FILE is required (or --insecure)".into()));
        };
        let certs = CertificateDer::pem_file_iter(ca).map_err(|e| BenchError::Tls(format!("{ca}: {e}")))?;
        for cert in certs {
            let cert = cert.map_err(|e| BenchError::Tls(format!("{ca}: {e}")))?;
            roots.add(cert).map_err(|e| BenchError::Tls(format!("{ca}: {e}")))?;
        }
        if t.verify_hostname {
            builder.with_root_certificates(roots)
        } else {
            let chain = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots),
                provider.clone(),
            )
            .build()
            .map_err(|e| BenchError::Tls(format!("{ca}: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Lenient { chain: Some(chain), provider }))
        }
    };
    let mut config = match &t.cert {
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| BenchError::Tls(format!("{cert}: {e}")))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| BenchError::Tls(format!("{cert}: {e}")))?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| BenchError::Tls(format!("{key}: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| BenchError::Tls(e.to_string()))?
        }
        None => builder.with_no_client_auth(),
    };
    if !t.resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    Ok(Arc::new(config))
}

/// How much of the server's certificate is checked: nothing (`--insecure`), or its chain
/// against `--cacert` (signatures, validity, usage) but not the names it is valid for, the
/// default. Certificates made by Redis's `utils/gen-test-certs.sh` name no host, and
/// redis-benchmark (hiredis) does not check names. The handshake's signatures are always
/// checked, so the handshake is real.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects; with TLS, handshakes (within [`CONNECT_TIMEOUT`]). Returns the stream and whether
/// the session was resumed.
async fn connect(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    sni: Option<&str>,
) -> Result<(Box<dyn Io>, bool), String> {
    glommio::timer::timeout(CONNECT_TIMEOUT, async { Ok(connect_now(addr, tls, sni).await) })
        .await
        .unwrap_or_else(|_| Err("timed out".to_owned()))
}

async fn connect_now(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    sni: Option<&str>,
) -> Result<(Box<dyn Io>, bool), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    let Some(config) = tls else { return Ok((Box::new(tcp), false)) };
    let name = match sni {
        Some(s) => ServerName::try_from(s.to_owned()).map_err(|e| e.to_string())?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    let stream = crate::facade::tls_conn::TlsConn::connect(tcp, config.clone(), name)
        .await
        .map_err(|e| e.to_string())?;
    let resumed = stream.session().handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    Ok((Box::new(stream), resumed))
}

/// One connection's work order.
pub struct Job {
    /// The run's options.
    pub opts: Options,
    /// TLS client configuration, when TLS.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// The test(s): one, or the SET/GET pair of `--ratio`.
    pub mix: Vec<Test>,
    /// Seeds this connection's key generator.
    pub seed: u64,
    /// Requests to issue across all connections.
    pub limit: u64,
}

/// What one connection measured.
pub struct Measured {
    /// Request latencies in microseconds.
    pub latencies: Histogram<u64>,
    /// Errors seen.
    pub errors: Errors,
}

/// Runs one connection until the shared request count reaches the limit or time is up.
pub async fn load(job: Job, live: Arc<Live>, issued: Arc<AtomicU64>) -> Measured {
    let opts = &job.opts;
    let mut m = Measured { latencies: super::new_histogram(), errors: Errors::default() };
    let sni = opts.tls.as_ref().and_then(|t| t.sni.clone());
    let mut stream = match open(opts, job.tls.as_ref(), sni.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            m.errors.connect(e);
            live.errors.fetch_add(1, Ordering::Relaxed);
            return m;
        }
    };
    let mut keys = keygen(opts, job.seed);
    // Replies land in `buf[..filled]`; the buffer is zeroed once, not before every read.
    let (mut out, mut buf, mut filled) = (Vec::with_capacity(4096), vec![0u8; 16 * 1024], 0usize);
    let pipeline = opts.pipeline.max(1) as u64;
    let gap = opts.rate.map(|r| Duration::from_secs_f64(1.0 / r.max(1e-9)));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut window = Vec::new();
    while !live.stop.load(Ordering::Acquire) {
        let base = issued.fetch_add(pipeline, Ordering::Relaxed);
        if base >= job.limit {
            break;
        }
        let n = pipeline.min(job.limit - base);
        // On a schedule, latency counts from when the request *should* have gone out.
        let intended = match gap {
            Some(g) => {
                let at = start + g * u32::try_from(sent).unwrap_or(u32::MAX);
                let now = Instant::now();
                if at > now {
                    glommio::timer::sleep(at - now).await;
                }
                at
            }
            None => Instant::now(),
        };
        out.clear();
        for _ in 0..n {
            let test = pick(&job.mix, opts.ratio, &mut keys);
            workload::encode(test, &mut keys, opts.data_size, &mut out);
        }
        sent += n;
        if let Err(e) = stream.write_all(&out).await {
            m.errors.io(e.to_string());
            live.errors.fetch_add(1, Ordering::Relaxed);
            break;
        }
        // Replies are consumed from `pos`; the buffer is compacted once per batch, not per reply.
        // The clock is read once per read: replies that arrived together share their latency.
        let (mut got, mut pos, mut arrived) = (0, 0, None);
        while got < n {
            match workload::reply_len(&buf[pos..filled]) {
                Some(Ok((len, is_err))) => {
                    if is_err {
                        m.errors.reply(&buf[pos..pos + len]);
                        live.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    pos += len;
                    let us = *arrived.get_or_insert_with(|| {
                        u64::try_from(intended.elapsed().as_micros()).unwrap_or(u64::MAX).max(1)
                    });
                    let _ = m.latencies.record(us);
                    if opts.progress {
                        window.push(us);
                    }
                    got += 1;
                }
                Some(Err(())) => {
                    m.errors.io("the server's reply is not RESP".into());
                    return m;
                }
                None => {
                    buf.copy_within(pos..filled, 0);
                    filled -= pos;
                    pos = 0;
                    arrived = None;
                    // Grows only for a reply larger than what is free.
                    if buf.len() - filled < 16 * 1024 {
                        buf.resize(filled + 16 * 1024, 0);
                    }
                    match stream.read(&mut buf[filled..]).await {
                        Ok(0) | Err(_) => {
                            m.errors.io("connection closed by the server".into());
                            live.errors.fetch_add(1, Ordering::Relaxed);
                            return m;
                        }
                        Ok(k) => filled += k,
                    }
                }
            }
        }
        buf.copy_within(pos..filled, 0);
        filled -= pos;
        live.done.fetch_add(n, Ordering::Relaxed);
        if opts.progress && !window.is_empty() {
            if let Ok(mut w) = live.window.lock() {
                let h = w.get_or_insert_with(super::new_histogram);
                window.drain(..).for_each(|us| {
                    let _ = h.record(us);
                });
            }
        }
        if !opts.keepalive {
            match open(opts, job.tls.as_ref(), sni.as_deref()).await {
                Ok(s) => stream = s,
                Err(e) => {
                    m.errors.connect(e);
                    break;
                }
            }
        }
    }
    m
}

/// Connects and prepares the connection (AUTH, SELECT).
async fn open(
    opts: &Options,
    tls: Option<&Arc<rustls::ClientConfig>>,
    sni: Option<&str>,
) -> Result<Box<dyn Io>, String> {
    let (mut s, _) = connect(opts.addr, tls, sni).await?;
    let mut setup = Vec::new();
    let mut expect = 0;
    if let Some((user, pass)) = &opts.auth {
        let mut args = vec![b"AUTH".to_vec()];
        if let Some(u) = user {
            args.push(u.as_bytes().to_vec());
        }
        args.push(pass.as_bytes().to_vec());
        setup.extend(raw(&args));
        expect += 1;
    }
    if opts.dbnum != 0 {
        setup.extend(raw(&[b"SELECT".to_vec(), opts.dbnum.to_string().into_bytes()]));
        expect += 1;
    }
    if expect > 0 {
        s.write_all(&setup).await.map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let mut seen = 0;
        while seen < expect {
            match workload::reply_len(&buf) {
                Some(Ok((len, true))) => return Err(String::from_utf8_lossy(&buf[..len]).trim().to_owned()),
                Some(Ok((len, false))) => {
                    buf.drain(..len);
                    seen += 1;
                }
                Some(Err(())) => return Err("bad reply to AUTH/SELECT".into()),
                None => {
                    let mut chunk = [0u8; 1024];
                    let k = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
                    if k == 0 {
                        return Err("closed during AUTH/SELECT".into());
                    }
                    buf.extend_from_slice(&chunk[..k]);
                }
            }
        }
    }
    Ok(s)
}

/// A request as RESP: an array of bulk strings, which is what the reply encoder writes.
fn raw(args: &[Vec<u8>]) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    let request = crate::facade::Reply::Array(args.iter().map(crate::facade::Reply::bulk).collect());
    request.encode(false, &mut out);
    out.to_vec()
}

/// The test for the next request: the only one, or SET/GET by `--ratio`.
fn pick<'a>(mix: &'a [Test], ratio: Option<(u32, u32)>, keys: &mut workload::KeyGen) -> &'a Test {
    match (ratio, mix) {
        (Some((set, get)), [s, g, ..]) => {
            let total = u64::from(set + get).max(1);
            if keys.raw() % total < u64::from(set) {
                s
            } else {
                g
            }
        }
        _ => &mix[0],
    }
}

/// `--connect-rate`: how long the schedule waits for the first connection before it starts.
const FIRST_ALONE: Duration = Duration::from_secs(1);

/// How long a connection may take to connect and handshake (and, under `--connect-rate`, to
/// get its PONG as well).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects, handshakes, sends one PING, reads its PONG and closes. Returns whether the
/// handshake resumed a session.
async fn ping_and_close(
    addr: SocketAddr,
    tls: Option<&Arc<rustls::ClientConfig>>,
    sni: Option<&str>,
) -> Result<bool, String> {
    let (mut s, resumed) = connect_now(addr, tls, sni).await?;
    s.write_all(b"PING\r\n").await.map_err(|e| e.to_string())?;
    let mut b = [0u8; 7];
    s.read_exact(&mut b).await.map_err(|e| e.to_string())?;
    let _ = s.close().await;
    Ok(resumed)
}

/// `--connect-rate`: opens connections on a fixed schedule, each a handshake, one PING and a
/// close, until `total` or time is up. Returns the latency of each (connect to PONG), errors,
/// and how many handshakes resumed a session.
pub async fn connects(
    opts: Options,
    tls: Option<Arc<rustls::ClientConfig>>,
    live: Arc<Live>,
    rate: f64,
    total: u64,
) -> (Histogram<u64>, Errors, u64) {
    let gap = Duration::from_secs_f64(1.0 / rate.max(1e-9));
    let sni = opts.tls.as_ref().and_then(|t| t.sni.clone());
    let results = Arc::new(std::sync::Mutex::new((super::new_histogram(), Errors::default(), 0u64)));
    let open = |at: Instant| {
        let (tls, sni, results, live, addr) =
            (tls.clone(), sni.clone(), results.clone(), live.clone(), opts.addr);
        glommio::spawn_local(async move {
            // The timeout covers the connect too: a server that accepts and then says
            // nothing must not keep the run alive.
            let attempt = ping_and_close(addr, tls.as_ref(), sni.as_deref());
            let outcome = glommio::timer::timeout(CONNECT_TIMEOUT, async { Ok(attempt.await) })
                .await
                .unwrap_or_else(|_| Err("timed out".to_owned()));
            let Ok(mut r) = results.lock() else { return };
            match outcome {
                Ok(resumed) => {
                    let _ = r.0.record(u64::try_from(at.elapsed().as_micros()).unwrap_or(u64::MAX).max(1));
                    r.2 += u64::from(resumed);
                    live.done.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    r.1.connect(e);
                    live.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .detach()
    };
    let mut tasks = Vec::new();
    if total > 0 {
        // The schedule starts when the first connection is done (or after FIRST_ALONE). The
        // TLS stack's first handshake in a process does tens of milliseconds of one-time setup
        // (aws-lc seeds its random generator), and a schedule already running would start a
        // burst of connections behind it; with --tls-resume, the first connection also fills
        // the session cache, or every connection started before a ticket came back would be a
        // full handshake.
        let first = Box::pin(open(Instant::now()));
        let alone = Box::pin(glommio::timer::sleep(FIRST_ALONE));
        if let futures::future::Either::Right((_, first)) = futures::future::select(first, alone).await {
            tasks.push(first);
        }
    }
    let start = Instant::now();
    let mut i = 1u64;
    while i < total && !live.stop.load(Ordering::Acquire) {
        let at = start + gap * u32::try_from(i - 1).unwrap_or(u32::MAX);
        let now = Instant::now();
        if at > now {
            glommio::timer::sleep(at - now).await;
        }
        tasks.push(Box::pin(open(at)));
        i += 1;
    }
    for t in tasks {
        let _ = t.await;
    }
    let r = results.lock().map(|r| (r.0.clone(), r.1.clone(), r.2));
    r.unwrap_or_else(|_| (super::new_histogram(), Errors::default(), 0))
}
