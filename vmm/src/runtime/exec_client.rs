//! The host process that stands for a process in a VM — an exec'd
//! process (`vmrun exec`) or a pod member's init (`vmrun create` of a
//! member): it opens a session on the VMM's control socket, hands its
//! stdio to the VMM (which relays it to the guest process), forwards every
//! catchable signal it receives to that process, exits with its status,
//! and — because the VMM kills the guest process when this process's
//! connection closes — never leaves it behind.
//!
//! With `process.terminal` the process gets a pty in the guest, relayed
//! through a host pty: with `--console-socket` the host pty's master goes
//! to the caller and its slave becomes this process's controlling
//! terminal (resizes arrive as SIGWINCH); otherwise this process's own
//! terminal is used (raw mode while the process runs), or, without one, a
//! host pty whose master this process copies to and from its stdio.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use vmrun_protocol::{read_frame, write_frame, ExitStatus};

use super::api::fd_passing::send_fds;
use super::api::{ApiCall, ApiClient, ApiError, ApiRequest, ApiResponse};
use super::console_socket::{self, Pty};
use super::signals::{self, SignalForwarder, RESIZE};
use super::stdio::pump;
use super::terminal::{self, RawMode};

/// What a session client needs (sent to a detached one over its channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionLaunch {
    /// The VM's control socket.
    pub api_socket: PathBuf,
    /// The container the session is for (`None`: the VM's main one).
    pub container: Option<String>,
    /// The request that opens the session: `Exec` or `AddMember`.
    pub first: ApiRequest,
    /// Whether the process has a terminal (`process.terminal`).
    pub terminal: bool,
    /// Where the pty master goes (terminal processes).
    pub console_socket: Option<PathBuf>,
}

/// A detached session client's answer to its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionReadiness {
    /// The process exists (an exec'd process runs; a member is created).
    Started,
    /// It could not be started.
    Failed {
        /// Why.
        message: String,
    },
}

