//! SORT and SORT_RO: the elements of a list, set or sorted set, sorted as numbers or strings,
//! by themselves or by keys a pattern names (`BY weight_*`, `BY obj_*->field`), with
//! LIMIT, with GET patterns fetching other keys for each element, and STORE into a list.
//!
//! A pattern can name a key on any shard, so a SORT that looks keys up holds every shard for
//! the whole command (one transaction; each shard's lookups in one hop), and no write
//! interleaves with it. One that does not, holds only its source's and destination's shards.
//! Sorting follows Redis's `sort.c` to the tie: glibc's stable `qsort`, or Redis's `pqsort`
//! for a window of a sort BY a pattern; strings compare as bytes (Redis's `strcoll` in the C
//! and C.UTF-8 locales).

use std::cmp::Ordering;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::pqsort::pqsort;
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::session::Session;
use crate::engine::shard::Ctx;
use crate::engine::slot::ShardId;
use crate::engine::spec::{acl, flag, key, KeyFlags, KeySpec};
use crate::facade::Reply;
use crate::storage::db::{Entry, Value};

/// Redis's note on SORT's BY and GET key spec.
const PATTERN_NOTE: &str =
    "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort";
/// Redis's note on SORT's STORE key spec.
const STORE_NOTE: &str =
    "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array";

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    let source = || KeySpec::index(1).range(0, 1, 0).flags(key::RO | key::ACCESS);
    let patterns = || KeySpec::unknown().flags(key::RO | key::ACCESS).notes(PATTERN_NOTE);
    let acl = acl::SET | acl::SORTEDSET | acl::LIST | acl::DANGEROUS;
    let complexity = "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).";
    vec![
        Command::session("sort", -2, |s, a| Box::pin(sort(s, a, false)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl)
            .key(source())
            .key(patterns())
            .key(KeySpec::unknown().flags(key::OW | key::UPDATE).notes(STORE_NOTE))
            .getkeys(sort_keys)
            .fan_out_when(may_look_up)
            .docs("generic", "1.0.0", complexity, "Sort the elements in a list, set or sorted set"),
        Command::session("sort_ro", -2, |s, a| Box::pin(sort(s, a, true)))
            .flags(flag::READONLY)
            .acl(acl)
            .key(source())
            .key(patterns())
            .fan_out_when(may_look_up)
            .docs(
                "generic",
                "7.0.0",
                complexity,
                "Sort the elements in a list, set or sorted set. Read-only variant of SORT.",
            ),
    ]
}

/// SORT's keys as Redis's `sortGetKeys` finds them: the source, and the key after the last
/// STORE (LIMIT, GET and BY skipped with their arguments).
fn sort_keys(a: &[Bytes], keys: &mut Vec<(usize, KeyFlags)>) {
    keys.push((1, key::RO | key::ACCESS));
    let mut store = None;
    let mut i = 2;
    while i < a.len() {
        if is(&a[i], "limit") {
            i += 2;
        } else if is(&a[i], "get") || is(&a[i], "by") {
            i += 1;
        } else if is(&a[i], "store") && i + 1 < a.len() {
            store = Some(i + 1);
        }
        i += 1;
    }
    keys.extend(store.map(|p| (p, key::OW | key::UPDATE)));
}

/// Whether a SORT request may read keys it does not name: a BY pattern, or a GET pattern
/// other than `#` (an over-estimate of [`Options::looks_up`], which needs the session to
/// parse). Inside EXEC such a SORT needs every shard held, its lookups landing anywhere.
fn may_look_up(a: &[Bytes]) -> bool {
    let mut i = 2;
    while i < a.len() {
        if is(&a[i], "limit") {
            i += 2;
        } else if is(&a[i], "by") {
            return true;
        } else if is(&a[i], "get") {
            if a.get(i + 1).is_some_and(|p| &p[..] != b"#") {
                return true;
            }
            i += 1;
        } else if is(&a[i], "store") {
            i += 1;
        }
        i += 1;
    }
    false
}

