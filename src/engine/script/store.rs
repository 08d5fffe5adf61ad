//! The scripts the server knows, by SHA1: loaded by EVAL and SCRIPT LOAD on any core, run by
//! EVALSHA on any core, emptied by SCRIPT FLUSH. One store for the process: a script loaded on
//! one core is known to every core before the reply leaves (each compiles it when it first runs
//! it, from the body kept here).

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use ahash::AHashMap;
use bytes::Bytes;
use sha1::Digest as _;

use crate::cmd::error::CmdError;

/// A script's SHA1, as the 40 lowercase hex digits Redis names it by.
pub(crate) type Sha = [u8; 40];

/// The SHA1 of `body` in lowercase hex (`redis.sha1hex`, SCRIPT LOAD's reply).
#[must_use]
pub(crate) fn sha1hex(body: &[u8]) -> Sha {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = sha1::Sha1::digest(body);
    let mut out = [0u8; 40];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 15)];
    }
    out
}

/// What a script's shebang line (`#!lua flags=no-writes,allow-oom`) declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Flags {
    /// No shebang: Redis's compatibility mode for scripts written before 7.0.
    pub(crate) compat: bool,
    /// `no-writes`: it may not write (and may run on a read-only replica).
    pub(crate) no_writes: bool,
    /// `allow-oom`: it may run, and write, over `maxmemory`.
    pub(crate) allow_oom: bool,
    /// `allow-stale`: it may run on a stale replica.
    pub(crate) allow_stale: bool,
    /// `no-cluster`: it refuses to run in cluster mode.
    pub(crate) no_cluster: bool,
    /// `allow-cross-slot-keys`: it may touch keys of several slots.
    pub(crate) allow_cross_slot: bool,
}

impl Flags {
    /// Both sets of flags.
    #[must_use]
    pub(crate) fn union(self, other: Flags) -> Flags {
        Flags {
            compat: self.compat && other.compat,
            no_writes: self.no_writes || other.no_writes,
            allow_oom: self.allow_oom || other.allow_oom,
            allow_stale: self.allow_stale || other.allow_stale,
            no_cluster: self.no_cluster || other.no_cluster,
            allow_cross_slot: self.allow_cross_slot || other.allow_cross_slot,
        }
    }

    /// The flags' names, as FUNCTION LIST shows them.
    #[must_use]
    pub(crate) fn names(self) -> Vec<&'static str> {
        [
            (self.no_writes, "no-writes"),
            (self.allow_oom, "allow-oom"),
            (self.allow_stale, "allow-stale"),
            (self.no_cluster, "no-cluster"),
            (self.allow_cross_slot, "allow-cross-slot-keys"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// The flags of `body`'s shebang, and how many bytes the shebang line takes (the code
    /// compiled starts after it, its newline kept so that line numbers stay).
    ///
    /// # Errors
    /// Redis's texts for a shebang it refuses.
    pub(crate) fn of(body: &[u8]) -> Result<(Flags, usize), CmdError> {
        if !body.starts_with(b"#!") {
            return Ok((Flags { compat: true, ..Flags::default() }, 0));
        }
        let Some(end) = body.iter().position(|&c| c == b'\n') else {
            return Err(CmdError::msg("ERR Invalid script shebang"));
        };
        let parts = crate::splitargs::split(&body[..end]).unwrap_or_default();
        let Some(engine) = parts.first() else {
            return Err(CmdError::msg("ERR Invalid engine in script shebang"));
        };
        if engine.as_slice() != b"#!lua" {
            return Err(CmdError::text(format!(
                "ERR Unexpected engine in script shebang: {}",
                String::from_utf8_lossy(engine)
            )));
        }
        let mut flags = Flags::default();
        for part in &parts[1..] {
            let Some(list) = part.strip_prefix(b"flags=") else {
                return Err(CmdError::text(format!(
                    "ERR Unknown lua shebang option: {}",
                    String::from_utf8_lossy(part)
                )));
            };
            for name in list.split(|&c| c == b',') {
                match name {
                    b"no-writes" => flags.no_writes = true,
                    b"allow-oom" => flags.allow_oom = true,
                    b"allow-stale" => flags.allow_stale = true,
                    b"no-cluster" => flags.no_cluster = true,
                    b"allow-cross-slot-keys" => flags.allow_cross_slot = true,
                    other => {
                        return Err(CmdError::text(format!(
                            "ERR Unexpected flag in script shebang: {}",
                            String::from_utf8_lossy(other)
                        )))
                    }
                }
            }
        }
        Ok((flags, end))
    }
}

/// What a script's runs showed of the keys it reaches: where it may run. Each is wider than
/// the one before: a script's stays the widest its runs showed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Reach {
    /// Not run yet: its first run holds every shard, and watches.
    #[default]
    Unknown = 0,
    /// Its runs touched only keys it declared: it runs on their shard.
    Declared = 1,
    /// A run touched a key it did not declare: it runs holding every shard.
    Undeclared = 2,
    /// A run called a command that waits for more than other cores (MIGRATE): it runs holding
    /// every shard, its `redis.call`s yielding to its task.
    Waits = 3,
}

impl Reach {
    /// Where the first run of `code` goes: holding every shard with its `redis.call`s
    /// yielding ([`Reach::Waits`]) when the code names a command that waits (a run that calls
    /// one otherwise finds out by starting again, which it cannot once it wrote); else not
    /// known yet.
    #[must_use]
    pub(crate) fn first(code: &[u8]) -> Reach {
        let mentions = |name: &[u8]| code.windows(name.len()).any(|w| w.eq_ignore_ascii_case(name));
        if crate::engine::spec::WAITING.iter().any(|name| mentions(name.as_bytes())) {
            Reach::Waits
        } else {
            Reach::Unknown
        }
    }

