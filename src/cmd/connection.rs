//! Connection commands: PING, HELLO, AUTH, SELECT, RESET, CLIENT. Run on the connection's core.

use bytes::Bytes;

use crate::cmd::args::{self, is, SYNTAX};
use crate::engine::blocking::Unblock;
use crate::engine::session::{Session, UNAVAILABLE};
use crate::facade::Reply;

const WRONGPASS: Reply = Reply::error("WRONGPASS invalid username-password pair or user is disabled.");

/// PING [message]
#[must_use]
pub fn ping(_s: &Session, args: &[Bytes]) -> Reply {
    match args {
        [_] => Reply::status("PONG"),
        [_, msg] => Reply::Bulk(msg.clone()),
        _ => args::wrong_args("ping"),
    }
}

/// Checks a username and password against `requirepass` (the only user is `default`).
fn check_password(s: &Session, user: &[u8], pass: &[u8]) -> bool {
    let required = s.core.config().requirepass.clone();
    user == b"default" && (required.is_empty() || pass == required.as_bytes())
}

/// AUTH [username] password
pub fn auth(s: &mut Session, args: &[Bytes]) -> Reply {
    let (user, pass) = match args {
        [_, pass] => {
            if s.core.config().requirepass.is_empty() {
                return Reply::error(
                    "ERR AUTH <password> called without any password configured for the default \
                     user. Are you sure your configuration is correct?",
                );
            }
            (&b"default"[..], pass)
        }
        [_, user, pass] => (&user[..], pass),
        _ => return SYNTAX,
    };
    if check_password(s, user, pass) {
        s.authed = true;
        Reply::Ok
    } else {
        WRONGPASS
    }
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
pub fn hello(s: &mut Session, args: &[Bytes]) -> Reply {
    let mut proto = None;
    if let Some(v) = args.get(1) {
        match args::int(v) {
            Ok(v @ 2..=3) => proto = Some(v),
            Ok(_) => return Reply::error("NOPROTO unsupported protocol version"),
            Err(_) => return Reply::error("ERR Protocol version is not an integer or out of range"),
        }
    }
    let (mut auth, mut name) = (None, None);
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "auth") && more >= 2 {
            auth = Some((&args[i + 1], &args[i + 2]));
            i += 3;
        } else if is(&args[i], "setname") && more >= 1 {
            name = Some(&args[i + 1]);
            i += 2;
        } else {
            return Reply::Error(
                format!("ERR Syntax error in HELLO option '{}'", String::from_utf8_lossy(&args[i])).into(),
            );
        }
    }
    match auth {
        Some((user, pass)) if !check_password(s, user, pass) => return WRONGPASS,
        Some(_) => s.authed = true,
        None if !s.authed => {
            return Reply::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                 HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client \
                 and select the RESP protocol version at the same time",
            )
        }
        None => {}
    }
    if let Some(name) = name {
        if let Err(e) = set_name(s, name) {
            return e;
        }
    }
    if let Some(p) = proto {
        s.resp3 = p == 3;
        s.client.resp.set(p as u8);
    }
    let text = |t: &str| Reply::bulk(t);
    Reply::Map(vec![
        (text("server"), text("redis")),
        (text("version"), text(crate::REDIS_VERSION)),
        (text("proto"), Reply::Int(if s.resp3 { 3 } else { 2 })),
        (text("id"), Reply::Int(s.client.id as i64)),
        (text("mode"), text("standalone")),
        (text("role"), text("master")),
        (text("modules"), Reply::Array(vec![])),
    ])
}

/// SELECT index
pub fn select(s: &mut Session, args: &[Bytes]) -> Reply {
    match args::int(&args[1]) {
        Ok(i) if i >= 0 && (i as u64) < s.core.config().databases as u64 => {
            s.db = i as usize;
            Reply::Ok
        }
        Ok(_) => Reply::error("ERR DB index is out of range"),
        Err(e) => e,
    }
}

