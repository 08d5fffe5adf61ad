//! COMMAND and its subcommands: what the registry knows of every command, in Redis 7.0's reply
//! formats (COMMAND INFO's rows, COMMAND DOCS' maps), and the keys of a request as its key
//! specs find them (GETKEYS).

use bytes::Bytes;

use crate::cmd::args;
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::{registry, Command, Commands};
use crate::engine::spec::{acl, flag, Acl, BeginSearch, FindKeys, KeySpec};
use crate::facade::Reply;
use crate::glob;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![Command::inline("command", -1, |_, _| Ok(all(registry())))
        .subcommands(vec![
            Command::inline("count", 2, |_, _| Ok(Reply::Int(count(registry()) as i64)))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("server", "2.8.13", "O(1)", "Get total number of Redis commands"),
            Command::inline("list", -2, |_, a| list(registry(), a))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .tips(&["nondeterministic_output_order"])
                .docs(
                    "server",
                    "7.0.0",
                    "O(N) where N is the total number of Redis commands",
                    "Get an array of Redis command names",
                ),
            Command::inline("info", -2, |_, a| Ok(info(registry(), &a[2..])))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .tips(&["nondeterministic_output_order"])
                .docs(
                    "server",
                    "2.8.13",
                    "O(N) where N is the number of commands to look up",
                    "Get array of specific Redis command details, or all when no argument is given.",
                )
                .history(&[("7.0.0", "Allowed to be called with no argument to get info on all commands.")]),
            Command::inline("docs", -2, |_, a| Ok(docs(registry(), &a[2..])))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .tips(&["nondeterministic_output_order"])
                .docs(
                    "server",
                    "7.0.0",
                    "O(N) where N is the number of commands to look up",
                    "Get array of specific Redis command documentation",
                ),
            Command::inline("getkeys", -4, |_, a| getkeys(registry(), &a[2..], false))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs(
                    "server",
                    "2.8.13",
                    "O(N) where N is the number of arguments to the command",
                    "Extract keys given a full Redis command",
                ),
            Command::inline("getkeysandflags", -4, |_, a| getkeys(registry(), &a[2..], true))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs(
                    "server",
                    "7.0.0",
                    "O(N) where N is the number of arguments to the command",
                    "Extract keys and access flags given a full Redis command",
                ),
            Command::inline("help", 2, |_, _| Ok(command_help()))
                .flags(flag::LOADING | flag::STALE)
                .acl(acl::CONNECTION)
                .docs("server", "5.0.0", "O(1)", "Show helpful text about the different subcommands"),
        ])
        .flags(flag::LOADING | flag::STALE)
        .acl(acl::CONNECTION)
        .tips(&["nondeterministic_output_order"])
        .docs(
            "server",
            "2.8.13",
            "O(N) where N is the total number of Redis commands",
            "Get array of Redis command details",
        )]
}

/// Every command and subcommand, in registry order.
fn every(commands: &Commands) -> impl Iterator<Item = &Command> {
    commands.iter().flat_map(|c| std::iter::once(c).chain(c.subcommands.iter()))
}

/// How many commands there are (subcommands are part of theirs, as Redis counts).
fn count(commands: &Commands) -> usize {
    commands.iter().count()
}

/// COMMAND: every command's row.
fn all(commands: &Commands) -> Reply {
    Reply::Array(commands.iter().map(info_row).collect())
}

/// A command by name, `container|sub` for a subcommand, as Redis's `lookupCommandBySds`.
fn named<'a>(commands: &'a Commands, name: &[u8]) -> Option<&'a Command> {
    let mut parts = name.splitn(2, |&b| b == b'|');
    let base = commands.get(parts.next()?)?;
    match parts.next() {
        None => Some(base),
        Some(sub) => base.subcommand(sub),
    }
}

/// COMMAND INFO [name ...]: the rows asked for (a null for an unknown name), or all.
fn info(commands: &Commands, names: &[Bytes]) -> Reply {
    if names.is_empty() {
        return all(commands);
    }
    Reply::Array(names.iter().map(|n| named(commands, n).map_or(Reply::Nil, info_row)).collect())
}

