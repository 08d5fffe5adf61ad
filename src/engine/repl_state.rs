//! What the server knows of replication, shared by every core: its replication ids and
//! offset history (PSYNC2), and the replicas attached (INFO replication, ROLE).

use std::task::Waker;
use std::time::Instant;

/// A replica's state, as INFO names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplicaState {
    /// Waiting for its snapshot to be taken.
    WaitBgsave,
    /// Receiving its snapshot.
    SendBulk,
    /// Following the stream.
    Online,
}

impl ReplicaState {
    /// The name INFO replication gives it.
    #[must_use]
    pub(crate) fn name(self) -> &'static str {
        match self {
            ReplicaState::WaitBgsave => "wait_bgsave",
            ReplicaState::SendBulk => "send_bulk",
            ReplicaState::Online => "online",
        }
    }
}

/// The link to the primary, as ROLE and INFO show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkState {
    /// Waiting to connect (again).
    Connect,
    /// Connecting.
    Connecting,
    /// Handshaking (PING, AUTH, REPLCONF, PSYNC).
    Handshake,
    /// Receiving the snapshot of a full resync.
    Transfer,
    /// Following the stream.
    Connected,
}

/// The primary this server follows.
#[derive(Debug, Clone)]
pub(crate) struct MasterLink {
    /// REPLICAOF's host.
    pub(crate) host: String,
    /// REPLICAOF's port.
    pub(crate) port: u16,
    /// Where the link is.
    pub(crate) state: LinkState,
    /// When the primary last sent anything (INFO's `master_last_io_seconds_ago`).
    pub(crate) last_io: Instant,
    /// Since when the link is down; `None` when it never was up.
    pub(crate) down_since: Option<Instant>,
    /// The snapshot being received: its size (0 for a diskless `$EOF:` transfer, whose size
    /// is not told), the bytes read so far, and when the last came (INFO's `master_sync_*`).
    pub(crate) transfer: (u64, u64, Instant),
    /// Whether this server holds a copy of the primary's data (a PSYNC may continue it).
    pub(crate) synced: bool,
    /// The database the primary's stream last selected (a `+CONTINUE` does not repeat it).
    pub(crate) db: usize,
}

impl MasterLink {
    /// A link about to connect to `host:port`.
    #[must_use]
    pub(crate) fn new(host: String, port: u16) -> MasterLink {
        let now = Instant::now();
        MasterLink {
            host,
            port,
            state: LinkState::Connect,
            last_io: now,
            down_since: None,
            transfer: (0, 0, now),
            synced: false,
            db: 0,
        }
    }
}

/// Where a failover is (INFO's `master_failover_state`); see [`crate::engine::failover`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailoverPhase {
    /// Writes paused, waiting for a replica to acknowledge the whole stream.
    WaitForSync,
    /// Following the target; its `PSYNC ... FAILOVER` not yet accepted.
    InProgress,
}

/// A FAILOVER under way.
#[derive(Debug, Clone)]
pub(crate) struct Failover {
    /// Where it is.
    pub(crate) phase: FailoverPhase,
    /// The replica to hand over to (`TO host port`), or the one found caught up.
    pub(crate) target: Option<(String, u16)>,
    /// When waiting gives up (`TIMEOUT`).
    pub(crate) until: Option<Instant>,
    /// At the timeout, switch to the target even if it has not caught up (`FORCE`).
    pub(crate) force: bool,
    /// The target's answer to the PSYNC FAILOVER, set by the master link: `Ok` once it
    /// accepted (no second PSYNC may carry FAILOVER), else the reply that refused it.
    pub(crate) answer: Option<Result<(), String>>,
}

/// On a replica that serves replicas of its own: keeps a full sync's cut out of the middle of
/// a batch of the primary's stream being applied, which the shards would hold but the stream
/// (fed once the batch is applied) would then repeat after the cut.
#[derive(Debug, Default)]
pub(crate) struct ApplyGate {
    /// Master links applying a batch (an old link may still finish one as a new one starts).
    pub(crate) applying: usize,
    /// Full syncs waiting for their cut: no new batch starts.
    pub(crate) cutting: usize,
    /// Who waits for either to change.
    pub(crate) waiters: Vec<Waker>,
}

/// One replica attached to this server.
#[derive(Debug, Clone)]
pub(crate) struct Replica {
    /// Its link's client id.
    pub(crate) id: u64,
    /// The address it announced (`REPLCONF ip-address`) or connected from.
    pub(crate) ip: String,
    /// The port it announced (`REPLCONF listening-port`).
    pub(crate) port: u16,
    /// Where it is.
    pub(crate) state: ReplicaState,
    /// The offset it last acknowledged (`REPLCONF ACK`).
    pub(crate) ack: u64,
    /// When it last acknowledged (INFO's `lag`).
    pub(crate) ack_at: Instant,
}

