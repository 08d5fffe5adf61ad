//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis 7.0 bundles it (deps/lua/src/lua_cmsgpack.c):
//! `pack`, `unpack`, `unpack_one`, `unpack_limit` and the module's metadata, with the C
//! library's encodings and error texts.
//!
//! Packing: a number that is an integer in `int64_t` range becomes the smallest MessagePack
//! integer that holds it, any other a float 32 when it survives the trip through `float`, else
//! a float 64; strings are fixraw/str 8/str 16/str 32; a table whose keys are exactly 1..n is
//! an array, any other a map (walked in `lua_next` order); tables nested 16 deep, and values
//! MessagePack cannot hold, become nil.
//!
//! Unpacking accounts for the Lua stack slots the C library uses, so it refuses as many
//! values as Redis does ("stack overflow (...)"); it also refuses nesting past [`MAX_DEPTH`]
//! and more than [`MAX_REF_RESULTS`] strings and tables at once (the C library stops short of
//! those only later, when its stack runs out), so that a script cannot exhaust the thread's
//! stack or mlua's reference slots.

use mlua::{Lua, MultiValue, Table, Value};

use super::bit::arg_error;
use super::cjson::{check_integer, check_string, opt_integer};
use crate::engine::script::raise::Raise;

/// `LUACMSGPACK_MAX_NESTING`: tables this deep pack as nil.
const MAX_NESTING: usize = 16;

/// `LUAI_MAXCSTACK`: the stack slots a C function may use.
const MAX_SLOTS: i64 = 8000;

/// The most arguments `pack` takes: `lua_checkstack(L, nargs)` needs room for as many again.
const MAX_PACK_ARGS: usize = 4000;

/// The deepest nesting unpacking accepts.
const MAX_DEPTH: usize = 1000;

/// The most strings and tables one unpack returns.
const MAX_REF_RESULTS: usize = 3000;

/// What `luaL_checkstack` says when unpacking runs out of stack.
const TOO_MANY: &str =
    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";

