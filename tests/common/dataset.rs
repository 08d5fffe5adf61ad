//! A dataset for persistence tests: one key of every type in each encoding, read back in a form
//! that does not depend on the server; temp directories; Debian's redis-server connections.

use redis::{Connection, Value};

use super::RedisServer;

/// Builds, over `c`, one key of every type in each of its encodings (at Redis's default limits).
pub fn populate(c: &mut Connection) -> Vec<String> {
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
pub fn contents(c: &mut Connection, key: &str) -> (String, Vec<String>) {
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

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("ferrokey-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    pub fn path(&self) -> String {
        self.0.display().to_string()
    }

    pub fn file(&self, name: &str) -> std::path::PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn connect_redis(redis: &RedisServer) -> Connection {
    redis::Client::open(format!("redis://127.0.0.1:{}/", redis.port)).unwrap().get_connection().unwrap()
}

/// A key as a snapshot holds it: database, name, type and contents, whether it has a TTL.
pub type Stored = (i64, String, (String, Vec<String>), bool);

/// A key with its TTL in milliseconds (-1 for none).
pub type StoredTtl = (i64, String, (String, Vec<String>), i64);

/// Every key of databases 0 and 3, with contents and whether it has a TTL.
pub fn snapshot_of(c: &mut Connection) -> Vec<Stored> {
    snapshot_with_ttls(c).into_iter().map(|(db, key, contents, ttl)| (db, key, contents, ttl > 0)).collect()
}

/// Every key of databases 0 and 3, with contents and TTL.
pub fn snapshot_with_ttls(c: &mut Connection) -> Vec<StoredTtl> {
    let mut out = Vec::new();
    for db in [0, 3] {
        let () = redis::cmd("SELECT").arg(db).query(c).unwrap();
        let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(c).unwrap();
        keys.sort();
        for key in keys {
            let ttl: i64 = redis::cmd("PTTL").arg(&key).query(c).unwrap();
            out.push((db, key.clone(), contents(c, &key), ttl));
        }
    }
    let () = redis::cmd("SELECT").arg(0).query(c).unwrap();
    out
}

pub fn populate_with_dbs(c: &mut Connection) {
    populate(c);
    let () = redis::cmd("PEXPIRE").arg("str:short").arg(3_600_000).query(c).unwrap();
    let () = redis::cmd("EXPIRE").arg("hash:table").arg(7200).query(c).unwrap();
    let () = redis::cmd("SELECT").arg(3).query(c).unwrap();
    let () = redis::cmd("SET").arg("in-db-3").arg("three").query(c).unwrap();
    let () = redis::cmd("RPUSH").arg("list-db-3").arg("x").arg("y").query(c).unwrap();
    let () = redis::cmd("SELECT").arg(0).query(c).unwrap();
}

pub fn info_field(c: &mut Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(c).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
        .unwrap_or_else(|| panic!("no {field} in {info}"))
}
