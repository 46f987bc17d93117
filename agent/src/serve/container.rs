//! One container's life inside the agent: created (its init waits for
//! `Start`), running, exited; how its exit is observed, and how every
//! container is stopped at the end.
//!
//! PID 1's reaper reaps every child, so exit statuses come from
//! [`crate::init::reaper::Reaper::watch`], never from `waitpid` on the
//! container's pid.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use vmrun_isolation::{ContainerProcess, CreatedContainer, ExitStatus as IsolationExit};
use vmrun_protocol::{ContainerStatus, ExitStatus};

use super::exec_table::ExecTable;
use super::exit_cell::ExitCell;
use super::tty::PtyRelay;
use crate::init::reaper::ChildExit;

/// How long a terminal's output may sit idle after its process exited
/// before it is cut (something else in the guest still holds the pty).
pub const TTY_DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// Longest accepted container or exec id (it becomes a path component).
pub const MAX_ID_LEN: usize = 128;

/// Checks that `id` is `[A-Za-z0-9_.-]{1,128}` and not `.`/`..`, so it is
/// safe as a path component.
pub fn check_id(id: &str) -> Result<()> {
    check_name("id", id)
}

/// [`check_id`] for the request field `field` (`id`, `exec_id`).
pub fn check_name(field: &str, value: &str) -> Result<()> {
    let ok = !value.is_empty()
        && value.len() <= MAX_ID_LEN
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok {
        bail!(
            "{field}: {value:?} must be 1 to {MAX_ID_LEN} characters of [A-Za-z0-9_.-] \
             (not . or ..)"
        );
    }
    Ok(())
}

/// Where a container is in its life.
#[derive(Debug)]
pub enum State {
    /// Created: the init exists and waits for `Start`.
    Created(Box<CreatedContainer>),
    /// `Start` is in progress.
    Starting,
    /// The process runs (or ended and the watcher has not noticed yet).
    Running(Box<ContainerProcess>),
    /// The init ended, or starting it failed ([`Container::exit`] says).
    Done,
}

/// A container known to the agent.
#[derive(Debug)]
pub struct Container {
    /// Where its rootfs is (mounted by the rootfs provider).
    pub rootfs: PathBuf,
    /// Its init's pid in the guest.
    pub pid: i32,
    /// Its state.
    pub state: State,
    /// `Start` was asked for (whether it succeeded or not).
    pub started: bool,
    /// The reaper reported the init's exit (its pid may be reused: never
    /// signal it); set before the exit is published in [`Self::exit`].
    pub init_exited: bool,
    /// An exit the watcher saw while `Start` was in progress, for `Start`
    /// to clean up after.
    pub exit_while_starting: Option<ChildExit>,
    /// Its outcome, shared with `Wait`ers.
    pub exit: Arc<ExitCell>,
    /// The pty relay of a terminal container.
    pub tty: Option<Arc<PtyRelay>>,
    /// Spec fields the guest ignored, reported by `Start`.
    pub warnings: Vec<String>,
    /// Its exec'd processes.
    pub execs: ExecTable,
}

impl Container {
    /// A freshly created container.
    pub fn created(rootfs: PathBuf, created: CreatedContainer, tty: Option<Arc<PtyRelay>>) -> Self {
        Self {
            rootfs,
            pid: created.pid(),
            warnings: created.warnings().iter().map(|w| w.to_string()).collect(),
            state: State::Created(Box::new(created)),
            started: false,
            init_exited: false,
            exit_while_starting: None,
            exit: Arc::default(),
            tty,
            execs: ExecTable::default(),
        }
    }

    /// Its status as `State` reports it, and the init's pid (0 once
    /// stopped).
    pub fn status(&self) -> (ContainerStatus, i32) {
        match &self.state {
            _ if self.init_exited => (ContainerStatus::Stopped, 0),
            State::Created(c) if c.is_paused() => (ContainerStatus::Paused, self.pid),
            State::Created(_) | State::Starting => (ContainerStatus::Created, self.pid),
            State::Running(p) if p.is_paused() => (ContainerStatus::Paused, self.pid),
            State::Running(_) => (ContainerStatus::Running, self.pid),
            State::Done => (ContainerStatus::Stopped, 0),
        }
    }

