//! The shard's side of blocked clients (BLPOP and friends): who waits on which key of one
//! database, in the order they blocked, and serving them when a key they wait on changes.
//!
//! A waiter blocked on keys of several shards shares one `claimed` flag: the first shard to
//! serve it takes the claim, and the others skip it. The client's side (registering, timeouts,
//! CLIENT UNBLOCK) is [`crate::engine::blocking`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;
use futures::channel::mpsc;

use crate::cmd::error::CmdError;
use crate::engine::notify::Class;
use crate::storage::access::{self, list_mut};
use crate::storage::db::{Db, Entry, Value};
use crate::storage::list::End;
use crate::storage::stream::read::{self, Copied};
use crate::storage::stream::StreamId;

/// Clients of the process waiting for keys, counted from before their first waiter is
/// registered on a shard until they stopped waiting.
static WAITING: AtomicUsize = AtomicUsize::new(0);

/// Whether no client waits for a key anywhere: then no write can have a blocked client to
/// serve (which scripts holding every shard between two of them rely on, see
/// `script::turn`).
#[must_use]
pub(crate) fn none_waiting() -> bool {
    WAITING.load(Ordering::Acquire) == 0
}

/// One client counted in [`WAITING`] while it lives: [`wait`] holds one, and so does a
/// command that waits more than once (BLMOVE across shards, woken and trying again), so that
/// it is counted between its waits too.
pub(crate) struct Counted;

