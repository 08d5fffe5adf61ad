//! `struct`: Roberto Ierusalimschy's struct library as Redis 7.0 bundles it
//! (deps/lua/src/lua_struct.c), built for 64-bit Linux on x86-64: `long` and `size_t` have 8
//! bytes, `int` 4, the native byte order is little-endian, the largest alignment is 8. Integers
//! go through `lua_Number` (a double) and 64-bit C integers, with C's conversions, x86-64's
//! answers where C leaves them undefined (out-of-range conversions, over-wide shifts).

use mlua::{Lua, MultiValue, Table, Value};

use super::bit::{add, arg_error, str_to_number, to_number, type_error};
use crate::engine::script::raise::{lua_number, Raise};

/// `MAXINTSIZE`: the widest integer a format may ask for, in bytes.
const MAXINTSIZE: i32 = 32;

/// `MAXALIGN`: the alignment `!` without a number stands for (a double's on x86-64).
const MAXALIGN: i32 = 8;

/// `sizeof(int)`: the size of `i` and `I` without a number.
const INT_SIZE: i32 = 4;

/// `LUAI_MAXCSTACK`: the stack slots a C function may use (caps `unpack`'s results).
const MAXCSTACK: usize = 8000;

/// 2^63 as a double, where C's conversions to 64-bit integers change course.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// Sets the `struct` global.
pub(super) fn install(lua: &Lua, globals: &Table, raise: &Raise) -> mlua::Result<()> {
    let t = lua.create_table()?;
    add(lua, &t, raise, "pack", pack)?;
    add(lua, &t, raise, "unpack", unpack)?;
    add(lua, &t, raise, "size", size)?;
    globals.raw_set("struct", t)
}

/// `Header`: the byte order and the largest alignment in force.
struct Header {
    /// Little-endian (else big-endian).
    little: bool,
    /// The largest alignment, a power of 2.
    align: usize,
}

impl Header {
    /// `defaultoptions`: native (little-endian) order, no alignment.
    fn new() -> Header {
        Header { little: true, align: 1 }
    }
}

/// A format string being read, as C reads it: up to its first NUL.
struct Format<'a> {
    /// The format's bytes before any NUL.
    text: &'a [u8],
    /// How many bytes have been read.
    at: usize,
}

impl<'a> Format<'a> {
    /// The format `text`, cut at its first NUL.
    fn new(text: &'a [u8]) -> Format<'a> {
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        Format { text: &text[..end], at: 0 }
    }

    /// The next byte, consumed.
    fn next_byte(&mut self) -> Option<u8> {
        let b = self.text.get(self.at).copied();
        self.at += usize::from(b.is_some());
        b
    }

    /// The next byte if it is a digit, consumed.
    fn digit(&mut self) -> Option<u8> {
        let b = self.text.get(self.at).copied().filter(u8::is_ascii_digit)?;
        self.at += 1;
        Some(b - b'0')
    }

    /// Whether the next byte is a digit.
    fn at_digit(&self) -> bool {
        self.text.get(self.at).is_some_and(u8::is_ascii_digit)
    }
}

/// `getnum`: the number the format spells next, or `default` when no digit follows.
fn getnum(lua: &Lua, raise: &Raise, fmt: &mut Format, default: i32) -> mlua::Result<i32> {
    if !fmt.at_digit() {
        return Ok(default);
    }
    let mut a: i32 = 0;
    while let Some(d) = fmt.digit() {
        let d = i32::from(d);
        if a > i32::MAX / 10 || a * 10 > i32::MAX - d {
            return Err(raise.placed(lua, "integral size overflow"));
        }
        a = a * 10 + d;
    }
    Ok(a)
}

/// `optsize`: the size of an option's item (reading its number), 0 for options without one.
fn optsize(lua: &Lua, raise: &Raise, opt: u8, fmt: &mut Format) -> mlua::Result<usize> {
    let size = match opt {
        b'B' | b'b' | b'x' => 1,
        b'H' | b'h' => 2,
        b'f' => 4,
        b'L' | b'l' | b'T' | b'd' => 8,
        // `getnum` never returns a negative number.
        b'c' => getnum(lua, raise, fmt, 1)?.unsigned_abs() as usize,
        b'i' | b'I' => {
            let size = getnum(lua, raise, fmt, INT_SIZE)?;
            if size > MAXINTSIZE {
                let msg = format!("integral size {size} is larger than limit of {MAXINTSIZE}");
                return Err(raise.placed(lua, &msg));
            }
            size.unsigned_abs() as usize
        }
        _ => 0,
    };
    Ok(size)
}

/// `gettoalign`: the padding an item of `size` bytes needs at offset `len`.
fn gettoalign(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & (size - 1)) & (size - 1)
}

