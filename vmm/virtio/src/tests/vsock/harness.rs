//! A fake guest vsock driver plus the device's router, driven synchronously
//! with no epoll: [`SocketWatch`] stands in for the worker's event loop.

use std::collections::HashMap;
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::testing::*;
use crate::vsock::connection::{Interest, Readiness, CONN_BUF_ALLOC};
use crate::vsock::host::{Shared, VsockHost};
use crate::vsock::packet::*;
use crate::vsock::router::{InterestChange, Router, SocketInterest};
use crate::vsock::{rx, tx};

pub const CID: u64 = 3;
pub const HOST_CID: u64 = libc::VMADDR_CID_HOST as u64;
pub const RX_BUF: u64 = 0x10_0000;
pub const TX_BUF: u64 = 0x18_0000;
pub const RX_DATA: u32 = 4096;

/// One watched socket: its fd and, while armed, what it waits for.
struct Watched {
    fd: RawFd,
    armed: Option<Interest>,
}

/// Applies the router's interest changes with epoll's one-shot semantics
/// (hang-up and errors always count while armed) and reports readiness
/// with poll(2). Panics on a change that epoll would refuse (re-adding a
/// token, arming or removing a socket that is not watched), so every test
/// also checks the router's sequence of changes.
#[derive(Default)]
pub struct SocketWatch {
    watched: HashMap<u64, Watched>,
}

impl SocketWatch {
    /// Applies every change the router made since the last call.
    pub fn apply(&mut self, router: &mut Router) {
        for change in router.take_interest_changes() {
            match change {
                InterestChange::Add(SocketInterest {
                    fd,
                    token,
                    interest,
                }) => {
                    let armed = Some(interest);
                    let old = self.watched.insert(token, Watched { fd, armed });
                    assert!(old.is_none(), "token {token} added twice");
                }
                InterestChange::Arm(socket) => {
                    let token = socket.token;
                    let w = self
                        .watched
                        .get_mut(&token)
                        .expect("arming an unwatched token");
                    assert_eq!(w.fd, socket.fd, "token {token} armed with another fd");
                    w.armed = Some(socket.interest);
                }
                InterestChange::Remove { token, stream } => {
                    let w = self
                        .watched
                        .remove(&token)
                        .expect("removing an unwatched token");
                    assert_eq!(
                        w.fd,
                        stream.as_raw_fd(),
                        "token {token} removed with another fd"
                    );
                }
            }
        }
    }

    /// Number of watched sockets.
    pub fn len(&self) -> usize {
        self.watched.len()
    }

    /// What the watched socket of `token` is armed for, if it is.
    pub fn armed(&self, token: u64) -> Option<Interest> {
        self.watched.get(&token).and_then(|w| w.armed)
    }

    /// The tokens of the watched sockets.
    pub fn tokens(&self) -> Vec<u64> {
        self.watched.keys().copied().collect()
    }

    /// The armed sockets that are ready now, disarmed (one shot).
    pub fn ready(&mut self) -> Vec<(u64, Readiness)> {
        let armed: Vec<(u64, RawFd, Interest)> = self
            .watched
            .iter()
            .filter_map(|(t, w)| w.armed.map(|i| (*t, w.fd, i)))
            .collect();
        let mut fds: Vec<libc::pollfd> = armed
            .iter()
            .map(|(_, fd, interest)| {
                let mut events = 0;
                if interest.readable {
                    events |= libc::POLLIN | libc::POLLRDHUP;
                }
                if interest.writable {
                    events |= libc::POLLOUT;
                }
                libc::pollfd {
                    fd: *fd,
                    events,
                    revents: 0,
                }
            })
            .collect();
        // SAFETY: `fds` is a valid array of `fds.len()` pollfds for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
        assert!(n >= 0, "poll failed: {}", std::io::Error::last_os_error());
        let mut out = Vec::new();
        for ((token, _, _), pfd) in armed.iter().zip(&fds) {
            let r = pfd.revents;
            if r == 0 {
                continue;
            }
            if let Some(w) = self.watched.get_mut(token) {
                w.armed = None;
            }
            let hup = r & (libc::POLLHUP | libc::POLLRDHUP) != 0;
            out.push((
                *token,
                Readiness {
                    readable: r & libc::POLLIN != 0 || hup,
                    writable: r & (libc::POLLOUT | libc::POLLHUP | libc::POLLERR) != 0,
                },
            ));
        }
        out
    }
}

/// A fake guest vsock driver plus a router driven synchronously.
pub struct Guest {
    pub mem: GuestMemoryMmap,
    pub rx: Rings,
    pub tx: Rings,
    pub rxq: Queue,
    pub txq: Queue,
    rx_seen: u16,
    tx_next: u16,
    pub router: Router,
    pub watch: SocketWatch,
    pub host: VsockHost,
}

impl Guest {
    pub fn new() -> Self {
        let mem = memory();
        let rx = Rings::for_queue(0, 16);
        let tx = Rings::for_queue(1, 16);
        let shared = Arc::new(Shared::new().unwrap());
        let host = VsockHost::from_shared(shared.clone());
        let mut g = Self {
            rxq: rx.queue(),
            txq: tx.queue(),
            mem,
            rx,
            tx,
            rx_seen: 0,
            tx_next: 0,
            router: Router::new(CID, shared),
            watch: SocketWatch::default(),
            host,
        };
        for i in 0..8 {
            g.post_rx(i);
        }
        g
    }