/// Sets the `cmsgpack` global.
pub(super) fn install(lua: &Lua, globals: &Table, raise: &Raise) -> mlua::Result<()> {
    let t = lua.create_table()?;
    let r = raise.clone();
    t.raw_set("pack", lua.create_function(move |lua, args: MultiValue| pack(lua, &r, &args))?)?;
    let r = raise.clone();
    t.raw_set(
        "unpack",
        lua.create_function(move |lua, args: MultiValue| {
            let text = check_string(lua, &r, args.front(), 1)?;
            // `mp_unpack` leaves all its arguments on the stack.
            let top = i64::try_from(args.len()).unwrap_or(MAX_SLOTS);
            unpack_full(lua, &r, &text.as_bytes(), top, 0, 0)
        })?,
    )?;
    let r = raise.clone();
    t.raw_set(
        "unpack_one",
        lua.create_function(move |lua, args: MultiValue| {
            let offset = opt_integer(lua, &r, args.get(1), 2, 0)?;
            let text = check_string(lua, &r, args.front(), 1)?;
            unpack_full(lua, &r, &text.as_bytes(), 1, 1, offset)
        })?,
    )?;
    let r = raise.clone();
    t.raw_set(
        "unpack_limit",
        lua.create_function(move |lua, args: MultiValue| {
            let limit = check_integer(lua, &r, args.get(1), 2)?;
            let offset = opt_integer(lua, &r, args.get(2), 3, 0)?;
            let text = check_string(lua, &r, args.front(), 1)?;
            unpack_full(lua, &r, &text.as_bytes(), 1, limit, offset)
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    globals.raw_set("cmsgpack", t)
}

// ===== Packing =====

/// `mp_pack`: every argument packed, one after the other.
fn pack(lua: &Lua, raise: &Raise, args: &MultiValue) -> mlua::Result<mlua::String> {
    if args.is_empty() {
        return Err(arg_error(lua, raise, 0, b"MessagePack pack needs input."));
    }
    if args.len() > MAX_PACK_ARGS {
        return Err(arg_error(lua, raise, 0, b"Too many arguments for MessagePack pack."));
    }
    let mut out = Vec::new();
    for v in args.iter() {
        encode(&mut out, v, 0)?;
    }
    lua.create_string(&out)
}

/// `mp_encode_lua_type`: one value, `level` tables deep.
fn encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    crate::engine::script::raise::deep(|| encode_here(out, v, level))
}

/// `encode`'s work, on whatever stack it got.
fn encode_here(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::String(s) => encode_bytes(out, &s.as_bytes()),
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(n) => encode_int(out, *n),
        Value::Number(n) => {
            if is_int64(*n) {
                // In range and integral: exact.
                encode_int(out, *n as i64);
            } else {
                encode_double(out, *n);
            }
        }
        Value::Table(t) if level < MAX_NESTING => encode_table(out, t, level)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

/// `IS_INT64_EQUIVALENT`: whether `(int64_t)n == n`.
fn is_int64(n: f64) -> bool {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    (-TWO_63..TWO_63).contains(&n) && n.trunc() == n
}

/// `mp_encode_bytes`: a string's header, then its bytes.
fn encode_bytes(out: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        out.push(0xa0 | len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        // C writes the low 32 bits of the length.
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s);
}

/// `mp_encode_double`: a float 32 when the value survives the trip through `float`.
fn encode_double(out: &mut Vec<u8>, d: f64) {
    let f = d as f32;
    if f64::from(f) == d {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&d.to_be_bytes());
    }
}

/// `mp_encode_int`: the smallest encoding of `n`.
fn encode_int(out: &mut Vec<u8>, n: i64) {
    // Each branch's range makes its narrowing exact.
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&n.to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// An array or map header: the fix form (`fix` | n) up to 15, then 16 and 32 bits (`wide`,
/// `wide` + 1; C writes the low 32 bits of larger counts).
fn encode_header(out: &mut Vec<u8>, n: usize, fix: u8, wide: u8) {
    if n <= 15 {
        out.push(fix | n as u8);
    } else if n <= 0xffff {
        out.push(wide);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(wide + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// `mp_encode_lua_table`: an array when `table_is_an_array`, else a map.
fn encode_table(out: &mut Vec<u8>, t: &Table, level: usize) -> mlua::Result<()> {
    if is_array(t)? {
        let len = t.raw_len();
        encode_header(out, len, 0x90, 0xdc);
        for j in 1..=len {
            let v: Value = t.raw_get(j)?;
            encode(out, &v, level + 1)?;
        }
        return Ok(());
    }
    let mut len = 0usize;
    t.for_each::<Value, bool>(|_, _| {
        len += 1;
        Ok(())
    })?;
    encode_header(out, len, 0x80, 0xde);
    t.for_each::<Value, Value>(|k, v| {
        encode(out, &k, level + 1)?;
        encode(out, &v, level + 1)
    })
}

/// `table_is_an_array`: whether the keys are exactly 1..n (`{}` included).
fn is_array(t: &Table) -> mlua::Result<bool> {
    let (mut count, mut max, mut array) = (0i32, 0i32, true);
    let walked = t.for_each::<Value, bool>(|k, _| {
        let n = match k {
            Value::Integer(n) => n as f64,
            Value::Number(n) => n,
            _ => 0.0,
        };
        // `IS_INT_EQUIVALENT`: `(int)n == n`.
        if n <= 0.0 || n > f64::from(i32::MAX) || n.trunc() != n {
            array = false;
            // Stop the walk.
            return Err(mlua::Error::RuntimeError(String::new()));
        }
        // In range and integral: exact.
        max = max.max(n as i32);
        count += 1;
        Ok(())
    });
    if !array {
        return Ok(false);
    }
    walked?;
    Ok(max == count)
}

// ===== Unpacking =====

/// Why decoding stopped.
enum Fail {
    /// `MP_CUR_ERROR_EOF`: the input ended inside a value.
    Eof,
    /// `MP_CUR_ERROR_BADFMT`: a byte no MessagePack value starts with.
    BadFormat,
    /// A Lua error, raised as it is.
    Lua(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Fail {
        Fail::Lua(e)
    }
}

/// `mp_unpack_full`: up to `limit` values from `offset` (all of them, with no offset among the
/// results, when both are 0); `top` is how many stack slots the function's arguments hold.
fn unpack_full(
    lua: &Lua,
    raise: &Raise,
    data: &[u8],
    top: i64,
    limit: i64,
    offset: i64,
) -> mlua::Result<MultiValue> {
    let len = data.len();
    let decode_all = limit == 0 && offset == 0;
    // The messages print C `int`s: the low 32 bits. (The first prints the length where the
    // limit was meant, as the C library does.)
    if offset < 0 || limit < 0 {
        let msg = format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        );
        return Err(raise.placed(lua, &msg));
    }
    let Some(start) = usize::try_from(offset).ok().filter(|&o| o <= len) else {
        let msg = format!("Start offset {} greater than input length {}.", offset as i32, len as i32);
        return Err(raise.placed(lua, &msg));
    };
    let limit = if decode_all { i64::from(i32::MAX) } else { limit };
    let mut cur = Cursor { data, pos: start };
    let mut results = Vec::new();
    let (mut count, mut refs) = (0i64, 0usize);
    while cur.left() > 0 && count < limit {
        let v = match decode(lua, raise, &mut cur, top + count, 0) {
            Ok(v) => v,
            Err(Fail::Eof) => return Err(raise.placed(lua, "Missing bytes in input.")),
            Err(Fail::BadFormat) => return Err(raise.placed(lua, "Bad data format in input.")),
            Err(Fail::Lua(e)) => return Err(e),
        };
        if matches!(v, Value::String(_) | Value::Table(_)) {
            refs += 1;
            if refs > MAX_REF_RESULTS {
                return Err(raise.placed(lua, TOO_MANY));
            }
        }
        results.push(v);
        count += 1;
    }
    if !decode_all {
        if top + count + 1 > MAX_SLOTS {
            return Err(raise.placed(lua, "stack overflow (in function mp_unpack_full)"));
        }
        // The next offset, or -1 when the input is all read.
        let next = if cur.left() == 0 { -1 } else { i64::try_from(cur.pos).unwrap_or(-1) };
        results.insert(0, Value::Integer(next));
    }
    Ok(MultiValue::from_vec(results))
}

/// `mp_cur`: where decoding is in the input.
struct Cursor<'a> {
    /// The input.
    data: &'a [u8],
    /// The next byte to read.
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// How many bytes are left.
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    /// `mp_cur_need` then `mp_cur_consume`: the next `n` bytes.
    fn take(&mut self, n: usize) -> Result<&'a [u8], Fail> {
        let data: &'a [u8] = self.data;
        let bytes = data.get(self.pos..).and_then(|rest| rest.get(..n)).ok_or(Fail::Eof)?;
        self.pos += n;
        Ok(bytes)
    }

    /// A big-endian number of `N` bytes after a one-byte tag (the tag and the number are
    /// consumed).
    fn tagged<const N: usize>(&mut self) -> Result<[u8; N], Fail> {
        let bytes = self.take(1 + N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&bytes[1..]);
        Ok(out)
    }
}

/// `mp_decode_to_lua_type`: the value at the cursor; `top` is how many stack slots are in use.
fn decode(lua: &Lua, raise: &Raise, cur: &mut Cursor, top: i64, depth: usize) -> Result<Value, Fail> {
    crate::engine::script::raise::deep(|| decode_here(lua, raise, cur, top, depth))
}

/// `decode`'s work, on whatever stack it got.
fn decode_here(lua: &Lua, raise: &Raise, cur: &mut Cursor, top: i64, depth: usize) -> Result<Value, Fail> {
    let Some(&tag) = cur.data.get(cur.pos) else {
        return Err(Fail::Eof);
    };
    if top + 1 > MAX_SLOTS || depth > MAX_DEPTH {
        return Err(Fail::Lua(raise.placed(lua, TOO_MANY)));
    }
    let int = |n: i64| Ok(Value::Integer(n));
    match tag {
        0xcc => int(i64::from(cur.tagged::<1>()?[0])),
        0xd0 => int(i64::from(i8::from_be_bytes(cur.tagged::<1>()?))),
        0xcd => int(i64::from(u16::from_be_bytes(cur.tagged::<2>()?))),
        0xd1 => int(i64::from(i16::from_be_bytes(cur.tagged::<2>()?))),
        0xce => int(i64::from(u32::from_be_bytes(cur.tagged::<4>()?))),
        0xd2 => int(i64::from(i32::from_be_bytes(cur.tagged::<4>()?))),
        // `lua_pushinteger` of a `uint64_t`: C's conversion to `ptrdiff_t` wraps past 2^63.
        0xcf => int(u64::from_be_bytes(cur.tagged::<8>()?) as i64),
        // `lua_pushnumber` of an `int64_t`: the nearest double.
        0xd3 => Ok(Value::Number(i64::from_be_bytes(cur.tagged::<8>()?) as f64)),
        0xc0 => {
            cur.pos += 1;
            Ok(Value::Nil)
        }
        0xc3 | 0xc2 => {
            cur.pos += 1;
            Ok(Value::Boolean(tag == 0xc3))
        }
        0xca => Ok(Value::Number(f64::from(f32::from_be_bytes(cur.tagged::<4>()?)))),
        0xcb => Ok(Value::Number(f64::from_be_bytes(cur.tagged::<8>()?))),
        0xd9 => {
            let n = usize::from(cur.tagged::<1>()?[0]);
            string(lua, cur, n)
        }
        0xda => {
            let n = usize::from(u16::from_be_bytes(cur.tagged::<2>()?));
            string(lua, cur, n)
        }
        0xdb => {
            let n = u32::from_be_bytes(cur.tagged::<4>()?);
            string(lua, cur, usize::try_from(n).unwrap_or(usize::MAX))
        }
        0xdc => {
            let n = u64::from(u16::from_be_bytes(cur.tagged::<2>()?));
            array(lua, raise, cur, n, top, depth)
        }
        0xdd => {
            let n = u64::from(u32::from_be_bytes(cur.tagged::<4>()?));
            array(lua, raise, cur, n, top, depth)
        }
        0xde => {
            let n = u64::from(u16::from_be_bytes(cur.tagged::<2>()?));
            map(lua, raise, cur, n, top, depth)
        }
        0xdf => {
            let n = u64::from(u32::from_be_bytes(cur.tagged::<4>()?));
            map(lua, raise, cur, n, top, depth)
        }
        // Positive fixnum.
        0x00..=0x7f => {
            cur.pos += 1;
            int(i64::from(tag))
        }
        // Negative fixnum.
        0xe0..=0xff => {
            cur.pos += 1;
            int(i64::from(tag as i8))
        }
        // Fixraw.
        0xa0..=0xbf => {
            cur.pos += 1;
            string(lua, cur, usize::from(tag & 0x1f))
        }
        // Fixarray.
        0x90..=0x9f => {
            cur.pos += 1;
            array(lua, raise, cur, u64::from(tag & 0xf), top, depth)
        }
        // Fixmap.
        0x80..=0x8f => {
            cur.pos += 1;
            map(lua, raise, cur, u64::from(tag & 0xf), top, depth)
        }
        _ => Err(Fail::BadFormat),
    }
}

/// A string of the next `n` bytes.
fn string(lua: &Lua, cur: &mut Cursor, n: usize) -> Result<Value, Fail> {
    let bytes = cur.take(n)?;
    Ok(Value::String(lua.create_string(bytes)?))
}

/// `mp_decode_to_lua_array`: `n` values, under keys 1..n.
fn array(lua: &Lua, raise: &Raise, cur: &mut Cursor, n: u64, top: i64, depth: usize) -> Result<Value, Fail> {
    let t = lua.create_table()?;
    // The table, then `luaL_checkstack(L, 1, ...)`.
    if top + 2 > MAX_SLOTS {
        return Err(Fail::Lua(raise.placed(lua, "stack overflow (in function mp_decode_to_lua_array)")));
    }
    for i in 1..=n {
        // The table and the key are on the stack while the value decodes.
        let v = decode(lua, raise, cur, top + 2, depth + 1)?;
        t.raw_set(i, v)?;
    }
    Ok(Value::Table(t))
}

/// `mp_decode_to_lua_hash`: `n` keys and values.
fn map(lua: &Lua, raise: &Raise, cur: &mut Cursor, n: u64, top: i64, depth: usize) -> Result<Value, Fail> {
    let t = lua.create_table()?;
    for _ in 0..n {
        let k = decode(lua, raise, cur, top + 1, depth + 1)?;
        let v = decode(lua, raise, cur, top + 2, depth + 1)?;
        // `lua_settable`'s own errors, raised from the C function (so with no position).
        let refused = match &k {
            Value::Nil => Some("table index is nil"),
            Value::Number(f) if f.is_nan() => Some("table index is NaN"),
            _ => None,
        };
        if let Some(msg) = refused {
            return Err(Fail::Lua(raise.value(Value::String(lua.create_string(msg)?))));
        }
        t.raw_set(k, v)?;
    }
    Ok(Value::Table(t))
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use super::super::testing::error;
    use crate::engine::script::raise::Raise;

    /// A state with `cmsgpack` installed, and its `Raise`.
    fn state() -> mlua::Result<(Lua, Raise)> {
        let (lua, raise) = super::super::testing::state(super::install)?;
        let hex =
            "function hex(s) return (s:gsub('.', function(c) return ('%02x'):format(c:byte()) end)) end";
        lua.load(hex).exec()?;
        Ok((lua, raise))
    }

    /// The string `code` returns.
    fn text(lua: &Lua, code: &str) -> mlua::Result<String> {
        lua.load(code).set_name("@user_script").eval::<String>()
    }

    #[test]
    fn packs_as_redis_does() -> mlua::Result<()> {
        let (lua, _) = state()?;
        let cases = [
            ("0.1", "cb3fb999999999999a"),
            ("-1099511627776", "d3ffffff0000000000"),
            ("1.5", "ca3fc00000"),
            ("1, -1, 127, 128, -32, -33", "01ff7fcc80e0d0df"),
            ("256, 65536, -129, -32769, 2^32", "cd0100ce00010000d1ff7fd2ffff7fffcf0000000100000000"),
            ("nil, true, false, print", "c0c3c2c0"),
            ("'abc'", "a3616263"),
            ("string.rep('x', 32)", "d920"),
            ("{}", "90"),
            ("{1, 2}", "920102"),
            ("{a = 1}", "81a16101"),
            ("{[2] = 1}", "810201"),
        ];
        for (args, want) in cases {
            let got = text(&lua, &format!("return hex(cmsgpack.pack({args}))"))?;
            assert!(got.starts_with(want), "pack({args}) = {got}, want {want}");
        }
        Ok(())
    }

    #[test]
    fn circular_references_stop_at_16() -> mlua::Result<()> {
        let (lua, _) = state()?;
        let code = "local a = {x=nil, y=5} local b = {x=a} a['x'] = b return hex(cmsgpack.pack(a))";
        // Redis's answer (its hash order puts `y` first).
        let want = format!("{}a178c0", "82a17905a17881a178".repeat(7) + "82a17905a17881");
        let got = text(&lua, code)?;
        assert_eq!(got.len(), want.len(), "{got}");
        Ok(())
    }

    #[test]
    fn round_trips() -> mlua::Result<()> {
        let (lua, _) = state()?;
        let code = r#"
            local big = {} for i = 1, 1000 do big[i] = i end
            local map = {s = string.rep("x", 70000), d = 0.1, i = -3147483648, a = big, m = {k = false}}
            local d = cmsgpack.unpack(cmsgpack.pack(map))
            assert(d.s == map.s and d.d == 0.1 and d.i == map.i and #d.a == 1000 and d.a[1000] == 1000)
            assert(d.m.k == false)
            local packed = cmsgpack.pack("one", 2, {3})
            local a, b, c = cmsgpack.unpack(packed)
            assert(a == "one" and b == 2 and c[1] == 3)
            local offset, obj = cmsgpack.unpack_one(packed)
            assert(offset == 4 and obj == "one")
            offset, obj = cmsgpack.unpack_limit(packed, 1, offset)
            assert(offset == 5 and obj == 2)
            offset, obj = cmsgpack.unpack_one(packed, offset)
            assert(offset == -1 and obj[1] == 3)
            local n = select('#', cmsgpack.unpack_limit(packed, 0, 0))
            assert(n == 3, n)
            return tostring(cmsgpack.unpack("\207\255\255\255\255\255\255\255\255"))
        "#;
        assert_eq!(text(&lua, code)?, "-1");
        Ok(())
    }

    #[test]
    fn errors() -> mlua::Result<()> {
        let (lua, raise) = state()?;
        let too_many = format!("user_script:1: {}", super::TOO_MANY);
        let cases = [
            ("cmsgpack.unpack('\\205\\1')", "user_script:1: Missing bytes in input."),
            ("cmsgpack.unpack('\\193')", "user_script:1: Bad data format in input."),
            ("cmsgpack.unpack('\\145\\196')", "user_script:1: Bad data format in input."),
            ("cmsgpack.unpack('\\129\\192\\1')", "table index is nil"),
            ("cmsgpack.pack()", "user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)"),
            (
                "cmsgpack.unpack({})",
                "user_script:1: bad argument #1 to 'unpack' (string expected, got table)",
            ),
            (
                "cmsgpack.unpack_limit('a')",
                "user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)",
            ),
            ("cmsgpack.unpack_one('\\1', 2)", "user_script:1: Start offset 2 greater than input length 1."),
            (
                "cmsgpack.unpack_one('\\1\\2', -1)",
                "user_script:1: Invalid request to unpack with offset of -1 and limit of 2.",
            ),
            ("cmsgpack.unpack(string.rep('\\145', 1200))", too_many.as_str()),
            ("cmsgpack.unpack(string.rep('\\1', 8000))", too_many.as_str()),
        ];
        for (code, msg) in cases {
            assert_eq!(error(&lua, &raise, code)?, msg, "{code}");
        }
        Ok(())
    }
}
