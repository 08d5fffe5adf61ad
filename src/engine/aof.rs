//! The append-only file, in Redis 7's multi-part layout: in `dir/appenddirname`, a manifest
//! (`appendonly.aof.manifest`) names a base file (a snapshot: RDB, or commands) and the
//! incremental files (commands since the base), so that redis-server 7.0, redis-check-aof and
//! ferrokey read each other's directories.
//!
//! **Writing.** Every shard's effects merge into the journal (`engine::journal`); one writer
//! thread takes the stream and appends it to the last incremental file with plain `write(2)`
//! and `fdatasync(2)` (Redis's own I/O thread does the fsyncs): no core ever waits on the
//! disk. `appendfsync always`: the writer fsyncs after every round and a connection's replies
//! leave only once its writes are durable (one fsync covers every reply waiting: group commit);
//! `everysec`: an fsync each second; `no`: the kernel decides. A failed write keeps its bytes
//! for the next round and refuses writes with `-MISCONF` until one succeeds (under `always` the
//! server stops, as Redis does).
//!
//! **Rewriting** (BGREWRITEAOF, turning the AOF on, automatic growth) takes a snapshot with
//! every gate held, as BGSAVE does; at that cut the journal carries a rotate marker, so the
//! writer starts a new incremental file exactly there. The snapshot is written by the cores,
//! without fork, as the new base; the writer then puts it in place, rewrites the manifest and
//! deletes the files it replaced.
//!
//! **Loading** at startup: the base loads as any RDB file (on every core); a thread reads the
//! commands of the incremental files (and of a command-form base) and core 0 replays them
//! through a session of its own, MULTI/EXEC included, while clients get `-LOADING`. A cut tail
//! (a crash mid-write) is cut off with `aof-load-truncated yes`, and stops the start otherwise.

use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};
use futures::channel::mpsc;
use futures::StreamExt;

use crate::config::{AppendFsync, Config};
use crate::engine::core::Core;
use crate::engine::global::Global;
use crate::engine::journal::Marker;
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::Shard;
use crate::engine::slot::ShardId;
use crate::engine::snapshot::{self, Form, OnRunning, Output, SaveError, SaveKind};
use crate::storage::aof::{AofFile, CommandReader, FileType, Manifest, ReadError};
use crate::storage::clock::unix_secs;

/// Commands per batch handed to the replaying session.
const REPLAY_BATCH: usize = 1024;
/// How long a writer round may wait for work (it also fsyncs each second under `everysec`).
const WRITER_WAIT: Duration = Duration::from_millis(100);
/// Under `everysec` and `no`, the writer writes at most this often: fewer, larger writes.
const WRITE_PERIOD: Duration = Duration::from_millis(1);

/// The AOF directory of `config`.
#[must_use]
pub(crate) fn dir(config: &Config) -> PathBuf {
    Path::new(&config.dir).join(&config.appenddirname)
}

fn manifest_path(config: &Config) -> PathBuf {
    dir(config).join(format!("{}.manifest", config.appendfilename))
}

/// A request to the writer thread.
enum Op {
    /// Append to `files`: opened at startup (the last incremental file) or, turning the AOF on
    /// at runtime, at the rotate marker of the rewrite that makes the base.
    Open(Box<Files>),
    /// Rewrite `id`'s base is durable at `temp`: put it in place.
    Commit { id: u64, temp: PathBuf, rdb: bool, started: Instant },
    /// Rewrite `id` failed.
    Abort { id: u64 },
    /// Stop appending: write and fsync what is there, close; `done` when finished.
    Close { done: Option<std::sync::mpsc::Sender<()>> },
}

/// The writer thread's handle.
pub(crate) struct AofWriter {
    ops: Sender<Op>,
}

/// The files the writer appends to.
struct Files {
    dir: PathBuf,
    name: String,
    manifest: Manifest,
    /// The incremental file being appended to, and its size.
    file: Option<(std::fs::File, u64)>,
    /// Bytes of the base and of the incremental files before the current one.
    earlier: u64,
    /// Turning on: the manifest is written only once the base is in place.
    turning_on: bool,
    /// The id of the last rewrite whose rotate marker was written.
    rotated: Option<u64>,
    /// A rewrite's base waiting for its rotate marker.
    pending: Option<(u64, PathBuf, bool, Instant)>,
    /// The rewrite whose rotation failed (its base is not used).
    rotate_failed: Option<u64>,
}

impl AofWriter {
    fn send(&self, global: &Global, op: Op) {
        if self.ops.send(op).is_err() {
            tracing::error!("the AOF writer is gone");
        }
        global.journal.wake();
    }
}

/// The writer thread, once started: one per process, as the server is.
static WRITER: std::sync::OnceLock<AofWriter> = std::sync::OnceLock::new();

/// Starts the writer thread (once).
fn writer(global: &Arc<Global>) -> &'static AofWriter {
    WRITER.get_or_init(|| {
        let (ops, rx) = crossbeam_channel::unbounded();
        let g = global.clone();
        if let Err(e) =
            std::thread::Builder::new().name("ferrokey-aof".into()).spawn(move || run_writer(&g, &rx))
        {
            tracing::error!("cannot start the AOF writer: {e}");
        }
        AofWriter { ops }
    })
}

