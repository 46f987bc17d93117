//! Running one container: [`run`] and the [`ContainerProcess`] it returns.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::console::{console_size, set_window_size, ConsoleSocket};
use crate::oci_spec::runtime::{RootBuilder, Spec};
use crate::validate::Warning;
use crate::{cgroups, mount_propagation, ns_paths, rootfs_check, validate, IsolationError};

/// The container's standard streams, owned by the caller until [`run`]
/// hands them to the container (they are closed in the calling process
/// afterwards, so EOF propagates). Ignored for fd 0-2 when
/// `process.terminal` is true: the pty slave is used instead.
#[derive(Debug)]
pub struct Stdio {
    /// Becomes fd 0 of the container process.
    pub stdin: OwnedFd,
    /// Becomes fd 1.
    pub stdout: OwnedFd,
    /// Becomes fd 2.
    pub stderr: OwnedFd,
}

/// How to run a container, beyond what `config.json` says.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Container id: `[A-Za-z0-9_.-]+`, unique among running containers.
    pub id: String,
    /// Where bundles and libcontainer's state live (a tmpfs in the guest).
    pub state_dir: PathBuf,
    /// The cgroup2 mount.
    pub cgroup_root: PathBuf,
    /// Use `MS_MOVE` + `chroot` instead of `pivot_root` (runc `--no-pivot`).
    pub no_pivot: bool,
    /// Pass fds 3..3+N of the calling process through to the container.
    pub preserve_fds: i32,
}

impl RunOptions {
    /// Defaults for the guest: state under `/run/vmrun`, cgroup2 at
    /// `/sys/fs/cgroup`, pivot_root, no extra fds.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            state_dir: PathBuf::from("/run/vmrun"),
            cgroup_root: PathBuf::from(cgroups::DEFAULT_CGROUP_ROOT),
            no_pivot: false,
            preserve_fds: 0,
        }
    }
}

/// How the container's init process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called exit with this code.
    Exited(i32),
    /// It was killed by this signal number.
    Signaled(i32),
}

impl ExitStatus {
    /// The status runc's callers expect: the code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            Self::Exited(c) => c,
            Self::Signaled(s) => 128 + s,
        }
    }
}

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
}

impl std::fmt::Debug for ContainerProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerProcess")
            .field("id", &self.container.id())
            .field("pid", &self.pid)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Validates `spec`, then creates and starts the container with `rootfs`
/// as its root (overriding `root.path`; `root.readonly` is kept), the
/// given stdio, and everything else the spec says. Returns once the
/// container process is running (it has exec'd `process.args` or is about
/// to). Warnings (ignored LSM fields, resources the guest lacks) are logged
/// and available through [`ContainerProcess::warnings`].
///
/// Must be called from a process that can `waitpid` the container (the
/// container's init becomes a child of the caller).
pub fn run(
    spec: &Spec,
    rootfs: &Path,
    stdio: Stdio,
    opts: &RunOptions,
) -> Result<ContainerProcess, IsolationError> {
    check_id(&opts.id)?;
    let (mut spec, mut warnings) = validate::validate(spec)?;
    ns_paths::check_namespace_paths(&spec)?;
    let rootfs = std::fs::canonicalize(rootfs)
        .map_err(|e| IsolationError::io(format!("rootfs {}", rootfs.display()), e))?;
    rootfs_check::check_rootfs(&rootfs, &spec)?;
    warnings.extend(cgroups::check_resources(&spec, &opts.cgroup_root)?);
    for w in &warnings {
        tracing::warn!(container = %opts.id, "{w}");
    }
    point_root_at(&mut spec, &rootfs)?;
    if let Some(linux) = spec.linux_mut() {
        if linux.cgroups_path().is_none() {
            linux.set_cgroups_path(Some(PathBuf::from(format!("/vmrun/{}", opts.id))));
        }
    }

    let bundle_dir = opts.state_dir.join("bundles").join(&opts.id);
    write_bundle(&bundle_dir, &spec)?;
    match create_and_start(&spec, &bundle_dir, stdio, opts) {
        Ok((container, pid, pty_master)) => Ok(ContainerProcess {
            container,
            pid,
            bundle_dir,
            pty_master,
            warnings,
            status: None,
        }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&bundle_dir);
            Err(e)
        }
    }
}

fn check_id(id: &str) -> Result<(), IsolationError> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IsolationError::invalid(
            "id",
            format!("{id:?} must be [A-Za-z0-9_.-]+"),
        ))
    }
}

fn point_root_at(spec: &mut Spec, rootfs: &Path) -> Result<(), IsolationError> {
    let readonly = spec.root().as_ref().and_then(|r| r.readonly());
    let mut root = RootBuilder::default().path(rootfs);
    if let Some(ro) = readonly {
        root = root.readonly(ro);
    }
    let root = root
        .build()
        .map_err(|e| IsolationError::invalid("root", e.to_string()))?;
    spec.set_root(Some(root));
    Ok(())
}

