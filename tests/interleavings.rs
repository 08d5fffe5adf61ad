//! Several clients in lockstep against Debian's redis-server and ferrokey: scripted
//! interleavings whose outcome Redis defines (clients blocked first, then a transaction, a push
//! or a flush from another connection), every reply compared, and after every step the set of
//! clients still blocked. Each scenario runs with its keys on one shard and spread over two,
//! over plain TCP and TLS.
//!
//! A scenario is a list of steps, one per line:
//! - `2> BLPOP @l 0`: client 2 sends a command that must block (on both servers).
//! - `0: LPUSH @l a`: client 0 runs a command and reads its reply; several separated by ` | `
//!   are sent as one pipeline.
//! - `unblock 2`: CLIENT UNBLOCK of client 2 (each server's own id for it).
//!
//! `@name` is a key. With one shard every key carries the same hashtag; with two, successive
//! names alternate between ferrokey's shards. Redis gets the same names.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::{key_on, read_reply, resp, Mode, Raw, RedisServer, Server, MODES};

/// Where a scenario's keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    OneShard,
    TwoShards,
}

/// One server's side of a run: its clients, a control connection, and what it replied.
struct Side {
    name: &'static str,
    control: Raw,
    clients: Vec<Raw>,
    ids: Vec<i64>,
    transcript: Vec<String>,
}

impl Side {
    fn new(name: &'static str, mut control: Raw, connect: &dyn Fn() -> Raw, n: usize) -> Side {
        assert_eq!(control.request(&[b"FLUSHALL"]), b"+OK\r\n");
        let mut clients: Vec<Raw> = (0..n).map(|_| connect()).collect();
        let ids = clients.iter_mut().map(Raw::client_id).collect();
        Side { name, control, clients, ids, transcript: Vec::new() }
    }

    /// The scenario clients the server lists as blocked.
    fn blocked(&mut self) -> BTreeSet<usize> {
        let list = self.control.request(&[b"CLIENT", b"LIST"]);
        let list = String::from_utf8_lossy(&list).into_owned();
        let mut blocked = BTreeSet::new();
        for line in list.lines() {
            let field = |name: &str| {
                line.split(' ').find_map(|f| f.strip_prefix(name).and_then(|f| f.strip_prefix('=')))
            };
            let (Some(id), Some(flags)) = (field("id"), field("flags")) else { continue };
            let Ok(id) = id.parse::<i64>() else { continue };
            if let Some(c) = self.ids.iter().position(|&i| i == id) {
                if flags.contains('b') {
                    blocked.insert(c);
                }
            }
        }
        blocked
    }

    /// Polls (bounded) until the blocked clients are `want`; returns the last set seen.
    fn await_blocked(&mut self, want: &BTreeSet<usize>) -> BTreeSet<usize> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.blocked();
            if now == *want || Instant::now() > deadline {
                return now;
            }
            std::thread::yield_now();
        }
    }

    fn read(&mut self, client: usize, what: &str) {
        let reply = read_reply(&mut self.clients[client].inner);
        self.transcript.push(format!("{client}: {what} -> {}", String::from_utf8_lossy(&reply)));
    }
}

/// The requests of a step line, with keys placed.
fn requests(text: &str, keys: &dyn Fn(&str) -> String) -> Vec<Vec<Vec<u8>>> {
    text.split(" | ")
        .map(|req| {
            req.split_whitespace()
                .map(|w| match w.strip_prefix('@') {
                    Some(name) => keys(name).into_bytes(),
                    None => w.as_bytes().to_vec(),
                })
                .collect()
        })
        .collect()
}

fn send(raw: &mut Raw, reqs: &[Vec<Vec<u8>>]) {
    let mut bytes = Vec::new();
    for req in reqs {
        bytes.extend(resp(&req.iter().map(Vec::as_slice).collect::<Vec<_>>()));
    }
    raw.send(&bytes);
}

