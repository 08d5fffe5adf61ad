//! Values in Redis's RDB form against Debian's redis-server: DUMP payloads move both ways with
//! identical contents, for every type in its small and large encodings, plain and TLS; small
//! values serialize byte for byte as Redis serializes them.

mod common;

use common::{Mode, RedisServer, Server, MODES};
use redis::{Connection, Value};

/// Builds, over `c`, one key of every type in each of its encodings (at Redis's default limits).
fn populate(c: &mut Connection) -> Vec<String> {
    let mut keys = Vec::new();
    let mut run = |args: Vec<String>| {
        let mut cmd = redis::cmd(&args[0]);
        args[1..].iter().for_each(|a| {
            cmd.arg(a);
        });
        let _: Value = cmd.query(c).unwrap();
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    run(s(&["SET", "str:short", "hello"]));
    run(s(&["SET", "str:int", "12345"]));
    run(s(&["SET", "str:neg", "-129"]));
    run(s(&["SET", "str:big-int", "3000000000"]));
    run(s(&["SET", "str:long", &"abcdefgh".repeat(200)]));
    run(s(&["SET", "str:empty", ""]));
    run(s(&["RPUSH", "list:small", "a", "1", "-70000", "", "x"]));
    let mut big = vec!["RPUSH".to_string(), "list:big".into()];
    big.extend((0..5000).map(|i| format!("element-{i}-{}", "y".repeat(i % 50))));
    run(big);
    let mut one_huge =
        vec!["RPUSH".to_string(), "list:huge-element".into(), "z".repeat(20_000), "tail".into()];
    one_huge.push("q".into());
    run(one_huge);
    let mut ints = vec!["SADD".to_string(), "set:intset".into()];
    ints.extend((0..100).map(|i| (i * 7919 - 300_000).to_string()));
    run(ints);
    let mut words = vec!["SADD".to_string(), "set:table".into()];
    words.extend((0..300).map(|i| format!("member-{i}")));
    run(words);
    let mut many_ints = vec!["SADD".to_string(), "set:many-ints".into()];
    many_ints.extend((0..600).map(|i| i.to_string()));
    run(many_ints);
    run(s(&["HSET", "hash:small", "f1", "v1", "f2", "22", "f3", ""]));
    let mut wide = vec!["HSET".to_string(), "hash:table".into()];
    (0..200).for_each(|i| wide.extend([format!("field-{i}"), format!("value-{i}")]));
    run(wide);
    run(s(&["HSET", "hash:long-value", "f", &"v".repeat(100)]));
    run(s(&["ZADD", "zset:small", "1", "a", "2.5", "b", "-3", "c", "inf", "d", "-inf", "e"]));
    let mut ranked = vec!["ZADD".to_string(), "zset:skiplist".into()];
    (0..300).for_each(|i| ranked.extend([format!("{}", f64::from(i) / 7.0), format!("member-{i}")]));
    run(ranked);
    run(s(&["ZADD", "zset:long-member", "1", &"m".repeat(100)]));
    for key in [
        "str:short",
        "str:int",
        "str:neg",
        "str:big-int",
        "str:long",
        "str:empty",
        "list:small",
        "list:big",
        "list:huge-element",
        "set:intset",
        "set:table",
        "set:many-ints",
        "hash:small",
        "hash:table",
        "hash:long-value",
        "zset:small",
        "zset:skiplist",
        "zset:long-member",
    ] {
        keys.push(key.to_string());
    }
    keys
}

/// A key's type and contents, in an order that does not depend on the server.
fn contents(c: &mut Connection, key: &str) -> (String, Vec<String>) {
    let kind: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    let mut items: Vec<String> = match kind.as_str() {
        "string" => vec![redis::cmd("GET").arg(key).query(c).unwrap()],
        "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(c).unwrap(),
        "set" => redis::cmd("SMEMBERS").arg(key).query(c).unwrap(),
        "hash" => redis::cmd("HGETALL").arg(key).query(c).unwrap(),
        "zset" => redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query(c).unwrap(),
        other => panic!("{key}: type {other}"),
    };
    if kind == "set" {
        items.sort();
    }
    if kind == "hash" {
        let mut pairs: Vec<String> = items.chunks(2).map(|p| format!("{}={}", p[0], p[1])).collect();
        pairs.sort();
        items = pairs;
    }
    (kind, items)
}

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
