//! Busy scripts, against Debian's redis-server: a script past `busy-reply-threshold` makes
//! every other client (on every core, plain and TLS) get `-BUSY` but for SCRIPT KILL,
//! FUNCTION KILL, FUNCTION STATS and SHUTDOWN NOSAVE; a looping read-only script or function
//! is killed by its KILL command; a script that wrote is unkillable and only SHUTDOWN NOSAVE
//! ends it (and the server). Both of ferrokey's paths are covered: a script's first run
//! (holding every shard) and its later runs (on its key's shard).

mod common;

use std::time::{Duration, Instant};

use common::{key_on, resp, Mode, Opts, Raw, RedisServer, Server};

/// `body` loops forever when ARGV[2] is `loop`, after a SET of KEYS[1] when ARGV[1] is `w`.
const BODY: &str = "local i = 0 if ARGV[1] == 'w' then redis.call('SET', KEYS[1], 'x') end \
                    if ARGV[2] == 'loop' then while true do i = i + 1 end end return i";
/// Killed inside a `pcall`: the error is caught, and raised again at the next line.
const IN_PCALL: &str =
    "local ok, e = pcall(function()\n  while true do end\nend)\nlocal i = 0 while true do i = i + 1 end";
/// Looping inside a C function's callback, where the run cannot pause.
const IN_SORT: &str = "table.sort({3, 2, 1}, function(a, b)\n  while true do end\nend)\nreturn 1";
/// Looping inside a coroutine the script made, which is not paused (its yields are the
/// script's own).
const IN_COROUTINE: &str = "local co = coroutine.create(function()\n  local i = 0\n  while true do i = i + 1 end\nend)\nlocal ok, e = coroutine.resume(co)\nreturn {ok and 1 or 0, e}";
const LIBRARY: &str = "#!lua name=busylib\nredis.register_function{function_name='spin', \
                       callback=function(keys, args)\n  local i = 0\n  while true do i = i + 1 end\nend, \
                       flags={'no-writes'}}";

fn ask(raw: &mut Raw, args: &[&str]) -> String {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    String::from_utf8_lossy(&raw.request(&args)).into_owned()
}

fn send(raw: &mut Raw, args: &[&str]) {
    let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    raw.send(&resp(&args));
}

/// PINGs on `raw` until the reply is `-BUSY` (the script crossed the threshold), for at most
/// 30 s; returns that reply.
fn until_busy(raw: &mut Raw) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = ask(raw, &["PING"]);
        if reply.starts_with("-BUSY") {
            return reply;
        }
        assert_eq!(reply, "+PONG\r\n");
        assert!(Instant::now() < deadline, "the script never became busy");
    }
}

/// Connections to a server under test: `runner` starts the script, `others` are on every core.
struct Clients {
    runner: Raw,
    others: Vec<Raw>,
}

/// A killable run: the replies a client sees around it, in order.
fn killable(c: &mut Clients, start: &[&str], function: bool) -> Vec<String> {
    send(&mut c.runner, start);
    let [a, b] = &mut c.others[..] else { panic!("two other clients") };
    let mut seen = vec![until_busy(a)];
    seen.push(ask(b, &["GET", "k"]));
    seen.push(ask(a, &["SET", "k", "v"]));
    seen.push(ask(b, &["SHUTDOWN"]));
    let wrong_kill = if function { "SCRIPT" } else { "FUNCTION" };
    seen.push(ask(a, &[wrong_kill, "KILL"]));
    if !function {
        seen.push(ask(b, &["FUNCTION", "STATS"]));
    }
    seen.push(ask(b, &[if function { "FUNCTION" } else { "SCRIPT" }, "KILL"]));
    seen.push(String::from_utf8_lossy(&c.runner.reply()).into_owned());
    seen.push(ask(a, &["PING"]));
    seen.push(ask(b, &["SCRIPT", "KILL"]));
    seen
}

/// An unkillable run (it wrote): the replies up to SHUTDOWN NOSAVE, which ends the server.
fn unkillable(c: &mut Clients, start: &[&str]) -> Vec<String> {
    send(&mut c.runner, start);
    let [a, b] = &mut c.others[..] else { panic!("two other clients") };
    let mut seen = vec![until_busy(a)];
    seen.push(ask(b, &["SCRIPT", "KILL"]));
    seen.push(ask(a, &["FUNCTION", "KILL"]));
    seen.push(ask(b, &["SHUTDOWN"]));
    send(a, &["SHUTDOWN", "NOSAVE"]);
    seen.push(String::from_utf8_lossy(&a.read_to_close()).into_owned());
    seen
}

