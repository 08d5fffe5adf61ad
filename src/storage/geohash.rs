//! Geohash as Redis's geo commands use it: a point is a sorted set member whose score is its
//! 52-bit interleaved geohash (26 bits of longitude, 26 of latitude, latitude limited to the
//! Web Mercator range ±85.05112878°), and a search walks the cell that holds its centre and
//! the eight around it, each a range of scores.
//!
//! Everything here is Redis's `geohash.c` and `geohash_helper.c` step for step, in the same
//! floating-point operations and order, so that scores, decoded positions, distances and the
//! cells a search walks are Redis's to the last bit (the trigonometry is the platform's libm,
//! as Redis's is).

/// The precision of a stored point: 26 steps of each coordinate, 52 bits.
pub(crate) const STEP_MAX: u8 = 26;
/// The longitudes a point may have.
pub(crate) const LONG_MIN: f64 = -180.0;
pub(crate) const LONG_MAX: f64 = 180.0;
/// The latitudes a point may have (Web Mercator's limits: no geocoding at the poles).
pub(crate) const LAT_MIN: f64 = -85.051_128_78;
pub(crate) const LAT_MAX: f64 = 85.051_128_78;

/// Redis's `D_R`: degrees to radians as a multiplication (radians to degrees divides by it).
const D_R: f64 = std::f64::consts::PI / 180.0;
/// The Earth's quadratic mean radius (WGS-84), which every distance uses.
const EARTH_RADIUS_IN_METERS: f64 = 6_372_797.560_856;
/// Half the Web Mercator world's width, in metres: what a search's first step estimate halves.
const MERCATOR_MAX: f64 = 20_037_726.37;

/// A range of one coordinate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Range {
    min: f64,
    max: f64,
}

/// The ranges stored points are encoded in.
const LONG_RANGE: Range = Range { min: LONG_MIN, max: LONG_MAX };
const LAT_RANGE: Range = Range { min: LAT_MIN, max: LAT_MAX };

/// A geohash cell: `step` bits of each coordinate, interleaved (longitude in the odd bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hash {
    bits: u64,
    step: u8,
}

impl Hash {
    /// Redis's `GZERO`: a neighbour a search leaves out.
    const ZERO: Hash = Hash { bits: 0, step: 0 };

    /// Redis's `HASHISZERO`.
    fn is_zero(self) -> bool {
        self.bits == 0 && self.step == 0
    }

    /// The scores this cell's points have: from its bits aligned to 52, up to (excluded) the
    /// next cell's (Redis's `scoresOfGeoHashBox`).
    #[must_use]
    pub(crate) fn scores(self) -> (u64, u64) {
        let min = align52(self);
        let max = align52(Hash { bits: self.bits.wrapping_add(1), step: self.step });
        (min, max)
    }
}

/// A cell's extent.
#[derive(Debug, Clone, Copy)]
struct Area {
    longitude: Range,
    latitude: Range,
}

/// Spreads the bits of `x` over the even positions and those of `y` over the odd ones.
fn interleave64(x: u32, y: u32) -> u64 {
    const B: [u64; 5] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
    ];
    const S: [u32; 5] = [1, 2, 4, 8, 16];
    let (mut x, mut y) = (u64::from(x), u64::from(y));
    for i in (0..5).rev() {
        x = (x | (x << S[i])) & B[i];
        y = (y | (y << S[i])) & B[i];
    }
    x | (y << 1)
}

/// The inverse of [`interleave64`]: the even bits in the low half, the odd ones in the high.
fn deinterleave64(interleaved: u64) -> u64 {
    const B: [u64; 6] = [
        0x5555_5555_5555_5555,
        0x3333_3333_3333_3333,
        0x0F0F_0F0F_0F0F_0F0F,
        0x00FF_00FF_00FF_00FF,
        0x0000_FFFF_0000_FFFF,
        0x0000_0000_FFFF_FFFF,
    ];
    const S: [u32; 6] = [0, 1, 2, 4, 8, 16];
    let (mut x, mut y) = (interleaved, interleaved >> 1);
    for i in 0..6 {
        x = (x | (x >> S[i])) & B[i];
        y = (y | (y >> S[i])) & B[i];
    }
    x | (y << 32)
}

