//! EXEC: runs what MULTI queued, atomically and isolated across shards.
//!
//! EXEC locks the gates of every shard its queued commands touch (as [`plan`] says: their
//! keys, where a keyless one runs, every shard for a fan-out) and of every WATCHed key, in
//! shard order like any multi-shard command; checks the WATCH flag once all are held; then runs
//! the commands in order through that transaction: no other client's command runs on those
//! shards in between, and blocked clients are served once it ends. When everything is a
//! command for one shard, the whole transaction is one hop that checks the flag and runs them
//! all: single-shard transactions do not pay for the multi-shard path.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::cluster::redirect::OpenSlot;
use crate::engine::command::{Command, Run};
use crate::engine::monitor::{self, Source};
use crate::engine::plan::{plan, Plan};
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::{Shard, ShardCmd};
use crate::engine::slot::ShardId;
use crate::engine::stats::Started;
use crate::facade::Reply;

/// EXEC. Monitors see what it ran, then EXEC itself, as Redis feeds them.
pub(crate) async fn exec(s: &mut Session, args: &[Bytes]) -> CmdResult {
    let (mut ran, mut db) = (Vec::new(), s.db);
    let reply = run(s, &mut ran).await;
    let source = Source::Client(&s.client.addr);
    for (cmd, args) in ran {
        // Each is shown in the database it ran in.
        db = monitor::db_after(cmd.name, &args, db, s.core.with_config(|c| c.databases));
        monitor::feed(&s.core, db, source, cmd, &args);
    }
    if let Some(exec) = crate::engine::command::registry().get(b"exec") {
        monitor::feed(&s.core, s.db, source, exec, args);
    }
    reply
}

