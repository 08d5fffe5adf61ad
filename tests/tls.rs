//! TLS: trusted and untrusted CAs, client certificates under each tls-auth-clients mode, a TLS-only
//! server (`port 0`), and broken handshakes that leave the server serving.

mod common;

use std::net::TcpStream;

use common::{certs, raw_connect, tls_handshake, Mode, Opts, Server};

fn handshake(server: &Server, client: Option<(&str, &str)>, ca: &str) -> Result<(), String> {
    let tcp = TcpStream::connect(server.addr(Mode::Tls)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    tls_handshake(tcp, client, ca).map(drop)
}

#[test]
fn trusted_ca_accepted_unknown_ca_rejected() {
    let server = Server::start();
    handshake(&server, None, "ca.crt").expect("a client trusting our CA connects");
    // A client that trusts another CA refuses our certificate.
    let err = handshake(&server, None, "untrusted-ca.crt").unwrap_err();
    assert!(err.contains("UnknownIssuer") || err.contains("invalid peer certificate"), "{err}");
    // The redis crate, with our CA, works end to end.
    let mut c = server.conn(Mode::Tls);
    let _: () = redis::cmd("SET").arg("tls").arg("ok").query(&mut c).unwrap();
    assert_eq!(redis::cmd("GET").arg("tls").query::<String>(&mut c).unwrap(), "ok");
}

#[test]
fn auth_clients_yes_requires_a_trusted_client_certificate() {
    let server = Server::with(Opts { auth_clients: "yes", ..Opts::default() });
    assert!(handshake(&server, None, "ca.crt").is_err(), "no client certificate must be refused");
    let err =
        handshake(&server, Some(("untrusted-client.crt", "untrusted-client.key")), "ca.crt").unwrap_err();
    assert!(!err.is_empty());
    handshake(&server, Some(("client.crt", "client.key")), "ca.crt")
        .expect("a trusted client cert is accepted");
    assert!(server.wait_log("TLS handshake failed"), "refusals are logged:\n{}", server.log());
    let mut c = server.conn(Mode::Tls);
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

#[test]
fn auth_clients_optional_and_no() {
    let optional = Server::with(Opts { auth_clients: "optional", ..Opts::default() });
    handshake(&optional, None, "ca.crt").expect("optional: no certificate is fine");
    handshake(&optional, Some(("client.crt", "client.key")), "ca.crt").expect("optional: a trusted one too");
    assert!(handshake(&optional, Some(("untrusted-client.crt", "untrusted-client.key")), "ca.crt").is_err());
    let no = Server::with(Opts { auth_clients: "no", ..Opts::default() });
    handshake(&no, None, "ca.crt").expect("no: certificates are not asked for");
}

#[test]
fn port_zero_leaves_only_tls() {
    let server = Server::with(Opts { plain: false, ..Opts::default() });
    let log = server.log();
    assert!(!log.contains("(plain)"), "no plain listener:\n{log}");
    assert!(log.contains("(TLS)"), "{log}");
    let mut c = server.conn(Mode::Tls);
    let info: String = redis::cmd("INFO").arg("server").query(&mut c).unwrap();
    // As Redis reports it: the TLS port when there is no plain one.
    assert!(info.contains(&format!("tcp_port:{}\r\n", server.tls_port)), "{info}");
    assert!(info.contains(&format!("tls_port:{}\r\n", server.tls_port)), "{info}");
}

#[test]
fn garbage_and_abandoned_handshakes_leave_the_server_serving() {
    use std::io::Write;
    let server = Server::start();
    // TLS-looking garbage, a truncated ClientHello, and a connection that says nothing.
    let mut garbage = TcpStream::connect(server.addr(Mode::Tls)).unwrap();
    garbage.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5]).unwrap();
    let mut rubbish = TcpStream::connect(server.addr(Mode::Tls)).unwrap();
    rubbish.write_all(&[0xde; 4096]).unwrap();
    let _silent = TcpStream::connect(server.addr(Mode::Tls)).unwrap();
    for _ in 0..20 {
        let mut raw = raw_connect(server.addr(Mode::Tls), Mode::Tls, None, "ca.crt");
        raw.roundtrip(b"PING\r\n", b"+PONG\r\n");
    }
    assert!(server.wait_log("TLS handshake failed"));
    let _ = certs();
}