/// The cell of `step` bits holding a point, in the given ranges (`None` outside them).
fn encode(long_range: Range, lat_range: Range, longitude: f64, latitude: f64, step: u8) -> Option<Hash> {
    if step > 32 || step == 0 {
        return None;
    }
    let outside_stored =
        !(LONG_MIN..=LONG_MAX).contains(&longitude) || !(LAT_MIN..=LAT_MAX).contains(&latitude);
    let outside = !(long_range.min..=long_range.max).contains(&longitude)
        || !(lat_range.min..=lat_range.max).contains(&latitude);
    if outside_stored || outside {
        return None;
    }
    let scale = (1u64 << step) as f64;
    let lat_offset = (latitude - lat_range.min) / (lat_range.max - lat_range.min) * scale;
    let long_offset = (longitude - long_range.min) / (long_range.max - long_range.min) * scale;
    Some(Hash { bits: interleave64(lat_offset as u32, long_offset as u32), step })
}

/// The cell of `step` bits holding a stored point.
fn encode_stored(longitude: f64, latitude: f64, step: u8) -> Option<Hash> {
    encode(LONG_RANGE, LAT_RANGE, longitude, latitude, step)
}

/// A cell's extent in the given ranges.
fn decode(long_range: Range, lat_range: Range, hash: Hash) -> Area {
    let separated = deinterleave64(hash.bits);
    let lat_scale = lat_range.max - lat_range.min;
    let long_scale = long_range.max - long_range.min;
    let ilato = separated as u32;
    let ilono = (separated >> 32) as u32;
    let cells = (1u64 << hash.step) as f64;
    Area {
        latitude: Range {
            min: lat_range.min + (f64::from(ilato) * 1.0 / cells) * lat_scale,
            // C adds 1 in 32 bits: a garbage score's all-ones cell wraps to 0.
            max: lat_range.min + (f64::from(ilato.wrapping_add(1)) * 1.0 / cells) * lat_scale,
        },
        longitude: Range {
            min: long_range.min + (f64::from(ilono) * 1.0 / cells) * long_scale,
            max: long_range.min + (f64::from(ilono.wrapping_add(1)) * 1.0 / cells) * long_scale,
        },
    }
}

/// Redis's `geohashAlign52Bits`: a cell's bits as the 52-bit score of its first point.
fn align52(hash: Hash) -> u64 {
    hash.bits << (52 - u32::from(hash.step) * 2)
}

/// The score a point at `longitude`, `latitude` is stored with (`None` outside the ranges).
#[must_use]
pub(crate) fn score_of(longitude: f64, latitude: f64) -> Option<f64> {
    encode_stored(longitude, latitude, STEP_MAX).map(|h| align52(h) as f64)
}

/// What C's `(uint64_t)` makes of a double on x86-64 (`cvttsd2si`, with its out-of-range
/// value), which Redis applies to any score a geo command reads: a sorted set that is not a
/// geo index decodes as Redis decodes it.
#[must_use]
pub(crate) fn c_to_u64(x: f64) -> u64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if x >= TWO_63 {
        let low = x - TWO_63;
        if low >= TWO_63 {
            // cvttsd2si's "integer indefinite", its top bit then flipped.
            return 0;
        }
        (low as i64 as u64) ^ (1 << 63)
    } else {
        c_to_i64(x) as u64
    }
}

/// What C's `(long long)` makes of a double on x86-64: truncation, and the "integer
/// indefinite" `i64::MIN` for NaN and whatever does not fit.
#[must_use]
pub(crate) fn c_to_i64(x: f64) -> i64 {
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if !(-TWO_63..TWO_63).contains(&x) {
        i64::MIN
    } else {
        x as i64
    }
}

