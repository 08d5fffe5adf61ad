//! What the stream commands share: IDs as their arguments are read (strict, interval,
//! exclusive), MAXLEN/MINID trimming options, and entries as replies.

use bytes::Bytes;

use crate::cmd::args::is;
use crate::cmd::error::CmdError;
use crate::facade::Reply;
use crate::storage::stream::id::{self, Written};
use crate::storage::stream::read::Copied;
use crate::storage::stream::{Entry, StreamId, Trim};

/// An ID argument that does not read.
pub(crate) const INVALID_ID: CmdError =
    CmdError::msg("ERR Invalid stream ID specified as stream command argument");

/// Parses `arg` as an ID, `-` and `+` included unless `strict`, with `missing_seq` when it
/// gives none (Redis's `streamGenericParseIDOrReply` without `ms-*`).
///
/// # Errors
/// [`INVALID_ID`].
pub(crate) fn id(arg: &[u8], missing_seq: u64, strict: bool) -> Result<StreamId, CmdError> {
    match arg {
        b"-" if !strict => return Ok(StreamId::MIN),
        b"+" if !strict => return Ok(StreamId::MAX),
        _ => {}
    }
    match id::parse(arg) {
        Some(Written { any_seq: false, ms, seq }) => Ok(StreamId::new(ms, seq.unwrap_or(missing_seq))),
        _ => Err(INVALID_ID),
    }
}

/// A strict ID, its sequence 0 when missing (XDEL, XACK, XCLAIM, XREAD).
///
/// # Errors
/// [`INVALID_ID`].
pub(crate) fn strict(arg: &[u8]) -> Result<StreamId, CmdError> {
    id(arg, 0, true)
}

/// The start of an interval (XRANGE, XPENDING, XAUTOCLAIM): `-`, an ID, or `(ID` (exclusive).
///
/// # Errors
/// [`INVALID_ID`], or Redis's error for an exclusive start past the last ID.
pub(crate) fn start(arg: &[u8]) -> Result<StreamId, CmdError> {
    match exclusive(arg) {
        Some(rest) => id(rest, 0, true)?.next().ok_or(CmdError::msg("ERR invalid start ID for the interval")),
        None => id(arg, 0, false),
    }
}

/// The end of an interval: `+`, an ID (its sequence the largest when missing), or `(ID`.
///
/// # Errors
/// [`INVALID_ID`], or Redis's error for an exclusive end below `0-0`.
pub(crate) fn end(arg: &[u8]) -> Result<StreamId, CmdError> {
    match exclusive(arg) {
        Some(rest) => {
            id(rest, u64::MAX, true)?.prev().ok_or(CmdError::msg("ERR invalid end ID for the interval"))
        }
        None => id(arg, u64::MAX, false),
    }
}

fn exclusive(arg: &[u8]) -> Option<&[u8]> {
    arg.strip_prefix(b"(").filter(|_| arg.len() > 1)
}

/// An integer option (COUNT and friends), negative read as 0.
///
/// # Errors
/// [`CmdError::NotInteger`].
pub(crate) fn count(arg: &[u8]) -> Result<usize, CmdError> {
    let n = crate::cmd::args::int(arg)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The ID XADD adds at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewId {
    /// `*`: the time now, or the next after the last.
    Auto,
    /// `ms-*`: the next sequence in that millisecond.
    Seq(u64),
    /// An explicit ID (a bare `ms` counts as `ms-0` given in full, as Redis reads it).
    Given(StreamId),
}

/// XADD's and XTRIM's trimming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trimming {
    /// What to keep.
    pub(crate) rule: Trim,
    /// `~`: whole blocks only.
    pub(crate) approx: bool,
    /// At most this many entries (0: no limit).
    pub(crate) limit: u64,
    /// Where the `~` or `=` and the threshold are in the request, to rewrite for propagation.
    pub(crate) threshold_at: usize,
}

/// XADD's and XTRIM's parsed options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AddOrTrim {
    /// The trimming, if any.
    pub(crate) trim: Option<Trimming>,
    /// NOMKSTREAM.
    pub(crate) nomkstream: bool,
    /// XADD: the ID and where it stands.
    pub(crate) id: Option<(NewId, usize)>,
}

