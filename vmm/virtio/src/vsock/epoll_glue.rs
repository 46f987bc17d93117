//! The event-loop glue of an active vsock device: the worker wakes on the
//! three queue notifications, host commands and connection sockets, hands
//! each to TX parsing, the router or RX scheduling, applies the socket
//! interest changes the router returns to epoll, and signals the guest.
//! This is the only vsock code that knows about epoll.

use std::os::unix::io::{AsRawFd, RawFd};

use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::EventFd;

use super::connection::Readiness;
use super::router::{InterestChange, Router, SocketInterest, FIRST_CONN_TOKEN};
use super::rx::fill_rx;
use super::tx::process_tx;
use crate::activation::{ActiveQueue, GuestLink};
use crate::log_limited;
use crate::worker::EventHandler;

const RX_TOKEN: u64 = 0;
const TX_TOKEN: u64 = 1;
const EVENT_TOKEN: u64 = 2;
const WAKE_TOKEN: u64 = 3;

/// The worker's state: the device's queues and its router.
pub struct VsockWorker {
    link: GuestLink,
    rx: ActiveQueue,
    tx: ActiveQueue,
    event: ActiveQueue,
    /// Signalled when host code queued a command.
    wake: EventFd,
    router: Router,
}

impl VsockWorker {
    /// A worker over the rx, tx and event queues, woken by `wake` for host
    /// commands, routing with `router`.
    pub fn new(
        link: GuestLink,
        [rx, tx, event]: [ActiveQueue; 3],
        wake: EventFd,
        router: Router,
    ) -> Self {
        Self {
            link,
            rx,
            tx,
            event,
            wake,
            router,
        }
    }
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
                let result = process_tx(&mut self.router, &self.link.mem, &mut self.tx.queue);
                used += self.link.chains_used("TX", result);
            }
            EVENT_TOKEN => {
                let _ = self.event.notify.read();
            }
            WAKE_TOKEN => self.router.process_commands(),
            t if t >= FIRST_CONN_TOKEN => self.router.on_socket_ready(t, readiness(events)),
            _ => {}
        }
        let result = fill_rx(&mut self.router, &self.link.mem, &mut self.rx.queue);
        used += self.link.chains_used("RX", result);
        apply_interest_changes(&mut self.router, epoll);
        if used > 0 {
            self.link.signal_used();
        }
    }
}

/// What epoll reported, as the router understands it.
fn readiness(events: EventSet) -> Readiness {
    Readiness {
        readable: events.intersects(EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP),
        writable: events.intersects(EventSet::OUT | EventSet::HANG_UP | EventSet::ERROR),
    }
}

/// `socket`'s interest as a one-shot epoll registration.
fn one_shot(socket: SocketInterest) -> EpollEvent {
    let mut events = EventSet::ONE_SHOT;
    if socket.interest.readable {
        events |= EventSet::IN | EventSet::READ_HANG_UP;
    }
    if socket.interest.writable {
        events |= EventSet::OUT;
    }
    EpollEvent::new(events, socket.token)
}

/// Applies the router's interest changes to `epoll`, in order. A socket
/// that cannot be watched resets its connection (whose removal is then
/// applied too).
pub fn apply_interest_changes(router: &mut Router, epoll: &Epoll) {
    loop {
        let changes = router.take_interest_changes();
        if changes.is_empty() {
            return;
        }
        for change in changes {
            let (op, socket, new) = match change {
                InterestChange::Add(socket) => (ControlOperation::Add, socket, true),
                InterestChange::Arm(socket) => (ControlOperation::Modify, socket, false),
                InterestChange::Remove { stream, .. } => {
                    let delete = ControlOperation::Delete;
                    let _ = epoll.ctl(delete, stream.as_raw_fd(), EpollEvent::default());
                    continue;
                }
            };
            if let Err(e) = epoll.ctl(op, socket.fd, one_shot(socket)) {
                if new {
                    log_limited!(warn, error = %e, "vsock: cannot watch connection socket; resetting");
                    router.on_watch_failed(socket.token);
                } else {
                    log_limited!(warn, error = %e, "vsock: cannot re-arm connection socket");
                }
            }
        }
    }
}
