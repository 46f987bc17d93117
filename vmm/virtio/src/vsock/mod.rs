//! virtio-vsock with its host side inside the VMM process.
//!
//! Host code gets stream endpoints as ordinary [`UnixStream`]s (one end of a
//! socket pair; the device holds the other end):
//! - [`VsockHost::connect`]`(guest_port)`: connect to a port the guest
//!   listens on. If the guest refuses (RST), the stream reads EOF at once.
//! - [`VsockHost::listen`]`(host_port)`: accept guest connections to
//!   `CID 2:host_port` with [`VsockListener::accept`]; the listener has a
//!   pollable fd ([`VsockListener::as_raw_fd`]) for event loops.
//!
//! Closing (or shutting down the write half of) a host stream sends the
//! guest SHUTDOWN(SEND), i.e. EOF; when the guest shuts down its sending
//! side the host stream reads EOF. Flow control to the guest is credit
//! based: a slow host reader stalls only its own connection.

pub mod connection;
pub mod muxer;
pub mod packet;

use std::io;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{Epoll, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::common::VirtioCommon;
use crate::defs::TYPE_VSOCK;
use crate::device::VirtioDevice;
use crate::interrupt::Interrupt;
use crate::worker::EventHandler;
use muxer::{Command, ListenerSink, Muxer, Shared, FIRST_CONN_TOKEN};

/// Size of each of the three queues.
pub const QUEUE_SIZE: u16 = 256;

const RX_TOKEN: u64 = 0;
const TX_TOKEN: u64 = 1;
const EVENT_TOKEN: u64 = 2;
const WAKE_TOKEN: u64 = 3;

/// The virtio-vsock device. A reset stops its worker, which drops every
/// connection: host ends read EOF.
#[derive(Debug)]
pub struct Vsock {
    common: VirtioCommon,
    guest_cid: u64,
    shared: Arc<Shared>,
}

impl Vsock {
    /// A device giving the guest context id `guest_cid` (3 or more).
    pub fn new(guest_cid: u64) -> io::Result<Self> {
        if guest_cid < 3 || guest_cid > u64::from(u32::MAX) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid guest CID {guest_cid}: must be in 3..=4294967295"),
            ));
        }
        // Config space: the guest CID, little endian.
        let config = guest_cid.to_le_bytes().to_vec();
        Ok(Self {
            common: VirtioCommon::new(TYPE_VSOCK, "virtio-vsock", &[QUEUE_SIZE; 3], 0, config),
            guest_cid,
            shared: Arc::new(Shared::new()?),
        })
    }

    /// A handle for host code to open and accept connections; works before
    /// and after the device is put on the bus, from any thread.
    pub fn host(&self) -> VsockHost {
        VsockHost {
            shared: self.shared.clone(),
        }
    }
}

/// Host-side entry point of a [`Vsock`] device (see the module docs).
#[derive(Debug, Clone)]
pub struct VsockHost {
    shared: Arc<Shared>,
}

impl VsockHost {
    /// A handle over `shared`, for code driving a bare [`Muxer`].
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
        self.shared
            .commands
            .lock()
            .map_err(|_| io::Error::other("vsock command queue poisoned"))?
            .push_back(Command::Connect {
                guest_port,
                stream: ours,
                outcome,
            });
        self.shared.wake.write(1)?;
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
    pub fn accept_timeout(&self, timeout: std::time::Duration) -> Option<UnixStream> {
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

impl VirtioDevice for Vsock {
    fn common(&self) -> &VirtioCommon {
        &self.common
    }

    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.common
    }

    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        let wake = self
            .shared
            .wake
            .try_clone()
            .map_err(ActivateError::Worker)?;
        let muxer = Muxer::new(self.guest_cid, self.shared.clone());
        self.common
            .activate(mem, interrupt, queues, |link, [rx, tx, event]| {
                Ok(VsockWorker {
                    link,
                    rx,
                    tx,
                    event,
                    wake,
                    muxer,
                })
            })
    }
}

/// The event glue of an active vsock device.
struct VsockWorker {
    link: GuestLink,
    rx: ActiveQueue,
    tx: ActiveQueue,
    event: ActiveQueue,
    wake: EventFd,
    muxer: Muxer,
}

impl EventHandler for VsockWorker {
    fn initial_fds(&self) -> Vec<(RawFd, u64)> {
        vec![
            (self.rx.notify.as_raw_fd(), RX_TOKEN),
            (self.tx.notify.as_raw_fd(), TX_TOKEN),
            (self.event.notify.as_raw_fd(), EVENT_TOKEN),
            (self.wake.as_raw_fd(), WAKE_TOKEN),
        ]
    }

    fn handle_event(&mut self, token: u64, events: EventSet, epoll: &Epoll) {
        let mut used = 0usize;
        match token {
            RX_TOKEN => {
                let _ = self.rx.notify.read();
            }
            TX_TOKEN => {
                let _ = self.tx.notify.read();
                let result = self
                    .muxer
                    .process_tx(&self.link.mem, &mut self.tx.queue, epoll);
                used += self.link.chains_used("TX", result);
            }
            EVENT_TOKEN => {
                let _ = self.event.notify.read();
            }
            WAKE_TOKEN => self.muxer.process_commands(epoll),
            t if t >= FIRST_CONN_TOKEN => self.muxer.socket_event(t, events, epoll),
            _ => {}
        }
        let result = self
            .muxer
            .fill_rx(&self.link.mem, &mut self.rx.queue, epoll);
        used += self.link.chains_used("RX", result);
        if used > 0 {
            self.link.signal_used();
        }
    }
}
