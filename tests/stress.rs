//! Concurrent clients on every core, plain and TLS, sending random pipelined requests (the
//! differential fuzz test's generator) at the same keys: transactions, cross-shard moves and
//! blocking pops race each other, and some clients hang up in the middle of a batch. Replies
//! cannot be compared with Redis here (the interleaving is the scheduler's), so this test checks
//! what must hold whatever the interleaving: every request gets a reply in time (no shard's gate
//! is ever left shut), no reply is an internal error, and the server is alive and whole at the
//! end.

mod common;

use std::time::{Duration, Instant};

use common::fuzz::Fuzz;
use common::{read_reply, resp, Mode, Opts, Server};

/// Clients, and the wall-clock bound on the whole run. Requests per client: `STRESS_REQUESTS`
/// (default 10,000); `STRESS_SEED` draws other requests.
const CLIENTS: u64 = 8;
const DEADLINE: Duration = Duration::from_secs(120);

/// Replies that mean the server lost track of its own state.
const INTERNAL: [&str; 2] = ["ERR internal", "shard unavailable"];

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn requests() -> usize {
    env("STRESS_REQUESTS", 10_000) as usize
}

fn client(server: &Server, mode: Mode, seed: u64) -> (usize, usize) {
    let mut fuzz = Fuzz { seed };
    let mut raw = server.raw(mode);
    let (mut sent, mut hangups) = (0, 0);
    let started = Instant::now();
    while sent < requests() && started.elapsed() < DEADLINE {
        let mut batch: Vec<Vec<String>> = (0..1 + fuzz.below(16)).map(|_| fuzz.request()).collect();
        if fuzz.below(8) == 0 {
            batch.insert(0, vec!["MULTI".into()]);
            batch.push(vec![if fuzz.below(10) == 0 { "DISCARD" } else { "EXEC" }.into()]);
        }
        sent += batch.len();
        let bytes: Vec<u8> = batch
            .iter()
            .flat_map(|req| resp(&req.iter().map(|a| a.as_bytes()).collect::<Vec<_>>()))
            .collect();
        raw.send(&bytes);
        // Now and then, hang up without reading: the server must drop the connection's
        // transactions, gates and blocked waits cleanly.
        if fuzz.below(40) == 0 {
            raw = server.raw(mode);
            hangups += 1;
            continue;
        }
        for req in &batch {
            // The harness's read timeout turns a hang into a failure naming the request.
            let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read_reply(&mut raw.inner)))
                .unwrap_or_else(|_| {
                    panic!("{mode:?} client {seed}: no reply (timeout or closed) to {req:?} in {batch:?}")
                });
            let text = String::from_utf8_lossy(&reply);
            assert!(!INTERNAL.iter().any(|e| text.contains(e)), "{req:?} -> {text}");
        }
    }
    (sent, hangups)
}

#[test]
fn concurrent_random_clients_never_hang_the_server() {
    stress(Server::start());
}

/// Three shards on two cores (one core hosts two executors): transactions lock up to three
/// gates, and hops between two executors of one core still go through the mesh.
#[test]
fn concurrent_random_clients_never_hang_three_shards() {
    stress(Server::with(Opts { threads: 3, ..Opts::default() }.arg("server-cpus", "0,1,0")));
}

fn stress(server: Server) {
    let started = Instant::now();
    let (sent, hangups) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let server = &server;
                let mode = if i % 2 == 0 { Mode::Plain } else { Mode::Tls };
                scope.spawn(move || client(server, mode, env("STRESS_SEED", 0x5eed) + i))
            })
            .collect();
        let done: Vec<_> = workers.into_iter().map(|w| w.join()).collect();
        if done.iter().any(Result::is_err) {
            let log = server.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "a client failed; the server's last log lines:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        done.into_iter().flatten().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    eprintln!("{sent} requests, {hangups} hang-ups, {:?}", started.elapsed());
    assert!(sent >= CLIENTS as usize * requests() / 2, "too few requests in the time bound: {sent}");
    // Every shard of every database the clients used still answers, on both transports.
    for mode in [Mode::Plain, Mode::Tls] {
        let mut raw = server.raw(mode);
        for db in ["0", "1", "2"] {
            raw.roundtrip(&resp(&[b"SELECT", db.as_bytes()]), b"+OK\r\n");
            for key in ["k1", "k2", "k3", "k4", "{t}a", "{t}b", "{t}c", "lex", "{t}lex"] {
                let reply = raw.request(&[b"TYPE", key.as_bytes()]);
                assert!(
                    reply.starts_with(b"+"),
                    "TYPE {key} in db {db}: {:?}",
                    String::from_utf8_lossy(&reply)
                );
            }
            let size = raw.request(&[b"DBSIZE"]);
            assert!(size.starts_with(b":"), "{:?}", String::from_utf8_lossy(&size));
        }
    }
    // The clients that hung up are gone once the server has seen their connections close:
    // only this one remains.
    let mut c = server.conn(Mode::Plain);
    let gone = Instant::now();
    loop {
        let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
        if clients.lines().count() == 1 {
            break;
        }
        assert!(gone.elapsed() < Duration::from_secs(10), "connections left behind:\n{clients}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!server.log().contains("panicked"), "{}", server.log());
}
