//! Keyspace notifications against Debian's redis-server: the same commands, over every type,
//! send the same events to a subscriber, key by key in the same order (keys on both shards;
//! a shard's notices keep their order, keys on different shards need not), plain TCP and TLS.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Mode, Raw, RedisServer, Server, MODES};

/// The commands whose notifications are compared: every family's writes, deletions by
/// emptying, expiries, stores, and commands that send nothing.
const SCRIPT: &[&str] = &[
    "SET s1 v",
    "SET s1 v EX 100",
    "SETNX s1 x",
    "SETNX s2 x",
    "SETEX s3 100 v",
    "GETSET s2 y",
    "APPEND s2 z",
    "SETRANGE s2 5 abc",
    "SETRANGE s2 0 \"\"",
    "INCR n1",
    "DECRBY n1 5",
    "INCRBYFLOAT n1 1.5",
    "MSET m1 a m2 b m3 c",
    "MSETNX m1 a m4 d",
    "GETDEL m1",
    "GETDEL m1",
    "GETEX s1 PERSIST",
    "GETEX s1 EX 50",
    "PERSIST s1",
    "PERSIST s1",
    "EXPIRE s3 1000",
    "EXPIRE s3 10 NX",
    "PEXPIRE s2 -1",
    "SETBIT b1 7 1",
    "SETBIT b1 7 1",
    "BITFIELD b2 SET u8 0 255",
    "BITOP AND b3 b1 b2",
    "BITOP AND b3 nosuch",
    "PFADD h1 a b c",
    "PFADD h1 a",
    "PFMERGE h2 h1",
    "LPUSH l1 a b c d",
    "RPUSH l1 e",
    "LPUSHX nolist a",
    "LINSERT l1 BEFORE a z",
    "LSET l1 0 y",
    "LREM l1 1 y",
    "LTRIM l1 0 2",
    "LPOP l1",
    "RPOP l1 5",
    "RPUSH l2 a b",
    "LMOVE l2 l3 LEFT RIGHT",
    "RPOPLPUSH l2 l3",
    "LMPOP 2 nolist l3 LEFT COUNT 1",
    "BLPOP l3 1",
    "HSET hs a 1 b 2",
    "HSETNX hs a 3",
    "HSETNX hs c 3",
    "HINCRBY hs a 5",
    "HINCRBYFLOAT hs a 0.5",
    "HDEL hs a b",
    "HDEL hs c",
    "SADD st a b c",
    "SADD st a",
    "SREM st a",
    "SMOVE st st2 b",
    "SPOP st",
    "SADD st3 x y",
    "SADD st4 y z",
    "SINTERSTORE st5 st3 st4",
    "SUNIONSTORE st6 st3 st4",
    "SDIFFSTORE st5 st3 st3",
    "SUNIONSTORE st6 st3",
    "SPOP nosuch",
    "SMOVE st3 st3 x",
    "ZADD z1 1 a 2 b 3 c",
    "ZADD z1 1 a",
    "ZADD z1 INCR 5 a",
    "ZINCRBY z1 1 b",
    "ZREM z1 c",
    "ZUNIONSTORE z2 1 z1",
    "ZINTERSTORE z3 2 z1 nosuch",
    "ZRANGESTORE z4 z1 0 0",
    "ZPOPMIN z4",
    "ZPOPMAX z1",
    "ZREMRANGEBYRANK z1 0 -1",
    "ZADD z5 1 a 2 b",
    "ZREMRANGEBYSCORE z5 0 1",
    "ZMPOP 1 z5 MIN",
    "ZUNIONSTORE z2 1 z1",
    "ZPOPMIN nosuch",
    "OBJECT ENCODING nosuch",
    "MEMORY USAGE nosuch",
    "XGROUP CREATECONSUMER nostream g c",
    "GEOADD g1 13.361389 38.115556 Palermo 15.087269 37.502669 Catania",
    "GEOSEARCHSTORE g2 g1 FROMLONLAT 15 37 BYRADIUS 200 km ASC",
    "XADD x1 1-1 f v",
    "XADD x1 MAXLEN 1 2-1 f v",
    "XTRIM x1 MAXLEN 0",
    "XADD x1 3-1 f v",
    "XDEL x1 3-1",
    "XSETID x1 5-0",
    "XGROUP CREATE x1 g1 0",
    "XGROUP CREATECONSUMER x1 g1 c1",
    "XREADGROUP GROUP g1 c2 COUNT 1 STREAMS x1 >",
    "XGROUP DELCONSUMER x1 g1 c1",
    "XGROUP SETID x1 g1 0",
    "XGROUP DESTROY x1 g1",
    "SET r1 v",
    "RENAME r1 r2",
    "RENAMENX r2 r3",
    "COPY r3 r4",
    "MOVE r4 1",
    "DEL r3 r2 nosuch",
    "UNLINK s2",
    "RPUSH so 3 1 2",
    "SORT so STORE so2",
    "SORT nosuch STORE so2",
    "SORT so STORE so3",
    "SORT so STORE so3",
    "SET r6 a",
    "SET r7 b",
    "RENAME r6 r7",
    "COPY r7 r8",
    "COPY r7 r8 REPLACE",
    "SET d1 v",
    "DUMP d1",
    "GET nosuch",
    "EXISTS nosuch",
    "SET e1 v PX 1",
];

