//! One vsock stream connection between a guest port and a host endpoint
//! (one end of a unix socket pair), with credit-based flow control.

use std::io::{self, Read, Write};
use std::num::Wrapping;
use std::os::unix::net::UnixStream;

/// Receive buffer we advertise to the guest per connection.
pub const CONN_BUF_ALLOC: u32 = 256 * 1024;
/// Send an unsolicited credit update once this much was consumed unreported.
pub const CREDIT_UPDATE_THRESHOLD: u32 = CONN_BUF_ALLOC / 4;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The host sent REQUEST and waits for the guest's RESPONSE.
    Connecting,
    /// Data flows.
    Established,
}

/// State of one connection (see the module docs).
#[derive(Debug)]
pub struct Connection {
    /// The muxer's end of the socket pair (non-blocking).
    pub stream: UnixStream,
    /// Lifecycle state.
    pub state: State,
    /// Epoll token of `stream`.
    pub token: u64,
    /// Guest → host bytes not yet written into `stream` (bounded by our credit).
    pub pending: Vec<u8>,
    /// Total bytes received from the guest.
    pub rx_cnt: Wrapping<u32>,
    /// Total bytes forwarded into `stream` (our `fwd_cnt`).
    pub fwd_cnt: Wrapping<u32>,
    /// `fwd_cnt` we last told the guest.
    pub last_fwd_cnt_sent: Wrapping<u32>,
    /// Total bytes sent to the guest.
    pub tx_cnt: Wrapping<u32>,
    /// Guest's receive buffer size.
    pub peer_buf_alloc: u32,
    /// Guest's `fwd_cnt`.
    pub peer_fwd_cnt: Wrapping<u32>,
    /// `stream` may have data (or EOF) to read.
    pub readable: bool,
    /// The host end sent EOF (we told the guest SHUTDOWN_SEND).
    pub host_eof: bool,
    /// The guest will send no more data.
    pub guest_shut_send: bool,
    /// The guest will receive no more data.
    pub guest_shut_rcv: bool,
    /// We asked the guest for credit and wait for an answer.
    pub credit_requested: bool,
    /// The guest reset the connection after closing it; only pending data
    /// remains to be delivered to the host end.
    pub guest_gone: bool,
    /// For a host-initiated connection: whom to tell whether the guest accepted.
    pub outcome: Option<std::sync::mpsc::Sender<bool>>,
}

impl Connection {
    /// A new connection over `stream` (set non-blocking here).
    pub fn new(stream: UnixStream, state: State, token: u64) -> io::Result<Self> {
        stream.set_nonblocking(true)?;
        Ok(Self {
            stream,
            state,
            token,
            pending: Vec::new(),
            rx_cnt: Wrapping(0),
            fwd_cnt: Wrapping(0),
            last_fwd_cnt_sent: Wrapping(0),
            tx_cnt: Wrapping(0),
            peer_buf_alloc: 0,
            peer_fwd_cnt: Wrapping(0),
            readable: true,
            host_eof: false,
            guest_shut_send: false,
            guest_shut_rcv: false,
            credit_requested: false,
            guest_gone: false,
            outcome: None,
        })
    }

    /// Records the guest's credit information carried by every packet.
    pub fn update_peer_credit(&mut self, buf_alloc: u32, fwd_cnt: u32) {
        self.peer_buf_alloc = buf_alloc;
        self.peer_fwd_cnt = Wrapping(fwd_cnt);
        // Ask again only after credit came back: a guest whose reader is
        // stalled answers a request with zero credit, and re-asking would
        // ping-pong; it sends an update by itself once its reader drains.
        if self.peer_credit() > 0 {
            self.credit_requested = false;
        }
    }

    /// Bytes we may still send to the guest.
    pub fn peer_credit(&self) -> u32 {
        let in_flight = (self.tx_cnt - self.peer_fwd_cnt).0;
        self.peer_buf_alloc.saturating_sub(in_flight)
    }

    /// Accepts `data` from the guest. Returns false (and keeps nothing) if
    /// the guest overran the credit we gave it, a protocol violation.
    pub fn push_guest_data(&mut self, data: &[u8]) -> bool {
        let room = (CONN_BUF_ALLOC as usize).saturating_sub(self.pending.len());
        if data.len() > room {
            return false;
        }
        self.pending.extend_from_slice(data);
        self.rx_cnt += Wrapping(data.len() as u32);
        true
    }

    /// Writes pending guest data into the socket. Ok(true) when all of it is
    /// written; errors when the host end is gone.
    pub fn flush(&mut self) -> io::Result<bool> {
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
    pub fn needs_credit_update(&self) -> bool {
        (self.fwd_cnt - self.last_fwd_cnt_sent).0 >= CREDIT_UPDATE_THRESHOLD
    }

    /// Reads up to `max` bytes from the host end. Ok(empty) means EOF;
    /// Err(WouldBlock) means nothing available now.
    pub fn read_host(&mut self, max: usize) -> io::Result<Vec<u8>> {
        let mut buf = vec![0u8; max];
        loop {
            match self.stream.read(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}
