//! What ferrokey says of its commands against what Debian's redis-server 7.0 says of the same
//! commands: COMMAND INFO rows (arity, flags, first/last/step, ACL categories, tips, key specs,
//! and the subcommands both have), COMMAND DOCS' summary, since, group and complexity, and
//! COMMAND GETKEYS. Client libraries (cluster clients, redis-cli) read these.

mod common;

use common::{read_reply, resp, Mode, Raw, RedisServer, Server};

/// A parsed RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Text(Vec<u8>),
    Int(i64),
    Nil,
    List(Vec<Value>),
    Error(String),
}

fn parse(bytes: &[u8]) -> Value {
    fn one(b: &[u8], at: &mut usize) -> Value {
        let end = b[*at..].windows(2).position(|w| w == b"\r\n").unwrap() + *at;
        let line = &b[*at + 1..end];
        let kind = b[*at];
        *at = end + 2;
        let n = || std::str::from_utf8(line).unwrap().parse::<i64>().unwrap();
        match kind {
            b'+' => Value::Text(line.to_vec()),
            b'-' => Value::Error(String::from_utf8_lossy(line).into_owned()),
            b':' => Value::Int(n()),
            b'$' if n() < 0 => Value::Nil,
            b'$' => {
                let len = n() as usize;
                let v = b[*at..*at + len].to_vec();
                *at += len + 2;
                Value::Text(v)
            }
            b'*' if n() < 0 => Value::Nil,
            b'*' => Value::List((0..n()).map(|_| one(b, at)).collect()),
            _ => panic!("unexpected reply {:?}", String::from_utf8_lossy(b)),
        }
    }
    one(bytes, &mut 0)
}

fn ask(raw: &mut Raw, args: &[&str]) -> Value {
    raw.send(&resp(&args.iter().map(|a| a.as_bytes()).collect::<Vec<_>>()));
    parse(&read_reply(&mut raw.inner))
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(t) => String::from_utf8_lossy(t).into_owned(),
        other => format!("{other:?}"),
    }
}

/// A set's elements sorted (RESP2 sends sets as arrays, in no promised order); key specs are
/// maps, which RESP2 flattens into arrays of key and value: sorted by pair.
fn normalized(v: &Value) -> Value {
    match v {
        Value::List(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            items.sort();
            Value::List(items)
        }
        other => other.clone(),
    }
}

/// Compares one COMMAND INFO row, and the subcommands both servers have.
fn compare_rows(ours: &Value, theirs: &Value, diffs: &mut Vec<String>) {
    let (Value::List(ours), Value::List(theirs)) = (ours, theirs) else {
        diffs.push(format!("not rows: {ours:?} / {theirs:?}"));
        return;
    };
    let name = text(&ours[0]);
    const FIELDS: [&str; 9] =
        ["name", "arity", "flags", "first key", "last key", "step", "ACL categories", "tips", "key specs"];
    for (i, field) in FIELDS.iter().enumerate() {
        // Key specs are compared map by map, each map as its sorted pairs: the order of the
        // specs themselves is Redis's, and so must ours be.
        let (a, b) = if i == 8 {
            (key_specs(&ours[i]), key_specs(&theirs[i]))
        } else {
            (normalized(&ours[i]), normalized(&theirs[i]))
        };
        if a != b {
            diffs.push(format!("{name}: {field}: ferrokey {:?}, redis {:?}", ours[i], theirs[i]));
        }
    }
    let (Value::List(our_subs), Value::List(their_subs)) = (&ours[9], &theirs[9]) else { return };
    for sub in our_subs {
        let Value::List(row) = sub else { continue };
        let sub_name = text(&row[0]);
        match their_subs.iter().find(|t| matches!(t, Value::List(r) if text(&r[0]) == sub_name)) {
            Some(theirs) => compare_rows(sub, theirs, diffs),
            // Redis 7.2's CLIENT SETINFO, which 7.0 does not have.
            None if sub_name == "client|setinfo" => {}
            None => diffs.push(format!("{sub_name}: not a subcommand of Redis 7.0")),
        }
    }
}

fn key_specs(v: &Value) -> Value {
    let Value::List(specs) = v else { return v.clone() };
    Value::List(
        specs
            .iter()
            .map(|spec| {
                let Value::List(flat) = spec else { return spec.clone() };
                let mut pairs: Vec<Value> =
                    flat.chunks(2).map(|kv| Value::List(vec![kv[0].clone(), normalized(&kv[1])])).collect();
                pairs.sort();
                Value::List(pairs)
            })
            .collect(),
    )
}

