//! `cjson`: Lua CJSON 2.1.0 as Redis 7.0 bundles it (deps/lua/src/lua_cjson.c, with strbuf.c
//! and fpconv.c): `encode`, `decode`, the configuration functions, `new` (a fresh table with
//! its own configuration), `null` (a NULL light userdata) and the module's name and version,
//! with the C library's output and error texts.
//!
//! Encoding walks tables in `lua_next` order (mlua's `for_each`), as the C library does, so
//! objects come out with their keys in the same order. Both directions refuse to nest deeper
//! than [`SAFE_DEPTH`] even when the configured limits allow more (the C library stops near
//! there too, when the Lua stack runs out), so that a script cannot exhaust the thread's stack
//! or mlua's reference slots.
//!
//! Also the `lauxlib` argument checks `cjson` and `cmsgpack` share beyond those in `bit`:
//! `luaL_checklstring` and `luaL_checkinteger`/`luaL_optinteger`.

use std::cell::Cell;
use std::rc::Rc;

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::bit::{arg_error, to_number, type_error, type_name};
use crate::engine::script::raise::{lua_number, Raise};

/// The deepest nesting either direction accepts, whatever the configuration says.
const SAFE_DEPTH: i32 = 1500;

/// `json_config_t`: one module table's settings, shared by its functions.
#[derive(Clone, Copy)]
struct Config {
    /// `encode_sparse_array`'s `convert`: 1 encodes excessively sparse arrays as objects.
    sparse_convert: i32,
    /// `encode_sparse_array`'s `ratio`.
    sparse_ratio: i32,
    /// `encode_sparse_array`'s `safe`.
    sparse_safe: i32,
    /// `encode_max_depth`.
    encode_max_depth: i32,
    /// `encode_invalid_numbers`: 0 refuses NaN and Inf, 1 writes them, 2 writes `null`.
    encode_invalid_numbers: i32,
    /// `encode_number_precision`: significant digits (1 to 14).
    encode_number_precision: i32,
    /// `encode_keep_buffer` (no effect here but the value it reports).
    encode_keep_buffer: i32,
    /// `decode_invalid_numbers`: 1 accepts Inf, NaN, hexadecimal and `+` numbers.
    decode_invalid_numbers: i32,
    /// `decode_max_depth`.
    decode_max_depth: i32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sparse_convert: 0,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            encode_invalid_numbers: 0,
            encode_number_precision: 14,
            encode_keep_buffer: 1,
            decode_invalid_numbers: 1,
            decode_max_depth: 1000,
        }
    }
}

/// The shared, changeable configuration of one module table.
type Shared = Rc<Cell<Config>>;

/// Sets the `cjson` global.
pub(super) fn install(lua: &Lua, globals: &Table, raise: &Raise) -> mlua::Result<()> {
    globals.raw_set("cjson", module(lua, raise)?)
}

/// `lua_cjson_new`: a module table with a configuration of its own.
fn module(lua: &Lua, raise: &Raise) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let cfg: Shared = Rc::new(Cell::new(Config::default()));
    add(lua, &t, raise, &cfg, "encode", encode)?;
    add(lua, &t, raise, &cfg, "decode", decode)?;
    add(lua, &t, raise, &cfg, "encode_sparse_array", encode_sparse_array)?;
    add(lua, &t, raise, &cfg, "encode_max_depth", |lua, r, cfg, args| {
        integer_setting(lua, r, cfg, args, 1, i32::MAX, |c| &mut c.encode_max_depth)
    })?;
    add(lua, &t, raise, &cfg, "decode_max_depth", |lua, r, cfg, args| {
        integer_setting(lua, r, cfg, args, 1, i32::MAX, |c| &mut c.decode_max_depth)
    })?;
    add(lua, &t, raise, &cfg, "encode_number_precision", |lua, r, cfg, args| {
        integer_setting(lua, r, cfg, args, 1, 14, |c| &mut c.encode_number_precision)
    })?;
    add(lua, &t, raise, &cfg, "encode_keep_buffer", |lua, r, cfg, args| {
        enum_setting(lua, r, cfg, args, &["off", "on"], |c| &mut c.encode_keep_buffer)
    })?;
    add(lua, &t, raise, &cfg, "encode_invalid_numbers", |lua, r, cfg, args| {
        enum_setting(lua, r, cfg, args, &["off", "on", "null"], |c| &mut c.encode_invalid_numbers)
    })?;
    add(lua, &t, raise, &cfg, "decode_invalid_numbers", |lua, r, cfg, args| {
        enum_setting(lua, r, cfg, args, &["off", "on"], |c| &mut c.decode_invalid_numbers)
    })?;
    let r = raise.clone();
    t.raw_set("new", lua.create_function(move |lua, _: MultiValue| module(lua, &r))?)?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

/// `cjson.null`: the NULL light userdata that stands for JSON's `null`.
fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// The signature of one of the module's functions.
type Func = fn(&Lua, &Raise, &Shared, MultiValue) -> mlua::Result<MultiValue>;

/// Sets `t[name]` to `f` over the table's configuration.
fn add(lua: &Lua, t: &Table, raise: &Raise, cfg: &Shared, name: &str, f: Func) -> mlua::Result<()> {
    let (r, c) = (raise.clone(), cfg.clone());
    t.raw_set(name, lua.create_function(move |lua, args: MultiValue| f(lua, &r, &c, args))?)
}

// ===== Arguments (lauxlib) =====

