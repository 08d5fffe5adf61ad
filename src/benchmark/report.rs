//! Results: per-test summaries from HDR histograms, printed as text, as redis-benchmark's CSV or
//! as JSON; and the live progress line.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use super::Live;

/// Errors by kind.
#[derive(Debug, Clone, Default)]
pub struct Errors {
    /// Connections that could not be made (or handshaken).
    pub connect: u64,
    /// Connections that broke mid-run.
    pub io: u64,
    /// Error replies, by their first word (`ERR`, `WRONGTYPE`, ...).
    pub replies: BTreeMap<String, u64>,
    /// The first error's text, for messages.
    pub first: Option<String>,
}

impl Errors {
    /// Counts a failed connection.
    pub fn connect(&mut self, why: String) {
        self.connect += 1;
        self.first.get_or_insert(why);
    }

    /// Counts a broken connection.
    pub fn io(&mut self, why: String) {
        self.io += 1;
        self.first.get_or_insert(why);
    }

    /// Counts an error reply (`-KIND message`).
    pub fn reply(&mut self, reply: &[u8]) {
        let text = String::from_utf8_lossy(reply.get(1..).unwrap_or_default()).trim().to_owned();
        let kind = text.split(' ').next().unwrap_or("ERR").to_owned();
        *self.replies.entry(kind).or_default() += 1;
        self.first.get_or_insert(text);
    }

    /// Adds another's counts.
    pub fn merge(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.io += other.io;
        for (k, v) in &other.replies {
            *self.replies.entry(k.clone()).or_default() += v;
        }
        if self.first.is_none() {
            self.first.clone_from(&other.first);
        }
    }

    /// All errors.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.connect + self.io + self.replies.values().sum::<u64>()
    }
}

/// One test's results.
#[derive(Debug, Clone)]
pub struct TestReport {
    /// The test's name.
    pub name: String,
    /// Requests (or connections) completed.
    pub requests: u64,
    /// How long the test ran.
    pub elapsed: Duration,
    /// Latency percentiles in milliseconds: avg, min, p50, p90, p95, p99, p99.9, max.
    pub latency_ms: [f64; 8],
    /// Errors by kind.
    pub errors: Errors,
    /// For `--connect-rate`: handshakes that resumed a session.
    pub resumed: Option<u64>,
    /// Operations completed in each whole second of the run.
    pub timeline: Vec<u64>,
}

impl TestReport {
    /// Summarizes a histogram of microseconds.
    #[must_use]
    pub fn new(
        name: String,
        h: &Histogram<u64>,
        elapsed: Duration,
        errors: Errors,
        resumed: Option<u64>,
    ) -> TestReport {
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |p: f64| ms(h.value_at_quantile(p));
        let latency_ms = if h.is_empty() {
            [0.0; 8]
        } else {
            [h.mean() / 1000.0, ms(h.min()), q(0.5), q(0.9), q(0.95), q(0.99), q(0.999), ms(h.max())]
        };
        TestReport { name, requests: h.len(), elapsed, latency_ms, errors, resumed, timeline: Vec::new() }
    }

    /// Requests per second.
    #[must_use]
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Every test's results.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// In the order they ran.
    pub tests: Vec<TestReport>,
}

impl Report {
    /// The human summary (redis-benchmark's shape, with more percentiles).
    #[must_use]
    pub fn text(&self, setup: &str) -> String {
        let mut out = String::new();
        for t in &self.tests {
            let l = &t.latency_ms;
            let _ = writeln!(out, "====== {} ======", t.name);
            let _ = writeln!(
                out,
                "  {} requests completed in {:.2} seconds",
                t.requests,
                t.elapsed.as_secs_f64()
            );
            let _ = writeln!(out, "  {setup}");
            let _ = writeln!(out, "  throughput summary: {:.2} requests per second", t.rps());
            let _ = writeln!(
                out,
                "  latency summary (msec): avg {:.3} min {:.3} p50 {:.3} p90 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
                l[0], l[1], l[2], l[3], l[5], l[6], l[7]
            );
            if let Some(resumed) = t.resumed {
                let share = if t.requests > 0 { resumed as f64 / t.requests as f64 } else { 0.0 };
                let _ =
                    writeln!(out, "  handshakes: {:.2} per second, {:.0}% resumed", t.rps(), share * 100.0);
            }
            let _ = writeln!(out, "  errors: {}\n", errors_text(&t.errors));
        }
        out
    }

