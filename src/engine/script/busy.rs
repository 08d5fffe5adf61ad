//! Scripts that run past `busy-reply-threshold`, treated as Redis treats them: the server
//! answers every other command `-BUSY` except those flagged `allow-busy` (SCRIPT KILL,
//! FUNCTION KILL, FUNCTION STATS, SHUTDOWN NOSAVE, ...), a script that has not written can be
//! killed, and one that has can only be ended with the server.
//!
//! Each run is watched on the core its interpreter runs on (a thread-local [`Watch`], which
//! the interpreter's count hook ticks every [`HOOK_EVERY`] instructions); a run that crosses
//! the threshold publishes itself in a process-wide list, which every core reads before it
//! runs a command (one relaxed load while the list is empty). From then on the hook also
//! pauses the run every [`SLICE`] so that its core serves its other clients (with `-BUSY`),
//! and the run's driver keeps its shards held meanwhile (`run.rs`).

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::cmd::error::CmdError;
use crate::engine::script::functions::Function;
use crate::engine::script::store::Source;
use crate::engine::stats::Started;

/// Instructions between two checks of a run's time (Redis's count hook period).
pub(crate) const HOOK_EVERY: i32 = 100_000;

/// How long a busy run goes on between two pauses that let its core serve other clients.
const SLICE: Duration = Duration::from_millis(10);

/// `-BUSY` while an EVAL script is busy.
const BUSY_EVAL: &str =
    "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.";
/// `-BUSY` while a function is busy.
const BUSY_FUNCTION: &str =
    "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.";

/// A run past the threshold, as the other cores see it.
pub(crate) struct Busy {
    /// A function (FCALL), not an EVAL script.
    pub(crate) function: bool,
    /// The function's name, or the script's SHA1.
    pub(crate) name: String,
    /// The request that started it (FUNCTION STATS shows it).
    pub(crate) command: Vec<Bytes>,
    /// When it started.
    pub(crate) started: Instant,
    /// Sent by this server's primary: it cannot be killed.
    from_primary: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// It ran a write command: it cannot be killed.
    wrote: bool,
    /// SCRIPT KILL / FUNCTION KILL asked it to end.
    killed: bool,
}