/// `luaL_checklstring`: argument `narg` (from 1) as a Lua string; numbers become their text.
pub(super) fn check_string(
    lua: &Lua,
    raise: &Raise,
    arg: Option<&Value>,
    narg: usize,
) -> mlua::Result<mlua::String> {
    match arg {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => lua.create_string(lua_number(*n)),
        Some(Value::Integer(n)) => lua.create_string(lua_number(*n as f64)),
        _ => Err(type_error(lua, raise, narg, "string", arg)),
    }
}

/// `luaL_checkinteger`: argument `narg` (from 1) as `lua_tointeger` makes it.
pub(super) fn check_integer(lua: &Lua, raise: &Raise, arg: Option<&Value>, narg: usize) -> mlua::Result<i64> {
    arg.and_then(to_number).map(c_long).ok_or_else(|| type_error(lua, raise, narg, "number", arg))
}

/// `luaL_optinteger`: `default` when argument `narg` is absent or nil.
pub(super) fn opt_integer(
    lua: &Lua,
    raise: &Raise,
    arg: Option<&Value>,
    narg: usize,
    default: i64,
) -> mlua::Result<i64> {
    match arg {
        None | Some(Value::Nil) => Ok(default),
        _ => check_integer(lua, raise, arg, narg),
    }
}

/// C's (x86-64's) double to `long`: truncation, `LONG_MIN` when out of range or NaN.
fn c_long(n: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if n.is_nan() || !(-TWO_63..TWO_63).contains(&n) {
        i64::MIN
    } else {
        // In range: truncation toward zero, as `cvttsd2si`.
        n as i64
    }
}

/// C's (x86-64's) double to `int`: truncation, `INT_MIN` when out of range or NaN.
fn c_int(n: f64) -> i32 {
    if n.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&n) {
        i32::MIN
    } else {
        // In range: truncation toward zero, as `cvttsd2si`.
        n as i32
    }
}

// ===== Configuration =====

/// `json_arg_init`: refuses more than `n` arguments; pads the rest with nil.
fn arg_init(lua: &Lua, raise: &Raise, args: MultiValue, n: usize) -> mlua::Result<Vec<Value>> {
    if args.len() > n {
        return Err(arg_error(lua, raise, n + 1, b"found too many arguments"));
    }
    let mut args: Vec<Value> = args.into_iter().collect();
    args.resize(n, Value::Nil);
    Ok(args)
}

/// `json_integer_option`: sets `*setting` from argument `narg` unless it is nil (the range
/// error names argument 1 whatever `narg` is, as the C library does); returns the setting.
fn integer_option(
    lua: &Lua,
    raise: &Raise,
    arg: &Value,
    narg: usize,
    setting: &mut i32,
    (min, max): (i32, i32),
) -> mlua::Result<Value> {
    if !arg.is_nil() {
        // `int value = luaL_checkinteger(...)`: C keeps the low 32 bits.
        let value = check_integer(lua, raise, Some(arg), narg)? as i32;
        if !(min..=max).contains(&value) {
            let msg = format!("expected integer between {min} and {max}");
            return Err(arg_error(lua, raise, 1, msg.as_bytes()));
        }
        *setting = value;
    }
    Ok(Value::Integer(i64::from(*setting)))
}

/// `json_enum_option` (with `bool_true` 1): a boolean or one of `options` sets `*setting`
/// unless the argument is nil; returns the setting as a boolean when it is 0 or 1, else as
/// its option's name.
fn enum_option(
    lua: &Lua,
    raise: &Raise,
    arg: &Value,
    narg: usize,
    setting: &mut i32,
    options: &[&str],
) -> mlua::Result<Value> {
    match arg {
        Value::Nil => {}
        Value::Boolean(b) => *setting = i32::from(*b),
        _ => {
            // `luaL_checkoption` with no default.
            let text = check_string(lua, raise, Some(arg), narg)?;
            let bytes = text.as_bytes();
            let name: &[u8] = &bytes;
            match options.iter().position(|o| o.as_bytes() == name) {
                Some(i) => *setting = i32::try_from(i).unwrap_or(0),
                None => {
                    let msg = [&b"invalid option '"[..], name, &b"'"[..]].concat();
                    return Err(arg_error(lua, raise, narg, &msg));
                }
            }
        }
    }
    Ok(match *setting {
        0 | 1 => Value::Boolean(*setting == 1),
        n => {
            let name = usize::try_from(n).ok().and_then(|i| options.get(i)).copied().unwrap_or("");
            Value::String(lua.create_string(name)?)
        }
    })
}

/// A configuration function of one integer setting between `min` and `max`.
fn integer_setting(
    lua: &Lua,
    raise: &Raise,
    cfg: &Shared,
    args: MultiValue,
    min: i32,
    max: i32,
    field: fn(&mut Config) -> &mut i32,
) -> mlua::Result<MultiValue> {
    let args = arg_init(lua, raise, args, 1)?;
    let mut c = cfg.get();
    let v = integer_option(lua, raise, &args[0], 1, field(&mut c), (min, max))?;
    cfg.set(c);
    Ok(MultiValue::from_vec(vec![v]))
}

/// A configuration function of one enumerated setting.
fn enum_setting(
    lua: &Lua,
    raise: &Raise,
    cfg: &Shared,
    args: MultiValue,
    options: &[&str],
    field: fn(&mut Config) -> &mut i32,
) -> mlua::Result<MultiValue> {
    let args = arg_init(lua, raise, args, 1)?;
    let mut c = cfg.get();
    let v = enum_option(lua, raise, &args[0], 1, field(&mut c), options)?;
    cfg.set(c);
    Ok(MultiValue::from_vec(vec![v]))
}

