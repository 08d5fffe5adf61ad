//! FAILOVER, the coordinated switch of Redis 6.2+, on the primary's side. Writes are paused
//! ([`crate::engine::pause`]); every 100 ms (Redis's cron pace while failing over) the primary
//! looks for a replica (the one named, else any) that has acknowledged the whole stream, then
//! follows it, its master link sending `PSYNC ... FAILOVER` so that the replica first becomes
//! a primary ([`crate::engine::replica::promote`] on its side). Once that PSYNC is accepted the
//! pause ends: the held writes find a replica (`-READONLY`). A timeout ends the wait, or with
//! FORCE switches to the named replica anyway; FAILOVER ABORT, or a target that refuses the
//! PSYNC, undoes it all: this server is a primary again.
//!
//! The state is [`crate::engine::repl_state::Failover`], shared with the master link, which
//! reads whether to add `FAILOVER` and records a refusal; the decisions are all here.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::engine::core::Core;
use crate::engine::pause::{PauseKind, Purpose};
use crate::engine::repl_state::{Failover, FailoverPhase, ReplState, ReplicaState};

/// Starts `failover` (checked by the command): pauses writes and drives it from this core.
/// False when another one started first.
#[must_use]
pub(crate) fn start(core: &Rc<Core>, failover: Failover) -> bool {
    {
        let mut st = core.global.replication();
        if st.failover.is_some() {
            return false;
        }
        match &failover.target {
            Some((host, port)) => tracing::info!("FAILOVER requested to {host}:{port}."),
            None => tracing::info!("FAILOVER requested to any replica."),
        }
        st.failover = Some(failover);
    }
    core.global.pauses.pause(Purpose::Failover, PauseKind::Write, None);
    let core = core.clone();
    glommio::spawn_local(async move { drive(&core).await }).detach();
    true
}