/// Sends the script from `c` and reads what subscriber `sub` got, grouped by key: for every key,
/// its events in order (`keyspace:<event>` or `keyevent:<event>`).
fn notifications(sub: &mut Raw, c: &mut Raw, setting: &str) -> BTreeMap<String, Vec<String>> {
    assert!(c
        .request(&[b"CONFIG", b"SET", b"notify-keyspace-events", setting.as_bytes()])
        .starts_with(b"+OK"));
    let shown = c.request(&[b"CONFIG", b"GET", b"notify-keyspace-events"]);
    sub.send(&common::resp(&[b"PSUBSCRIBE", b"__key*__:*", b"the-end"]));
    sub.reply();
    sub.reply();
    for line in SCRIPT {
        let args: Vec<Vec<u8>> =
            line.split(' ').map(|a| if a == "\"\"" { Vec::new() } else { a.as_bytes().to_vec() }).collect();
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        c.request(&args);
    }
    // A key that expires: its `expired` comes when a read finds it gone.
    std::thread::sleep(Duration::from_millis(20));
    c.request(&[b"GET", b"e1"]);
    c.request(&[b"PUBLISH", b"the-end", b"x"]);
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    by_key.insert("config".into(), vec![String::from_utf8_lossy(&shown).into_owned()]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let reply = String::from_utf8_lossy(&sub.reply()).into_owned();
        let parts: Vec<&str> = reply.split("\r\n").collect();
        // *4 pmessage pattern channel message
        let (channel, message) = (parts[6], parts[8]);
        if channel == "the-end" {
            break;
        }
        let (kind, rest) = channel.split_once("__:").expect("a keyspace channel");
        let (key, event) = if kind.starts_with("__keyspace") { (rest, message) } else { (message, rest) };
        let kind = if kind.starts_with("__keyspace") { "keyspace" } else { "keyevent" };
        let db = kind_db(channel);
        by_key.entry(format!("{db}:{key}")).or_default().push(format!("{kind}:{event}"));
    }
    c.request(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""]);
    by_key
}

/// The database a channel names.
fn kind_db(channel: &str) -> &str {
    channel.split_once('@').and_then(|(_, r)| r.split_once("__")).map_or("?", |(db, _)| db)
}

#[test]
fn notifications_follow_redis_server_for_every_type() {
    for setting in ["KEA", "KEAnm", "Kl", "E$x"] {
        let redis = RedisServer::start();
        let theirs = notifications(&mut redis.raw(), &mut redis.raw(), setting);
        let server = Server::start();
        for mode in MODES {
            // The subscriber on one core, the writer on the other.
            let mut sub = server.raw_on_core(mode, 0);
            let mut c = server.raw_on_core(mode, 1);
            assert!(c.request(&[b"FLUSHALL"]).starts_with(b"+OK"));
            let ours = notifications(&mut sub, &mut c, setting);
            let keys: std::collections::BTreeSet<&String> = theirs.keys().chain(ours.keys()).collect();
            let diffs: Vec<String> = keys
                .into_iter()
                .filter(|k| ours.get(*k) != theirs.get(*k))
                .map(|k| format!("{k}: ferrokey {:?}, redis {:?}", ours.get(k), theirs.get(k)))
                .collect();
            assert!(diffs.is_empty(), "{setting} {mode:?}:\n{}", diffs.join("\n"));
        }
    }
}