/// `cjson.encode_sparse_array([convert[, ratio[, safe]]])`: each setting changes as soon as
/// its argument is read (a bad later argument leaves the earlier ones changed, as in C).
fn encode_sparse_array(lua: &Lua, raise: &Raise, cfg: &Shared, args: MultiValue) -> mlua::Result<MultiValue> {
    let args = arg_init(lua, raise, args, 3)?;
    let mut c = cfg.get();
    let convert = enum_option(lua, raise, &args[0], 1, &mut c.sparse_convert, &["off", "on"])?;
    cfg.set(c);
    let ratio = integer_option(lua, raise, &args[1], 2, &mut c.sparse_ratio, (0, i32::MAX))?;
    cfg.set(c);
    let safe = integer_option(lua, raise, &args[2], 3, &mut c.sparse_safe, (0, i32::MAX))?;
    cfg.set(c);
    Ok(MultiValue::from_vec(vec![convert, ratio, safe]))
}

// ===== Encoding =====

/// `cjson.encode(value)`.
fn encode(lua: &Lua, raise: &Raise, cfg: &Shared, args: MultiValue) -> mlua::Result<MultiValue> {
    if args.len() != 1 {
        return Err(arg_error(lua, raise, 1, b"expected 1 argument"));
    }
    let mut enc = Encoder { lua, raise, cfg: cfg.get(), out: Vec::new() };
    if let Some(v) = args.front() {
        enc.value(v, 0)?;
    }
    Ok(MultiValue::from_vec(vec![Value::String(lua.create_string(&enc.out)?)]))
}

/// `char2escape`: how the encoder writes byte `b` of a string (`None`: as itself).
fn escape(b: u8) -> Option<&'static str> {
    const CONTROL: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007", "\\b", "\\t",
        "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011", "\\u0012", "\\u0013",
        "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c",
        "\\u001d", "\\u001e", "\\u001f",
    ];
    match b {
        0..=31 => Some(CONTROL[usize::from(b)]),
        b'"' => Some("\\\""),
        b'/' => Some("\\/"),
        b'\\' => Some("\\\\"),
        0x7f => Some("\\u007f"),
        _ => None,
    }
}

/// `num` as C's `printf("%.<precision>g")` writes it.
fn format_g(num: f64, precision: usize) -> String {
    if num.is_nan() {
        return if num.is_sign_negative() { "-nan" } else { "nan" }.to_owned();
    }
    if num.is_infinite() {
        return if num < 0.0 { "-inf" } else { "inf" }.to_owned();
    }
    /// Drops the zeros after the point, and the point when nothing is left after it.
    fn trim(s: &str) -> &str {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.')
        } else {
            s
        }
    }
    if num == 0.0 {
        return if num.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let p = precision.max(1);
    // %g picks its style from the exponent of the number rounded to `p` digits.
    let sci = format!("{:.*e}", p - 1, num);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let digits = i64::try_from(p).unwrap_or(i64::MAX);
    if exp < -4 || exp >= digits {
        format!("{}e{}{:02}", trim(mantissa), if exp < 0 { '-' } else { '+' }, exp.unsigned_abs())
    } else {
        let decimals = usize::try_from(digits - 1 - exp).unwrap_or(0);
        trim(&format!("{num:.decimals$}")).to_owned()
    }
}

/// Lua's type name of a value, as `lua_typename(lua_type(...))` gives it.
fn lua_type(v: &Value) -> &'static str {
    type_name(Some(v))
}

/// The state of one `cjson.encode`.
struct Encoder<'a> {
    /// The interpreter.
    lua: &'a Lua,
    /// How errors are raised.
    raise: &'a Raise,
    /// The module's configuration when the call began.
    cfg: Config,
    /// The JSON so far.
    out: Vec<u8>,
}

