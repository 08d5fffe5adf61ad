//! Client pause, as Redis's: CLIENT PAUSE and a FAILOVER hold back every command (`ALL`), or
//! only those that may write to the dataset or the stream (`WRITE`), until they end or time
//! out. Each purpose has its own pause; the most restrictive one in force applies, with the
//! furthest end among those of its kind.
//!
//! Every core checks one atomic per command; a held command's connection first settles what
//! it has sent, then waits here (woken, on whichever core it is, when a pause lessens or at the
//! pause's end), and is checked again from the start: after a failover its write gets
//! `-READONLY`. The primary's stream into a replica is never held (Redis's replicas are never
//! paused); nor is active expiry run while anything is held, so that the dataset and the
//! stream stay still, as Redis keeps them for a failover.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Poll, Waker};
use std::time::Instant;

/// What a pause holds back; ordered from least to most restrictive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum PauseKind {
    /// Nothing.
    Off = 0,
    /// Commands that may write (the `write` flag, PUBLISH, an EXEC queuing one).
    Write = 1,
    /// Every command.
    All = 2,
}

/// Who asked for a pause: each has its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// CLIENT PAUSE.
    Client = 0,
    /// FAILOVER, until it ends.
    Failover = 1,
}

/// One purpose's pause: what it holds and until when (`None`: until lifted).
#[derive(Debug, Clone, Copy)]
struct Held {
    kind: PauseKind,
    until: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    by_purpose: [Option<Held>; 2],
    /// Connections waiting for a pause to lessen.
    waiters: Vec<Waker>,
}

impl Inner {
    /// Drops the pauses that ended; returns the one in force: the most restrictive kind, and
    /// the furthest end among that kind's.
    fn current(&mut self, now: Instant) -> Held {
        for p in &mut self.by_purpose {
            if p.is_some_and(|h| h.until.is_some_and(|u| u <= now)) {
                *p = None;
            }
        }
        let kind = self.by_purpose.iter().flatten().map(|h| h.kind).max().unwrap_or(PauseKind::Off);
        let mut until = Some(now);
        for h in self.by_purpose.iter().flatten().filter(|h| h.kind == kind) {
            until = match (until, h.until) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        Held { kind, until }
    }
}

/// The server's pauses (in [`crate::engine::global::Global`]).
#[derive(Default)]
pub(crate) struct Pauses {
    /// The kind in force, as of the last change (a pause past its end is found out by the
    /// next check that takes the lock).
    kind: AtomicU8,
    inner: Mutex<Inner>,
}

impl Pauses {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Pauses for `purpose`: a pause already held for it keeps the more restrictive kind and
    /// the later end (`None`: until [`Pauses::unpause`]).
    pub(crate) fn pause(&self, purpose: Purpose, kind: PauseKind, until: Option<Instant>) {
        let mut inner = self.lock();
        let slot = &mut inner.by_purpose[purpose as usize];
        *slot = Some(match *slot {
            None => Held { kind, until },
            Some(h) => Held {
                kind: h.kind.max(kind),
                until: match (h.until, until) {
                    (Some(a), Some(b)) => Some(a.max(b)),
                    _ => None,
                },
            },
        });
        self.update(&mut inner);
    }

    /// Lifts `purpose`'s pause; the clients it held run (unless another holds them).
    pub(crate) fn unpause(&self, purpose: Purpose) {
        let mut inner = self.lock();
        inner.by_purpose[purpose as usize] = None;
        self.update(&mut inner);
    }

    /// Publishes the kind in force; wakes every waiter (pauses change rarely; each looks again
    /// at what holds it and until when).
    fn update(&self, inner: &mut Inner) {
        let kind = inner.current(Instant::now()).kind;
        self.kind.store(kind as u8, Ordering::Release);
        inner.waiters.drain(..).for_each(Waker::wake);
    }

    /// Whether anything may be held now (one atomic load: the check on every command).
    #[must_use]
    pub(crate) fn active(&self) -> bool {
        self.kind.load(Ordering::Acquire) != PauseKind::Off as u8
    }

    /// The kind in force now (a pause past its end has ended).
    #[must_use]
    pub(crate) fn kind(&self) -> PauseKind {
        if !self.active() {
            return PauseKind::Off;
        }
        let mut inner = self.lock();
        let kind = inner.current(Instant::now()).kind;
        if kind == PauseKind::Off {
            self.update(&mut inner);
        }
        kind
    }

    /// Whether a command that may write (`writes`) or not is held now.
    #[must_use]
    pub(crate) fn holds(&self, writes: bool) -> bool {
        match self.kind() {
            PauseKind::Off => false,
            PauseKind::Write => writes,
            PauseKind::All => true,
        }
    }

    /// Waits until such a command is no longer held: a pause lifted, lessened, or at its end.
    pub(crate) async fn released(&self, writes: bool) {
        loop {
            let until = {
                let mut inner = self.lock();
                let held = inner.current(Instant::now());
                match held.kind {
                    PauseKind::Off => return,
                    PauseKind::Write if !writes => return,
                    _ => held.until,
                }
            };
            let lessened = poll_fn(|cx| {
                let mut inner = self.lock();
                let kind = inner.current(Instant::now()).kind;
                if kind == PauseKind::Off || (kind == PauseKind::Write && !writes) {
                    return Poll::Ready(());
                }
                if !inner.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    inner.waiters.push(cx.waker().clone());
                }
                Poll::Pending
            });
            match until {
                Some(at) => {
                    let end = glommio::timer::sleep(at.saturating_duration_since(Instant::now()));
                    futures::future::select(std::pin::pin!(lessened), std::pin::pin!(end)).await;
                }
                None => lessened.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_most_restrictive_pause_applies_until_lifted_or_over() {
        let p = Pauses::default();
        assert!(!p.holds(true));
        p.pause(Purpose::Failover, PauseKind::Write, None);
        assert!(p.holds(true) && !p.holds(false));
        let soon = Instant::now() + Duration::from_secs(60);
        p.pause(Purpose::Client, PauseKind::All, Some(soon));
        assert!(p.holds(false));
        // The client's pause ends by itself; the failover's stays until lifted.
        assert_eq!(p.lock().current(soon + Duration::from_millis(1)).kind, PauseKind::Write);
        p.unpause(Purpose::Client);
        assert!(p.holds(true) && !p.holds(false));
        p.unpause(Purpose::Failover);
        assert_eq!(p.kind(), PauseKind::Off);
        assert!(!p.active());
    }

    #[test]
    fn a_purpose_keeps_its_stricter_kind_and_later_end() {
        let p = Pauses::default();
        let now = Instant::now();
        p.pause(Purpose::Client, PauseKind::All, Some(now + Duration::from_secs(60)));
        p.pause(Purpose::Client, PauseKind::Write, Some(now + Duration::from_secs(120)));
        let held = p.lock().current(now);
        assert_eq!(held.kind, PauseKind::All);
        assert_eq!(held.until, Some(now + Duration::from_secs(120)));
    }
}
