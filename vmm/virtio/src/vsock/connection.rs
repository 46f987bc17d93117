//! The state machine of one vsock stream connection between a guest port
//! and a host endpoint (the device's end of a unix socket pair), with
//! credit-based flow control both ways.
//!
//! The router never changes a connection's state itself: it hands each
//! event to the connection (a guest packet, socket readiness, a read for
//! the guest's RX queue) and acts on what comes back ([`Action`],
//! [`HostRead`], [`RxWant`], [`Interest`]).
//!
//! ```text
//! host connect ─► Connecting ─RESPONSE─► Established ◄─ guest REQUEST taken by a listener
//!                     │ RST                  │ RST after the guest's SHUTDOWN(SEND),
//!                     ▼                      ▼ its data not all written yet
//!                   Close                 Draining ─all written─► Close
//! ```
//! Within Established each direction shuts on its own (the guest's
//! SHUTDOWN flags, EOF from the host end). A full close (the guest shut
//! both directions and all it sent is written to the host end), a host end
//! that went away, or a guest breaking the protocol ends in
//! [`Action::Reset`].

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::num::Wrapping;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use tracing::debug;

use super::packet::{
    Header, OP_CREDIT_REQUEST, OP_CREDIT_UPDATE, OP_RESPONSE, OP_RST, OP_RW, OP_SHUTDOWN,
    SHUTDOWN_RCV, SHUTDOWN_SEND,
};

/// Receive buffer we advertise to the guest per connection.
pub const CONN_BUF_ALLOC: u32 = 256 * 1024;
/// Send an unsolicited credit update once this much was consumed unreported.
pub const CREDIT_UPDATE_THRESHOLD: u32 = CONN_BUF_ALLOC / 4;

/// What the router does after a connection handled an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Action {
    /// Nothing to send; the connection goes on (re-arm its socket).
    Keep,
    /// Send the guest this header-only packet (`OP_*`), then go on.
    Send(u16),
    /// Send the guest RST and forget the connection.
    Reset,
    /// Forget the connection without telling the guest (it reset it).
    Close,
}

/// What a connection has for the guest's RX queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxWant {
    /// Nothing (no host data, no credit, or the direction is shut).
    Nothing,
    /// It has host data but the guest gave no credit: ask (once) for some.
    CreditRequest,
    /// Host data may be read and sent.
    Data,
}

/// The outcome of reading host data for the guest.
#[derive(Debug, PartialEq, Eq)]
pub enum HostRead {
    /// Data to send as OP_RW.
    Data(Vec<u8>),
    /// The host end sent EOF: tell the guest SHUTDOWN(SEND).
    Eof,
    /// Nothing to read now (re-arm the socket for reading).
    WouldBlock,
    /// The host end failed: reset the connection.
    Failed,
}

/// What a connection's socket should wake the worker for (one shot;
/// hang-up and errors always count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Interest {
    /// Host data (or EOF) to read.
    pub readable: bool,
    /// Room to write pending guest data.
    pub writable: bool,
}

impl Interest {
    /// Whether there is anything to wait for.
    pub fn is_empty(self) -> bool {
        !self.readable && !self.writable
    }
}

/// What the event loop saw on a connection's socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readiness {
    /// Data, EOF or a hang-up to read.
    pub readable: bool,
    /// Room to write, a hang-up or an error (a write will tell which).
    pub writable: bool,
}

/// Which directions of an established connection are shut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Shut {
    /// The host end sent EOF and we told the guest SHUTDOWN(SEND).
    host_send: bool,
    /// The guest will send no more data.
    guest_send: bool,
    /// The guest will receive no more data.
    guest_rcv: bool,
}

/// Where a connection is in its life (see the module docs).
#[derive(Debug)]
enum State {
    /// We sent the guest REQUEST and wait for its RESPONSE.
    Connecting {
        /// Whom to tell whether the guest accepted.
        outcome: Option<mpsc::Sender<bool>>,
    },
    /// Data flows in the directions not shut yet.
    Established(Shut),
    /// The guest reset the connection after shutting down its sending
    /// side: only its data still pending is to be written to the host end.
    Draining,
}

