//! The vsock router: the connection table keyed by ports, guest connection
//! requests handed to the listeners' accept queues, host connect commands,
//! and the header-only packets waiting for the guest's RX buffers.
//!
//! It hands every event to the connection's state machine
//! ([`Connection`]) and acts on the answer. It touches neither guest memory
//! ([`super::tx`] and [`super::rx`] do) nor epoll: the socket interest it
//! wants changed is collected as [`InterestChange`]s, which the event loop
//! takes with [`Router::take_interest_changes`] and applies. So the whole
//! protocol runs, and is tested, without either.

use std::collections::{HashMap, VecDeque};
use std::os::unix::io::RawFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use tracing::debug;

use super::connection::{Action, Connection, Interest, Readiness, CONN_BUF_ALLOC};
use super::host::{Command, Shared};
use super::packet::{Header, OP_REQUEST, OP_RESPONSE, OP_RST, TYPE_STREAM};
use crate::log_limited;

/// Most connections open at once (guards against request floods).
/// (Each holds two fds in the VMM process.)
pub const MAX_CONNECTIONS: usize = 256;
/// Most header-only packets waiting for RX buffers.
pub const MAX_PENDING_CONTROL: usize = 4096;
/// First event-loop token used for connection sockets (the ones below are
/// the device's own: queues, wake-up).
pub const FIRST_CONN_TOKEN: u64 = 16;
/// First host port used for host-initiated connections.
const FIRST_EPHEMERAL_PORT: u32 = 49152;

/// The ports of a connection (the CIDs are fixed: the guest's and the host's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ports {
    /// The host's port.
    pub host: u32,
    /// The guest's port.
    pub guest: u32,
}

/// A connection socket and what it should wake the worker for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketInterest {
    /// The socket.
    pub fd: RawFd,
    /// Passed back with its readiness ([`Router::on_socket_ready`]).
    pub token: u64,
    /// What to wait for (one shot; hang-up and errors always count).
    pub interest: Interest,
}

/// A change to what the event loop watches, in the order the router made them.
#[derive(Debug)]
pub enum InterestChange {
    /// Start watching a new connection socket.
    Add(SocketInterest),
    /// Re-arm a watched socket.
    Arm(SocketInterest),
    /// Stop watching a connection's socket, then drop `stream` (which
    /// closes it; it stays open until then, so its fd is not reused by a
    /// later change).
    Remove {
        /// Its token.
        token: u64,
        /// The socket.
        stream: UnixStream,
    },
}

/// A connection and the event-loop token of its socket.
#[derive(Debug)]
struct Route {
    conn: Connection,
    token: u64,
}

impl Route {
    fn socket_interest(&self) -> SocketInterest {
        SocketInterest {
            fd: self.conn.fd(),
            token: self.token,
            interest: self.conn.interest(),
        }
    }
}

/// The vsock router (see the module docs).
#[derive(Debug)]
pub struct Router {
    guest_cid: u64,
    shared: Arc<Shared>,
    routes: HashMap<Ports, Route>,
    by_token: HashMap<u64, Ports>,
    /// Header-only packets waiting for RX buffers.
    control: VecDeque<Header>,
    changes: Vec<InterestChange>,
    next_token: u64,
    next_port: u32,
}

impl Router {
    /// A router for a guest with `guest_cid`, serving the host handles over `shared`.
    pub fn new(guest_cid: u64, shared: Arc<Shared>) -> Self {
        Self {
            guest_cid,
            shared,
            routes: HashMap::new(),
            by_token: HashMap::new(),
            control: VecDeque::new(),
            changes: Vec::new(),
            next_token: FIRST_CONN_TOKEN,
            next_port: FIRST_EPHEMERAL_PORT,
        }
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.routes.len()
    }

    /// Guest data held in memory, not yet taken by host ends (bounded by
    /// the credit given to the guest per connection).
    pub fn pending_bytes(&self) -> usize {
        self.routes.values().map(|r| r.conn.pending_len()).sum()
    }

    /// Header-only packets waiting for the guest's RX buffers.
    pub fn pending_control(&self) -> usize {
        self.control.len()
    }

    /// The socket interest changes made since the last call, in order.
    pub fn take_interest_changes(&mut self) -> Vec<InterestChange> {
        std::mem::take(&mut self.changes)
    }

    /// Handles queued host commands (connect requests).
    pub fn process_commands(&mut self) {
        for command in self.shared.take_commands() {
            let Command::Connect {
                guest_port,
                stream,
                outcome,
            } = command;
            if self.routes.len() >= MAX_CONNECTIONS {
                log_limited!(warn, "vsock: too many connections; host connect dropped");
                continue;
            }
            let Some(host) = self.alloc_port() else {
                continue;
            };
            let ports = Ports {
                host,
                guest: guest_port,
            };
            match Connection::host_initiated(stream, outcome) {
                Ok(conn) => {
                    self.add(ports, conn);
                    self.queue_control(ports, OP_REQUEST, 0);
                }
                Err(e) => {
                    log_limited!(warn, error = %e, "vsock: cannot set up host connection")
                }
            }
        }
    }

    /// Handles one packet from the guest.
    pub fn on_guest_packet(&mut self, hdr: &Header, payload: &[u8]) {
        if hdr.src_cid != self.guest_cid || hdr.dst_cid != u64::from(libc::VMADDR_CID_HOST) {
            debug!(?hdr, "vsock: packet with wrong CIDs dropped");
            return;
        }
        let ports = Ports {
            host: hdr.dst_port,
            guest: hdr.src_port,
        };
        if hdr.type_ != TYPE_STREAM {
            if hdr.op != OP_RST {
                self.queue_control(ports, OP_RST, 0);
            }
            return;
        }
        let Some(route) = self.routes.get_mut(&ports) else {
            match hdr.op {
                OP_REQUEST => self.accept_guest_connection(ports, hdr),
                OP_RST => {}
                _ => self.queue_control(ports, OP_RST, 0),
            }
            return;
        };
        let action = route.conn.on_guest_packet(hdr, payload);
        self.apply(ports, action);
    }