/// `controloptions`: spaces, byte order, alignment; anything else is an invalid option.
fn controloptions(lua: &Lua, raise: &Raise, opt: u8, fmt: &mut Format, h: &mut Header) -> mlua::Result<()> {
    match opt {
        b' ' => {}
        b'>' => h.little = false,
        b'<' => h.little = true,
        b'!' => {
            let a = getnum(lua, raise, fmt, MAXALIGN)?;
            if a <= 0 || a & (a - 1) != 0 {
                return Err(raise.placed(lua, &format!("alignment {a} is not a power of 2")));
            }
            h.align = a.unsigned_abs() as usize;
        }
        _ => {
            let mut msg = b"invalid format option '".to_vec();
            msg.extend_from_slice(&[opt, b'\'']);
            return Err(arg_error(lua, raise, 1, &msg));
        }
    }
    Ok(())
}

/// `luaL_checklstring`: argument `i` (from 1) as bytes; numbers become their text.
fn check_string(lua: &Lua, raise: &Raise, arg: Option<&Value>, i: usize) -> mlua::Result<Vec<u8>> {
    match arg {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(Value::Number(n)) => Ok(lua_number(*n).into_bytes()),
        Some(Value::Integer(n)) => Ok(lua_number(*n as f64).into_bytes()),
        _ => Err(type_error(lua, raise, i, "string", arg)),
    }
}

/// `luaL_checknumber`: argument `i` (from 1) as a number.
fn check_number(lua: &Lua, raise: &Raise, arg: Option<&Value>, i: usize) -> mlua::Result<f64> {
    arg.and_then(to_number).ok_or_else(|| type_error(lua, raise, i, "number", arg))
}

/// C's (x86-64's) double to `long`: truncation, `LONG_MIN` when out of range or NaN.
fn to_long(n: f64) -> i64 {
    if n.is_nan() || !(-TWO_63..TWO_63).contains(&n) {
        i64::MIN
    } else {
        // In range: truncation toward zero, as `cvttsd2si`.
        n as i64
    }
}

/// C's (gcc's x86-64) double to `unsigned long`: below 2^63 as `long`, else 2^63 less and the
/// top bit flipped back (so 2^64 and beyond become 0).
fn to_ulong(n: f64) -> u64 {
    if n.is_nan() || n < TWO_63 {
        // Two's complement reinterpretation, as C's conversion of `long` to `unsigned long`.
        to_long(n) as u64
    } else {
        (to_long(n - TWO_63) as u64) ^ (1 << 63)
    }
}