fn redis_clients(redis: &RedisServer) -> Clients {
    Clients { runner: redis.raw(), others: vec![redis.raw(), redis.raw()] }
}

/// The runner on core `core` over TLS, the others one per core, plain and TLS.
fn ferrokey_clients(server: &Server, core: usize) -> Clients {
    Clients {
        runner: server.raw_on_core(Mode::Tls, core),
        others: vec![server.raw_on_core(Mode::Plain, core), server.raw_on_core(Mode::Tls, 1 - core)],
    }
}

#[test]
fn a_busy_script_or_function_answers_busy_to_everyone_until_killed() {
    let key = key_on("busy", 1, 2);
    let script = |mode: &'static str| vec!["EVAL", BODY, "1", key.as_str(), "r", mode];
    let fcall = ["FCALL", "spin", "1", key.as_str()];
    let redis = RedisServer::with(&["--busy-reply-threshold", "100"]);
    let mut r = redis_clients(&redis);
    assert_eq!(ask(&mut r.runner, &["FUNCTION", "LOAD", LIBRARY]), "$7\r\nbusylib\r\n");
    let expected_eval = killable(&mut r, &script("loop"), false);
    let expected_function = killable(&mut r, &fcall, true);
    let in_pcall = ["EVAL", IN_PCALL, "1", key.as_str()];
    let expected_in_pcall = killable(&mut r, &in_pcall, false);
    assert!(expected_eval[0].starts_with("-BUSY"), "{expected_eval:?}");

    let server = Server::with(Opts::default().arg("busy-reply-threshold", "100"));
    let mut f = ferrokey_clients(&server, 0);
    assert_eq!(ask(&mut f.runner, &["FUNCTION", "LOAD", LIBRARY]), "$7\r\nbusylib\r\n");
    // First run: holding every shard, on the runner's core (0); the key is on shard 1.
    assert_eq!(killable(&mut f, &script("loop"), false), expected_eval, "first run");
    // A run that ends shows the script keeps to its key: later runs are on shard 1's core,
    // paused there while busy; the runner is on either core.
    assert_eq!(ask(&mut f.runner, &script("once")), ":0\r\n");
    assert_eq!(killable(&mut f, &in_pcall, false), expected_in_pcall, "killed in pcall, first run");
    for core in [0, 1] {
        let mut f = ferrokey_clients(&server, core);
        assert_eq!(
            killable(&mut f, &in_pcall, false),
            expected_in_pcall,
            "killed in pcall, runner on {core}"
        );
        assert_eq!(
            killable(&mut f, &script("loop"), false),
            expected_eval,
            "on the key's shard, runner on {core}"
        );
        assert_eq!(killable(&mut f, &fcall, true), expected_function, "function, runner on {core}");
    }
    // FUNCTION STATS names the busy function and its request.
    let mut f = ferrokey_clients(&server, 1);
    send(&mut f.runner, &fcall);
    until_busy(&mut f.others[0]);
    let stats = ask(&mut f.others[1], &["FUNCTION", "STATS"]);
    assert!(stats.contains("spin") && stats.contains("FCALL") && stats.contains("duration_ms"), "{stats}");
    assert_eq!(ask(&mut f.others[1], &["FUNCTION", "KILL"]), "+OK\r\n");
    let killed =
        expected_function.iter().find(|r| r.contains("Script killed")).expect("redis-server's kill reply");
    assert_eq!(&String::from_utf8_lossy(&f.runner.reply()), killed);
    // Nothing was left held: both shards serve.
    assert_eq!(ask(&mut f.others[0], &["SET", &key, "after"]), "+OK\r\n");
    assert_eq!(ask(&mut f.others[1], &["GET", &key_on("other", 0, 2)]), "$-1\r\n");
}

/// Reads two keys (on two shards in ferrokey), then loops forever when ARGV[1] is `loop`.
const ACROSS: &str =
    "redis.call('GET', KEYS[1]) redis.call('GET', KEYS[2]) if ARGV[1] == 'loop' then while true do end end return 1";

