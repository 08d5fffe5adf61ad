//! MONITOR: every command the server runs, as a line to each monitoring client, in Redis
//! 7.0's format: `+<unix secs>.<micros> [<db> <ip:port>|lua] "arg" "arg" ...`.
//!
//! A command is fed by the core whose session received it, as it is dispatched (a script's
//! `redis.call`s by the core that runs the script, as `lua`), and reaches the monitors of every
//! core as a posted core message: messages from one core arrive in order, so each client's
//! commands reach every monitor in the order that client sent them. With no monitor anywhere,
//! feeding costs one atomic load.
//!
//! As in Redis: what `skip_monitor` or `admin` commands carry is never shown (scripts and
//! functions are shown as called, their calls after them); a queued command is shown when EXEC
//! runs it, before EXEC itself; secrets are redacted as in the slow log; a monitor's backlog is
//! bounded by the `normal` class of `client-output-buffer-limit`.

use bytes::Bytes;

use crate::engine::command::Command;
use crate::engine::core::Core;
use crate::engine::slot::ShardId;
use crate::facade::Reply;

/// Who ran a fed command.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    /// A client, by address (`ip:port`).
    Client(&'a std::net::SocketAddr),
    /// A script's `redis.call`.
    Lua,
}

/// Sends `args` (a request of command `cmd`, run in database `db` by `source`) to every
/// monitor, if there is one and Redis would show it.
pub(crate) fn feed(core: &Core, db: usize, source: Source<'_>, cmd: &Command, args: &[Bytes]) {
    let global = &core.global;
    if !global.monitors.any() || !cmd.observed.monitored {
        return;
    }
    let (limit, databases) = core.with_config(|c| (c.client_output_buffer_limit.normal, c.databases));
    let db = db_after(cmd.name, args, db, databases);
    let line = line(db, source, &crate::engine::slowlog::redacted(cmd.observed.secrets, args));
    for target in global.monitors.cores() {
        let line = line.clone();
        core.router.post_core(ShardId(target), move |local| {
            let reply = Reply::Status(line.into());
            for client in local.monitors.borrow().iter() {
                client.push(&reply, limit);
            }
        });
    }
}

/// The database a command is shown in: Redis feeds monitors after the command ran, so SELECT
/// shows the database it selected and RESET database 0.
pub(crate) fn db_after(name: &str, args: &[Bytes], db: usize, databases: usize) -> usize {
    match name {
        "select" => args
            .get(1)
            .and_then(|a| crate::num::parse_i64(a))
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n < databases)
            .unwrap_or(db),
        "reset" => 0,
        _ => db,
    }
}

/// The line Redis's `replicationFeedMonitors` builds (without its `+` and CRLF, which the
/// status reply adds).
fn line(db: usize, source: Source<'_>, args: &[Bytes]) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mut out = String::with_capacity(48 + args.iter().map(|a| a.len() + 3).sum::<usize>());
    let _ = match source {
        Source::Client(addr) => std::fmt::Write::write_fmt(
            &mut out,
            format_args!("{}.{:06} [{db} {addr}] ", now.as_secs(), now.subsec_micros()),
        ),
        Source::Lua => std::fmt::Write::write_fmt(
            &mut out,
            format_args!("{}.{:06} [{db} lua] ", now.as_secs(), now.subsec_micros()),
        ),
    };
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        crate::splitargs::repr(arg, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_quotes_every_argument_as_sdscatrepr() {
        let addr: std::net::SocketAddr = "127.0.0.1:5000".parse().expect("an address");
        let args =
            [Bytes::from_static(b"set"), Bytes::from_static(b"k\"1"), Bytes::from_static(b"a\r\n\x01")];
        let text = line(3, Source::Client(&addr), &args);
        let (time, rest) = text.split_once(' ').expect("a time first");
        assert!(time.split_once('.').is_some_and(|(s, us)| s.len() >= 10 && us.len() == 6));
        assert_eq!(rest, r#"[3 127.0.0.1:5000] "set" "k\"1" "a\r\n\x01""#);
        assert!(line(0, Source::Lua, &args[..1]).ends_with(r#" [0 lua] "set""#));
    }
}
