//! Bitmap commands, as Redis 7.0's `bitops.c` runs them: the bits of string values, bit 0 the
//! most significant bit of the first byte. SETBIT and BITFIELD change a value in place (the
//! string's buffer is reused when nothing else shares it, so a run of SETBITs on a large
//! bitmap costs no copy each); GETBIT, BITCOUNT, BITPOS and BITFIELD_RO read it; BITOP reads
//! any number of keys and writes one, atomically across shards when they span several.

use bytes::{Bytes, BytesMut};

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::string::{read_str, write_str};
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::shard::Ctx;
use crate::engine::spec::{acl, flag, key, KeyFlags, KeySpec};
use crate::facade::Reply;
use crate::storage::db::{Entry, Value};
use crate::storage::dict::Key;
use crate::storage::encoding::StrForm;

/// The bitmap family.
pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::shard("setbit", 4, setbit)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::BITMAP)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RW | key::ACCESS | key::UPDATE))
            .docs(
                "bitmap",
                "2.2.0",
                "O(1)",
                "Sets or clears the bit at offset in the string value stored at key",
            ),
        Command::shard("getbit", 3, getbit)
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::BITMAP)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs(
                "bitmap",
                "2.2.0",
                "O(1)",
                "Returns the bit value at offset in the string value stored at key",
            ),
        Command::shard("bitcount", -2, bitcount)
            .flags(flag::READONLY)
            .acl(acl::BITMAP)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("bitmap", "2.6.0", "O(N)", "Count set bits in a string")
            .history(&[("7.0.0", "Added the `BYTE|BIT` option.")]),
        Command::shard("bitpos", -3, bitpos)
            .flags(flag::READONLY)
            .acl(acl::BITMAP)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("bitmap", "2.8.7", "O(N)", "Find first bit set or clear in a string")
            .history(&[("7.0.0", "Added the `BYTE|BIT` option.")]),
        Command::across("bitop", -4, bitop, |tx, db, a| Box::pin(bitop_across(tx, db, a)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::BITMAP)
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::index(3).range(-1, 1, 0).flags(key::RO | key::ACCESS))
            .docs("bitmap", "2.6.0", "O(N)", "Perform bitwise operations between strings"),
        Command::shard("bitfield", -2, |c, a| bitfield(c, a, false))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::BITMAP)
            .key(
                KeySpec::index(1)
                    .range(0, 1, 0)
                    .flags(key::RW | key::ACCESS | key::UPDATE | key::VARIABLE_FLAGS)
                    .notes("This command allows both access and modification of the key"),
            )
            .docs(
                "bitmap",
                "3.2.0",
                "O(1) for each subcommand specified",
                "Perform arbitrary bitfield integer operations on strings",
            )
            .getkeys(bitfield_keys),
        Command::shard("bitfield_ro", -2, |c, a| bitfield(c, a, true))
            .flags(flag::READONLY | flag::FAST)
            .acl(acl::BITMAP)
            .key(KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs(
                "bitmap",
                "6.0.0",
                "O(1) for each subcommand specified",
                "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
            ),
    ]
}

/// Redis's error for a bad bit offset.
const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";

/// A bit offset argument (`#n` counts in units of `bits` where allowed), bounded so that its
/// byte fits `proto-max-bulk-len`.
fn bit_offset(ctx: &Ctx<'_>, arg: &[u8], hash_bits: Option<u32>) -> Result<u64, CmdError> {
    let (digits, unit) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], i64::from(bits)),
        _ => (arg, 1),
    };
    let n = crate::num::parse_i64(digits).ok_or(CmdError::msg(BAD_OFFSET))?;
    let n = n.wrapping_mul(unit);
    match u64::try_from(n) {
        Ok(offset) if (offset >> 3) < ctx.max_bulk => Ok(offset),
        _ => Err(CmdError::msg(BAD_OFFSET)),
    }
}

