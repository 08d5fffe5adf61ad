//! Values in Redis's RDB form against Debian's redis-server: DUMP payloads move both ways with
//! identical contents, for every type in its small and large encodings, plain and TLS; small
//! values serialize byte for byte as Redis serializes them.

mod common;

use common::dataset::{
    connect_redis, contents, info_field, populate, populate_with_dbs, snapshot_of, TempDir,
};
use common::{Mode, RedisServer, Server, MODES};
use redis::Connection;

fn dump(c: &mut Connection, key: &str) -> Vec<u8> {
    redis::cmd("DUMP").arg(key).query(c).unwrap()
}

fn restore(c: &mut Connection, key: &str, ttl: u64, payload: &[u8]) {
    let () = redis::cmd("RESTORE").arg(key).arg(ttl).arg(payload).arg("REPLACE").query(c).unwrap();
}

#[test]
fn dump_payloads_move_both_ways_with_redis_server() {
    let redis = RedisServer::start();
    let mut theirs =
        redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap().get_connection().unwrap();
    let keys = populate(&mut theirs);
    let server = Server::start();
    for mode in MODES {
        let mut ours = server.conn(mode);
        for key in &keys {
            let original = contents(&mut theirs, key);
            // Redis's payload into ferrokey.
            restore(&mut ours, key, 0, &dump(&mut theirs, key));
            assert_eq!(contents(&mut ours, key), original, "{mode:?}: {key} from redis-server");
            // ferrokey's payload back into Redis, under another name, with a TTL.
            let copy = format!("{key}:back");
            restore(&mut theirs, &copy, 100_000, &dump(&mut ours, key));
            assert_eq!(contents(&mut theirs, &copy), original, "{mode:?}: {key} into redis-server");
            let ttl: i64 = redis::cmd("PTTL").arg(&copy).query(&mut theirs).unwrap();
            assert!((90_000..=100_000).contains(&ttl), "{ttl}");
        }
    }
}

#[test]
fn small_values_serialize_as_redis_serializes_them() {
    let redis = RedisServer::start();
    let mut theirs =
        redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap().get_connection().unwrap();
    let server = Server::start();
    let mut ours = server.conn(Mode::Plain);
    for c in [&mut theirs, &mut ours] {
        let _: () = redis::pipe()
            .cmd("SET")
            .arg("s")
            .arg("hello")
            .ignore()
            .cmd("SET")
            .arg("i")
            .arg("-42")
            .ignore()
            .cmd("RPUSH")
            .arg("l")
            .arg("a")
            .arg("7")
            .arg("-5000")
            .arg("x")
            .ignore()
            .cmd("SADD")
            .arg("is")
            .arg("3")
            .arg("1")
            .arg("2")
            .ignore()
            .cmd("HSET")
            .arg("h")
            .arg("f")
            .arg("v")
            .arg("n")
            .arg("12")
            .ignore()
            .cmd("ZADD")
            .arg("z")
            .arg("1.5")
            .arg("a")
            .arg("2")
            .arg("b")
            .ignore()
            .query(c)
            .unwrap();
    }
    for key in ["s", "i", "l", "is", "h", "z"] {
        assert_eq!(dump(&mut ours, key), dump(&mut theirs, key), "DUMP {key}");
    }
}

