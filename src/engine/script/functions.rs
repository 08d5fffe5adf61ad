//! Redis 7 functions: libraries loaded by FUNCTION LOAD, kept for the process with their code
//! and what each registered, run by FCALL. Every core's interpreter loads the libraries again
//! from their code when it first runs a function after a change (a generation says when).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;

use crate::cmd::error::CmdError;
use crate::engine::script::store::{Flags, Reach};

/// A function a library registered.
#[derive(Debug)]
pub(crate) struct Function {
    /// Its name.
    pub(crate) name: String,
    /// Its description, if it gave one.
    pub(crate) description: Option<String>,
    /// Its flags (a function is always in Redis's shebang mode).
    pub(crate) flags: Flags,
    /// What its runs showed of the keys it reaches.
    reach: AtomicU8,
}

impl Function {
    /// A function named `name`, of a library whose code is `code`.
    #[must_use]
    pub(crate) fn new(name: String, description: Option<String>, flags: Flags, code: &[u8]) -> Function {
        Function { name, description, flags, reach: AtomicU8::new(Reach::first(code) as u8) }
    }

    /// What its runs showed of the keys it reaches.
    #[must_use]
    pub(crate) fn reach(&self) -> Reach {
        Reach::from_u8(self.reach.load(Ordering::Relaxed))
    }

    /// Remembers what a run showed.
    pub(crate) fn note(&self, reach: Reach) {
        let _ = self.reach.fetch_max(reach as u8, Ordering::Relaxed);
    }
}

/// A library: its code (shebang included) and its functions.
#[derive(Debug)]
pub(crate) struct Library {
    /// Its name.
    pub(crate) name: String,
    /// Its code as loaded.
    pub(crate) code: Bytes,
    /// Its functions, by name.
    pub(crate) functions: BTreeMap<String, Arc<Function>>,
}

/// A library's shebang (`#!lua name=mylib`): its engine, its name, and where its code starts.
///
/// # Errors
/// Redis's texts for metadata it refuses.
pub(crate) fn metadata(code: &[u8]) -> Result<(String, String, usize), CmdError> {
    if !code.starts_with(b"#!") {
        return Err(CmdError::msg("ERR Missing library metadata"));
    }
    let Some(end) = code.iter().position(|&c| c == b'\n') else {
        return Err(CmdError::msg("ERR Invalid library metadata"));
    };
    let parts = crate::splitargs::split(&code[..end]).unwrap_or_default();
    let Some(engine) = parts.first() else { return Err(CmdError::msg("ERR Invalid library metadata")) };
    let engine = String::from_utf8_lossy(engine.get(2..).unwrap_or_default()).into_owned();
    let mut name = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(CmdError::msg(
                    "ERR Invalid metadata value, name argument was given multiple times",
                ));
            }
            name = Some(String::from_utf8_lossy(&part[5..]).into_owned());
            continue;
        }
        return Err(CmdError::text(format!(
            "ERR Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        )));
    }
    let name = name.ok_or(CmdError::msg("ERR Library name was not given"))?;
    Ok((engine, name, end))
}

/// Whether `name` is a valid library or function name: letters, digits and `_`, at least one.
#[must_use]
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// FUNCTION DUMP's payload: each library's code after RDB's function opcode, framed as DUMP
/// frames a value.
#[must_use]
pub(crate) fn dump(libraries: &[Arc<Library>]) -> Vec<u8> {
    let mut body = Vec::new();
    for library in libraries {
        crate::storage::rdb::file::function(&mut body, &library.code, true);
    }
    crate::storage::rdb::framed(body)
}

/// The libraries' code in a FUNCTION DUMP payload.
///
/// # Errors
/// Redis's texts for a payload it refuses.
pub(crate) fn undump(payload: &[u8]) -> Result<Vec<Bytes>, CmdError> {
    let body = crate::storage::rdb::unframed(payload)
        .map_err(|_| CmdError::msg("ERR DUMP payload version or checksum are wrong"))?;
    let mut reader = crate::storage::rdb::Reader::new(body);
    let mut codes = Vec::new();
    while !reader.at_end() {
        match reader.byte() {
            Ok(crate::storage::rdb::file::opcode::FUNCTION2) => {}
            Ok(_) => return Err(CmdError::msg("ERR given type is not a function")),
            Err(_) => return Err(CmdError::msg("ERR DUMP payload version or checksum are wrong")),
        }
        codes.push(reader.string().map_err(|_| CmdError::msg("ERR function payload is invalid"))?);
    }
    Ok(codes)
}

/// How FUNCTION RESTORE treats the libraries there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    /// Delete them all first.
    Flush,
    /// Keep them; a library of the same name is an error.
    Append,
    /// Keep them; a library of the same name is replaced.
    Replace,
}

