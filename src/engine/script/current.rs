//! The run under way on this core: what answers its `redis.call`s (the handler a run on a
//! shard installs) and the state its `redis.*` functions read and change. One per core, as
//! its interpreter; both the interpreter (`lua.rs`) and its hot path (`stack.rs`) reach it.

use std::cell::Cell;

use bytes::Bytes;

use crate::facade::Reply;

/// What answers a script's `redis.call` during a run on a shard (it finds the run's state in
/// a thread-local of its own).
pub(crate) type Handler = fn(Vec<Bytes>) -> Reply;

/// The state of the run under way, which `redis.*` functions read and change.
pub(super) struct RunState {
    /// `redis.setresp`: how replies convert into Lua (2 or 3).
    pub(super) resp: Cell<u8>,
    /// A script runs (math.random and redis.setresp refuse outside one).
    pub(super) running: Cell<bool>,
    /// The 48-bit state of `math.random` (Redis's `redisLrand48`).
    pub(super) rand: Cell<u64>,
}

/// `redisLrand48`'s state before any seeding.
pub(super) const INITIAL_RAND: u64 = 0x1234_ABCD_330E;

thread_local! {
    static RUN: RunState = const {
        RunState { resp: Cell::new(2), running: Cell::new(false), rand: Cell::new(INITIAL_RAND) }
    };
    /// The handler of the run under way on this core (its `redis.call` and `redis.pcall`,
    /// created once, find it here).
    static HANDLER: Cell<Option<Handler>> = const { Cell::new(None) };
}

/// Runs `f` with this core's run state.
pub(super) fn run_state<R>(f: impl FnOnce(&RunState) -> R) -> R {
    RUN.with(f)
}

/// Installs (or, with `None`, removes) the handler of this core's run under way.
pub(crate) fn set_handler(handler: Option<Handler>) {
    HANDLER.with(|h| h.set(handler));
}

/// The reply of the handler of the run under way on this core to `args` (`None` outside a
/// run on a shard).
pub(super) fn handle(args: Vec<Bytes>) -> Option<Reply> {
    HANDLER.with(Cell::get).map(|h| h(args))
}
