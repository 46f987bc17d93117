//! The event-loop glue of an active virtio-net device: the worker wakes on
//! the RX and TX queue notifications and on the tap becoming readable,
//! runs the plain RX/TX code, and keeps the tap in its epoll set only
//! while the guest has RX buffers (so a guest that stops taking frames
//! costs no CPU: frames wait in the tap). A queue that turns out broken
//! (e.g. its avail index jumped) is left alone until the driver resets the
//! device; every such condition is logged once per activation (and
//! rate-limited, since the driver can reset and break it again).

use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::epoll::{Epoll, EventSet};

use super::backend::FrameFd;
use super::rx::{Receiver, RxStop};
use super::stats::NetStats;
use super::tx::Transmitter;
use crate::activation::{ActiveQueue, GuestLink};
use crate::log_limited;
use crate::worker::{unwatch, watch, EventHandler};

const RX_TOKEN: u64 = 0;
const TX_TOKEN: u64 = 1;
const BACKEND_TOKEN: u64 = 2;

/// The worker's state (see the module docs).
pub struct NetWorker {
    link: GuestLink,
    rx: ActiveQueue,
    tx: ActiveQueue,
    backend: Arc<FrameFd>,
    stats: Arc<NetStats>,
    receiver: Receiver,
    transmitter: Transmitter,
    /// Whether the backend fd is in the epoll set (it is from the start).
    backend_watched: bool,
    /// The backend reached end of file or failed: no RX until a reset.
    backend_done: bool,
    rx_broken: bool,
    tx_broken: bool,
}

impl NetWorker {
    /// A worker over the RX and TX queues and `backend`, accepting TX
    /// frames of up to `max_tx_frame` bytes (Ethernet header included).
    pub fn new(
        link: GuestLink,
        [rx, tx]: [ActiveQueue; 2],
        backend: Arc<FrameFd>,
        stats: Arc<NetStats>,
        max_tx_frame: usize,
    ) -> Self {
        Self {
            link,
            rx,
            tx,
            backend,
            stats,
            receiver: Receiver::default(),
            transmitter: Transmitter::new(max_tx_frame),
            backend_watched: true,
            backend_done: false,
            rx_broken: false,
            tx_broken: false,
        }
    }

    /// Sends what the guest queued. Returns whether the guest must be signalled.
    fn transmit(&mut self) -> bool {
        if self.tx_broken {
            return false;
        }
        let mem = &self.link.mem;
        match self
            .transmitter
            .process(mem, &mut self.tx.queue, &self.backend, &self.stats)
        {
            Ok(used) => used > 0,
            Err(e) => {
                log_limited!(warn, error = %e, "virtio-net: TX queue broken; waiting for a reset");
                self.tx_broken = true;
                // Chains may have been given back before the queue broke.
                true
            }
        }
    }

    /// Moves tap frames into RX buffers. Returns whether the guest must be signalled.
    fn receive(&mut self, epoll: &Epoll) -> bool {
        if self.rx_broken || self.backend_done {
            return false;
        }
        let mem = &self.link.mem;
        match self
            .receiver
            .fill(mem, &mut self.rx.queue, &self.backend, &self.stats)
        {
            Ok(pass) => {
                match pass.stop {
                    RxStop::BackendEmpty | RxStop::Budget => self.watch_backend(epoll, true),
                    RxStop::NoBuffers => self.watch_backend(epoll, false),
                    RxStop::BackendClosed | RxStop::BackendFailed => {
                        log_limited!(
                            warn,
                            stop = ?pass.stop,
                            "virtio-net: tap closed or failed; RX stops until a reset"
                        );
                        self.backend_done = true;
                        self.watch_backend(epoll, false);
                    }
                }
                pass.used > 0
            }
            Err(e) => {
                log_limited!(warn, error = %e, "virtio-net: RX queue broken; waiting for a reset");
                self.rx_broken = true;
                self.watch_backend(epoll, false);
                true
            }
        }
    }

    /// Adds the backend fd to `epoll` (`want`) or removes it.
    fn watch_backend(&mut self, epoll: &Epoll, want: bool) {
        if want == self.backend_watched {
            return;
        }
        let fd = self.backend.as_raw_fd();
        let result = if want {
            watch(epoll, fd, BACKEND_TOKEN)
        } else {
            unwatch(epoll, fd)
        };
        match result {
            Ok(()) => self.backend_watched = want,
            Err(e) => log_limited!(
                warn,
                error = %e,
                want,
                "virtio-net: cannot change the tap's epoll registration"
            ),
        }
    }
}

impl EventHandler for NetWorker {
    fn initial_fds(&self) -> Vec<(RawFd, u64)> {
        vec![
            (self.rx.notify.as_raw_fd(), RX_TOKEN),
            (self.tx.notify.as_raw_fd(), TX_TOKEN),
            (self.backend.as_raw_fd(), BACKEND_TOKEN),
        ]
    }

    fn handle_event(&mut self, token: u64, _events: EventSet, epoll: &Epoll) {
        let signal = match token {
            TX_TOKEN => {
                let _ = self.tx.notify.read();
                self.transmit()
            }
            RX_TOKEN => {
                // New RX buffers: take frames again, polling the tap if it stopped.
                let _ = self.rx.notify.read();
                self.receive(epoll)
            }
            BACKEND_TOKEN => self.receive(epoll),
            _ => false,
        };
        if signal {
            self.link.signal_used();
        }
    }
}
