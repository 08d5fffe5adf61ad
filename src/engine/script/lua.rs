//! One core's Lua interpreter, as Redis 7.0 sets up its own: Lua 5.1 with the base, table,
//! string and math libraries, `redis`'s library, a deterministic `math.random`, and globals
//! that scripts can read but neither create nor change; the scripts it has compiled, by SHA1;
//! and the conversions between Lua values and replies (RESP2 or RESP3, as `redis.setresp`
//! says).
//!
//! Redis's Lua marks its tables read-only (a patch to Lua); stock Lua cannot, so a script sees
//! the globals and the libraries through empty proxy tables whose `__index` is the real table
//! and whose `__newindex` refuses, with Redis's message. (`pairs(string)` therefore finds
//! nothing, where Redis's finds the functions.)
//!
//! Errors: Redis's library functions are C functions that raise Lua values (an error table
//! `{err = "CODE message"}`, or a message placed at the calling line). mlua lets a Rust
//! function raise only its own error object, so a Rust function leaves the value to raise in
//! `prim.pending` and raises a marker; Redis's error handler, `pcall` and `xpcall` (the
//! prelude's) see the pending value in the marker's place. Being Rust (C) functions, they keep
//! the caller's frame on `return redis.call(...)`, so an error names the script's line as
//! Redis's does.
//!
//! A script that holds every shard calls its commands as a one-shard run does, through the C
//! functions, their hops to other cores waited for on the thread (see `run::call_across`).
//! One that calls a command waiting for more than other cores (MIGRATE) runs as a coroutine
//! whose `redis.call` (a Lua function, there) yields the command to the caller's task, which
//! runs it and resumes the script with the reply; its `pcall` runs the protected function as a
//! coroutine of its own, passing those yields through. (`return redis.call(...)` is a tail
//! call there: an error then names no line.) Where it cannot yield (a C function's callback, a
//! metamethod, a coroutine the script made), it runs the command at once through the C
//! functions.
//!
//! A script on one shard runs as a coroutine too, its `redis.call` a direct call: the
//! coroutine is only there for the watch hook (`busy.rs`) to pause a run that went past
//! `busy-reply-threshold`, so that its core serves its other clients. Lua 5.1 lets a count
//! hook yield (lvm.c, "did hook yield?") but has no call to ask whether the coroutine may (a
//! C call or a metamethod between it and its resume forbids it, with an error): see
//! [`yieldable`], this module's one unsafe read.

use std::cell::Cell;
use std::ffi::{c_int, CStr};

use ahash::AHashMap;
use bytes::Bytes;
use mlua::{ffi, Function, Lua, MultiValue, Table, Thread, Value};

use crate::cmd::error::CmdError;
use crate::engine::script::busy::{self, Tick};
use crate::engine::script::current::run_state;
use crate::engine::script::functions::{self, Functions};
use crate::engine::script::raise::{lua_number, Raise};
use crate::engine::script::stack;
use crate::engine::script::store::{Flags, Sha, Source, Store};
use crate::facade::Reply;

/// The most memory one core's interpreter may hold: a script allocating past it fails with
/// an error instead of taking the server's memory.
const MEMORY_LIMIT: usize = 512 << 20;

/// Past this many bytes held after a run, the interpreter collects its garbage at once.
const COLLECT_ABOVE: usize = 64 << 20;

/// How deep a script's reply may nest before it is refused.
const MAX_DEPTH: usize = 1000;

/// What the interpreter is built with, in Lua: the protections, `redis.call`/`pcall` around
/// their primitive, `pcall` as Redis 7 gives it, and the error handler that places an error
/// in the script's source.
const PRELUDE: &str = r#"
local prim, real, dbg = ...
local error, type, rawget, tostring = error, type, rawget, tostring
local realpcall, realxpcall = pcall, xpcall
local co_create, co_resume, co_status, co_yield = coroutine.create, coroutine.resume, coroutine.status, coroutine.yield
local co_running = coroutine.running
local select, unpack = select, unpack
-- The run's own coroutines (each run's, and those its pcall makes): only these yield to the
-- run's driver, and the watch hook pauses only these (it finds this table in the registry).
local ours = setmetatable({}, {__mode = 'k'})
prim.ours = ours

-- The value a Rust function left to raise, in place of the marker it raised.
local function fix(e)
  if type(e) == 'userdata' then
    local p = prim.pending
    if p ~= nil then
      prim.pending = nil
      return p
    end
  end
  return e
end

-- Redis 7's pcall: an error table with an `err` field is caught as its message.
local function caught(ok, ...)
  if ok then return true, ... end
  local e = fix((...))
  if type(e) == 'table' then
    local m = rawget(e, 'err')
    if type(m) == 'string' or type(m) == 'number' then e = m end
  end
  return false, e
end
local function plain_pcall(f, ...)
  return caught(realpcall(f, ...))
end