#[test]
fn restore_refuses_what_redis_refuses() {
    let redis = RedisServer::start();
    let mut raw_redis = redis.raw();
    let server = Server::start();
    let mut raw_ours = server.raw(Mode::Tls);
    for raw in [&mut raw_redis, &mut raw_ours] {
        raw.request(&[b"SET", b"k", b"v"]);
    }
    let payload = {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port))
            .unwrap()
            .get_connection()
            .unwrap();
        dump(&mut c, "k")
    };
    let mut corrupt = payload.clone();
    corrupt[1] ^= 0x40;
    let mut newer = payload.clone();
    let n = newer.len();
    newer[n - 10] = 99;
    let cases: Vec<Vec<&[u8]>> = vec![
        vec![b"RESTORE", b"k", b"0", &payload],
        vec![b"RESTORE", b"k2", b"-5", &payload],
        vec![b"RESTORE", b"k2", b"x", &payload],
        vec![b"RESTORE", b"k2", b"0", &corrupt],
        vec![b"RESTORE", b"k2", b"0", &newer],
        vec![b"RESTORE", b"k2", b"0", b"short"],
        vec![b"RESTORE", b"k2", b"0", &payload, b"IDLETIME", b"-1"],
        vec![b"RESTORE", b"k2", b"0", &payload, b"FREQ", b"256"],
        vec![b"RESTORE", b"k2", b"0", &payload, b"FREQ"],
        vec![b"RESTORE", b"k2", b"0", &payload, b"BOGUS"],
        vec![b"RESTORE", b"k2", b"0", &payload, b"IDLETIME", b"5", b"FREQ", b"3"],
        vec![b"RESTORE", b"k2", b"0", &payload, b"IDLETIME", b"5", b"ABSTTL", b"REPLACE"],
        vec![b"DUMP", b"nosuchkey"],
        vec![b"RESTORE", b"k3", b"1", &payload, b"ABSTTL"],
        vec![b"EXISTS", b"k3"],
    ];
    for case in cases {
        let mine = String::from_utf8_lossy(&raw_ours.request(&case)).into_owned();
        let redis_reply = String::from_utf8_lossy(&raw_redis.request(&case)).into_owned();
        assert_eq!(
            mine,
            redis_reply,
            "{:?}",
            case.iter().map(|a| String::from_utf8_lossy(&a[..a.len().min(12)])).collect::<Vec<_>>()
        );
    }
}

/// A directory of its own for a test's files, removed at the end.
#[test]
fn a_redis_server_dump_loads_into_ferrokey() {
    let dir = TempDir::new("from-redis");
    let redis = RedisServer::with(&["--dir", &dir.path()]);
    let mut theirs = connect_redis(&redis);
    populate_with_dbs(&mut theirs);
    let () = redis::cmd("SAVE").query(&mut theirs).unwrap();
    let expected = snapshot_of(&mut theirs);
    assert!(expected.len() > 18);
    let server = Server::with(common::Opts { extra: vec!["--dir".into(), dir.path()], ..Default::default() });
    assert!(server.log().contains("Loading RDB produced by version 7.0"), "{}", server.log());
    for mode in MODES {
        let mut ours = server.conn(mode);
        assert_eq!(snapshot_of(&mut ours), expected, "{mode:?}");
    }
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut server.conn(Mode::Plain)).unwrap();
    assert!(info.contains(&format!("rdb_last_load_keys_loaded:{}\r\n", expected.len())), "{info}");
}

#[test]
fn a_ferrokey_dump_loads_into_redis_server_and_passes_redis_check_rdb() {
    let server = Server::start();
    let mut ours = server.conn(Mode::Tls);
    populate_with_dbs(&mut ours);
    let before: i64 = redis::cmd("LASTSAVE").query(&mut ours).unwrap();
    let () = redis::cmd("SAVE").query(&mut ours).unwrap();
    let after: i64 = redis::cmd("LASTSAVE").query(&mut ours).unwrap();
    assert!(after >= before);
    let info: String = redis::cmd("INFO").arg("persistence").query(&mut ours).unwrap();
    assert!(info.contains("rdb_changes_since_last_save:0\r\n") && info.contains("rdb_saves:1\r\n"), "{info}");
    let expected = snapshot_of(&mut ours);
    let dump = server.data_dir.join("dump.rdb");
    let check = std::process::Command::new("redis-check-rdb")
        .arg(&dump)
        .output()
        .expect("redis-check-rdb is installed");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success() && report.contains("RDB looks OK"), "{report}");
    let dir = TempDir::new("to-redis");
    std::fs::copy(&dump, dir.file("dump.rdb")).unwrap();
    let redis = RedisServer::with(&["--dir", &dir.path()]);
    assert_eq!(snapshot_of(&mut connect_redis(&redis)), expected);
}

