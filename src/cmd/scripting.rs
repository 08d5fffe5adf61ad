//! Scripting commands: EVAL, EVALSHA and their read-only forms, SCRIPT (see
//! [`crate::engine::script`] for where a script runs and what it may do).

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::{Command, Now, NowFn, SessionFn};
use crate::engine::script::busy;
use crate::engine::script::functions::{self, Functions};
use crate::engine::script::run::{Rules, Script, Target};
use crate::engine::script::store::Flags;
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
        let (run, now) = match kind {
            Eval::Body { read_only } if read_only => entries::<false, true>(),
            Eval::Body { .. } => entries::<false, false>(),
            Eval::Sha { read_only } if read_only => entries::<true, true>(),
            Eval::Sha { .. } => entries::<true, false>(),
        };
        let cmd =
            Command::session(name, -3, run)
                .now(now)
                .flags(if read_only { flags | flag::READONLY } else { flags })
                .acl(acl::SCRIPTING)
                .key(match kind {
                    Eval::Body { read_only: false } => KeySpec::index(2).keynum(0, 1, 1).flags(keys).notes(
                        "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE",
                    ),
                    Eval::Body { read_only: true } => KeySpec::index(2).keynum(0, 1, 1).flags(keys).notes(
                        "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS",
                    ),
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
        fcall("fcall", false),
        fcall("fcall_ro", true),
        function_container(),
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
                Command::inline("kill", 2, |_, _| busy::kill(false).map(|()| Reply::Ok))
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

/// FCALL or FCALL_RO.
fn fcall(name: &'static str, read_only: bool) -> Command {
    let flags = flag::NOSCRIPT | flag::SKIP_MONITOR | flag::NO_MANDATORY_KEYS | flag::STALE;
    let cmd =
        if read_only {
            Command::session(name, -3, |s, a| call_function::<true>(s, a).into_pending())
                .now(call_function::<true>)
                .flags(flags | flag::READONLY)
                .key(
                    KeySpec::index(2).keynum(0, 1, 1).flags(key::RO | key::ACCESS).notes(
                        "We cannot tell how the keys will be used so we assume the worst, RO and ACCESS",
                    ),
                )
                .docs(
                    "scripting",
                    "7.0.0",
                    "Depends on the function that is executed.",
                    "Invoke a read-only function",
                )
        } else {
            Command::session(name, -3, |s, a| call_function::<false>(s, a).into_pending())
                .now(call_function::<false>)
                .flags(flags)
                .key(
                    KeySpec::index(2).keynum(0, 1, 1).flags(key::RW | key::ACCESS | key::UPDATE).notes(
                        "We cannot tell how the keys will be used so we assume the worst, RW and UPDATE",
                    ),
                )
                .docs("scripting", "7.0.0", "Depends on the function that is executed.", "Invoke a function")
                .may_replicate()
        };
    cmd.acl(acl::SCRIPTING).fan_out()
}

/// FUNCTION and its subcommands.
fn function_container() -> Command {
    let tips_all: &'static [&'static str] = &["request_policy:all_shards", "response_policy:all_succeeded"];
    Command::container(
        "function",
        -2,
        vec![
            Command::session("load", -3, |s, a| Box::pin(function_load(s, a)))
                .flags(flag::WRITE | flag::DENYOOM | flag::NOSCRIPT)
                .acl(acl::SCRIPTING)
                .tips(tips_all)
                .docs(
                    "scripting",
                    "7.0.0",
                    "O(1) (considering compilation time is redundant)",
                    "Create a function with the given arguments (name, code, description)",
                ),
            Command::session("delete", 3, |s, a| Box::pin(function_delete(s, a)))
                .flags(flag::WRITE | flag::NOSCRIPT)
                .acl(acl::SCRIPTING)
                .tips(tips_all)
                .docs("scripting", "7.0.0", "O(1)", "Delete a function by name"),
            Command::session("flush", -2, |s, a| Box::pin(function_flush(s, a)))
                .flags(flag::WRITE | flag::NOSCRIPT)
                .acl(acl::SCRIPTING)
                .tips(tips_all)
                .docs(
                    "scripting",
                    "7.0.0",
                    "O(N) where N is the number of functions deleted",
                    "Deleting all functions",
                ),
            Command::inline("list", -2, |_, a| function_list(a))
                .flags(flag::NOSCRIPT)
                .acl(acl::SCRIPTING)
                .tips(&["nondeterministic_output_order"])
                .docs(
                    "scripting",
                    "7.0.0",
                    "O(N) where N is the number of functions",
                    "List information about all the functions",
                ),
            Command::inline("stats", 2, |_, _| function_stats())
                .flags(flag::NOSCRIPT | flag::ALLOW_BUSY)
                .acl(acl::SCRIPTING)
                .tips(&["nondeterministic_output", "request_policy:all_shards", "response_policy:special"])
                .docs(
                    "scripting",
                    "7.0.0",
                    "O(1)",
                    "Return information about the function currently running (name, description, duration)",
                ),
            Command::inline("kill", 2, |_, _| busy::kill(true).map(|()| Reply::Ok))
                .flags(flag::NOSCRIPT | flag::ALLOW_BUSY)
                .acl(acl::SCRIPTING)
                .tips(&["request_policy:all_shards", "response_policy:one_succeeded"])
                .docs("scripting", "7.0.0", "O(1)", "Kill the function currently in execution."),
            Command::inline("dump", 2, |_, _| Ok(function_dump()))
                .flags(flag::NOSCRIPT)
                .acl(acl::SCRIPTING)
                .docs(
                    "scripting",
                    "7.0.0",
                    "O(N) where N is the number of functions",
                    "Dump all functions into a serialized binary payload",
                ),
            Command::session("restore", -3, |s, a| Box::pin(function_restore(s, a)))
                .flags(flag::WRITE | flag::DENYOOM | flag::NOSCRIPT)
                .acl(acl::SCRIPTING)
                .tips(tips_all)
                .docs(
                    "scripting",
                    "7.0.0",
                    "O(N) where N is the number of functions on the payload",
                    "Restore all the functions on the given payload",
                ),
            Command::inline("help", 2, |_, _| Ok(function_help()))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::SCRIPTING)
                .docs("scripting", "7.0.0", "O(1)", "Show helpful text about the different subcommands"),
        ],
    )
    .docs("scripting", "7.0.0", "Depends on subcommand.", "A container for function commands")
}