-- A script holding every shard: redis.call yields the command to the caller's task, which
-- resumes it with (reply, raise); pcall runs its function as a coroutine of its own, whose
-- yields pass through to the caller.
-- Where it cannot yield (inside a C function such as table.sort's comparator, a metamethod,
-- or a coroutine the script made), the command runs at once instead (prim.scall: the
-- caller's task is waiting in Lua, and its hops to other cores block until answered).
-- A yielded -0 reaches Rust as the integer 0 (mlua makes integral numbers integers): it goes
-- as the string Redis's %.17g writes for it.
local function signed_zeros(...)
  local n = select('#', ...)
  for i = 1, n do
    local a = select(i, ...)
    if a == 0 and type(a) == 'number' and 1 / a < 0 then
      local args = {...}
      for j = i, n do
        if args[j] == 0 and type(args[j]) == 'number' and 1 / args[j] < 0 then args[j] = '-0' end
      end
      return unpack(args, 1, n)
    end
  end
  return ...
end
prim.ycall = function(...)
  if not prim.can_yield() then return prim.scall(...) end
  local r, raise = co_yield(signed_zeros(...))
  if raise then error(r) end
  return r
end
prim.ypcall = function(...)
  if not prim.can_yield() then return prim.spcall(...) end
  local r = co_yield(signed_zeros(...))
  return r
end
local function pass(co, ok, ...)
  if not ok then return caught(false, ...) end
  if co_status(co) == 'dead' then return true, ... end
  return pass(co, co_resume(co, co_yield(...)))
end
prim.yielding_pcall = function(f, ...)
  if type(f) ~= 'function' or dbg.getinfo(f, 'S').what == 'C' then return plain_pcall(f, ...) end
  local co = co_create(f)
  ours[co] = true
  return pass(co, co_resume(co, ...))
end
-- Scripts' pcall passes the watch hook's yields through (a busy run pauses inside it too).
real.pcall = prim.yielding_pcall
-- xpcall likewise runs its function as a coroutine of its own, so that redis.call may yield
-- inside it (a run holding every shard); the handler sees the error once the function has
-- failed, and a handler that fails gives Lua's "error in error handling".
local function xpass(co, h, ok, ...)
  if not ok then
    local hok, r = realpcall(h, fix((...)))
    if not hok then return false, 'error in error handling' end
    return false, r
  end
  if co_status(co) == 'dead' then return true, ... end
  return xpass(co, h, co_resume(co, co_yield(...)))
end
real.xpcall = function(f, h)
  if type(f) ~= 'function' or dbg.getinfo(f, 'S').what == 'C' then
    return realxpcall(f, function(e) local r = h(fix(e)) return r end)
  end
  local co = co_create(f)
  ours[co] = true
  return xpass(co, h, co_resume(co))
end
-- A script's coroutine.yield outside a coroutine it made: refused as Redis's Lua refuses a
-- yield from its main thread (never taken for a redis.call).
real.coroutine.yield = function(...)
  if ours[co_running()] then error('attempt to yield across metamethod/C-call boundary', 0) end
  return co_yield(...)
end
-- As in Redis, where scripts run on the main thread, outside any coroutine.
real.coroutine.running = function()
  local co = co_running()
  if ours[co] then return nil end
  return co
end

prim.readonly = function() error('Attempt to modify a readonly table', 2) end
prim.missing = function(_, k)
  error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end

-- Where an error was raised: the first frame, from `level` up (in `co`, or in this thread
-- where level 1 is `place` itself), that is neither C nor this prelude.
local function place(err, co, level)
  err = fix(err)
  local i
  while true do
    if co then i = dbg.getinfo(co, level, 'nSl') else i = dbg.getinfo(level, 'nSl') end
    if not i or (i.what ~= 'C' and i.source ~= '=[redis]') then break end
    level = level + 1
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end
real.__redis__err__handler = function(err) local e = place(err, nil, 3) return e end
-- A run on a shard that failed: its error, placed (the run's coroutine drove from Rust).
prim.place = function(err, co) local e = place(err, co, 0) return e end

-- A script run as a coroutine: each step answers 'call' and the command's arguments, or
-- 'done', whether it succeeded, and its value or its placed error.
-- (At most four values go back to Rust: mlua reads more than about twenty past the stack's
-- end. A call's arguments come packed, with their count; a script's first return value is
-- its reply, as in Redis.)
local sformat = string.format
local function stepped(co, ok, ...)
  if ok then
    if co_status(co) == 'dead' then return 'done', true, (...) end
    local n, args = select('#', ...), {...}
    -- Numbers as Redis writes them (mlua would read -0 as the integer 0).
    for i = 1, n do
      if type(args[i]) == 'number' then args[i] = sformat('%.17g', args[i]) end
    end
    return 'call', n, args
  end
  local e = place((...), co, 0)
  return 'done', false, e
end
prim.step = function(co, ...)
  ours[co] = true
  return stepped(co, co_resume(co, ...))
end

-- FCALL: the function with its keys and arguments.
prim.invoke = function() return prim.fn(prim.keys, prim.args) end
"#;

/// How a script run ended.
pub(crate) enum Ended {
    /// It returned this reply (an error reply included).
    Reply(Reply),
    /// A thread run yielded: `redis.call`'s arguments, and whether it raises on error.
    Call(Vec<Bytes>),
    /// The watch hook paused it (it is busy): resume it once its core has served others.
    Paused,
}

/// One core's interpreter and the scripts it compiled.
pub(crate) struct Interp {
    lua: Lua,
    compiled: AHashMap<Sha, Function>,
    /// The store's flush generation when `compiled` was last emptied.
    generation: u64,
    /// The prelude's helpers (`prim.pending`, `prim.ycall`, ...).
    prim: Table,
    /// `prim.step`, which resumes a run's coroutine holding every shard.
    step: Function,
    /// `prim.place`, which places the error of a run on a shard.
    place: Function,
    /// `prim.invoke`, which calls an FCALL's function with its keys and arguments.
    invoke: Function,
    /// What the scripts' hot path finds in the registry.
    slots: stack::Slots,
    /// `prim.ours`: the run's own coroutines, which the watch hook may pause.
    ours: Table,
    /// The `redis` table itself (scripts see a proxy): each run installs `call` and `pcall`.
    redis: Table,
    /// The globals scripts read through their proxy, where KEYS and ARGV are set.
    real: Table,
    /// What scripts see as their globals.
    env: Table,
    /// `redis.call` and `redis.pcall` of a run on a shard (C functions, `stack.rs`, made once).
    call: Function,
    pcall: Function,
    /// A run holding every shard replaced these with the prelude's yielding ones.
    swapped: Cell<bool>,
    /// A coroutine whose run finished, for the next run to reuse.
    spare: std::cell::RefCell<Option<Thread>>,
    /// The globals of functions' code: a proxy reading the load API while a library loads,
    /// the scripts' globals when its functions run (`fenv_meta.__index`).
    fenv: Table,
    fenv_meta: Table,
    /// What a library's code sees while it loads: `redis.register_function` and little else.
    load_api: Table,
    /// The functions loaded here, and the generation they are of.
    functions: AHashMap<String, Function>,
    functions_generation: u64,
}

thread_local! {
    static INTERP: std::cell::RefCell<Option<Interp>> = const { std::cell::RefCell::new(None) };
    /// The functions `redis.register_function` registered during the library load under way.
    static REGISTERING: std::cell::RefCell<Option<Vec<Registered>>> = const { std::cell::RefCell::new(None) };
    /// A coroutine run's last line of the script or function seen by the watch hook (whether
    /// it was a function's, and the line).
    static LAST_LINE: Cell<(bool, i32)> = const { Cell::new((false, -1)) };
    /// The watch hook paused the run (it yielded).
    static PAUSED: Cell<bool> = const { Cell::new(false) };
}

/// The watch hook of a run's coroutines (those the run makes inherit it): on a line event,
/// keeps the script's or function's last line; on a count event, asks the run's watch whether
/// to go on, pause (yielding, where the coroutine is the run's own and may yield) or end. A
/// killed run ends as Redis's does: the hook raises Redis's error in the coroutine it fired in
/// and switches that coroutine to raising again at each of its lines, so a `pcall` catching it
/// gets no further than its next line; the other coroutines raise at their next count event.
#[allow(unsafe_code)]
unsafe extern "C-unwind" fn watch_hook(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) {
    // SAFETY: Lua calls a hook with the running state and an activation record valid for the
    // call; `place` only asks `lua_getinfo` about that record.
    let event = unsafe { (*ar).event };
    if event == ffi::LUA_HOOKLINE {
        let user = unsafe { place(state, ar) };
        if let Some(at) = user {
            LAST_LINE.with(|l| l.set(at));
        }
        // Lines only: this coroutine was killed. It raises in the script's code, not the
        // prelude's (Redis's C `pcall` has no lines).
        // SAFETY: reads this coroutine's hook mask.
        if user.is_some() && unsafe { ffi::lua_gethookmask(state) } == ffi::LUA_MASKLINE {
            // SAFETY: as below.
            unsafe { raise_killed(state) };
        }
        return;
    }
    if event != ffi::LUA_HOOKCOUNT {
        return;
    }
    match busy::tick() {
        Tick::Continue => {}
        // SAFETY: sets this coroutine's hook fields; raises as `raise_killed` may.
        Tick::Kill => unsafe {
            ffi::lua_sethook(state, Some(watch_hook), ffi::LUA_MASKLINE, 0);
            if place(state, ar).is_some() {
                raise_killed(state);
            }
        },
        // SAFETY: `ours` and `yieldable` read the running state; when it may, the coroutine
        // yields: lua_yield returns (it raises only across a C boundary), Lua 5.1 ends the
        // hooked instruction there and the resume returns (lvm.c, "did hook yield?").
        Tick::Pause => unsafe {
            if ours(state) && yieldable(state) {
                PAUSED.with(|p| p.set(true));
                ffi::lua_yield(state, 0);
            }
        },
    }
}

/// Raises Redis's error for a killed script: an error table, as Redis's `luaPushError` makes.
///
/// # Safety
/// Called from a hook: Lua 5.1 longjmps out of it, so the caller's frame must hold nothing
/// that needs dropping.
#[allow(unsafe_code)]
unsafe fn raise_killed(state: *mut ffi::lua_State) {
    // SAFETY: the caller's; a hook has free stack slots for the table and its message.
    unsafe {
        ffi::lua_createtable(state, 0, 1);
        ffi::lua_pushstring(state, c"ERR Script killed by user with SCRIPT KILL...".as_ptr());
        ffi::lua_setfield(state, -2, c"err".as_ptr());
        ffi::lua_error(state);
    }
}

/// `prim.can_yield()`: whether the running coroutine is the run's own and may yield now (a
/// run holding every shard asks before its `redis.call` yields the command).
#[allow(unsafe_code)]
unsafe extern "C-unwind" fn can_yield(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: a C function has LUA_MINSTACK free slots: `ours` takes three and pops them,
    // and the answer takes one.
    unsafe {
        let may = ours(state) && yieldable(state);
        ffi::lua_pushboolean(state, c_int::from(may));
    }
    1
}

/// The registry key of the prelude's table of the run's own coroutines (`ours`).
const OURS: &std::ffi::CStr = c"ferrokey.ours";

/// Whether `state` is one of the run's own coroutines (the run's, or one its `pcall` made),
/// not one the script made: only those yield to the run's driver.
///
/// # Safety
/// `state` as Lua passes it to a hook (which has `LUA_MINSTACK` free slots).
#[allow(unsafe_code)]
unsafe fn ours(state: *mut ffi::lua_State) -> bool {
    // SAFETY: three pushes within the hook's free slots, popped before returning.
    unsafe {
        ffi::lua_getfield(state, ffi::LUA_REGISTRYINDEX, OURS.as_ptr());
        if ffi::lua_type(state, -1) != ffi::LUA_TTABLE {
            ffi::lua_settop(state, -2);
            return false;
        }
        ffi::lua_pushthread(state);
        ffi::lua_rawget(state, -2);
        let found = ffi::lua_toboolean(state, -1) != 0;
        ffi::lua_settop(state, -3);
        found
    }
}

/// Where the hooked function is, when it is the script's or a function's code.
///
/// # Safety
/// `state` and `ar` as Lua passes them to a hook.
#[allow(unsafe_code)]
unsafe fn place(state: *mut ffi::lua_State, ar: *mut ffi::lua_Debug) -> Option<(bool, i32)> {
    // SAFETY: the caller's; getinfo fills `source` with a string Lua owns while the hook runs.
    unsafe {
        if ffi::lua_getinfo(state, c"Sl".as_ptr(), ar) == 0 || (*ar).source.is_null() {
            return None;
        }
        match CStr::from_ptr((*ar).source).to_bytes() {
            b"@user_script" => Some((false, (*ar).currentline)),
            b"@user_function" => Some((true, (*ar).currentline)),
            _ => None,
        }
    }
}

/// Whether the running coroutine `state` may yield: Lua 5.1 raises an error instead when a C
/// call or a metamethod lies between it and its resume (`nCcalls > baseCcalls`, ldo.c), and
/// has no call to ask. This reads the two counters at their offsets in the vendored Lua
/// 5.1.5's `lua_State` (64-bit layout), after checking that the layout holds: the hook mask
/// and count, which the API does return, must be where it puts them. Where it does not, the
/// answer is no: a busy run then goes on unpaused.
///
/// # Safety
/// `state` is a live `lua_State` of the vendored Lua 5.1.5.
#[allow(unsafe_code)]
unsafe fn yieldable(state: *mut ffi::lua_State) -> bool {
    #[cfg(target_pointer_width = "64")]
    {
        // lstate.h: ... int size_ci; unsigned short nCcalls, baseCcalls; lu_byte hookmask,
        // allowhook; int basehookcount; ...
        const N_CCALLS: usize = 96;
        const BASE_CCALLS: usize = 98;
        const HOOK_MASK: usize = 100;
        const BASE_HOOK_COUNT: usize = 104;
        // SAFETY: the offsets lie inside the struct (its size is past 104 in this layout); the
        // reads are unaligned-safe and checked against the API before being trusted.
        unsafe {
            let base = state.cast::<u8>();
            let mask = i32::from(base.add(HOOK_MASK).read());
            let count = base.add(BASE_HOOK_COUNT).cast::<i32>().read_unaligned();
            if mask != ffi::lua_gethookmask(state) || count != ffi::lua_gethookcount(state) {
                return false;
            }
            let calls = base.add(N_CCALLS).cast::<u16>().read_unaligned();
            let base_calls = base.add(BASE_CCALLS).cast::<u16>().read_unaligned();
            calls == base_calls
        }
    }
    #[cfg(not(target_pointer_width = "64"))]
    {
        let _ = state;
        false
    }
}

/// A function a library registered while it loaded.
pub(crate) struct Registered {
    /// Its name.
    pub(crate) name: String,
    /// Its code.
    callback: Function,
    /// Its description.
    pub(crate) description: Option<String>,
    /// Its flags.
    pub(crate) flags: Flags,
}

/// Runs `f` with this core's interpreter, creating it on first use.
///
/// # Errors
/// The interpreter could not be created (out of memory).
pub(crate) fn with<R>(f: impl FnOnce(&mut Interp) -> R) -> Result<R, CmdError> {
    INTERP.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| CmdError::Internal)?;
        if slot.is_none() {
            *slot = Some(Interp::new().map_err(|e| {
                tracing::error!(error = %e, "the Lua interpreter could not be created");
                CmdError::Internal
            })?);
        }
        let interp = slot.as_mut().ok_or(CmdError::Internal)?;
        Ok(f(interp))
    })
}

