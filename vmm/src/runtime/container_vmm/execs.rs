//! Exec sessions: a new process in the running container for a `vmrun
//! exec` client connected to the control socket.
//!
//! The client sends `Exec { process }` and its stdio descriptors; the VMM
//! asks the agent to run the process with stdio on fresh vsock ports,
//! relays those streams to the client's descriptors, answers
//! `ExecStarted`, forwards the client's `SessionSignal`/`SessionResize`,
//! and answers `Exited` once the process ended and its output was
//! delivered. ([`follow_client`] and the stdio hand-over are shared with
//! pod members' sessions.)
//! A client that goes away first gets its process killed (SIGKILL), so a
//! guest process never outlives the host process that stands for it.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use vmrun_protocol::{read_frame, write_frame, FrameError, Request, Response};

use super::slot::Slot;
use super::{
    connect_stdio, listen_stdio, lock, state_error, stdio_ports, ContainerRunError, ContainerVmm,
    HostStdio, OUTPUT_DRAIN_TIMEOUT,
};
use crate::runtime::api::fd_passing::recv_fds;
use crate::runtime::api::{ApiCall, ApiRequest, ApiResponse};
use crate::runtime::state::Status;

/// Most exec sessions at once per container.
pub const MAX_EXECS: usize = 64;

/// The exec sessions of a container: id → the client's host pid.
#[derive(Debug, Default)]
pub struct ExecTable {
    next: AtomicU64,
    sessions: Mutex<HashMap<String, i32>>,
}

/// A registered session; unregisters itself when dropped.
struct Registration<'t> {
    table: &'t ExecTable,
    exec_id: String,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        lock(&self.table.sessions).remove(&self.exec_id);
    }
}

impl ExecTable {
    fn register(&self, client_pid: i32) -> Result<Registration<'_>, ContainerRunError> {
        let mut sessions = lock(&self.sessions);
        if sessions.len() >= MAX_EXECS {
            return Err(state_error(format!(
                "this container already runs {MAX_EXECS} exec sessions"
            )));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let exec_id = format!("exec-{n}");
        sessions.insert(exec_id.clone(), client_pid);
        Ok(Registration {
            table: self,
            exec_id,
        })
    }

    /// The host pids of the clients of running sessions.
    pub fn client_pids(&self) -> Vec<i32> {
        let mut pids: Vec<i32> = lock(&self.sessions).values().copied().collect();
        pids.sort_unstable();
        pids
    }
}

/// The peer's pid (the exec client), from SO_PEERCRED.
pub fn peer_pid(conn: &UnixStream) -> i32 {
    use std::os::fd::AsRawFd;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, which we own.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        cred.pid
    } else {
        0
    }
}

/// Answers the client of a session (a failed write means it is gone:
/// its reader notices).
pub fn send(conn: &mut UnixStream, response: &ApiResponse) {
    if let Err(e) = write_frame(conn, response) {
        tracing::debug!("session: cannot answer the client: {e}");
    }
}

/// Receives a session client's three stdio descriptors.
pub fn receive_stdio(conn: &UnixStream) -> Result<[OwnedFd; 3], ContainerRunError> {
    let mut marker = [0u8; 1];
    let (_, fds) = recv_fds(conn, &mut marker)
        .map_err(|e| ContainerRunError::Io("receive the client's stdio", e))?;
    fds.try_into()
        .map_err(|_| state_error("the client must send exactly 3 stdio descriptors"))
}

/// Reads a session client's frames, handing each request to `on_request`,
/// until the connection closes; then, unless `finished` is set by then,
/// calls `on_gone` (the client died before its process: kill it).
pub fn follow_client(
    mut reader: UnixStream,
    finished: &AtomicBool,
    on_request: impl Fn(ApiRequest),
    on_gone: impl FnOnce(),
) {
    loop {
        match read_frame::<_, ApiCall>(&mut reader) {
            Ok(call) => on_request(call.request),
            Err(FrameError::Malformed(e)) => {
                tracing::debug!("session: malformed frame from the client: {e}");
            }
            Err(_) => break,
        }
    }
    if !finished.load(Ordering::SeqCst) {
        on_gone();
    }
}

impl ContainerVmm {
    /// Runs one exec session in `slot`'s container on `conn`, whose
    /// `Exec { process }` frame was just read; returns when it is over.
    pub fn exec_session(self: &Arc<Self>, slot: Arc<Slot>, mut conn: UnixStream, process: Value) {
        if let Err(e) = self.run_exec(&slot, &mut conn, process) {
            send(
                &mut conn,
                &ApiResponse::Error {
                    message: crate::error_chain(&e),
                },
            );
        }
    }