/// FCALL, FCALL_RO.
fn call_function<'a, const READ_ONLY: bool>(s: &'a mut Session, args: &'a [Bytes]) -> Now<'a> {
    let script = Functions::get().function(&args[1]).ok_or(CmdError::msg("ERR Function not found")).and_then(
        |function| {
            let numkeys = key_count(args, CmdError::msg("ERR Bad number of keys provided"))?;
            let flags = function.flags;
            script(s, Target::Function(function), flags, READ_ONLY, args, numkeys)
        },
    );
    start(s, script)
}

/// FUNCTION LOAD [REPLACE] code
async fn function_load(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let mut replace = false;
    let mut at = 2;
    while at < args.len() - 1 {
        if args[at].eq_ignore_ascii_case(b"replace") {
            replace = true;
            at += 1;
            continue;
        }
        return Err(CmdError::text(format!(
            "ERR Unknown option given: {}",
            String::from_utf8_lossy(&args[at])
        )));
    }
    let Some(code) = args.get(at) else { return Err(CmdError::msg("ERR Function code is missing")) };
    let library = crate::engine::script::compile_library(code)?;
    let name = library.name.clone();
    changed(s, args, || {
        let all = Functions::get();
        if all.has(&library.name) && !replace {
            return Err(CmdError::text(format!("ERR Library '{}' already exists", library.name)));
        }
        all.add(library)
    })
    .await?;
    Ok(Reply::bulk(name))
}

/// Applies `change` to the process's functions at one point of every shard's order (holding
/// every gate, or inside the running EXEC's transaction) and, when it succeeds, logs the
/// command as it came for the AOF and the replicas, as Redis propagates FUNCTION LOAD, DELETE,
/// FLUSH and RESTORE.
async fn changed(
    s: &mut Session,
    args: &[Bytes],
    change: impl FnOnce() -> Result<(), CmdError>,
) -> CmdResult {
    let logged: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
    if let Some(tx) = s.exec_tx.clone() {
        change()?;
        tx.log(None, &logged);
        return Ok(Reply::Ok);
    }
    let router = &s.core.router;
    let shards = (0..router.shards()).map(crate::engine::slot::ShardId).collect();
    let tx = router.begin(shards).await.map_err(|_| CmdError::Unavailable)?;
    let done = change();
    if done.is_ok() {
        tx.log(None, &logged);
    }
    tx.release().await;
    done.map(|()| Reply::Ok)
}

/// FUNCTION DUMP
fn function_dump() -> Reply {
    Reply::Bulk(Bytes::from(functions::dump(&Functions::get().libraries())))
}

/// FUNCTION RESTORE payload [FLUSH|APPEND|REPLACE]
async fn function_restore(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if args.len() > 4 {
        return Err(CmdError::subcommand_syntax("function", &args[1]));
    }
    let policy = match args.get(3) {
        None => functions::Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"flush") => functions::Policy::Flush,
        Some(p) if p.eq_ignore_ascii_case(b"append") => functions::Policy::Append,
        Some(p) if p.eq_ignore_ascii_case(b"replace") => functions::Policy::Replace,
        Some(_) => {
            return Err(CmdError::msg(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE.",
            ))
        }
    };
    let libraries = functions::undump(&args[2])?
        .iter()
        .map(crate::engine::script::compile_library)
        .collect::<Result<Vec<_>, _>>()?;
    changed(s, args, || Functions::get().restore(libraries, policy)).await
}