/// RESET: back to a fresh connection's state (the session also forgets MULTI and WATCH).
pub fn reset(s: &mut Session) -> Reply {
    s.multi = None;
    s.db = 0;
    s.resp3 = false;
    s.client.resp.set(2);
    s.client.name.borrow_mut().clear();
    s.authed = s.core.config().requirepass.is_empty();
    Reply::status("RESET")
}

fn set_name(s: &Session, name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::error("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    *s.client.name.borrow_mut() = String::from_utf8_lossy(name).into_owned();
    Ok(())
}

/// CLIENT ID | SETNAME | GETNAME | LIST | INFO | KILL | SETINFO | HELP
pub async fn client(s: &mut Session, args: &[Bytes]) -> Reply {
    let sub = String::from_utf8_lossy(&args[1]).to_lowercase();
    match (sub.as_str(), args.len()) {
        ("id", 2) => Reply::Int(s.client.id as i64),
        ("getname", 2) => {
            let name = s.client.name.borrow();
            if name.is_empty() {
                Reply::Nil
            } else {
                Reply::bulk(&*name)
            }
        }
        ("setname", 3) => set_name(s, &args[2]).map_or_else(|e| e, |()| Reply::Ok),
        ("info", 2) => Reply::Verbatim(format!("{}\n", s.client.info_line())),
        ("list", _) => client_list(s, &args[2..]).await,
        ("kill", n) if n >= 3 => client_kill(s, &args[2..]).await,
        ("unblock", 3 | 4) => client_unblock(s, &args[2..]).await,
        ("setinfo", 4) => {
            let value = String::from_utf8_lossy(&args[3]).into_owned();
            if value.contains(|c: char| !('!'..='~').contains(&c)) {
                return Reply::error(
                    "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
                );
            }
            let mut lib = s.client.lib.borrow_mut();
            if is(&args[2], "lib-name") {
                lib.0 = value;
            } else if is(&args[2], "lib-ver") {
                lib.1 = value;
            } else {
                return Reply::Error(
                    format!("ERR Unrecognized option '{}'", String::from_utf8_lossy(&args[2])).into(),
                );
            }
            Reply::Ok
        }
        ("help", 2) => Reply::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "ID",
                "    Return the ID of the current connection.",
                "GETNAME",
                "    Return the name of the current connection.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "LIST [TYPE normal] [ID <id> [<id> ...]]",
                "    Return information about client connections.",
                "KILL <ip:port> | <option> <value> [<option> <value> ...]",
                "    Kill connections. Options: ID, ADDR, LADDR, SKIPME, USER, TYPE, MAXAGE.",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "    Set client library name or version.",
            ]
            .map(|l| Reply::Status(l.into()))
            .to_vec(),
        ),
        ("id" | "getname" | "setname" | "info" | "kill" | "setinfo" | "unblock" | "help", _) => {
            args::wrong_args(&format!("client|{sub}"))
        }
        _ => args::unknown_subcommand("CLIENT", &args[1]),
    }
}

async fn client_list(s: &Session, filters: &[Bytes]) -> Reply {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 0;
    while i < filters.len() {
        if is(&filters[i], "type") && i + 1 < filters.len() {
            // Every client is `normal` until replication and pub/sub arrive.
            if !is(&filters[i + 1], "normal") {
                return Reply::Verbatim(String::new());
            }
            i += 2;
        } else if is(&filters[i], "id") && i + 1 < filters.len() {
            let mut list = Vec::new();
            for id in &filters[i + 1..] {
                match args::int(id) {
                    Ok(n) if n > 0 => list.push(n as u64),
                    _ => return Reply::error("ERR Invalid client ID"),
                }
            }
            ids = Some(list);
            i = filters.len();
        } else {
            return SYNTAX;
        }
    }
    let lines = s
        .each_shard(move |shard| {
            shard
                .clients
                .values()
                .filter(|c| ids.as_ref().map_or(true, |ids| ids.contains(&c.id)))
                .map(|c| (c.id, c.info_line()))
                .collect::<Vec<_>>()
        })
        .await;
    let Ok(lines) = lines else { return UNAVAILABLE };
    let mut lines: Vec<(u64, String)> = lines.into_iter().flatten().collect();
    lines.sort_unstable_by_key(|(id, _)| *id);
    Reply::Verbatim(lines.into_iter().map(|(_, l)| l + "\n").collect())
}

