//! How a Rust function called by a script raises a Lua error value: mlua lets a Rust function
//! raise only its own error object, so the value to raise waits in `prim.pending` and a marker
//! is raised; the prelude's error handler, `pcall` and `xpcall` see the pending value in the
//! marker's place (see `lua.rs`).

use mlua::{Lua, Table, Value};

/// How a Rust function raises a Lua value (see the module's header).
#[derive(Clone)]
pub(crate) struct Raise(pub(crate) Table);

impl Raise {
    /// Raises `value` itself.
    pub(crate) fn value(&self, value: Value) -> mlua::Error {
        let _ = self.0.raw_set("pending", value);
        mlua::Error::RuntimeError("pending".into())
    }

    /// Raises an error table, as Redis's `luaPushError` then `lua_error` raise it.
    pub(crate) fn table(&self, lua: &Lua, msg: &str) -> mlua::Error {
        match lua.create_table().and_then(|t| t.raw_set("err", format!("ERR {msg}")).map(|()| t)) {
            Ok(t) => self.value(Value::Table(t)),
            Err(e) => e,
        }
    }

    /// Raises a message placed at the calling line, as `luaL_error` from a C function does.
    pub(crate) fn placed(&self, lua: &Lua, msg: &str) -> mlua::Error {
        let place = lua
            .inspect_stack(1)
            .filter(|d| d.curr_line() > 0)
            .map(|d| {
                let src = d.source().short_src.map(|s| s.into_owned()).unwrap_or_default();
                format!("{src}:{}: ", d.curr_line())
            })
            .unwrap_or_default();
        match lua.create_string(format!("{place}{msg}")) {
            Ok(text) => self.value(Value::String(text)),
            Err(e) => e,
        }
    }
}

/// A number as Lua 5.1's `tostring` writes it (`%.14g`).
pub(crate) fn lua_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    let s = format!("{n:.13e}");
    // `%.14g`: 14 significant digits, trailing zeros dropped, exponent only when needed.
    let exp: i32 = s.rsplit('e').next().and_then(|e| e.parse().ok()).unwrap_or(0);
    if (-5..14).contains(&exp) {
        let digits = (13 - exp).max(0) as usize;
        let f = format!("{n:.digits$}");
        let f = if f.contains('.') { f.trim_end_matches('0').trim_end_matches('.').to_owned() } else { f };
        return f;
    }
    let (mantissa, _) = s.split_once('e').unwrap_or((&s, ""));
    let mantissa =
        if mantissa.contains('.') { mantissa.trim_end_matches('0').trim_end_matches('.') } else { mantissa };
    format!("{mantissa}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
}

/// Runs `f`, a step of a recursion a script controls the depth of (nested tables converted,
/// JSON or MessagePack nested), on a fresh stack segment when less than 64 KiB of this
/// thread's stack is left: a depth the limits allow never overflows an executor's stack.
pub(crate) fn deep<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(64 * 1024, 1024 * 1024, f)
}