#[test]
fn redis_cli_over_tls() {
    let server = Server::start();
    assert_eq!(server.cli(Mode::Tls, &["SET", "cli", "v"]).trim(), "OK");
    assert_eq!(server.cli(Mode::Tls, &["GET", "cli"]).trim(), "v");
    assert_eq!(server.cli(Mode::Plain, &["GET", "cli"]).trim(), "v");
}

#[test]
fn tls_parameters_and_handshake_counts_are_visible() {
    let server = Server::start();
    let mut tls = server.conn(Mode::Tls);
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut tls).unwrap();
    assert!(info.contains(" tls=yes tls-version=TLSv1.3 tls-cipher=TLS13_"), "{info}");
    let mut plain = server.conn(Mode::Plain);
    let info: String = redis::cmd("CLIENT").arg("INFO").query(&mut plain).unwrap();
    assert!(info.contains(" tls=no tls-version= tls-cipher="), "{info}");
    // A client that refuses our certificate: the server counts a failed handshake.
    assert!(handshake(&server, None, "untrusted-ca.crt").is_err());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let info: redis::InfoDict = redis::cmd("INFO").arg("tls").query(&mut plain).unwrap();
        if info.get::<u64>("tls_handshakes_failed").unwrap_or(0) >= 1 {
            assert!(info.get::<u64>("tls_handshakes_ok").unwrap() >= 1);
            assert_eq!(info.get::<u64>("tls_connected_clients"), Some(1));
            assert_eq!(info.get::<u64>("tls_port"), Some(u64::from(server.tls_port)));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the failed handshake was never counted");
        std::thread::yield_now();
    }
}

/// Sends a client's records through a raw socket, so the test decides where they split.
struct Records {
    tcp: TcpStream,
    tls: rustls::ClientConnection,
}

impl Records {
    fn connect(server: &Server) -> Records {
        use std::io::Write;
        let mut tcp = TcpStream::connect(server.addr(Mode::Tls)).unwrap();
        tcp.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
        tcp.set_nodelay(true).unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut tls = rustls::ClientConnection::new(common::tls_client_config(None, "ca.crt"), name).unwrap();
        while tls.is_handshaking() {
            tls.complete_io(&mut tcp).unwrap();
        }
        tcp.flush().unwrap();
        Records { tcp, tls }
    }

    /// `plaintext`, encrypted, as the bytes that would go on the wire.
    fn seal(&mut self, plaintext: &[u8]) -> Vec<u8> {
        use std::io::Write;
        self.tls.writer().write_all(plaintext).unwrap();
        let mut wire = Vec::new();
        while self.tls.wants_write() {
            self.tls.write_tls(&mut wire).unwrap();
        }
        wire
    }

    /// Reads until `n` bytes of plaintext have arrived; `Err` when the server closes first.
    fn read_plain(&mut self, n: usize) -> Result<Vec<u8>, String> {
        use std::io::Read;
        let mut got = Vec::new();
        while got.len() < n {
            match self.tls.read_tls(&mut self.tcp) {
                Ok(0) => return Err("closed".into()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
            self.tls.process_new_packets().map_err(|e| e.to_string())?;
            let mut buf = [0u8; 4096];
            while let Ok(k) = self.tls.reader().read(&mut buf) {
                if k == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..k]);
            }
        }
        Ok(got)
    }
}

