//! TLS operations: live reload through CONFIG SET (atomic, refused changes keep the old
//! configuration, established connections keep working), rebinding ports, automatic reload of
//! rotated files, protocol and cipher policy, session resumption across cores, encrypted keys,
//! startup certificate checks, client certificate names, and a handshake flood beside a steady
//! client.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{certs, Mode, Opts, Server};
use rustls::pki_types::ServerName;

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A client configuration trusting `ca`, with an optional client certificate, limited to
/// `versions` when given.
fn client(
    ca: &str,
    cert: Option<(&str, &str)>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<rustls::ClientConfig> {
    let versions = if versions.is_empty() { rustls::DEFAULT_VERSIONS } else { versions };
    common::tls_client_config_with(cert, ca, versions)
}

/// Connects, handshakes, and sends an inline command; returns the stream and the reply line.
fn connect(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    command: &str,
) -> Result<(Tls, String), String> {
    let tcp = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap())
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let line = roundtrip(&mut tls, command)?;
    Ok((tls, line))
}

/// Sends an inline command and reads one reply (a line, or a bulk string's payload).
fn roundtrip(tls: &mut Tls, command: &str) -> Result<String, String> {
    tls.write_all(format!("{command}\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let line = read_line(tls)?;
    if let Some(len) = line.strip_prefix('$') {
        let n: usize = len.parse().map_err(|_| line.clone())?;
        let mut body = vec![0u8; n + 2];
        tls.read_exact(&mut body).map_err(|e| e.to_string())?;
        return Ok(String::from_utf8_lossy(&body[..n]).into_owned());
    }
    Ok(line)
}

fn read_line(tls: &mut Tls) -> Result<String, String> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        tls.read_exact(&mut b).map_err(|e| e.to_string())?;
        line.push(b[0]);
    }
    Ok(String::from_utf8_lossy(&line[..line.len() - 2]).into_owned())
}

fn field<'a>(client_info: &'a str, name: &str) -> &'a str {
    client_info
        .split(' ')
        .find_map(|kv| kv.trim_end().strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {name} in {client_info}"))
}

fn config_set(server: &Server, pairs: &[(&str, &str)]) -> redis::RedisResult<()> {
    config_set_on(&mut server.conn(Mode::Plain), pairs)
}

fn config_set_on(c: &mut redis::Connection, pairs: &[(&str, &str)]) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("CONFIG");
    cmd.arg("SET");
    for (k, v) in pairs {
        cmd.arg(*k).arg(*v);
    }
    cmd.query(c)
}

fn tls_addr(server: &Server) -> SocketAddr {
    server.addr(Mode::Tls)
}

#[test]
fn config_set_reloads_certificates_and_keeps_established_connections() {
    let server = Server::with(Opts { auth_clients: "no", ..Opts::default() });
    let c = certs();
    let (old, new) = (client("ca.crt", None, &[]), client("untrusted-ca.crt", None, &[]));
    let (mut before, _) = connect(tls_addr(&server), &old, "PING").expect("the first certificate");
    assert!(connect(tls_addr(&server), &new, "PING").is_err(), "the second CA is not trusted yet");
    // Cert and key change together, atomically.
    config_set(
        &server,
        &[("tls-cert-file", &c.path("server-b.crt")), ("tls-key-file", &c.path("server-b.key"))],
    )
    .unwrap();
    connect(tls_addr(&server), &new, "PING").expect("new connections get the new certificate");
    // A fresh client (no session to resume) that trusts only the old CA is refused.
    let fresh = client("ca.crt", None, &[]);
    assert!(connect(tls_addr(&server), &fresh, "PING").is_err(), "and no longer the old one");
    // The connection made before the reload keeps its session.
    for i in 0..50 {
        assert_eq!(roundtrip(&mut before, &format!("SET reload{i} v")).unwrap(), "+OK");
    }
    let mut admin = server.conn(Mode::Plain);
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("tls-cert-file").query(&mut admin).unwrap();
    assert_eq!(got, ["tls-cert-file".to_owned(), c.path("server-b.crt")]);
    let info: String = redis::cmd("INFO").arg("tls").query(&mut admin).unwrap();
    assert!(info.contains("tls_config_installs:2"), "{info}");
}

