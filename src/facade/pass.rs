//! The executor's pass: a connection's replies leave once every task ready to run has run.
//!
//! Redis runs the requests of every client ready in one turn of its event loop and writes
//! all their replies before it sleeps. Here each connection is a task of its core's executor,
//! and a connection with replies waits in [`until_the_pass_ends`] until no other task is ready
//! to run but those waiting the same way: the replies of the pass then leave one after
//! another. A client with one thread (redis-benchmark, most client libraries' event loops)
//! woken by the first reply finds the others already there; one reply at a time woke it once
//! for each, and waking a sleeping cpu costs the writer several µs on a VM (BENCHMARKS.md,
//! "Issue 20: replies leave together" and "Issue 22: the replies of a pass leave together").
//!
//! A task that yields on purpose, to let the others in between pieces of a long job (a
//! background save's pieces, a busy script's slices, the accept loop past its cap of new TLS
//! connections per turn), yields through [`behind_the_pass`]: the replies waiting to leave do
//! not wait for it, and its next piece waits for them.

use std::cell::Cell;

thread_local! {
    /// Tasks of this executor in [`until_the_pass_ends`].
    static REPLIES: Cell<usize> = const { Cell::new(0) };
    /// Tasks of this executor in [`behind_the_pass`].
    static BEHIND: Cell<usize> = const { Cell::new(0) };
}

/// Turns of the executor's queue that a task waits at most in [`until_the_pass_ends`] or
/// [`behind_the_pass`]: a task that stays ready to run without yielding through either holds
/// nothing back for longer.
const MAX_TURNS: u32 = 16;

/// Counts its task in `counter` until it is dropped (also when the task is).
struct Counted(&'static std::thread::LocalKey<Cell<usize>>);

impl Counted {
    fn new(counter: &'static std::thread::LocalKey<Cell<usize>>) -> Counted {
        counter.with(|c| c.set(c.get() + 1));
        Counted(counter)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.with(|c| c.set(c.get().saturating_sub(1)));
    }
}

/// Waits until every other task of this executor ready to run has run, or waits here or in
/// [`behind_the_pass`] (at most [`MAX_TURNS`] turns of the queue). Yields at least once.
pub(crate) async fn until_the_pass_ends() {
    let _counted = Counted::new(&REPLIES);
    for _ in 0..MAX_TURNS {
        glommio::executor().yield_now().await;
        // This task runs: every other waiting one is in the queue.
        let waiting = REPLIES.with(Cell::get) + BEHIND.with(Cell::get);
        if glommio::executor().runnable_tasks() < waiting {
            return;
        }
    }
}

/// Lets every task ready to run go first, and then the replies waiting to leave (at most
/// [`MAX_TURNS`] turns of the queue), which do not wait for it. With `reactor`, the executor
/// polls its reactor (I/O completions, timers, hops from other cores) before it runs more
/// tasks; the tasks that poll wakes queue behind this one, so they go first only while
/// replies keep it waiting (a caller that wants them first yields again, as
/// `engine::snapshot::let_others_in` does).
pub(crate) async fn behind_the_pass(reactor: bool) {
    let _counted = Counted::new(&BEHIND);
    if reactor {
        glommio::executor().yield_to_reactor().await;
    } else {
        glommio::executor().yield_now().await;
    }
    for _ in 1..MAX_TURNS {
        if REPLIES.with(Cell::get) == 0 {
            return;
        }
        glommio::executor().yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Runs `f` on a fresh executor.
    fn on_executor<F: std::future::Future<Output = ()> + 'static>(f: impl FnOnce() -> F + Send + 'static) {
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(|| async move { f().await })
            .expect("an executor starts")
            .join()
            .expect("the executor ends");
    }

    #[test]
    fn replies_leave_after_every_ready_task_ran_and_never_wait_for_a_long_job() {
        on_executor(|| async {
            let log = Rc::new(RefCell::new(Vec::new()));
            // A long job that yields between pieces for as long as it runs.
            let job = {
                let log = log.clone();
                glommio::spawn_local(async move {
                    for _ in 0..100 {
                        log.borrow_mut().push("piece");
                        behind_the_pass(false).await;
                    }
                })
            };
            // Three connections woken in one pass: each runs its request, then writes.
            let connections: Vec<_> = (0..3)
                .map(|_| {
                    let log = log.clone();
                    glommio::spawn_local(async move {
                        log.borrow_mut().push("request");
                        until_the_pass_ends().await;
                        log.borrow_mut().push("reply");
                    })
                })
                .collect();
            for c in connections {
                c.await;
            }
            let seen = log.borrow().clone();
            let first_reply = seen.iter().position(|e| *e == "reply").expect("a reply left");
            assert_eq!(seen.iter().filter(|e| **e == "request").count(), 3);
            assert!(
                seen[..first_reply].iter().filter(|e| **e == "request").count() == 3,
                "a reply left before every request ran: {seen:?}"
            );
            // The replies left together, before the job's next piece and long before its end.
            let replies: Vec<usize> =
                seen.iter().enumerate().filter(|(_, e)| **e == "reply").map(|(i, _)| i).collect();
            assert_eq!(replies, vec![first_reply, first_reply + 1, first_reply + 2], "{seen:?}");
            assert!(seen[..first_reply].iter().filter(|e| **e == "piece").count() < 3, "{seen:?}");
            job.await;
            assert_eq!((REPLIES.with(Cell::get), BEHIND.with(Cell::get)), (0, 0));
        });
    }

    #[test]
    fn replies_wait_a_bounded_number_of_turns_for_a_task_that_stays_ready() {
        on_executor(|| async {
            let turns = Rc::new(Cell::new(0u32));
            let busy = {
                let turns = turns.clone();
                glommio::spawn_local(async move {
                    for _ in 0..1000 {
                        turns.set(turns.get() + 1);
                        glommio::executor().yield_now().await;
                    }
                })
            };
            until_the_pass_ends().await;
            assert!(turns.get() <= MAX_TURNS + 1, "waited {} turns", turns.get());
            busy.await;
        });
    }
}
