//! Blocking list pops across cores: woken by a push from another core, in blocking order, with
//! timeouts, CLIENT UNBLOCK, and no blocking inside MULTI; clients held by CLIENT PAUSE. Plain
//! TCP and TLS.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{key_on, wait_blocked, Server, MODES};
use redis::Commands;

#[test]
fn blpop_on_one_core_is_woken_by_a_push_on_another() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        for key_shard in 0..2 {
            let key = key_on(&format!("{mode:?}:bl:"), key_shard, 2);
            let mut blocker = server.conn_on_core(mode, 0);
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut blocker).unwrap();
            let k = key.clone();
            let waiting = std::thread::spawn(move || {
                let got: (String, String) = redis::cmd("BLPOP").arg(&k).arg(10).query(&mut blocker).unwrap();
                got
            });
            let mut pusher = server.conn_on_core(mode, 1);
            wait_blocked(&mut pusher, id);
            let _: () = pusher.rpush(&key, "hello").unwrap();
            assert_eq!(waiting.join().unwrap(), (key.clone(), "hello".to_owned()));
            assert_eq!(pusher.exists::<_, i64>(&key).unwrap(), 0, "the element was taken, not copied");
        }
    }
}

#[test]
fn clients_are_served_in_the_order_they_blocked() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        let key = format!("{mode:?}:fair");
        let mut admin = server.conn(mode);
        let mut handles = Vec::new();
        for n in 0..3 {
            let mut c = server.conn(mode);
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
            let k = key.clone();
            handles.push(std::thread::spawn(move || {
                let got: (String, String) = redis::cmd("BRPOP").arg(&k).arg(0).query(&mut c).unwrap();
                (n, got.1)
            }));
            wait_blocked(&mut admin, id);
        }
        for n in 0..3 {
            let _: () = admin.lpush(&key, format!("e{n}")).unwrap();
        }
        for h in handles {
            let (n, got) = h.join().unwrap();
            assert_eq!(got, format!("e{n}"), "client {n} must get the {n}th element");
        }
    }
}

#[test]
fn timeouts_unblock_and_multi() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.conn(mode);
        let start = Instant::now();
        let got: Option<(String, String)> =
            redis::cmd("BLPOP").arg("nothing{a}").arg("nothing{b}").arg(0.2).query(&mut c).unwrap();
        assert_eq!(got, None);
        assert!(start.elapsed() >= Duration::from_millis(180), "{:?}", start.elapsed());
        let err = redis::cmd("BLPOP").arg("k").arg(-1).query::<()>(&mut c).unwrap_err();
        assert!(err.to_string().contains("timeout is negative"), "{err}");
        // Inside MULTI a blocking pop does not block.
        let (got,): (Option<(String, String)>,) =
            redis::pipe().atomic().cmd("BLPOP").arg("nothing").arg(0).query(&mut c).unwrap();
        assert_eq!(got, None);
        // CLIENT UNBLOCK, with a timeout reply and with an error.
        for (how, expect_err) in [("TIMEOUT", false), ("ERROR", true)] {
            let mut blocked = server.conn(mode);
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut blocked).unwrap();
            let h = std::thread::spawn(move || {
                redis::cmd("BLPOP").arg("never").arg(0).query::<Option<(String, String)>>(&mut blocked)
            });
            wait_blocked(&mut c, id);
            let n: i64 = redis::cmd("CLIENT").arg("UNBLOCK").arg(id).arg(how).query(&mut c).unwrap();
            assert_eq!(n, 1);
            let r = h.join().unwrap();
            assert_eq!(r.is_err(), expect_err, "{how}: {r:?}");
            if let Err(e) = r {
                assert!(e.to_string().contains("UNBLOCKED"), "{e}");
            }
        }
        let n: i64 = redis::cmd("CLIENT").arg("UNBLOCK").arg(999_999).query(&mut c).unwrap();
        assert_eq!(n, 0);
    }
}