#[test]
fn refused_tls_changes_keep_the_old_configuration() {
    let server = Server::with(Opts { auth_clients: "no", ..Opts::default() });
    let c = certs();
    let old = client("ca.crt", None, &[]);
    let mut admin = server.conn(Mode::Plain);
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("tls-cert-file", "/nonexistent/cert.pem".into())], "/nonexistent/cert.pem"),
        // A certificate with another's key: the pair is refused, and neither half is applied.
        (
            vec![("tls-cert-file", c.path("server-b.crt")), ("tls-key-file", c.path("server.key"))],
            "does not belong",
        ),
        (
            vec![("tls-ciphers", "AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256:RC4-MD5".into())],
            "unknown cipher string item(s): RC4-MD5",
        ),
        (vec![("tls-protocols", "TLSv1.1".into())], "rustls speaks TLSv1.2 and TLSv1.3"),
        (vec![("tls-key-file", c.path("server-enc.key"))], "the key is encrypted: set tls-key-file-pass"),
        (vec![("tls-ca-cert-file", "/nonexistent/ca.pem".into())], "/nonexistent/ca.pem"),
        (vec![("tls-ca-cert-file", c.path("server.key"))], "Unable to update TLS configuration"),
        (
            vec![
                ("tls-cert-file", c.path("expired-server.crt")),
                ("tls-key-file", c.path("expired-server.key")),
            ],
            "expired",
        ),
    ];
    for (pairs, needle) in cases {
        let mut cmd = redis::cmd("CONFIG");
        cmd.arg("SET");
        for (k, v) in &pairs {
            cmd.arg(*k).arg(v);
        }
        let err = cmd.query::<()>(&mut admin).map(|()| "OK".to_owned()).unwrap_or_else(|e| e.to_string());
        assert!(err.contains(needle), "{pairs:?}: {err}");
        assert!(err.contains("Unable to update TLS configuration"), "{pairs:?}: {err}");
        let got: Vec<String> =
            redis::cmd("CONFIG").arg("GET").arg("tls-cert-file").query(&mut admin).unwrap();
        assert_eq!(got[1], c.path("server.crt"), "nothing of a refused CONFIG SET is applied");
        connect(tls_addr(&server), &old, "PING").expect("the old configuration still serves");
    }
}

/// The sample configuration (what scripts/dev-server.sh runs) starts and serves TLS: every
/// directive it writes, empty ones included, builds.
#[test]
fn the_sample_config_serves_tls() {
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ferrokey.conf");
    let server = Server::with(Opts { config_file: Some(conf), auth_clients: "no", ..Opts::default() });
    let (_, info) = connect(tls_addr(&server), &client("ca.crt", None, &[]), "CLIENT INFO").unwrap();
    assert_eq!(field(&info, "tls-version"), "TLSv1.3");
    assert_eq!(field(&info, "tls-cipher"), "TLS13_AES_128_GCM_SHA256", "the server prefers AES-128-GCM");
}

