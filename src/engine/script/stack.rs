//! The two hot paths of a script run on a shard, written against Lua's C API instead of
//! mlua's values: KEYS and ARGV, and `redis.call` / `redis.pcall`.
//!
//! mlua hands a Rust function its arguments as values that each hold a slot of its reference
//! thread, and takes its result the same way; every call that may allocate runs as a protected
//! call of its own while a memory cap is set. For a one-key script (two calls) that was more
//! than half of its run (BENCHMARKS.md, "Issue 22"). Here the arguments are read where they
//! lie on the stack and the reply is built where it goes, as Redis's own C does; the run's
//! coroutine is resumed with `lua_resume` and its outcome handed to mlua through the registry.
//!
//! What keeps this sound (each rule held by the code below it):
//! - **No Lua error crosses a Rust value.** A Lua error is a `longjmp`: it must never leave a
//!   frame that owns something with a destructor. Every Lua call that can raise (anything
//!   that allocates) runs inside [`convert`] or mlua's `exec_raw`, protected calls whose frames
//!   hold only references, integers and slice iterators; or is the final `lua_error` of
//!   [`call`], once [`answer`] has returned and dropped everything it owned; or runs while no
//!   memory cap is set ([`prepare`], [`outcome`]), where mlua itself skips protection: an
//!   allocation then fails only when the process is out of memory.
//! - **No panic reaches Lua's C frames.** The handler runs under `catch_unwind`; the code
//!   around it reads and builds with nothing that panics on what a script or a reply holds.
//! - **The stack has room.** A C function starts with `LUA_MINSTACK` (20) free slots; the
//!   protected conversion checks for more at each level of an aggregate.
//! - **Strings read are copied before anything is popped**, while Lua still holds them.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use bytes::Bytes;
use mlua::{ffi, Function, Lua, RegistryKey, Table, Thread, Value};

use crate::cmd::error::CmdError;
use crate::engine::script::current::{handle, run_state};
use crate::facade::Reply;

/// `redis.call` with no arguments (Redis's text; both paths of a run raise it).
pub(super) const NO_ARGUMENTS: &str = "ERR Please specify at least one argument for this redis lib call";
/// `redis.call` with an argument that is neither a string nor a number.
pub(super) const BAD_ARGUMENT: &str = "ERR Lua redis lib command arguments must be strings or integers";

/// How deep a reply converts (a command's reply is a few levels at most).
const MAX_DEPTH: usize = 1000;

/// The registry key of [`convert`] as a Lua function (made once: `lua_cpcall` would make a
/// closure per call): this static's address.
static CONVERT: u8 = 0;

fn convert_key() -> *mut c_void {
    std::ptr::addr_of!(CONVERT).cast_mut().cast()
}

/// `redis.call` and `redis.pcall` of a run on a shard, as C functions.
///
/// # Errors
/// The interpreter is out of memory.
pub(super) fn call_functions(lua: &Lua) -> mlua::Result<(Function, Function)> {
    // SAFETY: a protected call that only stores a C function in the registry; both functions
    // made follow the rules of this module's header.
    unsafe {
        lua.exec_raw::<()>((), |state| {
            ffi::lua_pushlightuserdata(state, convert_key());
            ffi::lua_pushcfunction(state, convert);
            ffi::lua_rawset(state, ffi::LUA_REGISTRYINDEX);
        })?;
        Ok((lua.create_c_function(call_raising)?, lua.create_c_function(call_returning)?))
    }
}

/// Where a run's KEYS and ARGV go.
#[derive(Clone, Copy)]
pub(super) enum Holder {
    /// The scripts' globals (KEYS, ARGV).
    Globals,
    /// The prelude's `prim` (`keys`, `args`, which `prim.invoke` passes to a function).
    Prim,
}

/// KEYS and ARGV (or an FCALL's `prim.keys` and `prim.args`): the two fields of the holder's
/// table get new sequences of these strings.
pub(super) struct Sequences<'a> {
    /// Where they go.
    pub(super) holder: Holder,
    /// The strings of each field.
    pub(super) items: [&'a [Bytes]; 2],
}

/// What the hot path finds in the registry by number, with no string to hash: the holders'
/// tables, their fields' names, and the slot a run's outcome passes through (see [`outcome`]).
pub(super) struct Slots {
    globals: RegistryKey,
    prim: RegistryKey,
    /// KEYS, ARGV, keys, args.
    names: [RegistryKey; 4],
    outcome: RegistryKey,
}

