//! The append-only file against the real tools: ferrokey's AOF directory passes
//! redis-check-aof and loads into Debian's redis-server with the same contents, and a
//! redis-server's directory loads into ferrokey; effects replay to the same dataset (expiries
//! as absolute times, SPOP, INCRBYFLOAT, served blocking pops, cross-shard transactions);
//! acknowledged writes survive kill -9 under `appendfsync always`; a cut tail is cut off or
//! stops the start, as configured.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::dataset::{connect_redis, info_field, populate_with_dbs, snapshot_of, Stored, TempDir};
use common::{key_on, Mode, RedisServer, Server, MODES};
use redis::{Connection, Value};

fn aof_opts(dir: &TempDir) -> common::Opts {
    common::Opts::default().arg("dir", &dir.path()).arg("save", "").arg("appendonly", "yes")
}

fn run(c: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    args[1..].iter().for_each(|a| {
        cmd.arg(*a);
    });
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Waits (bounded) until INFO shows no rewrite running.
fn wait_rewrite_done(c: &mut Connection) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while info_field(c, "aof_rewrite_in_progress") != "0" || info_field(c, "aof_rewrite_scheduled") != "0" {
        assert!(Instant::now() < deadline, "the rewrite never ended");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn check_aof(dir: &std::path::Path) -> String {
    let out = std::process::Command::new("redis-check-aof")
        .arg(dir.join("appendonlydir/appendonly.aof.manifest"))
        .output()
        .expect("redis-check-aof is installed");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success() && report.contains("All AOF files and manifest are valid"), "{report}");
    report
}

/// Writes whose effects differ from their requests, on keys of both shards, some from a
/// client blocked before the data came.
fn effects(server: &Server, c: &mut Connection) {
    let (a, b) = (key_on("x", 0, 2), key_on("x", 1, 2));
    run(c, &["SET", "ex", "v", "EX", "3600"]);
    run(c, &["SETEX", "setex", "3600", "v"]);
    run(c, &["SET", "keepttl", "v", "PX", "3600000"]);
    run(c, &["SET", "keepttl", "w", "KEEPTTL"]);
    run(c, &["SET", "expiring", "v"]);
    run(c, &["EXPIRE", "expiring", "3600"]);
    run(c, &["SET", "gone", "v"]);
    run(c, &["EXPIRE", "gone", "-1"]);
    run(c, &["SET", "getex", "v"]);
    run(c, &["GETEX", "getex", "PX", "3600000"]);
    run(c, &["INCRBYFLOAT", "float", "10.5"]);
    run(c, &["INCRBYFLOAT", "float", "0.1"]);
    run(c, &["HINCRBYFLOAT", "hfloat", "f", "3.3"]);
    run(c, &["SADD", "spop", "a", "b", "c", "d", "e", "f"]);
    run(c, &["SPOP", "spop"]);
    run(c, &["SPOP", "spop", "2"]);
    run(c, &["SADD", "spop-all", "a", "b"]);
    run(c, &["SPOP", "spop-all", "5"]);
    run(c, &["RPUSH", &format!("{a}:list"), "1", "2", "3", "4"]);
    run(c, &["LMPOP", "2", "nothing", &format!("{a}:list"), "LEFT", "COUNT", "2"]);
    run(c, &["BLMOVE", &format!("{a}:list"), &format!("{b}:list"), "RIGHT", "LEFT", "0"]);
    run(c, &["ZADD", "z", "1", "a", "2", "b", "3", "c"]);
    run(c, &["ZMPOP", "1", "z", "MAX"]);
    run(c, &["BZPOPMIN", "z", "0"]);
    run(c, &["MSET", &a, "1", &b, "2"]);
    run(c, &["RENAME", &a, &format!("{b}:renamed")]);
    let payload: Vec<u8> = redis::cmd("DUMP").arg("float").query(c).unwrap();
    let () = redis::cmd("RESTORE").arg("restored").arg(3_600_000).arg(payload).query(c).unwrap();
    let mut tx = redis::pipe();
    tx.atomic().cmd("INCR").arg(&a).cmd("INCR").arg(&b).cmd("SET").arg("in-exec").arg("1");
    let () = tx.query(c).unwrap();
    run(c, &["SELECT", "5"]);
    run(c, &["SET", "in-db-5", "v"]);
    run(c, &["FLUSHDB"]);
    run(c, &["SELECT", "0"]);
    // Streams: generated IDs, approximate trims, group reads (each delivery an XCLAIM), NOACK
    // reads, claims and acknowledgements, on keys of both shards.
    let (sa, sb) = (format!("{a}:stream"), format!("{b}:stream"));
    for i in 0..150 {
        run(c, &["XADD", &sa, "MAXLEN", "~", "100", "*", "n", &i.to_string(), "pad", &"p".repeat(i % 30)]);
    }
    // Propagated with `=` and its LIMIT kept, which a replay obeys (Redis's mustObeyClient).
    run(c, &["XADD", &sa, "MAXLEN", "~", "120", "LIMIT", "50", "*", "n", "limited"]);
    run(c, &["XADD", &sb, "5-*", "f", "v"]);
    run(c, &["XADD", &sb, "5-*", "f", "w"]);
    run(c, &["XADD", &sb, "6-0", "f", "x"]);
    run(c, &["XGROUP", "CREATE", &sa, "g", "0"]);
    run(c, &["XGROUP", "CREATE", &sb, "g", "0"]);
    run(c, &["XREADGROUP", "GROUP", "g", "alice", "COUNT", "10", "STREAMS", &sa, &sb, ">", ">"]);
    run(c, &["XREADGROUP", "GROUP", "g", "bob", "COUNT", "5", "NOACK", "STREAMS", &sa, ">"]);
    run(c, &["XACK", &sb, "g", "5-0"]);
    run(c, &["XCLAIM", &sb, "g", "carol", "0", "5-1", "RETRYCOUNT", "7"]);
    run(c, &["XAUTOCLAIM", &sa, "g", "dave", "0", "0", "COUNT", "3"]);
    run(c, &["XDEL", &sa, "0-1"]);
    run(c, &["XTRIM", &sb, "MAXLEN", "2"]);
    run(c, &["XSETID", &sb, "9-0", "ENTRIESADDED", "20"]);
    // Served after blocking: the adder's own command, then the group read's delivery.
    let mut reader = server.conn(Mode::Plain);
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut reader).unwrap();
    let key = sb.clone();
    let waiter = std::thread::spawn(move || {
        let got: Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("g")
            .arg("erin")
            .arg("BLOCK")
            .arg(10_000)
            .arg("STREAMS")
            .arg(&key)
            .arg(">")
            .query(&mut reader)
            .unwrap();
        got
    });
    common::wait_blocked(c, id);
    run(c, &["XADD", &sb, "10-0", "late", "entry"]);
    assert!(format!("{:?}", waiter.join().unwrap()).contains("late"));
    // Served after blocking: the pusher's own command, then the served pop.
    let mut blocked = server.conn(Mode::Tls);
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut blocked).unwrap();
    let waiter = std::thread::spawn(move || {
        let got: Vec<String> = redis::cmd("BLPOP").arg("queue").arg(10).query(&mut blocked).unwrap();
        got
    });
    common::wait_blocked(c, id);
    run(c, &["RPUSH", "queue", "first", "second"]);
    assert_eq!(waiter.join().unwrap(), ["queue", "first"]);
}

