//! Replication helpers shared by the suites that start replicas: Debian's redis-server
//! following ferrokey or leading it, over plain TCP or TLS, and waiting for a replica to
//! catch up.

use std::time::{Duration, Instant};

use redis::Connection;

use super::{certs, free_port, Mode, Opts, RedisServer, Server};

/// A field of INFO `section`.
pub fn info(c: &mut Connection, section: &str, field: &str) -> String {
    try_info(c, section, field).expect("INFO")
}

/// A field of INFO `section`, or `None` when the connection failed (a client something else
/// may kill).
pub fn try_info(c: &mut Connection, section: &str, field: &str) -> Option<String> {
    let text: String = redis::cmd("INFO").arg(section).query(c).ok()?;
    Some(
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_owned))
            .unwrap_or_default(),
    )
}

/// Polls `done` until it holds, for at most 60 s.
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Debian's redis-server following `primary` (over its TLS port with `mode` Tls).
pub fn redis_replica(primary: &Server, mode: Mode) -> RedisServer {
    let c = certs();
    match mode {
        Mode::Plain => RedisServer::with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]),
        Mode::Tls => RedisServer::with(&[
            "--tls-replication",
            "yes",
            "--tls-cert-file",
            &c.path("client.crt"),
            "--tls-key-file",
            &c.path("client.key"),
            "--tls-ca-cert-file",
            &c.path("ca.crt"),
            "--replicaof",
            "127.0.0.1",
            &primary.tls_port.to_string(),
        ]),
    }
}

/// Waits until the replica has everything the primary has written.
pub fn in_sync(primary: &mut Connection, replica: &mut Connection) {
    eventually("the replica to catch up", || {
        info(replica, "replication", "master_link_status") == "up"
            && info(replica, "replication", "slave_repl_offset")
                == info(primary, "replication", "master_repl_offset")
    });
}

/// Debian's redis-server as a primary, with a TLS port.
pub fn redis_primary() -> (RedisServer, u16) {
    let c = certs();
    let tls_port = free_port();
    let server = RedisServer::with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &c.path("server.crt"),
        "--tls-key-file",
        &c.path("server.key"),
        "--tls-ca-cert-file",
        &c.path("ca.crt"),
        "--tls-auth-clients",
        "optional",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    (server, tls_port)
}

/// A ferrokey replica's options for a TLS link to its primary (it presents the client
/// certificate).
pub fn tls_replica_opts() -> Opts {
    let c = certs();
    Opts::default()
        .arg("tls-replication", "yes")
        .arg("tls-client-cert-file", &c.path("client.crt"))
        .arg("tls-client-key-file", &c.path("client.key"))
}
