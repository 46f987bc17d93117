//! The host-facing side of vsock: handles host code uses from any thread
//! ([`VsockHost`], [`VsockListener`]) and the state they share with the
//! device's router ([`Shared`]: queued connect commands, the listener table
//! and each listener's accept queue).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use tracing::debug;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Most guest connections waiting in one listener's accept queue.
pub const MAX_PENDING_ACCEPTS: usize = 32;

/// Requests from host code, handled on the device's worker thread.
#[derive(Debug)]
pub enum Command {
    /// Connect to `guest_port`; `stream` is the device's end of the pair.
    Connect {
        /// Guest port to connect to.
        guest_port: u32,
        /// The device's end of the socket pair.
        stream: UnixStream,
        /// Told `true` when the guest accepts, `false` when it refuses.
        outcome: Option<mpsc::Sender<bool>>,
    },
}

/// Where a listener's accepted streams go: its accept queue.
#[derive(Debug)]
struct ListenerSink {
    /// Accepted streams.
    tx: mpsc::Sender<UnixStream>,
    /// Streams sent but not accepted yet.
    pending: Arc<AtomicUsize>,
    /// Signalled once per accepted stream (lets the VMM poll).
    evt: EventFd,
}

/// State shared between host-side handles and the device's router.
#[derive(Debug)]
pub struct Shared {
    commands: Mutex<VecDeque<Command>>,
    wake: EventFd,
    listeners: Mutex<HashMap<u32, ListenerSink>>,
}

impl Shared {
    /// Empty shared state.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            commands: Mutex::new(VecDeque::new()),
            wake: EventFd::new(EFD_NONBLOCK)?,
            listeners: Mutex::new(HashMap::new()),
        })
    }

    /// Signalled whenever a command is queued (the worker watches it).
    pub fn wake_evt(&self) -> &EventFd {
        &self.wake
    }

    /// Queues `command` and wakes the worker.
    fn push_command(&self, command: Command) -> io::Result<()> {
        self.commands
            .lock()
            .map_err(|_| io::Error::other("vsock command queue poisoned"))?
            .push_back(command);
        self.wake.write(1)
    }

    /// Takes every queued command (and clears the wake-up).
    pub fn take_commands(&self) -> Vec<Command> {
        let _ = self.wake.read();
        match self.commands.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// Hands a guest connection to the listener on host port `port`.
    /// Returns false (the guest is to be refused) when nobody listens
    /// there, its accept queue is full, or the listener was dropped (then
    /// the port stops listening).
    pub fn offer(&self, port: u32, stream: UnixStream) -> bool {
        let Ok(mut listeners) = self.listeners.lock() else {
            return false;
        };
        let Some(sink) = listeners.get(&port) else {
            return false;
        };
        if sink.pending.load(Ordering::SeqCst) >= MAX_PENDING_ACCEPTS {
            debug!(port, "vsock: accept queue full; connection refused");
            return false;
        }
        if sink.tx.send(stream).is_err() {
            listeners.remove(&port);
            return false;
        }
        sink.pending.fetch_add(1, Ordering::SeqCst);
        let _ = sink.evt.write(1);
        true
    }
}

/// Host-side entry point of a [`Vsock`](super::Vsock) device (see the
/// module docs of [`crate::vsock`]).
#[derive(Debug, Clone)]
pub struct VsockHost {
    shared: Arc<Shared>,
}

impl VsockHost {
    /// A handle over `shared`, for code driving a bare
    /// [`Router`](super::router::Router).
    pub fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Connects to `guest_port` in the guest. The returned stream is
    /// blocking; data written before the guest accepts is delivered once it
    /// does. A refused connection reads EOF.
    pub fn connect(&self, guest_port: u32) -> io::Result<UnixStream> {
        self.queue_connect(guest_port, None)
    }

    /// Connects to `guest_port` and waits up to `timeout` for the guest to
    /// accept. Errors: `ConnectionRefused` when nothing listens there (yet:
    /// callers waiting for a guest service retry), `TimedOut` when the
    /// guest did not answer (e.g. its vsock driver is not up yet).
    pub fn connect_timeout(&self, guest_port: u32, timeout: Duration) -> io::Result<UnixStream> {
        let (tx, rx) = mpsc::channel();
        let stream = self.queue_connect(guest_port, Some(tx))?;
        match rx.recv_timeout(timeout) {
            Ok(true) => Ok(stream),
            Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("guest refused vsock connection to port {guest_port}"),
            )),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("guest did not answer a vsock connection to port {guest_port}"),
            )),
        }
    }

    fn queue_connect(
        &self,
        guest_port: u32,
        outcome: Option<mpsc::Sender<bool>>,
    ) -> io::Result<UnixStream> {
        let (ours, theirs) = UnixStream::pair()?;
        self.shared.push_command(Command::Connect {
            guest_port,
            stream: ours,
            outcome,
        })?;
        Ok(theirs)
    }

    /// Starts accepting guest connections to host port `port`.
    pub fn listen(&self, port: u32) -> io::Result<VsockListener> {
        let (tx, rx) = mpsc::channel();
        let evt = EventFd::new(EFD_NONBLOCK)?;
        let pending = Arc::new(AtomicUsize::new(0));
        let sink = ListenerSink {
            tx,
            pending: pending.clone(),
            evt: evt.try_clone()?,
        };
        let mut listeners = self
            .shared
            .listeners
            .lock()
            .map_err(|_| io::Error::other("vsock listener table poisoned"))?;
        if listeners.contains_key(&port) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("vsock host port {port} already has a listener"),
            ));
        }
        listeners.insert(port, sink);
        Ok(VsockListener {
            port,
            rx,
            pending,
            evt,
        })
    }

    /// Stops listening on `port` (connections already accepted stay open).
    pub fn unlisten(&self, port: u32) {
        if let Ok(mut listeners) = self.shared.listeners.lock() {
            listeners.remove(&port);
        }
    }
}

/// Guest connections to one host port.
#[derive(Debug)]
pub struct VsockListener {
    port: u32,
    rx: mpsc::Receiver<UnixStream>,
    pending: Arc<AtomicUsize>,
    evt: EventFd,
}

impl VsockListener {
    /// The host port.
    pub fn port(&self) -> u32 {
        self.port
    }

    fn took_one(&self) {
        let _ = self.evt.read();
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }

    /// Blocks until the guest connects; returns the (blocking) stream.
    pub fn accept(&self) -> io::Result<UnixStream> {
        let stream = self
            .rx
            .recv()
            .map_err(|_| io::Error::other("vsock device gone"))?;
        self.took_one();
        Ok(stream)
    }

    /// Returns a connection if one is waiting.
    pub fn try_accept(&self) -> Option<UnixStream> {
        let stream = self.rx.try_recv().ok()?;
        self.took_one();
        Some(stream)
    }

    /// Waits up to `timeout` for a connection.
    pub fn accept_timeout(&self, timeout: Duration) -> Option<UnixStream> {
        let stream = self.rx.recv_timeout(timeout).ok()?;
        self.took_one();
        Some(stream)
    }
}

impl AsRawFd for VsockListener {
    /// Readable when a connection may be waiting (an eventfd).
    fn as_raw_fd(&self) -> RawFd {
        self.evt.as_raw_fd()
    }
}