/// The position a score stands for: the centre of its cell, clamped to the ranges (Redis's
/// `decodeGeohash`).
#[must_use]
pub(crate) fn position_of(score: f64) -> (f64, f64) {
    let area = decode(LONG_RANGE, LAT_RANGE, Hash { bits: c_to_u64(score), step: STEP_MAX });
    let longitude = ((area.longitude.min + area.longitude.max) / 2.0).clamp(LONG_MIN, LONG_MAX);
    let latitude = ((area.latitude.min + area.latitude.max) / 2.0).clamp(LAT_MIN, LAT_MAX);
    (longitude, latitude)
}

/// The standard 11-character geohash of a stored point (GEOHASH): its position encoded again
/// with latitudes over ±90°, the last character always `0` (52 bits fill ten).
#[must_use]
pub(crate) fn standard_geohash(score: f64) -> [u8; 11] {
    const ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";
    let (longitude, latitude) = position_of(score);
    let whole = Range { min: -90.0, max: 90.0 };
    let world = Range { min: -180.0, max: 180.0 };
    let bits = encode(world, whole, longitude, latitude, STEP_MAX).map_or(0, |h| h.bits);
    let mut out = [ALPHABET[0]; 11];
    for (i, c) in out.iter_mut().enumerate().take(10) {
        *c = ALPHABET[((bits >> (52 - (i + 1) * 5)) & 0x1f) as usize];
    }
    out
}

fn deg_rad(ang: f64) -> f64 {
    ang * D_R
}

fn rad_deg(ang: f64) -> f64 {
    ang / D_R
}

/// The distance along a meridian between two latitudes, in metres.
fn lat_distance(lat1d: f64, lat2d: f64) -> f64 {
    EARTH_RADIUS_IN_METERS * (deg_rad(lat2d) - deg_rad(lat1d)).abs()
}

/// The great-circle (haversine) distance between two points, in metres.
#[must_use]
pub(crate) fn distance(lon1d: f64, lat1d: f64, lon2d: f64, lat2d: f64) -> f64 {
    let lon1r = deg_rad(lon1d);
    let lon2r = deg_rad(lon2d);
    let v = ((lon2r - lon1r) / 2.0).sin();
    // The same longitude: the distance along the meridian, without the expensive part.
    if v == 0.0 {
        return lat_distance(lat1d, lat2d);
    }
    let lat1r = deg_rad(lat1d);
    let lat2r = deg_rad(lat2d);
    let u = ((lat2r - lat1r) / 2.0).sin();
    let a = u * u + lat1r.cos() * lat2r.cos() * v * v;
    2.0 * EARTH_RADIUS_IN_METERS * a.sqrt().asin()
}

/// What a search covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Extent {
    /// A circle of this radius (in the search's unit).
    Radius(f64),
    /// A box this wide and high (in the search's unit), centred on the search's point.
    Box { width: f64, height: f64 },
}

/// A search's area: its centre, extent and unit (metres per unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Shape {
    pub(crate) longitude: f64,
    pub(crate) latitude: f64,
    pub(crate) extent: Extent,
    pub(crate) conversion: f64,
}

impl Shape {
    /// The distance of the point at `longitude`, `latitude` from the centre, in metres, when
    /// the shape holds it (Redis's `geoWithinShape`).
    #[must_use]
    pub(crate) fn holds(&self, longitude: f64, latitude: f64) -> Option<f64> {
        match self.extent {
            Extent::Radius(radius) => {
                let d = distance(self.longitude, self.latitude, longitude, latitude);
                // Not `<=`: a NaN distance (antipodes rounded past 1) is in, as in Redis.
                let outside = d.partial_cmp(&(radius * self.conversion)) == Some(std::cmp::Ordering::Greater);
                (!outside).then_some(d)
            }
            Extent::Box { width, height } => {
                let (width_m, height_m) = (width * self.conversion, height * self.conversion);
                // The latitude first: it is the cheaper of the two.
                if lat_distance(latitude, self.latitude) > height_m / 2.0 {
                    return None;
                }
                if distance(longitude, latitude, self.longitude, latitude) > width_m / 2.0 {
                    return None;
                }
                Some(distance(self.longitude, self.latitude, longitude, latitude))
            }
        }
    }

