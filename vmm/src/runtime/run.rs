//! One container in one microVM: build the machine with vsock + rootfs
//! devices, boot the agent with `vmrun_action=serve`, then
//! handshake → Create → Start → Wait → Shutdown over the control connection
//! while stdio and signals are relayed.

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vmrun_protocol::{
    ControlClient, ExitStatus, ProtocolError, Request, Response, RootfsSource, StdioPorts,
    CONTROL_PORT, GUEST_CID,
};
use vmrun_virtio::block::BlockError;
use vmrun_virtio::fs::FsError;
use vmrun_virtio::{Block, Fs, VirtioDevice, Vsock, VsockHost, VsockListener};

use super::bundle::{Bundle, HostRootfs};
use super::console_tail::ConsoleTail;
use super::signals::{SignalForwarder, RESIZE};
use super::stdio::{relay_stdin, OutputRelay};
use super::terminal::{self, RawMode, HOST_TTY_FD};
use crate::exit::{ExitState, VmExit};
use crate::machine::builder::MachineBuilder;
use crate::machine::{CleanExit, MachineError, RunError};
use crate::timings::Timings;

/// The virtio-fs tag of the container's root filesystem.
pub const ROOTFS_TAG: &str = "rootfs";
/// The guest device of a virtio-blk rootfs (the only disk).
pub const ROOTFS_BLOCK_DEVICE: &str = "/dev/vda";
/// Host vsock ports the agent connects to for stdin, stdout, stderr.
pub const STDIO_PORTS: [u32; 3] = [2000, 2001, 2002];
/// The kernel command-line word that makes the agent serve the host.
pub const SERVE_CMDLINE_WORD: &str = "vmrun_action=serve";
/// How long to wait for the agent's stdio connections after `Create`.
const STDIO_ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long to wait for stdout/stderr to end after the process exited.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the guest gets to power off after `Shutdown`.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything needed to run one container.
#[derive(Debug)]
pub struct RunConfig {
    /// Container id.
    pub id: String,
    /// The validated bundle.
    pub bundle: Bundle,
    /// The VM: its shape, kernel, initramfs with the agent as /init, and
    /// base command line (`vmrun_action=serve` and the devices are added).
    pub machine: MachineBuilder,
    /// How long the agent may take to answer on its control port.
    pub agent_timeout: Duration,
    /// Where the guest console goes (kept in memory for error reports).
    pub console: ConsoleTail,
    /// Jail the container with `MS_MOVE` + `chroot` instead of
    /// `pivot_root` (runc's `--no-pivot`).
    pub no_pivot: bool,
}

