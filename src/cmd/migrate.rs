//! MIGRATE: keys move to another server (the cluster's resharding moves slots with it). The
//! keys' shards are held for the whole move, as Redis blocks while it migrates: each key is
//! dumped, sent as RESTORE (RESTORE-ASKING in cluster mode) in one pipeline after AUTH and
//! SELECT, and deleted here once the target acknowledged it (unless COPY). The link is TLS
//! with `tls-cluster`, as Redis's.

use std::time::Duration;

use bytes::Bytes;
use futures::{AsyncReadExt, AsyncWriteExt};

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::session::Session;
use crate::engine::slot::ShardId;
use crate::engine::spec::{acl, flag, key, KeyFlags, KeySpec};
use crate::facade::Reply;

/// The family's commands.
#[rustfmt::skip]
pub(crate) fn commands() -> Vec<Command> {
    let moved = key::RW | key::ACCESS | key::DELETE | key::INCOMPLETE;
    vec![
        Command::session("migrate", -6, |s, a| Box::pin(migrate(s, a)))
            .flags(flag::WRITE)
            .acl(acl::KEYSPACE | acl::DANGEROUS)
            .key(KeySpec::index(3).range(0, 1, 0).flags(key::RW | key::ACCESS | key::DELETE))
            .key(KeySpec::keyword("KEYS", -2).range(-1, 1, 0).flags(moved))
            .getkeys(migrate_keys)
            .tips(&["nondeterministic_output"])
            .docs("generic", "2.6.0", "This command actually executes a DUMP+DEL in the source instance, and a RESTORE in the target instance. See the pages of these commands for time complexity. Also an O(N) data transfer between the two instances is performed.", "Atomically transfer a key from a Redis instance to another one.")
            .history(&[
                ("3.0.0", "Added the `COPY` and `REPLACE` options."),
                ("3.0.6", "Added the `KEYS` option."),
                ("4.0.7", "Added the `AUTH` option."),
                ("6.0.0", "Added the `AUTH2` option."),
            ]),
    ]
}

/// MIGRATE's keys (Redis's `migrateGetKeys`): the key argument, or those after KEYS.
fn migrate_keys(a: &[Bytes], keys: &mut Vec<(usize, KeyFlags)>) {
    let flags = key::RW | key::ACCESS | key::DELETE | key::INCOMPLETE;
    let mut i = 6;
    while i < a.len() {
        if is(&a[i], "auth2") {
            i += 2;
        } else if is(&a[i], "auth") {
            i += 1;
        } else if is(&a[i], "keys") {
            keys.extend((i + 1..a.len()).map(|p| (p, flags)));
            return;
        }
        i += 1;
    }
    keys.push((3, key::RW | key::ACCESS | key::DELETE));
}

/// MIGRATE's options.
struct Options {
    copy: bool,
    replace: bool,
    auth: Option<(Option<Bytes>, Bytes)>,
    keys: Vec<Bytes>,
}