impl Busy {
    /// The `-BUSY` error other commands get while it runs.
    #[must_use]
    pub(crate) fn refusal(&self) -> CmdError {
        CmdError::msg(if self.function { BUSY_FUNCTION } else { BUSY_EVAL })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The busy runs, oldest first, and how many there are.
static BUSY: Mutex<Vec<Arc<Busy>>> = Mutex::new(Vec::new());
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn list() -> MutexGuard<'static, Vec<Arc<Busy>>> {
    BUSY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The oldest busy run, if any.
#[must_use]
pub(crate) fn oldest() -> Option<Arc<Busy>> {
    if COUNT.load(Ordering::Relaxed) == 0 {
        return None;
    }
    list().first().cloned()
}

/// The `-BUSY` error for a command that is not allowed while a run is busy, if one is.
#[must_use]
pub(crate) fn refusal() -> Option<CmdError> {
    oldest().map(|b| b.refusal())
}

/// SCRIPT KILL (`function` false) or FUNCTION KILL: asks the busy run to end, with Redis's
/// refusals.
///
/// # Errors
/// NOTBUSY with no busy run; UNKILLABLE for a run that wrote or that the primary sent; BUSY
/// for the other command's kind.
pub(crate) fn kill(function: bool) -> Result<(), CmdError> {
    let Some(busy) = oldest() else {
        return Err(CmdError::msg("NOTBUSY No scripts in execution right now."));
    };
    if busy.from_primary {
        return Err(CmdError::msg(
            "UNKILLABLE The busy script was sent by a master instance in the context of replication and cannot be killed.",
        ));
    }
    let mut state = busy.state();
    if state.wrote {
        return Err(CmdError::msg(
            "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait \
             the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
        ));
    }
    match (function, busy.function) {
        (false, true) => return Err(CmdError::msg(BUSY_FUNCTION)),
        (true, false) => return Err(CmdError::msg(BUSY_EVAL)),
        _ => {}
    }
    state.killed = true;
    Ok(())
}

/// What a run runs, named only once it is busy.
pub(crate) enum Named {
    /// An EVAL script (named by its SHA1).
    Script(Arc<Source>),
    /// A function (named by its name).
    Function(Arc<Function>),
}

impl Named {
    fn text(&self) -> String {
        match self {
            Named::Script(s) => String::from_utf8_lossy(&s.sha).into_owned(),
            Named::Function(f) => f.name.clone(),
        }
    }
}

/// What a run is, for its [`Watch`].
pub(crate) struct Watched {
    /// What it runs.
    pub(crate) name: Named,
    /// The request (kept for FUNCTION STATS).
    pub(crate) command: Vec<Bytes>,
    /// Sent by this server's primary.
    pub(crate) from_primary: bool,
    /// `busy-reply-threshold`.
    pub(crate) threshold: Duration,
}

/// The run under way on this core's interpreter.
struct Watch {
    what: Watched,
    /// When it started (the TSC commands are timed with: a third of `Instant::now`'s cost,
    /// paid by every run).
    started: Started,
    wrote: bool,
    busy: Option<Arc<Busy>>,
    /// When it last paused.
    paused: Started,
}

thread_local! {
    static WATCH: RefCell<Option<Watch>> = const { RefCell::new(None) };
}

/// What the hook does at a tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tick {
    /// Let the run go on.
    Continue,
    /// Pause it: its core serves its other clients, then it resumes.
    Pause,
    /// End it: it was killed.
    Kill,
}

/// A run starts on this core.
pub(crate) fn watch(what: Watched) {
    let now = Started::now();
    WATCH.with(|w| {
        *w.borrow_mut() = Some(Watch { what, started: now, wrote: false, busy: None, paused: now })
    });
}

/// The run under way is about to run a write command: from now on it cannot be killed.
///
/// # Errors
/// It was killed already (the kill was granted before this write): the write must not run.
pub(crate) fn wrote() -> Result<(), CmdError> {
    WATCH.with(|w| {
        if let Some(watch) = w.borrow_mut().as_mut() {
            if let Some(busy) = &watch.busy {
                let mut state = busy.state();
                if state.killed {
                    return Err(CmdError::msg("ERR Script killed by user with SCRIPT KILL..."));
                }
                state.wrote = true;
            }
            watch.wrote = true;
        }
        Ok(())
    })
}

/// The hook's check: whether the run crossed the threshold (it is published, once, with
/// Redis's log line), was killed, or should pause.
#[must_use]
pub(crate) fn tick() -> Tick {
    WATCH.with(|w| {
        let mut guard = w.borrow_mut();
        let Some(watch) = guard.as_mut() else { return Tick::Continue };
        let elapsed = Duration::from_nanos(watch.started.elapsed_ns());
        if watch.busy.is_none() {
            if elapsed < watch.what.threshold {
                return Tick::Continue;
            }
            let (function, name) = (matches!(watch.what.name, Named::Function(_)), watch.what.name.text());
            tracing::warn!(
                "Slow script detected: still in execution after {} milliseconds. You can try killing the script \
                 using the {} command. Script name is: {}.",
                elapsed.as_millis(),
                if function { "FUNCTION KILL" } else { "SCRIPT KILL" },
                name
            );
            let busy = Arc::new(Busy {
                function,
                name,
                command: std::mem::take(&mut watch.what.command),
                started: Instant::now().checked_sub(elapsed).unwrap_or_else(Instant::now),
                from_primary: watch.what.from_primary,
                state: Mutex::new(State { wrote: watch.wrote, killed: false }),
            });
            list().push(busy.clone());
            COUNT.fetch_add(1, Ordering::Relaxed);
            watch.busy = Some(busy);
        }
        let killed = watch.busy.as_ref().is_some_and(|b| b.state().killed);
        if killed {
            return Tick::Kill;
        }
        if Duration::from_nanos(watch.paused.elapsed_ns()) >= SLICE {
            watch.paused = Started::now();
            return Tick::Pause;
        }
        Tick::Continue
    })
}

/// The run on this core ended: it is no longer busy.
pub(crate) fn unwatch() {
    let watch = WATCH.with(|w| w.borrow_mut().take());
    if let Some(busy) = watch.and_then(|w| w.busy) {
        let mut list = list();
        if let Some(at) = list.iter().position(|b| Arc::ptr_eq(b, &busy)) {
            list.remove(at);
            COUNT.fetch_sub(1, Ordering::Relaxed);
        }
        tracing::warn!("Slow script ended after {} milliseconds", busy.started.elapsed().as_millis());
    }
}
