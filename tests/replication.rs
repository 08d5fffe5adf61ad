//! Replication with real components: Debian's redis-server as a replica of ferrokey (plain and
//! TLS), redis-cli's --rdb and --replica modes, partial resyncs after a dropped link, and links
//! that misbehave.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::dataset::{connect_redis, populate_with_dbs, snapshot_with_ttls, TempDir};
use common::replication::{
    eventually, in_sync, info, redis_primary, redis_replica, tls_replica_opts, try_info,
};
use common::{certs, read_reply, resp, Mode, Opts, Server};
use redis::Connection;

/// A primary's options: diskless syncs (Redis's default) without Redis's 5 s wait for more
/// replicas, which would only slow the tests.
fn primary_opts() -> Opts {
    Opts::default().arg("repl-diskless-sync-delay", "0")
}

/// The two datasets hold the same keys and values; TTLs agree within 10 s (read at different
/// moments).
fn assert_same(primary: &mut Connection, replica: &mut Connection) {
    let (p, r) = (snapshot_with_ttls(primary), snapshot_with_ttls(replica));
    assert_eq!(p.len(), r.len(), "key counts differ");
    for (a, b) in p.iter().zip(&r) {
        assert_eq!((&a.0, &a.1, &a.2), (&b.0, &b.1, &b.2));
        assert_eq!(a.3 < 0, b.3 < 0, "{}: TTL {} against {}", a.1, a.3, b.3);
        assert!((a.3 - b.3).abs() < 10_000, "{}: TTL {} against {}", a.1, a.3, b.3);
    }
}

/// `n` writes of every kind over keys on both shards, pipelined raw (errors are replies too):
/// cross-shard MULTI/EXEC, MSET, RENAME and LMOVE, expiries, SPOP, INCRBYFLOAT, blocking pops,
/// another database.
fn mixed_writes(server: &Server, mode: Mode, n: usize, seed: u64) {
    mixed_writes_on(server.raw(mode), n, seed);
}

fn mixed_writes_on(mut raw: common::Raw, n: usize, seed: u64) {
    let mut rng = seed;
    let mut next = move |m: u64| {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (rng >> 33) % m
    };
    let mut done = 0;
    while done < n {
        let mut batch = Vec::new();
        let mut replies = 0;
        for _ in 0..500 {
            let (i, j, r) = (next(300), next(300), next(1000));
            let (i, j, r) = (i.to_string(), j.to_string(), r.to_string());
            let k = |p: &str, x: &str| format!("{p}:{x}");
            let cmds: Vec<Vec<String>> = match next(20) {
                0 => vec![vec!["SET".into(), k("s", &i), r.clone(), "EX".into(), "1000".into()]],
                1 => vec![vec!["INCR".into(), k("c", &i)]],
                2 => vec![vec!["RPUSH".into(), k("l", &i), r.clone(), "y".into()]],
                3 => vec![vec!["LPOP".into(), k("l", &i)]],
                4 => vec![vec!["SADD".into(), k("st", &i), r.clone(), j.clone()]],
                5 => vec![vec!["SPOP".into(), k("st", &i)]],
                6 => vec![vec!["HSET".into(), k("h", &i), k("f", &r), r.clone()]],
                7 => vec![vec!["HINCRBYFLOAT".into(), k("h", &i), "fl".into(), "1.5".into()]],
                8 => vec![vec!["ZADD".into(), k("z", &i), r.clone(), k("m", &j)]],
                9 => vec![vec!["ZINCRBY".into(), k("z", &i), "2".into(), k("m", &j)]],
                10 => vec![vec!["EXPIRE".into(), k("s", &i), "500".into()]],
                11 => vec![vec!["DEL".into(), k("s", &i), k("c", &j)]],
                12 => vec![vec!["MSET".into(), k("a", &i), r.clone(), k("a", &j), i.clone()]],
                13 => vec![vec!["INCRBYFLOAT".into(), k("fl", &i), "0.25".into()]],
                14 => vec![vec!["RENAME".into(), k("s", &i), k("s", &j)]],
                15 => vec![
                    vec!["MULTI".into()],
                    vec!["SET".into(), k("t", &i), r.clone()],
                    vec!["INCR".into(), k("c", &j)],
                    vec!["LMOVE".into(), k("l", &i), k("l", &j), "LEFT".into(), "RIGHT".into()],
                    vec!["EXEC".into()],
                ],
                16 => vec![
                    vec!["SELECT".into(), "3".into()],
                    vec!["SET".into(), k("x", &i), r.clone()],
                    vec!["SELECT".into(), "0".into()],
                ],
                17 => vec![vec!["BLPOP".into(), k("l", &i), "0.01".into()]],
                18 => vec![vec!["SUNIONSTORE".into(), k("st", &j), k("st", &i), k("st", &j)]],
                _ => vec![vec!["ZPOPMIN".into(), k("z", &i)]],
            };
            for c in &cmds {
                let args: Vec<&[u8]> = c.iter().map(|a| a.as_bytes()).collect();
                batch.extend(resp(&args));
                replies += 1;
            }
            done += 1;
        }
        raw.send(&batch);
        for _ in 0..replies {
            read_reply(&mut raw.inner);
        }
    }
}

#[test]
fn a_redis_server_replica_follows_ferrokey_plain_and_tls() {
    for mode in [Mode::Plain, Mode::Tls] {
        // Plain with the dump file in between, TLS diskless.
        let diskless = if mode == Mode::Tls { "yes" } else { "no" };
        let primary = Server::with(primary_opts().arg("repl-diskless-sync", diskless));
        let mut p = primary.conn(Mode::Plain);
        populate_with_dbs(&mut p);
        mixed_writes(&primary, mode, 2_000, 1);
        let replica = redis_replica(&primary, mode);
        let mut r = common::dataset::connect_redis(&replica);
        in_sync(&mut p, &mut r);
        // Writes while it follows the stream.
        mixed_writes(&primary, mode, 100_000, 2);
        in_sync(&mut p, &mut r);
        assert_same(&mut p, &mut r);
        assert_eq!(info(&mut p, "replication", "connected_slaves"), "1");
        let line = info(&mut p, "replication", "slave0");
        assert!(line.contains(&format!("port={}", replica.port)) && line.contains("state=online"), "{line}");
        assert_eq!(info(&mut p, "stats", "sync_full"), "1");
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut p).unwrap();
        assert_eq!(role[0], redis::Value::BulkString(b"master".to_vec()));
    }
}