/// Runs `f` on the string at `key` grown with zeros to at least `len` bytes (created when
/// missing; WRONGTYPE checked first), in place; the string is `raw` from then on, as Redis's
/// `lookupStringForBitCommand` leaves it. `f` is told whether the string was created or grown
/// (Redis's `dirty`).
fn edit<R>(
    ctx: &mut Ctx<'_>,
    key: &[u8],
    len: usize,
    f: impl FnOnce(&mut BytesMut, bool) -> R,
) -> Result<R, CmdError> {
    if write_str(ctx, key)?.is_none() {
        let mut buf = BytesMut::zeroed(len);
        let r = f(&mut buf, true);
        ctx.db.set(key, Value::string_as(Key::new(buf.freeze()), StrForm::Raw), None);
        return Ok(r);
    }
    let Some(Entry { value: Value::Str(s, _, form), .. }) = ctx.db.write(key, ctx.now) else {
        return Err(CmdError::Internal);
    };
    *form = StrForm::Raw;
    Ok(s.edit(|buf| {
        let grown = buf.len() < len;
        if grown {
            buf.resize(len, 0);
        }
        f(buf, grown)
    }))
}

/// SETBIT key offset value
fn setbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &args[2], None)?;
    const BAD_BIT: &str = "ERR bit is not an integer or out of range";
    let on = match crate::num::parse_i64(&args[3]) {
        Some(0) => false,
        Some(1) => true,
        _ => return Err(CmdError::msg(BAD_BIT)),
    };
    let (byte, mask) = ((offset >> 3) as usize, 0x80u8 >> (offset & 7));
    let (was, changed) = edit(ctx, &args[1], byte + 1, |buf, dirty| {
        let was = buf[byte] & mask != 0;
        if on {
            buf[byte] |= mask;
        } else {
            buf[byte] &= !mask;
        }
        (was, dirty || was != on)
    })?;
    if changed {
        ctx.notify(Class::STRING, "setbit", &args[1]);
    }
    Ok(Reply::Int(i64::from(was)))
}

/// GETBIT key offset
fn getbit(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let offset = bit_offset(ctx, &args[2], None)?;
    let Some(value) = read_str(ctx, &args[1])? else { return Ok(Reply::Int(0)) };
    let byte = value.as_slice().get((offset >> 3) as usize).copied().unwrap_or(0);
    Ok(Reply::Int(i64::from(byte & (0x80 >> (offset & 7)) != 0)))
}

/// A BITCOUNT or BITPOS range, resolved against a string of `len` bytes: the bytes to look
/// at, and the bits of the first and last byte outside it (Redis's negative masks).
struct Range {
    start: i64,
    end: i64,
    first_out: u8,
    last_out: u8,
}

impl Range {
    /// Resolves `start..=end` (negative from the end) in bytes, or in bits with `bits`.
    fn resolve(len: usize, mut start: i64, mut end: i64, bits: bool) -> Range {
        let total = if bits { (len as i64) << 3 } else { len as i64 };
        if start < 0 {
            start += total;
        }
        if end < 0 {
            end += total;
        }
        start = start.max(0);
        end = end.max(0).min(total - 1);
        let (mut first_out, mut last_out) = (0, 0);
        if bits && start <= end {
            first_out = !((1u16 << (8 - (start & 7))) - 1) as u8;
            last_out = ((1u16 << (7 - (end & 7))) - 1) as u8;
            start >>= 3;
            end >>= 3;
        }
        Range { start, end, first_out, last_out }
    }
}

/// The BYTE|BIT argument.
fn unit(arg: &[u8]) -> Result<bool, CmdError> {
    if is(arg, "bit") {
        Ok(true)
    } else if is(arg, "byte") {
        Ok(false)
    } else {
        Err(CmdError::Syntax)
    }
}