    /// One line per test, as `redis-benchmark -q`.
    #[must_use]
    pub fn quiet(&self) -> String {
        self.tests
            .iter()
            .map(|t| {
                format!("{}: {:.2} requests per second, p50={:.3} msec\n", t.name, t.rps(), t.latency_ms[2])
            })
            .collect()
    }

    /// redis-benchmark's `--csv` layout.
    #[must_use]
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\
             \"p99_latency_ms\",\"max_latency_ms\"\n",
        );
        for t in &self.tests {
            let l = &t.latency_ms;
            let _ = writeln!(
                out,
                "\"{}\",\"{:.2}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\",\"{:.3}\"",
                t.name.replace('"', "'"),
                t.rps(),
                l[0],
                l[1],
                l[2],
                l[4],
                l[5],
                l[7]
            );
        }
        out
    }

    /// The JSON document `--json` writes (documented in the README).
    #[must_use]
    pub fn json(&self, setup: &BTreeMap<&str, String>) -> String {
        let mut out = String::from("{\n  \"setup\": {");
        let fields: Vec<String> = setup.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
        out.push_str(&fields.join(", "));
        out.push_str("},\n  \"tests\": [");
        for (i, t) in self.tests.iter().enumerate() {
            let l = &t.latency_ms;
            let replies: Vec<String> =
                t.errors.replies.iter().map(|(k, v)| format!("{}: {v}", quote(k))).collect();
            let _ = write!(
                out,
                "{}\n    {{\"name\": {}, \"requests\": {}, \"seconds\": {:.3}, \"rps\": {:.2}, \
                 \"latency_ms\": {{\"avg\": {:.3}, \"min\": {:.3}, \"p50\": {:.3}, \"p90\": {:.3}, \"p95\": {:.3}, \
                 \"p99\": {:.3}, \"p99_9\": {:.3}, \"max\": {:.3}}}, \
                 \"errors\": {{\"total\": {}, \"connect\": {}, \"io\": {}, \"replies\": {{{}}}}}, \
                 \"ops_per_second\": [{}]{}}}",
                if i > 0 { "," } else { "" },
                quote(&t.name),
                t.requests,
                t.elapsed.as_secs_f64(),
                t.rps(),
                l[0],
                l[1],
                l[2],
                l[3],
                l[4],
                l[5],
                l[6],
                l[7],
                t.errors.total(),
                t.errors.connect,
                t.errors.io,
                replies.join(", "),
                t.timeline.iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
                t.resumed.map_or(String::new(), |r| format!(", \"resumed\": {r}")),
            );
        }
        out.push_str("\n  ]\n}\n");
        out
    }
}

/// A JSON string literal.
#[must_use]
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn errors_text(e: &Errors) -> String {
    if e.total() == 0 {
        return "none".into();
    }
    let mut parts = Vec::new();
    if e.connect > 0 {
        parts.push(format!("{} connect", e.connect));
    }
    if e.io > 0 {
        parts.push(format!("{} connection", e.io));
    }
    parts.extend(e.replies.iter().map(|(k, v)| format!("{v} {k}")));
    format!("{} (first: {})", parts.join(", "), e.first.as_deref().unwrap_or(""))
}

/// Samples the completed-operation count once a second until the run stops; the thread returns
/// the operations of each whole second.
pub fn timeline(live: Arc<Live>) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let start = Instant::now();
        let (mut seconds, mut last) = (Vec::new(), 0);
        while !live.stop.load(Ordering::Acquire) {
            let next = start + Duration::from_secs(seconds.len() as u64 + 1);
            while Instant::now() < next && !live.stop.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if Instant::now() >= next {
                let done = live.done.load(Ordering::Relaxed);
                seconds.push(done - last);
                last = done;
            }
        }
        seconds
    })
}

