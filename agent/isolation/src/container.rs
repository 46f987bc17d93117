//! A started container: [`ContainerProcess`], its init to wait on and
//! signal, and the operations of runc's lifecycle on it (pause, resume,
//! exec, and through [`ContainerCgroup`] update, stats and ps).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use libcontainer::container::Container;
use nix::errno::Errno;
use nix::unistd::Pid;

use crate::cgroup_control::ContainerCgroup;
use crate::exec::ExecContext;
use crate::oci_spec::runtime::Spec;
use crate::options::{ExitStatus, RunOptions};
use crate::signal::Ended;
use crate::validate::Warning;
use crate::IsolationError;

/// A started container. Reap it with [`ContainerProcess::wait`] (or, when
/// the caller's own reaper collected it, report that with
/// [`ContainerProcess::exited`]); dropping it unreaped kills the container
/// (SIGKILL) and cleans up.
pub struct ContainerProcess {
    container: Container,
    pid: Pid,
    bundle_dir: PathBuf,
    pty_master: Option<OwnedFd>,
    warnings: Vec<Warning>,
    status: Option<ExitStatus>,
    /// The validated spec libcontainer runs (execs inherit from it).
    spec: Spec,
    cgroup: ContainerCgroup,
    /// `start` let the init exec `process.args`.
    started: bool,
    paused: bool,
    opts: RunOptions,
}

impl std::fmt::Debug for ContainerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerProcess")
            .field("id", &self.container.id())
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("started", &self.started)
            .field("paused", &self.paused)
            .finish_non_exhaustive()
    }
}