/// FUNCTION DELETE library
async fn function_delete(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let name = String::from_utf8_lossy(&args[2]).into_owned();
    changed(s, args, || {
        if Functions::get().delete(&name) {
            Ok(())
        } else {
            Err(CmdError::msg("ERR Library not found"))
        }
    })
    .await
}

/// FUNCTION FLUSH [ASYNC|SYNC]
async fn function_flush(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if !flush_mode_ok(args) {
        return Err(CmdError::msg("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"));
    }
    changed(s, args, || {
        Functions::get().flush();
        Ok(())
    })
    .await
}

/// FUNCTION LIST [WITHCODE] [LIBRARYNAME pattern]
fn function_list(args: &[Bytes]) -> CmdResult {
    let (mut with_code, mut pattern) = (false, None);
    let mut i = 2;
    while i < args.len() {
        if !with_code && args[i].eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if pattern.is_none() && args[i].eq_ignore_ascii_case(b"libraryname") {
            if i >= args.len() - 1 {
                return Err(CmdError::msg("ERR library name argument was not given"));
            }
            i += 1;
            pattern = Some(args[i].clone());
        } else {
            return Err(CmdError::text(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(&args[i])
            )));
        }
        i += 1;
    }
    let text = |t: &str| Reply::bulk(t);
    let libraries = Functions::get()
        .libraries()
        .into_iter()
        .filter(|l| pattern.as_ref().is_none_or(|p| crate::glob::matches(p, l.name.as_bytes(), true)))
        .map(|l| {
            let functions = l
                .functions
                .values()
                .map(|f| {
                    Reply::Map(vec![
                        (text("name"), text(&f.name)),
                        (text("description"), f.description.as_deref().map_or(Reply::Nil, text)),
                        (text("flags"), Reply::Set(f.flags.names().into_iter().map(Reply::status).collect())),
                    ])
                })
                .collect();
            let mut fields = vec![
                (text("library_name"), text(&l.name)),
                (text("engine"), text("LUA")),
                (text("functions"), Reply::Array(functions)),
            ];
            if with_code {
                fields.push((text("library_code"), Reply::Bulk(l.code.clone())));
            }
            Reply::Map(fields)
        })
        .collect();
    Ok(Reply::Array(libraries))
}

/// FUNCTION STATS
fn function_stats() -> CmdResult {
    let libraries = Functions::get().libraries();
    let functions: usize = libraries.iter().map(|l| l.functions.len()).sum();
    let text = |t: &str| Reply::bulk(t);
    // As Redis: a busy function shows; a busy EVAL script refuses.
    let running = match busy::oldest() {
        Some(b) if b.function => Reply::Map(vec![
            (text("name"), Reply::bulk(b.name.clone())),
            (text("command"), Reply::Array(b.command.iter().cloned().map(Reply::Bulk).collect())),
            (text("duration_ms"), Reply::Int(b.started.elapsed().as_millis() as i64)),
        ]),
        Some(b) => return Err(b.refusal()),
        None => Reply::Nil,
    };
    Ok(Reply::Map(vec![
        (text("running_script"), running),
        (
            text("engines"),
            Reply::Map(vec![(
                text("LUA"),
                Reply::Map(vec![
                    (text("libraries_count"), Reply::Int(libraries.len() as i64)),
                    (text("functions_count"), Reply::Int(functions as i64)),
                ]),
            )]),
        ),
    ]))
}

/// FUNCTION HELP
fn function_help() -> Reply {
    crate::cmd::args::help(
        "FUNCTION",
        &[
            "LOAD [REPLACE] <FUNCTION CODE>",
            "    Create a new library with the given library name and code.",
            "DELETE <LIBRARY NAME>",
            "    Delete the given library.",
            "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
            "    Return general information on all the libraries:",
            "    * Library name",
            "    * The engine used to run the Library",
            "    * Library description",
            "    * Functions list",
            "    * Library code (if WITHCODE is given)",
            "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
            "STATS",
            "    Return information about the current function running:",
            "    * Function name",
            "    * Command used to run the function",
            "    * Duration in MS that the function is running",
            "    If no function is running, return nil",
            "    In addition, returns a list of available engines.",
            "KILL",
            "    Kill the current running function.",
            "FLUSH [ASYNC|SYNC]",
            "    Delete all the libraries.",
            "    When called without the optional mode argument, the behavior is determined by the",
            "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
            "    * ASYNC: Asynchronously flush the libraries.",
            "    * SYNC: Synchronously flush the libraries.",
            "DUMP",
            "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
            "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
            "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
            "    control how to handle existing libraries (default APPEND):",
            "    * FLUSH: delete all existing libraries.",
            "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
            "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
            "      libraries with the new libraries (notice that even on this option there is a chance of failure",
            "      in case of functions name collision with another library).",
        ],
    )
}