/// Replication ids, offsets and replicas.
#[derive(Debug)]
pub(crate) struct ReplState {
    /// The current replication id (`master_replid`).
    pub(crate) replid: String,
    /// The previous one, valid up to `second_offset` (`master_replid2`).
    pub(crate) replid2: String,
    /// The last offset of `replid2`'s history, or -1 (`second_repl_offset`).
    pub(crate) second_offset: i64,
    /// The stream's offset before the replication buffer existed (it has the offset since).
    pub(crate) offset: u64,
    /// The replicas attached.
    pub(crate) replicas: Vec<Replica>,
    /// Full resynchronizations served (`sync_full`).
    pub(crate) sync_full: u64,
    /// Partial resynchronizations accepted (`sync_partial_ok`) and refused (`sync_partial_err`).
    pub(crate) sync_partial: (u64, u64),
    /// WAITs to wake when a replica acknowledges.
    pub(crate) ack_waiters: Vec<Waker>,
    /// The primary this server follows (REPLICAOF), if any.
    pub(crate) master: Option<MasterLink>,
    /// Changes with each REPLICAOF: a link of an older one stops.
    pub(crate) master_generation: u64,
    /// Since when no replica is attached (`repl-backlog-ttl`).
    pub(crate) no_replicas_since: Option<Instant>,
    /// The FAILOVER under way, if one is.
    pub(crate) failover: Option<Failover>,
    /// Applying the primary's stream against full syncs' cuts.
    pub(crate) apply: ApplyGate,
}

/// A replication id that no history has: 40 hex digits.
#[must_use]
pub(crate) fn new_replid() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let seed = crate::num::splitmix(
        now ^ u64::from(std::process::id()) ^ DRAWN.fetch_add(1, Ordering::Relaxed) << 48,
    );
    format!(
        "{:016x}{:016x}{:08x}",
        crate::num::splitmix(seed),
        crate::num::splitmix(seed ^ 0x9e37),
        crate::num::splitmix(seed ^ 0x79b9) as u32
    )
}

/// The id a `replid2` without history shows.
pub(crate) const NO_REPLID: &str = "0000000000000000000000000000000000000000";

impl Default for ReplState {
    fn default() -> ReplState {
        ReplState {
            replid: new_replid(),
            replid2: NO_REPLID.into(),
            second_offset: -1,
            offset: 0,
            replicas: Vec::new(),
            sync_full: 0,
            sync_partial: (0, 0),
            ack_waiters: Vec::new(),
            master: None,
            master_generation: 0,
            no_replicas_since: None,
            failover: None,
            apply: ApplyGate::default(),
        }
    }
}

impl ReplState {
    /// The replica with link `id`.
    pub(crate) fn replica(&mut self, id: u64) -> Option<&mut Replica> {
        self.replicas.iter_mut().find(|r| r.id == id)
    }

    /// Whether this server's link to the primary must send `PSYNC ... FAILOVER`.
    #[must_use]
    pub(crate) fn failing_over(&self) -> bool {
        self.failover.as_ref().is_some_and(|f| f.phase == FailoverPhase::InProgress && f.answer.is_none())
    }

    /// INFO's `master_failover_state`.
    #[must_use]
    pub(crate) fn failover_state(&self) -> &'static str {
        match self.failover.as_ref().map(|f| f.phase) {
            None => "no-failover",
            Some(FailoverPhase::WaitForSync) => "waiting-for-sync",
            Some(FailoverPhase::InProgress) => "failover-in-progress",
        }
    }

    /// Replicas online that acknowledged `offset` or beyond (WAIT).
    #[must_use]
    pub(crate) fn acked(&self, offset: u64) -> usize {
        self.replicas.iter().filter(|r| r.state == ReplicaState::Online && r.ack >= offset).count()
    }

    /// Replicas online whose last acknowledgement is at most `max_lag` seconds old
    /// (`min-replicas-max-lag`).
    #[must_use]
    pub(crate) fn good(&self, max_lag: u64) -> usize {
        self.replicas
            .iter()
            .filter(|r| r.state == ReplicaState::Online && r.ack_at.elapsed().as_secs() <= max_lag)
            .count()
    }

    /// Whether a replica asking `PSYNC replid offset` (the next byte it needs) continues this
    /// server's history, as far as the ids go (the backlog must still hold that offset).
    #[must_use]
    pub(crate) fn continues(&self, replid: &str, offset: u64) -> bool {
        replid == self.replid
            || (replid == self.replid2 && i64::try_from(offset).is_ok_and(|o| o <= self.second_offset))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_ids_are_40_hex_digits_and_differ() {
        let (a, b) = (new_replid(), new_replid());
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn a_previous_id_continues_only_up_to_its_last_offset() {
        let s = ReplState { replid2: "b".repeat(40), second_offset: 100, ..ReplState::default() };
        let id = s.replid.clone();
        assert!(s.continues(&id, 5000));
        assert!(s.continues(&"b".repeat(40), 100));
        assert!(!s.continues(&"b".repeat(40), 101));
        assert!(!s.continues(NO_REPLID, 1));
    }
}
