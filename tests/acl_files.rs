//! Users kept in files, against the real thing: ferrokey and Debian's redis-server loaded with
//! the same ACL file (`aclfile`) or the same `user` directives must list the same users and
//! answer a matrix of users × commands × keys byte for byte; ACL LOAD's errors, ACL SAVE's file
//! and CONFIG REWRITE's user lines match too. And what ferrokey adds: ACL LOAD closes, on every
//! core, the connections of users it removed or changed, and leaves the others.

mod common;

use std::path::PathBuf;

use common::{resp, Mode, Opts, Raw, RedisServer, Server, MODES};

/// The users both servers load: every kind of rule.
const USERS: &str = "\
user default on nopass ~* &* +@all
user reader on >rpw %R~data:* +@read -keys +acl|whoami
user writer on #eaa2897900a40c0860930f19e38e30f66b06ebb38e86e29083d84c3be8a5cd31 ~data:* ~tmp:* +set +del +get +incr -@admin +acl|whoami
user limited on nopass resetchannels &news.* ~* +get +publish +subscribe +acl|whoami
user selectors on >spw ~a:* +get +acl|whoami (~b:* +set) (%W~c:* +@write)
user firstarg on >fpw allkeys -@all +config|get +select|0 +acl|whoami
user sleeper off >zpw allkeys +@all
";

/// A scratch directory of this test process.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ferrokey-aclfiles-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One request's words; `_` stands for a space inside one.
fn words(line: &str) -> Vec<Vec<u8>> {
    line.split(' ').map(|w| w.replace('_', " ").into_bytes()).collect()
}

/// Users as `ACL LIST` or an ACL file shows them, each rule list sorted: Redis emits single
/// commands in its command table's hash order, which changes from run to run.
fn normalized(users: &str) -> Vec<String> {
    users
        .split(['\r', '\n'])
        .filter(|l| l.starts_with("user "))
        .map(|l| {
            l.split(" (")
                .map(|part| {
                    let mut rules: Vec<&str> = part.split(' ').collect();
                    rules.sort_unstable();
                    rules.join(" ")
                })
                .collect::<Vec<_>>()
                .join(" (")
        })
        .collect()
}

fn ask(raw: &mut Raw, line: &str) -> String {
    let w = words(line);
    let args: Vec<&[u8]> = w.iter().map(Vec::as_slice).collect();
    String::from_utf8_lossy(&raw.request(&args)).into_owned()
}

/// Every user, logged in, runs every command on every key: the same replies from both.
fn same_matrix(ferrokey: &Server, redis: &RedisServer) {
    let logins = [
        ("reader", "rpw"),
        ("writer", "wpw"),
        ("limited", "x"),
        ("selectors", "spw"),
        ("firstarg", "fpw"),
        ("sleeper", "zpw"),
        ("nobody", "x"),
    ];
    let keys = ["data:1", "tmp:1", "a:1", "b:1", "c:1", "other"];
    let mut commands = vec![
        "ACL WHOAMI".to_owned(),
        "CONFIG GET maxmemory".into(),
        "CONFIG SET maxmemory 0".into(),
        "SELECT 0".into(),
        "SELECT 1".into(),
        "PUBLISH news.a hi".into(),
        "PUBLISH sport hi".into(),
        "FLUSHALL".into(),
    ];
    for key in keys {
        commands.extend([
            format!("GET {key}"),
            format!("SET {key} v"),
            format!("INCR {key}"),
            format!("LPUSH {key} v"),
            format!("DEL {key}"),
            format!("MGET {key} data:2"),
            format!("COPY {key} c:9"),
        ]);
    }
    for mode in MODES {
        for (user, password) in logins {
            let (mut ours, mut theirs) = (ferrokey.raw(mode), redis.raw());
            for line in std::iter::once(format!("AUTH {user} {password}")).chain(commands.iter().cloned()) {
                let (a, b) = (ask(&mut ours, &line), ask(&mut theirs, &line));
                assert_eq!(a, b, "{mode:?}, user {user}: {line}");
            }
        }
    }
}

