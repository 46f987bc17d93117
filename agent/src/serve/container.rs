//! One container's life inside the agent: created (rootfs and stdio ready),
//! running, exited; and how its process is started and its exit observed.
//!
//! PID 1's reaper reaps every child, so the exit status comes from
//! [`crate::init::reaper::Reaper::watch`], never from `waitpid` on the container's pid.

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::{kill, sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::unistd::getpid;
use vmrun_isolation::oci_spec::runtime::Spec;
use vmrun_isolation::{ContainerProcess, ExitStatus as IsolationExit, RunOptions, Stdio};
use vmrun_protocol::ExitStatus;

use super::tty::{PtyRelay, TerminalStreams};
use crate::init::reaper::ChildExit;

/// How long a terminal's output may sit idle after its process exited
/// before it is cut (something else in the guest still holds the pty).
pub const TTY_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Longest accepted container id (it becomes a path component).
pub const MAX_ID_LEN: usize = 128;

/// Checks that `id` is `[A-Za-z0-9_.-]{1,128}` and not `.`/`..`, so it is
/// safe as a path component.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        bail!("id: {id:?} must be 1 to {MAX_ID_LEN} characters of [A-Za-z0-9_.-] (not . or ..)");
    }
    Ok(())
}

/// How a container ended, or why it never ran; set once.
#[derive(Debug, Default)]
pub struct ExitCell {
    outcome: Mutex<Option<Result<ExitStatus, String>>>,
    changed: Condvar,
}

impl ExitCell {
    fn lock(&self) -> MutexGuard<'_, Option<Result<ExitStatus, String>>> {
        self.outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the outcome; later calls are ignored (the first one wins).
    pub fn set(&self, outcome: Result<ExitStatus, String>) {
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(outcome);
            self.changed.notify_all();
        }
    }

    /// The outcome, if there is one yet.
    pub fn get(&self) -> Option<Result<ExitStatus, String>> {
        self.lock().clone()
    }

    /// Blocks until there is an outcome.
    pub fn wait(&self) -> Result<ExitStatus, String> {
        let mut slot = self.lock();
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.clone();
            }
            slot = self
                .changed
                .wait(slot)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Blocks up to `timeout`; `false` if there is still no outcome.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let slot = self.lock();
        let (slot, _) = self
            .changed
            .wait_timeout_while(slot, timeout, |s| s.is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.is_some()
    }
}

/// What `Create` prepared for `Start`.
#[derive(Debug)]
pub struct Prepared {
    /// The parsed and validated spec.
    pub spec: Spec,
    /// The container's stdio (vsock connections or /dev/null); with a
    /// terminal, /dev/null placeholders (the pty slave becomes fd 0-2).
    pub stdio: Stdio,
    /// With `process.terminal`: the connections the pty is relayed over.
    pub terminal: Option<TerminalStreams>,
    /// The host asked for `MS_MOVE` + `chroot` instead of `pivot_root`.
    pub no_pivot: bool,
}

/// Where a container is in its life.
#[derive(Debug)]
pub enum State {
    /// Created: waiting for `Start`.
    Created(Box<Prepared>),
    /// `Start` is in progress.
    Starting,
    /// The process runs (or ended and the watcher has not noticed yet).
    Running(Box<ContainerProcess>),
    /// The process ended, or starting it failed ([`Container::exit`] says).
    Done,
}

/// A container known to the agent.
#[derive(Debug)]
pub struct Container {
    /// Where its rootfs is (mounted by the rootfs provider).
    pub rootfs: PathBuf,
    /// Its state.
    pub state: State,
    /// Its outcome, shared with `Wait`ers.
    pub exit: Arc<ExitCell>,
    /// The pty relay of a started terminal container.
    pub tty: Option<Arc<PtyRelay>>,
}

impl Container {
    /// A freshly created container.
    pub fn created(rootfs: PathBuf, prepared: Prepared) -> Self {
        Self {
            rootfs,
            state: State::Created(Box::new(prepared)),
            exit: Arc::default(),
            tty: None,
        }
    }
}

/// Opens `/dev/null` (close-on-exec) for a stream the host did not connect.
pub fn dev_null() -> Result<OwnedFd> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    Ok(OwnedFd::from(file))
}

