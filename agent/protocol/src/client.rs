//! Host side of the control connection for concurrent callers: one thread
//! may block in `Wait` while another sends `Signal`. Responses are matched
//! to requests by id.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use crate::frame::{read_frame, write_frame, FrameError};
use crate::handshake::{client_handshake, ProtocolError};
use crate::messages::{Envelope, Request, Response};

/// The reader thread's stack: under 2 MiB, as all of the VMM's long-lived
/// threads (`vmrun_virtio::worker::THREAD_STACK_SIZE` says why).
const READER_STACK_SIZE: usize = (2 << 20) - (64 << 10);

type Waiters = Arc<Mutex<Option<HashMap<u64, mpsc::Sender<Response>>>>>;

/// A handshaken control connection (see the module docs).
#[derive(Debug)]
pub struct ControlClient {
    writer: Mutex<UnixStream>,
    waiters: Waiters,
    next_id: AtomicU64,
    reader: Option<JoinHandle<()>>,
}

impl ControlClient {
    /// Performs the version handshake on `stream` and starts the response reader.
    pub fn connect(mut stream: UnixStream) -> Result<Self, ProtocolError> {
        client_handshake(&mut stream)?;
        let mut read_half = stream.try_clone().map_err(FrameError::Io)?;
        let waiters: Waiters = Arc::new(Mutex::new(Some(HashMap::new())));
        let reader_waiters = waiters.clone();
        let reader = std::thread::Builder::new()
            .name("vmrun-control".into())
            .stack_size(READER_STACK_SIZE)
            .spawn(move || {
                while let Ok(answer) = read_frame::<_, Envelope<Response>>(&mut read_half) {
                    let sender = match reader_waiters.lock() {
                        Ok(mut w) => w.as_mut().and_then(|w| w.remove(&answer.id)),
                        Err(_) => None,
                    };
                    // A response nobody waits for is dropped.
                    if let Some(sender) = sender {
                        let _ = sender.send(answer.body);
                    }
                }
                // Connection gone (or garbage): fail every waiting caller.
                if let Ok(mut w) = reader_waiters.lock() {
                    *w = None;
                }
            })
            .map_err(FrameError::Io)?;
        Ok(Self {
            writer: Mutex::new(stream),
            waiters,
            next_id: AtomicU64::new(1),
            reader: Some(reader),
        })
    }

    /// Number of requests still waiting for their response.
    pub fn pending_requests(&self) -> usize {
        match self.waiters.lock() {
            Ok(w) => w.as_ref().map_or(0, |w| w.len()),
            Err(_) => 0,
        }
    }

    /// Sends `request` and blocks until its response arrives. Agent errors
    /// come back as [`ProtocolError::Agent`]; a lost connection as
    /// [`FrameError::Closed`].
    pub fn call(&self, request: Request) -> Result<Response, ProtocolError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel();
        {
            let mut waiters = self.waiters.lock().map_err(|_| FrameError::Closed)?;
            let Some(waiters) = waiters.as_mut() else {
                return Err(FrameError::Closed.into());
            };
            waiters.insert(id, tx);
        }
        {
            let mut writer = self.writer.lock().map_err(|_| FrameError::Closed)?;
            write_frame(&mut *writer, &Envelope { id, body: request })?;
        }
        match rx.recv() {
            Ok(Response::Error { message }) => Err(ProtocolError::Agent(message)),
            Ok(response) => Ok(response),
            Err(_) => Err(FrameError::Closed.into()),
        }
    }
}

impl Drop for ControlClient {
    fn drop(&mut self) {
        if let Ok(writer) = self.writer.lock() {
            let _ = writer.shutdown(std::net::Shutdown::Both);
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
