//! Snapshots: SAVE and BGSAVE write every shard's keys, as they were at one cut, into one RDB
//! file; at startup the file is loaded back onto every core while commands answer LOADING.
//!
//! **The cut.** A save takes every shard's gate, so that a transaction or multi-key command is
//! wholly before it or wholly after, and starts each shard's snapshot there: O(1) per database
//! (a mark flips; see [`crate::storage::db::Db::begin_snapshot`]).
//!
//! **Without fork.** BGSAVE releases the gates at once: each shard then serializes its own keys,
//! a bounded piece at a time, on its own core while it serves traffic, and a write to a key the
//! walk has not reached first saves the old value (serialize before mutate). The memory a save
//! costs is what writes change during it, not a copy of the pages of the whole process. SAVE
//! keeps the gates until the file is written, blocking every keyed command as Redis's SAVE does.
//!
//! **One file.** Each shard's core runs a producer task that serializes its keys, a piece at a
//! time, into parts it sends to the core that started the save; a piece ends as soon as the
//! core has other work (a request, a hop), which goes first. That core writes the parts,
//! database by database and shard by shard, to `temp-<pid>-<id>.rdb` in `dir` through io_uring
//! (never blocking a core), keeping the running CRC-64; then fsyncs it, renames it over
//! `dbfilename` and fsyncs the directory: a crash at any moment leaves the previous dump whole.
//! SAVE, which holds every gate, pulls large pieces from the shards instead.
//!
//! **Loading.** A loader thread reads the file item by item (never all of it at once) and sends
//! each key, in batches, to the core whose shard owns it, where a task puts them into the
//! keyspace. Until every core has its keys, commands without the `loading` flag answer LOADING
//! and INFO shows `loading:1`. Keys already expired are skipped, as a Redis master skips them.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::StreamExt;

use crate::engine::core::Core;
use crate::engine::global::Global;
use crate::engine::persist::{LoadItem, Running};
use crate::engine::router::Tx;
use crate::engine::script::functions::{Functions, Policy};
use crate::engine::shard::{now_ms, Shard};
use crate::engine::slot::ShardId;
use crate::storage::clock::unix_secs;
use crate::storage::db::Budget;
use crate::storage::rdb::{crc64, file};

/// A piece of a save that holds every gate (SAVE): large, to amortize the hop.
const SAVE_PIECE: Budget = Budget { bytes: 4 << 20, time: Duration::from_millis(100), stop: None };
/// A piece of a background save: it runs on the shard's core between its commands, so its
/// length is what it may add to a command's latency. It ends at once when the core has work
/// waiting (see [`work_waiting`]), otherwise after 250 µs or when the part it fills is full.
pub(crate) const BGSAVE_PIECE: Budget =
    Budget { bytes: PART_BYTES, time: Duration::from_micros(250), stop: Some(work_waiting) };

/// Whether work waits for this core's reactor: a socket became readable, a write finished, a
/// peer sent a hop, or requests wait to be submitted (the vendored glommio reads its rings'
/// flags and queues: no syscall; see vendor/glommio/FERROKEY-PATCH.md).
fn work_waiting() -> bool {
    glommio::executor().io_pending()
}

/// Lets the core's other work in between pieces of a long job (a background save, eviction). When work waits for the
/// reactor, the executor polls it at once (glommio polls it otherwise only when no task is
/// runnable), and this task then queues behind the tasks the poll woke, so their requests go
/// before the next piece; otherwise it yields to the runnable tasks. The replies of the
/// executor's pass never wait for a piece (see [`crate::facade::pass`]).
pub(crate) async fn let_others_in() {
    if work_waiting() {
        crate::facade::pass::behind_the_pass(true).await;
    }
    crate::facade::pass::behind_the_pass(false).await;
}

/// Bytes of a part: what a shard's producer sends the writer at once.
const PART_BYTES: usize = 256 << 10;
/// Parts queued from each shard to the writer (the channel holds one more per sender).
const PARTS_QUEUED: usize = 1;
/// Bytes the writer checksums between looks at the core's other work.
const CRC_STEP: usize = 32 << 10;
/// Keys per batch sent to a core while loading.
const LOAD_BATCH: usize = 1024;
/// Seconds before save points retry a failed background save (Redis's
/// `CONFIG_BGSAVE_RETRY_DELAY`).
const RETRY_DELAY: u64 = 5;

/// Why a save failed (logged; SAVE's client gets Redis's bare `-ERR`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SaveError {
    /// Another save is running.
    #[error("Background save already in progress")]
    InProgress,
    /// An AOF rewrite is running (it takes the shards' snapshot).
    #[error("Background append only file rewriting already in progress")]
    RewriteInProgress,
    /// A shard could not be reached (shutting down).
    #[error("a shard is unavailable")]
    Unavailable,
    /// Another save replaced this one (FLUSHALL, SHUTDOWN, DEBUG RELOAD).
    #[error("the save was cancelled")]
    Cancelled,
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

/// What to do about a save already running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnRunning {
    /// Refuse: "Background save already in progress" (SAVE, BGSAVE).
    Refuse,
    /// Cancel it and save anew (FLUSHALL, SHUTDOWN, DEBUG RELOAD: Redis kills its child).
    Cancel,
}

/// What takes the shards' snapshot: one at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaveKind {
    /// SAVE (and the saves of FLUSHALL, SHUTDOWN, DEBUG RELOAD).
    Save,
    /// BGSAVE or a save point.
    Background,
    /// An AOF rewrite (BGREWRITEAOF, turning the AOF on, automatic rewrites).
    Rewrite,
}

/// Marks a save as running; the claim knows its id, cancel flag and progress counter.
pub(crate) struct Claim {
    /// The snapshot's id.
    pub(crate) id: u64,
    cancelled: Arc<AtomicBool>,
    keys_done: Arc<AtomicU64>,
    started: Instant,
}

impl Claim {
    /// Whether another save replaced this one.
    #[must_use]
    pub(crate) fn cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
}

