//! `ferrokey-benchmark`: a TLS-native, thread-per-core load generator for any Redis-compatible
//! server, built on the server's own stack (glommio executors, the facade's unbuffered rustls stream).
//!
//! Each `--threads` executor owns its share of the `-c` connections. A connection sends `-P`
//! requests, reads their replies, and records each request's latency in the executor's HDR
//! histogram; executors merge theirs at the end. With `--rate`, a connection sends on a fixed
//! schedule and latency counts from the *intended* send time, so a stalled server shows up as
//! latency rather than as fewer requests (no coordinated omission).

pub mod conn;
pub mod report;
pub mod workload;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub use report::{Report, TestReport};
use workload::{KeyGen, Test};

/// How `__rand_int__` numbers are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPattern {
    /// Uniformly over `0..-r` (`R`, the default).
    Uniform,
    /// 0, 1, 2, ... per connection, wrapping at `-r` (`S`).
    Sequential,
    /// Bunched around the middle of the range (`G`).
    Gaussian,
}

/// TLS settings of the client.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA file to trust (the system has none here: required unless `insecure`).
    pub cacert: Option<String>,
    /// Client certificate and key, for servers with `tls-auth-clients yes`.
    pub cert: Option<(String, String)>,
    /// Server name to send and verify (default: `localhost` for loopback).
    pub sni: Option<String>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Also check the certificate names the host (by default only the chain is verified, as
    /// redis-benchmark and hiredis do).
    pub verify_hostname: bool,
    /// Reuse sessions when reconnecting.
    pub resume: bool,
}

/// Everything one run needs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Server address.
    pub addr: SocketAddr,
    /// `AUTH` password (and `--user`).
    pub auth: Option<(Option<String>, String)>,
    /// Connections.
    pub clients: usize,
    /// Requests per test (ignored when `test_time` is set alone).
    pub requests: u64,
    /// Payload size range in bytes (`-d` or `--data-size-range`).
    pub data_size: (usize, usize),
    /// `-r`: keyspace size for `__rand_int__` (0: placeholders stay literal).
    pub keyspace: u64,
    /// How keys are drawn.
    pub key_pattern: KeyPattern,
    /// Requests in flight per connection.
    pub pipeline: usize,
    /// Executors.
    pub threads: usize,
    /// Database to SELECT.
    pub dbnum: u32,
    /// Run each test for this long (with `requests` as an upper bound if given).
    pub test_time: Option<Duration>,
    /// Requests per second per connection (None: as fast as replies come).
    pub rate: Option<f64>,
    /// New connections per second (handshake, PING, close) instead of a request load.
    pub connect_rate: Option<f64>,
    /// Keep connections open across requests (`-k 1`, the default).
    pub keepalive: bool,
    /// The tests, in order.
    pub tests: Vec<Test>,
    /// `--ratio set:get`: instead of tests in turn, a mix of SET and GET.
    pub ratio: Option<(u32, u32)>,
    /// TLS, when enabled.
    pub tls: Option<TlsOptions>,
    /// Print a progress line once a second.
    pub progress: bool,
}

/// Counters shared by every executor, read by the progress printer.
#[derive(Default)]
pub struct Live {
    /// Requests completed.
    pub done: AtomicU64,
    /// Error replies and failed connections.
    pub errors: AtomicU64,
    /// Latencies of the current second (microseconds), for the progress line.
    pub window: Mutex<Option<Histogram<u64>>>,
    /// Set when the run must stop (time is up).
    pub stop: AtomicBool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The TLS options are unusable (unreadable CA or certificate).
    #[error("tls: {0}")]
    Tls(String),
    /// An executor could not start.
    #[error("executor: {0}")]
    Executor(String),
    /// Not one connection could be made.
    #[error("could not connect to {0}: {1}")]
    Connect(SocketAddr, String),
}

/// Runs every test in turn; one report per test.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    let tls = match &opts.tls {
        Some(t) => Some(conn::client_config(t)?),
        None => None,
    };
    let mut report = Report::default();
    if let Some(rate) = opts.connect_rate {
        report.tests.push(run_connects(opts, tls.as_ref(), rate)?);
        return Ok(report);
    }
    let tests: Vec<Vec<Test>> = match opts.ratio {
        Some(_) => vec![opts.tests.clone()],
        None => opts.tests.iter().map(|t| vec![t.clone()]).collect(),
    };
    for mix in tests {
        report.tests.push(run_one(opts, tls.as_ref(), &mix)?);
    }
    Ok(report)
}