#[test]
fn protocol_and_cipher_policy() {
    let server = Server::with(Opts { auth_clients: "no", ..Opts::default() });
    config_set(&server, &[("tls-protocols", "TLSv1.2"), ("tls-ciphers", "ECDHE-RSA-AES256-GCM-SHA384")])
        .unwrap();
    let (_, info) = connect(tls_addr(&server), &client("ca.crt", None, &[]), "CLIENT INFO").unwrap();
    assert_eq!(field(&info, "tls-version"), "TLSv1.2");
    assert_eq!(field(&info, "tls-cipher"), "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384");
    config_set(
        &server,
        &[("tls-protocols", "TLSv1.3"), ("tls-ciphersuites", "TLS_CHACHA20_POLY1305_SHA256")],
    )
    .unwrap();
    assert!(
        connect(tls_addr(&server), &client("ca.crt", None, &[&rustls::version::TLS12]), "PING").is_err(),
        "a TLS 1.2-only client is refused once only TLSv1.3 is allowed"
    );
    let (_, info) = connect(tls_addr(&server), &client("ca.crt", None, &[]), "CLIENT INFO").unwrap();
    assert_eq!(field(&info, "tls-version"), "TLSv1.3");
    assert_eq!(field(&info, "tls-cipher"), "TLS13_CHACHA20_POLY1305_SHA256");
    // prefer-server-ciphers and the stored-only directives read back.
    config_set(
        &server,
        &[("tls-prefer-server-ciphers", "yes"), ("tls-replication", "yes"), ("tls-cluster", "yes")],
    )
    .unwrap();
    let mut admin = server.conn(Mode::Plain);
    let got: Vec<String> = redis::cmd("CONFIG").arg("GET").arg("tls-*").query(&mut admin).unwrap();
    let names: Vec<&String> = got.iter().step_by(2).collect();
    for name in [
        "tls-port",
        "tls-cert-file",
        "tls-key-file",
        "tls-key-file-pass",
        "tls-client-cert-file",
        "tls-client-key-file",
        "tls-client-key-file-pass",
        "tls-ca-cert-file",
        "tls-ca-cert-dir",
        "tls-auth-clients",
        "tls-protocols",
        "tls-ciphers",
        "tls-ciphersuites",
        "tls-prefer-server-ciphers",
        "tls-session-caching",
        "tls-session-cache-size",
        "tls-session-cache-timeout",
        "tls-replication",
        "tls-cluster",
        "tls-dh-params-file",
        "tls-auto-reload-interval",
    ] {
        assert!(names.iter().any(|n| *n == name), "CONFIG GET tls-* lacks {name}: {got:?}");
    }
}

/// A client that reconnects many times resumes its session whichever core it lands on.
#[test]
fn sessions_resume_on_every_core() {
    let server = Server::with(Opts { auth_clients: "no", ..Opts::default() });
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let config = client("ca.crt", None, versions);
        let (mut resumed, mut cores) = (0, std::collections::BTreeSet::new());
        for _ in 0..40 {
            let (tls, info) = connect(tls_addr(&server), &config, "CLIENT INFO").unwrap();
            if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                resumed += 1;
                cores.insert(field(&info, "core").to_owned());
            }
        }
        assert!(resumed >= 38, "{versions:?}: only {resumed} of 40 connections resumed");
        assert_eq!(cores.len(), 2, "{versions:?}: resumed sessions must be seen on both cores: {cores:?}");
    }
    let mut admin = server.conn(Mode::Plain);
    let info: String = redis::cmd("INFO").arg("tls").query(&mut admin).unwrap();
    let resumed: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("tls_handshakes_resumed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(resumed >= 76, "{info}");
    // With caching off, nothing resumes.
    config_set(&server, &[("tls-session-caching", "no")]).unwrap();
    let config = client("ca.crt", None, &[]);
    for _ in 0..5 {
        let (tls, _) = connect(tls_addr(&server), &config, "PING").unwrap();
        assert_ne!(tls.conn.handshake_kind(), Some(rustls::HandshakeKind::Resumed));
    }
}

#[test]
fn config_set_port_and_tls_port_rebind_every_core() {
    let server = Server::start();
    let mut old_plain = server.conn(Mode::Plain);
    let (mut old_tls, _) = connect(tls_addr(&server), &client("ca.crt", None, &[]), "PING").unwrap();
    let (port, tls_port) = (common::free_port(), common::free_port());
    config_set(&server, &[("port", &port.to_string()), ("tls-port", &tls_port.to_string())]).unwrap();
    // As in Redis, once CONFIG SET has replied, every core listens on the new ports (new
    // connections land on both cores) and no longer on the old ones.
    let mut cores = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
            .and_then(|c| c.get_connection())
            .expect("the new port accepts at once");
        let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut c).unwrap();
        cores.insert(field(&info, "core").to_owned());
        if cores.len() == 2 {
            break;
        }
    }
    assert_eq!(cores.len(), 2, "new ports not served on every core: {cores:?}");
    let new_tls: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    connect(new_tls, &client("ca.crt", None, &[]), "PING").expect("the new TLS port");
    assert!(TcpStream::connect(server.addr(Mode::Plain)).is_err(), "the old port still accepts");
    // Connections made on the old ports are not dropped.
    assert_eq!(redis::cmd("PING").query::<String>(&mut old_plain).unwrap(), "PONG");
    assert_eq!(roundtrip(&mut old_tls, "PING").unwrap(), "+PONG");
    // A port someone else holds is refused, and nothing changes.
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = holder.local_addr().unwrap().port().to_string();
    let err = config_set_on(&mut old_plain, &[("port", &taken)]).unwrap_err().to_string();
    assert!(err.contains("Unable to listen on this port"), "{err}");
}