/// The writer thread: takes the journal's stream, appends it, fsyncs as configured.
fn run_writer(global: &Arc<Global>, ops: &Receiver<Op>) {
    let mut files: Option<Files> = None;
    let mut out = Appender { pending: Vec::new(), last_error_log: None };
    let mut last_fsync = Instant::now();
    let mut unsynced = false;
    let mut spare = Vec::new();
    let mut last_timestamp = 0;
    loop {
        let taken = global.journal.take(WRITER_WAIT, std::mem::take(&mut spare));
        // Read after the wait: a CONFIG SET that came meanwhile applies to what it took.
        let config = global.config();
        let mut closing = None;
        // Ops sent before what was taken was logged are seen now (turning on opens the files
        // before the rotate marker can be in the stream).
        while let Ok(op) = ops.try_recv() {
            match op {
                Op::Open(f) => files = Some(*f),
                Op::Commit { id, temp, rdb, started } => match files.as_mut() {
                    Some(f) if f.rotate_failed != Some(id) => f.pending = Some((id, temp, rdb, started)),
                    // The AOF was turned off meanwhile, or the rotation failed: no base to put.
                    f => {
                        let _ = std::fs::remove_file(&temp);
                        abort(global, f, id);
                    }
                },
                Op::Abort { id } => abort(global, files.as_mut(), id),
                Op::Close { done } => closing = Some(done),
            }
        }
        let bytes = taken.bytes;
        let mut at = 0;
        let mut wrote = false;
        // `aof-timestamp-enabled`: a `#TS:<unix seconds>` annotation before the first command
        // of each second, as Redis writes it (loaders skip `#` lines).
        if config.aof_timestamp_enabled && !bytes.is_empty() {
            let now = unix_secs();
            if now > last_timestamp {
                last_timestamp = now;
                wrote |= out.append(global, files.as_mut(), format!("#TS:{now}\r\n").as_bytes(), &config);
            }
        }
        for (pos, marker) in taken.markers {
            wrote |= out.append(global, files.as_mut(), &bytes[at..pos], &config);
            at = pos;
            let Marker::Rotate { id } = marker else { continue };
            if let Some(f) = files.as_mut() {
                if !out.pending.is_empty() {
                    // The rewrite's base holds these writes: they do not follow it.
                    tracing::warn!(
                        "{} bytes the AOF could not write are left out of the new incr file",
                        out.pending.len()
                    );
                    out.pending.clear();
                }
                if let Err(e) = f.rotate(id) {
                    tracing::warn!("AOF rotation failed: {e}");
                }
                last_fsync = Instant::now();
                unsynced = false;
            }
        }
        wrote |= out.append(global, files.as_mut(), &bytes[at..], &config);
        spare = bytes;
        spare.clear();
        unsynced |= wrote;
        let rewriting = {
            let state = global.persistence();
            state.aof.rewriting || state.running.is_some()
        };
        let may_fsync = !(config.no_appendfsync_on_rewrite && rewriting);
        let fsync_now = match config.appendfsync {
            AppendFsync::Always => unsynced && may_fsync,
            AppendFsync::Everysec => unsynced && may_fsync && last_fsync.elapsed() >= Duration::from_secs(1),
            AppendFsync::No => false,
        };
        if fsync_now {
            if let Some((file, _)) = files.as_ref().and_then(|f| f.file.as_ref()) {
                if let Err(e) = file.sync_data() {
                    if config.appendfsync == AppendFsync::Always {
                        tracing::error!(
                            "Can't persist AOF for fsync error when the AOF fsync policy is 'always': {e}. Exiting..."
                        );
                        std::process::exit(1);
                    }
                    tracing::warn!("Fail to fsync the AOF file: {e}");
                    write_failed(global, e.to_string());
                } else {
                    unsynced = false;
                    last_fsync = Instant::now();
                }
            }
        }
        // What is written is as durable as the policy makes it: under `always`, once fsynced
        // (or once written, while no-appendfsync-on-rewrite holds fsyncs back, as in Redis).
        let durable = !unsynced || config.appendfsync != AppendFsync::Always || !may_fsync;
        if out.pending.is_empty() && durable {
            global.journal.made_durable(taken.frontier);
            // The connections just woken run before the next round is taken: where this
            // thread shares a cpu with their core, the round then holds every write they
            // make in answer, not the first few (P=1 `always`: 0.99-1.00x redis-server's
            // throughput, against 0.79-0.88x without; BENCHMARKS.md).
            if config.appendfsync == AppendFsync::Always && wrote {
                std::thread::yield_now();
            }
        }
        if let Some(f) = files.as_mut() {
            f.commit_if_ready(global, !config.aof_disable_auto_gc);
        }
        if let Some(done) = closing {
            if let Some((file, _)) = files.as_ref().and_then(|f| f.file.as_ref()) {
                let _ = file.sync_data();
            }
            if let Some((id, temp, ..)) = files.as_mut().and_then(|f| f.pending.take()) {
                let _ = std::fs::remove_file(&temp);
                abort(global, None, id);
            }
            files = None;
            out.pending.clear();
            global.journal.release_waiters();
            if let Some(done) = done {
                let _ = done.send(());
            }
        }
        if wrote && config.appendfsync != AppendFsync::Always {
            std::thread::sleep(WRITE_PERIOD);
        }
    }
}