/// Errors of an exec client.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The container's VMM refused or is gone.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The terminal could not be set up.
    #[error(transparent)]
    Console(#[from] console_socket::ConsoleError),
    /// A descriptor or thread could not be set up.
    #[error("cannot {0}")]
    Io(&'static str, #[source] io::Error),
    /// A pod member's bundle could not be read.
    #[error("cannot read the member's bundle")]
    MemberBundle(#[source] Box<super::bundle::BundleError>),
    /// A pod member's host trees could not be made.
    #[error("cannot hand the member's rootfs and binds to its sandbox's VM")]
    MemberTrees(#[source] Box<super::host_world::HostWorldError>),
    /// The VMM ended without reporting the process's exit.
    #[error("the container's VMM ended before the process's exit was reported")]
    Lost,
}

/// The stdio handed to the VMM, and what keeps it working here.
struct ExecStdio {
    /// stdin, stdout, stderr as the VMM gets them.
    fds: [RawFd; 3],
    /// The host pty's slave, kept open (terminal processes).
    _slave: Option<OwnedFd>,
    /// This process's terminal in raw mode (terminal on our own tty).
    _raw: Option<RawMode>,
    /// The descriptor whose window size the process's terminal follows.
    size_source: Option<RawFd>,
    /// Ends when everything the process wrote reached our stdout (a host
    /// pty copied by this process: terminal without a tty).
    output_done: Option<std::sync::mpsc::Receiver<()>>,
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> ExecError {
    move |e| ExecError::Io(what, e)
}

/// Copies between our stdio and a pty master (terminal without a tty);
/// the receiver hears once the master's output ended.
fn pump_master(master: &OwnedFd) -> Result<std::sync::mpsc::Receiver<()>, ExecError> {
    let mut to_master = File::from(master.try_clone().map_err(io_err("duplicate the pty"))?);
    let mut from_master = File::from(master.try_clone().map_err(io_err("duplicate the pty"))?);
    std::thread::Builder::new()
        .name("exec-tty-in".into())
        .spawn(move || {
            let _ = pump(&mut io::stdin(), &mut to_master);
        })
        .map_err(io_err("start a terminal relay"))?;
    let (done, output_done) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("exec-tty-out".into())
        .spawn(move || {
            // Ends with EIO once no one holds the slave any more.
            let _ = pump(&mut from_master, &mut io::stdout());
            let _ = done.send(());
        })
        .map_err(io_err("start a terminal relay"))?;
    Ok(output_done)
}

fn exec_stdio(launch: &SessionLaunch) -> Result<ExecStdio, ExecError> {
    if !launch.terminal {
        return Ok(ExecStdio {
            fds: [0, 1, 2],
            _slave: None,
            _raw: None,
            size_source: None,
            output_done: None,
        });
    }
    if let Some(socket) = &launch.console_socket {
        let Pty { master, slave, .. } = {
            let pty = console_socket::open_pty()?;
            console_socket::send_master(&pty, socket)?;
            pty
        };
        // The caller has the master now; ours would keep the terminal from
        // hanging up when the caller closes it.
        drop(master);
        // Resizes reach us as SIGWINCH only if the slave is our
        // controlling terminal (we lead a session when detached).
        let sized = console_socket::make_controlling_terminal(&slave).is_ok();
        let fd = slave.as_raw_fd();
        return Ok(ExecStdio {
            fds: [fd; 3],
            size_source: sized.then_some(fd),
            _slave: Some(slave),
            _raw: None,
            output_done: None,
        });
    }
    if terminal::is_terminal(terminal::HOST_TTY_FD) {
        let raw = RawMode::enter(terminal::HOST_TTY_FD).map_err(io_err("enter raw mode"))?;
        return Ok(ExecStdio {
            fds: [0, 1, 2],
            _slave: None,
            _raw: raw,
            size_source: Some(terminal::HOST_TTY_FD),
            output_done: None,
        });
    }
    let Pty { master, slave, .. } = console_socket::open_pty()?;
    let output_done = pump_master(&master)?;
    let fd = slave.as_raw_fd();
    Ok(ExecStdio {
        fds: [fd; 3],
        _slave: Some(slave),
        _raw: None,
        size_source: None,
        output_done: Some(output_done),
    })
}

/// Sets an exec'd process's initial terminal size from `source`.
fn with_console_size(first: ApiRequest, source: Option<RawFd>) -> ApiRequest {
    let ApiRequest::Exec { mut process } = first else {
        return first;
    };
    if let Some((rows, cols)) = source.and_then(terminal::window_size) {
        if rows > 0 && cols > 0 {
            let mut wrapper = serde_json::json!({ "process": process });
            terminal::set_console_size(&mut wrapper, (rows, cols));
            process = wrapper["process"].take();
        }
    }
    ApiRequest::Exec { process }
}

/// For `AddMember`: the member's detached host trees (made here, in the
/// host's mount namespace) and the request announcing them.
fn with_member_trees(first: ApiRequest) -> Result<(ApiRequest, Vec<OwnedFd>), ExecError> {
    let ApiRequest::AddMember {
        id,
        bundle,
        no_pivot,
        ..
    } = first
    else {
        return Ok((first, Vec::new()));
    };
    let loaded = super::bundle::Bundle::load(&bundle, None)
        .map_err(|e| ExecError::MemberBundle(Box::new(e)))?;
    let trees = super::host_world::member_trees(&loaded)
        .map_err(|e| ExecError::MemberTrees(Box::new(e)))?;
    let request = ApiRequest::AddMember {
        id,
        bundle,
        no_pivot,
        trees: trees.len(),
    };
    Ok((request, trees))
}

/// Runs the session: starts the process, tells `ready` (a detached
/// client's parent) once it exists, and returns its exit status.
pub fn run(launch: SessionLaunch, ready: Option<UnixStream>) -> Result<ExitStatus, ExecError> {
    signals::block_forwarded().map_err(io_err("block signals"))?;
    let mut stdio = exec_stdio(&launch)?;
    let (first, trees) = with_member_trees(launch.first.clone())?;
    let mut api = ApiClient::connect(&launch.api_socket, launch.container.as_deref())?;
    api.send(&with_console_size(first, stdio.size_source))?;
    send_fds(api.stream(), b"F", &stdio.fds).map_err(io_err("pass stdio to the VMM"))?;
    for tree in &trees {
        send_fds(api.stream(), b"T", &[tree.as_raw_fd()])
            .map_err(io_err("pass the member's host trees to the VMM"))?;
    }
    drop(trees);
    match api.receive()? {
        ApiResponse::ExecStarted { guest_pid } | ApiResponse::MemberCreated { guest_pid } => {
            tracing::debug!(guest_pid, "the session's process exists");
        }
        other => return Err(ApiError::Unexpected(other).into()),
    }
    if let Some(mut ready) = ready {
        let _ = write_frame(&mut ready, &SessionReadiness::Started);
    }
    let container = launch.container.clone();
    let size_source = stdio.size_source;
    let writer = Arc::new(Mutex::new(
        api.stream()
            .try_clone()
            .map_err(io_err("duplicate the connection"))?,
    ));
    let send = move |request: ApiRequest| {
        let call = ApiCall {
            container: container.clone(),
            request,
        };
        let mut stream = writer.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = write_frame(&mut *stream, &call) {
            tracing::debug!("session: cannot forward {:?}: {e}", call.request);
        }
    };
    let forward = move |signal: i32| {
        if signal != RESIZE {
            send(ApiRequest::SessionSignal { signal });
        } else if let Some((rows, cols)) = size_source.and_then(terminal::window_size) {
            if rows > 0 && cols > 0 {
                send(ApiRequest::SessionResize { rows, cols });
            }
        }
    };
    let _signals = SignalForwarder::start(forward).map_err(io_err("start the signal thread"))?;
    let mut reader = api
        .stream()
        .try_clone()
        .map_err(io_err("duplicate the connection"))?;
    let outcome = loop {
        match read_frame::<_, ApiResponse>(&mut reader) {
            Ok(ApiResponse::Exited { status }) => break Ok(status),
            Ok(ApiResponse::Error { message }) => break Err(ApiError::Refused(message).into()),
            Ok(other) => tracing::debug!("exec: ignoring {other:?}"),
            Err(_) => break Err(ExecError::Lost),
        }
    };
    let output_done = stdio.output_done.take();
    drop(stdio);
    if let Some(done) = output_done {
        let _ = done.recv_timeout(super::container_vmm::OUTPUT_DRAIN_TIMEOUT);
    }
    terminal::restore_host_terminal();
    outcome
}

/// The hidden verb a detached session's host process runs.
pub const SESSION_VERB: &str = "__session";

/// Why a detached session could not be launched.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The helper could not be started or talked to.
    #[error("cannot start the session's host process")]
    Spawn(#[source] io::Error),
    /// It reported an error.
    #[error("{0}")]
    Failed(String),
    /// It ended without a word.
    #[error("the session's host process exited before its process existed ({0})")]
    Died(String),
}

/// Starts a detached session's host process (`vmrun <global_args>
/// __session`, in a session of its own, with the caller's stdio unless a
/// console socket takes its place) and waits until its process exists.
/// On failure the helper is gone when this returns.
pub fn launch_detached(
    global_args: &[std::ffi::OsString],
    launch: &SessionLaunch,
) -> Result<std::process::Child, LaunchError> {
    let mut args = global_args.to_vec();
    args.push(SESSION_VERB.into());
    let (mut child, mut channel) = super::detached::spawn(&args, launch.console_socket.is_some())
        .map_err(LaunchError::Spawn)?;
    let answer = write_frame(&mut channel, launch)
        .and_then(|()| read_frame::<_, SessionReadiness>(&mut channel));
    match answer {
        Ok(SessionReadiness::Started) => Ok(child),
        Ok(SessionReadiness::Failed { message }) => {
            super::detached::reap(&mut child);
            Err(LaunchError::Failed(message))
        }
        Err(_) => Err(LaunchError::Died(super::detached::reap(&mut child))),
    }
}

/// A detached session's host process (`vmrun __session`): runs the session
/// and exits with its process's status.
pub fn run_detached() -> i32 {
    // SAFETY: this hidden verb is only started by `launch_detached`, which
    // put the channel on fd 3.
    let mut channel = unsafe { super::detached::take_channel() };
    let launch: SessionLaunch = match read_frame(&mut channel) {
        Ok(launch) => launch,
        Err(e) => {
            tracing::error!("the session's host process got no launch configuration: {e}");
            return 255;
        }
    };
    let ready = match channel.try_clone() {
        Ok(ready) => ready,
        Err(e) => {
            tracing::error!("cannot duplicate the channel: {e}");
            return 255;
        }
    };
    match run(launch, Some(ready)) {
        Ok(status) => status.as_shell_status(),
        Err(e) => {
            let message = crate::error_chain(&e);
            tracing::error!("{message}");
            let _ = write_frame(&mut channel, &SessionReadiness::Failed { message });
            255
        }
    }
}