/// Parses XADD's options and ID (`xadd`) or XTRIM's options, as Redis's
/// `streamParseAddOrTrimArgsOrReply`, every error before the key is looked at.
/// `node_entries` is `stream-node-max-entries` (the default LIMIT of `~` is 100 times it);
/// `obey` (the link to a primary, the AOF's replay) trims without a limit and skips LIMIT's
/// checks, as Redis's `mustObeyClient` does.
///
/// # Errors
/// Redis's errors for each option.
pub(crate) fn add_or_trim(
    args: &[Bytes],
    xadd: bool,
    node_entries: u64,
    obey: bool,
) -> Result<AddOrTrim, CmdError> {
    const BOTH: CmdError =
        CmdError::msg("ERR syntax error, MAXLEN and MINID options at the same time are not compatible");
    let mut out = AddOrTrim { trim: None, nomkstream: false, id: None };
    let mut rule: Option<(Trim, bool, usize)> = None;
    let mut limit: Option<(i64, usize)> = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let a = &args[i];
        if xadd && &a[..] == b"*" {
            out.id = Some((NewId::Auto, i));
            break;
        }
        if (is(a, "maxlen") || is(a, "minid")) && more > 0 {
            if rule.is_some() {
                return Err(BOTH);
            }
            let mut approx = false;
            if more >= 2 && (&args[i + 1][..] == b"~" || &args[i + 1][..] == b"=") {
                approx = &args[i + 1][..] == b"~";
                i += 1;
            }
            let threshold = &args[i + 1];
            let r = if is(a, "maxlen") {
                let n = crate::cmd::args::int(threshold)?;
                Trim::MaxLen(
                    u64::try_from(n).map_err(|_| CmdError::msg("ERR The MAXLEN argument must be >= 0."))?,
                )
            } else {
                Trim::MinId(strict(threshold)?)
            };
            rule = Some((r, approx, i + 1));
            i += 2;
            continue;
        }
        if is(a, "limit") && more > 0 {
            let n = crate::cmd::args::int(&args[i + 1])?;
            if n < 0 {
                return Err(CmdError::msg("ERR The LIMIT argument must be >= 0."));
            }
            limit = Some((n, i));
            i += 2;
            continue;
        }
        if xadd && is(a, "nomkstream") {
            out.nomkstream = true;
            i += 1;
            continue;
        }
        if !xadd {
            return Err(CmdError::Syntax);
        }
        let parsed = id::parse(a).ok_or(INVALID_ID)?;
        let new = match parsed {
            Written { any_seq: true, ms, .. } => NewId::Seq(ms),
            Written { ms, seq, .. } => NewId::Given(StreamId::new(ms, seq.unwrap_or(0))),
        };
        out.id = Some((new, i));
        break;
    }
    if limit.is_some_and(|(n, _)| n != 0) && rule.is_none() {
        return Err(CmdError::msg(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && rule.is_none() {
        return Err(CmdError::msg("ERR syntax error, XTRIM must be called with a trimming strategy"));
    }
    let approx = rule.is_some_and(|(_, approx, _)| approx);
    if !obey && limit.is_some() && !approx {
        return Err(CmdError::msg("ERR syntax error, LIMIT cannot be used without the special ~ option"));
    }
    if let Some((r, approx, threshold_at)) = rule {
        let limit_n = match limit {
            _ if obey => 0,
            Some((n, _)) => n as u64,
            None if approx => {
                let n = 100u64.saturating_mul(node_entries);
                if n == 0 {
                    10_000
                } else {
                    n.min(1_000_000)
                }
            }
            None => 0,
        };
        out.trim = Some(Trimming { rule: r, approx, limit: limit_n, threshold_at });
    }
    Ok(out)
}

/// The request as it propagates after an approximate trim: `~` becomes `=` with the
/// threshold the trim reached (the length for MAXLEN, `first` for MINID; LIMIT stays, as the
/// obeying side ignores it), and the ID as added when XADD generated it (`id_at`).
#[must_use]
pub(crate) fn rewritten(
    args: &[Bytes],
    trim: Option<&Trimming>,
    reached: (u64, StreamId),
    id_at: Option<(usize, StreamId)>,
) -> Vec<Bytes> {
    let mut out: Vec<Bytes> = args.to_vec();
    if let Some((at, id)) = id_at {
        out[at] = id.to_bytes();
    }
    if let Some(t) = trim.filter(|t| t.approx) {
        out[t.threshold_at - 1] = Bytes::from_static(b"=");
        out[t.threshold_at] = match t.rule {
            Trim::MaxLen(_) => Bytes::from(reached.0.to_string()),
            Trim::MinId(_) => reached.1.to_bytes(),
        };
    }
    out
}

/// An entry as a reply: `[id, [field, value, ...]]`.
#[must_use]
pub(crate) fn entry(e: Entry<'_>) -> Reply {
    let pairs = e.pairs;
    Reply::Array(vec![Reply::Bulk(e.id.to_bytes()), Reply::bulk_array(pairs.flat_map(|(f, v)| [f, v]))])
}

/// A copied entry as a reply; one no longer in the stream is `[id, nil]`.
#[must_use]
pub(crate) fn copied(c: &Copied) -> Reply {
    let pairs = match &c.1 {
        Some(flat) => Reply::bulk_array(flat.iter().map(|b| &b[..])),
        None => Reply::NilArray,
    };
    Reply::Array(vec![Reply::Bulk(c.0.to_bytes()), pairs])
}

/// An ID as a reply.
#[must_use]
pub(crate) fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}
