//! Cluster mode (`cluster-enabled yes`): one node answering the CLUSTER commands and routing
//! errors as Debian's redis-server does in the same run; nodes.conf kept across restarts,
//! locked, and readable by redis-server both ways; and two ferrokey nodes that know each other
//! from nodes.conf sending clients (redis-cli -c, redis-py's RedisCluster, plain and TLS) to
//! the node serving each key, at the port of the client's own kind.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{certs, free_port, start_refused, Mode, Opts, RedisServer, Server};

/// Options for a ferrokey cluster node (a bus port of its own, a short node timeout).
fn cluster_opts() -> Opts {
    Opts::default()
        .arg("cluster-enabled", "yes")
        .arg("cluster-port", &free_port().to_string())
        .arg("cluster-node-timeout", "500")
}

/// redis-server as a cluster node, and its bus port.
fn redis_cluster_node() -> (RedisServer, u16) {
    let bus = free_port();
    let redis = RedisServer::with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &bus.to_string(),
        "--cluster-node-timeout",
        "500",
    ]);
    (redis, bus)
}

/// Sends `args` on `raw` and gives the reply as text.
fn ask(raw: &mut common::Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&raw.request(&args)).into_owned()
}

/// Polls CLUSTER INFO (bounded) until the cluster state is `want`.
fn wait_state(raw: &mut common::Raw, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ask(raw, &["CLUSTER", "INFO"]).contains(&format!("cluster_state:{want}\r\n")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("cluster_state never became {want}: {}", ask(raw, &["CLUSTER", "INFO"]));
}

/// `text` with node ids replaced by `<id>` and each of `ports` by `<pN>`.
fn normalized(text: &str, ports: &[u16]) -> String {
    let mut out = String::new();
    let mut rest = text;
    // Node ids: runs of exactly 40 lowercase hex characters.
    while let Some(at) = rest.find(|c: char| c.is_ascii_hexdigit()) {
        out.push_str(&rest[..at]);
        let run = rest[at..]
            .find(|c: char| !(c.is_ascii_digit() || ('a'..='f').contains(&c)))
            .unwrap_or(rest.len() - at);
        if run == 40 {
            out.push_str("<id>");
        } else {
            out.push_str(&rest[at..at + run.max(1)]);
        }
        rest = &rest[at + run.max(1)..];
    }
    out.push_str(rest);
    for (i, p) in ports.iter().enumerate() {
        out = out.replace(&p.to_string(), &format!("<p{i}>"));
    }
    out
}

#[test]
fn one_node_answers_the_cluster_commands_as_redis_does() {
    let server = Server::with(cluster_opts());
    let (redis, redis_bus) = redis_cluster_node();
    let mut ours = server.raw(Mode::Plain);
    let mut theirs = redis.raw();
    // The replies that hold no node id nor port, compared byte for byte.
    let same = |ours: &mut common::Raw, theirs: &mut common::Raw, args: &[&str]| {
        let (a, b) = (ask(ours, args), ask(theirs, args));
        assert_eq!(a, b, "{args:?}");
        a
    };
    let before_slots: &[&[&str]] = &[
        &["GET", "foo"],
        &["CLUSTER", "ADDSLOTS", "1", "1"],
        &["CLUSTER", "ADDSLOTS", "16384"],
        &["CLUSTER", "ADDSLOTS", "x"],
        &["CLUSTER", "ADDSLOTSRANGE", "5", "1"],
        &["CLUSTER", "ADDSLOTSRANGE", "1", "2", "3"],
        &["CLUSTER", "DELSLOTS", "7"],
        &["CLUSTER", "DELSLOTSRANGE", "7", "9"],
        &["CLUSTER", "SLOTS"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "-1"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "5"],
        &["CLUSTER", "SET-CONFIG-EPOCH", "6"],
        &["CLUSTER", "BUMPEPOCH"],
        &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"],
        &["CLUSTER", "ADDSLOTS", "5"],
        &["CLUSTER", "COUNT-FAILURE-REPORTS", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "REPLICAS", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "FORGET", "0000000000000000000000000000000000000000"],
        &["CLUSTER", "BOGUS"],
        &["CLUSTER", "RESET", "MAYBE"],
        &["READONLY"],
        &["READWRITE"],
        &["ASKING"],
        &["REPLICAOF", "127.0.0.1", "1"],
        &["FAILOVER"],
    ];
    for args in before_slots {
        same(&mut ours, &mut theirs, args);
    }
    let nodes = ask(&mut ours, &["CLUSTER", "NODES"]);
    assert!(nodes.ends_with(" myself,master - 0 0 5 connected 0-16383\n\r\n"), "{nodes}");
    assert_eq!(
        normalized(&nodes, &[server.port, server_bus(&server)]),
        normalized(&ask(&mut theirs, &["CLUSTER", "NODES"]), &[redis.port, redis_bus]),
        "CLUSTER NODES as Redis's"
    );
    // CLUSTER SLOTS and SHARDS, ids and ports aside (and the TLS port Redis 7.0 does not show).
    let slots = ask(&mut ours, &["CLUSTER", "SLOTS"]);
    assert_eq!(
        normalized(&slots, &[server.port]),
        normalized(&ask(&mut theirs, &["CLUSTER", "SLOTS"]), &[redis.port])
    );
    let shards = ask(&mut ours, &["CLUSTER", "SHARDS"])
        .replace(&format!("$8\r\ntls-port\r\n:{}\r\n", server.tls_port), "");
    let shards = shards.replacen("*16\r\n", "*14\r\n", 1);
    assert_eq!(
        normalized(&shards, &[server.port]),
        normalized(&ask(&mut theirs, &["CLUSTER", "SHARDS"]), &[redis.port])
    );
    assert_eq!(ask(&mut ours, &["CLUSTER", "MYID"]).len(), "$40\r\n".len() + 40 + 2);

    wait_state(&mut ours, "ok");
    wait_state(&mut theirs, "ok");
    let served: &[&[&str]] = &[
        &["CLUSTER", "INFO"],
        &["SET", "foo", "1"],
        &["SET", "bar", "2"],
        &["MSET", "foo", "1", "bar", "2"],
        &["MSET", "{a}x", "1", "{a}y", "2"],
        &["MGET", "{a}x", "{a}y", "{a}z"],
        &["DEL", "{a}x", "foo"],
        &["SELECT", "1"],
        &["SELECT", "0"],
        &["MOVE", "foo", "1"],
        &["SWAPDB", "0", "1"],
        &["COPY", "{a}y", "{a}z", "DB", "1"],
        &["COPY", "{a}y", "{a}z"],
        &["SORT", "{a}y", "BY", "w_*"],
        &["SORT", "{a}y", "GET", "#"],
        &["CLUSTER", "KEYSLOT", "foo"],
        &["CLUSTER", "KEYSLOT", "{user1000}.following"],
        &["CLUSTER", "COUNTKEYSINSLOT", "12182"],
        &["CLUSTER", "COUNTKEYSINSLOT", "16384"],
        &["CLUSTER", "COUNTKEYSINSLOT", "x"],
        &["CLUSTER", "GETKEYSINSLOT", "12182", "10"],
        &["CLUSTER", "GETKEYSINSLOT", "1", "-1"],
        &["CLUSTER", "FLUSHSLOTS"],
        &["CLUSTER", "RESET"],
        &["CLUSTER", "BUMPEPOCH"],
        &["MULTI"],
        &["SET", "foo", "1"],
        &["MSET", "foo", "1", "bar", "2"],
        &["EXEC"],
        // Queued one by one, then refused together: EXEC answers CROSSSLOT and drops the
        // transaction.
        &["MULTI"],
        &["SET", "foo", "1"],
        &["SET", "bar", "1"],
        &["EXEC"],
        &["DISCARD"],
        &["MULTI"],
        &["SET", "{a}1", "1"],
        &["INCR", "{a}1"],
        &["EXEC"],
        &["WATCH", "foo", "bar"],
        &["EVAL", "return redis.call('get', KEYS[1])", "1", "foo"],
        &["EVAL", "return 1", "2", "foo", "bar"],
    ];
    for args in served {
        same(&mut ours, &mut theirs, args);
    }
    // Keys in many slots, so on both of ferrokey's shards: each slot counted where it lives.
    for i in 0..50 {
        same(&mut ours, &mut theirs, &["SET", &format!("k{i}"), "v"]);
    }
    for i in 0..50 {
        let slot = ask(&mut ours, &["CLUSTER", "KEYSLOT", &format!("k{i}")]);
        let slot = slot.trim_start_matches(':').trim();
        same(&mut ours, &mut theirs, &["CLUSTER", "COUNTKEYSINSLOT", slot]);
        same(&mut ours, &mut theirs, &["CLUSTER", "GETKEYSINSLOT", slot, "5"]);
    }
    let info: String = server.cli(Mode::Plain, &["INFO", "cluster"]);
    assert!(info.contains("cluster_enabled:1"), "{info}");
    assert!(server.cli(Mode::Plain, &["INFO", "server"]).contains("redis_mode:cluster"));
    same(&mut ours, &mut theirs, &["FLUSHALL"]);
    same(&mut ours, &mut theirs, &["CLUSTER", "FLUSHSLOTS"]);
    same(&mut ours, &mut theirs, &["CLUSTER", "INFO"]);
}

/// The bus port a ferrokey test node announces (its `cluster-port`).
fn server_bus(server: &Server) -> u16 {
    let at = server.opts.extra.iter().position(|a| a == "--cluster-port").unwrap();
    server.opts.extra[at + 1].parse().unwrap()
}

#[test]
fn over_tls_a_client_is_shown_the_tls_ports() {
    let server = Server::with(cluster_opts());
    let mut plain = server.raw(Mode::Plain);
    let mut tls = server.raw(Mode::Tls);
    assert!(ask(&mut plain, &["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]).starts_with("+OK"));
    let port_in = |reply: &str, port: u16| reply.contains(&format!(":{port}\r\n"));
    let slots = ask(&mut tls, &["CLUSTER", "SLOTS"]);
    assert!(port_in(&slots, server.tls_port) && !port_in(&slots, server.port), "{slots}");
    let slots = ask(&mut plain, &["CLUSTER", "SLOTS"]);
    assert!(port_in(&slots, server.port) && !port_in(&slots, server.tls_port), "{slots}");
    assert!(ask(&mut tls, &["CLUSTER", "NODES"]).contains(&format!(":{}@", server.tls_port)));
    assert!(ask(&mut plain, &["CLUSTER", "NODES"]).contains(&format!(":{}@", server.port)));
    let shards = ask(&mut tls, &["CLUSTER", "SHARDS"]);
    assert!(shards.contains(&format!("$8\r\ntls-port\r\n:{}\r\n", server.tls_port)), "{shards}");
    wait_state(&mut tls, "ok");
    assert_eq!(ask(&mut tls, &["SET", "foo", "1"]), "+OK\r\n");
}

#[test]
fn nodes_conf_is_kept_locked_and_shared_with_redis() {
    let dir = std::env::temp_dir().join(format!("ferrokey-cluster-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.display().to_string();
    let opts = cluster_opts().arg("dir", &dir_arg);
    let server = Server::with(opts.clone());
    let id = ask(&mut server.raw(Mode::Plain), &["CLUSTER", "MYID"]);
    assert!(ask(&mut server.raw(Mode::Plain), &["CLUSTER", "ADDSLOTSRANGE", "0", "100", "200", "300"])
        .starts_with("+OK"));
    let file = std::fs::read_to_string(dir.join("nodes.conf")).unwrap();
    assert!(file.contains(" myself,master - 0 0 0 connected 0-100 200-300\n"), "{file}");
    assert!(file.ends_with("vars currentEpoch 0 lastVoteEpoch 0\n"), "{file}");
    // A second server on the same file is refused, and says why.
    let (code, log) = start_refused(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &free_port().to_string(),
        "--dir",
        &dir_arg,
    ]);
    assert_ne!(code, Some(0));
    assert!(log.contains("is already used by a different Redis Cluster node"), "{log}");
    // A restart is the same node with the same slots.
    assert_eq!(server.terminate(), Some(0));
    let server = Server::with(opts.clone());
    let mut raw = server.raw(Mode::Plain);
    assert_eq!(ask(&mut raw, &["CLUSTER", "MYID"]), id);
    assert!(ask(&mut raw, &["CLUSTER", "NODES"]).contains(" connected 0-100 200-300\n"));
    assert_eq!(server.terminate(), Some(0));

    // redis-server reads ferrokey's file as its own, and ferrokey reads what redis-server wrote.
    let redis = RedisServer::with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &free_port().to_string(),
        "--cluster-config-file",
        &dir.join("nodes.conf").display().to_string(),
    ]);
    let mut theirs = redis.raw();
    assert_eq!(ask(&mut theirs, &["CLUSTER", "MYID"]), id);
    assert!(ask(&mut theirs, &["CLUSTER", "NODES"]).contains(" connected 0-100 200-300\n"));
    assert!(ask(&mut theirs, &["CLUSTER", "ADDSLOTS", "500"]).starts_with("+OK"));
    assert!(ask(&mut theirs, &["CLUSTER", "SET-CONFIG-EPOCH", "3"]).starts_with("+OK"));
    drop(theirs);
    drop(redis);
    let server = Server::with(opts.clone());
    let mut raw = server.raw(Mode::Plain);
    assert_eq!(ask(&mut raw, &["CLUSTER", "MYID"]), id);
    let nodes = ask(&mut raw, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(" myself,master - 0 0 3 connected 0-100 200-300 500\n"), "{nodes}");
    assert_eq!(server.terminate(), Some(0));

    // A damaged file is refused with its line, and left as it was.
    let damaged = format!("{} 127.0.0.1:1@2 myself,master - 0 0 0 connected 0-99999\n", &id[5..45]);
    std::fs::write(dir.join("nodes.conf"), &damaged).unwrap();
    let (code, log) = start_refused(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &free_port().to_string(),
        "--dir",
        &dir_arg,
    ]);
    assert_ne!(code, Some(0));
    assert!(log.contains("corrupted cluster config file"), "{log}");
    assert_eq!(std::fs::read_to_string(dir.join("nodes.conf")).unwrap(), damaged);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A ferrokey node that knows `me` and `other` from a nodes.conf written for it: `me` serves
/// slots 0-8191, `other` the rest.
struct Node {
    server: Server,
    id: String,
}

fn two_nodes() -> (Node, Node) {
    let ids = ["a".repeat(40), "b".repeat(40)];
    let ports: Vec<(u16, u16, u16)> = (0..2).map(|_| (free_port(), free_port(), free_port())).collect();
    let line = |i: usize, me: bool| {
        let (port, tls, bus) = ports[i];
        let slots = if i == 0 { "0-8191" } else { "8192-16383" };
        let flags = if me { "myself,master" } else { "master" };
        format!(
            "{} 127.0.0.1:{port}@{bus},,tls-port={tls} {flags} - 0 0 {} connected {slots}\n",
            ids[i],
            i + 1
        )
    };
    // Each pair its own directories: tests run in parallel in one process.
    static PAIRS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let pair = PAIRS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nodes: Vec<Node> = (0..2)
        .map(|i| {
            let dir =
                std::env::temp_dir().join(format!("ferrokey-cluster-two-{}-{pair}-{i}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let conf =
                format!("{}{}vars currentEpoch 2 lastVoteEpoch 0\n", line(i, true), line(1 - i, false));
            std::fs::write(dir.join("nodes.conf"), conf).unwrap();
            let (port, tls, bus) = ports[i];
            let opts = Opts { ports: Some((port, tls)), ..Opts::default() }
                .arg("cluster-enabled", "yes")
                .arg("cluster-port", &bus.to_string())
                .arg("dir", &dir.display().to_string());
            Node { server: Server::with(opts), id: ids[i].clone() }
        })
        .collect();
    let mut nodes = nodes.into_iter();
    (nodes.next().unwrap(), nodes.next().unwrap())
}

#[test]
fn clients_are_sent_to_the_node_serving_their_keys() {
    let (a, b) = two_nodes();
    let mut plain = a.server.raw(Mode::Plain);
    let mut tls = a.server.raw(Mode::Tls);
    wait_state(&mut plain, "ok");
    wait_state(&mut b.server.raw(Mode::Plain), "ok");
    // "foo" is slot 12182 (b's), "bar" 5061 (a's).
    assert_eq!(ask(&mut plain, &["GET", "foo"]), format!("-MOVED 12182 127.0.0.1:{}\r\n", b.server.port));
    assert_eq!(ask(&mut tls, &["GET", "foo"]), format!("-MOVED 12182 127.0.0.1:{}\r\n", b.server.tls_port));
    assert_eq!(ask(&mut plain, &["SET", "bar", "1"]), "+OK\r\n");
    assert_eq!(
        ask(&mut b.server.raw(Mode::Plain), &["GET", "bar"]),
        format!("-MOVED 5061 127.0.0.1:{}\r\n", a.server.port)
    );
    // A transaction queuing another node's key fails; EXEC of keys in two slots answers
    // CROSSSLOT and drops the transaction.
    assert_eq!(ask(&mut plain, &["MULTI"]), "+OK\r\n");
    assert!(ask(&mut plain, &["SET", "foo", "1"]).starts_with("-MOVED"));
    assert!(ask(&mut plain, &["EXEC"]).starts_with("-EXECABORT"));
    let slots = ask(&mut tls, &["CLUSTER", "SLOTS"]);
    assert!(slots.contains(&format!(":{}\r\n$40\r\n{}", b.server.tls_port, b.id)), "{slots}");
    let nodes = ask(&mut plain, &["CLUSTER", "NODES"]);
    assert!(nodes.contains(&format!("{} 127.0.0.1:{}@", b.id, b.server.port)), "{nodes}");
    assert!(ask(&mut plain, &["CLUSTER", "INFO"]).contains("cluster_known_nodes:2\r\ncluster_size:2\r\n"));

    // redis-cli -c follows the redirections, plain and TLS.
    for mode in [Mode::Plain, Mode::Tls] {
        let cli = |args: &[&str]| a.server.cli(mode, &[&["-c"], args].concat());
        for i in 0..20 {
            assert_eq!(cli(&["SET", &format!("cli{i}"), &i.to_string()]).trim(), "OK");
        }
        for i in 0..20 {
            assert_eq!(cli(&["GET", &format!("cli{i}")]).trim(), i.to_string());
        }
    }
    // Each key is on the node serving its slot.
    let count = |n: &Node| ask(&mut n.server.raw(Mode::Plain), &["DBSIZE"]);
    let (on_a, on_b) = (count(&a), count(&b));
    let n = |r: &str| r.trim_start_matches(':').trim().parse::<i64>().unwrap();
    assert_eq!(n(&on_a) + n(&on_b), 21, "{on_a} {on_b}");
    assert!(n(&on_a) > 1 && n(&on_b) > 0);

    // redis-py's RedisCluster over TLS: it reads CLUSTER SLOTS and talks to each node.
    let c = certs();
    let script = format!(
        r#"
import sys
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port={port}, ssl=True, ssl_ca_certs="{ca}",
                  ssl_certfile="{crt}", ssl_keyfile="{key}", socket_timeout=10)
for i in range(200):
    rc.set(f"py{{i}}", i)
assert all(int(rc.get(f"py{{i}}")) == i for i in range(200))
nodes = {{(n.host, n.port) for n in rc.get_nodes()}}
assert nodes == {{("127.0.0.1", {pa}), ("127.0.0.1", {pb})}}, nodes
print("ok", rc.keyslot("foo"))
"#,
        port = a.server.tls_port,
        pa = a.server.tls_port,
        pb = b.server.tls_port,
        ca = c.path("ca.crt"),
        crt = c.path("client.crt"),
        key = c.path("client.key"),
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "redis-py failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 12182");
    let (on_a, on_b) = (count(&a), count(&b));
    assert_eq!(n(&on_a) + n(&on_b), 221);
    for node in [&a, &b] {
        let _ = std::fs::remove_dir_all(&node.server.data_dir);
    }
}

/// Runs `redis-cli --cluster` with `args` (bounded by `timeout`), expecting success: its output.
fn cluster_tool(args: &[String]) -> String {
    let out = Command::new("timeout")
        .arg("240")
        .arg("redis-cli")
        .arg("--cluster")
        .args(args)
        .output()
        .expect("redis-cli must be installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "redis-cli --cluster {args:?} failed:\n{text}");
    text
}

/// Polls CLUSTER NODES on `port` (bounded) until `test` holds for it.
fn wait_nodes(port: u16, what: &str, test: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = String::new();
    while Instant::now() < deadline {
        let mut raw = common::raw_connect(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Mode::Plain,
            None,
            "ca.crt",
        );
        last = ask(&mut raw, &["CLUSTER", "NODES"]);
        if test(&last) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("node {port} never saw {what}:\n{last}");
}

/// A ferrokey cluster node on a bus port of its own (`port + 10000` may be out of range).
fn ferrokey_node() -> Server {
    Server::with(cluster_opts().arg("cluster-node-timeout", "1000"))
}

/// redis-server as a cluster node with a 1 s node timeout.
fn redis_node() -> RedisServer {
    RedisServer::with(&[
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &free_port().to_string(),
        "--cluster-node-timeout",
        "1000",
    ])
}

#[test]
fn redis_cli_builds_a_cluster_of_ferrokey_nodes_over_the_bus() {
    let nodes: Vec<Server> = (0..3).map(|_| ferrokey_node()).collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let out = cluster_tool(&[&["create".to_owned()], &addrs[..], &["--cluster-yes".to_owned()]].concat());
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    for n in &nodes {
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    let check = cluster_tool(&["check".to_owned(), addrs[2].clone()]);
    assert!(check.contains("[OK] All nodes agree about slots configuration."), "{check}");
    // Every node knows every other, connected, with its slots; the epochs differ.
    let nodes_view = ask(&mut nodes[1].raw(Mode::Plain), &["CLUSTER", "NODES"]);
    assert_eq!(nodes_view.matches(" connected ").count(), 3, "{nodes_view}");
    let info = ask(&mut nodes[0].raw(Mode::Plain), &["CLUSTER", "INFO"]);
    assert!(
        info.contains("cluster_known_nodes:3\r\ncluster_size:3\r\ncluster_current_epoch:3\r\n"),
        "{info}"
    );
    assert!(info.contains("cluster_stats_messages_pong_received:"), "{info}");
    // redis-cli -c writes through any node; each key lands where its slot is served.
    for i in 0..30 {
        assert_eq!(nodes[i % 3].cli(Mode::Plain, &["-c", "SET", &format!("k{i}"), "v"]).trim(), "OK");
    }
    let total: i64 = nodes
        .iter()
        .map(|n| {
            ask(&mut n.raw(Mode::Plain), &["DBSIZE"]).trim_start_matches(':').trim().parse::<i64>().unwrap()
        })
        .sum();
    assert_eq!(total, 30);

    // A node that dies is marked failing by the others (PFAIL, then FAIL by majority), and the
    // cluster stops serving its slots.
    let mut nodes = nodes;
    let dead = nodes.pop().unwrap();
    let id = ask(&mut dead.raw(Mode::Plain), &["CLUSTER", "MYID"]);
    let id = id.lines().nth(1).unwrap().to_owned();
    drop(dead);
    for n in &nodes {
        wait_nodes(n.port, "the dead node failing", |v| {
            v.lines().any(|l| l.starts_with(&id) && l.contains(",fail "))
        });
        wait_state(&mut n.raw(Mode::Plain), "fail");
        assert!(ask(&mut n.raw(Mode::Plain), &["GET", "k1"]).starts_with("-CLUSTERDOWN The cluster is down"));
    }
}

#[test]
fn ferrokey_and_redis_server_nodes_form_one_cluster() {
    let ours: Vec<Server> = (0..2).map(|_| ferrokey_node()).collect();
    let theirs: Vec<RedisServer> = (0..2).map(|_| redis_node()).collect();
    let addrs: Vec<String> = vec![
        format!("127.0.0.1:{}", ours[0].port),
        format!("127.0.0.1:{}", theirs[0].port),
        format!("127.0.0.1:{}", ours[1].port),
        format!("127.0.0.1:{}", theirs[1].port),
    ];
    let out = cluster_tool(&[&["create".to_owned()], &addrs[..], &["--cluster-yes".to_owned()]].concat());
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    for n in &ours {
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    for n in &theirs {
        wait_state(&mut n.raw(), "ok");
    }
    // Both kinds agree, checked from either side.
    for at in [&addrs[0], &addrs[1]] {
        let check = cluster_tool(&["check".to_owned(), at.clone()]);
        assert!(check.contains("[OK] All nodes agree about slots configuration."), "{check}");
    }
    for i in 0..40 {
        assert_eq!(ours[i % 2].cli(Mode::Plain, &["-c", "SET", &format!("m{i}"), "v"]).trim(), "OK");
    }
    let redis_cli_get = Command::new("redis-cli")
        .args(["-c", "-p", &theirs[0].port.to_string(), "GET", "m7"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&redis_cli_get.stdout).trim(), "v");
    // redis-server sees ferrokey's nodes, and ferrokey redis-server's, with their slots.
    let seen = ask(&mut theirs[1].raw(), &["CLUSTER", "NODES"]);
    let ours_id = ask(&mut ours[1].raw(Mode::Plain), &["CLUSTER", "MYID"]);
    let ours_id = ours_id.lines().nth(1).unwrap();
    assert!(
        seen.lines().any(|l| l.starts_with(ours_id) && l.contains(" master - ") && l.contains(" connected ")),
        "{seen}"
    );

    // A redis-server node dies: ferrokey marks it failing with the other redis-server.
    let mut theirs = theirs;
    let dead = theirs.pop().unwrap();
    let dead_id = ask(&mut dead.raw(), &["CLUSTER", "MYID"]);
    let dead_id = dead_id.lines().nth(1).unwrap().to_owned();
    drop(dead);
    for n in &ours {
        wait_nodes(n.port, "the dead redis-server failing", |v| {
            v.lines().any(|l| l.starts_with(&dead_id) && l.contains(",fail "))
        });
    }
    wait_nodes(theirs[0].port, "the dead redis-server failing", |v| {
        v.lines().any(|l| l.starts_with(&dead_id) && l.contains(",fail "))
    });
}

#[test]
fn garbage_on_the_bus_closes_its_link_and_changes_nothing() {
    use std::io::{Read, Write};
    let server = ferrokey_node();
    let bus = std::net::SocketAddr::from(([127, 0, 0, 1], server_bus(&server)));
    let before = ask(&mut server.raw(Mode::Plain), &["CLUSTER", "NODES"]);
    // Not a frame: the link is closed.
    for junk in [&b"GET foo\r\n"[..], b"RCmb\x00\x00\x00\x10", &[0xffu8; 4096]] {
        let mut s = std::net::TcpStream::connect(bus).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(junk);
        let mut buf = [0u8; 16];
        assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "the link stays open after {junk:?}");
    }
    // A PING from a node nobody met: answered with a PONG, and not learnt.
    let mut ping = vec![0u8; 2256];
    ping[..4].copy_from_slice(b"RCmb");
    ping[4..8].copy_from_slice(&2256u32.to_be_bytes());
    ping[8..10].copy_from_slice(&1u16.to_be_bytes());
    ping[40..80].copy_from_slice("c".repeat(40).as_bytes());
    ping[2248..2250].copy_from_slice(&1234u16.to_be_bytes());
    ping[2250..2252].copy_from_slice(&1u16.to_be_bytes());
    let mut s = std::net::TcpStream::connect(bus).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&ping).unwrap();
    let mut head = [0u8; 14];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head[..4], b"RCmb");
    assert_eq!(u16::from_be_bytes([head[12], head[13]]), 1, "a PONG");
    // The same PING with a count of gossip entries it does not carry is dropped.
    ping[14..16].copy_from_slice(&3u16.to_be_bytes());
    s.write_all(&ping).unwrap();
    drop(s);
    let after = ask(&mut server.raw(Mode::Plain), &["CLUSTER", "NODES"]);
    assert_eq!(after.lines().count(), before.lines().count(), "{after}");
    assert!(!after.contains(&"c".repeat(40)));
    assert!(server.log().contains("Bad message length or signature"), "logged");
    assert_eq!(ask(&mut server.raw(Mode::Plain), &["PING"]), "+PONG\r\n");
}

/// A PING frame from a node named `c…c` (header only).
fn bus_ping() -> Vec<u8> {
    let mut ping = vec![0u8; 2256];
    ping[..4].copy_from_slice(b"RCmb");
    ping[4..8].copy_from_slice(&2256u32.to_be_bytes());
    ping[8..10].copy_from_slice(&1u16.to_be_bytes());
    ping[40..80].copy_from_slice("c".repeat(40).as_bytes());
    ping[2250..2252].copy_from_slice(&1u16.to_be_bytes());
    ping
}

/// Options for a ferrokey node of a TLS cluster: its links to other nodes present the
/// client certificate (the server's is for server authentication only).
fn tls_node() -> Server {
    let c = certs();
    Server::with(
        cluster_opts()
            .arg("cluster-node-timeout", "1000")
            .arg("tls-cluster", "yes")
            .arg("tls-replication", "yes")
            .arg("tls-client-cert-file", &c.path("client.crt"))
            .arg("tls-client-key-file", &c.path("client.key")),
    )
}

#[test]
fn the_tls_bus_refuses_a_node_without_a_certificate() {
    use std::io::{Read, Write};
    let server = tls_node();
    let bus = std::net::SocketAddr::from(([127, 0, 0, 1], server_bus(&server)));
    let talk = |client: Option<(&str, &str)>| -> Result<Vec<u8>, String> {
        let tcp = std::net::TcpStream::connect(bus).map_err(|e| e.to_string())?;
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = rustls::ClientConnection::new(
            common::tls_client_config(client, "ca.crt"),
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        )
        .map_err(|e| e.to_string())?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(&bus_ping()).map_err(|e| e.to_string())?;
        let mut head = vec![0u8; 8];
        tls.read_exact(&mut head).map_err(|e| e.to_string())?;
        Ok(head)
    };
    let answered = talk(Some(("client.crt", "client.key"))).expect("a node with a certificate is answered");
    assert_eq!(&answered[..4], b"RCmb");
    assert!(talk(None).is_err(), "a node without a certificate is refused");
    // Plain bytes on the TLS bus are refused too.
    let mut plain = std::net::TcpStream::connect(bus).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = plain.write_all(&bus_ping());
    let mut buf = [0u8; 4];
    assert!(!matches!(plain.read_exact(&mut buf), Ok(()) if &buf == b"RCmb"));
    assert_eq!(ask(&mut server.raw(Mode::Plain), &["PING"]), "+PONG\r\n");
}

#[test]
fn a_tls_cluster_with_replicas_fails_over_when_a_primary_is_killed() {
    let mut nodes: Vec<Server> = (0..6).map(|_| tls_node()).collect();
    let c = certs();
    let tls_args: Vec<String> = c.tool_args();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.tls_port)).collect();
    // The TLS options go before --cluster for redis-cli.
    let out = Command::new("timeout")
        .arg("120")
        .arg("redis-cli")
        .args(&tls_args)
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.contains("[OK] All 16384 slots covered."), "{text}");
    for n in &nodes {
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    // Three primaries, three replicas, each replica following its primary over TLS. redis-cli
    // waits only for the slots to agree; the replicas' roles reach node 0 by gossip.
    wait_nodes(nodes[0].port, "three replicas", |v| v.matches(" slave ").count() == 3);
    let view = ask(&mut nodes[0].raw(Mode::Tls), &["CLUSTER", "NODES"]);
    assert_eq!(view.matches("master - ").count(), 3, "{view}");
    assert_eq!(view.matches(" slave ").count(), 3, "{view}");
    // Keys through any node (redis-cli -c over TLS), acknowledged by the replicas.
    for i in 0..60 {
        assert_eq!(
            nodes[i % 6].cli(Mode::Tls, &["-c", "SET", &format!("f{i}"), &i.to_string()]).trim(),
            "OK"
        );
    }
    let primaries: Vec<usize> = (0..6)
        .filter(|&i| ask(&mut nodes[i].raw(Mode::Plain), &["CLUSTER", "NODES"]).contains("myself,master"))
        .collect();
    for &p in &primaries {
        assert_eq!(ask(&mut nodes[p].raw(Mode::Plain), &["WAIT", "1", "5000"]), ":1\r\n");
    }
    // kill -9 of a primary: its replica takes over within the node timeout and the election.
    let victim = primaries[0];
    let victim_id =
        ask(&mut nodes[victim].raw(Mode::Plain), &["CLUSTER", "MYID"]).lines().nth(1).unwrap().to_owned();
    let replica = (0..6)
        .find(|&i| {
            ask(&mut nodes[i].raw(Mode::Plain), &["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.contains("myself,slave") && l.contains(&victim_id))
        })
        .expect("the victim has a replica");
    let killed = nodes.remove(victim);
    let replica = if replica > victim { replica - 1 } else { replica };
    let started = Instant::now();
    drop(killed);
    wait_nodes(nodes[replica].port, "itself promoted", |v| v.contains("myself,master"));
    let took = started.elapsed();
    for n in &nodes {
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    assert!(took < Duration::from_secs(15), "failover took {took:?}");
    // Every key is still served, through any node, with redis-cli -c and redis-py.
    for i in 0..60 {
        assert_eq!(nodes[i % 5].cli(Mode::Tls, &["-c", "GET", &format!("f{i}")]).trim(), i.to_string());
    }
    let script = format!(
        r#"
from redis.cluster import RedisCluster
rc = RedisCluster(host="127.0.0.1", port={port}, ssl=True, ssl_ca_certs="{ca}",
                  ssl_certfile="{crt}", ssl_keyfile="{key}", socket_timeout=10)
assert all(int(rc.get(f"f{{i}}")) == i for i in range(60))
rc.set("after", "failover")
print("ok")
"#,
        port = nodes[replica].tls_port,
        ca = c.path("ca.crt"),
        crt = c.path("client.crt"),
        key = c.path("client.key"),
    );
    let out = Command::new("/usr/bin/python3").arg("-c").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "redis-py failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // CLUSTER FAILOVER by hand gives the slots back to a replica of the promoted node's shard
    // once it has one again; here, the manual failover of another shard, without loss.
    let other = primaries[1];
    let other = if other > victim { other - 1 } else { other };
    let other_id =
        ask(&mut nodes[other].raw(Mode::Plain), &["CLUSTER", "MYID"]).lines().nth(1).unwrap().to_owned();
    let its_replica = (0..5)
        .find(|&i| {
            ask(&mut nodes[i].raw(Mode::Plain), &["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.contains("myself,slave") && l.contains(&other_id))
        })
        .expect("a replica");
    assert_eq!(ask(&mut nodes[its_replica].raw(Mode::Plain), &["CLUSTER", "FAILOVER"]), "+OK\r\n");
    wait_nodes(nodes[its_replica].port, "itself promoted by hand", |v| v.contains("myself,master"));
    wait_nodes(nodes[other].port, "itself a replica", |v| v.contains("myself,slave"));
    for i in 0..60 {
        assert_eq!(nodes[i % 5].cli(Mode::Tls, &["-c", "GET", &format!("f{i}")]).trim(), i.to_string());
    }
}

/// The node id a server reports (CLUSTER MYID) on `port`.
fn myid(port: u16) -> String {
    let mut raw =
        common::raw_connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)), Mode::Plain, None, "ca.crt");
    ask(&mut raw, &["CLUSTER", "MYID"]).lines().nth(1).unwrap().to_owned()
}

/// Runs a Python script with redis-py against the cluster seen from `port` (plain).
fn python(script: &str, port: u16) -> String {
    let script = format!(
        "from redis.cluster import RedisCluster\nrc = RedisCluster(host=\"127.0.0.1\", port={port}, socket_timeout=20)\n{script}"
    );
    let out = Command::new("timeout").args(["120", "/usr/bin/python3", "-c", &script]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "redis-py failed:\n{text}{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// Writes keys and counters while slots move: every write acknowledged is there afterwards.
const WRITER: &str = r#"
import time
n = 0
deadline = time.time() + 60
while n < 3000 and time.time() < deadline:
    rc.set(f"w{n}", n)
    rc.incr(f"c{n % 20}")
    n += 1
print(n)
"#;

#[test]
fn resharding_moves_slots_with_their_keys_while_a_client_writes() {
    // Two ferrokey nodes and one redis-server: slots go from redis-server to ferrokey, from
    // ferrokey to ferrokey, and back to redis-server.
    let ours: Vec<Server> = (0..2).map(|_| ferrokey_node()).collect();
    let theirs = redis_node();
    let addrs = [
        format!("127.0.0.1:{}", ours[0].port),
        format!("127.0.0.1:{}", ours[1].port),
        format!("127.0.0.1:{}", theirs.port),
    ];
    cluster_tool(&[&["create".to_owned()], &addrs[..], &["--cluster-yes".to_owned()]].concat());
    for n in &ours {
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    wait_state(&mut theirs.raw(), "ok");
    python("for i in range(2000):\n    rc.set(f\"k{i}\", i)\n", ours[0].port);
    let ids = [myid(ours[0].port), myid(ours[1].port), myid(theirs.port)];
    let moves = [(2, 0, "600"), (0, 1, "900"), (1, 2, "500")];
    let mut increments = 0;
    for (from, to, slots) in moves {
        let port = ours[0].port;
        let writer = std::thread::spawn(move || python(WRITER, port));
        let out = cluster_tool(&[
            "reshard".to_owned(),
            addrs[0].clone(),
            "--cluster-from".to_owned(),
            ids[from].clone(),
            "--cluster-to".to_owned(),
            ids[to].clone(),
            "--cluster-slots".to_owned(),
            slots.to_owned(),
            "--cluster-yes".to_owned(),
        ]);
        assert!(!out.contains("ERR") && !out.contains("[ERR]"), "{out}");
        let written = writer.join().unwrap();
        let written: usize = written.lines().last().and_then(|l| l.trim().parse().ok()).expect(&written);
        increments += written;
        let check = cluster_tool(&["check".to_owned(), addrs[(to + 1) % 3].clone()]);
        assert!(check.contains("[OK] All nodes agree about slots configuration."), "{check}");
        assert!(!check.contains("[WARNING]") && !check.contains("[ERR]"), "{check}");
        // Nothing lost, nothing twice: each written key once, on the node serving its slot.
        python(
            &format!(
                "assert all(int(rc.get(f\"k{{i}}\")) == i for i in range(2000))\n\
                 assert all(int(rc.get(f\"w{{i}}\")) == i for i in range({written}))\n\
                 total = sum(int(rc.get(f\"c{{i}}\") or 0) for i in range(20))\n\
                 assert total == {increments}, total\n"
            ),
            ours[1].port,
        );
        let sizes: i64 = [ours[0].port, ours[1].port, theirs.port]
            .iter()
            .map(|&p| {
                let mut raw = common::raw_connect(
                    std::net::SocketAddr::from(([127, 0, 0, 1], p)),
                    Mode::Plain,
                    None,
                    "ca.crt",
                );
                ask(&mut raw, &["DBSIZE"]).trim_start_matches(':').trim().parse::<i64>().unwrap()
            })
            .sum();
        assert!(sizes >= 2000 + written as i64 && sizes <= 2000 + 3000 + 20, "{sizes}");
    }
    let slots_of = |port: u16| {
        let mut raw = common::raw_connect(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Mode::Plain,
            None,
            "ca.crt",
        );
        let nodes = ask(&mut raw, &["CLUSTER", "NODES"]);
        nodes.lines().find(|l| l.contains("myself")).unwrap().to_owned()
    };
    assert!(slots_of(ours[0].port).contains("master"), "{}", slots_of(ours[0].port));
}

#[test]
fn a_key_written_while_migrate_moves_it_is_never_left_behind() {
    // Clients pipeline INCRs (commands, and scripts) of a key of a migrating slot while MIGRATE
    // moves it. Each INCR
    // runs here while the key is here, and is sent on by ASK once it left; none may find the
    // key, wait for MIGRATE, and then recreate it here (the write would be lost, and the next
    // move of the key would fail on the target's copy with BUSYKEY).
    let (a, b) = two_nodes();
    let mut admin = a.server.raw(Mode::Plain);
    wait_state(&mut admin, "ok");
    let mut target = b.server.raw(Mode::Plain);
    wait_state(&mut target, "ok");
    // "bar" is slot 5061, a's: its keys are written before it opens (a new key would be
    // sent on by ASK).
    const ROUNDS: usize = 4;
    for round in 0..ROUNDS {
        assert_eq!(ask(&mut admin, &["SET", &format!("{{bar}}{round}"), "0"]), "+OK\r\n");
    }
    assert_eq!(ask(&mut target, &["CLUSTER", "SETSLOT", "5061", "IMPORTING", &a.id]), "+OK\r\n");
    assert_eq!(ask(&mut admin, &["CLUSTER", "SETSLOT", "5061", "MIGRATING", &b.id]), "+OK\r\n");
    const DEPTH: usize = 32;
    for round in 0..ROUNDS {
        let key = format!("{{bar}}{round}");
        // INCR over plain TCP and TLS, and a script's INCR.
        let script = "return redis.call('INCR', KEYS[1])";
        let writers: Vec<_> = [(Mode::Plain, false), (Mode::Tls, false), (Mode::Plain, true)]
            .into_iter()
            .map(|(mode, scripted)| {
                let mut raw = a.server.raw(mode);
                let key = key.clone();
                std::thread::spawn(move || {
                    let incr = match scripted {
                        true => common::resp(&[b"EVAL", script.as_bytes(), b"1", key.as_bytes()]),
                        false => common::resp(&[b"INCR", key.as_bytes()]),
                    };
                    let pipeline = incr.repeat(DEPTH);
                    let deadline = Instant::now() + Duration::from_secs(20);
                    let mut done = 0;
                    // Until a whole pipeline is sent on (the key left), bounded.
                    for _ in 0..20_000 {
                        raw.send(&pipeline);
                        let replies: Vec<String> =
                            (0..DEPTH).map(|_| String::from_utf8_lossy(&raw.reply()).into_owned()).collect();
                        let counted = replies.iter().filter(|r| r.starts_with(':')).count();
                        let asked = replies.iter().filter(|r| r.starts_with("-ASK 5061 ")).count();
                        assert_eq!(counted + asked, DEPTH, "{replies:?}");
                        done += counted;
                        if asked == DEPTH || Instant::now() > deadline {
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        // Once the writers are at it, the key moves.
        let deadline = Instant::now() + Duration::from_secs(10);
        while ask(&mut admin, &["GET", &key]) == "$1\r\n0\r\n" {
            assert!(Instant::now() < deadline, "the writers never wrote");
            std::thread::yield_now();
        }
        let moved = ask(&mut admin, &["MIGRATE", "127.0.0.1", &b.server.port.to_string(), &key, "0", "5000"]);
        assert_eq!(moved, "+OK\r\n");
        let done: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
        let left = ask(&mut admin, &["CLUSTER", "GETKEYSINSLOT", "5061", "100"]);
        assert!(
            !left.contains(&format!("\r\n{key}\r\n")),
            "round {round}: the key was recreated here: {left}"
        );
        assert_eq!(ask(&mut target, &["ASKING"]), "+OK\r\n");
        let value = ask(&mut target, &["GET", &key]);
        assert_eq!(value, format!("${}\r\n{done}\r\n", done.to_string().len()), "round {round}");
    }
}

/// A raw plain connection to the node on `port`.
fn raw_at(port: u16) -> common::Raw {
    common::raw_connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)), Mode::Plain, None, "ca.crt")
}

/// The next push a subscribed connection gets, as text.
fn next_push(raw: &mut common::Raw) -> String {
    String::from_utf8_lossy(&raw.reply()).into_owned()
}

#[test]
fn pubsub_crosses_the_bus_and_shard_channels_stay_with_their_slot() {
    // Three primaries by redis-cli, then a fourth node added as the first one's replica.
    let nodes: Vec<Server> = (0..4).map(|_| ferrokey_node()).collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    cluster_tool(&[&["create".to_owned()], &addrs[..3], &["--cluster-yes".to_owned()]].concat());
    let ids: Vec<String> = nodes.iter().map(|n| myid(n.port)).collect();
    let out = cluster_tool(&[
        "add-node".to_owned(),
        addrs[3].clone(),
        addrs[0].clone(),
        "--cluster-slave".to_owned(),
        "--cluster-master-id".to_owned(),
        ids[0].clone(),
    ]);
    assert!(out.contains("[OK] New node added correctly."), "{out}");
    for n in &nodes {
        wait_nodes(n.port, "the replica", |v| {
            v.lines().any(|l| l.starts_with(&ids[3]) && l.contains("slave"))
        });
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    let (a, b, c, replica) = (nodes[0].port, nodes[1].port, nodes[2].port, nodes[3].port);

    // PUBLISH reaches subscribers on every node, replicas included; it counts local ones.
    // (The replica's subscribers come over TLS, the others over plain TCP.)
    let mut on_b = raw_at(b);
    let mut on_replica = nodes[3].raw(Mode::Tls);
    for sub in [&mut on_b, &mut on_replica] {
        assert!(ask(sub, &["SUBSCRIBE", "news"]).contains("subscribe\r\n$4\r\nnews\r\n:1"));
    }
    assert_eq!(ask(&mut raw_at(c), &["PUBLISH", "news", "hello"]), ":0\r\n");
    for sub in [&mut on_b, &mut on_replica] {
        assert_eq!(next_push(sub), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n");
    }

    // A shard channel of slot 0 (served by the first primary): subscribed there and on its
    // replica (no READONLY needed), refused elsewhere with MOVED; a mix of slots is CROSSSLOT.
    let channel = (0..).map(|i| format!("ch{i}")).find(|k| common::slot_of(k) == 0).unwrap();
    let mut on_a = raw_at(a);
    let mut on_replica = nodes[3].raw(Mode::Tls);
    for sub in [&mut on_a, &mut on_replica] {
        assert_eq!(
            ask(sub, &["SSUBSCRIBE", &channel]),
            format!("*3\r\n$10\r\nssubscribe\r\n${}\r\n{channel}\r\n:1\r\n", channel.len())
        );
    }
    assert_eq!(ask(&mut raw_at(b), &["SSUBSCRIBE", &channel]), format!("-MOVED 0 127.0.0.1:{a}\r\n"));
    assert_eq!(
        ask(&mut nodes[1].raw(Mode::Tls), &["SSUBSCRIBE", &channel]),
        format!("-MOVED 0 127.0.0.1:{}\r\n", nodes[0].tls_port)
    );
    assert_eq!(ask(&mut raw_at(b), &["SPUBLISH", &channel, "x"]), format!("-MOVED 0 127.0.0.1:{a}\r\n"));
    assert!(ask(&mut raw_at(a), &["SSUBSCRIBE", &channel, "other"]).starts_with("-CROSSSLOT"));
    let mut shard_view = raw_at(replica);
    assert_eq!(
        ask(&mut shard_view, &["PUBSUB", "SHARDCHANNELS"]),
        format!("*1\r\n${}\r\n{channel}\r\n", channel.len())
    );
    assert_eq!(
        ask(&mut shard_view, &["PUBSUB", "SHARDNUMSUB", &channel, "none"]),
        format!("*4\r\n${}\r\n{channel}\r\n:1\r\n$4\r\nnone\r\n:0\r\n", channel.len())
    );
    assert!(ask(&mut shard_view, &["INFO", "stats"]).contains("pubsubshard_channels:1\r\n"));

    // SPUBLISH on the replica reaches the primary's subscriber over the bus (PUBLISHSHARD),
    // and its own; a node of another shard hears nothing (its PUBLISH subscriber included).
    assert_eq!(ask(&mut raw_at(replica), &["SPUBLISH", &channel, "one"]), ":1\r\n");
    let smessage = |m: &str| {
        format!("*3\r\n$8\r\nsmessage\r\n${}\r\n{channel}\r\n${}\r\n{m}\r\n", channel.len(), m.len())
    };
    for sub in [&mut on_a, &mut on_replica] {
        assert_eq!(next_push(sub), smessage("one"));
    }
    // The subscribed connection of another shard's node gets the next PUBLISH, not the SPUBLISH.
    assert_eq!(ask(&mut raw_at(c), &["PUBLISH", "news", "after"]), ":0\r\n");
    assert_eq!(next_push(&mut on_b), "*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nafter\r\n");

    // Slot 0 moves to the second primary: the first one's and its replica's subscribers are
    // unsubscribed (count 0), as Redis's removeChannelsInSlot does.
    let out = cluster_tool(&[
        "reshard".to_owned(),
        addrs[0].clone(),
        "--cluster-from".to_owned(),
        ids[0].clone(),
        "--cluster-to".to_owned(),
        ids[1].clone(),
        "--cluster-slots".to_owned(),
        "1".to_owned(),
        "--cluster-yes".to_owned(),
    ]);
    assert!(!out.contains("[ERR]"), "{out}");
    let gone = format!("*3\r\n$12\r\nsunsubscribe\r\n${}\r\n{channel}\r\n:0\r\n", channel.len());
    for sub in [&mut on_a, &mut on_replica] {
        assert_eq!(next_push(sub), gone);
    }
    // The channel now lives on the second primary.
    let mut on_b2 = raw_at(b);
    assert!(ask(&mut on_b2, &["SSUBSCRIBE", &channel]).contains(":1\r\n"));
    assert_eq!(ask(&mut raw_at(b), &["SPUBLISH", &channel, "two"]), ":1\r\n");
    assert_eq!(next_push(&mut on_b2), smessage("two"));
    // Out of subscribed mode again, the old subscriber runs commands.
    assert_eq!(ask(&mut on_a, &["PING"]), "+PONG\r\n");
}

#[test]
fn keys_found_at_startup_claim_their_unassigned_slots() {
    // A dataset saved by a standalone server, loaded by a cluster node that serves no slot:
    // the node takes the slots it holds keys of (Redis's verifyClusterConfigWithData).
    let dir = std::env::temp_dir().join(format!("ferrokey-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dir_arg = dir.to_str().unwrap().to_owned();
    let standalone = Server::with(Opts::default().arg("dir", &dir_arg));
    let mut raw = standalone.raw(Mode::Plain);
    for k in ["{a}1", "{a}2", "{b}1"] {
        assert_eq!(ask(&mut raw, &["SET", k, "v"]), "+OK\r\n");
    }
    assert_eq!(ask(&mut raw, &["SAVE"]), "+OK\r\n");
    drop(raw);
    drop(standalone);
    let node = Server::with(cluster_opts().arg("dir", &dir_arg));
    let (a, b) = (common::slot_of("{a}"), common::slot_of("{b}"));
    assert!(node.wait_log(&format!("I have keys for unassigned slot {a}. Taking responsibility for it.")));
    wait_nodes(node.port, "its slots", |v| {
        let me = v.lines().find(|l| l.contains("myself")).unwrap_or("");
        me.contains(&format!(" {a}")) && me.contains(&format!(" {b}"))
    });
    let mut raw = node.raw(Mode::Plain);
    assert_eq!(ask(&mut raw, &["CLUSTER", "COUNTKEYSINSLOT", &a.to_string()]), ":2\r\n");
    let keys = ask(&mut raw, &["CLUSTER", "GETKEYSINSLOT", &a.to_string(), "10"]);
    assert!(keys.starts_with("*2\r\n") && keys.contains("{a}1") && keys.contains("{a}2"), "{keys}");
    drop(raw);
    drop(node);

    // Keys outside database 0: a cluster node refuses to run, as Redis.
    let standalone = Server::with(Opts::default().arg("dir", &dir_arg));
    let mut raw = standalone.raw(Mode::Plain);
    assert_eq!(ask(&mut raw, &["SELECT", "3"]), "+OK\r\n");
    assert_eq!(ask(&mut raw, &["SET", "elsewhere", "v"]), "+OK\r\n");
    assert_eq!(ask(&mut raw, &["SAVE"]), "+OK\r\n");
    drop(raw);
    drop(standalone);
    let _ = std::fs::remove_file(dir.join("nodes.conf"));
    let (code, log) = start_refused(&[
        "--dir",
        &dir_arg,
        "--cluster-enabled",
        "yes",
        "--cluster-port",
        &free_port().to_string(),
    ]);
    assert_ne!(code, Some(0), "{log}");
    assert!(
        log.contains("You can't have keys in a DB different than DB 0 when in Cluster mode. Exiting."),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// One line of CLUSTER NODES: id, client port, flags, primary's id (`-` for none).
#[derive(Debug, Clone)]
struct NodeLine {
    id: String,
    port: u16,
    flags: String,
    master: String,
}

fn node_lines(port: u16) -> Vec<NodeLine> {
    ask(&mut raw_at(port), &["CLUSTER", "NODES"])
        .lines()
        .filter(|l| l.split(' ').count() >= 8)
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let addr = f[1].split('@').next().unwrap();
            let port = addr.rsplit(':').next().unwrap().parse().unwrap_or(0);
            NodeLine {
                id: f[0].trim_start_matches('$').to_owned(),
                port,
                flags: f[2].to_owned(),
                master: f[3].to_owned(),
            }
        })
        .collect()
}

#[test]
fn a_replica_moves_to_a_primary_left_without_any() {
    // Three primaries with a replica each (redis-cli), and a second replica for one of them.
    let mut nodes: Vec<Server> = (0..7).map(|_| ferrokey_node()).collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    let out = cluster_tool(
        &[
            &["create".to_owned()],
            &addrs[..6],
            &["--cluster-replicas".to_owned(), "1".to_owned(), "--cluster-yes".to_owned()],
        ]
        .concat(),
    );
    assert!(out.contains("[OK] All 16384 slots covered."), "{out}");
    wait_nodes(nodes[0].port, "three replicas", |v| v.matches(" slave ").count() == 3);
    let lines = node_lines(nodes[0].port);
    let primaries: Vec<&NodeLine> = lines.iter().filter(|l| l.flags.contains("master")).collect();
    assert_eq!(primaries.len(), 3, "{lines:?}");
    let (rich, poor) = (primaries[0].clone(), primaries[1].clone());
    cluster_tool(&[
        "add-node".to_owned(),
        addrs[6].clone(),
        addrs[0].clone(),
        "--cluster-slave".to_owned(),
        "--cluster-master-id".to_owned(),
        rich.id.clone(),
    ]);
    let extra = myid(nodes[6].port);
    for n in &nodes {
        wait_nodes(n.port, "the second replica", |v| {
            v.lines().any(|l| l.starts_with(&extra) && l.contains("slave"))
        });
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    // The poor primary's only replica dies: once it is FAIL, the rich primary's replica with
    // the smaller name moves to the poor primary after 5 s, and replicates it.
    let lines = node_lines(nodes[0].port);
    let victim = lines.iter().find(|l| l.master == poor.id).unwrap().clone();
    let mut rich_replicas: Vec<NodeLine> = lines.iter().filter(|l| l.master == rich.id).cloned().collect();
    assert_eq!(rich_replicas.len(), 2, "{lines:?}");
    rich_replicas.sort_by(|a, b| a.id.cmp(&b.id));
    let mover = rich_replicas[0].clone();
    let at = nodes.iter().position(|n| n.port == victim.port).unwrap();
    drop(nodes.remove(at));
    let watcher = nodes.iter().find(|n| n.port == poor.port).unwrap();
    wait_nodes(watcher.port, "the replica migrated", |v| {
        v.lines().any(|l| l.starts_with(&mover.id) && l.contains(&format!("slave {}", poor.id)))
    });
    let moved = nodes.iter().find(|n| n.port == mover.port).unwrap();
    assert!(moved.wait_log(&format!("Migrating to orphaned master {}", poor.id)));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = ask(&mut moved.raw(Mode::Plain), &["INFO", "replication"]);
        if info.contains(&format!("master_port:{}\r\n", poor.port)) && info.contains("master_link_status:up")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{info}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The other replica stays with the rich primary.
    let lines = node_lines(poor.port);
    assert!(lines.iter().any(|l| l.id == rich_replicas[1].id && l.master == rich.id), "{lines:?}");
}

#[test]
fn operators_add_rebalance_and_remove_nodes_with_redis_cli() {
    let nodes: Vec<Server> = (0..4).map(|_| ferrokey_node()).collect();
    let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
    cluster_tool(&[&["create".to_owned()], &addrs[..3], &["--cluster-yes".to_owned()]].concat());
    for n in &nodes[..3] {
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    python("for i in range(3000):\n    rc.set(f\"k{i}\", i)\n", nodes[0].port);
    // Every node has its links to the others both ways (CLUSTER LINKS).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let links = ask(&mut nodes[0].raw(Mode::Plain), &["CLUSTER", "LINKS"]);
        if links.matches("direction").count() == 4 && links.matches("$2\r\nto\r\n").count() == 2 {
            assert!(links.contains("send-buffer-used"), "{links}");
            break;
        }
        assert!(Instant::now() < deadline, "{links}");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A new empty primary, then rebalanced onto: it takes slots with their keys.
    let out = cluster_tool(&["add-node".to_owned(), addrs[3].clone(), addrs[0].clone()]);
    assert!(out.contains("[OK] New node added correctly."), "{out}");
    let new_id = myid(nodes[3].port);
    for n in &nodes {
        wait_nodes(n.port, "the new node", |v| v.lines().filter(|l| l.contains(" connected")).count() == 4);
        wait_state(&mut n.raw(Mode::Plain), "ok");
    }
    let out = cluster_tool(&[
        "rebalance".to_owned(),
        addrs[0].clone(),
        "--cluster-use-empty-masters".to_owned(),
        "--cluster-threshold".to_owned(),
        "1".to_owned(),
    ]);
    assert!(out.contains("Moving"), "{out}");
    let check = cluster_tool(&["check".to_owned(), addrs[3].clone()]);
    assert!(check.contains("[OK] All nodes agree about slots configuration."), "{check}");
    assert!(!check.contains("[WARNING]") && !check.contains("[ERR]"), "{check}");
    let held = ask(&mut nodes[3].raw(Mode::Plain), &["DBSIZE"]);
    assert!(held.trim_start_matches(':').trim().parse::<i64>().unwrap() > 300, "{held}");
    python("assert all(int(rc.get(f\"k{i}\")) == i for i in range(3000))\n", nodes[1].port);
    // Emptied again (weight 0) and removed: the others forget it, nothing is lost.
    cluster_tool(&[
        "rebalance".to_owned(),
        addrs[0].clone(),
        "--cluster-weight".to_owned(),
        format!("{new_id}=0"),
    ]);
    assert_eq!(ask(&mut nodes[3].raw(Mode::Plain), &["DBSIZE"]), ":0\r\n");
    let out = cluster_tool(&["del-node".to_owned(), addrs[0].clone(), new_id.clone()]);
    assert!(out.contains(">>> Sending CLUSTER RESET SOFT to the deleted node."), "{out}");
    for n in &nodes[..3] {
        wait_nodes(n.port, "the node forgotten", |v| !v.contains(&new_id));
    }
    let check = cluster_tool(&["check".to_owned(), addrs[0].clone()]);
    assert!(check.contains("[OK] All 16384 slots covered."), "{check}");
    python("assert all(int(rc.get(f\"k{i}\")) == i for i in range(3000))\n", nodes[2].port);
}

/// Waits (bounded) until client `id` of the node behind `admin` shows as blocked.
fn wait_blocked_raw(admin: &mut common::Raw, id: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ask(admin, &["CLIENT", "LIST", "ID", &id.to_string()]).contains(" flags=b ") {
        assert!(Instant::now() < deadline, "client {id} never blocked");
        std::thread::yield_now();
    }
}

#[test]
fn blocked_clients_follow_their_slot_and_stop_when_the_cluster_fails() {
    // Redis's clusterRedirectBlockedClientIfNeeded: a client blocked on a slot that moves is
    // sent after it (at the port of its own kind); a failing cluster ends every block.
    let (a, b) = two_nodes();
    let mut admin = a.server.raw(Mode::Plain);
    wait_state(&mut admin, "ok");
    wait_state(&mut b.server.raw(Mode::Plain), "ok");
    let block = |mode: Mode, key: &str, admin: &mut common::Raw| {
        let mut raw = a.server.raw(mode);
        let id = raw.client_id();
        raw.send(&common::resp(&[b"BLPOP", key.as_bytes(), b"0"]));
        wait_blocked_raw(admin, id);
        raw
    };
    // "bar" is slot 5061; "stays" is another slot of a's.
    let stays = (0..).map(|i| format!("stays{i}")).find(|k| common::slot_of(k) < 8192).unwrap();
    let mut plain = block(Mode::Plain, "bar", &mut admin);
    let mut tls = block(Mode::Tls, "bar", &mut admin);
    let mut other = block(Mode::Plain, &stays, &mut admin);

    assert_eq!(
        ask(&mut b.server.raw(Mode::Plain), &["CLUSTER", "SETSLOT", "5061", "NODE", &b.id]),
        "+OK\r\n"
    );
    assert_eq!(ask(&mut admin, &["CLUSTER", "SETSLOT", "5061", "NODE", &b.id]), "+OK\r\n");
    assert_eq!(
        String::from_utf8_lossy(&plain.reply()),
        format!("-MOVED 5061 127.0.0.1:{}\r\n", b.server.port)
    );
    assert_eq!(
        String::from_utf8_lossy(&tls.reply()),
        format!("-MOVED 5061 127.0.0.1:{}\r\n", b.server.tls_port)
    );
    // The connections stay usable.
    assert_eq!(
        ask(&mut plain, &["LPUSH", "bar", "x"]),
        format!("-MOVED 5061 127.0.0.1:{}\r\n", b.server.port)
    );
    assert_eq!(ask(&mut tls, &["PING"]), "+PONG\r\n");

    // A slot of a's left unassigned: the cluster fails (full coverage is required), and the
    // client blocked on a slot a still serves is told so.
    let free = (0..8192u16).find(|&s| s != 5061 && s != common::slot_of(&stays)).unwrap();
    assert_eq!(ask(&mut admin, &["CLUSTER", "DELSLOTS", &free.to_string()]), "+OK\r\n");
    assert_eq!(String::from_utf8_lossy(&other.reply()), "-CLUSTERDOWN The cluster is down\r\n");
    for node in [&a, &b] {
        let _ = std::fs::remove_dir_all(&node.server.data_dir);
    }
}
