//! SORT across shards: the keys BY and GET patterns name may live on any shard, and a SORT
//! that follows them holds every shard, so it never sees half of another client's
//! transaction; plain and TLS.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::{key_on, shard_of, Server, MODES};

/// An element whose `v_<element>` key is on `shard`.
fn element_on(prefix: &str, shard: usize) -> String {
    (0..).map(|i| format!("{prefix}{i}")).find(|e| shard_of(&format!("v_{e}"), 2) == shard).unwrap()
}

#[test]
fn sort_patterns_across_shards_see_whole_transactions() {
    let server = Server::start();
    for mode in MODES {
        let list = key_on(&format!("{mode:?}list"), 0, 2);
        let (e0, e1) = (element_on(&format!("{mode:?}e"), 0), element_on(&format!("{mode:?}e"), 1));
        let mut c = server.conn(mode);
        redis::cmd("RPUSH").arg(&list).arg(&e0).arg(&e1).query::<()>(&mut c).unwrap();
        redis::cmd("MSET")
            .arg(format!("v_{e0}"))
            .arg(0)
            .arg(format!("v_{e1}"))
            .arg(0)
            .query::<()>(&mut c)
            .unwrap();
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (done, mut w, e0, e1) = (done.clone(), server.conn(mode), e0.clone(), e1.clone());
            std::thread::spawn(move || {
                for i in 1..=400 {
                    redis::pipe()
                        .atomic()
                        .cmd("SET")
                        .arg(format!("v_{e0}"))
                        .arg(i)
                        .cmd("SET")
                        .arg(format!("v_{e1}"))
                        .arg(i)
                        .query::<()>(&mut w)
                        .unwrap();
                }
                done.store(true, Ordering::SeqCst);
            })
        };
        let mut reads = 0;
        while !done.load(Ordering::SeqCst) && reads < 20_000 {
            // Sorted by the weights, each element's weight fetched: both from one moment.
            let got: Vec<String> = redis::cmd("SORT")
                .arg(&list)
                .arg("BY")
                .arg("v_*")
                .arg("GET")
                .arg("v_*")
                .query(&mut c)
                .unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!(got[0], got[1], "{mode:?}: a SORT saw half a transaction");
            reads += 1;
        }
        writer.join().unwrap();
        let got: Vec<String> = redis::cmd("SORT")
            .arg(&list)
            .arg("BY")
            .arg("nosort")
            .arg("GET")
            .arg("v_*")
            .query(&mut c)
            .unwrap();
        assert_eq!(got, ["400", "400"]);
        redis::cmd("FLUSHALL").query::<()>(&mut c).unwrap();
    }
}