/// A port moves from TLS to plain and back over one connection, with a moment when neither
/// listens (Redis allows that through CONFIG SET): each change is complete when OK arrives,
/// so the next one can take the port at once.
#[test]
fn a_port_moves_between_plain_and_tls_at_once() {
    let server = Server::with(Opts { auth_clients: "no", ..Opts::default() });
    let tls_port = server.tls_port.to_string();
    let mut admin = server.conn(Mode::Plain);
    for _ in 0..3 {
        config_set_on(&mut admin, &[("tls-port", "0")]).unwrap();
        config_set_on(&mut admin, &[("port", &tls_port)]).expect("the old TLS port is free once OK arrives");
        let mut plain = redis::Client::open(format!("redis://127.0.0.1:{tls_port}/"))
            .and_then(|c| c.get_connection())
            .expect("plain on the old TLS port");
        assert_eq!(redis::cmd("PING").query::<String>(&mut plain).unwrap(), "PONG");
        config_set_on(&mut admin, &[("port", "0")]).expect("both ports off, over an open connection");
        assert!(TcpStream::connect(("127.0.0.1", server.tls_port)).is_err(), "nothing listens");
        assert_eq!(redis::cmd("PING").query::<String>(&mut admin).unwrap(), "PONG", "open connections stay");
        config_set_on(&mut admin, &[("tls-port", &tls_port)]).expect("TLS on it again");
        connect(tls_addr(&server), &client("ca.crt", None, &[]), "PING").expect("TLS on the port again");
        config_set_on(&mut admin, &[("port", &server.port.to_string())]).unwrap();
        admin = server.conn(Mode::Plain);
    }
}