impl Encoder<'_> {
    /// `json_encode_exception`: "Cannot serialise <type>: <reason>".
    fn exception(&self, ty: &str, reason: &str) -> mlua::Error {
        self.raise.placed(self.lua, &format!("Cannot serialise {ty}: {reason}"))
    }

    /// `json_append_data`: one value, nested `depth` tables deep.
    fn value(&mut self, v: &Value, depth: i32) -> mlua::Result<()> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(n) => self.number(*n as f64)?,
            Value::Number(n) => self.number(*n)?,
            Value::Boolean(b) => self.out.extend_from_slice(if *b { &b"true"[..] } else { &b"false"[..] }),
            Value::Table(t) => self.table(t, depth + 1)?,
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            other => return Err(self.exception(lua_type(other), "type not supported")),
        }
        Ok(())
    }

    /// `json_append_string`.
    fn string(&mut self, s: &[u8]) {
        self.out.reserve(s.len() + 2);
        self.out.push(b'"');
        for &b in s {
            match escape(b) {
                Some(e) => self.out.extend_from_slice(e.as_bytes()),
                None => self.out.push(b),
            }
        }
        self.out.push(b'"');
    }

    /// `json_append_number`.
    fn number(&mut self, n: f64) -> mlua::Result<()> {
        match self.cfg.encode_invalid_numbers {
            0 if !n.is_finite() => return Err(self.exception("number", "must not be NaN or Inf")),
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            0 | 1 => {}
            _ if !n.is_finite() => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        let precision = usize::try_from(self.cfg.encode_number_precision).unwrap_or(14);
        self.out.extend_from_slice(format_g(n, precision).as_bytes());
        Ok(())
    }

    /// A table `depth` tables deep: an array when `lua_array_length` finds one, else an object.
    fn table(&mut self, t: &Table, depth: i32) -> mlua::Result<()> {
        crate::engine::script::raise::deep(|| self.table_here(t, depth))
    }

    /// `table`'s work, on whatever stack it got.
    fn table_here(&mut self, t: &Table, depth: i32) -> mlua::Result<()> {
        // `json_check_encode_depth`.
        if depth > self.cfg.encode_max_depth || depth > SAFE_DEPTH {
            let msg = format!("Cannot serialise, excessive nesting ({depth})");
            return Err(self.raise.placed(self.lua, &msg));
        }
        let len = self.array_length(t)?;
        if len > 0 {
            self.out.push(b'[');
            for i in 1..=len {
                if i > 1 {
                    self.out.push(b',');
                }
                let v: Value = t.raw_get(i)?;
                self.value(&v, depth)?;
            }
            self.out.push(b']');
            return Ok(());
        }
        self.out.push(b'{');
        let mut comma = false;
        t.for_each::<Value, Value>(|k, v| {
            if comma {
                self.out.push(b',');
            }
            comma = true;
            match &k {
                Value::Integer(n) => self.number_key(*n as f64)?,
                Value::Number(n) => self.number_key(*n)?,
                Value::String(s) => {
                    self.string(&s.as_bytes());
                    self.out.push(b':');
                }
                other => return Err(self.exception(lua_type(other), "table key must be a number or string")),
            }
            self.value(&v, depth)
        })?;
        self.out.push(b'}');
        Ok(())
    }

    /// A number key: `"<number>":`.
    fn number_key(&mut self, n: f64) -> mlua::Result<()> {
        self.out.push(b'"');
        self.number(n)?;
        self.out.extend_from_slice(b"\":");
        Ok(())
    }

    /// `lua_array_length`: the array's length (its largest key) when every key is a positive
    /// integer and the array is not excessively sparse, else 0 (an object; also for `{}`).
    /// An excessively sparse array is an error unless `convert` is on.
    fn array_length(&self, t: &Table) -> mlua::Result<i32> {
        let (mut max, mut items, mut object) = (0i32, 0i32, false);
        let walked = t.for_each::<Value, bool>(|k, _| {
            let k = match k {
                Value::Integer(n) => n as f64,
                Value::Number(n) => n,
                _ => 0.0,
            };
            if k != 0.0 && k.floor() == k && k >= 1.0 {
                if k > f64::from(max) {
                    // `max = k` in C: an int, `INT_MIN` for keys past its range.
                    max = c_int(k);
                }
                items = items.wrapping_add(1);
                Ok(())
            } else {
                // Stop the walk: not an array.
                object = true;
                Err(mlua::Error::RuntimeError(String::new()))
            }
        });
        if object {
            return Ok(0);
        }
        walked?;
        let (ratio, safe) = (self.cfg.sparse_ratio, self.cfg.sparse_safe);
        if ratio > 0 && max > items.wrapping_mul(ratio) && max > safe {
            if self.cfg.sparse_convert == 0 {
                return Err(self.exception("table", "excessively sparse array"));
            }
            return Ok(0);
        }
        Ok(max)
    }
}

// ===== Decoding =====

/// A token of JSON text, as `json_next_token` finds it.
enum Tok {
    /// `{`.
    ObjBegin,
    /// `}`.
    ObjEnd,
    /// `[`.
    ArrBegin,
    /// `]`.
    ArrEnd,
    /// A string, unescaped.
    Str(Vec<u8>),
    /// A number.
    Number(f64),
    /// `true` or `false`.
    Boolean(bool),
    /// `null`.
    Null,
    /// `:`.
    Colon,
    /// `,`.
    Comma,
    /// The end of the text (or a NUL byte).
    End,
    /// No token: why.
    Error(&'static str),
}

impl Tok {
    /// What an error message calls the token (`json_token_type_name`, or the error's text).
    fn found(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str(_) => "T_STRING",
            Tok::Number(_) => "T_NUMBER",
            Tok::Boolean(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(why) => why,
        }
    }
}

/// A token and where it starts (where the error is, for an error), from 0.
struct Token {
    /// The token.
    tok: Tok,
    /// Its offset in the text.
    index: usize,
}

/// `cjson.decode(text)`.
fn decode(lua: &Lua, raise: &Raise, cfg: &Shared, args: MultiValue) -> mlua::Result<MultiValue> {
    if args.len() != 1 {
        return Err(arg_error(lua, raise, 1, b"expected 1 argument"));
    }
    let text = check_string(lua, raise, args.front(), 1)?;
    let data = text.as_bytes();
    // The first byte of any JSON text is ASCII: a NUL among the first two means UTF-16/32.
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(raise.placed(lua, "JSON parser does not support UTF-16 or UTF-32"));
    }
    let mut p = Parser { lua, raise, cfg: cfg.get(), data: &data[..], ptr: 0, depth: 0 };
    let token = p.next_token();
    let value = p.value(token)?;
    let token = p.next_token();
    if !matches!(token.tok, Tok::End) {
        return Err(p.throw("the end", &token));
    }
    Ok(MultiValue::from_vec(vec![value]))
}

/// The state of one `cjson.decode`.
struct Parser<'a> {
    /// The interpreter.
    lua: &'a Lua,
    /// How errors are raised.
    raise: &'a Raise,
    /// The module's configuration when the call began.
    cfg: Config,
    /// The JSON text.
    data: &'a [u8],
    /// Where the lexer is.
    ptr: usize,
    /// How many objects and arrays are open.
    depth: i32,
}

