//! Persistence state shared by the cores and the snapshot machinery: what INFO's persistence
//! section reports, the save running, the progress of a load, and the unit a shard takes in when
//! it is loaded (a [`LoadItem`]). Plain data, so the global state and the shards can
//! hold it without depending on the code that saves and loads (`engine::snapshot`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::storage::rdb::file::Packed;

/// What INFO's persistence section reports, and the save running, shared by every core.
#[derive(Debug, Default)]
pub(crate) struct PersistState {
    /// Unix seconds of the last successful save (startup, until one happens).
    pub(crate) last_save: u64,
    /// Saves started since startup (SAVE and BGSAVE, as Redis's `rdb_saves`).
    pub(crate) saves: u64,
    /// Whether the last background save failed (or a successful save since).
    pub(crate) bgsave_failed: bool,
    /// Unix seconds of the last background save started (save points retry a failed one only
    /// after a delay).
    pub(crate) last_bgsave_try: u64,
    /// How long the last background save took, in seconds (-1: none yet).
    pub(crate) last_bgsave_secs: i64,
    /// Bytes the last background save serialized before a write changed them.
    pub(crate) last_presaved: u64,
    /// Key changes counted when the last successful save's cut was taken.
    pub(crate) changes_at_save: u64,
    /// The save running, if one is.
    pub(crate) running: Option<Running>,
    /// A background save waits for the end of an EXEC (BGSAVE inside MULTI).
    pub(crate) scheduled: bool,
    /// Ids of saves, in order.
    pub(crate) next_id: u64,
    /// Keys loaded at startup.
    pub(crate) loaded: u64,
    /// Keys skipped at load because they had expired.
    pub(crate) expired_at_load: u64,
    /// AOF rewrites started.
    pub(crate) aof_rewrites: u64,
    /// The AOF's state and figures (INFO's `aof_*` fields).
    pub(crate) aof: AofInfo,
}

/// What INFO shows of the append-only file.
#[derive(Debug, Default, Clone)]
pub(crate) struct AofInfo {
    /// A rewrite is running (from its cut until its base is in the manifest).
    pub(crate) rewriting: bool,
    /// When the running rewrite started (Unix seconds).
    pub(crate) rewrite_started: u64,
    /// A rewrite waits for a background save to end.
    pub(crate) rewrite_scheduled: bool,
    /// How long the last rewrite took, in seconds (-1: none yet).
    pub(crate) last_rewrite_secs: Option<i64>,
    /// Whether the last rewrite failed.
    pub(crate) last_rewrite_failed: bool,
    /// Rewrites that failed in a row.
    pub(crate) consecutive_failures: u64,
    /// The last write or fsync error, until a write succeeds.
    pub(crate) write_error: Option<String>,
    /// Bytes in the base and incremental files.
    pub(crate) current_size: u64,
    /// Bytes of the AOF after the last rewrite (or at startup), for automatic rewrites.
    pub(crate) base_size: u64,
}

/// A save in progress.
#[derive(Debug)]
pub(crate) struct Running {
    /// Its id (shards know their snapshot by it; it names the temp file).
    pub(crate) id: u64,
    /// BGSAVE (or a save point) or an AOF rewrite, not SAVE.
    pub(crate) background: bool,
    /// An AOF rewrite.
    pub(crate) rewrite: bool,
    /// When it started (Unix seconds).
    pub(crate) started: u64,
    /// Set when another save replaced it (FLUSHALL, SHUTDOWN, DEBUG RELOAD): its writer stops
    /// at the next piece and removes its temp file.
    pub(crate) cancelled: Arc<AtomicBool>,
    /// Keys at the cut.
    pub(crate) keys_total: u64,
    /// Keys written so far.
    pub(crate) keys_done: Arc<AtomicU64>,
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
    /// An RDB file is being loaded (the dump, or the AOF's base).
    pub(crate) rdb: AtomicBool,
    /// The AOF's commands are still to replay (and its journal to turn on).
    pub(crate) aof_pending: AtomicBool,
}

impl LoadProgress {
    /// Whether the RDB file, if any, is in: everything sent and every core done.
    #[must_use]
    pub(crate) fn rdb_done(&self, cores: usize) -> bool {
        !self.rdb.load(Ordering::Acquire)
            || self.sent.load(Ordering::Acquire) && self.cores_done.load(Ordering::Acquire) >= cores
    }

    /// Whether loading is over.
    #[must_use]
    pub(crate) fn finished(&self, cores: usize) -> bool {
        self.rdb_done(cores) && !self.aof_pending.load(Ordering::Acquire)
    }
}

/// A key on its way to its shard at load time.
pub(crate) struct LoadItem {
    /// Its database.
    pub(crate) db: usize,
    /// The key.
    pub(crate) key: Bytes,
    /// Its value, still as the file holds it: the shard's core decodes it.
    pub(crate) value: Packed,
    /// When it expires, if it does.
    pub(crate) expires_at: Option<u64>,
}
