//! Connection affinity: a connection whose requests keep going to one other core's shard moves
//! to that core, so that its requests stop crossing cores (issue 20).
//!
//! Each call (one pipelined read) is classified by where its keyed commands ran: all on one
//! shard, or anywhere else (several shards, a transaction, a script, a command planned across
//! shards). Keyless commands that reply in place (PING, ECHO) count for nothing. After
//! [`STREAK`] calls in a row that all went to the same other shard, the session asks to move
//! there, at the next point where it holds nothing that belongs to its core (see
//! `Session::movable`). Uniformly spread keys never qualify: a pipeline of random keys touches
//! every shard. A client whose keys share a hash tag (one tenant, one user) does.
//!
//! Only while hops are dear, and a few at a time ([`moves_allowed`]): when the messages leaving
//! this core carry few hops each, the other core parks between them and each hop pays its
//! wake-ups (13-16 µs of CPU here); moving saves that. When they carry many, both cores are
//! busy, a hop costs little, and moving would pile the connections of a busy tenant onto one
//! core and leave the other idle (BENCHMARKS.md, "connection affinity": 0.70x the requests at
//! P=16 on two cpus when every connection moved). A few moves per period, judged again each
//! period, keep a load that starts all at once from moving all at once. Nothing moves back:
//! a tenant that later outgrows one core stays on it.
//!
//! The move itself (the socket, the TLS session, the client's state) is `runtime::migrate`'s.

use crate::engine::slot::ShardId;

/// Consecutive calls that must all go to the same other shard before the connection moves.
pub(crate) const STREAK: u32 = 16;

/// Hops per message leaving a core above which hops count as cheap (the peer is busy and
/// batches form): measured, 2.1 at P=1 and 4.6 at P=16 with 50 clients flat out on two cpus.
const CHEAP_HOPS_PER_MESSAGE: u64 = 3;

/// Connections that may move away from a core per cron period (100 ms) while hops are dear.
const MOVES_PER_PERIOD: u32 = 4;

/// How many connections may move away from a core in the next period, given the `messages`
/// it sent in the last one and the `hops` they carried: some while hops travel in small
/// batches, none when they travel in large ones, nor when nothing hopped (no evidence).
#[must_use]
pub(crate) fn moves_allowed(hops: u64, messages: u64) -> u32 {
    if messages > 0 && hops < messages.saturating_mul(CHEAP_HOPS_PER_MESSAGE) {
        MOVES_PER_PERIOD
    } else {
        0
    }
}

/// Where the keyed commands of the call under way ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Seen {
    /// None yet.
    #[default]
    Nothing,
    /// All on this shard.
    One(ShardId),
    /// On several shards, or through a path that is not one shard's.
    Spread,
}

/// A session's record of where its calls go.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Affinity {
    seen: Seen,
    /// The shard the last calls all went to, and how many calls in a row did.
    target: Option<ShardId>,
    streak: u32,
}

impl Affinity {
    /// A command of this call ran on `shard` alone.
    pub(crate) fn one(&mut self, shard: ShardId) {
        self.seen = match self.seen {
            Seen::Nothing => Seen::One(shard),
            Seen::One(s) if s == shard => Seen::One(s),
            _ => Seen::Spread,
        };
    }

    /// A command of this call ran elsewhere than on one shard.
    pub(crate) fn spread(&mut self) {
        self.seen = Seen::Spread;
    }

    /// Ends a call on core `here`: the shard to move to, once [`STREAK`] calls in a row went to
    /// it alone. A call with no keyed command leaves the count as it was.
    pub(crate) fn end_call(&mut self, here: ShardId) -> Option<ShardId> {
        match std::mem::take(&mut self.seen) {
            Seen::Nothing => {}
            Seen::One(s) if s != here && self.target == Some(s) => {
                self.streak = self.streak.saturating_add(1)
            }
            Seen::One(s) if s != here => (self.target, self.streak) = (Some(s), 1),
            Seen::One(_) | Seen::Spread => (self.target, self.streak) = (None, 0),
        }
        self.target.filter(|_| self.streak >= STREAK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HERE: ShardId = ShardId(0);
    const THERE: ShardId = ShardId(1);

    fn calls(a: &mut Affinity, n: u32, shards: &[ShardId]) -> Option<ShardId> {
        let mut last = None;
        for _ in 0..n {
            shards.iter().for_each(|&s| a.one(s));
            last = a.end_call(HERE);
        }
        last
    }

    #[test]
    fn only_a_run_of_calls_all_to_one_other_shard_asks_to_move() {
        let mut a = Affinity::default();
        assert_eq!(calls(&mut a, STREAK - 1, &[THERE, THERE]), None);
        assert_eq!(calls(&mut a, 1, &[THERE]), Some(THERE));
        // A call that also touched this shard starts the count again.
        assert_eq!(calls(&mut a, 1, &[THERE, HERE]), None);
        assert_eq!(calls(&mut a, STREAK - 1, &[THERE]), None);
        // Calls with no keyed command neither count nor break the run.
        assert_eq!(calls(&mut a, 5, &[]), None);
        assert_eq!(calls(&mut a, 1, &[THERE]), Some(THERE));
        // Calls to this shard alone, or spread ones, never ask.
        let mut b = Affinity::default();
        assert_eq!(calls(&mut b, 100, &[HERE]), None);
        b.spread();
        assert_eq!(b.end_call(HERE), None);
        b.one(THERE);
        b.spread();
        assert_eq!(b.end_call(HERE), None);
        assert_eq!(calls(&mut b, STREAK - 1, &[THERE]), None);
    }

    #[test]
    fn connections_move_a_few_at_a_time_while_hops_travel_in_small_batches() {
        assert_eq!(moves_allowed(0, 0), 0, "no evidence");
        assert_eq!(moves_allowed(210, 100), MOVES_PER_PERIOD);
        assert_eq!((moves_allowed(300, 100), moves_allowed(460, 100)), (0, 0));
    }
}