impl<'a> Parser<'a> {
    /// The byte at `i`: 0 past the end, as the C string's terminator reads.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    /// `json_throw_parse_error`: "Expected <what> but found <token> at character <n>".
    fn throw(&self, expected: &str, token: &Token) -> mlua::Error {
        let (found, at) = (token.tok.found(), token.index + 1);
        self.raise.placed(self.lua, &format!("Expected {expected} but found {found} at character {at}"))
    }

    /// `json_next_token`.
    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.ptr), b' ' | b'\t' | b'\n' | b'\r') {
            self.ptr += 1;
        }
        let index = self.ptr;
        let ch = self.at(self.ptr);
        let single = match ch {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            0 => return Token { tok: Tok::End, index },
            _ => None,
        };
        if let Some(tok) = single {
            self.ptr += 1;
            return Token { tok, index };
        }
        let data: &'a [u8] = self.data;
        let rest = data.get(self.ptr..).unwrap_or_default();
        let invalid_ok = self.cfg.decode_invalid_numbers != 0;
        let tok = match ch {
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' => {
                if !invalid_ok && self.is_invalid_number() {
                    Tok::Error("invalid number")
                } else {
                    self.number_token()
                }
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                if rest.starts_with(b"true") {
                    self.ptr += 4;
                    Tok::Boolean(true)
                } else if rest.starts_with(b"false") {
                    self.ptr += 5;
                    Tok::Boolean(false)
                } else if rest.starts_with(b"null") {
                    self.ptr += 4;
                    Tok::Null
                } else if invalid_ok && self.is_invalid_number() {
                    self.number_token()
                } else {
                    Tok::Error("invalid token")
                }
            }
            _ => Tok::Error("invalid token"),
        };
        // An error is placed where the lexer stopped (inside a string, say).
        let index = if matches!(tok, Tok::Error(_)) { self.ptr } else { index };
        Token { tok, index }
    }

    /// `json_is_invalid_number`: a number `strtod` reads but JSON does not allow (leading `+`
    /// or zeros, hexadecimal, Inf, NaN).
    fn is_invalid_number(&self) -> bool {
        let mut p = self.ptr;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        let rest = self.data.get(p..).unwrap_or_default();
        starts_with_ci(rest, b"inf") || starts_with_ci(rest, b"nan")
    }

    /// `json_next_number_token`: `strtod` at the lexer's place.
    fn number_token(&mut self) -> Tok {
        match strtod_prefix(self.data.get(self.ptr..).unwrap_or_default()) {
            Some((n, len)) => {
                self.ptr += len;
                Tok::Number(n)
            }
            None => Tok::Error("invalid number"),
        }
    }

    /// `json_next_string_token`: the lexer is at the opening quote.
    fn string_token(&mut self) -> Tok {
        self.ptr += 1;
        let mut out = Vec::new();
        loop {
            let ch = self.at(self.ptr);
            match ch {
                b'"' => break,
                0 => return Tok::Error("unexpected end of string"),
                b'\\' => {
                    let esc = match self.at(self.ptr + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => 0x0c,
                        b'r' => b'\r',
                        b'u' => {
                            if self.unicode_escape(&mut out) {
                                continue;
                            }
                            return Tok::Error("invalid unicode escape code");
                        }
                        _ => return Tok::Error("invalid escape code"),
                    };
                    out.push(esc);
                    self.ptr += 2;
                }
                _ => {
                    out.push(ch);
                    self.ptr += 1;
                }
            }
        }
        self.ptr += 1;
        Tok::Str(out)
    }

    /// `decode_hex4`: the four hex digits at `i`.
    fn hex4(&self, i: usize) -> Option<u32> {
        (i..i + 4).try_fold(0u32, |acc, j| char::from(self.at(j)).to_digit(16).map(|d| (acc << 4) | d))
    }

    /// `json_append_unicode_escape`: the `\uXXXX` (or surrogate pair) at the lexer's place as
    /// UTF-8; false when it is not a valid escape.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> bool {
        let Some(mut cp) = self.hex4(self.ptr + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            // A surrogate: it must be a high one, followed by an escaped low one.
            if cp & 0x400 != 0 || self.at(self.ptr + 6) != b'\\' || self.at(self.ptr + 7) != b'u' {
                return false;
            }
            let Some(low) = self.hex4(self.ptr + 8) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        // `codepoint_to_utf8` (surrogate code points included, as C writes them).
        let b = |v: u32| (v & 0xFF) as u8;
        if cp <= 0x7F {
            out.push(b(cp));
        } else if cp <= 0x7FF {
            out.extend_from_slice(&[b((cp >> 6) | 0xC0), b((cp & 0x3F) | 0x80)]);
        } else if cp <= 0xFFFF {
            out.extend_from_slice(&[
                b((cp >> 12) | 0xE0),
                b(((cp >> 6) & 0x3F) | 0x80),
                b((cp & 0x3F) | 0x80),
            ]);
        } else {
            out.extend_from_slice(&[
                b((cp >> 18) | 0xF0),
                b(((cp >> 12) & 0x3F) | 0x80),
                b(((cp >> 6) & 0x3F) | 0x80),
                b((cp & 0x3F) | 0x80),
            ]);
        }
        self.ptr += len;
        true
    }

    /// `json_decode_descend`: one more object or array open, within the limits.
    fn descend(&mut self) -> mlua::Result<()> {
        self.depth += 1;
        if self.depth <= self.cfg.decode_max_depth && self.depth <= SAFE_DEPTH {
            return Ok(());
        }
        let msg = format!("Found too many nested data structures ({}) at character {}", self.depth, self.ptr);
        Err(self.raise.placed(self.lua, &msg))
    }

    /// `json_process_value`.
    fn value(&mut self, token: Token) -> mlua::Result<Value> {
        crate::engine::script::raise::deep(|| self.value_here(token))
    }

    /// `value`'s work, on whatever stack it got.
    fn value_here(&mut self, token: Token) -> mlua::Result<Value> {
        Ok(match token.tok {
            Tok::Str(s) => Value::String(self.lua.create_string(s)?),
            Tok::Number(n) => Value::Number(n),
            Tok::Boolean(b) => Value::Boolean(b),
            Tok::ObjBegin => Value::Table(self.object()?),
            Tok::ArrBegin => Value::Table(self.array()?),
            Tok::Null => null(),
            _ => return Err(self.throw("value", &token)),
        })
    }

    /// `json_parse_object_context`: the lexer is past the `{`.
    fn object(&mut self) -> mlua::Result<Table> {
        self.descend()?;
        let t = self.lua.create_table()?;
        let mut token = self.next_token();
        if matches!(token.tok, Tok::ObjEnd) {
            self.depth -= 1;
            return Ok(t);
        }
        loop {
            let key = match token.tok {
                Tok::Str(key) => key,
                _ => return Err(self.throw("object key string", &token)),
            };
            token = self.next_token();
            if !matches!(token.tok, Tok::Colon) {
                return Err(self.throw("colon", &token));
            }
            token = self.next_token();
            let v = self.value(token)?;
            t.raw_set(self.lua.create_string(key)?, v)?;
            token = self.next_token();
            if matches!(token.tok, Tok::ObjEnd) {
                self.depth -= 1;
                return Ok(t);
            }
            if !matches!(token.tok, Tok::Comma) {
                return Err(self.throw("comma or object end", &token));
            }
            token = self.next_token();
        }
    }

    /// `json_parse_array_context`: the lexer is past the `[`.
    fn array(&mut self) -> mlua::Result<Table> {
        self.descend()?;
        let t = self.lua.create_table()?;
        let mut token = self.next_token();
        if matches!(token.tok, Tok::ArrEnd) {
            self.depth -= 1;
            return Ok(t);
        }
        let mut i: i64 = 1;
        loop {
            let v = self.value(token)?;
            t.raw_set(i, v)?;
            i += 1;
            token = self.next_token();
            if matches!(token.tok, Tok::ArrEnd) {
                self.depth -= 1;
                return Ok(t);
            }
            if !matches!(token.tok, Tok::Comma) {
                return Err(self.throw("comma or array end", &token));
            }
            token = self.next_token();
        }
    }
}

