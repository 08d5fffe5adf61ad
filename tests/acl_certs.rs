//! Client certificates as ACL identities (`tls-auth-clients-user CN|URI`, as Valkey 9.1 and
//! Redis 8.6): a verified certificate whose CN (or SAN URI) names an enabled user logs the
//! connection in as that user, on every core, with redis-cli, the `redis` crate, openssl
//! s_client and rustls; on resumed sessions; never by a ticket issued before the trusted CAs
//! changed. One that names no enabled user leaves the default user, counted in INFO and ACL LOG.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{certs, tls_client_config, Mode, Opts, Raw, Server};

/// A TLS connection with `config` (its session cache resumes); whether it resumed.
fn connect(server: &Server, config: &Arc<rustls::ClientConfig>) -> (Raw, bool) {
    let mut tcp = TcpStream::connect(server.addr(Mode::Tls)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    let resumed = conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
    (Raw { inner: Box::new(rustls::StreamOwned::new(conn, tcp)) }, resumed)
}

fn whoami(raw: &mut Raw) -> String {
    String::from_utf8_lossy(&raw.request(&[b"ACL", b"WHOAMI"])).into_owned()
}

fn ask(raw: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&raw.request(&args)).into_owned()
}

/// INFO's `acl_access_denied_tls_cert`.
fn cert_denials(admin: &mut Raw) -> u64 {
    let info = ask(admin, &["INFO", "stats"]);
    let line = info.lines().find(|l| l.starts_with("acl_access_denied_tls_cert:")).expect("the field");
    line["acl_access_denied_tls_cert:".len()..].trim().parse().unwrap()
}

/// A server logging certificates in by CN, whose default user needs a password; an admin
/// connection; user alice (keys `keys`, no password: her certificate is the only way in) and a
/// client configuration presenting her certificate.
fn with_alice(keys: &str) -> (Server, Raw, Arc<rustls::ClientConfig>) {
    let server =
        Server::with(Opts::default().arg("tls-auth-clients-user", "CN").arg("requirepass", "adminpw"));
    let mut admin = server.raw(Mode::Plain);
    assert_eq!(ask(&mut admin, &["AUTH", "adminpw"]), "+OK\r\n");
    assert_eq!(ask(&mut admin, &["ACL", "SETUSER", "alice", "on", keys, "+@all"]), "+OK\r\n");
    (server, admin, tls_client_config(Some(("client-alice.crt", "client-alice.key")), "ca.crt"))
}

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";

