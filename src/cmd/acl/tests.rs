//! The rules, their descriptions and the checks, against Redis 7.0's documented outputs.

use std::sync::OnceLock;

use bytes::Bytes;

use crate::engine::acl::{
    check, describe_user, merge_selectors, Catalog, Denial, Reason, SetUserError, User, Users,
};
use crate::engine::command::Commands;

/// Every command, as the server registers them.
fn commands() -> &'static Commands {
    static COMMANDS: OnceLock<Commands> = OnceLock::new();
    COMMANDS.get_or_init(crate::cmd::commands)
}

/// The catalog ACL rules name commands from.
fn registry() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| commands().acl_catalog())
}

fn user(rules: &str) -> Result<User, (Bytes, SetUserError)> {
    let commands = registry();
    let mut u = User::new(Bytes::from_static(b"u"), commands, false);
    let rules: Vec<Bytes> =
        rules.split(' ').filter(|r| !r.is_empty()).map(|r| Bytes::from(r.to_owned())).collect();
    let rules = merge_selectors(&rules).map_err(|r| (r, SetUserError::Syntax))?;
    u.apply_all(commands, false, &rules)?;
    Ok(u)
}

fn described(rules: &str) -> String {
    describe_user(registry(), &user(rules).expect("valid rules"))
}

fn args(request: &str) -> Vec<Bytes> {
    request.split(' ').map(|a| Bytes::from(a.to_owned())).collect()
}

fn allowed(u: &User, request: &str) -> Result<(), Denial> {
    let a = args(request);
    let cmd = commands().resolve(&a).expect("known command");
    let keys = cmd.acl_keys(&a);
    check(u, &cmd.acl_request(&a, &keys))
}

#[test]
fn users_describe_as_redis_lists_them() {
    let commands = registry();
    assert_eq!(describe_user(commands, &User::default_user(commands)), "on nopass ~* &* +@all");
    let users = Users::new(self::commands().acl_catalog(), b"foo");
    assert_eq!(
        describe_user(commands, &users.get(b"default").expect("default")),
        "on #2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae ~* &* +@all"
    );
    assert_eq!(described(""), "off resetchannels -@all");
    assert_eq!(described("reset"), "off sanitize-payload resetchannels -@all");
    assert_eq!(described("on nopass &foo +@all"), "on nopass resetchannels &foo +@all");
    assert_eq!(described("+@all -client|kill"), "off resetchannels +@all -client|kill");
    assert_eq!(described("-@all +memory|doctor"), "off resetchannels -@all +memory|doctor");
    assert_eq!(described("+@all +client|id"), "off resetchannels +@all");
    assert_eq!(described("+get"), "off resetchannels -@all +get");
    assert_eq!(described("+@all -@dangerous"), "off resetchannels +@all -@dangerous");
    assert_eq!(described("-@all +@string"), "off resetchannels -@all +@string");
    assert_eq!(described("+select|0"), "off resetchannels -@all +select|0");
    assert_eq!(described("%R~foo %W~foo %RW~bar ~baz"), "off ~foo ~bar ~baz resetchannels -@all");
    assert_eq!(described("%R~r* %W~w*"), "off %R~r* %W~w* resetchannels -@all");
    assert_eq!(
        described("allkeys allchannels +get (~a +set)"),
        "off ~* &* -@all +get (~a resetchannels -@all +set)"
    );
}

#[test]
fn bad_rules_fail_with_redis_errors() {
    let err = |rules: &str| user(rules).expect_err("must fail").1;
    assert_eq!(err("allkeys ~foo"), SetUserError::AfterAllKeys);
    assert_eq!(err("allchannels &foo"), SetUserError::AfterAllChannels);
    assert_eq!(err("+nosuchcommand"), SetUserError::UnknownCommand);
    assert_eq!(err("+@nosuchcategory"), SetUserError::UnknownCommand);
    assert_eq!(err("+config|asdf"), SetUserError::UnknownCommand);
    assert_eq!(err("-select|0"), SetUserError::UnknownCommand);
    assert_eq!(err("+config|get|foo"), SetUserError::FirstArgOfSubcommand);
    assert_eq!(err("#abc"), SetUserError::BadHash);
    assert_eq!(err("<nope"), SetUserError::NoSuchPassword);
    assert_eq!(err("foo"), SetUserError::Syntax);
    assert_eq!(err("%~x"), SetUserError::Syntax);
    assert_eq!(err("%X~x"), SetUserError::Syntax);
    assert_eq!(SetUserError::UnknownCommand.to_string(), "Unknown command or category name in ACL");
}

#[test]
fn passwords_are_hashed_and_checked() {
    let u = user("on >secret >other").expect("valid");
    assert!(u.password_ok(b"secret") && u.password_ok(b"other"));
    assert!(!u.password_ok(b"wrong"));
    let off = user(">secret").expect("valid");
    assert!(!off.password_ok(b"secret"), "a user that is off never authenticates");
    let nopass = user("on nopass").expect("valid");
    assert!(nopass.password_ok(b"anything"));
    let removed = user("on >a >b <a").expect("valid");
    assert!(!removed.password_ok(b"a") && removed.password_ok(b"b"));
}

