//! The serial console: stdio on `/dev/console` and the agent's log format.
//!
//! Every line the agent writes starts with `vmrun-agent:` so the host (and
//! tests) can tell agent output from kernel and container output.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use nix::unistd::dup2;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The console device (the kernel's `console=` target).
pub const CONSOLE: &str = "/dev/console";

/// Prefix of every line the agent prints.
pub const PREFIX: &str = "vmrun-agent:";

/// Points file descriptors 0, 1 and 2 at `/dev/console`.
///
/// The kernel already opens the initramfs' `/dev/console` node for init;
/// doing it again after devtmpfs is mounted makes stdio valid even if that
/// node was missing, and never a controlling terminal (`O_NOCTTY`).
pub fn attach_stdio() -> io::Result<()> {
    let console = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(CONSOLE)?;
    let fd = console.as_raw_fd();
    for target in 0..=2 {
        if target != fd {
            dup2(fd, target)?;
        }
    }
    if fd <= 2 {
        // It is one of stdio itself: keep it open, and across exec.
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::empty()))?;
        let _ = console.into_raw_fd();
    }
    Ok(())
}

/// Prints one line to stdout (the console) and flushes it; errors are
/// ignored (there is nowhere else to report them).
pub fn print_line(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// The start of a log line for an event of `level`.
pub fn line_prefix(level: Level) -> &'static str {
    match level {
        Level::ERROR => "vmrun-agent: error: ",
        Level::WARN => "vmrun-agent: warning: ",
        Level::INFO => "vmrun-agent: ",
        Level::DEBUG => "vmrun-agent: debug: ",
        Level::TRACE => "vmrun-agent: trace: ",
    }
}

/// Sends `tracing` events up to `max_level` to the console as
/// `vmrun-agent: [level: ]message key=value...` lines.
///
/// The log has its own close-on-exec descriptor for `/dev/console`, not
/// fd 2: a container's init process is cloned from the agent and points
/// fds 0-2 at the container's stdio before it execs, so anything logged in
/// between (libcontainer's own warnings) must still reach the console and
/// never the container's stderr. Falls back to stderr where there is no
/// console to open (the agent's host-side tests).
pub fn init_logging(max_level: Level) {
    let console = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(CONSOLE)
        .ok();
    let builder = tracing_subscriber::fmt()
        .with_max_level(max_level)
        .event_format(AgentFormat);
    let _ = match console {
        // `&File` writes without a lock: each event is formatted into one
        // buffer and written with one call, and a cloned child must never
        // wait on a lock another thread held.
        Some(console) => builder.with_writer(Arc::new(console)).try_init(),
        None => builder.with_writer(io::stderr).try_init(),
    };
}

/// One line per event, no timestamps (the kernel log and the VMM have
/// better clocks), no target or span noise.
struct AgentFormat;

impl<S, N> FormatEvent<S, N> for AgentFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str(line_prefix(*event.metadata().level()))?;
        ctx.format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_level_prefix_starts_with_the_agent_prefix() {
        for level in [
            Level::ERROR,
            Level::WARN,
            Level::INFO,
            Level::DEBUG,
            Level::TRACE,
        ] {
            assert!(line_prefix(level).starts_with(PREFIX), "{level}");
        }
        assert_eq!(line_prefix(Level::INFO), "vmrun-agent: ");
        assert_eq!(line_prefix(Level::ERROR), "vmrun-agent: error: ");
    }
}
