//! The control connection: handshake, then one response per request.
//!
//! Requests are read and handled in order on the calling thread, except
//! that a `Wait` whose process is still running is answered later from a
//! thread of its own, so `Signal` (answered at once) is never stuck behind
//! it. The handlers live by topic: [`super::lifecycle`] (create, start,
//! signal, resize, wait, state), [`super::exec`] and [`super::cgroup_ops`]
//! (pause, resume, update, stats, processes).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use vmrun_protocol::{read_frame, server_handshake, Envelope, FrameError, Request, Response};

use super::container::{self, Container, Containers};
use super::lifecycle::{CreateFlags, CreateSources};
use super::responder::Responder;
use super::transport::SocketStream;
use super::ServeEnv;

/// Most containers one agent holds at a time.
pub const MAX_CONTAINERS: usize = 16;
pub use super::responder::MAX_PENDING_WAITS;
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

fn error_response(err: &anyhow::Error) -> Response {
    Response::Error {
        message: format!("{err:#}"),
    }
}

/// Serves one control connection until `Shutdown` or until it drops; in
/// both cases every container (exec'd processes included) is killed and
/// its rootfs released first. Errors only for a failed handshake (the host
/// got an error response when the versions differ).
pub fn serve(mut stream: SocketStream, env: &ServeEnv) -> Result<ServeEnd> {
    server_handshake(&mut stream).context("control connection handshake")?;
    let reader = stream
        .try_clone()
        .context("duplicating the control socket")?;
    let server = Server {
        env,
        containers: Containers::default(),
        responder: Responder::new(stream),
    };
    let end = server.request_loop(reader);
    server.finish(end);
    Ok(end)
}

/// The state of one control connection, shared by the request handlers.
pub(super) struct Server<'env> {
    pub(super) env: &'env ServeEnv,
    pub(super) containers: Containers,
    pub(super) responder: Responder,
}

/// What a handler did with its request.
pub(super) enum Answer {
    /// Answer now.
    Now(Response),
    /// A thread answers later (a `Wait` for a running process).
    Later,
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
        if let Request::Shutdown = body {
            tracing::info!("shutdown requested");
            self.stop_everything();
            // The host may stop the VM as soon as it has the answer: what
            // the containers wrote must be on the host's side by then.
            nix::unistd::sync();
            self.responder.send(id, Response::Ok);
            return Some(ServeEnd::Shutdown);
        }
        match self.dispatch(id, body) {
            Ok(Answer::Now(response)) => self.responder.send(id, response),
            Ok(Answer::Later) => {}
            Err(err) => self.responder.send(id, error_response(&err)),
        }
        None
    }

    fn dispatch(&self, request_id: u64, body: Request) -> Result<Answer> {
        let now = |response| Ok(Answer::Now(response));
        match body {
            Request::Hello { .. } => Err(anyhow!("hello: the handshake is already done")),
            Request::Create {
                id,
                spec,
                rootfs,
                stdio,
                no_pivot,
                shares,
                network,
                ends_vm,
            } => now(Response::Created {
                pid: self.create(
                    id,
                    &spec,
                    CreateSources {
                        rootfs: &rootfs,
                        shares: &shares,
                        network: &network,
                    },
                    &stdio,
                    CreateFlags { no_pivot, ends_vm },
                )?,
            }),
            Request::Start { id } => now(Response::Started {
                warnings: self.start(&id)?,
            }),
            Request::Signal {
                id,
                signal,
                all,
                exec_id,
            } => {
                self.signal(&id, signal, all, exec_id.as_deref())?;
                now(Response::Ok)
            }
            Request::Resize {
                id,
                rows,
                cols,
                exec_id,
            } => {
                self.resize(&id, rows, cols, exec_id.as_deref())?;
                now(Response::Ok)
            }
            Request::Wait { id, exec_id } => self.wait(request_id, &id, exec_id.as_deref()),
            Request::Exec {
                id,
                exec_id,
                process,
                stdio,
            } => now(Response::ExecStarted {
                pid: self.exec(&id, &exec_id, &process, &stdio)?,
            }),
            Request::Pause { id } => {
                self.pause(&id)?;
                now(Response::Ok)
            }
            Request::Resume { id } => {
                self.resume(&id)?;
                now(Response::Ok)
            }
            Request::Update { id, resources } => {
                self.update(&id, &resources)?;
                now(Response::Ok)
            }
            Request::Stats { id } => now(Response::Stats {
                stats: self.stats(&id)?,
            }),
            Request::Processes { id } => now(Response::Processes {
                processes: self.processes(&id)?,
            }),
            Request::State { id } => {
                let (status, pid) = self.state(&id)?;
                now(Response::State { status, pid })
            }
            Request::Shutdown => Err(anyhow!("shutdown is handled before dispatch")),
        }
    }

    /// Runs `f` on container `id` under the table lock; an error naming
    /// the id if there is no such container.
    pub(super) fn with_container<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container) -> Result<T>,
    ) -> Result<T> {
        let mut table = container::lock(&self.containers);
        let container = table
            .get_mut(id)
            .ok_or_else(|| anyhow!("id: no container {id:?}"))?;
        f(container)
    }

    /// Kills every container, releases every rootfs, unmounts the shares.
    fn stop_everything(&self) {
        container::stop_all(&self.containers, KILL_TIMEOUT);
        let released: HashMap<String, Container> =
            std::mem::take(&mut *container::lock(&self.containers));
        for (id, container) in released {
            self.env.rootfs.release(&id, &container.rootfs);
        }
        self.env.shares.unmount_all();
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
