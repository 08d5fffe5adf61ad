//! SLOWLOG, LATENCY and MONITOR against Debian's redis-server: the same requests leave the same
//! entries, events and lines (times, durations and ports apart), with keys on both shards so
//! that every core's part shows; plain TCP and TLS.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{Mode, Raw, RedisServer, Server, MODES};
use redis::Value;

/// A connection to the reference redis-server.
fn redis_conn(redis: &RedisServer) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap();
    let conn = client.get_connection().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    conn
}

fn query(c: &mut redis::Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    args[1..].iter().for_each(|a| {
        cmd.arg(*a);
    });
    cmd.query(c).unwrap_or_else(|e| Value::SimpleString(format!("error: {e}")))
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

fn string(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::VerbatimString { text, .. } => text.clone(),
        other => panic!("not a string: {other:?}"),
    }
}

fn array(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// This connection's address as the server sees it.
fn own_addr(c: &mut redis::Connection) -> String {
    let info: String = redis::cmd("CLIENT").arg("INFO").query(c).unwrap();
    let field = info.split(' ').find_map(|f| f.strip_prefix("addr=")).expect("an addr field");
    field.to_owned()
}

/// Runs the slow-log script on `c` (keys `a` and `b`, meant to be on different shards) and
/// returns what SLOWLOG showed: for every entry its arguments and client name, plus the
/// replies of the commands about the log itself. Checks what differs between servers itself:
/// ids newest first and consecutive, durations, times, the client's own address.
fn slowlog_script(c: &mut redis::Connection, a: &str, b: &str) -> Vec<String> {
    let mut seen = Vec::new();
    let me = own_addr(c);
    query(c, &["SLOWLOG", "RESET"]);
    query(c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    query(c, &["CLIENT", "SETNAME", "slow-tester"]);
    query(c, &["SET", a, "1"]);
    query(c, &["SET", b, "2"]);
    let many: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let list = format!("{a}-list");
    let mut rpush = vec!["RPUSH", list.as_str()];
    rpush.extend(many.iter().map(String::as_str));
    query(c, &rpush);
    let long = "x".repeat(200);
    query(c, &["SET", b, &long]);
    query(c, &["AUTH", "nobody", "secret"]);
    query(c, &["CONFIG", "SET", "masterauth", "hidden"]);
    query(c, &["MULTI"]);
    query(c, &["INCR", a]);
    query(c, &["GET", b]);
    query(c, &["EXEC"]);
    query(c, &["MGET", a, b]);
    seen.push(format!("len {}", int(&query(c, &["SLOWLOG", "LEN"]))));
    let all = query(c, &["SLOWLOG", "GET", "-1"]);
    let entries = array(&all);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let mut last_id = None;
    for e in entries {
        let fields = array(e);
        assert_eq!(fields.len(), 6, "{fields:?}");
        let id = int(&fields[0]);
        if let Some(last) = last_id {
            assert_eq!(id, last - 1, "ids newest first, one apart");
        }
        last_id = Some(id);
        assert!((now - int(&fields[1])).abs() < 60, "a recent time");
        assert!(int(&fields[2]) >= 0);
        assert_eq!(string(&fields[4]), me, "the client's own address");
        let args: Vec<String> = array(&fields[3]).iter().map(string).collect();
        seen.push(format!("{args:?} by {:?}", string(&fields[5])));
    }
    seen.push(format!("get 2: {}", array(&query(c, &["SLOWLOG", "GET", "2"])).len()));
    seen.push(format!("{:?}", query(c, &["SLOWLOG", "GET", "-2"])));
    seen.push(format!("{:?}", query(c, &["SLOWLOG", "GET", "x"])));
    seen.push(format!("{:?}", query(c, &["SLOWLOG", "GET", "1", "2"])));
    // At most slowlog-max-len entries are kept, the newest.
    query(c, &["CONFIG", "SET", "slowlog-max-len", "3"]);
    for i in 0..5 {
        query(c, &["SET", if i % 2 == 0 { a } else { b }, &i.to_string()]);
    }
    seen.push(format!("len after max-len 3: {}", int(&query(c, &["SLOWLOG", "LEN"]))));
    let newest = query(c, &["SLOWLOG", "GET"]);
    for e in array(&newest) {
        seen.push(format!("kept {:?}", array(&array(e)[3]).iter().map(string).collect::<Vec<_>>()));
    }
    // Off: nothing more is logged.
    query(c, &["CONFIG", "SET", "slowlog-log-slower-than", "-1"]);
    query(c, &["SLOWLOG", "RESET"]);
    query(c, &["SET", a, "x"]);
    seen.push(format!("len when off: {}", int(&query(c, &["SLOWLOG", "LEN"]))));
    query(c, &["CONFIG", "SET", "slowlog-log-slower-than", "10000"]);
    query(c, &["CONFIG", "SET", "slowlog-max-len", "128"]);
    query(c, &["CONFIG", "SET", "masterauth", ""]);
    seen
}

#[test]
fn slowlog_keeps_what_redis_keeps() {
    let redis = RedisServer::start();
    let theirs = slowlog_script(&mut redis_conn(&redis), "a", "b");
    let server = Server::start();
    let (a, b) = (common::key_on("slow", 0, 2), common::key_on("slow", 1, 2));
    for mode in MODES {
        let ours = slowlog_script(&mut server.conn(mode), &a, &b);
        let ours: Vec<String> = ours.iter().map(|l| l.replace(&a, "a").replace(&b, "b")).collect();
        assert_eq!(ours, theirs, "{mode:?}");
    }
    // A command some other core's shard ran names its client all the same.
    let mut c = server.conn_on_core(Mode::Tls, 0);
    let me = own_addr(&mut c);
    query(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "0"]);
    query(&mut c, &["SLOWLOG", "RESET"]);
    query(&mut c, &["CLIENT", "SETNAME", "far"]);
    query(&mut c, &["GET", &b]);
    let entries = query(&mut c, &["SLOWLOG", "GET", "-1"]);
    let get = array(&entries)
        .iter()
        .find(|e| array(&array(e)[3]).first().map(string).as_deref() == Some("GET"))
        .expect("the GET is logged");
    assert_eq!((string(&array(get)[4]), string(&array(get)[5])), (me, "far".to_owned()));
    query(&mut c, &["CONFIG", "SET", "slowlog-log-slower-than", "10000"]);
}

/// Bucket tops LATENCY HISTOGRAM can show, in microseconds: Redis walks its histogram
/// (1 ns..1 s, two significant digits) in powers of two from 1024 ns and names each step by the
/// highest value equivalent to it.
fn histogram_buckets() -> BTreeSet<i64> {
    (10..=31u32)
        .map(|k| {
            let level = 1u64 << k;
            let resolution = 1u64 << (k - 7);
            ((level + resolution - 1) / 1000) as i64
        })
        .collect()
}

/// What the latency monitor shows after a 30 ms DEBUG SLEEP with a 5 ms threshold.
fn latency_script(c: &mut redis::Connection) -> Vec<String> {
    let mut seen = Vec::new();
    query(c, &["LATENCY", "RESET"]);
    query(c, &["CONFIG", "SET", "latency-monitor-threshold", "0"]);
    let doctor = string(&query(c, &["LATENCY", "DOCTOR"]));
    seen.push(doctor.lines().next().unwrap_or_default().to_owned());
    query(c, &["CONFIG", "SET", "latency-monitor-threshold", "5"]);
    query(c, &["DEBUG", "SLEEP", "0.03"]);
    let latest = query(c, &["LATENCY", "LATEST"]);
    for e in array(&latest) {
        let f = array(e);
        assert!(int(&f[2]) >= 30 && int(&f[3]) >= 30, "{f:?}");
        seen.push(format!("latest {}", string(&f[0])));
    }
    let history = query(c, &["LATENCY", "HISTORY", "command"]);
    seen.push(format!("history samples {}", array(&history).len()));
    let graph = string(&query(c, &["LATENCY", "GRAPH", "command"]));
    let mut lines = graph.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("command - high ") && header.contains("(all time high "), "{graph}");
    seen.push(lines.next().unwrap_or_default().to_owned());
    seen.push(format!("{:?}", query(c, &["LATENCY", "GRAPH", "nosuch"])));
    let doctor = string(&query(c, &["LATENCY", "DOCTOR"]));
    let first = doctor.lines().nth(2).unwrap_or_default();
    seen.push(first.split(" (average").next().unwrap_or_default().to_owned());
    assert!(doctor.contains("- Check your Slow Log"), "{doctor}");
    seen.push(format!("reset {}", int(&query(c, &["LATENCY", "RESET", "COMMAND", "nosuch"]))));
    seen.push(format!("latest after reset {}", array(&query(c, &["LATENCY", "LATEST"])).len()));
    query(c, &["CONFIG", "SET", "latency-monitor-threshold", "0"]);
    // The command histograms.
    for _ in 0..20 {
        query(c, &["SET", "h", "v"]);
    }
    let buckets = histogram_buckets();
    let histogram = query(c, &["LATENCY", "HISTOGRAM", "set", "config|set", "nosuch"]);
    let pairs = array(&histogram);
    for pair in pairs.chunks(2) {
        let fields = array(&pair[1]);
        assert_eq!(string(&fields[0]), "calls");
        assert_eq!(string(&fields[2]), "histogram_usec");
        let mut last = 0;
        for bucket in array(&fields[3]).chunks(2) {
            assert!(buckets.contains(&int(&bucket[0])), "bucket {:?} is not one of Redis's", bucket[0]);
            assert!(int(&bucket[1]) > last, "cumulative counts grow");
            last = int(&bucket[1]);
        }
        assert_eq!(last, int(&fields[1]), "the last bucket counts every call");
        seen.push(format!("histogram of {}", string(&pair[0])));
    }
    seen.push(format!("{:?}", query(c, &["LATENCY", "NOSUCH"])));
    seen
}

