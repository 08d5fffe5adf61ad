//! CLIENT TRACKING's invalidations, delivered on the core of the client they are for: to
//! itself (a RESP3 push) or to the client it redirects to (a RESP3 push, or a RESP2 message on
//! `__redis__:invalidate` when that client is subscribed), wherever that one lives; and the
//! null every tracking client gets when the data is flushed.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use crate::config::OutputLimit;
use crate::engine::client::{Client, TrackingMode};
use crate::engine::core::Core;
use crate::engine::local::Local;
use crate::engine::slot::ShardId;
use crate::engine::tracking::{Invalidation, Message};
use crate::facade::Reply;

/// The channel a RESP2 client that others redirect to gets invalidations on.
const CHANNEL: &str = "__redis__:invalidate";

/// The output limit that applies to `client`'s pushes.
fn limit_of(client: &Client) -> OutputLimit {
    let subscribed = client.subscribed();
    let unlimited = OutputLimit { hard: 0, soft: 0, soft_secs: 0 };
    Core::current().map_or(unlimited, |core| {
        core.with_config(|c| {
            let limits = &c.client_output_buffer_limit;
            if subscribed {
                limits.pubsub
            } else {
                limits.normal
            }
        })
    })
}

/// Delivers the invalidations a shard handed on, on the core of the clients they are for
/// (Redis's `trackingInvalidateKey` and `trackingBroadcastInvalidationMessages`, at send
/// time: a client that turned tracking off or changed mode since is skipped).
pub(crate) fn deliver(local: &Local, batch: &[Invalidation]) {
    for inv in batch {
        let Some(client) = local.clients.borrow().get(&inv.to.id).cloned() else { continue };
        let mode = client.tracking.get();
        if !mode.on {
            continue;
        }
        let own = |by: &Option<u64>| mode.noloop && *by == Some(client.id);
        let keys = match &inv.message {
            Message::Key(key, by) => {
                if mode.bcast || own(by) {
                    continue;
                }
                Reply::Array(vec![Reply::Bulk(key.clone())])
            }
            Message::Keys(changed) => {
                if !mode.bcast {
                    continue;
                }
                let keys: Vec<Reply> =
                    changed.iter().filter(|(_, by)| !own(by)).map(|(k, _)| Reply::Bulk(k.clone())).collect();
                if keys.is_empty() {
                    continue;
                }
                Reply::Array(keys)
            }
        };
        send(local, &client, mode, keys);
    }
}

/// A flush: every tracking client is told that every key changed, with a null (Redis's
/// `trackingInvalidateKeysOnFlush`); the shards forgot their tables as they flushed.
pub(crate) fn flushed(core: &Core) {
    if core.global.tracking_clients.load(Ordering::Acquire) == 0 {
        return;
    }
    for c in 0..core.router.shards() {
        core.router.post_core(ShardId(c), |local| {
            let tracking: Vec<Rc<Client>> =
                local.clients.borrow().values().filter(|c| c.tracking.get().on).cloned().collect();
            for client in tracking {
                send(local, &client, client.tracking.get(), Reply::Nil);
            }
        });
    }
}

/// Sends `keys` (an array of keys, or a null for all) to `client`, or to the client it
/// redirects to, wherever that one lives (Redis's `sendTrackingMessage`).
fn send(local: &Local, client: &Rc<Client>, mode: TrackingMode, keys: Reply) {
    let (to, core) = mode.redirect;
    if to == 0 {
        // Without a redirection, only RESP3 has a way to say it.
        if client.resp.get() == 3 {
            client.push(&Reply::Push(vec![Reply::bulk("invalidate"), keys]), limit_of(client));
        }
        return;
    }
    let Some(here) = Core::current() else { return };
    if core as usize == here.router.local().0 {
        match local.clients.borrow().get(&to).cloned() {
            Some(target) => redirected(&target, keys),
            None => broken(client),
        }
        return;
    }
    let (from, from_core) = (client.id, client.core);
    here.router.post_core(ShardId(core as usize), move |local| {
        match local.clients.borrow().get(&to).cloned() {
            Some(target) => redirected(&target, keys),
            None => {
                let Some(there) = Core::current() else { return };
                there.router.post_core(ShardId(from_core), move |local| {
                    if let Some(client) = local.clients.borrow().get(&from).cloned() {
                        broken(&client);
                    }
                });
            }
        }
    });
}

/// Gives `keys` to the client others redirect to: a push in RESP3; in RESP2 a message on
/// `__redis__:invalidate`, if it is subscribed (to anything, as Redis checks).
fn redirected(target: &Client, keys: Reply) {
    if target.resp.get() == 3 {
        target.push(&Reply::Push(vec![Reply::bulk("invalidate"), keys]), limit_of(target));
    } else if target.subscribed() {
        let message = Reply::Push(vec![Reply::bulk("message"), Reply::bulk(CHANNEL), keys]);
        target.push(&message, limit_of(target));
    }
}

/// The client `client` redirects to is gone: it is marked so (TRACKINGINFO's
/// `broken_redirect`, CLIENT LIST's `R`), and told in RESP3.
fn broken(client: &Client) {
    let mut mode = client.tracking.get();
    if !mode.on {
        return;
    }
    mode.broken = true;
    client.tracking.set(mode);
    if client.resp.get() == 3 {
        let push =
            Reply::Push(vec![Reply::bulk("tracking-redir-broken"), Reply::Int(mode.redirect.0 as i64)]);
        client.push(&push, limit_of(client));
    }
}
