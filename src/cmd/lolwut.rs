//! LOLWUT [VERSION v] [...]: Redis's computer art, ported from Redis 7.0's `lolwut*.c`. With
//! no version (or one of neither art) it answers with the version, as Redis 7.0 does; VERSION 5
//! draws Georg Nees's *Schotter* in Braille characters, VERSION 6 a skyline in terminal grays.
//! The randomness is Redis's use of `rand()`, drawn from a generator of ours, so the pictures
//! differ from Redis's as Redis's differ from run to run; the deterministic parts (the top
//! rows of Schotter, sizes, the captions) are the same.

use bytes::Bytes;

use crate::cmd::args::{self, is};
use crate::cmd::error::CmdResult;
use crate::engine::command::Command;
use crate::engine::session::Session;
use crate::engine::spec::flag;
use crate::facade::Reply;
use crate::storage::rng::Rng;

/// The family's commands.
pub(crate) fn commands() -> Vec<Command> {
    vec![Command::inline("lolwut", -1, lolwut).flags(flag::READONLY | flag::FAST).docs(
        "server",
        "5.0.0",
        "",
        "Display some computer art and the Redis version",
    )]
}

/// Redis's literal for the square root of 2 in `lwDrawSquare`: its digits, not `SQRT_2`'s, so
/// that sizes round as Redis rounds them.
#[allow(clippy::approx_constant)]
const REDIS_SQRT_2: f64 = 1.414_213_562_3;

/// C's `RAND_MAX` with glibc.
const RAND_MAX: i32 = i32::MAX;

/// C's `rand()`: 31 random bits.
fn rand(rng: &mut Rng) -> i32 {
    (rng.next_u64() >> 33) as i32
}

/// LOLWUT [VERSION v] [args ...]
fn lolwut(_: &Session, args: &[Bytes]) -> CmdResult {
    let (version, rest) = if args.len() >= 3 && is(&args[1], "version") {
        (Some(args::int(&args[2])?), &args[3..])
    } else {
        (None, &args[1..])
    };
    let mut rng = Rng::seeded(0);
    let text = match version {
        Some(5) => schotter(rest, &mut rng)?,
        Some(6) => skyline(rest, &mut rng)?,
        _ => format!("Redis ver. {}\n", crate::REDIS_VERSION),
    };
    Ok(Reply::Verbatim(text))
}

/// The `i`th optional integer argument, or `default`, clamped to `lo..=hi` (Redis's limits).
fn arg(args: &[Bytes], i: usize, default: i64, lo: i64, hi: i64) -> Result<i64, crate::cmd::error::CmdError> {
    Ok(args.get(i).map(|a| args::int(a)).transpose()?.unwrap_or(default).clamp(lo, hi))
}

/// A canvas of `width` x `height` pixels of colors 0-3 (Redis's `lwCanvas`).
struct Canvas {
    width: i32,
    height: i32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: i32, height: i32, color: u8) -> Canvas {
        Canvas { width, height, pixels: vec![color; (width as usize) * (height as usize)] }
    }

    /// Sets a pixel; outside the canvas, nothing happens.
    fn set(&mut self, x: i32, y: i32, color: u8) {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize] = color;
        }
    }

    /// A pixel's color; 0 outside the canvas.
    fn get(&self, x: i32, y: i32) -> u8 {
        if (0..self.width).contains(&x) && (0..self.height).contains(&y) {
            self.pixels[(x + y * self.width) as usize]
        } else {
            0
        }
    }

    /// Bresenham's line from (x1, y1) to (x2, y2).
    fn line(&mut self, mut x1: i32, mut y1: i32, x2: i32, y2: i32, color: u8) {
        let (dx, dy) = ((x2 - x1).abs(), (y2 - y1).abs());
        let (sx, sy) = (if x1 < x2 { 1 } else { -1 }, if y1 < y2 { 1 } else { -1 });
        let mut err = dx - dy;
        loop {
            self.set(x1, y1, color);
            if x1 == x2 && y1 == y2 {
                break;
            }
            let e2 = err * 2;
            if e2 > -dy {
                err -= dy;
                x1 += sx;
            }
            if e2 < dx {
                err += dx;
                y1 += sy;
            }
        }
    }

    /// A square centred on (x, y), `size` wide, turned by `angle` (Redis's `lwDrawSquare`, in
    /// its float and double arithmetic).
    fn square(&mut self, x: i32, y: i32, size: f32, angle: f32, color: u8) {
        // C: `size /= 1.4142135623` (in double, stored as float), then `round(size)`.
        let size = f64::from((f64::from(size) / REDIS_SQRT_2) as f32).round() as f32;
        let mut k: f32 = (std::f64::consts::FRAC_PI_4 + f64::from(angle)) as f32;
        let mut px = [0i32; 4];
        let mut py = [0i32; 4];
        for j in 0..4 {
            px[j] = (f64::from(k).sin() * f64::from(size) + f64::from(x)).round() as i32;
            py[j] = (f64::from(k).cos() * f64::from(size) + f64::from(y)).round() as i32;
            k = (f64::from(k) + std::f64::consts::FRAC_PI_2) as f32;
        }
        for j in 0..4 {
            self.line(px[j], py[j], px[(j + 1) % 4], py[(j + 1) % 4], color);
        }
    }
}

