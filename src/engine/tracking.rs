//! CLIENT TRACKING, a shard's side: which clients may cache which of its keys (Redis's
//! tracking table), the BCAST prefixes and the keys changed under them, and the invalidations
//! these give. The shard hands the invalidations on at the end of each piece of work, before
//! its replies leave; `engine::caching` delivers them on the clients' cores.
//!
//! As in Redis, the table is by key name across databases, a client is remembered by id (a
//! client gone is skipped when its key changes: removal is lazy), and a key's readers are
//! forgotten once told. A shard keeps its share of `tracking-table-max-keys`; past it, keys
//! are invalidated as if they had changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use ahash::AHashMap;
use bytes::Bytes;

/// A tracking client, as shards know it: its id and the core its connection lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reader {
    /// The CLIENT ID.
    pub(crate) id: u64,
    /// Its connection's core.
    pub(crate) core: u32,
}

/// A read to remember: who reads, and where the keys are among its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Track {
    /// The client.
    pub(crate) reader: Reader,
    /// The positions of the command's keys in its arguments.
    pub(crate) keys: Vec<usize>,
}

/// Keys changed under a BCAST prefix, in key order, each with the client that changed it last
/// (`None`: expiry, eviction or another path without a client), for NOLOOP.
pub(crate) type Changed = Arc<Vec<(Bytes, Option<u64>)>>;

/// What one client is told.
#[derive(Debug, Clone)]
pub(crate) enum Message {
    /// A key it read changed (default mode); by whom.
    Key(Bytes, Option<u64>),
    /// Keys changed under a prefix it follows (BCAST mode).
    Keys(Changed),
}

/// One invalidation for one client.
#[derive(Debug, Clone)]
pub(crate) struct Invalidation {
    /// The client.
    pub(crate) to: Reader,
    /// What it is told.
    pub(crate) message: Message,
}

/// The clients following one BCAST prefix on this shard, and the keys changed under it since
/// last told.
struct Prefix {
    prefix: Bytes,
    clients: Vec<Reader>,
    changed: BTreeMap<Bytes, Option<u64>>,
}

/// One shard's tracking table.
#[derive(Default)]
pub(crate) struct Table {
    /// Keys read by clients in default mode, with who read them.
    keys: AHashMap<Bytes, Vec<Reader>>,
    /// Readers across all keys (Redis's `tracking_total_items`).
    items: usize,
    /// BCAST prefixes.
    prefixes: Vec<Prefix>,
    /// Invalidations not yet handed on.
    out: Vec<Invalidation>,
}

/// What INFO shows of a shard's table.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TableStats {
    /// Keys tracked.
    pub(crate) keys: u64,
    /// Reader entries across them.
    pub(crate) items: u64,
    /// BCAST prefixes.
    pub(crate) prefixes: u64,
}

impl Table {
    /// Whether the shard must report its modified keys: some key is tracked or some client
    /// follows a prefix.
    #[must_use]
    pub(crate) fn active(&self) -> bool {
        !self.keys.is_empty() || !self.prefixes.is_empty()
    }

    /// `reader` read `key`: it is told when the key next changes.
    pub(crate) fn remember(&mut self, key: &[u8], reader: Reader) {
        let readers = match self.keys.get_mut(key) {
            Some(readers) => readers,
            None => self.keys.entry(Bytes::copy_from_slice(key)).or_default(),
        };
        if !readers.contains(&reader) {
            readers.push(reader);
            self.items += 1;
        }
    }

    /// `key` changed while client `by` ran a command (if one did), `changer` being the client
    /// that changed it (`None` for expiry and eviction): its readers are told and forgotten,
    /// and it is noted under every prefix it matches.
    pub(crate) fn changed(&mut self, key: &Bytes, by: Option<u64>, changer: Option<u64>) {
        for p in &mut self.prefixes {
            if key.starts_with(&p.prefix) {
                p.changed.insert(key.clone(), changer);
            }
        }
        self.invalidate(key, by);
    }

    /// Tells `key`'s readers it changed and forgets them.
    fn invalidate(&mut self, key: &[u8], by: Option<u64>) {
        let Some((key, readers)) = self.keys.remove_entry(key) else { return };
        self.items -= readers.len();
        self.out.extend(
            readers.into_iter().map(|to| Invalidation { to, message: Message::Key(key.clone(), by) }),
        );
    }

    /// A database was flushed: every key is forgotten (its clients are told by the flush
    /// itself, once each, rather than key by key).
    pub(crate) fn flushed(&mut self) {
        self.keys = AHashMap::new();
        self.items = 0;
    }