    /// Handles readiness of the connection socket watched under `token`.
    pub fn on_socket_ready(&mut self, token: u64, ready: Readiness) {
        let Some(&ports) = self.by_token.get(&token) else {
            return;
        };
        if let Some(route) = self.routes.get_mut(&ports) {
            let action = route.conn.on_socket_ready(ready);
            self.apply(ports, action);
        }
    }

    /// The event loop could not watch the socket of `token`: the connection
    /// could never make progress, so it is reset.
    pub fn on_watch_failed(&mut self, token: u64) {
        if let Some(&ports) = self.by_token.get(&token) {
            self.reset(ports);
        }
    }

    /// Queues a header-only packet for the guest; dropped when the backlog
    /// is full (a guest sending packets without ever posting RX buffers).
    pub fn queue_control(&mut self, ports: Ports, op: u16, flags: u32) {
        if self.control.len() >= MAX_PENDING_CONTROL {
            debug!(op, "vsock: control packet backlog full; packet dropped");
            return;
        }
        let hdr = self.header(ports, op, flags);
        self.control.push_back(hdr);
    }

    /// The oldest header-only packet waiting for the guest.
    pub fn pop_control(&mut self) -> Option<Header> {
        self.control.pop_front()
    }

    /// Puts back a packet [`Router::pop_control`] returned (no RX buffer for it).
    pub fn unpop_control(&mut self, hdr: Header) {
        self.control.push_front(hdr);
    }

    /// A host → guest header for the connection on `ports`.
    pub fn header(&self, ports: Ports, op: u16, flags: u32) -> Header {
        Header {
            src_cid: u64::from(libc::VMADDR_CID_HOST),
            dst_cid: self.guest_cid,
            src_port: ports.host,
            dst_port: ports.guest,
            len: 0,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: CONN_BUF_ALLOC,
            fwd_cnt: 0,
        }
    }

    /// The connection on `ports`, if open.
    pub fn connection_mut(&mut self, ports: Ports) -> Option<&mut Connection> {
        self.routes.get_mut(&ports).map(|r| &mut r.conn)
    }

    /// Every open connection, in no particular order.
    pub fn connections_mut(&mut self) -> impl Iterator<Item = (Ports, &mut Connection)> {
        self.routes.iter_mut().map(|(p, r)| (*p, &mut r.conn))
    }

    /// Re-arms the socket of `ports` for what its connection waits on.
    /// Nothing to wait for leaves it disarmed: a hung-up socket would
    /// otherwise report on every wait and spin the worker.
    pub fn rearm(&mut self, ports: Ports) {
        let Some(route) = self.routes.get(&ports) else {
            return;
        };
        let socket = route.socket_interest();
        if !socket.interest.is_empty() {
            self.changes.push(InterestChange::Arm(socket));
        }
    }

    /// Sends RST for `ports` and forgets the connection (its host end sees EOF).
    pub fn reset(&mut self, ports: Ports) {
        self.queue_control(ports, OP_RST, 0);
        self.remove(ports);
    }

    /// Does what a connection asked for after an event.
    fn apply(&mut self, ports: Ports, action: Action) {
        match action {
            Action::Keep => self.rearm(ports),
            Action::Send(op) => {
                self.queue_control(ports, op, 0);
                self.rearm(ports);
            }
            Action::Reset => self.reset(ports),
            Action::Close => self.remove(ports),
        }
    }

    fn accept_guest_connection(&mut self, ports: Ports, request: &Header) {
        if self.routes.len() >= MAX_CONNECTIONS {
            self.queue_control(ports, OP_RST, 0);
            return;
        }
        let (ours, theirs) = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                log_limited!(warn, error = %e, "vsock: cannot create socket pair");
                self.queue_control(ports, OP_RST, 0);
                return;
            }
        };
        if !self.shared.offer(ports.host, theirs) {
            debug!(
                port = ports.host,
                "vsock: connection to a host port nobody takes"
            );
            self.queue_control(ports, OP_RST, 0);
            return;
        }
        match Connection::guest_initiated(ours, request) {
            Ok(conn) => {
                self.add(ports, conn);
                self.queue_control(ports, OP_RESPONSE, 0);
            }
            Err(e) => {
                log_limited!(warn, error = %e, "vsock: cannot set up guest connection");
                self.queue_control(ports, OP_RST, 0);
            }
        }
    }

    fn add(&mut self, ports: Ports, conn: Connection) {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONN_TOKEN);
        let route = Route { conn, token };
        self.changes
            .push(InterestChange::Add(route.socket_interest()));
        self.by_token.insert(token, ports);
        self.routes.insert(ports, route);
    }

    fn remove(&mut self, ports: Ports) {
        if let Some(route) = self.routes.remove(&ports) {
            self.by_token.remove(&route.token);
            self.changes.push(InterestChange::Remove {
                token: route.token,
                stream: route.conn.close(),
            });
        }
    }

    fn alloc_port(&mut self) -> Option<u32> {
        for _ in 0..=(u32::MAX - FIRST_EPHEMERAL_PORT) {
            let port = self.next_port;
            self.next_port = if port == u32::MAX {
                FIRST_EPHEMERAL_PORT
            } else {
                port + 1
            };
            if !self.routes.keys().any(|p| p.host == port) {
                return Some(port);
            }
        }
        None
    }
}