#[test]
fn blmove_and_blmpop_across_shards() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        let (src, dst) =
            (key_on(&format!("{mode:?}:bm:src:"), 0, 2), key_on(&format!("{mode:?}:bm:dst:"), 1, 2));
        let mut blocker = server.conn(mode);
        let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut blocker).unwrap();
        let (s2, d2) = (src.clone(), dst.clone());
        let h = std::thread::spawn(move || {
            redis::cmd("BLMOVE")
                .arg(&s2)
                .arg(&d2)
                .arg("LEFT")
                .arg("RIGHT")
                .arg(10)
                .query::<String>(&mut blocker)
                .unwrap()
        });
        let mut c = server.conn(mode);
        wait_blocked(&mut c, id);
        let _: () = c.rpush(&src, &["x", "y"]).unwrap();
        assert_eq!(h.join().unwrap(), "x");
        assert_eq!(c.lrange::<_, Vec<String>>(&dst, 0, -1).unwrap(), ["x"]);
        assert_eq!(c.lrange::<_, Vec<String>>(&src, 0, -1).unwrap(), ["y"]);
        // BLMPOP returns at once when a list has elements.
        let (key, elems): (String, Vec<String>) =
            redis::cmd("BLMPOP").arg(1).arg(2).arg("bm:none").arg(&src).arg("LEFT").query(&mut c).unwrap();
        assert_eq!((key, elems), (src.clone(), vec!["y".to_owned()]));
    }
}

#[test]
fn bzpopmin_and_bzmpop_are_woken_from_another_core_in_order() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        for key_shard in 0..2 {
            let key = key_on(&format!("{mode:?}:bz:"), key_shard, 2);
            let mut admin = server.conn_on_core(mode, 1);
            // Two clients block on core 0: BZPOPMIN first, then BZMPOP; a BLPOP on the same key
            // waits for a list and must not be served a sorted-set member.
            let mut handles = Vec::new();
            for (n, form) in ["BZPOPMIN", "BLPOP", "BZMPOP"].into_iter().enumerate() {
                let mut c = server.conn_on_core(mode, 0);
                let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut c).unwrap();
                let k = key.clone();
                handles.push(std::thread::spawn(move || {
                    let mut cmd = redis::cmd(form);
                    match form {
                        "BZMPOP" => cmd.arg(10).arg(1).arg(&k).arg("MAX").arg("COUNT").arg(2),
                        "BLPOP" => cmd.arg(&k).arg(1),
                        _ => cmd.arg(&k).arg(10),
                    };
                    let reply: redis::Value = cmd.query(&mut c).unwrap();
                    (n, reply)
                }));
                wait_blocked(&mut admin, id);
            }
            let _: () = redis::cmd("ZADD")
                .arg(&key)
                .arg(1)
                .arg("a")
                .arg(2)
                .arg("b")
                .arg(3)
                .arg("c")
                .query(&mut admin)
                .unwrap();
            let mut results: Vec<(usize, redis::Value)> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            results.sort_by_key(|r| r.0);
            let text = |v: &redis::Value| format!("{v:?}");
            assert!(
                text(&results[0].1).contains("\"a\"") && !text(&results[0].1).contains("\"b\""),
                "{results:?}"
            );
            assert_eq!(results[1].1, redis::Value::Nil, "BLPOP times out: the key never held a list");
            assert!(
                text(&results[2].1).contains("\"c\"") && text(&results[2].1).contains("\"b\""),
                "{results:?}"
            );
            assert_eq!(admin.exists::<_, i64>(&key).unwrap(), 0);
        }
        // A timeout replies with a null array.
        let mut c = server.conn(mode);
        let got: Option<(String, String, f64)> =
            redis::cmd("BZPOPMAX").arg("nokey").arg(0.05).query(&mut c).unwrap();
        assert_eq!(got, None);
    }
}

/// Elements circulate between two lists on different shards: LMOVE feeds `a` from `b`, and a
/// blocked BLMOVE moves each one back from `a` to `b`. Readers of both lengths in one
/// MULTI/EXEC must always count every element: none is ever in neither list (or in both).
#[test]
fn cross_shard_blmove_never_shows_an_element_in_neither_list() {
    let server = Arc::new(Server::start());
    for mode in MODES {
        circulate(&server, mode);
    }
}

