//! INFO and CLIENT LIST against Debian's redis-server: every section and field Redis 7.0 prints
//! (which clients and tools parse) is there, in Redis's order; command and error statistics
//! count a script's calls, rejections and failures as Redis counts them; CLIENT LIST's figures
//! are the client's real ones. Plain TCP and TLS.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Mode, Raw, RedisServer, Server, MODES};

/// INFO's text as sections of (field, value), in order.
fn sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.split("\r\n") {
        if let Some(title) = line.strip_prefix("# ") {
            out.push((title.to_owned(), Vec::new()));
        } else if let Some((k, v)) = line.split_once(':') {
            out.last_mut().expect("a field before any section").1.push((k.to_owned(), v.to_owned()));
        } else {
            assert!(line.is_empty(), "not a field: {line:?}");
        }
    }
    out
}

/// A bulk or verbatim reply's text.
fn text(reply: &[u8]) -> String {
    let s = String::from_utf8_lossy(reply).into_owned();
    let (header, body) = s.split_once("\r\n").expect("a bulk reply");
    assert!(header.starts_with('$'), "not a bulk reply: {s:?}");
    body.strip_suffix("\r\n").unwrap_or(body).to_owned()
}

fn info(c: &mut Raw, args: &[&str]) -> String {
    let mut req: Vec<&[u8]> = vec![b"INFO"];
    req.extend(args.iter().map(|a| a.as_bytes()));
    text(&c.request(&req))
}

/// Fields Redis prints only in states ferrokey (or this test's Redis) is not in.
const CONDITIONAL: &[&str] = &["shutdown_in_milliseconds"];

#[test]
fn info_has_every_section_and_field_of_redis_in_its_order() {
    let redis = RedisServer::start();
    let theirs = sections(&info(&mut redis.raw(), &["everything"]));
    let server = Server::start();
    for mode in MODES {
        let mut c = server.raw(mode);
        let ours = sections(&info(&mut c, &["everything"]));
        let our_titles: Vec<&str> = ours.iter().map(|(t, _)| t.as_str()).collect();
        let their_titles: Vec<&str> = theirs.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            our_titles[..their_titles.len()],
            their_titles[..],
            "Redis's sections first, in its order"
        );
        for ((title, their_fields), (_, our_fields)) in theirs.iter().zip(&ours) {
            // Redis's fields, in Redis's order; ferrokey's own may follow.
            let names = |f: &[(String, String)]| {
                f.iter()
                    .map(|(k, _)| k.clone())
                    .filter(|k| !CONDITIONAL.contains(&k.as_str()))
                    .collect::<Vec<_>>()
            };
            let (ours, theirs) = (names(our_fields), names(their_fields));
            if ["Commandstats", "Errorstats", "Latencystats", "Keyspace"].contains(&title.as_str()) {
                continue; // Their lines depend on what ran; compared below.
            }
            assert_eq!(ours[..theirs.len().min(ours.len())], theirs[..], "{title}: fields and order");
        }
        // The default set, several sections in fixed order, an unknown one.
        let default = |text: &str| sections(text).into_iter().map(|(t, _)| t).collect::<Vec<_>>();
        let their_default = default(&info(&mut redis.raw(), &[]));
        assert_eq!(default(&info(&mut c, &[]))[..their_default.len()], their_default[..]);
        assert_eq!(default(&info(&mut c, &["KEYSPACE", "server", "cpu"])), ["Server", "CPU", "Keyspace"]);
        assert_eq!(default(&info(&mut c, &["default", "commandstats"])).len(), our_titles.len() - 1);
        assert_eq!(info(&mut c, &["nosuchsection"]), "");
        // Values clients read: redis-py's test suite reads cluster_enabled first.
        let all = info(&mut c, &[]);
        for field in ["cluster_enabled:0", "redis_git_sha1:00000000", "master_repl_offset:0", "role:master"] {
            assert!(all.contains(&format!("{field}\r\n")), "{field} in\n{all}");
        }
    }
}

