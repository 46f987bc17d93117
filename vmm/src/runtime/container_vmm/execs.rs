//! Exec sessions: a new process in the running container for a `vmrun
//! exec` client connected to the control socket.
//!
//! The client sends `Exec { process }` and its stdio descriptors; the VMM
//! asks the agent to run the process with stdio on fresh vsock ports,
//! relays those streams to the client's descriptors, answers
//! `ExecStarted`, forwards the client's `ExecSignal`/`ExecResize`, and
//! answers `Exited` once the process ended and its output was delivered.
//! A client that goes away first gets its process killed (SIGKILL), so a
//! guest process never outlives the host process that stands for it.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value;
use vmrun_protocol::{read_frame, write_frame, FrameError, Request, Response, StdioPorts};

use super::{
    accept, listen_stdio, lock, state_error, ContainerRunError, ContainerVmm, OUTPUT_DRAIN_TIMEOUT,
};
use crate::runtime::api::fd_passing::recv_fds;
use crate::runtime::api::{ApiRequest, ApiResponse};
use crate::runtime::state::Status;
use crate::runtime::stdio::{relay_input, OutputRelay};

/// Most exec sessions at once per container.
pub const MAX_EXECS: usize = 64;
/// Host vsock ports for exec stdio are taken, three at a time, from here...
const FIRST_EXEC_PORT: u32 = 3000;
/// ...up to here (then from the start again).
const LAST_EXEC_PORT: u32 = 60_000;

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
    ports: [u32; 3],
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
        let span = u64::from((LAST_EXEC_PORT - FIRST_EXEC_PORT) / 3);
        let first = FIRST_EXEC_PORT + 3 * u32::try_from(n % span).unwrap_or(0);
        sessions.insert(exec_id.clone(), client_pid);
        Ok(Registration {
            table: self,
            exec_id,
            ports: [first, first + 1, first + 2],
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
fn peer_pid(conn: &UnixStream) -> i32 {
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

fn send(conn: &mut UnixStream, response: &ApiResponse) {
    if let Err(e) = write_frame(conn, response) {
        tracing::debug!("exec session: cannot answer the client: {e}");
    }
}

impl ContainerVmm {
    /// Runs one exec session on `conn`, whose `Exec { process }` frame was
    /// just read; returns when the session is over.
    pub fn exec_session(self: &Arc<Self>, mut conn: UnixStream, process: Value) {
        if let Err(e) = self.run_exec(&mut conn, process) {
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
        conn: &mut UnixStream,
        process: Value,
    ) -> Result<(), ContainerRunError> {
        let mut marker = [0u8; 1];
        let (_, fds) = recv_fds(conn, &mut marker)
            .map_err(|e| ContainerRunError::Io("receive the exec client's stdio", e))?;
        let Ok::<[_; 3], _>([stdin_fd, stdout_fd, stderr_fd]) = fds.try_into() else {
            return Err(state_error(
                "exec: the client must send exactly 3 stdio descriptors",
            ));
        };
        match self.status() {
            Status::Created | Status::Running => {}
            Status::Paused => return Err(state_error("cannot exec in a paused container")),
            Status::Stopped => return Err(state_error("cannot exec in a stopped container")),
        }
        let registration = self.execs.register(peer_pid(conn))?;
        let exec_id = registration.exec_id.clone();
        let [in_port, out_port, err_port] = registration.ports;
        let [stdin_l, stdout_l, stderr_l] = listen_stdio(&self.host, registration.ports)?;
        let unlisten = || {
            for port in registration.ports {
                self.host.unlisten(port);
            }
        };
        let request = Request::Exec {
            id: self.id.clone(),
            exec_id: exec_id.clone(),
            process,
            stdio: StdioPorts {
                stdin: Some(in_port),
                stdout: Some(out_port),
                stderr: Some(err_port),
            },
        };
        let guest_pid = match self.call("Exec", request) {
            Ok(Response::ExecStarted { pid }) => pid,
            Ok(Response::Error { message }) => {
                unlisten();
                return Err(state_error(message));
            }
            Ok(other) => {
                unlisten();
                return Err(ContainerRunError::Unexpected("Exec", other));
            }
            Err(e) => {
                unlisten();
                return Err(e);
            }
        };
        let streams = (|| {
            Ok::<_, ContainerRunError>((
                accept(&stdin_l, "stdin")?,
                accept(&stdout_l, "stdout")?,
                accept(&stderr_l, "stderr")?,
            ))
        })();
        unlisten();
        let (stdin, stdout, stderr) = match streams {
            Ok(streams) => streams,
            Err(e) => {
                self.kill_exec(&exec_id);
                return Err(e);
            }
        };
        let io = |what| move |e| ContainerRunError::Io(what, e);
        relay_input("exec-stdin", File::from(stdin_fd), stdin).map_err(io("start a relay"))?;
        let out = OutputRelay::start("exec-stdout", stdout, File::from(stdout_fd))
            .map_err(io("start a relay"))?;
        let err = OutputRelay::start("exec-stderr", stderr, File::from(stderr_fd))
            .map_err(io("start a relay"))?;
        send(conn, &ApiResponse::ExecStarted { guest_pid });
        tracing::debug!(%exec_id, guest_pid, "exec started");

        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = conn
            .try_clone()
            .map_err(io("duplicate the exec connection"))?;
        let this = Arc::clone(self);
        let done = Arc::clone(&finished);
        let id_for_reader = exec_id.clone();
        std::thread::Builder::new()
            .name("exec-client".into())
            .spawn(move || this.follow_exec_client(reader, &id_for_reader, &done))
            .map_err(io("start the exec client thread"))?;

        let wait = Request::Wait {
            id: self.id.clone(),
            exec_id: Some(exec_id.clone()),
        };
        let outcome = self.call("Wait", wait);
        finished.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + OUTPUT_DRAIN_TIMEOUT;
        out.finish(deadline);
        err.finish(deadline);
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

    /// Forwards the client's signals and resizes; kills the process if the
    /// client goes away before it ended.
    fn follow_exec_client(
        &self,
        mut reader: UnixStream,
        exec_id: &str,
        finished: &std::sync::atomic::AtomicBool,
    ) {
        loop {
            let request: ApiRequest = match read_frame(&mut reader) {
                Ok(request) => request,
                Err(FrameError::Malformed(e)) => {
                    tracing::debug!("exec session: malformed frame from the client: {e}");
                    continue;
                }
                Err(_) => break,
            };
            let forwarded = match request {
                ApiRequest::ExecSignal { signal } => Request::Signal {
                    id: self.id.clone(),
                    signal,
                    all: false,
                    exec_id: Some(exec_id.to_owned()),
                },
                ApiRequest::ExecResize { rows, cols } => Request::Resize {
                    id: self.id.clone(),
                    rows,
                    cols,
                    exec_id: Some(exec_id.to_owned()),
                },
                other => {
                    tracing::debug!("exec session: ignoring {other:?}");
                    continue;
                }
            };
            if let Err(e) = self.client.call(forwarded) {
                tracing::debug!("exec session: cannot forward to the agent: {e}");
            }
        }
        if !finished.load(Ordering::SeqCst) {
            tracing::debug!(%exec_id, "the exec client went away: killing its process");
            self.kill_exec(exec_id);
        }
    }

    fn kill_exec(&self, exec_id: &str) {
        let kill = Request::Signal {
            id: self.id.clone(),
            signal: libc::SIGKILL,
            all: false,
            exec_id: Some(exec_id.to_owned()),
        };
        if let Err(e) = self.client.call(kill) {
            tracing::debug!("cannot kill exec {exec_id}: {e}");
        }
    }
}
