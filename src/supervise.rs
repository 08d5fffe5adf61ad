//! Living under a supervisor, as redis-server does: `daemonize yes` detaches the process
//! before anything else starts, and `supervised systemd` (or `auto` under systemd) tells
//! systemd that the server is ready, by `READY=1` on `$NOTIFY_SOCKET` (a unit with
//! `Type=notify`, as Debian's redis-server.service), and `STOPPING=1` when it stops;
//! `oom-score-adj` sets the score the kernel's OOM killer weighs the process by.

use std::os::unix::net::UnixDatagram;

use crate::config::{Config, Supervised};

/// `daemonize yes`: forks, the parent exits, the child leaves the terminal's session and has
/// its standard streams on /dev/null. Must run before any thread is started (a fork keeps
/// only the calling thread).
///
/// # Errors
/// The fork or `setsid` failed.
pub fn daemonize() -> Result<(), nix::Error> {
    // The working directory stays: `dir` and relative paths were read against it.
    nix::unistd::daemon(true, false)
}

/// Tells the supervisor the server is ready, if `supervised` asks for it. Returns what was
/// done, for the log.
#[must_use]
pub fn notify_ready(config: &Config) -> Option<String> {
    let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty());
    match (config.supervised, socket) {
        (Supervised::Systemd | Supervised::Auto, Some(path)) => {
            Some(match send(&path, "STATUS=Ready to accept connections\nREADY=1\n") {
                Ok(()) => {
                    "Supervised by systemd. Please make sure you set appropriate values for TimeoutStartSec \
                           and TimeoutStopSec in your service unit."
                        .to_owned()
                }
                Err(e) => format!("systemd supervision requested, but notifying {path} failed: {e}"),
            })
        }
        (Supervised::Systemd, None) => {
            Some("systemd supervision requested or auto-detected, but NOTIFY_SOCKET not found!".to_owned())
        }
        (Supervised::Upstart, _) => {
            Some("upstart supervision is not supported by ferrokey: nothing was signalled".to_owned())
        }
        _ => None,
    }
}

/// Tells the supervisor the server is stopping (`STOPPING=1`), if `supervised` asked to tell it
/// of readiness.
pub fn notify_stopping(config: &Config) {
    let socket = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty());
    if let (Supervised::Systemd | Supervised::Auto, Some(path)) = (config.supervised, socket) {
        if let Err(e) = send(&path, "STATUS=Shutting down\nSTOPPING=1\n") {
            tracing::debug!("notifying {path} of the stop failed: {e}");
        }
    }
}

/// The OOM score the process started with, read once (what `relative` adds to).
static OOM_BASE: std::sync::OnceLock<i32> = std::sync::OnceLock::new();

/// Whether the server is a replica now (`oom-score-adj-values` has a value per role).
static REPLICA: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Reads /proc/self/oom_score_adj.
fn oom_score() -> Option<i32> {
    std::fs::read_to_string("/proc/self/oom_score_adj").ok().and_then(|s| s.trim().parse().ok())
}

/// `oom-score-adj-values` as numbers, checked as Redis checks them (three, each within
/// -2000..=2000).
///
/// # Errors
/// Redis's error text.
pub fn oom_values(config: &Config) -> Result<Vec<i32>, String> {
    let values: Option<Vec<i32>> = config
        .oom_score_adj_values
        .0
        .split_whitespace()
        .map(|v| v.parse().ok().filter(|n: &i32| (-2000..=2000).contains(n)))
        .collect();
    match values {
        Some(v) if v.len() == 3 => Ok(v),
        _ => Err("Invalid oom-score-adj-values, elements must be between -2000 and 2000.".into()),
    }
}

/// `oom-score-adj`: the kernel's OOM-killer score the server asks for, as Redis's
/// `setOOMScoreAdj`: for a primary the first of `oom-score-adj-values`, for a replica the
/// second (the third is Redis's fork child's; ferrokey does not fork). `relative` (and `yes`)
/// add it to the score the process started with, `absolute` sets it; `no` leaves the score
/// alone, or puts back the one it started with. Returns the score written, if one was.
///
/// # Errors
/// The values are invalid, or /proc/self/oom_score_adj could not be written (lowering a score
/// needs CAP_SYS_RESOURCE).
pub fn apply_oom_score_adj(config: &Config) -> Result<Option<i32>, String> {
    use crate::config::OomScoreAdj;
    let base = *OOM_BASE.get_or_init(|| oom_score().unwrap_or(0));
    let values = oom_values(config)?;
    let chosen = values[usize::from(REPLICA.load(std::sync::atomic::Ordering::Acquire))];
    let score = match config.oom_score_adj {
        OomScoreAdj::No => base,
        OomScoreAdj::Yes | OomScoreAdj::Relative => base + chosen,
        OomScoreAdj::Absolute => chosen,
    }
    .clamp(-1000, 1000);
    if oom_score() == Some(score) {
        return Ok(None);
    }
    std::fs::write("/proc/self/oom_score_adj", format!("{score}\n"))
        .map_err(|e| format!("Unable to write oom_score_adj: {e}"))?;
    Ok(Some(score))
}

/// The server became a replica, or a primary: its OOM score follows (a warning in the log if
/// it cannot be set).
pub fn oom_role(config: &Config, replica: bool) {
    if REPLICA.swap(replica, std::sync::atomic::Ordering::AcqRel) != replica {
        if let Err(e) = apply_oom_score_adj(config) {
            tracing::warn!("{e}");
        }
    }
}

/// Sends `message` to systemd's notification socket `path` (`@name` for an abstract one).
fn send(path: &str, message: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            socket.send_to_addr(message.as_bytes(), &addr)?;
        }
        None => {
            socket.send_to(message.as_bytes(), path)?;
        }
    }
    Ok(())
}