#[test]
fn a_dropped_replica_link_resumes_with_a_partial_resync() {
    let primary = Server::with(primary_opts().arg("min-replicas-to-write", "1"));
    let mut p = primary.conn(Mode::Plain);
    let refused = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut p).unwrap_err();
    assert_eq!(refused.code(), Some("NOREPLICAS"), "{refused}");
    let () = redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg("0").query(&mut p).unwrap();
    mixed_writes(&primary, Mode::Plain, 1_000, 3);
    let replica = redis_replica(&primary, Mode::Tls);
    let mut r = common::dataset::connect_redis(&replica);
    in_sync(&mut p, &mut r);
    let () = redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg("1").query(&mut p).unwrap();
    let () = redis::cmd("SET").arg("k").arg("v").query(&mut p).unwrap();
    // WAIT: the replica acknowledges the write; a second replica never comes.
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(10_000).query(&mut p).unwrap();
    assert_eq!(acked, 1);
    let started = Instant::now();
    let acked: i64 = redis::cmd("WAIT").arg(2).arg(200).query(&mut p).unwrap();
    assert_eq!(acked, 1);
    assert!(started.elapsed() >= Duration::from_millis(200));
    let v: String = redis::cmd("GET").arg("k").query(&mut r).unwrap();
    assert_eq!(v, "v");
    let () = redis::cmd("CONFIG").arg("SET").arg("min-replicas-to-write").arg("0").query(&mut p).unwrap();
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica").query(&mut p).unwrap();
    assert_eq!(killed, 1);
    mixed_writes(&primary, Mode::Plain, 2_000, 4);
    eventually("the partial resync", || info(&mut p, "stats", "sync_partial_ok") == "1");
    in_sync(&mut p, &mut r);
    assert_same(&mut p, &mut r);
    assert_eq!(info(&mut p, "stats", "sync_full"), "1", "the link resumed without a full sync");
    assert!(primary.wait_log("Partial resynchronization request from replica accepted"));
}

#[test]
fn redis_cli_downloads_a_snapshot_and_follows_the_stream_over_tls() {
    let primary = Server::with(primary_opts());
    let mut p = primary.conn(Mode::Plain);
    populate_with_dbs(&mut p);
    let dir = TempDir::new("repl-rdb");
    let file = dir.file("dump.rdb");
    let mut args = certs().tool_args();
    args.extend(["-p".into(), primary.tls_port.to_string(), "--rdb".into(), file.display().to_string()]);
    let out = Command::new("redis-cli").args(&args).output().expect("redis-cli is installed");
    assert!(out.status.success(), "redis-cli --rdb: {}", String::from_utf8_lossy(&out.stderr));
    let check = Command::new("redis-check-rdb").arg(&file).output().expect("redis-check-rdb is installed");
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && text.contains("RDB looks OK"), "redis-check-rdb: {text}");

    // --replica: the snapshot is skipped, then every write is printed as it happens.
    let mut args = certs().tool_args();
    args.extend(["-p".into(), primary.tls_port.to_string(), "--replica".into()]);
    let mut cli =
        Command::new("redis-cli").args(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let out = cli.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    let mut err = BufReader::new(cli.stderr.take().unwrap()).lines();
    let synced = err.by_ref().map_while(Result::ok).take(10).any(|l| l.contains("SYNC done"));
    assert!(synced, "redis-cli --replica did not finish its sync");
    let () = redis::cmd("SET").arg("watched").arg("value").query(&mut p).unwrap();
    let mut seen = false;
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        if line.contains("\"SET\",\"watched\",\"value\"") {
            seen = true;
            break;
        }
    }
    let _ = cli.kill();
    let _ = cli.wait();
    assert!(seen, "redis-cli --replica did not print the write");
}

#[test]
fn a_replica_that_stops_reading_is_cut_off_at_its_output_limit() {
    let primary = Server::with(primary_opts().arg("client-output-buffer-limit", "replica 1mb 0 0"));
    let mut p = primary.conn(Mode::Plain);
    let mut link = primary.raw(Mode::Plain);
    link.send(&resp(&[b"PSYNC", b"?", b"-1"]));
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        std::io::Read::read_exact(&mut link.inner, &mut byte).unwrap();
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"+FULLRESYNC "), "{}", String::from_utf8_lossy(&head));
    // The link never reads again; 40 MB of writes pass its 1 MB limit, whatever the kernel's
    // socket buffers (up to ~10 MB on loopback) take off it first.
    let value = "v".repeat(10_000);
    for i in 0..4_000 {
        let () = redis::cmd("SET").arg(format!("big:{i}")).arg(&value).query(&mut p).unwrap();
    }
    assert!(primary.wait_log("overcoming of output buffer limits"));
    eventually("the replica to be dropped", || info(&mut p, "replication", "connected_slaves") == "0");
    let held: u64 = info(&mut p, "memory", "mem_total_replication_buffers").parse().unwrap();
    assert!(held <= 2 << 20, "the buffer kept {held} bytes for a dropped replica");
    // Garbage on a link ends that link only.
    let mut bad = primary.raw(Mode::Tls);
    bad.send(&resp(&[b"PSYNC", b"?", b"-1"]));
    bad.send(b"*3\r\n$8\r\nREPLCONF\r\n$3\r\nACK\r\n$-7\r\n\x00\xff garbage");
    let () = redis::cmd("SET").arg("after").arg("1").query(&mut p).unwrap();
    let v: String = redis::cmd("GET").arg("after").query(&mut p).unwrap();
    assert_eq!(v, "1");
}

