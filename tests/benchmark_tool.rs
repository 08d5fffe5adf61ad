//! `ferrokey-benchmark` against a live ferrokey (plain and TLS) and redis-server: the counts add
//! up, CSV and JSON parse, `--rate` keeps its schedule, `--connect-rate` resumes sessions with
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

/// `--rate` keeps to its schedule, and a stall shows as latency. Only what holds under any
/// load of the machine is asserted: the exact count, a run no shorter than its schedule (it
/// never sends early), and, against redis-server paused by `DEBUG SLEEP`, a worst latency at
/// least as long as the pause, because latency counts from each request's intended send time.
/// How closely the rate holds on a quiet machine is a benchmark figure (BENCHMARKS.md).
#[test]
fn rate_keeps_its_schedule_and_a_stall_shows_as_latency() {
    let server = Server::start();
    let json = json_file("rate");
    // 4 connections x 100 requests/s: 200 requests each, two seconds of schedule.
    let out = bench(
        port(&server, Mode::Tls),
        Mode::Tls,
        &["-c", "4", "--rate", "100", "-n", "800", "-t", "get", "-q", "--json", &json],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = read_json(&json);
    assert_eq!(doc["tests"][0]["requests"], 800);
    let seconds = doc["tests"][0]["seconds"].as_f64().unwrap();
    assert!(seconds >= 1.99, "800 requests at 4 x 100/s took {seconds} s: sent ahead of schedule");

    let reference = common::RedisServer::with(&["--enable-debug-command", "local"]);
    let json = json_file("stall");
    let run = std::thread::spawn({
        let json = json.clone();
        let port = reference.port;
        move || {
            bench(
                port,
                Mode::Plain,
                &["-c", "4", "--rate", "100", "-n", "800", "-t", "ping", "-q", "--json", &json],
            )
        }
    });
    // Once its connections are in (polled, bounded), pause the server for half a second.
    let mut admin = reference.raw();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let info = String::from_utf8_lossy(&admin.request(&[b"INFO", b"clients"])).into_owned();
        if info.contains("connected_clients:5\r\n") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the benchmark never connected: {info}");
        std::thread::yield_now();
    }
    assert_eq!(admin.request(&[b"DEBUG", b"SLEEP", b"0.5"]), b"+OK\r\n");
    let out = run.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = read_json(&json);
    assert_eq!(doc["tests"][0]["requests"], 800);
    let worst = doc["tests"][0]["latency_ms"]["max"].as_f64().unwrap();
    assert!(worst >= 450.0, "a 500 ms pause must show in the latency, the worst was {worst} ms");
}

/// `--connect-rate` opens exactly its connections, on schedule, and with `--tls-resume` the
/// later ones resume the first one's session.
#[test]
fn connect_rate_opens_on_schedule_and_resumes() {
    let server = Server::start();
    let json = json_file("connect");
    let out = bench(
        port(&server, Mode::Tls),
        Mode::Tls,
        &["--connect-rate", "50", "-n", "40", "--tls-resume", "-q", "--json", &json],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc = read_json(&json);
    assert_eq!(doc["tests"][0]["requests"], 40);
    let seconds = doc["tests"][0]["seconds"].as_f64().unwrap();
    assert!(seconds >= 39.0 / 50.0 - 0.01, "40 connections at 50/s in {seconds} s: ahead of schedule");
    // The first connection fills the session cache before the schedule starts (unless it takes
    // longer than a second), and every resumed handshake brings new tickets. On a quiet
    // machine all 39 later ones resume; a loaded one may start a few before the first ticket.
    let resumed = doc["tests"][0]["resumed"].as_u64().unwrap();
    assert!((20..=39).contains(&resumed), "{resumed} of 40 handshakes resumed");
}

#[test]
fn against_redis_server_too() {
    let redis = common::RedisServer::start();
    let port = redis.port;
    let svg = json_file("plot").replace(".json", ".svg");
    let out = bench(
        port,
        Mode::Plain,
        &["-n", "2000", "-c", "10", "-r", "100", "-P", "8", "-q", "--ratio", "1:3", "--plot", &svg],
    );
    drop(redis);
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

#[test]
fn a_certificate_naming_no_host_verifies_by_its_chain_as_redis_benchmark_does() {
    // Redis's utils/gen-test-certs.sh issues server certificates with no subjectAltName.
    let c = certs();
    let server = Server::with(
        common::Opts::default()
            .arg("tls-cert-file", &c.path("server-nosan.crt"))
            .arg("tls-key-file", &c.path("server-nosan.key")),
    );
    // The same flags to redis-benchmark and ours, trusting `ca`.
    let run = |tool: &str, ca: &str, extra: &[&str]| {
        Command::new(tool)
            .args(["-h", "127.0.0.1", "-p", &server.tls_port.to_string(), "--tls", "--cacert", &c.path(ca)])
            .args(["--cert", &c.path("client.crt"), "--key", &c.path("client.key")])
            .args(["-n", "200", "-t", "ping", "-q"])
            .args(extra)
            .output()
            .expect("redis-benchmark must be installed (apt-get install redis-tools)")
    };
    let ours = env!("CARGO_BIN_EXE_ferrokey-benchmark");
    let theirs = run("redis-benchmark", "ca.crt", &[]);
    assert!(String::from_utf8_lossy(&theirs.stdout).contains("requests per second"), "{theirs:?}");
    let mine = run(ours, "ca.crt", &[]);
    assert!(mine.status.success(), "{}", String::from_utf8_lossy(&mine.stderr));
    // Strict name checking is a flag away, and says what failed.
    let strict = run(ours, "ca.crt", &["--tls-verify-hostname"]);
    assert!(!strict.status.success());
    let why = String::from_utf8_lossy(&strict.stderr).into_owned() + &String::from_utf8_lossy(&strict.stdout);
    assert!(why.contains("NotValidForName") || why.contains("not valid for name"), "{why}");
    // The chain is still verified: a CA that did not sign it is refused.
    assert!(!run(ours, "untrusted-ca.crt", &[]).status.success());
}
