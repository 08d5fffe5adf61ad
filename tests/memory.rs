//! Bounded memory with real clients: `maxmemory` under a writer that fills ten times the limit
//! (1 and 2 shards, plain and TLS), `-OOM` under noeviction with reads and deletes going on,
//! volatile policies that take only keys with a TTL, LRU and LFU keeping what is used, a
//! lowered limit reached without writes, and OBJECT IDLETIME / FREQ.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{resp, Mode, Opts, Server, MODES};
use redis::Connection;

/// A field of INFO (every section).
fn info(c: &mut Connection, field: &str) -> u64 {
    let text: String = redis::cmd("INFO").arg("everything").query(c).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no {field}"))
}

fn config_set(c: &mut Connection, name: &str, value: impl ToString) {
    let () = redis::cmd("CONFIG").arg("SET").arg(name).arg(value.to_string()).query(c).unwrap();
}

/// A deterministic stream of sizes in `lo..hi`.
fn sizes(seed: u64, lo: usize, hi: usize) -> impl Iterator<Item = usize> {
    let mut x = seed | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lo + (x as usize) % (hi - lo)
    })
}

/// Writes `total` bytes of values of random sizes under `prefix`, 10 SETs per pipelined batch;
/// returns how many OOM errors came back.
fn fill(server: &Server, mode: Mode, prefix: &str, total: usize, ttl: Option<u64>) -> usize {
    let mut raw = server.raw(mode);
    let (mut written, mut i, mut ooms) = (0, 0usize, 0);
    let mut sizes = sizes(total as u64 ^ prefix.len() as u64, 100, 8_000);
    while written < total {
        let mut batch = Vec::new();
        for _ in 0..10 {
            let n = sizes.next().unwrap();
            let key = format!("{prefix}{i}");
            let value = vec![b'v'; n];
            batch.extend(match ttl {
                Some(t) => resp(&[b"SET", key.as_bytes(), &value, b"EX", t.to_string().as_bytes()]),
                None => resp(&[b"SET", key.as_bytes(), &value]),
            });
            written += n;
            i += 1;
        }
        raw.send(&batch);
        for _ in 0..10 {
            let reply = raw.reply();
            if reply.starts_with(b"-OOM") {
                ooms += 1;
            } else {
                assert_eq!(reply, b"+OK\r\n", "{}", String::from_utf8_lossy(&reply));
            }
        }
    }
    ooms
}

#[test]
fn a_writer_filling_ten_times_maxmemory_stays_within_five_percent() {
    for threads in [1, 2] {
        for mode in MODES {
            let server =
                Server::with(Opts { threads, ..Opts::default() }.arg("maxmemory-policy", "allkeys-lru"));
            let mut c = server.conn(Mode::Plain);
            let limit = info(&mut c, "used_memory") + (8 << 20);
            config_set(&mut c, "maxmemory", limit);
            assert_eq!(info(&mut c, "maxmemory"), limit);
            let (stop, peak) = (AtomicBool::new(false), AtomicU64::new(0));
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    let mut s = server.conn(Mode::Plain);
                    while !stop.load(Ordering::Relaxed) {
                        peak.fetch_max(info(&mut s, "used_memory"), Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                });
                let ooms = fill(&server, mode, "k:", 80 << 20, None);
                stop.store(true, Ordering::Relaxed);
                assert_eq!(ooms, 0, "allkeys-lru always has a key to evict");
            });
            let peak = peak.load(Ordering::Relaxed);
            assert!(
                peak <= limit + limit / 20,
                "threads {threads} {mode:?}: used_memory reached {peak}, limit {limit}"
            );
            assert!(info(&mut c, "evicted_keys") > 1_000);
        }
    }
}

#[test]
fn a_skewed_keyspace_is_evicted_where_it_lives() {
    // Every key on one shard (one hashtag): that shard evicts, the other has nothing to give.
    let server = Server::with(Opts { threads: 2, ..Opts::default() }.arg("maxmemory-policy", "allkeys-lfu"));
    let mut c = server.conn(Mode::Plain);
    let limit = info(&mut c, "used_memory") + (8 << 20);
    config_set(&mut c, "maxmemory", limit);
    assert_eq!(fill(&server, Mode::Tls, "{tenant}:", 40 << 20, None), 0);
    let used = info(&mut c, "used_memory");
    assert!(used <= limit + limit / 20, "used_memory {used}, limit {limit}");
    assert!(info(&mut c, "evicted_keys") > 1_000);
}