/// Appends to the current incremental file; what a failed write left stays for the next round.
struct Appender {
    pending: Vec<u8>,
    last_error_log: Option<Instant>,
}

impl Appender {
    /// Writes what is pending, then `bytes`; returns whether anything was written.
    fn append(&mut self, global: &Global, files: Option<&mut Files>, bytes: &[u8], config: &Config) -> bool {
        if bytes.is_empty() && self.pending.is_empty() {
            return false;
        }
        let Some((earlier, file, size)) = files.and_then(|f| {
            let earlier = f.earlier;
            f.file.as_mut().map(|(file, size)| (earlier, file, size))
        }) else {
            self.pending.clear();
            // Logging with no file to append to (a failed rotation while turning on): writes
            // are refused until a rewrite succeeds. Turned off meanwhile: nothing keeps these.
            if global.journal.aof_on() && !bytes.is_empty() {
                write_failed(global, "no AOF file is open".into());
            }
            return false;
        };
        let mut write = |buf: &[u8]| -> std::io::Result<()> {
            file.write_all(buf)?;
            *size += buf.len() as u64;
            Ok(())
        };
        let result = if self.pending.is_empty() {
            write(bytes)
        } else {
            self.pending.extend_from_slice(bytes);
            let r = write(&self.pending);
            if r.is_ok() {
                self.pending.clear();
            }
            r
        };
        match result {
            Ok(()) => {
                let mut state = global.persistence();
                state.aof.current_size = earlier + *size;
                if state.aof.write_error.take().is_some() {
                    tracing::warn!("AOF write error looks solved, Redis can write again.");
                    global.set_aof_failed(false);
                }
                true
            }
            Err(e) => {
                if config.appendfsync == AppendFsync::Always {
                    tracing::error!(
                        "Can't recover from AOF write error when the AOF fsync policy is 'always'. Exiting..."
                    );
                    std::process::exit(1);
                }
                if self.last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    tracing::warn!("Error writing to the AOF file: {e}");
                    self.last_error_log = Some(Instant::now());
                }
                // A partial write is cut off: the file ends at a whole command.
                if let Err(t) = file.set_len(*size) {
                    tracing::warn!(
                        "Could not remove short write from the append-only file.  Redis may refuse to load the AOF the next time it starts.  ftruncate: {t}"
                    );
                }
                if self.pending.is_empty() {
                    self.pending.extend_from_slice(bytes);
                }
                write_failed(global, e.to_string());
                false
            }
        }
    }
}

/// A write or fsync failed: INFO says why, and writes get `-MISCONF` until one succeeds.
fn write_failed(global: &Global, why: String) {
    global.persistence().aof.write_error = Some(why);
    global.set_aof_failed(true);
}

/// Rewrite `id` failed: a base that will not come.
fn abort(global: &Global, files: Option<&mut Files>, id: u64) {
    let mut state = global.persistence();
    if let Some(f) = files {
        if f.pending.as_ref().is_some_and(|p| p.0 == id) {
            f.pending = None;
        }
        // Turning on: writes go to an incremental file no manifest lists yet. Another
        // rewrite must make the base, as Redis retries.
        state.aof.rewrite_scheduled |= f.turning_on;
    }
    state.aof.rewriting = false;
    state.aof.last_rewrite_failed = true;
    state.aof.consecutive_failures += 1;
    tracing::warn!("Background AOF rewrite terminated with error");
}

impl Files {
    /// The files of the AOF in `dir` named `name`, none open yet.
    fn new(dir: PathBuf, name: String, manifest: Manifest, turning_on: bool) -> Files {
        Files {
            dir,
            name,
            manifest,
            file: None,
            earlier: 0,
            turning_on,
            rotated: None,
            pending: None,
            rotate_failed: None,
        }
    }

    fn incr_name(&self, seq: u64) -> String {
        format!("{}.{seq}.incr.aof", self.name)
    }

    /// Opens the last incremental file to append to (startup), or a new one if there is none.
    fn open_last(&mut self) -> std::io::Result<()> {
        let Some(last) = self.manifest.incrs.last() else {
            return self.rotate_to_new(true);
        };
        let path = self.dir.join(&last.name);
        let file = std::fs::OpenOptions::new().append(true).create(true).open(&path)?;
        let size = file.metadata()?.len();
        tracing::info!("Opening AOF incr file {} on server start", last.name);
        self.earlier = self.total_size().saturating_sub(size);
        self.file = Some((file, size));
        Ok(())
    }

