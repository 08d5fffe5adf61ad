//! Cross-shard behaviour: keys written on one core are read from another, and multi-key commands
//! stay atomic when their keys live on different shards. Plain TCP and TLS.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{key_on, shard_of, Server, MODES};
use redis::Commands;

#[test]
fn ten_thousand_keys_written_on_one_core_read_on_the_others() {
    let server = Server::start();
    for mode in MODES {
        for writer_core in 0..2 {
            let mut w = server.conn_on_core(mode, writer_core);
            let mut pipe = redis::pipe();
            for i in 0..10_000 {
                pipe.cmd("SET").arg(format!("{mode:?}:{writer_core}:k{i}")).arg(i).ignore();
            }
            pipe.query::<()>(&mut w).unwrap();
            let shards: std::collections::HashSet<usize> =
                (0..10_000).map(|i| shard_of(&format!("{mode:?}:{writer_core}:k{i}"), 2)).collect();
            assert_eq!(shards.len(), 2, "the keys span both shards");
            let mut r = server.conn_on_core(mode, 1 - writer_core);
            let mut pipe = redis::pipe();
            for i in 0..10_000 {
                pipe.cmd("GET").arg(format!("{mode:?}:{writer_core}:k{i}"));
            }
            let got: Vec<i64> = pipe.query(&mut r).unwrap();
            assert_eq!(got, (0..10_000).collect::<Vec<i64>>());
            let keys: Vec<String> = (0..10_000).map(|i| format!("{mode:?}:{writer_core}:k{i}")).collect();
            let values: Vec<i64> = r.mget(&keys).unwrap();
            assert_eq!(values.len(), 10_000);
            assert_eq!(values[9_999], 9_999);
            let n: usize = r.exists(&keys).unwrap();
            assert_eq!(n, 10_000);
            let n: usize = r.del(&keys).unwrap();
            assert_eq!(n, 10_000);
        }
    }
}

/// Writers MSET two keys on different shards to the same value; readers on both cores MGET them
/// and must never see the pair differ.
#[test]
fn concurrent_readers_never_see_half_an_mset() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        let a = key_on("pair:a:", 0, 2);
        let b = key_on("pair:b:", 1, 2);
        let mut setup = server.conn(mode);
        let _: () = setup.mset(&[(&a, 0), (&b, 0)]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for core in 0..2 {
            let (server, a, b, stop) = (server.clone(), a.clone(), b.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut c = server.conn_on_core(mode, core);
                for i in 1..=1500i64 {
                    let _: () = c.mset(&[(&a, i * 10 + core as i64), (&b, i * 10 + core as i64)]).unwrap();
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }));
        }
        let mut readers = Vec::new();
        for core in 0..2 {
            let (server, a, b) = (server.clone(), a.clone(), b.clone());
            readers.push(std::thread::spawn(move || {
                let mut c = server.conn_on_core(mode, core);
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut reads = 0;
                for _ in 0..3000 {
                    let (x, y): (i64, i64) = redis::cmd("MGET").arg(&a).arg(&b).query(&mut c).unwrap();
                    assert_eq!(x, y, "MGET saw half an MSET");
                    reads += 1;
                    if Instant::now() > deadline {
                        break;
                    }
                }
                reads
            }));
        }
        let reads: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
        stop.store(true, Ordering::Relaxed);
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(reads > 100);
    }
}