/// Runs `scenario` on both sides in lockstep, Redis first at each step, and fails at the first
/// step where the sets of blocked clients differ, or at the end if any reply does.
fn run(scenario: &[&str], reference: &RedisServer, server: &Server, mode: Mode, placement: Placement) {
    let mut names: Vec<String> = Vec::new();
    for line in scenario {
        for w in line.split_whitespace() {
            if let Some(n) = w.strip_prefix('@') {
                if !names.iter().any(|x| x == n) {
                    names.push(n.to_owned());
                }
            }
        }
    }
    let keys = |name: &str| match placement {
        Placement::OneShard => format!("{name}{{t}}"),
        Placement::TwoShards => {
            let i = names.iter().position(|n| n == name).unwrap_or(0);
            key_on(&format!("{name}:"), i % 2, 2)
        }
    };
    let clients = 1 + scenario
        .iter()
        .filter_map(|l| {
            l.split(['>', ':']).next()?.trim().trim_start_matches("unblock ").parse::<usize>().ok()
        })
        .max()
        .unwrap_or(0);
    let mut sides = [
        Side::new("redis", reference.raw(), &|| reference.raw(), clients),
        Side::new("ferrokey", server.raw(mode), &|| server.raw(mode), clients),
    ];
    let context = |step: &str| format!("{mode:?} {placement:?}, at `{step}` of\n{}", scenario.join("\n"));
    let mut blocked: BTreeSet<usize> = BTreeSet::new();
    for step in scenario {
        let before = blocked.clone();
        if let Some(c) = step.strip_prefix("unblock ") {
            let c: usize = c.trim().parse().unwrap();
            for side in &mut sides {
                let id = side.ids[c].to_string();
                let r = side.control.request(&[b"CLIENT", b"UNBLOCK", id.as_bytes()]);
                assert_eq!(r, b":1\r\n", "{}: CLIENT UNBLOCK: {}", side.name, context(step));
            }
            blocked.remove(&c);
        } else if let Some((c, cmd)) = step.split_once("> ") {
            let c: usize = c.trim().parse().unwrap();
            let reqs = requests(cmd, &keys);
            blocked.insert(c);
            for side in &mut sides {
                send(&mut side.clients[c], &reqs);
                let now = side.await_blocked(&blocked);
                assert_eq!(now, blocked, "{}: client {c} did not block: {}", side.name, context(step));
                side.transcript.push(format!("{c}> {cmd}"));
            }
            continue;
        } else {
            let (c, cmd) = step.split_once(": ").unwrap_or_else(|| panic!("bad step `{step}`"));
            let c: usize = c.trim().parse().unwrap();
            let reqs = requests(cmd, &keys);
            for side in &mut sides {
                send(&mut side.clients[c], &reqs);
                for req in cmd.split(" | ") {
                    side.read(c, req);
                }
            }
            // Redis serves blocked clients before it replies: its set is the oracle.
            blocked = sides[0].blocked();
        }
        let seen = sides[1].await_blocked(&blocked);
        assert_eq!(seen, blocked, "blocked clients differ (redis, then ferrokey): {}", context(step));
        for c in before.difference(&blocked) {
            for side in &mut sides {
                side.read(*c, "(unblocked)");
            }
        }
    }
    for c in blocked {
        for side in &mut sides {
            let id = side.ids[c].to_string();
            side.control.request(&[b"CLIENT", b"UNBLOCK", id.as_bytes()]);
            side.read(c, "(unblocked at the end)");
        }
    }
    let [redis, ferrokey] = sides;
    let diffs: Vec<String> = redis
        .transcript
        .iter()
        .zip(&ferrokey.transcript)
        .filter(|(r, f)| r != f)
        .map(|(r, f)| format!("redis:    {r}\nferrokey: {f}"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{mode:?} {placement:?}: replies differ:\n{}\n\nwhole redis transcript:\n{}",
        diffs.join("\n"),
        redis.transcript.join("\n")
    );
}

/// Runs every scenario over both transports and both placements (those marked one-shard only
/// keep their keys together).
fn run_all(scenarios: &[(&[&str], bool)]) {
    let reference = RedisServer::start();
    let server = Server::start();
    for mode in MODES {
        for (scenario, spread) in scenarios {
            run(scenario, &reference, &server, mode, Placement::OneShard);
            if *spread {
                run(scenario, &reference, &server, mode, Placement::TwoShards);
            }
        }
    }
}

/// Blocked clients are served once a transaction has finished, from the state it left: for
/// every blocking command, with the transaction's keys on one shard and on two.
#[test]
fn blocked_clients_see_whole_transactions() {
    let scenarios: &[(&[&str], bool)] = &[
        (&["1> BLPOP @l 0", "0: MULTI", "0: LPUSH @l a", "0: LPUSH @l b", "0: LPUSH @l c", "0: EXEC"], true),
        (&["1> BLPOP @l 0", "0: MULTI", "0: LPUSH @l a", "0: DEL @l", "0: LPUSH @l b", "0: EXEC"], true),
        (
            &[
                "1> BRPOP @l 0",
                "0: MULTI",
                "0: RPUSH @l a",
                "0: SET @other x",
                "0: DEL @l",
                "0: RPUSH @l b c",
                "0: EXEC",
                "0: LRANGE @l 0 -1",
            ],
            true,
        ),
        (&["1> BLMPOP 0 1 @l RIGHT COUNT 2", "0: MULTI", "0: LPUSH @l a b c", "0: LPOP @l", "0: EXEC"], true),
        (
            &[
                "1> BLMOVE @l @dst LEFT RIGHT 0",
                "0: MULTI",
                "0: RPUSH @l a",
                "0: DEL @l",
                "0: RPUSH @l b",
                "0: EXEC",
                "0: LRANGE @dst 0 -1",
            ],
            true,
        ),
        (
            &[
                "1> BRPOPLPUSH @l @dst 0",
                "0: MULTI",
                "0: RPUSH @l a b",
                "0: RPOP @l",
                "0: EXEC",
                "0: LRANGE @dst 0 -1",
            ],
            true,
        ),
        (&["1> BZPOPMIN @z 0", "0: MULTI", "0: ZADD @z 1 a", "0: DEL @z", "0: ZADD @z 2 b", "0: EXEC"], true),
        (&["1> BZPOPMAX @z 0", "0: MULTI", "0: ZADD @z 1 a 2 b", "0: ZREM @z b", "0: EXEC"], true),
        (
            &[
                "1> BZMPOP 0 1 @z MIN COUNT 5",
                "0: MULTI",
                "0: ZADD @z 1 a",
                "0: SET @other x",
                "0: DEL @z",
                "0: ZADD @z 3 c 2 b",
                "0: EXEC",
            ],
            true,
        ),
        // The transaction leaves the key empty: the client stays blocked.
        (&["1> BLPOP @l 0", "0: MULTI", "0: LPUSH @l a", "0: DEL @l", "0: EXEC", "0: LPUSH @l z"], true),
        // Not a transaction: a pipeline is served command by command, as Redis does.
        (&["1> BLPOP @l 0", "0: LPUSH @l a | LPOP @l | LPUSH @l b", "0: LLEN @l"], true),
        // Commands that move whole values onto a key clients wait on.
        (&["1> BLPOP @l 0", "0: RPUSH @src x y", "0: RENAME @src @l", "0: LRANGE @l 0 -1"], true),
        (&["1> BZPOPMAX @z 0", "0: ZADD @a 1 x 2 y", "0: ZADD @b 5 y", "0: ZUNIONSTORE @z 2 @a @b"], true),
        (&["1> BLPOP @l 0", "0: RPUSH @src x", "0: COPY @src @l", "0: LLEN @src"], true),
    ];
    run_all(scenarios);
}

/// A push made while serving one blocked client (BLMOVE, BRPOPLPUSH) wakes the clients blocked
/// on its destination in the same round, on whichever shard it lives; chains too.
#[test]
fn chained_blocking_moves_wake_every_client() {
    let scenarios: &[(&[&str], bool)] = &[
        (
            &[
                "1> BLPOP @target 0",
                "2> BLMOVE @blist @target LEFT LEFT 0",
                "0: RPUSH @blist foo",
                "0: EXISTS @target",
            ],
            true,
        ),
        (
            &[
                "3> BLPOP @c 0",
                "2> BLMOVE @b @c RIGHT LEFT 0",
                "1> BRPOPLPUSH @a @b 0",
                "0: LPUSH @a x",
                "0: EXISTS @a @b @c",
            ],
            true,
        ),
        (
            &[
                "1> BRPOPLPUSH @a @b 0",
                "2> BRPOPLPUSH @b @c 0",
                "3> BRPOPLPUSH @c @d 0",
                "4> BLMPOP 0 1 @d LEFT COUNT 3",
                "0: RPUSH @a 1 2",
                "0: LRANGE @a 0 -1",
                "0: EXISTS @b @c @d",
            ],
            true,
        ),
        // A destination of another type fails the BLMOVE with WRONGTYPE and pops nothing.
        (&["0: SET @dst s", "1> BLMOVE @l @dst LEFT LEFT 0", "0: RPUSH @l a", "0: LRANGE @l 0 -1"], true),
        // Two clients blocked on one key are served in the order they blocked.
        (&["1> BLPOP @l 0", "2> BRPOP @l 0", "3> BLPOP @l 0", "0: RPUSH @l x y", "0: RPUSH @l z"], true),
        // A client blocked on several keys takes the first ready one in the transaction's order.
        (&["1> BLPOP @a @b 0", "0: MULTI", "0: LPUSH @b x", "0: LPUSH @a y", "0: EXEC", "0: LLEN @a"], false),
        // Unblocked by another client: nothing is popped for it.
        (&["1> BLPOP @l 0", "unblock 1", "0: RPUSH @l a", "0: LLEN @l"], true),
    ];
    run_all(scenarios);
}

/// WATCH as Redis 7.0: FLUSHALL and FLUSHDB touch only watched keys that existed.
#[test]
fn flushes_abort_only_transactions_watching_existing_keys() {
    let scenarios: &[(&[&str], bool)] = &[
        (&["0: WATCH @gone", "1: FLUSHALL", "0: MULTI", "0: SET @x 1", "0: EXEC"], true),
        (&["0: WATCH @gone", "1: FLUSHDB", "0: MULTI", "0: SET @x 1", "0: EXEC"], true),
        (&["1: SET @k v", "0: WATCH @k", "1: FLUSHALL", "0: MULTI", "0: SET @x 1", "0: EXEC"], true),
        (&["1: SET @k v", "0: WATCH @gone @k", "1: FLUSHDB", "0: MULTI", "0: SET @x 1", "0: EXEC"], true),
        (
            &["1: SET @k v", "0: WATCH @k", "1: SELECT 1", "1: FLUSHDB", "0: MULTI", "0: GET @k", "0: EXEC"],
            true,
        ),
        (&["0: WATCH @k", "1: SET @k v", "0: MULTI", "0: GET @k", "0: EXEC"], true),
        (&["1: SET @k v", "0: WATCH @k", "1: SET @k v", "0: MULTI", "0: GET @k", "0: EXEC"], true),
        (&["0: WATCH @k", "1: DEL @k", "0: MULTI", "0: GET @k", "0: EXEC"], true),
    ];
    run_all(scenarios);
}