/// A Lua state with the libraries Redis loads: base, table, string, math, and debug, which
/// only the prelude keeps (for `debug.getinfo`, as Redis's error handler does); scripts never
/// see it.
#[allow(unsafe_code)]
fn new_lua() -> mlua::Result<Lua> {
    use mlua::StdLib;
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
    // SAFETY: mlua calls the debug library unsafe because Lua code holding it can reach
    // values Rust owns (userdata's upvalues, the registry). Only the prelude's closures hold
    // it: `Interp::new` removes it from the globals before any script is compiled, and the
    // prelude uses nothing of it but `getinfo`.
    Ok(unsafe { Lua::unsafe_new_with(libs, mlua::LuaOptions::default()) })
}

/// The bytes this core's interpreter holds (0 before its first use).
pub(crate) fn memory_here() -> usize {
    INTERP.with(|cell| cell.try_borrow().ok().and_then(|i| i.as_ref().map(Interp::memory)).unwrap_or(0))
}

impl Interp {
    fn new() -> mlua::Result<Interp> {
        let lua = new_lua()?;
        let real = lua.globals();
        for name in ["dofile", "loadfile", "print", "getfenv", "setfenv", "newproxy"] {
            real.raw_set(name, Value::Nil)?;
        }
        let redis = lua.create_table()?;
        real.raw_set("redis", redis.clone())?;
        let prim = lua.create_table()?;
        let dbg: Table = real.raw_get("debug")?;
        lua.load(PRELUDE).set_name("=[redis]").call::<()>((prim.clone(), real.clone(), dbg))?;
        let ours: Table = prim.raw_get("ours")?;
        lua.set_named_registry_value(OURS.to_str().unwrap_or_default(), ours)?;
        let raise = Raise(prim.clone());
        install_redis_library(&lua, &redis, &raise)?;
        install_math_random(&lua, &real, &raise)?;
        crate::engine::script::libs::install(&lua, &real, &raise)?;
        real.raw_set("debug", Value::Nil)?;
        let (env, visible) = protect(&lua, &real, &prim)?;
        let (call, pcall) = crate::engine::script::stack::call_functions(&lua)?;
        redis.raw_set("call", call.clone())?;
        redis.raw_set("pcall", pcall.clone())?;
        // A run holding every shard calls these where its redis.call cannot yield.
        prim.raw_set("scall", call.clone())?;
        prim.raw_set("spcall", pcall.clone())?;
        #[allow(unsafe_code)]
        // SAFETY: `can_yield` keeps to the C API and raises nothing (no longjmp leaves it).
        let can_yield = unsafe { lua.create_c_function(can_yield)? };
        prim.raw_set("can_yield", can_yield)?;
        let (fenv, fenv_meta, load_api) = function_env(&lua, &prim, &raise, &visible)?;
        let (step, place, ours) = (prim.raw_get("step")?, prim.raw_get("place")?, prim.raw_get("ours")?);
        let invoke = prim.raw_get("invoke")?;
        let slots = stack::Slots::new(&lua, &visible, &prim)?;
        let interp = Interp {
            lua,
            step,
            place,
            invoke,
            slots,
            ours,
            compiled: AHashMap::new(),
            generation: Store::get().generation(),
            prim,
            redis,
            real: visible,
            env,
            call,
            pcall,
            swapped: Cell::new(false),
            spare: std::cell::RefCell::new(None),
            fenv,
            fenv_meta,
            load_api,
            functions: AHashMap::new(),
            functions_generation: u64::MAX,
        };
        Ok(interp)
    }

