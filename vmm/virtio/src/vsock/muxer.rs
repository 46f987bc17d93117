//! The host side of vsock: routes guest packets to host endpoints (unix
//! socket pairs) and host data back into the guest's RX queue.
//!
//! Plain logic over guest memory and file descriptors; the device worker
//! calls it when a queue is notified or a socket is ready.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::num::Wrapping;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Mutex};

use tracing::{debug, warn};
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::connection::{Connection, State, CONN_BUF_ALLOC};
use super::packet::*;
use crate::chain::{complete, pop_chain, read_from, write_to, ChainError};

/// CID of the host.
pub const HOST_CID: u64 = 2;
/// Largest payload put into one RX packet.
pub const MAX_RX_PAYLOAD: usize = 64 * 1024;
/// Most connections open at once (guards against request floods).
/// (Each holds two fds in the VMM process.)
pub const MAX_CONNECTIONS: usize = 256;
/// Most guest connections waiting in one listener's accept queue.
pub const MAX_PENDING_ACCEPTS: usize = 32;
/// Most header-only packets waiting for RX buffers.
pub const MAX_PENDING_CONTROL: usize = 4096;
/// First epoll token used for connection sockets.
pub const FIRST_CONN_TOKEN: u64 = 16;
/// First host port used for host-initiated connections.
const FIRST_EPHEMERAL_PORT: u32 = 49152;

/// A connection key: (host port, guest port).
type Key = (u32, u32);

/// Requests from host code, handled on the worker thread.
#[derive(Debug)]
pub enum Command {
    /// Connect to `guest_port`; `stream` is the muxer's end of the pair.
    Connect {
        /// Guest port to connect to.
        guest_port: u32,
        /// The muxer's end of the socket pair.
        stream: UnixStream,
        /// Told `true` when the guest accepts, `false` when it refuses.
        outcome: Option<mpsc::Sender<bool>>,
    },
}

/// Where a listener's accepted streams go.
#[derive(Debug)]
pub struct ListenerSink {
    /// Accepted streams.
    pub tx: mpsc::Sender<UnixStream>,
    /// Streams sent but not accepted yet.
    pub pending: Arc<std::sync::atomic::AtomicUsize>,
    /// Signalled once per accepted stream (lets the VMM poll).
    pub evt: EventFd,
}

/// State shared between host-side handles and the worker.
#[derive(Debug)]
pub struct Shared {
    /// Pending host commands.
    pub commands: Mutex<VecDeque<Command>>,
    /// Wakes the worker when a command is queued.
    pub wake: EventFd,
    /// Host ports listening for guest-initiated connections.
    pub listeners: Mutex<HashMap<u32, ListenerSink>>,
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
}

/// The vsock backend (see the module docs).
#[derive(Debug)]
pub struct Muxer {
    guest_cid: u64,
    shared: Arc<Shared>,
    conns: HashMap<Key, Connection>,
    by_token: HashMap<u64, Key>,
    /// Header-only packets waiting for RX buffers.
    control: VecDeque<Header>,
    next_token: u64,
    next_port: u32,
}

