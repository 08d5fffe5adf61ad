//! SWAPDB across shards: one atomic swap on every core (no reader ever sees one shard swapped
//! and another not), blocked clients served by keys the swap brings, WATCH failed by keys it
//! touches; plain and TLS.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{key_on, Server, MODES};
use redis::Value;

fn set_in(c: &mut redis::Connection, db: i64, pairs: &[(&str, &str)]) {
    redis::cmd("SELECT").arg(db).query::<()>(c).unwrap();
    for (k, v) in pairs {
        redis::cmd("SET").arg(*k).arg(*v).query::<()>(c).unwrap();
    }
    redis::cmd("SELECT").arg(0).query::<()>(c).unwrap();
}

#[test]
fn a_swap_is_atomic_across_shards() {
    let server = Server::start();
    for mode in MODES {
        let (a, b) = (key_on(&format!("{mode:?}sw"), 0, 2), key_on(&format!("{mode:?}sw"), 1, 2));
        let mut c = server.conn(mode);
        set_in(&mut c, 0, &[(&a, "zero"), (&b, "zero")]);
        set_in(&mut c, 1, &[(&a, "one"), (&b, "one")]);
        let done = Arc::new(AtomicBool::new(false));
        let swapper = {
            let (done, mut s) = (done.clone(), server.conn(mode));
            std::thread::spawn(move || {
                for _ in 0..300 {
                    redis::cmd("SWAPDB").arg(0).arg(1).query::<()>(&mut s).unwrap();
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut reads = 0;
        while !done.load(Ordering::SeqCst) && reads < 20_000 {
            let got: Vec<String> = redis::cmd("MGET").arg(&a).arg(&b).query(&mut c).unwrap();
            assert_eq!(got[0], got[1], "{mode:?}: a torn swap");
            reads += 1;
        }
        swapper.join().unwrap();
        // 300 swaps: back where it started.
        let got: Vec<String> = redis::cmd("MGET").arg(&a).arg(&b).query(&mut c).unwrap();
        assert_eq!(got, ["zero", "zero"]);
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    }
}

#[test]
fn a_swap_serves_clients_blocked_on_keys_it_brings() {
    let server = Server::start();
    for mode in MODES {
        for shard in 0..2 {
            let list = key_on(&format!("{mode:?}bl"), shard, 2);
            let mut c = server.conn(mode);
            redis::cmd("SELECT").arg(1).query::<()>(&mut c).unwrap();
            redis::cmd("RPUSH").arg(&list).arg("from-one").query::<()>(&mut c).unwrap();
            redis::cmd("SELECT").arg(0).query::<()>(&mut c).unwrap();
            let mut waiter = server.conn(mode);
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut waiter).unwrap();
            let key = list.clone();
            let blocked = std::thread::spawn(move || {
                redis::cmd("BLPOP").arg(&key).arg(0).query::<Vec<String>>(&mut waiter).unwrap()
            });
            common::wait_blocked(&mut c, id);
            redis::cmd("SWAPDB").arg(0).arg(1).query::<()>(&mut c).unwrap();
            assert_eq!(blocked.join().unwrap(), [list.clone(), "from-one".to_string()]);
            // The waiter stayed in database 0, which now holds what 1 held (now empty).
            let left: i64 = redis::cmd("EXISTS").arg(&list).query(&mut c).unwrap();
            assert_eq!(left, 0);
            redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
        }
    }
}

#[test]
fn a_swap_fails_the_transactions_watching_keys_it_touches() {
    let server = Server::start();
    for mode in MODES {
        let (a, b) = (key_on(&format!("{mode:?}wt"), 0, 2), key_on(&format!("{mode:?}wt"), 1, 2));
        let mut c = server.conn(mode);
        let mut other = server.conn(mode);
        // A key only in the other database: its arrival fails the transaction.
        set_in(&mut other, 1, &[(&b, "there")]);
        redis::cmd("WATCH").arg(&b).query::<()>(&mut c).unwrap();
        redis::cmd("SWAPDB").arg(1).arg(0).query::<()>(&mut other).unwrap();
        redis::cmd("MULTI").query::<()>(&mut c).unwrap();
        redis::cmd("GET").arg(&b).query::<()>(&mut c).unwrap();
        assert_eq!(redis::cmd("EXEC").query::<Value>(&mut c).unwrap(), Value::Nil);
        // A key in neither database: untouched, the transaction runs.
        redis::cmd("WATCH").arg(&a).query::<()>(&mut c).unwrap();
        redis::cmd("SWAPDB").arg(0).arg(1).query::<()>(&mut other).unwrap();
        redis::cmd("MULTI").query::<()>(&mut c).unwrap();
        redis::cmd("GET").arg(&a).query::<()>(&mut c).unwrap();
        assert_eq!(redis::cmd("EXEC").query::<Value>(&mut c).unwrap(), Value::Array(vec![Value::Nil]));
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    }
}

/// SWAPDB queued in a transaction whose keys are all on one shard: EXEC must take every shard's
/// gate up front, in order, with the rest. Taking the others later, while another transaction
/// holds one of them and waits for this one's, deadlocked both (and every client after them).
#[test]
fn a_swap_inside_exec_takes_every_shard_with_the_transaction() {
    let server = Server::start();
    for mode in MODES {
        let (a, b) = (key_on(&format!("{mode:?}tx"), 0, 2), key_on(&format!("{mode:?}tx"), 1, 2));
        let other = {
            let (a, b, mut c) = (a.clone(), b.clone(), server.conn(mode));
            std::thread::spawn(move || {
                for _ in 0..300 {
                    let _: Value = redis::pipe().atomic().set(&b, "1").set(&a, "1").query(&mut c).unwrap();
                }
            })
        };
        let mut c = server.conn(mode);
        for _ in 0..300 {
            let _: Value =
                redis::pipe().atomic().set(&a, "2").cmd("SWAPDB").arg(0).arg(1).query(&mut c).unwrap();
        }
        other.join().unwrap();
    }
    assert!(!server.log().contains("does not hold"), "{}", server.log());
}
