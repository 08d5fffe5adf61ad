//! The Prometheus endpoint (`metrics-port`): INFO's fields in the text exposition format,
//! under redis_exporter's names, plus the per-core series; plain and TLS (`metrics-tls`); and
//! Debian's Prometheus scraping it, its query API returning the series.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{certs, free_port, key_on, Mode, Opts, Server};

/// An HTTP/1.1 exchange on `stream`: the status line and the body.
fn exchange(stream: &mut dyn ReadWrite, request: &str) -> (String, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_owned(), body.to_owned())
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

fn get(port: u16, tls: bool, path: &str) -> (String, String) {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if tls {
        let config = common::tls_client_config(Some(("client.crt", "client.key")), "ca.crt");
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let conn = rustls::ClientConnection::new(config, name).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        exchange(&mut stream, &request)
    } else {
        let mut tcp = tcp;
        exchange(&mut tcp, &request)
    }
}

/// A server with the metrics endpoint on, plain or TLS.
fn server(tls: bool) -> (Server, u16) {
    let port = free_port();
    let opts = Opts::default()
        .arg("metrics-port", &port.to_string())
        .arg("metrics-tls", if tls { "yes" } else { "no" });
    (Server::with(opts), port)
}

/// Some traffic on both shards, an error, a TLS client; the connection stays open.
fn traffic(server: &Server) -> redis::Connection {
    let mut c = server.conn(Mode::Plain);
    for shard in [0, 1] {
        let key = key_on("m", shard, 2);
        let () = redis::cmd("SET").arg(&key).arg("v").query(&mut c).unwrap();
        let _: String = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
    }
    let _: redis::RedisResult<()> = redis::cmd("LPUSH").arg(key_on("m", 0, 2)).arg("x").query(&mut c);
    let _: String = redis::cmd("PING").query(&mut server.conn(Mode::Tls)).unwrap();
    c
}

fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn the_endpoint_serves_info_under_redis_exporter_names_plain_and_tls() {
    for tls in [false, true] {
        let (server, port) = server(tls);
        let _client = traffic(&server);
        let (head, body) = get(port, tls, "/metrics");
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(head.contains("Content-Type: text/plain; version=0.0.4"), "{head}");
        assert_eq!(sample(&body, "redis_up"), Some(1.0), "{body}");
        assert_eq!(sample(&body, "redis_commands_total{cmd=\"set\"}"), Some(2.0), "{body}");
        assert_eq!(sample(&body, "redis_errors_total{err=\"WRONGTYPE\"}"), Some(1.0), "{body}");
        assert_eq!(sample(&body, "redis_db_keys{db=\"db0\"}"), Some(2.0), "{body}");
        assert_eq!(sample(&body, "redis_db_keys{db=\"db15\"}"), Some(0.0), "{body}");
        assert!(sample(&body, "redis_connected_clients").is_some_and(|n| n >= 1.0), "{body}");
        assert!(sample(&body, "redis_memory_used_bytes").is_some_and(|n| n > 0.0), "{body}");
        assert!(body.contains("redis_commands_latencies_usec_bucket{cmd=\"set\",le=\"+Inf\"} 2"), "{body}");
        assert!(body.contains("redis_latency_percentiles_usec{cmd=\"get\",quantile=\"50\"}"), "{body}");
        assert!(body.contains("redis_instance_info{role=\"master\","), "{body}");
        // Both cores' own series: both shards ran commands, and the writer's core sent hops.
        for core in ["0", "1"] {
            let keys = format!("ferrokey_core_keys{{core=\"{core}\"}}");
            assert_eq!(sample(&body, &keys), Some(1.0), "{body}");
            assert!(
                sample(&body, &format!("ferrokey_core_gate_waits_total{{core=\"{core}\"}}")).is_some(),
                "{body}"
            );
        }
        let hops: f64 = ["0", "1"]
            .iter()
            .filter_map(|c| sample(&body, &format!("ferrokey_core_hops_sent_total{{core=\"{c}\"}}")))
            .sum();
        assert!(hops > 0.0, "{body}");
        assert!(sample(&body, "ferrokey_tls_handshakes_ok_total").is_some_and(|n| n >= 1.0), "{body}");
        // Every line is a comment or `name{labels} value`, and every family is typed once.
        for line in body.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
            let name = series.split('{').next().unwrap();
            assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{line}");
        }
        let (head, _) = get(port, tls, "/");
        assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    }
    // Garbage gets an error status and a closed connection, never a crash.
    let (server, port) = server(false);
    for (request, status) in [
        ("\u{0}\u{ff}garbage\r\n\r\n".to_owned(), "405"),
        ("POST /metrics HTTP/1.1\r\n\r\n".to_owned(), "405"),
        ("GET /metrics HTTP/1.1\r\nX: ".to_owned() + &"y".repeat(10_000), "431"),
    ] {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (head, _) = exchange(&mut tcp, &request);
        // The server closes with the oversized head partly unread, so the kernel may reset the
        // connection before the client reads the answer.
        let reset = status == "431" && head.is_empty();
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")) || reset, "{request:?}: {head}");
    }
    let _: String = redis::cmd("PING").query(&mut server.conn(Mode::Plain)).unwrap();
}