/// Why a container could not be run to completion.
#[derive(Debug, thiserror::Error)]
pub enum ContainerRunError {
    /// The VM could not be built or loaded.
    #[error("cannot build the microVM")]
    Machine(#[from] MachineError),
    /// The vsock device could not be created.
    #[error("cannot create the virtio-vsock device")]
    Vsock(#[source] std::io::Error),
    /// The virtio-fs device could not share the rootfs directory.
    #[error("cannot share {0} over virtio-fs")]
    Fs(std::path::PathBuf, #[source] FsError),
    /// The block device could not open the rootfs image.
    #[error("cannot use {0} as a virtio-blk disk")]
    Block(std::path::PathBuf, #[source] BlockError),
    /// A thread or socket could not be set up.
    #[error("cannot {0}")]
    Io(&'static str, #[source] std::io::Error),
    /// The VM ended before the agent answered.
    #[error("the microVM exited before its agent answered ({0})")]
    VmEndedEarly(String),
    /// The agent never answered.
    #[error("the agent did not answer on vsock port {CONTROL_PORT} within {0:?}")]
    AgentTimeout(Duration),
    /// The agent did not open a stdio connection.
    #[error("the agent did not connect the container's {0} within {STDIO_ACCEPT_TIMEOUT:?}")]
    StdioTimeout(&'static str),
    /// A request failed (the agent's message says why).
    #[error("{0} failed")]
    Request(&'static str, #[source] ProtocolError),
    /// The agent answered with something unexpected.
    #[error("unexpected answer to {0}: {1:?}")]
    Unexpected(&'static str, Response),
    /// The VM failed while the container ran.
    #[error("the microVM failed")]
    Vm(#[source] RunError),
}

/// Where a signal received by vmrun goes.
#[derive(Clone, Default)]
enum SignalTarget {
    /// No container yet: the signal ends vmrun (and the VM with it).
    #[default]
    NotYet,
    /// The container runs: forward with a `Signal` request (SIGWINCH: a
    /// `Resize` when it has a terminal and vmrun's stdin is one).
    Container(Arc<ControlClient>),
    /// The container exited: nothing to signal.
    Exited,
}

/// The running VM: its thread and exit state.
struct VmHandle {
    exit: Arc<ExitState>,
    thread: Option<JoinHandle<Result<CleanExit, RunError>>>,
}

impl VmHandle {
    fn ended(&self) -> bool {
        self.exit.should_stop()
    }

    /// Waits for the VM thread; stops the VM first if asked to.
    fn join(&mut self, stop: bool) -> Result<CleanExit, RunError> {
        if stop {
            self.exit.report(VmExit::Stopped);
        }
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(RunError::ThreadPanicked(1)),
            None => Ok(CleanExit::Stopped),
        }
    }

    /// Waits up to `limit` for the guest to end by itself, then stops it.
    fn join_within(&mut self, limit: Duration) -> Result<CleanExit, RunError> {
        let deadline = Instant::now() + limit;
        while !self.ended() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !self.ended() {
            tracing::warn!("the guest did not power off within {limit:?}: stopping it");
        }
        self.join(true)
    }
}

impl Drop for VmHandle {
    fn drop(&mut self) {
        // Error paths: never leave a VM running behind the caller.
        if self.thread.is_some() {
            let _ = self.join(true);
        }
    }
}

/// The rootfs device for the bundle and how the agent finds it.
fn rootfs_device(
    bundle: &Bundle,
) -> Result<(Box<dyn VirtioDevice>, RootfsSource), ContainerRunError> {
    let readonly = bundle.readonly;
    Ok(match &bundle.rootfs {
        HostRootfs::Dir(dir) => {
            let fs = Fs::new(ROOTFS_TAG, dir, readonly)
                .map_err(|e| ContainerRunError::Fs(dir.clone(), e))?;
            let source = RootfsSource::VirtioFs {
                tag: ROOTFS_TAG.into(),
            };
            (Box::new(fs), source)
        }
        HostRootfs::Image { path, fstype } => {
            let block = Block::open(path, readonly)
                .map_err(|e| ContainerRunError::Block(path.clone(), e))?;
            let source = RootfsSource::Block {
                device: ROOTFS_BLOCK_DEVICE.into(),
                fstype: fstype.clone(),
            };
            (Box::new(block), source)
        }
    })
}

/// Builds and starts the VM: vsock (guest CID 3), the rootfs device, the
/// kernel with `vmrun_action=serve`.
fn start_vm(
    machine: MachineBuilder,
    bundle: &Bundle,
    console: &ConsoleTail,
    timings: Arc<Timings>,
) -> Result<(VmHandle, VsockHost, RootfsSource), ContainerRunError> {
    let vsock = Vsock::new(GUEST_CID).map_err(ContainerRunError::Vsock)?;
    let host = vsock.host();
    let (rootfs_device, rootfs) = rootfs_device(bundle)?;
    let machine = machine
        .console(Box::new(console.clone()))
        .timings(timings)
        .cmdline_word(SERVE_CMDLINE_WORD)
        .virtio(Box::new(vsock))
        .virtio(rootfs_device)
        .build()?;
    let exit = machine.exit_state().clone();
    let thread = std::thread::Builder::new()
        .name("vm".into())
        .spawn(move || machine.run())
        .map_err(|e| ContainerRunError::Io("start the VM thread", e))?;
    Ok((
        VmHandle {
            exit,
            thread: Some(thread),
        },
        host,
        rootfs,
    ))
}

/// Connects to the agent's control port, retrying while it is not up yet.
fn connect_agent(
    vm: &mut VmHandle,
    host: &VsockHost,
    timeout: Duration,
) -> Result<ControlClient, ContainerRunError> {
    let deadline = Instant::now() + timeout;
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
        match host.connect_timeout(CONTROL_PORT, Duration::from_secs(1)) {
            Ok(stream) => {
                return ControlClient::connect(stream)
                    .map_err(|e| ContainerRunError::Request("the version handshake", e));
            }
            Err(e) => {
                tracing::trace!("agent not answering yet: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn accept(listener: &VsockListener, name: &'static str) -> Result<UnixStream, ContainerRunError> {
    listener
        .accept_timeout(STDIO_ACCEPT_TIMEOUT)
        .ok_or(ContainerRunError::StdioTimeout(name))
}

/// How long a request failure waits for the VM to be seen ending (the
/// control connection dies with the guest, a moment before the VMM's
/// vCPU thread reports why).
const VM_END_GRACE: Duration = Duration::from_secs(2);

/// When a request failed because the microVM itself went down, the VM's
/// own reason (triple fault, kernel panic, clean power-off) is the error
/// to report, not the lost connection.
fn vm_failure_or(vm: &mut VmHandle, err: ContainerRunError) -> ContainerRunError {
    let deadline = Instant::now() + VM_END_GRACE;
    while !vm.ended() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !vm.ended() {
        return err;
    }
    match vm.join(false) {
        Ok(exit) => ContainerRunError::VmEndedEarly(format!("it powered off: {exit:?}")),
        Err(e) => ContainerRunError::Vm(e),
    }
}

/// Sends `request` (`what`, for errors) to the agent; when it fails
/// because the microVM went down, the error is the VM's own reason.
fn call_agent(
    client: &ControlClient,
    vm: &mut VmHandle,
    what: &'static str,
    request: Request,
) -> Result<Response, ContainerRunError> {
    client
        .call(request)
        .map_err(|e| vm_failure_or(vm, ContainerRunError::Request(what, e)))
}

/// Sends vmrun's terminal size to the container's terminal.
fn send_host_size(client: &ControlClient, id: &str) {
    let Some((rows, cols)) = terminal::window_size(HOST_TTY_FD) else {
        return;
    };
    let request = Request::Resize {
        id: id.to_owned(),
        rows,
        cols,
    };
    if let Err(e) = client.call(request) {
        tracing::debug!("cannot resize the container's terminal: {e}");
    }
}

/// Runs the bundle's process in a fresh microVM with vmrun's stdio, and
/// returns its exit status once the VM is gone. SIGINT/SIGTERM/SIGHUP must
/// already be blocked ([`super::signals::block_forwarded`]); they are
/// forwarded to the container once it exists (before that they end vmrun,
/// and with it the VM, with status 128+N). With `process.terminal` the
/// container gets a pty in the guest relayed over the same streams
/// (stderr stays empty), and vmrun's terminal, if stdin is one, is in raw
/// mode while the process runs (see [`super::terminal`]).
pub fn run_container(
    config: RunConfig,
    timings: Arc<Timings>,
) -> Result<ExitStatus, ContainerRunError> {
    let target: Arc<Mutex<SignalTarget>> = Arc::default();
    let signal_target = target.clone();
    let id = config.id.clone();
    let tty = terminal::spec_wants_terminal(&config.bundle.spec);
    let _signals = SignalForwarder::start(move |signal| {
        let state = signal_target
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match state {
            SignalTarget::Container(client) if signal == RESIZE => {
                if tty {
                    send_host_size(&client, &id);
                }
            }
            _ if signal == RESIZE => {}
            SignalTarget::Container(client) => {
                tracing::debug!(signal, "forwarding to the container");
                if let Err(e) = client.call(Request::Signal {
                    id: id.clone(),
                    signal,
                }) {
                    tracing::warn!("cannot forward signal {signal}: {e}");
                }
            }
            SignalTarget::NotYet => {
                terminal::restore_host_terminal();
                eprintln!("vmrun: signal {signal} before the container started: stopping");
                std::process::exit(128 + signal);
            }
            SignalTarget::Exited => {
                tracing::debug!(signal, "the container already exited: signal ignored");
            }
        }
    })
    .map_err(|e| ContainerRunError::Io("start the signal thread", e))?;

    let (mut vm, host, rootfs) =
        start_vm(config.machine, &config.bundle, &config.console, timings)?;
    let client = Arc::new(connect_agent(&mut vm, &host, config.agent_timeout)?);
    let listen = |port| {
        host.listen(port)
            .map_err(|e| ContainerRunError::Io("listen on a vsock stdio port", e))
    };
    let [in_port, out_port, err_port] = STDIO_PORTS;
    let (stdin_l, stdout_l, stderr_l) = (listen(in_port)?, listen(out_port)?, listen(err_port)?);
    let mut spec = config.bundle.spec.clone();
    if tty {
        // runc's caller gets its own terminal's size (from the start here,
        // not just after the process began).
        if let Some(size) = terminal::window_size(HOST_TTY_FD) {
            terminal::set_console_size(&mut spec, size);
        }
    }
    let created = call_agent(
        &client,
        &mut vm,
        "Create",
        Request::Create {
            id: config.id.clone(),
            spec,
            rootfs,
            stdio: StdioPorts {
                stdin: Some(in_port),
                stdout: Some(out_port),
                stderr: Some(err_port),
            },
            no_pivot: config.no_pivot,
        },
    )?;
    if created != Response::Ok {
        return Err(ContainerRunError::Unexpected("Create", created));
    }
    let stdin = accept(&stdin_l, "stdin")?;
    let stdout = accept(&stdout_l, "stdout")?;
    let stderr = accept(&stderr_l, "stderr")?;
    for port in STDIO_PORTS {
        host.unlisten(port);
    }
    relay_stdin(stdin).map_err(|e| ContainerRunError::Io("start the stdin relay", e))?;
    let out = OutputRelay::start("stdout", stdout, std::io::stdout())
        .map_err(|e| ContainerRunError::Io("start the stdout relay", e))?;
    let err = OutputRelay::start("stderr", stderr, std::io::stderr())
        .map_err(|e| ContainerRunError::Io("start the stderr relay", e))?;

    *target.lock().unwrap_or_else(|p| p.into_inner()) = SignalTarget::Container(client.clone());
    // Raw mode only for a terminal container on a host terminal; restored
    // when this guard drops (every return below) or by the signal path.
    let raw_mode = if tty {
        RawMode::enter(HOST_TTY_FD)
            .map_err(|e| ContainerRunError::Io("put the terminal in raw mode", e))?
    } else {
        None
    };
    let start = Request::Start {
        id: config.id.clone(),
    };
    let warnings = match call_agent(&client, &mut vm, "Start", start)? {
        Response::Started { warnings } => warnings,
        other => return Err(ContainerRunError::Unexpected("Start", other)),
    };
    // Spec fields the guest ignored (e.g. AppArmor: its kernel has no LSM).
    let eol = if raw_mode.is_some() { "\r\n" } else { "\n" };
    for warning in &warnings {
        eprint!("vmrun: warning: {warning}{eol}");
    }
    if raw_mode.is_some() {
        // A resize between Create and Start found no container yet.
        send_host_size(&client, &config.id);
    }
    let wait = Request::Wait {
        id: config.id.clone(),
    };
    let status = match call_agent(&client, &mut vm, "Wait", wait)? {
        Response::Exited { status } => status,
        other => return Err(ContainerRunError::Unexpected("Wait", other)),
    };
    *target.lock().unwrap_or_else(|p| p.into_inner()) = SignalTarget::Exited;
    tracing::debug!(?status, "container exited");
    let drain_deadline = Instant::now() + OUTPUT_DRAIN_TIMEOUT;
    out.finish(drain_deadline);
    err.finish(drain_deadline);
    drop(raw_mode);

    if let Err(e) = client.call(Request::Shutdown) {
        // The agent may power off before its answer gets out.
        tracing::debug!("Shutdown: {e}");
    }
    drop(client);
    match vm.join_within(SHUTDOWN_TIMEOUT) {
        Ok(exit) => tracing::debug!(?exit, "VM ended"),
        Err(e) => {
            tracing::warn!(
                "the microVM failed after the container exited: {}",
                crate::error_chain(&e)
            );
        }
    }
    Ok(status)
}