impl Slots {
    /// Registers them.
    ///
    /// # Errors
    /// The interpreter is out of memory.
    pub(super) fn new(lua: &Lua, globals: &Table, prim: &Table) -> mlua::Result<Slots> {
        let name = |n: &str| lua.create_registry_value(lua.create_string(n)?);
        Ok(Slots {
            globals: lua.create_registry_value(globals)?,
            prim: lua.create_registry_value(prim)?,
            names: [name("KEYS")?, name("ARGV")?, name("keys")?, name("args")?],
            outcome: lua.create_registry_value(false)?,
        })
    }

    /// The registry numbers of `holder`'s table and of its two fields' names.
    fn of(&self, holder: Holder) -> (c_int, [c_int; 2]) {
        match holder {
            Holder::Globals => (self.globals.id(), [self.names[0].id(), self.names[1].id()]),
            Holder::Prim => (self.prim.id(), [self.names[2].id(), self.names[3].id()]),
        }
    }
}

/// Sets `sequences`, in one protected call.
///
/// # Errors
/// The interpreter is out of memory.
pub(super) fn set_sequences(lua: &Lua, slots: &Slots, sequences: Sequences<'_>) -> mlua::Result<()> {
    // SAFETY: `exec_raw` runs the closure as a protected call; see `push_sequences`.
    unsafe { lua.exec_raw::<()>((), |state| push_sequences(state, slots, &sequences)) }
}

/// Sets `sequences` raw: each field of the holder's table gets a new sequence of its strings.
/// Runs in a protected call, or unprotected with no memory cap set (as mlua's own fast path
/// does: an allocation then fails only when the process is out of memory); it owns nothing
/// with a destructor (references and integers). It leaves the stack as it found it.
unsafe fn push_sequences(state: *mut ffi::lua_State, slots: &Slots, sequences: &Sequences<'_>) {
    let (table, names) = slots.of(sequences.holder);
    ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, table.into());
    for (name, items) in names.iter().zip(sequences.items.iter()) {
        ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, (*name).into());
        ffi::lua_createtable(state, items.len() as c_int, 0);
        for (i, item) in items.iter().enumerate() {
            ffi::lua_pushlstring(state, item.as_ptr().cast(), item.len());
            ffi::lua_rawseti(state, -2, (i + 1) as _);
        }
        ffi::lua_rawset(state, -3);
    }
    ffi::lua_pop(state, 1);
}

/// A number argument of `redis.call`, as Redis 7.0 writes it (`%.17g`: glibc writes a NaN
/// with its sign, and Lua's `0/0` has it).
pub(super) fn number_argument(n: f64) -> Bytes {
    if n.is_nan() {
        return Bytes::from_static(if n.is_sign_negative() { b"-nan" } else { b"nan" });
    }
    // `%.17g` of an integer below 10^17 is its digits.
    if n.fract() == 0.0 && n.abs() < 1e17 && n != 0.0 {
        Bytes::from((n as i64).to_string())
    } else {
        Bytes::from(crate::num::format_g17(n))
    }
}

unsafe extern "C-unwind" fn call_raising(state: *mut ffi::lua_State) -> c_int {
    call(state, true)
}

unsafe extern "C-unwind" fn call_returning(state: *mut ffi::lua_State) -> c_int {
    call(state, false)
}

/// `redis.call` (`raises`) or `redis.pcall`: runs the command, then returns its reply or
/// raises it (or the conversion's own error). Nothing here owns a destructor.
unsafe fn call(state: *mut ffi::lua_State, raises: bool) -> c_int {
    if answer(state, raises) {
        ffi::lua_error(state);
    }
    1
}

