//! Logging set-up from the global flags (`--log`, `--log-format`, `--debug`,
//! `RUST_LOG`).

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;

use super::{CliError, GlobalOpts, LogFormat};

/// Installs the global tracing subscriber (idempotent: later calls are no-ops).
pub fn init(global: &GlobalOpts) -> Result<(), CliError> {
    let default = if global.debug { "debug" } else { "warn" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match (&global.log, global.log_format) {
        (Some(path), format) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| CliError::Log(path.clone(), e))?;
            let builder = builder.with_ansi(false).with_writer(Mutex::new(file));
            match format {
                LogFormat::Json => builder.json().try_init(),
                LogFormat::Text => builder.try_init(),
            }
        }
        (None, LogFormat::Json) => builder.json().with_writer(std::io::stderr).try_init(),
        // Colours only for a terminal: a pipe or file gets plain text.
        (None, LogFormat::Text) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .try_init(),
    };
    // Already initialised (e.g. by a test harness): keep the existing one.
    let _ = result;
    Ok(())
}