#[test]
fn shutdown_save_keeps_the_data_for_the_next_start() {
    let dir = TempDir::new("restart");
    let opts = common::Opts { extra: vec!["--dir".into(), dir.path()], ..Default::default() };
    let mut server = Server::with(opts.clone());
    let mut c = server.conn(Mode::Plain);
    for i in 0..1000 {
        let () = redis::cmd("SET").arg(format!("key:{i}")).arg(i).query(&mut c).unwrap();
    }
    let () = redis::cmd("ZADD").arg("z").arg(1).arg("a").query(&mut c).unwrap();
    let refused: redis::RedisResult<()> = redis::cmd("SHUTDOWN").arg("SAVE").arg("NOSAVE").query(&mut c);
    assert!(refused.unwrap_err().to_string().contains("syntax error"));
    let _: redis::RedisResult<()> = redis::cmd("SHUTDOWN").arg("SAVE").query(&mut c);
    assert_eq!(server.wait_exit(), Some(0));
    assert!(dir.file("dump.rdb").exists());
    let server = Server::with(opts);
    let mut c = server.conn(Mode::Tls);
    let size: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(size, 1001);
    let v: String = redis::cmd("GET").arg("key:777").query(&mut c).unwrap();
    assert_eq!(v, "777");
}

#[test]
fn a_damaged_dump_stops_the_start_and_stays_on_disk() {
    let source = Server::start();
    let mut c = source.conn(Mode::Plain);
    populate(&mut c);
    let () = redis::cmd("SAVE").query(&mut c).unwrap();
    let good = std::fs::read(source.data_dir.join("dump.rdb")).unwrap();
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x20;
    let mut bad_sum = good.clone();
    let n = bad_sum.len();
    bad_sum[n - 1] ^= 1;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", good[..good.len() * 2 / 3].to_vec()),
        ("flipped", flipped),
        ("checksum", bad_sum),
        ("not rdb", b"hello, world".to_vec()),
        ("newer", b"REDIS0099".to_vec()),
    ];
    for (name, bytes) in cases {
        let dir = TempDir::new(&format!("damaged-{}", name.replace(' ', "-")));
        std::fs::write(dir.file("dump.rdb"), &bytes).unwrap();
        let (code, log) = common::start_refused(&["--dir", &dir.path()]);
        assert_eq!(code, Some(1), "{name}: {log}");
        assert!(log.contains("Fatal error loading the DB"), "{name}: {log}");
        assert!(!log.contains("panicked"), "{name}: {log}");
        assert_eq!(std::fs::read(dir.file("dump.rdb")).unwrap(), bytes, "{name}: the file is left as it was");
    }
}

/// Ten accounts, over both shards, holding 1000 in all.
fn open_accounts(c: &mut Connection) {
    for i in 0..10 {
        let () = redis::cmd("SET").arg(format!("account:{i}")).arg(100).query(c).unwrap();
    }
}

/// Adds to `pipe` a move of 3 from account `from` to account `to`.
fn transfer(pipe: &mut redis::Pipeline, from: u64, to: u64) {
    pipe.cmd("DECRBY").arg(format!("account:{from}")).arg(3).ignore();
    pipe.cmd("INCRBY").arg(format!("account:{to}")).arg(3).ignore();
}

/// What the ten accounts hold in all.
fn accounts_total(c: &mut Connection) -> i64 {
    (0..10).map(|i| redis::cmd("GET").arg(format!("account:{i}")).query::<i64>(c).unwrap()).sum()
}

#[test]
fn a_save_is_one_point_in_time_across_shards() {
    let server = Server::start();
    let mut setup = server.conn(Mode::Plain);
    // Ten accounts over both shards hold 1000 in all; writers move amounts between them in
    // transactions while saves run.
    open_accounts(&mut setup);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let (mut c, stop) = (server.conn(Mode::Plain), stop.clone());
            std::thread::spawn(move || {
                let mut moves = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && moves < 20_000 {
                    let (from, to) = ((moves * 3 + w) % 10, (moves * 7 + w + 1) % 10);
                    if from != to {
                        let mut pipe = redis::pipe();
                        transfer(pipe.atomic(), from, to);
                        let () = pipe.query(&mut c).unwrap();
                    }
                    moves += 1;
                }
            })
        })
        .collect();
    let dir = TempDir::new("cut");
    for round in 0..5 {
        let () = redis::cmd("SAVE").query(&mut setup).unwrap();
        let copy = dir.file(&format!("round-{round}.rdb"));
        std::fs::copy(server.data_dir.join("dump.rdb"), &copy).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writers.into_iter().for_each(|w| w.join().unwrap());
    for round in 0..5 {
        let load = TempDir::new(&format!("cut-load-{round}"));
        std::fs::copy(dir.file(&format!("round-{round}.rdb")), load.file("dump.rdb")).unwrap();
        let loaded =
            Server::with(common::Opts { extra: vec!["--dir".into(), load.path()], ..Default::default() });
        let mut c = loaded.conn(Mode::Plain);
        assert_eq!(accounts_total(&mut c), 1000, "round {round}: the snapshot saw half a transaction");
    }
}

