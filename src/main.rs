//! `ferrokey-server [config-file] [--directive value ...]`, as redis-server is invoked.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use ferrokey::config::Config;
use ferrokey::logging;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

/// mimalloc, not glibc's malloc: each core allocates from its own heap, and a buffer freed on
/// another core (a request that hopped, a reply that came back) goes back without taking an
/// arena lock or trimming memory (which makes the kernel interrupt the other core to flush its
/// TLB). Redis ships jemalloc for the same reasons. Wrapped to count the bytes in use, which
/// INFO reports as `used_memory`.
#[global_allocator]
static ALLOCATOR: ferrokey::memory::Counting<mimalloc::MiMalloc> =
    ferrokey::memory::Counting(mimalloc::MiMalloc);

/// A Redis-compatible, thread-per-core in-memory data server where TLS is never the bottleneck.
#[derive(Parser)]
#[command(
    version,
    about,
    after_help = "Any directive of the config file may be given as \
    `--name value`; it overrides the file. Example: ferrokey-server config/ferrokey.conf --port 7000"
)]
struct Cli {
    /// A config file (redis.conf syntax), then `--directive value ...` overrides.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CONFIG-FILE] [--DIRECTIVE VALUE"
    )]
    args: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (file, overrides) = match cli.args.first() {
        Some(first) if !first.starts_with("--") => (Some(PathBuf::from(first)), &cli.args[1..]),
        _ => (None, &cli.args[..]),
    };
    let (mut config, notices) = match Config::load_noting(file.as_deref(), overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("*** FATAL CONFIG ERROR ***\n{e}");
            std::process::exit(1);
        }
    };
    if config.daemonize {
        // Before any thread exists. Redis's default pidfile when daemonized.
        ferrokey::supervise::daemonize().context("daemonizing")?;
        if config.pidfile.is_empty() {
            config.pidfile = "/var/run/redis.pid".into();
        }
    }
    let set_level = init_logging(&config)?;
    for notice in notices {
        tracing::info!("{notice}");
    }
    if config.disable_thp {
        if let Err(e) = ferrokey::memory::disable_transparent_huge_pages() {
            tracing::warn!("could not disable transparent huge pages: {e}");
        }
    }
    if !config.pidfile.is_empty() {
        // As Redis: a pidfile that cannot be written is a warning, not a reason not to serve.
        if let Err(e) = std::fs::write(&config.pidfile, format!("{}\n", std::process::id())) {
            tracing::warn!("Failed to write PID file {}: {e}", config.pidfile);
        }
    }
    let pidfile = config.pidfile.clone();
    let result = ferrokey::runtime::run(config, file.as_deref(), set_level);
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    if let Err(e) = result {
        tracing::error!("{e}");
        eprintln!("ferrokey-server: {e}");
        std::process::exit(1);
    }
    Ok(())
}

fn init_logging(config: &Config) -> anyhow::Result<logging::SetLevel> {
    let syslog = if config.syslog_enabled {
        let syslog =
            logging::Syslog::new(&config.syslog_socket, &config.syslog_ident, config.syslog_facility)
                .context("opening a socket for syslog")?;
        Some(syslog)
    } else {
        None
    };
    if config.logfile.is_empty() {
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Ok(logging::init(config.loglevel, BoxMakeWriter::new(std::io::stdout), ansi, syslog))
    } else {
        let file = logging::LogFile::install(&config.logfile)
            .with_context(|| format!("opening logfile {}", config.logfile))?;
        Ok(logging::init(config.loglevel, file.writer(), false, syslog))
    }
}
