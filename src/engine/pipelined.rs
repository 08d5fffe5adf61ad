//! A pipeline's hop: a connection's commands for one shard of another core, sent as data.
//!
//! Most pipelines whose keys span shards send each other shard one [`Pipelined`] hop: the
//! commands (each with the reply slot it fills) and a vector for their replies. The owning core
//! runs them in order, as it would a [`Hop::Run`](super::router::Hop::Run) outside any
//! transaction, and sends the hop back whole. So the commands, the memory the parser gave their
//! arguments and both vectors are dropped, or kept for the next pipeline ([`Spare`]), by the core
//! that allocated them, and the trip allocates nothing: no boxed job or reply, no channel. A
//! free from another thread costs the allocator an atomic push and its owner a collection later
//! (BENCHMARKS.md, "Issue 20: a pipeline's hop carries data").
//!
//! The connection waits on its own core's [`Awaited`] table, by ticket. Its answer wakes it; so
//! does a send that finds the shard's core gone, or that core's channel closing (its hops in
//! flight are answered `Unavailable`). A connection that stops waiting leaves a mark, and the
//! answer is dropped when it comes.

use std::cell::RefCell;
use std::task::{Context, Poll, Waker};

use crate::engine::shard::{Shard, ShardCmd};
use crate::engine::slot::ShardId;
use crate::facade::reply::Reply;

/// A connection's pipelined commands for one shard, and their replies once run (see the module
/// docs).
pub(crate) struct Pipelined {
    /// The core that waits for it.
    pub(crate) from: ShardId,
    /// Its entry in that core's [`Awaited`].
    ticket: usize,
    /// The commands, in order, each with the pipeline slot its reply fills.
    pub(crate) cmds: Vec<(usize, ShardCmd)>,
    /// Their replies, in the same order, once run (empty before).
    pub(crate) replies: Vec<Reply>,
}

impl Pipelined {
    /// Its entry in the waiting core's [`Awaited`].
    pub(crate) fn ticket(&self) -> usize {
        self.ticket
    }

    /// Runs the commands on `shard`, in order, their replies pushed after any already there.
    /// The keys' slots start loading into cache first, so that their misses overlap.
    pub(crate) fn run_on(&mut self, shard: &mut Shard) {
        if let [(_, first), _, ..] = &self.cmds[..] {
            shard.prefetch(first.db, self.cmds.iter().filter_map(|(_, cmd)| cmd.args.get(1)));
            let members = self.cmds.iter().filter_map(|(_, c)| c.prefetch.member_of(&c.args));
            shard.prefetch_members(first.db, members);
        }
        self.replies.extend(self.cmds.iter().map(|(_, cmd)| shard.exec(cmd)));
    }
}

/// Where a ticket stands.
enum Entry {
    /// Free for the next hop.
    Vacant,
    /// Sent to `to`; the waker of the task waiting for it, once it polled.
    Sent { to: ShardId, waker: Option<Waker> },
    /// Answered (`None`: its shard's core is gone), not yet taken.
    Back(Option<Pipelined>),
    /// Its task stopped waiting: the answer is dropped when it comes.
    Abandoned { to: ShardId },
}

/// The [`Pipelined`] hops this core sent and waits for, by ticket. Lives on one core; every
/// method runs there.
#[derive(Default)]
pub(crate) struct Awaited {
    entries: RefCell<Vec<Entry>>,
    /// Vacant tickets.
    vacant: RefCell<Vec<usize>>,
}

impl Awaited {
    /// A hop of `cmds`, from core `from` to core `to`, with `replies` (empty) to fill: its
    /// ticket is taken until it is answered and [`Awaited::poll`] took it, or it is abandoned.
    pub(crate) fn send(
        &self,
        from: ShardId,
        to: ShardId,
        cmds: Vec<(usize, ShardCmd)>,
        replies: Vec<Reply>,
    ) -> Pipelined {
        let mut entries = self.entries.borrow_mut();
        let sent = Entry::Sent { to, waker: None };
        let ticket = match self.vacant.borrow_mut().pop() {
            Some(t) => {
                entries[t] = sent;
                t
            }
            None => {
                entries.push(sent);
                entries.len() - 1
            }
        };
        Pipelined { from, ticket, cmds, replies }
    }

