//! Snapshots: SAVE writes every shard's keys, taken at one cut, into one RDB file; at startup
//! the file is loaded back onto every core while commands answer LOADING.
//!
//! **Saving.** SAVE holds every shard's gate, so the file is one point in time: a transaction
//! or multi-key command is wholly in it or wholly out. Each shard serializes its own keys, a
//! database and a bounded chunk at a time, on its own core; the core running SAVE writes the
//! chunks to `temp-<pid>.rdb` in `dir` as they come (io_uring, never blocking a core), keeping
//! the running CRC-64, then fsyncs the file, renames it over `dbfilename` and fsyncs the
//! directory: a crash at any moment leaves the previous dump whole. Like Redis's SAVE, it
//! blocks every keyed command until it is done.
//!
//! **Loading.** A loader thread reads the file item by item (never all of it at once) and sends
//! each key, in batches, to the core whose shard owns it, where a task puts them into the
//! keyspace. Until every core has its keys, commands without the `loading` flag answer LOADING
//! and INFO shows `loading:1`. Keys already expired are skipped, as a Redis master skips them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures::channel::mpsc;
use futures::StreamExt;

use crate::engine::core::Core;
use crate::engine::global::Global;
use crate::engine::persist::LoadItem;
use crate::engine::router::Tx;
use crate::engine::shard::{now_ms, Shard};
use crate::engine::slot::ShardId;
use crate::storage::rdb::{crc64, file};

/// Bytes a shard serializes per hop while saving: large enough to amortize the hop, small
/// enough to bound the memory a chunk takes.
const CHUNK_BYTES: usize = 4 << 20;
/// Keys per batch sent to a core while loading.
const LOAD_BATCH: usize = 1024;

/// Why SAVE failed (logged; the client gets Redis's bare `-ERR`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    /// Another save is running.
    #[error("Background save already in progress")]
    InProgress,
    /// A shard could not be reached (shutting down).
    #[error("a shard is unavailable")]
    Unavailable,
    /// Writing the file failed.
    #[error("Failed saving the DB to {path}: {source}")]
    Io {
        /// The file being written.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// What a successful save wrote.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Saved {
    /// Keys written.
    pub(crate) keys: u64,
    /// Bytes written.
    pub(crate) bytes: u64,
}

fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// SAVE: writes every key of every shard, at one cut, to `dir`/`dbfilename`.
///
/// # Errors
/// A save already running, an unreachable shard, or the file could not be written.
pub(crate) async fn save(core: &Core) -> Result<Saved, SaveError> {
    let global = &core.global;
    {
        let mut state = global.persistence();
        if state.saving {
            return Err(SaveError::InProgress);
        }
        state.saving = true;
    }
    let started = Instant::now();
    let router = &core.router;
    let result = match router.begin((0..router.shards()).map(ShardId).collect()).await {
        Ok(tx) => {
            let written = write_snapshot(core, &tx).await;
            tx.release().await;
            written
        }
        Err(_) => Err(SaveError::Unavailable),
    };
    let mut state = global.persistence();
    state.saving = false;
    state.last_failed = result.is_err();
    if let Ok((saved, changes)) = &result {
        state.last_save = unix_secs();
        state.saves += 1;
        state.last_save_secs = i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX);
        state.changes_at_save = *changes;
        tracing::info!("DB saved on disk ({} keys, {} bytes)", saved.keys, saved.bytes);
    }
    result.map(|(saved, _)| saved)
}

