//! `ferrokey-benchmark`: redis-benchmark's flags, TLS done properly, and more. See the README.

use std::collections::BTreeMap;
use std::net::ToSocketAddrs;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ferrokey::benchmark::{self, workload, KeyPattern, Options, TlsOptions};

/// A TLS-native, thread-per-core load generator for Redis-compatible servers.
/// mimalloc, as in the server: per-core heaps, no arena locks or trims between executors.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(name = "ferrokey-benchmark", version, disable_help_flag = true)]
struct Args {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Server hostname.
    #[arg(short = 'h', default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(short = 'p', default_value_t = 6379)]
    port: u16,
    /// Password for AUTH.
    #[arg(short = 'a')]
    password: Option<String>,
    /// Username for AUTH (with -a).
    #[arg(long)]
    user: Option<String>,
    /// Parallel connections.
    #[arg(short = 'c', default_value_t = 50)]
    clients: usize,
    /// Total requests per test.
    #[arg(short = 'n', default_value_t = 100_000)]
    requests: u64,
    /// Value size in bytes for SET/GET and friends.
    #[arg(short = 'd', default_value_t = 3)]
    data_size: usize,
    /// Random keys: __rand_int__ becomes a number below this.
    #[arg(short = 'r', default_value_t = 0)]
    keyspace: u64,
    /// Pipeline this many requests per connection.
    #[arg(short = 'P', default_value_t = 1)]
    pipeline: usize,
    /// Comma-separated tests: ping,set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset.
    #[arg(short = 't')]
    tests: Option<String>,
    /// Keep connections alive (1) or reconnect after each request (0).
    #[arg(short = 'k', default_value_t = 1, value_parser = clap::value_parser!(u8).range(0..=1))]
    keepalive: u8,
    /// Executors (threads), each owning its share of the connections.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Quiet: one line per test.
    #[arg(short = 'q')]
    quiet: bool,
    /// Output in redis-benchmark's CSV layout.
    #[arg(long)]
    csv: bool,
    /// Loop: run the tests forever.
    #[arg(short = 'l')]
    looping: bool,
    /// Database to SELECT.
    #[arg(long, default_value_t = 0)]
    dbnum: u32,
    /// Connect with TLS.
    #[arg(long)]
    tls: bool,
    /// Client certificate (PEM).
    #[arg(long, requires = "key")]
    cert: Option<String>,
    /// Client private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<String>,
    /// CA certificate(s) to trust (PEM).
    #[arg(long)]
    cacert: Option<String>,
    /// Server name for SNI (and, with --tls-verify-hostname, to check; default: the address).
    #[arg(long)]
    sni: Option<String>,
    /// Also check that the server's certificate names the host (--sni, or the address). By
    /// default only its chain is verified against --cacert, as redis-benchmark does.
    #[arg(long)]
    tls_verify_hostname: bool,
    /// Do not verify the server's certificate.
    #[arg(long)]
    insecure: bool,
    /// Resume TLS sessions when reconnecting (-k 0, --connect-rate).
    #[arg(long)]
    tls_resume: bool,
    /// Run each test for this many seconds (-n, if given too, still bounds it).
    #[arg(long)]
    test_time: Option<f64>,
    /// A SET:GET mix instead of separate tests, e.g. 1:10.
    #[arg(long)]
    ratio: Option<String>,
    /// How __rand_int__ numbers are drawn: R (uniform), S (sequential), G (gaussian).
    #[arg(long, default_value = "R")]
    key_pattern: String,
    /// Value sizes drawn from MIN-MAX bytes (overrides -d).
    #[arg(long)]
    data_size_range: Option<String>,
    /// Requests per second per connection; latency counts from the intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// New connections per second (handshake, PING, close) instead of a request load.
    #[arg(long)]
    connect_rate: Option<f64>,
    /// Write the results as JSON to FILE.
    #[arg(long)]
    json: Option<String>,
    /// Write the latency percentile curve as an SVG to FILE.
    #[arg(long)]
    plot: Option<String>,
    /// A custom command to run instead of -t (e.g. SET key:__rand_int__ x).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// A usage error: message and exit code 2, as clap's own.
fn usage(msg: &str) -> ExitCode {
    eprintln!("ferrokey-benchmark: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let a = Args::parse();
    if let Some(flag) = a.command.first().filter(|c| c.starts_with('-')) {
        return usage(&format!("unknown flag '{flag}' (a custom command comes after the flags)"));
    }
    let addr = match (a.host.as_str(), a.port).to_socket_addrs().ok().and_then(|mut s| s.next()) {
        Some(addr) => addr,
        None => return usage(&format!("cannot resolve {}:{}", a.host, a.port)),
    };
    let key_pattern = match a.key_pattern.to_ascii_uppercase().as_str() {
        "R" => KeyPattern::Uniform,
        "S" => KeyPattern::Sequential,
        "G" => KeyPattern::Gaussian,
        other => return usage(&format!("--key-pattern must be R, S or G, not '{other}'")),
    };
    let data_size = match &a.data_size_range {
        None => (a.data_size, a.data_size),
        Some(r) => match r.split_once('-').and_then(|(l, h)| Some((l.parse().ok()?, h.parse().ok()?))) {
            Some((l, h)) if l <= h => (l, h),
            _ => return usage(&format!("--data-size-range must be MIN-MAX, not '{r}'")),
        },
    };
    let random = a.keyspace > 0;
    let ratio = match &a.ratio {
        None => None,
        Some(r) => match r.split_once(':').and_then(|(s, g)| Some((s.parse().ok()?, g.parse().ok()?))) {
            Some((s, g)) if s + g > 0 => Some((s, g)),
            _ => return usage(&format!("--ratio must be SET:GET, e.g. 1:10, not '{r}'")),
        },
    };
    let tests = if ratio.is_some() {
        vec![workload::named("set", random), workload::named("get", random)].into_iter().flatten().collect()
    } else if !a.command.is_empty() {
        vec![workload::custom(&a.command)]
    } else {
        let names: Vec<String> = match &a.tests {
            Some(t) => {
                t.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect()
            }
            None => workload::TESTS.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mut tests = Vec::new();
        for n in &names {
            match workload::named(n, random) {
                Some(t) => tests.push(t),
                None => return usage(&format!("unknown test '{n}' (known: {})", workload::TESTS.join(","))),
            }
        }
        tests
    };
    if a.clients == 0 || a.threads == 0 || a.pipeline == 0 {
        return usage("-c, --threads and -P must be at least 1");
    }
    if a.rate.is_some_and(|r| r <= 0.0) || a.connect_rate.is_some_and(|r| r <= 0.0) {
        return usage("--rate and --connect-rate must be positive");
    }
    let tls = a.tls.then(|| TlsOptions {
        cacert: a.cacert.clone(),
        cert: a.cert.clone().zip(a.key.clone()),
        sni: a.sni.clone(),
        insecure: a.insecure,
        verify_hostname: a.tls_verify_hostname,
        resume: a.tls_resume,
    });
    let opts = Options {
        addr,
        auth: a.password.clone().map(|p| (a.user.clone(), p)),
        clients: a.clients,
        requests: if a.test_time.is_some() && !std::env::args().any(|x| x == "-n") { 0 } else { a.requests },
        data_size,
        keyspace: a.keyspace,
        key_pattern,
        pipeline: a.pipeline,
        threads: a.threads.min(a.clients),
        dbnum: a.dbnum,
        test_time: a.test_time.map(Duration::from_secs_f64),
        rate: a.rate,
        connect_rate: a.connect_rate,
        keepalive: a.keepalive == 1,
        tests,
        ratio,
        tls,
        progress: !a.quiet && !a.csv,
    };
    let setup = format!(
        "{} parallel clients, {} bytes payload, keep alive: {}, {} threads, pipeline {}{}",
        a.clients,
        if data_size.0 == data_size.1 {
            data_size.0.to_string()
        } else {
            format!("{}-{}", data_size.0, data_size.1)
        },
        a.keepalive,
        opts.threads,
        a.pipeline,
        if a.tls { ", TLS" } else { "" }
    );
    loop {
        let report = match benchmark::run(&opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("ferrokey-benchmark: {e}");
                return ExitCode::FAILURE;
            }
        };
        if a.csv {
            print!("{}", report.csv());
        } else if a.quiet {
            print!("{}", report.quiet());
        } else {
            print!("{}", report.text(&setup));
        }
        if let Some(path) = &a.json {
            let mut s: BTreeMap<&str, String> = BTreeMap::new();
            s.insert("clients", a.clients.to_string());
            s.insert("pipeline", a.pipeline.to_string());
            s.insert("threads", opts.threads.to_string());
            s.insert("tls", a.tls.to_string());
            s.insert("data_size", format!("[{}, {}]", data_size.0, data_size.1));
            s.insert("server", benchmark::report::quote(&addr.to_string()));
            if let Err(e) = std::fs::write(path, report.json(&s)) {
                eprintln!("ferrokey-benchmark: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
        if let Some(path) = &a.plot {
            if let Err(e) = std::fs::write(path, benchmark::report::svg(&report)) {
                eprintln!("ferrokey-benchmark: {path}: {e}");
                return ExitCode::FAILURE;
            }
        }
        let failed = report.tests.iter().any(|t| t.errors.total() > 0);
        if !a.looping {
            return if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    }
}
