//! Logging: a `tracing` subscriber whose level follows `loglevel`, at startup and on CONFIG SET;
//! a `logfile` reopened on SIGHUP (logrotate's `postrotate kill -HUP`; opened for appending, so
//! `copytruncate` works too); and a copy of each line to syslog with `syslog-enabled yes`.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use tracing_subscriber::fmt::writer::{BoxMakeWriter, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::{LogLevel, SyslogFacility};

/// Changes the level of the installed subscriber (what CONFIG SET loglevel calls).
pub type SetLevel = Arc<dyn Fn(LogLevel) + Send + Sync>;

/// The `tracing` filter for a Redis log level.
fn filter(level: LogLevel) -> EnvFilter {
    EnvFilter::new(match level {
        LogLevel::Debug => "trace",
        LogLevel::Verbose => "debug",
        LogLevel::Notice => "info",
        LogLevel::Warning => "warn",
        LogLevel::Nothing => "off",
    })
}

/// Installs the process's subscriber: lines to `writer` (and to `syslog`, if given), filtered
/// by `FERROKEY_LOG` when set, else by `level`. Returns what changes the level later.
pub fn init(level: LogLevel, writer: BoxMakeWriter, ansi: bool, syslog: Option<Syslog>) -> SetLevel {
    let initial = EnvFilter::try_from_env("FERROKEY_LOG").unwrap_or_else(|_| filter(level));
    let (layer, handle) = reload::Layer::<EnvFilter, Registry>::new(initial);
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi).with_writer(writer);
    // Syslog stamps its own time.
    let syslog = syslog.map(|s| {
        tracing_subscriber::fmt::layer().with_target(false).with_ansi(false).without_time().with_writer(s)
    });
    tracing_subscriber::registry().with(layer).with(fmt).with(syslog).init();
    Arc::new(move |level| {
        if let Err(e) = handle.reload(filter(level)) {
            tracing::warn!("loglevel not changed: {e}");
        }
    })
}

/// The log file: its path and the file open now.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// The log file [`reopen`] reopens, once installed.
static LOG_FILE: OnceLock<Arc<LogFile>> = OnceLock::new();

impl LogFile {
    /// Opens `path` for appending (created if missing) and makes it the file [`reopen`]
    /// reopens.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn install(path: impl Into<PathBuf>) -> io::Result<Arc<LogFile>> {
        let path = path.into();
        let file = Mutex::new(open_append(&path)?);
        let log = Arc::new(LogFile { path, file });
        let _ = LOG_FILE.set(log.clone());
        Ok(log)
    }

    /// A writer of lines into the file, for [`init`].
    #[must_use]
    pub fn writer(self: &Arc<Self>) -> BoxMakeWriter {
        BoxMakeWriter::new(Shared(self.clone()))
    }
}

fn open_append(path: &std::path::Path) -> io::Result<File> {
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// SIGHUP: the log file is opened again by its path (logrotate moved it away); lines go to the
/// new one. Without a log file, nothing happens.
pub fn reopen() {
    let Some(log) = LOG_FILE.get() else { return };
    match open_append(&log.path) {
        Ok(file) => {
            *log.file.lock().unwrap_or_else(PoisonError::into_inner) = file;
            tracing::info!("Log file {} reopened", log.path.display());
        }
        Err(e) => tracing::warn!("cannot reopen log file {}: {e}", log.path.display()),
    }
}

/// The installed log file, shared by the subscriber's writers.
struct Shared(Arc<LogFile>);

impl<'a> MakeWriter<'a> for Shared {
    type Writer = FileLine<'a>;

    fn make_writer(&'a self) -> FileLine<'a> {
        FileLine(self.0.file.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// One line being written to the log file, under its lock.
struct FileLine<'a>(MutexGuard<'a, File>);

impl Write for FileLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `syslog-enabled yes`: each line also goes to the syslog socket (`syslog-socket`,
/// `/dev/log`), as `<priority>ident[pid]: line` (RFC 3164, as glibc's `syslog` sends it),
/// with `syslog-ident` and `syslog-facility`. A line the socket does not take is lost, as
/// with syslog(3).
pub struct Syslog {
    socket: UnixDatagram,
    path: PathBuf,
    ident: String,
    facility: u8,
}

impl Syslog {
    /// A sender to `path`, as `ident` in `facility`.
    ///
    /// # Errors
    /// No datagram socket could be made.
    pub fn new(path: impl Into<PathBuf>, ident: &str, facility: SyslogFacility) -> io::Result<Syslog> {
        let facility = match facility {
            SyslogFacility::User => 1,
            SyslogFacility::Local0 => 16,
            SyslogFacility::Local1 => 17,
            SyslogFacility::Local2 => 18,
            SyslogFacility::Local3 => 19,
            SyslogFacility::Local4 => 20,
            SyslogFacility::Local5 => 21,
            SyslogFacility::Local6 => 22,
            SyslogFacility::Local7 => 23,
        };
        let socket = UnixDatagram::unbound()?;
        // A stalled syslog daemon must not stall the thread that logs: the line is lost.
        socket.set_nonblocking(true)?;
        Ok(Syslog { socket, path: path.into(), ident: ident.to_owned(), facility })
    }
}

impl<'a> MakeWriter<'a> for Syslog {
    type Writer = SyslogLine<'a>;

    fn make_writer(&'a self) -> SyslogLine<'a> {
        SyslogLine { to: self, severity: 5, line: Vec::new() }
    }

    /// Redis's mapping: warning 4, notice 5, verbose (info) 6, debug 7; errors 3.
    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SyslogLine<'a> {
        let severity = match *meta.level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 5,
            tracing::Level::DEBUG => 6,
            tracing::Level::TRACE => 7,
        };
        SyslogLine { to: self, severity, line: Vec::new() }
    }
}

/// One line for syslog, sent whole when dropped.
pub struct SyslogLine<'a> {
    to: &'a Syslog,
    severity: u8,
    line: Vec<u8>,
}

impl Write for SyslogLine<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for SyslogLine<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let priority = u16::from(self.to.facility) * 8 + u16::from(self.severity);
        let message = format!("<{priority}>{}[{}]: {text}", self.to.ident, std::process::id());
        let _ = self.to.socket.send_to(message.as_bytes(), &self.to.path);
    }
}
