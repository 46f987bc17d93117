//! Writing responses on the control connection: one writer shared by the
//! request loop and the threads that answer `Wait` later, so frames never
//! interleave.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Result};
use vmrun_protocol::frame::encode;
use vmrun_protocol::{Envelope, ExitStatus, Response};

use super::exit_cell::ExitCell;
use super::transport::SocketStream;

/// Most `Wait` requests pending at once (each holds a thread).
pub const MAX_PENDING_WAITS: usize = 64;

/// Writes responses; shared by the request loop and `Wait` threads.
#[derive(Debug, Clone)]
pub struct Responder {
    stream: Arc<Mutex<SocketStream>>,
    pending_waits: Arc<AtomicUsize>,
}

/// The response to a `Wait`: the exit status, or why there is none.
pub fn exit_response(outcome: Result<ExitStatus, String>) -> Response {
    match outcome {
        Ok(status) => Response::Exited { status },
        Err(message) => Response::Error { message },
    }
}

impl Responder {
    /// Writes on `stream`.
    pub fn new(stream: SocketStream) -> Self {
        Self {
            stream: Arc::new(Mutex::new(stream)),
            pending_waits: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Sends the response to request `id`. A response too large for one
    /// frame is replaced by an error saying so (the host must not wait
    /// for an answer that never comes).
    pub fn send(&self, id: u64, body: Response) {
        let frame = encode(&Envelope { id, body }).or_else(|err| {
            tracing::warn!("the response to request {id} cannot be sent: {err}");
            let message = format!("the response cannot be sent: {err}");
            encode(&Envelope {
                id,
                body: Response::Error { message },
            })
        });
        let mut stream = self
            .stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let written = match frame {
            Ok(frame) => stream.write_all(&frame).map_err(anyhow::Error::from),
            Err(err) => Err(err.into()),
        };
        if let Err(err) = written {
            // The request loop notices the broken connection on its read.
            tracing::warn!("writing the response to request {id}: {err:#}");
        }
    }

    /// Answers `Wait` request `request_id` with `cell`'s outcome: now
    /// (`Some`) if there is one, else later from a thread of its own
    /// (`None`); at most [`MAX_PENDING_WAITS`] such threads.
    pub fn answer_wait(&self, request_id: u64, cell: Arc<ExitCell>) -> Result<Option<Response>> {
        if let Some(outcome) = cell.get() {
            return Ok(Some(exit_response(outcome)));
        }
        if self.pending_waits.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_WAITS {
            self.pending_waits.fetch_sub(1, Ordering::SeqCst);
            bail!("too many pending wait requests (at most {MAX_PENDING_WAITS})");
        }
        let responder = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("answer-wait-{request_id}"))
            .spawn(move || {
                let outcome = cell.wait();
                responder.send(request_id, exit_response(outcome));
                responder.pending_waits.fetch_sub(1, Ordering::SeqCst);
            });
        if let Err(err) = spawned {
            self.pending_waits.fetch_sub(1, Ordering::SeqCst);
            return Err(anyhow!(err).context("spawning a thread for the wait request"));
        }
        Ok(None)
    }

    /// Shuts the connection down (pending `Wait` threads then write into a
    /// closed socket, which is ignored).
    pub fn shutdown(&self) {
        self.stream
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .shutdown();
    }
}