#[test]
fn multi_key_commands_across_shards() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.conn(mode);
        let (x, y) = (key_on("mk:x:", 0, 2), key_on("mk:y:", 1, 2));
        let _: () = c.del(&[&x, &y]).unwrap();
        // MSETNX: all or nothing across shards.
        let ok: i64 = redis::cmd("MSETNX").arg(&x).arg("1").arg(&y).arg("2").query(&mut c).unwrap();
        assert_eq!(ok, 1);
        let z = key_on("mk:z:", 0, 2);
        let _: () = c.del(&z).unwrap();
        let ok: i64 = redis::cmd("MSETNX").arg(&z).arg("9").arg(&y).arg("9").query(&mut c).unwrap();
        assert_eq!(ok, 0);
        assert_eq!(c.exists::<_, i64>(&z).unwrap(), 0, "MSETNX wrote nothing");
        // RENAME across shards keeps the value and the TTL.
        let _: () = c.expire(&x, 1000).unwrap();
        let target = key_on("mk:target:", 1, 2);
        let _: () = c.del(&target).unwrap();
        let _: () = c.rename(&x, &target).unwrap();
        assert_eq!(c.get::<_, Option<String>>(&x).unwrap(), None);
        assert_eq!(c.get::<_, String>(&target).unwrap(), "1");
        let ttl: i64 = c.ttl(&target).unwrap();
        assert!((990..=1000).contains(&ttl), "{ttl}");
        // RENAMENX across shards onto an existing key does nothing.
        let back = key_on("mk:back:", 0, 2);
        let _: () = c.set(&back, "taken").unwrap();
        let _: () = c.del("mk:fresh{zz}").unwrap();
        assert_eq!(redis::cmd("RENAMENX").arg(&target).arg(&back).query::<i64>(&mut c).unwrap(), 0);
        assert_eq!(redis::cmd("RENAMENX").arg(&target).arg("mk:fresh{zz}").query::<i64>(&mut c).unwrap(), 1);
        let err = c.rename::<_, _, ()>("mk:nokey{a}", "mk:nokey{b}").unwrap_err();
        assert!(err.to_string().contains("no such key"), "{err}");
        // Sums and positions come back right when keys interleave shards.
        let keys: Vec<String> = (0..40).map(|i| format!("mk:i{i}")).collect();
        for (i, k) in keys.iter().enumerate() {
            let _: () = c.set(k, i).unwrap();
        }
        let values: Vec<usize> = c.mget(&keys).unwrap();
        assert_eq!(values, (0..40).collect::<Vec<_>>());
        let mut twice = keys.clone();
        twice.extend(keys.iter().cloned());
        assert_eq!(c.exists::<_, usize>(&twice).unwrap(), 80);
        assert_eq!(redis::cmd("TOUCH").arg(&keys).query::<usize>(&mut c).unwrap(), 40);
        assert_eq!(redis::cmd("UNLINK").arg(&keys).query::<usize>(&mut c).unwrap(), 40);
        // FLUSHDB reaches every shard; SELECT is per connection.
        let _: () = redis::cmd("SELECT").arg(3).query(&mut c).unwrap();
        let _: () = c.set("db3", 1).unwrap();
        let _: () = redis::cmd("FLUSHDB").query(&mut c).unwrap();
        assert_eq!(redis::cmd("DBSIZE").query::<usize>(&mut c).unwrap(), 0);
        let _: () = redis::cmd("SELECT").arg(0).query(&mut c).unwrap();
        assert!(redis::cmd("DBSIZE").query::<usize>(&mut c).unwrap() > 0);
    }
}

/// Pipelined commands for both shards, mixed with connection commands, keep request order.
#[test]
fn pipelines_keep_order_across_shards() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.conn(mode);
        let mut pipe = redis::pipe();
        for i in 0..500 {
            let k = format!("ord:{i}");
            pipe.cmd("SET").arg(&k).arg(i).ignore();
            pipe.cmd("INCR").arg(&k);
            if i % 50 == 0 {
                pipe.cmd("PING");
                pipe.cmd("ECHO").arg(i);
            }
            pipe.cmd("GET").arg(&k);
        }
        let replies: Vec<redis::Value> = pipe.query(&mut c).unwrap();
        let mut it = replies.into_iter();
        for i in 0..500i64 {
            assert_eq!(it.next(), Some(redis::Value::Int(i + 1)));
            if i % 50 == 0 {
                assert_eq!(it.next(), Some(redis::Value::SimpleString("PONG".into())));
                assert_eq!(it.next(), Some(redis::Value::BulkString(i.to_string().into_bytes())));
            }
            assert_eq!(it.next(), Some(redis::Value::BulkString((i + 1).to_string().into_bytes())));
        }
        // A SELECT inside a pipeline applies to what follows it, wherever the keys live.
        let mut pipe = redis::pipe();
        pipe.cmd("SELECT").arg(5).ignore();
        for i in 0..20 {
            pipe.cmd("SET").arg(format!("sel:{i}")).arg("in5").ignore();
        }
        pipe.cmd("SELECT").arg(0).ignore();
        pipe.cmd("EXISTS").arg((0..20).map(|i| format!("sel:{i}")).collect::<Vec<_>>());
        let (n,): (usize,) = pipe.query(&mut c).unwrap();
        assert_eq!(n, 0);
    }
}

