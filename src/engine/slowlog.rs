//! SLOWLOG: the commands that ran for at least `slowlog-log-slower-than` microseconds, newest
//! first, at most `slowlog-max-len` of them, as Redis 7.0 keeps them (`slowlog.c`).
//!
//! Whoever runs a command's body measures it (see [`crate::engine::stats`]): a shard for the
//! commands it executes, a session for those it runs itself. Both push here, into the log of
//! their own core: each core appends to its own list under a lock no other core takes, except
//! SLOWLOG reading or resetting them all. Ids come from one counter, taken only for a command
//! that is slow, so merging the cores' lists by id gives the server's order.
//!
//! An entry names its client as Redis does, by address and name at the time: a shard learns
//! them from [`Peers`], where every connection registers. A script's own calls are logged as
//! Redis logs its Lua client's (`?:0`, no name); a replayed AOF is not logged.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::config::Config;
use crate::engine::spec::{Observed, Secrets};
use crate::storage::clock::unix_secs;

/// Arguments kept per entry; the last stands for the rest (`SLOWLOG_ENTRY_MAX_ARGC`).
const MAX_ARGS: usize = 32;
/// Bytes kept per argument (`SLOWLOG_ENTRY_MAX_STRING`).
const MAX_STRING: usize = 128;
/// What replaces an argument that must not be shown (Redis's `shared.redacted`).
const REDACTED: &[u8] = b"(redacted)";

/// Who sent a command that a shard runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Nobody to report: the AOF being replayed (Redis does not log it either).
    #[default]
    Unlogged,
    /// A script's `redis.call` (Redis's Lua client: `?:0`, no name).
    Script,
    /// A client connection: its id and the core that serves it.
    Client {
        /// CLIENT ID.
        id: u64,
        /// The core its connection lives on (where [`Peers`] has it).
        core: u32,
    },
}

impl Origin {
    /// The client's id, when a client sent it.
    #[must_use]
    pub(crate) fn client(self) -> Option<u64> {
        match self {
            Origin::Client { id, .. } => Some(id),
            Origin::Unlogged | Origin::Script => None,
        }
    }
}

/// One logged command.
#[derive(Debug, Clone)]
pub(crate) struct SlowEntry {
    /// Unique and increasing across the server.
    pub(crate) id: u64,
    /// When it was logged, in Unix seconds.
    pub(crate) time: u64,
    /// How long it ran, in microseconds.
    pub(crate) micros: u64,
    /// Its arguments, cut as Redis cuts them.
    pub(crate) args: Vec<Bytes>,
    /// The client's address (`ip:port`).
    pub(crate) peer: String,
    /// The client's name, empty if none.
    pub(crate) name: String,
}

/// Every core's slow log, and the settings they are kept by.
pub(crate) struct SlowLog {
    cores: Vec<Mutex<VecDeque<SlowEntry>>>,
    next_id: AtomicU64,
    /// `slowlog-log-slower-than` (microseconds; negative: off).
    threshold: AtomicI64,
    /// `slowlog-max-len`.
    max_len: AtomicU64,
}

impl SlowLog {
    /// Empty logs for `cores` cores, kept as `config` says.
    #[must_use]
    pub(crate) fn new(cores: usize, config: &Config) -> SlowLog {
        let log = SlowLog {
            cores: (0..cores.max(1)).map(|_| Mutex::default()).collect(),
            next_id: AtomicU64::new(0),
            threshold: AtomicI64::new(-1),
            max_len: AtomicU64::new(0),
        };
        log.configure(config);
        log
    }

    /// Takes the settings of a new configuration (CONFIG SET).
    pub(crate) fn configure(&self, config: &Config) {
        self.threshold.store(config.slowlog_log_slower_than, Ordering::Relaxed);
        self.max_len.store(config.slowlog_max_len, Ordering::Relaxed);
    }

    /// Whether a command that took `nanos` is to be logged: the one test every command pays.
    #[inline]
    #[must_use]
    pub(crate) fn is_slow(&self, nanos: u64) -> bool {
        let threshold = self.threshold.load(Ordering::Relaxed);
        threshold >= 0 && nanos / 1000 >= threshold as u64
    }