/// A command's COMMAND INFO row, as Redis 7.0 builds it (`addReplyCommandInfo`).
fn info_row(c: &Command) -> Reply {
    let legacy = c.legacy;
    Reply::Array(vec![
        Reply::bulk(&c.full_name),
        Reply::Int(i64::from(c.arity)),
        Reply::Set(c.flags.names().map(Reply::status).collect()),
        Reply::Int(i64::from(legacy.first)),
        Reply::Int(i64::from(legacy.last)),
        Reply::Int(i64::from(legacy.step)),
        Reply::Set(c.acl.names().map(Reply::status).collect()),
        Reply::Set(c.tips.iter().map(Reply::bulk).collect()),
        Reply::Set(c.keys.iter().map(key_spec).collect()),
        Reply::Array(c.subcommands.iter().map(info_row).collect()),
    ])
}

/// One key spec, as COMMAND INFO shows it.
fn key_spec(k: &KeySpec) -> Reply {
    let text = Reply::bulk;
    let map = |pairs: Vec<(&'static str, Reply)>| {
        Reply::Map(pairs.into_iter().map(|(k, v)| (text(k), v)).collect())
    };
    let begin = match k.begin {
        BeginSearch::Index(i) => {
            map(vec![("type", text("index")), ("spec", map(vec![("index", Reply::Int(i64::from(i)))]))])
        }
        BeginSearch::Keyword { keyword, startfrom } => map(vec![
            ("type", text("keyword")),
            ("spec", map(vec![("keyword", text(keyword)), ("startfrom", Reply::Int(i64::from(startfrom)))])),
        ]),
        BeginSearch::Unknown => map(vec![("type", text("unknown")), ("spec", map(Vec::new()))]),
    };
    let find = match k.find {
        FindKeys::Range { last, step, limit } => map(vec![
            ("type", text("range")),
            (
                "spec",
                map(vec![
                    ("lastkey", Reply::Int(i64::from(last))),
                    ("keystep", Reply::Int(i64::from(step))),
                    ("limit", Reply::Int(i64::from(limit))),
                ]),
            ),
        ]),
        FindKeys::KeyNum { index, first, step } => map(vec![
            ("type", text("keynum")),
            (
                "spec",
                map(vec![
                    ("keynumidx", Reply::Int(i64::from(index))),
                    ("firstkey", Reply::Int(i64::from(first))),
                    ("keystep", Reply::Int(i64::from(step))),
                ]),
            ),
        ]),
        FindKeys::Unknown => map(vec![("type", text("unknown")), ("spec", map(Vec::new()))]),
    };
    let mut pairs = Vec::with_capacity(4);
    if let Some(notes) = k.notes {
        pairs.push(("notes", text(notes)));
    }
    pairs.push(("flags", Reply::Set(k.flags.names().map(Reply::status).collect())));
    pairs.push(("begin_search", begin));
    pairs.push(("find_keys", find));
    map(pairs)
}

/// COMMAND DOCS [name ...]: the docs asked for (unknown names are left out), or all.
fn docs(commands: &Commands, names: &[Bytes]) -> Reply {
    let picked: Vec<&Command> = if names.is_empty() {
        commands.iter().collect()
    } else {
        names.iter().filter_map(|n| named(commands, n)).collect()
    };
    Reply::Map(picked.into_iter().map(|c| (Reply::bulk(&c.full_name), docs_of(c))).collect())
}

