//! Persistence commands: SAVE and BGSAVE write a snapshot at one cut of every shard (see
//! [`crate::engine::snapshot`]); LASTSAVE says when the last one succeeded.

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::aof;
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
        Command::session("bgrewriteaof", 1, |s, _| Box::pin(bgrewriteaof(s)))
            .flags(flag::ADMIN | flag::NOSCRIPT | flag::NO_ASYNC_LOADING)
            .docs("server", "1.0.0", "O(1)", "Asynchronously rewrite the append-only file"),
        Command::inline("lastsave", 1, |s, _| Ok(Reply::Int(s.core.global.persistence().last_save as i64)))
            .flags(flag::LOADING | flag::STALE | flag::FAST)
            .acl(acl::ADMIN | acl::DANGEROUS)
            .tips(&["nondeterministic_output"])
            .docs("server", "1.0.0", "O(1)", "Get the UNIX time stamp of the last successful save to disk"),
    ]
}

/// BGREWRITEAOF: a new AOF base from a snapshot (see [`crate::engine::aof`]); scheduled inside
/// EXEC or while a background save runs, as Redis schedules it while another child runs.
async fn bgrewriteaof(s: &mut Session) -> CmdResult {
    const SCHEDULED: &str = "Background append only file rewriting scheduled";
    if s.in_exec() {
        let mut state = s.core.global.persistence();
        if state.aof.rewriting {
            return Err(CmdError::msg("ERR Background append only file rewriting already in progress"));
        }
        state.aof.rewrite_scheduled = true;
        return Ok(Reply::status(SCHEDULED));
    }
    match aof::rewrite(&s.core).await {
        Ok(aof::Started::Now) => Ok(Reply::status("Background append only file rewriting started")),
        Ok(aof::Started::Scheduled) => Ok(Reply::status(SCHEDULED)),
        Err(snapshot::SaveError::RewriteInProgress) => {
            Err(CmdError::msg("ERR Background append only file rewriting already in progress"))
        }
        Err(e) => {
            tracing::warn!("{e}");
            Err(CmdError::msg(
                "ERR Can't execute an AOF background rewriting. Please check the server logs for more information.",
            ))
        }
    }
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
        Err(snapshot::SaveError::RewriteInProgress) if args.len() == 2 => {
            global.persistence().scheduled = true;
            Ok(Reply::status("Background saving scheduled"))
        }
        Err(snapshot::SaveError::RewriteInProgress) => Err(CmdError::msg(
            "ERR Another child process is active (AOF?): can't BGSAVE right now. Use BGSAVE SCHEDULE in order to \
             schedule a BGSAVE whenever possible.",
        )),
        Err(e) => {
            tracing::warn!("{e}");
            Err(CmdError::msg("ERR"))
        }
    }
}