/// Marks a save of `kind` as running, or says what runs already.
///
/// # Errors
/// Another save or rewrite running (when `other` is [`OnRunning::Refuse`]).
pub(crate) fn claim(global: &Global, kind: SaveKind, other: OnRunning) -> Result<Claim, SaveError> {
    let background = kind != SaveKind::Save;
    let mut state = global.persistence();
    if let Some(running) = state.running.take() {
        if other == OnRunning::Refuse {
            let busy = if running.rewrite { SaveError::RewriteInProgress } else { SaveError::InProgress };
            state.running = Some(running);
            return Err(busy);
        }
        tracing::warn!("Killing the running background save (id {})", running.id);
        running.cancelled.store(true, Ordering::Release);
    }
    state.next_id += 1;
    if kind == SaveKind::Rewrite {
        state.aof_rewrites += 1;
    } else {
        state.saves += 1;
    }
    let claim = Claim {
        id: state.next_id,
        cancelled: Arc::new(AtomicBool::new(false)),
        keys_done: Arc::new(AtomicU64::new(0)),
        started: Instant::now(),
    };
    if kind == SaveKind::Background {
        state.last_bgsave_try = unix_secs();
    }
    state.running = Some(Running {
        id: claim.id,
        background,
        rewrite: kind == SaveKind::Rewrite,
        started: unix_secs(),
        cancelled: claim.cancelled.clone(),
        keys_total: 0,
        keys_done: claim.keys_done.clone(),
    });
    Ok(claim)
}

/// Records the end of save `claim`, unless another save replaced it.
fn finish(global: &Global, claim: &Claim, background: bool, result: &Result<(Saved, Cut), SaveError>) {
    let mut state = global.persistence();
    if state.running.as_ref().is_none_or(|r| r.id != claim.id) {
        return;
    }
    state.running = None;
    let took = i64::try_from(claim.started.elapsed().as_secs()).unwrap_or(i64::MAX);
    match result {
        Ok((saved, cut)) => {
            state.last_save = unix_secs();
            state.changes_at_save = cut.changes;
            state.bgsave_failed = false;
            global.set_bgsave_failed(false);
            if background {
                state.last_bgsave_secs = took;
                state.last_presaved = cut.presaved.load(Ordering::Relaxed);
            }
            tracing::info!("DB saved on disk ({} keys, {} bytes)", saved.keys, saved.bytes);
            if background {
                tracing::info!("Background saving terminated with success");
            }
        }
        Err(SaveError::Cancelled) => {}
        Err(e) => {
            tracing::warn!("{e}");
            if background {
                state.bgsave_failed = true;
                global.set_bgsave_failed(true);
                state.last_bgsave_secs = took;
                tracing::warn!("Background saving error");
            }
        }
    }
}

/// The state of every shard at the cut.
pub(crate) struct Cut {
    /// Per database: keys and keys with a TTL, over every shard.
    sizes: Vec<(u64, u64)>,
    /// Key changes counted over every shard.
    changes: u64,
    /// Bytes the shards saved before mutations (summed as the pieces end).
    presaved: AtomicU64,
}

/// Takes the cut of snapshot `id` on every shard, through `tx`, which holds them all; entries
/// are written as RDB, or as commands.
pub(crate) async fn cut(core: &Core, tx: &Tx, id: u64, commands: bool) -> Result<Cut, SaveError> {
    let config = core.config();
    let compress = config.rdbcompression;
    let begun = futures::future::join_all(
        tx.shards()
            .iter()
            .map(|&s| tx.run(s, move |sh: &mut Shard| sh.begin_snapshot(id, compress, commands))),
    )
    .await;
    let mut cut = Cut { sizes: vec![(0, 0); config.databases], changes: 0, presaved: AtomicU64::new(0) };
    for shard in begun {
        let (dbs, changes) = shard.map_err(|_| SaveError::Unavailable)?;
        cut.changes += changes;
        for (total, (keys, expires)) in cut.sizes.iter_mut().zip(dbs) {
            total.0 += keys;
            total.1 += expires;
        }
    }
    Ok(cut)
}

/// Takes snapshot `id`'s cut of every shard (see [`cut`]) with every gate held just for it;
/// `at_cut` runs while they still are (an AOF rewrite marks the journal there).
///
/// # Errors
/// An unreachable shard.
pub(crate) async fn cut_everywhere(
    core: &Core,
    id: u64,
    commands: bool,
    at_cut: impl AsyncFnOnce(&Tx),
) -> Result<Cut, SaveError> {
    let tx = core
        .router
        .begin((0..core.router.shards()).map(ShardId).collect())
        .await
        .map_err(|_| SaveError::Unavailable)?;
    let cut = cut(core, &tx, id, commands).await;
    if cut.is_ok() {
        at_cut(&tx).await;
    }
    tx.release().await;
    cut
}

/// SAVE (and the saves of FLUSHALL, SHUTDOWN, DEBUG RELOAD): every gate held from the cut until
/// the file is on disk. `tx`, when given, already holds every shard (inside EXEC).
///
/// # Errors
/// Another save running (when `other` is [`OnRunning::Refuse`]), an unreachable shard, or a
/// file that could not be written.
pub(crate) async fn save(core: &Rc<Core>, tx: Option<&Tx>, other: OnRunning) -> Result<Saved, SaveError> {
    let claim = claim(&core.global, SaveKind::Save, other)?;
    let own = match tx {
        Some(_) => None,
        None => match core.router.begin((0..core.router.shards()).map(ShardId).collect()).await {
            Ok(tx) => Some(tx),
            Err(_) => {
                finish(&core.global, &claim, false, &Err(SaveError::Unavailable));
                return Err(SaveError::Unavailable);
            }
        },
    };
    let Some(tx) = tx.or(own.as_ref()) else { return Err(SaveError::Unavailable) };
    let result = match cut(core, tx, claim.id, false).await {
        Ok(cut) => {
            let output = Output::dump(&core.config(), claim.id);
            write(core, Some(tx), &claim, SAVE_PIECE, &cut, &output).await.map(|saved| (saved, cut))
        }
        Err(e) => Err(e),
    };
    if result.is_err() {
        let id = claim.id;
        for &shard in tx.shards() {
            let _ = tx.run(shard, move |sh: &mut Shard| sh.abort_snapshot(id)).await;
        }
    }
    if let Some(own) = own {
        own.release().await;
    }
    finish(&core.global, &claim, false, &result);
    result.map(|(saved, _)| saved)
}