/// A ferrokey replica whose link is TLS, presenting the client certificate (the server's is
/// for serving only).

#[test]
fn ferrokey_follows_a_redis_server_primary_plain_and_tls() {
    for mode in [Mode::Plain, Mode::Tls] {
        let (primary, tls_port) = redis_primary();
        let mut p = common::dataset::connect_redis(&primary);
        populate_with_dbs(&mut p);
        mixed_writes_on(primary.raw(), 2_000, 5);
        let opts = match mode {
            Mode::Plain => Opts::default(),
            Mode::Tls => tls_replica_opts(),
        };
        let replica = Server::with(opts);
        let mut r = replica.conn(Mode::Plain);
        let port = if mode == Mode::Tls { tls_port } else { primary.port };
        let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(port).query(&mut r).unwrap();
        in_sync(&mut p, &mut r);
        mixed_writes_on(primary.raw(), 50_000, 6);
        in_sync(&mut p, &mut r);
        assert_same(&mut p, &mut r);
        let refused = redis::cmd("SET").arg("k").arg("v").query::<()>(&mut r).unwrap_err();
        assert_eq!(refused.code(), Some("READONLY"), "{refused}");
        let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut r).unwrap();
        assert_eq!(role[0], redis::Value::BulkString(b"slave".to_vec()));
        assert_eq!(role[3], redis::Value::BulkString(b"connected".to_vec()));
        // The primary sees the port that works for the link's transport.
        let line = info(&mut p, "replication", "slave0");
        let announced = if mode == Mode::Tls { replica.tls_port } else { replica.port };
        assert!(line.contains(&format!("port={announced}")), "{line}");
    }
}

#[test]
fn a_ferrokey_replica_resumes_partially_and_keeps_the_history_when_promoted() {
    let primary = Server::with(primary_opts());
    let mut p = primary.conn(Mode::Plain);
    mixed_writes(&primary, Mode::Plain, 2_000, 7);
    let replica = Server::with(tls_replica_opts().arg("replica-announce-ip", "127.0.0.9"));
    let mut r = replica.conn(Mode::Plain);
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.tls_port).query(&mut r).unwrap();
    in_sync(&mut p, &mut r);
    // The primary shows the address the replica announces, and its TLS port (the link's).
    let line = info(&mut p, "replication", "slave0");
    assert!(line.starts_with(&format!("ip=127.0.0.9,port={},state=online", replica.tls_port)), "{line}");
    mixed_writes(&primary, Mode::Tls, 5_000, 8);
    in_sync(&mut p, &mut r);
    assert_same(&mut p, &mut r);
    // The stream's last SELECT is 3 when the link drops: after +CONTINUE, which names no
    // database, the next write still belongs to database 3.
    let mut in3 = primary.conn(Mode::Plain);
    let () = redis::cmd("SELECT").arg(3).query(&mut in3).unwrap();
    let () = redis::cmd("SET").arg("before-drop").arg("3").query(&mut in3).unwrap();
    in_sync(&mut p, &mut r);
    let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica").query(&mut p).unwrap();
    assert_eq!(killed, 1);
    let () = redis::cmd("SET").arg("after-drop").arg("3").query(&mut in3).unwrap();
    mixed_writes(&primary, Mode::Plain, 2_000, 9);
    eventually("the partial resync", || info(&mut p, "stats", "sync_partial_ok") == "1");
    in_sync(&mut p, &mut r);
    assert_same(&mut p, &mut r);
    assert_eq!(info(&mut p, "stats", "sync_full"), "1");
    assert!(replica.wait_log("Successful partial resynchronization with master"));
    // CLIENT PAUSE WRITE on the replica holds the primary's stream there too (as Redis's).
    let () = redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query(&mut r).unwrap();
    let () = redis::cmd("SET").arg("while-paused").arg("1").query(&mut p).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(300).query(&mut p).unwrap();
    assert_eq!(acked, 0, "a paused replica applied the stream");
    let () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut r).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(10_000).query(&mut p).unwrap();
    assert_eq!(acked, 1);
    // Promotion keeps the data, and the primary's history as the previous one.
    let history = info(&mut p, "replication", "master_replid");
    let () = redis::cmd("REPLICAOF").arg("NO").arg("ONE").query(&mut r).unwrap();
    assert_eq!(info(&mut r, "replication", "master_replid2"), history);
    assert_eq!(info(&mut r, "replication", "role"), "master");
    let () = redis::cmd("SET").arg("after-promotion").arg("1").query(&mut r).unwrap();
    let v: String = redis::cmd("GET").arg("after-promotion").query(&mut r).unwrap();
    assert_eq!(v, "1");
}

/// Debian's redis-sentinel monitoring `master_port` (TLS) with quorum 1; a plain port for the
/// test's questions. Killed on drop.
struct Sentinel {
    child: std::process::Child,
    port: u16,
    _dir: TempDir,
}

