//! Cross-shard protocols for commands that move or combine values between keys on different
//! shards: MSETNX, RENAME/RENAMENX, LMOVE/RPOPLPUSH, SMOVE, set and sorted-set algebra, the
//! MPOP forms, ZRANGESTORE and COPY.
//!
//! Each runs inside a transaction that already holds the gates of every shard involved (its own,
//! or an EXEC's), so no client sees a value in both places or in neither. They only run hops;
//! whoever began the transaction finishes it.

use bytes::Bytes;

use crate::cmd::args::{is, NO_SUCH_KEY};
use crate::cmd::generic;
use crate::cmd::list;
use crate::cmd::set::{self, Algebra};
use crate::cmd::string;
use crate::cmd::zset::{self, RangeSpec, ZAlgebra};
use crate::engine::command::Coord;
use crate::engine::router::{Router, Tx, Unavailable};
use crate::engine::session::UNAVAILABLE;
use crate::engine::shard::{Ctx, Shard};
use crate::engine::slot::ShardId;
use crate::facade::Reply;

/// Runs `f` against database `db` of `shard` inside `tx`; a shard that cannot be reached, or a
/// command error, becomes the reply to return.
async fn hop<T, F>(tx: &Tx, shard: ShardId, db: usize, f: F) -> Result<T, Reply>
where
    T: Send + 'static,
    F: FnOnce(&mut Ctx<'_>) -> Result<T, Reply> + Send + 'static,
{
    match tx.run(shard, move |s: &mut Shard| s.with_db(db, f)).await {
        Ok(r) => r,
        Err(Unavailable(_)) => Err(UNAVAILABLE),
    }
}

/// Runs the cross-shard protocol `which` for `args` in database `db`.
pub async fn run(which: Coord, tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Reply {
    let result = match which {
        Coord::MSetNx => msetnx(tx, db, router, args).await,
        Coord::Rename | Coord::RenameNx => rename(tx, db, router, args).await,
        Coord::LMove => lmove(tx, db, router, args).await,
        Coord::SMove => smove(tx, db, router, args).await,
        Coord::SetAlgebra => algebra(tx, db, router, args).await,
        Coord::LMPop => lmpop(tx, db, router, args).await,
        Coord::Copy => copy(tx, db, router, args).await,
        Coord::ZMPop => zmpop(tx, db, router, args).await,
        Coord::ZAlgebra => zalgebra(tx, db, router, args).await,
        Coord::ZRangeStore => zrangestore(tx, db, router, args).await,
        // The command table pairs only the protocols above with Cross::Custom.
        other => Err(Reply::Error(format!("ERR internal: {other:?} has no cross-shard protocol").into())),
    };
    result.unwrap_or_else(|reply| reply)
}

/// MSETNX: every shard checks its keys; only if none exists does every shard write.
async fn msetnx(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let pairs: Vec<(ShardId, Bytes, Bytes)> =
        args[1..].chunks_exact(2).map(|p| (router.shard_of(&p[0]), p[0].clone(), p[1].clone())).collect();
    let checks = pairs.iter().map(|(s, k, _)| {
        let k = k.clone();
        hop(tx, *s, db, move |c| Ok(string::any_exists(c, std::slice::from_ref(&k))))
    });
    for exists in futures::future::join_all(checks).await {
        if exists? {
            return Ok(Reply::Int(0));
        }
    }
    let writes = pairs.into_iter().map(|(s, k, v)| {
        hop(tx, s, db, move |c| {
            string::mset(c, &[Bytes::from_static(b"MSET"), k, v]);
            Ok(())
        })
    });
    for written in futures::future::join_all(writes).await {
        written?;
    }
    Ok(Reply::Int(1))
}

/// RENAME / RENAMENX: take the entry (value and TTL) off one shard, put it on the other.
async fn rename(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let nx = is(&args[0], "renamenx");
    let (src, dst) = (args[1].clone(), args[2].clone());
    let (from, to) = (router.shard_of(&src), router.shard_of(&dst));
    let probe = src.clone();
    if !hop(tx, from, db, move |c| Ok(c.db.live(&probe, c.now))).await? {
        return Err(NO_SUCH_KEY);
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::Ok });
    }
    if nx {
        let probe = dst.clone();
        if hop(tx, to, db, move |c| Ok(c.db.live(&probe, c.now))).await? {
            return Ok(Reply::Int(0));
        }
    }
    let entry = hop(tx, from, db, move |c| Ok(c.db.remove(&src))).await?;
    if let Some(entry) = entry {
        hop(tx, to, db, move |c| {
            generic::put(c.db, &dst, entry);
            Ok(())
        })
        .await?;
    }
    Ok(if nx { Reply::Int(1) } else { Reply::Ok })
}

/// LMOVE / RPOPLPUSH: both types are checked before anything moves, as Redis does (a missing
/// source is nil whatever the destination holds).
async fn lmove(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let (from, to) = list::move_ends(args)?;
    let (src, dst) = (args[1].clone(), args[2].clone());
    let (s_src, s_dst) = (router.shard_of(&src), router.shard_of(&dst));
    let (probe_src, probe) = (src.clone(), dst.clone());
    if !hop(tx, s_src, db, move |c| list::exists(c, &probe_src)).await? {
        return Ok(Reply::Nil);
    }
    hop(tx, s_dst, db, move |c| list::check_pushable(c, &probe)).await?;
    let Some(e) = hop(tx, s_src, db, move |c| list::pop_one(c, &src, from)).await? else {
        return Ok(Reply::Nil);
    };
    let pushed = e.clone();
    hop(tx, s_dst, db, move |c| list::push_one(c, &dst, to, pushed)).await?;
    Ok(Reply::Bulk(e))
}

