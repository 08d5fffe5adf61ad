//! Scripting commands: EVAL, EVALSHA and their read-only forms, SCRIPT (see
//! [`crate::engine::script`] for where a script runs and what it may do).

use std::sync::Arc;

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::script::run::{Rules, Script};
use crate::engine::script::{Source, Store};
use crate::engine::session::Session;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::facade::Reply;

/// Which of the EVAL family a request is.
#[derive(Clone, Copy)]
enum Eval {
    /// EVAL / EVAL_RO: the body comes with the request.
    Body { read_only: bool },
    /// EVALSHA / EVALSHA_RO: the script is named by its SHA1.
    Sha { read_only: bool },
}

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    let eval = |name: &'static str, kind: Eval, summary: &'static str, since: &'static str| {
        let read_only = matches!(kind, Eval::Body { read_only: true } | Eval::Sha { read_only: true });
        let keys = if read_only { key::RO | key::ACCESS } else { key::RW | key::ACCESS | key::UPDATE };
        let flags = flag::NOSCRIPT | flag::SKIP_MONITOR | flag::NO_MANDATORY_KEYS | flag::STALE;
        let cmd = Command::session(
            name,
            -3,
            match kind {
                Eval::Body { read_only: false } => {
                    |s, a| Box::pin(eval(s, a, Eval::Body { read_only: false }))
                }
                Eval::Body { read_only: true } => |s, a| Box::pin(eval(s, a, Eval::Body { read_only: true })),
                Eval::Sha { read_only: false } => |s, a| Box::pin(eval(s, a, Eval::Sha { read_only: false })),
                Eval::Sha { read_only: true } => |s, a| Box::pin(eval(s, a, Eval::Sha { read_only: true })),
            },
        )
        .flags(if read_only { flags | flag::READONLY } else { flags })
        .acl(acl::SCRIPTING)
        .key(match kind {
            Eval::Body { read_only: false } => KeySpec::index(2)
                .keynum(0, 1, 1)
                .flags(keys)
                .notes("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE"),
            Eval::Body { read_only: true } => KeySpec::index(2)
                .keynum(0, 1, 1)
                .flags(keys)
                .notes("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS"),
            Eval::Sha { .. } => KeySpec::index(2).keynum(0, 1, 1).flags(keys),
        })
        .docs("scripting", since, "Depends on the script that is executed.", summary)
        // A script may reach any shard: EXEC holds them all for it.
        .fan_out();
        if read_only {
            cmd
        } else {
            cmd.may_replicate()
        }
    };
    vec![
        eval("eval", Eval::Body { read_only: false }, "Execute a Lua script server side", "2.6.0"),
        eval("evalsha", Eval::Sha { read_only: false }, "Execute a Lua script server side", "2.6.0"),
        eval("eval_ro", Eval::Body { read_only: true }, "Execute a read-only Lua script server side", "7.0.0"),
        eval("evalsha_ro", Eval::Sha { read_only: true }, "Execute a read-only Lua script server side", "7.0.0"),
        Command::container(
            "script",
            -2,
            vec![
                Command::session("load", 3, |s, a| Box::pin(load(s, a)))
                    .flags(flag::NOSCRIPT | flag::STALE)
                    .acl(acl::SCRIPTING)
                    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
                    .docs(
                        "scripting",
                        "2.6.0",
                        "O(N) with N being the length in bytes of the script body.",
                        "Load the specified Lua script into the script cache.",
                    ),
                Command::inline("exists", -3, |_, a| Ok(exists(a)))
                    .flags(flag::NOSCRIPT)
                    .acl(acl::SCRIPTING)
                    .tips(&["request_policy:all_shards", "response_policy:agg_logical_and"])
                    .docs(
                        "scripting",
                        "2.6.0",
                        "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation).",
                        "Check existence of scripts in the script cache.",
                    ),
                Command::session("flush", -2, |s, a| Box::pin(flush(s, a)))
                    .flags(flag::NOSCRIPT)
                    .acl(acl::SCRIPTING)
                    .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
                    .docs(
                        "scripting",
                        "2.6.0",
                        "O(N) with N being the number of scripts in cache",
                        "Remove all the scripts from the script cache.",
                    )
                    .history(&[("6.2.0", "Added the `ASYNC` and `SYNC` flushing mode modifiers.")]),
                Command::inline("kill", 2, |_, _| Err(CmdError::msg("NOTBUSY No scripts in execution right now.")))
                    .flags(flag::NOSCRIPT | flag::ALLOW_BUSY)
                    .acl(acl::SCRIPTING)
                    .tips(&["request_policy:all_shards", "response_policy:one_succeeded"])
                    .docs("scripting", "2.6.0", "O(1)", "Kill the script currently in execution."),
                Command::inline("debug", 3, |_, a| debug(a))
                    .flags(flag::NOSCRIPT)
                    .acl(acl::SCRIPTING)
                    .docs("scripting", "3.2.0", "O(1)", "Set the debug mode for executed scripts."),
                Command::inline("help", 2, |_, _| Ok(help())).flags(flag::LOADING | flag::STALE).acl(acl::SCRIPTING).docs(
                    "scripting",
                    "5.0.0",
                    "O(1)",
                    "Show helpful text about the different subcommands",
                ),
            ],
        )
        .docs("scripting", "2.6.0", "Depends on subcommand.", "A container for Lua scripts management commands"),
    ]
}

/// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO.
async fn eval(s: &mut Session, args: &[Bytes], kind: Eval) -> CmdResult {
    if matches!(kind, Eval::Sha { .. }) && args[1].len() != 40 {
        return Err(CmdError::NoScript);
    }
    let numkeys = crate::num::parse_i64(&args[2]).ok_or(CmdError::NotInteger)?;
    if numkeys > args.len() as i64 - 3 {
        return Err(CmdError::msg("ERR Number of keys can't be greater than number of args"));
    }
    if numkeys < 0 {
        return Err(CmdError::msg("ERR Number of keys can't be negative"));
    }
    let store = Store::get();
    let (source, read_only) = match kind {
        Eval::Body { read_only } => {
            let source = match store.find(&crate::engine::script::sha1hex(&args[1])) {
                Some(known) => known,
                None => store.add(compiled(args[1].clone())?),
            };
            (source, read_only)
        }
        Eval::Sha { read_only } => (store.find(&args[1]).ok_or(CmdError::NoScript)?, read_only),
    };
    let rules = prepare(s, &source, read_only)?;
    let split = 3 + numkeys as usize;
    let script = Script { source, keys: args[3..split].to_vec(), argv: args[split..].to_vec(), rules };
    crate::engine::script::run::run(s, script).await
}

/// A new script, checked: its shebang parsed and its code compiled here (the reply of EVAL
/// or SCRIPT LOAD reports a syntax error; every core compiles it again when it first runs it).
fn compiled(body: Bytes) -> Result<Source, CmdError> {
    let source = Source::new(body)?;
    crate::engine::script::compile_check(&source)?;
    Ok(source)
}

/// The checks a script starts with, as Redis's `scriptPrepareForRun` makes them.
fn prepare(s: &Session, source: &Arc<Source>, read_only_command: bool) -> Result<Rules, CmdError> {
    let flags = source.flags;
    let global = &s.core.global;
    let following = global.following.load(std::sync::atomic::Ordering::Relaxed);
    let replica_read_only = following && s.core.with_config(|c| c.replica_read_only) && !s.replaying;
    // A script with a shebang is a write (and may grow memory) unless it says otherwise:
    // refused up front as Redis's processCommand refuses such a command.
    let oom = global.oom();
    if !flags.compat && !flags.no_writes {
        if replica_read_only {
            return Err(CmdError::ReadOnly);
        }
        if oom && !flags.allow_oom {
            return Err(CmdError::Oom);
        }
        if read_only_command {
            return Err(CmdError::msg("ERR Can not execute a script with write flag using *_ro command."));
        }
    }
    Ok(Rules {
        user: (!s.superuser && !s.user.unrestricted()).then(|| s.user.clone()),
        read_only: read_only_command || (!flags.compat && flags.no_writes),
        allow_oom: !flags.compat && flags.allow_oom,
        oom,
        replica_read_only,
        strict: s.core.with_config(|c| c.lua_strict_keys),
        dirty: false,
    })
}

/// SCRIPT LOAD
async fn load(_s: &mut Session, args: &[Bytes]) -> CmdResult {
    let store = Store::get();
    let sha = crate::engine::script::sha1hex(&args[2]);
    if store.find(&sha).is_none() {
        store.add(compiled(args[2].clone())?);
    }
    Ok(Reply::bulk(sha))
}

/// SCRIPT EXISTS
fn exists(args: &[Bytes]) -> Reply {
    let store = Store::get();
    Reply::Array(args[2..].iter().map(|sha| Reply::Int(i64::from(store.find(sha).is_some()))).collect())
}

/// SCRIPT FLUSH [ASYNC|SYNC]
async fn flush(s: &mut Session, args: &[Bytes]) -> CmdResult {
    match args.get(2) {
        None => {}
        Some(mode)
            if args.len() == 3
                && (mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async")) => {}
        Some(_) => return Err(CmdError::msg("ERR SCRIPT FLUSH only support SYNC|ASYNC option")),
    }
    Store::get().flush();
    // Every core drops what it compiled before the reply leaves.
    s.core
        .router
        .each_core(|_| crate::engine::script::flush_here())
        .await
        .map_err(|_| CmdError::Unavailable)?;
    Ok(Reply::Ok)
}

/// SCRIPT DEBUG: the Lua debugger is not offered.
fn debug(args: &[Bytes]) -> CmdResult {
    let mode = &args[2];
    if mode.eq_ignore_ascii_case(b"no") {
        return Ok(Reply::Ok);
    }
    if mode.eq_ignore_ascii_case(b"yes") || mode.eq_ignore_ascii_case(b"sync") {
        return Err(CmdError::msg("ERR SCRIPT DEBUG is not supported by this server"));
    }
    Err(CmdError::msg("ERR Use SCRIPT DEBUG YES/SYNC/NO"))
}

/// SCRIPT HELP
fn help() -> Reply {
    crate::cmd::args::help(
        "SCRIPT",
        &[
            "DEBUG (YES|SYNC|NO)",
            "    Set the debug mode for subsequent scripts executed.",
            "EXISTS <sha1> [<sha1> ...]",
            "    Return information about the existence of the scripts in the script cache.",
            "FLUSH [ASYNC|SYNC]",
            "    Flush the Lua scripts cache. Very dangerous on replicas.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the scripts cache.",
            "    * SYNC: Synchronously flush the scripts cache.",
            "KILL",
            "    Kill the currently executing Lua script.",
            "LOAD <script>",
            "    Load a script into the scripts cache without executing it.",
        ],
    )
}