#[test]
fn list_and_set_moves_across_shards() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.conn(mode);
        let (l0, l1) = (key_on(&format!("{mode:?}:l0:"), 0, 2), key_on(&format!("{mode:?}:l1:"), 1, 2));
        let _: () = c.rpush(&l0, &["a", "b", "c"]).unwrap();
        let moved: String =
            redis::cmd("LMOVE").arg(&l0).arg(&l1).arg("LEFT").arg("RIGHT").query(&mut c).unwrap();
        assert_eq!(moved, "a");
        let moved: String = redis::cmd("RPOPLPUSH").arg(&l0).arg(&l1).query(&mut c).unwrap();
        assert_eq!(moved, "c");
        assert_eq!(c.lrange::<_, Vec<String>>(&l1, 0, -1).unwrap(), ["c", "a"]);
        assert_eq!(c.lrange::<_, Vec<String>>(&l0, 0, -1).unwrap(), ["b"]);
        // A destination of the wrong type leaves the source untouched.
        let s1 = key_on(&format!("{mode:?}:str:"), 1, 2);
        let _: () = c.set(&s1, "x").unwrap();
        let err = redis::cmd("LMOVE")
            .arg(&l0)
            .arg(&s1)
            .arg("LEFT")
            .arg("LEFT")
            .query::<String>(&mut c)
            .unwrap_err();
        assert!(err.to_string().contains("WRONGTYPE"), "{err}");
        assert_eq!(c.llen::<_, usize>(&l0).unwrap(), 1);

        let (a, b) = (key_on(&format!("{mode:?}:sa:"), 0, 2), key_on(&format!("{mode:?}:sb:"), 1, 2));
        let _: () = c.sadd(&a, &["1", "2", "3"]).unwrap();
        let _: () = c.sadd(&b, &["3", "4"]).unwrap();
        assert_eq!(c.smove::<_, _, _, i64>(&a, &b, "1").unwrap(), 1);
        assert_eq!(c.smove::<_, _, _, i64>(&a, &b, "9").unwrap(), 0);
        let mut inter: Vec<String> = c.sinter(&[&a, &b]).unwrap();
        inter.sort();
        assert_eq!(inter, ["3"]);
        let mut union: Vec<String> = c.sunion(&[&a, &b]).unwrap();
        union.sort();
        assert_eq!(union, ["1", "2", "3", "4"]);
        let dest = key_on(&format!("{mode:?}:dest:"), 1, 2);
        assert_eq!(redis::cmd("SDIFFSTORE").arg(&dest).arg(&b).arg(&a).query::<i64>(&mut c).unwrap(), 2);
        let mut diff: Vec<String> = c.smembers(&dest).unwrap();
        diff.sort();
        assert_eq!(diff, ["1", "4"]);
        assert_eq!(redis::cmd("SINTERCARD").arg(2).arg(&a).arg(&b).query::<i64>(&mut c).unwrap(), 1);
        assert_eq!(
            redis::cmd("SINTERSTORE").arg(&dest).arg(&a).arg("nothing{x}").query::<i64>(&mut c).unwrap(),
            0
        );
        assert_eq!(c.exists::<_, i64>(&dest).unwrap(), 0, "an empty result deletes the destination");
    }
}