    /// The bounding box `[min lon, min lat, max lon, max lat]` (Redis's `geohashBoundingBox`).
    fn bounds(&self) -> [f64; 4] {
        let (half_height, half_width) = match self.extent {
            Extent::Radius(r) => (r, r),
            Extent::Box { width, height } => (height / 2.0, width / 2.0),
        };
        let height = self.conversion * half_height;
        let width = self.conversion * half_width;
        let lat_delta = rad_deg(height / EARTH_RADIUS_IN_METERS);
        let long_delta_top =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.latitude + lat_delta).cos());
        let long_delta_bottom =
            rad_deg(width / EARTH_RADIUS_IN_METERS / deg_rad(self.latitude - lat_delta).cos());
        // The hemispheres run opposite ways: each takes its wider edge.
        let long_delta = if self.latitude < 0.0 { long_delta_bottom } else { long_delta_top };
        [
            self.longitude - long_delta,
            self.latitude - lat_delta,
            self.longitude + long_delta,
            self.latitude + lat_delta,
        ]
    }

    /// The cells a search walks, in Redis's order: the centre's, then north, south, east,
    /// west, north-east, north-west, south-east, south-west; a cell the search cannot need is
    /// left out (Redis's `geohashCalculateAreasByShapeWGS84` and `membersOfAllNeighbors`).
    #[must_use]
    pub(crate) fn cells(&self) -> Vec<Hash> {
        let [min_lon, min_lat, max_lon, max_lat] = self.bounds();
        let radius_meters = match self.extent {
            Extent::Radius(r) => r,
            Extent::Box { width, height } => {
                ((width / 2.0) * (width / 2.0) + (height / 2.0) * (height / 2.0)).sqrt()
            }
        } * self.conversion;
        let mut steps = estimate_steps(radius_meters, self.latitude);
        let mut hash =
            encode_stored(self.longitude, self.latitude, steps).unwrap_or(Hash { bits: 0, step: steps });
        let mut around = neighbors(hash);
        // Near a cell's edge the estimate may fall short: one step coarser then.
        let decrease = {
            let [north, south, east, west, ..] = around.map(|h| decode(LONG_RANGE, LAT_RANGE, h));
            north.latitude.max < max_lat
                || south.latitude.min > min_lat
                || east.longitude.max < max_lon
                || west.longitude.min > min_lon
        };
        if steps > 1 && decrease {
            steps -= 1;
            hash =
                encode_stored(self.longitude, self.latitude, steps).unwrap_or(Hash { bits: 0, step: steps });
            around = neighbors(hash);
        }
        let area = decode(LONG_RANGE, LAT_RANGE, hash);
        if steps >= 2 {
            let [n, s, e, w, ne, nw, se, sw] = [0, 1, 2, 3, 4, 5, 6, 7];
            let mut drop = |cells: [usize; 3]| cells.iter().for_each(|&c| around[c] = Hash::ZERO);
            if area.latitude.min < min_lat {
                drop([s, sw, se]);
            }
            if area.latitude.max > max_lat {
                drop([n, ne, nw]);
            }
            if area.longitude.min < min_lon {
                drop([w, sw, nw]);
            }
            if area.longitude.max > max_lon {
                drop([e, se, ne]);
            }
        }
        // Redis skips a cell equal to the last one it walked, the centre excepted.
        let all = std::iter::once(hash).chain(around);
        let mut walked: Vec<Hash> = Vec::with_capacity(9);
        let mut last: Option<Hash> = None;
        for (i, cell) in all.enumerate() {
            if cell.is_zero() || last.is_some_and(|l| l == cell) {
                continue;
            }
            walked.push(cell);
            last = (i > 0).then_some(cell);
        }
        walked
    }
}

/// Redis's `geohashEstimateStepsByRadius`: the coarsest step whose cells still cover a
/// radius, a little coarser towards the poles.
fn estimate_steps(range_meters: f64, lat: f64) -> u8 {
    if range_meters == 0.0 {
        return 26;
    }
    let mut range = range_meters;
    let mut step: i32 = 1;
    while range < MERCATOR_MAX {
        range *= 2.0;
        step += 1;
    }
    step -= 2;
    if !(-66.0..=66.0).contains(&lat) {
        step -= 1;
        if !(-80.0..=80.0).contains(&lat) {
            step -= 1;
        }
    }
    step.clamp(1, 26) as u8
}