/// Whether `s` starts with `prefix`, ignoring ASCII case (`strncasecmp`).
fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// glibc's `strtod` at the start of `s`: the value and how many bytes it read, or `None` when
/// no number starts there. Reads decimal and hexadecimal numbers, `inf`, `infinity`, `nan`
/// and `nan(...)`, with an optional sign.
fn strtod_prefix(s: &[u8]) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let (negative, sign) = match at(0) {
        b'-' => (true, 1),
        b'+' => (false, 1),
        _ => (false, 0),
    };
    let body = s.get(sign..).unwrap_or_default();
    let signed = |v: f64| if negative { -v } else { v };
    if starts_with_ci(body, b"inf") {
        let len = if starts_with_ci(body, b"infinity") { 8 } else { 3 };
        return Some((signed(f64::INFINITY), sign + len));
    }
    if starts_with_ci(body, b"nan") {
        let mut len = 3;
        if body.get(3) == Some(&b'(') {
            let inside = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
            let close = body[4..].iter().position(|c| !inside(c)).map(|p| p + 4);
            if let Some(close) = close.filter(|&c| body.get(c) == Some(&b')')) {
                len = close + 1;
            }
        }
        return Some((signed(f64::NAN), sign + len));
    }
    // The end of the digits from `i`, and how many there are.
    let digits_from = |mut i: usize, hex: bool| {
        let digit = |c: u8| if hex { c.is_ascii_hexdigit() } else { c.is_ascii_digit() };
        let start = i;
        while digit(at(i)) {
            i += 1;
        }
        (i, i - start)
    };
    // The end of an exponent starting at `i` (`e` or `p`), or `i` when none is complete there.
    let exponent = |i: usize, mark: u8| {
        if at(i) | 0x20 != mark {
            return i;
        }
        let j = if matches!(at(i + 1), b'+' | b'-') { i + 2 } else { i + 1 };
        let (end, n) = digits_from(j, false);
        if n > 0 {
            end
        } else {
            i
        }
    };
    if at(sign) == b'0' && at(sign + 1) | 0x20 == b'x' {
        let (mut i, mut n) = digits_from(sign + 2, true);
        if at(i) == b'.' {
            let (end, m) = digits_from(i + 1, true);
            (i, n) = (end, n + m);
        }
        if n > 0 {
            let end = exponent(i, b'p');
            let value = crate::num::strtod(&s[..end]).map(|(v, _)| v)?;
            return Some((value, end));
        }
        // "0x" with no digit after it: the number is the 0.
    }
    let (mut i, mut n) = digits_from(sign, false);
    if at(i) == b'.' {
        let (end, m) = digits_from(i + 1, false);
        (i, n) = (end, n + m);
    }
    if n == 0 {
        return None;
    }
    let end = exponent(i, b'e');
    let value = crate::num::strtod(&s[..end]).map(|(v, _)| v)?;
    Some((value, end))
}