fn new_histogram() -> Histogram<u64> {
    // Microseconds up to an hour, 3 significant digits.
    Histogram::new_with_bounds(1, 3_600_000_000, 3)
        .unwrap_or_else(|_| Histogram::new(3).unwrap_or_else(|_| unreachable!()))
}

/// One test (or one `--ratio` mix) across every executor.
fn run_one(
    opts: &Options,
    tls: Option<&Arc<rustls::ClientConfig>>,
    mix: &[Test],
) -> Result<TestReport, BenchError> {
    let live = Arc::new(Live::default());
    let issued = Arc::new(AtomicU64::new(0));
    let limit = if opts.test_time.is_some() && opts.requests == 0 { u64::MAX } else { opts.requests };
    let start = Instant::now();
    let printer = opts.progress.then(|| report::progress(live.clone(), mix_name(mix)));
    let sampler = report::timeline(live.clone());
    let mut handles = Vec::new();
    for t in 0..opts.threads {
        let clients = opts.clients / opts.threads + usize::from(t < opts.clients % opts.threads);
        let (opts, tls, live, issued, mix) =
            (opts.clone(), tls.cloned(), live.clone(), issued.clone(), mix.to_vec());
        let h = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name(&format!("bench-{t}"))
            .io_memory(1 << 20)
            .spawn(move || async move {
                let mut tasks = Vec::new();
                for c in 0..clients {
                    let seed = (t as u64) << 32 | c as u64;
                    let job =
                        conn::Job { opts: opts.clone(), tls: tls.clone(), mix: mix.clone(), seed, limit };
                    tasks.push(glommio::spawn_local(conn::load(job, live.clone(), issued.clone())).detach());
                }
                let mut hist = new_histogram();
                let mut errors = report::Errors::default();
                for task in tasks {
                    if let Some(Some(r)) = task.await.map(Some) {
                        let _ = hist.add(&r.latencies);
                        errors.merge(&r.errors);
                    }
                }
                (hist, errors)
            })
            .map_err(|e| BenchError::Executor(e.to_string()))?;
        handles.push(h);
    }
    if let Some(limit) = opts.test_time {
        let stopper = live.clone();
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            stopper.stop.store(true, Ordering::Release);
        });
    }
    let mut hist = new_histogram();
    let mut errors = report::Errors::default();
    for h in handles {
        if let Ok((th, te)) = h.join() {
            let _ = hist.add(&th);
            errors.merge(&te);
        }
    }
    live.stop.store(true, Ordering::Release);
    if let Some(p) = printer {
        let _ = p.join();
    }
    let elapsed = start.elapsed();
    if hist.is_empty() && errors.total() > 0 && errors.connect > 0 {
        return Err(BenchError::Connect(opts.addr, errors.first.clone().unwrap_or_default()));
    }
    let mut report = TestReport::new(mix_name(mix), &hist, elapsed, errors, None);
    report.timeline = sampler.join().unwrap_or_default();
    Ok(report)
}

/// `--connect-rate`: connections opened at a fixed rate, each a handshake, a PING and a close.
fn run_connects(
    opts: &Options,
    tls: Option<&Arc<rustls::ClientConfig>>,
    rate: f64,
) -> Result<TestReport, BenchError> {
    let live = Arc::new(Live::default());
    let start = Instant::now();
    let total = if opts.test_time.is_some() && opts.requests == 0 { u64::MAX } else { opts.requests };
    let printer = opts.progress.then(|| report::progress(live.clone(), "CONNECT".into()));
    let sampler = report::timeline(live.clone());
    let (opts2, tls2, live2) = (opts.clone(), tls.cloned(), live.clone());
    let h = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name("bench-connect")
        .io_memory(1 << 20)
        .spawn(move || conn::connects(opts2, tls2, live2, rate, total))
        .map_err(|e| BenchError::Executor(e.to_string()))?;
    if let Some(limit) = opts.test_time {
        let stopper = live.clone();
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            stopper.stop.store(true, Ordering::Release);
        });
    }
    let (hist, errors, resumed) = h.join().map_err(|e| BenchError::Executor(format!("{e:?}")))?;
    live.stop.store(true, Ordering::Release);
    if let Some(p) = printer {
        let _ = p.join();
    }
    let mut report = TestReport::new("CONNECT".into(), &hist, start.elapsed(), errors, Some(resumed));
    report.timeline = sampler.join().unwrap_or_default();
    Ok(report)
}

fn mix_name(mix: &[Test]) -> String {
    mix.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join("+")
}

/// Seeds a key generator for one connection.
#[must_use]
pub fn keygen(opts: &Options, seed: u64) -> KeyGen {
    KeyGen::new(opts.key_pattern, opts.keyspace, seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995)
}