impl Sentinel {
    fn start(master_tls_port: u16) -> Sentinel {
        let c = certs();
        let dir = TempDir::new("sentinel");
        let (port, tls_port) = (common::free_port(), common::free_port());
        let conf = format!(
            "port {port}\nbind 127.0.0.1\ntls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\n\
             tls-client-cert-file {}\ntls-client-key-file {}\ntls-ca-cert-file {}\ntls-replication yes\n\
             dir {}\nsentinel monitor mymaster 127.0.0.1 {master_tls_port} 1\n\
             sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 10000\n\
             sentinel parallel-syncs mymaster 1\n",
            c.path("server.crt"),
            c.path("server.key"),
            c.path("client.crt"),
            c.path("client.key"),
            c.path("ca.crt"),
            dir.path(),
        );
        let file = dir.file("sentinel.conf");
        std::fs::write(&file, conf).unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&file)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-sentinel must be installed (apt-get install redis-sentinel)");
        let sentinel = Sentinel { child, port, _dir: dir };
        eventually("sentinel to answer", || sentinel.conn().is_some());
        sentinel
    }

    fn conn(&self) -> Option<Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).ok()?;
        client.get_connection().ok()
    }

    /// The primary's port, as Sentinel gives it to clients.
    fn master_port(&self) -> u16 {
        let Some(mut c) = self.conn() else { return 0 };
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg("mymaster")
            .query(&mut c)
            .unwrap_or_default();
        addr.get(1).and_then(|p| p.parse().ok()).unwrap_or(0)
    }

    fn replicas(&self) -> usize {
        let Some(mut c) = self.conn() else { return 0 };
        let list: Vec<redis::Value> =
            redis::cmd("SENTINEL").arg("replicas").arg("mymaster").query(&mut c).unwrap_or_default();
        list.len()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn sentinel_fails_over_a_ferrokey_primary_and_no_acknowledged_write_is_lost() {
    let primary = Server::with(primary_opts());
    let mut p = primary.conn(Mode::Plain);
    let replica_opts = || {
        let mut o = tls_replica_opts();
        o.extra.extend(["--repl-diskless-sync-delay".into(), "0".into()]);
        o
    };
    let replicas = [Server::with(replica_opts()), Server::with(replica_opts())];
    let mut conns: Vec<Connection> = replicas.iter().map(|r| r.conn(Mode::Plain)).collect();
    for c in &mut conns {
        let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.tls_port).query(c).unwrap();
    }
    for c in &mut conns {
        in_sync(&mut p, c);
    }
    let sentinel = Sentinel::start(primary.tls_port);
    eventually("sentinel to find both replicas", || sentinel.replicas() == 2);
    // Writes acknowledged by a replica (WAIT 1) must survive the failover.
    let mut acked = Vec::new();
    for i in 0..300 {
        let key = format!("acked:{i}");
        let () = redis::cmd("SET").arg(&key).arg(i).query(&mut p).unwrap();
        let n: i64 = redis::cmd("WAIT").arg(1).arg(1000).query(&mut p).unwrap();
        if n >= 1 {
            acked.push(key);
        }
    }
    assert!(acked.len() > 250, "only {} writes were acknowledged", acked.len());
    let pid = primary.pid().to_string();
    assert!(Command::new("kill").args(["-9", &pid]).status().unwrap().success());
    eventually("sentinel to promote a replica", || {
        let port = sentinel.master_port();
        port != 0 && port != primary.tls_port
    });
    let new_port = sentinel.master_port();
    let promoted = replicas.iter().position(|r| r.tls_port == new_port).expect("a replica was promoted");
    let other = 1 - promoted;
    // Sentinel's reconfiguration kills the clients of both replicas (CLIENT KILL TYPE normal,
    // at a moment of its choosing): ask on new connections, and ask again when one is killed.
    let field = |server: &Server, field: &str| {
        let mut c = server.redis_client(Mode::Plain).get_connection().ok()?;
        try_info(&mut c, "replication", field)
    };
    eventually("the promoted replica to be a primary", || {
        field(&replicas[promoted], "role").is_some_and(|r| r == "master")
    });
    eventually("the other replica to follow the new primary", || {
        field(&replicas[other], "master_port").is_some_and(|p| p == new_port.to_string())
            && field(&replicas[other], "master_link_status").is_some_and(|s| s == "up")
    });
    let mut m = replicas[promoted].conn(Mode::Plain);
    let mut o = replicas[other].conn(Mode::Plain);
    for key in &acked {
        let v: Option<String> = redis::cmd("GET").arg(key).query(&mut m).unwrap();
        assert!(v.is_some(), "{key} was acknowledged by WAIT 1 and is lost");
    }
    let () = redis::cmd("SET").arg("after-failover").arg("yes").query(&mut m).unwrap();
    in_sync(&mut m, &mut o);
    assert_same(&mut m, &mut o);
    assert_eq!(info(&mut m, "stats", "sync_full"), "0", "the other replica resynced in full");
}

/// A fake primary's side of one link: answers the handshake, then sends `after_psync`.
fn fake_primary_link(listener: &std::net::TcpListener, after_psync: &[u8]) -> std::net::TcpStream {
    listener.set_nonblocking(true).unwrap();
    let mut stream = None;
    eventually("the replica to connect", || {
        stream = listener.accept().ok().map(|(s, _)| s);
        stream.is_some()
    });
    let mut stream = stream.unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    loop {
        let request = read_reply(&mut stream);
        let text = String::from_utf8_lossy(&request).to_ascii_uppercase();
        let answer: &[u8] = if text.contains("\r\nPING\r\n") { b"+PONG\r\n" } else { b"+OK\r\n" };
        if text.contains("\r\nPSYNC\r\n") {
            std::io::Write::write_all(
                &mut stream,
                format!("+FULLRESYNC {} 0\r\n", "a".repeat(40)).as_bytes(),
            )
            .unwrap();
            std::io::Write::write_all(&mut stream, after_psync).unwrap();
            return stream;
        }
        std::io::Write::write_all(&mut stream, answer).unwrap();
    }
}

