//! Persistence commands: SAVE writes a snapshot at one cut of every shard (see
//! [`crate::engine::snapshot`]); LASTSAVE says when the last one succeeded.

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::snapshot;
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
        Command::inline("lastsave", 1, |s, _| Ok(Reply::Int(s.core.global.persistence().last_save as i64)))
            .flags(flag::LOADING | flag::STALE | flag::FAST)
            .acl(acl::ADMIN | acl::DANGEROUS)
            .tips(&["nondeterministic_output"])
            .docs("server", "1.0.0", "O(1)", "Get the UNIX time stamp of the last successful save to disk"),
    ]
}

/// SAVE
async fn save(s: &mut Session) -> CmdResult {
    match snapshot::save(&s.core).await {
        Ok(_) => Ok(Reply::Ok),
        Err(snapshot::SaveError::InProgress) => Err(CmdError::msg("ERR Background save already in progress")),
        Err(e) => {
            tracing::warn!("{e}");
            Err(CmdError::msg("ERR"))
        }
    }
}