    /// Logs a command (`args`, its traits `observed`) that took `nanos` on core `core`, sent by
    /// `peer` named `name`, unless Redis would not log it (`skip_slowlog`). Call only when
    /// [`SlowLog::is_slow`].
    pub(crate) fn push(
        &self,
        core: usize,
        observed: Observed,
        args: &[Bytes],
        nanos: u64,
        peer: String,
        name: String,
    ) {
        if observed.skip_slowlog {
            return;
        }
        let entry = SlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            time: unix_secs(),
            micros: nanos / 1000,
            args: entry_args(&redacted(observed.secrets, args)),
            peer,
            name,
        };
        let max = self.max_len.load(Ordering::Relaxed) as usize;
        let mut log = lock(&self.cores[core % self.cores.len()]);
        log.push_front(entry);
        log.truncate(max);
    }

    /// The newest `count` entries of the whole server, newest first (`None`: all of them).
    #[must_use]
    pub(crate) fn newest(&self, count: Option<usize>) -> Vec<SlowEntry> {
        let mut all: Vec<SlowEntry> =
            self.cores.iter().flat_map(|c| lock(c).iter().cloned().collect::<Vec<_>>()).collect();
        all.sort_unstable_by_key(|e| std::cmp::Reverse(e.id));
        all.truncate(self.len());
        if let Some(count) = count {
            all.truncate(count);
        }
        all
    }

    /// SLOWLOG LEN: the entries kept, at most `slowlog-max-len`.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        let kept: usize = self.cores.iter().map(|c| lock(c).len()).sum();
        kept.min(self.max_len.load(Ordering::Relaxed) as usize)
    }

    /// SLOWLOG RESET.
    pub(crate) fn reset(&self) {
        self.cores.iter().for_each(|c| lock(c).clear());
    }
}

/// Each connected client's address and name, by the core it lives on, for a shard that logs
/// a command some other core's client sent. A core writes only its own map, so the lock is
/// taken by others only to look a client up.
pub(crate) struct Peers {
    cores: Vec<Mutex<HashMap<u64, (SocketAddr, String)>>>,
}

impl Peers {
    /// Empty maps for `cores` cores.
    #[must_use]
    pub(crate) fn new(cores: usize) -> Peers {
        Peers { cores: (0..cores.max(1)).map(|_| Mutex::default()).collect() }
    }

    fn core(&self, core: usize) -> std::sync::MutexGuard<'_, HashMap<u64, (SocketAddr, String)>> {
        lock(&self.cores[core % self.cores.len()])
    }

    /// Client `id` connected on core `core` from `addr`.
    pub(crate) fn connected(&self, core: usize, id: u64, addr: SocketAddr) {
        self.core(core).insert(id, (addr, String::new()));
    }

    /// Client `id` took the name `name` (CLIENT SETNAME, HELLO SETNAME, RESET).
    pub(crate) fn named(&self, core: usize, id: u64, name: &str) {
        if let Some(peer) = self.core(core).get_mut(&id) {
            name.clone_into(&mut peer.1);
        }
    }

    /// Client `id` is gone.
    pub(crate) fn disconnected(&self, core: usize, id: u64) {
        self.core(core).remove(&id);
    }

    /// The address and name to log for a command from `origin` (`None`: not to be logged).
    #[must_use]
    pub(crate) fn of(&self, origin: Origin) -> Option<(String, String)> {
        match origin {
            Origin::Unlogged => None,
            Origin::Script => Some(("?:0".to_owned(), String::new())),
            Origin::Client { id, core } => Some(
                self.core(core as usize)
                    .get(&id)
                    .map_or_else(|| ("?:0".to_owned(), String::new()), |(a, n)| (a.to_string(), n.clone())),
            ),
        }
    }
}

