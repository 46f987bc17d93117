//! The control connection: handshake, then one response per request.
//!
//! Requests are read and handled in order on the calling thread, except
//! that a `Wait` whose container is still running is answered later from a
//! thread of its own, so `Signal` (answered at once) is never stuck behind
//! it. Responses share one writer under a lock, so frames never interleave.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use vmrun_protocol::{
    read_frame, server_handshake, write_frame, Envelope, ExitStatus, FrameError, Request, Response,
    RootfsSource, StdioPorts,
};

use super::container::{self, check_id, Container, Containers, Prepared, State};
use super::transport::SocketStream;
use super::tty::{PtyRelay, TerminalStreams};
use super::ServeEnv;
use crate::marker::{self, Marker};

/// Most containers one agent holds at a time.
pub const MAX_CONTAINERS: usize = 16;
/// Most `Wait` requests pending at once (each holds a thread).
pub const MAX_PENDING_WAITS: usize = 64;
/// How long `Shutdown` waits for each killed container to exit.
pub const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why [`serve`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// The host asked for `Shutdown` (and got its answer).
    Shutdown,
    /// The connection closed or broke without a `Shutdown`.
    ConnectionLost,
}

/// Writes responses; shared by the request loop and `Wait` threads.
#[derive(Debug, Clone)]
struct Responder {
    stream: Arc<Mutex<SocketStream>>,
}

impl Responder {
    fn send(&self, id: u64, body: Response) {
        let mut stream = self
            .stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Err(err) = write_frame(&mut *stream, &Envelope { id, body }) {
            // The request loop notices the broken connection on its read.
            tracing::warn!("writing the response to request {id}: {err}");
        }
    }

    fn shutdown(&self) {
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .shutdown();
    }
}

/// `process.consoleSize` must fit a `struct winsize` (u16 rows and cols).
fn check_console_size(spec: &vmrun_isolation::oci_spec::runtime::Spec) -> Result<()> {
    let Some(size) = spec.process().as_ref().and_then(|p| p.console_size()) else {
        return Ok(());
    };
    for (field, value) in [("height", size.height()), ("width", size.width())] {
        if u16::try_from(value).is_err() {
            bail!(
                "spec: process.consoleSize.{field}: {value} is larger than {}",
                u16::MAX
            );
        }
    }
    Ok(())
}

/// For a terminal container: keeps stdin and stdout for the pty relay,
/// closes stderr at once (the host sees EOF: a terminal has no separate
/// stderr) and gives the container runtime /dev/null placeholders.
fn terminal_stdio(
    stdio: vmrun_isolation::Stdio,
) -> Result<(vmrun_isolation::Stdio, Option<TerminalStreams>)> {
    let vmrun_isolation::Stdio {
        stdin,
        stdout,
        stderr,
    } = stdio;
    drop(stderr);
    let placeholders = vmrun_isolation::Stdio {
        stdin: container::dev_null()?,
        stdout: container::dev_null()?,
        stderr: container::dev_null()?,
    };
    Ok((placeholders, Some(TerminalStreams { stdin, stdout })))
}

fn error_response(err: &anyhow::Error) -> Response {
    Response::Error {
        message: format!("{err:#}"),
    }
}

fn exit_response(outcome: Result<ExitStatus, String>) -> Response {
    match outcome {
        Ok(status) => Response::Exited { status },
        Err(message) => Response::Error { message },
    }
}

/// Serves one control connection until `Shutdown` or until it drops; in
/// both cases every container is killed and its rootfs released first.
/// Errors only for a failed handshake (the host got an error response when
/// the versions differ).
pub fn serve(mut stream: SocketStream, env: &ServeEnv) -> Result<ServeEnd> {
    server_handshake(&mut stream).context("control connection handshake")?;
    let reader = stream
        .try_clone()
        .context("duplicating the control socket")?;
    let server = Server {
        env,
        containers: Containers::default(),
        responder: Responder {
            stream: Arc::new(Mutex::new(stream)),
        },
        pending_waits: Arc::new(AtomicUsize::new(0)),
    };
    let end = server.request_loop(reader);
    server.finish(end);
    Ok(end)
}

/// Takes the pty master from a started terminal container and starts
/// relaying it (a terminal container without a master is an error: the
/// caller's drop of `process` kills it).
fn start_tty(
    id: &str,
    process: &mut vmrun_isolation::ContainerProcess,
    streams: TerminalStreams,
) -> Result<PtyRelay> {
    let master = process
        .take_pty_master()
        .ok_or_else(|| anyhow!("process.terminal: the container runtime gave no pty master"))?;
    PtyRelay::start(id, master, streams)
}

struct Server<'env> {
    env: &'env ServeEnv,
    containers: Containers,
    responder: Responder,
    pending_waits: Arc<AtomicUsize>,
}

