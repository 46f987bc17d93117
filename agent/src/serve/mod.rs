//! `vmrun_action=serve`: the agent serves the host over vsock.
//!
//! The host connects to [`CONTROL_PORT`]; after the version handshake it
//! drives containers through runc's lifecycle with the requests of
//! `vmrun_protocol::messages` (protocol version 5). A process's stdio are
//! vsock connections the agent opens to the host's ports, handed to the
//! process as its fds 0-2 (so EOF on the stdin connection is EOF on the
//! process's stdin).
//!
//! Message flow (the host side's duties in brackets):
//!
//! 1. Boot with `vmrun_action=serve`; once PID-1 set-up is done the agent
//!    listens on vsock port [`CONTROL_PORT`] (any CID), then writes its
//!    ready marker. [The host connects to guest CID 3 / port 1024 once the
//!    marker is there, retrying while it gets resets.]
//! 2. `Hello{version}` → `Hello{version}`; on a mismatch the agent answers
//!    `Error` and ends the VM.
//! 3. [The host listens on its stdio ports (CID 2) first, then sends]
//!    `Create{id, spec, rootfs, stdio, shares, network}`: the agent
//!    validates the spec and `network`, mounts each share not mounted yet
//!    at `SHARES_DIR/<tag>` (see [`shares`]), finds each NIC by MAC,
//!    mounts the rootfs (read-only when `root.readonly`; a directory within
//!    a share as a bind mount of it), connects to each stdio port (`None`
//!    → /dev/null) and creates the container: its init exists in the
//!    container's namespaces and cgroup with every mount made and the
//!    stdio attached, waiting; then the NICs move into its network
//!    namespace and are configured (see [`network`]) → `Created{pid}`, or
//!    `Error` naming the field (spec, mount, namespace and network errors
//!    surface here, and leave no container behind).
//!    With `process.terminal: true` the process gets a pty instead: stdin
//!    feeds the master, the master's output goes to stdout, the stderr
//!    connection is closed at once (see [`tty`]).
//! 4. `Start{id}` → the init execs `process.args` (boot-timer marker 3) →
//!    `Started{warnings}`.
//! 5. `Wait{id}` → answered with `Exited{status}` when the init ends (for a
//!    terminal, after the pty's last output reached stdout; any number of
//!    waits; later ones answer at once), once the container is torn down
//!    (its cgroup, libcontainer's state); with `Create.ends_vm` once what
//!    is left in its cgroup is killed, the rest going with the VM.
//!    `Signal{id, signal}` → `Ok` at once (also for a created container);
//!    `all` signals every process of the container's cgroup.
//!    `Resize{id, rows, cols}` → `Ok` (terminal only, once started).
//!    `State{id}` → `State{status, pid}` (`created|running|paused|stopped`;
//!    pid 0 once stopped).
//! 6. `Exec{id, exec_id, process, stdio}` (running, not paused) → the OCI
//!    `process` runs in the container (see [`exec`]) → `ExecStarted{pid}`;
//!    `Signal`/`Resize`/`Wait` with its `exec_id` address it. At most
//!    [`exec_table::MAX_RUNNING_EXECS`] per container.
//! 7. `Pause`/`Resume` → `Ok`; `Update{id, resources}` → `Ok` (absent
//!    fields untouched, unsupported ones refused by name);
//!    `Stats{id}` → `Stats{stats}` (runc's `events --stats` data);
//!    `Processes{id}` → `Processes{processes}` (see [`cgroup_ops`]).
//! 8. `Shutdown` → every container and exec'd process killed, rootfs
//!    unmounted, file systems synced → `Ok` (from then on the host may stop
//!    the VM itself); then the agent reboots (the VMM sees the i8042 reset:
//!    exit 0). If the control connection drops instead, the same happens
//!    without the `Ok`.
//!
//! A frame that is not valid JSON or not a valid request gets an `Error`
//! (with the request's id when it could be read, else 0) and the loop goes
//! on; a bad length or truncated frame closes the connection (which ends the
//! VM as in 8).
//!
//! - [`transport`]: the control socket and stdio connectors (vsock in the
//!   guest, unix sockets in host tests);
//! - [`rootfs`]: mounting the rootfs (virtio-fs, a share's directory or a
//!   block device); [`shares`]: the virtio-fs shares of `Create.shares`;
//! - [`network`]: moving and configuring the container's NICs;
//! - [`control`]: the request loop and dispatch; [`responder`]: writing
//!   responses, pending `Wait`s;
//! - [`lifecycle`], [`exec`], [`cgroup_ops`]: the request handlers;
//! - [`container`]: one container's states and exit; [`exec_table`]: its
//!   exec'd processes; [`exit_cell`]: an outcome `Wait`s block on;
//! - [`launch`]: the thread containers are cloned from; [`stdio`]: a
//!   process's stdio; [`tty`]: a pty master relayed over stdio.
//!
//! The same [`control::serve`] runs in the guest and in host tests; only
//! the [`ServeEnv`] differs.