#[test]
fn certificates_log_in_as_the_user_they_name_on_every_core_and_when_resumed() {
    let (server, mut admin, alice) = with_alice("~a:*");

    let mut cores_seen = [false; 2];
    let mut resumed_seen = false;
    for _ in 0..200 {
        let (mut raw, resumed) = connect(&server, &alice);
        assert_eq!(whoami(&mut raw), "$5\r\nalice\r\n", "resumed: {resumed}");
        assert_eq!(ask(&mut raw, &["SET", "a:1", "v"]), "+OK\r\n");
        let info = ask(&mut raw, &["CLIENT", "INFO"]);
        assert!(info.contains(" user=alice ") && info.contains(" tls-cn=alice"), "{info}");
        cores_seen[usize::from(info.contains(" core=1 "))] = true;
        resumed_seen |= resumed;
        if cores_seen == [true, true] && resumed_seen {
            break;
        }
    }
    assert_eq!(cores_seen, [true, true], "both cores log certificates in");
    assert!(resumed_seen, "a resumed session keeps its certificate's user");
    assert_eq!(cert_denials(&mut admin), 0);

    // The usual clients, with the same certificate.
    let c = certs();
    let cli = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.tls_port.to_string(), "--tls", "--cacert", &c.path("ca.crt")])
        .args(["--cert", &c.path("client-alice.crt"), "--key", &c.path("client-alice.key"), "ACL", "WHOAMI"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&cli.stdout).trim(), "alice");
    let client = redis::Client::build_with_tls(
        format!("rediss://127.0.0.1:{}", server.tls_port),
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: c.read("client-alice.crt"),
                client_key: c.read("client-alice.key"),
            }),
            root_cert: Some(c.read("ca.crt")),
        },
    )
    .unwrap();
    let me: String = redis::cmd("ACL").arg("WHOAMI").query(&mut client.get_connection().unwrap()).unwrap();
    assert_eq!(me, "alice");
    let mut s_client = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect", &format!("127.0.0.1:{}", server.tls_port), "-quiet"])
        .args(["-CAfile", &c.path("ca.crt"), "-cert", &c.path("client-alice.crt")])
        .args(["-key", &c.path("client-alice.key")])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    s_client.stdin.take().unwrap().write_all(b"ACL WHOAMI\r\nQUIT\r\n").unwrap();
    let mut out = String::new();
    s_client.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = s_client.wait();
    assert_eq!(out, "$5\r\nalice\r\n+OK\r\n");

    // A certificate naming no user stays the default user, which needs a password here.
    let nobody = tls_client_config(Some(("client-nobody.crt", "client-nobody.key")), "ca.crt");
    let (mut raw, _) = connect(&server, &nobody);
    assert_eq!(whoami(&mut raw), NOAUTH);
    assert_eq!(ask(&mut raw, &["AUTH", "adminpw"]), "+OK\r\n");
    assert_eq!(whoami(&mut raw), "$7\r\ndefault\r\n");
    assert_eq!(cert_denials(&mut admin), 1);
    let log = ask(&mut admin, &["ACL", "LOG", "1"]);
    assert!(
        log.contains(
            "reason\r\n$8\r\ntls-cert\r\n$7\r\ncontext\r\n$8\r\ntoplevel\r\n$6\r\nobject\r\n$0\r\n\r\n"
        ) && log.contains("username\r\n$6\r\nnobody\r\n"),
        "{log}"
    );

    // Changes to the user reach its certificate connections; off or deleted, they close.
    let (mut raw, _) = connect(&server, &alice);
    assert_eq!(ask(&mut admin, &["ACL", "SETUSER", "alice", "-get"]), "+OK\r\n");
    assert_eq!(
        ask(&mut raw, &["GET", "a:1"]),
        "-NOPERM this user has no permissions to run the 'get' command\r\n"
    );
    assert_eq!(ask(&mut admin, &["ACL", "SETUSER", "alice", "off"]), "+OK\r\n");
    raw.send(&common::resp(&[b"PING"]));
    assert!(raw.read_to_close().is_empty(), "a user turned off loses its connections");
    let (mut raw, _) = connect(&server, &alice);
    assert_eq!(whoami(&mut raw), NOAUTH, "a disabled user is not logged in");
    assert_eq!(cert_denials(&mut admin), 2);
    assert_eq!(ask(&mut admin, &["ACL", "SETUSER", "alice", "on"]), "+OK\r\n");
    let (mut raw, _) = connect(&server, &alice);
    assert_eq!(whoami(&mut raw), "$5\r\nalice\r\n");
    assert_eq!(ask(&mut admin, &["ACL", "DELUSER", "alice"]), ":1\r\n");
    raw.send(&common::resp(&[b"PING"]));
    assert!(raw.read_to_close().is_empty());

    // URI: the first SAN URI that names an enabled user (the full URI is the name).
    assert_eq!(ask(&mut admin, &["CONFIG", "SET", "tls-auth-clients-user", "uri"]), "+OK\r\n");
    assert_eq!(
        ask(&mut admin, &["CONFIG", "GET", "tls-auth-clients-user"]),
        "*2\r\n$21\r\ntls-auth-clients-user\r\n$3\r\nURI\r\n"
    );
    let uris = tls_client_config(Some(("client-uris.crt", "client-uris.key")), "ca.crt");
    let (mut raw, _) = connect(&server, &uris);
    assert_eq!(whoami(&mut raw), NOAUTH, "neither URI names a user yet");
    assert_eq!(cert_denials(&mut admin), 3);
    assert!(
        ask(&mut admin, &["ACL", "LOG", "1"]).contains("spiffe://ferrokey.test/bob"),
        "the last URI tried"
    );
    for (user, state) in [("spiffe://ferrokey.test/ghost", "off"), ("spiffe://ferrokey.test/bob", "on")] {
        assert_eq!(ask(&mut admin, &["ACL", "SETUSER", user, state, "~*", "+@all"]), "+OK\r\n");
    }
    let (mut raw, _) = connect(&server, &uris);
    assert_eq!(whoami(&mut raw), "$26\r\nspiffe://ferrokey.test/bob\r\n");
    assert_eq!(ask(&mut admin, &["ACL", "SETUSER", "spiffe://ferrokey.test/ghost", "on"]), "+OK\r\n");
    let (mut raw, _) = connect(&server, &uris);
    assert_eq!(whoami(&mut raw), "$28\r\nspiffe://ferrokey.test/ghost\r\n");

    // off: certificates name nobody.
    assert_eq!(ask(&mut admin, &["CONFIG", "SET", "tls-auth-clients-user", "off"]), "+OK\r\n");
    let (mut raw, _) = connect(&server, &uris);
    assert_eq!(whoami(&mut raw), NOAUTH);
    assert_eq!(cert_denials(&mut admin), 3);
}

#[test]
fn a_ticket_from_before_the_trusted_cas_changed_does_not_resume() {
    let (server, mut admin, alice) = with_alice("~*");
    let (mut raw, resumed) = connect(&server, &alice);
    assert!(!resumed);
    assert_eq!(whoami(&mut raw), "$5\r\nalice\r\n");
    // The server certificate reloads, the trust in clients does not: tickets still resume.
    let c = certs();
    assert_eq!(ask(&mut admin, &["CONFIG", "SET", "tls-cert-file", &c.path("server.crt")]), "+OK\r\n");
    let (mut raw, resumed) = connect(&server, &alice);
    assert!(resumed, "the same trust keeps its tickets");
    assert_eq!(whoami(&mut raw), "$5\r\nalice\r\n");
    // Another CA set: the old tickets no longer resume; the certificate is verified anew.
    let bundle = std::env::temp_dir().join(format!("ferrokey-ca-bundle-{}.crt", std::process::id()));
    std::fs::write(&bundle, [c.read("ca.crt"), c.read("untrusted-ca.crt")].concat()).unwrap();
    assert_eq!(
        ask(&mut admin, &["CONFIG", "SET", "tls-ca-cert-file", &bundle.display().to_string()]),
        "+OK\r\n"
    );
    let (mut raw, resumed) = connect(&server, &alice);
    assert!(!resumed, "a ticket issued under other trusted CAs must not resume");
    assert_eq!(whoami(&mut raw), "$5\r\nalice\r\n");
    let (mut raw, resumed) = connect(&server, &alice);
    assert!(resumed, "tickets issued under the new trust resume");
    assert_eq!(whoami(&mut raw), "$5\r\nalice\r\n");
    std::fs::remove_file(&bundle).unwrap();
}