impl ContainerProcess {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        container: Container,
        pid: Pid,
        bundle_dir: PathBuf,
        pty_master: Option<OwnedFd>,
        warnings: Vec<Warning>,
        spec: Spec,
        cgroup: ContainerCgroup,
        opts: RunOptions,
    ) -> Self {
        Self {
            container,
            pid,
            bundle_dir,
            pty_master,
            warnings,
            status: None,
            spec,
            cgroup,
            started: false,
            paused: false,
            opts,
        }
    }

    /// Lets the created container's init exec `process.args`; refused
    /// while it is paused (runc: "cannot start a container in the paused
    /// state").
    pub(crate) fn start(&mut self) -> Result<(), IsolationError> {
        if self.paused {
            return Err(self.state_err("is paused"));
        }
        self.container
            .start()
            .map_err(|source| IsolationError::Runtime {
                action: "start",
                id: self.container.id().to_owned(),
                source: Box::new(source),
            })?;
        self.started = true;
        Ok(())
    }

    /// The container init's pid (in the agent's pid namespace).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.container.id()
    }

    /// What was ignored or not enforced (also logged at `warn`).
    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Takes the pty master when `process.terminal` is true.
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.pty_master.take()
    }

    /// The container's cgroup (limits, statistics, its processes).
    pub fn cgroup(&self) -> &ContainerCgroup {
        &self.cgroup
    }

    /// The container's cgroup, to update its limits.
    pub fn cgroup_mut(&mut self) -> &mut ContainerCgroup {
        &mut self.cgroup
    }

    /// Sends `signal` to the container's init process. On a cgroup v1
    /// host (tests) SIGKILL to a paused container also thaws it, since v1
    /// freezes even fatal signals (cgroup v2 delivers them to frozen
    /// tasks).
    pub fn signal(&self, signal: i32) -> Result<(), IsolationError> {
        if self.status.is_some() {
            return Err(self.process_err("signal", Errno::ESRCH));
        }
        crate::signal::send(self.pid, signal).map_err(|e| self.process_err("signal", e))?;
        self.thaw_for_kill(signal)
    }

    /// Sends `signal` to every process of the container (runc's
    /// `kill --all`), see [`ContainerCgroup::signal_all`]; SIGKILL thaws a
    /// paused container on cgroup v1 as [`signal`](Self::signal) does.
    pub fn signal_all(&self, signal: i32) -> Result<(), IsolationError> {
        self.cgroup.signal_all(signal, self.paused)?;
        self.thaw_for_kill(signal)
    }

    fn thaw_for_kill(&self, signal: i32) -> Result<(), IsolationError> {
        if signal == libc::SIGKILL && self.paused && !self.cgroup.is_unified()? {
            self.cgroup.thaw()?;
        }
        Ok(())
    }

    /// Freezes every process of the container (runc's `pause`). As runc
    /// does, a created container can be paused too: its init, still
    /// waiting for `start`, is frozen with the cgroup (libcontainer pauses
    /// only running containers, so its cgroup is frozen directly).
    pub fn pause(&mut self) -> Result<(), IsolationError> {
        self.check_running()?;
        if self.paused {
            return Err(self.state_err("is already paused"));
        }
        if self.started {
            self.container
                .pause()
                .map_err(|e| IsolationError::cgroup("freezing the container", self.id(), e))?;
        } else {
            self.cgroup.freeze()?;
        }
        self.paused = true;
        Ok(())
    }

    /// Thaws a paused container (runc's `resume`): a container paused
    /// before it was started is created again.
    pub fn resume(&mut self) -> Result<(), IsolationError> {
        self.check_running()?;
        if !self.paused {
            return Err(self.state_err("is not paused"));
        }
        if self.started {
            self.container
                .resume()
                .map_err(|e| IsolationError::cgroup("thawing the container", self.id(), e))?;
        } else {
            self.cgroup.thaw()?;
        }
        self.paused = false;
        Ok(())
    }

    /// Is the container frozen by [`pause`](Self::pause)?
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// What [`ExecContext::exec`] needs to run a new process in this
    /// container, running or (as runc allows) created; an error while it
    /// is paused or has exited.
    pub fn exec_context(&self) -> Result<ExecContext, IsolationError> {
        self.check_running()?;
        if self.paused {
            return Err(self.state_err("is paused"));
        }
        Ok(ExecContext::new(
            self.id(),
            &self.opts.state_dir,
            &self.bundle_dir,
            &self.spec,
            self.started,
        ))
    }

    /// Blocks until the container's init exits, then removes its cgroup
    /// and state. Calling it again returns the same status.
    pub fn wait(&mut self) -> Result<ExitStatus, IsolationError> {
        self.reap(0)
            .and_then(|s| s.ok_or_else(|| self.process_err("waitpid", Errno::ECHILD)))
    }

    /// Like [`wait`](Self::wait) but returns `None` while it is still running.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, IsolationError> {
        self.reap(libc::WNOHANG)
    }

    fn reap(&mut self, flags: libc::c_int) -> Result<Option<ExitStatus>, IsolationError> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let status = loop {
            match crate::signal::wait(Some(self.pid), flags) {
                Ok(Some((_, Some(Ended::Exited(code))))) => break ExitStatus::Exited(code),
                Ok(Some((_, Some(Ended::Signaled(sig))))) => break ExitStatus::Signaled(sig),
                Ok(None) => return Ok(None),
                Ok(Some((_, None))) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.process_err("waitpid", e)),
            }
        };
        self.status = Some(status);
        self.after_exit();
        Ok(Some(status))
    }

    /// For a caller whose own reaper (PID 1's `waitpid(-1)` loop) collected
    /// the init's exit: records `status` and removes the container's
    /// cgroup (killing what is left in it) and state, without ever
    /// signalling the (possibly reused) pid (with
    /// [`RunOptions::ends_vm`] it only kills what is left). Later
    /// [`wait`](Self::wait) calls return `status`.
    pub fn exited(&mut self, status: ExitStatus) {
        if self.status.is_none() {
            self.status = Some(status);
            self.after_exit();
        }
    }

    /// After the init's exit: everything torn down ([`Self::cleanup`]),
    /// or, when the VM ends with this container, only what is left in its
    /// cgroup killed (the rest goes with the VM).
    fn after_exit(&mut self) {
        if !self.opts.ends_vm {
            self.cleanup();
            return;
        }
        if let Err(e) = self.signal_all(libc::SIGKILL) {
            tracing::warn!(container = %self.container.id(), "killing what is left: {e}");
        }
    }

    fn cleanup(&mut self) {
        if self.paused {
            // A frozen cgroup cannot be emptied (cgroup v1).
            let _ = self.cgroup.thaw();
            self.paused = false;
        }
        // The init is reaped: forget its pid so libcontainer's delete sees
        // a stopped container and never signals a recycled pid.
        self.container.state.pid = None;
        if let Err(e) = self.container.delete(true) {
            tracing::warn!(container = %self.container.id(), "deleting container state: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.bundle_dir);
    }

    fn check_running(&self) -> Result<(), IsolationError> {
        match self.status {
            Some(_) => Err(self.state_err("is stopped")),
            None => Ok(()),
        }
    }

    fn state_err(&self, reason: &str) -> IsolationError {
        IsolationError::State {
            id: self.id().to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn process_err(&self, what: &'static str, source: Errno) -> IsolationError {
        IsolationError::Process {
            what,
            pid: self.pid.as_raw(),
            source,
        }
    }
}

impl Drop for ContainerProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = crate::signal::send(self.pid, libc::SIGKILL);
            if self.opts.reaped_by_caller || self.wait().is_err() {
                // Someone else reaps it (or did: ECHILD): clean up all the
                // same; the cgroup's removal kills what is left.
                self.cleanup();
            }
        }
    }
}