    fn run_exec(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        conn: &mut UnixStream,
        process: Value,
    ) -> Result<(), ContainerRunError> {
        let fds = receive_stdio(conn)?;
        match slot.status() {
            Status::Created | Status::Running => {}
            Status::Paused => return Err(state_error("cannot exec in a paused container")),
            Status::Stopped => return Err(state_error("cannot exec in a stopped container")),
        }
        let registration = slot.execs.register(peer_pid(conn))?;
        let exec_id = registration.exec_id.clone();
        let ports = self.take_ports();
        let listeners = listen_stdio(&self.host, ports)?;
        let request = Request::Exec {
            id: slot.id.clone(),
            exec_id: exec_id.clone(),
            process,
            stdio: stdio_ports(ports),
        };
        let started = match self.call("Exec", request) {
            Ok(Response::ExecStarted { pid }) => Ok(pid),
            Ok(Response::Error { message }) => Err(state_error(message)),
            Ok(other) => Err(ContainerRunError::Unexpected("Exec", other)),
            Err(e) => Err(e),
        };
        let guest_pid = match started {
            Ok(pid) => pid,
            Err(e) => {
                for port in ports {
                    self.host.unlisten(port);
                }
                return Err(e);
            }
        };
        let output = match connect_stdio(&self.host, ports, listeners, HostStdio::from_fds(fds)) {
            Ok(output) => output,
            Err(e) => {
                self.kill_exec(slot, &exec_id);
                return Err(e);
            }
        };
        send(conn, &ApiResponse::ExecStarted { guest_pid });
        tracing::debug!(%exec_id, guest_pid, "exec started");

        let finished = Arc::new(AtomicBool::new(false));
        let reader = conn
            .try_clone()
            .map_err(|e| ContainerRunError::Io("duplicate the exec connection", e))?;
        let (this, done, target, id) = (
            Arc::clone(self),
            Arc::clone(&finished),
            Arc::clone(slot),
            exec_id.clone(),
        );
        std::thread::Builder::new()
            .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
            .name("exec-client".into())
            .spawn(move || {
                follow_client(
                    reader,
                    &done,
                    |request| this.forward_to_exec(&target, &id, request),
                    || this.kill_exec(&target, &id),
                )
            })
            .map_err(|e| ContainerRunError::Io("start the exec client thread", e))?;

        let wait = Request::Wait {
            id: slot.id.clone(),
            exec_id: Some(exec_id.clone()),
        };
        let outcome = self.call("Wait", wait);
        finished.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + OUTPUT_DRAIN_TIMEOUT;
        output.stdout.finish(deadline);
        output.stderr.finish(deadline);
        match outcome? {
            Response::Exited { status } => {
                send(conn, &ApiResponse::Exited { status });
                let _ = conn.shutdown(std::net::Shutdown::Both);
                drop(registration);
                Ok(())
            }
            Response::Error { message } => Err(state_error(message)),
            other => Err(ContainerRunError::Unexpected("Wait", other)),
        }
    }

    /// A session client's signal or resize, for exec `exec_id` of `slot`.
    fn forward_to_exec(&self, slot: &Slot, exec_id: &str, request: ApiRequest) {
        let forwarded = match request {
            ApiRequest::SessionSignal { signal } => Request::Signal {
                id: slot.id.clone(),
                signal,
                all: false,
                exec_id: Some(exec_id.to_owned()),
            },
            ApiRequest::SessionResize { rows, cols } => Request::Resize {
                id: slot.id.clone(),
                rows,
                cols,
                exec_id: Some(exec_id.to_owned()),
            },
            other => {
                tracing::debug!("exec session: ignoring {other:?}");
                return;
            }
        };
        if let Err(e) = self.client.call(forwarded) {
            tracing::debug!("exec session: cannot forward to the agent: {e}");
        }
    }

    fn kill_exec(&self, slot: &Slot, exec_id: &str) {
        tracing::debug!(%exec_id, "the exec client went away: killing its process");
        let kill = Request::Signal {
            id: slot.id.clone(),
            signal: libc::SIGKILL,
            all: false,
            exec_id: Some(exec_id.to_owned()),
        };
        if let Err(e) = self.client.call(kill) {
            tracing::debug!("cannot kill exec {exec_id}: {e}");
        }
    }
}