/// `args` with what must never be shown replaced by `(redacted)`, as the commands that take
/// secrets redact their own in Redis: AUTH's password (and user), HELLO's AUTH pair, every
/// rule of ACL SETUSER, CONFIG SET's sensitive values, MIGRATE's AUTH and AUTH2 credentials.
/// Shared by the slow log and MONITOR.
#[must_use]
pub(crate) fn redacted(secrets: Secrets, args: &[Bytes]) -> std::borrow::Cow<'_, [Bytes]> {
    let hide: Vec<usize> = match secrets {
        Secrets::None => return std::borrow::Cow::Borrowed(args),
        Secrets::Auth => (1..args.len()).collect(),
        Secrets::Hello => positions_after(args, 2, "auth", 2),
        Secrets::AclSetuser => (2..args.len()).collect(),
        Secrets::ConfigSet => (2..args.len())
            .step_by(2)
            .filter(|&i| {
                ["masterauth", "masteruser", "requirepass"]
                    .iter()
                    .any(|s| args[i].eq_ignore_ascii_case(s.as_bytes()))
            })
            .map(|i| i + 1)
            .filter(|&i| i < args.len())
            .collect(),
        Secrets::Migrate => {
            let mut hide = positions_after(args, 6, "auth", 1);
            hide.extend(positions_after(args, 6, "auth2", 2));
            hide
        }
    };
    if hide.is_empty() {
        return std::borrow::Cow::Borrowed(args);
    }
    let mut out = args.to_vec();
    for i in hide {
        out[i] = Bytes::from_static(REDACTED);
    }
    std::borrow::Cow::Owned(out)
}

/// The `n` positions after each `word` found at or after `from` (the values an option takes).
fn positions_after(args: &[Bytes], from: usize, word: &str, n: usize) -> Vec<usize> {
    (from..args.len())
        .filter(|&i| args[i].eq_ignore_ascii_case(word.as_bytes()))
        .flat_map(|i| (i + 1..=i + n).filter(|&j| j < args.len()))
        .collect()
}

/// The arguments as an entry keeps them: at most [`MAX_ARGS`], the last of them then saying
/// how many more there were, each cut to [`MAX_STRING`] bytes with how many more it had.
#[must_use]
fn entry_args(args: &[Bytes]) -> Vec<Bytes> {
    let kept = args.len().min(MAX_ARGS);
    (0..kept)
        .map(|j| {
            if kept != args.len() && j == kept - 1 {
                Bytes::from(format!("... ({} more arguments)", args.len() - kept + 1))
            } else if args[j].len() > MAX_STRING {
                let mut cut = args[j][..MAX_STRING].to_vec();
                cut.extend_from_slice(format!("... ({} more bytes)", args[j].len() - MAX_STRING).as_bytes());
                Bytes::from(cut)
            } else {
                // A copy: the request's buffer may be much larger than the argument.
                Bytes::copy_from_slice(&args[j])
            }
        })
        .collect()
}

/// A lock that a panic elsewhere cannot poison for good: what it guards stays consistent
/// (every update is a single push, truncate or clear).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect()
    }

    #[test]
    fn long_commands_are_cut_as_redis_cuts_them() {
        let many: Vec<Bytes> = (0..40).map(|i| Bytes::from(i.to_string())).collect();
        let kept = entry_args(&many);
        assert_eq!(kept.len(), 32);
        assert_eq!(kept[30], Bytes::from("30"));
        assert_eq!(kept[31], Bytes::from("... (9 more arguments)"));
        let long = entry_args(&[Bytes::from(vec![b'x'; 200])]);
        assert_eq!(long[0].len(), 128 + "... (72 more bytes)".len());
        assert!(long[0].ends_with(b"x... (72 more bytes)"));
    }

    #[test]
    fn secrets_are_redacted() {
        let request = args(&["hello", "3", "auth", "u", "p", "setname", "n"]);
        let shown = redacted(Secrets::Hello, &request);
        assert_eq!(&*shown, &args(&["hello", "3", "auth", "(redacted)", "(redacted)", "setname", "n"])[..]);
        let request = args(&["config", "set", "maxmemory", "1", "requirepass", "p", "masterauth"]);
        let shown = redacted(Secrets::ConfigSet, &request);
        let expected = args(&["config", "set", "maxmemory", "1", "requirepass", "(redacted)", "masterauth"]);
        assert_eq!(&*shown, &expected[..]);
        assert!(matches!(redacted(Secrets::None, &args(&["get", "auth"])), std::borrow::Cow::Borrowed(_)));
    }
}