/// Two scripts in one write, the second one looping: the replies the others and the runner
/// see, in order, until SCRIPT KILL ends it.
fn pipelined_then_killed(c: &mut Clients, keys: [&str; 2]) -> Vec<String> {
    let once = resp(&[b"EVAL", ACROSS.as_bytes(), b"2", keys[0].as_bytes(), keys[1].as_bytes(), b"once"]);
    let looping = resp(&[b"EVAL", ACROSS.as_bytes(), b"2", keys[0].as_bytes(), keys[1].as_bytes(), b"loop"]);
    c.runner.send(&[once, looping].concat());
    let [a, b] = &mut c.others[..] else { panic!("two other clients") };
    let mut seen = vec![until_busy(a)];
    seen.push(ask(b, &["GET", keys[1]]));
    seen.push(ask(b, &["SCRIPT", "KILL"]));
    // The first script's reply is read only now: it leaves with the second's, as in Redis
    // (the caller of a busy script gets nothing while it runs).
    seen.push(String::from_utf8_lossy(&c.runner.reply()).into_owned());
    seen.push(String::from_utf8_lossy(&c.runner.reply()).into_owned());
    seen.push(ask(a, &["SET", keys[0], "after"]));
    seen.push(ask(b, &["GET", keys[1]]));
    seen
}

/// A script across shards right behind another in its pipeline runs with the gates the first
/// kept for it, at once between the requests of its read: busy there, it answers BUSY to
/// everyone and SCRIPT KILL ends it, as any run; both shards serve after.
#[test]
fn a_busy_script_right_behind_another_across_shards_is_killed_as_any() {
    let keys = [key_on("pipe", 0, 2), key_on("pipe", 1, 2)];
    let keys = [keys[0].as_str(), keys[1].as_str()];
    let redis = RedisServer::with(&["--busy-reply-threshold", "100"]);
    let expected = pipelined_then_killed(&mut redis_clients(&redis), keys);
    assert!(expected[0].starts_with("-BUSY") && expected[2] == "+OK\r\n", "{expected:?}");
    let server = Server::with(Opts::default().arg("busy-reply-threshold", "100"));
    for core in [0, 1] {
        let seen = pipelined_then_killed(&mut ferrokey_clients(&server, core), keys);
        assert_eq!(seen, expected, "runner on core {core}");
    }
}

#[test]
fn a_busy_script_that_wrote_is_unkillable_and_only_shutdown_nosave_ends_it() {
    let key = key_on("busyw", 0, 2);
    let script = |mode: &'static str| vec!["EVAL", BODY, "1", key.as_str(), "w", mode];
    let mut redis = RedisServer::with(&["--busy-reply-threshold", "100"]);
    let expected = unkillable(&mut redis_clients(&redis), &script("loop"));
    assert!(redis.wait_exit().is_some(), "redis-server did not exit");
    assert!(expected[1].starts_with("-UNKILLABLE"), "{expected:?}");

    for warm in [false, true] {
        let mut server = Server::with(Opts::default().arg("busy-reply-threshold", "100"));
        let mut f = ferrokey_clients(&server, 1);
        if warm {
            // Later runs are on the key's shard (0), the runner on core 1.
            assert_eq!(ask(&mut f.runner, &script("once")), ":0\r\n");
        }
        assert_eq!(unkillable(&mut f, &script("loop")), expected, "warm {warm}");
        assert!(server.wait_exit().is_some(), "ferrokey did not exit (warm {warm})");
    }
}

/// A script stuck in a C function's callback (table.sort's comparator) or in a coroutine of its
/// own cannot pause: its core waits, but the other cores answer BUSY and SCRIPT KILL ends it as
/// Redis's does.
#[test]
fn a_script_stuck_in_a_callback_is_killed_from_another_core() {
    for body in [IN_SORT, IN_COROUTINE] {
        stuck_script_is_killed_from_another_core(body);
    }
}

fn stuck_script_is_killed_from_another_core(body: &str) {
    let key = key_on("sort", 0, 2);
    let script = ["EVAL", body, "1", key.as_str()];
    let redis = RedisServer::with(&["--busy-reply-threshold", "100"]);
    let mut r = redis_clients(&redis);
    send(&mut r.runner, &script);
    until_busy(&mut r.others[0]);
    assert_eq!(ask(&mut r.others[1], &["SCRIPT", "KILL"]), "+OK\r\n");
    let expected = String::from_utf8_lossy(&r.runner.reply()).into_owned();
    assert!(expected.contains("Script killed"), "{expected}");

    let server = Server::with(Opts::default().arg("busy-reply-threshold", "100"));
    // The first run holds every shard from the runner's core (0); later ones run on shard 0.
    for _ in 0..2 {
        let mut runner = server.raw_on_core(Mode::Tls, 0);
        let mut other = server.raw_on_core(Mode::Plain, 1);
        send(&mut runner, &script);
        until_busy(&mut other);
        assert_eq!(ask(&mut other, &["SCRIPT", "KILL"]), "+OK\r\n");
        assert_eq!(String::from_utf8_lossy(&runner.reply()), expected);
        assert_eq!(ask(&mut runner, &["PING"]), "+PONG\r\n");
    }
}