/// Writes the snapshot through `tx`, which holds every shard; returns what was written and the
/// change count at the cut.
async fn write_snapshot(core: &Core, tx: &Tx) -> Result<(Saved, u64), SaveError> {
    let config = core.config();
    let dir = PathBuf::from(&config.dir);
    let temp = dir.join(format!("temp-{}.rdb", std::process::id()));
    let target = dir.join(&config.dbfilename);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |e: glommio::GlommioError<()>| SaveError::Io { path, source: e.into() }
    };
    let out = glommio::io::BufferedFile::create(&temp).await.map_err(io(&temp))?;
    let mut writer = Writer { file: out, pos: 0, crc: 0, temp: temp.clone() };
    let (compress, checksum) = (config.rdbcompression, config.rdbchecksum);
    let shards = core.router.shards();
    let sizes = futures::future::join_all((0..shards).map(|s| {
        tx.run(ShardId(s), |sh: &mut Shard| {
            (sh.dbs().iter().map(|d| (d.len(), d.expires_len())).collect::<Vec<_>>(), sh.stats().changes)
        })
    }))
    .await;
    let mut per_db = vec![(0u64, 0u64); config.databases];
    let mut changes = 0;
    for shard in sizes {
        let (dbs, c) = shard.map_err(|_| SaveError::Unavailable)?;
        changes += c;
        for (i, (keys, expires)) in dbs.into_iter().enumerate() {
            if let Some(d) = per_db.get_mut(i) {
                d.0 += keys as u64;
                d.1 += expires as u64;
            }
        }
    }
    let used = crate::memory::used([crate::memory::here()]).to_string();
    let ctime = unix_secs().to_string();
    writer
        .write(file::header(&[
            ("redis-ver", crate::REDIS_VERSION.as_bytes()),
            ("redis-bits", b"64"),
            ("ctime", ctime.as_bytes()),
            ("used-mem", used.as_bytes()),
            ("aof-base", b"0"),
        ]))
        .await?;
    let mut keys = 0;
    for (db, &(count, expires)) in per_db.iter().enumerate() {
        if count == 0 {
            continue;
        }
        writer.write(file::select_db(db, count, expires)).await?;
        for s in 0..shards {
            let mut cursor = 0;
            loop {
                let chunk = tx
                    .run(ShardId(s), move |sh: &mut Shard| sh.serialize(db, cursor, CHUNK_BYTES, compress))
                    .await
                    .map_err(|_| SaveError::Unavailable)?;
                keys += chunk.keys;
                writer.write(chunk.bytes).await?;
                cursor = chunk.next;
                if cursor == 0 {
                    break;
                }
            }
        }
    }
    let trailer = file::trailer(writer.crc, checksum);
    writer.write(trailer).await?;
    let bytes = writer.pos;
    let Writer { mut file, .. } = writer;
    file.fdatasync().await.map_err(io(&temp))?;
    file.rename(&target).await.map_err(io(&target))?;
    file.close().await.map_err(io(&target))?;
    if let Ok(d) = glommio::io::Directory::open(&dir).await {
        d.sync().await.map_err(io(&dir))?;
        let _ = d.close().await;
    }
    Ok((Saved { keys, bytes }, changes))
}

/// The temp file being written, with its running checksum.
struct Writer {
    file: glommio::io::BufferedFile,
    pos: u64,
    crc: u64,
    temp: PathBuf,
}

