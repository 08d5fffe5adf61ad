//! Lua scripts (EVAL and its family), as Redis 7.0 runs them, on a shard-per-core server.
//!
//! - `store.rs`: every script body the server knows, by SHA1, shared by the cores; each core
//!   compiles what it runs into its own interpreter (`lua.rs`: the sandbox, the `redis`
//!   library, the conversions between Lua values and replies; `stack.rs`: a one-shard run's
//!   hot path, on Lua's C API; `current.rs`: the run under way on the core).
//! - `run.rs`: where a script runs. A script known to touch only the keys it declares (KEYS),
//!   all on one shard, runs on that shard's core in one hop, every `redis.call` a direct call
//!   on the shard: no hop per call, and nothing else runs on that shard meanwhile. Any other
//!   script runs on the caller's core holding every shard's gate (as a transaction): each
//!   `redis.call` goes where the command's keys are, so keys it did not declare work, and
//!   atomically, as in Redis. A script's first run is of the second kind and shows which kind
//!   it is (`Reach`). A one-shard run that meets a key it did not declare before it has
//!   written anything is dropped and run again holding every shard, and the script is marked;
//!   one that has already written continues when the key is on its shard and gets an error
//!   otherwise, as a Redis script whose command failed midway (what it wrote stays).
//!   `lua-strict-keys yes` refuses every undeclared key instead, as Dragonfly does.
//! - `turn.rs`: the sessions of one core take turns at every shard's gate, handing the gates
//!   on, still held, from one script-running session to the next.

pub(crate) mod busy;
pub(crate) mod current;
pub(crate) mod functions;
mod libs;
mod lua;
mod raise;
pub(crate) mod run;
mod stack;
pub(crate) mod store;
pub(crate) mod turn;

pub(crate) use store::{sha1hex, Source, Store};

/// Compiles `source` on this core, to report its syntax error to EVAL or SCRIPT LOAD.
///
/// # Errors
/// Redis's compile error.
pub(crate) fn compile_check(source: &Source) -> Result<(), crate::cmd::error::CmdError> {
    lua::with(|interp| interp.function(source).map(drop))?
}

/// Drops what this core compiled (SCRIPT FLUSH reaches every core).
pub(crate) fn flush_here() {
    let _ = lua::with(lua::Interp::flush);
}

/// The bytes this core's interpreter holds (0 before its first script).
#[must_use]
pub(crate) fn memory_here() -> usize {
    lua::memory_here()
}

/// A library from its code (shebang included), checked and loaded on this thread's interpreter
/// to learn its functions: FUNCTION LOAD and RESTORE, and a snapshot's or an AOF's libraries.
///
/// # Errors
/// Redis's texts for metadata, compile and registration errors.
pub(crate) fn compile_library(
    code: &bytes::Bytes,
) -> Result<functions::Library, crate::cmd::error::CmdError> {
    use crate::cmd::error::CmdError;
    let (engine, name, code_at) = functions::metadata(code)?;
    if !functions::valid_name(&name) {
        return Err(CmdError::msg(
            "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long",
        ));
    }
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(CmdError::text(format!("ERR Engine '{engine}' not found")));
    }
    let registered = lua::with(|interp| interp.load_library(&code[code_at..]))??;
    if registered.is_empty() {
        return Err(CmdError::msg("ERR No functions registered"));
    }
    let functions = registered
        .into_iter()
        .map(|r| {
            let function = functions::Function::new(r.name.clone(), r.description, r.flags, &code[code_at..]);
            (r.name, std::sync::Arc::new(function))
        })
        .collect();
    Ok(functions::Library { name, code: code.clone(), functions })
}