/// BGSAVE (and save points): takes the cut, then writes the file from a task of this core
/// while every shard serves traffic.
///
/// # Errors
/// Another save running, or an unreachable shard.
pub(crate) async fn bgsave(core: &Rc<Core>) -> Result<(), SaveError> {
    background_save(core, async |_, _| {}, None).await.map(drop)
}

/// A background save of the dump file whose cut also runs `at_cut` (with the snapshot's id):
/// a replica's full sync marks the journal there. The receiver gets the outcome once the file
/// is in place. With `stream`, a diskless sync: the bytes go there, and the save leaves the
/// persistence figures (LASTSAVE, changes since the last save) as they were, as Redis does.
///
/// # Errors
/// Another save running, or an unreachable shard.
pub(crate) async fn background_save(
    core: &Rc<Core>,
    at_cut: impl AsyncFnOnce(&Tx, u64),
    stream: Option<mpsc::Sender<Vec<u8>>>,
) -> Result<oneshot::Receiver<Result<Saved, SaveError>>, SaveError> {
    let diskless = stream.is_some();
    let claim = claim(&core.global, SaveKind::Background, OnRunning::Refuse)?;
    let id = claim.id;
    let cut = match cut_everywhere(core, id, false, async |tx| at_cut(tx, id).await).await {
        Ok(cut) => cut,
        Err(e) => {
            abort_everywhere(core, claim.id).await;
            finish(&core.global, &claim, true, &Err(SaveError::Unavailable));
            return Err(e);
        }
    };
    if let Some(running) = core.global.persistence().running.as_mut().filter(|r| r.id == claim.id) {
        running.keys_total = cut.sizes.iter().map(|s| s.0).sum();
    }
    tracing::info!("Background saving started (id {})", claim.id);
    let core = core.clone();
    let (done, outcome) = oneshot::channel();
    glommio::spawn_local(async move {
        let output = Output { stream, ..Output::dump(&core.config(), claim.id) };
        let result = write(&core, None, &claim, BGSAVE_PIECE, &cut, &output).await;
        drop(output);
        if result.is_err() && !claim.cancelled.load(Ordering::Acquire) {
            abort_everywhere(&core, claim.id).await;
        }
        let result = result.map(|saved| (saved, cut));
        if diskless {
            release_claim(&core.global, &claim);
            match &result {
                Ok(_) => tracing::info!("Diskless replication snapshot sent"),
                Err(e) => tracing::warn!("Diskless replication snapshot failed: {e}"),
            }
        } else {
            finish(&core.global, &claim, true, &result);
        }
        let _ = done.send(result.map(|(saved, _)| saved));
    })
    .detach();
    Ok(outcome)
}

/// Forgets save `claim` as running (an AOF rewrite whose base the writer now puts in place).
pub(crate) fn release_claim(global: &Global, claim: &Claim) {
    let mut state = global.persistence();
    if state.running.as_ref().is_some_and(|r| r.id == claim.id) {
        state.running = None;
    }
}

/// Ends snapshot `id` unfinished on every shard.
pub(crate) async fn abort_everywhere(core: &Core, id: u64) {
    for shard in (0..core.router.shards()).map(ShardId) {
        let _ = core.router.run(shard, None, move |sh: &mut Shard| sh.abort_snapshot(id)).await;
    }
}

/// Cancels the running background save, if any (FLUSHALL: what it would write is gone); its
/// writer stops at its next piece and removes its temp file.
pub(crate) fn cancel_background(global: &Global) {
    let mut state = global.persistence();
    if state.running.as_ref().is_some_and(|r| r.background && !r.rewrite) {
        if let Some(running) = state.running.take() {
            tracing::warn!("Killing the running background save (id {})", running.id);
            running.cancelled.store(true, Ordering::Release);
        }
    }
}

/// Where and how a snapshot is written.
pub(crate) struct Output {
    /// The directory it goes to (fsynced after the rename).
    pub(crate) dir: PathBuf,
    /// The temp file it is written to.
    pub(crate) temp: PathBuf,
    /// The name it is renamed to once durable; `None` leaves the durable temp file for the
    /// caller (an AOF rewrite's base, which the AOF writer puts in place).
    pub(crate) target: Option<PathBuf>,
    /// The form: RDB (with its `aof-base` aux field: 1 for an AOF base), or commands.
    pub(crate) form: Form,
    /// A diskless replication sync: the bytes go to this channel (a replica's link), not to
    /// `temp`, and nothing is renamed.
    pub(crate) stream: Option<mpsc::Sender<Vec<u8>>>,
}

/// The form of a snapshot file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// An RDB file; `aof_base` when it is the base of an AOF.
    Rdb {
        /// Whether it is an AOF's base (its `aof-base` aux field).
        aof_base: bool,
    },
    /// Commands (an AOF base without RDB preamble).
    Commands,
}

impl Output {
    /// The dump file of `config`, through `temp-<pid>-<id>.rdb`.
    fn dump(config: &crate::config::Config, id: u64) -> Output {
        let dir = PathBuf::from(&config.dir);
        Output {
            temp: dir.join(format!("temp-{}-{}.rdb", std::process::id(), id)),
            target: Some(dir.join(&config.dbfilename)),
            dir,
            form: Form::Rdb { aof_base: false },
            stream: None,
        }
    }
}