    /// Compiles `source` (or finds it compiled).
    ///
    /// # Errors
    /// Redis's compile error.
    pub(crate) fn function(&mut self, source: &Source) -> Result<Function, CmdError> {
        let generation = Store::get().generation();
        if generation != self.generation {
            self.compiled.clear();
            self.generation = generation;
        }
        if let Some(f) = self.compiled.get(&source.sha) {
            return Ok(f.clone());
        }
        let f = self.compile(source.code())?;
        self.compiled.insert(source.sha, f.clone());
        Ok(f)
    }

    /// Loads a library's code (after its shebang line): runs it with the load API and returns
    /// the functions it registered.
    ///
    /// # Errors
    /// Redis's compile and registration errors.
    pub(crate) fn load_library(&self, code: &[u8]) -> Result<Vec<Registered>, CmdError> {
        let chunk = self
            .lua
            .load(code)
            .set_name("@user_function")
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(self.fenv.clone())
            .into_function()
            .map_err(|e| CmdError::text(format!("ERR Error compiling function: {}", lua_message(&e))))?;
        REGISTERING.with(|r| *r.borrow_mut() = Some(Vec::new()));
        let _ = self.fenv_meta.raw_set("__index", self.load_api.clone());
        let ran = self.capped(|| chunk.call::<()>(()));
        let _ = self.fenv_meta.raw_set("__index", self.real.clone());
        let registered = REGISTERING.with(|r| r.borrow_mut().take()).unwrap_or_default();
        let pending = self.prim.raw_get::<Value>("pending").unwrap_or(Value::Nil);
        let _ = self.prim.raw_set("pending", Value::Nil);
        match ran {
            Ok(()) => Ok(registered),
            Err(e) => {
                let msg = match pending {
                    Value::Table(t) => t.raw_get::<String>("err").unwrap_or_default(),
                    Value::String(s) => format!("ERR {}", s.to_string_lossy()),
                    _ => format!("ERR {}", lua_message(&e)),
                };
                Err(CmdError::text(format!("ERR Error registering functions: {msg}")))
            }
        }
    }

    /// The function named `name`, loading every library again first when they changed since
    /// this core last loaded them.
    ///
    /// # Errors
    /// `Function not found`.
    pub(crate) fn function_named(&mut self, name: &str) -> Result<Function, CmdError> {
        let all = Functions::get();
        let generation = all.generation();
        if generation != self.functions_generation {
            self.functions.clear();
            for library in all.libraries() {
                let at = functions::metadata(&library.code).map(|(_, _, at)| at).unwrap_or(0);
                match self.load_library(&library.code[at..]) {
                    Ok(registered) => {
                        self.functions.extend(registered.into_iter().map(|r| (r.name, r.callback)));
                    }
                    Err(e) => {
                        tracing::warn!(library = %library.name, error = %e, "a library failed to load on this core")
                    }
                }
            }
            self.functions_generation = generation;
        }
        self.functions.get(name).cloned().ok_or(CmdError::msg("ERR Function not found"))
    }

    /// Starts `f` on a shard (a script's chunk, or with `function` an FCALL's function) and
    /// runs it until it ends or the watch hook pauses it: its coroutine, and how it stopped.
    /// KEYS and ARGV are set in the same protected step as the first resume.
    ///
    /// # Errors
    /// The interpreter is out of memory.
    pub(crate) fn run_here(
        &self,
        f: &Function,
        function: bool,
        keys: &[Bytes],
        argv: &[Bytes],
        name: &str,
    ) -> Result<(Thread, Ended), CmdError> {
        let lua_error = |e: mlua::Error| CmdError::text(format!("ERR {}", lua_message(&e)));
        let (entry, args) = if function {
            self.prim.raw_set("fn", f.clone()).map_err(lua_error)?;
            (self.invoke.clone(), stack::Sequences { holder: stack::Holder::Prim, items: [keys, argv] })
        } else {
            (f.clone(), stack::Sequences { holder: stack::Holder::Globals, items: [keys, argv] })
        };
        let thread = self.start(&entry, None, false)?;
        run_state(|s| {
            s.resp.set(2);
            s.running.set(true);
        });
        let ended = self.resume_here(&thread, Some(args), name);
        Ok((thread, ended))
    }

    /// Prepares an FCALL: the function and its arguments for `prim.invoke`.
    fn begin_function(&self, f: &Function, keys: &[Bytes], argv: &[Bytes]) -> mlua::Result<Function> {
        self.prim.raw_set("fn", f.clone())?;
        let sequences = stack::Sequences { holder: stack::Holder::Prim, items: [keys, argv] };
        stack::set_sequences(&self.lua, &self.slots, sequences)?;
        run_state(|s| s.resp.set(2));
        run_state(|s| s.running.set(true));
        Ok(self.invoke.clone())
    }

    /// Starts function `f` (FCALL) as a coroutine, as [`Interp::start`] starts a script.
    ///
    /// # Errors
    /// The interpreter is out of memory.
    pub(crate) fn start_function(
        &self,
        f: &Function,
        keys: &[Bytes],
        argv: &[Bytes],
        yielding: bool,
    ) -> Result<Thread, CmdError> {
        let invoke = self
            .begin_function(f, keys, argv)
            .map_err(|e| CmdError::text(format!("ERR {}", lua_message(&e))))?;
        self.start(&invoke, None, yielding)
    }

    /// Compiles `code` as a script, without keeping it.
    ///
    /// # Errors
    /// Redis's compile error.
    pub(crate) fn compile(&self, code: &[u8]) -> Result<Function, CmdError> {
        self.lua
            .load(code)
            .set_name("@user_script")
            .set_mode(mlua::ChunkMode::Text)
            .set_environment(self.env.clone())
            .into_function()
            .map_err(|e| {
                CmdError::text(format!("ERR Error compiling script (new function): {}", lua_message(&e)))
            })
    }

    /// Prepares a run: KEYS and ARGV, RESP2 conversions.
    fn begin(&self, keys: &[Bytes], argv: &[Bytes]) -> mlua::Result<()> {
        let sequences = stack::Sequences { holder: stack::Holder::Globals, items: [keys, argv] };
        stack::set_sequences(&self.lua, &self.slots, sequences)?;
        run_state(|s| s.resp.set(2));
        run_state(|s| s.running.set(true));
        Ok(())
    }

    /// Ends a run: what a coroutine run replaced is put back, and what a large run left
    /// behind is collected at once rather than held until the collector's next cycle.
    fn end(&self) {
        run_state(|s| s.running.set(false));
        if self.swapped.replace(false) {
            let _ = self.redis.raw_set("call", self.call.clone());
            let _ = self.redis.raw_set("pcall", self.pcall.clone());
        }
        if self.lua.used_memory() > COLLECT_ABOVE {
            let _ = self.lua.gc_collect();
        }
    }

    /// Calls `f` with the scripts' memory capped: only while script code runs, because mlua
    /// makes every call into Lua a protected one (a closure allocated each time) while a cap
    /// is set.
    fn capped<R>(&self, f: impl FnOnce() -> mlua::Result<R>) -> mlua::Result<R> {
        self.lua.set_memory_limit(MEMORY_LIMIT)?;
        let r = f();
        let _ = self.lua.set_memory_limit(0);
        r
    }

