//! SLOWLOG GET / LEN / RESET / HELP over every core's slow log (see
//! [`crate::engine::slowlog`]), with Redis 7.0's replies.

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::spec::flag;
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    let admin = flag::ADMIN | flag::LOADING | flag::STALE;
    vec![Command::container(
        "slowlog",
        -2,
        vec![
            Command::session("get", -2, |s, a| Box::pin(async move { get(s, a) }))
                .flags(admin)
                .tips(&["request_policy:all_nodes", "nondeterministic_output"])
                .docs(
                    "server",
                    "2.2.12",
                    "O(N) where N is the number of entries returned",
                    "Get the slow log's entries",
                )
                .history(&[("4.0.0", "Added client IP address, port and name to the reply.")]),
            Command::session("len", 2, |s, _| {
                Box::pin(async move { Ok(Reply::Int(s.core.global.slowlog.len() as i64)) })
            })
            .flags(admin)
            .tips(&["request_policy:all_nodes", "response_policy:agg_sum", "nondeterministic_output"])
            .docs("server", "2.2.12", "O(1)", "Get the slow log's length"),
            Command::session("reset", 2, |s, _| {
                Box::pin(async move {
                    s.core.global.slowlog.reset();
                    Ok(Reply::Ok)
                })
            })
            .flags(admin)
            .tips(&["request_policy:all_nodes", "response_policy:all_succeeded"])
            .docs(
                "server",
                "2.2.12",
                "O(N) where N is the number of entries in the slowlog",
                "Clear all entries from the slow log",
            ),
            Command::inline("help", 2, |_, _| Ok(help())).flags(flag::LOADING | flag::STALE).docs(
                "server",
                "6.2.0",
                "O(1)",
                "Show helpful text about the different subcommands",
            ),
        ],
    )
    .docs("server", "2.2.12", "Depends on subcommand.", "A container for slow log commands")]
}

/// SLOWLOG GET [count]: the newest `count` entries (10 by default, -1 for all), newest first.
fn get(s: &Session, args: &[Bytes]) -> CmdResult {
    if args.len() > 3 {
        return Err(CmdError::subcommand_syntax("slowlog", &args[1]));
    }
    // Redis answers a count that is not a number with the range message too.
    let count = match args.get(2).map(|a| crate::num::parse_i64(a)) {
        None => Some(10),
        Some(Some(-1)) => None,
        Some(Some(n)) if n >= 0 => Some(n as usize),
        Some(_) => return Err(CmdError::msg("ERR count should be greater than or equal to -1")),
    };
    let entries = s.core.global.slowlog.newest(count);
    Ok(Reply::Array(
        entries
            .into_iter()
            .map(|e| {
                Reply::Array(vec![
                    Reply::Int(e.id as i64),
                    Reply::Int(e.time as i64),
                    Reply::Int(e.micros as i64),
                    Reply::Array(e.args.into_iter().map(Reply::Bulk).collect()),
                    Reply::bulk(e.peer),
                    Reply::bulk(e.name),
                ])
            })
            .collect(),
    ))
}

/// SLOWLOG HELP
fn help() -> Reply {
    crate::cmd::args::help(
        "SLOWLOG",
        &[
            "GET [<count>]",
            "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
            "    Entries are made of:",
            "    id, timestamp, time in microseconds, arguments array, client IP and port,",
            "    client name",
            "LEN",
            "    Return the length of the slowlog.",
            "RESET",
            "    Reset the slowlog.",
        ],
    )
}
