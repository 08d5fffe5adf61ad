//! Hand-overs between two threads that wait for each other outside their executors' loops: a
//! script holding every shard waits on its thread for each hop's answer, and a peer lent to it
//! waits on its thread for the next hop (see [`crate::engine::router::blocking`]).
//!
//! A waiting side sleeps with [`std::thread::park`]; a hand-over wakes it with one `futex`
//! call when it sleeps, none when it is still running. A thread whose executor shares its cpu
//! with another executor ([`share_cpu`]) first yields the cpu a few times: the thread it waits
//! for is most often the one on that cpu, which then runs at once, and finds the waiter
//! running when it answers (no `futex` call either way: the kernel's cheapest hand-over). A
//! wait that spins without yielding (as a channel's does) would only delay that thread.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{self, Thread};

/// How many times a waiting thread that shares its cpu yields it before it sleeps.
const YIELDS: u32 = 64;

thread_local! {
    /// This thread's executor shares its cpu with another executor.
    static SHARES_CPU: Cell<bool> = const { Cell::new(false) };
}

/// Tells this thread's waits whether its executor shares its cpu with another executor (set
/// once as the executor starts).
pub(crate) fn share_cpu(shares: bool) {
    SHARES_CPU.with(|s| s.set(shares));
}

/// Where given items wait to be taken: a queue's many ([`VecDeque`]), or an answer's one
/// ([`Option`], which allocates nothing).
trait Items<T>: Default {
    fn put(&mut self, item: T);
    fn get(&mut self) -> Option<T>;
}

impl<T> Items<T> for VecDeque<T> {
    fn put(&mut self, item: T) {
        self.push_back(item);
    }
    fn get(&mut self) -> Option<T> {
        self.pop_front()
    }
}

impl<T> Items<T> for Option<T> {
    fn put(&mut self, item: T) {
        *self = Some(item);
    }
    fn get(&mut self) -> Option<T> {
        self.take()
    }
}

/// What one side gives and the other takes, and whether the giver is gone.
struct Shared<T, S = VecDeque<T>> {
    items: Mutex<S>,
    _item: std::marker::PhantomData<fn(T) -> T>,
    /// The giving side was dropped: nothing more comes.
    closed: AtomicBool,
    /// The thread that takes, once it waited.
    taker: OnceLock<Thread>,
}

impl<T, S: Items<T>> Shared<T, S> {
    fn new(taker: Option<Thread>) -> Arc<Shared<T, S>> {
        let cell = OnceLock::new();
        if let Some(taker) = taker {
            let _ = cell.set(taker);
        }
        Arc::new(Shared {
            items: Mutex::new(S::default()),
            _item: std::marker::PhantomData,
            closed: AtomicBool::new(false),
            taker: cell,
        })
    }

    fn wake(&self) {
        if let Some(taker) = self.taker.get() {
            taker.unpark();
        }
    }

    fn push(&self, item: T) {
        self.items.lock().unwrap_or_else(PoisonError::into_inner).put(item);
        self.wake();
    }

    /// The next item, waiting for it on this thread; `None` once the giver is gone and
    /// nothing is left.
    fn take(&self) -> Option<T> {
        let me = self.taker.get_or_init(thread::current);
        debug_assert_eq!(me.id(), thread::current().id());
        let mut yields = if SHARES_CPU.with(Cell::get) { YIELDS } else { 0 };
        loop {
            if let Some(item) = self.items.lock().unwrap_or_else(PoisonError::into_inner).get() {
                return Some(item);
            }
            if self.closed.load(Ordering::Acquire) {
                // Pushed before it closed: seen now.
                return self.items.lock().unwrap_or_else(PoisonError::into_inner).get();
            }
            if yields > 0 {
                yields -= 1;
                thread::yield_now();
            } else {
                // A wake-up between the check and here is not lost: it leaves a token.
                thread::park();
            }
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake();
    }
}

/// The giving side of a queue of items for one thread (see [`queue`]); dropping it tells
/// the taker that nothing more comes.
pub(crate) struct Feed<T>(Arc<Shared<T>>);

/// The taking side of a queue (see [`queue`]).
pub(crate) struct Drain<T>(Arc<Shared<T>>);

/// A queue from one thread to another, whose taker sleeps while it is empty. The taker is
/// whichever thread first takes.
pub(crate) fn queue<T>() -> (Feed<T>, Drain<T>) {
    let shared = Shared::new(None);
    (Feed(shared.clone()), Drain(shared))
}

impl<T> Feed<T> {
    /// Gives `item`, waking the taker if it sleeps. `Err` gives it back when the taker is gone.
    ///
    /// # Errors
    /// The [`Drain`] was dropped.
    pub(crate) fn give(&self, item: T) -> Result<(), T> {
        if Arc::strong_count(&self.0) < 2 {
            return Err(item);
        }
        self.0.push(item);
        Ok(())
    }
}

impl<T> Drop for Feed<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl<T> Drain<T> {
    /// The next item, waiting for it; `None` once the [`Feed`] is dropped and all is taken.
    pub(crate) fn next(&self) -> Option<T> {
        self.0.take()
    }
}

/// The giving side of a one-shot answer (see [`answer`]); dropped unused, the taker gets
/// `None`.
pub(crate) struct Give<T>(Arc<Shared<T, Option<T>>>);

/// The taking side of a one-shot answer (see [`answer`]).
pub(crate) struct Take<T>(Arc<Shared<T, Option<T>>>);

/// A one-shot answer for this thread, which waits for it with [`Take::wait`].
pub(crate) fn answer<T>() -> (Give<T>, Take<T>) {
    let shared = Shared::new(Some(thread::current()));
    (Give(shared.clone()), Take(shared))
}

impl<T> Give<T> {
    /// Gives the answer, waking the taker if it sleeps.
    pub(crate) fn give(self, item: T) {
        self.0.items.lock().unwrap_or_else(PoisonError::into_inner).put(item);
        // Dropped here: it closes and wakes the taker, once.
    }
}

impl<T> Drop for Give<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl<T> Take<T> {
    /// The answer, waiting for it on this thread; `None` if the giver was dropped unused.
    pub(crate) fn wait(self) -> Option<T> {
        self.0.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_hands_items_over_in_order_and_ends_when_its_feed_is_dropped() {
        let (feed, drain) = queue::<u32>();
        let taker = thread::spawn(move || std::iter::from_fn(|| drain.next()).collect::<Vec<_>>());
        for i in 0..1000 {
            assert!(feed.give(i).is_ok());
        }
        drop(feed);
        assert_eq!(taker.join().ok(), Some((0..1000).collect()));
    }

    #[test]
    fn an_answer_wakes_its_taker_and_a_dropped_giver_gives_none() {
        let (give, take) = answer::<&str>();
        let giver = thread::spawn(move || give.give("pong"));
        assert_eq!(take.wait(), Some("pong"));
        giver.join().ok();
        let (give, take) = answer::<u8>();
        thread::spawn(move || drop(give)).join().ok();
        assert_eq!(take.wait(), None);
    }

    #[test]
    fn a_feed_whose_drain_is_gone_gives_its_item_back() {
        let (feed, drain) = queue::<u8>();
        drop(drain);
        assert_eq!(feed.give(7), Err(7));
    }
}
