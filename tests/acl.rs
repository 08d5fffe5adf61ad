//! ACL users against the real thing: the same requests to ferrokey (plain TCP and TLS) and to
//! Debian's redis-server must get byte-identical replies (rules, descriptions, errors,
//! permission checks in pipelines, MULTI and pub/sub); and what only ferrokey can show: a change
//! made on one core applies on the other, and a deleted user's connections close.

mod common;

use common::{Mode, Opts, RedisServer, Server, MODES};

/// Requests as words; a `|` separates the arguments of one request.
fn requests(script: &str) -> Vec<Vec<Vec<u8>>> {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(' ').map(|w| w.replace('_', " ").into_bytes()).collect())
        .collect()
}

/// Runs `script` on a fresh connection to each server and compares every reply.
fn same_replies(ferrokey: &Server, redis: &RedisServer, script: &str) {
    for mode in MODES {
        let (mut ours, mut theirs) = (ferrokey.raw(mode), redis.raw());
        for request in requests(script) {
            let args: Vec<&[u8]> = request.iter().map(Vec::as_slice).collect();
            let (a, b) = (ours.request(&args), theirs.request(&args));
            assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "{mode:?}: {}",
                String::from_utf8_lossy(&request.join(&b' '))
            );
        }
    }
}

#[test]
fn acl_rules_descriptions_and_errors_match_redis_server() {
    let (ferrokey, redis) = (Server::start(), RedisServer::start());
    same_replies(
        &ferrokey,
        &redis,
        "
        ACL WHOAMI
        ACL LIST
        ACL SETUSER alice on >pw ~cached:* %R~shared:* +get +@hash
        ACL SETUSER bob reset
        ACL SETUSER carol on nopass &news.* +@pubsub -psubscribe
        ACL SETUSER dave +@all -@dangerous allkeys (~x* +set) (%R~y* +@read)
        ACL SETUSER erin on #2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae +select|0
        ACL LIST
        ACL USERS
        ACL GETUSER alice
        ACL GETUSER dave
        ACL GETUSER erin
        ACL GETUSER nobody
        ACL SETUSER alice <pw >pw2
        ACL GETUSER alice
        ACL SETUSER x allkeys ~foo
        ACL SETUSER x allchannels &foo
        ACL SETUSER x +nosuchcommand
        ACL SETUSER x +@nosuchcategory
        ACL SETUSER x +config|asdf
        ACL SETUSER x +config|get|foo
        ACL SETUSER x -select|0
        ACL SETUSER x #abc
        ACL SETUSER x <nope
        ACL SETUSER x foo
        ACL SETUSER x (~a +get
        ACL SETUSER x_y on
        ACL USERS
        ACL DELUSER default
        ACL DELUSER x nobody
        ACL CAT
        ACL CAT nosuch
        ACL CAT a b
        ACL GENPASS 0
        ACL GENPASS 5000
        ACL GENPASS x
        ACL DRYRUN alice get cached:1
        ACL DRYRUN alice hget shared:1 f
        ACL DRYRUN alice hset shared:1 f v
        ACL DRYRUN alice set cached:1 v
        ACL DRYRUN alice get other
        ACL DRYRUN dave set x1 v
        ACL DRYRUN dave get y1
        ACL DRYRUN dave flushall
        ACL DRYRUN carol publish sport hi
        ACL DRYRUN carol subscribe news.a sport
        ACL DRYRUN nobody get x
        ACL DRYRUN alice nosuchcommand
        ACL DRYRUN alice get
        ",
    );
}

#[test]
fn users_are_enforced_on_every_path_as_redis_server_does() {
    let (ferrokey, redis) = (Server::start(), RedisServer::start());
    same_replies(
        &ferrokey,
        &redis,
        "
        ACL SETUSER alice on >pw ~cached:* %R~shared:* +get +@hash +multi +exec +discard +acl|whoami
        ACL SETUSER carol on nopass &news.* +@pubsub -psubscribe
        AUTH alice wrong
        AUTH nobody pw
        ACL WHOAMI
        AUTH alice pw
        ACL WHOAMI
        GET cached:1
        HSET shared:1 f v
        HSET cached:1 f v
        HGET shared:1 f
        SET cached:1 v
        GET other
        MGET cached:1 cached:2
        MULTI
        GET cached:1
        SET cached:1 v
        EXEC
        AUTH carol anything
        PUBLISH news.a hi
        PUBLISH sport hi
        SUBSCRIBE news.a sport
        PSUBSCRIBE news.*
        AUTH default x
        RESET
        ACL WHOAMI
        ",
    );
}

#[test]
fn requirepass_is_the_default_users_password_and_changes_reach_every_core() {
    let server = Server::with(Opts::default().arg("threads", "2"));
    for mode in MODES {
        let mut admin = server.raw_on_core(mode, 0);
        let mut other = server.raw_on_core(mode, 1);
        assert_eq!(
            admin.request(&[b"ACL", b"SETUSER", b"alice", b"on", b">pw", b"~*", b"+@all"]),
            b"+OK\r\n"
        );
        assert_eq!(other.request(&[b"AUTH", b"alice", b"pw"]), b"+OK\r\n");
        assert_eq!(other.request(&[b"SET", b"k", b"v"]), b"+OK\r\n");
        // Taken away on core 0, refused on core 1 at its next command.
        assert_eq!(admin.request(&[b"ACL", b"SETUSER", b"alice", b"-set"]), b"+OK\r\n");
        assert_eq!(
            other.request(&[b"SET", b"k", b"v"]),
            b"-NOPERM this user has no permissions to run the 'set' command\r\n"
        );
        let id = other.client_id();
        let list = String::from_utf8_lossy(&admin.request(&[b"CLIENT", b"LIST"])).into_owned();
        assert!(list.contains(&format!("id={id} ")) && list.contains("user=alice"), "{list}");
        // Deleted on core 0: its connection on core 1 closes.
        assert_eq!(
            admin.request(&[b"CLIENT", b"KILL", b"USER", b"nobody"]),
            b"-ERR No such user 'nobody'\r\n"
        );
        assert_eq!(admin.request(&[b"ACL", b"DELUSER", b"alice"]), b":1\r\n");
        other.send(&common::resp(&[b"PING"]));
        let mut rest = Vec::new();
        let _ = std::io::Read::read_to_end(&mut other.inner, &mut rest);
        assert!(!rest.starts_with(b"+PONG"), "a deleted user's connection must close");
        // requirepass is the default user's password, for new connections.
        assert_eq!(admin.request(&[b"CONFIG", b"SET", b"requirepass", b"s3cret"]), b"+OK\r\n");
        let mut late = server.raw(mode);
        assert_eq!(late.request(&[b"GET", b"k"]), b"-NOAUTH Authentication required.\r\n");
        assert_eq!(late.request(&[b"AUTH", b"s3cret"]), b"+OK\r\n");
        assert_eq!(late.request(&[b"ACL", b"WHOAMI"]), b"$7\r\ndefault\r\n");
        assert_eq!(admin.request(&[b"CONFIG", b"SET", b"requirepass", b""]), b"+OK\r\n");
        assert_eq!(
            server.raw(mode).request(&[b"AUTH", b"x"]),
            &b"-ERR AUTH <password> called without any password configured for the default user. Are you sure \
               your configuration is correct?\r\n"[..]
        );
    }
    let _ = Mode::Plain;
}

#[test]
fn denials_and_failed_logins_are_in_the_acl_log() {
    let server = Server::start();
    for mode in MODES {
        let mut admin = server.raw(mode);
        assert_eq!(admin.request(&[b"ACL", b"LOG", b"RESET"]), b"+OK\r\n");
        assert_eq!(
            admin.request(&[b"ACL", b"SETUSER", b"alice", b"on", b">pw", b"~k*", b"+get", b"+multi"]),
            b"+OK\r\n"
        );
        let mut alice = server.raw(mode);
        assert_eq!(
            alice.request(&[b"AUTH", b"alice", b"nope"]),
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(alice.request(&[b"AUTH", b"alice", b"pw"]), b"+OK\r\n");
        for _ in 0..3 {
            assert_eq!(
                alice.request(&[b"GET", b"other"]),
                &b"-NOPERM this user has no permissions to access one of the keys used as arguments\r\n"[..]
            );
        }
        assert_eq!(alice.request(&[b"MULTI"]), b"+OK\r\n");
        assert_eq!(
            alice.request(&[b"SET", b"k1", b"v"]),
            &b"-NOPERM this user has no permissions to run the 'set' command\r\n"[..]
        );
        let log = String::from_utf8_lossy(&admin.request(&[b"ACL", b"LOG"])).into_owned();
        let entries: Vec<&str> = log.split("$5\r\ncount\r\n").skip(1).collect();
        assert_eq!(entries.len(), 3, "{log}");
        let fields = |e: &str| -> Vec<String> {
            e.split("\r\n")
                .filter(|l| !l.starts_with('$') && !l.starts_with('*'))
                .map(str::to_owned)
                .collect()
        };
        let newest = fields(entries[0]);
        assert_eq!(
            &newest[..9],
            [":1", "reason", "command", "context", "multi", "object", "set", "username", "alice"],
            "{log}"
        );
        let keys = fields(entries[1]);
        assert_eq!(
            &keys[..9],
            [":3", "reason", "key", "context", "toplevel", "object", "other", "username", "alice"],
            "{log}"
        );
        let auth = fields(entries[2]);
        assert_eq!(
            &auth[..9],
            [":1", "reason", "auth", "context", "toplevel", "object", "AUTH", "username", "alice"],
            "{log}"
        );
        assert!(
            log.contains("age-seconds") && log.contains("client-info") && log.contains("user=alice"),
            "{log}"
        );
        assert!(admin.request(&[b"ACL", b"LOG", b"1"]).starts_with(b"*1\r\n*14\r\n"));
        assert_eq!(admin.request(&[b"ACL", b"LOG", b"RESET"]), b"+OK\r\n");
        assert_eq!(admin.request(&[b"ACL", b"LOG"]), b"*0\r\n");
        assert_eq!(admin.request(&[b"ACL", b"DELUSER", b"alice"]), b":1\r\n");
    }
}

/// One step of a two-connection script: which connection sends what.
fn both(ferrokey: &mut [common::Raw], redis: &mut [common::Raw], who: usize, request: &str) {
    let words: Vec<Vec<u8>> = request.split(' ').map(|w| w.as_bytes().to_vec()).collect();
    let args: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
    let (a, b) = (ferrokey[who].request(&args), redis[who].request(&args));
    assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b), "connection {who}: {request}");
}