pub mod cgroup_ops;
pub mod container;
pub mod control;
pub mod exec;
pub mod exec_table;
pub mod exit_cell;
pub mod launch;
pub mod lifecycle;
pub mod network;
pub mod readahead;
pub mod responder;
pub mod rootfs;
pub mod shares;
pub mod stdio;
pub mod transport;
pub mod tty;

use std::convert::Infallible;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use anyhow::{Context, Result};
use vmrun_isolation::RunOptions;
use vmrun_protocol::{CONTROL_PORT, SHARES_DIR};

use crate::config::Action;
use crate::init::reaper::Reaper;
use crate::shutdown;
use control::{serve, ServeEnd};
pub use network::GuestNetns;
use rootfs::{GuestRootfs, RootfsProvider, GUEST_ROOTFS_BASE};
use shares::{Shares, VirtioFsMounter};
pub use transport::listen_vsock;
use transport::{accept_vsock, StdioConnector, VsockConnector};

/// What the serve loop works with.
pub struct ServeEnv {
    /// Makes rootfs sources available as directories.
    pub rootfs: Box<dyn RootfsProvider>,
    /// The virtio-fs shares of `Create.shares` (the rootfs provider may
    /// share them too).
    pub shares: Arc<Shares>,
    /// The network namespace the guest's NICs are found in (the guest's
    /// root one; host tests pass their own).
    pub nic_netns: OwnedFd,
    /// The guest's root network namespace, for the first container asking
    /// for a fresh one (built from `nic_netns`: [`GuestNetns::new`]).
    pub guest_netns: GuestNetns,
    /// Connects stdio ports.
    pub stdio: Box<dyn StdioConnector>,
    /// Reports container exits (PID 1 reaps every child).
    pub reaper: Reaper,
    /// Template for `vmrun_isolation::create` (the id is filled in per
    /// container; `reaped_by_caller` is always set).
    pub run_options: RunOptions,
}

impl std::fmt::Debug for ServeEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeEnv")
            .field("shares", &self.shares)
            .field("nic_netns", &self.nic_netns)
            .field("run_options", &self.run_options)
            .finish_non_exhaustive()
    }
}

/// Is `/` the initramfs (`rootfs`)? `pivot_root` cannot move it, so the
/// container runtime must use `MS_MOVE` + `chroot` (runc's `--no-pivot`).
pub fn root_is_initramfs(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let mut halves = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            return false;
        };
        left.split(' ').nth(4) == Some("/") && right.split(' ').next() == Some("rootfs")
    })
}

/// The guest's serve: accept the host's control connection on `control`
/// (listening on [`CONTROL_PORT`], see [`listen_vsock`]), serve it, then
/// end the VM (also when the connection drops: no orphaned VMs).
pub fn run_in_guest(reaper: Reaper, control: OwnedFd) -> Result<Infallible> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let mut run_options = RunOptions::new("");
    run_options.no_pivot = root_is_initramfs(&mountinfo);
    let shares = Arc::new(Shares::new(SHARES_DIR, Box::new(VirtioFsMounter)));
    let nic_netns = std::fs::File::open("/proc/self/ns/net")
        .context("opening the guest's network namespace")?;
    let nic_netns: OwnedFd = nic_netns.into();
    let env = ServeEnv {
        rootfs: Box::new(GuestRootfs::new(GUEST_ROOTFS_BASE, Arc::clone(&shares))),
        shares,
        guest_netns: GuestNetns::new(nic_netns.as_fd()),
        nic_netns,
        stdio: Box::new(VsockConnector),
        reaper,
        run_options,
    };
    tracing::info!("serving: waiting for the host on vsock port {CONTROL_PORT}");
    let stream = accept_vsock(&control)?;
    match serve(stream, &env)? {
        ServeEnd::Shutdown => {}
        ServeEnd::ConnectionLost => {
            tracing::warn!("the control connection is gone: containers killed, ending the VM")
        }
    }
    shutdown::end_vm(Action::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_an_initramfs_root() {
        let initramfs = "1 1 0:2 / / rw - rootfs rootfs rw,size=1024k\n\
                         14 1 0:13 / /proc rw,nosuid - proc proc rw\n";
        assert!(root_is_initramfs(initramfs));
        let disk = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    23 22 0:5 / /dev rw - devtmpfs udev rw\n";
        assert!(!root_is_initramfs(disk));
        assert!(!root_is_initramfs("garbage\n\n - \n"));
    }
}