// ---------------------------------------------------------------------------------------------
// Background saves, save points, and what stops or uses them

/// The value of one INFO field.
/// Fills `n` keys `prefix:i` with `size`-byte values, pipelined.
fn fill(c: &mut Connection, prefix: &str, n: usize, size: usize) {
    let value = "v".repeat(size);
    for start in (0..n).step_by(1000) {
        let mut pipe = redis::pipe();
        for i in start..(start + 1000).min(n) {
            pipe.cmd("SET").arg(format!("{prefix}:{i}")).arg(&value).ignore();
        }
        let () = pipe.query(c).unwrap();
    }
}

/// Runs redis-check-rdb on `path`; panics with its output unless it passes.
fn check_rdb(path: &std::path::Path) {
    let out = std::process::Command::new("redis-check-rdb").arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("RDB looks OK"), "redis-check-rdb: {text}");
}

#[test]
fn a_background_save_is_one_point_in_time_while_writers_change_what_it_has_not_reached() {
    let server = Server::with(common::Opts::default().arg("save", ""));
    let mut setup = server.conn(Mode::Plain);
    // Enough data that the save runs for a while, in pieces, while the writers work.
    fill(&mut setup, "fill", 150_000, 100);
    // Pairs on different shards, always equal after each transaction; accounts holding 1000.
    let pairs = 200;
    let pair = |i: usize, side: usize| common::key_on(&format!("pair{side}-{i}-"), side, 2);
    for i in 0..pairs {
        let () = redis::cmd("MSET").arg(pair(i, 0)).arg(0).arg(pair(i, 1)).arg(0).query(&mut setup).unwrap();
    }
    open_accounts(&mut setup);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = MODES
        .iter()
        .enumerate()
        .map(|(w, &mode)| {
            let (mut c, stop) = (server.conn(mode), stop.clone());
            std::thread::spawn(move || {
                let mut round = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && round < 200_000 {
                    round += 1;
                    let i = (round * 7 + w) % pairs;
                    let (from, to) = ((round * 3 + w) % 10, (round * 7 + w + 1) % 10);
                    let mut pipe = redis::pipe();
                    pipe.atomic();
                    pipe.cmd("SET").arg(pair(i, 0)).arg(round).ignore();
                    pipe.cmd("SET").arg(pair(i, 1)).arg(round).ignore();
                    transfer(&mut pipe, from as u64, to as u64);
                    let () = pipe
                        .cmd("SET")
                        .arg(format!("fill:{}", round * 13 % 150_000))
                        .arg("changed")
                        .ignore()
                        .cmd("DEL")
                        .arg(format!("fill:{}", round * 17 % 150_000))
                        .ignore()
                        .query(&mut c)
                        .unwrap();
                }
                round
            })
        })
        .collect();
    let mut admin = server.conn(Mode::Tls);
    let started: String = redis::cmd("BGSAVE").query(&mut admin).unwrap();
    assert_eq!(started, "Background saving started");
    let again: redis::RedisResult<String> = redis::cmd("BGSAVE").query(&mut admin);
    assert!(again.unwrap_err().to_string().contains("Background save already in progress"));
    assert!(server.wait_log("Background saving terminated with success"), "{}", server.log());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let rounds: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(rounds > 0);
    assert_eq!(info_field(&mut admin, "rdb_bgsave_in_progress"), "0");
    assert_eq!(info_field(&mut admin, "rdb_last_bgsave_status"), "ok");
    let presaved: u64 = info_field(&mut admin, "rdb_last_cow_size").parse().unwrap();
    assert!(presaved > 0, "the writers changed keys the save had not reached: they were saved first");

    let load = TempDir::new("bgsave-load");
    std::fs::copy(server.data_dir.join("dump.rdb"), load.file("dump.rdb")).unwrap();
    check_rdb(&load.file("dump.rdb"));
    let loaded = Server::with(common::Opts {
        extra: vec!["--dir".into(), load.path(), "--save".into(), "".into()],
        ..Default::default()
    });
    let mut c = loaded.conn(Mode::Plain);
    assert_eq!(accounts_total(&mut c), 1000, "the snapshot saw half a transaction");
    for i in 0..pairs {
        let (a, b): (String, String) =
            redis::cmd("MGET").arg(pair(i, 0)).arg(pair(i, 1)).query(&mut c).unwrap();
        assert_eq!(a, b, "pair {i}: the snapshot saw half a transaction");
    }
    let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert!(keys > 100_000, "{keys} keys");
}

