//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, RESET and CLIENT. The session
//! runs them on the connection's core; CLIENT LIST, KILL and UNBLOCK reach every core's clients,
//! CLIENT PAUSE and UNPAUSE every core's commands; CLIENT TRACKING and its companions set the
//! client's mode for `engine::caching`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::blocking::Unblock;
use crate::engine::caching;
use crate::engine::command::Command;
use crate::engine::pause::{PauseKind, Purpose};
use crate::engine::session::{ReplyMode, Session};
use crate::engine::spec::{acl, flag};
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::inline("ping", -1, ping)
            .flags(flag::FAST)
            .acl(acl::CONNECTION)
            .tips(&["request_policy:all_shards", "response_policy:all_succeeded"])
            .docs("connection", "1.0.0", "O(1)", "Ping the server")
            .when_subscribed(),
        Command::inline("echo", 2, |_, a| Ok(Reply::Bulk(a[1].clone())))
            .flags(flag::LOADING | flag::STALE | flag::FAST)
            .acl(acl::CONNECTION)
            .docs("connection", "1.0.0", "O(1)", "Echo the given string"),
        Command::session("hello", -1, |s, a| Box::pin(async move { hello(s, a) }))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::NO_AUTH | flag::ALLOW_BUSY)
            .acl(acl::CONNECTION)
            .docs("connection", "6.0.0", "O(1)", "Handshake with Redis")
            .history(&[("6.2.0", "`protover` made optional; when called without arguments the command reports the current connection's context.")]),
        Command::session("auth", -2, |s, a| Box::pin(async move { auth(s, a) }))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::NO_AUTH | flag::ALLOW_BUSY)
            .acl(acl::CONNECTION)
            .docs("connection", "1.0.0", "O(N) where N is the number of passwords defined for the user", "Authenticate to the server")
            .history(&[("6.0.0", "Added ACL style (username and password).")]),
        Command::session("select", 2, |s, a| Box::pin(async move { select(s, a) }))
            .flags(flag::LOADING | flag::STALE | flag::FAST)
            .acl(acl::CONNECTION)
            .docs("connection", "1.0.0", "O(1)", "Change the selected database for the current connection"),
        Command::session("quit", -1, |s, _| Box::pin(async move { quit(s) }))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::NO_AUTH | flag::ALLOW_BUSY)
            .acl(acl::CONNECTION)
            .docs("connection", "1.0.0", "O(1)", "Close the connection")
            .control()
            .when_subscribed(),
        Command::session("reset", 1, |s, _| Box::pin(reset(s)))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::NO_AUTH | flag::ALLOW_BUSY)
            .acl(acl::CONNECTION)
            .docs("connection", "6.2.0", "O(1)", "Reset the connection")
            .control()
            .when_subscribed(),
        Command::container("client", -2, vec![
            Command::session("id", 2, |s, _| Box::pin(async move { Ok(Reply::Int(s.client.id as i64)) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "5.0.0", "O(1)", "Returns the client ID for the current connection"),
            Command::session("getname", 2, |s, _| Box::pin(async move { Ok(client_getname(s)) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "2.6.9", "O(1)", "Get the current connection name"),
            Command::session("setname", 3, |s, a| Box::pin(async move { set_name(s, &a[2]).map(|()| Reply::Ok) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "2.6.9", "O(1)", "Set the current connection name"),
            Command::session("info", 2, |s, _| Box::pin(async move { Ok(Reply::Verbatim(format!("{}\n", s.client.info_line()))) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .tips(&["nondeterministic_output"])
                .docs("connection", "6.2.0", "O(1)", "Returns information about the current client connection."),
            Command::session("list", -2, |s, a| Box::pin(client_list(s, &a[2..])))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .tips(&["nondeterministic_output"])
                .docs("connection", "2.4.0", "O(N) where N is the number of client connections", "Get the list of client connections")
                .history(&[("2.8.12", "Added unique client `id` field."), ("5.0.0", "Added optional `TYPE` filter."), ("6.0.0", "Added `user` field."), ("6.2.0", "Added `argv-mem`, `tot-mem`, `laddr` and `redir` fields and the optional `ID` filter."), ("7.0.0", "Added `resp`, `multi-mem`, `rbs` and `rbp` fields."), ("7.0.3", "Added `ssub` field.")]),
            Command::session("kill", -3, |s, a| Box::pin(client_kill(s, &a[2..])))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "2.4.0", "O(N) where N is the number of client connections", "Kill the connection of a client")
                .history(&[("2.8.12", "Added new filter format."), ("2.8.12", "`ID` option."), ("3.2.0", "Added `master` type in for `TYPE` option."), ("5.0.0", "Replaced `slave` `TYPE` with `replica`. `slave` still supported for backward compatibility."), ("6.2.0", "`LADDR` option.")]),
            Command::session("unblock", -3, |s, a| Box::pin(client_unblock(s, &a[2..])))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "5.0.0", "O(log N) where N is the number of client connections", "Unblock a client blocked in a blocking command from a different connection"),
            Command::session("pause", -3, |s, a| Box::pin(async move { client_pause(s, a) }))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "2.9.50", "O(1)", "Stop processing commands from clients for some time")
                .history(&[("6.2.0", "`CLIENT PAUSE WRITE` mode added along with the `mode` option.")]),
            Command::session("unpause", 2, |s, _| Box::pin(async move {
                s.core.global.pauses.unpause(Purpose::Client);
                Ok(Reply::Ok)
            }))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "6.2.0", "O(N) Where N is the number of paused clients", "Resume processing of clients that were paused"),
            Command::session("reply", 3, |s, a| Box::pin(async move { client_reply(s, &a[2]) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "3.2.0", "O(1)", "Instruct the server whether to reply to commands"),
            Command::session("no-evict", 3, |s, a| Box::pin(async move { client_no_evict(s, &a[2]) }))
                .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "7.0.0", "O(1)", "Set client eviction mode for the current connection"),
            Command::session("tracking", -3, |s, a| Box::pin(client_tracking(s, a)))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "6.0.0", "O(1). Some options may introduce additional complexity.", "Enable or disable server assisted client side caching support"),
            Command::session("caching", 3, |s, a| Box::pin(async move { client_caching(s, &a[2]) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "6.0.0", "O(1)", "Instruct the server about tracking or not keys in the next request"),
            Command::session("getredir", 2, |s, _| Box::pin(async move { Ok(client_getredir(s)) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "6.0.0", "O(1)", "Get tracking notifications redirection client ID if any"),
            Command::session("trackinginfo", 2, |s, _| Box::pin(async move { Ok(client_trackinginfo(s)) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "6.2.0", "O(1)", "Return information about server assisted client side caching for the current connection"),
            Command::inline("help", 2, |_, _| Ok(client_help()))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "5.0.0", "O(1)", "Show helpful text about the different subcommands"),
            // Redis 7.2's, which client libraries send on connecting; 7.0 does not have it.
            Command::session("setinfo", 4, |s, a| Box::pin(async move { client_setinfo(s, a) }))
                .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("connection", "7.2.0", "O(1)", "Set client or connection specific info"),
        ])
        .docs("connection", "2.4.0", "Depends on subcommand.", "A container for client connection commands"),
    ]
}

/// PING [message]; in RESP2 with subscriptions, `["pong", message]`, as Redis replies there.
fn ping(s: &Session, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::arity("ping"));
    }
    if s.subscribed_resp2() {
        let msg = args.get(1).cloned().unwrap_or_default();
        return Ok(Reply::Array(vec![Reply::bulk("pong"), Reply::Bulk(msg)]));
    }
    Ok(match args {
        [_, msg] => Reply::Bulk(msg.clone()),
        _ => Reply::status("PONG"),
    })
}

/// Authenticates the session as `user` if `pass` is its password and it is on; a failure is
/// logged (ACL LOG) under `by`, the command as typed.
fn log_in(s: &mut Session, by: &Bytes, user: &[u8], pass: &[u8]) -> Result<(), CmdError> {
    let users = &s.core.global.users;
    let generation = users.generation();
    match users.get(user) {
        Some(u) if u.password_ok(pass) => {
            s.log_in(u, generation);
            Ok(())
        }
        _ => {
            s.log_acl(crate::engine::acl::What::Auth, by.clone(), Bytes::copy_from_slice(user));
            Err(CmdError::WrongPass)
        }
    }
}

/// AUTH [username] password
fn auth(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let (user, pass) = match args {
        [_, pass] => {
            if s.core.global.users.default_user().nopass {
                return Err(CmdError::msg(
                    "ERR AUTH <password> called without any password configured for the default \
                     user. Are you sure your configuration is correct?",
                ));
            }
            (&b"default"[..], pass)
        }
        [_, user, pass] => (&user[..], pass),
        _ => return Err(CmdError::Syntax),
    };
    log_in(s, &args[0], user, pass)?;
    Ok(Reply::Ok)
}

/// HELLO [protover [AUTH username password] [SETNAME clientname]]
fn hello(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let mut proto = None;
    if let Some(v) = args.get(1) {
        match args::int(v) {
            Ok(v @ 2..=3) => proto = Some(v),
            Ok(_) => return Err(CmdError::msg("NOPROTO unsupported protocol version")),
            Err(_) => return Err(CmdError::msg("ERR Protocol version is not an integer or out of range")),
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
            return Err(CmdError::text(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    match auth {
        Some((user, pass)) => log_in(s, &args[0], user, pass)?,
        None if !s.authed => {
            return Err(CmdError::msg(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
                 HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client \
                 and select the RESP protocol version at the same time",
            ))
        }
        None => {}
    }
    if let Some(name) = name {
        set_name(s, name)?;
    }
    if let Some(p) = proto {
        s.resp3 = p == 3;
        s.client.resp.set(p as u8);
    }
    let text = |t: &str| Reply::bulk(t);
    Ok(Reply::Map(vec![
        (text("server"), text("redis")),
        (text("version"), text(crate::REDIS_VERSION)),
        (text("proto"), Reply::Int(if s.resp3 { 3 } else { 2 })),
        (text("id"), Reply::Int(s.client.id as i64)),
        (text("mode"), text(if s.core.global.cluster.is_some() { "cluster" } else { "standalone" })),
        (text("role"), text("master")),
        (text("modules"), Reply::Array(vec![])),
    ]))
}

/// SELECT index
fn select(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let index = args::int(&args[1])?;
    if s.core.global.cluster.is_some() && index != 0 {
        return Err(CmdError::msg("ERR SELECT is not allowed in cluster mode"));
    }
    match index {
        i if i >= 0 && (i as u64) < s.core.config().databases as u64 => {
            s.db = i as usize;
            Ok(Reply::Ok)
        }
        _ => Err(CmdError::msg("ERR DB index is out of range")),
    }
}

/// QUIT: OK, then the connection closes.
fn quit(s: &mut Session) -> CmdResult {
    s.closing = true;
    Ok(Reply::Ok)
}

/// RESET: back to a fresh connection's state (no MULTI, WATCH or subscriptions, database 0,
/// RESP2, no name, not authenticated when a password is set).
async fn reset(s: &mut Session) -> CmdResult {
    s.unwatch_all().await;
    s.untrack().await;
    s.unsubscribe_all();
    s.stop_monitoring();
    s.end_multi();
    s.asking = false;
    s.cluster_readonly = false;
    s.db = 0;
    s.resp3 = false;
    s.client.resp.set(2);
    s.client.name.borrow_mut().clear();
    s.core.global.peers.named(s.client.core, s.client.id, "");
    s.log_out();
    Ok(Reply::status("RESET"))
}

/// CLIENT SETNAME name, and HELLO's SETNAME.
fn set_name(s: &Session, name: &[u8]) -> Result<(), CmdError> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(CmdError::msg("ERR Client names cannot contain spaces, newlines or special characters."));
    }
    let name = String::from_utf8_lossy(name).into_owned();
    s.core.global.peers.named(s.client.core, s.client.id, &name);
    *s.client.name.borrow_mut() = name;
    Ok(())
}

/// CLIENT GETNAME
fn client_getname(s: &Session) -> Reply {
    let name = s.client.name.borrow();
    if name.is_empty() {
        Reply::Nil
    } else {
        Reply::bulk(&*name)
    }
}

/// CLIENT NO-EVICT ON|OFF: whether `maxmemory-clients` may drop this client.
/// CLIENT REPLY ON | OFF | SKIP: ON answers OK; OFF and SKIP answer nothing (OFF stops every
/// reply until ON, SKIP the next command's; SKIP while OFF changes nothing), as Redis.
fn client_reply(s: &mut Session, arg: &[u8]) -> CmdResult {
    match arg.to_ascii_lowercase().as_slice() {
        b"on" => {
            s.reply_mode = ReplyMode::On;
            // This very reply is sent.
            s.silent = false;
            Ok(Reply::Ok)
        }
        b"off" => {
            s.reply_mode = ReplyMode::Off;
            Ok(Reply::Several(Vec::new()))
        }
        b"skip" => {
            if s.reply_mode != ReplyMode::Off {
                s.reply_mode = ReplyMode::SkipNext;
            }
            Ok(Reply::Several(Vec::new()))
        }
        _ => Err(CmdError::Syntax),
    }
}

fn client_no_evict(s: &Session, arg: &[u8]) -> CmdResult {
    let on = match arg.to_ascii_lowercase().as_slice() {
        b"on" => true,
        b"off" => false,
        _ => return Err(CmdError::Syntax),
    };
    s.client.no_evict.set(on);
    Ok(Reply::Ok)
}

/// CLIENT SETINFO LIB-NAME | LIB-VER value
fn client_setinfo(s: &Session, args: &[Bytes]) -> CmdResult {
    let value = String::from_utf8_lossy(&args[3]).into_owned();
    if value.contains(|c: char| !('!'..='~').contains(&c)) {
        return Err(CmdError::msg(
            "ERR lib-name and lib-ver cannot contain spaces, newlines or special characters.",
        ));
    }
    let mut lib = s.client.lib.borrow_mut();
    if is(&args[2], "lib-name") {
        lib.0 = value;
    } else if is(&args[2], "lib-ver") {
        lib.1 = value;
    } else {
        return Err(CmdError::text(format!(
            "ERR Unrecognized option '{}'",
            String::from_utf8_lossy(&args[2])
        )));
    }
    Ok(Reply::Ok)
}

/// CLIENT HELP
/// CLIENT PAUSE timeout [WRITE|ALL]: holds clients' commands (every one, or those that may
/// write) for `timeout` milliseconds (see [`crate::engine::pause`]).
fn client_pause(s: &Session, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(CmdError::subcommand_syntax("client", &args[1]));
    }
    let kind = match args.get(3) {
        None => PauseKind::All,
        Some(m) if is(m, "write") => PauseKind::Write,
        Some(m) if is(m, "all") => PauseKind::All,
        Some(_) => return Err(CmdError::msg("ERR CLIENT PAUSE mode must be WRITE or ALL")),
    };
    let ms =
        args::int(&args[2]).map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
    if ms < 0 {
        return Err(CmdError::msg("ERR timeout is negative"));
    }
    let until = Instant::now() + Duration::from_millis(ms as u64);
    s.core.global.pauses.pause(Purpose::Client, kind, Some(until));
    Ok(Reply::Ok)
}

fn client_help() -> Reply {
    args::help(
        "CLIENT",
        &[
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
            "UNBLOCK <clientid> [TIMEOUT|ERROR]",
            "    Unblock the specified blocked client.",
            "PAUSE <timeout> [WRITE|ALL]",
            "    Suspend all, or just write, clients for <timeout> milliseconds.",
            "UNPAUSE",
            "    Stop the current client pause, resuming traffic.",
            "REPLY (ON|OFF|SKIP)",
            "    Control the replies sent to the current connection.",
            "NO-EVICT (ON|OFF)",
            "    Protect current client connection from eviction.",
            "SETINFO <LIB-NAME|LIB-VER> <value>",
            "    Set client library name or version.",
            "CACHING (YES|NO)",
            "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
            "GETREDIR",
            "    Return the client ID we are redirecting to when tracking is enabled.",
            "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
            "         [OPTIN] [OPTOUT] [NOLOOP]",
            "    Control server assisted client side caching.",
            "TRACKINGINFO",
            "    Report tracking status for the current connection.",
        ],
    )
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [BCAST] [PREFIX prefix ...] [OPTIN] [OPTOUT] [NOLOOP],
/// its options parsed and checked in Redis's order.
async fn client_tracking(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let mut req = caching::Request::default();
    let mut i = 3;
    while i < args.len() {
        let more = i + 1 < args.len();
        let opt = &args[i];
        if is(opt, "redirect") && more {
            i += 1;
            if req.redirect.is_some() {
                return Err(CmdError::msg("ERR A client can only redirect to a single other client"));
            }
            let id = args::int(&args[i])?;
            let found = s
                .core
                .router
                .each_core(move |local| {
                    let clients = local.clients.borrow();
                    let target = u64::try_from(id).ok().and_then(|id| clients.get(&id));
                    // Invalidations find it by its core from now on: it stays there.
                    target.inspect(|c| c.redirect_target.set(true)).is_some()
                })
                .await
                .map_err(|_| CmdError::Unavailable)?;
            let Some(core) = found.iter().position(|&here| here) else {
                return Err(CmdError::msg("ERR The client ID you want redirect to does not exist"));
            };
            req.redirect = Some((id as u64, core as u32));
        } else if is(opt, "bcast") {
            req.bcast = true;
        } else if is(opt, "optin") {
            req.optin = true;
        } else if is(opt, "optout") {
            req.optout = true;
        } else if is(opt, "noloop") {
            req.noloop = true;
        } else if is(opt, "prefix") && more {
            i += 1;
            req.prefixes.push(args[i].clone());
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if is(&args[2], "on") {
        s.track(req).await?;
    } else if is(&args[2], "off") {
        s.untrack().await;
    } else {
        return Err(CmdError::Syntax);
    }
    Ok(Reply::Ok)
}

/// CLIENT CACHING YES|NO: whether the next command's reads are remembered (OPTIN/OPTOUT).
fn client_caching(s: &mut Session, arg: &[u8]) -> CmdResult {
    let mode = s.client.tracking.get();
    if !mode.on {
        return Err(CmdError::msg(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode \
             enabled",
        ));
    }
    if is(arg, "yes") {
        if !mode.optin {
            return Err(CmdError::msg(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if is(arg, "no") {
        if !mode.optout {
            return Err(CmdError::msg(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(CmdError::Syntax);
    }
    s.caching = true;
    Ok(Reply::Ok)
}

/// CLIENT GETREDIR: the client invalidations go to, 0 for none, -1 when not tracking.
fn client_getredir(s: &Session) -> Reply {
    let mode = s.client.tracking.get();
    Reply::Int(if mode.on { mode.redirect.0 as i64 } else { -1 })
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis reports them.
fn client_trackinginfo(s: &Session) -> Reply {
    let mode = s.client.tracking.get();
    let mut flags = vec![if mode.on { "on" } else { "off" }];
    let optional = [
        (mode.bcast, "bcast"),
        (mode.optin, "optin"),
        (mode.optin && s.caching, "caching-yes"),
        (mode.optout, "optout"),
        (mode.optout && s.caching, "caching-no"),
        (mode.noloop, "noloop"),
        (mode.broken, "broken_redirect"),
    ];
    flags.extend(optional.iter().filter(|(on, _)| *on).map(|(_, name)| *name));
    Reply::Map(vec![
        (Reply::bulk("flags"), Reply::Set(flags.into_iter().map(Reply::bulk).collect())),
        (Reply::bulk("redirect"), Reply::Int(if mode.on { mode.redirect.0 as i64 } else { -1 })),
        (
            Reply::bulk("prefixes"),
            Reply::Array(s.tracking_prefixes.iter().map(|p| Reply::Bulk(p.clone())).collect()),
        ),
    ])
}

/// CLIENT LIST [TYPE type] [ID id [id ...]]: every core's clients, by id.
async fn client_list(s: &mut Session, filters: &[Bytes]) -> CmdResult {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 0;
    while i < filters.len() {
        if is(&filters[i], "type") && i + 1 < filters.len() {
            // Every client is `normal` until replication and pub/sub arrive.
            if !is(&filters[i + 1], "normal") {
                return Ok(Reply::Verbatim(String::new()));
            }
            i += 2;
        } else if is(&filters[i], "id") && i + 1 < filters.len() {
            let mut list = Vec::new();
            for id in &filters[i + 1..] {
                match args::int(id) {
                    Ok(n) if n > 0 => list.push(n as u64),
                    _ => return Err(CmdError::msg("ERR Invalid client ID")),
                }
            }
            ids = Some(list);
            i = filters.len();
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let lines = s
        .core
        .router
        .each_core(move |local| {
            local
                .clients
                .borrow()
                .values()
                .filter(|c| ids.as_ref().is_none_or(|ids| ids.contains(&c.id)))
                .map(|c| (c.id, c.info_line()))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    let mut lines: Vec<(u64, String)> = lines.into_iter().flatten().collect();
    lines.sort_unstable_by_key(|(id, _)| *id);
    Ok(Reply::Verbatim(lines.into_iter().map(|(_, l)| l + "\n").collect()))
}

/// CLIENT UNBLOCK client-id [TIMEOUT | ERROR]
async fn client_unblock(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(CmdError::arity("client|unblock"));
    }
    let id = args::int(&args[0])?;
    let how = match args.get(1) {
        None => Unblock::Timeout,
        Some(a) if is(a, "timeout") => Unblock::Timeout,
        Some(a) if is(a, "error") => Unblock::Error,
        Some(_) => return Err(CmdError::msg("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")),
    };
    let unblocked = s
        .core
        .router
        .each_core(move |local| local.clients.borrow().get(&(id as u64)).is_some_and(|c| c.unblock(how)))
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(Reply::Int(i64::from(unblocked.into_iter().any(|u| u))))
}

/// Which clients CLIENT KILL means.
#[derive(Clone, Default)]
struct KillFilter {
    id: Option<u64>,
    addr: Option<String>,
    laddr: Option<String>,
    max_age: Option<u64>,
    skip: Option<u64>,
    kind: Option<ClientType>,
    user: Option<Bytes>,
}

/// A client's type, as CLIENT KILL TYPE and CLIENT LIST TYPE name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientType {
    Normal,
    Replica,
    PubSub,
}

impl ClientType {
    fn of(c: &crate::engine::client::Client) -> ClientType {
        if c.replica.get() {
            ClientType::Replica
        } else if c.subscribed() {
            ClientType::PubSub
        } else {
            ClientType::Normal
        }
    }
}

/// CLIENT KILL ip:port | [ID id] [ADDR ip:port] [LADDR ip:port] [SKIPME yes|no] [USER name]
/// [TYPE type] [MAXAGE secs]
async fn client_kill(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let text = |b: &Bytes| String::from_utf8_lossy(b).into_owned();
    let old_style = args.len() == 1;
    let mut f = KillFilter { skip: Some(s.client.id), ..KillFilter::default() };
    if old_style {
        f.addr = Some(text(&args[0]));
        f.skip = None;
    } else {
        if args.len() % 2 != 0 {
            return Err(CmdError::Syntax);
        }
        for pair in args.chunks_exact(2) {
            let (opt, v) = (&pair[0], &pair[1]);
            match () {
                () if is(opt, "id") => match args::int(v) {
                    Ok(n) if n > 0 => f.id = Some(n as u64),
                    _ => return Err(CmdError::msg("ERR client-id should be greater than 0")),
                },
                () if is(opt, "addr") => f.addr = Some(text(v)),
                () if is(opt, "laddr") => f.laddr = Some(text(v)),
                () if is(opt, "maxage") => match args::int(v) {
                    Ok(n) if n >= 0 => f.max_age = Some(n as u64),
                    _ => return Err(CmdError::Syntax),
                },
                () if is(opt, "skipme") => {
                    f.skip = if is(v, "yes") {
                        Some(s.client.id)
                    } else if is(v, "no") {
                        None
                    } else {
                        return Err(CmdError::Syntax);
                    }
                }
                () if is(opt, "user") => {
                    if s.core.global.users.get(v).is_none() {
                        return Err(CmdError::text(format!("ERR No such user '{}'", text(v))));
                    }
                    f.user = Some(v.clone());
                }
                () if is(opt, "type") => {
                    f.kind = Some(match () {
                        () if is(v, "normal") => ClientType::Normal,
                        () if is(v, "replica") || is(v, "slave") => ClientType::Replica,
                        () if is(v, "pubsub") => ClientType::PubSub,
                        // This server follows no primary yet: no master link to kill.
                        () if is(v, "master") => return Ok(Reply::Int(0)),
                        () => return Err(CmdError::text(format!("ERR Unknown client type '{}'", text(v)))),
                    });
                }
                () => return Err(CmdError::Syntax),
            }
        }
    }
    let killed = s
        .core
        .router
        .each_core(move |local| {
            let mut n = 0;
            for c in local.clients.borrow().values() {
                let matches = f.id.is_none_or(|id| c.id == id)
                    && f.addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
                    && f.laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
                    && f.max_age.is_none_or(|age| c.idle_secs() >= age)
                    && f.kind.is_none_or(|k| k == ClientType::of(c))
                    && f.user.as_ref().is_none_or(|u| *c.user.borrow() == *u)
                    && f.skip != Some(c.id);
                if matches {
                    c.kill();
                    n += 1;
                }
            }
            n
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    let killed: i64 = killed.into_iter().sum();
    match (old_style, killed) {
        (true, 0) => Err(CmdError::msg("ERR No such client")),
        (true, _) => Ok(Reply::Ok),
        (false, n) => Ok(Reply::Int(n)),
    }
}
