//! Living under a supervisor, as redis-server does: `daemonize yes` detaches the process
//! before anything else starts, and `supervised systemd` (or `auto` under systemd) tells
//! systemd that the server is ready, by `READY=1` on `$NOTIFY_SOCKET` (a unit with
//! `Type=notify`, as Debian's redis-server.service).

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