/// Runs the command the arguments name and leaves the value to return or raise on top of the
/// stack: whether to raise it. Everything it owns is dropped when it returns.
unsafe fn answer(state: *mut ffi::lua_State, raises: bool) -> bool {
    // What the command answered is marked as counted in the error statistics (every error in
    // it, as Redis's reply parser marks them); an argument error is not, and outside a run
    // the error is raised even by `redis.pcall`, as Redis's.
    let (reply, counted, always_raised) = match arguments(state) {
        Ok(args) => match catch_unwind(AssertUnwindSafe(|| handle(args))) {
            Ok(Some(reply)) => (reply, true, false),
            Ok(None) => (
                Reply::Error("ERR redis.call/pcall can only be called inside a script invocation".into()),
                false,
                true,
            ),
            Err(_) => {
                tracing::error!("a command called from a script panicked");
                (Reply::Error(CmdError::Internal.to_string().into()), true, false)
            }
        },
        Err(e) => (Reply::from(e), false, false),
    };
    let failed = matches!(reply, Reply::Error(_));
    // Held without its destructor while Lua runs: even `lua_pcall`'s own failure path may
    // raise (an "error in error handling" string it allocates), and then nothing owned here
    // is skipped but this, which only leaks.
    let reply = std::mem::ManuallyDrop::new(reply);
    let pushed = push(state, &reply, counted);
    drop(std::mem::ManuallyDrop::into_inner(reply));
    if !pushed {
        return true;
    }
    failed && (raises || always_raised)
}

/// `redis.call`'s arguments as a command: strings, and numbers as [`number_argument`] writes
/// them, copied from the stack.
unsafe fn arguments(state: *mut ffi::lua_State) -> Result<Vec<Bytes>, CmdError> {
    let n = ffi::lua_gettop(state);
    if n == 0 {
        return Err(CmdError::msg(NO_ARGUMENTS));
    }
    let mut args = Vec::with_capacity(n as usize);
    for i in 1..=n {
        match ffi::lua_type(state, i) {
            ffi::LUA_TSTRING => {
                let mut len = 0;
                // A string's own bytes: lua_tolstring neither converts nor allocates.
                let data = ffi::lua_tolstring(state, i, &mut len);
                args.push(Bytes::copy_from_slice(std::slice::from_raw_parts(data.cast::<u8>(), len)));
            }
            ffi::LUA_TNUMBER => args.push(number_argument(ffi::lua_tonumber(state, i))),
            _ => return Err(CmdError::msg(BAD_ARGUMENT)),
        }
    }
    Ok(args)
}

/// What [`convert`] converts.
struct Conversion<'a> {
    reply: &'a Reply,
    resp3: bool,
    counted: bool,
}

/// Pushes `reply` as a Lua value, as Redis converts a reply for a script speaking the run's
/// protocol; `counted` marks an error already counted in the error statistics. On failure
/// (out of memory) the error is pushed instead and the result is `false`.
unsafe fn push(state: *mut ffi::lua_State, reply: &Reply, counted: bool) -> bool {
    let resp3 = run_state(|s| s.resp.get()) == 3;
    // What allocates nothing goes straight on the stack.
    match reply {
        Reply::Int(n) => ffi::lua_pushnumber(state, *n as f64),
        Reply::Nil | Reply::NilArray if resp3 => ffi::lua_pushnil(state),
        Reply::Nil | Reply::NilArray => ffi::lua_pushboolean(state, 0),
        Reply::Bool(b) if resp3 => ffi::lua_pushboolean(state, c_int::from(*b)),
        Reply::Bool(b) => ffi::lua_pushnumber(state, f64::from(u8::from(*b))),
        _ => {
            // [`convert`] as a protected call (the registry lookups and the light userdata
            // allocate nothing); its value, or its error, is left on the stack.
            let mut conversion = Conversion { reply, resp3, counted };
            ffi::lua_pushlightuserdata(state, convert_key());
            ffi::lua_rawget(state, ffi::LUA_REGISTRYINDEX);
            ffi::lua_pushlightuserdata(state, std::ptr::addr_of_mut!(conversion).cast());
            if ffi::lua_pcall(state, 1, 1, 0) != 0 {
                return false;
            }
        }
    }
    true
}

/// The protected half of [`push`]: returns the value built.
unsafe extern "C-unwind" fn convert(state: *mut ffi::lua_State) -> c_int {
    let conversion = &*ffi::lua_touserdata(state, 1).cast::<Conversion<'_>>();
    value(state, conversion.reply, conversion.resp3, conversion.counted, 0);
    1
}