#[cfg(test)]
mod tests {
    use mlua::{Lua, Value};

    use super::super::testing::error;
    use crate::engine::script::raise::Raise;

    /// A state with `cjson` installed, and its `Raise`.
    fn state() -> mlua::Result<(Lua, Raise)> {
        let (lua, raise) = super::super::testing::state(super::install)?;
        Ok((lua, raise))
    }

    /// The string `code` returns.
    fn text(lua: &Lua, code: &str) -> mlua::Result<String> {
        lua.load(code).set_name("@user_script").eval::<String>()
    }

    #[test]
    fn encodes_scalars_and_strings() -> mlua::Result<()> {
        let (lua, _) = state()?;
        assert_eq!(text(&lua, "return cjson.encode(1)")?, "1");
        assert_eq!(text(&lua, "return cjson.encode(0.1)")?, "0.1");
        assert_eq!(text(&lua, "return cjson.encode(1/3)")?, "0.33333333333333");
        assert_eq!(text(&lua, "return cjson.encode(1e20)")?, "1e+20");
        assert_eq!(text(&lua, "return cjson.encode(123456789012346)")?, "1.2345678901235e+14");
        assert_eq!(text(&lua, "return cjson.encode(0.0001)")?, "0.0001");
        assert_eq!(text(&lua, "return cjson.encode(0.00001)")?, "1e-05");
        assert_eq!(text(&lua, "return cjson.encode(-2.5)")?, "-2.5");
        assert_eq!(text(&lua, "return cjson.encode(true)")?, "true");
        assert_eq!(text(&lua, "return cjson.encode(nil)")?, "null");
        assert_eq!(text(&lua, "return cjson.encode(cjson.null)")?, "null");
        assert_eq!(
            text(&lua, r#"return cjson.encode("a/b\"c\\\n\1\127é")"#)?,
            "\"a\\/b\\\"c\\\\\\n\\u0001\\u007fé\""
        );
        Ok(())
    }

    #[test]
    fn encodes_tables() -> mlua::Result<()> {
        let (lua, _) = state()?;
        assert_eq!(text(&lua, "return cjson.encode({})")?, "{}");
        assert_eq!(text(&lua, "return cjson.encode({1, 'a', true})")?, "[1,\"a\",true]");
        assert_eq!(text(&lua, "return cjson.encode({[1]=1, [3]=3})")?, "[1,null,3]");
        assert_eq!(text(&lua, "return cjson.encode({a={b={}}})")?, "{\"a\":{\"b\":{}}}");
        assert_eq!(text(&lua, "return cjson.encode({[0]=1})")?, "{\"0\":1}");
        assert_eq!(text(&lua, "return cjson.encode({[1.5]=1})")?, "{\"1.5\":1}");
        let both = text(&lua, "return cjson.encode({one='one', [1]='one'})")?;
        let orders = ["{\"one\":\"one\",\"1\":\"one\"}", "{\"1\":\"one\",\"one\":\"one\"}"];
        assert!(orders.contains(&both.as_str()), "{both}");
        Ok(())
    }

    #[test]
    fn encode_errors() -> mlua::Result<()> {
        let (lua, raise) = state()?;
        assert_eq!(
            error(&lua, &raise, "cjson.encode({[20]=1})")?,
            "user_script:1: Cannot serialise table: excessively sparse array"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.encode({[false]=1})")?,
            "user_script:1: Cannot serialise boolean: table key must be a number or string"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.encode(print)")?,
            "user_script:1: Cannot serialise function: type not supported"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.encode({n=0/0})")?,
            "user_script:1: Cannot serialise number: must not be NaN or Inf"
        );
        assert_eq!(
            error(&lua, &raise, "local t = {} t[1] = t cjson.encode(t)")?,
            "user_script:1: Cannot serialise, excessive nesting (1001)"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.encode()")?,
            "user_script:1: bad argument #1 to 'encode' (expected 1 argument)"
        );
        Ok(())
    }

    #[test]
    fn configuration() -> mlua::Result<()> {
        let (lua, raise) = state()?;
        assert_eq!(
            text(&lua, "cjson.encode_sparse_array(true) return cjson.encode({[20]=1})")?,
            "{\"20\":1}"
        );
        assert_eq!(
            text(&lua, "local a, b, c = cjson.encode_sparse_array() return tostring(a)..b..c")?,
            "true210"
        );
        assert_eq!(
            text(&lua, "cjson.encode_invalid_numbers(true) return cjson.encode({1/0, 0/0})")?,
            "[inf,nan]"
        );
        assert_eq!(text(&lua, "return cjson.encode_invalid_numbers('null')")?, "null");
        assert_eq!(text(&lua, "return cjson.encode({1/0})")?, "[null]");
        assert_eq!(text(&lua, "cjson.encode_number_precision(3) return cjson.encode(3.14159)")?, "3.14");
        assert_eq!(
            error(&lua, &raise, "cjson.encode_number_precision(15)")?,
            "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.encode_max_depth(1, 2)")?,
            "user_script:1: bad argument #2 to 'encode_max_depth' (found too many arguments)"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.encode_keep_buffer('maybe')")?,
            "user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option 'maybe')"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.encode_sparse_array(nil, {})")?,
            "user_script:1: bad argument #2 to 'encode_sparse_array' (number expected, got table)"
        );
        // A fresh module has its own, default configuration.
        assert_eq!(text(&lua, "return cjson.new().encode(3.14159)")?, "3.14159");
        assert_eq!(text(&lua, "return cjson.new()._VERSION")?, "2.1.0");
        Ok(())
    }