#[test]
fn exec_checks_again_and_shrunk_channels_drop_subscribers_as_redis_server_does() {
    let (ferrokey, redis) = (Server::start(), RedisServer::start());
    for mode in MODES {
        // Connection 0 administers on core 0; the others run on core 1.
        let mut ours = vec![ferrokey.raw_on_core(mode, 0), ferrokey.raw_on_core(mode, 1)];
        let mut theirs = vec![redis.raw(), redis.raw()];
        let mut step = |who: usize, request: &str| both(&mut ours, &mut theirs, who, request);
        step(0, "ACL SETUSER alice on >pw ~* &* +@all");
        step(1, "AUTH alice pw");
        step(1, "MULTI");
        step(1, "GET k");
        step(1, "SET k v");
        step(1, "PUBLISH ch m");
        step(1, "PING");
        step(0, "ACL SETUSER alice -set resetchannels");
        // The SET and the PUBLISH are refused in their places; the others run.
        step(1, "EXEC");
        step(1, "SET k v");
        step(0, "ACL DELUSER alice");
    }
    let log =
        String::from_utf8_lossy(&ferrokey.raw(Mode::Plain).request(&[b"ACL", b"LOG", b"2"])).into_owned();
    assert!(log.contains("reason\r\n$7\r\nchannel\r\n$7\r\ncontext\r\n$5\r\nmulti\r\n"), "{log}");

    for mode in MODES {
        let mut ours =
            vec![ferrokey.raw_on_core(mode, 0), ferrokey.raw_on_core(mode, 1), ferrokey.raw_on_core(mode, 1)];
        let mut theirs = vec![redis.raw(), redis.raw(), redis.raw()];
        let mut step = |who: usize, request: &str| both(&mut ours, &mut theirs, who, request);
        step(0, "ACL SETUSER carol on nopass ~* &news.* +@all");
        step(1, "AUTH carol x");
        step(1, "SUBSCRIBE news.a");
        step(2, "AUTH carol x");
        step(2, "PSUBSCRIBE news.*");
        // More channels: nobody is dropped.
        step(0, "ACL SETUSER carol &sport");
        step(1, "PING");
        step(2, "PING");
        // The pattern news.* is gone: its subscriber is dropped; news.a is still allowed.
        step(0, "ACL SETUSER carol resetchannels &news.a");
        step(1, "PING");
        for pattern_subscriber in [&mut ours[2], &mut theirs[2]] {
            pattern_subscriber.send(&common::resp(&[b"PING"]));
            assert!(pattern_subscriber.read_to_close().is_empty(), "{mode:?}: dropped");
        }
        let mut step = |who: usize, request: &str| both(&mut ours[..2], &mut theirs[..2], who, request);
        step(0, "ACL DELUSER carol");
    }
}