/// Every library, and every function by name.
#[derive(Default)]
pub(crate) struct Functions {
    libraries: RwLock<BTreeMap<String, Arc<Library>>>,
    /// Bumped by every change: a core loads the libraries again when it sees a new one.
    generation: AtomicU64,
}

impl Functions {
    /// The process's functions.
    #[must_use]
    pub(crate) fn get() -> &'static Functions {
        static FUNCTIONS: OnceLock<Functions> = OnceLock::new();
        FUNCTIONS.get_or_init(Functions::default)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<Library>>> {
        self.libraries.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<Library>>> {
        self.libraries.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The function named `name`.
    #[must_use]
    pub(crate) fn function(&self, name: &[u8]) -> Option<Arc<Function>> {
        let name = std::str::from_utf8(name).ok()?;
        self.read().values().find_map(|lib| lib.functions.get(name).cloned())
    }

    /// Every library, by name.
    #[must_use]
    pub(crate) fn libraries(&self) -> Vec<Arc<Library>> {
        self.read().values().cloned().collect()
    }

    /// Whether a library named `name` exists.
    #[must_use]
    pub(crate) fn has(&self, name: &str) -> bool {
        self.read().contains_key(name)
    }

    /// Adds `library` (replacing the one of its name when `replace`).
    ///
    /// # Errors
    /// A function name another library has, as Redis words it.
    pub(crate) fn add(&self, library: Library) -> Result<(), CmdError> {
        let mut libraries = self.write();
        for (name, other) in libraries.iter() {
            if *name == library.name {
                continue;
            }
            if let Some(f) = library.functions.keys().find(|f| other.functions.contains_key(*f)) {
                return Err(CmdError::text(format!("ERR Function {f} already exists")));
            }
        }
        libraries.insert(library.name.clone(), Arc::new(library));
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Adds the restored `restored` by `policy`, all or none.
    ///
    /// # Errors
    /// A library or function name that collides, as Redis words it.
    pub(crate) fn restore(&self, restored: Vec<Library>, policy: Policy) -> Result<(), CmdError> {
        let mut libraries = self.write();
        let mut next = if policy == Policy::Flush { BTreeMap::new() } else { libraries.clone() };
        for library in restored {
            if policy == Policy::Append && next.contains_key(&library.name) {
                return Err(CmdError::text(format!("ERR Library {} already exists", library.name)));
            }
            next.remove(&library.name);
            if let Some(f) = next
                .values()
                .find_map(|other| library.functions.keys().find(|f| other.functions.contains_key(*f)))
            {
                return Err(CmdError::text(format!("ERR Function {f} already exists")));
            }
            next.insert(library.name.clone(), Arc::new(library));
        }
        *libraries = next;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Removes the library named `name`; whether it was there.
    pub(crate) fn delete(&self, name: &str) -> bool {
        let removed = self.write().remove(name).is_some();
        if removed {
            self.generation.fetch_add(1, Ordering::Release);
        }
        removed
    }

    /// Removes every library.
    pub(crate) fn flush(&self) {
        self.write().clear();
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The generation (see [`Functions::add`]).
    #[must_use]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}