/// Movers SMOVE members back and forth between two sets on different shards; readers on both
/// cores take SUNION of the two and must always see every member exactly once.
#[test]
fn smove_between_shards_never_loses_or_duplicates() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        let a = key_on(&format!("{mode:?}:mv:a:"), 0, 2);
        let b = key_on(&format!("{mode:?}:mv:b:"), 1, 2);
        let mut setup = server.conn(mode);
        let members: Vec<String> = (0..20).map(|i| i.to_string()).collect();
        let _: () = setup.sadd(&a, &members).unwrap();
        let mut movers = Vec::new();
        for core in 0..2 {
            let (server, a, b) = (server.clone(), a.clone(), b.clone());
            movers.push(std::thread::spawn(move || {
                let mut c = server.conn_on_core(mode, core);
                for i in 0..1000 {
                    let m = (i % 20).to_string();
                    let (from, to) = if (i / 20 + core) % 2 == 0 { (&a, &b) } else { (&b, &a) };
                    let _: i64 = c.smove(from, to, &m).unwrap();
                }
            }));
        }
        let mut readers = Vec::new();
        for core in 0..2 {
            let (server, a, b) = (server.clone(), a.clone(), b.clone());
            readers.push(std::thread::spawn(move || {
                let mut c = server.conn_on_core(mode, core);
                for _ in 0..1000 {
                    let union: Vec<String> = c.sunion(&[&a, &b]).unwrap();
                    assert_eq!(union.len(), 20, "SUNION saw a member missing or doubled");
                    let n: i64 = redis::cmd("SINTERCARD").arg(2).arg(&a).arg(&b).query(&mut c).unwrap();
                    assert_eq!(n, 0, "a member was in both sets at once");
                }
            }));
        }
        readers.into_iter().for_each(|r| r.join().unwrap());
        movers.into_iter().for_each(|m| m.join().unwrap());
    }
}

#[test]
fn copy_and_lmpop_across_shards() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.conn(mode);
        let (src, dst) =
            (key_on(&format!("{mode:?}:cp:src:"), 0, 2), key_on(&format!("{mode:?}:cp:dst:"), 1, 2));
        let _: () = c.rpush(&src, &["a", "b"]).unwrap();
        let _: () = c.expire(&src, 500).unwrap();
        assert_eq!(redis::cmd("COPY").arg(&src).arg(&dst).query::<i64>(&mut c).unwrap(), 1);
        assert_eq!(c.lrange::<_, Vec<String>>(&dst, 0, -1).unwrap(), ["a", "b"]);
        assert!(c.ttl::<_, i64>(&dst).unwrap() > 490, "COPY keeps the TTL");
        assert_eq!(redis::cmd("COPY").arg(&src).arg(&dst).query::<i64>(&mut c).unwrap(), 0);
        assert_eq!(redis::cmd("COPY").arg(&src).arg(&dst).arg("DB").arg(2).query::<i64>(&mut c).unwrap(), 1);
        let _: () = redis::cmd("SELECT").arg(2).query(&mut c).unwrap();
        assert_eq!(c.llen::<_, i64>(&dst).unwrap(), 2);
        let _: () = redis::cmd("SELECT").arg(0).query(&mut c).unwrap();
        // LMPOP takes from the first non-empty list, wherever it lives.
        let empty = key_on(&format!("{mode:?}:mp:empty:"), 0, 2);
        let _: () = c.del(&empty).unwrap();
        let (key, elems): (String, Vec<String>) = redis::cmd("LMPOP")
            .arg(3)
            .arg(&empty)
            .arg(&dst)
            .arg(&src)
            .arg("RIGHT")
            .arg("COUNT")
            .arg(5)
            .query(&mut c)
            .unwrap();
        assert_eq!((key.as_str(), elems), (dst.as_str(), vec!["b".to_owned(), "a".to_owned()]));
        assert_eq!(c.exists::<_, i64>(&dst).unwrap(), 0, "an emptied list is deleted");
    }
}

