//! The host process that stands for an exec'd process (`vmrun exec`): it
//! hands its stdio to the container's VMM (which relays it to the guest
//! process), forwards every catchable signal it receives to that process,
//! exits with its status, and — because the VMM kills the guest process
//! when this process's connection closes — never leaves it behind.
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
use super::api::{ApiClient, ApiError, ApiRequest, ApiResponse};
use super::console_socket::{self, Pty};
use super::signals::{self, SignalForwarder, RESIZE};
use super::stdio::pump;
use super::terminal::{self, RawMode};

/// What an exec client needs (sent to a detached one over its channel).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecLaunch {
    /// The container's control socket.
    pub api_socket: PathBuf,
    /// The OCI `process` to run.
    pub process: serde_json::Value,
    /// Where the pty master goes (terminal processes).
    pub console_socket: Option<PathBuf>,
}

/// A detached exec client's answer to its parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecReadiness {
    /// The process runs.
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

fn exec_stdio(launch: &ExecLaunch) -> Result<ExecStdio, ExecError> {
    let terminal = terminal::spec_wants_terminal(&serde_json::json!({ "process": launch.process }));
    if !terminal {
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

/// Sets the process's initial terminal size from `source`.
fn with_console_size(mut process: serde_json::Value, source: Option<RawFd>) -> serde_json::Value {
    if let Some((rows, cols)) = source.and_then(terminal::window_size) {
        if rows > 0 && cols > 0 {
            let mut wrapper = serde_json::json!({ "process": process });
            terminal::set_console_size(&mut wrapper, (rows, cols));
            process = wrapper["process"].take();
        }
    }
    process
}

/// Runs the exec session: starts the process, tells `ready` (a detached
/// client's parent) once it runs, and returns its exit status.
pub fn run(launch: ExecLaunch, ready: Option<UnixStream>) -> Result<ExitStatus, ExecError> {
    signals::block_forwarded().map_err(io_err("block signals"))?;
    let mut stdio = exec_stdio(&launch)?;
    let mut api = ApiClient::connect(&launch.api_socket)?;
    let process = with_console_size(launch.process, stdio.size_source);
    api.send(&ApiRequest::Exec { process })?;
    send_fds(api.stream(), b"F", &stdio.fds).map_err(io_err("pass stdio to the VMM"))?;
    match api.receive()? {
        ApiResponse::ExecStarted { guest_pid } => {
            tracing::debug!(guest_pid, "exec'd process runs");
        }
        other => return Err(ApiError::Unexpected(other).into()),
    }
    if let Some(mut ready) = ready {
        let _ = write_frame(&mut ready, &ExecReadiness::Started);
    }
    let size_source = stdio.size_source;
    let writer = Arc::new(Mutex::new(
        api.stream()
            .try_clone()
            .map_err(io_err("duplicate the connection"))?,
    ));
    let send = {
        let writer = Arc::clone(&writer);
        move |request: ApiRequest| {
            let mut stream = writer.lock().unwrap_or_else(|p| p.into_inner());
            if let Err(e) = write_frame(&mut *stream, &request) {
                tracing::debug!("exec: cannot forward {request:?}: {e}");
            }
        }
    };
    let resize = move || {
        if let Some((rows, cols)) = size_source.and_then(terminal::window_size) {
            if rows > 0 && cols > 0 {
                send(ApiRequest::ExecResize { rows, cols });
            }
        }
    };
    let forward = {
        let writer = Arc::clone(&writer);
        move |signal: i32| {
            if signal == RESIZE {
                resize();
            } else {
                let mut stream = writer.lock().unwrap_or_else(|p| p.into_inner());
                let _ = write_frame(&mut *stream, &ApiRequest::ExecSignal { signal });
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
