//! Wire-level tests: raw bytes at every split point, inline commands, hostile lengths, RESP3,
//! and clients that misbehave. Every test runs over plain TCP and TLS.

mod common;

use common::{resp, Mode, Server, MODES};

#[test]
fn pipeline_at_every_split_point() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.raw(mode);
        let mut req = resp(&[b"SET", b"split", b"value"]);
        req.extend(resp(&[b"GET", b"split"]));
        req.extend_from_slice(b"PING\r\n");
        let expected = b"+OK\r\n$5\r\nvalue\r\n+PONG\r\n";
        for split in 1..req.len() {
            c.send(&req[..split]);
            c.send(&req[split..]);
            let got = c.read_n(expected.len());
            assert_eq!(got, expected, "{mode:?} split at {split}");
        }
    }
}

#[test]
fn inline_commands_with_quotes() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.raw(mode);
        c.roundtrip(b"SET inline \"a b\\x41\"\r\n", b"+OK\r\n");
        c.roundtrip(b"GET inline\r\n", b"$4\r\na bA\r\n");
        c.roundtrip(b"  \r\n\r\nPING\n", b"+PONG\r\n");
        c.roundtrip(b"ECHO 'it\\'s'\r\n", b"$4\r\nit's\r\n");
    }
}

#[test]
fn command_errors_match_redis() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.raw(mode);
        c.roundtrip(&resp(&[b"GET"]), b"-ERR wrong number of arguments for 'get' command\r\n");
        c.roundtrip(
            &resp(&[b"NOPE", b"a", b"b"]),
            b"-ERR unknown command 'NOPE', with args beginning with: 'a' 'b' \r\n",
        );
        c.roundtrip(
            &resp(&[b"MSET", b"a", b"1", b"b"]),
            b"-ERR wrong number of arguments for 'mset' command\r\n",
        );
        c.roundtrip(&resp(&[b"SET", b"n", b"x"]), b"+OK\r\n");
        c.roundtrip(&resp(&[b"INCR", b"n"]), b"-ERR value is not an integer or out of range\r\n");
        c.roundtrip(
            &resp(&[b"SET", b"n", b"1", b"EX", b"0"]),
            b"-ERR invalid expire time in 'set' command\r\n",
        );
        c.roundtrip(&resp(&[b"SET", b"n", b"1", b"NX", b"XX"]), b"-ERR syntax error\r\n");
        c.roundtrip(&resp(&[b"SELECT", b"99"]), b"-ERR DB index is out of range\r\n");
        // The connection is still usable after errors.
        c.roundtrip(b"PING\r\n", b"+PONG\r\n");
    }
}

