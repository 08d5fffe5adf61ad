//! Cross-shard protocols for commands that move or combine values between keys on different
//! shards: LMOVE/RPOPLPUSH, SMOVE, and set algebra. Each runs inside a transaction that holds the
//! gates of every shard involved, so no client sees the value in both places, or in neither.

use bytes::Bytes;

use super::list_family;
use super::router::{Router, Tx};
use super::session::UNAVAILABLE;
use super::set_family::{self, Algebra};
use super::shard::Shard;
use super::slot::ShardId;
use crate::facade::Reply;

type Step<T> = Result<Result<T, Reply>, super::router::Unavailable>;

/// Ends the transaction without more work, and returns `reply`.
async fn abort(tx: Tx, reply: Reply) -> Reply {
    let _ = tx.finish(Vec::<(ShardId, fn(&mut Shard))>::new()).await;
    reply
}

/// Unwraps a hop's result, or ends the transaction with the error (or UNAVAILABLE).
macro_rules! step {
    ($tx:ident, $e:expr) => {{
        let r: Step<_> = $e;
        match r {
            Ok(Ok(v)) => v,
            Ok(Err(reply)) => return abort($tx, reply).await,
            Err(_) => return abort($tx, UNAVAILABLE).await,
        }
    }};
}

/// LMOVE / RPOPLPUSH with source and destination on different shards.
pub async fn lmove_across(tx: Tx, db: usize, router: &Router, args: &[Bytes]) -> Reply {
    let (from, to) = match list_family::move_ends(args) {
        Ok(e) => e,
        Err(e) => return abort(tx, e).await,
    };
    let (src, dst) = (args[1].clone(), args[2].clone());
    let (s_src, s_dst) = (router.shard_of(&src), router.shard_of(&dst));
    // Redis checks both types before it moves anything.
    let probe = dst.clone();
    step!(
        tx,
        tx.run(s_dst, move |s: &mut Shard| s.with_db(db, |c| list_family::check_pushable(c, &probe))).await
    );
    let popped = step!(
        tx,
        tx.run(s_src, move |s: &mut Shard| s.with_db(db, |c| list_family::pop_one(c, &src, from))).await
    );
    let Some(e) = popped else { return abort(tx, Reply::Nil).await };
    let pushed = e.clone();
    let done = tx
        .finish(vec![(s_dst, move |s: &mut Shard| {
            s.with_db(db, |c| list_family::push_one(c, &dst, to, pushed))
        })])
        .await;
    match done.into_iter().next() {
        Some(Ok(Ok(()))) => Reply::Bulk(e),
        Some(Ok(Err(reply))) => reply,
        _ => UNAVAILABLE,
    }
}

/// SMOVE with source and destination on different shards.
pub async fn smove_across(tx: Tx, db: usize, router: &Router, args: &[Bytes]) -> Reply {
    let (src, dst, member) = (args[1].clone(), args[2].clone(), args[3].clone());
    let (s_src, s_dst) = (router.shard_of(&src), router.shard_of(&dst));
    let (probe_src, probe_dst) = (src.clone(), dst.clone());
    step!(
        tx,
        tx.run(s_src, move |s: &mut Shard| s.with_db(db, |c| set_family::members(c, &probe_src).map(drop)))
            .await
    );
    step!(
        tx,
        tx.run(s_dst, move |s: &mut Shard| s.with_db(db, |c| set_family::members(c, &probe_dst).map(drop)))
            .await
    );
    let m = member.clone();
    let moved = step!(
        tx,
        tx.run(s_src, move |s: &mut Shard| s.with_db(db, |c| set_family::take_member(c, &src, &m))).await
    );
    if !moved {
        return abort(tx, Reply::Int(0)).await;
    }
    let done = tx
        .finish(vec![(s_dst, move |s: &mut Shard| {
            s.with_db(db, |c| set_family::add_member(c, &dst, &member))
        })])
        .await;
    match done.into_iter().next() {
        Some(Ok(Ok(()))) => Reply::Int(1),
        Some(Ok(Err(reply))) => reply,
        _ => UNAVAILABLE,
    }
}

/// SINTER / SUNION / SDIFF (and STORE, SINTERCARD) over keys on several shards: gather every
/// source set under the gates, combine on this core, store the result on the destination's shard.
pub async fn algebra_across(tx: Tx, db: usize, router: &Router, args: &[Bytes]) -> Reply {
    let alg = match Algebra::parse(args) {
        Ok(a) => a,
        Err(e) => return abort(tx, e).await,
    };
    let gathers = alg.sources.iter().cloned().map(|key| {
        tx.run(router.shard_of(&key), move |s: &mut Shard| s.with_db(db, |c| set_family::members(c, &key)))
    });
    let mut sets = Vec::with_capacity(alg.sources.len());
    for gathered in futures::future::join_all(gathers).await {
        match gathered {
            Ok(Ok(set)) => sets.push(set),
            Ok(Err(reply)) => return abort(tx, reply).await,
            Err(_) => return abort(tx, UNAVAILABLE).await,
        }
    }
    let result = alg.compute(sets);
    let Some(dest) = alg.dest.clone() else { return abort(tx, alg.reply(result)).await };
    let stored = result.clone();
    let done = tx
        .finish(vec![(router.shard_of(&dest), move |s: &mut Shard| {
            s.with_db(db, |c| set_family::store(c, &dest, &stored))
        })])
        .await;
    if done.iter().any(Result::is_err) {
        return UNAVAILABLE;
    }
    alg.reply(result)
}
