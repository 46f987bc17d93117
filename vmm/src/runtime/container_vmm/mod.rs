//! A microVM with its containers: the VM, the agent session over vsock,
//! the VM's own ("main") container — the only one, or a pod's sandbox —
//! and the pod members added later ([`members`]), each with its status,
//! stdio and exec sessions ([`slot`]). The same object serves `vmrun run`
//! in the foreground and the daemon `vmrun create` leaves behind; verbs
//! reach it through its control socket ([`api_server`]).
//!
//! Life: [`ContainerVmm::boot`] builds and boots the VM, connects to the
//! agent and creates the main container (its init exists and waits;
//! stdio is connected) → [`ContainerVmm::start`] runs a process →
//! [`ContainerVmm::wait_exit`] returns the main container's status once
//! it exited, its output was delivered and the VM is gone.

pub mod api_server;
pub mod error;
pub mod execs;
pub mod members;
pub mod signal_routing;
pub mod slot;
pub mod vm_handle;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use vmrun_protocol::{
    ControlClient, ExitStatus, GuestProcess, Request, Response, StdioPorts, CONTROL_PORT,
};
use vmrun_virtio::{VsockHost, VsockListener};

use super::bundle::Bundle;
use super::console_tail::ConsoleTail;
use super::host_cgroup::{HostCgroup, VmOverhead};
use super::host_world::shared_tree::SharedTree;
use super::host_world::{HostWorld, NetworkRecord};
use super::state::Status;
use super::stdio::{relay_input, OutputRelay};
use super::terminal::{self, RawMode, HOST_TTY_FD};
use crate::machine::builder::MachineBuilder;
use crate::timings::{Phase, Timings};
pub use error::{ContainerRunError, STDIO_ACCEPT_TIMEOUT};
use slot::{InitOutput, Slot};
use vm_handle::VmHandle;