/// Each hostile request gets Redis's protocol error and the connection closes; the server lives.
#[test]
fn hostile_lengths_close_with_redis_errors() {
    let server = Server::start();
    let cases: [(&[u8], &str); 6] = [
        (b"*1\r\n$600000000\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (b"*1\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"),
        (b"*3000000000\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
        (b"*1\r\n:5\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"),
        (b"GET \"unbalanced\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"),
        (b"*abc\r\n", "-ERR Protocol error: invalid multibulk length\r\n"),
    ];
    for mode in MODES {
        for (req, expected) in cases {
            let mut c = server.raw(mode);
            c.send(&resp(&[b"PING"]));
            c.send(req);
            let got = c.read_to_close();
            assert_eq!(String::from_utf8_lossy(&got), format!("+PONG\r\n{expected}"), "{mode:?}");
        }
        // A 64 KiB+ line without a newline.
        let mut c = server.raw(mode);
        c.send(&vec![b'x'; 70 * 1024]);
        assert_eq!(c.read_to_close(), b"-ERR Protocol error: too big inline request\r\n");
    }
    assert!(server.log().contains("Protocol error"), "protocol errors are logged");
    let mut c = server.conn(Mode::Plain);
    let pong: String = redis::cmd("PING").query(&mut c).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn proto_max_bulk_len_is_enforced() {
    let server = Server::with(common::Opts::default().arg("proto-max-bulk-len", "1kb"));
    for mode in MODES {
        let mut c = server.raw(mode);
        c.roundtrip(&resp(&[b"SET", b"k", &[b'v'; 1024]]), b"+OK\r\n");
        c.send(&resp(&[b"SET", b"k", &[b'v'; 1025]]));
        assert_eq!(c.read_to_close(), b"-ERR Protocol error: invalid bulk length\r\n");
    }
}

#[test]
fn query_buffer_limit_closes_the_connection() {
    let server = Server::with(common::Opts::default().arg("client-query-buffer-limit", "1mb"));
    for mode in MODES {
        let mut c = server.raw(mode);
        // A bulk that announces 2 MB and sends it: the buffer passes 1 MB and the server hangs up.
        c.send(b"*2\r\n$3\r\nGET\r\n$2000000\r\n");
        let chunk = vec![b'a'; 64 * 1024];
        let mut closed = false;
        for _ in 0..40 {
            if c.inner.write_all(&chunk).is_err() {
                closed = true;
                break;
            }
        }
        if !closed {
            assert!(c.read_to_close().is_empty());
        }
    }
    assert!(server.wait_log("max query buffer length"));
}

#[test]
fn resp3_via_hello() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.raw(mode);
        c.send(&resp(&[b"HELLO", b"3"]));
        let hello = common::read_reply(&mut c.inner);
        let text = String::from_utf8_lossy(&hello);
        assert!(text.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n"), "{text}");
        assert!(text.contains("$5\r\nproto\r\n:3\r\n"), "{text}");
        c.roundtrip(&resp(&[b"GET", b"missing-key"]), b"_\r\n");
        c.send(&resp(&[b"CONFIG", b"GET", b"hz"]));
        assert_eq!(common::read_reply(&mut c.inner), b"%1\r\n$2\r\nhz\r\n$2\r\n10\r\n");
        c.roundtrip(&resp(&[b"HELLO", b"4"]), b"-NOPROTO unsupported protocol version\r\n");
        c.send(&resp(&[b"HELLO", b"2"]));
        let _ = common::read_reply(&mut c.inner);
        c.roundtrip(&resp(&[b"GET", b"missing-key"]), b"$-1\r\n");
    }
}

/// INFO's `tls_buffered_bytes` once `until` holds for it, or after 10 s.
fn wait_tls_buffered(server: &Server, until: impl Fn(u64) -> bool) -> u64 {
    let mut admin = server.conn(Mode::Plain);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let info: String = redis::cmd("INFO").arg("tls").query(&mut admin).unwrap();
        let held = info
            .lines()
            .find_map(|l| l.strip_prefix("tls_buffered_bytes:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("INFO tls has tls_buffered_bytes");
        if until(held) || std::time::Instant::now() > deadline {
            return held;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A client that stops reading its replies stalls only itself; over TLS, INFO shows what rustls
/// holds for it, and that goes back to zero when it leaves.
#[test]
fn client_that_stops_reading_stalls_only_itself() {
    let server = Server::start();
    for mode in MODES {
        let mut setup = server.conn(mode);
        let big = vec![b'z'; 1 << 20];
        redis::cmd("SET").arg("big").arg(&big).query::<()>(&mut setup).unwrap();
        let mut slow = server.raw(mode);
        let get = resp(&[b"GET", b"big"]);
        for _ in 0..64 {
            slow.send(&get);
        }
        // 64 MB of replies are waiting for a reader that never comes; everyone else is served.
        for _ in 0..20 {
            let mut other = server.conn(mode);
            let n: usize = redis::cmd("STRLEN").arg("big").query(&mut other).unwrap();
            assert_eq!(n, 1 << 20);
        }
        // INFO shows what rustls holds for the stalled client: encrypted records up to rustls's
        // 64 KiB buffer limit (the rest waits in the connection's reply buffer).
        let held = wait_tls_buffered(&server, |b| mode == Mode::Plain || b > 0);
        match mode {
            Mode::Plain => assert_eq!(held, 0),
            Mode::Tls => assert!(held > 0 && held <= 128 * 1024, "tls_buffered_bytes:{held}"),
        }
        drop(slow);
        assert_eq!(wait_tls_buffered(&server, |b| b == 0), 0, "released when the client leaves");
    }
    let mut c = server.conn(Mode::Plain);
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

#[test]
fn plaintext_on_the_tls_port_is_closed() {
    let server = Server::start();
    let mut tcp = std::net::TcpStream::connect(server.addr(Mode::Tls)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
    use std::io::{Read, Write};
    tcp.write_all(b"PING\r\n*1\r\n$4\r\nPING\r\n").unwrap();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    assert!(buf.is_empty(), "closed without a byte, as Redis does (no alert): {buf:?}");
    assert!(server.wait_log("does not speak TLS"));
    // redis-cli without --tls sees the connection close, an error, as against redis-server.
    let out = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.tls_port.to_string(), "PING"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "redis-cli: {}", String::from_utf8_lossy(&out.stdout));
    // And the server still serves TLS.
    let mut c = server.conn(Mode::Tls);
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
}

#[test]
fn requirepass_gates_commands_and_tightens_the_parser() {
    let server = Server::with(common::Opts::default().arg("requirepass", "s3cret"));
    for mode in MODES {
        let mut c = server.raw(mode);
        c.roundtrip(&resp(&[b"GET", b"k"]), b"-NOAUTH Authentication required.\r\n");
        c.roundtrip(
            &resp(&[b"AUTH", b"wrong"]),
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
        );
        c.roundtrip(&resp(&[b"AUTH", b"default", b"s3cret"]), b"+OK\r\n");
        c.roundtrip(&resp(&[b"GET", b"k"]), b"$-1\r\n");
        c.roundtrip(&resp(&[b"RESET"]), b"+RESET\r\n");
        c.roundtrip(&resp(&[b"GET", b"k"]), b"-NOAUTH Authentication required.\r\n");
        // Unauthenticated clients may not send big requests (as Redis).
        c.send(b"*20\r\n");
        assert_eq!(c.read_to_close(), b"-ERR Protocol error: unauthenticated multibulk length\r\n");
        let mut c = server.raw(mode);
        c.send(&resp(&[b"HELLO", b"3", b"AUTH", b"default", b"s3cret", b"SETNAME", b"me"]));
        let hello = common::read_reply(&mut c.inner);
        assert!(hello.starts_with(b"%7"), "{}", String::from_utf8_lossy(&hello));
        c.roundtrip(&resp(&[b"CLIENT", b"GETNAME"]), b"$2\r\nme\r\n");
    }
}

/// Random bytes (bounded: 200 connections, 4 KiB each) over plain and TLS: every connection ends
/// with an error reply or a close, and the server keeps serving.
#[test]
fn random_garbage_never_takes_the_server_down() {
    use std::io::{Read, Write};
    let server = Server::start();
    let mut seed = 42u64;
    let mut next = || {
        seed = ferrokey::internals::splitmix(seed);
        seed
    };
    for i in 0..200 {
        let mode = if i % 2 == 0 { Mode::Plain } else { Mode::Tls };
        let garbage: Vec<u8> = (0..4096).map(|_| next() as u8).collect();
        if mode == Mode::Tls && i % 4 == 1 {
            // Garbage instead of a TLS handshake.
            let mut tcp = std::net::TcpStream::connect(server.addr(mode)).unwrap();
            tcp.set_read_timeout(Some(std::time::Duration::from_secs(15))).unwrap();
            let _ = tcp.write_all(&garbage);
            let _ = tcp.read(&mut [0u8; 64]);
            continue;
        }
        // Garbage inside an established session.
        let mut c = server.raw(mode);
        let _ = c.inner.write_all(&garbage);
        let _ = c.inner.flush();
        drop(c);
    }
    for mode in MODES {
        let mut c = server.conn(mode);
        assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
    }
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// A seeded generator, so a failure names a reproducible case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = ferrokey::internals::splitmix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random RESP-shaped garbage: fragments of real requests, lengths (huge, negative, absent),
/// quotes, CRLFs in odd places and raw bytes.
fn garbage(rng: &mut Rng) -> Vec<u8> {
    const PIECES: [&[u8]; 16] = [
        b"*",
        b"$",
        b"\r\n",
        b"\n",
        b"\r",
        b"-1",
        b"0",
        b"3",
        b"99999999999999999999",
        b"SET",
        b"GET",
        b"\"",
        b"'",
        b" ",
        b"PING",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n",
    ];
    let mut out = Vec::new();
    for _ in 0..rng.below(60) + 1 {
        if rng.below(4) == 0 {
            for _ in 0..rng.below(16) + 1 {
                out.push(rng.next() as u8);
            }
        } else {
            out.extend_from_slice(PIECES[rng.below(PIECES.len() as u64) as usize]);
        }
    }
    out
}

/// RESP-shaped garbage on both transports, and forged TLS records on the TLS port, never take
/// the server down (nor make rustls panic): each connection gets replies or is closed, and the
/// server still answers.
#[test]
fn resp_shaped_garbage_and_forged_records_never_take_the_server_down() {
    use std::io::Write;
    let server = Server::start();
    let mut rng = Rng(0x5eed_f00d_cafe_d00d);
    for mode in MODES {
        for case in 0..120 {
            let bytes = garbage(&mut rng);
            let mut c = server.raw(mode);
            c.send(&bytes);
            drop(c);
            if case % 40 == 39 {
                let mut alive = server.raw(mode);
                alive.roundtrip(b"PING\r\n", b"+PONG\r\n");
            }
        }
    }
    // Below TLS: records with random headers and bodies straight onto the TLS port.
    for _ in 0..60 {
        let mut tcp = std::net::TcpStream::connect(server.addr(Mode::Tls)).unwrap();
        let mut bytes = vec![[0x16, 0x17, 0x15, 0x14][rng.below(4) as usize], 0x03, rng.below(5) as u8];
        bytes.extend((0..rng.below(300)).map(|_| rng.next() as u8));
        let _ = tcp.write_all(&bytes);
    }
    let mut c = server.conn(Mode::Tls);
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
    let mut c = server.conn(Mode::Plain);
    assert_eq!(redis::cmd("PING").query::<String>(&mut c).unwrap(), "PONG");
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// Sends a pipeline exercising CLIENT REPLY (keys on both shards, errors, the session's own
/// commands) and returns every reply that came, up to the closing ECHO.
fn client_reply_script(c: &mut common::Raw) -> Vec<String> {
    let script: &[&[&str]] = &[
        &["CLIENT", "REPLY", "OFF"],
        &["SET", "a", "1"],
        &["SET", "b", "2"],
        &["GET", "a"],
        &["INCR", "nosuchcommand", "x"],
        &["NOSUCHCOMMAND"],
        &["CLIENT", "ID"],
        &["CLIENT", "REPLY", "ON"],
        &["MGET", "a", "b"],
        &["CLIENT", "REPLY", "SKIP"],
        &["GET", "a"],
        &["GET", "b"],
        &["CLIENT", "REPLY", "SKIP"],
        &["CLIENT", "REPLY", "SKIP"],
        &["PING"],
        &["PING", "second"],
        &["CLIENT", "REPLY", "OFF"],
        &["CLIENT", "REPLY", "SKIP"],
        &["PING"],
        &["CLIENT", "REPLY", "ON"],
        &["CLIENT", "REPLY", "MAYBE"],
        &["ECHO", "end"],
    ];
    let mut bytes = Vec::new();
    for req in script {
        let args: Vec<&[u8]> = req.iter().map(|a| a.as_bytes()).collect();
        bytes.extend(resp(&args));
    }
    c.send(&bytes);
    let mut replies = Vec::new();
    loop {
        let reply = String::from_utf8_lossy(&c.reply()).into_owned();
        let end = reply == "$3\r\nend\r\n";
        replies.push(reply);
        if end || replies.len() > script.len() {
            return replies;
        }
    }
}

#[test]
fn client_reply_off_and_skip_answer_as_redis_does() {
    let redis = common::RedisServer::start();
    let theirs = client_reply_script(&mut redis.raw());
    assert!(theirs.len() < 10, "most replies are not sent: {theirs:?}");
    let server = Server::start();
    for mode in MODES {
        let mut c = server.raw(mode);
        assert_eq!(client_reply_script(&mut c), theirs, "{mode:?}");
        // The connection answers normally afterwards.
        assert_eq!(c.request(&[b"PING"]), b"+PONG\r\n");
    }
}