impl Counted {
    /// Counts the client from now on.
    pub(crate) fn new() -> Counted {
        WAITING.fetch_add(1, Ordering::AcqRel);
        Counted
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        WAITING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a waiter pops, from which type of value.
#[derive(Debug, Clone)]
pub(crate) enum Wants {
    /// From a list: `count` elements from `end`.
    List {
        /// The end popped.
        end: End,
        /// How many at most.
        count: usize,
        /// BLMOVE with the destination on this shard: the element is pushed there, here,
        /// atomically.
        then_push: Option<(Bytes, End)>,
    },
    /// From a list, but by the client itself: a BLMOVE whose destination is on another shard
    /// is woken (one element is kept back for it in this round) and runs LMOVE across both.
    Wake,
    /// From a sorted set: `count` members from the low end (the high one with `max`).
    ZSet {
        /// Pop the highest scores.
        max: bool,
        /// How many at most.
        count: usize,
    },
    /// From a stream (XREAD, XREADGROUP `>`): up to `count` entries after `after` (for a
    /// group, after the group's last ID when served).
    Stream {
        /// The last ID the client has.
        after: StreamId,
        /// How many entries at most.
        count: usize,
        /// XREADGROUP's group, consumer and NOACK.
        group: Option<Box<GroupWait>>,
    },
}

/// What a client blocked in XREADGROUP reads as.
#[derive(Debug, Clone)]
pub(crate) struct GroupWait {
    /// The group.
    pub(crate) group: Bytes,
    /// The consumer.
    pub(crate) consumer: Bytes,
    /// Entries delivered are not pending.
    pub(crate) noack: bool,
}

/// A served waiter's channel and what it gets: sent once the shard has published what the
/// pop logged, so that its client never replies before its write is in the journal.
pub(crate) type Delivery = (mpsc::Sender<(Bytes, Served)>, (Bytes, Served));

/// What a shard delivers to the waiter it served, with the key.
#[derive(Debug)]
pub(crate) enum Served {
    /// Elements popped from a list (and pushed to a BLMOVE's destination).
    List(Vec<Bytes>),
    /// Members popped from a sorted set, with their scores.
    ZSet(Vec<(Bytes, f64)>),
    /// Entries read from a stream.
    Stream(Vec<Copied>),
    /// The key has an element for a [`Wants::Wake`] waiter.
    Woken,
    /// The waiter fails with this error (BLMOVE onto a key of another type), as Redis fails it.
    Failed(CmdError),
}

/// A client blocked on a key, as the key's shard keeps it.
pub(crate) struct Waiter {
    /// Shared by the waiter's entries on every key: taken by whoever serves or ends the wait.
    pub(crate) claimed: Arc<AtomicBool>,
    /// What it pops.
    pub(crate) wants: Wants,
    /// Where its delivery goes.
    pub(crate) deliver: mpsc::Sender<(Bytes, Served)>,
}

impl Waiter {
    /// Whether the waiter was served, or gave up.
    #[must_use]
    pub(crate) fn is_claimed(&self) -> bool {
        self.claimed.load(Ordering::Acquire)
    }

    /// Whether it pops from a list (`true`) or a sorted set (`false`); `None` for a stream.
    fn pops_list(&self) -> Option<bool> {
        match self.wants {
            Wants::List { .. } | Wants::Wake => Some(true),
            Wants::ZSet { .. } => Some(false),
            Wants::Stream { .. } => None,
        }
    }
}

/// The waiters of one database.
#[derive(Default)]
pub(crate) struct Waiters {
    by_key: AHashMap<Bytes, VecDeque<Waiter>>,
    /// Keys with waiters that changed since they were last served.
    ready: Vec<Bytes>,
}

impl Waiters {
    /// Blocks `waiter` on `key`, behind the clients already blocked there (or before them: a
    /// BLMOVE that was woken but lost its element keeps its place). The key is looked at once
    /// more after this: a push may have come between the client's attempt and now.
    pub(crate) fn block(&mut self, db: &mut Db, key: &[u8], waiter: Waiter, first_in_line: bool) {
        let queue = self.by_key.entry(Bytes::copy_from_slice(key)).or_default();
        if first_in_line {
            queue.push_front(waiter);
        } else {
            queue.push_back(waiter);
        }
        db.observe(key);
        self.mark_ready(key);
    }

    /// Drops the waiters of `key` that were served or gave up.
    pub(crate) fn prune(&mut self, db: &mut Db, key: &[u8]) {
        let Some(queue) = self.by_key.get_mut(key) else { return };
        let before = queue.len();
        queue.retain(|w| !w.is_claimed());
        (queue.len()..before).for_each(|_| db.unobserve(key));
        if queue.is_empty() {
            self.by_key.remove(key);
        }
    }

    /// `key` changed: its waiters get a look at it.
    pub(crate) fn changed(&mut self, key: &[u8]) {
        if self.by_key.contains_key(key) {
            self.mark_ready(key);
        }
    }

    fn mark_ready(&mut self, key: &[u8]) {
        if !self.ready.iter().any(|k| k == key) {
            self.ready.push(Bytes::copy_from_slice(key));
        }
    }

    /// Whether a key with waiters changed.
    #[must_use]
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.is_empty()
    }

    /// One round of serving: the waiters of every ready key, those waiting for the key's type,
    /// in the order they blocked (Redis's `handleClientsBlockedOnKeys`). Serving a BLMOVE pushes
    /// onto its destination, a change the caller reports back before the next round.
    /// `kept` counts, per key, the elements kept back for woken BLMOVE waiters across rounds.
    pub(crate) fn serve_round(
        &mut self,
        db: &mut Db,
        now: u64,
        kept: &mut Vec<(Bytes, usize)>,
        report: &mut Report<'_>,
        outbox: &mut Vec<Delivery>,
    ) {
        for key in std::mem::take(&mut self.ready) {
            let at = match kept.iter().position(|(k, _)| *k == key) {
                Some(at) => at,
                None => {
                    kept.push((key.clone(), 0));
                    kept.len() - 1
                }
            };
            self.serve_streams(db, now, &key, report, outbox);
            self.serve_key(db, now, &key, &mut kept[at].1, report, outbox);
            self.prune(db, &key);
        }
    }

    /// Serves the clients blocked on stream `key`, in the order they blocked: an XREAD when
    /// the stream's last ID passed theirs, an XREADGROUP when it passed its group's (which
    /// delivers to it, with the effects logged); an XREADGROUP whose group or key went fails
    /// as Redis fails it. An XREAD on a key gone or of another type waits on.
    fn serve_streams(
        &mut self,
        db: &mut Db,
        now: u64,
        key: &Bytes,
        report: &mut Report<'_>,
        outbox: &mut Vec<Delivery>,
    ) {
        let Some(queue) = self.by_key.get_mut(key) else { return };
        let mut i = 0;
        while i < queue.len() {
            let w = &queue[i];
            let Wants::Stream { after, count, group } = &w.wants else {
                i += 1;
                continue;
            };
            let (after, count) = (*after, *count);
            let stream = match db.write_quiet(key, now) {
                Some(Entry { value: Value::Stream(s, ..), .. }) => Some(s),
                _ => None,
            };
            // Served when an entry past its ID is there to read (Redis serves a client whose
            // new entries were deleted at once with none; this one waits on for a live one).
            let last_live = |s: &crate::storage::stream::Stream| s.last_entry().map(|e| e.id);
            let due = match (stream.as_deref(), group) {
                (None, None) => false,
                (None, Some(_)) => true,
                (Some(s), None) => last_live(s).is_some_and(|l| l > after),
                (Some(s), Some(g)) => {
                    s.groups.get(&g.group).is_none_or(|g| last_live(s).is_some_and(|l| l > g.last_id))
                }
            };
            if !due || w.is_claimed() {
                i += 1;
                continue;
            }
            let Some(w) = queue.remove(i) else { return };
            db.unobserve(key);
            if w.claimed.swap(true, Ordering::AcqRel) {
                continue;
            }
            let Wants::Stream { group, .. } = &w.wants else { continue };
            let served = match (group, db.write_quiet(key, now)) {
                (None, Some(Entry { value: Value::Stream(s, ..), .. })) => {
                    Served::Stream(read::after(s, after, count))
                }
                (Some(g), Some(Entry { value: Value::Stream(s, ..), .. })) => {
                    let r = read::Reader {
                        effects: true,
                        key,
                        group: &g.group,
                        consumer: &g.consumer,
                        noack: g.noack,
                        now: now as i64,
                    };
                    let new_consumer = s
                        .groups
                        .get(&g.group[..])
                        .is_some_and(|grp| !grp.consumers.contains_key(&g.consumer[..]));
                    match read::deliver(s, r, count, report.log) {
                        Some(entries) => {
                            if new_consumer {
                                (report.notify)(Class::STREAM, "xgroup-createconsumer", key);
                            }
                            Served::Stream(entries)
                        }
                        None => Served::Failed(CmdError::msg(
                            "NOGROUP the consumer group this client was blocked on no longer exists",
                        )),
                    }
                }
                _ => Served::Failed(CmdError::msg("UNBLOCKED the stream key no longer exists")),
            };
            if matches!(served, Served::Stream(_)) && group.is_some() {
                db.count_change(key, false);
            }
            outbox.push((w.deliver, (key.clone(), served)));
        }
    }

    /// Serves the waiters of `key` while it holds elements beyond the `kept` ones.
    fn serve_key(
        &mut self,
        db: &mut Db,
        now: u64,
        key: &Bytes,
        kept: &mut usize,
        report: &mut Report<'_>,
        outbox: &mut Vec<Delivery>,
    ) {
        let Report { log, notify } = report;
        while let Some((list, len)) = poppable(db, now, key) {
            if len <= *kept {
                return;
            }
            let Some(queue) = self.by_key.get_mut(key) else { return };
            // Only clients waiting for this key's type; the others keep their places.
            let Some(at) = queue.iter().position(|w| w.pops_list() == Some(list) && !w.is_claimed()) else {
                return;
            };
            let Some(w) = queue.remove(at) else { return };
            db.unobserve(key);
            if w.claimed.swap(true, Ordering::AcqRel) {
                continue;
            }
            let served = match &w.wants {
                Wants::Wake => {
                    *kept += 1;
                    Served::Woken
                }
                Wants::List { end, count, then_push } => {
                    // As Redis: a destination of another type fails this client with WRONGTYPE
                    // and pops nothing.
                    if let Some((dst, _)) = then_push {
                        if access::write_quiet(db, now, dst, list_mut).is_err() {
                            outbox.push((w.deliver, (key.clone(), Served::Failed(CmdError::WrongType))));
                            continue;
                        }
                    }
                    let count = (*count).min(len - *kept);
                    let Ok(Some(popped)) = access::list_pop(db, now, key, *end, count) else {
                        return;
                    };
                    let side = |e: End| if e == End::Left { &b"LEFT"[..] } else { b"RIGHT" };
                    let pop_event = if *end == End::Left { "lpop" } else { "rpop" };
                    if let (Some((dst, to)), Some(e)) = (then_push, popped.first()) {
                        // Checked above; the push makes the destination ready for its waiters.
                        let _ = access::list_push(db, now, dst, *to, e);
                        log_after_expiries(db, log, &[b"LMOVE", key, dst, side(*end), side(*to)]);
                        // As LMOVE reports it: the push, then the pop.
                        notify(Class::LIST, if *to == End::Left { "lpush" } else { "rpush" }, dst);
                    } else {
                        let mut n_text = itoa::Buffer::new();
                        let n = n_text.format(popped.len());
                        let name: &[u8] = if *end == End::Left { b"LPOP" } else { b"RPOP" };
                        log_after_expiries(db, log, &[name, key, n.as_bytes()]);
                    }
                    notify(Class::LIST, pop_event, key);
                    if !db.live(key, now) {
                        notify(Class::GENERIC, "del", key);
                    }
                    Served::List(popped)
                }
                Wants::ZSet { max, count } => {
                    let Ok(Some(popped)) = access::zset_pop(db, now, key, *max, *count) else {
                        return;
                    };
                    let mut n_text = itoa::Buffer::new();
                    let n = n_text.format(popped.len());
                    let name: &[u8] = if *max { b"ZPOPMAX" } else { b"ZPOPMIN" };
                    log_after_expiries(db, log, &[name, key, n.as_bytes()]);
                    notify(Class::ZSET, if *max { "zpopmax" } else { "zpopmin" }, key);
                    if !db.live(key, now) {
                        notify(Class::GENERIC, "del", key);
                    }
                    Served::ZSet(popped)
                }
                Wants::Stream { .. } => continue,
            };
            outbox.push((w.deliver, (key.clone(), served)));
        }
    }
}

/// What serving reports besides its deliveries: the effects for the journal (`log`) and
/// keyspace notifications (`notify`, as [`crate::engine::shard::Ctx::notify`]).
pub(crate) struct Report<'a> {
    /// Logs a request as the served pop's effect.
    pub(crate) log: &'a mut dyn FnMut(&[&[u8]]),
    /// Reports an event on a key.
    pub(crate) notify: &'a mut dyn FnMut(Class, &'static str, &[u8]),
}

/// Logs a served pop in its non-blocking form (as Redis propagates a served BLPOP), after the
/// `DEL` of every key found expired on the way (a BLMOVE's destination, say).
fn log_after_expiries(db: &mut Db, log: &mut dyn FnMut(&[&[u8]]), args: &[&[u8]]) {
    for key in db.take_expired().unwrap_or_default() {
        log(&[b"DEL", &key]);
    }
    log(args);
}

/// Whether `key` holds a non-empty list (`true`) or sorted set (`false`), and how many
/// elements. Not a read for INFO's hits and misses, as in Redis.
fn poppable(db: &mut Db, now: u64, key: &[u8]) -> Option<(bool, usize)> {
    match &db.write_quiet(key, now)?.value {
        Value::List(l, ..) if !l.is_empty() => Some((true, l.len())),
        Value::ZSet(z, ..) if !z.is_empty() => Some((false, z.len())),
        _ => None,
    }
}