/// LOLWUT VERSION 5 [columns] [squares per row] [squares per column]: *Schotter*.
fn schotter(args: &[Bytes], rng: &mut Rng) -> Result<String, crate::cmd::error::CmdError> {
    let cols = arg(args, 0, 66, 1, 1000)? as i32;
    let per_row = arg(args, 1, 8, 1, 200)? as i32;
    let per_col = arg(args, 2, 12, 1, 200)? as i32;
    let width = cols * 2;
    let padding = if width > 4 { 2 } else { 0 };
    let side = (width - padding * 2) as f32 / per_row as f32;
    let height = (side * per_col as f32 + (padding * 2) as f32) as i32;
    let mut canvas = Canvas::new(width, height, 0);
    let draw = |rng: &mut Rng| rand(rng) as f32 / RAND_MAX as f32;
    for y in 0..per_col {
        for x in 0..per_row {
            let mut sx = (x as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut sy = (y as f32 * side + side / 2.0 + padding as f32) as i32;
            let mut angle = 0.0f32;
            if y > 1 {
                let mut r1 = draw(rng) / per_col as f32 * y as f32;
                let mut r2 = draw(rng) / per_col as f32 * y as f32;
                let mut r3 = draw(rng) / per_col as f32 * y as f32;
                for r in [&mut r1, &mut r2, &mut r3] {
                    if rand(rng) % 2 == 1 {
                        *r = -*r;
                    }
                }
                angle = r1;
                sx = (sx as f32 + r2 * side / 3.0) as i32;
                sy = (sy as f32 + r3 * side / 3.0) as i32;
            }
            canvas.square(sx, sy, side, angle, 1);
        }
    }
    let mut text = String::new();
    let mut y = 0;
    while y < canvas.height {
        let mut x = 0;
        while x < canvas.width {
            // A Braille character holds 2 x 4 pixels: bits 0-2 and 6 the left column, 3-5 and 7
            // the right.
            let dots =
                [(0, 0, 0), (0, 1, 1), (0, 2, 2), (1, 0, 3), (1, 1, 4), (1, 2, 5), (0, 3, 6), (1, 3, 7)];
            let byte = dots
                .iter()
                .filter(|(dx, dy, _)| canvas.get(x + dx, y + dy) != 0)
                .fold(0u32, |b, (.., bit)| b | 1 << bit);
            text.push(char::from_u32(0x2800 + byte).unwrap_or(' '));
            x += 2;
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
        y += 4;
    }
    text.push_str("\nGeorg Nees - schotter, plotter on paper, 1968. Redis ver. ");
    text.push_str(crate::REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

/// One skyscraper of the skyline.
struct Skyscraper {
    xoff: i32,
    width: i32,
    height: i32,
    windows: bool,
    color: u8,
}

/// Draws a skyscraper from the bottom of the canvas: a roof two pixels narrower each side,
/// windows two pixels wide in one of the grays the building is not.
fn skyscraper(canvas: &mut Canvas, s: &Skyscraper, rng: &mut Rng) {
    let start = canvas.height - 1;
    let end = start - s.height + 1;
    let mut y = start;
    while y >= end {
        for x in s.xoff..s.xoff + s.width {
            if y == end && (x <= s.xoff + 1 || x >= s.xoff + s.width - 2) {
                continue;
            }
            let mut color = s.color;
            if s.windows && x > s.xoff + 1 && x < s.xoff + s.width - 2 && y > end + 1 && y < start - 1 {
                let (relx, rely) = (x - (s.xoff + 1), y - (end + 1));
                if (relx / 2) % 2 != 0 && rely % 2 != 0 {
                    loop {
                        color = (1 + rand(rng) % 2) as u8;
                        if color != s.color {
                            break;
                        }
                    }
                    if relx % 2 != 0 {
                        color = canvas.get(x - 1, y);
                    }
                }
            }
            canvas.set(x, y, color);
        }
        y -= 1;
    }
}

/// LOLWUT VERSION 6 [columns] [rows]: a skyline after the parallax backgrounds of 8-bit games.
fn skyline(args: &[Bytes], rng: &mut Rng) -> Result<String, crate::cmd::error::CmdError> {
    let cols = arg(args, 0, 80, 1, 1000)? as i32;
    let rows = arg(args, 1, 20, 1, 1000)? as i32;
    let mut canvas = Canvas::new(cols, rows, 3);
    let h = canvas.height;
    // The background, without windows, lighter ones behind.
    for color in [2u8, 1] {
        let mut offset = -10;
        while offset < canvas.width {
            offset += rand(rng) % 8;
            let width = 10 + rand(rng) % 9;
            let height = if color == 2 { h / 2 + (rand(rng) % h) / 2 } else { h / 2 + (rand(rng) % h) / 3 };
            skyscraper(&mut canvas, &Skyscraper { xoff: offset, width, height, windows: false, color }, rng);
            offset += if color == 2 { width / 2 } else { width + 1 };
        }
    }
    // The foreground, with windows.
    let mut offset = -10;
    while offset < canvas.width {
        offset += rand(rng) % 8;
        let mut width = 5 + rand(rng) % 14;
        if width % 4 != 0 {
            width += width % 3;
        }
        let height = h / 3 + (rand(rng) % h) / 2;
        skyscraper(&mut canvas, &Skyscraper { xoff: offset, width, height, windows: true, color: 0 }, rng);
        offset += width + 5;
    }
    let mut text = String::new();
    for y in 0..canvas.height {
        for x in 0..canvas.width {
            let escape = match canvas.get(x, y) {
                1 => "0;90;100m",
                2 => "0;37;47m",
                3 => "0;97;107m",
                _ => "0;30;40m",
            };
            text.push_str("\x1b[");
            text.push_str(escape);
            text.push_str(" \x1b[0m");
        }
        if y != canvas.height - 1 {
            text.push('\n');
        }
    }
    text.push_str(
        "\nDedicated to the 8 bit game developers of past and present.\nOriginal 8 bit image from Plaguemon by \
         hikikomori. Redis ver. ",
    );
    text.push_str(crate::REDIS_VERSION);
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_and_a_square_land_on_the_pixels_redis_draws() {
        let mut c = Canvas::new(8, 8, 0);
        c.line(0, 0, 3, 1, 1);
        let lit: Vec<(i32, i32)> =
            (0..8).flat_map(|y| (0..8).map(move |x| (x, y))).filter(|&(x, y)| c.get(x, y) == 1).collect();
        assert_eq!(lit, [(0, 0), (1, 0), (2, 1), (3, 1)]);
        // An unturned square of side 4 is a 4 x 4 outline around its centre (corners at +-3,
        // after the side is divided by sqrt 2 and rounded).
        // An unturned square of side 4: the side over sqrt 2, rounded, is 3; its corners are
        // at 3 sin(pi/4), rounded, 2 pixels from the centre each way.
        let mut c = Canvas::new(16, 16, 0);
        c.square(8, 8, 4.0, 0.0, 1);
        for (x, y) in [(10, 10), (6, 6), (8, 6), (6, 8)] {
            assert_eq!(c.get(x, y), 1, "({x}, {y})");
        }
        assert_eq!(c.get(8, 8), 0);
        assert_eq!(c.get(11, 11), 0);
    }
}