#[test]
fn expired_and_evicted_keys_are_notified_from_every_shard() {
    let server = Server::start();
    let mut c = server.conn(Mode::Plain);
    let mut sub = server.raw(Mode::Tls);
    let () = redis::cmd("CONFIG").arg("SET").arg("notify-keyspace-events").arg("Exe").query(&mut c).unwrap();
    sub.send(&common::resp(&[b"SUBSCRIBE", b"__keyevent@0__:expired", b"__keyevent@0__:evicted"]));
    sub.reply();
    sub.reply();
    let keys = [common::key_on("ttl", 0, 2), common::key_on("ttl", 1, 2)];
    for k in &keys {
        let () = redis::cmd("SET").arg(k).arg("v").arg("PX").arg(1).query(&mut c).unwrap();
    }
    // Active expiry finds them (no client reads them).
    let mut expired = Vec::new();
    while expired.len() < 2 {
        let reply = String::from_utf8_lossy(&sub.reply()).into_owned();
        expired.push(reply.split("\r\n").nth(6).unwrap_or_default().to_owned());
    }
    expired.sort();
    let mut wanted = keys.to_vec();
    wanted.sort();
    assert_eq!(expired, wanted);
    // Eviction: a tight maxmemory and keys written past it.
    let () =
        redis::cmd("CONFIG").arg("SET").arg("maxmemory-policy").arg("allkeys-random").query(&mut c).unwrap();
    let used: String = redis::cmd("INFO").arg("memory").query(&mut c).unwrap();
    let used: u64 =
        used.lines().find_map(|l| l.strip_prefix("used_memory:")).unwrap().trim().parse().unwrap();
    let () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(used + 200_000).query(&mut c).unwrap();
    let value = vec![b'v'; 10_000];
    for i in 0..100 {
        let _: redis::RedisResult<()> = redis::cmd("SET").arg(format!("big{i}")).arg(&value).query(&mut c);
    }
    let reply = String::from_utf8_lossy(&sub.reply()).into_owned();
    assert!(reply.contains("__keyevent@0__:evicted"), "{reply}");
    let () = redis::cmd("CONFIG").arg("SET").arg("maxmemory").arg(0).query(&mut c).unwrap();
}

/// What a subscriber to the keyspace channels of `bl`, `bz`, `bd` and `bs` sees when blocked
/// pops (and a blocked XREADGROUP) are served by pushes from another client.
fn served_after_blocking(sub: &mut Raw, blocked: &mut Raw, writer: &mut Raw) -> Vec<String> {
    assert!(writer.request(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KA"]).starts_with(b"+OK"));
    let channels: [&[u8]; 4] =
        [b"__keyspace@0__:bl", b"__keyspace@0__:bz", b"__keyspace@0__:bd", b"__keyspace@0__:bs"];
    sub.send(&common::resp(&[&[&b"SUBSCRIBE"[..]][..], &channels].concat()));
    (0..channels.len()).for_each(|_| drop(sub.reply()));
    let mut seen = Vec::new();
    let created = writer.request(&[b"XGROUP", b"CREATE", b"bs", b"g", b"$", b"MKSTREAM"]);
    assert_eq!(created, b"+OK\r\n");
    for (block, push, count) in [
        (&[&b"BLPOP"[..], b"bl", b"5"][..], &[&b"RPUSH"[..], b"bl", b"a"][..], 3),
        (&[b"BZPOPMIN", b"bz", b"5"], &[b"ZADD", b"bz", b"1", b"a"], 3),
        (&[b"BLMOVE", b"bl", b"bd", b"LEFT", b"RIGHT", b"5"], &[b"LPUSH", b"bl", b"x"], 4),
        // The group's creation first, then the add and the consumer the served read creates.
        (
            &[b"XREADGROUP", b"GROUP", b"g", b"c", b"BLOCK", b"5000", b"STREAMS", b"bs", b">"],
            &[b"XADD", b"bs", b"1-1", b"f", b"v"],
            3,
        ),
    ] {
        blocked.send(&common::resp(block));
        // Bounded wait until the client is blocked, then the push that serves it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let list = String::from_utf8_lossy(&writer.request(&[b"CLIENT", b"LIST"])).into_owned();
            if list.lines().any(|l| l.contains(" flags=b ")) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.request(push);
        blocked.reply();
        for _ in 0..count {
            let reply = String::from_utf8_lossy(&sub.reply()).into_owned();
            let parts: Vec<&str> = reply.split("\r\n").collect();
            seen.push(format!("{} {}", parts[4], parts[6]));
        }
    }
    seen
}

#[test]
fn blocked_pops_served_later_are_notified_as_redis_does() {
    let redis = RedisServer::start();
    let theirs = served_after_blocking(&mut redis.raw(), &mut redis.raw(), &mut redis.raw());
    let server = Server::start();
    let ours = served_after_blocking(
        &mut server.raw(Mode::Tls),
        &mut server.raw(Mode::Plain),
        &mut server.raw(Mode::Tls),
    );
    assert_eq!(ours, theirs);
}

/// Runs `requests` of the differential fuzz's requests (seed `seed`) from `c` with every class
/// on, and returns what subscriber `sub` got, grouped by key.
fn fuzz_notifications(
    sub: &mut Raw,
    c: &mut Raw,
    seed: u64,
    requests: usize,
) -> BTreeMap<String, Vec<String>> {
    let mut fuzz = common::fuzz::Fuzz { seed };
    c.request(&[b"FLUSHALL"]);
    assert!(c.request(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"KEA"]).starts_with(b"+OK"));
    sub.send(&common::resp(&[b"PSUBSCRIBE", b"__key*__:*", b"the-end"]));
    sub.reply();
    sub.reply();
    for _ in 0..requests {
        let req = fuzz.request();
        let args: Vec<&[u8]> = req.iter().map(|a| a.as_bytes()).collect();
        c.request(&args);
    }
    c.request(&[b"PUBLISH", b"the-end", b"x"]);
    let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let reply = common::read_reply(&mut sub.inner);
        let parts: Vec<&[u8]> = reply.split(|&b| b == b'\n').collect();
        let text =
            |i: usize| String::from_utf8_lossy(parts[i].strip_suffix(b"\r").unwrap_or(parts[i])).into_owned();
        let (channel, message) = (text(6), text(8));
        if channel == "the-end" {
            break;
        }
        let Some((kind, rest)) = channel.split_once("__:") else { continue };
        let keyspace = kind.starts_with("__keyspace");
        let (key, event) = if keyspace { (rest.to_owned(), message) } else { (message, rest.to_owned()) };
        let db = kind_db(&channel).to_owned();
        by_key
            .entry(format!("{db}:{key}"))
            .or_default()
            .push(format!("{}:{event}", if keyspace { "ks" } else { "ke" }));
    }
    c.request(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""]);
    by_key
}