#[test]
fn the_latency_monitor_reports_what_redis_reports() {
    let redis = RedisServer::with(&["--enable-debug-command", "local"]);
    let theirs = latency_script(&mut redis_conn(&redis));
    let server = Server::with(common::Opts::default().arg("enable-debug-command", "local"));
    for mode in MODES {
        assert_eq!(latency_script(&mut server.conn(mode)), theirs, "{mode:?}");
    }
}

/// A monitor's next line, its time and the client's port masked.
fn monitor_line(m: &mut Raw) -> String {
    let line = String::from_utf8(m.reply()).unwrap();
    let line = line.strip_prefix('+').and_then(|l| l.strip_suffix("\r\n")).expect("a status line");
    let (time, rest) = line.split_once(' ').expect("a time first");
    let (secs, micros) = time.split_once('.').expect("seconds.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{line}");
    match rest.split_once("] ") {
        Some((source, args)) => {
            let source = source.rsplit_once(':').map_or(source, |(addr, _)| addr);
            format!("{source}] {args}")
        }
        None => rest.to_owned(),
    }
}

/// Sends the monitored script from `c` and reads what monitor `m` saw, up to the ECHO ending
/// it.
fn monitor_script(m: &mut Raw, c: &mut Raw, a: &str, b: &str) -> Vec<String> {
    assert_eq!(m.request(&[b"MONITOR"]), b"+OK\r\n");
    let script: Vec<Vec<&str>> = vec![
        vec!["SET", a, "has \"quotes\" and\r\nnewlines"],
        vec!["GET", b],
        vec!["MSET", a, "1", b, "2"],
        vec!["SELECT", "2"],
        vec!["SET", a, "x"],
        vec!["SELECT", "0"],
        vec!["MULTI"],
        vec!["INCR", a],
        vec!["SELECT", "3"],
        vec!["GET", b],
        vec!["EXEC"],
        vec!["SELECT", "0"],
        vec!["EVAL", "redis.call('set', KEYS[1], 'lua'); return redis.call('get', KEYS[1])", "1", a],
        vec!["AUTH", "someone", "secret"],
        vec!["CONFIG", "GET", "maxmemory"],
        vec!["NOSUCHCOMMAND"],
        vec!["GET"],
        vec!["ECHO", "end"],
    ];
    for req in &script {
        let args: Vec<&[u8]> = req.iter().map(|a| a.as_bytes()).collect();
        c.request(&args);
    }
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let line = monitor_line(m);
        let end = line.ends_with("\"ECHO\" \"end\"");
        lines.push(line.replace(a, "a").replace(b, "b"));
        if end {
            break;
        }
    }
    lines
}