#[test]
fn command_info_rows_match_redis_server() {
    let reference = RedisServer::start();
    let server = Server::start();
    let mut redis = reference.raw();
    let mut ferrokey = server.raw(Mode::Plain);
    let Value::List(ours) = ask(&mut ferrokey, &["COMMAND"]) else { panic!("COMMAND is not an array") };
    assert!(ours.len() > 150, "{} commands", ours.len());
    let mut diffs = Vec::new();
    for row in &ours {
        let Value::List(fields) = row else { panic!("{row:?}") };
        let name = text(&fields[0]);
        let theirs = ask(&mut redis, &["COMMAND", "INFO", &name]);
        let Value::List(theirs) = theirs else { panic!("{theirs:?}") };
        compare_rows(row, &theirs[0], &mut diffs);
    }
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
    // COUNT is the top-level commands; an unknown name's row is a null.
    assert_eq!(ask(&mut ferrokey, &["COMMAND", "COUNT"]), Value::Int(ours.len() as i64));
    let Value::List(rows) = ask(&mut ferrokey, &["COMMAND", "INFO", "get", "nosuchcommand"]) else {
        panic!()
    };
    assert!(matches!(&rows[..], [Value::List(_), Value::Nil]), "{rows:?}");
}

#[test]
fn command_docs_match_redis_server() {
    let reference = RedisServer::start();
    let server = Server::start();
    let mut redis = reference.raw();
    let mut ferrokey = server.raw(Mode::Plain);
    let Value::List(names) = ask(&mut ferrokey, &["COMMAND", "LIST"]) else { panic!() };
    let mut diffs = Vec::new();
    for name in names.iter().map(text) {
        if name == "client|setinfo" {
            continue;
        }
        let (Value::List(ours), Value::List(theirs)) =
            (ask(&mut ferrokey, &["COMMAND", "DOCS", &name]), ask(&mut redis, &["COMMAND", "DOCS", &name]))
        else {
            panic!("{name}: DOCS is not a map")
        };
        let field = |doc: &[Value], key: &str| -> Option<Value> {
            let Value::List(map) = doc.get(1)? else { return None };
            map.chunks(2).find(|kv| text(&kv[0]) == key).map(|kv| normalized(&kv[1]))
        };
        for key in [
            "summary",
            "since",
            "group",
            "complexity",
            "doc_flags",
            "deprecated_since",
            "replaced_by",
            "history",
        ] {
            if field(&ours, key) != field(&theirs, key) {
                diffs.push(format!(
                    "{name}: {key}: ferrokey {:?}, redis {:?}",
                    field(&ours, key),
                    field(&theirs, key)
                ));
            }
        }
    }
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs.join("\n"));
}

/// COMMAND GETKEYS and GETKEYSANDFLAGS: the keys Redis finds, and its errors.
#[test]
fn getkeys_matches_redis_server() {
    let reference = RedisServer::start();
    let server = Server::start();
    let mut redis = reference.raw();
    let mut ferrokey = server.raw(Mode::Plain);
    let requests: &[&[&str]] = &[
        &["GET", "k"],
        &["MSET", "a", "1", "b", "2"],
        &["ZUNIONSTORE", "d", "2", "a", "b", "WEIGHTS", "1", "2"],
        &["ZUNIONSTORE", "d", "-3", "a"],
        &["ZINTERCARD", "9223372036854775807", "a"],
        &["BLMPOP", "0", "2", "a", "b", "LEFT"],
        &["BZPOPMIN", "a", "b", "0"],
        &["LMOVE", "a", "b", "LEFT", "RIGHT"],
        &["SINTERCARD", "2", "a", "b", "LIMIT", "3"],
        &["OBJECT", "ENCODING", "k"],
        &["PING"],
        &["NOSUCHCOMMAND", "k"],
        &["GET"],
        &["SET", "k", "v", "GET"],
        &["COPY", "a", "b", "DB", "1"],
        &["BITFIELD", "k", "GET", "u8", "0", "OVERFLOW", "SAT"],
        &["BITFIELD", "k", "GET", "u8", "0", "INCRBY", "u8", "0", "1"],
        &["BITFIELD", "k", "GET", "u8"],
        &["BITOP", "AND", "d", "a", "b"],
        &["SSUBSCRIBE", "ch"],
        &["SPUBLISH", "ch", "m"],
    ];
    for req in requests {
        for sub in ["GETKEYS", "GETKEYSANDFLAGS"] {
            let mut args = vec!["COMMAND", sub];
            args.extend_from_slice(req);
            let (ours, theirs) = (ask(&mut ferrokey, &args), ask(&mut redis, &args));
            assert_eq!(normalized(&ours), normalized(&theirs), "{args:?}");
        }
    }
}