#[test]
fn turning_a_user_off_closes_its_connections_on_every_core() {
    // Redis keeps the connections of a user turned off; ferrokey closes them, as it does for a
    // deleted user: "off" is how an operator locks a user out without losing its rules.
    let server = Server::start();
    for mode in MODES {
        let mut admin = server.raw_on_core(mode, 0);
        assert_eq!(admin.request(&[b"ACL", b"SETUSER", b"alice", b"on", b">pw", b"+@all"]), b"+OK\r\n");
        let mut alice = server.raw_on_core(mode, 1);
        assert_eq!(alice.request(&[b"AUTH", b"alice", b"pw"]), b"+OK\r\n");
        let mut bystander = server.raw_on_core(mode, 1);
        assert_eq!(admin.request(&[b"ACL", b"SETUSER", b"alice", b"off"]), b"+OK\r\n");
        alice.send(&common::resp(&[b"PING"]));
        assert!(alice.read_to_close().is_empty());
        assert_eq!(bystander.request(&[b"PING"]), b"+PONG\r\n");
        assert_eq!(
            server.raw(mode).request(&[b"AUTH", b"alice", b"pw"]),
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        );
        assert_eq!(admin.request(&[b"ACL", b"DELUSER", b"alice"]), b":1\r\n");
    }
}
