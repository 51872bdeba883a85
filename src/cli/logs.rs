//! Where logs go: stderr for the person or cron job watching, and optionally a daily file.

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Logs on stderr (warnings only with `--quiet`; `RUST_LOG` overrides) and, with
/// `--log-dir`, in a daily file at info whatever the terminal shows: the file is the record.
/// yup-oauth2 stays at warn everywhere, because its debug output contains access tokens. The
/// guard flushes the file writer at exit.
pub fn init(quiet: bool, log_dir: Option<&Path>) -> std::io::Result<Option<WorkerGuard>> {
    let level =
        std::env::var("RUST_LOG").unwrap_or_else(|_| (if quiet { "warn" } else { "info" }).into());
    // Colour only for a person at a terminal: cron mail, pipes and log collectors get plain
    // text, not escape sequences.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(EnvFilter::new(format!("{level},yup_oauth2=warn")));
    let (file, guard) = match log_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let appender = tracing_appender::rolling::Builder::new()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix("dropsync.log")
                .build(dir)
                .map_err(std::io::Error::other)?;
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_filter(EnvFilter::new("info,yup_oauth2=warn"));
            (Some(layer), Some(guard))
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    Ok(guard)
}