/// The script whose statistics both servers must count alike: calls, failures (an error reply
/// from a call), rejections (refused before running), errors by prefix. Keys spread over shards.
const SCRIPT: &[&[&str]] = &[
    &["SET", "k", "v"],
    &["GET", "k"],
    &["GET", "missing"],
    &["LPUSH", "k", "x"],
    &["GET"],
    &["NOSUCHCOMMAND", "a"],
    &["INCR", "k"],
    &["MSET", "a", "1", "b", "2", "c", "3"],
    &["MGET", "a", "b", "c"],
    &["DEL", "a", "b", "c"],
    &["MULTI"],
    &["SET", "a", "1"],
    &["LPUSH", "k", "1"],
    &["INCR", "a"],
    &["EXEC"],
    &["MULTI"],
    &["SET", "a"],
    &["EXEC"],
    &["MULTI"],
    &["MULTI"],
    &["DISCARD"],
    &["EXEC"],
    &["DISCARD"],
    &["SELECT", "99"],
    &["EXPIRE", "k", "soon"],
    &["CONFIG", "SET", "nosuchdirective", "1"],
    &["CONFIG", "GET", "port"],
    &["BLPOP", "nothing", "0.01"],
    &["SUBSCRIBE", "ch"],
    &["GET", "k"],
    &["PING"],
    &["UNSUBSCRIBE", "ch"],
    &["HSET", "h", "f", "v"],
    &["HGET", "h"],
    &["ZADD", "z", "x", "m"],
    &["OBJECT", "ENCODING", "nosuchkey"],
];

/// (calls, rejected_calls, failed_calls) by command, errors by prefix, total error replies,
/// total commands, after `SCRIPT` (and a blocked BLPOP another client serves) on fresh stats.
type Counts = (BTreeMap<String, (u64, u64, u64)>, BTreeMap<String, u64>, u64, u64);

fn run_script(mut c: Raw, mut other: Raw, mut admin: Raw) -> Counts {
    c.request(&[b"FLUSHALL"]);
    c.request(&[b"CONFIG", b"RESETSTAT"]);
    for req in SCRIPT {
        let args: Vec<&[u8]> = req.iter().map(|a| a.as_bytes()).collect();
        let reply = c.request(&args);
        if req[0] == "SUBSCRIBE" || req[0] == "UNSUBSCRIBE" {
            continue; // one reply per channel: one channel here
        }
        assert!(!reply.is_empty());
    }
    // A client blocked until another one pushes: one call, its wait not counted as failing.
    other.send(&common::resp(&[b"BLPOP", b"queue", b"0"]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !info(&mut admin, &["clients"]).contains("blocked_clients:1\r\n") {
        assert!(Instant::now() < deadline, "BLPOP never blocked");
        std::thread::sleep(Duration::from_millis(5));
    }
    c.request(&[b"RPUSH", b"queue", b"job"]);
    assert!(String::from_utf8_lossy(&common::read_reply(&mut other.inner)).contains("job"));
    let all = sections(&info(&mut admin, &["commandstats", "errorstats", "stats"]));
    let field = |section: &str, name: &str| -> String {
        let fields = &all.iter().find(|(t, _)| t == section).expect(section).1;
        fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default()
    };
    let mut commands = BTreeMap::new();
    let mut calls_sum = 0;
    for (name, value) in &all.iter().find(|(t, _)| t == "Commandstats").unwrap().1 {
        let name = name.strip_prefix("cmdstat_").unwrap().to_owned();
        let get = |key: &str| -> u64 {
            value.split(',').find_map(|kv| kv.strip_prefix(&format!("{key}="))).unwrap().parse().unwrap()
        };
        calls_sum += get("calls");
        // The admin's polling differs from run to run.
        if name != "info" {
            commands.insert(name, (get("calls"), get("rejected_calls"), get("failed_calls")));
        }
    }
    let errors = all
        .iter()
        .find(|(t, _)| t == "Errorstats")
        .unwrap()
        .1
        .iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("errorstat_").unwrap().to_owned(),
                v.strip_prefix("count=").unwrap().parse().unwrap(),
            )
        })
        .collect();
    let total: u64 = field("Stats", "total_commands_processed").parse().unwrap();
    assert_eq!(total, calls_sum, "total_commands_processed is every command's calls");
    (commands, errors, field("Stats", "total_error_replies").parse().unwrap(), total)
}