/// The longitude bits of a cell (odd positions) and the latitude bits (even ones).
const X_BITS: u64 = 0xaaaa_aaaa_aaaa_aaaa;
const Y_BITS: u64 = 0x5555_5555_5555_5555;

/// Moves a cell one step along the axis whose bits `axis` masks (X_BITS east or west, Y_BITS
/// north or south), forward when `d` > 0 (Redis's `geohash_move_x` and `geohash_move_y`): the
/// axis's bits are counted up or down with the other axis's bits filled in to carry through.
fn move_along(hash: &mut Hash, d: i8, axis: u64) {
    if d == 0 {
        return;
    }
    let shift = 64 - u32::from(hash.step) * 2;
    let mut moving = hash.bits & axis;
    let kept = hash.bits & !axis;
    let zz = !axis >> shift;
    if d > 0 {
        moving = moving.wrapping_add(zz + 1);
    } else {
        moving |= zz;
        moving = moving.wrapping_sub(zz + 1);
    }
    moving &= axis >> shift;
    hash.bits = moving | kept;
}

/// The eight cells around one: north, south, east, west, north-east, north-west, south-east,
/// south-west.
fn neighbors(hash: Hash) -> [Hash; 8] {
    let moved = |dx: i8, dy: i8| {
        let mut h = hash;
        move_along(&mut h, dx, X_BITS);
        move_along(&mut h, dy, Y_BITS);
        h
    };
    [
        moved(0, 1),
        moved(0, -1),
        moved(1, 0),
        moved(-1, 0),
        moved(1, 1),
        moved(-1, 1),
        moved(1, -1),
        moved(-1, -1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores and positions redis-server 7.0 gives (GEOADD then ZSCORE, GEOPOS, GEOHASH).
    #[test]
    fn scores_positions_and_hashes_are_redis_servers() {
        assert_eq!(score_of(13.361389, 38.115556), Some(3_479_099_956_230_698.0));
        assert_eq!(score_of(0.0, 0.0), Some(3_377_699_720_527_872.0));
        let (lon, lat) = position_of(3_479_099_956_230_698.0);
        assert_eq!(format!("{lon:.17}"), "13.36138933897018433");
        assert_eq!(format!("{lat:.17}"), "38.11555639549629859");
        assert_eq!(&standard_geohash(3_479_099_956_230_698.0), b"sqc8b49rny0");
        assert_eq!(score_of(180.1, 0.0), None);
        assert_eq!(score_of(0.0, 85.06), None);
    }

    #[test]
    fn distances_are_redis_servers() {
        assert_eq!(score_of(15.087269, 37.502669), Some(3_479_447_370_796_909.0));
        let (a, b) = (position_of(3_479_099_956_230_698.0), position_of(3_479_447_370_796_909.0));
        let d = distance(a.0, a.1, b.0, b.1);
        assert_eq!(format!("{:.4}", d), "166274.1516");
        assert_eq!(&standard_geohash(3_479_447_370_796_909.0), b"sqdtr74hyu0");
    }

    #[test]
    fn c_conversions_follow_x86_64() {
        assert_eq!(c_to_u64(-1.0), u64::MAX);
        assert_eq!(c_to_u64(f64::NAN), 1 << 63);
        assert_eq!(c_to_u64(1e300), 0);
        assert_eq!(c_to_u64(1.9), 1);
        assert_eq!(c_to_i64(f64::INFINITY), i64::MIN);
        assert_eq!(c_to_i64(-2.5), -2);
    }

    #[test]
    fn interleaving_round_trips() {
        for (x, y) in [(0u32, 0u32), (1, 0), (0, 1), (0xFFFF_FFFF, 0x1234_5678), (67_108_863, 5)] {
            let d = deinterleave64(interleave64(x, y));
            assert_eq!((d as u32, (d >> 32) as u32), (x, y));
        }
    }
}