fn circulate(server: &Arc<Server>, mode: common::Mode) {
    const K: i64 = 4;
    let a = key_on(&format!("{mode:?}:circ:a:"), 0, 2);
    let b = key_on(&format!("{mode:?}:circ:b:"), 1, 2);
    let mut setup = server.conn(mode);
    for i in 0..K {
        let _: () = setup.rpush(&b, i).unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut movers = Vec::new();
    for core in 0..2 {
        let (server, a, b, stop) = (server.clone(), a.clone(), b.clone(), stop.clone());
        movers.push(std::thread::spawn(move || {
            let mut c = server.conn_on_core(mode, core);
            let mut moved = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let got: Option<String> = redis::cmd("BLMOVE")
                    .arg(&a)
                    .arg(&b)
                    .arg("LEFT")
                    .arg("RIGHT")
                    .arg(0.05)
                    .query(&mut c)
                    .unwrap();
                moved += u64::from(got.is_some());
            }
            moved
        }));
    }
    let feeder = {
        let (server, a, b, stop) = (server.clone(), a.clone(), b.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = server.conn_on_core(mode, 1);
            let deadline = Instant::now() + Duration::from_millis(1500);
            for _ in 0..20_000 {
                if Instant::now() > deadline {
                    break;
                }
                let _: Option<String> =
                    redis::cmd("LMOVE").arg(&b).arg(&a).arg("LEFT").arg("RIGHT").query(&mut c).unwrap();
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let mut reader = server.conn_on_core(mode, 0);
    let mut reads = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let (la, lb): (i64, i64) = redis::pipe().atomic().llen(&a).llen(&b).query(&mut reader).unwrap();
        assert_eq!(la + lb, K, "after {reads} reads: {la} in a, {lb} in b");
        reads += 1;
    }
    feeder.join().unwrap();
    let moved: u64 = movers.into_iter().map(|m| m.join().unwrap()).sum();
    assert!(moved > 100 && reads > 100, "moved {moved}, reads {reads}");
    let (la, lb): (i64, i64) = redis::pipe().atomic().llen(&a).llen(&b).query(&mut reader).unwrap();
    assert_eq!(la + lb, K);
}

/// A blocked client that hangs up is forgotten at once, as Redis frees it: a later push stays
/// in the list (it is not popped for nobody), and what it pipelined after the blocking command
/// never runs. For every blocking form, with the key on either shard.
#[test]
fn a_blocked_client_that_hangs_up_takes_nothing() {
    let server = Server::start();
    for mode in MODES {
        for shard in 0..2 {
            let key = key_on(&format!("{mode:?}:gone:"), shard, 2);
            let other = key_on(&format!("{mode:?}:gone:dst:"), 1 - shard, 2);
            let after = format!("{key}:after");
            let forms: [(&[&str], bool); 4] = [
                (&["BLPOP", &key, "0"], true),
                (&["BLMOVE", &key, &other, "LEFT", "RIGHT", "0"], true),
                (&["BLMPOP", "0", "1", &key, "RIGHT"], true),
                (&["BZPOPMIN", &key, "0"], false),
            ];
            for (form, list) in forms {
                let mut raw = server.raw(mode);
                let id = raw.client_id();
                let args: Vec<&[u8]> = form.iter().map(|a| a.as_bytes()).collect();
                let mut pipelined = common::resp(&args);
                pipelined.extend(common::resp(&[b"SET", after.as_bytes(), b"ran"]));
                raw.send(&pipelined);
                let mut c = server.conn(mode);
                wait_blocked(&mut c, id);
                drop(raw);
                // The server notices the hang-up by itself: the client leaves CLIENT LIST.
                let deadline = Instant::now() + Duration::from_secs(10);
                loop {
                    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
                    if !list.contains(&format!("id={id} ")) {
                        break;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{form:?}: the hung-up client is still listed: {list}"
                    );
                    std::thread::yield_now();
                }
                if list {
                    let _: () = c.rpush(&key, "v").unwrap();
                    assert_eq!(c.lrange::<_, Vec<String>>(&key, 0, -1).unwrap(), ["v"], "{mode:?} {form:?}");
                    assert_eq!(c.llen::<_, i64>(&other).unwrap(), 0, "{mode:?} {form:?}");
                } else {
                    let _: () = c.zadd(&key, "m", 1).unwrap();
                    assert_eq!(c.zcard::<_, i64>(&key).unwrap(), 1, "{mode:?} {form:?}");
                }
                assert_eq!(c.get::<_, Option<String>>(&after).unwrap(), None, "{mode:?} {form:?}");
                let _: () = c.del(&[&key, &other]).unwrap();
            }
        }
    }
}

/// What a blocked client sends meanwhile is read (the server reads ahead to notice hang-ups)
/// and runs once the blocking command is served, in order.
#[test]
fn requests_sent_while_blocked_run_afterwards() {
    let server = Server::start();
    for mode in MODES {
        let key = format!("{mode:?}:ahead");
        let mut raw = server.raw(mode);
        let id = raw.client_id();
        raw.send(&common::resp(&[b"BLPOP", key.as_bytes(), b"0"]));
        let mut c = server.conn(mode);
        wait_blocked(&mut c, id);
        raw.send(&[common::resp(&[b"LLEN", key.as_bytes()]), common::resp(&[b"ECHO", b"hi"])].concat());
        let _: () = c.rpush(&key, &["a", "b"]).unwrap();
        let expected = format!("*2\r\n${}\r\n{key}\r\n$1\r\na\r\n:1\r\n$2\r\nhi\r\n", key.len());
        assert_eq!(String::from_utf8_lossy(&raw.read_n(expected.len())), expected);
    }
}

/// INFO's `expired_keys`.
fn expired_keys(c: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
    info.lines().find_map(|l| l.strip_prefix("expired_keys:")?.parse().ok()).unwrap()
}

/// The error CLIENT PAUSE gives for `args`, from `c`.
fn pause_error(c: &mut redis::Connection, args: &[&str]) -> String {
    let err = redis::cmd("CLIENT").arg("PAUSE").arg(args).query::<()>(c).unwrap_err();
    format!("{} {}", err.code().unwrap_or_default(), err.detail().unwrap_or_default())
}

#[test]
fn client_pause_holds_writes_or_everything_until_it_ends() {
    let server = Server::start();
    let redis = common::RedisServer::start();
    let mut reference = common::dataset::connect_redis(&redis);
    for mode in MODES {
        let key = key_on(&format!("{mode:?}:paused:"), 1, 2);
        let mut control = server.conn_on_core(mode, 0);
        // The same refusals as redis-server's.
        for bad in [&["10", "SOME"][..], &["-1"], &["soon"], &["10", "WRITE", "more"]] {
            assert_eq!(pause_error(&mut control, bad), pause_error(&mut reference, bad), "{bad:?}");
        }
        let () = redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query(&mut control).unwrap();
        // Reads run; a write (sent from the other core, behind a read in the same pipeline)
        // waits, shown blocked, and runs once the pause is lifted.
        let mut writer = server.raw_on_core(mode, 1);
        let id = writer.client_id();
        assert_eq!(writer.request(&[b"GET", key.as_bytes()]), b"$-1\r\n");
        writer.send(
            &[common::resp(&[b"SET", key.as_bytes(), b"v"]), common::resp(&[b"GET", key.as_bytes()])]
                .concat(),
        );
        wait_blocked(&mut control, id);
        assert_eq!(control.get::<_, Option<String>>(&key).unwrap(), None, "a held write ran");
        let () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut control).unwrap();
        assert_eq!(writer.reply(), b"+OK\r\n");
        assert_eq!(writer.reply(), b"$1\r\nv\r\n");
        // During a pause an expired key reads as missing but stays (nothing is deleted, so
        // nothing reaches the stream), as in Redis; it goes once the pause ends.
        let expired_before = expired_keys(&mut control);
        let short = key_on(&format!("{mode:?}:short:"), 0, 2);
        let () = redis::cmd("SET").arg(&short).arg("v").arg("PX").arg(1).query(&mut control).unwrap();
        let () = redis::cmd("CLIENT").arg("PAUSE").arg(60_000).arg("WRITE").query(&mut control).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while control.get::<_, Option<String>>(&short).unwrap().is_some() {
            assert!(Instant::now() < deadline, "the key never expired");
        }
        assert_eq!(expired_keys(&mut control), expired_before);
        let () = redis::cmd("CLIENT").arg("UNPAUSE").query(&mut control).unwrap();
        assert_eq!(control.get::<_, Option<String>>(&short).unwrap(), None);
        assert_eq!(expired_keys(&mut control), expired_before + 1);
        // ALL holds reads too, until the pause's own end.
        let () = redis::cmd("CLIENT").arg("PAUSE").arg(300).arg("ALL").query(&mut control).unwrap();
        let paused = Instant::now();
        writer.send(&common::resp(&[b"GET", key.as_bytes()]));
        assert_eq!(writer.reply(), b"$1\r\nv\r\n");
        assert!(paused.elapsed() >= Duration::from_millis(250), "answered during the pause");
    }
}

#[test]
fn a_primary_turned_replica_unblocks_its_blocked_clients_and_closes_them() {
    // As Redis's disconnectAllBlockedClients: the writes that would serve them can no longer
    // come from their own clients.
    let server = Server::start();
    let primary = Server::start();
    let mut admin = server.conn(common::Mode::Plain);
    let mut blocked = Vec::new();
    for mode in MODES {
        for core in 0..2 {
            let key = key_on(&format!("{mode:?}:demoted:"), core, 2);
            let mut raw = server.raw_on_core(mode, core);
            let id = raw.client_id();
            raw.send(&common::resp(&[b"BLPOP", key.as_bytes(), b"0"]));
            wait_blocked(&mut admin, id);
            blocked.push(raw);
        }
    }
    let _: () = redis::cmd("REPLICAOF").arg("127.0.0.1").arg(primary.port).query(&mut admin).unwrap();
    for mut raw in blocked {
        let got = String::from_utf8_lossy(&raw.read_to_close()).into_owned();
        assert_eq!(
            got,
            "-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n"
        );
    }
}