impl Writer {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), SaveError> {
        self.crc = crc64::crc64(self.crc, &bytes);
        let mut rest = bytes;
        while !rest.is_empty() {
            let len = rest.len();
            let n = self
                .file
                .write_at(rest.clone(), self.pos)
                .await
                .map_err(|e| SaveError::Io { path: self.temp.clone(), source: e.into() })?;
            if n == 0 {
                let source = std::io::Error::new(std::io::ErrorKind::WriteZero, "no space written");
                return Err(SaveError::Io { path: self.temp.clone(), source });
            }
            self.pos += n as u64;
            rest = if n == len { Vec::new() } else { rest.split_off(n) };
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Loading

/// The receiving end each core gets at startup when there is a file to load.
pub(crate) type LoadReceiver = mpsc::Receiver<Vec<LoadItem>>;

/// Starts loading `path` if it exists: returns a receiver per core (their batches) and sets the
/// loading flag; `None` when there is nothing to load.
pub(crate) fn start_loading(global: &Arc<Global>, path: PathBuf) -> Option<Vec<LoadReceiver>> {
    let file = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!("Fatal error loading the DB: {e}. Exiting.");
            global.fail_startup();
            return None;
        }
    };
    let cores = global.cores.len();
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..cores).map(|_| mpsc::channel::<Vec<LoadItem>>(4)).unzip();
    global.set_loading(true);
    let failed = global.clone();
    let global = global.clone();
    let spawned = std::thread::Builder::new().name("ferrokey-load".into()).spawn(move || {
        let started = Instant::now();
        tracing::info!("Loading RDB produced by {}", path.display());
        match load(&global, std::io::BufReader::new(file), senders) {
            Ok((loaded, expired)) => {
                let mut state = global.persistence();
                state.loaded = loaded;
                state.expired_at_load = expired;
                drop(state);
                global.load_sent();
                tracing::info!(
                    "Done loading RDB, keys loaded: {loaded}, keys expired: {expired}. DB loaded from disk: {:.3} seconds",
                    started.elapsed().as_secs_f64()
                );
            }
            Err(e) => {
                tracing::error!("Fatal error loading the DB: {e}. Exiting.");
                global.fail_startup();
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!("Fatal error loading the DB: cannot start the loader: {e}. Exiting.");
        failed.fail_startup();
    }
    Some(receivers)
}

/// Why the loader stopped.
#[derive(Debug, thiserror::Error)]
enum LoadFailure {
    #[error("{0}")]
    File(#[from] file::LoadError),
    #[error("Data file was created with a Redis server configured to handle more than {0} databases")]
    Databases(usize),
    #[error("the server stopped while loading")]
    Stopped,
}

fn load(
    global: &Global,
    src: impl std::io::Read,
    mut senders: Vec<mpsc::Sender<Vec<LoadItem>>>,
) -> Result<(u64, u64), LoadFailure> {
    let mut reader = file::FileReader::open(src)?;
    tracing::debug!("RDB version {}", reader.version());
    let databases = global.config().databases;
    let shards = senders.len();
    let mut batches: Vec<Vec<LoadItem>> = (0..shards).map(|_| Vec::with_capacity(LOAD_BATCH)).collect();
    let (mut db, mut loaded, mut expired) = (0usize, 0u64, 0u64);
    let now = now_ms();
    let mut last_log = Instant::now();
    while let Some(item) = reader.next_item()? {
        match item {
            file::Item::SelectDb(n) => {
                db = usize::try_from(n)
                    .ok()
                    .filter(|&n| n < databases)
                    .ok_or(LoadFailure::Databases(databases))?;
            }
            file::Item::Aux(key, value) => match &key[..] {
                b"redis-ver" => {
                    tracing::info!("Loading RDB produced by version {}", String::from_utf8_lossy(&value))
                }
                b"ctime" => {
                    let ctime =
                        std::str::from_utf8(&value).ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                    tracing::info!("RDB age {} seconds", unix_secs().saturating_sub(ctime));
                }
                _ => {}
            },
            file::Item::Entry { key, value, expires_at } => {
                if expires_at.is_some_and(|at| at < now) {
                    expired += 1;
                    continue;
                }
                let shard = crate::engine::slot::Slot::of(&key).shard(shards).0;
                batches[shard].push(LoadItem { db, key, value, expires_at });
                loaded += 1;
                if batches[shard].len() >= LOAD_BATCH {
                    let batch = std::mem::replace(&mut batches[shard], Vec::with_capacity(LOAD_BATCH));
                    futures::executor::block_on(futures::SinkExt::send(&mut senders[shard], batch))
                        .map_err(|_| LoadFailure::Stopped)?;
                }
                if last_log.elapsed().as_secs() >= 5 {
                    last_log = Instant::now();
                    tracing::info!("Loading: {loaded} keys, {} bytes read", reader.offset());
                }
            }
        }
    }
    for (shard, batch) in batches.into_iter().enumerate() {
        if !batch.is_empty() {
            futures::executor::block_on(futures::SinkExt::send(&mut senders[shard], batch))
                .map_err(|_| LoadFailure::Stopped)?;
        }
    }
    Ok((loaded, expired))
}

/// A core's side of loading: puts each batch into its shard (through the gate), then reports
/// that this core has everything.
pub(crate) async fn receive(core: std::rc::Rc<Core>, mut batches: LoadReceiver) {
    while let Some(batch) = batches.next().await {
        let _ = core.router.run(core.router.local(), None, move |sh: &mut Shard| sh.load(batch)).await;
    }
    core.global.core_loaded();
}
