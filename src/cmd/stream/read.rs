//! XREAD and XREADGROUP: entries after an ID from one or more streams, wherever their keys
//! live (atomically across shards), and, with BLOCK, waiting on every key's shard for new
//! ones. A group read delivers and records pending entries on the stream's shard, with the
//! effects Redis propagates.

use std::time::Duration;

use bytes::Bytes;

use crate::cmd::args::is;
use crate::cmd::block::unblocked;
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::stream::args;
use crate::engine::blocking::{self, Waited};
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::Ctx;
use crate::engine::waiters::{GroupWait, Served, Wants};
use crate::facade::Reply;
use crate::storage::access::{self, stream, stream_mut};
use crate::storage::stream::read::{self as group_read, Copied};
use crate::storage::stream::StreamId;

/// What a read asks of each stream.
#[derive(Debug, Clone)]
struct Spec {
    /// XREADGROUP's group and consumer.
    group: Option<(Bytes, Bytes)>,
    /// NOACK.
    noack: bool,
    /// COUNT (0: all).
    count: usize,
}

/// A parsed XREAD or XREADGROUP.
struct Read {
    spec: Spec,
    /// BLOCK: `Some(None)` forever, `Some(Some(d))` at most `d`.
    block: Option<Option<Duration>>,
    keys: Vec<Bytes>,
    ids: Vec<Bytes>,
}

/// Where one stream is read from, once its ID is resolved on its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum From {
    /// Entries after this ID (XREAD).
    After(StreamId),
    /// The group's new entries (`>`).
    New,
    /// The consumer's pending entries after this ID.
    History(StreamId),
}

