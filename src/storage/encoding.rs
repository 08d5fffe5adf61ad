//! The encoding thresholds of redis.conf (`hash-max-listpack-entries/value`,
//! `set-max-intset-entries`, `zset-max-listpack-entries/value`, `stream-node-max-*`, `hll-sparse-max-bytes`): sorted sets keep ferrokey's
//! small form (one sorted vector) within the zset ones, dump files write Redis's compact
//! encodings within them, and OBJECT ENCODING reports by them what Redis would. Each core
//! keeps them in a thread-local, set when its configuration changes (as the access clock's
//! mode); a thread that never set them sees Redis's defaults.

use std::cell::Cell;

/// The thresholds, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Thresholds {
    /// `hash-max-listpack-entries`.
    pub(crate) hash_entries: usize,
    /// `hash-max-listpack-value`: the longest field or value of a compact hash.
    pub(crate) hash_value: usize,
    /// `set-max-intset-entries` (Redis caps it at 2^30).
    pub(crate) set_intset_entries: usize,
    /// `zset-max-listpack-entries`.
    pub(crate) zset_entries: usize,
    /// `zset-max-listpack-value`: the longest member of a compact sorted set.
    pub(crate) zset_value: usize,
    /// Redis shares the integers 0..9999 as string values (OBJECT REFCOUNT shows `INT_MAX`),
    /// unless `maxmemory` is set with an LRU or LFU policy, which needs every value's own clock.
    pub(crate) shared_integers: bool,
    /// `stream-node-max-bytes` and `stream-node-max-entries`: where a stream starts a new block.
    pub(crate) stream_nodes: crate::storage::stream::NodeLimits,
    /// `hll-sparse-max-bytes`: the largest sparse HyperLogLog.
    pub(crate) hll_sparse_max: usize,
}

impl Thresholds {
    /// Redis 7.0's defaults.
    pub(crate) const DEFAULT: Thresholds = Thresholds {
        hash_entries: 512,
        hash_value: 64,
        set_intset_entries: 512,
        zset_entries: 128,
        zset_value: 64,
        shared_integers: true,
        stream_nodes: crate::storage::stream::NodeLimits { max_bytes: 4096, max_entries: 100 },
        hll_sparse_max: 3000,
    };

    /// The thresholds `config` sets.
    #[must_use]
    pub(crate) fn of(config: &crate::config::Config) -> Thresholds {
        let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        Thresholds {
            hash_entries: size(config.hash_max_listpack_entries),
            hash_value: size(config.hash_max_listpack_value.0),
            set_intset_entries: size(config.set_max_intset_entries).min(1 << 30),
            zset_entries: size(config.zset_max_listpack_entries),
            zset_value: size(config.zset_max_listpack_value.0),
            shared_integers: config.maxmemory.0 == 0 || !config.maxmemory_policy.lru_or_lfu(),
            stream_nodes: crate::storage::stream::NodeLimits {
                max_bytes: config.stream_node_max_bytes.0,
                max_entries: config.stream_node_max_entries,
            },
            hll_sparse_max: size(config.hll_sparse_max_bytes.0),
        }
    }
}

thread_local! {
    static NOW: Cell<Thresholds> = const { Cell::new(Thresholds::DEFAULT) };
}

/// Sets this core's thresholds.
pub(crate) fn set(t: Thresholds) {
    NOW.with(|n| n.set(t));
}

/// This core's thresholds.
#[must_use]
pub(crate) fn get() -> Thresholds {
    NOW.with(Cell::get)
}

/// What a string's history adds to its content when Redis names its encoding. Redis keeps a
/// string as an integer (`int`), inside its object header (`embstr`, up to 44 bytes) or in a
/// buffer of its own (`raw`); which one depends on the command that last wrote it, not only
/// on the bytes, and OBJECT ENCODING shows it. ferrokey stores every string the same way and
/// keeps this to name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum StrForm {
    /// Named by content, as Redis's `tryObjectEncoding` picks: SET and its kin, APPEND to a
    /// missing key, INCR, loads and RESTORE.
    #[default]
    ByContent,
    /// `raw` at any length: changed in place (APPEND, SETRANGE, SETBIT, BITFIELD, PFADD and
    /// PFMERGE go through Redis's `dbUnshareStringValue`) or built as a buffer (SETRANGE and
    /// SETBIT on a missing key, BITOP's result, a new HyperLogLog).
    Raw,
    /// Written as text from a number (INCRBYFLOAT's `createStringObject`): `embstr` or `raw` by
    /// length, never `int`.
    Text,
}

/// Redis's `OBJ_ENCODING_EMBSTR_SIZE_LIMIT`: the longest string kept inside its object.
const EMBSTR_MAX: usize = 44;

/// The name OBJECT ENCODING gives the string `bytes` written as `form`.
#[must_use]
pub(crate) fn string_name(bytes: &[u8], form: StrForm) -> &'static str {
    match form {
        StrForm::ByContent if bytes.len() <= 20 && crate::num::parse_i64(bytes).is_some() => "int",
        StrForm::ByContent | StrForm::Text if bytes.len() <= EMBSTR_MAX => "embstr",
        _ => "raw",
    }
}