    /// Starts `f` as a coroutine, watched by the watch hook: drive it with
    /// [`Interp::resume`]. With `yielding` its `redis.call`s yield their commands (a run
    /// holding every shard); without, they call the handler at once (a run on one shard, see
    /// [`set_handler`]). Its `pcall` passes yields through either way.
    ///
    /// # Errors
    /// The interpreter is out of memory.
    pub(crate) fn start(
        &self,
        f: &Function,
        args: Option<(&[Bytes], &[Bytes])>,
        yielding: bool,
    ) -> Result<Thread, CmdError> {
        let started = (|| {
            if yielding {
                self.swapped.set(true);
                self.redis.raw_set("call", self.prim.raw_get::<Value>("ycall")?)?;
                self.redis.raw_set("pcall", self.prim.raw_get::<Value>("ypcall")?)?;
            }
            if let Some((keys, argv)) = args {
                self.begin(keys, argv)?;
            }
            // A finished coroutine of an earlier run takes the function (saves its creation).
            let thread = match self.spare.take() {
                Some(thread) if thread.reset(f.clone()).is_ok() => thread,
                _ => {
                    let thread = self.lua.create_thread(f.clone())?;
                    self.ours.raw_set(&thread, true)?;
                    thread
                }
            };
            LAST_LINE.with(|l| l.set((false, -1)));
            PAUSED.with(|p| p.set(false));
            // Lines only where `return redis.call(...)` is a tail call (see `failure`).
            let mask = ffi::LUA_MASKCOUNT | if yielding { ffi::LUA_MASKLINE } else { 0 };
            #[allow(unsafe_code)]
            // SAFETY: in Lua 5.1 a thread's pointer (lua_topointer) is its lua_State, alive
            // while `thread` holds it; lua_sethook only sets that coroutine's hook fields.
            unsafe {
                let co = thread.to_pointer().cast_mut().cast::<ffi::lua_State>();
                ffi::lua_sethook(co, Some(watch_hook), mask, busy::HOOK_EVERY);
            }
            Ok(thread)
        })();
        started.map_err(|e| {
            self.end();
            CmdError::text(format!("ERR {}", lua_message(&e)))
        })
    }

    /// Resumes `thread` (with the reply to the `redis.call` it yielded, if any) until it
    /// yields again or ends.
    pub(crate) fn resume(&self, thread: &Thread, reply: Option<&Reply>, sha: &str) -> Ended {
        if !self.swapped.get() {
            return self.resume_here(thread, None, sha);
        }
        let step = (|| {
            let mut input = MultiValue::new();
            input.push_back(Value::Thread(thread.clone()));
            if let Some(reply) = reply {
                let raise = matches!(reply, Reply::Error(_));
                input.push_back(to_lua(&self.lua, reply, run_state(|s| s.resp.get()), raise)?);
                input.push_back(Value::Boolean(raise));
            }
            self.capped(|| self.step.call::<MultiValue>(input))
        })();
        // The hook yielded the run (a step that yielded nothing); a flag left by a yield that
        // ended elsewhere is not trusted.
        let paused = PAUSED.with(Cell::take);
        let yielded_nothing = |v: &MultiValue| {
            v.len() == 3 && matches!(v.get(1), Some(Value::Integer(0)) | Some(Value::Number(0.0)))
        };
        if paused && matches!(&step, Ok(v) if yielded_nothing(v)) {
            return Ended::Paused;
        }
        let mut values = match step {
            Ok(values) => values.into_iter(),
            Err(e) => {
                self.end();
                return Ended::Reply(self.finish(Err(e), sha));
            }
        };
        let what = values.next();
        if matches!(&what, Some(Value::String(s)) if s.as_bytes().as_ref() == b"call") {
            let n = match values.next() {
                Some(Value::Integer(n)) => n,
                Some(Value::Number(n)) => n as i64,
                _ => 0,
            };
            let packed = match values.next() {
                Some(Value::Table(t)) => {
                    (1..=n).map(|i| t.raw_get::<Value>(i).unwrap_or(Value::Nil)).collect()
                }
                _ => MultiValue::new(),
            };
            match arguments(packed) {
                Ok(args) => return Ended::Call(args),
                Err(e) => {
                    // Answered at once, as the primitive on a shard answers it.
                    let answer = Reply::from(e);
                    return self.resume(thread, Some(&answer), sha);
                }
            }
        }
        self.end();
        Ended::Reply(self.finish(Ok(values.collect()), sha))
    }

    /// [`Interp::resume`] for a run on a shard, whose `redis.call`s never yield: the
    /// coroutine is resumed from here, without the prelude's `step`.
    fn resume_here(&self, thread: &Thread, first: Option<stack::Sequences<'_>>, sha: &str) -> Ended {
        if let Some(first) = &first {
            stack::prepare(&self.slots, thread, first);
        }
        let resumed = self
            .capped(|| Ok(stack::resume(thread)))
            .and_then(|status| stack::outcome(&self.lua, &self.slots, thread, status));
        let paused = PAUSED.with(Cell::take);
        let reply = match resumed {
            Ok(stack::Resumed::Yielded) if paused => return Ended::Paused,
            Ok(stack::Resumed::Yielded) => Reply::Error("ERR script yielded".into()),
            Ok(stack::Resumed::Returned(value)) => from_lua(value, run_state(|s| s.resp.get()), 0),
            Ok(stack::Resumed::Failed(err)) => match self.place.call::<Value>((err, thread)) {
                Ok(placed) => failure(placed, sha, LAST_LINE.with(Cell::get)),
                Err(e) => self.finish(Err(e), sha),
            },
            Err(e) => self.finish(Err(e), sha),
        };
        self.end();
        Ended::Reply(reply)
    }

    /// The reply of an ended run: what it returned, or its error as Redis words it.
    fn finish(&self, ended: mlua::Result<MultiValue>, sha: &str) -> Reply {
        let values = match ended {
            Ok(values) => values,
            Err(e) => {
                return Reply::Error(
                    format!("ERR Error running script {sha}, {:.100}", lua_message(&e)).into(),
                )
            }
        };
        let mut values = values.into_iter();
        match values.next() {
            Some(Value::Boolean(true)) => {
                from_lua(values.next().unwrap_or(Value::Nil), run_state(|s| s.resp.get()), 0)
            }
            Some(Value::Boolean(false)) => {
                failure(values.next().unwrap_or(Value::Nil), sha, LAST_LINE.with(Cell::get))
            }
            _ => Reply::Nil,
        }
    }

    /// Takes back the coroutine of a run that ended, for the next run to reuse when it
    /// finished (one that failed cannot be reset in Lua 5.1).
    pub(crate) fn recycle(&self, thread: Thread) {
        if thread.status() == mlua::ThreadStatus::Finished {
            *self.spare.borrow_mut() = Some(thread);
        }
    }

    /// Ends the run under way without resuming it again (the server is shutting down).
    pub(crate) fn abandon(&mut self) {
        self.end();
    }

    /// SCRIPT FLUSH on this core: the compiled scripts go.
    pub(crate) fn flush(&mut self) {
        self.compiled.clear();
        self.generation = Store::get().generation();
        let _ = self.lua.gc_collect();
    }

    /// The bytes the interpreter holds (INFO's `used_memory_lua`).
    #[must_use]
    pub(crate) fn memory(&self) -> usize {
        self.lua.used_memory()
    }
}

/// The reply of a script that raised `err` (after the error handler placed it).
/// A frame replaced by a tail call names `last_line`, the script's (or function's) last line
/// seen.
fn failure(err: Value, sha: &str, last_line: (bool, i32)) -> Reply {
    let Value::Table(t) = err else {
        let msg = match &err {
            Value::String(s) => s.to_string_lossy().to_string(),
            _ => "execution failure".to_owned(),
        };
        return Reply::Error(format!("ERR Error running script {sha}, {msg:.100}").into());
    };
    let text = |k: &str| match t.raw_get::<Value>(k) {
        Ok(Value::String(s)) => Some(s.to_string_lossy().to_string()),
        Ok(Value::Number(n)) => Some(lua_number(n)),
        Ok(Value::Integer(n)) => Some(n.to_string()),
        _ => None,
    };
    // (Redis crashes on an error table without `err`; a plain ERR is safer.)
    let msg = text("err").unwrap_or_else(|| "ERR".to_owned());
    let (source, line) = match (text("source"), text("line")) {
        (Some(s), _) if s == "=(tail call)" => {
            let source = if last_line.0 { "@user_function" } else { "@user_script" };
            (Some(source.to_owned()), Some(last_line.1.to_string()))
        }
        other => other,
    };
    match (source, line) {
        (Some(source), Some(line)) => {
            Reply::Error(format!("{msg} script: {sha}, on {source}:{line}.").into())
        }
        _ => Reply::Error(msg.into()),
    }
}