/// BITCOUNT key [start end [BYTE | BIT]]
fn bitcount(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    // As Redis: the key first (a missing one is 0 whatever follows), then the range.
    let Some(value) = read_str(ctx, &args[1])?.map(Key::to_bytes) else { return Ok(Reply::Int(0)) };
    let range = match args.len() {
        2 => Range { start: 0, end: value.len() as i64 - 1, first_out: 0, last_out: 0 },
        4 | 5 => {
            let (start, end) = (args::int(&args[2])?, args::int(&args[3])?);
            if start < 0 && end < 0 && start > end {
                return Ok(Reply::Int(0));
            }
            let bits = match args.get(4) {
                Some(u) => unit(u)?,
                None => false,
            };
            Range::resolve(value.len(), start, end, bits)
        }
        _ => return Err(CmdError::Syntax),
    };
    if range.start > range.end {
        return Ok(Reply::Int(0));
    }
    let bytes = &value[range.start as usize..=range.end as usize];
    let mut count = popcount(bytes);
    count -= u64::from((bytes[0] & range.first_out).count_ones());
    count -= u64::from((bytes[bytes.len() - 1] & range.last_out).count_ones());
    Ok(Reply::Int(count as i64))
}

/// The set bits of `bytes`, eight words at a time: the baseline x86-64 target has no POPCNT
/// instruction, and a byte at a time cost ten times as much (4x Redis's BITCOUNT on 1 MB).
fn popcount(bytes: &[u8]) -> u64 {
    let mut blocks = bytes.chunks_exact(64);
    let mut n = 0u64;
    for block in &mut blocks {
        let mut words = [0u64; 8];
        for (w, b) in words.iter_mut().zip(block.chunks_exact(8)) {
            *w = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
        }
        n += words.iter().map(|w| u64::from(w.count_ones())).sum::<u64>();
    }
    n + blocks.remainder().iter().map(|b| u64::from(b.count_ones())).sum::<u64>()
}

/// The position of the first bit equal to `bit` in `bytes`; when looking for a clear bit and
/// every bit is set, the position just past them (Redis's `redisBitpos`); else -1.
fn first_bit(bytes: &[u8], bit: bool) -> i64 {
    let skip = if bit { 0u8 } else { 0xff };
    match bytes.iter().position(|&b| b != skip) {
        Some(i) => {
            let b = if bit { bytes[i] } else { !bytes[i] };
            (i as i64) * 8 + i64::from(b.leading_zeros())
        }
        None if bit => -1,
        None => (bytes.len() as i64) * 8,
    }
}

/// BITPOS key bit [start [end [BYTE | BIT]]]
fn bitpos(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let bit = match args::int(&args[2])? {
        0 => false,
        1 => true,
        _ => return Err(CmdError::msg("ERR The bit argument must be 1 or 0.")),
    };
    let Some(value) = read_str(ctx, &args[1])?.map(Key::to_bytes) else {
        return Ok(Reply::Int(if bit { -1 } else { 0 }));
    };
    let len = value.len();
    let (range, end_given) = match args.len() {
        3 => (Range { start: 0, end: len as i64 - 1, first_out: 0, last_out: 0 }, false),
        4..=6 => {
            let start = args::int(&args[3])?;
            let bits = match args.get(5) {
                Some(u) => unit(u)?,
                None => false,
            };
            let (end, given) = match args.get(4) {
                Some(e) => (args::int(e)?, true),
                None if bits => (((len as i64) << 3) + 7, false),
                None => (len as i64 - 1, false),
            };
            (Range::resolve(len, start, end, bits), given)
        }
        _ => return Err(CmdError::Syntax),
    };
    if range.start > range.end {
        return Ok(Reply::Int(-1));
    }
    // The looked-at bytes, the bits outside the range forced to what is not looked for.
    let mut bytes = value[range.start as usize..=range.end as usize].to_vec();
    let n = bytes.len();
    let (first, last) = (range.first_out, range.last_out);
    if bit {
        bytes[0] &= !first;
        bytes[n - 1] &= !last;
    } else {
        bytes[0] |= first;
        bytes[n - 1] |= last;
    }
    let mut pos = first_bit(&bytes, bit);
    // A clear bit looked for in a range given in full: past its end is not zero padding.
    if end_given && !bit && pos == (n as i64) * 8 {
        return Ok(Reply::Int(-1));
    }
    if pos != -1 {
        pos += range.start << 3;
    }
    Ok(Reply::Int(pos))
}