#[test]
fn noeviction_refuses_what_grows_memory_while_reads_and_deletes_go_on() {
    let server = Server::start();
    let mut c = server.conn(Mode::Plain);
    let () = redis::cmd("SET").arg("kept").arg("1").query(&mut c).unwrap();
    let limit = info(&mut c, "used_memory") + (2 << 20);
    config_set(&mut c, "maxmemory", limit);
    let ooms = fill(&server, Mode::Tls, "k:", 8 << 20, None);
    assert!(ooms > 0, "no write was refused past maxmemory");
    // Well over the limit from here on (the writes stopped right at it).
    config_set(&mut c, "maxmemory", limit - (1 << 20));
    let err = redis::cmd("SET").arg("x").arg("y").query::<()>(&mut c).unwrap_err();
    assert_eq!(err.code(), Some("OOM"));
    assert_eq!(err.detail(), Some("command not allowed when used memory > 'maxmemory'."));
    // Reads work; a command queued into MULTI is refused and fails the transaction.
    let v: String = redis::cmd("GET").arg("kept").query(&mut c).unwrap();
    assert_eq!(v, "1");
    let mut raw = server.raw(Mode::Plain);
    raw.send(&[resp(&[b"MULTI"]), resp(&[b"GET", b"kept"]), resp(&[b"EXEC"])].concat());
    assert_eq!(raw.reply(), b"+OK\r\n");
    assert!(raw.reply().starts_with(b"-OOM"));
    assert!(raw.reply().starts_with(b"-EXECABORT"));
    // Deleting makes room again.
    let mut deleted = 0;
    for i in 0..2_000 {
        deleted += redis::cmd("DEL").arg(format!("k:{i}")).query::<i64>(&mut c).unwrap();
    }
    assert!(deleted > 0);
    let () = redis::cmd("SET").arg("x").arg("y").query(&mut c).unwrap();
    assert_eq!(info(&mut c, "evicted_keys"), 0);
}

#[test]
fn volatile_policies_evict_only_keys_with_a_ttl() {
    for policy in ["volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"] {
        let server = Server::with(Opts::default().arg("maxmemory-policy", policy));
        let mut c = server.conn(Mode::Plain);
        let limit = info(&mut c, "used_memory") + (4 << 20);
        config_set(&mut c, "maxmemory", limit);
        assert_eq!(fill(&server, Mode::Plain, "keep:", 1 << 20, None), 0);
        let ooms = fill(&server, Mode::Plain, "ttl:", 16 << 20, Some(3_600));
        assert_eq!(ooms, 0, "{policy}: keys with a TTL were there to evict");
        assert!(info(&mut c, "evicted_keys") > 0);
        let left: i64 = redis::cmd("EXISTS")
            .arg((0..100).map(|i| format!("keep:{i}")).collect::<Vec<_>>())
            .query(&mut c)
            .unwrap();
        assert_eq!(left, 100, "{policy} evicted a key without a TTL");
        // Without keys that may go, a write that grows memory is refused.
        let ooms = fill(&server, Mode::Plain, "more:", 16 << 20, None);
        assert!(ooms > 0, "{policy}: no OOM once nothing may be evicted");
        // Refused, not let through now and then: memory stays at the limit.
        let used = info(&mut c, "used_memory");
        assert!(used <= limit + limit / 20, "{policy}: used_memory {used} past the limit {limit}");
    }
}

