//! Where fatal reports go besides stderr: the `--log` file, once the CLI
//! has opened it ([`register`], from `cli::logging`). The panic hook
//! ([`crate::panic_report`]) and the SIGSYS handler ([`crate::seccomp`])
//! sit below the CLI and report through here, so the modules keep one
//! direction of dependency (cli → seccomp/panic_report → fatal_log).

use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The registered `--log` file.
#[derive(Debug, Clone, Copy)]
pub struct FatalLog {
    /// Its descriptor (open for appending as long as the process lives).
    pub fd: RawFd,
    /// Whether its lines are JSON (else logrus text).
    pub json: bool,
    /// Appends one error line in the file's format (not async-signal-safe:
    /// for the panic hook, not for a signal handler).
    pub append_error: fn(&str),
}

static TARGET: OnceLock<FatalLog> = OnceLock::new();

/// Registers the `--log` file (the first registration stays).
pub fn register(log: FatalLog) {
    let _ = TARGET.set(log);
}

/// The registered `--log` file, if any.
pub fn target() -> Option<FatalLog> {
    TARGET.get().copied()
}

/// Appends `message` as an error line to the `--log` file (no-op without
/// one).
pub fn append_error(message: &str) {
    if let Some(log) = target() {
        (log.append_error)(message);
    }
}