/// The function libraries, before the keys as Redis writes them: each as RDB's function
/// opcode and its code, or, in an AOF of commands, as `FUNCTION LOAD` with its code.
fn libraries(form: Form, compress: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for library in crate::engine::script::functions::Functions::get().libraries() {
        if form == Form::Commands {
            crate::storage::aof::command(&mut out, &[&b"FUNCTION"[..], b"LOAD", &library.code]);
        } else {
            file::function(&mut out, &library.code, compress);
        }
    }
    out
}

/// Writes snapshot `claim` (its cut taken) to the temp file, piece by piece: through `tx` when
/// the save holds every gate, from each shard's producer otherwise (pieces within `piece`);
/// then fsync, and, with a target, rename and directory fsync.
pub(crate) async fn write(
    core: &Core,
    tx: Option<&Tx>,
    claim: &Claim,
    piece: Budget,
    cut: &Cut,
    output: &Output,
) -> Result<Saved, SaveError> {
    let config = core.config();
    let temp = &output.temp;
    let mut writer = match &output.stream {
        Some(sender) => Writer { out: Out::Stream(sender.clone()), pos: 0, crc: 0, temp: temp.clone() },
        None => Writer::create(temp).await?,
    };
    let written = async {
        if let Form::Rdb { aof_base } = output.form {
            let used = crate::memory::used([crate::memory::here()]).to_string();
            let ctime = unix_secs().to_string();
            writer
                .write(file::header(&[
                    ("redis-ver", crate::REDIS_VERSION.as_bytes()),
                    ("redis-bits", b"64"),
                    ("ctime", ctime.as_bytes()),
                    ("used-mem", used.as_bytes()),
                    ("aof-base", if aof_base { b"1" } else { b"0" }),
                ]))
                .await?;
        }
        writer.write(libraries(output.form, config.rdbcompression)).await?;
        let mut keys = 0;
        let id = claim.id;
        let mut source = match tx {
            Some(tx) => Source::Gated(tx),
            None => Source::Producers(start_producers(core, claim, cut, piece).await?),
        };
        for (db, &(count, expires)) in cut.sizes.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if output.form == Form::Commands {
                let mut select = Vec::new();
                crate::storage::aof::select_as_command(&mut select, db);
                writer.write(select).await?;
            } else {
                writer.write(file::select_db(db, count, expires)).await?;
            }
            // Shard after shard: one core serializes at a time, which leaves the other
            // cores' CPU to their clients (two at once halved a background save's time but
            // let the clients of a 2-core machine wait for CPU: BENCHMARKS.md).
            for shard in 0..core.router.shards() {
                loop {
                    let part = source.next(shard, id, db, piece).await;
                    if claim.cancelled.load(Ordering::Acquire) {
                        return Err(SaveError::Cancelled);
                    }
                    let part = part?;
                    keys += part.keys;
                    claim.keys_done.fetch_add(part.keys, Ordering::Relaxed);
                    cut.presaved.fetch_add(part.presaved, Ordering::Relaxed);
                    writer.write(part.bytes).await?;
                    if part.last {
                        break;
                    }
                }
            }
        }
        if let Form::Rdb { .. } = output.form {
            let trailer = file::trailer(writer.crc, config.rdbchecksum);
            writer.write(trailer).await?;
        }
        Ok(keys)
    }
    .await;
    let keys = match written {
        Ok(keys) => keys,
        Err(e) => {
            writer.discard().await;
            return Err(e);
        }
    };
    if claim.cancelled.load(Ordering::Acquire) {
        writer.discard().await;
        return Err(SaveError::Cancelled);
    }
    let bytes = writer.pos;
    writer.commit(output.target.as_deref(), &output.dir).await?;
    Ok(Saved { keys, bytes })
}

/// Where the writer of a snapshot gets its entries, as parts.
enum Source<'a> {
    /// From the shards, through a transaction holding every gate (SAVE).
    Gated(&'a Tx),
    /// From each shard's producer, one receiver per shard (a background save).
    Producers(Vec<mpsc::Receiver<Part>>),
}

impl Source<'_> {
    /// The next part of database `db` of `shard`, for snapshot `id`.
    async fn next(&mut self, shard: usize, id: u64, db: usize, piece: Budget) -> Result<Part, SaveError> {
        match self {
            // SAVE: the pieces are pulled, large.
            Source::Gated(tx) => {
                let take = move |sh: &mut Shard| sh.snapshot_chunk(id, db, piece, Vec::new());
                let chunk = tx.run(ShardId(shard), take).await.map_err(|_| SaveError::Unavailable)?;
                Ok(Part {
                    db,
                    bytes: chunk.bytes,
                    keys: chunk.keys,
                    last: chunk.done,
                    presaved: chunk.presaved,
                })
            }
            Source::Producers(parts) => {
                let part = parts.get_mut(shard).ok_or(SaveError::Unavailable)?.next().await;
                // A producer that stopped early: its shard ended the snapshot.
                part.filter(|p| p.db == db).ok_or_else(|| {
                    tracing::warn!("shard {shard} ended snapshot {id} early");
                    SaveError::Unavailable
                })
            }
        }
    }
}

/// What a shard's producer sends the writer: a run of one database's entries.
struct Part {
    /// The database.
    db: usize,
    /// Entries, as the file holds them.
    bytes: Vec<u8>,
    /// How many.
    keys: u64,
    /// Whether it is the shard's last of this database.
    last: bool,
    /// With `last`: bytes the shard saved before mutations in this database.
    presaved: u64,
}

/// Starts snapshot `claim`'s producer on every shard's core (see [`produce`]); one receiver
/// of parts per shard.
async fn start_producers(
    core: &Core,
    claim: &Claim,
    cut: &Cut,
    piece: Budget,
) -> Result<Vec<mpsc::Receiver<Part>>, SaveError> {
    let dbs: Vec<usize> = cut.sizes.iter().enumerate().filter(|(_, s)| s.0 > 0).map(|(db, _)| db).collect();
    let mut receivers = Vec::with_capacity(core.router.shards());
    for shard in (0..core.router.shards()).map(ShardId) {
        let (parts, rx) = mpsc::channel(PARTS_QUEUED);
        let (id, dbs, cancelled) = (claim.id, dbs.clone(), claim.cancelled.clone());
        let started = core
            .router
            .on_core(shard, move |_| {
                let Some(core) = Core::current() else { return false };
                glommio::spawn_local(produce(core, id, dbs, piece, cancelled, parts)).detach();
                true
            })
            .await;
        if started != Ok(true) {
            return Err(SaveError::Unavailable);
        }
        receivers.push(rx);
    }
    Ok(receivers)
}