#[test]
fn volatile_ttl_evicts_the_nearest_expiries_first() {
    // Samples as many as Redis's tests use for its ordering.
    let server =
        Server::with(Opts::default().arg("maxmemory-policy", "volatile-ttl").arg("maxmemory-samples", "10"));
    let mut c = server.conn(Mode::Plain);
    let limit = info(&mut c, "used_memory") + (2 << 20);
    let mut raw = server.raw(Mode::Plain);
    // 4 000 keys of 1 KB, key i expiring in 10 000 + i seconds.
    for i in 0..4_000u32 {
        raw.send(&resp(&[
            b"SET",
            format!("t:{i}").as_bytes(),
            &[b'x'; 1_000],
            b"EX",
            (10_000 + i).to_string().as_bytes(),
        ]));
        assert_eq!(raw.reply(), b"+OK\r\n");
    }
    config_set(&mut c, "maxmemory", limit);
    // The limit reached: a write starts it, the cron finishes it.
    let () = redis::cmd("SET").arg("t:last").arg("1").query(&mut c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while info(&mut c, "used_memory") > limit + limit / 50 {
        assert!(Instant::now() < deadline, "eviction never reached the limit");
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors: Vec<u32> = (0..4_000)
        .filter(|i| redis::cmd("EXISTS").arg(format!("t:{i}")).query::<i64>(&mut c).unwrap() == 1)
        .collect();
    assert!(!survivors.is_empty() && survivors.len() < 4_000);
    let late = survivors.iter().filter(|&&i| i >= 4_000 - survivors.len() as u32 * 3 / 2).count();
    assert!(
        late * 10 >= survivors.len() * 9,
        "survivors are not the latest expiries: {late} of {}",
        survivors.len()
    );
}

#[test]
fn lru_keeps_a_hot_set_through_a_cold_flood_and_lfu_keeps_the_frequent_keys() {
    for (policy, threads) in [("allkeys-lru", 1), ("allkeys-lru", 2), ("allkeys-lfu", 1), ("allkeys-lfu", 2)]
    {
        let server = Server::with(Opts { threads, ..Opts::default() }.arg("maxmemory-policy", policy));
        let mut c = server.conn(Mode::Plain);
        let limit = info(&mut c, "used_memory") + (4 << 20);
        config_set(&mut c, "maxmemory", limit);
        let mut raw = server.raw(Mode::Plain);
        let hot: Vec<String> = (0..500).map(|i| format!("hot:{i}")).collect();
        for k in &hot {
            raw.send(&resp(&[b"SET", k.as_bytes(), &[b'h'; 1_000]]));
            assert_eq!(raw.reply(), b"+OK\r\n");
        }
        let read_hot = |raw: &mut common::Raw, times: usize| {
            for _ in 0..times {
                let batch: Vec<u8> = hot.iter().flat_map(|k| resp(&[b"GET", k.as_bytes()])).collect();
                raw.send(&batch);
                for _ in &hot {
                    raw.reply();
                }
            }
        };
        // LFU: the hot keys are read often first; LRU: they are read between the cold writes.
        // 100 reads take a counter to about 9 (log factor 10), so the one step of decay a
        // minute boundary during the flood brings (decay time 1) cannot tie a hot key with the
        // cold keys' 5; after 30 reads, one in sixteen stood at 6 and went with the cold ones.
        read_hot(&mut raw, if policy == "allkeys-lfu" { 100 } else { 1 });
        // A cold flood of 5x the limit, over at least 3 s (the LRU clock counts seconds).
        let started = Instant::now();
        let mut i = 0;
        while i < 20_000 || started.elapsed() < Duration::from_secs(3) {
            assert!(started.elapsed() < Duration::from_secs(120), "flood too slow");
            let batch: Vec<u8> = (i..i + 200)
                .flat_map(|j| resp(&[b"SET", format!("cold:{j}").as_bytes(), &[b'c'; 1_000]]))
                .collect();
            raw.send(&batch);
            for _ in 0..200 {
                assert_eq!(raw.reply(), b"+OK\r\n");
            }
            i += 200;
            if policy == "allkeys-lru" {
                read_hot(&mut raw, 1);
            }
        }
        let left: i64 = redis::cmd("EXISTS").arg(&hot).query(&mut c).unwrap();
        assert!(
            left * 100 >= 95 * hot.len() as i64,
            "{policy} threads {threads}: {left} of {} hot keys left",
            hot.len()
        );
        assert!(info(&mut c, "evicted_keys") > 10_000);
    }
}

#[test]
fn a_lowered_maxmemory_is_reached_without_writes() {
    let server = Server::with(Opts::default().arg("maxmemory-policy", "allkeys-random"));
    let mut c = server.conn(Mode::Plain);
    let base = info(&mut c, "used_memory");
    assert_eq!(fill(&server, Mode::Plain, "k:", 24 << 20, None), 0);
    let limit = base + (4 << 20);
    config_set(&mut c, "maxmemory", limit);
    let deadline = Instant::now() + Duration::from_secs(20);
    while info(&mut c, "used_memory") > limit + limit / 20 {
        assert!(Instant::now() < deadline, "still {} over {limit}", info(&mut c, "used_memory"));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(info(&mut c, "evicted_keys") > 0);
}

#[test]
fn object_idletime_and_freq_follow_accesses_as_redis() {
    let server = Server::start();
    let mut c = server.conn(Mode::Plain);
    let () = redis::cmd("SET").arg("k").arg("v").query(&mut c).unwrap();
    let idle = |c: &mut Connection| redis::cmd("OBJECT").arg("IDLETIME").arg("k").query::<i64>(c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while idle(&mut c) < 2 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(50));
    }
    // Introspection is no access; a read is.
    let _: String = redis::cmd("TYPE").arg("k").query(&mut c).unwrap();
    let _: i64 = redis::cmd("EXISTS").arg("k").query(&mut c).unwrap();
    let _: i64 = redis::cmd("TTL").arg("k").query(&mut c).unwrap();
    assert!(idle(&mut c) >= 2);
    let _: String = redis::cmd("GET").arg("k").query(&mut c).unwrap();
    assert_eq!(idle(&mut c), 0);
    let err = redis::cmd("OBJECT").arg("FREQ").arg("k").query::<i64>(&mut c).unwrap_err();
    assert!(err.to_string().contains("An LFU maxmemory policy is not selected"), "{err}");
    config_set(&mut c, "maxmemory-policy", "allkeys-lfu");
    let () = redis::cmd("SET").arg("f").arg("v").query(&mut c).unwrap();
    let freq = |c: &mut Connection| redis::cmd("OBJECT").arg("FREQ").arg("f").query::<i64>(c).unwrap();
    assert_eq!(freq(&mut c), 5);
    for _ in 0..20 {
        let _: String = redis::cmd("GET").arg("f").query(&mut c).unwrap();
    }
    assert!(freq(&mut c) > 5);
    let err = redis::cmd("OBJECT").arg("IDLETIME").arg("f").query::<i64>(&mut c).unwrap_err();
    assert!(err.to_string().contains("An LFU maxmemory policy is selected"), "{err}");
}

/// Starts a `SET key <value of len bytes>` and sends `sent` bytes of the value, leaving the
/// request unfinished: the server holds it in the client's query buffer.
fn partial_set(raw: &mut common::Raw, key: &str, len: usize, sent: usize) {
    raw.send(format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${len}\r\n", key.len()).as_bytes());
    raw.send(&vec![b'q'; sent]);
}

/// Sends the rest of what [`partial_set`] started; expects `+OK`.
fn finish_set(raw: &mut common::Raw, len: usize, sent: usize) {
    raw.send(&[vec![b'q'; len - sent], b"\r\n".to_vec()].concat());
    assert_eq!(raw.reply(), b"+OK\r\n");
}

#[test]
fn maxmemory_clients_drops_the_largest_clients_first_and_spares_no_evict_ones() {
    let server = Server::start();
    let mut c = server.conn(Mode::Plain);
    let no_evict =
        |raw: &mut common::Raw| assert_eq!(raw.request(&[b"CLIENT", b"NO-EVICT", b"on"]), b"+OK\r\n");
    no_evict(&mut server.raw(Mode::Plain));
    // The admin connection is exempt, so that it sees the outcome.
    let () = redis::cmd("CLIENT").arg("NO-EVICT").arg("on").query(&mut c).unwrap();
    config_set(&mut c, "maxmemory-clients", "3mb");
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-clients").query(&mut c).unwrap();
    assert_eq!(got[1], (3 << 20).to_string());
    // Two clients hold large unfinished requests, one over TLS: together over the limit, so
    // the larger goes and the smaller stays.
    let (big, small) = (4 << 20, 1 << 20);
    let mut larger = server.raw(Mode::Plain);
    partial_set(&mut larger, "a", big, big - 1000);
    let mut smaller = server.raw(Mode::Tls);
    partial_set(&mut smaller, "b", small, small - 1000);
    larger.read_to_close();
    assert!(info(&mut c, "evicted_clients") >= 1);
    finish_set(&mut smaller, small, small - 1000);
    // A no-evict client over the limit by itself stays; an evictable one goes, however small.
    let mut exempt = server.raw(Mode::Tls);
    no_evict(&mut exempt);
    partial_set(&mut exempt, "c", big, big - 1000);
    let mut victim = server.raw(Mode::Plain);
    partial_set(&mut victim, "d", 300 << 10, 200 << 10);
    victim.read_to_close();
    finish_set(&mut exempt, big, big - 1000);
    let flags: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
    assert!(flags.contains("flags=e"), "{flags}");
    // A percentage of maxmemory shows as given.
    config_set(&mut c, "maxmemory-clients", "10%");
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("maxmemory-clients").query(&mut c).unwrap();
    assert_eq!(got[1], "10%");
}

#[test]
fn memory_usage_stats_doctor_and_object_encodings_as_redis_reports_them() {
    let server = Server::start();
    let redis_server = common::RedisServer::start();
    let mut c = server.conn(Mode::Plain);
    let mut theirs = redis::Client::open(format!("redis://127.0.0.1:{}", redis_server.port))
        .unwrap()
        .get_connection()
        .unwrap();
    // The same values, the same thresholds (set through their ziplist aliases): the same
    // encodings and refcounts.
    for conn in [&mut c, &mut theirs] {
        for (name, value) in [
            ("hash-max-ziplist-entries", "4"),
            ("zset-max-ziplist-value", "8"),
            ("set-max-intset-entries", "3"),
        ] {
            config_set(conn, name, value);
        }
        let () = redis::cmd("SET").arg("int").arg("123").query(conn).unwrap();
        let () = redis::cmd("SET").arg("big").arg("4000000000000").query(conn).unwrap();
        let () = redis::cmd("SET").arg("short").arg("x".repeat(44)).query(conn).unwrap();
        let () = redis::cmd("SET").arg("long").arg("x".repeat(45)).query(conn).unwrap();
        let _: i64 = redis::cmd("RPUSH").arg("list").arg("a").query(conn).unwrap();
        let _: i64 =
            redis::cmd("HSET").arg("h4").arg(&["a", "1", "b", "2", "c", "3", "d", "4"]).query(conn).unwrap();
        let _: i64 = redis::cmd("HSET")
            .arg("h5")
            .arg(&["a", "1", "b", "2", "c", "3", "d", "4", "e", "5"])
            .query(conn)
            .unwrap();
        let _: i64 = redis::cmd("SADD").arg("s3").arg(&["1", "2", "3"]).query(conn).unwrap();
        let _: i64 = redis::cmd("SADD").arg("s4").arg(&["1", "2", "3", "4"]).query(conn).unwrap();
        let _: i64 = redis::cmd("SADD").arg("sx").arg(&["1", "x"]).query(conn).unwrap();
        let _: i64 = redis::cmd("ZADD").arg("z8").arg(&["1", "abcdefgh"]).query(conn).unwrap();
        let _: i64 = redis::cmd("ZADD").arg("z9").arg(&["1", "abcdefghi"]).query(conn).unwrap();
    }
    for key in ["int", "big", "short", "long", "list", "h4", "h5", "s3", "s4", "sx", "z8", "z9"] {
        for what in ["ENCODING", "REFCOUNT"] {
            let mine: redis::Value = redis::cmd("OBJECT").arg(what).arg(key).query(&mut c).unwrap();
            let redis: redis::Value = redis::cmd("OBJECT").arg(what).arg(key).query(&mut theirs).unwrap();
            assert_eq!(mine, redis, "OBJECT {what} {key}");
        }
    }
    // MEMORY USAGE: the key and what it holds; options before the key; nil for none.
    let usage = |c: &mut Connection, key: &str| {
        redis::cmd("MEMORY").arg("USAGE").arg(key).query::<Option<i64>>(c).unwrap()
    };
    let long = usage(&mut c, "long").unwrap();
    assert!((45..400).contains(&long), "{long}");
    assert!(usage(&mut c, "h5").unwrap() > usage(&mut c, "h4").unwrap());
    assert_eq!(usage(&mut c, "missing"), None);
    let err = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg("missing")
        .arg("SAMPLES")
        .arg("-1")
        .query::<()>(&mut c)
        .unwrap_err();
    assert_eq!(err.code(), Some("ERR"));
    assert!(err.to_string().contains("syntax error"), "{err}");
    let all: i64 = redis::cmd("MEMORY").arg("USAGE").arg("h5").arg("SAMPLES").arg("0").query(&mut c).unwrap();
    assert!(all > 0);
    // MEMORY STATS: Redis's fields in its order, a map for the database with keys.
    let stats: Vec<redis::Value> = redis::cmd("MEMORY").arg("STATS").query(&mut c).unwrap();
    let names: Vec<String> =
        stats.iter().step_by(2).map(|v| redis::from_redis_value_ref::<String>(v).unwrap()).collect();
    let theirs_stats: Vec<redis::Value> = redis::cmd("MEMORY").arg("STATS").query(&mut theirs).unwrap();
    let their_names: Vec<String> =
        theirs_stats.iter().step_by(2).map(|v| redis::from_redis_value_ref::<String>(v).unwrap()).collect();
    // (Which databases have keys is each server's own: a map per such database, named db.N.)
    let fixed =
        |names: &[String]| names.iter().filter(|n| !n.starts_with("db.")).cloned().collect::<Vec<_>>();
    assert_eq!(fixed(&names), fixed(&their_names));
    assert!(names.contains(&"db.0".to_owned()));
    let at = names.iter().position(|n| n == "keys.count").unwrap();
    assert_eq!(redis::from_redis_value_ref::<i64>(&stats[at * 2 + 1]).unwrap(), 12);
    let doctor: String = redis::cmd("MEMORY").arg("DOCTOR").query(&mut c).unwrap();
    assert!(doctor.starts_with("Hi Sam") || doctor.starts_with("Sam, I detected"), "{doctor}");
    let help: Vec<String> = redis::cmd("MEMORY").arg("HELP").query(&mut c).unwrap();
    let their_help: Vec<String> = redis::cmd("MEMORY").arg("HELP").query(&mut theirs).unwrap();
    assert_eq!(help, their_help);
}

#[test]
fn active_expiry_samples_by_its_effort_and_info_reports_what_it_found() {
    let server = Server::start();
    let mut c = server.conn(Mode::Plain);
    config_set(&mut c, "active-expire-effort", 10);
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("active-expire-effort")
        .arg("11")
        .query::<()>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("between 1 and 10"), "{err}");
    // Keys that expire and are never read again: active expiry alone must reclaim them.
    let mut raw = server.raw(Mode::Plain);
    let batch: Vec<u8> =
        (0..5_000).flat_map(|i| resp(&[b"SET", format!("e:{i}").as_bytes(), b"v", b"PX", b"100"])).collect();
    raw.send(&batch);
    for _ in 0..5_000 {
        assert_eq!(raw.reply(), b"+OK\r\n");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let keys: i64 = redis::cmd("DBSIZE").query(&mut c).unwrap();
        if keys == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{keys} expired keys still held");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(info(&mut c, "expired_keys"), 5_000);
    let text: String = redis::cmd("INFO").arg("stats").query(&mut c).unwrap();
    let stale: f64 =
        text.lines().find_map(|l| l.strip_prefix("expired_stale_perc:")).unwrap().parse().unwrap();
    assert!(stale > 0.0, "the cycles found expired keys: {stale}");
    for field in [
        "expired_time_cap_reached_count",
        "expire_cycle_cpu_milliseconds",
        "total_eviction_exceeded_time",
        "mem_not_counted_for_evict",
    ] {
        info(&mut c, field);
    }
}