/// Prints `name: elapsed, ops/s, p50, p99, errors` once a second on stderr while the run lasts
/// (only on a terminal).
pub fn progress(live: Arc<Live>, name: String) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let terminal = std::io::stderr().is_terminal();
        let start = Instant::now();
        let mut last = 0;
        while !live.stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(200));
            if start.elapsed().as_millis() / 1000 == last {
                continue;
            }
            last = start.elapsed().as_millis() / 1000;
            let done = live.done.load(Ordering::Relaxed);
            let (p50, p99) = live.window.lock().ok().and_then(|mut w| w.take()).map_or((0.0, 0.0), |h| {
                (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0)
            });
            if terminal {
                eprint!(
                    "\r{name}: {last}s, {:.0} ops/s, p50 {p50:.3} ms, p99 {p99:.3} ms, errors {}    ",
                    done as f64 / start.elapsed().as_secs_f64(),
                    live.errors.load(Ordering::Relaxed)
                );
                let _ = std::io::stderr().flush();
            }
        }
        if terminal {
            eprint!("\r{:80}\r", "");
        }
    })
}

/// `--plot`: each test's latency percentile curve (p50 to max, log-scaled "nines" on x) as an
/// SVG line chart, with its throughput in the legend.
#[must_use]
pub fn svg(report: &Report) -> String {
    const W: f64 = 720.0;
    const H: f64 = 400.0;
    const PAD: f64 = 50.0;
    let points = [(2, "p50", 0.5), (3, "p90", 0.9), (4, "p95", 0.95), (5, "p99", 0.99), (6, "p99.9", 0.999)];
    let max_ms = report.tests.iter().map(|t| t.latency_ms[6]).fold(0.0_f64, f64::max).max(0.001);
    let nines = |q: f64| -(1.0 - q).log10();
    let x = |q: f64| PAD + (W - 2.0 * PAD) * nines(q) / nines(0.999);
    let y = |ms: f64| H - PAD - (H - 2.0 * PAD) * ms / max_ms;
    let colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n\
         <line x1=\"{PAD}\" y1=\"{PAD}\" x2=\"{PAD}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{PAD}\" y=\"20\">latency by percentile (ms; top = {max_ms:.3})</text>\n",
        H - PAD,
        W - PAD,
        H - PAD,
        H - PAD
    );
    for (_, label, q) in points {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x(q),
            H - PAD + 18.0
        );
    }
    for (i, t) in report.tests.iter().enumerate() {
        let color = colors[i % colors.len()];
        let line: Vec<String> =
            points.iter().map(|(k, _, q)| format!("{:.1},{:.1}", x(*q), y(t.latency_ms[*k]))).collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" fill=\"{color}\">{} {:.0} ops/s</text>",
            PAD + 10.0,
            PAD + 16.0 * (i as f64 + 1.0),
            t.name.replace(['<', '>', '&'], "_"),
            t.rps()
        );
    }
    // Below: throughput over time, one line per test (ops per second, each whole second).
    let top = H + 20.0;
    let max_ops =
        report.tests.iter().flat_map(|t| t.timeline.iter().copied()).max().unwrap_or(0).max(1) as f64;
    let secs = report.tests.iter().map(|t| t.timeline.len()).max().unwrap_or(0).max(2) as f64;
    let _ = writeln!(
        out,
        "<line x1=\"{PAD}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
         <text x=\"{PAD}\" y=\"{:.1}\">ops/s over time (top = {max_ops:.0}; {secs:.0} s)</text>",
        top + H - PAD,
        W - PAD,
        top + H - PAD,
        top + 20.0
    );
    for (i, t) in report.tests.iter().enumerate() {
        let color = colors[i % colors.len()];
        let line: Vec<String> = t
            .timeline
            .iter()
            .enumerate()
            .map(|(s, ops)| {
                let x = PAD + (W - 2.0 * PAD) * (s as f64 + 1.0) / secs;
                let y = top + H - PAD - (H - 2.0 * PAD) * *ops as f64 / max_ops;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = writeln!(
            out,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
            line.join(" ")
        );
    }
    out.push_str("</svg>\n");
    out.replacen(&format!("height=\"{H}\""), &format!("height=\"{}\"", 2.0 * H + 20.0), 1)
}
