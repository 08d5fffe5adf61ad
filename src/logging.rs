//! Logging: a `tracing` subscriber whose level follows `loglevel`, at startup and on CONFIG SET.

use std::sync::Arc;

use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

use crate::config::LogLevel;

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

/// Installs the process's subscriber: lines to `writer`, filtered by `FERROKEY_LOG` when set,
/// else by `level`. Returns what changes the level later.
pub fn init(level: LogLevel, writer: BoxMakeWriter, ansi: bool) -> SetLevel {
    let initial = EnvFilter::try_from_env("FERROKEY_LOG").unwrap_or_else(|_| filter(level));
    let (layer, handle) = reload::Layer::<EnvFilter, Registry>::new(initial);
    let fmt = tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi).with_writer(writer);
    tracing_subscriber::registry().with(layer).with(fmt).init();
    Arc::new(move |level| {
        if let Err(e) = handle.reload(filter(level)) {
            tracing::warn!("loglevel not changed: {e}");
        }
    })
}
