//! Persistence state shared by the cores and the snapshot machinery: what INFO's persistence
//! section reports, the progress of a load, and the units a shard hands over when it is saved
//! (a [`Chunk`]) or loaded (a [`LoadItem`]). Plain data, so the global state and the shards can
//! hold it without depending on the code that saves and loads (`engine::snapshot`).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;

use crate::storage::db::Value;

/// What INFO's persistence section reports, shared by every core.
#[derive(Debug, Clone, Default)]
pub(crate) struct PersistState {
    /// Unix seconds of the last successful save (startup, until one happens).
    pub(crate) last_save: u64,
    /// Successful saves since startup.
    pub(crate) saves: u64,
    /// Whether the last save failed.
    pub(crate) last_failed: bool,
    /// How long the last save took, in seconds (-1: none yet).
    pub(crate) last_save_secs: i64,
    /// Key changes counted when the last save's cut was taken.
    pub(crate) changes_at_save: u64,
    /// A save is running.
    pub(crate) saving: bool,
    /// Keys loaded at startup.
    pub(crate) loaded: u64,
    /// Keys skipped at load because they had expired.
    pub(crate) expired_at_load: u64,
}

/// The shared persistence state.
pub(crate) type SharedPersist = Mutex<PersistState>;

/// Counts cores done loading (shared by the loader and the cores).
#[derive(Debug, Default)]
pub(crate) struct LoadProgress {
    /// Cores whose channel has ended.
    pub(crate) cores_done: AtomicUsize,
    /// Whether the loader sent everything.
    pub(crate) sent: AtomicBool,
}

impl LoadProgress {
    /// Whether loading is over: everything sent and every core done.
    #[must_use]
    pub(crate) fn finished(&self, cores: usize) -> bool {
        self.sent.load(Ordering::Acquire) && self.cores_done.load(Ordering::Acquire) >= cores
    }
}

/// A chunk of one shard's database, serialized.
pub(crate) struct Chunk {
    /// The entries, as the RDB file holds them.
    pub(crate) bytes: Vec<u8>,
    /// How many keys it holds.
    pub(crate) keys: u64,
    /// Where the next chunk starts; 0 when the database is done.
    pub(crate) next: u64,
}

/// A key on its way to its shard at load time.
pub(crate) struct LoadItem {
    /// Its database.
    pub(crate) db: usize,
    /// The key.
    pub(crate) key: Bytes,
    /// Its value.
    pub(crate) value: Value,
    /// When it expires, if it does.
    pub(crate) expires_at: Option<u64>,
}
