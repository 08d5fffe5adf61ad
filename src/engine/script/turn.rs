//! This core's turn at every shard's gate, for its scripts that hold them all.
//!
//! A script whose keys are not all on one shard runs holding every shard's gate (see
//! `run.rs`). Locking them all costs a hop to each peer and, on release, another, and the peers'
//! threads are lent to the run afresh; paid per read of a pipeline (the gates stay between the
//! scripts of one read), that is most of what separates a two-shard script from a one-shard
//! one. So the sessions of one core take turns instead of each locking the gates for its
//! scripts: one session at a time holds this core's [`Turn`], and when it is done with the
//! gates it hands them, still held and with the peers still lent, to the next session of this
//! core waiting for them ([`hand_on`]). The gates are released when no session here waits,
//! when they may not stay held ([`may_keep`]), or after [`HANDOVERS`] hand-overs in a row, so
//! that the other cores' scripts and every other command get their turn (the session that
//! gets the turn then locks the gates anew, behind them). Other transactions (EXEC, FLUSHALL,
//! FUNCTION LOAD) lock the gates as before, and wait behind a run of hand-overs.
//!
//! Atomicity is the gates': every script still runs whole while it holds every shard's gate,
//! and nothing else runs on any shard between two scripts that hand the gates on, as between
//! two pipelined scripts of one client; the conditions for keeping the gates are the same.
//! The cost: a peer lent to this core stays lent through the run of hand-overs, its own
//! clients and timers waiting meanwhile (as through one client's pipeline of scripts).
//!
//! Liveness: a session waiting for the turn holds no gate. A [`Turn`] dropped with no hand-over
//! (its session ended, an error) passes the turn on without the gates: the next session locks
//! them itself, behind whatever released them.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::rc::Rc;

use futures::channel::oneshot;

use crate::engine::core::Core;
use crate::engine::router::{Router, Tx, Unavailable};
use crate::engine::slot::ShardId;

/// How many times in a row this core's sessions hand the gates on before they are released.
const HANDOVERS: u32 = 16;

/// What the next session gets with the turn.
enum Handed {
    /// Every shard's gate, held.
    Gates(Tx, Turn),
    /// The turn alone: it locks the gates itself.
    Begin(Turn),
}

/// This core's turn: who waits for it, and how many hand-overs it has made in a row.
#[derive(Default)]
struct Turns {
    /// A session holds the turn (or is locking the gates with it).
    taken: bool,
    /// The sessions waiting for it, in order.
    waiting: VecDeque<oneshot::Sender<Handed>>,
    /// Hand-overs since the gates were last locked.
    handed: u32,
}

thread_local! {
    static TURNS: RefCell<Turns> = RefCell::new(Turns::default());
}

/// This core's turn at every shard's gate (see the module's header): it stays on its core's
/// thread. Dropped without [`hand_on`], it passes the turn on without the gates.
#[must_use]
pub(crate) struct Turn(PhantomData<*const ()>);

impl Turn {
    fn new() -> Turn {
        Turn(PhantomData)
    }

    /// Ends this token without passing the turn: whoever spends it passes it.
    fn spend(self) {
        std::mem::forget(self);
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        // No gates given: none come back.
        let _ = pass(None);
    }
}

/// Passes the turn to the next session still waiting, with `gates` unless they were handed on
/// [`HANDOVERS`] times in a row; returns the gates no session took, for the caller to release.
fn pass(mut gates: Option<Tx>) -> Option<Tx> {
    loop {
        // None also when this thread is ending: no session waits any more.
        let next = TURNS
            .try_with(|t| {
                let mut t = t.borrow_mut();
                let next = t.waiting.pop_front();
                let keep = gates.is_some() && t.handed < HANDOVERS;
                if next.is_none() {
                    t.taken = false;
                    t.handed = 0;
                }
                next.map(|next| (next, keep))
            })
            .ok()
            .flatten();
        let Some((next, keep)) = next else { return gates };
        let handed = match gates.take() {
            Some(tx) if keep => Handed::Gates(tx, Turn::new()),
            other => {
                gates = other;
                Handed::Begin(Turn::new())
            }
        };
        match next.send(handed) {
            Ok(()) => {
                let _ = TURNS.try_with(|t| {
                    let mut t = t.borrow_mut();
                    t.handed = if keep { t.handed + 1 } else { 0 };
                });
                return gates;
            }
            // That session is gone: the next one, the turn made for it unused.
            Err(Handed::Gates(tx, turn)) => {
                turn.spend();
                gates = Some(tx);
            }
            Err(Handed::Begin(turn)) => turn.spend(),
        }
    }
}

/// Every shard's gate for a script of this session: handed on by another session of this core
/// when one holds this core's turn, else locked.
///
/// # Errors
/// A shard's core is shutting down.
pub(crate) async fn take(router: &Rc<Router>) -> Result<(Tx, Turn), Unavailable> {
    let waiting = TURNS.with(|t| {
        let mut t = t.borrow_mut();
        if t.taken {
            let (given, wait) = oneshot::channel();
            t.waiting.push_back(given);
            Some(wait)
        } else {
            t.taken = true;
            None
        }
    });
    let turn = match waiting {
        None => Turn::new(),
        Some(wait) => match wait.await {
            Ok(Handed::Gates(tx, turn)) => return Ok((tx, turn)),
            Ok(Handed::Begin(turn)) => turn,
            // The core's thread is ending.
            Err(_) => return Err(Unavailable(router.local().0)),
        },
    };
    let all = (0..router.shards()).map(ShardId).collect();
    let tx = router.begin(all).await?;
    Ok((tx, turn))
}

/// Whether a script's gates may stay held after it, for another script: nothing is journaled
/// (a transaction's effects are sealed for the files and replicas when it releases, and a
/// shutdown while the next script runs would drop this one's with them), and no client waits
/// for a key (Redis serves one that a script's write readied before the next command; see
/// [`crate::engine::waiters::none_waiting`] for when a client counts as waiting).
#[must_use]
pub(crate) fn may_keep(tx: &Tx) -> bool {
    !tx.journaling() && crate::engine::waiters::none_waiting()
}

/// Ends a session's use of every shard's gate: hands them on, held and with the peers still
/// lent, to the next session of this core waiting for them, when they may stay held
/// ([`may_keep`]); else releases them (and the peers), passing the turn on. Shutting down
/// (SHUTDOWN NOSAVE ended a run), the transaction is dropped unsealed, so no file or replica
/// gets part of a script, and no hop waits for a core that may have stopped.
pub(crate) async fn hand_on(core: &Core, tx: Tx, turn: Turn) {
    if core.global.shutting_down() {
        crate::engine::router::let_go();
        std::mem::forget(tx);
        // The turn passes on without the gates.
        drop(turn);
        return;
    }
    turn.spend();
    let rest = if may_keep(&tx) {
        let rest = pass(Some(tx));
        if rest.is_none() {
            core.router.local_state().count(|s| s.gate_handovers += 1);
        }
        rest
    } else {
        let _ = pass(None);
        Some(tx)
    };
    if let Some(tx) = rest {
        crate::engine::router::let_go();
        tx.release().await;
    }
}
