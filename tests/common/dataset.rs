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
    // Streams: a small one with a group, its pending entries and a consumer with none; a
    // large one over many blocks with deleted entries; an empty one that only has a group.
    run(s(&["DEL", "stream:small", "stream:big", "stream:empty"]));
    run(s(&["XADD", "stream:small", "1-1", "name", "ann", "age", "42"]));
    run(s(&["XADD", "stream:small", "1-2", "name", "bob", "age", "-7"]));
    run(s(&["XADD", "stream:small", "2-0", "other", "x"]));
    run(s(&["XGROUP", "CREATE", "stream:small", "workers", "0"]));
    run(s(&["XREADGROUP", "GROUP", "workers", "alice", "COUNT", "2", "STREAMS", "stream:small", ">"]));
    run(s(&["XGROUP", "CREATECONSUMER", "stream:small", "workers", "bob"]));
    run(s(&["XGROUP", "CREATE", "stream:small", "late", "$", "ENTRIESREAD", "3"]));
    for i in 1..=700 {
        let value = format!("{i}-{}", "w".repeat(i % 40));
        run(s(&[
            "XADD",
            "stream:big",
            &format!("{}-{}", 1000 + i / 3, i % 3),
            "field",
            &value,
            "n",
            &i.to_string(),
        ]));
    }
    for i in (5..700).step_by(50) {
        run(s(&["XDEL", "stream:big", &format!("{}-{}", 1000 + i / 3, i % 3)]));
    }
    run(s(&["XGROUP", "CREATE", "stream:empty", "g", "0", "MKSTREAM"]));
    // HyperLogLogs: strings whose bytes are Redis's registers, sparse and dense.
    run(s(&["DEL", "hll:sparse", "hll:dense"]));
    run(s(&["PFADD", "hll:sparse", "a", "b", "c"]));
    let mut many = vec!["PFADD".to_string(), "hll:dense".into()];
    many.extend((0..5000).map(|i| format!("visitor-{i}")));
    run(many);
    run(s(&["PFCOUNT", "hll:dense"]));
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
        "stream:small",
        "stream:big",
        "stream:empty",
        "hll:sparse",
        "hll:dense",
    ] {
        keys.push(key.to_string());
    }
    keys
}

/// A key's type and contents, in an order that does not depend on the server.
pub fn contents(c: &mut Connection, key: &str) -> (String, Vec<String>) {
    let kind: String = redis::cmd("TYPE").arg(key).query(c).unwrap();
    let mut items: Vec<String> = match kind.as_str() {
        "string" => {
            // Binary values (a HyperLogLog's registers) as hex.
            let bytes: Vec<u8> = redis::cmd("GET").arg(key).query(c).unwrap();
            vec![String::from_utf8(bytes)
                .unwrap_or_else(|e| e.as_bytes().iter().map(|b| format!("{b:02x}")).collect())]
        }
        "list" => redis::cmd("LRANGE").arg(key).arg(0).arg(-1).query(c).unwrap(),
        "set" => redis::cmd("SMEMBERS").arg(key).query(c).unwrap(),
        "hash" => redis::cmd("HGETALL").arg(key).query(c).unwrap(),
        "zset" => redis::cmd("ZRANGE").arg(key).arg(0).arg(-1).arg("WITHSCORES").query(c).unwrap(),
        "stream" => stream_contents(c, key),
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

/// A stream's entries, counters, groups and pending entries: what survives DUMP, RDB, the AOF
/// and replication alike (not the block layout, which an AOF rewrite packs anew, nor times).
fn stream_contents(c: &mut Connection, key: &str) -> Vec<String> {
    fn flat(v: &Value) -> String {
        match v {
            Value::Nil => "nil".into(),
            Value::Int(n) => n.to_string(),
            Value::BulkString(d) => String::from_utf8_lossy(d).into_owned(),
            Value::Array(items) => format!("[{}]", items.iter().map(flat).collect::<Vec<_>>().join(" ")),
            Value::SimpleString(s) => s.clone(),
            Value::Okay => "OK".into(),
            other => format!("{other:?}"),
        }
    }
    let mut out = Vec::new();
    let entries: Value = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query(c).unwrap();
    out.push(flat(&entries));
    let info: Value = redis::cmd("XINFO").arg("STREAM").arg(key).query(c).unwrap();
    if let Value::Array(fields) = info {
        for pair in fields.chunks(2) {
            let name = flat(&pair[0]);
            if !name.starts_with("radix-tree") {
                out.push(format!("{name}={}", flat(&pair[1])));
            }
        }
    }
    // Each group without its read counter and lag: Redis propagates a group read as XCLAIMs,
    // which leave the counter unknown on a replica or after an AOF replay.
    let groups: Value = redis::cmd("XINFO").arg("GROUPS").arg(key).query(c).unwrap();
    if let Value::Array(gs) = &groups {
        for g in gs {
            if let Value::Array(f) = g {
                out.push(f[..8].iter().map(flat).collect::<Vec<_>>().join(" "));
            }
        }
    }
    if let Value::Array(groups) = groups {
        for g in groups {
            let Value::Array(fields) = g else { continue };
            let name = flat(&fields[1]);
            let pending: Value =
                redis::cmd("XPENDING").arg(key).arg(&name).arg("-").arg("+").arg(1000).query(c).unwrap();
            // Each pending entry without its idle time: ID, consumer, deliveries.
            if let Value::Array(items) = pending {
                for item in items {
                    if let Value::Array(f) = item {
                        out.push(format!("{name}: {} {} {}", flat(&f[0]), flat(&f[1]), flat(&f[3])));
                    }
                }
            }
            let consumers: Value = redis::cmd("XINFO").arg("CONSUMERS").arg(key).arg(&name).query(c).unwrap();
            if let Value::Array(cs) = consumers {
                for cons in cs {
                    if let Value::Array(f) = cons {
                        out.push(format!("{name}: consumer {} pending {}", flat(&f[1]), flat(&f[3])));
                    }
                }
            }
        }
    }
    out
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
