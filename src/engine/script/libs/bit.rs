//! `bit`: LuaBitOp 1.0.2 as Redis 7.0 bundles it (deps/lua/src/lua_bit.c). Lua 5.1 numbers
//! are doubles; an argument becomes 32 bits as `barg` makes it (add 2^52+2^51, keep the low 32
//! bits of the double's representation), and results come back as signed 32-bit numbers.
//!
//! Also the few `lauxlib` behaviours that `bit` and `struct` share: `lua_tonumber` of a value,
//! `luaL_typename`, and `luaL_argerror`'s "bad argument #N to 'name' (msg)" messages, which name
//! the function as the calling instruction does.

use mlua::{IntoLuaMulti, Lua, MultiValue, Table, Value};

use crate::engine::script::raise::Raise;

/// 2^52+2^51: added to a double, leaves its integral part, rounded, in the low mantissa bits.
const MAGIC: f64 = 6_755_399_441_055_744.0;

/// Sets the `bit` global.
pub(super) fn install(lua: &Lua, globals: &Table, raise: &Raise) -> mlua::Result<()> {
    let t = lua.create_table()?;
    add(lua, &t, raise, "tobit", |lua, r, args| Ok(ret(barg(lua, r, args, 1)?)))?;
    add(lua, &t, raise, "bnot", |lua, r, args| Ok(ret(!barg(lua, r, args, 1)?)))?;
    add(lua, &t, raise, "band", |lua, r, args| fold(lua, r, args, |a, b| a & b))?;
    add(lua, &t, raise, "bor", |lua, r, args| fold(lua, r, args, |a, b| a | b))?;
    add(lua, &t, raise, "bxor", |lua, r, args| fold(lua, r, args, |a, b| a ^ b))?;
    add(lua, &t, raise, "lshift", |lua, r, args| shift(lua, r, args, |b, n| b << n))?;
    add(lua, &t, raise, "rshift", |lua, r, args| shift(lua, r, args, |b, n| b >> n))?;
    // `(SBits)b >> n`: the bits reinterpreted as signed, shifted arithmetically, and back.
    add(lua, &t, raise, "arshift", |lua, r, args| shift(lua, r, args, |b, n| ((b as i32) >> n) as u32))?;
    add(lua, &t, raise, "rol", |lua, r, args| shift(lua, r, args, u32::rotate_left))?;
    add(lua, &t, raise, "ror", |lua, r, args| shift(lua, r, args, u32::rotate_right))?;
    add(lua, &t, raise, "bswap", |lua, r, args| Ok(ret(barg(lua, r, args, 1)?.swap_bytes())))?;
    add(lua, &t, raise, "tohex", tohex)?;
    globals.raw_set("bit", t)
}

/// Sets `t[name]` to a Rust function of the arguments (as a slice) that raises through `raise`.
pub(super) fn add<R: IntoLuaMulti + 'static>(
    lua: &Lua,
    t: &Table,
    raise: &Raise,
    name: &str,
    f: fn(&Lua, &Raise, &[Value]) -> mlua::Result<R>,
) -> mlua::Result<()> {
    let r = raise.clone();
    t.raw_set(
        name,
        lua.create_function(move |lua, args: MultiValue| {
            let args: Vec<Value> = args.into_iter().collect();
            f(lua, &r, &args)
        })?,
    )
}

/// `barg`: argument `i` (from 1) as 32 bits, or `luaL_typerror` when it is not a number.
fn barg(lua: &Lua, raise: &Raise, args: &[Value], i: usize) -> mlua::Result<u32> {
    let arg = args.get(i - 1);
    match arg.and_then(to_number) {
        Some(n) => Ok(bits(n)),
        None => Err(type_error(lua, raise, i, "number", arg)),
    }
}

/// The low 32 bits of `n + 2^52 + 2^51`: `n` rounded to an integer, modulo 2^32.
fn bits(n: f64) -> u32 {
    // Deliberate truncation: LuaBitOp keeps the low 32 bits of the representation.
    (n + MAGIC).to_bits() as u32
}

/// `BRET`: 32 bits as the signed number the script sees.
fn ret(b: u32) -> f64 {
    // Deliberate reinterpretation of the bits as signed, as `(SBits)b`.
    f64::from(b as i32)
}

/// `band`, `bor`, `bxor`: the first argument, then the others from the last down.
fn fold(lua: &Lua, raise: &Raise, args: &[Value], op: fn(u32, u32) -> u32) -> mlua::Result<f64> {
    let mut b = barg(lua, raise, args, 1)?;
    for i in (2..=args.len()).rev() {
        b = op(b, barg(lua, raise, args, i)?);
    }
    Ok(ret(b))
}