#[test]
fn monitor_shows_every_core_s_commands_as_redis_does() {
    let redis = RedisServer::start();
    let theirs = monitor_script(&mut redis.raw(), &mut redis.raw(), "a", "b");
    let server = Server::start();
    let (a, b) = (common::key_on("mon", 0, 2), common::key_on("mon", 1, 2));
    for mode in MODES {
        // The monitor on one core, the client on the other.
        let mut m = server.raw_on_core(mode, 0);
        let mut c = server.raw_on_core(mode, 1);
        assert_eq!(monitor_script(&mut m, &mut c, &a, &b), theirs, "{mode:?}");
        let list = String::from_utf8_lossy(&c.request(&[b"CLIENT", b"LIST"])).into_owned();
        assert!(list.contains("flags=O "), "{list}");
        // RESET ends it.
        assert_eq!(m.request(&[b"RESET"]), b"+RESET\r\n");
        assert_eq!(m.request(&[b"PING"]), b"+PONG\r\n");
    }

    // Two clients on two cores: each one's commands reach a monitor in its own order.
    let mut m = server.raw(Mode::Tls);
    assert_eq!(m.request(&[b"MONITOR"]), b"+OK\r\n");
    let mut clients = [server.raw_on_core(Mode::Plain, 0), server.raw_on_core(Mode::Tls, 1)];
    let n = 200;
    let mut batch: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for i in 0..n {
        for (who, out) in batch.iter_mut().enumerate() {
            let key = if i % 2 == 0 { &a } else { &b };
            out.extend(common::resp(&[b"SET", key.as_bytes(), format!("c{who}-{i}").as_bytes()]));
        }
    }
    for (c, req) in clients.iter_mut().zip(&batch) {
        c.send(req);
    }
    for c in &mut clients {
        for _ in 0..n {
            assert_eq!(c.reply(), b"+OK\r\n");
        }
    }
    let mut next = [0; 2];
    let deadline = Instant::now() + Duration::from_secs(20);
    while next != [n; 2] && Instant::now() < deadline {
        let line = monitor_line(&mut m);
        for (who, expected) in next.iter_mut().enumerate() {
            if line.contains(&format!("\"c{who}-")) {
                assert!(
                    line.ends_with(&format!("\"c{who}-{expected}\"")),
                    "client {who} out of order: {line}"
                );
                *expected += 1;
            }
        }
    }
    assert_eq!(next, [n; 2]);
}

#[test]
fn a_monitor_that_stops_reading_is_dropped_at_its_output_limit() {
    let server = Server::start();
    let mut admin = server.conn(Mode::Plain);
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("client-output-buffer-limit")
        .arg("normal 1mb 0 0")
        .query(&mut admin)
        .unwrap();
    let mut m = server.raw(Mode::Tls);
    assert_eq!(m.request(&[b"MONITOR"]), b"+OK\r\n");
    // Far more than the socket buffers take, and the monitor never reads: the lines pile up
    // in the server until the limit drops the monitor.
    let mut c = server.raw(Mode::Plain);
    let value = vec![b'v'; 8192];
    let mut dropped = false;
    for round in 0..200 {
        let mut req = Vec::new();
        for i in 0..50 {
            req.extend(common::resp(&[b"SET", format!("k{round}-{i}").as_bytes(), &value]));
        }
        c.send(&req);
        for _ in 0..50 {
            assert_eq!(c.reply(), b"+OK\r\n");
        }
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
        if !list.contains("flags=O") {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the monitor was never dropped");
    assert!(server.wait_log("overcoming of output buffer limits"));
}