/// Serializes this core's shard for snapshot `id`, database after database (`dbs`, those
/// not empty at the cut), into parts sent to the writer: piece after piece, each ending as
/// soon as the core has other work, which then goes first. Stops when the writer goes away
/// or the save is cancelled.
async fn produce(
    core: Rc<Core>,
    id: u64,
    dbs: Vec<usize>,
    piece: Budget,
    cancelled: Arc<AtomicBool>,
    mut parts: mpsc::Sender<Part>,
) {
    let me = core.router.local();
    for db in dbs {
        let mut last = false;
        while !last {
            let mut part = Part { db, bytes: Vec::new(), keys: 0, last: false, presaved: 0 };
            while part.bytes.len() < PART_BYTES && !last {
                if cancelled.load(Ordering::Acquire) {
                    return;
                }
                let into = std::mem::take(&mut part.bytes);
                let take = move |sh: &mut Shard| sh.snapshot_chunk(id, db, piece, into);
                let Ok(chunk) = core.router.run(me, None, take).await else { return };
                part.bytes = chunk.bytes;
                part.keys += chunk.keys;
                part.presaved += chunk.presaved;
                last = chunk.done;
                let_others_in().await;
            }
            part.last = last;
            if futures::SinkExt::send(&mut parts, part).await.is_err() {
                return;
            }
        }
    }
}

/// The temp file being written, with its running checksum.
///
/// Written with direct I/O (O_DIRECT, through glommio's DMA stream on io_uring): buffered writes
/// of a large file run into the kernel's dirty-page throttling, which stalls the writing core
/// for as long as a second under load; direct writes never touch the page cache and complete
/// asynchronously. A filesystem that refuses O_DIRECT gets buffered writes.
struct Writer {
    out: Out,
    pos: u64,
    crc: u64,
    temp: PathBuf,
}

enum Out {
    Direct(glommio::io::DmaStreamWriter),
    Buffered(glommio::io::BufferedFile),
    /// A replica's link (a diskless sync): it writes the bytes to its socket.
    Stream(mpsc::Sender<Vec<u8>>),
}

fn io_error(path: &Path) -> impl FnOnce(glommio::GlommioError<()>) -> SaveError {
    let path = path.to_owned();
    move |e| SaveError::Io { path, source: e.into() }
}

impl Writer {
    async fn create(temp: &Path) -> Result<Writer, SaveError> {
        let out = match glommio::io::DmaFile::create(temp).await {
            Ok(file) => Out::Direct(
                glommio::io::DmaStreamWriterBuilder::new(file)
                    .with_buffer_size(1 << 20)
                    .with_write_behind(4)
                    .build(),
            ),
            Err(e) => {
                tracing::debug!("no direct I/O for {}: {e}; writing it buffered", temp.display());
                let _ = glommio::io::remove(temp).await;
                Out::Buffered(glommio::io::BufferedFile::create(temp).await.map_err(io_error(temp))?)
            }
        };
        Ok(Writer { out, pos: 0, crc: 0, temp: temp.to_owned() })
    }

    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), SaveError> {
        for step in bytes.chunks(CRC_STEP) {
            self.crc = crc64::crc64(self.crc, step);
            if work_waiting() {
                let_others_in().await;
            }
        }
        match &mut self.out {
            Out::Direct(stream) => {
                futures::AsyncWriteExt::write_all(stream, &bytes)
                    .await
                    .map_err(|source| SaveError::Io { path: self.temp.clone(), source })?;
                self.pos += bytes.len() as u64;
            }
            Out::Stream(sender) => {
                self.pos += bytes.len() as u64;
                futures::SinkExt::send(sender, bytes).await.map_err(|_| SaveError::Io {
                    path: self.temp.clone(),
                    source: std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the replica's link ended"),
                })?;
            }
            Out::Buffered(file) => {
                let mut rest = bytes;
                while !rest.is_empty() {
                    let len = rest.len();
                    let n = file.write_at(rest.clone(), self.pos).await.map_err(io_error(&self.temp))?;
                    if n == 0 {
                        let source = std::io::Error::new(std::io::ErrorKind::WriteZero, "no space written");
                        return Err(SaveError::Io { path: self.temp.clone(), source });
                    }
                    self.pos += n as u64;
                    rest = if n == len { Vec::new() } else { rest.split_off(n) };
                }
            }
        }
        Ok(())
    }

    /// Makes the file durable and, with a `target`, puts it in place: fsync, rename over
    /// `target`, fsync `dir`.
    async fn commit(self, target: Option<&Path>, dir: &Path) -> Result<(), SaveError> {
        let Writer { out, temp, .. } = self;
        let synced = match out {
            // The link sends the end mark once the save reports success.
            Out::Stream(_) => return Ok(()),
            Out::Direct(mut stream) => {
                // Closing syncs the data, then trims the last block's padding; the second sync
                // makes the final size durable too.
                match futures::AsyncWriteExt::close(&mut stream).await {
                    Ok(()) => match glommio::io::DmaFile::open(&temp).await {
                        Ok(file) => {
                            let synced = file.fdatasync().await.map_err(io_error(&temp));
                            let _ = file.close().await;
                            synced
                        }
                        Err(e) => Err(io_error(&temp)(e)),
                    },
                    Err(source) => Err(SaveError::Io { path: temp.clone(), source }),
                }
            }
            Out::Buffered(file) => {
                let synced = file.fdatasync().await.map_err(io_error(&temp));
                let _ = file.close().await;
                synced
            }
        };
        let renamed = match (synced, target) {
            (Ok(()), Some(target)) => glommio::io::rename(&temp, target).await.map_err(io_error(target)),
            (Ok(()), None) => return Ok(()),
            (Err(e), _) => Err(e),
        };
        if let Err(e) = renamed {
            let _ = glommio::io::remove(&temp).await;
            return Err(e);
        }
        if let Ok(d) = glommio::io::Directory::open(dir).await {
            d.sync().await.map_err(io_error(dir))?;
            let _ = d.close().await;
        }
        Ok(())
    }

    /// Closes and removes the unfinished file.
    async fn discard(self) {
        match self.out {
            Out::Stream(_) => return,
            Out::Direct(mut stream) => {
                let _ = futures::AsyncWriteExt::close(&mut stream).await;
            }
            Out::Buffered(file) => {
                let _ = file.close().await;
            }
        }
        let _ = glommio::io::remove(&self.temp).await;
    }
}