/// Runs Debian's Prometheus scraping `targets` (job name, port, TLS), answering on its own port.
fn prometheus(dir: &Path, targets: &[(&str, u16, bool)]) -> (Child, u16) {
    let c = certs();
    let mut config = String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
    for (job, port, tls) in targets {
        config.push_str(&format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ));
        if *tls {
            config.push_str(&format!(
                "    scheme: https\n    tls_config:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
                c.path("ca.crt"),
                c.path("client.crt"),
                c.path("client.key")
            ));
        }
    }
    let file = dir.join("prometheus.yml");
    std::fs::write(&file, config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", file.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's prometheus (apt-get install prometheus; scripts/test.sh installs it)");
    (child, port)
}

/// Asks Prometheus's query API for `query` until it returns a series (bounded); the body.
fn query_until_found(port: u16, query: &str) -> String {
    let encoded: String = query
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(tcp) = TcpStream::connect(("127.0.0.1", port)) {
            tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut tcp = tcp;
            let request = format!(
                "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
            );
            let (_, body) = exchange(&mut tcp, &request);
            if body.contains("\"status\":\"success\"") && body.contains("\"value\":[") {
                return body;
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never returned {query}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A directory removed with it.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed with it.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_ferrokey_plain_and_tls() {
    let (plain, plain_port) = server(false);
    let (tls, tls_port) = server(true);
    let _clients = (traffic(&plain), traffic(&tls));
    let dir = TempDir(std::env::temp_dir().join(format!("ferrokey-prometheus-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let (child, port) = prometheus(&dir.0, &[("plain", plain_port, false), ("tls", tls_port, true)]);
    let _prometheus = Killed(child);
    for job in ["plain", "tls"] {
        let up = query_until_found(port, &format!("up{{job=\"{job}\"}} == 1"));
        assert!(up.contains("\"1\"]"), "{up}");
        let sets = query_until_found(port, &format!("redis_commands_total{{job=\"{job}\",cmd=\"set\"}}"));
        assert!(sets.contains("\"2\"]"), "{sets}");
        let hops =
            query_until_found(port, &format!("sum(ferrokey_core_hops_sent_total{{job=\"{job}\"}}) > 0"));
        assert!(hops.contains("\"value\":["), "{hops}");
        let latency = query_until_found(
            port,
            &format!("redis_commands_latencies_usec_count{{job=\"{job}\",cmd=\"get\"}}"),
        );
        assert!(latency.contains("\"2\"]"), "{latency}");
    }
}

#[test]
fn a_metrics_port_that_clashes_or_tls_without_a_tls_port_is_refused_at_startup() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, log) = common::start_refused(&["--metrics-port", &port]);
    assert_eq!(code, Some(1), "{log}");
    let (code, log) =
        common::start_refused(&["--metrics-port", &free_port().to_string(), "--metrics-tls", "yes"]);
    assert_eq!(code, Some(1), "{log}");
    assert!(log.contains("metrics-tls yes needs"), "{log}");
}
