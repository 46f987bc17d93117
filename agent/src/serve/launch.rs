//! Running vmrun-isolation's forking calls (create, start, exec) so the
//! container's processes start with a clean slate.

use anyhow::{anyhow, Context, Result};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::getpid;

/// Runs `work` (a vmrun-isolation call that clones the container's
/// processes) on a short-lived thread that first drops the boot-timer port
/// permission and unblocks SIGCHLD, because the processes are cloned from
/// the calling thread and inherit both (the agent blocks SIGCHLD for its
/// reaper; a container must not start with it blocked). Afterwards the
/// reaper is poked with a SIGCHLD, in case that thread swallowed the real
/// one while it had the signal unblocked.
pub fn launch<T, W>(work: W) -> Result<T>
where
    T: Send + 'static,
    W: FnOnce() -> Result<T, vmrun_isolation::IsolationError> + Send + 'static,
{
    catch_sigpipe().context("setting up SIGPIPE for the container")?;
    let launcher = std::thread::Builder::new()
        .name("launch".into())
        .spawn(move || {
            crate::marker::drop_port_access();
            let mut chld = SigSet::empty();
            chld.add(Signal::SIGCHLD);
            chld.thread_unblock()
                .context("unblocking SIGCHLD for the container")?;
            let result = work().map_err(anyhow::Error::from);
            let _ = chld.thread_block();
            result
        })
        .context("spawning the container launcher thread")?;
    let result = launcher
        .join()
        .map_err(|_| anyhow!("the container launcher thread panicked"))
        .and_then(|result| result);
    // Every thread blocks SIGCHLD again: a synthetic one makes the reaper
    // look for exits it may have missed.
    let _ = kill(getpid(), Signal::SIGCHLD);
    result
}

/// Replaces Rust's process-wide `SIG_IGN` for SIGPIPE with a handler that
/// does nothing: the agent's writes still get `EPIPE` instead of dying, but
/// an ignored signal would stay ignored across the container's `execve`,
/// while a handled one is reset to the default there (so `yes | head` in a
/// container ends with SIGPIPE, as under runc).
fn catch_sigpipe() -> nix::Result<()> {
    extern "C" fn ignore(_: libc::c_int) {}
    let action = SigAction::new(
        SigHandler::Handler(ignore),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler is async-signal-safe (it does nothing), and the
    // previous disposition (SIG_IGN, set by the Rust runtime) is not needed.
    unsafe { sigaction(Signal::SIGPIPE, &action) }.map(drop)
}