    /// The reach stored as `n`.
    #[must_use]
    pub(crate) fn from_u8(n: u8) -> Reach {
        match n {
            1 => Reach::Declared,
            2 => Reach::Undeclared,
            3 => Reach::Waits,
            _ => Reach::Unknown,
        }
    }
}

/// A script the server knows.
#[derive(Debug)]
pub(crate) struct Source {
    /// Its SHA1.
    pub(crate) sha: Sha,
    /// Its body, shebang included.
    pub(crate) body: Bytes,
    /// What its shebang declares.
    pub(crate) flags: Flags,
    /// Where its code starts (after the shebang line).
    pub(crate) code_at: usize,
    /// What its runs showed of the keys it reaches (see [`Reach`]).
    reach: AtomicU8,
}

impl Source {
    /// The script `body`, its shebang parsed.
    ///
    /// # Errors
    /// The shebang's error.
    pub(crate) fn new(body: Bytes) -> Result<Source, CmdError> {
        let (flags, code_at) = Flags::of(&body)?;
        let reach = AtomicU8::new(Reach::first(&body[code_at..]) as u8);
        Ok(Source { sha: sha1hex(&body), body, flags, code_at, reach })
    }

    /// Its code, without the shebang line.
    #[must_use]
    pub(crate) fn code(&self) -> &[u8] {
        &self.body[self.code_at..]
    }

    /// What its runs showed of the keys it reaches.
    #[must_use]
    pub(crate) fn reach(&self) -> Reach {
        Reach::from_u8(self.reach.load(Ordering::Relaxed))
    }

    /// Remembers what a run showed: a script seen reaching an undeclared key stays so marked.
    pub(crate) fn note(&self, reach: Reach) {
        let _ = self.reach.fetch_max(reach as u8, Ordering::Relaxed);
    }
}

/// Every script the server knows, by SHA1.
#[derive(Default)]
pub(crate) struct Store {
    scripts: RwLock<AHashMap<Sha, Arc<Source>>>,
    /// The bytes of their bodies (INFO's `used_memory_scripts_eval`).
    bytes: AtomicU64,
    /// Bumped by each flush: a core drops its compiled scripts when it sees a new one.
    generation: AtomicU64,
}

impl Store {
    /// The process's store.
    #[must_use]
    pub(crate) fn get() -> &'static Store {
        static STORE: OnceLock<Store> = OnceLock::new();
        STORE.get_or_init(Store::default)
    }

    /// The script named `sha` (any letter case), if known.
    #[must_use]
    pub(crate) fn find(&self, sha: &[u8]) -> Option<Arc<Source>> {
        let sha: Sha = sha.try_into().ok()?;
        let sha = sha.map(|c| c.to_ascii_lowercase());
        self.scripts.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&sha).cloned()
    }

    /// Adds `source`, or returns the one known by its SHA1 already.
    pub(crate) fn add(&self, source: Source) -> Arc<Source> {
        let mut scripts = self.scripts.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        scripts
            .entry(source.sha)
            .or_insert_with(|| {
                self.bytes.fetch_add(source.body.len() as u64, Ordering::Relaxed);
                Arc::new(source)
            })
            .clone()
    }

    /// Forgets every script (SCRIPT FLUSH).
    pub(crate) fn flush(&self) {
        let mut scripts = self.scripts.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        scripts.clear();
        self.bytes.store(0, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// How many scripts it holds.
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.scripts.read().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// The bytes of their bodies.
    #[must_use]
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The flush generation (see [`Store::flush`]).
    #[must_use]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_is_redis_s() {
        // SCRIPT LOAD "return 1" in redis-server 7.0.
        assert_eq!(&sha1hex(b"return 1"), b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db");
    }

    #[test]
    fn shebangs_parse_as_redis_parses_them() {
        assert_eq!(Flags::of(b"return 1").unwrap(), (Flags { compat: true, ..Flags::default() }, 0));
        let (f, at) = Flags::of(b"#!lua flags=no-writes,allow-oom\nreturn 1").unwrap();
        assert!(f.no_writes && f.allow_oom && !f.compat && !f.allow_stale);
        assert_eq!(at, 31);
        assert_eq!(Flags::of(b"#!lua\nreturn 1").unwrap(), (Flags::default(), 5));
        let err = |b: &[u8]| Flags::of(b).unwrap_err().to_string();
        assert_eq!(err(b"#!lua"), "ERR Invalid script shebang");
        assert_eq!(err(b"#!python\n"), "ERR Unexpected engine in script shebang: #!python");
        assert_eq!(err(b"#!lua flags=bad\n"), "ERR Unexpected flag in script shebang: bad");
        assert_eq!(err(b"#!lua x=y\n"), "ERR Unknown lua shebang option: x=y");
    }
}