/// What a look at the failover decided.
enum Step {
    Wait,
    Over,
    Switch(String, u16),
    Finish,
    Abort(&'static str),
}

/// Looks every 100 ms until the failover is over. Each look first waits until every write
/// made so far has its place in the stream: one that passed the pause check just before the
/// pause began (a pipeline's batch not yet at its shard) is then counted in the offset.
async fn drive(core: &Rc<Core>) {
    let journal = core.global.journal.clone();
    loop {
        glommio::timer::sleep(Duration::from_millis(100)).await;
        journal.in_stream(journal.last_ticket()).await;
        let offset = crate::engine::replication::offset(core);
        let step = next_step(&mut core.global.replication(), offset, Instant::now());
        match step {
            Step::Wait => {}
            Step::Over => return,
            Step::Switch(host, port) => {
                crate::engine::replica::follow(core, Some((host, port)));
                // An ABORT between the decision and the switch found nothing to undo yet.
                if core.global.replication().failover.is_none() {
                    crate::engine::replica::promote(core).await;
                    return;
                }
            }
            Step::Finish => {
                core.global.replication().failover = None;
                core.global.pauses.unpause(Purpose::Failover);
                return;
            }
            Step::Abort(why) => return abort(core, why).await,
        }
    }
}

/// The decision, from the shared state at `now` with the stream at `offset`.
fn next_step(st: &mut ReplState, offset: u64, now: Instant) -> Step {
    let ReplState { failover, replicas, .. } = st;
    let Some(f) = failover.as_mut() else {
        return Step::Over;
    };
    if f.phase == FailoverPhase::InProgress {
        return match f.answer {
            Some(Ok(())) => Step::Finish,
            Some(Err(_)) => Step::Abort("Failover target rejected psync request"),
            None => Step::Wait,
        };
    }
    if f.until.is_some_and(|u| now >= u) {
        return match (f.force, f.target.clone()) {
            (true, Some((host, port))) => {
                tracing::info!("FAILOVER to {host}:{port} time out exceeded, failing over.");
                f.phase = FailoverPhase::InProgress;
                Step::Switch(host, port)
            }
            _ => Step::Abort("Replica never caught up before timeout"),
        };
    }
    let caught_up = replicas.iter().find(|r| {
        r.state == ReplicaState::Online
            && r.ack == offset
            && f.target.as_ref().is_none_or(|(h, p)| r.ip.eq_ignore_ascii_case(h) && r.port == *p)
    });
    match caught_up {
        Some(r) => {
            tracing::info!("Failover target {}:{} is synced, failing over.", r.ip, r.port);
            f.target = Some((r.ip.clone(), r.port));
            f.phase = FailoverPhase::InProgress;
            Step::Switch(r.ip.clone(), r.port)
        }
        None => Step::Wait,
    }
}

/// Ends a failover that did not succeed (`why` is logged): a server that already follows the
/// target becomes a primary again; the held writes run.
pub(crate) async fn abort(core: &Rc<Core>, why: &str) {
    let Some(f) = core.global.replication().failover.take() else {
        return;
    };
    match &f.target {
        Some((host, port)) => tracing::info!("FAILOVER to {host}:{port} aborted: {why}"),
        None => tracing::info!("FAILOVER to any replica aborted: {why}"),
    }
    if f.phase == FailoverPhase::InProgress {
        crate::engine::replica::promote(core).await;
    }
    core.global.pauses.unpause(Purpose::Failover);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::repl_state::Replica;

    fn replica(ip: &str, port: u16, ack: u64) -> Replica {
        Replica { id: 1, ip: ip.into(), port, state: ReplicaState::Online, ack, ack_at: Instant::now() }
    }

    fn failover(target: Option<(&str, u16)>, until: Option<Instant>, force: bool) -> Failover {
        Failover {
            phase: FailoverPhase::WaitForSync,
            target: target.map(|(h, p)| (h.to_owned(), p)),
            until,
            force,
            answer: None,
        }
    }

    #[test]
    fn the_switch_waits_for_a_replica_with_the_whole_stream() {
        let now = Instant::now();
        let mut st = ReplState { failover: Some(failover(None, None, false)), ..ReplState::default() };
        st.replicas = vec![replica("127.0.0.1", 7001, 90), replica("127.0.0.1", 7002, 100)];
        assert!(matches!(next_step(&mut st, 101, now), Step::Wait));
        assert!(matches!(next_step(&mut st, 100, now), Step::Switch(_, 7002)));
        assert_eq!(st.failover_state(), "failover-in-progress");
        assert!(st.failing_over());
    }

    #[test]
    fn a_named_target_is_the_only_one_and_force_needs_the_timeout() {
        let now = Instant::now();
        let later = now + Duration::from_secs(1);
        let mut st = ReplState {
            failover: Some(failover(Some(("127.0.0.1", 7001)), Some(later), true)),
            ..ReplState::default()
        };
        st.replicas = vec![replica("127.0.0.1", 7001, 90), replica("127.0.0.1", 7002, 100)];
        assert!(matches!(next_step(&mut st, 100, now), Step::Wait));
        assert!(matches!(next_step(&mut st, 100, later), Step::Switch(_, 7001)));
        let mut st = ReplState { failover: Some(failover(None, Some(later), false)), ..ReplState::default() };
        assert!(matches!(next_step(&mut st, 100, later), Step::Abort(_)));
    }

    #[test]
    fn a_refused_psync_aborts_and_an_accepted_one_finishes() {
        let now = Instant::now();
        let mut f = failover(None, None, false);
        f.phase = FailoverPhase::InProgress;
        let mut st = ReplState { failover: Some(f), ..ReplState::default() };
        assert!(st.failing_over());
        assert!(matches!(next_step(&mut st, 0, now), Step::Wait));
        st.failover.as_mut().unwrap().answer = Some(Ok(()));
        // Accepted: a reconnect must not ask the (now) primary to fail over again.
        assert!(!st.failing_over());
        assert!(matches!(next_step(&mut st, 0, now), Step::Finish));
        st.failover.as_mut().unwrap().answer = Some(Err("-ERR no".into()));
        assert!(matches!(next_step(&mut st, 0, now), Step::Abort(_)));
    }
}