    /// Keeps the table within `max` keys (0: no limit), invalidating keys as if they had
    /// changed (Redis's `trackingLimitUsedSlots`, without BCAST).
    pub(crate) fn limit(&mut self, max: usize) {
        if max == 0 || self.keys.len() <= max {
            return;
        }
        let excess = self.keys.len() - max;
        let victims: Vec<Bytes> = self.keys.keys().take(excess).cloned().collect();
        for key in victims {
            self.invalidate(&key, None);
        }
    }

    /// `reader` follows `prefixes` (one, the empty prefix, when none is given).
    pub(crate) fn follow(&mut self, prefixes: &[Bytes], reader: Reader) {
        let empty = [Bytes::new()];
        let prefixes = if prefixes.is_empty() { &empty[..] } else { prefixes };
        for prefix in prefixes {
            let at = match self.prefixes.iter().position(|p| p.prefix == *prefix) {
                Some(at) => at,
                None => {
                    self.prefixes.push(Prefix {
                        prefix: prefix.clone(),
                        clients: Vec::new(),
                        changed: BTreeMap::new(),
                    });
                    self.prefixes.len() - 1
                }
            };
            let clients = &mut self.prefixes[at].clients;
            if !clients.contains(&reader) {
                clients.push(reader);
            }
        }
    }

    /// Client `id` follows no prefix any more (tracking off, RESET, gone).
    pub(crate) fn unfollow(&mut self, id: u64) {
        self.prefixes.retain_mut(|p| {
            p.clients.retain(|c| c.id != id);
            !p.clients.is_empty()
        });
    }

    /// Takes the invalidations so far: the readers' of changed keys, then for each prefix with
    /// changes, its keys to each of its clients (Redis's `trackingBroadcastInvalidationMessages`).
    pub(crate) fn take(&mut self) -> Vec<Invalidation> {
        for p in &mut self.prefixes {
            if p.changed.is_empty() {
                continue;
            }
            let changed: Changed = Arc::new(std::mem::take(&mut p.changed).into_iter().collect());
            self.out.extend(
                p.clients.iter().map(|&to| Invalidation { to, message: Message::Keys(changed.clone()) }),
            );
        }
        std::mem::take(&mut self.out)
    }

    /// Whether invalidations wait to be taken.
    #[must_use]
    pub(crate) fn pending(&self) -> bool {
        !self.out.is_empty() || self.prefixes.iter().any(|p| !p.changed.is_empty())
    }

    /// What INFO shows.
    #[must_use]
    pub(crate) fn stats(&self) -> TableStats {
        TableStats {
            keys: self.keys.len() as u64,
            items: self.items as u64,
            prefixes: self.prefixes.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Reader = Reader { id: 1, core: 0 };
    const B: Reader = Reader { id: 2, core: 1 };

    fn keys(out: &[Invalidation]) -> Vec<(u64, String)> {
        out.iter()
            .map(|i| match &i.message {
                Message::Key(k, _) => (i.to.id, String::from_utf8_lossy(k).into_owned()),
                Message::Keys(ks) => (
                    i.to.id,
                    ks.iter()
                        .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            })
            .collect()
    }

    #[test]
    fn a_change_tells_each_reader_once_and_forgets_them() {
        let mut t = Table::default();
        t.remember(b"k", A);
        t.remember(b"k", A);
        t.remember(b"k", B);
        assert_eq!(t.stats().items, 2);
        t.changed(&Bytes::from_static(b"k"), Some(2), Some(2));
        t.changed(&Bytes::from_static(b"k"), Some(2), Some(2));
        assert_eq!(keys(&t.take()), [(1, "k".to_owned()), (2, "k".to_owned())]);
        assert!(!t.active() && t.stats().items == 0);
    }

    #[test]
    fn prefixes_gather_their_keys_in_key_order_until_taken() {
        let mut t = Table::default();
        t.follow(&[Bytes::from_static(b"user:")], A);
        t.follow(&[], B);
        for k in ["user:2", "other", "user:1", "user:2"] {
            t.changed(&Bytes::copy_from_slice(k.as_bytes()), None, None);
        }
        assert!(t.pending());
        assert_eq!(keys(&t.take()), [(1, "user:1,user:2".to_owned()), (2, "other,user:1,user:2".to_owned())]);
        assert!(!t.pending());
        t.unfollow(1);
        t.unfollow(2);
        assert!(!t.active());
    }

    #[test]
    fn over_the_limit_keys_are_invalidated_and_a_flush_forgets_all() {
        let mut t = Table::default();
        for k in ["a", "b", "c"] {
            t.remember(k.as_bytes(), A);
        }
        t.limit(2);
        assert_eq!(t.take().len(), 1);
        assert_eq!(t.stats().keys, 2);
        t.flushed();
        assert!(!t.active() && t.take().is_empty());
    }
}
