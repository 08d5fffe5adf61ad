//! Micro-benchmarks of the per-request hot path: RESP parsing, reply encoding, hash slots.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ferrokey::internals::{
    AclCheck, CommandStats, Limits, Reply, RequestParser, Routing, ScriptRun, Slot, ZSet,
};

fn parse(c: &mut Criterion) {
    let mut pipeline = Vec::new();
    for i in 0..16 {
        pipeline
            .extend_from_slice(format!("*3\r\n$3\r\nSET\r\n$8\r\nkey:{i:04}\r\n$3\r\nxxx\r\n").as_bytes());
    }
    c.bench_function("parse 16 pipelined SETs", |b| {
        let mut parser = RequestParser::new();
        b.iter(|| {
            let mut buf = BytesMut::from(&pipeline[..]);
            let mut n = 0;
            while let Ok(Some(args)) = parser.parse(&mut buf, &Limits::default(), true) {
                n += args.len();
            }
            black_box(n)
        });
    });
}

fn encode(c: &mut Criterion) {
    let reply = Reply::Array((0..10).map(|i| Reply::bulk(format!("value-{i}"))).collect());
    c.bench_function("encode 10-element array", |b| {
        let mut out = BytesMut::with_capacity(4096);
        b.iter(|| {
            out.clear();
            reply.encode(false, &mut out);
            black_box(out.len())
        });
    });
}

fn slots(c: &mut Criterion) {
    c.bench_function("hash slot of a 16-byte key", |b| {
        b.iter(|| black_box(Slot::of(black_box(b"user:1000:profile"))).shard(2));
    });
}

/// Moving a random member of a sorted set to a random score (ZADD on an existing member):
/// the B+tree's leaf lookup and one descent, the cost that grows with the set's size.
fn zset_rescore(c: &mut Criterion) {
    for size in [1_000u64, 1_000_000] {
        let mut z = ZSet::default();
        for i in 0..size {
            z.insert(bytes::Bytes::from(format!("m:{i:012}")), i as f64);
        }
        let names: Vec<String> =
            (0..4096u64).map(|i| format!("m:{:012}", i.wrapping_mul(2_654_435_761) % size)).collect();
        let mut i = 0usize;
        c.bench_function(&format!("zset_rescore_{size}"), |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let score = (i.wrapping_mul(40_503) % size as usize) as f64;
                black_box(z.update(names[i % names.len()].as_bytes(), score))
            })
        });
    }
}

/// Routing one read's worth of pipelined requests, as a session does before it sends hops: look
/// each command up, find its key, its shard, and group the requests per shard.
fn route_batch(c: &mut Criterion) {
    let requests: Vec<Vec<bytes::Bytes>> = (0..64)
        .map(|i| {
            let key = bytes::Bytes::from(format!("key:{:012}", i * 7919));
            if i % 2 == 0 {
                vec![bytes::Bytes::from_static(b"SET"), key, bytes::Bytes::from_static(b"value")]
            } else {
                vec![bytes::Bytes::from_static(b"GET"), key]
            }
        })
        .collect();
    let routing = Routing::new();
    c.bench_function("route a 64-request pipeline over 4 shards", |b| {
        let mut groups: Vec<Vec<usize>> = (0..4).map(|_| Vec::with_capacity(64)).collect();
        b.iter(|| {
            groups.iter_mut().for_each(Vec::clear);
            for (i, args) in requests.iter().enumerate() {
                let shard = routing.first_key(args).map_or(0, |p| Slot::of(&args[p]).shard(4).0);
                groups[shard].push(i);
            }
            black_box(&groups);
        });
    });
}

/// The cost INFO's command statistics add to every command (commandstats and latencystats).
fn command_stats(c: &mut Criterion) {
    let mut stats = CommandStats::default();
    c.bench_function("command_stats/timed_and_recorded", |b| b.iter(|| stats.record(black_box(7), true)));
    c.bench_function("command_stats/without_latency_histogram", |b| {
        b.iter(|| stats.record(black_box(7), false))
    });
}

/// The ACL check of a GET and a SET for a user with 25 rules, its keys matching its last key
/// pattern (scripts/bench-compare.sh --only acl measures the same user end to end).
fn acl_check(c: &mut Criterion) {
    let mut check = AclCheck::new(
        "on >apppw resetchannels &chan:1 &chan:2 ~cache:* ~session:* ~user:* ~order:* ~cart:* ~tmp:* ~q:* \
         ~lock:* ~stat:* %R~ro:* ~key:* -@all +get +set +mget +del +incr +expire +ttl +ping +hget +hset",
    );
    let get = [bytes::Bytes::from_static(b"GET"), bytes::Bytes::from_static(b"key:000000012345")];
    let set = [bytes::Bytes::from_static(b"SET"), get[1].clone(), bytes::Bytes::from_static(b"value")];
    assert!(check.allows(&get) && check.allows(&set));
    c.bench_function("acl_check/get_25_rules", |b| b.iter(|| black_box(check.allows(black_box(&get)))));
    c.bench_function("acl_check/set_25_rules", |b| b.iter(|| black_box(check.allows(black_box(&set)))));
    c.bench_function("acl_check/lookup_only", |b| b.iter(|| black_box(check.lookup(black_box(&get)))));
}

/// A one-key script (GET then INCR) run on its shard, as EVALSHA runs it there: what a
/// script costs beyond its two commands (the network and the request's parsing excluded).
fn script_run(c: &mut Criterion) {
    let run = ScriptRun::new(r#"local v = redis.call("GET", KEYS[1]) return redis.call("INCR", KEYS[1])"#);
    let keys: Vec<bytes::Bytes> = (0..1000).map(|i| bytes::Bytes::from(format!("key:{i:06}"))).collect();
    let mut i = 0;
    c.bench_function("one-key script on its shard (GET then INCR)", |b| {
        b.iter(|| {
            i = (i + 1) % keys.len();
            black_box(run.run(std::slice::from_ref(&keys[i]), &[]))
        });
    });
}

criterion_group!(
    benches,
    parse,
    encode,
    slots,
    route_batch,
    zset_rescore,
    command_stats,
    acl_check,
    script_run
);
criterion_main!(benches);