#[test]
fn an_acl_file_loads_lists_saves_and_reloads_as_redis_server_does() {
    let dir = scratch("aclfile");
    let file = dir.join("users.acl");
    std::fs::write(&file, USERS).unwrap();
    let path = file.display().to_string();
    let ferrokey = Server::with(Opts::default().arg("aclfile", &path));
    let redis = RedisServer::with(&["--aclfile", &path]);
    let (mut ours, mut theirs) = (ferrokey.raw(Mode::Plain), redis.raw());
    assert_eq!(normalized(&ask(&mut ours, "ACL LIST")), normalized(&ask(&mut theirs, "ACL LIST")));
    assert_eq!(normalized(&ask(&mut ours, "ACL LIST")).len(), 7);
    assert_eq!(ask(&mut ours, "ACL USERS"), ask(&mut theirs, "ACL USERS"));
    same_matrix(&ferrokey, &redis);

    // ACL SAVE writes the same file from each.
    assert_eq!(ask(&mut theirs, "ACL SAVE"), "+OK\r\n");
    let saved_by_redis = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, "").unwrap();
    assert_eq!(ask(&mut ours, "ACL SAVE"), "+OK\r\n");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert_eq!(normalized(&saved), normalized(&saved_by_redis));
    assert_eq!(saved.lines().count(), 7);
    let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left: {leftovers:?}");

    // A broken file: both report every problem the same way and keep their users.
    std::fs::write(
        &file,
        "user alice on +nosuch\nuser bob on ~x allkeys ~y\nuser alice off\nfoo bar\nuser carol #abc\n",
    )
    .unwrap();
    let (a, b) = (ask(&mut ours, "ACL LOAD"), ask(&mut theirs, "ACL LOAD"));
    assert_eq!(a, b);
    assert!(a.starts_with("-ERR ") && a.contains("no change to the previously active ACL rules"), "{a}");
    assert_eq!(normalized(&ask(&mut ours, "ACL LIST")), normalized(&ask(&mut theirs, "ACL LIST")));
    std::fs::remove_file(&file).unwrap();
    assert_eq!(ask(&mut ours, "ACL LOAD"), ask(&mut theirs, "ACL LOAD"));

    // A good one replaces every user at once.
    std::fs::write(&file, "user newbie on >n ~n:* +get\n").unwrap();
    assert_eq!(ask(&mut ours, "ACL LOAD"), "+OK\r\n");
    assert_eq!(ask(&mut theirs, "ACL LOAD"), "+OK\r\n");
    assert_eq!(normalized(&ask(&mut ours, "ACL LIST")), normalized(&ask(&mut theirs, "ACL LIST")));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn user_directives_in_the_config_file_match_redis_server() {
    let dir = scratch("directives");
    let conf = dir.join("users.conf");
    // Selectors written across words, as redis.conf users write them.
    std::fs::write(&conf, USERS.replace("(~b:* +set)", "(~b:*  +set)")).unwrap();
    let ferrokey = Server::with(Opts { config_file: Some(conf.clone()), ..Opts::default() });
    let redis = RedisServer::with_file(Some(&conf), &[]);
    let (mut ours, mut theirs) = (ferrokey.raw(Mode::Plain), redis.raw());
    assert_eq!(normalized(&ask(&mut ours, "ACL LIST")), normalized(&ask(&mut theirs, "ACL LIST")));
    same_matrix(&ferrokey, &redis);

    // Without an ACL file, ACL SAVE and LOAD refuse as Redis does, and CONFIG REWRITE keeps
    // the users in the config file, where the first `user` line was.
    assert_eq!(ask(&mut ours, "ACL SAVE"), ask(&mut theirs, "ACL SAVE"));
    assert_eq!(ask(&mut ours, "ACL LOAD"), ask(&mut theirs, "ACL LOAD"));
    assert_eq!(ask(&mut ours, "ACL SETUSER added on >p +ping"), "+OK\r\n");
    assert_eq!(ask(&mut ours, "CONFIG REWRITE"), "+OK\r\n");
    let rewritten = std::fs::read_to_string(&conf).unwrap();
    let users: Vec<&str> = rewritten.lines().filter(|l| l.starts_with("user ")).collect();
    let listed = ask(&mut ours, "ACL LIST");
    assert_eq!(users.len(), 8, "{rewritten}");
    for user in &users {
        assert!(listed.contains(user), "{user} not in {listed}");
    }
    drop(ferrokey);
    let again = Server::with(Opts { config_file: Some(conf.clone()), ..Opts::default() });
    assert_eq!(ask(&mut again.raw(Mode::Plain), "ACL LIST"), listed, "a restart loads what was rewritten");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_user_setups_refuse_to_start() {
    let dir = scratch("refused");
    let conf = dir.join("both.conf");
    std::fs::write(&conf, format!("aclfile {}\nuser alice on\n", dir.join("x.acl").display())).unwrap();
    let (code, log) = common::start_refused(&[&conf.display().to_string()]);
    assert_ne!(code, Some(0));
    assert!(log.contains("define either an ACL file or declare users directly"), "{log}");
    let conf = dir.join("bad.conf");
    std::fs::write(&conf, "user alice on +nosuchcommand\n").unwrap();
    let (code, log) = common::start_refused(&[&conf.display().to_string()]);
    assert_ne!(code, Some(0));
    assert!(log.contains("Error loading ACL rule '+nosuchcommand' for the user named 'alice'"), "{log}");
    let acl = dir.join("broken.acl");
    std::fs::write(&acl, "user alice on ~a allkeys ~b\n").unwrap();
    let (code, log) = common::start_refused(&["--aclfile", &acl.display().to_string()]);
    assert_ne!(code, Some(0));
    assert!(log.contains("Aborting Redis startup because of ACL errors"), "{log}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn acl_load_closes_the_connections_of_changed_and_removed_users_on_every_core() {
    let dir = scratch("reload");
    let file = dir.join("users.acl");
    std::fs::write(&file, "user alice on >a ~* +@all\nuser bob on >b ~* +@all\nuser carol on >c ~* +@all\n")
        .unwrap();
    let server = Server::with(Opts::default().arg("aclfile", &file.display().to_string()));
    for mode in MODES {
        let mut admin = server.raw_on_core(mode, 0);
        let logged = |user: &str, core: usize| -> Raw {
            let mut raw = server.raw_on_core(mode, core);
            let pass = &user[..1];
            assert_eq!(raw.request(&[b"AUTH", user.as_bytes(), pass.as_bytes()]), b"+OK\r\n");
            raw
        };
        let (mut alice, mut bob, mut carol) = (logged("alice", 1), logged("bob", 1), logged("carol", 0));
        // alice changes, bob goes, carol stays as she was.
        std::fs::write(&file, "user alice on >a ~* +@all -flushall\nuser carol on >c ~* +@all\n").unwrap();
        assert_eq!(ask(&mut admin, "ACL LOAD"), "+OK\r\n");
        for gone in [&mut alice, &mut bob] {
            gone.send(&resp(&[b"PING"]));
            assert!(!gone.read_to_close().starts_with(b"+PONG"));
        }
        assert_eq!(carol.request(&[b"PING"]), b"+PONG\r\n");
        assert_eq!(ask(&mut carol, "ACL WHOAMI"), "$5\r\ncarol\r\n");
        std::fs::write(
            &file,
            "user alice on >a ~* +@all\nuser bob on >b ~* +@all\nuser carol on >c ~* +@all\n",
        )
        .unwrap();
        assert_eq!(ask(&mut admin, "ACL LOAD"), "+OK\r\n");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