#[test]
fn records_split_anywhere_and_forged_records_close_only_their_connection() {
    use std::io::Write;
    let server = Server::start();
    let mut c = Records::connect(&server);
    // Two records (a request larger than one record's 16 KiB, then a PING), sent in pieces
    // that cut headers, payloads and tags at many points.
    let value = vec![b'x'; 20_000];
    let mut wire = c.seal(&common::resp(&[b"SET", b"split", &value]));
    wire.extend(c.seal(b"PING\r\n"));
    for piece in wire.chunks(997) {
        for byte in piece.chunks(piece.len() / 3 + 1) {
            c.tcp.write_all(byte).unwrap();
        }
    }
    assert_eq!(c.read_plain(12).unwrap(), b"+OK\r\n+PONG\r\n");
    // One byte at a time, header to tag.
    for b in c.seal(b"GET split\r\n") {
        c.tcp.write_all(&[b]).unwrap();
    }
    let reply = c.read_plain(value.len() + 10).unwrap();
    assert_eq!(&reply[..8], b"$20000\r\n");

    // An application-data record whose tag does not verify: this connection ends (with an
    // alert), the server goes on.
    let mut forged = c.seal(b"PING\r\n");
    let last = forged.len() - 1;
    forged[last] ^= 0xff;
    c.tcp.write_all(&forged).unwrap();
    assert!(c.read_plain(1).is_err(), "a forged record must end the connection");
    // Garbage after a complete handshake, and a record header announcing too much.
    let mut g = Records::connect(&server);
    g.tcp.write_all(&[0x17, 0x03, 0x03, 0xff, 0xff]).unwrap();
    g.tcp.write_all(&[0xde; 512]).unwrap();
    assert!(g.read_plain(1).is_err());
    let mut after = server.conn(Mode::Tls);
    assert_eq!(redis::cmd("GET").arg("split").query::<Vec<u8>>(&mut after).unwrap(), value);
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// `openssl s_client` speaking TLS 1.2 with only `cipher`; what the server answered to PING.
fn s_client_tls12(server: &Server, cipher: &str) -> String {
    use std::io::{Read, Write};
    let c = certs();
    let mut child = std::process::Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect", &format!("127.0.0.1:{}", server.tls_port), "-quiet"])
        .args(["-tls1_2", "-cipher", cipher, "-CAfile", &c.path("ca.crt")])
        .args(["-cert", &c.path("client.crt"), "-key", &c.path("client.key")])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"PING\r\nQUIT\r\n").unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    let _ = child.wait();
    out
}

#[test]
fn openssl_cipher_strings_select_what_rustls_offers() {
    let server = Server::with(Opts::default().arg("tls-ciphers", "ECDHE+AESGCM:!aNULL:!MD5:@STRENGTH"));
    assert_eq!(s_client_tls12(&server, "ECDHE-RSA-AES128-GCM-SHA256"), "+PONG\r\n+OK\r\n");
    assert_eq!(s_client_tls12(&server, "ECDHE-RSA-AES256-GCM-SHA384"), "+PONG\r\n+OK\r\n");
    assert_eq!(s_client_tls12(&server, "ECDHE-RSA-CHACHA20-POLY1305"), "", "not in ECDHE+AESGCM");
    let mut c = server.conn(Mode::Plain);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("tls-ciphers").arg("HIGH:!aNULL").query(&mut c).unwrap();
    assert_eq!(s_client_tls12(&server, "ECDHE-RSA-CHACHA20-POLY1305"), "+PONG\r\n+OK\r\n");
    // What rustls lacks gets one clear error naming what it offers; the running set stays.
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-ciphers")
        .arg("AES128-SHA:DES-CBC3-SHA")
        .query::<()>(&mut c)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("selects no cipher suite rustls implements")
            && err.contains("ECDHE-RSA-AES128-GCM-SHA256"),
        "{err}"
    );
    let err = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-ciphers")
        .arg("HIGH:ECDHE-RSA-AES128-GCM-SHA265")
        .query::<()>(&mut c);
    assert!(err.unwrap_err().to_string().contains("ECDHE-RSA-AES128-GCM-SHA265"));
    assert_eq!(s_client_tls12(&server, "ECDHE-RSA-CHACHA20-POLY1305"), "+PONG\r\n+OK\r\n");
    // A suite named that rustls lacks, beside ones it has: the rest are offered, and the log says so.
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("tls-ciphers")
        .arg("DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256")
        .query(&mut c)
        .unwrap();
    assert!(server.wait_log("tls-ciphers names DHE-RSA-AES128-GCM-SHA256 which rustls does not implement"));
    assert_eq!(s_client_tls12(&server, "ECDHE-RSA-AES128-GCM-SHA256"), "+PONG\r\n+OK\r\n");
}
