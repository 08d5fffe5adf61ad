//! MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! EXEC locks the gates of every shard its queued commands and WATCHed keys live on (every shard
//! if a queued command fans out), in shard order like any multi-shard command, checks the WATCH
//! flag once all are held, then runs the commands in order through that transaction: no other
//! client's command runs on those shards in between. When everything lives on one shard, the
//! whole transaction is one hop that checks the flag and runs the commands: single-shard
//! transactions do not pay for the multi-shard path.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use bytes::Bytes;

use crate::cmd::args::wrong_args;
use crate::cmd::connection;
use crate::cmd::server;
use crate::engine::command::{self, Coord, Cross, Kind};
use crate::engine::router::Tx;
use crate::engine::session::{Multi, Session, UNAVAILABLE};
use crate::engine::shard::{Shard, ShardCmd};
use crate::engine::slot::ShardId;
use crate::facade::Reply;
use crate::storage::db::WatchFlag;

/// MULTI
pub fn multi(s: &mut Session) -> Reply {
    if s.multi.is_some() {
        return Reply::error("ERR MULTI calls can not be nested");
    }
    s.multi = Some(Multi::default());
    Reply::Ok
}

/// DISCARD
pub async fn discard(s: &mut Session) -> Reply {
    if s.multi.take().is_none() {
        return Reply::error("ERR DISCARD without MULTI");
    }
    unwatch_all(s).await;
    Reply::Ok
}

/// WATCH key [key ...]
pub async fn watch(s: &mut Session, args: &[Bytes]) -> Reply {
    if s.multi.is_some() {
        return Reply::error("ERR WATCH inside MULTI is not allowed");
    }
    let db = s.db;
    for key in &args[1..] {
        // As in Redis, watching a key twice is watching it once (and costs nothing more).
        if s.watched.iter().any(|(d, k)| *d == db && k == key) {
            continue;
        }
        let (k, flag) = (key.clone(), s.watch_flag.clone());
        let shard = s.core.router.shard_of(key);
        let watched = s.run_on(shard, move |sh: &mut Shard| sh.with_db(db, |c| c.db.watch(&k, &flag, c.now)));
        if watched.await.is_err() {
            return UNAVAILABLE;
        }
        s.watched.push((db, key.clone()));
    }
    Reply::Ok
}

/// UNWATCH, and the end of every EXEC or DISCARD: forget the keys and start a fresh flag.
pub async fn unwatch_all(s: &mut Session) {
    let watched = std::mem::take(&mut s.watched);
    let flag = std::mem::take(&mut s.watch_flag);
    let router = s.core.router.clone();
    let hops = watched.into_iter().map(|(db, key)| {
        let flag = flag.clone();
        router.run(router.shard_of(&key), None, move |sh: &mut Shard| sh.dbs()[db].unwatch(&key, &flag))
    });
    futures::future::join_all(hops).await;
}

/// EXEC
pub async fn exec(s: &mut Session) -> Reply {
    let Some(multi) = s.multi.take() else { return Reply::error("ERR EXEC without MULTI") };
    if multi.failed {
        unwatch_all(s).await;
        return Reply::error("EXECABORT Transaction discarded because of previous errors.");
    }
    let router = s.core.router.clone();
    let mut shards = BTreeSet::new();
    let mut fan_out = false;
    let mut keyed_only = true;
    for args in &multi.queued {
        let Some(cmd) = command::lookup(&args[0]) else { continue };
        match cmd.kind {
            Kind::Keyed { .. } => {
                // Where exec_one runs it (this core's shard when it names no key), and every key.
                let keys = || cmd.key_positions(args).map(|p| &args[p][..]);
                shards.insert(router.placement(keys()).0);
                shards.extend(keys().map(|k| router.shard_of(k)));
            }
            Kind::Coord(c) => {
                keyed_only = false;
                fan_out |= !c.shardless();
            }
        }
    }
    shards.extend(s.watched.iter().map(|(_, k)| router.shard_of(k)));
    if fan_out {
        shards = (0..router.shards()).map(ShardId).collect();
    }
    if shards.is_empty() {
        shards.insert(router.local());
    }
    let flag = s.watch_flag.clone();
    let reply = if keyed_only && shards.len() == 1 {
        let shard = *shards.first().unwrap_or(&router.local());
        one_hop(s, shard, multi.queued, s.watched.clone(), flag).await
    } else {
        match router.begin(shards.into_iter().collect()).await {
            Ok(tx) => locked(s, tx, multi.queued, flag).await,
            Err(_) => UNAVAILABLE,
        }
    };
    unwatch_all(s).await;
    reply
}