/// Runs the transaction; when it ran and monitors watch, what it ran goes to `ran`.
async fn run(s: &mut Session, ran: &mut Vec<(&'static Command, Vec<Bytes>)>) -> CmdResult {
    let Some(multi) = s.end_multi() else { return Err(CmdError::msg("ERR EXEC without MULTI")) };
    // Cluster mode, an open slot: its keys are counted where the transaction runs, holding
    // the slot's shard; a redirection wins over everything else, as Redis checks it first.
    let open = s.open_held.take();
    if multi.failed {
        let redirected = match open {
            Some(open) => s.count_open_slot(open).await.err(),
            None => None,
        };
        s.unwatch_all().await;
        return Err(redirected.unwrap_or(CmdError::ExecAbort));
    }
    let router = s.core.router.clone();
    let registry = crate::engine::command::registry();
    let queued: Vec<(&'static Command, Vec<Bytes>)> =
        multi.queued.into_iter().filter_map(|(id, args)| Some((registry.by_id(id)?, args))).collect();
    // The rules may have changed since the commands were queued: a command no longer allowed
    // does not run, and its reply is the error, in its place.
    let mut refused: Vec<(usize, Reply)> = Vec::new();
    let queued: Vec<(&'static Command, Vec<Bytes>)> = queued
        .into_iter()
        .enumerate()
        .filter_map(|(i, (cmd, args))| match s.recheck(cmd, &args) {
            Ok(()) => Some((cmd, args)),
            Err(e) => {
                refused.push((i, e.into()));
                None
            }
        })
        .collect();
    // Its writes, not EXEC's flags, decide whether its reply waits for the disk.
    s.wrote |= queued.iter().any(|(cmd, _)| cmd.flags.contains(crate::engine::spec::flag::WRITE));
    let plans: Vec<Result<Plan, CmdError>> =
        queued.iter().map(|(cmd, args)| plan(cmd, args, &router)).collect();
    let mut shards: BTreeSet<ShardId> = plans.iter().flatten().flat_map(Plan::shards).collect();
    shards.extend(s.watched.iter().map(|(_, k)| router.shard_of(k)));
    if shards.is_empty() {
        shards.insert(router.local());
    }
    let one_shard = shards.len() == 1
        && queued.iter().zip(&plans).all(|((cmd, _), p)| {
            !matches!(cmd.run, Run::Session(_) | Run::Inline(_))
                && !matches!(p, Ok(Plan::Split(_) | Plan::Across(_)))
        });
    let monitored = s.core.global.monitors.any().then(|| queued.clone());
    let reply = if one_shard {
        let shard = shards.first().copied().unwrap_or(router.local());
        one_hop(s, shard, queued, plans, open).await
    } else {
        match router.begin(shards.into_iter().collect()).await {
            Ok(tx) => locked(s, tx, queued, open).await,
            Err(_) => Err(CmdError::Unavailable),
        }
    };
    s.unwatch_all().await;
    match reply {
        Ok(Reply::Array(mut replies)) => {
            *ran = monitored.unwrap_or_default();
            for (i, error) in refused {
                replies.insert(i.min(replies.len()), error);
            }
            Ok(Reply::Array(replies))
        }
        other => other,
    }
}

/// Every command on one shard: a single hop checks the watches and runs them all, as one
/// atomic unit.
async fn one_hop(
    s: &Session,
    shard: ShardId,
    queued: Vec<(&'static Command, Vec<Bytes>)>,
    plans: Vec<Result<Plan, CmdError>>,
    open: Option<OpenSlot>,
) -> CmdResult {
    let db = s.db;
    // A command that cannot be planned fails without reaching the shard: the session records it.
    let mut unplanned = Vec::new();
    let cmds: Vec<Result<ShardCmd, Reply>> = queued
        .into_iter()
        .zip(plans)
        .map(|((cmd, args), planned)| match (planned, cmd.run) {
            (Err(e), _) => {
                unplanned.push((cmd, args, e.clone()));
                Err(e.into())
            }
            (Ok(_), Run::Shard(run) | Run::Split(run, _) | Run::Across(run, _)) => {
                Ok(s.shard_cmd(cmd, run, db, args))
            }
            (Ok(_), _) => Err(CmdError::Internal.into()),
        })
        .collect();
    let (watched, flag) = (s.watched.clone(), s.watch_flag());
    let ran = s
        .core
        .router
        .run(shard, None, move |sh: &mut Shard| {
            if let Some(refusal) = open.and_then(|open| sh.open_slot_refusal(&open)) {
                return Err(refusal);
            }
            if sh.watches_expired(&watched, &flag) || flag.load(Ordering::Acquire) {
                return Ok(None);
            }
            // One atomic unit: blocked clients are served after the last command.
            Ok(Some(sh.atomically(|sh| {
                cmds.iter().map(|c| c.as_ref().map_or_else(Clone::clone, |c| sh.exec(c))).collect::<Vec<_>>()
            })))
        })
        .await
        .map_err(|_| CmdError::Unavailable)?;
    match ran? {
        Some(replies) => {
            for (cmd, args, e) in unplanned {
                s.record(cmd, &args, Started::now(), Err(e));
            }
            Ok(Reply::Array(replies))
        }
        None => Ok(Reply::NilArray),
    }
}

/// Several shards, or commands the session runs: every gate is held; commands run one by one
/// through the transaction.
async fn locked(
    s: &mut Session,
    tx: Tx,
    queued: Vec<(&'static Command, Vec<Bytes>)>,
    open: Option<OpenSlot>,
) -> CmdResult {
    if let Some(refusal) = open_slot_refusal(&tx, open).await {
        tx.release().await;
        return Err(refusal);
    }
    // A watched key that expired since it was watched fails the EXEC (each shard checks its own).
    let flag = s.watch_flag();
    let mut by_shard: BTreeMap<ShardId, Vec<(usize, Bytes)>> = BTreeMap::new();
    for (db, key) in &s.watched {
        by_shard.entry(tx.shard_of(key)).or_default().push((*db, key.clone()));
    }
    let checks = by_shard.into_iter().map(|(shard, keys)| {
        let flag = flag.clone();
        tx.run(shard, move |sh: &mut Shard| sh.watches_expired(&keys, &flag))
    });
    let expired = futures::future::join_all(checks).await.into_iter().any(|e| e.unwrap_or(false));
    if expired || flag.load(Ordering::Acquire) {
        tx.release().await;
        return Ok(Reply::NilArray);
    }
    s.exec_tx = Some(Rc::new(tx));
    let mut replies = Vec::with_capacity(queued.len());
    for (cmd, args) in queued {
        replies.push(run_queued(s, cmd, &args).await);
    }
    if let Some(tx) = s.exec_tx.take().and_then(|tx| Rc::try_unwrap(tx).ok()) {
        tx.release().await;
    }
    Ok(Reply::Array(replies))
}

/// Cluster mode: how the request `open` (an open slot's) is routed, counting its keys on the
/// slot's shard, which `tx` holds: `None` serves it.
pub(crate) async fn open_slot_refusal(tx: &Tx, open: Option<OpenSlot>) -> Option<CmdError> {
    let (shard, open) = open.and_then(|open| Some((tx.shard_of(open.first_key()?), open)))?;
    let refusal = tx.run(shard, move |sh: &mut Shard| sh.open_slot_refusal(&open)).await;
    refusal.unwrap_or(Some(CmdError::Unavailable))
}

/// Runs one queued command inside EXEC.
async fn run_queued(s: &mut Session, cmd: &'static Command, args: &[Bytes]) -> Reply {
    Box::pin(s.run_command(cmd, args)).await
}