#[test]
fn a_damaged_snapshot_or_stream_from_the_primary_drops_the_link_and_the_replica_serves_on() {
    let donor = Server::start();
    let () = redis::cmd("SAVE").query(&mut donor.conn(Mode::Plain)).unwrap();
    let rdb = std::fs::read(donor.data_dir.join("dump.rdb")).unwrap();
    let bulk = |body: &[u8]| [format!("${}\r\n", body.len()).as_bytes(), body].concat();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let replica = Server::start();
    let mut r = replica.conn(Mode::Plain);
    let () = redis::cmd("SET").arg("kept").arg("1").query(&mut r).unwrap();
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(port).query(&mut r).unwrap();
    // A snapshot with a flipped byte: refused before anything here is replaced.
    let mut damaged = rdb.clone();
    damaged[rdb.len() / 2] ^= 0x40;
    let first = fake_primary_link(&listener, &bulk(&damaged));
    assert!(replica.wait_log("the primary's snapshot is damaged"));
    drop(first);
    let v: String = redis::cmd("GET").arg("kept").query(&mut r).unwrap();
    assert_eq!(v, "1", "a refused snapshot must not replace the data");
    // A truncated transfer: the link ends, the data stays.
    let second = fake_primary_link(&listener, &bulk(&rdb)[..rdb.len() / 2]);
    drop(second);
    assert!(replica.wait_log_count("Error condition on socket for SYNC", 1));
    let v: String = redis::cmd("GET").arg("kept").query(&mut r).unwrap();
    assert_eq!(v, "1");
    // A good snapshot, then a stream that breaks the protocol: the link drops and comes back.
    let mut garbage = bulk(&rdb);
    garbage.extend_from_slice(b"*2\r\n$3\r\nSET\r\n$-9\r\n\x00\xffgarbage");
    let _third = fake_primary_link(&listener, &garbage);
    assert!(replica.wait_log("the primary's stream is malformed"));
    let _fourth = fake_primary_link(&listener, b"");
    let pong: String = redis::cmd("PING").query(&mut r).unwrap();
    assert_eq!(pong, "PONG");
}

/// The error reply to `cmd` (code and text, as Redis's error line reads).
fn error_of(c: &mut Connection, cmd: &mut redis::Cmd) -> String {
    let err = cmd.query::<redis::Value>(c).unwrap_err();
    format!("{} {}", err.code().unwrap_or_default(), err.detail().unwrap_or_default())
}

fn role(c: &mut Connection) -> String {
    info(c, "replication", "role")
}

#[test]
fn failover_hands_the_primary_role_to_a_redis_server_replica_and_back() {
    let primary = Server::with(primary_opts());
    let mut p = primary.conn(Mode::Plain);
    assert_eq!(error_of(&mut p, redis::cmd("FAILOVER").arg("ABORT")), "ERR No failover in progress.");
    assert_eq!(error_of(&mut p, &mut redis::cmd("FAILOVER")), "ERR FAILOVER requires connected replicas.");
    mixed_writes(&primary, Mode::Plain, 2_000, 11);
    let replica = redis_replica(&primary, Mode::Plain);
    let mut r = common::dataset::connect_redis(&replica);
    in_sync(&mut p, &mut r);
    for (args, text) in [
        (&["TO", "127.0.0.1", "1"][..], "ERR FAILOVER target HOST and PORT is not a replica."),
        (&["FORCE"], "ERR FAILOVER with force option requires both a timeout and target HOST and IP."),
        (&["TIMEOUT", "0"], "ERR FAILOVER timeout must be greater than 0"),
        (&["TO", "127.0.0.1"], "ERR syntax error"),
    ] {
        assert_eq!(error_of(&mut p, redis::cmd("FAILOVER").arg(args)), text);
    }
    // A write pipelined behind FAILOVER is held by the pause, then finds a replica.
    let mut raw = primary.raw(Mode::Tls);
    let port = replica.port.to_string();
    raw.send(
        &[
            resp(&[b"FAILOVER", b"TO", b"127.0.0.1", port.as_bytes(), b"TIMEOUT", b"30000"]),
            resp(&[b"SET", b"held", b"1"]),
        ]
        .concat(),
    );
    assert_eq!(raw.reply(), b"+OK\r\n");
    let held = String::from_utf8(raw.reply()).unwrap();
    assert!(held.starts_with("-READONLY"), "{held}");
    assert_eq!(role(&mut p), "slave");
    eventually("the failover to end", || {
        info(&mut p, "replication", "master_failover_state") == "no-failover"
    });
    eventually("the replica to become the primary", || role(&mut r) == "master");
    assert!(primary.wait_log("Failover target 127.0.0.1:"));
    // The old primary continues the new one's history with a partial resync.
    mixed_writes_on(replica.raw(), 2_000, 12);
    in_sync(&mut r, &mut p);
    assert_same(&mut r, &mut p);
    assert_eq!(info(&mut r, "stats", "sync_partial_ok"), "1");
    assert_eq!(info(&mut r, "stats", "sync_full"), "0");
    // And back: redis-server's FAILOVER asks ferrokey, its replica now, to take over.
    let () = redis::cmd("FAILOVER").query(&mut r).unwrap();
    eventually("ferrokey to be the primary again", || role(&mut p) == "master" && role(&mut r) == "slave");
    assert!(primary.wait_log("Failover request received for replid"));
    let () = redis::cmd("SET").arg("after-failback").arg("1").query(&mut p).unwrap();
    in_sync(&mut p, &mut r);
    assert_same(&mut p, &mut r);
    // Its only full sync is the one it served redis-server at the start.
    assert_eq!(info(&mut p, "stats", "sync_full"), "1", "the failback needed a full sync");
    assert_eq!(info(&mut p, "stats", "sync_partial_ok"), "1");
}

#[test]
fn a_replica_loads_the_snapshot_from_the_socket_with_repl_diskless_load() {
    let primary = Server::with(primary_opts());
    let mut p = primary.conn(Mode::Plain);
    mixed_writes(&primary, Mode::Plain, 3_000, 13);
    for (mode, own_data, via) in [
        ("on-empty-db", false, "from the socket"),
        ("on-empty-db", true, "from master to disk"),
        ("swapdb", true, "from the socket"),
    ] {
        let replica = Server::with(tls_replica_opts().arg("repl-diskless-load", mode));
        let mut r = replica.conn(Mode::Plain);
        if own_data {
            let () = redis::cmd("SET").arg("replaced").arg("1").query(&mut r).unwrap();
        }
        let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.tls_port).query(&mut r).unwrap();
        in_sync(&mut p, &mut r);
        assert!(replica.wait_log(via), "{mode}, data of its own: {own_data}");
        assert_same(&mut p, &mut r);
        mixed_writes(&primary, Mode::Plain, 2_000, 14);
        in_sync(&mut p, &mut r);
        assert_same(&mut p, &mut r);
    }
}