/// Host vsock ports the agent connects to for the main container's stdin,
/// stdout, stderr.
pub const STDIO_PORTS: [u32; 3] = [2000, 2001, 2002];
/// Host vsock ports for the stdio of members and exec sessions are taken,
/// three at a time, from here...
const FIRST_DYNAMIC_PORT: u32 = 3000;
/// ...up to here (then from the start again).
const LAST_DYNAMIC_PORT: u32 = 60_000;
/// How long to wait for stdout/stderr to end after a process exited.
pub const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the guest gets to power off after `Shutdown`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request failure waits for the VM to be seen ending (the
/// control connection dies with the guest, a moment before the vCPU
/// thread reports why).
const VM_END_GRACE: Duration = Duration::from_secs(2);

/// Where the main container's init gets its stdio on the host.
#[derive(Debug)]
pub enum InitStdio {
    /// This process's fds 0-2 (the caller's). With `process.terminal`,
    /// fd 0's terminal, if it is one, is put in raw mode while the
    /// container runs and its size follows SIGWINCH.
    Inherited,
    /// The slave of a host pty whose master went to `--console-socket`:
    /// the terminal's input and output; its size follows SIGWINCH (the
    /// slave is this process's controlling terminal).
    Pty(OwnedFd),
}

/// Everything needed to boot a VM and its main container.
#[derive(Debug)]
pub struct VmmOptions {
    /// Container id.
    pub id: String,
    /// The validated bundle.
    pub bundle: Bundle,
    /// The VM: its shape, kernel, initramfs with the agent, command line.
    pub machine: MachineBuilder,
    /// How long the agent may take to answer on its control port.
    pub agent_timeout: Duration,
    /// Where the guest console goes (kept in memory for error reports).
    pub console: ConsoleTail,
    /// Jail with `MS_MOVE` + `chroot` instead of `pivot_root`.
    pub no_pivot: bool,
    /// The init's stdio.
    pub stdio: InitStdio,
    /// The host cgroup the VMM joined (limits follow `update`), with the
    /// VM's own cost added to every limit.
    pub host_cgroup: Option<(HostCgroup, VmOverhead)>,
    /// The container's state directory (the VM's share is made in it).
    pub state_dir: PathBuf,
}

/// A container's stdio on the host: what its input comes from and where
/// its output goes.
pub struct HostStdio {
    /// Copied into the container's stdin.
    pub stdin: Box<dyn Read + Send>,
    /// Receives its stdout.
    pub stdout: Box<dyn Write + Send>,
    /// Receives its stderr.
    pub stderr: Box<dyn Write + Send>,
}

impl HostStdio {
    /// Descriptors received from a client (stdin, stdout, stderr).
    pub fn from_fds([stdin, stdout, stderr]: [OwnedFd; 3]) -> Self {
        Self {
            stdin: Box::new(File::from(stdin)),
            stdout: Box::new(File::from(stdout)),
            stderr: Box::new(File::from(stderr)),
        }
    }
}

/// A booted VM and its containers (see the module docs).
#[derive(Debug)]
pub struct ContainerVmm {
    main: Arc<Slot>,
    members: Mutex<HashMap<String, Arc<Slot>>>,
    vm: VmHandle,
    host: VsockHost,
    client: Arc<ControlClient>,
    raw_mode: Mutex<Option<RawMode>>,
    next_ports: AtomicU64,
    tree: SharedTree,
    host_cgroup: std::sync::OnceLock<(HostCgroup, VmOverhead)>,
    network_record: Option<NetworkRecord>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Connects to the agent's control port, retrying while it is not up yet.
fn connect_agent(
    vm: &VmHandle,
    host: &VsockHost,
    timeout: Duration,
    timings: &Timings,
) -> Result<ControlClient, ContainerRunError> {
    let deadline = Instant::now() + timeout;
    let mut last_try: Option<Instant> = None;
    let mut pause = CONNECT_RETRY_READY;
    loop {
        if vm.ended() {
            let why = match vm.join(false) {
                Ok(exit) => format!("it powered off: {exit:?}"),
                Err(e) => crate::error_chain(&e),
            };
            return Err(ContainerRunError::VmEndedEarly(why));
        }
        if Instant::now() >= deadline {
            return Err(ContainerRunError::AgentTimeout(timeout));
        }
        // Every try before the agent listens is a packet and an interrupt
        // the booting guest handles for nothing: wait for its ready marker
        // (the agent listens before it writes it), trying now and then only in
        // case a guest never writes it.
        let ready = timings.wait_for(Phase::AgentReady, CONNECT_POLL);
        if !ready && last_try.is_some_and(|at| at.elapsed() < CONNECT_RETRY_UNREADY) {
            continue;
        }
        last_try = Some(Instant::now());
        match host.connect_timeout(CONTROL_PORT, Duration::from_secs(1)) {
            Ok(stream) => {
                return ControlClient::connect(stream)
                    .map_err(|e| ContainerRunError::Request("the version handshake", e));
            }
            Err(e) => {
                if ready {
                    tracing::debug!("{REFUSED_AFTER_READY}: {e}");
                    // The agent listens before it writes the marker; a
                    // guest that wrote it and does not listen is tried
                    // less and less.
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(CONNECT_RETRY_READY_MAX);
                } else {
                    tracing::trace!("agent not answering yet: {e}");
                }
            }
        }
    }
}

/// Logged (debug) when the agent refuses the control connection after
/// its ready marker: it listens before it writes the marker, so this is a
/// guest that is not (yet) serving.
pub const REFUSED_AFTER_READY: &str = "the agent refused the connection after its ready marker";

/// How long [`connect_agent`] waits for the ready marker between checks
/// that the VM still runs.
const CONNECT_POLL: Duration = Duration::from_millis(50);
/// How often [`connect_agent`] tries the control port before the ready
/// marker.
const CONNECT_RETRY_UNREADY: Duration = Duration::from_millis(500);
/// The pause after the first failed try once the marker is there (the
/// agent is about to listen); it doubles after each further one, up to
/// [`CONNECT_RETRY_READY_MAX`].
const CONNECT_RETRY_READY: Duration = Duration::from_millis(5);
/// The longest pause between tries once the marker is there.
const CONNECT_RETRY_READY_MAX: Duration = Duration::from_millis(50);

/// Accepts the agent's connection on a stdio port.
fn accept(listener: &VsockListener, name: &'static str) -> Result<UnixStream, ContainerRunError> {
    listener
        .accept_timeout(STDIO_ACCEPT_TIMEOUT)
        .ok_or(ContainerRunError::StdioTimeout(name))
}

/// Listens on three host ports for a process's stdio.
fn listen_stdio(
    host: &VsockHost,
    ports: [u32; 3],
) -> Result<[VsockListener; 3], ContainerRunError> {
    let listen = |port| {
        host.listen(port)
            .map_err(|e| ContainerRunError::Io("listen on a vsock stdio port", e))
    };
    Ok([listen(ports[0])?, listen(ports[1])?, listen(ports[2])?])
}

/// The agent-side stdio ports as the protocol names them.
fn stdio_ports([stdin, stdout, stderr]: [u32; 3]) -> StdioPorts {
    StdioPorts {
        stdin: Some(stdin),
        stdout: Some(stdout),
        stderr: Some(stderr),
    }
}

/// Accepts the agent's three stdio connections on `listeners` (then stops
/// listening) and relays them to `stdio`.
fn connect_stdio(
    host: &VsockHost,
    ports: [u32; 3],
    listeners: [VsockListener; 3],
    stdio: HostStdio,
) -> Result<InitOutput, ContainerRunError> {
    let [stdin_l, stdout_l, stderr_l] = listeners;
    let streams = (|| {
        Ok::<_, ContainerRunError>((
            accept(&stdin_l, "stdin")?,
            accept(&stdout_l, "stdout")?,
            accept(&stderr_l, "stderr")?,
        ))
    })();
    for port in ports {
        host.unlisten(port);
    }
    let (stdin, stdout, stderr) = streams?;
    let io = |what| move |e| ContainerRunError::Io(what, e);
    relay_input("stdin", stdio.stdin, stdin).map_err(io("start the stdin relay"))?;
    Ok(InitOutput {
        stdout: OutputRelay::start("stdout", stdout, stdio.stdout)
            .map_err(io("start the stdout relay"))?,
        stderr: OutputRelay::start("stderr", stderr, stdio.stderr)
            .map_err(io("start the stderr relay"))?,
    })
}

/// Duplicates `fd` into a `File` (for a relay end).
fn dup_file(fd: &impl AsRawFd) -> Result<File, ContainerRunError> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) only creates a new descriptor.
    let new = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if new < 0 {
        return Err(ContainerRunError::Io(
            "duplicate a stdio descriptor",
            std::io::Error::last_os_error(),
        ));
    }
    // SAFETY: `new` was just created for us and is owned by nobody else.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(new) })
}