impl Muxer {
    /// A muxer for a guest with `guest_cid`.
    pub fn new(guest_cid: u64, shared: Arc<Shared>) -> Self {
        Self {
            guest_cid,
            shared,
            conns: HashMap::new(),
            by_token: HashMap::new(),
            control: VecDeque::new(),
            next_token: FIRST_CONN_TOKEN,
            next_port: FIRST_EPHEMERAL_PORT,
        }
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Guest data held in memory, not yet taken by host ends (bounded by
    /// the credit given to the guest per connection).
    pub fn pending_bytes(&self) -> usize {
        self.conns.values().map(|c| c.pending.len()).sum()
    }

    fn header(&self, key: Key, op: u16, flags: u32) -> Header {
        Header {
            src_cid: HOST_CID,
            dst_cid: self.guest_cid,
            src_port: key.0,
            dst_port: key.1,
            len: 0,
            type_: TYPE_STREAM,
            op,
            flags,
            buf_alloc: CONN_BUF_ALLOC,
            fwd_cnt: 0,
        }
    }

    fn queue_control(&mut self, key: Key, op: u16, flags: u32) {
        if self.control.len() >= MAX_PENDING_CONTROL {
            // A guest sending packets without ever posting RX buffers.
            debug!(op, "vsock: control packet backlog full; packet dropped");
            return;
        }
        let h = self.header(key, op, flags);
        self.control.push_back(h);
    }

    /// Sends RST for `key` and forgets the connection (its host end sees EOF).
    fn reset(&mut self, key: Key, epoll: &Epoll) {
        self.queue_control(key, OP_RST, 0);
        self.remove(key, epoll);
    }

    fn remove(&mut self, key: Key, epoll: &Epoll) {
        if let Some(mut conn) = self.conns.remove(&key) {
            if let Some(outcome) = conn.outcome.take() {
                let _ = outcome.send(false);
            }
            self.by_token.remove(&conn.token);
            let _ = epoll.ctl(
                ControlOperation::Delete,
                conn.stream.as_raw_fd(),
                EpollEvent::default(),
            );
        }
    }

    fn add(&mut self, key: Key, stream: UnixStream, state: State, epoll: &Epoll) -> io::Result<()> {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(FIRST_CONN_TOKEN);
        let conn = Connection::new(stream, state, token)?;
        epoll.ctl(
            ControlOperation::Add,
            conn.stream.as_raw_fd(),
            EpollEvent::new(EventSet::ONE_SHOT, token),
        )?;
        self.by_token.insert(token, key);
        self.conns.insert(key, conn);
        Ok(())
    }

    /// Re-arms the one-shot epoll registration of `key` for what it waits on.
    fn rearm(&self, key: Key, epoll: &Epoll) {
        let Some(conn) = self.conns.get(&key) else {
            return;
        };
        let mut events = EventSet::ONE_SHOT;
        let wants_read = conn.state == State::Established
            && !conn.readable
            && !conn.host_eof
            && !conn.guest_shut_rcv
            && !conn.guest_gone;
        if wants_read {
            events |= EventSet::IN | EventSet::READ_HANG_UP;
        }
        if !conn.pending.is_empty() {
            events |= EventSet::OUT;
        }
        if events == EventSet::ONE_SHOT {
            // Nothing to wait for: stay disarmed, or a hung-up socket would
            // report EPOLLHUP on every wait and spin the worker.
            return;
        }
        if let Err(e) = epoll.ctl(
            ControlOperation::Modify,
            conn.stream.as_raw_fd(),
            EpollEvent::new(events, conn.token),
        ) {
            warn!(error = %e, "vsock: cannot re-arm connection socket");
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
            if !self.conns.keys().any(|(host, _)| *host == port) {
                return Some(port);
            }
        }
        None
    }

    /// Handles queued host commands (connect requests).
    pub fn process_commands(&mut self, epoll: &Epoll) {
        let _ = self.shared.wake.read();
        let commands: Vec<Command> = match self.shared.commands.lock() {
            Ok(mut q) => q.drain(..).collect(),
            Err(_) => return,
        };
        for cmd in commands {
            let Command::Connect {
                guest_port,
                stream,
                outcome,
            } = cmd;
            if self.conns.len() >= MAX_CONNECTIONS {
                warn!("vsock: too many connections; host connect dropped");
                continue;
            }
            let Some(host_port) = self.alloc_port() else {
                continue;
            };
            let key = (host_port, guest_port);
            match self.add(key, stream, State::Connecting, epoll) {
                Ok(()) => {
                    if let Some(conn) = self.conns.get_mut(&key) {
                        conn.outcome = outcome;
                    }
                    self.queue_control(key, OP_REQUEST, 0)
                }
                Err(e) => warn!(error = %e, "vsock: cannot register host connection"),
            }
        }
    }

    /// Processes every packet the guest queued on the TX queue. Returns the
    /// number of chains given back.
    pub fn process_tx(
        &mut self,
        mem: &GuestMemoryMmap,
        queue: &mut Queue,
        epoll: &Epoll,
    ) -> Result<usize, ChainError> {
        let mut done = 0;
        for _ in 0..queue.size() {
            let Some((head, chain)) = pop_chain(mem, queue)? else {
                break;
            };
            match chain.and_then(|c| parse_tx(mem, &c)) {
                Ok((hdr, payload)) => self.handle_packet(hdr, &payload, epoll),
                Err(e) => debug!(error = %e, "vsock: malformed TX packet dropped"),
            }
            complete(mem, queue, head, 0)?;
            done += 1;
        }
        Ok(done)
    }

    /// Handles one packet from the guest.
    pub fn handle_packet(&mut self, hdr: Header, payload: &[u8], epoll: &Epoll) {
        if hdr.src_cid != self.guest_cid || hdr.dst_cid != HOST_CID {
            debug!(?hdr, "vsock: packet with wrong CIDs dropped");
            return;
        }
        let key = (hdr.dst_port, hdr.src_port);
        if hdr.type_ != TYPE_STREAM {
            if hdr.op != OP_RST {
                self.queue_control(key, OP_RST, 0);
            }
            return;
        }
        if !self.conns.contains_key(&key) {
            match hdr.op {
                OP_REQUEST => self.accept_guest_connection(key, hdr, epoll),
                OP_RST => {}
                _ => self.queue_control(key, OP_RST, 0),
            }
            return;
        }
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        conn.update_peer_credit(hdr.buf_alloc, hdr.fwd_cnt);
        match (conn.state, hdr.op) {
            (_, OP_RST) => {
                if conn.guest_shut_send && !conn.pending.is_empty() {
                    // The guest gave up waiting for our answer to its close
                    // (Linux does after 8 s): still deliver what it sent.
                    conn.guest_gone = true;
                    self.rearm(key, epoll);
                } else {
                    self.remove(key, epoll);
                }
                return;
            }
            (State::Connecting, OP_RESPONSE) => {
                conn.state = State::Established;
                conn.readable = true;
                if let Some(outcome) = conn.outcome.take() {
                    let _ = outcome.send(true);
                }
            }
            (State::Established, OP_RW) => {
                if conn.guest_shut_send || !conn.push_guest_data(payload) {
                    debug!(?key, "vsock: guest sent past its credit or after shutdown");
                    self.reset(key, epoll);
                    return;
                }
                self.flush(key, epoll);
            }
            (State::Established, OP_CREDIT_UPDATE) => {}
            (State::Established, OP_CREDIT_REQUEST) => self.queue_control(key, OP_CREDIT_UPDATE, 0),
            (State::Established, OP_SHUTDOWN) => {
                conn.guest_shut_rcv |= hdr.flags & SHUTDOWN_RCV != 0;
                conn.guest_shut_send |= hdr.flags & SHUTDOWN_SEND != 0;
                // On a full close, `flush` sends the RST once everything
                // the guest sent has reached the host end.
                self.flush(key, epoll);
                if !self.conns.contains_key(&key) {
                    return;
                }
            }
            _ => {
                debug!(?key, op = hdr.op, "vsock: unexpected packet; resetting");
                self.reset(key, epoll);
                return;
            }
        }
        self.rearm(key, epoll);
    }

    fn accept_guest_connection(&mut self, key: Key, hdr: Header, epoll: &Epoll) {
        if self.conns.len() >= MAX_CONNECTIONS {
            self.queue_control(key, OP_RST, 0);
            return;
        }
        let pair = match UnixStream::pair() {
            Ok(pair) => pair,
            Err(e) => {
                warn!(error = %e, "vsock: cannot create socket pair");
                self.queue_control(key, OP_RST, 0);
                return;
            }
        };
        let (ours, theirs) = pair;
        let delivered = match self.shared.listeners.lock() {
            Ok(mut listeners) => match listeners.get(&key.0) {
                Some(sink)
                    if sink.pending.load(std::sync::atomic::Ordering::SeqCst)
                        >= MAX_PENDING_ACCEPTS =>
                {
                    debug!(port = key.0, "vsock: accept queue full; connection refused");
                    false
                }
                Some(sink) => {
                    if sink.tx.send(theirs).is_ok() {
                        sink.pending
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let _ = sink.evt.write(1);
                        true
                    } else {
                        // The listener was dropped: stop listening.
                        listeners.remove(&key.0);
                        false
                    }
                }
                None => false,
            },
            Err(_) => false,
        };
        if !delivered {
            debug!(
                port = key.0,
                "vsock: connection to a host port nobody listens on"
            );
            self.queue_control(key, OP_RST, 0);
            return;
        }
        match self.add(key, ours, State::Established, epoll) {
            Ok(()) => {
                if let Some(conn) = self.conns.get_mut(&key) {
                    conn.update_peer_credit(hdr.buf_alloc, hdr.fwd_cnt);
                }
                self.queue_control(key, OP_RESPONSE, 0);
                self.rearm(key, epoll);
            }
            Err(e) => {
                warn!(error = %e, "vsock: cannot register guest connection");
                self.queue_control(key, OP_RST, 0);
            }
        }
    }

    /// Writes pending guest data to the host end; handles a vanished host.
    fn flush(&mut self, key: Key, epoll: &Epoll) {
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        match conn.flush() {
            Ok(all) => {
                if all && conn.guest_shut_send {
                    let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                }
                if all && conn.guest_gone {
                    self.remove(key, epoll);
                    return;
                }
                if all && conn.guest_shut_send && conn.guest_shut_rcv {
                    // The guest closed its socket and all it sent is delivered.
                    self.reset(key, epoll);
                    return;
                }
                if conn.needs_credit_update() && !conn.guest_shut_send {
                    self.queue_control(key, OP_CREDIT_UPDATE, 0);
                }
            }
            Err(e) => {
                debug!(error = %e, ?key, "vsock: host end closed; resetting");
                self.reset(key, epoll);
            }
        }
    }

    /// Handles readiness of a connection socket.
    pub fn socket_event(&mut self, token: u64, events: EventSet, epoll: &Epoll) {
        let Some(&key) = self.by_token.get(&token) else {
            return;
        };
        if let Some(conn) = self.conns.get_mut(&key) {
            if events.intersects(EventSet::IN | EventSet::READ_HANG_UP | EventSet::HANG_UP) {
                conn.readable = true;
            }
        }
        if events.intersects(EventSet::OUT | EventSet::HANG_UP | EventSet::ERROR) {
            self.flush(key, epoll);
        }
        self.rearm(key, epoll);
    }

    /// Fills RX buffers with control packets and host data while both are
    /// available. Returns the number of chains given back.
    pub fn fill_rx(
        &mut self,
        mem: &GuestMemoryMmap,
        queue: &mut Queue,
        epoll: &Epoll,
    ) -> Result<usize, ChainError> {
        let mut done = 0usize;
        loop {
            if let Some(mut hdr) = self.control.pop_front() {
                let Some((head, chain)) = pop_chain(mem, queue)? else {
                    self.control.push_front(hdr);
                    break;
                };
                if let Some(conn) = self.conns.get_mut(&(hdr.src_port, hdr.dst_port)) {
                    hdr.fwd_cnt = conn.fwd_cnt.0;
                    conn.last_fwd_cnt_sent = conn.fwd_cnt;
                }
                let len = match chain {
                    Ok(c) => match write_to(mem, &c.writable, 0, &hdr.to_bytes()) {
                        Ok(()) => PKT_HEADER_SIZE as u32,
                        Err(e) => {
                            debug!(error = %e, "vsock: RX buffer too small; packet lost");
                            0
                        }
                    },
                    Err(e) => {
                        debug!(error = %e, "vsock: malformed RX chain");
                        0
                    }
                };
                complete(mem, queue, head, len)?;
                done += 1;
                continue;
            }
            let Some(key) = self.next_sender() else {
                if self.control.is_empty() {
                    break;
                }
                // Credit requests were just queued: send them.
                continue;
            };
            match self.send_data(key, mem, queue, epoll)? {
                Some(n) => done += n,
                None => break,
            }
        }
        Ok(done)
    }

    /// A connection that has host data to send and credit to send it with;
    /// asks for credit on the way when a connection has none.
    fn next_sender(&mut self) -> Option<Key> {
        let mut found = None;
        let mut ask = Vec::new();
        for (key, conn) in &mut self.conns {
            let can = conn.state == State::Established
                && conn.readable
                && !conn.host_eof
                && !conn.guest_shut_rcv
                && !conn.guest_gone;
            if !can {
                continue;
            }
            if conn.peer_credit() == 0 {
                if !conn.credit_requested {
                    conn.credit_requested = true;
                    ask.push(*key);
                }
                continue;
            }
            found = Some(*key);
            break;
        }
        for key in ask {
            self.queue_control(key, OP_CREDIT_REQUEST, 0);
        }
        found
    }

    /// Moves one packet of host data of `key` into one RX chain.
    /// `Ok(None)`: no RX buffer available. `Ok(Some(n))`: n chains used.
    fn send_data(
        &mut self,
        key: Key,
        mem: &GuestMemoryMmap,
        queue: &mut Queue,
        epoll: &Epoll,
    ) -> Result<Option<usize>, ChainError> {
        let Some((head, chain)) = pop_chain(mem, queue)? else {
            return Ok(None);
        };
        let chain = match chain {
            Ok(c) => c,
            Err(e) => {
                debug!(error = %e, "vsock: malformed RX chain");
                complete(mem, queue, head, 0)?;
                return Ok(Some(1));
            }
        };
        let capacity = chain.writable_len().saturating_sub(PKT_HEADER_SIZE as u64);
        let mut hdr = self.header(key, OP_RW, 0);
        let Some(conn) = self.conns.get_mut(&key) else {
            queue.go_to_previous_position();
            return Ok(Some(0));
        };
        let max = (capacity.min(MAX_RX_PAYLOAD as u64) as usize).min(conn.peer_credit() as usize);
        if max == 0 {
            debug!("vsock: RX buffer has no room for data");
            complete(mem, queue, head, 0)?;
            return Ok(Some(1));
        }
        let data = match conn.read_host(max) {
            Ok(data) if data.is_empty() => {
                conn.host_eof = true;
                hdr.op = OP_SHUTDOWN;
                hdr.flags = SHUTDOWN_SEND;
                data
            }
            Ok(data) => data,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.readable = false;
                queue.go_to_previous_position();
                self.rearm(key, epoll);
                return Ok(Some(0));
            }
            Err(e) => {
                debug!(error = %e, "vsock: host end read failed; resetting");
                queue.go_to_previous_position();
                self.reset(key, epoll);
                return Ok(Some(0));
            }
        };
        hdr.len = data.len() as u32;
        hdr.fwd_cnt = conn.fwd_cnt.0;
        conn.last_fwd_cnt_sent = conn.fwd_cnt;
        conn.tx_cnt += Wrapping(hdr.len);
        let written = write_to(mem, &chain.writable, 0, &hdr.to_bytes())
            .and_then(|()| write_to(mem, &chain.writable, PKT_HEADER_SIZE as u64, &data));
        let len = match written {
            Ok(()) => PKT_HEADER_SIZE as u32 + hdr.len,
            Err(e) => {
                debug!(error = %e, "vsock: cannot write RX packet; resetting");
                self.reset(key, epoll);
                0
            }
        };
        complete(mem, queue, head, len)?;
        if hdr.op == OP_SHUTDOWN {
            self.rearm(key, epoll);
        }
        Ok(Some(1))
    }
}

/// Reads a TX packet's header and payload out of a validated chain.
fn parse_tx(
    mem: &GuestMemoryMmap,
    chain: &crate::chain::Chain,
) -> Result<(Header, Vec<u8>), ChainError> {
    let mut raw = [0u8; PKT_HEADER_SIZE];
    read_from(mem, &chain.readable, 0, &mut raw)?;
    let hdr = Header::from_bytes(&raw);
    if hdr.len > CONN_BUF_ALLOC {
        return Err(ChainError::TooShort {
            need: u64::from(hdr.len),
            have: u64::from(CONN_BUF_ALLOC),
        });
    }
    let mut payload = vec![0u8; hdr.len as usize];
    read_from(mem, &chain.readable, PKT_HEADER_SIZE as u64, &mut payload)?;
    Ok((hdr, payload))
}