/// ZUNIONSTORE / ZINTERSTORE / ZRANGESTORE / ZMPOP with inputs and destination on different
/// shards, while movers shift score between two members on two shards in MULTI/EXEC: the union
/// readers compute must always carry the same total.
#[test]
fn sorted_set_algebra_across_shards_is_atomic() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        let a = key_on(&format!("{mode:?}:za:"), 0, 2);
        let b = key_on(&format!("{mode:?}:zb:"), 1, 2);
        let dst = key_on(&format!("{mode:?}:zdst:"), 1, 2);
        let mut setup = server.conn(mode);
        let _: () = redis::cmd("ZADD").arg(&a).arg(100).arg("m").query(&mut setup).unwrap();
        let _: () = redis::cmd("ZADD").arg(&b).arg(100).arg("m").query(&mut setup).unwrap();
        let mut movers = Vec::new();
        for core in 0..2 {
            let (server, a, b) = (server.clone(), a.clone(), b.clone());
            movers.push(std::thread::spawn(move || {
                let mut c = server.conn_on_core(mode, core);
                for i in 0..300 {
                    let (from, to) = if (i + core) % 2 == 0 { (&a, &b) } else { (&b, &a) };
                    let _: () = redis::pipe()
                        .atomic()
                        .cmd("ZINCRBY")
                        .arg(from)
                        .arg(-1)
                        .arg("m")
                        .ignore()
                        .cmd("ZINCRBY")
                        .arg(to)
                        .arg(1)
                        .arg("m")
                        .ignore()
                        .query(&mut c)
                        .unwrap();
                }
            }));
        }
        let mut readers = Vec::new();
        for core in 0..2 {
            let (server, a, b, dst) = (server.clone(), a.clone(), b.clone(), dst.clone());
            readers.push(std::thread::spawn(move || {
                let mut c = server.conn_on_core(mode, core);
                for _ in 0..300 {
                    let u: Vec<(String, f64)> =
                        redis::cmd("ZUNION").arg(2).arg(&a).arg(&b).arg("WITHSCORES").query(&mut c).unwrap();
                    assert_eq!(u, [("m".to_owned(), 200.0)], "ZUNION saw half a transfer");
                    let n: i64 =
                        redis::cmd("ZUNIONSTORE").arg(&dst).arg(2).arg(&a).arg(&b).query(&mut c).unwrap();
                    assert_eq!(n, 1);
                }
            }));
        }
        readers.into_iter().for_each(|r| r.join().unwrap());
        movers.into_iter().for_each(|m| m.join().unwrap());
        let mut c = server.conn(mode);
        let total: f64 = c.zscore(&dst, "m").unwrap();
        assert_eq!(total, 200.0);
        // ZINTERSTORE with WEIGHTS, and ZRANGESTORE from one shard into another.
        let n: i64 = redis::cmd("ZINTERSTORE")
            .arg(&dst)
            .arg(2)
            .arg(&a)
            .arg(&b)
            .arg("WEIGHTS")
            .arg(2)
            .arg(0)
            .query(&mut c)
            .unwrap();
        assert_eq!(n, 1);
        let a_score: f64 = c.zscore(&a, "m").unwrap();
        assert_eq!(c.zscore::<_, _, f64>(&dst, "m").unwrap(), 2.0 * a_score);
        let _: () = redis::cmd("ZADD").arg(&a).arg(1).arg("x").arg(2).arg("y").query(&mut c).unwrap();
        let n: i64 = redis::cmd("ZRANGESTORE").arg(&dst).arg(&a).arg(0).arg(1).query(&mut c).unwrap();
        assert_eq!(n, 2);
        assert_eq!(c.zrange::<_, Vec<String>>(&dst, 0, -1).unwrap(), ["x", "y"]);
        // ZMPOP takes from the first non-empty sorted set, wherever it lives.
        let empty = key_on(&format!("{mode:?}:zempty:"), 0, 2);
        let got: (String, Vec<(String, f64)>) = redis::cmd("ZMPOP")
            .arg(3)
            .arg(&empty)
            .arg(&dst)
            .arg(&a)
            .arg("MAX")
            .arg("COUNT")
            .arg(5)
            .query(&mut c)
            .unwrap();
        assert_eq!(got, (dst.clone(), vec![("y".to_owned(), 2.0), ("x".to_owned(), 1.0)]));
        assert_eq!(c.exists::<_, i64>(&dst).unwrap(), 0, "an emptied sorted set is deleted");
    }
}

/// `rounds` pipelines of four SETs, all under the hash tag `tag`, read back one by one.
fn tenant_rounds(c: &mut redis::Connection, tag: &str, rounds: usize) {
    for round in 0..rounds {
        let mut pipe = redis::pipe();
        for i in 0..4 {
            pipe.cmd("SET").arg(format!("{{{tag}}}:{round}:{i}")).arg(i).ignore();
        }
        pipe.query::<()>(c).unwrap();
    }
}

fn core_of(c: &mut redis::Connection) -> String {
    let info: String = redis::cmd("CLIENT").arg("INFO").query(c).unwrap();
    info.split(' ').find(|f| f.starts_with("core=")).unwrap_or_default().to_owned()
}