#[test]
fn a_swapdb_replica_keeps_its_data_when_the_snapshot_is_damaged() {
    let donor = Server::start();
    let mut d = donor.conn(Mode::Plain);
    populate_with_dbs(&mut d);
    let () = redis::cmd("SAVE").query(&mut d).unwrap();
    let rdb = std::fs::read(donor.data_dir.join("dump.rdb")).unwrap();
    let eof = |body: &[u8]| {
        // 40 distinct characters: no end of a snapshot can complete it early (a mark of one
        // repeated byte ended early whenever the snapshot's checksum ended in that byte).
        let mark = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
        [format!("$EOF:{mark}\r\n").as_bytes(), body, mark.as_bytes()].concat()
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let replica = Server::with(Opts::default().arg("repl-diskless-load", "swapdb"));
    let mut r = replica.conn(Mode::Plain);
    let () = redis::cmd("SET").arg("kept").arg("1").query(&mut r).unwrap();
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(port).query(&mut r).unwrap();
    let mut damaged = rdb.clone();
    damaged[rdb.len() / 2] ^= 0x40;
    drop(fake_primary_link(&listener, &eof(&damaged)));
    assert!(replica.wait_log("Failed trying to load the MASTER synchronization DB from socket"));
    let v: String = redis::cmd("GET").arg("kept").query(&mut r).unwrap();
    assert_eq!(v, "1", "a damaged snapshot replaced the data");
    drop(fake_primary_link(&listener, &eof(&rdb)[..rdb.len() / 2]));
    assert!(replica.wait_log_count("Failed trying to load the MASTER synchronization DB from socket", 2));
    let v: String = redis::cmd("GET").arg("kept").query(&mut r).unwrap();
    assert_eq!(v, "1", "a cut snapshot replaced the data");
    // A whole one replaces it.
    let _link = fake_primary_link(&listener, &eof(&rdb));
    assert!(replica.wait_log("from the socket"));
    eventually("the snapshot's data", || {
        snapshot_with_ttls(&mut r).len() == snapshot_with_ttls(&mut d).len()
    });
    let kept: Option<String> = redis::cmd("GET").arg("kept").query(&mut r).unwrap();
    assert_eq!(kept, None);
}

#[test]
fn a_failover_no_replica_catches_up_with_ends_at_its_timeout_or_abort() {
    let primary = Server::with(primary_opts());
    let mut p = primary.conn(Mode::Plain);
    let () = redis::cmd("SET").arg("k").arg("1").query(&mut p).unwrap();
    // A replica that never acknowledges anything.
    let mut silent = primary.raw(Mode::Plain);
    assert_eq!(silent.request(&[b"REPLCONF", b"listening-port", b"7777"]), b"+OK\r\n");
    silent.send(&resp(&[b"PSYNC", b"?", b"-1"]));
    eventually("the replica to attach", || info(&mut p, "replication", "connected_slaves") == "1");
    // Behind from now on (a replica that acknowledged nothing is at offset 0, as in Redis).
    let () = redis::cmd("SET").arg("k").arg("1").query(&mut p).unwrap();
    let () = redis::cmd("FAILOVER").arg("TIMEOUT").arg(200).query(&mut p).unwrap();
    assert_eq!(info(&mut p, "replication", "master_failover_state"), "waiting-for-sync");
    // Held until the timeout, then it runs: this server is still the primary.
    let () = redis::cmd("SET").arg("k").arg("2").query(&mut p).unwrap();
    assert!(primary.wait_log("aborted: Replica never caught up before timeout"));
    assert_eq!(info(&mut p, "replication", "master_failover_state"), "no-failover");
    assert_eq!(role(&mut p), "master");
    // Without a timeout it waits until FAILOVER ABORT; REPLICAOF is refused meanwhile.
    let () = redis::cmd("FAILOVER").query(&mut p).unwrap();
    assert_eq!(
        error_of(&mut p, redis::cmd("REPLICAOF").arg("127.0.0.1").arg(1)),
        "ERR REPLICAOF not allowed while failing over."
    );
    assert_eq!(error_of(&mut p, &mut redis::cmd("FAILOVER")), "ERR FAILOVER already in progress.");
    let mut writer = primary.raw(Mode::Tls);
    let id = writer.client_id();
    writer.send(&resp(&[b"SET", b"k", b"3"]));
    common::wait_blocked(&mut p, id);
    let () = redis::cmd("FAILOVER").arg("ABORT").query(&mut p).unwrap();
    assert_eq!(writer.reply(), b"+OK\r\n");
    assert!(primary.wait_log("aborted: Failover manually aborted"));
    let v: String = redis::cmd("GET").arg("k").query(&mut p).unwrap();
    assert_eq!(v, "3");
}

/// A replica that reads the stream slowly but steadily and acknowledges exactly what it has
/// read, every 5 ms: its link on the primary always has more to send. It reads nothing past the
/// snapshot while `hold` is set (acknowledging all the same), so that the stream gets ahead of
/// it however slowly the primary runs. `read` counts the bytes of the stream it has read past
/// the snapshot. Reads until `stop`.
fn slow_acking_replica(
    mut link: common::Raw,
    stop: &std::sync::atomic::AtomicBool,
    hold: &std::sync::atomic::AtomicBool,
    read: &std::sync::atomic::AtomicU64,
) {
    use std::io::Read;
    link.send(&resp(&[b"PSYNC", b"?", b"-1"]));
    let head = primary_line(&mut link.inner);
    let mut offset: u64 = head.split(' ').nth(2).unwrap().parse().unwrap();
    let len: usize = primary_line(&mut link.inner).strip_prefix('$').unwrap().parse().unwrap();
    let mut snapshot = vec![0u8; len];
    link.inner.read_exact(&mut snapshot).unwrap();
    let mut chunk = vec![0u8; 16 << 10];
    let mut acked = Instant::now();
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        if !hold.load(std::sync::atomic::Ordering::Relaxed) {
            let n = link.inner.read(&mut chunk).unwrap() as u64;
            offset += n;
            read.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        }
        if acked.elapsed() >= Duration::from_millis(5) {
            acked = Instant::now();
            link.send(&resp(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()]));
        }
        // Slower than the writers: the link is never idle.
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// The next line a primary sends a replica's link, without its CRLF; the newlines a primary
/// sends while it prepares the snapshot come before a header and are skipped.
fn primary_line(link: &mut impl std::io::Read) -> String {
    let mut l = Vec::new();
    let mut byte = [0u8; 1];
    while !l.ends_with(b"\r\n") {
        link.read_exact(&mut byte).unwrap();
        if !(l.is_empty() && byte[0] == b'\n') {
            l.push(byte[0]);
        }
    }
    String::from_utf8(l).unwrap().trim_end().to_owned()
}

/// Stops a [`slow_acking_replica`] when dropped: a failed assertion stops the threads too (the
/// scope waits for them), and one more write lets the replica's last read return.
struct StopOnDrop<'a>(&'a std::sync::atomic::AtomicBool, &'a Server);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut raw = self.1.raw(Mode::Plain);
        raw.send(&resp(&[b"SET", b"w", b"stop"]));
        raw.reply();
    }
}

