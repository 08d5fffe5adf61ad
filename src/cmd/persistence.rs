//! Persistence commands: SAVE and BGSAVE write a snapshot at one cut of every shard (see
//! [`crate::engine::snapshot`]); LASTSAVE says when the last one succeeded.

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::snapshot::{self, OnRunning};
use crate::engine::spec::{acl, flag};
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::session("save", 1, |s, _| Box::pin(save(s)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING | flag::NO_MULTI)
            .docs(
                "server",
                "1.0.0",
                "O(N) where N is the total number of keys in all databases",
                "Synchronously save the dataset to disk",
            ),
        Command::session("bgsave", -1, |s, a| Box::pin(bgsave(s, a)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING)
            .docs("server", "1.0.0", "O(1)", "Asynchronously save the dataset to disk")
            .history(&[("3.2.2", "Added the `SCHEDULE` option.")]),
        Command::inline("lastsave", 1, |s, _| Ok(Reply::Int(s.core.global.persistence().last_save as i64)))
            .flags(flag::LOADING | flag::STALE | flag::FAST)
            .acl(acl::ADMIN | acl::DANGEROUS)
            .tips(&["nondeterministic_output"])
            .docs("server", "1.0.0", "O(1)", "Get the UNIX time stamp of the last successful save to disk"),
    ]
}

/// SAVE
async fn save(s: &mut Session) -> CmdResult {
    match snapshot::save(&s.core, None, OnRunning::Refuse).await {
        Ok(_) => Ok(Reply::Ok),
        Err(snapshot::SaveError::InProgress) => Err(CmdError::msg("ERR Background save already in progress")),
        Err(e) => {
            tracing::warn!("{e}");
            Err(CmdError::msg("ERR"))
        }
    }
}

/// BGSAVE [SCHEDULE]: starts a background save; inside EXEC it is scheduled for after it, as
/// Redis schedules it while another child runs.
async fn bgsave(s: &mut Session, args: &[Bytes]) -> CmdResult {
    match args {
        [_] => {}
        [_, a] if a.eq_ignore_ascii_case(b"schedule") => {}
        _ => return Err(CmdError::Syntax),
    }
    let global = &s.core.global;
    if s.in_exec() {
        let mut state = global.persistence();
        if state.running.as_ref().is_some_and(|r| r.background) {
            return Err(CmdError::msg("ERR Background save already in progress"));
        }
        state.scheduled = true;
        return Ok(Reply::status("Background saving scheduled"));
    }
    match snapshot::bgsave(&s.core).await {
        Ok(()) => Ok(Reply::status("Background saving started")),
        Err(snapshot::SaveError::InProgress) => Err(CmdError::msg("ERR Background save already in progress")),
        Err(e) => {
            tracing::warn!("{e}");
            Err(CmdError::msg("ERR"))
        }
    }
}