/// One connection (see the module docs).
#[derive(Debug)]
pub struct Connection {
    /// The device's end of the socket pair (non-blocking).
    stream: UnixStream,
    state: State,
    /// The socket may have data (or EOF) to read.
    readable: bool,
    /// Guest → host bytes not yet written into `stream` (bounded by our credit).
    pending: Vec<u8>,
    /// Total bytes forwarded into `stream` (our `fwd_cnt`).
    fwd_cnt: Wrapping<u32>,
    /// `fwd_cnt` we last told the guest.
    last_fwd_cnt_sent: Wrapping<u32>,
    /// Total bytes sent to the guest.
    tx_cnt: Wrapping<u32>,
    /// Guest's receive buffer size.
    peer_buf_alloc: u32,
    /// Guest's `fwd_cnt`.
    peer_fwd_cnt: Wrapping<u32>,
    /// We asked the guest for credit and wait for it.
    credit_requested: bool,
}

impl Connection {
    fn new(stream: UnixStream, state: State) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            state,
            readable: true,
            pending: Vec::new(),
            fwd_cnt: Wrapping(0),
            last_fwd_cnt_sent: Wrapping(0),
            tx_cnt: Wrapping(0),
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            credit_requested: false,
        })
    }

    /// A connection the host asked for (we send REQUEST); `outcome` is
    /// told whether the guest accepts.
    pub fn host_initiated(
        stream: UnixStream,
        outcome: Option<mpsc::Sender<bool>>,
    ) -> io::Result<Self> {
        Self::new(stream, State::Connecting { outcome })
    }

    /// A connection the guest asked for with `request` and a listener took
    /// (we answer RESPONSE).
    pub fn guest_initiated(stream: UnixStream, request: &Header) -> io::Result<Self> {
        let mut conn = Self::new(stream, State::Established(Shut::default()))?;
        conn.update_peer_credit(request.buf_alloc, request.fwd_cnt);
        Ok(conn)
    }

    /// The socket's fd, for the event loop.
    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    /// Ends the connection: a host connect still waiting is told it was
    /// refused; the returned stream closes the host end once dropped.
    pub fn close(self) -> UnixStream {
        if let State::Connecting {
            outcome: Some(outcome),
        } = &self.state
        {
            let _ = outcome.send(false);
        }
        self.stream
    }

    /// Guest data held, not yet taken by the host end.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Bytes we may still send to the guest.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = (self.tx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Our `fwd_cnt` for a packet about to reach the guest (remembered as told).
    pub fn report_fwd_cnt(&mut self) -> u32 {
        self.last_fwd_cnt_sent = self.fwd_cnt;
        self.fwd_cnt.0
    }

    /// What the socket should wake the worker for.
    pub fn interest(&self) -> Interest {
        Interest {
            readable: self.may_send_to_guest() && !self.readable,
            writable: !self.pending.is_empty(),
        }
    }

    /// Handles one packet from the guest for this connection.
    pub fn on_guest_packet(&mut self, hdr: &Header, payload: &[u8]) -> Action {
        self.update_peer_credit(hdr.buf_alloc, hdr.fwd_cnt);
        if hdr.op == OP_RST {
            return self.on_guest_reset();
        }
        match (&mut self.state, hdr.op) {
            (State::Connecting { outcome }, OP_RESPONSE) => {
                if let Some(outcome) = outcome.take() {
                    let _ = outcome.send(true);
                }
                self.state = State::Established(Shut::default());
                self.readable = true;
                Action::Keep
            }
            (State::Established(shut), OP_RW) if !shut.guest_send => {
                if !self.push_guest_data(payload) {
                    debug!("vsock: guest sent past its credit; resetting");
                    return Action::Reset;
                }
                self.deliver()
            }
            (State::Established(_) | State::Draining, OP_RW) => {
                debug!("vsock: guest sent data after its shutdown; resetting");
                Action::Reset
            }
            (State::Established(_) | State::Draining, OP_CREDIT_UPDATE) => Action::Keep,
            (State::Established(_) | State::Draining, OP_CREDIT_REQUEST) => {
                Action::Send(OP_CREDIT_UPDATE)
            }
            (State::Established(shut), OP_SHUTDOWN) => {
                shut.guest_rcv |= hdr.flags & SHUTDOWN_RCV != 0;
                shut.guest_send |= hdr.flags & SHUTDOWN_SEND != 0;
                // On a full close, `deliver` asks for the RST once everything
                // the guest sent has reached the host end.
                self.deliver()
            }
            (State::Draining, OP_SHUTDOWN) => self.deliver(),
            (_, op) => {
                debug!(op, "vsock: unexpected packet; resetting");
                Action::Reset
            }
        }
    }

    /// Handles readiness of the socket.
    pub fn on_socket_ready(&mut self, ready: Readiness) -> Action {
        if ready.readable {
            self.readable = true;
        }
        if ready.writable {
            return self.deliver();
        }
        Action::Keep
    }

    /// Whether the connection has something for the guest's RX queue; asks
    /// for credit once when it has none (a guest whose reader is stalled
    /// answers with zero credit, and re-asking would ping-pong: it sends an
    /// update by itself once its reader drains).
    pub fn rx_want(&mut self) -> RxWant {
        if !(self.may_send_to_guest() && self.readable) {
            return RxWant::Nothing;
        }
        if self.peer_credit() > 0 {
            return RxWant::Data;
        }
        if self.credit_requested {
            return RxWant::Nothing;
        }
        self.credit_requested = true;
        RxWant::CreditRequest
    }

    /// Reads up to `max` bytes of host data for the guest (counted as sent).
    pub fn read_for_guest(&mut self, max: usize) -> HostRead {
        let mut buf = vec![0u8; max];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => {
                    if let State::Established(shut) = &mut self.state {
                        shut.host_send = true;
                    }
                    return HostRead::Eof;
                }
                Ok(n) => {
                    buf.truncate(n);
                    self.tx_cnt += Wrapping(n as u32);
                    return HostRead::Data(buf);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.readable = false;
                    return HostRead::WouldBlock;
                }
                Err(e) => {
                    debug!(error = %e, "vsock: host end read failed; resetting");
                    return HostRead::Failed;
                }
            }
        }
    }

    /// Whether host data may still flow to the guest.
    fn may_send_to_guest(&self) -> bool {
        matches!(self.state, State::Established(shut) if !shut.host_send && !shut.guest_rcv)
    }

    /// Whether the guest will send no more data.
    fn guest_done_sending(&self) -> bool {
        match self.state {
            State::Connecting { .. } => false,
            State::Established(shut) => shut.guest_send,
            State::Draining => true,
        }
    }

    fn on_guest_reset(&mut self) -> Action {
        if self.guest_done_sending() && !self.pending.is_empty() {
            // The guest gave up waiting for our answer to its close (Linux
            // does after 8 s): still deliver what it sent.
            self.state = State::Draining;
            Action::Keep
        } else {
            Action::Close
        }
    }

    /// Records the guest's credit information carried by every packet.
    fn update_peer_credit(&mut self, buf_alloc: u32, fwd_cnt: u32) {
        self.peer_buf_alloc = buf_alloc;
        self.peer_fwd_cnt = Wrapping(fwd_cnt);
        // Ask again only after credit came back (see `rx_want`).
        if self.peer_credit() > 0 {
            self.credit_requested = false;
        }
    }

    /// Accepts `data` from the guest. False (keeping nothing) if the guest
    /// overran the credit we gave it, a protocol violation.
    fn push_guest_data(&mut self, data: &[u8]) -> bool {
        let room = (CONN_BUF_ALLOC as usize).saturating_sub(self.pending.len());
        if data.len() > room {
            return false;
        }
        self.pending.extend_from_slice(data);
        true
    }

    /// Writes pending guest data to the host end, then says what follows:
    /// the end of a closed or drained connection, a credit update, or nothing.
    fn deliver(&mut self) -> Action {
        let all_written = match self.write_pending() {
            Ok(all) => all,
            Err(e) => {
                debug!(error = %e, "vsock: host end closed; resetting");
                return Action::Reset;
            }
        };
        let guest_done = self.guest_done_sending();
        if all_written && guest_done {
            let _ = self.stream.shutdown(Shutdown::Write);
        }
        match self.state {
            State::Draining if all_written => Action::Close,
            // The guest closed its socket and all it sent is delivered.
            State::Established(shut) if all_written && shut.guest_send && shut.guest_rcv => {
                Action::Reset
            }
            _ if !guest_done && self.needs_credit_update() => Action::Send(OP_CREDIT_UPDATE),
            _ => Action::Keep,
        }
    }

    /// Writes pending guest data into the socket. Ok(true) when all of it
    /// is written; errors when the host end is gone.
    fn write_pending(&mut self) -> io::Result<bool> {
        while !self.pending.is_empty() {
            match self.stream.write(&self.pending) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.pending.drain(..n.min(self.pending.len()));
                    self.fwd_cnt += Wrapping(n as u32);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Whether the guest should be told about consumed buffer space now.
    fn needs_credit_update(&self) -> bool {
        (self.fwd_cnt - self.last_fwd_cnt_sent).0 >= CREDIT_UPDATE_THRESHOLD
    }
}