#[test]
fn command_and_error_statistics_count_as_redis_counts() {
    let redis = RedisServer::start();
    let (theirs, their_errors, their_total_errors, _) = run_script(redis.raw(), redis.raw(), redis.raw());
    let server = Server::start();
    for mode in MODES {
        let (ours, our_errors, our_total_errors, _) =
            run_script(server.raw(mode), server.raw(mode), server.raw(Mode::Plain));
        assert_eq!(ours, theirs, "{mode:?}: (calls, rejected, failed) by command");
        assert_eq!(our_errors, their_errors, "{mode:?}: errors by prefix");
        assert_eq!(our_total_errors, their_total_errors, "{mode:?}: total_error_replies");
    }
}

#[test]
fn latency_statistics_follow_their_settings() {
    let server = Server::start();
    let mut c = server.raw(Mode::Plain);
    c.request(&[b"SET", b"k", b"v"]);
    let stats = info(&mut c, &["latencystats"]);
    let line = stats.lines().find(|l| l.starts_with("latency_percentiles_usec_set:")).expect(&stats);
    let values: Vec<f64> = line
        .split_once(':')
        .unwrap()
        .1
        .split(',')
        .map(|kv| kv.split_once('=').unwrap().1.parse().unwrap())
        .collect();
    assert_eq!(values.len(), 3, "p50, p99, p99.9 by default: {line}");
    assert!(values.iter().all(|v| *v > 0.0 && *v < 1_000_000.0), "{line}");
    c.request(&[b"CONFIG", b"SET", b"latency-tracking-info-percentiles", b"50 99.99"]);
    let stats = info(&mut c, &["latencystats"]);
    assert!(stats.contains("latency_percentiles_usec_set:p50="), "{stats}");
    assert!(stats.contains(",p99.99="), "{stats}");
    let reply = c.request(&[b"CONFIG", b"SET", b"latency-tracking-info-percentiles", b"101"]);
    assert!(String::from_utf8_lossy(&reply).starts_with("-ERR"), "{}", String::from_utf8_lossy(&reply));
    c.request(&[b"CONFIG", b"SET", b"latency-tracking", b"no"]);
    assert_eq!(info(&mut c, &["latencystats"]), "# Latencystats\r\n");
}