    fn total_size(&self) -> u64 {
        self.manifest
            .base
            .iter()
            .chain(&self.manifest.incrs)
            .filter_map(|f| std::fs::metadata(self.dir.join(&f.name)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// The rotate marker of rewrite `id`: fsync and close the current file, open a new one.
    /// If the new file cannot be made, the current one stays and the rewrite will not commit.
    fn rotate(&mut self, id: u64) -> std::io::Result<()> {
        if let Some((file, _)) = &self.file {
            if let Err(e) = file.sync_data() {
                tracing::warn!("Fail to fsync the AOF file: {e}");
            }
        }
        let old = self.file.take();
        match self.rotate_to_new(!self.turning_on) {
            Ok(()) => {
                self.rotated = Some(id);
                Ok(())
            }
            Err(e) => {
                self.file = old;
                self.rotate_failed = Some(id);
                Err(e)
            }
        }
    }

    /// Opens a new incremental file and lists it (and writes the manifest, when `persist`).
    fn rotate_to_new(&mut self, persist: bool) -> std::io::Result<()> {
        let seq = self.manifest.last_seqs().1 + 1;
        let name = self.incr_name(seq);
        let path = self.dir.join(&name);
        // Created empty, then appended to: a write cut short and truncated away leaves the next
        // one at the end, never past a hole.
        drop(std::fs::File::create(&path)?);
        let file = std::fs::OpenOptions::new().append(true).open(&path)?;
        self.earlier = self.total_size();
        self.manifest.incrs.push(AofFile { name: name.clone(), seq, kind: FileType::Incr });
        tracing::info!("Creating AOF incr file {name}");
        self.file = Some((file, 0));
        if persist {
            write_manifest(&self.dir, &self.name, &self.manifest)?;
        }
        Ok(())
    }

    /// Puts a rewrite's base in place once its rotate marker is written: the new base, the
    /// files it replaces as history, the manifest, then the history deleted.
    /// With `gc`, the files the new base replaces are deleted (`aof-disable-auto-gc no`).
    fn commit_if_ready(&mut self, global: &Global, gc: bool) {
        let Some((id, _, _, _)) = &self.pending else { return };
        if self.rotated != Some(*id) {
            return;
        }
        let Some((_, temp, rdb, started)) = self.pending.take() else { return };
        let result = self.commit(&temp, rdb, gc);
        let mut state = global.persistence();
        state.aof.rewriting = false;
        state.aof.last_rewrite_secs = Some(i64::try_from(started.elapsed().as_secs()).unwrap_or(i64::MAX));
        match result {
            Ok(()) => {
                state.aof.last_rewrite_failed = false;
                state.aof.consecutive_failures = 0;
                let size = self.earlier + self.file.as_ref().map_or(0, |f| f.1);
                state.aof.current_size = size;
                state.aof.base_size = size;
                tracing::info!("Background AOF rewrite finished successfully");
            }
            Err(e) => {
                tracing::warn!("Background AOF rewrite terminated with error: {e}");
                let _ = std::fs::remove_file(&temp);
                state.aof.last_rewrite_failed = true;
                state.aof.consecutive_failures += 1;
                state.aof.rewrite_scheduled |= self.turning_on;
            }
        }
    }

    fn commit(&mut self, temp: &Path, rdb: bool, gc: bool) -> std::io::Result<()> {
        tracing::info!("Background AOF rewrite terminated with success");
        let (base_seq, _) = self.manifest.last_seqs();
        let seq = base_seq + 1;
        let name = format!("{}.{seq}.base.{}", self.name, if rdb { "rdb" } else { "aof" });
        std::fs::rename(temp, self.dir.join(&name))?;
        tracing::info!("Successfully renamed the temporary AOF base file {} into {name}", temp.display());
        let mut next = self.manifest.clone();
        if let Some(mut old) = next.base.take() {
            old.kind = FileType::History;
            next.history.push(old);
        }
        // Every incremental file but the one the rotation opened is in the new base.
        let keep = next.incrs.pop();
        for mut f in next.incrs.drain(..) {
            f.kind = FileType::History;
            next.history.push(f);
        }
        next.incrs.extend(keep);
        next.base = Some(AofFile { name, seq, kind: FileType::Base });
        write_manifest(&self.dir, &self.name, &next)?;
        self.manifest = next;
        self.turning_on = false;
        if gc {
            for f in std::mem::take(&mut self.manifest.history) {
                tracing::info!("Removing the history file {} in the background", f.name);
                let _ = std::fs::remove_file(self.dir.join(&f.name));
            }
            write_manifest(&self.dir, &self.name, &self.manifest)?;
        }
        self.earlier = self.total_size().saturating_sub(self.file.as_ref().map_or(0, |f| f.1));
        Ok(())
    }
}

/// Writes the manifest as Redis does: a temp file, fsync, rename, directory fsync.
fn write_manifest(dir: &Path, name: &str, manifest: &Manifest) -> std::io::Result<()> {
    let temp = dir.join(format!("temp-{name}.manifest"));
    let path = dir.join(format!("{name}.manifest"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(manifest.to_text().as_bytes())?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&temp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

// ---------------------------------------------------------------------------------------------
// Startup

/// What startup does with the AOF: the base to load as RDB, and the command files to replay.
pub(crate) struct Startup {
    /// The RDB base, if the base is one.
    pub(crate) rdb_base: Option<PathBuf>,
    /// Files of commands to replay, in order (a command-form base, then the incremental files),
    /// each with whether it is the base.
    replay: Vec<(PathBuf, bool)>,
    /// An RDB base that may go on with commands (an old-style AOF with an RDB preamble), and
    /// where its RDB loader says the RDB ends.
    tail: Option<(PathBuf, std::sync::mpsc::Receiver<u64>)>,
    files: Files,
}

/// At startup with `appendonly yes`: reads the manifest, or creates the directory with an empty
/// base and a first incremental file (as Redis 7.0 does when there is none; `dump.rdb` is then
/// not loaded).
///
/// # Errors
/// A manifest that does not parse, a file it lists that is missing, or a directory that cannot
/// be created: the start fails with Redis's message.
pub(crate) fn open_at_startup(config: &Config) -> Result<Startup, String> {
    let dir = dir(config);
    let path = manifest_path(config);
    let name = config.appendfilename.clone();
    let manifest = match std::fs::read(&path) {
        Ok(text) => Manifest::parse(&text).map_err(|(line, e)| match line {
            Some(n) => {
                format!("*** FATAL AOF MANIFEST FILE ERROR *** Reading the manifest file, at line {n}: {e}")
            }
            None => format!("*** FATAL AOF MANIFEST FILE ERROR *** {e}"),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let legacy = Path::new(&config.dir).join(&config.appendfilename);
            if legacy.is_file() {
                migrate(config, &dir, &legacy).map_err(|e| {
                    format!(
                        "Error migrating the old-style AOF file {} into {}: {e}",
                        legacy.display(),
                        dir.display()
                    )
                })?
            } else {
                create_empty(config, &dir)
                    .map_err(|e| format!("Can't open or create append-only dir {}: {e}", dir.display()))?
            }
        }
        Err(e) => {
            return Err(format!(
                "Fatal error: can't open the AOF manifest file {} for reading: {e}",
                path.display()
            ))
        }
    };
    let mut rdb_base = None;
    let mut replay = Vec::new();
    for f in manifest.base.iter().chain(&manifest.incrs) {
        let p = dir.join(&f.name);
        let meta = std::fs::metadata(&p)
            .map_err(|e| format!("Unable to obtain the AOF file {} length. stat: {e}", f.name))?;
        if f.kind == FileType::Base && meta.len() >= 5 && starts_with_redis(&p) {
            rdb_base = Some(p);
        } else if meta.len() > 0 {
            replay.push((p, f.kind == FileType::Base));
        }
    }
    let files = Files::new(dir, name, manifest, false);
    Ok(Startup { rdb_base, replay, tail: None, files })
}

/// Redis 6's single `appendonly.aof` in `dir`: moved into the AOF directory as its base (the
/// manifest first, as Redis 7.0 does, so that a crash in between finds it again).
fn migrate(config: &Config, dir: &Path, legacy: &Path) -> std::io::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    let name = config.appendfilename.clone();
    let manifest = Manifest {
        base: Some(AofFile { name: name.clone(), seq: 1, kind: FileType::Base }),
        ..Manifest::default()
    };
    write_manifest(dir, &name, &manifest)?;
    std::fs::rename(legacy, dir.join(&name))?;
    std::fs::File::open(dir)?.sync_all()?;
    tracing::info!(
        "Successfully migrated an old-style AOF file ({}) into the AOF directory ({}).",
        legacy.display(),
        dir.display()
    );
    Ok(manifest)
}

fn starts_with_redis(path: &Path) -> bool {
    let mut head = [0u8; 5];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head == b"REDIS"
}

/// A new AOF directory: an empty base and the manifest naming it (the first incremental file is
/// opened by the writer).
fn create_empty(config: &Config, dir: &Path) -> std::io::Result<Manifest> {
    std::fs::create_dir_all(dir)?;
    let rdb = config.aof_use_rdb_preamble;
    let name = format!("{}.1.base.{}", config.appendfilename, if rdb { "rdb" } else { "aof" });
    let mut bytes = Vec::new();
    if rdb {
        let ctime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        bytes = crate::storage::rdb::file::header(&[
            ("redis-ver", crate::REDIS_VERSION.as_bytes()),
            ("redis-bits", b"64"),
            ("ctime", ctime.as_bytes()),
            ("used-mem", b"0"),
            ("aof-base", b"1"),
        ]);
        let crc = crate::storage::rdb::crc64::crc64(0, &bytes);
        bytes.extend(crate::storage::rdb::file::trailer(crc, config.rdbchecksum));
    }
    let temp = dir.join(format!("temp-{name}"));
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(&bytes)?;
    file.sync_data()?;
    std::fs::rename(&temp, dir.join(&name))?;
    tracing::info!("Creating AOF base file {name} on server start");
    let manifest =
        Manifest { base: Some(AofFile { name, seq: 1, kind: FileType::Base }), ..Manifest::default() };
    write_manifest(dir, &config.appendfilename, &manifest)?;
    Ok(manifest)
}

/// The batches core 0 replays.
pub(crate) type ReplayReceiver = mpsc::Receiver<Vec<Vec<Bytes>>>;

impl Startup {
    /// When the RDB base may go on with commands (a name not ending in `.rdb`: an old-style
    /// AOF), the channel on which its RDB loader reports where the RDB ends.
    pub(crate) fn tail_end(&mut self) -> Option<std::sync::mpsc::Sender<u64>> {
        let base = self.rdb_base.clone().filter(|p| p.extension().is_none_or(|e| e != "rdb"))?;
        let (end, at) = std::sync::mpsc::channel();
        self.tail = Some((base, at));
        Some(end)
    }

    /// Starts the thread that reads the command files; `None` when there are none. Sets the
    /// loading flag until core 0 has replayed them and turned the journal on.
    pub(crate) fn start(self, global: &Arc<Global>) -> ReplayReceiver {
        global.set_loading(true);
        global.load_progress.aof_pending.store(true, std::sync::atomic::Ordering::Release);
        let (mut sender, receiver) = mpsc::channel::<Vec<Vec<Bytes>>>(4);
        let Startup { replay, tail, mut files, .. } = self;
        let g = global.clone();
        let config = global.config();
        let spawned = std::thread::Builder::new().name("ferrokey-aof-load".into()).spawn(move || {
            let started = Instant::now();
            if let Some((path, at)) = tail {
                // The RDB loader reports where the RDB ends; it drops the channel if it fails.
                let Ok(at) = at.recv() else { return };
                if let Err(e) = read_commands(&config, &path, at, replay.is_empty(), &mut sender) {
                    tracing::error!("{e}");
                    g.fail_startup();
                    return;
                }
            }
            let last = replay.len().saturating_sub(1);
            for (i, (path, base)) in replay.iter().enumerate() {
                let t = Instant::now();
                if let Err(e) = read_commands(&config, path, 0, i == last, &mut sender) {
                    tracing::error!("{e}");
                    g.fail_startup();
                    return;
                }
                let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
                let kind = if *base { "base" } else { "incr" };
                tracing::info!("DB loaded from {kind} file {name}: {:.3} seconds", t.elapsed().as_secs_f64());
            }
            if let Err(e) = files.open_last() {
                tracing::error!("Can't open the append-only file: {e}");
                g.fail_startup();
                return;
            }
            {
                let mut state = g.persistence();
                let size = files.earlier + files.file.as_ref().map_or(0, |f| f.1);
                state.aof.current_size = size;
                state.aof.base_size = files
                    .manifest
                    .base
                    .as_ref()
                    .and_then(|b| std::fs::metadata(files.dir.join(&b.name)).ok())
                    .map_or(0, |m| m.len());
            }
            writer(&g).send(&g, Op::Open(Box::new(files)));
            if !replay.is_empty() {
                tracing::info!(
                    "DB loaded from append only file: {:.3} seconds",
                    started.elapsed().as_secs_f64()
                );
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start the AOF loader: {e}");
            global.fail_startup();
        }
        receiver
    }
}

/// Reads `path`'s commands into batches for core 0; handles a cut tail as configured.
/// The file's commands start at offset `start` (after an RDB preamble, or 0).
fn read_commands(
    config: &Config,
    path: &Path,
    start: u64,
    last: bool,
    sender: &mut mpsc::Sender<Vec<Vec<Bytes>>>,
) -> Result<(), String> {
    let name = path.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("Can't open the append-only file {name}: {e}"))?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))
        .map_err(|e| format!("Unrecoverable error reading the append only file {name}: {e}"))?;
    let mut reader =
        CommandReader::new(BufReader::with_capacity(1 << 20, file), start, config.proto_max_bulk_len.0);
    let registry = crate::engine::command::registry();
    let mut batch = Vec::with_capacity(REPLAY_BATCH);
    let mut multi_at: Option<u64> = None;
    let mut send = |batch: Vec<Vec<Bytes>>| {
        futures::executor::block_on(futures::SinkExt::send(sender, batch))
            .map_err(|_| "the server stopped while loading".to_owned())
    };
    let cut_at = loop {
        let before = reader.offset();
        match reader.next_command() {
            Ok(Some(args)) => {
                if registry.resolve(&args).is_err() {
                    return Err(format!(
                        "Unknown command '{}' reading the append only file {name}",
                        String::from_utf8_lossy(&args[0])
                    ));
                }
                if args[0].eq_ignore_ascii_case(b"multi") {
                    multi_at = Some(before);
                } else if args[0].eq_ignore_ascii_case(b"exec") {
                    multi_at = None;
                }
                batch.push(args);
                if batch.len() == REPLAY_BATCH {
                    send(std::mem::replace(&mut batch, Vec::with_capacity(REPLAY_BATCH)))?;
                }
            }
            Ok(None) => match multi_at {
                None => break None,
                Some(at) => {
                    tracing::warn!("Revert incomplete MULTI/EXEC transaction in AOF file {name}");
                    break Some(at);
                }
            },
            Err(ReadError::Truncated { valid_up_to }) => {
                tracing::warn!("!!! Warning: short read while loading the AOF file {name}!!!");
                // Inside a transaction, back to before its MULTI: none of it was applied.
                break Some(multi_at.unwrap_or(valid_up_to));
            }
            Err(ReadError::Format { offset }) => {
                return Err(format!(
                    "Bad file format reading the append only file {name} (offset {offset}): make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>"
                ));
            }
            Err(ReadError::Io(e)) => {
                return Err(format!("Unrecoverable error reading the append only file {name}: {e}"));
            }
        }
    };
    if !batch.is_empty() {
        send(batch)?;
    }
    let Some(valid) = cut_at else { return Ok(()) };
    if !config.aof_load_truncated {
        return Err(format!(
            "Unexpected end of file reading the append only file {name}. You can: 1) Make a backup of your AOF file, then use ./redis-check-aof --fix <filename.manifest>. 2) Alternatively you can set the 'aof-load-truncated' configuration option to yes and restart the server."
        ));
    }
    tracing::warn!("!!! Truncating the AOF {name} at offset {valid} !!!");
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(valid).and_then(|()| f.sync_all()))
        .map_err(|e| format!("Error truncating the AOF file {name}: {e}"))?;
    if !last {
        return Err("Fatal error: the truncated file is not the last file".into());
    }
    tracing::warn!("AOF {name} loaded anyway because aof-load-truncated is enabled");
    Ok(())
}

/// Core 0 at startup with `appendonly yes`: waits for the RDB base to be in, replays the
/// commands, then turns the journal on (every gate held) and ends loading.
pub(crate) async fn replay(core: Rc<Core>, mut batches: ReplayReceiver) {
    let global = core.global.clone();
    while !global.load_progress.rdb_done(global.cores.len()) {
        if global.startup_failed() || global.shutting_down() {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    let client = Rc::new(crate::engine::client::Client::internal(core.router.local().0));
    let mut session = Session::new(core.clone(), client);
    session.replaying = true;
    session.authed = true;
    session.superuser = true;
    let mut out = BytesMut::new();
    while let Some(mut batch) = batches.next().await {
        crate::facade::Service::call(&mut session, &mut batch, &mut out).await;
        out.clear();
    }
    drop(session);
    if global.startup_failed() {
        return;
    }
    if let Err(e) = set_journaling(&core, true).await {
        tracing::error!("Fatal error turning the AOF on: {e}. Exiting.");
        global.fail_startup();
        return;
    }
    global.load_progress.aof_pending.store(false, std::sync::atomic::Ordering::Release);
    global.load_check();
}

/// Turns effect logging on or off on every shard at one cut.
async fn set_journaling(core: &Rc<Core>, on: bool) -> Result<(), SaveError> {
    let shards = (0..core.router.shards()).map(ShardId).collect();
    let tx = core.router.begin(shards).await.map_err(|_| SaveError::Unavailable)?;
    let done = journaling_at(core, &tx, on).await;
    tx.release().await;
    done
}

/// Switches the AOF's logging in the journal, and logging on every shard `tx` holds (every
/// one) as the journal's consumers need it (replication keeps it on).
async fn journaling_at(core: &Core, tx: &Tx, on: bool) -> Result<(), SaveError> {
    let active = core.global.journal.set_aof(on, core.config().appendfsync == AppendFsync::Always);
    for &s in tx.shards() {
        tx.run(s, move |sh: &mut Shard| sh.set_journaling(active))
            .await
            .map_err(|_| SaveError::Unavailable)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rewriting, turning on and off

/// What a rewrite request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Started {
    /// It runs.
    Now,
    /// A background save runs: it starts once that ends.
    Scheduled,
}

/// BGREWRITEAOF (and automatic rewrites): a new base from a snapshot, without fork.
///
/// # Errors
/// A rewrite already running, or an unreachable shard.
pub(crate) async fn rewrite(core: &Rc<Core>) -> Result<Started, SaveError> {
    start_rewrite(core, false).await
}

async fn start_rewrite(core: &Rc<Core>, turning_on: bool) -> Result<Started, SaveError> {
    if core.global.persistence().aof.rewriting {
        return Err(SaveError::RewriteInProgress);
    }
    let claim = match snapshot::claim(&core.global, SaveKind::Rewrite, OnRunning::Refuse) {
        Ok(c) => c,
        Err(SaveError::InProgress) => {
            core.global.persistence().aof.rewrite_scheduled = true;
            return Ok(Started::Scheduled);
        }
        Err(e) => return Err(e),
    };
    let config = core.config();
    let form = if config.aof_use_rdb_preamble { Form::Rdb { aof_base: true } } else { Form::Commands };
    {
        let mut state = core.global.persistence();
        state.aof.rewriting = true;
        state.aof.rewrite_scheduled = false;
        state.aof.rewrite_started =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    }
    let aof_dir = dir(&config);
    // Turning on, or rewriting with the AOF off (Redis then only writes the base): the writer
    // gets the directory as it is.
    if turning_on || !core.global.journal.aof_on() {
        let manifest = match std::fs::read(manifest_path(&config)) {
            Ok(text) => Manifest::parse(&text).unwrap_or_default(),
            Err(_) => Manifest::default(),
        };
        if let Err(e) = std::fs::create_dir_all(&aof_dir) {
            snapshot::release_claim(&core.global, &claim);
            core.global.persistence().aof.rewriting = false;
            return Err(SaveError::Io { path: aof_dir, source: e });
        }
        let files = Files::new(aof_dir.clone(), config.appendfilename.clone(), manifest, turning_on);
        writer(&core.global).send(&core.global, Op::Open(Box::new(files)));
    }
    let id = claim.id;
    let at_cut = async |tx: &Tx| {
        if turning_on {
            let _ = journaling_at(core, tx, true).await;
        }
        tx.mark(Marker::Rotate { id });
    };
    let cut = match snapshot::cut_everywhere(core, id, form == Form::Commands, at_cut).await {
        Ok(cut) => cut,
        Err(e) => {
            snapshot::abort_everywhere(core, claim.id).await;
            snapshot::release_claim(&core.global, &claim);
            writer(&core.global).send(&core.global, Op::Abort { id: claim.id });
            return Err(e);
        }
    };
    tracing::info!("Background append only file rewriting started (id {})", claim.id);
    let core = core.clone();
    glommio::spawn_local(async move {
        let output = Output {
            temp: aof_dir.join(format!("temp-rewriteaof-bg-{}-{}.aof", std::process::id(), claim.id)),
            target: None,
            dir: aof_dir,
            form,
            stream: None,
        };
        let started = Instant::now();
        let result = snapshot::write(&core, None, &claim, snapshot::BGSAVE_PIECE, &cut, &output).await;
        match result {
            Ok(_) => writer(&core.global).send(
                &core.global,
                Op::Commit { id: claim.id, temp: output.temp, rdb: form != Form::Commands, started },
            ),
            Err(e) => {
                if !claim.cancelled() {
                    snapshot::abort_everywhere(&core, claim.id).await;
                }
                tracing::warn!("Background AOF rewrite terminated with error: {e}");
                writer(&core.global).send(&core.global, Op::Abort { id: claim.id });
            }
        }
        snapshot::release_claim(&core.global, &claim);
    })
    .detach();
    Ok(Started::Now)
}

/// CONFIG SET appendonly changed: turning on starts the rewrite that makes the base (the
/// journal starts at its cut); turning off stops logging and closes the file.
pub(crate) async fn set_appendonly(core: &Rc<Core>, on: bool) -> Result<(), String> {
    let active = core.global.journal.aof_on();
    if on == active {
        return Ok(());
    }
    if on {
        match start_rewrite(core, true).await {
            Ok(Started::Now) => Ok(()),
            Ok(Started::Scheduled) => {
                tracing::info!(
                    "AOF was enabled but there is already another background operation. An AOF background was scheduled to start when possible."
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!("{e}");
                Err("Unable to turn on AOF. Check server logs.".into())
            }
        }
    } else {
        set_journaling(core, false).await.map_err(|e| e.to_string())?;
        let (done, wait) = std::sync::mpsc::channel();
        writer(&core.global).send(&core.global, Op::Close { done: Some(done) });
        let _ = glommio::executor().spawn_blocking(move || wait.recv_timeout(Duration::from_secs(5))).await;
        Ok(())
    }
}

/// Once a second on core 0: a scheduled rewrite whose save ended, or an automatic one when the
/// AOF has grown by `auto-aof-rewrite-percentage` past `auto-aof-rewrite-min-size`.
pub(crate) async fn tick(core: &Rc<Core>) {
    let config = core.config();
    if core.global.loading() {
        return;
    }
    let active = core.global.journal.aof_on();
    if !config.appendonly && active {
        // Turned off inside EXEC.
        if let Err(e) = set_appendonly(core, false).await {
            tracing::warn!("Can't turn the append only file off: {e}");
        }
        return;
    }
    let (due, turning_on) = {
        let state = core.global.persistence();
        if state.running.is_some() || state.aof.rewriting {
            return;
        }
        if config.appendonly && !active {
            // Turned on inside EXEC, or a turning on whose rewrite failed: (again) now.
            (true, true)
        } else if state.aof.rewrite_scheduled {
            (true, config.appendonly && !active)
        } else if active
            && config.auto_aof_rewrite_percentage > 0
            && state.aof.current_size > config.auto_aof_rewrite_min_size.0
        {
            let base = state.aof.base_size.max(1);
            let growth = (state.aof.current_size * 100 / base).saturating_sub(100);
            if growth >= config.auto_aof_rewrite_percentage {
                tracing::info!("Starting automatic rewriting of AOF on {growth}% growth");
                (true, false)
            } else {
                (false, false)
            }
        } else {
            (false, false)
        }
    };
    if due {
        if let Err(e) = start_rewrite(core, turning_on).await {
            tracing::warn!("Can't rewrite the append only file in background: {e}");
        }
    }
}

/// At exit: writes and fsyncs what the journal holds, and closes the file.
pub(crate) fn shutdown(global: &Arc<Global>) {
    if let Some(w) = WRITER.get() {
        let (done, wait) = std::sync::mpsc::channel();
        w.send(global, Op::Close { done: Some(done) });
        let _ = wait.recv_timeout(Duration::from_secs(5));
    }
}