/// Every command on one shard: a single hop checks the flag and runs them all.
async fn one_hop(
    s: &Session,
    shard: ShardId,
    queued: Vec<Vec<Bytes>>,
    watched: Vec<(usize, Bytes)>,
    flag: WatchFlag,
) -> Reply {
    let db = s.db;
    let cmds: Vec<Result<ShardCmd, Reply>> = queued
        .into_iter()
        .filter_map(|args| {
            let cmd = command::lookup(&args[0])?;
            match cmd.kind {
                Kind::Keyed { .. } if !cmd.groups_ok(args.len()) => Some(Err(wrong_args(cmd.name))),
                Kind::Keyed { run, .. } => Some(Ok(ShardCmd { run, db, args })),
                Kind::Coord(_) => None,
            }
        })
        .collect();
    let ran = s
        .core
        .router
        .run(shard, None, move |sh: &mut Shard| {
            if sh.watches_expired(&watched, &flag) || flag.load(std::sync::atomic::Ordering::Acquire) {
                return None;
            }
            // One atomic unit: blocked clients are served after the last command.
            Some(sh.atomically(|sh| {
                cmds.iter().map(|c| c.as_ref().map_or_else(Clone::clone, |c| sh.exec(c))).collect::<Vec<_>>()
            }))
        })
        .await;
    match ran {
        Ok(Some(replies)) => Reply::Array(replies),
        Ok(None) => Reply::NilArray,
        Err(_) => UNAVAILABLE,
    }
}

/// Several shards: every gate is held; commands run one by one through the transaction.
async fn locked(s: &mut Session, tx: Tx, queued: Vec<Vec<Bytes>>, flag: WatchFlag) -> Reply {
    // A watched key that expired since it was watched fails the EXEC (each shard checks its own).
    let mut by_shard: BTreeMap<ShardId, Vec<(usize, Bytes)>> = BTreeMap::new();
    for (db, key) in &s.watched {
        by_shard.entry(s.core.router.shard_of(key)).or_default().push((*db, key.clone()));
    }
    let checks = by_shard.into_iter().map(|(shard, keys)| {
        let flag = flag.clone();
        tx.run(shard, move |sh: &mut Shard| sh.watches_expired(&keys, &flag))
    });
    let expired = futures::future::join_all(checks).await.into_iter().any(|e| e.unwrap_or(false));
    if expired || flag.load(std::sync::atomic::Ordering::Acquire) {
        tx.release().await;
        return Reply::NilArray;
    }
    s.exec_tx = Some(Rc::new(tx));
    let mut replies = Vec::with_capacity(queued.len());
    for args in queued {
        replies.push(Box::pin(exec_one(s, args)).await);
    }
    if let Some(tx) = s.exec_tx.take().and_then(|tx| Rc::try_unwrap(tx).ok()) {
        tx.release().await;
    }
    Reply::Array(replies)
}

/// Runs one queued command inside EXEC.
async fn exec_one(s: &mut Session, args: Vec<Bytes>) -> Reply {
    let Some(cmd) = command::lookup(&args[0]) else { return UNAVAILABLE };
    if !cmd.groups_ok(args.len()) {
        return wrong_args(cmd.name);
    }
    match cmd.kind {
        Kind::Keyed { run, cross } => {
            let (shard, together) = s.core.router.placement(cmd.key_positions(&args).map(|p| &args[p][..]));
            if together || cross == Cross::Never {
                let cmd = ShardCmd { run, db: s.db, args };
                s.run_on(shard, move |sh: &mut Shard| sh.exec(&cmd)).await.unwrap_or(UNAVAILABLE)
            } else {
                s.cross(cmd, run, cross, args).await
            }
        }
        Kind::Coord(Coord::Ping) => connection::ping(s, &args),
        Kind::Coord(Coord::Echo) => Reply::Bulk(args[1].clone()),
        Kind::Coord(Coord::Time) => server::time(),
        Kind::Coord(c) => s.coordinate(c, &args).await.unwrap_or(Reply::Nil),
    }
}