/// Pushes `reply` (see [`push`]). Runs under [`convert`]'s protection: its frames hold only
/// references, integers and slice iterators.
unsafe fn value(state: *mut ffi::lua_State, reply: &Reply, resp3: bool, counted: bool, depth: usize) {
    ffi::luaL_checkstack(state, 4, c"reply too deep".as_ptr());
    if depth > MAX_DEPTH {
        ffi::lua_pushnil(state);
        return;
    }
    let items = |state, items: &[Reply]| {
        ffi::lua_createtable(state, items.len() as c_int, 0);
        for (i, item) in items.iter().enumerate() {
            value(state, item, resp3, counted, depth + 1);
            ffi::lua_rawseti(state, -2, (i + 1) as _);
        }
    };
    match reply {
        Reply::Ok => single(state, c"ok", |state| bytes(state, b"OK")),
        Reply::Status(s) => single(state, c"ok", |state| bytes(state, s.as_bytes())),
        Reply::Error(e) => {
            ffi::lua_createtable(state, 0, 2);
            let e = e.trim_end_matches(['\r', '\n']);
            if e.contains(' ') {
                bytes(state, e.as_bytes());
            } else {
                // A bare code gets Redis's generic one in front.
                bytes(state, b"ERR ");
                bytes(state, e.as_bytes());
                ffi::lua_concat(state, 2);
            }
            ffi::lua_setfield(state, -2, c"err".as_ptr());
            if counted {
                ffi::lua_pushboolean(state, 1);
                ffi::lua_setfield(state, -2, c"ignore_error_stats_update".as_ptr());
            }
        }
        Reply::Int(n) => ffi::lua_pushnumber(state, *n as f64),
        Reply::Bulk(b) => bytes(state, b),
        Reply::Verbatim(text) if resp3 => single(state, c"verbatim_string", |state| {
            ffi::lua_createtable(state, 0, 2);
            bytes(state, text.as_bytes());
            ffi::lua_setfield(state, -2, c"string".as_ptr());
            bytes(state, b"txt");
            ffi::lua_setfield(state, -2, c"format".as_ptr());
        }),
        Reply::Verbatim(text) => bytes(state, text.as_bytes()),
        Reply::Nil | Reply::NilArray if resp3 => ffi::lua_pushnil(state),
        Reply::Nil | Reply::NilArray => ffi::lua_pushboolean(state, 0),
        Reply::Array(list) | Reply::Several(list) | Reply::Push(list) => items(state, list),
        Reply::BulkArray { len, .. } => {
            ffi::lua_createtable(state, *len as c_int, 0);
            for (i, item) in reply.bulk_slices().enumerate() {
                bytes(state, item);
                ffi::lua_rawseti(state, -2, (i + 1) as _);
            }
        }
        Reply::Set(list) if resp3 => single(state, c"set", |state| {
            ffi::lua_createtable(state, 0, list.len() as c_int);
            for item in list {
                value(state, item, resp3, counted, depth + 1);
                ffi::lua_pushboolean(state, 1);
                ffi::lua_rawset(state, -3);
            }
        }),
        Reply::Set(list) => items(state, list),
        Reply::Map(pairs) | Reply::Keyed(pairs) if resp3 => single(state, c"map", |state| {
            ffi::lua_createtable(state, 0, pairs.len() as c_int);
            for (k, v) in pairs {
                value(state, k, resp3, counted, depth + 1);
                value(state, v, resp3, counted, depth + 1);
                ffi::lua_rawset(state, -3);
            }
        }),
        Reply::Pairs(pairs) | Reply::Keyed(pairs) if resp3 || matches!(reply, Reply::Keyed(_)) => {
            ffi::lua_createtable(state, pairs.len() as c_int, 0);
            for (i, (a, b)) in pairs.iter().enumerate() {
                ffi::luaL_checkstack(state, 4, c"reply too deep".as_ptr());
                ffi::lua_createtable(state, 2, 0);
                value(state, a, resp3, counted, depth + 2);
                ffi::lua_rawseti(state, -2, 1);
                value(state, b, resp3, counted, depth + 2);
                ffi::lua_rawseti(state, -2, 2);
                ffi::lua_rawseti(state, -2, (i + 1) as _);
            }
        }
        Reply::Map(pairs) | Reply::Pairs(pairs) | Reply::Keyed(pairs) => {
            ffi::lua_createtable(state, (pairs.len() * 2) as c_int, 0);
            for (i, (k, v)) in pairs.iter().enumerate() {
                value(state, k, resp3, counted, depth + 1);
                ffi::lua_rawseti(state, -2, (2 * i + 1) as _);
                value(state, v, resp3, counted, depth + 1);
                ffi::lua_rawseti(state, -2, (2 * i + 2) as _);
            }
        }
        Reply::Double(d) if resp3 => single(state, c"double", |state| ffi::lua_pushnumber(state, *d)),
        Reply::Double(d) => {
            // Formatted first, into a buffer without a destructor.
            let mut buf = [0u8; 40];
            let len = {
                let text = crate::num::format_g17(*d);
                let len = text.len().min(buf.len());
                buf[..len].copy_from_slice(&text.as_bytes()[..len]);
                len
            };
            bytes(state, &buf[..len]);
        }
        Reply::DoubleText(text) if resp3 => {
            let d: f64 = text.parse().unwrap_or_default();
            single(state, c"double", |state| ffi::lua_pushnumber(state, d));
        }
        // The text is the reply's: nothing with a destructor lives in this frame.
        Reply::DoubleText(text) => bytes(state, text.as_bytes()),
        Reply::Bool(b) if resp3 => ffi::lua_pushboolean(state, c_int::from(*b)),
        Reply::Bool(b) => ffi::lua_pushnumber(state, f64::from(u8::from(*b))),
    }
}

