//! The messages exchanged on the control connection.
//!
//! The host connects to the agent on [`CONTROL_PORT`]; every frame is an
//! [`Envelope`] carrying a request id chosen by the host, and the agent
//! answers each request with exactly one response carrying the same id.
//! Responses may come out of order: `Wait` is answered only when the
//! container process exits, while `Signal` requests are answered at once.
//!
//! Container stdio travels on separate vsock connections: the host listens
//! on the host ports named in [`StdioPorts`] (CID 2) before sending
//! `Create`, and the agent connects to each of them. EOF on the stdin
//! connection is forwarded to the process as EOF on its stdin.
//!
//! With `process.terminal: true` in the spec the process gets a pty in the
//! guest instead: the stdin connection feeds the pty master (EOF just stops
//! the input), the master's output travels on the stdout connection, and
//! the stderr connection is closed at once (a terminal has no separate
//! stderr, as with runc). `Resize` sets the pty's window size.

use serde::{Deserialize, Serialize};

/// Version of this protocol; bumped on any incompatible change.
///
/// History: 1 = Create/Start/Signal/Wait/Shutdown; 2 = adds `Resize`,
/// terminal (pty) stdio and `Create.no_pivot`; 3 = `Start` is answered with
/// `Started` (carrying the spec fields the guest ignored); 4 = the runc
/// lifecycle: `Create` makes the container's init (answered `Created`, it
/// waits for `Start`), `Exec` and an `exec_id` on `Signal`/`Resize`/`Wait`,
/// `Signal.all`, `Pause`/`Resume`, `Update`, `Stats`, `Processes`, `State`;
/// 5 = the host's world: `Create.shares` (virtio-fs tags the agent mounts
/// under [`SHARES_DIR`], where the host points bind-mount sources),
/// `RootfsSource::VirtioFs.path`, `Create.network` (interfaces the agent
/// moves into the container's network namespace and configures); 6 =
/// `Shutdown` is answered once the guest's file systems are unmounted and
/// synced, so the host may stop the VM from then on; 7 = `Create.ends_vm`.
pub const PROTOCOL_VERSION: u32 = 7;
/// Where the agent mounts each virtio-fs share named in `Create.shares`:
/// `SHARES_DIR/<tag>`. The host rewrites a bind mount's source to a path
/// below it.
pub const SHARES_DIR: &str = "/run/vmrun/shares";
/// Guest vsock port the agent listens on for the control connection.
pub const CONTROL_PORT: u32 = 1024;
/// Guest CID the VMM gives the guest.
pub const GUEST_CID: u64 = 3;
/// CID of the host (the kernel's `VMADDR_CID_HOST`, as the VMM's vsock
/// device uses it).
pub const HOST_CID: u64 = libc::VMADDR_CID_HOST as u64;

/// A message plus the id that ties a response to its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<T> {
    /// Request id; echoed in the response.
    pub id: u64,
    /// The message itself.
    pub body: T,
}

/// Host ports (CID 2) the agent connects to for the container's stdio;
/// `None` means "not connected" (/dev/null inside the guest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdioPorts {
    /// Port carrying the container's stdin (host → guest).
    pub stdin: Option<u32>,
    /// Port carrying the container's stdout (guest → host).
    pub stdout: Option<u32>,
    /// Port carrying the container's stderr (guest → host).
    pub stderr: Option<u32>,
}

/// Where the container's root filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum RootfsSource {
    /// A virtio-fs share, mounted by tag.
    VirtioFs {
        /// The virtio-fs tag.
        tag: String,
        /// The rootfs's directory within the share (relative, no `..`);
        /// absent: the share's root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
    /// A virtio-blk disk holding a filesystem.
    Block {
        /// Guest device path, e.g. `/dev/vda`.
        device: String,
        /// Filesystem type, e.g. `ext4`.
        fstype: String,
    },
}