    /// The answer to ticket `ticket`, once it came: `Ready(None)` when its shard's core is gone.
    pub(crate) fn poll(&self, ticket: usize, cx: &mut Context<'_>) -> Poll<Option<Pipelined>> {
        let mut entries = self.entries.borrow_mut();
        // Polled after it was taken (a caller's bug): answered as a gone shard.
        let Some(entry) = entries.get_mut(ticket) else { return Poll::Ready(None) };
        match std::mem::replace(entry, Entry::Vacant) {
            Entry::Sent { to, waker } => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *entry = Entry::Sent { to, waker: Some(waker) };
                Poll::Pending
            }
            Entry::Back(answer) => {
                self.vacant.borrow_mut().push(ticket);
                Poll::Ready(answer)
            }
            other => {
                *entry = other;
                Poll::Ready(None)
            }
        }
    }

    /// The task waiting for `ticket` stopped waiting (its connection closed).
    pub(crate) fn abandon(&self, ticket: usize) {
        let mut entries = self.entries.borrow_mut();
        match entries.get_mut(ticket) {
            Some(Entry::Sent { to, .. }) => {
                let to = *to;
                entries[ticket] = Entry::Abandoned { to };
            }
            Some(entry @ Entry::Back(_)) => {
                *entry = Entry::Vacant;
                self.vacant.borrow_mut().push(ticket);
            }
            _ => {}
        }
    }

    /// `hop` came back run: its task is woken (or, abandoned, the hop is dropped here).
    pub(crate) fn answer(&self, hop: Pipelined) {
        self.settle(hop.ticket, Some(hop));
    }

    /// The hop of `ticket` will never be answered: its shard's core is gone.
    pub(crate) fn fail(&self, ticket: usize) {
        self.settle(ticket, None);
    }

    /// Every hop sent to core `to` will never be answered: that core is gone.
    pub(crate) fn fail_all_to(&self, to: ShardId) {
        let tickets: Vec<usize> = self
            .entries
            .borrow()
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e, Entry::Sent { to: t, .. } | Entry::Abandoned { to: t } if *t == to))
            .map(|(i, _)| i)
            .collect();
        tickets.into_iter().for_each(|t| self.fail(t));
    }

    fn settle(&self, ticket: usize, answer: Option<Pipelined>) {
        let mut entries = self.entries.borrow_mut();
        let Some(entry) = entries.get_mut(ticket) else {
            drop(entries);
            return tracing::error!(ticket, "a pipelined hop came back to a ticket never given");
        };
        let (waker, dropped) = match std::mem::replace(entry, Entry::Vacant) {
            Entry::Sent { waker, .. } => {
                *entry = Entry::Back(answer);
                (waker, None)
            }
            Entry::Abandoned { .. } => {
                self.vacant.borrow_mut().push(ticket);
                (None, answer)
            }
            other => {
                *entry = other;
                tracing::error!(ticket, "a pipelined hop came back to a ticket not waiting for it");
                (None, answer)
            }
        };
        // Dropped (an abandoned hop's commands) and woken outside the borrow.
        drop(entries);
        drop(dropped);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Tickets taken (sent and not yet taken back, or abandoned): for tests.
    #[cfg(test)]
    fn taken(&self) -> usize {
        self.entries.borrow().iter().filter(|e| !matches!(e, Entry::Vacant)).count()
    }
}

/// A core's spare vectors for the pipelined hops of its connections: a hop's two vectors come
/// back with it and wait here for the next pipeline, instead of being freed and grown again
/// (a pipeline's batch for a shard grew through three allocations).
#[derive(Default)]
pub(crate) struct Spare {
    cmds: RefCell<Vec<Vec<(usize, ShardCmd)>>>,
    replies: RefCell<Vec<Vec<Reply>>>,
}

/// Spare vectors kept per core, of each kind: about as many as its connections have hops out
/// at once; more are freed.
const SPARE: usize = 64;

/// A spare vector above this capacity (a long pipeline's) is freed: what is kept stays under
/// 64 × 64 entries of each kind per core.
const SPARE_CAPACITY: usize = 64;

impl Spare {
    /// An empty vector for a batch of commands, with room kept from an earlier one if any.
    pub(crate) fn cmds(&self) -> Vec<(usize, ShardCmd)> {
        self.cmds.borrow_mut().pop().unwrap_or_default()
    }

    /// An empty vector for replies, with room kept from an earlier one if any.
    pub(crate) fn replies(&self) -> Vec<Reply> {
        self.replies.borrow_mut().pop().unwrap_or_default()
    }

    /// Keeps a hop's vectors, emptied, for the next pipeline.
    pub(crate) fn keep(&self, mut cmds: Vec<(usize, ShardCmd)>, mut replies: Vec<Reply>) {
        cmds.clear();
        replies.clear();
        keep(&self.cmds, cmds);
        keep(&self.replies, replies);
    }
}

fn keep<T>(spare: &RefCell<Vec<Vec<T>>>, v: Vec<T>) {
    let mut spare = spare.borrow_mut();
    if v.capacity() > 0 && v.capacity() <= SPARE_CAPACITY && spare.len() < SPARE {
        spare.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn an_answer_wakes_its_task_once_and_frees_its_ticket_when_taken() {
        let awaited = Awaited::default();
        let hop = awaited.send(ShardId(0), ShardId(1), Vec::new(), Vec::new());
        let (woken, w) = waker();
        let mut cx = Context::from_waker(&w);
        assert!(awaited.poll(hop.ticket, &mut cx).is_pending());
        let ticket = hop.ticket;
        awaited.answer(hop);
        assert_eq!(woken.0.load(Ordering::Relaxed), 1);
        assert!(matches!(awaited.poll(ticket, &mut cx), Poll::Ready(Some(_))));
        assert_eq!(awaited.taken(), 0);
        // The ticket serves the next hop.
        assert_eq!(awaited.send(ShardId(0), ShardId(1), Vec::new(), Vec::new()).ticket, ticket);
    }

    #[test]
    fn an_abandoned_hop_is_dropped_when_it_comes_back_and_a_gone_core_fails_only_its_own() {
        let awaited = Awaited::default();
        let to_one = awaited.send(ShardId(0), ShardId(1), Vec::new(), Vec::new());
        let to_two = awaited.send(ShardId(0), ShardId(2), Vec::new(), Vec::new());
        let abandoned = awaited.send(ShardId(0), ShardId(1), Vec::new(), Vec::new());
        let (_, w) = waker();
        let mut cx = Context::from_waker(&w);
        awaited.abandon(abandoned.ticket);
        awaited.answer(abandoned);
        awaited.fail_all_to(ShardId(1));
        assert!(matches!(awaited.poll(to_one.ticket, &mut cx), Poll::Ready(None)));
        assert!(awaited.poll(to_two.ticket, &mut cx).is_pending());
        assert_eq!(awaited.taken(), 1);
        // Abandoned and never answered: its core's going frees it too.
        let lost = awaited.send(ShardId(0), ShardId(1), Vec::new(), Vec::new());
        awaited.abandon(lost.ticket);
        drop(lost);
        awaited.fail_all_to(ShardId(1));
        assert_eq!(awaited.taken(), 1);
    }
}
