//! Streams beyond single replies: blocked XREAD and XREADGROUP clients served by an XADD on
//! either shard, failed as Redis fails them when their group or key goes, timing out, and
//! refused from scripts; plain and TLS.

mod common;

use std::time::Duration;

use common::{key_on, Mode, Server, MODES};
use redis::{Connection, Value};

fn run(c: &mut Connection, args: &[&str]) -> Value {
    let mut cmd = redis::cmd(args[0]);
    args[1..].iter().for_each(|a| {
        cmd.arg(*a);
    });
    cmd.query(c).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// Runs `args` on a new connection in a thread, once it shows as blocked: its result.
fn blocked(
    server: &Server,
    mode: Mode,
    c: &mut Connection,
    args: &[&str],
) -> std::thread::JoinHandle<redis::RedisResult<Value>> {
    let mut conn = server.conn(mode);
    let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut conn).unwrap();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let handle = std::thread::spawn(move || {
        let mut cmd = redis::cmd(&args[0]);
        args[1..].iter().for_each(|a| {
            cmd.arg(a);
        });
        cmd.query(&mut conn)
    });
    common::wait_blocked(c, id);
    handle
}

fn shown(v: &Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Int(n) => n.to_string(),
        Value::BulkString(d) => String::from_utf8_lossy(d).into_owned(),
        Value::Array(items) => format!("[{}]", items.iter().map(shown).collect::<Vec<_>>().join(" ")),
        Value::SimpleString(s) => s.clone(),
        Value::Okay => "OK".into(),
        other => format!("{other:?}"),
    }
}

#[test]
fn blocked_readers_are_served_by_an_add_on_either_shard() {
    let server = Server::start();
    for mode in MODES {
        let mut c = server.conn(mode);
        let (a, b) = (key_on(&format!("{mode:?}s"), 0, 2), key_on(&format!("{mode:?}s"), 1, 2));
        // XREAD on keys of both shards, `$` resolved when it blocks: the add on the second
        // shard serves it, with that key alone.
        run(&mut c, &["XADD", &a, "1-1", "old", "entry"]);
        let reader = blocked(&server, mode, &mut c, &["XREAD", "BLOCK", "0", "STREAMS", &a, &b, "$", "$"]);
        run(&mut c, &["XADD", &b, "5-1", "k", "v"]);
        assert_eq!(shown(&reader.join().unwrap().unwrap()), format!("[[{b} [[5-1 [k v]]]]]"));
        // A group reader: served, its entry pending for it; the adder's reply came first.
        run(&mut c, &["XGROUP", "CREATE", &a, "g", "$"]);
        let reader = blocked(
            &server,
            mode,
            &mut c,
            &["XREADGROUP", "GROUP", "g", "c1", "BLOCK", "0", "STREAMS", &a, ">"],
        );
        run(&mut c, &["XADD", &a, "2-1", "job", "1"]);
        assert_eq!(shown(&reader.join().unwrap().unwrap()), format!("[[{a} [[2-1 [job 1]]]]]"));
        assert_eq!(shown(&run(&mut c, &["XPENDING", &a, "g"])), "[1 2-1 2-1 [[c1 1]]]");
        // Two readers of one group: one entry serves the first only; the second waits on.
        let first = blocked(
            &server,
            mode,
            &mut c,
            &["XREADGROUP", "GROUP", "g", "c2", "BLOCK", "0", "STREAMS", &a, ">"],
        );
        let second = blocked(
            &server,
            mode,
            &mut c,
            &["XREADGROUP", "GROUP", "g", "c3", "BLOCK", "0", "STREAMS", &a, ">"],
        );
        run(&mut c, &["XADD", &a, "3-1", "job", "2"]);
        assert_eq!(shown(&first.join().unwrap().unwrap()), format!("[[{a} [[3-1 [job 2]]]]]"));
        // The group destroyed under the second: it fails as Redis fails it.
        run(&mut c, &["XGROUP", "DESTROY", &a, "g"]);
        let err = second.join().unwrap().unwrap_err();
        assert!(
            err.to_string().contains("the consumer group this client was blocked on no longer exists"),
            "{err}"
        );
        // The key deleted under a group reader: UNBLOCKED; a plain reader waits on.
        run(&mut c, &["XGROUP", "CREATE", &b, "g", "$"]);
        let group_reader = blocked(
            &server,
            mode,
            &mut c,
            &["XREADGROUP", "GROUP", "g", "c", "BLOCK", "0", "STREAMS", &b, ">"],
        );
        let plain_reader = blocked(&server, mode, &mut c, &["XREAD", "BLOCK", "0", "STREAMS", &b, "$"]);
        run(&mut c, &["DEL", &b]);
        let err = group_reader.join().unwrap().unwrap_err();
        assert!(err.to_string().contains("the stream key no longer exists"), "{err}");
        run(&mut c, &["XADD", &b, "9-9", "back", "again"]);
        assert_eq!(shown(&plain_reader.join().unwrap().unwrap()), format!("[[{b} [[9-9 [back again]]]]]"));
        // A timeout is a null reply; inside MULTI a read never blocks.
        let started = std::time::Instant::now();
        assert_eq!(run(&mut c, &["XREAD", "BLOCK", "50", "STREAMS", &a, "$"]), Value::Nil);
        assert!(started.elapsed() >= Duration::from_millis(50));
        let mut tx = redis::pipe();
        tx.atomic().cmd("XREAD").arg("BLOCK").arg(0).arg("STREAMS").arg(&a).arg("$");
        let replies: Vec<Value> = tx.query(&mut c).unwrap();
        assert_eq!(replies, vec![Value::Nil]);
        run(&mut c, &["DEL", &a, &b]);
    }
}