/// One CLIENT LIST line as (field, value) pairs.
fn fields(line: &str) -> Vec<(String, String)> {
    line.split(' ')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn client_line(admin: &mut Raw, id: i64) -> BTreeMap<String, String> {
    let list = text(&admin.request(&[b"CLIENT", b"LIST", b"ID", id.to_string().as_bytes()]));
    fields(list.lines().next().unwrap_or_else(|| panic!("client {id} is not listed"))).into_iter().collect()
}

#[test]
fn client_list_fields_are_redis_fields_with_real_figures() {
    let redis = RedisServer::start();
    let their_names: Vec<String> =
        fields(&text(&redis.raw().request(&[b"CLIENT", b"INFO"]))).into_iter().map(|(k, _)| k).collect();
    let server = Server::start();
    // A client that then stays quiet: its `idle=` grows from its last command.
    let mut quiet = server.raw(Mode::Plain);
    let quiet_id = quiet.client_id();
    quiet.request(&[b"PING"]);
    let quiet_since = Instant::now();
    for mode in MODES {
        let mut admin = server.raw(Mode::Plain);
        let mine = text(&admin.request(&[b"CLIENT", b"INFO"]));
        let names: Vec<String> = fields(&mine).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names[..their_names.len()], their_names[..], "Redis 7.0's fields, in its order");

        // A client in MULTI with two queued commands.
        let mut multi = server.raw(mode);
        let id = multi.client_id();
        multi.request(&[b"MULTI"]);
        multi.request(&[b"SET", b"key", b"value"]);
        multi.request(&[b"GET", b"key"]);
        let line = client_line(&mut admin, id);
        assert_eq!(line["flags"], "x");
        assert_eq!(line["multi"], "2");
        // Redis's count: the arguments' bytes plus a pointer for each.
        assert_eq!(line["multi-mem"], (3 + 3 + 5 + 3 * 8 + 3 + 3 + 2 * 8).to_string());
        assert_eq!(line["cmd"], "get");
        assert_eq!(line["idle"], "0", "it just ran a command: {line:?}");
        assert!(line["fd"].parse::<i32>().unwrap() > 2, "{line:?}");
        assert!(line["tot-mem"].parse::<u64>().unwrap() > 0);

        // A blocked client: its command's arguments are held.
        let mut blocked = server.raw(mode);
        let id = blocked.client_id();
        blocked.send(&common::resp(&[b"BLPOP", b"emptylist", b"0"]));
        let deadline = Instant::now() + Duration::from_secs(10);
        while client_line(&mut admin, id)["flags"] != "b" {
            assert!(Instant::now() < deadline, "never blocked");
            std::thread::sleep(Duration::from_millis(5));
        }
        let line = client_line(&mut admin, id);
        assert_eq!(line["argv-mem"], "15", "BLPOP emptylist 0");
        assert_eq!(line["cmd"], "blpop");

        // A partial request waits in the query buffer.
        let mut partial = server.raw(mode);
        let id = partial.client_id();
        let head = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nval";
        partial.send(head);
        let deadline = Instant::now() + Duration::from_secs(10);
        while client_line(&mut admin, id)["qbuf"] != head.len().to_string() {
            assert!(
                Instant::now() < deadline,
                "the partial request never showed: {:?}",
                client_line(&mut admin, id)
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let line = client_line(&mut admin, id);
        let capacity = line["qbuf"].parse::<u64>().unwrap() + line["qbuf-free"].parse::<u64>().unwrap();
        assert!(line["tot-mem"].parse::<u64>().unwrap() >= capacity, "{line:?}");

        // A subscriber.
        let mut sub = server.raw(mode);
        let id = sub.client_id();
        sub.request(&[b"SUBSCRIBE", b"a"]);
        sub.request(&[b"SUBSCRIBE", b"b"]);
        let line = client_line(&mut admin, id);
        assert_eq!((line["flags"].as_str(), line["sub"].as_str()), ("P", "2"));
    }
    // Whole seconds, as Redis counts them: let at least one pass since the quiet client's PING.
    std::thread::sleep(Duration::from_millis(1100).saturating_sub(quiet_since.elapsed()));
    let mut admin = server.raw(Mode::Plain);
    let line = client_line(&mut admin, quiet_id);
    let (idle, age) = (line["idle"].parse::<u64>().unwrap(), line["age"].parse::<u64>().unwrap());
    let waited = quiet_since.elapsed().as_secs();
    assert!((1..=waited + 1).contains(&idle) && idle <= age, "waited {waited} s: {line:?}");
}

/// DEBUG OBJECT against redis-server, field for field but the address and the clock: refcount,
/// encoding, the dump length, and a list's quicklist nodes. DEBUG SLEEP stops
/// the server for its time (inside EXEC too), DEBUG SET-ACTIVE-EXPIRE 0 leaves expired keys to
/// lookups, and Redis's subcommands ferrokey lacks are refused by name.
#[test]
fn debug_object_sleep_and_set_active_expire_as_redis() {
    let server = Server::with(common::Opts::default().arg("enable-debug-command", "local"));
    let redis = RedisServer::with(&["--enable-debug-command", "local"]);
    let mut ours = server.raw(Mode::Tls);
    let mut theirs = redis.raw();
    let long: Vec<String> = (0..3000).map(|i| format!("element-{i}")).collect();
    let mut setup: Vec<Vec<String>> = vec![
        vec!["SET".into(), "int".into(), "123".into()],
        vec!["SET".into(), "emb".into(), "hello".into()],
        vec!["SET".into(), "app".into(), "hello".into()],
        vec!["APPEND".into(), "app".into(), "x".into()],
        vec!["RPUSH".into(), "list".into(), "a".into(), "b".into(), "c".into()],
        vec!["HSET".into(), "h".into(), "f".into(), "v".into()],
        vec!["SADD".into(), "s".into(), "1".into(), "2".into(), "3".into()],
        vec!["ZADD".into(), "z".into(), "1".into(), "a".into()],
    ];
    setup.push([vec!["RPUSH".to_string(), "long".to_string()], long].concat());
    for req in &setup {
        let args: Vec<&[u8]> = req.iter().map(|a| a.as_bytes()).collect();
        assert_eq!(ours.request(&args), theirs.request(&args), "{:?}", &req[..2]);
    }
    // The address and the access clock are the server's own.
    let masked = |reply: Vec<u8>| -> String {
        let text = String::from_utf8_lossy(&reply).into_owned();
        text.split(' ')
            .map(|field| match field.split_once(':') {
                Some(("at" | "lru" | "lru_seconds_idle", _)) => "_",
                _ => field,
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    // (A value LZF compresses is left out: ferrokey's compressor finds other matches than
    // Redis's, so the lengths differ though both load either.)
    for key in ["int", "emb", "app", "list", "h", "s", "z", "long", "missing"] {
        let args: &[&[u8]] = &[b"DEBUG", b"OBJECT", key.as_bytes()];
        let (mine, redis) = (masked(ours.request(args)), masked(theirs.request(args)));
        if key == "long" {
            // Its nodes are compressed: compare all but the length.
            let drop_len = |t: &str| {
                t.split(' ').filter(|f| !f.starts_with("serializedlength")).collect::<Vec<_>>().join(" ")
            };
            assert_eq!(drop_len(&mine), drop_len(&redis), "DEBUG OBJECT {key}");
        } else {
            assert_eq!(mine, redis, "DEBUG OBJECT {key}");
        }
    }
    for args in [&[&b"DEBUG"[..], b"SLEEP", b"0"][..], &[b"DEBUG", b"SLEEP", b"abc"], &[b"DEBUG", b"OBJECT"]]
    {
        assert_eq!(ours.request(args), theirs.request(args), "{args:?}");
    }
    let started = Instant::now();
    assert_eq!(ours.request(&[b"DEBUG", b"SLEEP", b"0.2"]), b"+OK\r\n");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Inside EXEC the transaction holds every shard for it.
    let exec = [&[&b"MULTI"[..]][..], &[b"DEBUG", b"SLEEP", b"0.01"], &[b"GET", b"int"], &[b"EXEC"]];
    let replies: Vec<Vec<u8>> = exec.iter().map(|a| ours.request(a)).collect();
    assert_eq!(replies[3], b"*2\r\n+OK\r\n$3\r\n123\r\n");
    let refused = ours.request(&[b"DEBUG", b"JMAP"]);
    assert_eq!(refused, b"-ERR DEBUG JMAP is not supported by ferrokey\r\n");
    let help = String::from_utf8_lossy(&ours.request(&[b"DEBUG", b"HELP"])).into_owned();
    assert!(help.contains("DEBUG <subcommand>") && help.contains("SET-ACTIVE-EXPIRE"), "{help}");

    // Without active expiry, keys that expired stay until a lookup meets them.
    let mut c = server.conn(Mode::Plain);
    let expired = |c: &mut redis::Connection| -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(c).unwrap();
        let line = info.lines().find(|l| l.starts_with("expired_keys:")).unwrap();
        line["expired_keys:".len()..].trim().parse().unwrap()
    };
    let () = redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(0).query(&mut c).unwrap();
    let before = expired(&mut c);
    let (a, b) = (common::key_on("ax", 0, 2), common::key_on("ax", 1, 2));
    for k in [&a, &b] {
        let () = redis::cmd("SET").arg(k).arg("v").arg("PX").arg(1).query(&mut c).unwrap();
    }
    // Several cron cycles (hz 10) pass without one of them expiring anything.
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(expired(&mut c), before);
    let () = redis::cmd("DEBUG").arg("SET-ACTIVE-EXPIRE").arg(1).query(&mut c).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while expired(&mut c) < before + 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(expired(&mut c), before + 2);
}
