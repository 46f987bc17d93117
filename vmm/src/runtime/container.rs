//! A recorded container as the verbs see it: its state directory and
//! record, its status (asked of its VMM; a VMM that is gone means
//! `stopped`), its control socket, and how it is torn down.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::api::{ApiClient, ApiError, ApiRequest, ApiResponse};
use super::state::{ContainerDir, ContainerRecord, StateError, StateRoot, Status};

/// How long `delete --force` waits for a killed VMM to be gone.
pub const KILL_WAIT: Duration = Duration::from_secs(10);

/// How long a living VMM that does not answer `State` is asked again.
pub const STATUS_PATIENCE: Duration = Duration::from_secs(3);

/// Errors tearing a container down.
#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    /// The VMM did not die after SIGKILL.
    #[error("the container's VMM (pid {0}) did not exit within {KILL_WAIT:?} after SIGKILL")]
    StillAlive(i32),
    /// The VMM could not be signalled.
    #[error("cannot kill the container's VMM (pid {0})")]
    Kill(i32, #[source] std::io::Error),
    /// Host cgroups could not be removed.
    #[error("cannot remove the container's host cgroups")]
    Cgroups(#[source] super::host_cgroup::HostCgroupError),
    /// The network plumbing could not be undone.
    #[error("cannot undo the container's network plumbing")]
    Network(#[source] super::host_world::network::NetworkError),
    /// The state directory could not be removed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A container found under `--root`.
#[derive(Debug)]
pub struct Container {
    dir: ContainerDir,
    record: ContainerRecord,
}

impl Container {
    /// Loads container `id` ("container ID does not exist" when unknown).
    pub fn load(root: &StateRoot, id: &str) -> Result<Self, StateError> {
        let dir = root.open(id)?;
        let record = dir.read_record()?;
        Ok(Self { dir, record })
    }

    /// Its state directory.
    pub fn dir(&self) -> &ContainerDir {
        &self.dir
    }

    /// What `create` recorded.
    pub fn record(&self) -> &ContainerRecord {
        &self.record
    }

    /// Whether its VMM still runs (same pid and start time, not a zombie).
    pub fn vmm_alive(&self) -> bool {
        self.record.vmm.is_alive()
    }

    /// Its status: the VMM's answer, or `stopped` when the VMM is gone.
    /// A VMM that lives but does not answer (a call cut short, its control
    /// socket busy) is asked again for up to [`STATUS_PATIENCE`]: a
    /// container must not read as stopped (which `delete` acts on) only
    /// because one call failed. Past that it is reported stopped, loudly.
    pub fn status(&self) -> Status {
        let deadline = Instant::now() + STATUS_PATIENCE;
        loop {
            if !self.vmm_alive() {
                return Status::Stopped;
            }
            match self.api().and_then(|mut api| api.call(&ApiRequest::State)) {
                Ok(ApiResponse::State { status }) => return status,
                Ok(other) => {
                    tracing::debug!("unexpected answer to State: {other:?}");
                    return Status::Stopped;
                }
                // Nothing listens any more (the VMM is on its way out), or
                // it does not know the container.
                Err(ApiError::Gone | ApiError::Refused(_)) => return Status::Stopped,
                Err(e) if Instant::now() >= deadline => {
                    tracing::warn!(
                        "the VMM of {} (pid {}) runs but did not answer State for {STATUS_PATIENCE:?} ({}); reporting it stopped",
                        self.record.id,
                        self.record.vmm.pid,
                        crate::error_chain(&e)
                    );
                    return Status::Stopped;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Where its VM's control socket is, and its name there (`None`: the
    /// VM's main container; a pod member is named in its sandbox's VM).
    pub fn api_target(&self) -> (PathBuf, Option<String>) {
        match &self.record.sandbox {
            Some(sandbox) => (sandbox.api_socket.clone(), Some(self.record.id.clone())),
            None => (self.dir.api_socket(), None),
        }
    }

    /// A connection to its VMM ([`ApiError::Gone`] when the process that
    /// stands for it is gone).
    pub fn api(&self) -> Result<ApiClient, ApiError> {
        if !self.vmm_alive() {
            return Err(ApiError::Gone);
        }
        let (socket, container) = self.api_target();
        ApiClient::connect(&socket, container.as_deref())
    }

    /// Kills the VMM (and with it the VM) with SIGKILL and waits until it
    /// is gone. Nothing to do when it already is.
    pub fn kill_vmm(&self) -> Result<(), TeardownError> {
        let pid = self.record.vmm.pid;
        if !self.vmm_alive() {
            return Ok(());
        }
        // SAFETY: kill(2) only sends a signal; the pid was just checked
        // to be the recorded VMM (pid + start time).
        if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(TeardownError::Kill(pid, err));
            }
        }
        let deadline = Instant::now() + KILL_WAIT;
        while self.vmm_alive() {
            if Instant::now() >= deadline {
                return Err(TeardownError::StillAlive(pid));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Removes what the container left on the host (host cgroups, state
    /// directory), then runs its poststop hooks; the VMM must be gone.
    pub fn destroy(&self) -> Result<(), TeardownError> {
        super::host_cgroup::remove_cgroup_dirs(&self.record.host_cgroups)
            .map_err(TeardownError::Cgroups)?;
        if let Some(net) = &self.record.network {
            super::host_world::network::unplumb(&net.ns_path, &net.interfaces)
                .map_err(TeardownError::Network)?;
        }
        self.dir.remove()?;
        super::hooks::run_phase_warning(
            super::hooks::HookPhase::Poststop,
            &self.record.hooks(),
            &self.record.hook_state(),
        );
        Ok(())
    }
}