/// The shifts and rotations: the second argument counts modulo 32.
fn shift(lua: &Lua, raise: &Raise, args: &[Value], op: fn(u32, u32) -> u32) -> mlua::Result<f64> {
    let b = barg(lua, raise, args, 1)?;
    let n = barg(lua, raise, args, 2)? & 31;
    Ok(ret(op(b, n)))
}

/// `bit.tohex(x [,n])`: the low `|n|` hex digits (at most 8, 8 by default), uppercase when
/// `n` is negative.
fn tohex(lua: &Lua, raise: &Raise, args: &[Value]) -> mlua::Result<mlua::String> {
    let mut b = barg(lua, raise, args, 1)?;
    // `lua_isnone`: an explicit nil is read (and refused) by `barg`.
    // Deliberate reinterpretation of the bits as signed, as `(SBits)barg(L, 2)`.
    let n = if args.len() < 2 { 8 } else { barg(lua, raise, args, 2)? as i32 };
    let digits: &[u8; 16] = if n < 0 { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    // C negates -2^31 into itself and then asks for a huge string; 8 digits is the sane reading.
    let n = n.unsigned_abs().min(8) as usize;
    let mut buf = vec![0u8; n];
    for slot in buf.iter_mut().rev() {
        *slot = digits[(b & 15) as usize];
        b >>= 4;
    }
    lua.create_string(buf)
}

/// A value as `lua_tonumber` reads it: numbers, and strings Lua 5.1 takes for numbers.
pub(super) fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(n) => Some(*n as f64),
        Value::String(s) => str_to_number(&s.as_bytes()),
        _ => None,
    }
}

/// `luaO_str2d`: `strtod` on the text up to its first NUL, spaces allowed either side. (Its
/// `strtoul` fallback for hexadecimal never succeeds where glibc's `strtod` has failed.)
pub(super) fn str_to_number(bytes: &[u8]) -> Option<f64> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = &bytes[..end];
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = text.iter().position(|b| !is_space(b))?;
    let stop = text.iter().rposition(|b| !is_space(b))? + 1;
    crate::num::strtod(text.get(start..stop)?).map(|(n, _)| n)
}