/// Once a second on core 0: starts a background save when a save point is reached, or when one
/// was scheduled (BGSAVE inside EXEC).
pub(crate) async fn tick(core: &Rc<Core>) {
    let config = core.config();
    let scheduled = core.global.persistence().scheduled;
    if config.save.points.is_empty() && !scheduled {
        return;
    }
    let counts = futures::future::join_all(
        (0..core.router.shards())
            .map(|s| core.router.run(ShardId(s), None, |sh: &mut Shard| sh.stats().changes)),
    )
    .await;
    let changes: u64 = counts.into_iter().map(|c| c.unwrap_or(0)).sum();
    let start = {
        let mut state = core.global.persistence();
        let since = changes.saturating_sub(state.changes_at_save);
        if scheduled && may_start(&state) {
            state.scheduled = false;
            true
        } else if let Some((secs, min)) = due_point(&config.save.points, since, &state) {
            tracing::info!("{min} changes in {secs} seconds. Saving...");
            true
        } else {
            false
        }
    };
    if start {
        if let Err(e) = bgsave(core).await {
            tracing::warn!("Can't save in background: {e}");
        }
    }
}

/// SIGTERM or SIGINT: saves first when save points are set, then stops every core. A failed
/// save keeps the server running, as Redis does.
pub(crate) async fn shutdown_on_signal(core: &Rc<Core>) {
    if !core.config().save.points.is_empty() && !core.global.loading() {
        tracing::info!("Saving the final RDB snapshot before exiting.");
        if let Err(e) = save(core, None, OnRunning::Cancel).await {
            tracing::warn!("Error trying to save the DB, can't exit: {e}");
            tracing::warn!(
                "SIGTERM received but errors trying to shut down the server, check the logs for more information"
            );
            return;
        }
    }
    tracing::warn!("Redis is now ready to exit, bye bye...");
    core.global.request_shutdown();
}

/// Whether a background save may start: none running, and the last one succeeded or failed
/// long enough ago.
fn may_start(state: &crate::engine::persist::PersistState) -> bool {
    state.running.is_none()
        && (!state.bgsave_failed || unix_secs().saturating_sub(state.last_bgsave_try) > RETRY_DELAY)
}

/// What save points ask for now: the first point reached (seconds, changes), if any.
///
/// A point is reached when `changes` keys changed since the last save and more than its
/// seconds passed since then; after a failed background save, only once the retry delay passed.
fn due_point(
    points: &[(u64, u64)],
    changes: u64,
    state: &crate::engine::persist::PersistState,
) -> Option<(u64, u64)> {
    if !may_start(state) {
        return None;
    }
    let now = unix_secs();
    points.iter().copied().find(|&(secs, min)| changes >= min && now.saturating_sub(state.last_save) > secs)
}

// ---------------------------------------------------------------------------------------------
// Loading

/// The receiving end each core gets at startup when there is a file to load.
pub(crate) type LoadReceiver = mpsc::Receiver<Vec<LoadItem>>;

