//! Transaction commands: MULTI, EXEC, DISCARD, WATCH, UNWATCH. EXEC itself is the engine's
//! ([`crate::engine::transaction`]): it plans and locks what the queued commands touch.

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::shard::Shard;
use crate::engine::spec::{acl, flag, key, KeySpec};
use crate::engine::transaction;
use crate::facade::Reply;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::session("multi", 1, |s, _| Box::pin(async move { multi(s) }))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::ALLOW_BUSY)
            .acl(acl::TRANSACTION)
            .docs("transactions", "1.2.0", "O(1)", "Mark the start of a transaction block")
            .control(),
        Command::session("exec", 1, |s, a| Box::pin(transaction::exec(s, a)))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::SKIP_SLOWLOG)
            .acl(acl::TRANSACTION)
            .docs(
                "transactions",
                "1.2.0",
                "Depends on commands in the transaction",
                "Execute all commands issued after MULTI",
            )
            .control(),
        Command::session("discard", 1, |s, _| Box::pin(discard(s)))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::ALLOW_BUSY)
            .acl(acl::TRANSACTION)
            .docs(
                "transactions",
                "2.0.0",
                "O(N), when N is the number of queued commands",
                "Discard all commands issued after MULTI",
            )
            .control(),
        Command::session("watch", -2, |s, a| Box::pin(watch(s, a)))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::ALLOW_BUSY)
            .acl(acl::TRANSACTION)
            .key(KeySpec::index(1).range(-1, 1, 0).flags(key::RO))
            .docs(
                "transactions",
                "2.2.0",
                "O(1) for every key.",
                "Watch the given keys to determine execution of the MULTI/EXEC block",
            )
            .control(),
        Command::session("unwatch", 1, |s, _| Box::pin(unwatch(s)))
            .flags(flag::NOSCRIPT | flag::LOADING | flag::STALE | flag::FAST | flag::ALLOW_BUSY)
            .acl(acl::TRANSACTION)
            .docs("transactions", "2.2.0", "O(1)", "Forget about all watched keys"),
    ]
}

/// MULTI
fn multi(s: &mut Session) -> CmdResult {
    if s.multi.is_some() {
        return Err(CmdError::msg("ERR MULTI calls can not be nested"));
    }
    s.begin_multi();
    Ok(Reply::Ok)
}

/// DISCARD
async fn discard(s: &mut Session) -> CmdResult {
    if s.end_multi().is_none() {
        return Err(CmdError::msg("ERR DISCARD without MULTI"));
    }
    s.unwatch_all().await;
    Ok(Reply::Ok)
}

/// WATCH key [key ...]
async fn watch(s: &mut Session, args: &[Bytes]) -> CmdResult {
    if s.multi.is_some() {
        return Err(CmdError::msg("ERR WATCH inside MULTI is not allowed"));
    }
    let db = s.db;
    for key in &args[1..] {
        // As in Redis, watching a key twice is watching it once (and costs nothing more).
        if s.watched.iter().any(|(d, k)| *d == db && k == key) {
            continue;
        }
        let (k, flag) = (key.clone(), s.watch_flag());
        let shard = s.core.router.shard_of(key);
        s.run_on(shard, move |sh: &mut Shard| sh.watch(db, &k, &flag))
            .await
            .map_err(|_| CmdError::Unavailable)?;
        s.watched.push((db, key.clone()));
    }
    Ok(Reply::Ok)
}

/// UNWATCH
async fn unwatch(s: &mut Session) -> CmdResult {
    s.unwatch_all().await;
    Ok(Reply::Ok)
}
