//! `ferrokey-benchmark` against a live ferrokey (plain and TLS) and redis-server: the counts add
//! up, CSV and JSON parse, `--rate` holds its rate, `--connect-rate` resumes sessions with
//! `--tls-resume`, and bad flags exit 2. Every run is short and bounded.

mod common;

use std::process::{Command, Output};

use common::{certs, Mode, Server, MODES};

fn bench(server_port: u16, mode: Mode, args: &[&str]) -> Output {
    let c = certs();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrokey-benchmark"));
    cmd.args(["-h", "127.0.0.1", "-p", &server_port.to_string()]);
    if mode == Mode::Tls {
        cmd.args([
            "--tls",
            "--cacert",
            &c.path("ca.crt"),
            "--cert",
            &c.path("client.crt"),
            "--key",
            &c.path("client.key"),
        ]);
    }
    cmd.args(args).output().expect("running ferrokey-benchmark")
}

fn port(server: &Server, mode: Mode) -> u16 {
    server.addr(mode).port()
}

fn json_file(name: &str) -> String {
    std::env::temp_dir().join(format!("fkb-{}-{name}.json", std::process::id())).display().to_string()
}

fn read_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("--json writes JSON")
}

#[test]
fn counts_add_up_and_csv_and_json_parse() {
    let server = Server::start();
    for mode in MODES {
        let key = format!("{mode:?}:counter");
        let json = json_file(&format!("{mode:?}-count"));
        let out = bench(
            port(&server, mode),
            mode,
            &["-n", "3001", "-c", "7", "-P", "4", "--threads", "2", "-q", "--json", &json, "INCR", &key],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut c = server.conn(mode);
        let n: i64 = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
        assert_eq!(n, 3001, "exactly -n requests reach the server");
        let doc = read_json(&json);
        assert_eq!(doc["tests"][0]["requests"], 3001);
        assert_eq!(doc["tests"][0]["errors"]["total"], 0);
        assert!(doc["tests"][0]["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
        // CSV: redis-benchmark's header and one row per test.
        let out = bench(
            port(&server, mode),
            mode,
            &["-n", "2000", "-c", "5", "-r", "1000", "-t", "set,get,lrange_100", "--csv"],
        );
        assert!(out.status.success());
        let csv = String::from_utf8(out.stdout).unwrap();
        let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
        assert_eq!(rows[0][0], "\"test\"");
        assert_eq!(rows.len(), 4, "{csv}");
        for (row, name) in rows[1..].iter().zip(["SET", "GET", "LRANGE_100"]) {
            assert_eq!(row[0], format!("\"{name}\""));
            assert_eq!(row.len(), 8);
            let rps: f64 = row[1].trim_matches('"').parse().unwrap();
            assert!(rps > 0.0);
        }
    }
}

#[test]
fn rate_holds_and_connect_rate_resumes() {
    let server = Server::start();
    let json = json_file("rate");
    // 4 connections x 100 requests/s x 2 s = 800 requests.
    let out = bench(
        port(&server, Mode::Tls),
        Mode::Tls,
        &["-c", "4", "--rate", "100", "--test-time", "2", "-t", "get", "-q", "--json", &json],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = read_json(&json);
    let rps = doc["tests"][0]["rps"].as_f64().unwrap();
    assert!((360.0..=440.0).contains(&rps), "--rate 100 x 4 connections gave {rps} requests/s");
    // Each whole second's throughput, also held to the rate.
    let timeline = doc["tests"][0]["ops_per_second"].as_array().unwrap();
    assert!(!timeline.is_empty(), "{doc}");
    for ops in timeline {
        let ops = ops.as_f64().unwrap();
        assert!((340.0..=460.0).contains(&ops), "a second with {ops} requests: {timeline:?}");
    }
    let json = json_file("connect");
    let out = bench(
        port(&server, Mode::Tls),
        Mode::Tls,
        &["--connect-rate", "50", "-n", "40", "--tls-resume", "-q", "--json", &json],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = read_json(&json);
    assert_eq!(doc["tests"][0]["requests"], 40);
    let resumed = doc["tests"][0]["resumed"].as_u64().unwrap();
    // The first connection fills the session cache before the schedule starts, and every
    // resumed handshake brings new tickets: at 50/s only the first is a full handshake.
    assert_eq!(resumed, 39, "{resumed} of 40 handshakes resumed");
    let rps = doc["tests"][0]["rps"].as_f64().unwrap();
    assert!((40.0..=55.0).contains(&rps), "--connect-rate 50 gave {rps}/s");
}

#[test]
fn against_redis_server_too() {
    let port = common::free_port();
    let mut redis = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server must be installed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let svg = json_file("plot").replace(".json", ".svg");
    let out = bench(
        port,
        Mode::Plain,
        &["-n", "2000", "-c", "10", "-r", "100", "-P", "8", "-q", "--ratio", "1:3", "--plot", &svg],
    );
    let _ = redis.kill();
    let _ = redis.wait();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("SET+GET:"));
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(svg.matches("<polyline").count(), 2, "a percentile curve and a throughput line: {svg}");
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for args in
        [&["--bogus"][..], &["-t", "nosuch"], &["--key-pattern", "X"], &["--ratio", "x"], &["-k", "5"]]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-benchmark")).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
}

#[test]
fn runs_end_when_the_server_never_answers() {
    // A listener that never accepts: the kernel completes TCP handshakes into its backlog, and
    // TLS then waits forever for a ServerHello. Each attempt must give up (10 s), not hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let started = std::time::Instant::now();
    let out = bench(port, Mode::Tls, &["--connect-rate", "50", "-n", "3", "--json", &json_file("silent")]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    // Nothing succeeded: the run fails, and says why.
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("errors: 3 connect (first: timed out)"), "{stdout}");
    let json = read_json(&json_file("silent"));
    assert_eq!(json["tests"][0]["errors"]["connect"], 3, "{json}");
    // An ordinary run gives up the same way.
    let started = std::time::Instant::now();
    let out = bench(port, Mode::Tls, &["-n", "10", "-c", "2", "-t", "ping"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out"), "{stderr}");
    drop(silent);
}