/// CLIENT UNBLOCK client-id [TIMEOUT | ERROR]
async fn client_unblock(s: &Session, args: &[Bytes]) -> Reply {
    let Ok(id) = args::int(&args[0]) else { return args::NOT_INT };
    let how = match args.get(1) {
        None => Unblock::Timeout,
        Some(a) if is(a, "timeout") => Unblock::Timeout,
        Some(a) if is(a, "error") => Unblock::Error,
        Some(_) => return Reply::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let unblocked =
        s.each_shard(move |shard| shard.clients.get(&(id as u64)).is_some_and(|c| c.unblock(how))).await;
    match unblocked {
        Ok(v) => Reply::Int(i64::from(v.into_iter().any(|u| u))),
        Err(_) => UNAVAILABLE,
    }
}

/// Which clients CLIENT KILL means.
#[derive(Clone, Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    max_age: Option<u64>,
    skip: Option<u64>,
}

async fn client_kill(s: &Session, args: &[Bytes]) -> Reply {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let old_style = args.len() == 1;
    let mut f = KillFilter { skip: Some(s.client.id), ..KillFilter::default() };
    if old_style {
        f.addr = Some(text(&args[0]));
        f.skip = None;
    } else {
        if args.len() % 2 != 0 {
            return SYNTAX;
        }
        for pair in args.chunks_exact(2) {
            let (opt, v) = (&pair[0], &pair[1]);
            match () {
                () if is(opt, "id") => match args::int(v) {
                    Ok(n) if n > 0 => f.id = Some(n as u64),
                    _ => return Reply::error("ERR client-id should be greater than 0"),
                },
                () if is(opt, "addr") => f.addr = Some(text(v)),
                () if is(opt, "laddr") => f.laddr = Some(text(v)),
                () if is(opt, "maxage") => match args::int(v) {
                    Ok(n) if n >= 0 => f.max_age = Some(n as u64),
                    _ => return SYNTAX,
                },
                () if is(opt, "skipme") => {
                    f.skip = if is(v, "yes") {
                        Some(s.client.id)
                    } else if is(v, "no") {
                        None
                    } else {
                        return SYNTAX;
                    }
                }
                () if is(opt, "user") => {
                    if !is(v, "default") {
                        return Reply::Int(0);
                    }
                }
                () if is(opt, "type") => {
                    if !is(v, "normal") {
                        if ["master", "replica", "slave", "pubsub"].iter().any(|t| is(v, t)) {
                            return Reply::Int(0);
                        }
                        return Reply::Error(format!("ERR Unknown client type '{}'", text(v)).into());
                    }
                }
                () => return SYNTAX,
            }
        }
    }
    let filter = f.clone();
    let killed = s
        .each_shard(move |shard| {
            let mut n = 0;
            for c in shard.clients.values() {
                let matches = filter.id.map_or(true, |id| c.id == id)
                    && filter.addr.as_ref().map_or(true, |a| c.addr.to_string() == *a)
                    && filter.laddr.as_ref().map_or(true, |a| c.laddr.to_string() == *a)
                    && filter.max_age.map_or(true, |age| c.idle_secs() >= age)
                    && filter.skip != Some(c.id);
                if matches {
                    c.kill();
                    n += 1;
                }
            }
            n
        })
        .await;
    let Ok(killed) = killed else { return UNAVAILABLE };
    let killed: i64 = killed.into_iter().sum();
    if old_style {
        if killed == 0 {
            Reply::error("ERR No such client")
        } else {
            Reply::Ok
        }
    } else {
        Reply::Int(killed)
    }
}
