//! DEBUG: the subcommands tools and test suites use. Refused unless `enable-debug-command`
//! allows it (Redis 7.0's default is `no`; `local` allows loopback clients).

use bytes::Bytes;

use crate::cmd::args::is;
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::snapshot;
use crate::engine::spec::flag;
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![Command::session("debug", -2, |s, a| Box::pin(debug(s, a)))
        .flags(flag::ADMIN | flag::NOSCRIPT | flag::LOADING | flag::STALE)
        .docs("server", "1.0.0", "Depends on subcommand.", "A container for debugging commands")
        .syscmd()]
}

/// DEBUG subcommand [argument ...]
async fn debug(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let allowed = match s.core.config().enable_debug_command.as_str() {
        "yes" => true,
        "local" => s.client.addr.ip().is_loopback(),
        _ => false,
    };
    if !allowed {
        return Err(CmdError::msg(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", you can run it \
             from a local connection, otherwise you need to set this option in the configuration file, and then \
             restart the server.",
        ));
    }
    if is(&args[1], "reload") {
        return reload(s, &args[2..]).await;
    }
    Err(CmdError::subcommand_syntax("debug", &args[1]))
}

/// DEBUG RELOAD [MERGE] [NOFLUSH] [NOSAVE]: saves, empties every database and loads the file
/// back (MERGE is accepted: a loaded key always replaces one of the same name; Redis without
/// MERGE stops on a duplicate).
async fn reload(s: &mut Session, options: &[Bytes]) -> CmdResult {
    let (mut noflush, mut nosave) = (false, false);
    for o in options {
        if is(o, "noflush") {
            noflush = true;
        } else if is(o, "nosave") {
            nosave = true;
        } else if !is(o, "merge") {
            return Err(CmdError::msg(
                "ERR DEBUG RELOAD only supports the MERGE, NOFLUSH and NOSAVE options.",
            ));
        }
    }
    match snapshot::reload(&s.core, nosave, noflush).await {
        Ok(()) => Ok(Reply::Ok),
        Err(None) => Err(CmdError::msg("ERR")),
        Err(Some(reason)) => {
            tracing::warn!("DEBUG RELOAD: {reason}");
            Err(CmdError::msg("ERR Error trying to load the RDB dump"))
        }
    }
}