#[test]
fn a_kill_during_a_background_save_leaves_the_previous_dump() {
    let dir = TempDir::new("kill-bgsave");
    let opts = common::Opts {
        extra: vec!["--dir".into(), dir.path(), "--save".into(), "".into()],
        ..Default::default()
    };
    let server = Server::with(opts.clone());
    let mut c = server.conn(Mode::Plain);
    fill(&mut c, "old", 1000, 10);
    let () = redis::cmd("SAVE").query(&mut c).unwrap();
    let before = std::fs::read(dir.file("dump.rdb")).unwrap();
    // ~100 MB: the save is still writing when the kill comes.
    fill(&mut c, "new", 100_000, 1000);
    let started: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(started, "Background saving started");
    assert_eq!(info_field(&mut c, "rdb_bgsave_in_progress"), "1");
    drop(server); // SIGKILL
    assert_eq!(std::fs::read(dir.file("dump.rdb")).unwrap(), before, "the previous dump is untouched");
    let server = Server::with(opts);
    let mut c = server.conn(Mode::Tls);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(keys, 1000);
}

#[test]
fn save_points_save_in_the_background_and_a_failed_save_stops_writes() {
    let dir = TempDir::new("save-points");
    let server = Server::with(common::Opts::default().arg("dir", &dir.path()).arg("save", "1 1"));
    let mut c = server.conn(Mode::Tls);
    let save: String =
        redis::cmd("CONFIG").arg("GET").arg("save").query::<Vec<String>>(&mut c).unwrap().remove(1);
    assert_eq!(save, "1 1");
    let () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    assert!(server.wait_log("changes in 1 seconds. Saving..."), "{}", server.log());
    assert!(server.wait_log_count("Background saving terminated with success", 1), "{}", server.log());
    assert!(dir.file("dump.rdb").exists());
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");

    // A directory that disappears: the next save point fails, and writes stop.
    let gone = TempDir::new("save-points-gone");
    let () = redis::cmd("CONFIG").arg("SET").arg("dir").arg(gone.path()).query(&mut c).unwrap();
    drop(gone);
    let () = redis::cmd("SET").arg("k2").arg("v").query(&mut c).unwrap();
    assert!(server.wait_log("Background saving error"), "{}", server.log());
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "err");
    let misconf = "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist to disk. \
                   Commands that may modify the data set are disabled, because this instance is configured to report \
                   errors during writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). Please check \
                   the Redis logs for details about the RDB error.";
    let mut raw = server.raw(Mode::Plain);
    assert_eq!(raw.request(&[b"SET", b"k3", b"v"]), format!("-{misconf}\r\n").into_bytes());
    assert_eq!(raw.request(&[b"PING"]), format!("-{misconf}\r\n").into_bytes());
    assert_eq!(raw.request(&[b"GET", b"k"]), b"$1\r\nv\r\n");
    // Without the option, writes go on; a successful save clears the error.
    let () =
        redis::cmd("CONFIG").arg("SET").arg("stop-writes-on-bgsave-error").arg("no").query(&mut c).unwrap();
    assert_eq!(raw.request(&[b"SET", b"k3", b"v"]), b"+OK\r\n");
    let () =
        redis::cmd("CONFIG").arg("SET").arg("stop-writes-on-bgsave-error").arg("yes").query(&mut c).unwrap();
    let () = redis::cmd("CONFIG").arg("SET").arg("dir").arg(dir.path()).query(&mut c).unwrap();
    let () = redis::cmd("CONFIG").arg("SET").arg("save").arg("").query(&mut c).unwrap();
    assert_eq!(raw.request(&[b"SET", b"k4", b"v"]), b"+OK\r\n", "no save points: no MISCONF");
    let () = redis::cmd("CONFIG").arg("SET").arg("save").arg("3600 1").query(&mut c).unwrap();
    let started: String = redis::cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(started, "Background saving started");
    assert!(server.wait_log_count("Background saving terminated with success", 2), "{}", server.log());
    assert_eq!(raw.request(&[b"SET", b"k5", b"v"]), b"+OK\r\n");
    assert_eq!(info_field(&mut c, "rdb_last_bgsave_status"), "ok");
}