/// Every key of databases 0, 3 and 5 with its contents and the instant it expires (absolute:
/// a replay that turned a relative expiry into a later one would show).
fn dataset(c: &mut Connection) -> Vec<(Stored, i64)> {
    let mut all = Vec::new();
    for stored in snapshot_of(c) {
        run(c, &["SELECT", &stored.0.to_string()]);
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&stored.1).query(c).unwrap();
        all.push((stored, at));
    }
    run(c, &["SELECT", "5"]);
    let keys: i64 = redis::cmd("DBSIZE").query(c).unwrap();
    run(c, &["SELECT", "0"]);
    assert_eq!(keys, 0, "FLUSHDB replays");
    all.sort();
    all
}

/// Asserts two datasets are equal, naming the first key that differs (not all of them).
fn assert_same(got: &[(Stored, i64)], want: &[(Stored, i64)], what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}: the first key that differs");
    }
    assert_eq!(got.len(), want.len(), "{what}: key counts differ");
}

#[test]
fn ferrokey_s_aof_replays_its_effects_passes_redis_check_aof_and_loads_into_redis_server() {
    let dir = TempDir::new("aof-effects");
    let server = Server::with(aof_opts(&dir));
    let mut c = server.conn(Mode::Tls);
    populate_with_dbs(&mut c);
    let started: String = redis::cmd("BGREWRITEAOF").query(&mut c).unwrap();
    assert_eq!(started, "Background append only file rewriting started");
    effects(&server, &mut c);
    wait_rewrite_done(&mut c);
    run(&mut c, &["CONFIG", "SET", "aof-timestamp-enabled", "yes"]);
    run(&mut c, &["SET", "after-rewrite", "v"]);
    let expected = dataset(&mut c);
    assert!(expected.iter().any(|(k, at)| k.1 == "restored" && *at > 0), "{expected:?}");
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    let terminated = server.terminate();
    assert_eq!(terminated, Some(0));
    let report = check_aof(&dir.0);
    assert!(report.contains("BASE AOF appendonly.aof.2.base.rdb is valid"), "{report}");
    let incr = std::fs::read(dir.0.join("appendonlydir/appendonly.aof.2.incr.aof")).unwrap();
    assert!(incr.windows(4).any(|w| w == b"#TS:"), "aof-timestamp-enabled annotates the file");

    let server = Server::with(aof_opts(&dir));
    for mode in MODES {
        assert_same(&dataset(&mut server.conn(mode)), &expected, &format!("{mode:?}"));
    }
    drop(server);

    let redis = RedisServer::with(&["--dir", &dir.path(), "--appendonly", "yes"]);
    assert_same(&dataset(&mut connect_redis(&redis)), &expected, "redis-server reads the same dataset");
}