#[test]
fn auto_reload_picks_up_rotated_files() {
    let c = certs();
    let dir = std::env::temp_dir().join(format!("ferrokey-rotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (crt, key) = (dir.join("live.crt"), dir.join("live.key"));
    std::fs::write(&crt, c.read("server.crt")).unwrap();
    std::fs::write(&key, c.read("server.key")).unwrap();
    let opts = Opts { auth_clients: "no", ..Opts::default() }
        .arg("tls-cert-file", crt.to_str().unwrap())
        .arg("tls-key-file", key.to_str().unwrap())
        .arg("tls-auto-reload-interval", "1");
    let server = Server::with(opts);
    let new = client("untrusted-ca.crt", None, &[]);
    assert!(connect(tls_addr(&server), &new, "PING").is_err());
    // Rotate: the key first, then the certificate (a half-rotated pair must not be installed).
    std::fs::write(&key, c.read("server-b.key")).unwrap();
    std::fs::write(&crt, c.read("server-b.crt")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while connect(tls_addr(&server), &new, "PING").is_err() {
        assert!(Instant::now() < deadline, "rotated files never loaded:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.wait_log("configuration reloaded"));
}

#[test]
fn encrypted_keys_and_startup_checks() {
    let c = certs();
    let server = Server::with(
        Opts { auth_clients: "no", ..Opts::default() }
            .arg("tls-key-file", &c.path("server-enc.key"))
            .arg("tls-key-file-pass", "secret")
            .arg("tls-dh-params-file", "/etc/dh.pem"),
    );
    connect(tls_addr(&server), &client("ca.crt", None, &[]), "PING").expect("decrypted PKCS#8 key");
    assert!(server.wait_log("rustls uses ECDHE"), "tls-dh-params-file is accepted with a warning");
    let start = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrokey-server"))
            .args(["--port", "0", "--tls-port", &common::free_port().to_string(), "--tls-auth-clients", "no"])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} must not start");
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout)
    };
    let cases: Vec<(Vec<String>, Vec<&str>)> = vec![
        (
            vec![
                "--tls-cert-file".into(),
                c.path("server.crt"),
                "--tls-key-file".into(),
                c.path("server-enc.key"),
                "--tls-key-file-pass".into(),
                "wrong".into(),
            ],
            vec!["server-enc.key", "decrypt"],
        ),
        (
            vec![
                "--tls-cert-file".into(),
                c.path("server.crt"),
                "--tls-key-file".into(),
                c.path("server-enc.key"),
            ],
            vec!["server-enc.key", "tls-key-file-pass"],
        ),
        (
            vec![
                "--tls-cert-file".into(),
                c.path("server-v1.crt"),
                "--tls-key-file".into(),
                c.path("server.key"),
            ],
            vec!["server-v1.crt", "needs v3"],
        ),
        (
            vec![
                "--tls-cert-file".into(),
                c.path("expired-server.crt"),
                "--tls-key-file".into(),
                c.path("expired-server.key"),
            ],
            vec!["expired-server.crt", "expired"],
        ),
        (
            vec![
                "--tls-cert-file".into(),
                c.path("server.crt"),
                "--tls-key-file".into(),
                c.path("client.key"),
            ],
            vec!["server.crt", "does not belong"],
        ),
    ];
    for (args, needles) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = start(&args);
        for n in needles {
            assert!(out.contains(n), "{args:?}: expected '{n}' in:\n{out}");
        }
    }
}

#[test]
fn client_certificates_named_and_expired_ones_refused() {
    let c = certs();
    let dir = std::env::temp_dir().join(format!("ferrokey-cadir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ca.pem"), c.read("ca.crt")).unwrap();
    std::fs::write(dir.join("README"), "not a certificate").unwrap();
    // The CA comes from tls-ca-cert-dir alone.
    let server = Server::with(
        Opts { auth_clients: "yes", ..Opts::default() }
            .arg("tls-ca-cert-file", "")
            .arg("tls-ca-cert-dir", dir.to_str().unwrap()),
    );
    let (_, info) =
        connect(tls_addr(&server), &client("ca.crt", Some(("client.crt", "client.key")), &[]), "CLIENT INFO")
            .expect("a trusted client certificate");
    assert_eq!(field(&info, "tls-cn"), "ferrokey-client");
    let err = connect(
        tls_addr(&server),
        &client("ca.crt", Some(("expired-client.crt", "expired-client.key")), &[]),
        "PING",
    )
    .unwrap_err();
    assert!(!err.is_empty());
    assert!(
        server.wait_log("Expired") || server.wait_log("expired"),
        "the reason is logged:\n{}",
        server.log()
    );
}

/// Half-open and garbage TLS connections arrive in a burst while a steady client keeps
/// working: it is never starved until those handshakes time out (10 s). Its slowest PING is a
/// latency figure that depends on the machine's load (scripts/bench-compare.sh measures a
/// steady load beside connection churn); the test asserts only what load cannot break.
#[test]
fn handshake_flood_leaves_a_steady_client_served() {
    let server = Server::with(Opts { auth_clients: "no", ..Opts::default() });
    let (mut steady, _) = connect(tls_addr(&server), &client("ca.crt", None, &[]), "PING").unwrap();
    let addr = tls_addr(&server);
    let flood = std::thread::spawn(move || {
        let mut held = Vec::new();
        for i in 0..300 {
            if let Ok(mut s) = TcpStream::connect(addr) {
                if i % 3 == 0 {
                    let _ = s.write_all(b"\x16\x03\x01\x02\x00garbage that is not a client hello");
                }
                held.push(s);
            }
        }
        // A burst of real handshakes too.
        let config = client("ca.crt", None, &[]);
        for _ in 0..50 {
            let _ = connect(addr, &config, "PING");
        }
        held
    });
    let mut worst = Duration::ZERO;
    let start = Instant::now();
    let mut n = 0;
    while !flood.is_finished() && start.elapsed() < Duration::from_secs(30) || n < 50 {
        let t = Instant::now();
        assert_eq!(roundtrip(&mut steady, "PING").unwrap(), "+PONG");
        worst = worst.max(t.elapsed());
        n += 1;
    }
    let held = flood.join().unwrap();
    assert!(held.len() >= 250, "the flood could connect");
    assert!(worst < Duration::from_secs(5), "a PING took {worst:?} during the flood: starved by handshakes");
}