fn write_bundle(bundle_dir: &Path, spec: &Spec) -> Result<(), IsolationError> {
    if bundle_dir.exists() {
        return Err(IsolationError::invalid(
            "id",
            format!(
                "a container bundle already exists at {}",
                bundle_dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(bundle_dir)
        .map_err(|e| IsolationError::io(format!("creating {}", bundle_dir.display()), e))?;
    let json = serde_json::to_vec(spec).map_err(|source| IsolationError::Parse {
        field: ".".into(),
        source,
    })?;
    let path = bundle_dir.join("config.json");
    std::fs::write(&path, json)
        .map_err(|e| IsolationError::io(format!("writing {}", path.display()), e))
}

type Started = (Container, Pid, Option<OwnedFd>);

fn create_and_start(
    spec: &Spec,
    bundle_dir: &Path,
    stdio: Stdio,
    opts: &RunOptions,
) -> Result<Started, IsolationError> {
    let runtime_err = |action, source| IsolationError::Runtime {
        action,
        id: opts.id.clone(),
        source: Box::new(source),
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let size = match spec.process() {
        Some(process) if terminal => console_size(process)?,
        _ => None,
    };
    let console = if terminal {
        Some(ConsoleSocket::bind(
            &opts
                .state_dir
                .join("bundles")
                .join(&opts.id)
                .join("console.sock"),
        )?)
    } else {
        None
    };
    let state_root = opts.state_dir.join("state");
    std::fs::create_dir_all(&state_root)
        .map_err(|e| IsolationError::io(format!("creating {}", state_root.display()), e))?;
    let mut builder = ContainerBuilder::new(opts.id.clone(), SyscallType::Linux)
        .with_root_path(&state_root)
        .map_err(|e| runtime_err("configure", e))?
        .with_preserved_fds(opts.preserve_fds)
        .with_console_socket(console.as_ref().map(|c| c.path().to_path_buf()));
    if !terminal {
        builder = builder
            .with_stdin(stdio.stdin)
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr);
    }
    let created = builder
        .as_init(bundle_dir)
        .with_systemd(false)
        .with_detach(true)
        .with_no_pivot(opts.no_pivot)
        .build();
    let mut container = match created {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(state_root.join(&opts.id));
            return Err(runtime_err("create", e));
        }
    };
    let pty_master = match &console {
        Some(c) => {
            let master = c.receive_master().inspect_err(|_| {
                let _ = container.delete(true);
            })?;
            // Before start: the process must see its size from the first
            // instruction (libcontainer does not apply consoleSize).
            if let Some((rows, cols)) = size {
                set_window_size(&master, rows, cols).map_err(|e| {
                    let _ = container.delete(true);
                    IsolationError::io("setting the terminal size (process.consoleSize)", e)
                })?;
            }
            Some(master)
        }
        None => None,
    };
    // libcontainer made the mounts but dropped their propagation options:
    // apply them while the init waits for the start signal.
    let propagation = mount_propagation::changes(spec).and_then(|changes| match container.pid() {
        Some(pid) => mount_propagation::apply(pid, &changes),
        None if changes.is_empty() => Ok(()),
        None => Err(IsolationError::invalid(
            "id",
            "container created without a pid",
        )),
    });
    if let Err(e) = propagation {
        let _ = container.delete(true);
        return Err(e);
    }
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(runtime_err("start", e));
    }
    let Some(pid) = container.pid() else {
        let _ = container.delete(true);
        return Err(IsolationError::invalid(
            "id",
            "container started without a pid",
        ));
    };
    Ok((container, pid, pty_master))
}

impl ContainerProcess {
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

    /// Sends `signal` to the container's init process.
    pub fn signal(&self, signal: Signal) -> Result<(), IsolationError> {
        if self.status.is_some() {
            return Err(self.process_err("signal", Errno::ESRCH));
        }
        kill(self.pid, signal).map_err(|e| self.process_err("signal", e))
    }

    /// Blocks until the container's init exits, then removes its cgroup
    /// and state. Calling it again returns the same status.
    pub fn wait(&mut self) -> Result<ExitStatus, IsolationError> {
        self.reap(WaitPidFlag::empty())
            .and_then(|s| s.ok_or_else(|| self.process_err("waitpid", Errno::ECHILD)))
    }

    /// Like [`wait`](Self::wait) but returns `None` while it is still running.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, IsolationError> {
        self.reap(WaitPidFlag::WNOHANG)
    }

    fn reap(&mut self, flags: WaitPidFlag) -> Result<Option<ExitStatus>, IsolationError> {
        if let Some(s) = self.status {
            return Ok(Some(s));
        }
        let status = loop {
            match waitpid(self.pid, Some(flags)) {
                Ok(WaitStatus::Exited(_, code)) => break ExitStatus::Exited(code),
                Ok(WaitStatus::Signaled(_, sig, _)) => break ExitStatus::Signaled(sig as i32),
                Ok(WaitStatus::StillAlive) => return Ok(None),
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return Err(self.process_err("waitpid", e)),
            }
        };
        self.status = Some(status);
        self.cleanup();
        Ok(Some(status))
    }

    /// For a caller whose own reaper (PID 1's `waitpid(-1)` loop) collected
    /// the init's exit: records `status` and removes the container's
    /// cgroup and state, without ever signalling the (possibly reused) pid.
    /// Later [`wait`](Self::wait) calls return `status`.
    pub fn exited(&mut self, status: ExitStatus) {
        if self.status.is_none() {
            self.status = Some(status);
            self.cleanup();
        }
    }

    fn cleanup(&mut self) {
        // The init is reaped: forget its pid so libcontainer's delete sees
        // a stopped container and never signals a recycled pid.
        self.container.state.pid = None;
        if let Err(e) = self.container.delete(true) {
            tracing::warn!(container = %self.container.id(), "deleting container state: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.bundle_dir);
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
            let _ = kill(self.pid, Signal::SIGKILL);
            if self.wait().is_err() {
                // Someone else reaped it (ECHILD): clean up all the same.
                self.cleanup();
            }
        }
    }
}