/// `struct.pack(fmt, ...)`.
fn pack(lua: &Lua, raise: &Raise, args: &[Value]) -> mlua::Result<mlua::String> {
    let text = check_string(lua, raise, args.first(), 1)?;
    let mut fmt = Format::new(&text);
    let mut h = Header::new();
    // C pushes a nil after the arguments: the first missing one reads as nil.
    let nil = Value::Nil;
    let get = |i: usize| Some(args.get(i - 1).unwrap_or(&nil));
    let mut arg = 2;
    let mut total: usize = 0;
    let mut out: Vec<u8> = Vec::new();
    while let Some(opt) = fmt.next_byte() {
        let mut size = optsize(lua, raise, opt, &mut fmt)?;
        let toalign = gettoalign(total, &h, opt, size);
        total = total.wrapping_add(toalign);
        out.resize(out.len() + toalign, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(lua, raise, get(arg), arg)?;
                arg += 1;
                put_integer(&mut out, n, h.little, size);
            }
            b'x' => out.push(0),
            b'f' => {
                // Rounding to the nearest float, as C's `(float)`.
                let f = check_number(lua, raise, get(arg), arg)? as f32;
                arg += 1;
                out.extend_from_slice(&if h.little { f.to_le_bytes() } else { f.to_be_bytes() });
            }
            b'd' => {
                let d = check_number(lua, raise, get(arg), arg)?;
                arg += 1;
                out.extend_from_slice(&if h.little { d.to_le_bytes() } else { d.to_be_bytes() });
            }
            b'c' | b's' => {
                let s = check_string(lua, raise, get(arg), arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                // C checks after counting the argument: the message names the next one.
                let Some(bytes) = s.get(..size) else {
                    return Err(arg_error(lua, raise, arg, b"string too short"));
                };
                out.extend_from_slice(bytes);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => controloptions(lua, raise, opt, &mut fmt, &mut h)?,
        }
        total = total.wrapping_add(size);
    }
    lua.create_string(out)
}

/// `putinteger`: `n` as a C `long` (`unsigned long` when not negative), in `size` bytes; bytes
/// beyond the eighth are 0.
fn put_integer(out: &mut Vec<u8>, n: f64, little: bool, size: usize) {
    let mut value = if n < 0.0 {
        // Two's complement reinterpretation, as C's `(Uinttype)(Inttype)n`.
        to_long(n) as u64
    } else {
        to_ulong(n)
    };
    let mut bytes = Vec::with_capacity(size);
    for _ in 0..size {
        // Deliberate truncation to the low byte.
        bytes.push(value as u8);
        value >>= 8;
    }
    if !little {
        bytes.reverse();
    }
    out.extend_from_slice(&bytes);
}

/// `getinteger`: `bytes` as an integer; only the last eight bytes read count, and the sign
/// extension of wide signed ones uses the shift x86-64 makes of C's over-wide one.
fn get_integer(bytes: &[u8], little: bool, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut take = |b: &u8| l = (l << 8) | u64::from(*b);
    if little {
        bytes.iter().rev().for_each(&mut take);
    } else {
        bytes.iter().for_each(&mut take);
    }
    if !signed {
        return l as f64;
    }
    // `size*8 - 1` as an int (-1 for no bytes), the count taken modulo 64 by `wrapping_shl`.
    let width = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    let mask = u64::MAX.wrapping_shl(width.wrapping_mul(8).wrapping_sub(1));
    if l & mask != 0 {
        l |= mask;
    }
    // Two's complement reinterpretation, as C's `(Inttype)l`.
    l as i64 as f64
}

/// An item `unpack` has read, kept until the end (`c0` takes back the last one).
enum Item {
    /// A number.
    Number(f64),
    /// A string.
    Bytes(Vec<u8>),
}

/// `struct.unpack(fmt, s [, i])`: the items, then the position after them.
fn unpack(lua: &Lua, raise: &Raise, args: &[Value]) -> mlua::Result<MultiValue> {
    let text = check_string(lua, raise, args.first(), 1)?;
    let data = check_string(lua, raise, args.get(1), 2)?;
    let ld = data.len();
    // `luaL_optinteger`, then C stores the (possibly negative) integer in a `size_t`.
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1,
        Some(v) => {
            // Two's complement reinterpretation, as C's conversion to `size_t`.
            to_number(v).map(to_long).ok_or_else(|| type_error(lua, raise, 3, "number", Some(v)))? as usize
        }
    };
    if start == 0 {
        return Err(arg_error(lua, raise, 3, b"offset must be 1 or greater"));
    }
    let mut pos = start - 1;
    let mut fmt = Format::new(&text);
    let mut h = Header::new();
    let mut items: Vec<Item> = Vec::new();
    let too_short = || arg_error(lua, raise, 2, b"data string too short");
    while let Some(opt) = fmt.next_byte() {
        let mut size = optsize(lua, raise, opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if size > ld || pos > ld - size {
            return Err(too_short());
        }
        if args.len() + items.len() + 2 > MAXCSTACK {
            return Err(raise.placed(lua, "stack overflow (too many results)"));
        }
        let field = |len: usize| data.get(pos..pos + len).ok_or_else(too_short);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(field(size)?, h.little, opt.is_ascii_lowercase());
                items.push(Item::Number(n));
            }
            b'x' => {}
            b'f' => {
                let bytes: [u8; 4] = field(4)?.try_into().map_err(|_| too_short())?;
                let f = if h.little { f32::from_le_bytes(bytes) } else { f32::from_be_bytes(bytes) };
                items.push(Item::Number(f64::from(f)));
            }
            b'd' => {
                let bytes: [u8; 8] = field(8)?.try_into().map_err(|_| too_short())?;
                let d = if h.little { f64::from_le_bytes(bytes) } else { f64::from_be_bytes(bytes) };
                items.push(Item::Number(d));
            }
            b'c' => {
                if size == 0 {
                    // The last result, if `lua_isnumber` takes it for a number.
                    let previous = match items.last() {
                        Some(Item::Number(n)) => Some(*n),
                        Some(Item::Bytes(b)) => str_to_number(b),
                        None => None,
                    };
                    let Some(previous) = previous else {
                        return Err(raise.placed(lua, "format 'c0' needs a previous size"));
                    };
                    // C stores the double in a `size_t`.
                    size = to_ulong(previous) as usize;
                    items.pop();
                    if size > ld || pos > ld - size {
                        return Err(too_short());
                    }
                }
                items.push(Item::Bytes(field(size)?.to_vec()));
            }
            b's' => {
                let rest = data.get(pos..).unwrap_or_default();
                let Some(end) = rest.iter().position(|&b| b == 0) else {
                    return Err(raise.placed(lua, "unfinished string in data"));
                };
                items.push(Item::Bytes(rest[..end].to_vec()));
                size = end + 1;
            }
            _ => controloptions(lua, raise, opt, &mut fmt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    let mut values = Vec::with_capacity(items.len() + 1);
    for item in items {
        values.push(match item {
            Item::Number(n) => Value::Number(n),
            Item::Bytes(b) => Value::String(lua.create_string(b)?),
        });
    }
    // `lua_pushinteger` of the `size_t`: reinterpreted as signed.
    values.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(MultiValue::from_vec(values))
}

/// `struct.size(fmt)`: the bytes `pack` makes of `fmt`.
fn size(lua: &Lua, raise: &Raise, args: &[Value]) -> mlua::Result<f64> {
    let text = check_string(lua, raise, args.first(), 1)?;
    let mut fmt = Format::new(&text);
    let mut h = Header::new();
    let mut pos: usize = 0;
    while let Some(opt) = fmt.next_byte() {
        let size = optsize(lua, raise, opt, &mut fmt)?;
        pos = pos.wrapping_add(gettoalign(pos, &h, opt, size));
        if opt == b's' {
            return Err(arg_error(lua, raise, 1, b"option 's' has no fixed size"));
        } else if opt == b'c' && size == 0 {
            return Err(arg_error(lua, raise, 1, b"option 'c0' has no fixed size"));
        }
        // Letters and digits without a meaning count for nothing.
        if !opt.is_ascii_alphanumeric() {
            controloptions(lua, raise, opt, &mut fmt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    // `lua_pushinteger` of the `size_t`: reinterpreted as signed.
    Ok(pos as i64 as f64)
}

#[cfg(test)]
mod tests {
    use mlua::Lua;

    use super::super::testing::error;
    use crate::engine::script::raise::Raise;

    /// A state with `struct` installed, and its `Raise`.
    fn state() -> mlua::Result<(Lua, Raise)> {
        let (lua, raise) = super::super::testing::state(super::install)?;
        Ok((lua, raise))
    }

    /// The bytes of the string `code` returns.
    fn bytes(lua: &Lua, code: &str) -> mlua::Result<Vec<u8>> {
        Ok(lua.load(code).set_name("@user_script").eval::<mlua::String>()?.as_bytes().to_vec())
    }

    /// The values real Redis 7.0 gives.
    #[test]
    fn known_values() -> mlua::Result<()> {
        let (lua, _) = state()?;
        assert_eq!(bytes(&lua, "return struct.pack('>I2', 258)")?, b"\x01\x02");
        assert_eq!(lua.load("return struct.unpack('<h', '\\255\\255')").eval::<(f64, f64)>()?, (-1.0, 3.0));
        assert_eq!(lua.load("return struct.size('i')").eval::<f64>()?, 4.0);
        Ok(())
    }

    /// Packing: byte order, alignment, sizes, strings.
    #[test]
    fn packing() -> mlua::Result<()> {
        let (lua, _) = state()?;
        assert_eq!(bytes(&lua, "return struct.pack('<!4bi', 1, 2)")?, b"\x01\0\0\0\x02\0\0\0");
        assert_eq!(bytes(&lua, "return struct.pack('<i3', -2)")?, b"\xfe\xff\xff");
        assert_eq!(bytes(&lua, "return struct.pack('>i16', -1)")?, [[0u8; 8], [0xff; 8]].concat());
        assert_eq!(bytes(&lua, "return struct.pack('<d', 1.5)")?, 1.5f64.to_le_bytes());
        assert_eq!(bytes(&lua, "return struct.pack('>f', 1.5)")?, 1.5f32.to_be_bytes());
        assert_eq!(bytes(&lua, "return struct.pack('s c0 c2 x', 'ab', 'cd', 'efg')")?, b"ab\0cdef\0");
        assert_eq!(bytes(&lua, "return struct.pack('B', 256 + 7)")?, b"\x07");
        assert_eq!(lua.load("return struct.size('!8bd')").eval::<f64>()?, 16.0);
        assert_eq!(lua.load("return struct.size('lLThz')").eval::<f64>()?, 26.0);
        Ok(())
    }

    /// Unpacking: numbers, strings, `c0`, offsets.
    #[test]
    fn unpacking() -> mlua::Result<()> {
        let (lua, _) = state()?;
        let code = "return struct.unpack('<I2 s b', '\\1\\2ab\\0\\255')";
        assert_eq!(lua.load(code).eval::<(f64, String, f64, f64)>()?, (513.0, "ab".into(), -1.0, 7.0));
        let code = "return struct.unpack('bc0', '\\2xyz')";
        assert_eq!(lua.load(code).eval::<(String, f64)>()?, ("xy".into(), 4.0));
        let code = "return struct.unpack('>d', struct.pack('>d', -0.25))";
        assert_eq!(lua.load(code).eval::<(f64, f64)>()?, (-0.25, 9.0));
        let code = "return struct.unpack('B', 'abc', 2)";
        assert_eq!(lua.load(code).eval::<(f64, f64)>()?, (98.0, 3.0));
        Ok(())
    }

    /// Errors read as the C library raises them.
    #[test]
    fn errors() -> mlua::Result<()> {
        let (lua, raise) = state()?;
        let cases = [
            ("struct.pack('i33', 1)", "integral size 33 is larger than limit of 32"),
            ("struct.pack('z')", "bad argument #1 to 'pack' (invalid format option 'z')"),
            ("struct.pack('i')", "bad argument #2 to 'pack' (number expected, got nil)"),
            ("struct.pack('c5', 'ab')", "bad argument #3 to 'pack' (string too short)"),
            ("struct.pack('!3i', 1)", "alignment 3 is not a power of 2"),
            ("struct.pack()", "bad argument #1 to 'pack' (string expected, got no value)"),
            ("struct.unpack('i', 'ab')", "bad argument #2 to 'unpack' (data string too short)"),
            ("struct.unpack('c0', 'abc')", "format 'c0' needs a previous size"),
            ("struct.unpack('s', 'abc')", "unfinished string in data"),
            ("struct.unpack('b', 'a', 0)", "bad argument #3 to 'unpack' (offset must be 1 or greater)"),
            ("struct.size('s')", "bad argument #1 to 'size' (option 's' has no fixed size)"),
            ("struct.size('c0')", "bad argument #1 to 'size' (option 'c0' has no fixed size)"),
            ("struct.size('i99999999999')", "integral size overflow"),
        ];
        for (call, want) in cases {
            let got = error(&lua, &raise, &format!("return {call}"))?;
            assert_eq!(got, format!("user_script:1: {want}"), "{call}");
        }
        Ok(())
    }
}