    /// The running container's process; an error naming the state
    /// otherwise.
    pub fn running(&mut self, id: &str) -> Result<&mut ContainerProcess> {
        match &mut self.state {
            State::Running(process) if !self.init_exited => Ok(process),
            State::Created(_) | State::Starting => bail!("container {id:?} is not started"),
            State::Running(_) | State::Done => bail!("container {id:?} is not running"),
        }
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

/// Converts the reaper's view of an exit into the protocol's.
pub fn exit_status(exit: ChildExit) -> ExitStatus {
    match exit {
        ChildExit::Exited(code) => ExitStatus::Code(code),
        ChildExit::Signaled(signal) => ExitStatus::Signal(signal),
    }
}

/// Converts the reaper's view of an exit into vmrun-isolation's.
pub fn isolation_exit(exit: ChildExit) -> IsolationExit {
    match exit {
        ChildExit::Exited(code) => IsolationExit::Exited(code),
        ChildExit::Signaled(signal) => IsolationExit::Signaled(signal),
    }
}

/// What the watcher takes out of the table to clean up after.
enum Ended {
    Created(Box<CreatedContainer>),
    Running(Box<ContainerProcess>),
}

/// Starts a thread that waits for container `id`'s init to exit (from the
/// reaper), cleans up after it (its state, bundle copy and cgroup, never
/// signalling the reused pid) and publishes the status in its
/// [`ExitCell`] — for a terminal container only after the pty's remaining
/// output is relayed.
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
            if let Some(c) = lock(&containers).get_mut(&id) {
                c.init_exited = true;
            }
            if let Some(tty) = tty {
                tty.drain(TTY_DRAIN_LIMIT);
            }
            let ended = {
                let mut table = lock(&containers);
                table.get_mut(&id).and_then(|c| {
                    match std::mem::replace(&mut c.state, State::Done) {
                        State::Created(created) => Some(Ended::Created(created)),
                        State::Running(process) => Some(Ended::Running(process)),
                        State::Starting => {
                            c.state = State::Starting;
                            c.exit_while_starting = received.ok();
                            None
                        }
                        State::Done => None,
                    }
                })
            };
            if let (Some(ended), Ok(exit)) = (ended, received) {
                match ended {
                    Ended::Created(mut created) => created.exited(isolation_exit(exit)),
                    Ended::Running(mut process) => process.exited(isolation_exit(exit)),
                }
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

/// Kills every container (all processes of its cgroup, exec'd ones too),
/// waits (up to `timeout` each) for the inits' exits, and fails the
/// outcome of containers that never started.
pub fn stop_all(containers: &Containers, timeout: Duration) {
    let cells: Vec<(String, Arc<ExitCell>)> = {
        let mut table = lock(containers);
        for (id, container) in table.iter_mut() {
            if container.init_exited {
                continue;
            }
            let killed = match &mut container.state {
                State::Running(process) => process
                    .signal_all(libc::SIGKILL)
                    .or_else(|_| process.signal(libc::SIGKILL)),
                State::Created(created) => {
                    container
                        .exit
                        .set(Err(format!("container {id} was never started")));
                    created
                        .cgroup()
                        .signal_all(libc::SIGKILL, false)
                        .or_else(|_| created.signal(libc::SIGKILL))
                }
                State::Starting | State::Done => Ok(()),
            };
            if let Err(err) = killed {
                tracing::debug!("killing container {id}: {err}");
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
            let err = check_name("exec_id", bad).unwrap_err().to_string();
            assert!(err.starts_with("exec_id:"), "{bad}: {err}");
        }
    }

    #[test]
    fn reaper_exits_map_to_protocol_statuses() {
        assert_eq!(exit_status(ChildExit::Exited(3)), ExitStatus::Code(3));
        assert_eq!(exit_status(ChildExit::Signaled(9)), ExitStatus::Signal(9));
        assert_eq!(
            isolation_exit(ChildExit::Signaled(9)),
            IsolationExit::Signaled(9)
        );
    }
}