/// SMOVE: both types are checked before the member moves (a missing source is 0 whatever the
/// destination holds).
async fn smove(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let (src, dst, member) = (args[1].clone(), args[2].clone(), args[3].clone());
    let (s_src, s_dst) = (router.shard_of(&src), router.shard_of(&dst));
    let (probe_src, probe_dst) = (src.clone(), dst.clone());
    if !hop(tx, s_src, db, move |c| set::exists(c, &probe_src)).await? {
        return Ok(Reply::Int(0));
    }
    hop(tx, s_dst, db, move |c| set::exists(c, &probe_dst)).await?;
    let m = member.clone();
    if !hop(tx, s_src, db, move |c| set::take_member(c, &src, &m)).await? {
        return Ok(Reply::Int(0));
    }
    hop(tx, s_dst, db, move |c| set::add_member(c, &dst, &member)).await?;
    Ok(Reply::Int(1))
}

/// SINTER / SUNION / SDIFF (and STORE, SINTERCARD): gather every source set, combine on this
/// core, store the result on the destination's shard.
async fn algebra(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let alg = Algebra::parse(args)?;
    let gathers = alg
        .sources
        .iter()
        .cloned()
        .map(|key| hop(tx, router.shard_of(&key), db, move |c| set::members(c, &key)));
    let sets = futures::future::join_all(gathers).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let result = alg.compute(sets);
    if let Some(dest) = alg.dest.clone() {
        let stored = result.clone();
        hop(tx, router.shard_of(&dest), db, move |c| {
            set::store(c, &dest, &stored);
            Ok(())
        })
        .await?;
    }
    Ok(alg.reply(result))
}

/// LMPOP over keys on several shards: the first non-empty list, in key order, gives its elements.
async fn lmpop(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let mpop = list::MPop::parse(args)?;
    for key in mpop.keys {
        let (k, end, count) = (key.clone(), mpop.end, mpop.count);
        if let Some(popped) =
            hop(tx, router.shard_of(&key), db, move |c| list::pop_many(c, &k, end, count)).await?
        {
            return Ok(list::mpop_reply(key, popped));
        }
    }
    Ok(Reply::NilArray)
}

/// COPY with source and destination on different shards: the entry (value and TTL) is cloned
/// on the source's shard and stored on the destination's.
async fn copy(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let databases = hop(tx, router.shard_of(&args[1]), db, |c| Ok(c.databases())).await?;
    let c = generic::CopyArgs::parse(args, databases)?;
    let target = c.db.unwrap_or(db);
    let src = c.src.clone();
    let Some(entry) =
        hop(tx, router.shard_of(&src), db, move |ctx| Ok(ctx.db.read(&src, ctx.now).cloned())).await?
    else {
        return Ok(Reply::Int(0));
    };
    let (dst, replace) = (c.dst.clone(), c.replace);
    let copied = hop(tx, router.shard_of(&dst), target, move |ctx| {
        if ctx.db.live(&dst, ctx.now) && !replace {
            return Ok(false);
        }
        generic::put(ctx.db, &dst, entry);
        Ok(true)
    })
    .await?;
    Ok(Reply::Int(i64::from(copied)))
}

/// ZMPOP over keys on several shards: the first non-empty sorted set, in key order, gives.
async fn zmpop(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let mpop = zset::MPop::parse(args)?;
    for key in mpop.keys {
        let (k, max, count) = (key.clone(), mpop.max, mpop.count);
        if let Some(popped) =
            hop(tx, router.shard_of(&key), db, move |c| zset::pop(c, &k, max, count)).await?
        {
            return Ok(zset::mpop_reply(key, popped));
        }
    }
    Ok(Reply::NilArray)
}

/// ZUNION / ZINTER / ZDIFF (STORE forms, ZINTERCARD): gather every input, combine on this core,
/// store the result on the destination's shard.
async fn zalgebra(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let alg = ZAlgebra::parse(args)?;
    let gathers = alg
        .sources
        .iter()
        .cloned()
        .map(|key| hop(tx, router.shard_of(&key), db, move |c| zset::members(c, &key)));
    let inputs = futures::future::join_all(gathers).await.into_iter().collect::<Result<Vec<_>, _>>()?;
    let (reply, stored) = alg.compute(inputs)?;
    if let (Some(dest), Some(items)) = (alg.dest.clone(), stored) {
        hop(tx, router.shard_of(&dest), db, move |c| Ok(zset::store(c, &dest, items))).await?;
    }
    Ok(reply)
}

/// ZRANGESTORE with source and destination on different shards.
async fn zrangestore(tx: &Tx, db: usize, router: &Router, args: &[Bytes]) -> Result<Reply, Reply> {
    let spec = RangeSpec::parse(args)?;
    let Some(dest) = spec.dest.clone() else { return Err(Reply::error("ERR syntax error")) };
    let src = spec.key.clone();
    let items = hop(tx, router.shard_of(&src), db, move |c| zset::range_of(c, &spec)).await?;
    hop(tx, router.shard_of(&dest), db, move |c| Ok(zset::store(c, &dest, items))).await
}