fn state_error(message: impl Into<String>) -> ContainerRunError {
    ContainerRunError::State(message.into())
}

/// This process's pid.
fn own_pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

impl ContainerVmm {
    /// Boots the VM and creates its main container (see the module docs).
    /// On error the VM is gone and the network plumbing undone; on success
    /// the plumbing is the caller's to undo ([`ContainerVmm::network_record`]).
    pub fn boot(options: VmmOptions, timings: Arc<Timings>) -> Result<Self, ContainerRunError> {
        let VmmOptions {
            id,
            bundle,
            machine,
            agent_timeout,
            console,
            no_pivot,
            stdio,
            host_cgroup,
            state_dir,
        } = options;
        let tty = terminal::spec_wants_terminal(&bundle.spec);
        let world = HostWorld::prepare(&id, &bundle, &state_dir)?;
        // Declared before the VM: on any error below the VM is stopped,
        // then the network plumbing undone; kept once the container exists.
        let plumbing = world.plumbing;
        let (vm, host) = VmHandle::start(machine, world.devices, &console, Arc::clone(&timings))?;
        let client = Arc::new(connect_agent(&vm, &host, agent_timeout, &timings)?);
        let listeners = listen_stdio(&host, STDIO_PORTS)?;
        let mut spec = world.spec;
        let resize_source = match &stdio {
            InitStdio::Inherited if tty && terminal::is_terminal(HOST_TTY_FD) => Some(HOST_TTY_FD),
            InitStdio::Pty(slave) if tty => Some(slave.as_raw_fd()),
            _ => None,
        };
        if let Some(size) = resize_source.and_then(terminal::window_size) {
            // The caller's terminal size wins over the bundle's, from the
            // process's first instruction on.
            if size.0 > 0 && size.1 > 0 {
                terminal::set_console_size(&mut spec, size);
            }
        }
        crate::runtime::hooks::remove_from_guest_spec(&mut spec);
        let create = Request::Create {
            id: id.clone(),
            spec,
            rootfs: world.rootfs,
            stdio: stdio_ports(STDIO_PORTS),
            no_pivot,
            shares: world.shares,
            network: world.network,
            ends_vm: true,
        };
        let guest_pid = match client.call(create) {
            Ok(Response::Created { pid }) => pid,
            Ok(other) => return Err(ContainerRunError::Unexpected("Create", other)),
            Err(e) => {
                return Err(vm.failure_or(ContainerRunError::Request("Create", e), VM_END_GRACE))
            }
        };
        timings.record(Phase::ContainerCreated);
        tracing::debug!(guest_pid, "container created");
        let (host_stdio, pty) = match stdio {
            InitStdio::Inherited => (
                HostStdio {
                    stdin: Box::new(std::io::stdin()),
                    stdout: Box::new(std::io::stdout()),
                    stderr: Box::new(std::io::stderr()),
                },
                None,
            ),
            InitStdio::Pty(slave) => (
                HostStdio {
                    stdin: Box::new(dup_file(&slave)?),
                    stdout: Box::new(dup_file(&slave)?),
                    stderr: Box::new(dup_file(&slave)?),
                },
                Some(slave),
            ),
        };
        let output = connect_stdio(&host, STDIO_PORTS, listeners, host_stdio)?;
        let main = Slot::created(&id, output, resize_source, pty, own_pid(), guest_pid);
        Ok(Self {
            main: Arc::new(main),
            members: Mutex::new(HashMap::new()),
            vm,
            host,
            client,
            raw_mode: Mutex::new(None),
            next_ports: AtomicU64::new(0),
            tree: world.tree,
            host_cgroup: host_cgroup.map(OnceLock::from).unwrap_or_default(),
            network_record: plumbing.disarm(),
        })
    }