/// A BITOP operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP's operation, checked as Redis checks it (before any key).
fn op_of(args: &[Bytes]) -> Result<Op, CmdError> {
    let op = if is(&args[1], "and") {
        Op::And
    } else if is(&args[1], "or") {
        Op::Or
    } else if is(&args[1], "xor") {
        Op::Xor
    } else if is(&args[1], "not") {
        Op::Not
    } else {
        return Err(CmdError::Syntax);
    };
    if op == Op::Not && args.len() != 4 {
        return Err(CmdError::msg("ERR BITOP NOT must be called with a single source key."));
    }
    Ok(op)
}

/// The result of `op` over `sources` (a missing key is an empty string), as long as the
/// longest; shorter ones read as zeros past their end.
fn combine(op: Op, sources: &[Option<Bytes>]) -> Vec<u8> {
    let max = sources.iter().map(|s| s.as_ref().map_or(0, Bytes::len)).max().unwrap_or(0);
    let byte = |s: &Option<Bytes>, j: usize| s.as_ref().and_then(|s| s.get(j).copied()).unwrap_or(0);
    (0..max)
        .map(|j| {
            let first = byte(&sources[0], j);
            match op {
                Op::Not => !first,
                Op::And => sources[1..].iter().fold(first, |acc, s| acc & byte(s, j)),
                Op::Or => sources[1..].iter().fold(first, |acc, s| acc | byte(s, j)),
                Op::Xor => sources[1..].iter().fold(first, |acc, s| acc ^ byte(s, j)),
            }
        })
        .collect()
}

/// Stores BITOP's result at `dest` (no TTL), or deletes `dest` when it is empty: its length.
fn store_result(ctx: &mut Ctx<'_>, dest: &[u8], result: Vec<u8>) -> Reply {
    let len = result.len() as i64;
    if result.is_empty() {
        if ctx.db.remove(dest).is_some() {
            ctx.notify(Class::GENERIC, "del", dest);
        }
    } else {
        ctx.db.set(dest, Value::string_as(Key::new(Bytes::from(result)), StrForm::Raw), None);
        ctx.notify(Class::STRING, "set", dest);
    }
    Reply::Int(len)
}