/// One EVAL-family command's two entries: the session's path, and at once (see
/// [`Command::now`]).
fn entries<const SHA: bool, const READ_ONLY: bool>() -> (SessionFn, NowFn) {
    (|s, a| eval::<SHA, READ_ONLY>(s, a).into_pending(), eval::<SHA, READ_ONLY>)
}

/// EVAL, EVALSHA, EVAL_RO, EVALSHA_RO: at once when the script can run so (see
/// [`crate::engine::script::run::now`]).
fn eval<'a, const SHA: bool, const READ_ONLY: bool>(s: &'a mut Session, args: &'a [Bytes]) -> Now<'a> {
    let script = eval_script::<SHA, READ_ONLY>(s, args);
    start(s, script)
}

/// The script an EVAL-family request runs (compiled and kept first, for EVAL of a new body).
fn eval_script<const SHA: bool, const READ_ONLY: bool>(
    s: &mut Session,
    args: &[Bytes],
) -> Result<Script, CmdError> {
    if SHA && args[1].len() != 40 {
        return Err(CmdError::NoScript);
    }
    let numkeys = key_count(args, CmdError::NotInteger)?;
    let store = Store::get();
    let source = if SHA {
        store.find(&args[1]).ok_or(CmdError::NoScript)?
    } else {
        match store.find(&crate::engine::script::sha1hex(&args[1])) {
            Some(known) => known,
            None => store.add(compiled(args[1].clone())?),
        }
    };
    let flags = source.flags;
    script(s, Target::Eval(source), flags, READ_ONLY, args, numkeys)
}

/// Runs a script or function that could start (see [`crate::engine::script::run::now`]).
fn start(s: &mut Session, script: Result<Script, CmdError>) -> Now<'_> {
    match script {
        Ok(script) => crate::engine::script::run::now(s, script),
        Err(e) => Now::Done(Err(e)),
    }
}

/// EVAL's or FCALL's `target` on `args` (`numkeys` of them keys, checked), with the checks it
/// starts with, ready to run.
fn script(
    s: &mut Session,
    target: Target,
    flags: Flags,
    read_only: bool,
    args: &[Bytes],
    numkeys: usize,
) -> Result<Script, CmdError> {
    let rules = prepare(s, flags, read_only)?;
    // What it writes waits for the disk under `appendfsync always`, as a write command's does.
    s.wrote |= !rules.read_only;
    let split = 3 + numkeys;
    let command = if matches!(target, Target::Function(_)) { args.to_vec() } else { Vec::new() };
    Ok(Script { target, keys: args[3..split].to_vec(), argv: args[split..].to_vec(), rules, command })
}

/// EVAL's and FCALL's key count, checked against the arguments as Redis checks it.
fn key_count(args: &[Bytes], not_integer: CmdError) -> Result<usize, CmdError> {
    let numkeys = crate::num::parse_i64(&args[2]).ok_or(not_integer)?;
    if numkeys > args.len() as i64 - 3 {
        return Err(CmdError::msg("ERR Number of keys can't be greater than number of args"));
    }
    usize::try_from(numkeys).map_err(|_| CmdError::msg("ERR Number of keys can't be negative"))
}

/// Whether FLUSH's optional argument is SYNC or ASYNC (or absent).
fn flush_mode_ok(args: &[Bytes]) -> bool {
    match args.get(2) {
        None => true,
        Some(mode) => {
            args.len() == 3 && (mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async"))
        }
    }
}

/// A new script, checked: its shebang parsed and its code compiled here (the reply of EVAL
/// or SCRIPT LOAD reports a syntax error; every core compiles it again when it first runs it).
fn compiled(body: Bytes) -> Result<Source, CmdError> {
    let source = Source::new(body)?;
    crate::engine::script::compile_check(&source)?;
    Ok(source)
}

/// The checks a script starts with, as Redis's `scriptPrepareForRun` makes them.
fn prepare(s: &Session, flags: Flags, read_only_command: bool) -> Result<Rules, CmdError> {
    let global = &s.core.global;
    let following = global.following.load(std::sync::atomic::Ordering::Relaxed);
    let (replica_read_only, strict, busy_ms) =
        s.core.with_config(|c| (c.replica_read_only, c.lua_strict_keys, c.busy_reply_threshold));
    let replica_read_only = following && replica_read_only && !s.replaying;
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
        strict,
        dirty: false,
        busy_after: std::time::Duration::from_millis(busy_ms),
        from_primary: s.replaying,
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
    if !flush_mode_ok(args) {
        return Err(CmdError::msg("ERR SCRIPT FLUSH only support SYNC|ASYNC option"));
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
