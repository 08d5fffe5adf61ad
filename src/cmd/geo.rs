//! Geo commands: GEOADD, GEODIST, GEOHASH, GEOPOS, and the searches GEOSEARCH,
//! GEOSEARCHSTORE, GEORADIUS, GEORADIUSBYMEMBER and their read-only forms. A geo index is a
//! sorted set whose scores are geohashes (`storage::geohash`); a search walks the cells
//! around its centre as score ranges, keeps the points inside its circle or box, and sorts
//! them by distance as Redis does (glibc's stable sort for all of them, Redis's partial
//! quicksort `pqsort` for the first COUNT), so that replies, ties included, are Redis's.
//!
//! The STORE forms run on the source's shard and then store on the destination's, atomically
//! across the two.

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::{CmdError, CmdResult};
use crate::cmd::long_double::LongDouble;
use crate::engine::command::Command;
use crate::engine::notify::Class;
use crate::engine::router::Tx;
use crate::engine::shard::Ctx;
use crate::engine::spec::{acl, flag, key, KeyFlags, KeySpec};
use crate::facade::Reply;
use crate::storage::access::{self, zset};
use crate::storage::geohash::{self, Extent, Shape};
use crate::storage::zset::{ScoreBound, ScoreRange, ZSet};

/// The history lines several geo commands share.
const UPPERCASE: (&str, &str) = ("7.0.0", "Added support for uppercase unit names.");
const ANY: (&str, &str) = ("6.2.0", "Added the `ANY` option for `COUNT`.");

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    let one = |flags| KeySpec::index(1).range(0, 1, 0).flags(flags);
    let radius_complexity = "O(N+log(M)) where N is the number of elements inside the bounding box of the circular area delimited by center and radius and M is the number of items inside the index.";
    let search_complexity = "O(N+log(M)) where N is the number of elements in the grid-aligned bounding box area around the shape provided as the filter and M is the number of items inside the shape";
    vec![
        Command::shard("geoadd", -5, geoadd)
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::GEO)
            .key(one(key::RW | key::UPDATE))
            .docs("geo", "3.2.0", "O(log(N)) for each item added, where N is the number of elements in the sorted set.", "Add one or more geospatial items in the geospatial index represented using a sorted set")
            .history(&[("6.2.0", "Added the `CH`, `NX` and `XX` options.")]),
        Command::shard("geodist", -4, geodist)
            .flags(flag::READONLY)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .docs("geo", "3.2.0", "O(log(N))", "Returns the distance between two members of a geospatial index"),
        Command::shard("geohash", -2, geohash)
            .flags(flag::READONLY)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .docs("geo", "3.2.0", "O(log(N)) for each member requested, where N is the number of elements in the sorted set.", "Returns members of a geospatial index as standard geohash strings"),
        Command::shard("geopos", -2, geopos)
            .flags(flag::READONLY)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .docs("geo", "3.2.0", "O(N) where N is the number of members requested.", "Returns longitude and latitude of members of a geospatial index"),
        Command::across("georadius", -6, |c, a| search_here(c, a, Form::Radius), |tx, db, a| Box::pin(search_across(tx, db, a, Form::Radius)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .key(KeySpec::keyword("STORE", 6).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::keyword("STOREDIST", 6).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .getkeys(radius_keys)
            .docs("geo", "3.2.0", radius_complexity, "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a point")
            .history(&[ANY, UPPERCASE])
            .deprecated("6.2.0", "`GEOSEARCH` and `GEOSEARCHSTORE` with the `BYRADIUS` argument"),
        Command::shard("georadius_ro", -6, |c, a| search_here(c, a, Form::RadiusRo))
            .flags(flag::READONLY)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .docs("geo", "3.2.10", radius_complexity, "A read-only variant for GEORADIUS")
            .history(&[ANY])
            .deprecated("6.2.0", "`GEOSEARCH` with the `BYRADIUS` argument"),
        Command::across("georadiusbymember", -5, |c, a| search_here(c, a, Form::ByMember), |tx, db, a| Box::pin(search_across(tx, db, a, Form::ByMember)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .key(KeySpec::keyword("STORE", 5).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .key(KeySpec::keyword("STOREDIST", 5).range(0, 1, 0).flags(key::OW | key::UPDATE))
            .getkeys(radius_keys)
            .docs("geo", "3.2.0", radius_complexity, "Query a sorted set representing a geospatial index to fetch members matching a given maximum distance from a member")
            .history(&[UPPERCASE])
            .deprecated("6.2.0", "`GEOSEARCH` and `GEOSEARCHSTORE` with the `BYRADIUS` and `FROMMEMBER` arguments"),
        Command::shard("georadiusbymember_ro", -5, |c, a| search_here(c, a, Form::ByMemberRo))
            .flags(flag::READONLY)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .docs("geo", "3.2.10", radius_complexity, "A read-only variant for GEORADIUSBYMEMBER")
            .deprecated("6.2.0", "`GEOSEARCH` with the `BYRADIUS` and `FROMMEMBER` arguments"),
        Command::shard("geosearch", -7, |c, a| search_here(c, a, Form::Search))
            .flags(flag::READONLY)
            .acl(acl::GEO)
            .key(one(key::RO | key::ACCESS))
            .docs("geo", "6.2.0", search_complexity, "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle.")
            .history(&[UPPERCASE]),
        Command::across("geosearchstore", -8, |c, a| search_here(c, a, Form::SearchStore), |tx, db, a| Box::pin(search_across(tx, db, a, Form::SearchStore)))
            .flags(flag::WRITE | flag::DENYOOM)
            .acl(acl::GEO)
            .key(one(key::OW | key::UPDATE))
            .key(KeySpec::index(2).range(0, 1, 0).flags(key::RO | key::ACCESS))
            .docs("geo", "6.2.0", search_complexity, "Query a sorted set representing a geospatial index to fetch members inside an area of a box or a circle, and store the result in another key.")
            .history(&[UPPERCASE]),
    ]
}

/// GEORADIUS's and GEORADIUSBYMEMBER's keys as Redis's `georadiusGetKeys` finds them: the
/// source, and the key after the last STORE or STOREDIST (the one the command writes; the key
/// specs would name the first of each), so the command is routed, and checked by ACL, by the
/// keys it touches.
fn radius_keys(a: &[Bytes], keys: &mut Vec<(usize, KeyFlags)>) {
    keys.push((1, key::RO | key::ACCESS));
    let mut stored = None;
    let mut i = 5;
    while i < a.len() {
        if (is(&a[i], "store") || is(&a[i], "storedist")) && i + 1 < a.len() {
            stored = Some(i + 1);
            i += 1;
        }
        i += 1;
    }
    keys.extend(stored.map(|p| (p, key::OW | key::UPDATE)));
}

/// Redis's `extractLongLatOrReply`: two floats within the ranges a point may have.
fn lon_lat(a: &[Bytes]) -> Result<(f64, f64), CmdError> {
    let (lon, lat) = (args::float(&a[0])?, args::float(&a[1])?);
    if !(geohash::LONG_MIN..=geohash::LONG_MAX).contains(&lon)
        || !(geohash::LAT_MIN..=geohash::LAT_MAX).contains(&lat)
    {
        return Err(CmdError::text(format!("ERR invalid longitude,latitude pair {lon:.6},{lat:.6}")));
    }
    Ok((lon, lat))
}

/// Metres per unit (Redis's `extractUnitOrReply`).
fn unit(arg: &[u8]) -> Result<f64, CmdError> {
    match arg.to_ascii_lowercase().as_slice() {
        b"m" => Ok(1.0),
        b"km" => Ok(1000.0),
        b"ft" => Ok(0.3048),
        b"mi" => Ok(1609.34),
        _ => Err(CmdError::msg("ERR unsupported unit provided. please use M, KM, FT, MI")),
    }
}

/// A number that may not be negative, with its own "need numeric" error.
fn measure(arg: &[u8], not_numeric: &'static str) -> Result<f64, CmdError> {
    args::float(arg).map_err(|_| CmdError::msg(not_numeric))
}

/// `radius unit` (Redis's `extractDistanceOrReply`): the radius and metres per unit.
fn radius(a: &[Bytes]) -> Result<(f64, f64), CmdError> {
    let r = measure(&a[0], "ERR need numeric radius")?;
    if r < 0.0 {
        return Err(CmdError::msg("ERR radius cannot be negative"));
    }
    Ok((r, unit(&a[1])?))
}

/// `width height unit` (Redis's `extractBoxOrReply`).
fn box_of(a: &[Bytes]) -> Result<(f64, f64, f64), CmdError> {
    let w = measure(&a[0], "ERR need numeric width")?;
    let h = measure(&a[1], "ERR need numeric height")?;
    if h < 0.0 || w < 0.0 {
        return Err(CmdError::msg("ERR height or width cannot be negative"));
    }
    Ok((w, h, unit(&a[2])?))
}

/// A distance as Redis prints it: four decimals, rounded half to even (`fixedpoint_d2string`
/// with `llrint`).
fn distance_text(d: f64) -> String {
    if d == 0.0 {
        return "0.0000".to_owned();
    }
    let scaled = geohash::c_to_i64((d * 10_000.0).round_ties_even());
    let digits = format!("{:05}", scaled.unsigned_abs());
    let (int, frac) = digits.split_at(digits.len() - 4);
    format!("{}{int}.{frac}", if scaled < 0 { "-" } else { "" })
}

/// A coordinate as Redis sends it: `%.17Lf` trimmed, a double in RESP3 and a bulk in RESP2.
fn coordinate(x: f64) -> Reply {
    Reply::DoubleText(LongDouble::from_f64(x).to_human())
}

/// GEOADD key [NX|XX] [CH] longitude latitude member [longitude latitude member ...]: ZADD
/// with each point's geohash as its score.
fn geoadd(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let mut flags = crate::cmd::zset::AddFlags::default();
    let mut at = 2;
    while let Some(arg) = a.get(at) {
        match arg.to_ascii_lowercase().as_slice() {
            b"nx" => flags.nx = true,
            b"xx" => flags.xx = true,
            b"ch" => flags.ch = true,
            _ => break,
        }
        at += 1;
    }
    if (a.len() - at) % 3 != 0 || (flags.xx && flags.nx) {
        return Err(CmdError::Syntax);
    }
    let mut pairs = Vec::with_capacity((a.len() - at) / 3 * 2);
    for point in a[at..].chunks_exact(3) {
        let (lon, lat) = lon_lat(point)?;
        let score = geohash::score_of(lon, lat).ok_or(CmdError::Internal)?;
        pairs.push(Bytes::from((score as u64).to_string()));
        pairs.push(point[2].clone());
    }
    crate::cmd::zset::add(ctx, &a[1], flags, &pairs)
}

/// GEODIST key member1 member2 [M|KM|FT|MI]
fn geodist(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let to_meter = match a.len() {
        4 => 1.0,
        5 => unit(&a[4])?,
        _ => return Err(CmdError::Syntax),
    };
    let Some(z) = access::read(ctx.db, ctx.now, &a[1], zset)? else { return Ok(Reply::Nil) };
    let (Some(s1), Some(s2)) = (z.score(&a[2]), z.score(&a[3])) else { return Ok(Reply::Nil) };
    let ((lon1, lat1), (lon2, lat2)) = (geohash::position_of(s1), geohash::position_of(s2));
    let d = geohash::distance(lon1, lat1, lon2, lat2) / to_meter;
    Ok(Reply::Bulk(Bytes::from(distance_text(d))))
}

/// GEOHASH key [member ...]
fn geohash(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let z = access::read(ctx.db, ctx.now, &a[1], zset)?;
    let hash = |m: &Bytes| match z.and_then(|z| z.score(m)) {
        Some(score) => Reply::Bulk(Bytes::copy_from_slice(&geohash::standard_geohash(score))),
        None => Reply::Nil,
    };
    Ok(Reply::Array(a[2..].iter().map(hash).collect()))
}

/// GEOPOS key [member ...]
fn geopos(ctx: &mut Ctx<'_>, a: &[Bytes]) -> CmdResult {
    let z = access::read(ctx.db, ctx.now, &a[1], zset)?;
    let position = |m: &Bytes| match z.and_then(|z| z.score(m)) {
        Some(score) => {
            let (lon, lat) = geohash::position_of(score);
            Reply::Array(vec![coordinate(lon), coordinate(lat)])
        }
        None => Reply::NilArray,
    };
    Ok(Reply::Array(a[2..].iter().map(position).collect()))
}

/// Which search command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// GEORADIUS key longitude latitude radius unit [options] [STORE|STOREDIST key]
    Radius,
    /// GEORADIUS_RO: no STORE.
    RadiusRo,
    /// GEORADIUSBYMEMBER key member radius unit [options] [STORE|STOREDIST key]
    ByMember,
    /// GEORADIUSBYMEMBER_RO: no STORE.
    ByMemberRo,
    /// GEOSEARCH key FROMMEMBER|FROMLONLAT ... BYRADIUS|BYBOX ... [options]
    Search,
    /// GEOSEARCHSTORE destination source ... [STOREDIST]
    SearchStore,
}

impl Form {
    /// The source key's position.
    fn source(self) -> usize {
        if self == Form::SearchStore {
            2
        } else {
            1
        }
    }

    /// Redis's `GEOSEARCH` flag: FROM and BY options, no STORE.
    fn search(self) -> bool {
        matches!(self, Form::Search | Form::SearchStore)
    }

    /// Whether STORE and STOREDIST `key` are options (Redis's `!RADIUS_NOSTORE && !GEOSEARCH`).
    fn stores_by_option(self) -> bool {
        matches!(self, Form::Radius | Form::ByMember)
    }
}

/// The order of a search's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sort {
    None,
    Asc,
    Desc,
}

/// What a search found, for its reply or its STORE.
enum Found {
    /// The reply (nothing to store).
    Reply(Reply),
    /// Members and scores to store at `dest` (none: `dest` is deleted).
    Store { dest: Bytes, items: Vec<(Bytes, f64)> },
}

/// A point a search found.
struct Point {
    longitude: f64,
    latitude: f64,
    dist: f64,
    score: f64,
    member: Bytes,
}

/// The search commands when their keys share a shard.
fn search_here(ctx: &mut Ctx<'_>, a: &[Bytes], form: Form) -> CmdResult {
    match search(ctx, a, form)? {
        Found::Reply(reply) => Ok(reply),
        Found::Store { dest, items } => Ok(store(ctx, &dest, items, form)),
    }
}

/// A STORE form whose destination is on another shard: found on the source's, stored on the
/// destination's, within one transaction.
async fn search_across(tx: &Tx, db: usize, a: &[Bytes], form: Form) -> CmdResult {
    let args = a.to_vec();
    let found = tx.on(tx.shard_of(&a[form.source()]), db, move |c| search(c, &args, form)).await?;
    match found {
        Found::Reply(reply) => Ok(reply),
        Found::Store { dest, items } => {
            tx.on(tx.shard_of(&dest), db, move |c| Ok(store(c, &dest, items, form))).await
        }
    }
}

/// A STORE form's result stored at `dest` (deleted when there is none), reported as Redis
/// reports it.
fn store(ctx: &mut Ctx<'_>, dest: &[u8], items: Vec<(Bytes, f64)>, form: Form) -> Reply {
    let stored = !items.is_empty();
    let deleted = !stored && ctx.db.remove(dest).is_some();
    let reply = crate::cmd::zset::store(ctx, dest, items);
    if stored {
        ctx.notify(Class::ZSET, if form.search() { "geosearchstore" } else { "georadiusstore" }, dest);
    } else if deleted {
        ctx.notify(Class::GENERIC, "del", dest);
    }
    reply
}

/// Redis's `georadiusGeneric`, its checks in its order (the source is looked at first, and a
/// missing one still has its options parsed), up to the points found and sorted.
fn search(ctx: &mut Ctx<'_>, a: &[Bytes], form: Form) -> Result<Found, CmdError> {
    let z = access::read(ctx.db, ctx.now, &a[form.source()], zset)?;
    let mut center: Option<(f64, f64)> = None;
    let mut extent: Option<(Extent, f64)> = None;
    let mut store: Option<Bytes> = None;
    let mut storedist = false;
    let base = match form {
        Form::Radius | Form::RadiusRo => {
            center = Some(lon_lat(&a[2..4])?);
            let (r, conversion) = radius(&a[4..6])?;
            extent = Some((Extent::Radius(r), conversion));
            6
        }
        Form::ByMember | Form::ByMemberRo => {
            if let Some(z) = z {
                center = Some(member_position(z, &a[2])?);
                let (r, conversion) = radius(&a[3..5])?;
                extent = Some((Extent::Radius(r), conversion));
            }
            5
        }
        Form::Search => 2,
        Form::SearchStore => {
            store = Some(a[1].clone());
            3
        }
    };
    let (mut withdist, mut withhash, mut withcoord, mut any) = (false, false, false, false);
    let (mut frommember, mut fromloc, mut byradius, mut bybox) = (false, false, false, false);
    let mut sort = Sort::None;
    let mut count: i64 = 0;
    let rest = &a[base..];
    let remaining = rest.len();
    let mut i = 0;
    while i < remaining {
        let arg = &rest[i];
        if is(arg, "withdist") {
            withdist = true;
        } else if is(arg, "withhash") {
            withhash = true;
        } else if is(arg, "withcoord") {
            withcoord = true;
        } else if is(arg, "any") {
            any = true;
        } else if is(arg, "asc") {
            sort = Sort::Asc;
        } else if is(arg, "desc") {
            sort = Sort::Desc;
        } else if is(arg, "count") && i + 1 < remaining {
            count = args::int(&rest[i + 1])?;
            if count <= 0 {
                return Err(CmdError::msg("ERR COUNT must be > 0"));
            }
            i += 1;
        } else if (is(arg, "store") || is(arg, "storedist")) && i + 1 < remaining && form.stores_by_option() {
            store = Some(rest[i + 1].clone());
            storedist = is(arg, "storedist");
            i += 1;
        } else if is(arg, "storedist") && form == Form::SearchStore {
            storedist = true;
        } else if is(arg, "frommember") && i + 1 < remaining && form.search() && !fromloc {
            // A missing source: parsing goes on, and the reply is the empty one.
            if let Some(z) = z {
                center = Some(member_position(z, &rest[i + 1])?);
            }
            frommember = true;
            i += 1;
        } else if is(arg, "fromlonlat") && i + 2 < remaining && form.search() && !frommember {
            center = Some(lon_lat(&rest[i + 1..i + 3])?);
            fromloc = true;
            i += 2;
        } else if is(arg, "byradius") && i + 2 < remaining && form.search() && !bybox {
            let (r, conversion) = radius(&rest[i + 1..i + 3])?;
            extent = Some((Extent::Radius(r), conversion));
            byradius = true;
            i += 2;
        } else if is(arg, "bybox") && i + 3 < remaining && form.search() && !byradius {
            let (width, height, conversion) = box_of(&rest[i + 1..i + 4])?;
            extent = Some((Extent::Box { width, height }, conversion));
            bybox = true;
            i += 3;
        } else {
            return Err(CmdError::Syntax);
        }
        i += 1;
    }
    if store.is_some() && (withdist || withhash || withcoord) {
        return Err(CmdError::msg(if form == Form::SearchStore {
            "ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        } else {
            "ERR STORE option in GEORADIUS is not compatible with WITHDIST, WITHHASH and WITHCOORD options"
        }));
    }
    let name = || String::from_utf8_lossy(&a[0]).into_owned();
    if form.search() && !(frommember || fromloc) {
        return Err(CmdError::text(format!(
            "ERR exactly one of FROMMEMBER or FROMLONLAT can be specified for {}",
            name()
        )));
    }
    if form.search() && !(byradius || bybox) {
        return Err(CmdError::text(format!(
            "ERR exactly one of BYRADIUS and BYBOX can be specified for {}",
            name()
        )));
    }
    if any && count == 0 {
        return Err(CmdError::msg("ERR the ANY argument requires COUNT argument"));
    }
    let (Some(z), Some((longitude, latitude)), Some((extent, conversion))) = (z, center, extent) else {
        return Ok(match store {
            Some(dest) => Found::Store { dest, items: Vec::new() },
            None => Found::Reply(Reply::Array(Vec::new())),
        });
    };
    // COUNT means the nearest ones unless ANY says any will do.
    if count != 0 && sort == Sort::None && !any {
        sort = Sort::Asc;
    }
    let shape = Shape { longitude, latitude, extent, conversion };
    let limit = if any { count as usize } else { 0 };
    let mut points = points_in(z, &shape, limit);
    if points.is_empty() && store.is_none() {
        return Ok(Found::Reply(Reply::Array(Vec::new())));
    }
    let returned = if count == 0 { points.len() } else { points.len().min(count as usize) };
    let desc = sort == Sort::Desc;
    if sort != Sort::None {
        if returned == points.len() {
            // glibc's qsort, a merge sort: stable.
            points.sort_by(|a, b| order(a, b, desc));
        } else {
            crate::cmd::pqsort::pqsort(&mut points, 0, returned - 1, |a, b| order(a, b, desc));
        }
    }
    points.truncate(returned);
    if let Some(dest) = store {
        let items = points
            .into_iter()
            .map(|p| {
                let score = if storedist { p.dist / conversion } else { p.score };
                (p.member, score)
            })
            .collect();
        return Ok(Found::Store { dest, items });
    }
    let reply = points
        .into_iter()
        .map(|p| {
            if !(withdist || withhash || withcoord) {
                return Reply::Bulk(p.member);
            }
            let mut item = vec![Reply::Bulk(p.member)];
            if withdist {
                item.push(Reply::Bulk(Bytes::from(distance_text(p.dist / conversion))));
            }
            if withhash {
                item.push(Reply::Int(geohash::c_to_i64(p.score)));
            }
            if withcoord {
                item.push(Reply::Array(vec![coordinate(p.longitude), coordinate(p.latitude)]));
            }
            Reply::Array(item)
        })
        .collect();
    Ok(Found::Reply(Reply::Array(reply)))
}

/// The position of a member a search starts from.
fn member_position(z: &ZSet, member: &[u8]) -> Result<(f64, f64), CmdError> {
    z.score(member)
        .map(geohash::position_of)
        .ok_or(CmdError::msg("ERR could not decode requested zset member"))
}

/// The points of `z` inside `shape`, cell by cell in Redis's order, each cell's in score
/// order; with `limit` (ANY), no more than that many once reached.
fn points_in(z: &ZSet, shape: &Shape, limit: usize) -> Vec<Point> {
    let mut found = Vec::new();
    let full = |found: &Vec<Point>| limit != 0 && found.len() >= limit;
    for cell in shape.cells() {
        if full(&found) {
            break;
        }
        let (min, max) = cell.scores();
        let range = ScoreRange {
            min: ScoreBound { value: min as f64, exclusive: false },
            max: ScoreBound { value: max as f64, exclusive: true },
        };
        let ranks = z.score_ranks(&range);
        for (member, score) in z.slices_from(ranks.start, false).take(ranks.len()) {
            let (longitude, latitude) = geohash::position_of(score);
            if let Some(dist) = shape.holds(longitude, latitude) {
                found.push(Point {
                    longitude,
                    latitude,
                    dist,
                    score,
                    member: Bytes::copy_from_slice(member),
                });
            }
            if full(&found) {
                break;
            }
        }
    }
    found
}

/// Redis's comparator: by distance, nearest first (or last).
fn order(a: &Point, b: &Point, desc: bool) -> std::cmp::Ordering {
    let asc = if a.dist > b.dist {
        std::cmp::Ordering::Greater
    } else if a.dist == b.dist {
        std::cmp::Ordering::Equal
    } else {
        std::cmp::Ordering::Less
    };
    if desc {
        asc.reverse()
    } else {
        asc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances_print_as_redis_prints_them() {
        assert_eq!(distance_text(0.0), "0.0000");
        assert_eq!(distance_text(166_274.151_6), "166274.1516");
        assert_eq!(distance_text(0.000_05), "0.0000");
        // Exact halves round to even, as llrint does.
        assert_eq!(distance_text(0.031_25), "0.0312");
        assert_eq!(distance_text(0.093_75), "0.0938");
        assert_eq!(distance_text(12.5), "12.5000");
        assert_eq!(distance_text(f64::NAN), "-922337203685477.5808");
    }

    fn points(dists: &[f64]) -> Vec<Point> {
        dists
            .iter()
            .enumerate()
            .map(|(i, &dist)| Point {
                longitude: 0.0,
                latitude: 0.0,
                dist,
                score: i as f64,
                member: Bytes::from(i.to_string()),
            })
            .collect()
    }

    #[test]
    fn the_partial_sort_orders_the_range_it_is_asked_for() {
        let dists: Vec<f64> = (0..200).map(|i| ((i * 7919) % 101) as f64).collect();
        for k in [1, 5, 40, 199] {
            let mut v = points(&dists);
            crate::cmd::pqsort::pqsort(&mut v, 0, k - 1, |a, b| order(a, b, false));
            let mut sorted = dists.clone();
            sorted.sort_by(f64::total_cmp);
            let got: Vec<f64> = v.iter().take(k).map(|p| p.dist).collect();
            assert_eq!(got, sorted[..k], "k={k}");
        }
    }
}
