//! `maxmemory-clients`, Redis's client eviction: the memory every client holds (its buffers,
//! the commands it runs and queues, its own structures: CLIENT LIST's `tot-mem`) is counted,
//! and while the clients of all cores together hold more than the limit, the largest are
//! dropped, as Redis drops them, until they fit. Replicas' links and `CLIENT NO-EVICT` clients
//! are never dropped.
//!
//! Each core keeps the sum for its own clients, updated by the change each time one's buffers
//! are noted (after every read and write) and recounted whole by the cron, and publishes it
//! with its largest evictable client's size. A core that finds the server-wide sum over the
//! limit drops its own largest client while that one is at least as large as any other core's
//! largest, so the largest go first wherever they are; the core holding a larger one finds
//! the sum over the limit at its next read or cron cycle. A client that grows raises its core's
//! published largest at once (a bound: it is set exactly when that core is next over the
//! limit), so that while one core's client grows under the limit, another core that goes over
//! does not take a smaller client of its own for the largest. Nothing is counted while no limit
//! is set.

use std::rc::Rc;

use crate::engine::client::Client;
use crate::engine::core::Core;

/// Notes `client`'s memory as it is now (its buffers were just noted), and drops clients if
/// that puts the server over the limit.
pub(crate) fn note(core: &Core, client: &Client) {
    if core.global.clients_limit() == 0 || client.is_killed() {
        return;
    }
    let now = client.memory() as u64;
    let local = core.local();
    let before = client.counted.replace(now);
    local.clients_memory.set(local.clients_memory.get().saturating_sub(before) + now);
    if evictable(client) {
        core.global.raise_largest_client(core.router.local().0, now);
    }
    enforce(core);
}

/// A client that leaves takes its memory off its core's sum.
pub(crate) fn forget(core: &Core, client: &Client) {
    let local = core.local();
    local.clients_memory.set(local.clients_memory.get().saturating_sub(client.counted.replace(0)));
}

/// The cron's part: counts every client of this core again (also when a limit was just set)
/// and drops clients if the server is over the limit.
pub(crate) fn cron(core: &Core) {
    if core.global.clients_limit() == 0 {
        if core.local().clients_memory.get() != 0 {
            core.local().clients_memory.set(0);
            core.local().clients.borrow().values().for_each(|c| c.counted.set(0));
            core.global.publish_clients(core.router.local().0, 0, Some(0));
        }
        return;
    }
    let total = core
        .local()
        .clients
        .borrow()
        .values()
        .filter(|c| !c.is_killed())
        .map(|c| {
            let m = c.memory() as u64;
            c.counted.set(m);
            m
        })
        .sum();
    core.local().clients_memory.set(total);
    enforce(core);
}

/// Whether `maxmemory-clients` may drop `client`.
fn evictable(client: &Client) -> bool {
    !client.replica.get() && !client.no_evict.get() && !client.is_killed()
}

/// While the server's clients hold more than the limit, drops this core's largest evictable
/// client if no other core has a larger one. Under the limit, publishes only the sum (the
/// largest is looked for, and published, only when over it).
fn enforce(core: &Core) {
    let (me, global) = (core.router.local().0, &core.global);
    let limit = global.clients_limit();
    let mut evicted = false;
    loop {
        let (elsewhere, their_largest) = global.clients_elsewhere(me);
        let total = core.local().clients_memory.get();
        if total + elsewhere <= limit {
            // After an eviction the bound it leaves behind is lowered to what is here now.
            let now_largest = evicted.then(|| largest(core).map_or(0, |c| c.counted.get()));
            global.publish_clients(me, total, now_largest);
            return;
        }
        let Some(largest) = largest(core) else {
            if evicted {
                tracing::warn!("Over client maxmemory after evicting all evictable clients");
            }
            global.publish_clients(me, total, Some(0));
            return;
        };
        let size = largest.counted.get();
        if size < their_largest {
            global.publish_clients(me, total, Some(size));
            return;
        }
        tracing::info!("Evicting client: {}", largest.info_line());
        evicted = true;
        largest.kill();
        forget(core, &largest);
        core.local().count(|s| s.evicted_clients += 1);
    }
}

/// This core's largest evictable client.
fn largest(core: &Core) -> Option<Rc<Client>> {
    let clients = core.local().clients.borrow();
    clients.values().filter(|c| evictable(c)).max_by_key(|c| c.counted.get()).cloned()
}
