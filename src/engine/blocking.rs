//! The client's side of a blocking command: registering a waiter on each key's shard, then
//! waiting for a delivery, the timeout, CLIENT UNBLOCK or the connection's end. The shard's side
//! (queues, serving) is [`crate::engine::waiters`]; the commands (BLPOP and friends, what they
//! try first, how they reply) are in `cmd/`.
//!
//! On timeout, unblock or hang-up the client takes its own claim; if a shard took it first, the
//! delivery is already on its way and the client waits for it, so no element is ever lost.
//!
//! A blocked client also stops when the server can no longer serve its keys: it became a
//! replica (`-UNBLOCKED`, then the connection closes), or in cluster mode its slot went to
//! another node or the cluster failed (the redirection, checked once a second as Redis's
//! clientsCron does).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::channel::mpsc;
use futures::StreamExt;

use crate::cmd::error::CmdError;
pub(crate) use crate::engine::client::Unblock;
use crate::engine::cluster::redirect::{self, Asker};
use crate::engine::core::Core;
use crate::engine::session::Session;
use crate::engine::shard::Shard;
use crate::engine::slot::ShardId;
use crate::engine::stats::Started;
use crate::engine::waiters::{Counted, Served, Waiter, Wants};

/// How a wait ended.
#[derive(Debug)]
pub(crate) enum Waited {
    /// A shard served the client from `key`.
    Served(Bytes, Served),
    /// Not served.
    Stopped(Unblock),
}

/// How often a blocked client of a cluster node checks that its slot is still served here.
const CLUSTER_CHECK: Duration = Duration::from_secs(1);

/// Why a wait ended unserved.
enum Stop {
    Unblocked(Unblock),
    Redirected(CmdError),
}

/// Blocks on `keys` until a shard serves the client, `limit` passes, or the client is
/// unblocked or killed. `wants` says, for each key and its shard, what a waiter there pops;
/// `first_in_line` puts the client before those already blocked (a BLMOVE that was woken but
/// found its element taken keeps its place).
///
/// # Errors
/// [`CmdError::Unavailable`] when a shard cannot be reached.
pub(crate) async fn wait(
    s: &mut Session,
    keys: &[Bytes],
    wants: impl Fn(&Bytes, ShardId) -> Wants,
    limit: Option<Duration>,
    first_in_line: bool,
) -> Result<Waited, CmdError> {
    let _counted = Counted::new();
    let claimed = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = mpsc::channel(keys.len());
    let router = s.core.router.clone();
    let db = s.db;
    for key in keys {
        let shard = router.shard_of(key);
        let waiter = Waiter { claimed: claimed.clone(), wants: wants(key, shard), deliver: tx.clone() };
        let key = key.clone();
        // Between the client's attempt and this registration a push may have come: the shard
        // looks once more as it registers, and serves the client if so.
        let registered =
            router.run(shard, None, move |sh: &mut Shard| sh.block(db, &key, waiter, first_in_line)).await;
        if registered.is_err() {
            return Err(CmdError::Unavailable);
        }
    }
    drop(tx);
    s.client.set_blocked(Some(limit.is_some()));
    let blocked_at = Started::now();
    let client = s.client.clone();
    let unblocked = async {
        let stop = std::future::poll_fn(|cx| client.poll_unblock(cx));
        match limit {
            Some(d) => match futures::future::select(
                std::pin::pin!(stop),
                std::pin::pin!(glommio::timer::Timer::new(d)),
            )
            .await
            {
                futures::future::Either::Left((why, _)) => why,
                futures::future::Either::Right(_) => Unblock::Timeout,
            },
            None => stop.await,
        }
    };
    let redirected = moved_away(s, keys.first().cloned());
    let interrupted = async {
        match futures::future::select(std::pin::pin!(unblocked), std::pin::pin!(redirected)).await {
            futures::future::Either::Left((why, _)) => Stop::Unblocked(why),
            futures::future::Either::Right((e, _)) => Stop::Redirected(e),
        }
    };
    let outcome = match futures::future::select(std::pin::pin!(rx.next()), std::pin::pin!(interrupted)).await
    {
        futures::future::Either::Left((got, _)) => Ok(got),
        futures::future::Either::Right((why, _)) => {
            if claimed.swap(true, Ordering::AcqRel) {
                // A shard served us in the meantime: its delivery is on the way.
                Ok(rx.next().await)
            } else {
                Err(why)
            }
        }
    };
    s.client.set_blocked(None);
    s.blocked_ns.set(s.blocked_ns.get() + blocked_at.elapsed_ns());
    for key in keys {
        let key = key.clone();
        let _ =
            router.run(router.shard_of(&key), None, move |sh: &mut Shard| sh.prune_blocked(db, &key)).await;
    }
    match outcome {
        Ok(Some((key, served))) => Ok(Waited::Served(key, served)),
        Ok(None) => Err(CmdError::Unavailable),
        Err(Stop::Unblocked(why)) => {
            s.closing |= why == Unblock::Demoted;
            Ok(Waited::Stopped(why))
        }
        Err(Stop::Redirected(e)) => Err(e),
    }
}

/// Cluster mode: resolves with the redirection once the client of `s`, blocked on `key`, must
/// go elsewhere (see [`redirect::blocked`]); never outside cluster mode.
fn moved_away(s: &Session, key: Option<Bytes>) -> impl std::future::Future<Output = CmdError> {
    let core = s.core.clone();
    let watch = key.filter(|_| core.global.cluster.is_some()).map(|key| {
        let asker = Asker {
            write: crate::engine::command::registry()
                .get(s.client.last_cmd.get().as_bytes())
                .is_some_and(|c| c.flags.contains(crate::engine::spec::flag::WRITE)),
            readonly: s.cluster_readonly,
            tls: s.client.tls.is_some(),
            ..Asker::default()
        };
        (key, asker)
    });
    async move {
        match watch {
            Some((key, asker)) => watch_slot(&core, &key, &asker).await,
            None => std::future::pending().await,
        }
    }
}

/// Checks once every [`CLUSTER_CHECK`] whether a client blocked on `key` must leave.
async fn watch_slot(core: &Core, key: &[u8], asker: &Asker) -> CmdError {
    loop {
        glommio::timer::Timer::new(CLUSTER_CHECK).await;
        let verdict = core.with_cluster(|r| core.with_config(|c| redirect::blocked(r, c, key, asker)));
        if let Some(e) = verdict.flatten() {
            return e;
        }
    }
}

/// The server became a replica: every client blocked on any core gets `-UNBLOCKED` and is
/// closed after the reply (Redis's `disconnectAllBlockedClients`).
pub(crate) async fn demote_all(core: &Core) {
    let _ = core
        .router
        .each_core(|local| {
            for client in local.clients.borrow().values() {
                client.unblock(Unblock::Demoted);
            }
        })
        .await;
}
