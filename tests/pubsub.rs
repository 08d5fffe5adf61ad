//! Pub/Sub across cores: publishers and subscribers on different cores, patterns, RESP3 pushes,
//! and slow subscribers cut off at the output buffer limit. Plain TCP and TLS.

mod common;

use common::{read_reply, resp, Mode, Opts, Raw, Server, MODES};

/// A raw connection that landed on `core`.
fn raw_on_core(server: &Server, mode: Mode, core: usize) -> Raw {
    for _ in 0..200 {
        let mut raw = server.raw(mode);
        raw.send(&resp(&[b"CLIENT", b"INFO"]));
        let info = read_reply(&mut raw.inner);
        if String::from_utf8_lossy(&info).contains(&format!(" core={core} ")) {
            return raw;
        }
    }
    panic!("no connection landed on core {core}");
}

fn message(channel: &str, payload: &str) -> Vec<u8> {
    format!("*3\r\n$7\r\nmessage\r\n${}\r\n{channel}\r\n${}\r\n{payload}\r\n", channel.len(), payload.len())
        .into_bytes()
}

#[test]
fn messages_cross_cores_in_publish_order() {
    let server = Server::start();
    for mode in MODES {
        let mut subs: Vec<Raw> = (0..2).map(|core| raw_on_core(&server, mode, core)).collect();
        for sub in &mut subs {
            sub.roundtrip(&resp(&[b"SUBSCRIBE", b"news"]), b"*3\r\n$9\r\nsubscribe\r\n$4\r\nnews\r\n:1\r\n");
        }
        for core in 0..2 {
            let mut publisher = raw_on_core(&server, mode, core);
            for i in 0..100 {
                let payload = format!("{core}-{i}");
                publisher.roundtrip(&resp(&[b"PUBLISH", b"news", payload.as_bytes()]), b":2\r\n");
            }
            for sub in &mut subs {
                for i in 0..100 {
                    let expected = message("news", &format!("{core}-{i}"));
                    assert_eq!(
                        sub.read_n(expected.len()),
                        expected,
                        "{mode:?} publisher on core {core}, message {i}"
                    );
                }
            }
        }
        let mut c = server.conn(mode);
        let numsub: Vec<(String, i64)> =
            redis::cmd("PUBSUB").arg("NUMSUB").arg("news").query(&mut c).unwrap();
        assert_eq!(numsub, [("news".to_owned(), 2)]);
        drop(subs);
    }
}

#[test]
fn patterns_and_resp3_pushes() {
    let server = Server::start();
    for mode in MODES {
        let mut sub = server.raw(mode);
        sub.send(&resp(&[b"HELLO", b"3"]));
        let _ = read_reply(&mut sub.inner);
        sub.roundtrip(
            &resp(&[b"PSUBSCRIBE", b"sensor.*"]),
            b">3\r\n$10\r\npsubscribe\r\n$8\r\nsensor.*\r\n:1\r\n",
        );
        // RESP3 clients may run ordinary commands while subscribed.
        sub.roundtrip(&resp(&[b"SET", b"k", b"v"]), b"+OK\r\n");
        let mut publisher = server.conn(mode);
        let n: i64 = redis::cmd("PUBLISH").arg("sensor.temp").arg("21").query(&mut publisher).unwrap();
        assert_eq!(n, 1);
        let expected = b">4\r\n$8\r\npmessage\r\n$8\r\nsensor.*\r\n$11\r\nsensor.temp\r\n$2\r\n21\r\n";
        assert_eq!(sub.read_n(expected.len()), expected);
        let n: i64 = redis::cmd("PUBLISH").arg("other").arg("x").query(&mut publisher).unwrap();
        assert_eq!(n, 0);
        let numpat: i64 = redis::cmd("PUBSUB").arg("NUMPAT").query(&mut publisher).unwrap();
        assert_eq!(numpat, 1);
    }
}

/// A subscriber that never reads is disconnected once its backlog passes the pubsub limit; the
/// publisher sees the receiver count drop to zero. Bounded: at most 20,000 messages of 4 KiB.
#[test]
fn slow_subscriber_is_disconnected_at_the_limit() {
    let server = Server::with(Opts::default().arg("client-output-buffer-limit", "pubsub 256kb 128kb 60"));
    for mode in MODES {
        let channel = format!("firehose-{mode:?}");
        let mut slow = server.raw(mode);
        slow.send(&resp(&[b"SUBSCRIBE", channel.as_bytes()]));
        let _ = read_reply(&mut slow.inner);
        let mut publisher = server.conn(mode);
        let payload = vec![b'x'; 4096];
        let mut cut_off = None;
        for i in 0..20_000 {
            let n: i64 = redis::cmd("PUBLISH").arg(&channel).arg(&payload).query(&mut publisher).unwrap();
            if n == 0 {
                cut_off = Some(i);
                break;
            }
        }
        let sent = cut_off.expect("the slow subscriber was never disconnected");
        assert!(sent > 10, "disconnected after {sent} messages: too early to be the limit");
        drop(slow);
    }
    assert!(server.log().contains("output buffer limits"), "{}", server.log());
}