/// A SORT request, parsed.
#[derive(Debug, Clone, Default)]
struct Options {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    limit_count: i64,
    store: Option<Bytes>,
    by: Option<Bytes>,
    gets: Vec<Bytes>,
    /// BY a pattern without `*`: no sorting.
    dontsort: bool,
}

impl Options {
    /// Whether some key besides the source and the destination is read.
    fn looks_up(&self) -> bool {
        (self.by.is_some() && !self.dontsort) || self.gets.iter().any(|g| &g[..] != b"#")
    }
}

/// Redis's option loop, its errors in its order; BY and GET with a pattern need a user who
/// may read every key (Redis's `ACLUserCheckCmdWithUnrestrictedKeyAccess`).
fn parse(s: &Session, a: &[Bytes], readonly: bool) -> Result<Options, CmdError> {
    let mut o = Options { limit_count: -1, ..Options::default() };
    let full_access = || s.superuser || s.user.may_read_every_key(a);
    let mut j = 2;
    while j < a.len() {
        let left = a.len() - j - 1;
        let arg = &a[j];
        if is(arg, "asc") {
            o.desc = false;
        } else if is(arg, "desc") {
            o.desc = true;
        } else if is(arg, "alpha") {
            o.alpha = true;
        } else if is(arg, "limit") && left >= 2 {
            o.limit_start = args::int(&a[j + 1])?;
            o.limit_count = args::int(&a[j + 2])?;
            j += 2;
        } else if !readonly && is(arg, "store") && left >= 1 {
            o.store = Some(a[j + 1].clone());
            j += 1;
        } else if is(arg, "by") && left >= 1 {
            o.by = Some(a[j + 1].clone());
            if a[j + 1].contains(&b'*') {
                if s.core.global.cluster.is_some() {
                    return Err(CmdError::msg("ERR BY option of SORT denied in Cluster mode."));
                }
                if !full_access() {
                    return Err(CmdError::msg(
                        "ERR BY option of SORT denied due to insufficient ACL permissions.",
                    ));
                }
                o.dontsort = false;
            } else {
                o.dontsort = true;
            }
            j += 1;
        } else if is(arg, "get") && left >= 1 {
            if s.core.global.cluster.is_some() {
                return Err(CmdError::msg("ERR GET option of SORT denied in Cluster mode."));
            }
            if !full_access() {
                return Err(CmdError::msg(
                    "ERR GET option of SORT denied due to insufficient ACL permissions.",
                ));
            }
            o.gets.push(a[j + 1].clone());
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// SORT and SORT_RO: parsed, then run in a transaction over the shards it may touch (the
/// running EXEC's or script's, if there is one).
async fn sort(s: &mut Session, a: &[Bytes], readonly: bool) -> CmdResult {
    let o = parse(s, a, readonly)?;
    let router = s.core.router.clone();
    let (db, from_script) = (s.db, s.in_script);
    let (tx, own) = match &s.exec_tx {
        Some(tx) => (tx.clone(), false),
        None => {
            let mut shards: Vec<ShardId> = if o.looks_up() {
                (0..router.shards()).map(ShardId).collect()
            } else {
                std::iter::once(&a[1]).chain(&o.store).map(|k| router.shard_of(k)).collect()
            };
            shards.sort();
            shards.dedup();
            (Rc::new(router.begin(shards).await.map_err(|_| CmdError::Unavailable)?), true)
        }
    };
    let result = run(&tx, db, &o, &a[1], from_script).await;
    if let (Ok((_, true)), Some(_)) = (&result, &o.store) {
        let logged: Vec<&[u8]> = a.iter().map(|x| &x[..]).collect();
        tx.log(Some(db), &logged);
    }
    if own {
        if let Ok(tx) = Rc::try_unwrap(tx) {
            tx.release().await;
        }
    }
    result.map(|(reply, _)| reply)
}

/// The type of the sorted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    List,
    Set,
    ZSet,
}

/// The elements of the value at `key`, in the order Redis reads them (a list from the head,
/// a set in its table's order, a sorted set by rank; Redis's order is its table's, which
/// only ties among weightless members sorted ALPHA BY a pattern show); a missing key is an
/// empty list.
fn elements(ctx: &mut Ctx<'_>, key: &[u8]) -> Result<(Kind, Vec<Bytes>), CmdError> {
    // Redis turns a sorted set it sorts into a skiplist for good.
    if let Some(Entry { value: Value::ZSet(z, _), .. }) = ctx.db.write_quiet(key, ctx.now) {
        z.make_large();
    }
    Ok(match ctx.db.read(key, ctx.now) {
        None => (Kind::List, Vec::new()),
        Some(Entry { value: Value::List(l, _), .. }) => {
            (Kind::List, l.iter().map(Bytes::copy_from_slice).collect())
        }
        Some(Entry { value: Value::Set(set, _), .. }) => {
            (Kind::Set, set.iter().map(|(m, ())| Bytes::copy_from_slice(m)).collect())
        }
        Some(Entry { value: Value::ZSet(z, _), .. }) => {
            (Kind::ZSet, z.slices_from(0, false).map(|(m, _)| Bytes::copy_from_slice(m)).collect())
        }
        Some(_) => return Err(CmdError::WrongType),
    })
}

/// A key a pattern names for an element, and the hash field after `->`, if any (Redis's
/// `lookupKeyByPattern` before its lookup); `None` for a pattern without `*`.
fn pattern_key(pattern: &[u8], element: &[u8]) -> Option<(Bytes, Option<Bytes>)> {
    let star = pattern.iter().position(|&b| b == b'*')?;
    let after = &pattern[star + 1..];
    let field = after.windows(2).position(|w| w == b"->").filter(|&at| at + 2 < after.len());
    let postfix = match field {
        Some(at) => &after[..at],
        None => after,
    };
    let mut key = BytesMut::with_capacity(star + element.len() + postfix.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(element);
    key.extend_from_slice(postfix);
    Some((key.freeze(), field.map(|at| Bytes::copy_from_slice(&after[at + 2..]))))
}

/// The value a lookup finds: a string key's value, or a hash field's.
fn lookup(ctx: &mut Ctx<'_>, key: &[u8], field: Option<&[u8]>) -> Option<Bytes> {
    match (ctx.db.read(key, ctx.now)?, field) {
        (Entry { value: Value::Str(s, ..), .. }, None) => Some(s.to_bytes()),
        (Entry { value: Value::Hash(h, _), .. }, Some(f)) => h.get(f).map(|v| v.to_bytes()),
        _ => None,
    }
}

/// One lookup: the element's position, the key, and the hash field if any.
type Wanted = (usize, Bytes, Option<Bytes>);

/// What `pattern` finds for each of `elements` (`#`: the element itself), every shard's
/// lookups in one hop.
async fn look_up(
    tx: &Tx,
    db: usize,
    pattern: &[u8],
    elements: &[Bytes],
) -> Result<Vec<Option<Bytes>>, CmdError> {
    if pattern == b"#" {
        return Ok(elements.iter().cloned().map(Some).collect());
    }
    let mut found = vec![None; elements.len()];
    let mut by_shard: Vec<(ShardId, Vec<Wanted>)> = Vec::new();
    for (i, e) in elements.iter().enumerate() {
        let Some((key, field)) = pattern_key(pattern, e) else { continue };
        let shard = tx.shard_of(&key);
        match by_shard.iter_mut().find(|(s, _)| *s == shard) {
            Some((_, list)) => list.push((i, key, field)),
            None => by_shard.push((shard, vec![(i, key, field)])),
        }
    }
    for (shard, wanted) in by_shard {
        let got = tx
            .on(shard, db, move |c| {
                Ok(wanted.into_iter().map(|(i, k, f)| (i, lookup(c, &k, f.as_deref()))).collect::<Vec<_>>())
            })
            .await?;
        for (i, v) in got {
            found[i] = v;
        }
    }
    Ok(found)
}

/// An element and what it sorts by.
struct Item {
    obj: Bytes,
    score: f64,
    cmp: Option<Bytes>,
}

/// Redis's `strtod` check of a sort weight: the whole string a number (leading blanks
/// allowed, the empty string 0), in range, not NaN.
fn weight(text: &[u8]) -> Option<f64> {
    if text.is_empty() {
        return Some(0.0);
    }
    let start = text.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    match crate::num::strtod(&text[start..]) {
        Some((f, false)) if !f.is_nan() => Some(f),
        _ => None,
    }
}

/// C's `strcmp` on the strings up to their first NUL (Redis's `strcoll`, C and C.UTF-8).
fn c_string_cmp(a: &[u8], b: &[u8]) -> Ordering {
    let cut = |s: &[u8]| -> usize { s.iter().position(|&c| c == 0).unwrap_or(s.len()) };
    a[..cut(a)].cmp(&b[..cut(b)])
}

/// The SORT itself, in Redis's steps: window, weights, sort, output. With STORE, whether
/// the destination changed comes back with the reply.
async fn run(
    tx: &Tx,
    db: usize,
    o: &Options,
    key: &Bytes,
    from_script: bool,
) -> Result<(Reply, bool), CmdError> {
    let source = key.clone();
    let (kind, all) = tx.on(tx.shard_of(key), db, move |c| elements(c, &source)).await?;
    let (mut alpha, mut dontsort, mut by) = (o.alpha, o.dontsort, o.by.clone());
    // An unsorted set would come out in table order: stored or in a script, it is sorted.
    if dontsort && kind == Kind::Set && (o.store.is_some() || from_script) {
        (dontsort, alpha, by) = (false, true, None);
    }
    let len = all.len() as i64;
    let mut start = o.limit_start.max(0).min(len);
    let limit_count = o.limit_count.max(-1).min(len);
    let mut end = if limit_count < 0 { len - 1 } else { start + limit_count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let windowed = matches!(kind, Kind::List | Kind::ZSet) && dontsort && (start != 0 || end != len - 1);
    let vector: Vec<Bytes> = if windowed || (dontsort && kind != Kind::Set) {
        let count = if windowed { (end - start + 1).max(0) as usize } else { all.len() };
        let from = start.max(0) as usize;
        let picked: Vec<Bytes> = if o.desc {
            all.iter().rev().skip(from).take(count).cloned().collect()
        } else {
            all.iter().skip(from).take(count).cloned().collect()
        };
        end -= start;
        start = 0;
        picked
    } else {
        all
    };
    let mut items: Vec<Item> = vector.into_iter().map(|obj| Item { obj, score: 0.0, cmp: None }).collect();
    let mut conversion_error = false;
    if !dontsort {
        let weights: Vec<Option<Bytes>> = match &by {
            Some(pattern) => {
                let objs: Vec<Bytes> = items.iter().map(|i| i.obj.clone()).collect();
                look_up(tx, db, pattern, &objs).await?
            }
            None => items.iter().map(|i| Some(i.obj.clone())).collect(),
        };
        for (item, w) in items.iter_mut().zip(weights) {
            let Some(w) = w else { continue };
            if alpha {
                if by.is_some() {
                    item.cmp = Some(w);
                }
            } else {
                match weight(&w) {
                    Some(f) => item.score = f,
                    None => conversion_error = true,
                }
            }
        }
        let (store, bypattern, desc) = (o.store.is_some(), by.is_some(), o.desc);
        let compare = |a: &Item, b: &Item| {
            let c = if !alpha {
                a.score
                    .partial_cmp(&b.score)
                    .filter(|c| *c != Ordering::Equal)
                    .unwrap_or_else(|| a.obj.cmp(&b.obj))
            } else if bypattern {
                match (&a.cmp, &b.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(x), Some(y)) if store => x.cmp(y),
                    (Some(x), Some(y)) => c_string_cmp(x, y),
                }
            } else if store {
                a.obj.cmp(&b.obj)
            } else {
                c_string_cmp(&a.obj, &b.obj)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        };
        let n = items.len() as i64;
        if bypattern && (start != 0 || end != n - 1) && end >= start {
            pqsort(&mut items, start as usize, end as usize, compare);
        } else {
            items.sort_by(compare);
        }
    }
    if conversion_error {
        return Err(CmdError::msg("ERR One or more scores can't be converted into double"));
    }
    let window: Vec<Bytes> = if end >= start {
        items.into_iter().skip(start as usize).take((end - start + 1) as usize).map(|i| i.obj).collect()
    } else {
        Vec::new()
    };
    let mut columns = Vec::with_capacity(o.gets.len());
    for pattern in &o.gets {
        columns.push(look_up(tx, db, pattern, &window).await?);
    }
    let rows = window.len();
    let Some(dest) = o.store.clone() else {
        let mut out = Vec::with_capacity(rows * o.gets.len().max(1));
        for (r, obj) in window.into_iter().enumerate() {
            if o.gets.is_empty() {
                out.push(Reply::Bulk(obj));
            }
            out.extend(columns.iter().map(|col| col[r].clone().map_or(Reply::Nil, Reply::Bulk)));
        }
        return Ok((Reply::Array(out), false));
    };
    let mut values: Vec<Bytes> = Vec::new();
    for (r, obj) in window.into_iter().enumerate() {
        if o.gets.is_empty() {
            values.push(obj);
        }
        values.extend(columns.iter().map(|col| col[r].clone().unwrap_or_default()));
    }
    let n = values.len() as i64;
    let changed = tx
        .on(tx.shard_of(&dest), db, move |c| {
            if values.is_empty() {
                let deleted = c.db.remove(&dest).is_some();
                if deleted {
                    c.notify(Class::GENERIC, "del", &dest);
                }
                return Ok(deleted);
            }
            let mut list: Box<crate::storage::list::List> = Box::default();
            values.iter().for_each(|v| list.push_back(v));
            // As Redis's `setKey`: overwritten if there, else a new key.
            c.db.live(&dest, c.now);
            c.db.set(&dest, Value::list(list), None);
            c.notify(Class::LIST, "sortstore", &dest);
            Ok(true)
        })
        .await?;
    Ok((Reply::Int(n), changed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sort_may_look_up_only_with_a_by_or_a_get_pattern() {
        let args = |s: &str| s.split(' ').map(|a| Bytes::from(a.to_owned())).collect::<Vec<_>>();
        assert!(may_look_up(&args("SORT l BY w_*")));
        assert!(may_look_up(&args("SORT l LIMIT 0 1 get o_*->f")));
        assert!(!may_look_up(&args("SORT l GET # ALPHA")));
        // Option words in argument places are arguments: a LIMIT's counts, STORE's key.
        assert!(!may_look_up(&args("SORT l LIMIT by get STORE by")));
        assert!(!may_look_up(&args("SORT l")));
    }

    #[test]
    fn patterns_name_keys_and_fields_as_redis_does() {
        let k = |p: &str, e: &str| pattern_key(p.as_bytes(), e.as_bytes());
        assert_eq!(k("w_*", "3"), Some((Bytes::from("w_3"), None)));
        assert_eq!(k("o_*->f", "3"), Some((Bytes::from("o_3"), Some(Bytes::from("f")))));
        // `->` with nothing after it is part of the key.
        assert_eq!(k("o_*->", "3"), Some((Bytes::from("o_3->"), None)));
        assert_eq!(k("nostar", "3"), None);
        assert_eq!(k("*-*", "x"), Some((Bytes::from("x-*"), None)));
    }

    #[test]
    fn weights_parse_as_strtod_checks_them() {
        assert_eq!(weight(b""), Some(0.0));
        assert_eq!(weight(b" 1.5"), Some(1.5));
        assert_eq!(weight(b"1.5 "), None);
        assert_eq!(weight(b"   "), None);
        assert_eq!(weight(b"nan"), None);
        assert_eq!(weight(b"1e400"), None);
        assert_eq!(weight(b"-inf"), Some(f64::NEG_INFINITY));
    }
}