#[test]
fn commands_keys_and_channels_are_checked_per_selector() {
    let u = user("+get +set ~k* %R~r* &news.* +publish +psubscribe +subscribe").expect("valid");
    assert_eq!(allowed(&u, "GET k1"), Ok(()));
    assert_eq!(allowed(&u, "GET r1"), Ok(()));
    assert_eq!(allowed(&u, "SET r1 v"), Err(Denial { reason: Reason::Key, pos: 1 }));
    assert_eq!(allowed(&u, "GET x"), Err(Denial { reason: Reason::Key, pos: 1 }));
    assert_eq!(allowed(&u, "DEL k1"), Err(Denial { reason: Reason::Command, pos: 0 }));
    assert_eq!(allowed(&u, "PUBLISH news.a hi"), Ok(()));
    assert_eq!(allowed(&u, "PUBLISH sport hi"), Err(Denial { reason: Reason::Channel, pos: 1 }));
    assert_eq!(allowed(&u, "SUBSCRIBE news.a sport"), Err(Denial { reason: Reason::Channel, pos: 2 }));
    assert_eq!(allowed(&u, "PSUBSCRIBE news.*"), Ok(()));
    assert_eq!(allowed(&u, "PSUBSCRIBE news.a"), Err(Denial { reason: Reason::Channel, pos: 1 }));
    // Selectors are never combined; the denial reported is the furthest one.
    let u = user("+mget ~key (+mget ~key ~otherkey)").expect("valid");
    assert_eq!(allowed(&u, "MGET key otherkey"), Ok(()));
    assert_eq!(allowed(&u, "MGET key otherkey someotherkey"), Err(Denial { reason: Reason::Key, pos: 3 }));
    // The deprecated first-argument form.
    let u = user("+select|0 allkeys").expect("valid");
    assert_eq!(allowed(&u, "SELECT 0"), Ok(()));
    assert_eq!(allowed(&u, "SELECT 1"), Err(Denial { reason: Reason::Command, pos: 0 }));
}

#[test]
fn acl_files_load_whole_or_not_at_all() {
    let dir = std::env::temp_dir().join(format!("ferrokey-aclfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = crate::config::Config {
        dir: dir.display().to_string(),
        aclfile: "users.acl".into(),
        ..crate::config::Config::default()
    };
    let users = Users::new(commands().acl_catalog(), b"");
    let missing = users.load_file(&config).unwrap_err();
    assert_eq!(missing, "Error loading ACLs, opening file 'users.acl': No such file or directory");

    std::fs::write(dir.join("users.acl"), "user alice on >p ~a* +get\n\n  user bob off  \r\n").unwrap();
    let gone = users.load_file(&config).unwrap();
    assert!(gone.is_empty(), "the default user is unchanged: {gone:?}");
    let lines = users.lines();
    assert_eq!(
        lines[0],
        format!(
            "user alice on #{} ~a* resetchannels -@all +get",
            "148de9c5a7a44d19e56cd9ae1a554bf67847afb0c58f6e12fa29ac7ddfca9940"
        )
    );
    assert_eq!(lines[1], "user bob off resetchannels -@all");
    assert_eq!(
        lines[2], "user default on nopass ~* &* +@all",
        "a file without default gets the built-in one"
    );

    // Every line's problems are reported; nothing changes.
    std::fs::write(
        dir.join("users.acl"),
        "user alice on +nosuch +alsonot\nuser carol on ~x allkeys ~y\nuser alice off\nfoo bar\nuser dave (+get\n",
    )
    .unwrap();
    let err = users.load_file(&config).unwrap_err();
    assert_eq!(
        err,
        "users.acl:1: Error in applying operation '+nosuch': Unknown command or category name in ACL. \
         users.acl:1: Error in applying operation '+alsonot': Unknown command or category name in ACL. \
         users.acl:2: Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have \
         any effect. Try 'resetkeys' to start with an empty list of patterns. \
         WARNING: Duplicate user 'alice' found on line 3. \
         users.acl:4 should start with user keyword followed by the username. \
         users.acl:5: Unmatched parenthesis in selector definition.\
         WARNING: ACL errors detected, no change to the previously active ACL rules was performed"
    );
    assert_eq!(users.lines(), lines);

    // ACL SAVE writes what ACL LIST shows; loading it back changes nothing.
    users.save_file(&config).unwrap();
    assert_eq!(std::fs::read_to_string(dir.join("users.acl")).unwrap(), format!("{}\n", lines.join("\n")));
    assert!(users.load_file(&config).unwrap().is_empty());
    // A user whose rules changed is reported (its clients close), as is one removed.
    std::fs::write(dir.join("users.acl"), "user alice on >p ~a* +get +set\n").unwrap();
    assert_eq!(users.load_file(&config).unwrap(), vec![Bytes::from("alice"), Bytes::from("bob")]);
    std::fs::remove_dir_all(&dir).unwrap();
}