    /// The main container's id.
    pub fn id(&self) -> &str {
        &self.main.id
    }

    /// The main container.
    pub fn main(&self) -> &Arc<Slot> {
        &self.main
    }

    /// What `delete` must undo of the network plumbing, if anything.
    pub fn network_record(&self) -> Option<&NetworkRecord> {
        self.network_record.as_ref()
    }

    /// The container `id` (`None`: the main one); "does not exist" otherwise.
    pub fn slot(&self, id: Option<&str>) -> Result<Arc<Slot>, ContainerRunError> {
        match id {
            None => Ok(Arc::clone(&self.main)),
            Some(id) if id == self.main.id => Ok(Arc::clone(&self.main)),
            Some(id) => lock(&self.members)
                .get(id)
                .cloned()
                .ok_or_else(|| state_error(format!("container {id} does not exist"))),
        }
    }

    /// Three fresh host vsock ports for a process's stdio.
    fn take_ports(&self) -> [u32; 3] {
        let span = u64::from((LAST_DYNAMIC_PORT - FIRST_DYNAMIC_PORT) / 3);
        let n = self.next_ports.fetch_add(1, Ordering::Relaxed) % span;
        let first = FIRST_DYNAMIC_PORT + 3 * u32::try_from(n).unwrap_or(0);
        [first, first + 1, first + 2]
    }

    /// Sends `request` to the agent; when it fails because the microVM
    /// went down, the error is the VM's own reason.
    fn call(&self, what: &'static str, request: Request) -> Result<Response, ContainerRunError> {
        self.client.call(request).map_err(|e| {
            self.vm
                .failure_or(ContainerRunError::Request(what, e), VM_END_GRACE)
        })
    }

    /// Sends `request`, expecting `Ok`.
    fn call_ok(&self, what: &'static str, request: Request) -> Result<(), ContainerRunError> {
        match self.call(what, request)? {
            Response::Ok => Ok(()),
            Response::Error { message } => Err(state_error(message)),
            other => Err(ContainerRunError::Unexpected(what, other)),
        }
    }

    /// Runs the created container's process (runc's `start`); returns the
    /// spec fields the guest ignored.
    pub fn start(&self, slot: &Slot) -> Result<Vec<String>, ContainerRunError> {
        let mut status = lock(&slot.status);
        match *status {
            Status::Created => {}
            Status::Stopped => {
                return Err(state_error("cannot start a container that has stopped"))
            }
            Status::Running => {
                return Err(state_error("cannot start an already running container"))
            }
            Status::Paused => {
                return Err(state_error("cannot start a container in the paused state"))
            }
        }
        if slot.resize_source == Some(HOST_TTY_FD) {
            // Raw mode only for a terminal container on a host terminal;
            // restored when the container exits (or by the signal path).
            let raw = RawMode::enter(HOST_TTY_FD)
                .map_err(|e| ContainerRunError::Io("put the terminal in raw mode", e))?;
            *lock(&self.raw_mode) = raw;
        }
        let request = Request::Start {
            id: slot.id.clone(),
        };
        let warnings = match self.call("Start", request) {
            Ok(Response::Started { warnings }) => warnings,
            Ok(Response::Error { message }) => {
                lock(&self.raw_mode).take();
                return Err(state_error(message));
            }
            Ok(other) => {
                lock(&self.raw_mode).take();
                return Err(ContainerRunError::Unexpected("Start", other));
            }
            Err(e) => {
                lock(&self.raw_mode).take();
                return Err(e);
            }
        };
        *status = Status::Running;
        slot.mark_started();
        drop(status);
        // A resize between Create and Start found no process yet.
        self.resize(slot);
        Ok(warnings)
    }