#[test]
fn a_redis_server_aof_directory_loads_into_ferrokey() {
    for preamble in ["yes", "no"] {
        let dir = TempDir::new(&format!("aof-from-redis-{preamble}"));
        let redis = RedisServer::with(&[
            "--dir",
            &dir.path(),
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            preamble,
        ]);
        let mut theirs = connect_redis(&redis);
        populate_with_dbs(&mut theirs);
        let () = redis::cmd("BGREWRITEAOF").query(&mut theirs).unwrap();
        wait_rewrite_done(&mut theirs);
        run(&mut theirs, &["RPUSH", "after", "1", "2"]);
        run(&mut theirs, &["SPOP", "set:table"]);
        run(&mut theirs, &["INCRBYFLOAT", "str:int", "0.5"]);
        let expected = dataset(&mut theirs);
        drop(redis);
        let server = Server::with(aof_opts(&dir));
        assert!(server.log().contains("DB loaded from incr file"), "{}", server.log());
        assert_same(
            &dataset(&mut server.conn(Mode::Plain)),
            &expected,
            &format!("aof-use-rdb-preamble {preamble}"),
        );
    }
}

#[test]
fn acknowledged_increments_survive_kill_9_under_appendfsync_always() {
    let dir = TempDir::new("aof-always");
    let opts = aof_opts(&dir).arg("appendfsync", "always");
    let server = Server::with(opts.clone());
    let keys = [key_on("counter", 0, 2), key_on("counter", 1, 2)];
    let acked: Arc<Vec<AtomicI64>> = Arc::new(vec![AtomicI64::new(0), AtomicI64::new(0)]);
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (mut c, keys, acked, stop) =
                (server.conn(MODES[w % 2]), keys.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let mut pipe = redis::pipe();
                    for k in &keys {
                        pipe.cmd("INCR").arg(k);
                    }
                    let Ok(values) = pipe.query::<Vec<i64>>(&mut c) else { return };
                    for (i, v) in values.into_iter().enumerate() {
                        acked[i].fetch_max(v, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked[1].load(Ordering::SeqCst) < 2000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(server); // SIGKILL, with writers in flight
    stop.store(true, Ordering::Relaxed);
    writers.into_iter().for_each(|w| drop(w.join()));
    let server = Server::with(opts);
    let mut c = server.conn(Mode::Plain);
    for (i, key) in keys.iter().enumerate() {
        let have: i64 = redis::cmd("GET").arg(key).query(&mut c).unwrap();
        let acknowledged = acked[i].load(Ordering::SeqCst);
        assert!(acknowledged >= 1000, "{acknowledged}");
        assert!(have >= acknowledged, "{key}: {have} on disk, {acknowledged} acknowledged");
    }
}

#[test]
fn a_cut_tail_is_cut_off_with_aof_load_truncated_and_stops_the_start_without() {
    let dir = TempDir::new("aof-truncated");
    let server = Server::with(aof_opts(&dir));
    let mut c = server.conn(Mode::Plain);
    run(&mut c, &["SET", "kept", "1"]);
    assert_eq!(server.terminate(), Some(0));
    let incr = dir.0.join("appendonlydir/appendonly.aof.1.incr.aof");
    let whole = std::fs::read(&incr).unwrap();
    for (name, tail) in [
        ("cut command", &b"*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$1"[..]),
        ("open transaction", b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$1\r\n1\r\n"),
        (
            "cut inside a transaction",
            b"*1\r\n$5\r\nMULTI\r\n*3\r\n$3\r\nSET\r\n$4\r\nlost\r\n$1\r\n1\r\n*2\r\n$3\r\nDEL",
        ),
    ] {
        let mut cut = whole.clone();
        cut.extend_from_slice(tail);
        std::fs::write(&incr, &cut).unwrap();
        let (code, log) = common::start_refused(&[
            "--dir",
            &dir.path(),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--aof-load-truncated",
            "no",
        ]);
        assert_eq!(code, Some(1), "{name}: {log}");
        assert!(log.contains("Unexpected end of file reading the append only file"), "{name}: {log}");
        assert!(!log.contains("panicked"), "{name}: {log}");
        assert_eq!(std::fs::read(&incr).unwrap(), cut, "{name}: refused, the file is left as it was");

        let server = Server::with(aof_opts(&dir));
        assert!(
            server.log().contains("loaded anyway because aof-load-truncated is enabled"),
            "{}",
            server.log()
        );
        let mut c = server.conn(Mode::Tls);
        assert_eq!(run(&mut c, &["EXISTS", "kept", "lost"]), Value::Int(1), "{name}");
        assert_eq!(std::fs::read(&incr).unwrap(), whole, "{name}: cut back to the last whole command");
        assert_eq!(server.terminate(), Some(0));
    }
    check_aof(&dir.0);
}

#[test]
fn turning_the_aof_on_and_off_at_runtime() {
    let dir = TempDir::new("aof-runtime");
    let plain = common::Opts::default().arg("dir", &dir.path()).arg("save", "");
    let server = Server::with(plain);
    let mut c = server.conn(Mode::Tls);
    populate_with_dbs(&mut c);
    run(&mut c, &["CONFIG", "SET", "appendonly", "yes"]);
    run(&mut c, &["SET", "while-rewriting", "v"]);
    wait_rewrite_done(&mut c);
    run(&mut c, &["SET", "after", "v"]);
    assert_eq!(info_field(&mut c, "aof_enabled"), "1");
    let expected = dataset(&mut c);
    // Inside EXEC the change waits for the end of the transaction (the cron applies it).
    let mut tx = redis::pipe();
    tx.atomic().cmd("CONFIG").arg("SET").arg("appendonly").arg("no").ignore();
    let () = tx.query(&mut c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while info_field(&mut c, "aof_enabled") != "0" {
        assert!(Instant::now() < deadline, "the AOF stayed on");
        std::thread::sleep(Duration::from_millis(10));
    }
    run(&mut c, &["SET", "not-logged", "v"]);
    drop(server);
    check_aof(&dir.0);
    let server = Server::with(aof_opts(&dir));
    let mut c = server.conn(Mode::Plain);
    assert_same(&dataset(&mut c), &expected, "after turning the AOF on");
    // Growth past the minimum starts a rewrite by itself.
    run(
        &mut c,
        &["CONFIG", "SET", "auto-aof-rewrite-min-size", "100000", "auto-aof-rewrite-percentage", "100"],
    );
    let value = "v".repeat(1000);
    for i in 0..400 {
        run(&mut c, &["SET", &format!("grow:{}", i % 50), &value]);
    }
    assert!(server.wait_log("Starting automatic rewriting of AOF on"), "{}", server.log());
    wait_rewrite_done(&mut c);
    check_aof(&dir.0);
}

#[test]
fn cross_shard_transactions_replay_whole() {
    let dir = TempDir::new("aof-transfers");
    let server = Server::with(aof_opts(&dir));
    let mut setup = server.conn(Mode::Plain);
    for i in 0..10 {
        run(&mut setup, &["SET", &format!("account:{i}"), "100"]);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let movers: Vec<_> = (0..4u64)
        .map(|w| {
            let (mut c, stop) = (server.conn(MODES[(w % 2) as usize]), stop.clone());
            std::thread::spawn(move || {
                let mut n = w;
                let deadline = Instant::now() + Duration::from_secs(20);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    n = n.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let (from, to) = ((n >> 33) % 10, (n >> 45) % 10);
                    let mut pipe = redis::pipe();
                    pipe.atomic()
                        .cmd("DECRBY")
                        .arg(format!("account:{from}"))
                        .arg(3)
                        .ignore()
                        .cmd("INCRBY")
                        .arg(format!("account:{to}"))
                        .arg(3)
                        .ignore();
                    let () = pipe.query(&mut c).unwrap();
                }
            })
        })
        .collect();
    for _ in 0..3 {
        let _: String = redis::cmd("BGREWRITEAOF").query(&mut setup).unwrap();
        wait_rewrite_done(&mut setup);
    }
    stop.store(true, Ordering::Relaxed);
    movers.into_iter().for_each(|m| m.join().unwrap());
    let total = |c: &mut Connection| -> Vec<i64> {
        (0..10).map(|i| redis::cmd("GET").arg(format!("account:{i}")).query::<i64>(c).unwrap()).collect()
    };
    let before = total(&mut setup);
    assert_eq!(before.iter().sum::<i64>(), 1000);
    assert_eq!(server.terminate(), Some(0));
    check_aof(&dir.0);
    let server = Server::with(aof_opts(&dir));
    assert_eq!(total(&mut server.conn(Mode::Tls)), before);
}

#[test]
fn replay_runs_with_expiry_paused_as_redis_loads_an_aof() {
    let dir = TempDir::new("aof-expiry");
    let server = Server::with(aof_opts(&dir));
    let mut c = server.conn(Mode::Plain);
    // Each key had a short TTL that a later command removed or extended: replayed against
    // the clock of the restart, the first command alone would delete it.
    let mut tx = redis::pipe();
    tx.atomic()
        .cmd("SET")
        .arg("persisted")
        .arg("v")
        .arg("PX")
        .arg(50)
        .ignore()
        .cmd("PERSIST")
        .arg("persisted")
        .ignore()
        .cmd("SET")
        .arg("extended")
        .arg("v")
        .arg("PX")
        .arg(50)
        .ignore()
        .cmd("PEXPIRE")
        .arg("extended")
        .arg(3_600_000)
        .ignore()
        .cmd("SET")
        .arg("counter")
        .arg(1)
        .arg("PX")
        .arg(50)
        .ignore()
        .cmd("PERSIST")
        .arg("counter")
        .ignore()
        .cmd("INCR")
        .arg("counter")
        .ignore();
    let () = tx.query(&mut c).unwrap();
    let start: (String, String) = redis::cmd("TIME").query(&mut c).unwrap();
    let start_ms = start.0.parse::<u64>().unwrap() * 1000 + start.1.parse::<u64>().unwrap() / 1000;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now: (String, String) = redis::cmd("TIME").query(&mut c).unwrap();
        if now.0.parse::<u64>().unwrap() * 1000 + now.1.parse::<u64>().unwrap() / 1000 > start_ms + 100 {
            break;
        }
        assert!(Instant::now() < deadline);
        std::thread::yield_now();
    }
    assert_eq!(server.terminate(), Some(0));
    let server = Server::with(aof_opts(&dir));
    let mut c = server.conn(Mode::Tls);
    assert_eq!(run(&mut c, &["PTTL", "persisted"]), Value::Int(-1));
    assert!(matches!(run(&mut c, &["PTTL", "extended"]), Value::Int(t) if t > 3_000_000));
    assert_eq!(run(&mut c, &["GET", "counter"]), Value::BulkString(b"2".to_vec()));
}

#[test]
fn a_redis_6_append_only_file_is_migrated_and_loads_as_redis_server_loads_it() {
    // Redis 6's single file: an RDB preamble, then commands.
    let source = Server::start();
    let mut c = source.conn(Mode::Plain);
    populate_with_dbs(&mut c);
    let () = redis::cmd("SAVE").query(&mut c).unwrap();
    let mut old_style = std::fs::read(source.data_dir.join("dump.rdb")).unwrap();
    for args in [
        &["SELECT", "0"][..],
        &["SET", "from-the-tail", "v"],
        &["RPUSH", "list:small", "tail"],
        &["DEL", "str:int"],
    ] {
        old_style.extend_from_slice(&common::resp(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>()));
    }
    drop(source);
    let theirs = TempDir::new("aof-redis6-redis");
    let ours = TempDir::new("aof-redis6-ferrokey");
    for dir in [&theirs, &ours] {
        std::fs::write(dir.0.join("appendonly.aof"), &old_style).unwrap();
    }
    let redis = RedisServer::with(&["--dir", &theirs.path(), "--appendonly", "yes"]);
    let expected = dataset(&mut connect_redis(&redis));
    drop(redis);
    assert!(expected.iter().any(|(k, _)| k.1 == "from-the-tail"), "{expected:?}");
    let server = Server::with(aof_opts(&ours));
    assert!(server.log().contains("Successfully migrated an old-style AOF file"), "{}", server.log());
    assert!(!ours.0.join("appendonly.aof").exists() && ours.0.join("appendonlydir/appendonly.aof").exists());
    let mut c = server.conn(Mode::Tls);
    assert_same(&dataset(&mut c), &expected, "migrated");
    run(&mut c, &["SET", "after-migration", "v"]);
    let expected = dataset(&mut c);
    assert_eq!(server.terminate(), Some(0));
    check_aof(&ours.0);
    let server = Server::with(aof_opts(&ours));
    assert_same(&dataset(&mut server.conn(Mode::Plain)), &expected, "restarted after the migration");
}