    #[test]
    fn decodes() -> mlua::Result<()> {
        let (lua, _) = state()?;
        assert_eq!(
            text(&lua, r#"return table.concat(cjson.decode("[0.0, -5e3, -1, 0.3e-3, 1023.2, 0e10]"), " ")"#)?,
            "0 -5000 -1 0.0003 1023.2 0"
        );
        assert_eq!(
            text(&lua, r#"local t = cjson.decode('{"keya": "a", "keyb": "b"}') return t.keya .. t.keyb"#)?,
            "ab"
        );
        assert_eq!(text(&lua, r#"return cjson.decode('"\\u00e9\\ud83d\\ude00\\/\\n"')"#)?, "é😀/\n");
        assert!(lua.load("return cjson.decode('null') == cjson.null").eval::<bool>()?);
        assert!(lua.load("return cjson.decode('[true, false]')[2] == false").eval::<bool>()?);
        assert_eq!(text(&lua, "return tostring(cjson.decode('-Infinity'))")?, "-inf");
        assert_eq!(text(&lua, "return tostring(cjson.decode('0x10'))")?, "16");
        assert_eq!(text(&lua, "return tostring(cjson.decode(' +5 '))")?, "5");
        let null: Value = lua.load("return cjson.decode('[null]')[1]").eval()?;
        assert!(matches!(null, Value::LightUserData(p) if p.0.is_null()));
        Ok(())
    }

    #[test]
    fn round_trips() -> mlua::Result<()> {
        let (lua, _) = state()?;
        let code = r#"
            local t = {s = "x\"y", n = 100, a = {"Some", "String", "Array"}, b = true, z = {}}
            local d = cjson.decode(cjson.encode(t))
            assert(d.s == t.s and d.n == 100 and d.a[3] == "Array" and d.b == true)
            assert(next(d.z) == nil)
            return cjson.encode(cjson.decode('[1,[2,[3]],{"k":[]}]'))
        "#;
        assert_eq!(text(&lua, code)?, "[1,[2,[3]],{\"k\":{}}]");
        Ok(())
    }

    #[test]
    fn decode_errors() -> mlua::Result<()> {
        let (lua, raise) = state()?;
        let cases = [
            ("cjson.decode('')", "Expected value but found T_END at character 1"),
            ("cjson.decode('x')", "Expected value but found invalid token at character 1"),
            ("cjson.decode('{1:2}')", "Expected object key string but found T_NUMBER at character 2"),
            ("cjson.decode('{\"a\" 1}')", "Expected colon but found T_NUMBER at character 6"),
            ("cjson.decode('[1 2]')", "Expected comma or array end but found T_NUMBER at character 4"),
            ("cjson.decode('{\"a\":1 ]')", "Expected comma or object end but found T_ARR_END at character 8"),
            ("cjson.decode('[1] 2')", "Expected the end but found T_NUMBER at character 5"),
            ("cjson.decode('\"abc')", "Expected value but found unexpected end of string at character 5"),
            ("cjson.decode('\"a\\\\qb\"')", "Expected value but found invalid escape code at character 3"),
            (
                "cjson.decode('\"\\\\ud800\"')",
                "Expected value but found invalid unicode escape code at character 2",
            ),
            ("cjson.decode('[-]')", "Expected value but found invalid number at character 2"),
            ("cjson.decode('tru')", "Expected value but found invalid token at character 1"),
            ("cjson.decode('a\\0')", "JSON parser does not support UTF-16 or UTF-32"),
            (
                "cjson.decode(string.rep('[', 1001))",
                "Found too many nested data structures (1001) at character 1001",
            ),
        ];
        for (code, msg) in cases {
            assert_eq!(error(&lua, &raise, code)?, format!("user_script:1: {msg}"), "{code}");
        }
        assert_eq!(
            error(&lua, &raise, r#"cjson.decode_max_depth(1) cjson.decode('{"obj": {"array": [1,2]}}')"#)?,
            "user_script:1: Found too many nested data structures (2) at character 9"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.decode_invalid_numbers(false) cjson.decode('0x10')")?,
            "user_script:1: Expected value but found invalid number at character 1"
        );
        assert_eq!(
            error(&lua, &raise, "cjson.decode({})")?,
            "user_script:1: bad argument #1 to 'decode' (string expected, got table)"
        );
        Ok(())
    }

    #[test]
    fn number_formats() {
        assert_eq!(super::format_g(100.0, 14), "100");
        assert_eq!(super::format_g(1e14, 14), "1e+14");
        assert_eq!(super::format_g(99_999_999_999_999.0, 14), "99999999999999");
        assert_eq!(super::format_g(999_999_999_999_999.0, 14), "1e+15");
        assert_eq!(super::format_g(0.5, 1), "0.5");
        assert_eq!(super::format_g(2.5e-300, 14), "2.5e-300");
        assert_eq!(super::format_g(f64::NEG_INFINITY, 14), "-inf");
        assert_eq!(super::strtod_prefix(b"1.5e3x"), Some((1500.0, 5)));
        assert_eq!(super::strtod_prefix(b"1e+"), Some((1.0, 1)));
        assert_eq!(super::strtod_prefix(b"0x"), Some((0.0, 1)));
        assert_eq!(super::strtod_prefix(b"-"), None);
        assert_eq!(super::strtod_prefix(b"Infinity"), Some((f64::INFINITY, 8)));
    }
}
