//! The ACL LOG: denied commands, keys and channels and failed authentications, newest first,
//! an entry repeated within a minute counted on the one entry, as Redis 7.0's
//! `addACLLogEntry`.

use std::collections::VecDeque;

use bytes::Bytes;

/// What was denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum What {
    /// A command or subcommand.
    Command,
    /// A key.
    Key,
    /// A channel.
    Channel,
    /// AUTH or HELLO AUTH failed.
    Auth,
    /// A verified client certificate named no enabled user (`tls-auth-clients-user`).
    TlsCert,
}

impl What {
    /// The name ACL LOG shows (`reason`).
    #[must_use]
    pub(crate) fn name(self) -> &'static str {
        match self {
            What::Command => "command",
            What::Key => "key",
            What::Channel => "channel",
            What::Auth => "auth",
            What::TlsCert => "tls-cert",
        }
    }

    /// Its place among the INFO counters (`acl_access_denied_*`).
    fn counter(self) -> usize {
        match self {
            What::Auth => 0,
            What::Command => 1,
            What::Key => 2,
            What::Channel => 3,
            What::TlsCert => 4,
        }
    }
}

/// One entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// How many times it happened.
    pub(crate) count: u64,
    /// What was denied.
    pub(crate) reason: What,
    /// `toplevel` or `multi`.
    pub(crate) context: &'static str,
    /// The command's full name, the key, the channel, or AUTH's name as typed.
    pub(crate) object: Bytes,
    /// The user (for AUTH, the one tried).
    pub(crate) username: Bytes,
    /// When it last happened, in Unix milliseconds.
    pub(crate) at_ms: u64,
    /// The client's CLIENT LIST line when it last happened.
    pub(crate) client_info: String,
}

/// The log, and how many denials of each kind there were (INFO's `acl_access_denied_*`).
#[derive(Debug, Default)]
pub(crate) struct Log {
    entries: VecDeque<Entry>,
    denied: [u64; 5],
}

/// INFO's names for the counters, in Redis's order.
pub(crate) const COUNTERS: [&str; 5] = [
    "acl_access_denied_auth",
    "acl_access_denied_cmd",
    "acl_access_denied_key",
    "acl_access_denied_channel",
    "acl_access_denied_tls_cert",
];

/// Within this many milliseconds, the same denial is counted on the same entry.
const GROUP_MS: u64 = 60_000;

/// How many of the newest entries a new one may be grouped with.
const GROUP_SCAN: usize = 10;

impl Log {
    /// Records `entry` (its `count` is ignored), keeping at most `max_len` entries.
    pub(crate) fn add(&mut self, mut entry: Entry, max_len: usize) {
        // Counted even when the log keeps nothing (`acllog-max-len 0`), as Redis.
        self.denied[entry.reason.counter()] += 1;
        let same = self.entries.iter().take(GROUP_SCAN).position(|e| {
            e.reason == entry.reason
                && e.context == entry.context
                && e.object == entry.object
                && e.username == entry.username
                && e.at_ms.abs_diff(entry.at_ms) <= GROUP_MS
        });
        if let Some(old) = same.and_then(|i| self.entries.remove(i)) {
            entry.count = old.count + 1;
            self.entries.push_front(entry);
            return;
        }
        entry.count = 1;
        self.entries.push_front(entry);
        self.entries.truncate(max_len);
    }

    /// The newest `count` entries.
    pub(crate) fn newest(&self, count: usize) -> impl Iterator<Item = &Entry> {
        self.entries.iter().take(count)
    }

    /// ACL LOG RESET.
    pub(crate) fn clear(&mut self) {
        self.entries.clear();
    }

    /// The denial counters, in [`COUNTERS`]' order.
    pub(crate) fn denied(&self) -> [u64; 5] {
        self.denied
    }

    /// CONFIG RESETSTAT.
    pub(crate) fn reset_counters(&mut self) {
        self.denied = [0; 5];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(object: &'static str, at_ms: u64) -> Entry {
        Entry {
            count: 0,
            reason: What::Command,
            context: "toplevel",
            object: Bytes::from_static(object.as_bytes()),
            username: Bytes::from_static(b"alice"),
            at_ms,
            client_info: String::new(),
        }
    }

    #[test]
    fn repeats_within_a_minute_count_on_one_entry_and_the_length_is_bounded() {
        let mut log = Log::default();
        log.add(entry("get", 1_000), 3);
        log.add(entry("set", 2_000), 3);
        log.add(entry("get", 30_000), 3);
        let counts: Vec<(u64, &[u8])> = log.newest(10).map(|e| (e.count, &e.object[..])).collect();
        assert_eq!(counts, [(2, &b"get"[..]), (1, &b"set"[..])]);
        log.add(entry("get", 200_000), 3);
        log.add(entry("del", 200_001), 3);
        assert_eq!(log.newest(10).count(), 3, "bounded by max_len");
        assert_eq!(log.newest(10).next().map(|e| e.count), Some(1));
        log.clear();
        assert_eq!(log.newest(10).count(), 0);
    }
}