/// A command's COMMAND DOCS map, as Redis 7.0 builds it (`addReplyCommandDocs`), without the
/// arguments' tree.
fn docs_of(c: &Command) -> Reply {
    let d = &c.docs;
    let text = Reply::bulk;
    let mut pairs = vec![
        (text("summary"), text(d.summary)),
        (text("since"), text(d.since)),
        (text("group"), text(d.group)),
    ];
    if !d.complexity.is_empty() {
        pairs.push((text("complexity"), text(d.complexity)));
    }
    let mut doc_flags = Vec::new();
    if d.deprecated.is_some() {
        doc_flags.push(Reply::status("deprecated"));
    }
    if d.syscmd {
        doc_flags.push(Reply::status("syscmd"));
    }
    if !doc_flags.is_empty() {
        pairs.push((text("doc_flags"), Reply::Set(doc_flags)));
    }
    if let Some((since, by)) = d.deprecated {
        pairs.push((text("deprecated_since"), text(since)));
        pairs.push((text("replaced_by"), text(by)));
    }
    if !d.history.is_empty() {
        let history = d.history.iter().map(|(v, what)| Reply::Array(vec![text(v), text(what)])).collect();
        pairs.push((text("history"), Reply::Set(history)));
    }
    if !c.subcommands.is_empty() {
        let subs = c.subcommands.iter().map(|s| (text(&s.full_name), docs_of(s))).collect();
        pairs.push((text("subcommands"), Reply::Map(subs)));
    }
    Reply::Map(pairs)
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]
fn list(commands: &Commands, args: &[Bytes]) -> CmdResult {
    enum Filter<'a> {
        All,
        Module,
        Category(Option<Acl>),
        Pattern(&'a [u8]),
    }
    let filter = match &args[2..] {
        [] => Filter::All,
        [by, kind, arg] if args::is(by, "filterby") => match () {
            () if args::is(kind, "module") => Filter::Module,
            () if args::is(kind, "aclcat") => {
                Filter::Category(Acl::named(&format!("@{}", String::from_utf8_lossy(arg))))
            }
            () if args::is(kind, "pattern") => Filter::Pattern(arg),
            () => return Err(CmdError::Syntax),
        },
        _ => return Err(CmdError::Syntax),
    };
    let keep = |c: &&Command| match &filter {
        Filter::All => true,
        // No modules here.
        Filter::Module | Filter::Category(None) => false,
        Filter::Category(Some(cat)) => c.acl.contains(*cat),
        Filter::Pattern(p) => glob::matches(p, c.full_name.as_bytes(), true),
    };
    Ok(Reply::Array(every(commands).filter(keep).map(|c| Reply::bulk(&c.full_name)).collect()))
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS command [arg ...]: the keys a request names, as its key
/// specs find them.
fn getkeys(commands: &Commands, request: &[Bytes], with_flags: bool) -> CmdResult {
    let Ok(cmd) = commands.resolve(request) else {
        return Err(CmdError::msg("ERR Invalid command specified"));
    };
    // Redis's doesCommandHaveKeys: a spec that only routes (NOT_KEY, sharded pub/sub's
    // channels) is no key.
    if cmd.keys.iter().all(|k| k.flags.contains(crate::engine::spec::key::NOT_KEY)) {
        return Err(CmdError::msg("ERR The command has no key arguments"));
    }
    if !cmd.arity_ok(request.len()) {
        return Err(CmdError::msg("ERR Invalid number of arguments specified for command"));
    }
    let Some(found) = cmd.keys_and_flags(request) else {
        if cmd.flags.contains(flag::NO_MANDATORY_KEYS) {
            return Ok(Reply::Array(vec![]));
        }
        return Err(CmdError::msg("ERR Invalid arguments specified for command"));
    };
    Ok(Reply::Array(
        found
            .into_iter()
            .map(|(p, flags)| {
                let key = Reply::Bulk(request[p].clone());
                if with_flags {
                    Reply::Array(vec![key, Reply::Set(flags.names().map(Reply::status).collect())])
                } else {
                    key
                }
            })
            .collect(),
    ))
}

/// COMMAND HELP
fn command_help() -> Reply {
    args::help(
        "COMMAND",
        &[
            "(no subcommand)",
            "    Return details about all Redis commands.",
            "COUNT",
            "    Return the total number of commands in this Redis server.",
            "LIST",
            "    Return a list of all commands in this Redis server.",
            "INFO [<command-name> ...]",
            "    Return details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "DOCS [<command-name> ...]",
            "    Return documentation details about multiple Redis commands.",
            "    If no command names are given, documentation details for all",
            "    commands are returned.",
            "GETKEYS <full-command>",
            "    Return the keys from a full Redis command.",
            "GETKEYSANDFLAGS <full-command>",
            "    Return the keys and the access flags from a full Redis command.",
        ],
    )
}