#[test]
fn sigterm_saves_only_when_save_points_are_set() {
    let dir = TempDir::new("sigterm");
    let with_points = common::Opts::default().arg("dir", &dir.path());
    let server = Server::with(with_points.clone());
    let mut c = server.conn(Mode::Plain);
    fill(&mut c, "kept", 500, 10);
    assert_eq!(server.terminate(), Some(0));
    let server = Server::with(with_points.arg("save", ""));
    let mut c = server.conn(Mode::Tls);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(keys, 500, "SIGTERM saved, with Redis's default save points");
    fill(&mut c, "lost", 500, 10);
    assert_eq!(server.terminate(), Some(0));
    let server = Server::with(common::Opts::default().arg("dir", &dir.path()));
    let mut c = server.conn(Mode::Plain);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(keys, 500, "save \"\": SIGTERM did not save");
}

#[test]
fn flushall_saves_the_empty_dataset_and_bgsave_in_multi_is_scheduled() {
    let dir = TempDir::new("flushall");
    let opts = common::Opts::default().arg("dir", &dir.path());
    let server = Server::with(opts.clone());
    let mut c = server.conn(Mode::Tls);
    fill(&mut c, "k", 300, 10);
    let () = redis::cmd("SAVE").query(&mut c).unwrap();
    let () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    assert_eq!(info_field(&mut c, "rdb_changes_since_last_save"), "0");
    fill(&mut c, "after", 10, 10);
    let replies: Vec<String> = redis::pipe().atomic().cmd("BGSAVE").query(&mut c).unwrap();
    assert_eq!(replies, vec!["Background saving scheduled".to_owned()]);
    assert!(server.wait_log("Background saving terminated with success"), "{}", server.log());
    drop(server);
    let server = Server::with(opts.clone().arg("save", ""));
    let mut c = server.conn(Mode::Plain);
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert_eq!(keys.len(), 10, "the scheduled save ran after FLUSHALL's: {keys:?}");
    let () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
    drop(server);
    let server = Server::with(opts);
    let mut c = server.conn(Mode::Plain);
    let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
    assert_eq!(keys, 10, "without save points FLUSHALL saves nothing");
}

#[test]
fn debug_reload_round_trips_the_dataset_and_is_refused_as_redis_refuses_it() {
    let server = Server::with(common::Opts::default().arg("enable-debug-command", "local"));
    for mode in MODES {
        let mut c = server.conn(mode);
        let () = redis::cmd("FLUSHALL").query(&mut c).unwrap();
        populate_with_dbs(&mut c);
        let before = snapshot_of(&mut c);
        let () = redis::cmd("DEBUG").arg("RELOAD").query(&mut c).unwrap();
        assert_eq!(snapshot_of(&mut c), before, "{mode:?}");
        let () = redis::cmd("DEBUG").arg("RELOAD").arg("NOSAVE").arg("NOFLUSH").query(&mut c).unwrap();
        assert_eq!(snapshot_of(&mut c), before, "{mode:?}");
    }
    let mut raw = server.raw(Mode::Plain);
    let redis = RedisServer::with(&["--enable-debug-command", "local"]);
    for args in [&[&b"DEBUG"[..], b"RELOAD", b"BOGUS"][..], &[b"DEBUG", b"NOSUCH"]] {
        assert_eq!(raw.request(args), redis.raw().request(args), "{args:?}");
    }
    let refused = Server::start();
    let reference = RedisServer::start();
    let args: &[&[u8]] = &[b"DEBUG", b"RELOAD"];
    assert_eq!(refused.raw(Mode::Plain).request(args), reference.raw().request(args));
}