/// The text of a Lua error, as Lua reports it (without mlua's traceback).
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        mlua::Error::RuntimeError(m) => m.split("\nstack traceback:").next().unwrap_or(m).to_owned(),
        mlua::Error::MemoryError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => lua_message(cause),
        other => other.to_string(),
    }
}

/// `redis.call`'s arguments as a command: strings, and numbers as `%.17g` writes them.
fn arguments(args: MultiValue) -> Result<Vec<Bytes>, CmdError> {
    if args.is_empty() {
        return Err(CmdError::msg(stack::NO_ARGUMENTS));
    }
    args.into_iter()
        .map(|v| match v {
            Value::String(s) => Ok(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Number(n) => Ok(stack::number_argument(n)),
            Value::Integer(n) => Ok(stack::number_argument(n as f64)),
            _ => Err(CmdError::msg(stack::BAD_ARGUMENT)),
        })
        .collect()
}

/// An error table as Redis's `luaPushErrorBuff` builds it: `{err = "CODE message"}`, marked so
/// that error statistics do not count it twice.
fn error_table(lua: &Lua, e: &CmdError, counted: bool) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", e.to_string().trim_end_matches(['\r', '\n']))?;
    if counted {
        t.raw_set("ignore_error_stats_update", true)?;
    }
    Ok(Value::Table(t))
}

/// A reply as a Lua value, as Redis converts it for a script speaking `resp`; `counted`
/// marks an error reply already counted in the error statistics.
fn to_lua(lua: &Lua, reply: &Reply, resp: u8, counted: bool) -> mlua::Result<Value> {
    match reply {
        Reply::Array(_)
        | Reply::Several(_)
        | Reply::Push(_)
        | Reply::Set(_)
        | Reply::Map(_)
        | Reply::Keyed(_)
        | Reply::Pairs(_) => crate::engine::script::raise::deep(|| to_lua_here(lua, reply, resp, counted)),
        _ => to_lua_here(lua, reply, resp, counted),
    }
}

/// `to_lua`'s work, on whatever stack it got.
fn to_lua_here(lua: &Lua, reply: &Reply, resp: u8, counted: bool) -> mlua::Result<Value> {
    let resp3 = resp == 3;
    let table = |field: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(field, v)?;
        Ok(Value::Table(t))
    };
    let array = |items: &mut dyn Iterator<Item = mlua::Result<Value>>| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        for (i, v) in items.enumerate() {
            t.raw_set(i + 1, v?)?;
        }
        Ok(Value::Table(t))
    };
    Ok(match reply {
        Reply::Ok => table("ok", Value::String(lua.create_string("OK")?))?,
        Reply::Status(s) => table("ok", Value::String(lua.create_string(s.as_bytes())?))?,
        Reply::Error(e) => {
            let t = lua.create_table()?;
            let (code, msg) = e.split_once(' ').unwrap_or(("ERR", e));
            t.raw_set("err", format!("{code} {}", msg.trim_end_matches(['\r', '\n'])))?;
            if counted {
                t.raw_set("ignore_error_stats_update", true)?;
            }
            Value::Table(t)
        }
        Reply::Int(n) => Value::Number(*n as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(b)?),
        Reply::Verbatim(text) if resp3 => {
            let inner = lua.create_table()?;
            inner.raw_set("string", text.as_str())?;
            inner.raw_set("format", "txt")?;
            table("verbatim_string", Value::Table(inner))?
        }
        Reply::Verbatim(text) => Value::String(lua.create_string(text)?),
        Reply::Nil | Reply::NilArray if resp3 => Value::Nil,
        Reply::Nil | Reply::NilArray => Value::Boolean(false),
        Reply::Array(items) | Reply::Several(items) | Reply::Push(items) => {
            array(&mut items.iter().map(|r| to_lua(lua, r, resp, counted)))?
        }
        Reply::BulkArray { .. } => {
            array(&mut reply.bulk_items().into_iter().map(|b| Ok(Value::String(lua.create_string(&b)?))))?
        }
        Reply::Set(items) if resp3 => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(to_lua(lua, item, resp, counted)?, true)?;
            }
            table("set", Value::Table(set))?
        }
        Reply::Set(items) => array(&mut items.iter().map(|r| to_lua(lua, r, resp, counted)))?,
        Reply::Map(pairs) | Reply::Keyed(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(to_lua(lua, k, resp, counted)?, to_lua(lua, v, resp, counted)?)?;
            }
            table("map", Value::Table(map))?
        }
        Reply::Pairs(pairs) | Reply::Keyed(pairs) if resp3 || matches!(reply, Reply::Keyed(_)) => array(
            &mut pairs
                .iter()
                .map(|(a, b)| array(&mut [a, b].into_iter().map(|r| to_lua(lua, r, resp, counted)))),
        )?,
        Reply::Map(pairs) | Reply::Pairs(pairs) | Reply::Keyed(pairs) => {
            array(&mut pairs.iter().flat_map(|(k, v)| [k, v]).map(|r| to_lua(lua, r, resp, counted)))?
        }
        Reply::Double(d) if resp3 => table("double", Value::Number(*d))?,
        Reply::Double(d) => Value::String(lua.create_string(crate::num::format_g17(*d))?),
        Reply::DoubleText(text) if resp3 => table("double", Value::Number(text.parse().unwrap_or_default()))?,
        Reply::DoubleText(text) => Value::String(lua.create_string(text)?),
        Reply::Bool(b) if resp3 => Value::Boolean(*b),
        Reply::Bool(b) => Value::Number(f64::from(u8::from(*b))),
    })
}

/// A Lua number as Redis's `(long long)` cast makes it on x86-64 (`cvttsd2si`): truncated,
/// and a NaN or a number out of range is the smallest integer.
fn long_long(n: f64) -> i64 {
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
        n as i64
    } else {
        i64::MIN
    }
}

/// A script's return value as a reply, as Redis's `luaReplyToRedisReply` converts it.
fn from_lua(value: Value, resp: u8, depth: usize) -> Reply {
    crate::engine::script::raise::deep(|| from_lua_here(value, resp, depth))
}

/// `from_lua`'s work, on whatever stack it got.
fn from_lua_here(value: Value, resp: u8, depth: usize) -> Reply {
    if depth > MAX_DEPTH {
        return Reply::Error("ERR reached lua stack limit".into());
    }
    match value {
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(true) if resp == 2 => Reply::Int(1),
        Value::Boolean(false) if resp == 2 => Reply::Nil,
        Value::Boolean(b) => Reply::Bool(b),
        Value::Number(n) => Reply::Int(long_long(n)),
        Value::Integer(n) => Reply::Int(n),
        Value::Table(t) => table_reply(&t, resp, depth),
        _ => Reply::Nil,
    }
}