#[test]
fn fuzz_notifications_match_redis_server() {
    let env =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (seed, requests) = (env("FUZZ_SEED", 0x0dd_ba11), env("FUZZ_REQUESTS", 3000) as usize);
    let redis = RedisServer::start();
    let theirs = fuzz_notifications(&mut redis.raw(), &mut redis.raw(), seed, requests);
    let server = Server::start();
    let ours = fuzz_notifications(
        &mut server.raw_on_core(Mode::Plain, 0),
        &mut server.raw_on_core(Mode::Tls, 1),
        seed,
        requests,
    );
    // Many of the requests write, and send notices.
    let sent: usize = theirs.values().map(Vec::len).sum();
    assert!(sent > requests / 10, "only {sent} notices for {requests} requests");
    let keys: std::collections::BTreeSet<&String> = theirs.keys().chain(ours.keys()).collect();
    let diffs: Vec<String> = keys
        .into_iter()
        .filter(|k| ours.get(*k) != theirs.get(*k))
        .map(|k| format!("{k}:\n  ferrokey {:?}\n  redis    {:?}", ours.get(k), theirs.get(k)))
        .collect();
    assert!(diffs.is_empty(), "{} keys differ:\n{}", diffs.len(), diffs.join("\n"));
}

#[test]
fn a_subscription_receives_the_next_command_s_notices() {
    // RESP3 lets one connection subscribe and write: in one pipeline, the SET after the
    // SUBSCRIBE is notified to it, though nobody subscribed when the batch began.
    let server = Server::start();
    for mode in MODES {
        let mut c = server.raw(mode);
        c.request(&[b"HELLO", b"3"]);
        c.request(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"K$"]);
        let mut pipeline = common::resp(&[b"SUBSCRIBE", b"__keyspace@0__:fresh"]);
        pipeline.extend(common::resp(&[b"SET", b"fresh", b"v"]));
        c.send(&pipeline);
        let mut got = String::new();
        for _ in 0..3 {
            got.push_str(&String::from_utf8_lossy(&c.reply()));
        }
        assert!(got.contains("__keyspace@0__:fresh\r\n$3\r\nset"), "{mode:?}: {got:?}");
        c.request(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""]);
    }
}