/// Starts the container's process through `vmrun-isolation`.
///
/// The work happens on a short-lived thread that first drops the boot-timer
/// port permission and unblocks SIGCHLD, because the container's processes
/// are cloned from the calling thread and inherit both (the agent blocks
/// SIGCHLD for its reaper; a container must not start with it blocked).
/// Afterwards the reaper is poked with a SIGCHLD, in case that thread
/// swallowed the real one while it had the signal unblocked.
pub fn launch(
    spec: Spec,
    stdio: Stdio,
    rootfs: PathBuf,
    opts: RunOptions,
) -> Result<ContainerProcess> {
    catch_sigpipe().context("setting up SIGPIPE for the container")?;
    let launcher = std::thread::Builder::new()
        .name("launch".into())
        .spawn(move || {
            crate::marker::drop_port_access();
            let mut chld = SigSet::empty();
            chld.add(Signal::SIGCHLD);
            chld.thread_unblock()
                .context("unblocking SIGCHLD for the container")?;
            let started =
                vmrun_isolation::run(&spec, &rootfs, stdio, &opts).map_err(anyhow::Error::from);
            let _ = chld.thread_block();
            started
        })
        .context("spawning the container launcher thread")?;
    let result = launcher
        .join()
        .map_err(|_| anyhow!("the container launcher thread panicked"))
        .and_then(|started| started);
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

/// Converts the reaper's view of an exit into the protocol's.
pub fn exit_status(exit: ChildExit) -> ExitStatus {
    match exit {
        ChildExit::Exited(code) => ExitStatus::Code(code),
        ChildExit::Signaled(signal) => ExitStatus::Signal(signal),
    }
}

/// Shared table of containers.
pub type Containers = Arc<Mutex<std::collections::HashMap<String, Container>>>;

/// Locks the table (a panicked holder ends PID 1 anyway; tests go on).
pub fn lock(
    containers: &Containers,
) -> MutexGuard<'_, std::collections::HashMap<String, Container>> {
    containers
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts a thread that waits for container `id`'s exit (from the reaper),
/// cleans up after it and publishes the status in its [`ExitCell`] — for a
/// terminal container only after the pty's remaining output is relayed.
pub fn spawn_exit_watcher(
    containers: Containers,
    id: String,
    exited: Receiver<ChildExit>,
    cell: Arc<ExitCell>,
    tty: Option<Arc<PtyRelay>>,
) -> Result<()> {
    std::thread::Builder::new()
        .name(format!("wait-{id}"))
        .spawn(move || {
            let received = exited.recv();
            if let Some(tty) = tty {
                tty.drain(TTY_DRAIN_LIMIT);
            }
            let process = {
                let mut table = lock(&containers);
                table.get_mut(&id).and_then(|c| {
                    match std::mem::replace(&mut c.state, State::Done) {
                        State::Running(process) => Some(process),
                        other => {
                            c.state = other;
                            None
                        }
                    }
                })
            };
            if let (Some(mut process), Ok(exit)) = (process, received) {
                // The reaper collected the exit: let the isolation layer
                // record it and remove the container's state, bundle copy
                // and cgroup without ever signalling the (reused) pid.
                process.exited(match exit {
                    ChildExit::Exited(code) => IsolationExit::Exited(code),
                    ChildExit::Signaled(signal) => IsolationExit::Signaled(signal),
                });
            }
            let outcome = received
                .map(exit_status)
                .map_err(|_| "the agent's child reaper stopped".to_owned());
            if let Ok(status) = &outcome {
                tracing::info!("container {id} exited: {status:?}");
            }
            cell.set(outcome);
        })
        .context("spawning the exit watcher thread")?;
    Ok(())
}

/// Sends `signal` to a running container's process.
pub fn signal(container: &Container, id: &str, signal: Signal) -> Result<()> {
    match &container.state {
        State::Running(process) if container.exit.get().is_none() => process
            .signal(signal)
            .with_context(|| format!("sending {signal} to container {id}")),
        State::Created(_) | State::Starting => bail!("container {id:?} is not started"),
        State::Running(_) | State::Done => bail!("container {id:?} is not running"),
    }
}

/// Kills every container's process, waits (up to `timeout` each) for the
/// exits, and fails the outcome of containers that never ran.
pub fn stop_all(containers: &Containers, timeout: Duration) {
    let cells: Vec<(String, Arc<ExitCell>)> = {
        let mut table = lock(containers);
        for (id, container) in table.iter_mut() {
            match &container.state {
                State::Running(process) => {
                    if let Err(err) = process.signal(Signal::SIGKILL) {
                        tracing::debug!("killing container {id}: {err}");
                    }
                }
                State::Created(_) => {
                    // Drops its stdio: the host sees EOF.
                    container.state = State::Done;
                    container
                        .exit
                        .set(Err(format!("container {id} was never started")));
                }
                State::Starting | State::Done => {}
            }
        }
        table
            .iter()
            .map(|(id, c)| (id.clone(), Arc::clone(&c.exit)))
            .collect()
    };
    for (id, cell) in cells {
        if !cell.wait_timeout(timeout) {
            tracing::warn!("container {id} did not exit within {timeout:?} of SIGKILL");
            cell.set(Err(format!("container {id}: the agent is shutting down")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_safe_path_components() {
        for good in ["a", "demo-1", "x_y.z", &"a".repeat(MAX_ID_LEN)] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a b",
            "ä",
            &"a".repeat(MAX_ID_LEN + 1),
        ] {
            let err = check_id(bad).unwrap_err().to_string();
            assert!(err.starts_with("id:"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_first_outcome_wins_and_waiters_see_it() {
        let cell = Arc::new(ExitCell::default());
        assert!(cell.get().is_none());
        assert!(!cell.wait_timeout(Duration::ZERO));
        let waiter = {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || cell.wait())
        };
        cell.set(Ok(ExitStatus::Code(42)));
        cell.set(Err("too late".into()));
        assert_eq!(waiter.join().unwrap(), Ok(ExitStatus::Code(42)));
        assert_eq!(cell.get(), Some(Ok(ExitStatus::Code(42))));
        assert!(cell.wait_timeout(Duration::ZERO));
    }

    #[test]
    fn reaper_exits_map_to_protocol_statuses() {
        assert_eq!(exit_status(ChildExit::Exited(3)), ExitStatus::Code(3));
        assert_eq!(exit_status(ChildExit::Signaled(9)), ExitStatus::Signal(9));
    }
}