    /// Sends `signal` to the container's init (or, with `all`, to every
    /// process of the container).
    pub fn kill(&self, slot: &Slot, signal: i32, all: bool) -> Result<(), ContainerRunError> {
        if slot.status() == Status::Stopped {
            return Err(state_error("container not running"));
        }
        let request = Request::Signal {
            id: slot.id.clone(),
            signal,
            all,
            exec_id: None,
        };
        self.call_ok("Signal", request)
    }

    /// Sets the container terminal's size from its host terminal's (after
    /// SIGWINCH); nothing without a terminal.
    pub fn resize(&self, slot: &Slot) {
        let Some((rows, cols)) = slot.resize_source.and_then(terminal::window_size) else {
            return;
        };
        if slot.status() != Status::Running || rows == 0 || cols == 0 {
            return;
        }
        let request = Request::Resize {
            id: slot.id.clone(),
            rows,
            cols,
            exec_id: None,
        };
        if let Err(e) = self.client.call(request) {
            tracing::debug!("cannot resize the container's terminal: {e}");
        }
    }

    /// Freezes the container: a running one, or (as runc allows) a
    /// created one, which `start` then refuses until it is resumed.
    pub fn pause(&self, slot: &Slot) -> Result<(), ContainerRunError> {
        let mut status = lock(&slot.status);
        if !matches!(*status, Status::Running | Status::Created) {
            return Err(state_error("container not running"));
        }
        self.call_ok(
            "Pause",
            Request::Pause {
                id: slot.id.clone(),
            },
        )?;
        *status = Status::Paused;
        Ok(())
    }

    /// Thaws the container: running again, or created again if it was
    /// paused before it was started.
    pub fn resume(&self, slot: &Slot) -> Result<(), ContainerRunError> {
        let mut status = lock(&slot.status);
        if *status != Status::Paused {
            return Err(state_error("container not paused"));
        }
        self.call_ok(
            "Resume",
            Request::Resume {
                id: slot.id.clone(),
            },
        )?;
        *status = slot.resumed_status();
        Ok(())
    }

    /// Applies new cgroup limits in the guest, then (for the main
    /// container) to the VMM's host cgroup plus the VM's own cost.
    pub fn update(&self, slot: &Slot, resources: Value) -> Result<(), ContainerRunError> {
        if slot.status() == Status::Stopped {
            return Err(state_error("container not running"));
        }
        self.call_ok(
            "Update",
            Request::Update {
                id: slot.id.clone(),
                resources: resources.clone(),
            },
        )?;
        if std::ptr::eq(slot, &*self.main) {
            if let Some((cgroup, overhead)) = self.host_cgroup.get() {
                cgroup
                    .update(&resources, *overhead)
                    .map_err(|e| state_error(crate::error_chain(&e)))?;
            }
        }
        Ok(())
    }

    /// Records the host cgroup the VMM joined after it booted (the daemon
    /// joins once its devices are open, see `runtime::daemon`), for
    /// `update`. A second call is ignored.
    pub fn joined_host_cgroup(&self, cgroup: HostCgroup, overhead: VmOverhead) {
        let _ = self.host_cgroup.set((cgroup, overhead));
    }

    /// Resource usage (runc's `events --stats` data).
    pub fn stats(&self, slot: &Slot) -> Result<Value, ContainerRunError> {
        if slot.status() == Status::Stopped {
            return Err(state_error("container not running"));
        }
        let request = Request::Stats {
            id: slot.id.clone(),
        };
        match self.call("Stats", request)? {
            Response::Stats { stats } => Ok(stats),
            Response::Error { message } => Err(state_error(message)),
            other => Err(ContainerRunError::Unexpected("Stats", other)),
        }
    }

    /// The container's processes in the guest.
    pub fn guest_processes(&self, slot: &Slot) -> Result<Vec<GuestProcess>, ContainerRunError> {
        if slot.status() == Status::Stopped {
            return Ok(Vec::new());
        }
        let request = Request::Processes {
            id: slot.id.clone(),
        };
        match self.call("Processes", request)? {
            Response::Processes { processes } => Ok(processes),
            Response::Error { message } => Err(state_error(message)),
            other => Err(ContainerRunError::Unexpected("Processes", other)),
        }
    }