/// Parses the options, every error before any key is looked at.
fn parse(a: &[Bytes], group_cmd: bool, from_script: bool) -> Result<Read, CmdError> {
    let mut spec = Spec { group: None, noack: false, count: 0 };
    let mut block = None;
    let mut streams = None;
    let mut i = 1;
    while i < a.len() {
        let more = a.len() - 1 - i;
        let arg = &a[i];
        if is(arg, "block") && more > 0 {
            if from_script {
                let name = String::from_utf8_lossy(&a[0]).into_owned();
                return Err(CmdError::text(format!(
                    "ERR {name} command is not allowed with BLOCK option from scripts"
                )));
            }
            let ms = crate::cmd::args::int(&a[i + 1])
                .map_err(|_| CmdError::msg("ERR timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(CmdError::msg("ERR timeout is negative"));
            }
            block = Some((ms > 0).then(|| Duration::from_millis(ms as u64)));
            i += 2;
        } else if is(arg, "count") && more > 0 {
            spec.count = args::count(&a[i + 1])?;
            i += 2;
        } else if is(arg, "streams") && more > 0 {
            let n = a.len() - (i + 1);
            if n % 2 != 0 {
                return Err(CmdError::msg(
                    "ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
                ));
            }
            streams = Some((i + 1, n / 2));
            break;
        } else if is(arg, "group") && more >= 2 {
            if !group_cmd {
                return Err(CmdError::msg(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            spec.group = Some((a[i + 1].clone(), a[i + 2].clone()));
            i += 3;
        } else if is(arg, "noack") {
            if !group_cmd {
                return Err(CmdError::msg(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            spec.noack = true;
            i += 1;
        } else {
            return Err(CmdError::Syntax);
        }
    }
    let Some((first, n)) = streams else { return Err(CmdError::Syntax) };
    if group_cmd && spec.group.is_none() {
        return Err(CmdError::msg("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(Read { spec, block, keys: a[first..first + n].to_vec(), ids: a[first + n..].to_vec() })
}

/// XREADGROUP's error for a missing key or group.
fn no_group(key: &[u8], group: &[u8]) -> CmdError {
    CmdError::text(format!(
        "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
        String::from_utf8_lossy(key),
        String::from_utf8_lossy(group)
    ))
}

/// Resolves one stream's ID on its shard (`$` to its last ID, `>` for a group).
fn resolve(c: &mut Ctx<'_>, key: &[u8], id: &[u8], spec: &Spec) -> Result<From, CmdError> {
    let s = access::read(c.db, c.now, key, stream)?;
    if let Some((group, _)) = &spec.group {
        if !s.is_some_and(|s| s.groups.contains_key(group)) {
            return Err(no_group(key, group));
        }
    }
    match (id, &spec.group) {
        (b"$", Some(_)) => Err(CmdError::msg(
            "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this \
             consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an \
             empty result set.",
        )),
        (b"$", None) => Ok(From::After(s.map_or(StreamId::MIN, |s| s.last_id))),
        (b">", Some(_)) => Ok(From::New),
        (b">", None) => Err(CmdError::msg(
            "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
        )),
        (id, Some(_)) => Ok(From::History(args::strict(id)?)),
        (id, None) => Ok(From::After(args::strict(id)?)),
    }
}

/// Serves one stream on its shard: its entries, or `None` when it has none to give.
fn serve(c: &mut Ctx<'_>, key: &[u8], from: From, spec: &Spec) -> Option<Vec<Copied>> {
    let now = c.now as i64;
    let journaling = c.journaling();
    let s = access::write_quiet(c.db, c.now, key, stream_mut).ok().flatten()?;
    let last_live = s.last_entry().map(|e| e.id);
    let new_consumer = spec.group.as_ref().is_some_and(|(group, consumer)| {
        s.groups.get(&group[..]).is_some_and(|g| !g.consumers.contains_key(&consumer[..]))
    });
    let mut effects: Vec<Vec<Bytes>> = Vec::new();
    let mut log = |args: &[&[u8]]| effects.push(args.iter().map(|a| Bytes::copy_from_slice(a)).collect());
    let served = match (from, &spec.group) {
        (From::After(gt), _) => {
            return last_live.filter(|l| *l > gt).map(|_| group_read::after(s, gt, spec.count));
        }
        (From::New, Some((group, consumer))) => {
            let g = s.groups.get(&group[..])?;
            last_live.filter(|l| *l > g.last_id)?;
            let r = group_read::Reader { key, group, consumer, noack: spec.noack, now, effects: journaling };
            group_read::deliver(s, r, spec.count, &mut log)
        }
        (From::History(gt), Some((group, consumer))) => {
            let r = group_read::Reader { key, group, consumer, noack: spec.noack, now, effects: journaling };
            group_read::history(s, r, gt, spec.count, &mut log)
        }
        (_, None) => None,
    };
    c.db.count_change(key, false);
    if new_consumer && served.is_some() {
        c.notify(Class::STREAM, "xgroup-createconsumer", key);
    }
    for e in &effects {
        let args: Vec<&[u8]> = e.iter().map(|b| &b[..]).collect();
        c.log(&args);
    }
    if effects.is_empty() {
        c.log_nothing();
    }
    served
}

/// What a read found: the streams served, in request order, and each stream's resolved start
/// (for blocking).
type Found = (Vec<(Bytes, Vec<Copied>)>, Vec<From>);

/// Resolves every stream, then serves each, all on this shard.
fn read_here(c: &mut Ctx<'_>, keys: &[Bytes], ids: &[Bytes], spec: &Spec) -> Result<Found, CmdError> {
    let froms = keys.iter().zip(ids).map(|(k, id)| resolve(c, k, id, spec)).collect::<Result<Vec<_>, _>>()?;
    let mut served = Vec::new();
    for (key, from) in keys.iter().zip(&froms) {
        if let Some(entries) = serve(c, key, *from, spec) {
            served.push((key.clone(), entries));
        }
    }
    Ok((served, froms))
}

/// [`read_here`] with the streams on several shards, all held by `tx`.
async fn read_across(
    tx: &Tx,
    db: usize,
    keys: &[Bytes],
    ids: &[Bytes],
    spec: &Spec,
) -> Result<Found, CmdError> {
    let mut froms = Vec::with_capacity(keys.len());
    for (key, id) in keys.iter().zip(ids) {
        let (k, id, spec) = (key.clone(), id.clone(), spec.clone());
        froms.push(tx.on(tx.shard_of(key), db, move |c| resolve(c, &k, &id, &spec)).await?);
    }
    let mut served = Vec::new();
    for (key, from) in keys.iter().zip(&froms) {
        let (k, from, spec) = (key.clone(), *from, spec.clone());
        if let Some(entries) = tx.on(tx.shard_of(key), db, move |c| Ok(serve(c, &k, from, &spec))).await? {
            served.push((key.clone(), entries));
        }
    }
    Ok((served, froms))
}

/// The reply for the streams served: `key => entries`.
fn reply(served: Vec<(Bytes, Vec<Copied>)>) -> Reply {
    Reply::Keyed(
        served
            .into_iter()
            .map(|(key, entries)| {
                (Reply::Bulk(key), Reply::Array(entries.iter().map(args::copied).collect()))
            })
            .collect(),
    )
}

/// XREAD [COUNT count] [BLOCK ms] STREAMS key [key ...] id [id ...], and
/// XREADGROUP GROUP group consumer [COUNT count] [BLOCK ms] [NOACK] STREAMS key [...] id [...]
pub(crate) async fn xread(s: &mut Session, a: &[Bytes]) -> CmdResult {
    let p = parse(a, a[0].len() == 10, s.in_script)?;
    let (db, keys, ids, spec) = (s.db, p.keys.clone(), p.ids.clone(), p.spec.clone());
    let (served, froms) = s
        .over_keys(
            &p.keys,
            move |c| read_here(c, &keys, &ids, &spec),
            async |tx: &Tx| read_across(tx, db, &p.keys, &p.ids, &p.spec).await,
        )
        .await?;
    if !served.is_empty() {
        return Ok(reply(served));
    }
    let Some(limit) = p.block else { return Ok(Reply::NilArray) };
    if !s.may_block() {
        return Ok(Reply::NilArray);
    }
    // A key named twice waits with its first ID.
    let mut keys: Vec<Bytes> = Vec::new();
    let mut afters: Vec<From> = Vec::new();
    for (key, from) in p.keys.iter().zip(froms) {
        if !keys.contains(key) {
            keys.push(key.clone());
            afters.push(from);
        }
    }
    let count = if p.spec.count == 0 { 1000 } else { p.spec.count };
    let group = p.spec.group.as_ref().map(|(group, consumer)| {
        Box::new(GroupWait { group: group.clone(), consumer: consumer.clone(), noack: p.spec.noack })
    });
    let wants = |key: &Bytes, _| {
        let at = keys.iter().position(|k| k == key).unwrap_or(0);
        let after = match afters.get(at) {
            Some(From::After(id)) => *id,
            _ => StreamId::MAX,
        };
        Wants::Stream { after, count, group: group.clone() }
    };
    match blocking::wait(s, &keys, wants, limit, false).await? {
        Waited::Served(key, Served::Stream(entries)) => Ok(reply(vec![(key, entries)])),
        Waited::Served(_, Served::Failed(e)) => Err(e),
        Waited::Served(..) => Err(CmdError::Internal),
        Waited::Stopped(why) => unblocked(why),
    }
}
