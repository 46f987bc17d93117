//! What a container is made with beyond `config.json`: its stdio and the
//! runtime's options, and how its processes end.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::cgroups;

/// The container's standard streams, owned by the caller until
/// [`create`](crate::create) (or an exec) hands them to the process (they
/// are closed in the calling process afterwards, so EOF propagates).
/// Ignored for fd 0-2 when `process.terminal` is true: the pty slave is
/// used instead.
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
    /// The caller's own reaper collects the container's exits (PID 1's
    /// `waitpid(-1)` loop) and reports them with
    /// [`ContainerProcess::exited`](crate::ContainerProcess::exited): this
    /// crate then never calls `waitpid` on the container's init, not even
    /// when a container is dropped unreaped (it is killed and cleaned up).
    pub reaped_by_caller: bool,
    /// The VM ends when this container's init ends (the host's `Shutdown`
    /// follows): [`ContainerProcess::exited`](crate::ContainerProcess::exited)
    /// then only kills what is left in the container's cgroup and leaves
    /// libcontainer's state, the bundle copy and the cgroup directory to
    /// go with the VM.
    pub ends_vm: bool,
}

impl RunOptions {
    /// Defaults for the guest: state under `/run/vmrun`, cgroup2 at
    /// `/sys/fs/cgroup`, pivot_root, no extra fds, reaped by this crate,
    /// torn down at its exit.
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            state_dir: PathBuf::from("/run/vmrun"),
            cgroup_root: PathBuf::from(cgroups::DEFAULT_CGROUP_ROOT),
            no_pivot: false,
            preserve_fds: 0,
            reaped_by_caller: false,
            ends_vm: false,
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