/// BITOP AND | OR | XOR | NOT destkey key [key ...], every key on this shard.
fn bitop(ctx: &mut Ctx<'_>, args: &[Bytes]) -> CmdResult {
    let op = op_of(args)?;
    let sources = args[3..]
        .iter()
        .map(|k| read_str(ctx, k).map(|v| v.map(Key::to_bytes)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(store_result(ctx, &args[2], combine(op, &sources)))
}

/// BITOP across shards: each source read where it lives, in order (the first of another type
/// is the error), then the result written where the destination lives, all in the
/// transaction.
async fn bitop_across(tx: &Tx, db: usize, args: &[Bytes]) -> CmdResult {
    let op = op_of(args)?;
    let mut sources = Vec::with_capacity(args.len() - 3);
    for k in &args[3..] {
        let key = k.clone();
        sources.push(tx.on(tx.shard_of(k), db, move |c| Ok(read_str(c, &key)?.map(Key::to_bytes))).await?);
    }
    let result = combine(op, &sources);
    let dest = args[2].clone();
    tx.on(tx.shard_of(&dest), db, move |c| Ok(store_result(c, &dest, result))).await
}

/// How BITFIELD treats a value that does not fit its type.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

/// What one BITFIELD subcommand does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One BITFIELD subcommand, parsed.
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// A BITFIELD type (`i1`..`i64`, `u1`..`u63`).
fn field_type(arg: &[u8]) -> Result<(bool, u32), CmdError> {
    const BAD: &str =
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(CmdError::msg(BAD)),
    };
    match crate::num::parse_i64(&arg[1..]) {
        Some(bits) if bits >= 1 && bits <= if signed { 64 } else { 63 } => Ok((signed, bits as u32)),
        _ => Err(CmdError::msg(BAD)),
    }
}

/// BITFIELD's subcommands, checked as Redis checks them: in order, the first error wins.
fn parse_fields(ctx: &Ctx<'_>, args: &[Bytes]) -> Result<Vec<Field>, CmdError> {
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        let sub = &args[j];
        // A write's constructor, given its value once the type and offset are checked.
        let write: Option<fn(i64) -> FieldOp> = if is(sub, "get") && left >= 2 {
            None
        } else if is(sub, "set") && left >= 3 {
            Some(FieldOp::Set)
        } else if is(sub, "incrby") && left >= 3 {
            Some(FieldOp::IncrBy)
        } else if is(sub, "overflow") && left >= 1 {
            overflow = if is(&args[j + 1], "wrap") {
                Overflow::Wrap
            } else if is(&args[j + 1], "sat") {
                Overflow::Sat
            } else if is(&args[j + 1], "fail") {
                Overflow::Fail
            } else {
                return Err(CmdError::msg("ERR Invalid OVERFLOW type specified"));
            };
            j += 2;
            continue;
        } else {
            return Err(CmdError::Syntax);
        };
        let (signed, bits) = field_type(&args[j + 1])?;
        let offset = bit_offset(ctx, &args[j + 2], Some(bits))?;
        let op = match write {
            None => FieldOp::Get,
            Some(make) => make(args::int(&args[j + 3])?),
        };
        fields.push(Field { op, signed, bits, offset, overflow });
        j += if op == FieldOp::Get { 3 } else { 4 };
    }
    Ok(fields)
}

/// The `bits`-bit unsigned integer at bit `offset` of `bytes` (zeros past the end).
fn get_unsigned(bytes: &[u8], offset: u64, bits: u32) -> u64 {
    (0..u64::from(bits)).fold(0, |value, j| {
        let at = offset + j;
        let byte = bytes.get((at >> 3) as usize).copied().unwrap_or(0);
        (value << 1) | u64::from((byte >> (7 - (at & 7))) & 1)
    })
}

/// The `bits`-bit two's complement integer at bit `offset` of `bytes`.
fn get_signed(bytes: &[u8], offset: u64, bits: u32) -> i64 {
    let value = get_unsigned(bytes, offset, bits);
    if bits < 64 && value & (1 << (bits - 1)) != 0 {
        (value | (u64::MAX << bits)) as i64
    } else {
        value as i64
    }
}

/// Writes the low `bits` bits of `value` at bit `offset` of `bytes` (long enough).
fn set_bits(bytes: &mut [u8], offset: u64, bits: u32, value: u64) {
    for j in 0..u64::from(bits) {
        let on = value & (1 << (u64::from(bits) - 1 - j)) != 0;
        let at = offset + j;
        let (byte, mask) = ((at >> 3) as usize, 0x80u8 >> (at & 7));
        if on {
            bytes[byte] |= mask;
        } else {
            bytes[byte] &= !mask;
        }
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: whether `value + incr` leaves `bits` bits, and
/// the value to store then under WRAP or SAT.
fn unsigned_overflow(value: u64, incr: i64, bits: u32, overflow: Overflow) -> Option<u64> {
    let max = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX.checked_shl(bits).unwrap_or(0));
    if value > max || (incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { max })
    } else if incr < 0 && incr < min_incr {
        Some(if overflow == Overflow::Wrap { wrap() } else { 0 })
    } else {
        None
    }
}