/// Pushes `{field = v}`, `v` pushed by `push_value`.
unsafe fn single(state: *mut ffi::lua_State, field: &CStr, push_value: impl FnOnce(*mut ffi::lua_State)) {
    ffi::lua_createtable(state, 0, 1);
    push_value(state);
    ffi::lua_setfield(state, -2, field.as_ptr());
}

/// Pushes a string of `data`.
unsafe fn bytes(state: *mut ffi::lua_State, data: &[u8]) {
    ffi::lua_pushlstring(state, data.as_ptr().cast(), data.len());
}

/// How a resumed run's coroutine stopped.
pub(super) enum Resumed {
    /// It returned this (its first value, the script's reply).
    Returned(Value),
    /// It yielded (the watch hook paused it).
    Yielded,
    /// It raised this.
    Failed(Value),
}

/// The state of `thread`, a coroutine.
fn coroutine(thread: &Thread) -> *mut ffi::lua_State {
    // In Lua 5.1 a thread's pointer (`lua_topointer`) is its `lua_State`, alive while
    // `thread` holds it.
    thread.to_pointer().cast_mut().cast::<ffi::lua_State>()
}

/// Before a run's first resume: sets `first` on the coroutine's own stack, unprotected (no
/// memory cap is set: see [`push_sequences`]).
pub(super) fn prepare(slots: &Slots, thread: &Thread, first: &Sequences<'_>) {
    let co = coroutine(thread);
    // SAFETY: `co` is the coroutine's live state, not running; what is pushed is popped.
    unsafe {
        if ffi::lua_checkstack(co, 8) != 0 {
            push_sequences(co, slots, first);
        }
    }
}

/// Resumes `thread` (a run on a shard, its memory cap set by the caller) with no values: its
/// status. `lua_resume` catches the coroutine's own errors.
pub(super) fn resume(thread: &Thread) -> c_int {
    let mut results = 0;
    // SAFETY: `co` is the coroutine's live state; Lua checks it may be resumed.
    unsafe { ffi::lua_resume(coroutine(thread), std::ptr::null_mut(), 0, &mut results) }
}

/// How a run on a shard stopped, from the `status` of its [`resume`]: what it returned or
/// raised moves through the registry (no memory cap is set: see [`push_sequences`]).
///
/// # Errors
/// The interpreter is out of memory.
pub(super) fn outcome(lua: &Lua, slots: &Slots, thread: &Thread, status: c_int) -> mlua::Result<Resumed> {
    if status == ffi::LUA_YIELD {
        return Ok(Resumed::Yielded);
    }
    let co = coroutine(thread);
    let slot = slots.outcome.id();
    // SAFETY: `co` is the coroutine's live state, not running. A finished coroutine holds its
    // results from index 1, a failed one its error on top: one value is kept and moved to the
    // registry, leaving a finished coroutine empty (reusable).
    unsafe {
        if status == ffi::LUA_OK {
            if ffi::lua_gettop(co) == 0 {
                ffi::lua_pushnil(co);
            }
            ffi::lua_settop(co, 1);
        }
        ffi::lua_rawseti(co, ffi::LUA_REGISTRYINDEX, slot.into());
    }
    let value: Value = lua.registry_value(&slots.outcome)?;
    // SAFETY: as above; the registry stops holding the value.
    unsafe {
        ffi::lua_pushboolean(co, 0);
        ffi::lua_rawseti(co, ffi::LUA_REGISTRYINDEX, slot.into());
    }
    Ok(if status == ffi::LUA_OK { Resumed::Returned(value) } else { Resumed::Failed(value) })
}