/// Requests from the host to the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// First message on a connection: the host's protocol version.
    Hello {
        /// [`PROTOCOL_VERSION`] of the host.
        version: u32,
    },
    /// Prepare the container (rootfs, stdio) without starting its process.
    Create {
        /// Container id.
        id: String,
        /// The OCI runtime spec (`config.json`) as JSON.
        spec: serde_json::Value,
        /// Where the rootfs comes from.
        rootfs: RootfsSource,
        /// Host ports for stdio.
        stdio: StdioPorts,
        /// Jail the container with `MS_MOVE` + `chroot` instead of
        /// `pivot_root` (runc's `--no-pivot`); absent means false, and
        /// false is not sent (an agent from before the field still works).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        no_pivot: bool,
        /// virtio-fs tags to mount (once per VM) at `SHARES_DIR/<tag>`
        /// before the container is made: its rootfs and its bind-mount
        /// sources live there.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        shares: Vec<String>,
        /// Network interfaces (guest NICs, found by MAC) to move into the
        /// container's network namespace and configure there.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        network: Vec<NetInterface>,
        /// The VM ends when this container's init ends (the host's main
        /// container: `Shutdown` follows its exit). Its exit is then
        /// reported without first tearing down what the ending VM takes
        /// with it (libcontainer's state, the bundle copy, the cgroup
        /// directory); what is left in its cgroup is still killed first.
        /// Absent means false, and false is not sent.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        ends_vm: bool,
    },
    /// Start the created container's process (its init execs
    /// `process.args`); answered with `Started`.
    Start {
        /// Container id.
        id: String,
    },
    /// Send a signal to the container's init, to one exec'd process, or to
    /// every process of the container.
    Signal {
        /// Container id.
        id: String,
        /// Signal number.
        signal: i32,
        /// Every process in the container (runc's `kill --all`), not just
        /// its init; absent means false.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        all: bool,
        /// The exec'd process to signal instead of the init.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exec_id: Option<String>,
    },
    /// Sets the window size of the container's terminal (`process.terminal`)
    /// or of an exec'd process's terminal. Sizes are `u16` as in
    /// `struct winsize`; anything else is malformed.
    Resize {
        /// Container id.
        id: String,
        /// Rows (lines).
        rows: u16,
        /// Columns.
        cols: u16,
        /// The exec'd process whose terminal to resize instead of the init's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exec_id: Option<String>,
    },
    /// Answered (`Exited`) when the container's init, or the exec'd
    /// process `exec_id`, has exited.
    Wait {
        /// Container id.
        id: String,
        /// The exec'd process to wait for instead of the init.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exec_id: Option<String>,
    },
    /// Runs a new process in the running container (runc's `exec`): its
    /// namespaces, cgroup, root, and the given OCI `process` (args, env,
    /// cwd, user, capabilities, terminal, ...). Answered `ExecStarted` once
    /// it runs; its stdio uses `stdio` as `Create`'s does (a terminal
    /// process uses stdin/stdout only, as the init does).
    Exec {
        /// Container id.
        id: String,
        /// A name for this process, unique within the container while it
        /// runs (the host chooses it).
        exec_id: String,
        /// The OCI runtime-spec `process` object.
        process: serde_json::Value,
        /// Host ports for stdio.
        stdio: StdioPorts,
    },
    /// Freeze every process of the container (its cgroup's freezer).
    Pause {
        /// Container id.
        id: String,
    },
    /// Thaw a paused container.
    Resume {
        /// Container id.
        id: String,
    },
    /// Change the container's cgroup limits: an OCI `linux.resources`
    /// object; absent fields are left as they are.
    Update {
        /// Container id.
        id: String,
        /// The OCI runtime-spec `linux.resources` object.
        resources: serde_json::Value,
    },
    /// The container's resource usage, answered with `Stats`.
    Stats {
        /// Container id.
        id: String,
    },
    /// The container's processes (guest pids), answered with `Processes`.
    Processes {
        /// Container id.
        id: String,
    },
    /// The container's state as the agent sees it, answered with `State`.
    State {
        /// Container id.
        id: String,
    },
    /// Stop everything and power the guest off. The agent answers `Ok`
    /// once every container is gone and the guest's file systems are
    /// unmounted and synced: nothing in the guest needs the VM after that,
    /// and the host may stop it without waiting for the guest's reboot.
    Shutdown,
}

/// One network interface of a container: a guest NIC (virtio-net) that
/// the host plumbed to an interface of the container's host network
/// namespace, configured as that interface is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetInterface {
    /// The guest NIC's MAC address (`aa:bb:cc:dd:ee:ff`), which finds it.
    pub mac: String,
    /// Its name in the container (the host interface's, e.g. `eth0`).
    pub name: String,
    /// Its MTU.
    pub mtu: u16,
    /// Its addresses in CIDR form (`10.88.0.5/16`).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// Routes through it, in the order to add them.
    #[serde(default)]
    pub routes: Vec<NetRoute>,
}

/// A route of a container's interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetRoute {
    /// The destination in CIDR form (`0.0.0.0/0` for the default route).
    pub destination: String,
    /// The next hop, if the destination is not on the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

/// A container's state as the agent sees it (runc's status words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStatus {
    /// Created: the init exists and waits for `Start`.
    Created,
    /// The init runs.
    Running,
    /// Frozen by `Pause`.
    Paused,
    /// The init exited (or never started).
    Stopped,
}

/// One process of a container, as `Processes` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestProcess {
    /// Its pid in the guest (the agent's pid namespace).
    pub pid: i32,
    /// Its parent's pid in the guest.
    pub ppid: i32,
    /// Its real user id.
    pub uid: u32,
    /// Its command line (`/proc/PID/cmdline`, arguments joined by spaces),
    /// or its name when that is empty.
    pub cmd: String,
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ExitStatus {
    /// Normal exit with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// The exit status a runc caller expects: the code, or 128 + signal.
    pub fn as_shell_status(self) -> i32 {
        match self {
            Self::Code(code) => code,
            Self::Signal(sig) => 128_i32.saturating_add(sig),
        }
    }
}

/// Responses from the agent to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// Answer to `Hello`: the agent's protocol version.
    Hello {
        /// [`PROTOCOL_VERSION`] of the agent.
        version: u32,
    },
    /// The request succeeded.
    Ok,
    /// Answer to `Create`: the container's init exists and waits for `Start`.
    Created {
        /// The init's pid in the guest.
        pid: i32,
    },
    /// Answer to `Exec`: the process runs.
    ExecStarted {
        /// Its pid in the guest.
        pid: i32,
    },
    /// Answer to `Stats`: usage in the shape of runc's `events --stats`
    /// `data` object (`cpu`, `memory`, `pids`, `blkio`, ...).
    Stats {
        /// The stats object.
        stats: serde_json::Value,
    },
    /// Answer to `Processes`.
    Processes {
        /// The container's processes, init first when it still runs.
        processes: Vec<GuestProcess>,
    },
    /// Answer to `State`.
    State {
        /// The container's status.
        status: ContainerStatus,
        /// The init's pid in the guest (0 once stopped).
        pid: i32,
    },
    /// Answer to `Start`: the container's process runs.
    Started {
        /// Spec fields the guest ignored, one sentence each naming the
        /// field (e.g. `process.apparmorProfile: ...`), for the host to
        /// show its user.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// Answer to `Wait`: the process exited.
    Exited {
        /// How it ended.
        status: ExitStatus,
    },
    /// The request failed.
    Error {
        /// What went wrong, for humans.
        message: String,
    },
}