/// `luaL_typename` of argument `arg` (`None` when the argument is absent).
pub(super) fn type_name(arg: Option<&Value>) -> &'static str {
    match arg {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Integer(_) | Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `luaL_typerror`: "bad argument #N to 'name' (<expected> expected, got <type>)".
pub(super) fn type_error(
    lua: &Lua,
    raise: &Raise,
    narg: usize,
    expected: &str,
    arg: Option<&Value>,
) -> mlua::Error {
    let msg = format!("{expected} expected, got {}", type_name(arg));
    arg_error(lua, raise, narg, msg.as_bytes())
}

/// `luaL_argerror`: names the running function as its caller's instruction does (`?` when it
/// cannot tell), not counting `self` in a method call.
pub(super) fn arg_error(lua: &Lua, raise: &Raise, narg: usize, extra: &[u8]) -> mlua::Error {
    let names = lua.inspect_stack(0).map(|f| {
        let names = f.names();
        (names.name.map(|n| n.into_owned()), names.name_what == Some("method"))
    });
    let Some((name, method)) = names else {
        return placed_bytes(lua, raise, &wrap(format!("bad argument #{narg} ("), extra));
    };
    let name = name.unwrap_or_else(|| "?".to_owned());
    let head = match (method, narg) {
        (true, 1) => format!("calling '{name}' on bad self ("),
        (true, _) => format!("bad argument #{} to '{name}' (", narg - 1),
        (false, _) => format!("bad argument #{narg} to '{name}' ("),
    };
    placed_bytes(lua, raise, &wrap(head, extra))
}

/// `head`, the bytes of `extra`, and a closing parenthesis.
fn wrap(head: String, extra: &[u8]) -> Vec<u8> {
    let mut msg = head.into_bytes();
    msg.extend_from_slice(extra);
    msg.push(b')');
    msg
}

/// `Raise::placed` for a message that may not be UTF-8 (such as an invalid format option byte).
pub(super) fn placed_bytes(lua: &Lua, raise: &Raise, msg: &[u8]) -> mlua::Error {
    if let Ok(text) = std::str::from_utf8(msg) {
        return raise.placed(lua, text);
    }
    // Let `placed` raise the position alone, then append the bytes to the pending string.
    let marker = raise.placed(lua, "");
    let place = match raise.0.raw_get::<mlua::String>("pending") {
        Ok(place) => place.as_bytes().to_vec(),
        Err(_) => return marker,
    };
    let mut full = place;
    full.extend_from_slice(msg);
    match lua.create_string(full) {
        Ok(text) => raise.value(Value::String(text)),
        Err(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use super::super::testing::error;
    use crate::engine::script::raise::Raise;

    /// A state with `bit` installed, and its `Raise`.
    fn state() -> mlua::Result<(Lua, Raise)> {
        let (lua, raise) = super::super::testing::state(super::install)?;
        Ok((lua, raise))
    }

    /// The number `code` returns.
    fn num(lua: &Lua, code: &str) -> mlua::Result<f64> {
        lua.load(code).set_name("@user_script").eval::<f64>()
    }

    /// The values real Redis 7.0 gives.
    #[test]
    fn known_values() -> mlua::Result<()> {
        let (lua, _) = state()?;
        assert_eq!(num(&lua, "return bit.tobit(0xffffffff)")?, -1.0);
        assert_eq!(lua.load("return bit.tohex(65535)").eval::<String>()?, "0000ffff");
        assert_eq!(lua.load("return bit.tohex(-1, -4)").eval::<String>()?, "FFFF");
        assert_eq!(lua.load("return bit.tohex(0x1234abcd, 12)").eval::<String>()?, "1234abcd");
        assert_eq!(lua.load("return bit.tohex(0x1234abcd, 2)").eval::<String>()?, "cd");
        assert_eq!(num(&lua, "return bit.bswap(0x12345678)")?, f64::from(0x7856_3412));
        assert_eq!(num(&lua, "return bit.rol(0x12345678, 12)")?, f64::from(0x4567_8123));
        assert_eq!(num(&lua, "return bit.ror(0x12345678, 12)")?, f64::from(0x6781_2345));
        assert_eq!(num(&lua, "return bit.rol(0x12345678, 32)")?, f64::from(0x1234_5678));
        assert_eq!(num(&lua, "return bit.band(0xff, 0x0f)")?, 15.0);
        assert_eq!(num(&lua, "return bit.bor(1, 2, 4, 8)")?, 15.0);
        assert_eq!(num(&lua, "return bit.bxor(0xff, 0x0f)")?, 240.0);
        assert_eq!(num(&lua, "return bit.bnot(0)")?, -1.0);
        assert_eq!(num(&lua, "return bit.lshift(1, 31)")?, -2_147_483_648.0);
        assert_eq!(num(&lua, "return bit.lshift(1, 33)")?, 2.0);
        assert_eq!(num(&lua, "return bit.rshift(-1, 28)")?, 15.0);
        assert_eq!(num(&lua, "return bit.arshift(-256, 4)")?, -16.0);
        Ok(())
    }

    /// Fractional, huge and string arguments normalize as `barg` makes them.
    #[test]
    fn normalization() -> mlua::Result<()> {
        let (lua, _) = state()?;
        assert_eq!(num(&lua, "return bit.tobit(2^32 + 1)")?, 1.0);
        assert_eq!(num(&lua, "return bit.tobit(2.5)")?, 2.0);
        assert_eq!(num(&lua, "return bit.tobit(3.5)")?, 4.0);
        assert_eq!(num(&lua, "return bit.tobit(-1.5)")?, -2.0);
        assert_eq!(num(&lua, "return bit.tobit(2^31)")?, -2_147_483_648.0);
        assert_eq!(num(&lua, "return bit.band('0xff', ' 15 ')")?, 15.0);
        Ok(())
    }

    /// Argument errors read as `luaL_typerror` writes them.
    #[test]
    fn errors() -> mlua::Result<()> {
        let (lua, raise) = state()?;
        assert_eq!(
            error(&lua, &raise, "return bit.band()")?,
            "user_script:1: bad argument #1 to 'band' (number expected, got no value)"
        );
        assert_eq!(
            error(&lua, &raise, "return bit.band('x')")?,
            "user_script:1: bad argument #1 to 'band' (number expected, got string)"
        );
        assert_eq!(
            error(&lua, &raise, "return bit.bor(1, 2, {}, nil)")?,
            "user_script:1: bad argument #4 to 'bor' (number expected, got nil)"
        );
        assert_eq!(
            error(&lua, &raise, "local x = 1\nreturn bit.lshift(1)")?,
            "user_script:2: bad argument #2 to 'lshift' (number expected, got no value)"
        );
        assert_eq!(
            error(&lua, &raise, "return bit.tohex(1, nil)")?,
            "user_script:1: bad argument #2 to 'tohex' (number expected, got nil)"
        );
        Ok(())
    }
}