fn parse(a: &[Bytes]) -> Result<Options, CmdError> {
    let mut o = Options { copy: false, replace: false, auth: None, keys: Vec::new() };
    let mut i = 6;
    while i < a.len() {
        if is(&a[i], "copy") {
            o.copy = true;
        } else if is(&a[i], "replace") {
            o.replace = true;
        } else if is(&a[i], "auth") && i + 1 < a.len() {
            o.auth = Some((None, a[i + 1].clone()));
            i += 1;
        } else if is(&a[i], "auth2") && i + 2 < a.len() {
            o.auth = Some((Some(a[i + 1].clone()), a[i + 2].clone()));
            i += 2;
        } else if is(&a[i], "keys") {
            if !a[3].is_empty() {
                return Err(CmdError::msg(
                    "ERR When using MIGRATE KEYS option, the key argument must be set to the empty string",
                ));
            }
            o.keys = a[i + 1..].to_vec();
            break;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if o.keys.is_empty() {
        o.keys.push(a[3].clone());
    }
    Ok(o)
}

/// A key to move: its name, shard, serialized value and time to live (ms, 0 for none).
struct Moving {
    key: Bytes,
    shard: ShardId,
    payload: Vec<u8>,
    ttl: u64,
}

/// MIGRATE host port key|"" destination-db timeout [COPY] [REPLACE] [AUTH password | AUTH2
/// username password] [KEYS key ...]
async fn migrate(s: &mut Session, a: &[Bytes]) -> CmdResult {
    let o = parse(a)?;
    let db = args::int(&a[4])?;
    let timeout = args::int(&a[5])?;
    let timeout = Duration::from_millis(if timeout <= 0 { 1000 } else { timeout as u64 });
    let port = u16::try_from(args::int(&a[2])?).map_err(|_| CmdError::OutOfRange)?;
    let host = String::from_utf8_lossy(&a[1]).into_owned();
    let router = s.core.router.clone();
    let mut shards: Vec<ShardId> = o.keys.iter().map(|k| router.shard_of(k)).collect();
    shards.sort_unstable();
    shards.dedup();
    let (tx, own) = match &s.exec_tx {
        Some(tx) => (tx.clone(), false),
        None => (std::rc::Rc::new(router.begin(shards).await.map_err(|_| CmdError::Unavailable)?), true),
    };
    let here = s.db;
    let result = async {
        let mut moving = Vec::new();
        for key in &o.keys {
            let shard = router.shard_of(key);
            let k = key.clone();
            let found = tx
                .on(shard, here, move |c| {
                    let now = c.now;
                    Ok(c.db.read(&k, now).map(|e| {
                        let ttl = e.expires_at().map_or(0, |at| at.saturating_sub(now).max(1));
                        (crate::storage::rdb::dump(&e.value, true), ttl)
                    }))
                })
                .await?;
            if let Some((payload, ttl)) = found {
                moving.push(Moving { key: key.clone(), shard, payload, ttl });
            }
        }
        if moving.is_empty() {
            return Ok(Reply::status("NOKEY"));
        }
        let restore: &[u8] = if s.core.global.cluster.is_some() { b"RESTORE-ASKING" } else { b"RESTORE" };
        let mut restores = Vec::new();
        for m in &moving {
            let ttl = m.ttl.to_string();
            let mut args: Vec<&[u8]> = vec![restore, &m.key, ttl.as_bytes(), &m.payload];
            if o.replace {
                args.push(b"REPLACE");
            }
            crate::storage::aof::command(&mut restores, &args);
        }
        let target = Target { host: host.clone(), port, tls: s.core.with_config(|c| c.tls_cluster) };
        let config = s.core.config();
        // A cached link the target closed meanwhile fails before the first RESTORE's reply:
        // then, once, as Redis, the move is tried again on a new link (not after a timeout:
        // a slow target may still apply the first batch).
        let mut retry = true;
        let (mut link, mut lines, mut first) = loop {
            let cached = if retry { cache::take(&target) } else { None };
            let fresh = cached.is_none();
            let (mut link, selected) = match cached {
                Some(c) => (c.link, c.db),
                None => (
                    crate::engine::cluster::bus::connect(&config, &host, port, target.tls, timeout)
                        .await
                        .map_err(|_| CmdError::msg("IOERR error or timeout connecting to the client"))?,
                    None,
                ),
            };
            let mut out = Vec::new();
            let mut expected = 0;
            if let Some((user, pass)) = &o.auth {
                match user {
                    Some(user) => crate::storage::aof::command(&mut out, &[&b"AUTH"[..], user, pass]),
                    None => crate::storage::aof::command(&mut out, &[&b"AUTH"[..], pass]),
                }
                expected += 1;
            }
            if selected != Some(db) {
                crate::storage::aof::command(&mut out, &[b"SELECT", db.to_string().as_bytes()]);
                expected += 1;
            }
            out.extend_from_slice(&restores);
            let written = glommio::timer::timeout(timeout, async {
                Ok(link.write_all(&out).await.and(link.flush().await))
            })
            .await;
            let mut failure = match written {
                Ok(Ok(())) => None,
                Ok(Err(_)) => Some((Failure::Io, "writing")),
                Err(_) => Some((Failure::Timeout, "writing")),
            };
            let mut lines = Lines { buf: Vec::new() };
            let mut error: Option<String> = None;
            let mut first = None;
            for i in 0..=expected {
                if failure.is_some() {
                    break;
                }
                match lines.next(&mut *link, timeout).await {
                    Ok(line) if i == expected => first = Some(line),
                    Ok(line) => {
                        if let Some(e) = line.strip_prefix('-') {
                            error.get_or_insert_with(|| e.to_owned());
                        }
                    }
                    Err(f) => failure = Some((f, "reading")),
                }
            }
            if let Some((why, doing)) = failure {
                if !fresh && why == Failure::Io && std::mem::take(&mut retry) {
                    continue;
                }
                return Err(CmdError::text(format!("IOERR error or timeout {doing} to target instance")));
            }
            if let Some(e) = error {
                return Err(CmdError::text(format!("ERR Target instance replied with error: {e}")));
            }
            break (link, lines, first);
        };
        let mut error: Option<String> = None;
        for m in moving {
            let line = match first.take() {
                Some(line) => line,
                None => lines
                    .next(&mut *link, timeout)
                    .await
                    .map_err(|_| CmdError::msg("IOERR error or timeout reading to target instance"))?,
            };
            if let Some(e) = line.strip_prefix('-') {
                error.get_or_insert_with(|| e.to_owned());
                continue;
            }
            if !o.copy {
                let key = m.key;
                tx.on(m.shard, here, move |c| {
                    if c.db.remove(&key).is_some() {
                        c.notify(Class::GENERIC, "del", &key);
                        if c.journaling() {
                            c.log(&[b"DEL", &key]);
                        }
                    }
                    Ok(())
                })
                .await?;
            }
        }
        // Every reply was read: the link is in step, and kept for the next MIGRATE (unless the
        // target sent more than it was asked for).
        if lines.buf.is_empty() {
            cache::keep(target, link, db);
        }
        match error {
            Some(e) => Err(CmdError::text(format!("ERR Target instance replied with error: {e}"))),
            None => Ok(Reply::Ok),
        }
    }
    .await;
    if own {
        if let Ok(tx) = std::rc::Rc::try_unwrap(tx) {
            tx.release().await;
        }
    }
    result
}

/// Where MIGRATE sends keys: a cached link serves only the same address and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    host: String,
    port: u16,
    tls: bool,
}

/// Links to MIGRATE targets kept between calls, per core (Redis's `migrate_cached_sockets`):
/// resharding sends thousands of MIGRATEs to one target, each would otherwise pay a connect
/// and, with `tls-cluster`, a TLS handshake. A link is taken out while in use; one idle for
/// [`cache::TTL`] is closed.
mod cache {
    use std::cell::RefCell;
    use std::time::{Duration, Instant};

    use super::Target;
    use crate::engine::cluster::bus::Io;

    /// At most this many links per core (Redis's `MIGRATE_SOCKET_CACHE_ITEMS`).
    const ITEMS: usize = 64;
    /// An idle link is closed after this long (Redis's `MIGRATE_SOCKET_CACHE_TTL`).
    pub(super) const TTL: Duration = Duration::from_secs(10);

    /// A kept link, with the database it last selected.
    pub(super) struct Cached {
        target: Target,
        pub(super) link: Box<dyn Io>,
        pub(super) db: Option<i64>,
        idle_since: Instant,
    }

    thread_local! {
        static LINKS: RefCell<Vec<Cached>> = const { RefCell::new(Vec::new()) };
        static SWEEPING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// How many links this core keeps (INFO's `migrate_cached_sockets`).
    pub(crate) fn len() -> usize {
        LINKS.with_borrow(Vec::len)
    }

    /// The kept link to `target`, taken out of the cache, if one is fresh.
    pub(super) fn take(target: &Target) -> Option<Cached> {
        LINKS.with_borrow_mut(|links| {
            links.retain(|c| c.idle_since.elapsed() < TTL);
            let at = links.iter().position(|c| c.target == *target)?;
            Some(links.swap_remove(at))
        })
    }

    /// Keeps `link` to `target`, which last selected `db`, unless the cache is full (then,
    /// as Redis, the link is closed).
    pub(super) fn keep(target: Target, link: Box<dyn Io>, db: i64) {
        let kept = LINKS.with_borrow_mut(|links| {
            if links.len() >= ITEMS {
                return false;
            }
            links.push(Cached { target, link, db: Some(db), idle_since: Instant::now() });
            true
        });
        if kept && !SWEEPING.replace(true) {
            // One sweeper per core while links are kept: every TTL it closes the idle ones.
            glommio::spawn_local(async {
                loop {
                    glommio::timer::sleep(TTL).await;
                    let left = LINKS.with_borrow_mut(|links| {
                        links.retain(|c| c.idle_since.elapsed() < TTL);
                        links.len()
                    });
                    if left == 0 {
                        SWEEPING.set(false);
                        break;
                    }
                }
            })
            .detach();
        }
    }
}

/// How many links to MIGRATE targets this core keeps (INFO's `migrate_cached_sockets`).
#[must_use]
pub(crate) fn cached_links() -> usize {
    cache::len()
}

/// Why a reply line did not come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The link failed or closed.
    Io,
    /// Nothing within the timeout.
    Timeout,
}

/// Reply lines from the target.
struct Lines {
    buf: Vec<u8>,
}

impl Lines {
    /// The next line (without CRLF), within `timeout`.
    async fn next(
        &mut self,
        link: &mut (dyn futures::AsyncRead + Unpin),
        timeout: Duration,
    ) -> Result<String, Failure> {
        // One deadline per line: a target trickling bytes does not hold the keys longer.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..end + 2);
                return Ok(line);
            }
            if self.buf.len() > 64 * 1024 {
                return Err(Failure::Io);
            }
            let mut chunk = [0u8; 4096];
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let n = match glommio::timer::timeout(left, async { Ok(link.read(&mut chunk).await) }).await {
                Ok(Ok(n)) => n,
                Ok(Err(_)) => return Err(Failure::Io),
                Err(_) => return Err(Failure::Timeout),
            };
            if n == 0 {
                return Err(Failure::Io);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}