/// WAIT counts every write its client made before it, those of its own read too: a SET and a
/// one-shard script pipelined just before a WAIT (both run inline, on the connection's shard)
/// are in the offset it waits for. Debian's redis-server replica, stopped (SIGSTOP) once it
/// acknowledged everything else, is not counted.
#[test]
fn wait_counts_the_writes_pipelined_just_before_it() {
    let primary = Server::with(Opts { threads: 1, ..primary_opts() });
    let replica = redis_replica(&primary, Mode::Plain);
    let (mut p, mut r) = (primary.conn(Mode::Plain), connect_redis(&replica));
    let pid = info(&mut r, "server", "process_id");
    let signal = |name: &str| {
        let sent = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(sent.success(), "kill {name} {pid}");
    };
    let script = "return redis.call('INCR', KEYS[1])";
    // The script's first runs learn that it keeps to its declared key.
    for _ in 0..2 {
        let _: i64 = redis::cmd("EVAL").arg(script).arg(1).arg("counter").query(&mut p).unwrap();
    }
    let wait = resp(&[b"WAIT", b"1", b"300"]);
    let set = resp(&[b"SET", b"k", b"v"]);
    let eval = resp(&[b"EVAL", script.as_bytes(), b"1", b"counter"]);
    for (what, write) in [("SET", set), ("one-shard script", eval)] {
        in_sync(&mut p, &mut r);
        eventually("the replica to acknowledge everything", || {
            let offset = info(&mut p, "replication", "master_repl_offset");
            info(&mut p, "replication", "slave0").contains(&format!("offset={offset},"))
        });
        signal("-STOP");
        let mut raw = primary.raw(Mode::Plain);
        raw.send(&[write, wait.clone()].concat());
        raw.reply();
        let acked = raw.reply();
        signal("-CONT");
        assert_eq!(acked, b":0\r\n", "WAIT counted a replica that never read the {what} before it");
    }
}