#[test]
fn scripts_read_streams_but_never_block() {
    let server = Server::start();
    let mut c = server.conn(Mode::Tls);
    let (a, b) = (key_on("ss", 0, 2), key_on("ss", 1, 2));
    run(&mut c, &["XADD", &a, "1-1", "f", "v"]);
    run(&mut c, &["XADD", &b, "2-1", "g", "w"]);
    let got = run(
        &mut c,
        &["EVAL", "return redis.call('XREAD', 'STREAMS', KEYS[1], KEYS[2], '0', '0')", "2", &a, &b],
    );
    assert_eq!(shown(&got), format!("[[{a} [[1-1 [f v]]]] [{b} [[2-1 [g w]]]]]"));
    let err = redis::cmd("EVAL")
        .arg("return redis.call('XREAD', 'BLOCK', '0', 'STREAMS', KEYS[1], '$')")
        .arg(1)
        .arg(&a)
        .query::<Value>(&mut c)
        .unwrap_err();
    assert!(err.to_string().contains("XREAD command is not allowed with BLOCK option from scripts"), "{err}");
}

/// Another client's XREAD BLOCK, sent to the core where a script holding both shards waits
/// for its hops, is that client's own: it waits for the script and then blocks as ever, never
/// refused as if the script had sent it.
#[test]
fn a_script_on_the_core_never_refuses_another_clients_block() {
    let server = Server::start();
    for mode in MODES {
        let (a, b) = (key_on(&format!("{mode:?}sb"), 0, 2), key_on(&format!("{mode:?}sb"), 1, 2));
        let stream = key_on(&format!("{mode:?}sbs"), 0, 2);
        let channel = format!("{mode:?}started");
        let mut scripter = server.conn_on_core(mode, 0);
        let mut reader = server.conn_on_core(mode, 0);
        let mut listener = server.conn(mode);
        let mut sub = listener.as_pubsub();
        sub.subscribe(&channel).unwrap();
        let script = std::thread::spawn(move || {
            let body = "redis.call('PUBLISH', ARGV[1], 'go') \
                        for i = 1, 20000 do redis.call('INCR', KEYS[1 + i % 2]) end return 1";
            run(&mut scripter, &["EVAL", body, "2", &a, &b, &channel])
        });
        // The script runs (it published before its first hop): the read arrives meanwhile.
        sub.get_message().unwrap();
        let got = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(1)
            .arg("STREAMS")
            .arg(&stream)
            .arg("$")
            .query::<Value>(&mut reader);
        assert_eq!(got.unwrap_or_else(|e| panic!("{mode:?}: {e}")), Value::Nil);
        assert_eq!(script.join().unwrap(), Value::Int(1));
    }
}

/// What a stream can be left as reloads as it was: entries deleted above an ID XSETID moved
/// the last ID below (the next entry added goes after them), and a consumer named "" with
/// pending entries.
#[test]
fn odd_streams_survive_a_reload() {
    let server = Server::with(common::Opts::default().arg("enable-debug-command", "yes"));
    let mut c = server.conn(Mode::Plain);
    for args in [
        &["XADD", "s", "1-0", "a", "1"][..],
        &["XADD", "s", "2-0", "a", "2"],
        &["XDEL", "s", "2-0"],
        &["XSETID", "s", "1-0"],
        &["XADD", "s", "1-5", "a", "3"],
        &["XGROUP", "CREATE", "s", "g", "0"],
        &["XREADGROUP", "GROUP", "g", "", "STREAMS", "s", ">"],
    ] {
        run(&mut c, args);
    }
    let before =
        (shown(&run(&mut c, &["XRANGE", "s", "-", "+"])), shown(&run(&mut c, &["XPENDING", "s", "g"])));
    assert_eq!(before.0, "[[1-0 [a 1]] [1-5 [a 3]]]");
    assert_eq!(shown(&run(&mut c, &["XRANGE", "s", "1-5", "1-5"])), "[[1-5 [a 3]]]");
    run(&mut c, &["DEBUG", "RELOAD"]);
    let after =
        (shown(&run(&mut c, &["XRANGE", "s", "-", "+"])), shown(&run(&mut c, &["XPENDING", "s", "g"])));
    assert_eq!(after, before);
    assert_eq!(shown(&run(&mut c, &["XADD", "s", "1-6", "a", "4"])), "1-6");
}