#[test]
fn a_connection_whose_keys_live_on_the_other_core_moves_there_and_keeps_its_state() {
    let server = Server::start();
    let mut admin = server.conn(common::Mode::Plain);
    for mode in MODES {
        let mut c = server.conn_on_core(mode, 0);
        let tag = key_on(&format!("{mode:?}-tenant"), 1, 2);
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
        let () = redis::cmd("CLIENT").arg("SETNAME").arg("tenant").query(&mut c).unwrap();
        let () = redis::cmd("SELECT").arg(5).query(&mut c).unwrap();
        // It moves once its core has seen its hops travel alone (the core's cron looks every
        // 100 ms): rounds until then, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        while core_of(&mut c) != "core=1" && Instant::now() < deadline {
            // A run of calls one short of asking, then a pipeline longer than one call's batch
            // in one write: a move asked for by its first part waits until the rest, already
            // read, is served (the client waits for every reply).
            tenant_rounds(&mut c, &tag, 15);
            let mut pipe = redis::pipe();
            for i in 0..3000 {
                pipe.cmd("SET").arg(format!("{{{tag}}}:big:{i}")).arg(i).ignore();
            }
            pipe.query::<()>(&mut c).unwrap();
        }
        let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
        assert!(
            info.contains(" core=1 ")
                && info.starts_with(&format!("id={id} "))
                && info.contains(" name=tenant ")
                && info.contains(" db=5 "),
            "{info}"
        );
        // The connection goes on where it left off (over TLS, the same session): its database,
        // its keys.
        let v: i64 = redis::cmd("GET").arg(format!("{{{tag}}}:14:3")).query(&mut c).unwrap();
        assert_eq!(v, 3);
        let v: i64 = redis::cmd("GET").arg(format!("{{{tag}}}:big:2999")).query(&mut c).unwrap();
        assert_eq!(v, 2999);
        let () = redis::cmd("SELECT").arg(5).query(&mut admin).unwrap();
        let v: i64 = redis::cmd("GET").arg(format!("{{{tag}}}:0:1")).query(&mut admin).unwrap();
        assert_eq!(v, 1);
        // Listed once, on its new core; KILL finds it there.
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut admin).unwrap();
        assert_eq!(list.matches(&format!("id={id} ")).count(), 1, "{list}");
        let killed: i64 = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).query(&mut admin).unwrap();
        assert_eq!(killed, 1);
        assert!(redis::cmd("PING").query::<String>(&mut c).is_err(), "killed after its move");
    }
    let info: String = redis::cmd("INFO").arg("cores").query(&mut admin).unwrap();
    assert!(info.contains("moved_in=2,moved_out=0") && info.contains("moved_in=0,moved_out=2"), "{info}");

    // Connections that stay: one that WATCHes (its watch is this core's to keep), and one whose
    // keys are on both shards; rounds of each beside a tenant's, until the tenant's moved.
    let tag = key_on("stays", 1, 2);
    let mut watching = server.conn_on_core(common::Mode::Plain, 0);
    let () = redis::cmd("WATCH").arg(format!("{{{tag}}}:w")).query(&mut watching).unwrap();
    let mut spread = server.conn_on_core(common::Mode::Plain, 0);
    let mut control = server.conn_on_core(common::Mode::Plain, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while core_of(&mut control) != "core=1" {
        assert!(Instant::now() < deadline, "the tenant's connection never moved");
        tenant_rounds(&mut control, &tag, 20);
        tenant_rounds(&mut watching, &tag, 20);
        for round in 0..20 {
            let mut pipe = redis::pipe();
            pipe.cmd("SET").arg(format!("{{{tag}}}:{round}")).arg(1).ignore();
            pipe.cmd("SET").arg(key_on(&format!("here{round}-"), 0, 2)).arg(1).ignore();
            pipe.query::<()>(&mut spread).unwrap();
        }
    }
    assert_eq!((core_of(&mut watching), core_of(&mut spread)), ("core=0".to_owned(), "core=0".to_owned()));
    // With `migrate-connections no`, a tenant's connection stays for as long as it goes on.
    let () = redis::cmd("CONFIG").arg("SET").arg("migrate-connections").arg("no").query(&mut admin).unwrap();
    let mut pinned = server.conn_on_core(common::Mode::Tls, 0);
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        tenant_rounds(&mut pinned, &tag, 20);
    }
    assert_eq!(core_of(&mut pinned), "core=0");
}
