//! MONITOR: the connection gets every command the server runs from now on (see
//! [`crate::engine::monitor`]) until RESET or it closes.

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::spec::flag;
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![Command::session("monitor", 1, |s, _| Box::pin(async move { monitor(s) }))
        .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
        .docs("server", "1.0.0", "", "Listen for all requests received by the server in real time")]
}

/// MONITOR: refused inside EXEC (which may not block, as Redis's `CLIENT_DENY_BLOCKING`);
/// ignored, with no reply at all, by a client that monitors already (as Redis).
fn monitor(s: &mut Session) -> CmdResult {
    if s.in_exec() {
        return Err(CmdError::msg("ERR MONITOR isn't allowed for DENY BLOCKING client"));
    }
    if s.client.monitor.get() || s.client.replica.get() {
        return Ok(Reply::Several(Vec::new()));
    }
    s.start_monitoring();
    Ok(Reply::Ok)
}