impl Server<'_> {
    fn request_loop(&self, mut reader: SocketStream) -> ServeEnd {
        loop {
            let value: serde_json::Value = match read_frame(&mut reader) {
                Ok(value) => value,
                Err(FrameError::Closed) => {
                    tracing::warn!("the host closed the control connection");
                    return ServeEnd::ConnectionLost;
                }
                Err(FrameError::Malformed(err)) => {
                    // The frame was whole: answer and keep going.
                    let err = anyhow!(err).context("malformed request frame (not JSON)");
                    self.responder.send(0, error_response(&err));
                    continue;
                }
                Err(err) => {
                    // Bad length, truncated frame or I/O error: the stream
                    // cannot be resynchronised.
                    tracing::warn!("control connection: {err}; closing it");
                    return ServeEnd::ConnectionLost;
                }
            };
            let request_id = value.get("id").and_then(|id| id.as_u64()).unwrap_or(0);
            let envelope: Envelope<Request> = match serde_json::from_value(value) {
                Ok(envelope) => envelope,
                Err(err) => {
                    let err = anyhow!(err).context("malformed request");
                    self.responder.send(request_id, error_response(&err));
                    continue;
                }
            };
            if let Some(end) = self.handle(envelope) {
                return end;
            }
        }
    }

    /// Handles one request; `Some` ends the loop.
    fn handle(&self, envelope: Envelope<Request>) -> Option<ServeEnd> {
        let Envelope { id, body } = envelope;
        let result = match body {
            Request::Hello { .. } => Err(anyhow!("hello: the handshake is already done")),
            Request::Create {
                id: cid,
                spec,
                rootfs,
                stdio,
                no_pivot,
            } => self
                .create(cid, &spec, &rootfs, &stdio, no_pivot)
                .map(|()| Response::Ok),
            Request::Start { id: cid } => self
                .start(&cid)
                .map(|warnings| Response::Started { warnings }),
            Request::Signal { id: cid, signal } => self.signal(&cid, signal).map(|()| Response::Ok),
            Request::Resize {
                id: cid,
                rows,
                cols,
            } => self.resize(&cid, rows, cols).map(|()| Response::Ok),
            Request::Wait { id: cid } => match self.wait(id, &cid) {
                Ok(Some(response)) => Ok(response),
                Ok(None) => return None, // answered later by its thread
                Err(err) => Err(err),
            },
            Request::Shutdown => {
                tracing::info!("shutdown requested");
                self.stop_everything();
                self.responder.send(id, Response::Ok);
                return Some(ServeEnd::Shutdown);
            }
        };
        let response = result.unwrap_or_else(|err| error_response(&err));
        self.responder.send(id, response);
        None
    }

    fn create(
        &self,
        id: String,
        spec: &serde_json::Value,
        rootfs: &RootfsSource,
        stdio: &StdioPorts,
        no_pivot: bool,
    ) -> Result<()> {
        check_id(&id)?;
        {
            let table = container::lock(&self.containers);
            if table.contains_key(&id) {
                bail!("id: a container {id:?} already exists");
            }
            if table.len() >= MAX_CONTAINERS {
                bail!("id: this agent already holds {MAX_CONTAINERS} containers");
            }
        }
        let spec_json = serde_json::to_vec(spec).context("spec: cannot re-encode")?;
        let spec = vmrun_isolation::spec::parse_spec(&spec_json).context("spec")?;
        vmrun_isolation::validate::validate(&spec).context("spec")?;
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        if terminal {
            check_console_size(&spec)?;
        }
        let readonly = spec
            .root()
            .as_ref()
            .and_then(|root| root.readonly())
            .unwrap_or(false);
        let rootfs_dir = self.env.rootfs.prepare(&id, rootfs, readonly)?;
        let connected = self.connect_stdio(stdio).and_then(|stdio| {
            if terminal {
                terminal_stdio(stdio)
            } else {
                Ok((stdio, None))
            }
        });
        let (stdio, terminal) = match connected {
            Ok(connected) => connected,
            Err(err) => {
                self.env.rootfs.release(&id, &rootfs_dir);
                return Err(err);
            }
        };
        tracing::info!(
            "created container {id} (rootfs {}{})",
            rootfs_dir.display(),
            if terminal.is_some() { ", terminal" } else { "" }
        );
        container::lock(&self.containers).insert(
            id,
            Container::created(
                rootfs_dir,
                Prepared {
                    spec,
                    stdio,
                    terminal,
                    no_pivot,
                },
            ),
        );
        Ok(())
    }

    fn connect_stdio(&self, ports: &StdioPorts) -> Result<vmrun_isolation::Stdio> {
        let open = |name: &str, port: Option<u32>| match port {
            Some(port) => self
                .env
                .stdio
                .connect(port)
                .with_context(|| format!("stdio.{name}: connecting to the host's port {port}")),
            None => container::dev_null(),
        };
        Ok(vmrun_isolation::Stdio {
            stdin: open("stdin", ports.stdin)?,
            stdout: open("stdout", ports.stdout)?,
            stderr: open("stderr", ports.stderr)?,
        })
    }

    /// Starts container `id`; returns the spec fields the guest ignored.
    fn start(&self, id: &str) -> Result<Vec<String>> {
        let (prepared, rootfs, cell) = {
            let mut table = container::lock(&self.containers);
            let container = table
                .get_mut(id)
                .ok_or_else(|| anyhow!("id: no container {id:?}"))?;
            match std::mem::replace(&mut container.state, State::Starting) {
                State::Created(prepared) => (
                    prepared,
                    container.rootfs.clone(),
                    Arc::clone(&container.exit),
                ),
                other => {
                    container.state = other;
                    bail!("container {id:?} was already started");
                }
            }
        };
        let mut opts = self.env.run_options.clone();
        opts.id = id.to_owned();
        let Prepared {
            spec,
            stdio,
            terminal,
            no_pivot,
        } = *prepared;
        opts.no_pivot |= no_pivot;
        let launched =
            container::launch(spec, stdio, rootfs, opts.clone()).and_then(|mut process| {
                let tty = match terminal {
                    Some(streams) => Some(Arc::new(start_tty(id, &mut process, streams)?)),
                    None => None,
                };
                Ok((process, tty))
            });
        let (process, tty) = match launched {
            Ok(launched) => launched,
            Err(err) => {
                let err = err.context(format!("starting container {id}"));
                if let Some(c) = container::lock(&self.containers).get_mut(id) {
                    c.state = State::Done;
                }
                cell.set(Err(format!("{err:#}")));
                return Err(err);
            }
        };
        let exited = self.env.reaper.watch(Pid::from_raw(process.pid()));
        tracing::info!("started container {id} (pid {})", process.pid());
        let warnings = process.warnings().iter().map(|w| w.to_string()).collect();
        if let Some(c) = container::lock(&self.containers).get_mut(id) {
            c.state = State::Running(Box::new(process));
            c.tty = tty.clone();
        }
        marker::write(Marker::ContainerStarted);
        container::spawn_exit_watcher(
            Arc::clone(&self.containers),
            id.to_owned(),
            exited,
            cell,
            tty,
        )?;
        Ok(warnings)
    }

    fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<()> {
        let table = container::lock(&self.containers);
        let container = table
            .get(id)
            .ok_or_else(|| anyhow!("id: no container {id:?}"))?;
        match (&container.state, &container.tty) {
            (State::Running(_), Some(tty)) => tty
                .resize(rows, cols)
                .with_context(|| format!("resizing the terminal of container {id}")),
            (State::Running(_) | State::Done, None) => {
                bail!("container {id:?} has no terminal (process.terminal is false)")
            }
            (State::Created(_) | State::Starting, _) => bail!("container {id:?} is not started"),
            (State::Done, Some(_)) => bail!("container {id:?} is not running"),
        }
    }

    fn signal(&self, id: &str, signal: i32) -> Result<()> {
        let signal = Signal::try_from(signal)
            .map_err(|_| anyhow!("signal: {signal} is not a signal number"))?;
        let table = container::lock(&self.containers);
        let container = table
            .get(id)
            .ok_or_else(|| anyhow!("id: no container {id:?}"))?;
        container::signal(container, id, signal)
    }

    /// `Ok(None)`: a thread answers when the container exits.
    fn wait(&self, request_id: u64, id: &str) -> Result<Option<Response>> {
        let cell = {
            let table = container::lock(&self.containers);
            let container = table
                .get(id)
                .ok_or_else(|| anyhow!("id: no container {id:?}"))?;
            Arc::clone(&container.exit)
        };
        if let Some(outcome) = cell.get() {
            return Ok(Some(exit_response(outcome)));
        }
        if self.pending_waits.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_WAITS {
            self.pending_waits.fetch_sub(1, Ordering::SeqCst);
            bail!("too many pending wait requests (at most {MAX_PENDING_WAITS})");
        }
        let responder = self.responder.clone();
        let pending = Arc::clone(&self.pending_waits);
        let spawned = std::thread::Builder::new()
            .name(format!("answer-wait-{request_id}"))
            .spawn(move || {
                let outcome = cell.wait();
                responder.send(request_id, exit_response(outcome));
                pending.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(err) = spawned {
            self.pending_waits.fetch_sub(1, Ordering::SeqCst);
            return Err(anyhow!(err).context("spawning a thread for the wait request"));
        }
        Ok(None)
    }

    /// Kills every container and releases every rootfs.
    fn stop_everything(&self) {
        container::stop_all(&self.containers, KILL_TIMEOUT);
        let released: HashMap<String, Container> =
            std::mem::take(&mut *container::lock(&self.containers));
        for (id, container) in released {
            self.env.rootfs.release(&id, &container.rootfs);
        }
    }

    fn finish(&self, end: ServeEnd) {
        if end == ServeEnd::ConnectionLost {
            self.stop_everything();
        }
        // Wakes nobody up any more: every cell has an outcome, and pending
        // Wait threads write into a closed socket (ignored).
        self.responder.shutdown();
    }
}