fn table_reply(t: &Table, resp: u8, depth: usize) -> Reply {
    let field = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        return Reply::Error(e.to_string_lossy().to_string().into());
    }
    if let Value::String(ok) = field("ok") {
        let text: String =
            ok.to_string_lossy().chars().map(|c| if c == '\r' || c == '\n' { ' ' } else { c }).collect();
        return Reply::Status(text.into());
    }
    if let Value::Number(_) | Value::Integer(_) = field("double") {
        // Read as a float: mlua makes an integral number an Integer, which loses -0's sign.
        return Reply::Double(t.raw_get::<f64>("double").unwrap_or_default());
    }
    if let Value::String(big) = field("big_number") {
        return Reply::Status(big.to_string_lossy().to_string().into());
    }
    if let Value::Table(v) = field("verbatim_string") {
        if let (Ok(Value::String(_)), Ok(Value::String(s))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
        {
            return Reply::Verbatim(s.to_string_lossy().to_string());
        }
    }
    if let Value::Table(map) = field("map") {
        let pairs = map
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (from_lua(k, resp, depth + 1), from_lua(v, resp, depth + 1)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Value::Table(set) = field("set") {
        let items = set
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| from_lua(k, resp, depth + 1))
            .collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(from_lua(v, resp, depth + 1)),
        }
    }
    Reply::Array(items)
}

/// The environment of functions' code (a proxy whose `__index` the interpreter switches, its
/// metatable) and the load API: `redis.register_function`, `redis.log` and the versions, and
/// nothing else (reading any other global is an error, as in Redis).
fn function_env(
    lua: &Lua,
    prim: &Table,
    raise: &Raise,
    visible: &Table,
) -> mlua::Result<(Table, Table, Table)> {
    let readonly: Function = prim.raw_get("readonly")?;
    let missing: Function = prim.raw_get("missing")?;
    let redis = lua.create_table()?;
    let real_redis: Table = lua.globals().raw_get("redis")?;
    for name in
        ["log", "LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING", "REDIS_VERSION", "REDIS_VERSION_NUM"]
    {
        redis.raw_set(name, real_redis.raw_get::<Value>(name)?)?;
    }
    redis.raw_set("register_function", register_function(lua, raise)?)?;
    let strict = lua.create_table()?;
    strict.raw_set("__index", missing)?;
    redis.set_metatable(Some(strict.clone()));
    let load_api = lua.create_table()?;
    load_api.raw_set("redis", redis)?;
    load_api.set_metatable(Some(strict));
    let fenv = lua.create_table()?;
    let meta = lua.create_table()?;
    meta.raw_set("__index", visible.clone())?;
    meta.raw_set("__newindex", readonly)?;
    meta.raw_set("__metatable", false)?;
    fenv.set_metatable(Some(meta.clone()));
    Ok((fenv, meta, load_api))
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name = ...,
/// callback = ..., flags = {...}, description = ...}`, as Redis 7.0 reads them.
fn register_function(lua: &Lua, raise: &Raise) -> mlua::Result<Function> {
    let raise = raise.clone();
    lua.create_function(move |lua, args: MultiValue| -> mlua::Result<()> {
        let fail = |msg: &str| Err(raise.table(lua, msg));
        if REGISTERING.with(|r| r.borrow().is_none()) {
            return fail("redis.register_function can only be called on FUNCTION LOAD command");
        }
        let args: Vec<Value> = args.into_iter().collect();
        let (name, callback, description, flags) = match args.as_slice() {
            [Value::Table(t)] => {
                let (mut name, mut callback, mut description, mut flags) = (None, None, None, Flags::default());
                for pair in t.clone().pairs::<Value, Value>() {
                    let (k, v) = pair?;
                    let Value::String(k) = k else {
                        return fail("named argument key given to redis.register_function is not a string");
                    };
                    match (k.as_bytes().as_ref(), v) {
                        (b"function_name", Value::String(v)) => name = Some(v.to_string_lossy().to_string()),
                        (b"function_name", _) => {
                            return fail("function_name argument given to redis.register_function must be a string")
                        }
                        (b"description", Value::String(v)) => description = Some(v.to_string_lossy().to_string()),
                        (b"description", _) => {
                            return fail("description argument given to redis.register_function must be a string")
                        }
                        (b"callback", Value::Function(f)) => callback = Some(f),
                        (b"callback", _) => {
                            return fail("callback argument given to redis.register_function must be a function")
                        }
                        (b"flags", Value::Table(list)) => {
                            for flag in list.sequence_values::<Value>() {
                                let parsed = match flag? {
                                    Value::String(f) => Flags::of(format!("#!lua flags={}\n", f.to_string_lossy()).as_bytes())
                                        .ok()
                                        .map(|(f, _)| f),
                                    _ => None,
                                };
                                match parsed {
                                    Some(f) => flags = flags.union(f),
                                    None => return fail("unknown flag given"),
                                }
                            }
                        }
                        (b"flags", _) => {
                            return fail("flags argument to redis.register_function must be a table representing function flags")
                        }
                        _ => return fail("unknown argument given to redis.register_function"),
                    }
                }
                let Some(name) = name else { return fail("redis.register_function must get a function name argument") };
                let Some(callback) = callback else { return fail("redis.register_function must get a callback argument") };
                (name, callback, description, flags)
            }
            [_] => {
                return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")
            }
            [name, callback] => {
                let Value::String(name) = name else { return fail("first argument to redis.register_function must be a string") };
                let Value::Function(callback) = callback else {
                    return fail("second argument to redis.register_function must be a function");
                };
                (name.to_string_lossy().to_string(), callback.clone(), None, Flags::default())
            }
            _ => return fail("wrong number of arguments to redis.register_function"),
        };
        if !functions::valid_name(&name) {
            // (Redis 7.0 names the library here, for a function's name.)
            return fail("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
        }
        let duplicate = REGISTERING.with(|r| r.borrow().as_ref().is_some_and(|v| v.iter().any(|f| f.name == name)));
        if duplicate {
            return fail("Function already exists in the library");
        }
        REGISTERING.with(|r| {
            if let Some(v) = r.borrow_mut().as_mut() {
                v.push(Registered { name, callback, description, flags });
            }
        });
        Ok(())
    })
}

/// What a script sees as its globals: an empty proxy that reads through to a copy of the
/// globals (each library replaced by a proxy of its own) and refuses every change; reading a
/// name the copy lacks is an error, as in Redis. Returns the proxy and the copy (where each
/// run sets KEYS and ARGV).
fn protect(lua: &Lua, real: &Table, prim: &Table) -> mlua::Result<(Table, Table)> {
    let readonly: Function = prim.raw_get("readonly")?;
    let missing: Function = prim.raw_get("missing")?;
    let proxy = |target: &Table| -> mlua::Result<Table> {
        let p = lua.create_table()?;
        let meta = lua.create_table()?;
        meta.raw_set("__index", target.clone())?;
        meta.raw_set("__newindex", readonly.clone())?;
        meta.raw_set("__metatable", false)?;
        p.set_metatable(Some(meta));
        Ok(p)
    };
    let visible = lua.create_table()?;
    for pair in real.pairs::<Value, Value>() {
        let (k, v) = pair?;
        match (&k, v) {
            (Value::String(name), _) if name.as_bytes().as_ref() == b"_G" => {}
            (_, Value::Table(lib)) => visible.raw_set(k, proxy(&lib)?)?,
            (_, v) => visible.raw_set(k, v)?,
        }
    }
    let strict = lua.create_table()?;
    strict.raw_set("__index", missing)?;
    visible.set_metatable(Some(strict));
    let env = proxy(&visible)?;
    visible.raw_set("_G", env.clone())?;
    // Strings' methods (`("x"):rep(3)`) read the string library through its proxy too.
    if let Value::Table(p) = visible.raw_get::<Value>("string")? {
        let meta: Option<Table> = lua.load("return getmetatable('')").call(())?;
        if let Some(meta) = meta {
            meta.raw_set("__index", p)?;
            meta.raw_set("__metatable", false)?;
        }
    }
    Ok((env, visible))
}

/// A Lua value as text, as `lua_tolstring` gives it (strings and numbers; else nothing).
fn text_of(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Number(n) => Some(lua_number(*n).into_bytes()),
        Value::Integer(n) => Some(n.to_string().into_bytes()),
        _ => None,
    }
}

/// A Lua value as a number, as `lua_tonumber` reads it.
fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(n) => Some(*n as f64),
        Value::String(s) => {
            s.to_str().ok().and_then(|t| crate::num::strtod(t.trim().as_bytes())).map(|(f, _)| f)
        }
        _ => None,
    }
}