    fn post_rx(&mut self, i: u16) {
        let addr = RX_BUF + u64::from(i) * 0x2000;
        self.rx.desc(
            &self.mem,
            i,
            addr,
            PKT_HEADER_SIZE as u32 + RX_DATA,
            F_WRITE,
            0,
        );
        self.rx.push(&self.mem, i);
    }

    pub fn hdr(&self, src_port: u32, dst_port: u32, op: u16) -> Header {
        hdr(src_port, dst_port, op)
    }

    /// The guest queues one TX packet; the device processes the TX queue.
    pub fn send(&mut self, mut hdr: Header, payload: &[u8]) {
        hdr.len = payload.len() as u32;
        let d = (self.tx_next % 8) * 2;
        self.tx_next += 1;
        let addr = TX_BUF + u64::from(d) * 0x1000;
        self.mem
            .write_slice(&hdr.to_bytes(), GuestAddress(addr))
            .unwrap();
        if payload.is_empty() {
            self.tx
                .desc(&self.mem, d, addr, PKT_HEADER_SIZE as u32, 0, 0);
        } else {
            self.mem
                .write_slice(payload, GuestAddress(addr + 0x100))
                .unwrap();
            self.tx
                .desc(&self.mem, d, addr, PKT_HEADER_SIZE as u32, F_NEXT, d + 1);
            self.tx
                .desc(&self.mem, d + 1, addr + 0x100, payload.len() as u32, 0, 0);
        }
        self.tx.push(&self.mem, d);
        self.process_tx();
    }

    /// The device processes the TX queue. Returns the chains given back.
    pub fn process_tx(&mut self) -> usize {
        let n = tx::process_tx(&mut self.router, &self.mem, &mut self.txq).unwrap();
        self.watch.apply(&mut self.router);
        n
    }

    /// The device handles queued host commands.
    pub fn process_commands(&mut self) {
        self.router.process_commands();
        self.watch.apply(&mut self.router);
    }

    /// Handles host commands until a REQUEST reaches the guest (host code
    /// on another thread queues the connect); returns its header.
    pub fn wait_for_request(&mut self) -> Header {
        loop {
            self.process_commands();
            if let Some(p) = self.pump().into_iter().find(|p| p.0.op == OP_REQUEST) {
                return p.0;
            }
            std::thread::yield_now();
        }
    }

    /// Dispatches socket readiness, fills RX, returns the packets received.
    pub fn pump(&mut self) -> Vec<(Header, Vec<u8>)> {
        for (token, ready) in self.watch.ready() {
            self.router.on_socket_ready(token, ready);
        }
        rx::fill_rx(&mut self.router, &self.mem, &mut self.rxq).unwrap();
        self.watch.apply(&mut self.router);
        let mut out = Vec::new();
        while self.rx_seen != self.rx.used_idx(&self.mem) {
            let (id, len) = self.rx.used_elem(&self.mem, self.rx_seen);
            self.rx_seen = self.rx_seen.wrapping_add(1);
            let addr = RX_BUF + u64::from(id) * 0x2000;
            let mut raw = [0u8; PKT_HEADER_SIZE];
            self.mem.read_slice(&mut raw, GuestAddress(addr)).unwrap();
            let h = Header::from_bytes(&raw);
            assert_eq!(len, PKT_HEADER_SIZE as u32 + h.len);
            let mut data = vec![0u8; h.len as usize];
            self.mem
                .read_slice(&mut data, GuestAddress(addr + PKT_HEADER_SIZE as u64))
                .unwrap();
            out.push((h, data));
            self.post_rx(id as u16);
        }
        out
    }

    /// Guest connects to host `port`; returns the host's accepted stream.
    pub fn connect_to_host(&mut self, guest_port: u32, port: u32) -> UnixStream {
        let listener = self.host.listen(port).unwrap();
        self.send(self.hdr(guest_port, port, OP_REQUEST), &[]);
        let pkts = self.pump();
        assert_eq!(pkts.len(), 1);
        assert_eq!(pkts[0].0.op, OP_RESPONSE);
        assert_eq!((pkts[0].0.src_port, pkts[0].0.dst_port), (port, guest_port));
        assert_eq!(pkts[0].0.dst_cid, CID);
        assert_eq!(pkts[0].0.buf_alloc, CONN_BUF_ALLOC);
        listener.try_accept().unwrap()
    }
}

/// A guest → host header with 64 KiB of guest credit.
pub fn hdr(src_port: u32, dst_port: u32, op: u16) -> Header {
    Header {
        src_cid: CID,
        dst_cid: HOST_CID,
        src_port,
        dst_port,
        len: 0,
        type_: TYPE_STREAM,
        op,
        flags: 0,
        buf_alloc: 64 * 1024,
        fwd_cnt: 0,
    }
}

pub fn ops(pkts: &[(Header, Vec<u8>)]) -> Vec<u16> {
    pkts.iter().map(|p| p.0.op).collect()
}

pub fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