    /// Waits for the agent's report that `slot`'s init exited, then marks
    /// it stopped once its output was delivered.
    fn wait_for(&self, slot: &Slot) -> Result<ExitStatus, ContainerRunError> {
        let wait = Request::Wait {
            id: slot.id.clone(),
            exec_id: None,
        };
        let outcome = match self.call("Wait", wait) {
            Ok(Response::Exited { status }) => Ok(status),
            Ok(Response::Error { message }) => Err(state_error(message)),
            Ok(other) => Err(ContainerRunError::Unexpected("Wait", other)),
            Err(e) => Err(e),
        };
        slot.stopped();
        outcome
    }

    /// Waits until the main container's init exited, its output was
    /// delivered and the VM is gone; returns how the init ended.
    pub fn wait_exit(&self) -> Result<ExitStatus, ContainerRunError> {
        // The set-up is done (the container is created, or running for
        // `vmrun run`): its freed heap need not stay resident while the
        // VMM waits for the container, however long it runs.
        crate::machine::heap_trim::release_free_heap();
        let outcome = self.wait_for(&self.main);
        for member in lock(&self.members).values() {
            *lock(&member.status) = Status::Stopped;
        }
        lock(&self.raw_mode).take();
        let status = outcome?;
        tracing::debug!(?status, "container exited");
        self.shutdown();
        Ok(status)
    }

    /// Ends the VM: asks the agent to stop everything, then stops the VM
    /// once it has answered (its containers are gone and its file systems
    /// synced: the guest kernel's own reboot would only add time); without
    /// an answer, waits for the guest to power off by itself.
    pub fn shutdown(&self) {
        let answered = !self.vm.ended()
            && match self.client.call(Request::Shutdown) {
                Ok(Response::Ok) => true,
                Ok(other) => {
                    tracing::debug!("unexpected answer to Shutdown: {other:?}");
                    false
                }
                // The agent may power off before its answer gets out.
                Err(e) => {
                    tracing::debug!("Shutdown: {e}");
                    false
                }
            };
        let ended = if answered {
            self.vm.join(true)
        } else {
            self.vm.join_within(SHUTDOWN_TIMEOUT)
        };
        match ended {
            Ok(exit) => tracing::debug!(?exit, "VM ended"),
            Err(e) => tracing::warn!("the microVM failed: {}", crate::error_chain(&e)),
        }
    }

    /// Restores the host terminal (for exit paths that do not unwind).
    pub fn restore_terminal(&self) {
        lock(&self.raw_mode).take();
        terminal::restore_host_terminal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::config::{BootConfig, MachineConfig};
    use crate::runtime::host_world::test_support::{
        bundle_in, can_plumb, in_private_mount_namespace, TestNetns,
    };

    #[test]
    fn a_boot_that_fails_after_plumbing_leaves_no_qdisc() {
        if !can_plumb("a_boot_that_fails_after_plumbing_leaves_no_qdisc") {
            return;
        }
        let net = TestNetns::new();
        let dir = tempfile::tempdir().unwrap();
        let bundle = bundle_in(dir.path(), &net.path());
        // Not a kernel: the VM cannot be built, after the host's world
        // (share, taps, qdiscs) was prepared. No guest ever runs.
        let kernel = dir.path().join("not-a-kernel");
        std::fs::write(&kernel, vec![0xa5u8; 64 * 1024]).unwrap();
        let machine = MachineBuilder::for_boot(BootConfig {
            machine: MachineConfig {
                vcpus: 1,
                memory_mib: 64,
                irqchip: true,
            },
            kernel: kernel.clone(),
            initrd: Some(kernel),
            cmdline: String::new(),
        })
        .unwrap();
        let options = VmmOptions {
            id: "c1".into(),
            bundle,
            machine,
            agent_timeout: Duration::from_secs(1),
            console: ConsoleTail::default(),
            no_pivot: false,
            stdio: InitStdio::Inherited,
            host_cgroup: None,
            state_dir: dir.path().join("state"),
        };
        let failed = in_private_mount_namespace(move || {
            ContainerVmm::boot(options, Arc::new(Timings::default())).map(drop)
        });
        let err = failed.unwrap_err();
        assert!(matches!(err, ContainerRunError::Machine(_)), "{err}");
        assert!(!net.has_ingress(), "eth0 {:?}", net.qdiscs("eth0"));
        let links = net.links_once_gone("vmtap");
        assert!(!links.iter().any(|l| l.starts_with("vmtap")), "{links:?}");
    }
}