/// `redis.*`: everything but `call` and `pcall` (installed by each run).
fn install_redis_library(lua: &Lua, redis: &Table, raise: &Raise) -> mlua::Result<()> {
    redis.raw_set("REDIS_VERSION", crate::REDIS_VERSION)?;
    redis.raw_set("REDIS_VERSION_NUM", redis_version_num())?;
    for (name, level) in [("LOG_DEBUG", 0), ("LOG_VERBOSE", 1), ("LOG_NOTICE", 2), ("LOG_WARNING", 3)] {
        redis.raw_set(name, level)?;
    }
    for (name, flags) in
        [("REPL_NONE", 0), ("REPL_AOF", 1), ("REPL_SLAVE", 2), ("REPL_REPLICA", 2), ("REPL_ALL", 3)]
    {
        redis.raw_set(name, flags)?;
    }
    let r = raise.clone();
    redis.raw_set(
        "sha1hex",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() != 1 {
                return Err(r.table(lua, "wrong number of arguments"));
            }
            let text = args.iter().next().and_then(text_of).unwrap_or_default();
            lua.create_string(crate::engine::script::store::sha1hex(&text))
        })?,
    )?;
    let single = |field: &'static str, error: bool| {
        move |lua: &Lua, args: MultiValue| -> mlua::Result<Value> {
            let arg = match (args.len(), args.into_iter().next()) {
                (1, Some(Value::String(s))) => s,
                _ => return error_table(lua, &CmdError::msg("ERR wrong number or type of arguments"), false),
            };
            if !error {
                let t = lua.create_table()?;
                t.raw_set(field, arg)?;
                return Ok(Value::Table(t));
            }
            // `luaPushErrorBuff` of the text with a leading '-': its first word is the code.
            let text = arg.to_string_lossy().to_string();
            let coded = text.strip_prefix('-').unwrap_or(&text);
            to_lua(lua, &Reply::Error(coded.to_owned().into()), 2, false)
        }
    };
    redis.raw_set("error_reply", lua.create_function(single("err", true))?)?;
    redis.raw_set("status_reply", lua.create_function(single("ok", false))?)?;
    let r = raise.clone();
    redis.raw_set(
        "setresp",
        lua.create_function(move |lua, args: MultiValue| {
            if !run_state(|s| s.running.get()) {
                return Err(r.table(lua, "redis.setresp can only be called inside a script invocation"));
            }
            if args.len() != 1 {
                return Err(r.table(lua, "redis.setresp() requires one argument."));
            }
            let resp = args.iter().next().and_then(number_of).unwrap_or(0.0) as i64;
            if resp != 2 && resp != 3 {
                return Err(r.table(lua, "RESP version must be 2 or 3."));
            }
            run_state(|s| s.resp.set(resp as u8));
            Ok(())
        })?,
    )?;
    let r = raise.clone();
    redis.raw_set(
        "set_repl",
        lua.create_function(move |lua, args: MultiValue| {
            if !run_state(|s| s.running.get()) {
                return Err(r.table(lua, "redis.set_repl can only be called inside a script invocation"));
            }
            if args.len() != 1 {
                return Err(r.table(lua, "redis.set_repl() requires two arguments."));
            }
            let flags = args.iter().next().and_then(number_of).unwrap_or(-1.0) as i64;
            if !(0..=3).contains(&flags) {
                return Err(r.table(
                    lua,
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                ));
            }
            Ok(())
        })?,
    )?;
    redis.raw_set("replicate_commands", lua.create_function(|_, _: MultiValue| Ok(true))?)?;
    redis.raw_set("breakpoint", lua.create_function(|_, _: MultiValue| Ok(false))?)?;
    redis.raw_set("debug", lua.create_function(|_, _: MultiValue| Ok(()))?)?;
    let r = raise.clone();
    redis.raw_set(
        "log",
        lua.create_function(move |lua, args: MultiValue| {
            if args.len() < 2 {
                return Err(r.table(lua, "redis.log() requires two arguments or more."));
            }
            let mut args = args.into_iter();
            let level = match args.next() {
                Some(Value::Number(n)) => n as i64,
                Some(Value::Integer(n)) => n,
                _ => return Err(r.table(lua, "First argument must be a number (log level).")),
            };
            if !(0..=3).contains(&level) {
                return Err(r.table(lua, "Invalid debug level."));
            }
            let text: Vec<String> =
                args.filter_map(|v| text_of(&v)).map(|t| String::from_utf8_lossy(&t).into_owned()).collect();
            let text = text.join(" ");
            match level {
                0 | 1 => tracing::debug!(target: "lua", "{text}"),
                2 => tracing::info!(target: "lua", "{text}"),
                _ => tracing::warn!(target: "lua", "{text}"),
            }
            Ok(())
        })?,
    )?;
    Ok(())
}

/// `redis.REDIS_VERSION_NUM`: the version as `0x00MMmmpp`.
fn redis_version_num() -> i64 {
    crate::REDIS_VERSION.split('.').take(3).fold(0, |n, part| n << 8 | part.parse::<i64>().unwrap_or(0))
}

/// `math.random` and `math.randomseed` on Redis's `redisLrand48`, so a script's random
/// numbers are the same on every machine.
fn install_math_random(lua: &Lua, real: &Table, raise: &Raise) -> mlua::Result<()> {
    let math: Table = real.raw_get("math")?;
    let r = raise.clone();
    math.raw_set(
        "random",
        lua.create_function(move |lua, args: MultiValue| {
            if !run_state(|s| s.running.get()) {
                return Err(r.placed(lua, "math.random can only be called inside a script invocation"));
            }
            let x =
                run_state(|s| s.rand.get()).wrapping_mul(0x5_DEEC_E66D).wrapping_add(0xB) & ((1 << 48) - 1);
            run_state(|s| s.rand.set(x));
            let max = i64::from(i32::MAX);
            let random = ((x >> 17) as i64 % max) as f64 / max as f64;
            let int = |v: &Value| number_of(v).map(|f| f as i64);
            let args: Vec<Value> = args.into_iter().collect();
            let expected =
                |n: usize| format!("bad argument #{n} to 'random' (number expected, got no value)");
            Ok(match args.as_slice() {
                [] => random,
                [u] => {
                    let u = int(u).ok_or_else(|| r.placed(lua, &expected(1)))?;
                    if u < 1 {
                        return Err(r.placed(lua, "bad argument #1 to 'random' (interval is empty)"));
                    }
                    (random * u as f64).floor() + 1.0
                }
                [l, u] => {
                    let l = int(l).ok_or_else(|| r.placed(lua, &expected(1)))?;
                    let u = int(u).ok_or_else(|| r.placed(lua, &expected(2)))?;
                    if l > u {
                        return Err(r.placed(lua, "bad argument #2 to 'random' (interval is empty)"));
                    }
                    (random * (u - l + 1) as f64).floor() + l as f64
                }
                _ => return Err(r.placed(lua, "wrong number of arguments")),
            })
        })?,
    )?;
    let r = raise.clone();
    math.raw_set(
        "randomseed",
        lua.create_function(move |lua, args: MultiValue| {
            if !run_state(|s| s.running.get()) {
                return Err(r.placed(lua, "math.randomseed can only be called inside a script invocation"));
            }
            let Some(seed) = args.iter().next().and_then(number_of) else {
                return Err(r.placed(lua, "bad argument #1 to 'randomseed' (number expected, got no value)"));
            };
            run_state(|s| s.rand.set((u64::from(seed as i64 as i32 as u32) << 16) | 0x330E));
            Ok(())
        })?,
    )?;
    Ok(())
}