/// After a diskless transfer nothing follows the end mark until the replica acknowledges it
/// (Redis's `repl_start_cmd_stream_on_ack`): a replica finds the transfer's end by the mark
/// being the last bytes it read, and a write glued to it stalled Debian's redis-server replica
/// until `repl-timeout`. Then the stream comes, writes made during the transfer first.
#[test]
fn a_diskless_transfer_ends_alone_until_the_replica_acknowledges_it() {
    use std::io::{Read, Write};
    // No PING of the primary's own between the cut and the ACK.
    let primary =
        Server::with(primary_opts().arg("repl-diskless-sync", "yes").arg("repl-ping-replica-period", "3600"));
    let mut p = primary.conn(Mode::Plain);
    let mut link = std::net::TcpStream::connect(primary.addr(Mode::Plain)).unwrap();
    link.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    link.write_all(&resp(&[b"REPLCONF", b"capa", b"eof", b"capa", b"psync2"])).unwrap();
    assert_eq!(primary_line(&mut link), "+OK");
    link.write_all(&resp(&[b"PSYNC", b"?", b"-1"])).unwrap();
    let head = primary_line(&mut link);
    let offset: u64 = head.split(' ').nth(2).unwrap().parse().unwrap();
    // Written after the cut: the stream has it before the transfer ends.
    let _: () = redis::cmd("SET").arg("during").arg("transfer").query(&mut p).unwrap();
    let mark = primary_line(&mut link).strip_prefix("$EOF:").expect("a diskless transfer").to_owned();
    let mut read = Vec::new();
    let mut byte = [0u8; 1];
    while !read.ends_with(mark.as_bytes()) {
        link.read_exact(&mut byte).unwrap();
        read.push(byte[0]);
    }
    assert!(read.starts_with(b"REDIS"), "{:?}", String::from_utf8_lossy(&read[..read.len().min(16)]));
    // Nothing after the mark: a bounded look for bytes that must not come.
    link.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let mut more = [0u8; 64];
    match link.read(&mut more) {
        Ok(n) => panic!("the stream followed the mark: {:?}", String::from_utf8_lossy(&more[..n])),
        Err(e) => {
            assert!(matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{e}")
        }
    }
    link.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    link.write_all(&resp(&[b"REPLCONF", b"ACK", offset.to_string().as_bytes()])).unwrap();
    let expected = [resp(&[b"SELECT", b"0"]), resp(&[b"SET", b"during", b"transfer"])].concat();
    let mut stream = vec![0u8; expected.len()];
    link.read_exact(&mut stream).unwrap();
    assert_eq!(String::from_utf8_lossy(&stream), String::from_utf8_lossy(&expected));
}

#[test]
fn wait_sees_acknowledgements_under_a_stream_that_never_pauses() {
    let primary = Server::with(
        Opts::default().arg("repl-diskless-sync", "no").arg("client-output-buffer-limit", "replica 0 0 0"),
    );
    let mut p = primary.conn(Mode::Plain);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let read = std::sync::atomic::AtomicU64::new(0);
    let hold = std::sync::atomic::AtomicBool::new(true);
    std::thread::scope(|scope| {
        let link = primary.raw(Mode::Plain);
        let replica = scope.spawn(|| slow_acking_replica(link, &stop, &hold, &read));
        let _stop = StopOnDrop(&stop, &primary);
        eventually("the replica to attach", || {
            info(&mut p, "replication", "slave0").contains("state=online")
        });
        // Pipelined writes of 16 KB values, bounded: 400 rounds of 16 (100 MB at most), and at
        // most 6 MB ahead of what the replica has read, so that each WAIT below needs the
        // replica to read a bounded stretch of stream (a loaded machine slows its 0.5 ms sleeps
        // several times over) however fast the writes go, while the stream never pauses.
        let flood = scope.spawn(|| {
            let mut raw = primary.raw(Mode::Plain);
            let value = vec![b'x'; 16 << 10];
            let mut written = 0u64;
            for round in 0..400 {
                while written > read.load(std::sync::atomic::Ordering::Relaxed) + (6 << 20)
                    && !stop.load(std::sync::atomic::Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                written += 16 * (16 << 10);
                let batch: Vec<u8> = (0..16)
                    .flat_map(|i| resp(&[b"SET", format!("big{}", (round * 16 + i) % 64).as_bytes(), &value]))
                    .collect();
                raw.send(&batch);
                for _ in 0..16 {
                    assert_eq!(raw.reply(), b"+OK\r\n");
                }
            }
        });
        eventually("the stream to run ahead of the replica", || {
            let behind = info(&mut p, "replication", "master_repl_offset").parse::<u64>().unwrap_or(0);
            let line = info(&mut p, "replication", "slave0");
            let acked = line.split("offset=").nth(1).and_then(|o| o.split(',').next()?.parse::<u64>().ok());
            acked.is_some_and(|a| behind > a + (2 << 20))
        });
        // From here on the replica reads, slower than the writers: the stream never pauses.
        hold.store(false, std::sync::atomic::Ordering::Relaxed);
        for i in 0..5 {
            let () = redis::cmd("SET").arg("w").arg(i).query(&mut p).unwrap();
            let acked: i64 = redis::cmd("WAIT").arg(1).arg(5_000).query(&mut p).unwrap();
            assert_eq!(acked, 1, "round {i}: the replica's acknowledgements went unread");
        }
        drop(_stop);
        flood.join().unwrap();
        replica.join().unwrap();
    });
}

/// A `message` push as RESP2 sends it.
fn message(channel: &str, payload: &str) -> Vec<u8> {
    format!("*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n{payload}\r\n", channel.len(), payload.len())
        .into_bytes()
}

/// Subscribes `raw` to `news`.
fn subscribe_news(raw: &mut common::Raw) {
    raw.roundtrip(&resp(&[b"SUBSCRIBE", b"news"]), b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
}

#[test]
fn publish_reaches_the_subscribers_of_replicas_after_the_writes_before_it() {
    // A ferrokey primary; a ferrokey replica over TLS with a ferrokey replica of its own, and a
    // redis-server replica.
    let primary = Server::with(primary_opts());
    let mut p = primary.conn(Mode::Plain);
    let replica = Server::with(tls_replica_opts());
    let mut r = replica.conn(Mode::Plain);
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.tls_port).query(&mut r).unwrap();
    let sub_replica = Server::with(Opts::default());
    let mut rr = sub_replica.conn(Mode::Plain);
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(replica.port).query(&mut rr).unwrap();
    let theirs = redis_replica(&primary, Mode::Plain);
    let mut t = common::dataset::connect_redis(&theirs);
    in_sync(&mut p, &mut r);
    in_sync(&mut p, &mut t);
    in_sync(&mut r, &mut rr);
    let mut subscribers = [replica.raw(Mode::Tls), sub_replica.raw(Mode::Plain), theirs.raw()];
    subscribers.iter_mut().for_each(subscribe_news);
    let mut readers = [replica.conn(Mode::Plain), rr, t];
    for i in 0..50 {
        let () = redis::cmd("SET").arg(format!("k{i}")).arg(i).query(&mut p).unwrap();
        let n: i64 = redis::cmd("PUBLISH").arg("news").arg(i).query(&mut p).unwrap();
        assert_eq!(n, 0, "no subscriber on the primary itself");
    }
    for (sub, reader) in subscribers.iter_mut().zip(&mut readers) {
        for i in 0..50 {
            let expected = message("news", &i.to_string());
            assert_eq!(sub.read_n(expected.len()), expected, "message {i}, once each, in order");
            // The write before the PUBLISH is there when its message is.
            let v: Option<i64> = redis::cmd("GET").arg(format!("k{i}")).query(reader).unwrap();
            assert_eq!(v, Some(i));
        }
    }
    // A sub-replica gets each message once: its replica passes the stream on and does not
    // publish it again. A PING and its reply come after anything else queued.
    let sub = &mut subscribers[1];
    sub.roundtrip(&resp(&[b"PING"]), b"*2\r\n$4\r\npong\r\n$0\r\n\r\n");

    // And the other way: a redis-server primary's PUBLISH reaches a ferrokey replica's
    // subscribers.
    let (theirs, _) = redis_primary();
    let mut tp = common::dataset::connect_redis(&theirs);
    let ours = Server::with(Opts::default());
    let mut o = ours.conn(Mode::Plain);
    let () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(theirs.port).query(&mut o).unwrap();
    in_sync(&mut tp, &mut o);
    let mut sub = ours.raw(Mode::Tls);
    subscribe_news(&mut sub);
    let n: i64 = redis::cmd("PUBLISH").arg("news").arg("from redis").query(&mut tp).unwrap();
    assert_eq!(n, 0);
    let expected = message("news", "from redis");
    assert_eq!(sub.read_n(expected.len()), expected);
}