/// Redis's `checkSignedBitfieldOverflow`, as [`unsigned_overflow`] for two's complement.
fn signed_overflow(value: i64, incr: i64, bits: u32, overflow: Overflow) -> Option<i64> {
    let max = if bits == 64 { i64::MAX } else { (1i64 << (bits - 1)) - 1 };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if bits < 64 {
            let mask = u64::MAX << bits;
            if c & (1 << (bits - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    if value > max || (bits != 64 && incr > max_incr) || (value >= 0 && incr > 0 && incr > max_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { max })
    } else if value < min || (bits != 64 && incr < min_incr) || (value < 0 && incr < 0 && incr < min_incr) {
        Some(if overflow == Overflow::Wrap { wrap() } else { min })
    } else {
        None
    }
}

/// One SET or INCRBY on `buf`: its reply (nil when OVERFLOW FAIL refused it), and whether
/// it counts as a change (the field changed, or, written at all, the string is `dirty`: new or
/// grown).
fn write_field(buf: &mut [u8], f: &Field, dirty: bool) -> (Reply, bool) {
    if f.signed {
        let old = get_signed(buf, f.offset, f.bits);
        let (new, over, reply_new) = match f.op {
            FieldOp::IncrBy(by) => match signed_overflow(old, by, f.bits, f.overflow) {
                Some(limit) => (limit, true, true),
                None => (old.wrapping_add(by), false, true),
            },
            FieldOp::Set(v) => match signed_overflow(v, 0, f.bits, f.overflow) {
                Some(limit) => (limit, true, false),
                None => (v, false, false),
            },
            FieldOp::Get => return (Reply::Nil, false),
        };
        if over && f.overflow == Overflow::Fail {
            return (Reply::Nil, false);
        }
        set_bits(buf, f.offset, f.bits, new as u64);
        (Reply::Int(if reply_new { new } else { old }), dirty || old != new)
    } else {
        let old = get_unsigned(buf, f.offset, f.bits);
        let (new, over, reply_new) = match f.op {
            FieldOp::IncrBy(by) => match unsigned_overflow(old, by, f.bits, f.overflow) {
                Some(limit) => (limit, true, true),
                None => (old.wrapping_add(by as u64), false, true),
            },
            FieldOp::Set(v) => match unsigned_overflow(v as u64, 0, f.bits, f.overflow) {
                Some(limit) => (limit, true, false),
                None => (v as u64, false, false),
            },
            FieldOp::Get => return (Reply::Nil, false),
        };
        if over && f.overflow == Overflow::Fail {
            return (Reply::Nil, false);
        }
        set_bits(buf, f.offset, f.bits, new);
        (Reply::Int(if reply_new { new as i64 } else { old as i64 }), dirty || old != new)
    }
}

/// A GET subcommand's reply, read from `bytes`.
fn read_field(bytes: &[u8], f: &Field) -> Reply {
    if f.signed {
        Reply::Int(get_signed(bytes, f.offset, f.bits))
    } else {
        Reply::Int(get_unsigned(bytes, f.offset, f.bits) as i64)
    }
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset increment]
/// [OVERFLOW WRAP | SAT | FAIL] ..., and BITFIELD_RO (GET only).
fn bitfield(ctx: &mut Ctx<'_>, args: &[Bytes], read_only: bool) -> CmdResult {
    let fields = parse_fields(ctx, args)?;
    let Some(highest) =
        fields.iter().filter(|f| f.op != FieldOp::Get).map(|f| f.offset + u64::from(f.bits) - 1).max()
    else {
        let value = read_str(ctx, &args[1])?.map(Key::to_bytes).unwrap_or_default();
        return Ok(Reply::Array(fields.iter().map(|f| read_field(&value, f)).collect()));
    };
    if read_only {
        return Err(CmdError::msg("ERR BITFIELD_RO only supports the GET subcommand"));
    }
    let (reply, changed) = edit(ctx, &args[1], (highest >> 3) as usize + 1, |buf, dirty| {
        let mut changed = false;
        let replies = fields
            .iter()
            .map(|f| match f.op {
                FieldOp::Get => read_field(buf, f),
                _ => {
                    let (reply, change) = write_field(buf, f, dirty);
                    changed |= change;
                    reply
                }
            })
            .collect();
        (Reply::Array(replies), changed)
    })?;
    if changed {
        ctx.notify(Class::STRING, "setbit", &args[1]);
    }
    Ok(reply)
}

/// BITFIELD's key flags: read-only while every subcommand before the first that writes (or
/// does not parse) is a GET or an OVERFLOW, as Redis's `bitfieldGetKeys` finds them.
fn bitfield_keys(args: &[Bytes], keys: &mut Vec<(usize, KeyFlags)>) {
    let mut read_only = true;
    let mut i = 2;
    while i < args.len() {
        let left = args.len() - i - 1;
        if is(&args[i], "get") && left >= 2 {
            i += 3;
        } else if is(&args[i], "overflow") && left >= 1 {
            i += 2;
        } else {
            read_only = false;
            break;
        }
    }
    keys.push((1, if read_only { key::RO | key::ACCESS } else { key::RW | key::ACCESS | key::UPDATE }));
}

#[cfg(test)]
mod tests {
    use crate::cmd::testing::Fixture;

    #[test]
    fn bits_are_read_and_written_msb_first() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("SETBIT b 7 1"), ":0\r\n");
        assert_eq!(f.resp("GET b"), "$1\r\n\x01\r\n");
        assert_eq!(f.resp("SETBIT b 7 1"), ":1\r\n");
        assert_eq!(f.resp("GETBIT b 7"), ":1\r\n");
        assert_eq!(f.resp("GETBIT b 100"), ":0\r\n");
        assert_eq!(f.resp("SETBIT b 2 2"), "-ERR bit is not an integer or out of range\r\n");
        assert_eq!(f.resp("SETBIT b -1 1"), "-ERR bit offset is not an integer or out of range\r\n");
        assert_eq!(f.resp("SETBIT b 4294967296 1"), "-ERR bit offset is not an integer or out of range\r\n");
    }

    #[test]
    fn a_large_bitmap_is_changed_in_place() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("SETBIT big 8000000 1"), ":0\r\n");
        for i in 0..1000 {
            f.resp(&format!("SETBIT big {} 1", i * 7919));
        }
        assert_eq!(f.resp("BITCOUNT big"), ":1001\r\n");
        assert_eq!(f.resp("STRLEN big"), ":1000001\r\n");
    }

    #[test]
    fn bitfield_overflows_as_redis() {
        let mut f = Fixture::new();
        assert_eq!(f.resp("BITFIELD k SET u8 0 255 GET u8 0"), "*2\r\n:0\r\n:255\r\n");
        assert_eq!(f.resp("BITFIELD k INCRBY u8 0 10"), "*1\r\n:9\r\n");
        assert_eq!(f.resp("BITFIELD k OVERFLOW SAT INCRBY u8 0 300"), "*1\r\n:255\r\n");
        assert_eq!(f.resp("BITFIELD k OVERFLOW FAIL INCRBY u8 0 1"), "*1\r\n$-1\r\n");
        assert_eq!(f.resp("BITFIELD k SET i8 0 -128 INCRBY i8 0 -1"), "*2\r\n:-1\r\n:127\r\n");
        assert_eq!(
            f.resp("BITFIELD_RO k SET u8 0 1"),
            "-ERR BITFIELD_RO only supports the GET subcommand\r\n"
        );
        assert_eq!(
            f.resp("BITFIELD k GET u64 0"),
            "-ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.\r\n"
        );
    }
}
