//! virtio-vsock with its host side inside the VMM process.
//!
//! Host code gets stream endpoints as ordinary [`UnixStream`]s (one end of a
//! socket pair; the device holds the other end):
//! - [`VsockHost::connect`]`(guest_port)`: connect to a port the guest
//!   listens on. If the guest refuses (RST), the stream reads EOF at once.
//! - [`VsockHost::listen`]`(host_port)`: accept guest connections to
//!   `CID 2:host_port` with [`VsockListener::accept`]; the listener has a
//!   pollable fd (it implements [`AsRawFd`](std::os::unix::io::AsRawFd)) for event loops.
//!
//! Closing (or shutting down the write half of) a host stream sends the
//! guest SHUTDOWN(SEND), i.e. EOF; when the guest shuts down its sending
//! side the host stream reads EOF. Flow control to the guest is credit
//! based: a slow host reader stalls only its own connection.
//!
//! # Shape
//!
//! | file | concern |
//! |---|---|
//! | `host.rs` | host-facing handles ([`VsockHost`], [`VsockListener`]) and what they share with the device: commands, listeners, accept queues |
//! | `connection.rs` | one connection's state machine (states, credit, pending data) |
//! | `router.rs` | the connection table keyed by ports; routes events to connections, returns socket interest changes |
//! | `tx.rs`, `rx.rs` | guest TX packets parsed into the router; what goes into the next RX buffer, copied there |
//! | `packet.rs` | the packet header |
//! | `epoll_glue.rs` | the device's worker: wakes on queues, commands and sockets, applies interest changes; the only part that knows epoll |
//!
//! [`UnixStream`]: std::os::unix::net::UnixStream

pub mod connection;
pub mod host;
pub mod packet;
pub mod router;
pub mod rx;
pub mod tx;

mod epoll_glue;

use std::io;
use std::sync::Arc;

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::common::VirtioCommon;
use crate::defs::TYPE_VSOCK;
use crate::device::VirtioDevice;
use epoll_glue::VsockWorker;
use host::Shared;
pub use host::{VsockHost, VsockListener};
use router::Router;

/// Size of each of the three queues.
pub const QUEUE_SIZE: u16 = 256;

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
        VsockHost::from_shared(self.shared.clone())
    }
}

impl VirtioDevice for Vsock {
    fn common(&self) -> &VirtioCommon {
        &self.common
    }

    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.common
    }

    fn activate(&mut self, link: GuestLink, queues: Vec<ActiveQueue>) -> Result<(), ActivateError> {
        let wake = self
            .shared
            .wake_evt()
            .try_clone()
            .map_err(ActivateError::Worker)?;
        let router = Router::new(self.guest_cid, self.shared.clone());
        self.common.activate(link, queues, |link, queues| {
            Ok(VsockWorker::new(link, queues, wake, router))
        })
    }
}