/// Starts loading `path` if it exists: returns a receiver per core (their batches) and sets the
/// loading flag; `None` when there is nothing to load.
/// Keys already expired are skipped, unless `keep_expired` (an AOF's base: the commands that
/// follow may still change them, as in Redis). Once loaded, the file offset where the RDB ends
/// goes to `end` (an old-style AOF continues with commands there).
pub(crate) fn start_loading(
    global: &Arc<Global>,
    path: PathBuf,
    keep_expired: bool,
    end: Option<std::sync::mpsc::Sender<u64>>,
) -> Option<Vec<LoadReceiver>> {
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
    global.load_progress.rdb.store(true, Ordering::Release);
    let failed = global.clone();
    let global = global.clone();
    let spawned = std::thread::Builder::new().name("ferrokey-load".into()).spawn(move || {
        let started = Instant::now();
        tracing::info!("Loading RDB produced by {}", path.display());
        let mut senders = senders;
        let send = |shard: usize, batch| {
            futures::executor::block_on(futures::SinkExt::send(&mut senders[shard], batch)).is_ok()
        };
        match load(&global, std::io::BufReader::new(file), cores, LoadRules { keep_expired, validate: false }, send) {
            Ok(Loaded { keys: loaded, expired, end: at, libraries }) => {
                if let Err(e) = Functions::get().restore(libraries, Policy::Flush) {
                    tracing::error!("Fatal error loading the DB: Failed loading library, {e}. Exiting.");
                    global.fail_startup();
                    return;
                }
                if let Some(end) = end {
                    let _ = end.send(at);
                }
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
    #[error("the value of key '{0}' does not decode: {1}")]
    Value(String, crate::storage::rdb::RdbError),
    #[error("Failed loading library, {0}")]
    Library(String),
}

/// What a load read besides the keys it sent to the shards.
struct Loaded {
    /// Keys sent.
    keys: u64,
    /// Keys skipped as expired.
    expired: u64,
    /// Where the file's RDB ends.
    end: u64,
    /// Its function libraries, compiled.
    libraries: Vec<crate::engine::script::functions::Library>,
}

/// What the loader does with the keys it reads.
#[derive(Clone, Copy, Default)]
struct LoadRules {
    /// Keep keys already expired (an AOF's base, a replica's copy of its primary).
    keep_expired: bool,
    /// Decode every value here too, so that a value that does not decode fails the load
    /// before any shard has changed (a replica's `swapdb` load).
    validate: bool,
}

fn load(
    global: &Global,
    src: impl std::io::Read,
    shards: usize,
    rules: LoadRules,
    mut send: impl FnMut(usize, Vec<LoadItem>) -> bool,
) -> Result<Loaded, LoadFailure> {
    let mut reader = file::FileReader::open(src)?;
    tracing::debug!("RDB version {}", reader.version());
    let databases = global.config().databases;
    let mut batches: Vec<Vec<LoadItem>> = (0..shards).map(|_| Vec::with_capacity(LOAD_BATCH)).collect();
    let (mut db, mut loaded, mut expired) = (0usize, 0u64, 0u64);
    let mut libraries = Vec::new();
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
            file::Item::Function(code) => libraries.push(
                crate::engine::script::compile_library(&code)
                    .map_err(|e| LoadFailure::Library(e.to_string()))?,
            ),
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
                if !rules.keep_expired && expires_at.is_some_and(|at| at < now) {
                    expired += 1;
                    continue;
                }
                if rules.validate {
                    value
                        .decode()
                        .map_err(|e| LoadFailure::Value(String::from_utf8_lossy(&key).into_owned(), e))?;
                }
                let shard = crate::engine::slot::Slot::of(&key).shard(shards).0;
                batches[shard].push(LoadItem { db, key, value, expires_at });
                loaded += 1;
                if batches[shard].len() >= LOAD_BATCH {
                    let batch = std::mem::replace(&mut batches[shard], Vec::with_capacity(LOAD_BATCH));
                    if !send(shard, batch) {
                        return Err(LoadFailure::Stopped);
                    }
                }
                if last_log.elapsed().as_secs() >= 5 {
                    last_log = Instant::now();
                    tracing::info!("Loading: {loaded} keys, {} bytes read", reader.offset());
                }
            }
        }
    }
    for (shard, batch) in batches.into_iter().enumerate() {
        if !batch.is_empty() && !send(shard, batch) {
            return Err(LoadFailure::Stopped);
        }
    }
    Ok(Loaded { keys: loaded, expired, end: reader.offset(), libraries })
}

/// DEBUG RELOAD: saves (unless `nosave`), then, holding every gate, empties every database
/// (unless `noflush`) and loads the file back: a loader thread parses it and this core hands
/// each batch to its shard.
///
/// # Errors
/// The save failed (`Err(None)`), or the load did (`Err(Some(reason))`, keys loaded so far
/// stay).
pub(crate) async fn reload(core: &Rc<Core>, nosave: bool, noflush: bool) -> Result<(), Option<String>> {
    if !nosave {
        save(core, None, OnRunning::Cancel).await.map_err(|e| {
            tracing::warn!("{e}");
            None
        })?;
    }
    let config = core.config();
    let path = PathBuf::from(&config.dir).join(&config.dbfilename);
    let file = std::fs::File::open(&path).map_err(|e| Some(format!("{}: {e}", path.display())))?;
    let shards = core.router.shards();
    let tx = core
        .router
        .begin((0..shards).map(ShardId).collect())
        .await
        .map_err(|_| Some("a shard is unavailable".into()))?;
    if !noflush {
        for &shard in tx.shards() {
            let _ = tx.run(shard, |sh: &mut Shard| sh.flush(None)).await;
        }
        // As Redis's emptyData: tracking clients hear that every key changed.
        crate::engine::invalidation::flushed(core);
    }
    let (mut batches, result) =
        match spawn_loader(&core.global, std::io::BufReader::new(file), LoadRules::default()) {
            Ok(started) => started,
            Err(e) => {
                tx.release().await;
                return Err(Some(e));
            }
        };
    let mut decoded = Ok(());
    while let Some((shard, batch)) = batches.next().await {
        if let Ok(Err(e)) = tx.run(ShardId(shard), move |sh: &mut Shard| sh.load(batch)).await {
            decoded = Err(Some(e.to_string()));
            // Dropping the channel stops the loader.
            break;
        }
    }
    drop(batches);
    tx.release().await;
    decoded?;
    match result.await {
        Ok(Ok(Loaded { keys, libraries, .. })) => {
            // As Redis: emptying the dataset empties the functions too (a replica's load from
            // disk takes its primary's); kept, a library of the file replaces its namesake.
            let policy = if noflush { Policy::Replace } else { Policy::Flush };
            Functions::get().restore(libraries, policy).map_err(|e| Some(e.to_string()))?;
            tracing::info!("DB reloaded by DEBUG RELOAD ({keys} keys)");
            Ok(())
        }
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(Some("the loader stopped".into())),
    }
}

/// The batches a loader thread sends, and its result: keys loaded, expired, bytes read.
type Loader = (mpsc::Receiver<(usize, Vec<LoadItem>)>, oneshot::Receiver<Result<Loaded, String>>);

/// Starts a thread that parses `src` and sends each shard's keys in batches; dropping the
/// batches' receiver stops it.
fn spawn_loader(
    global: &Arc<Global>,
    src: impl std::io::Read + Send + 'static,
    rules: LoadRules,
) -> Result<Loader, String> {
    let (sender, batches) = mpsc::channel::<(usize, Vec<LoadItem>)>(4);
    let (done, result) = oneshot::channel();
    let global = global.clone();
    let shards = global.cores.len();
    std::thread::Builder::new()
        .name("ferrokey-load".into())
        .spawn(move || {
            let mut sender = sender;
            let send = |shard: usize, batch| {
                futures::executor::block_on(futures::SinkExt::send(&mut sender, (shard, batch))).is_ok()
            };
            let _ = done.send(load(&global, src, shards, rules, send).map_err(|e| e.to_string()));
        })
        .map_err(|e| format!("cannot start the loader: {e}"))?;
    Ok((batches, result))
}

/// The bytes of a snapshot arriving in chunks (a replica's diskless load), read on the
/// loader's thread; the end of the chunks is the end of the file.
struct ChunkReader {
    chunks: mpsc::Receiver<bytes::Bytes>,
    current: bytes::Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match futures::executor::block_on(self.chunks.next()) {
                Some(chunk) => self.current = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Holds every gate when the dataset is empty (a replica's `on-empty-db` load then goes
/// straight into the shards); `None`, with every gate let go, when it is not.
pub(crate) async fn hold_if_empty(core: &Core) -> Option<Tx> {
    let tx = core.router.begin((0..core.router.shards()).map(ShardId).collect()).await.ok()?;
    let mut keys = 0;
    for &shard in tx.shards() {
        keys += tx
            .run(shard, |sh: &mut Shard| sh.dbs().iter().map(|d| d.len()).sum::<usize>())
            .await
            .unwrap_or(1);
    }
    if keys == 0 {
        return Some(tx);
    }
    tx.release().await;
    None
}

/// Why a replica's diskless load failed, and whether the data it had is gone with it.
#[derive(Debug)]
pub(crate) struct StreamedLoadFailed {
    /// What went wrong.
    pub(crate) reason: String,
    /// The dataset was emptied (a direct load, or a swap that failed half-way): the replica no
    /// longer holds a copy a partial resync could continue.
    pub(crate) emptied: bool,
}

/// A replica's diskless load of the snapshot arriving on `chunks`, parsed on a loader thread
/// as it comes. With `direct` (every gate held over an empty dataset, see [`hold_if_empty`])
/// the keys go into the shards as they are parsed, and a load that fails empties the dataset
/// again. Without it (`swapdb`) every value is also decoded on the loader's thread and the
/// keys wait in memory while the old data serves; only a snapshot that loaded whole replaces
/// it, under every gate at once. Either way nothing is kept unless `current` still holds once
/// the gates are held (the link was not replaced meanwhile). Returns the keys loaded.
pub(crate) async fn load_streamed(
    core: &Rc<Core>,
    chunks: mpsc::Receiver<bytes::Bytes>,
    direct: Option<Tx>,
    current: impl Fn() -> bool,
) -> Result<u64, StreamedLoadFailed> {
    let failed = |reason: String, emptied: bool| StreamedLoadFailed { reason, emptied };
    let reader = ChunkReader { chunks, current: bytes::Bytes::new() };
    let rules = LoadRules { keep_expired: true, validate: direct.is_none() };
    let (mut batches, result) = match spawn_loader(&core.global, reader, rules) {
        Ok(started) => started,
        Err(e) => {
            if let Some(tx) = direct {
                tx.release().await;
            }
            return Err(failed(e, false));
        }
    };
    let finished = |r: Result<Result<Loaded, String>, oneshot::Canceled>| match r {
        Ok(Ok(loaded)) => Ok(loaded),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("the loader stopped".to_owned()),
    };
    // A replica's functions are its primary's: those of the snapshot replace its own, when
    // its keys do.
    let take_libraries = |loaded: Loaded| {
        Functions::get()
            .restore(loaded.libraries, Policy::Flush)
            .map(|()| loaded.keys)
            .map_err(|e| e.to_string())
    };
    let flush_all = |tx: Tx| async move {
        for &shard in tx.shards() {
            let _ = tx.run(shard, |sh: &mut Shard| sh.flush(None)).await;
        }
        crate::engine::invalidation::flushed(core);
        tx
    };
    if let Some(tx) = direct {
        let mut applied = Ok(());
        while let Some((shard, batch)) = batches.next().await {
            if let Ok(Err(e)) = tx.run(ShardId(shard), move |sh: &mut Shard| sh.load(batch)).await {
                applied = Err(e.to_string());
                break;
            }
        }
        drop(batches);
        let loaded = applied.and(finished(result.await)).and_then(|loaded| {
            if current() {
                take_libraries(loaded)
            } else {
                Err("replication target changed".to_owned())
            }
        });
        let tx = if loaded.is_err() { flush_all(tx).await } else { tx };
        tx.release().await;
        return loaded.map_err(|e| failed(e, true));
    }
    let mut staged = Vec::new();
    while let Some(batch) = batches.next().await {
        staged.push(batch);
    }
    let loaded = finished(result.await).map_err(|e| failed(e, false))?;
    let tx = core
        .router
        .begin((0..core.router.shards()).map(ShardId).collect())
        .await
        .map_err(|_| failed("a shard is unavailable".to_owned(), false))?;
    if !current() {
        tx.release().await;
        return Err(failed("replication target changed".to_owned(), false));
    }
    let tx = flush_all(tx).await;
    let mut applied = take_libraries(loaded).map_err(|e| failed(e, true));
    for (shard, batch) in staged {
        if applied.is_err() {
            break;
        }
        if let Ok(Err(e)) = tx.run(ShardId(shard), move |sh: &mut Shard| sh.load(batch)).await {
            applied = Err(failed(e.to_string(), true));
            break;
        }
    }
    // Half a dataset is no copy of anything: a swap that failed part-way leaves none.
    let tx = if applied.is_err() { flush_all(tx).await } else { tx };
    tx.release().await;
    applied
}

/// A core's side of loading: puts each batch into its shard (through the gate), then reports
/// that this core has everything.
pub(crate) async fn receive(core: std::rc::Rc<Core>, mut batches: LoadReceiver) {
    while let Some(batch) = batches.next().await {
        if let Ok(Err(e)) =
            core.router.run(core.router.local(), None, move |sh: &mut Shard| sh.load(batch)).await
        {
            tracing::error!("Fatal error loading the DB: {e}. Exiting.");
            core.global.fail_startup();
            return;
        }
    }
    core.global.core_loaded();
}
