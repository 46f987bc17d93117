//! The vsock packet header and the connection state machine behind the
//! router, driven by a sequence of operations: guest packets (any header
//! field, any op, credit values, payloads), host connects, accepts, host
//! reads, writes and closes, socket readiness (epoll's one-shot semantics,
//! see `vmrun_fuzz::socket_watch`), failed socket watches, and RX buffers
//! the guest posts, which the device fills.
//!
//! Asserted besides "no panic":
//! - the header codec round-trips any 44 bytes;
//! - the router's socket interest changes are ones epoll would accept;
//! - connections, pending guest data and queued control packets stay
//!   within their caps;
//! - every packet the device puts in an RX buffer is host → guest, of
//!   stream type, a known op, header-only unless OP_RW, fits the buffer
//!   and its used length says exactly its size.

#![no_main]

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmrun_fuzz::input::ByteReader;
use vmrun_fuzz::socket_watch::SocketWatch;
use vmrun_fuzz::virtq::{Buf, DriverQueue};
use vmrun_virtio::vsock::connection::CONN_BUF_ALLOC;
use vmrun_virtio::vsock::host::{Shared, VsockHost, VsockListener};
use vmrun_virtio::vsock::packet::*;
use vmrun_virtio::vsock::router::{Router, MAX_CONNECTIONS, MAX_PENDING_CONTROL};
use vmrun_virtio::vsock::rx::{fill_rx, MAX_RX_PAYLOAD};

const GUEST_CID: u64 = 3;
const HOST_CID: u64 = libc::VMADDR_CID_HOST as u64;
/// Host ports with a listener.
const LISTEN_PORTS: [u32; 2] = [1024, 1025];
/// Ports a guest packet names on the host: listeners, the first two
/// ephemeral ports host connects use, and one nobody uses.
const HOST_PORTS: [u32; 5] = [1024, 1025, 49152, 49153, 7];
const GUEST_PORTS: [u32; 3] = [5000, 5001, 1024];
/// Operations per input.
const MAX_OPS: usize = 256;
/// Host streams kept at once.
const MAX_STREAMS: usize = 16;

/// RX rings and buffers in guest memory.
const RX_QUEUE_SIZE: u16 = 16;
const RX_DESC: u64 = 0x0;
const RX_AVAIL: u64 = 0x1000;
const RX_USED: u64 = 0x2000;
const RX_BUFS: u64 = 0x1_0000;
/// One RX buffer slot: room for the biggest packet.
const RX_SLOT: u64 = 0x1_1000;
const MEM_SIZE: usize = 0x1_0000 + 16 * 0x1_1000;

/// The RX buffer posted in each descriptor slot, while the device has it.
type Posted = [Option<u32>; RX_QUEUE_SIZE as usize];

struct Harness {
    router: Router,
    host: VsockHost,
    listeners: Vec<VsockListener>,
    streams: Vec<UnixStream>,
    watch: SocketWatch,
    mem: GuestMemoryMmap,
    rx: DriverQueue,
    rx_queue: Queue,
    posted: Posted,
}

impl Harness {
    fn new() -> Option<Self> {
        let shared = Arc::new(Shared::new().ok()?);
        let host = VsockHost::from_shared(shared.clone());
        let listeners = LISTEN_PORTS
            .iter()
            .filter_map(|p| host.listen(*p).ok())
            .collect();
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).ok()?;
        let rx = DriverQueue::new(RX_DESC, RX_AVAIL, RX_USED, RX_QUEUE_SIZE);
        let rx_queue = rx.device_queue()?;
        Some(Self {
            router: Router::new(GUEST_CID, shared),
            host,
            listeners,
            streams: Vec::new(),
            watch: SocketWatch::default(),
            mem,
            rx,
            rx_queue,
            posted: [None; RX_QUEUE_SIZE as usize],
        })
    }

    fn guest_packet(&mut self, r: &mut ByteReader<'_>) {
        let len = r.pick(&[0usize, 1, 100, 4096], |r| usize::from(r.u16()) * 8);
        let hdr = Header {
            src_cid: r.pick(&[GUEST_CID], |r| r.u64()),
            dst_cid: r.pick(&[HOST_CID], |r| r.u64()),
            src_port: r.pick(&GUEST_PORTS, |r| r.u32()),
            dst_port: r.pick(&HOST_PORTS, |r| r.u32()),
            len: len as u32,
            type_: r.pick(&[TYPE_STREAM], |r| r.u16()),
            op: u16::from(r.u8() % 9),
            flags: r.pick(&[0, SHUTDOWN_RCV, SHUTDOWN_SEND, 3], |r| r.u32()),
            buf_alloc: r.pick(&[CONN_BUF_ALLOC, 0, 4096], |r| r.u32()),
            fwd_cnt: r.pick(&[0, 4096], |r| r.u32()),
        };
        let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
        self.router.on_guest_packet(&hdr, &payload);
    }

    fn host_connect(&mut self, r: &mut ByteReader<'_>) {
        let port = r.pick(&GUEST_PORTS, |r| r.u32());
        if let Ok(s) = self.host.connect(port) {
            self.keep(s);
        }
        self.router.process_commands();
    }

    fn accept(&mut self) {
        let accepted: Vec<UnixStream> = self
            .listeners
            .iter()
            .filter_map(|l| l.try_accept())
            .collect();
        for s in accepted {
            self.keep(s);
        }
    }

    fn keep(&mut self, s: UnixStream) {
        if self.streams.len() < MAX_STREAMS && s.set_nonblocking(true).is_ok() {
            self.streams.push(s);
        }
    }

    fn stream(&mut self, r: &mut ByteReader<'_>) -> Option<usize> {
        let i = usize::from(r.u8());
        (!self.streams.is_empty()).then(|| i % self.streams.len())
    }

    fn host_write(&mut self, r: &mut ByteReader<'_>) {
        let len = r.pick(&[1usize, 1000, 70_000], |r| usize::from(r.u16()));
        if let Some(i) = self.stream(r) {
            let data = vec![0x5a; len];
            let _ = self.streams[i].write(&data);
        }
    }

    fn host_read(&mut self, r: &mut ByteReader<'_>) {
        if let Some(i) = self.stream(r) {
            let mut buf = vec![0u8; 1 << 16];
            let _ = self.streams[i].read(&mut buf);
        }
    }

    fn host_close(&mut self, r: &mut ByteReader<'_>) {
        let how = r.u8();
        if let Some(i) = self.stream(r) {
            if how & 1 == 0 {
                let _ = self.streams[i].shutdown(Shutdown::Write);
            } else {
                self.streams.swap_remove(i);
            }
        }
    }

    fn watch_failed(&mut self, r: &mut ByteReader<'_>) {
        let tokens = self.watch.tokens();
        let token = match tokens.get(usize::from(r.u8()) % (tokens.len() + 1)) {
            Some(t) => *t,
            None => r.u64(),
        };
        self.router.on_watch_failed(token);
    }

    /// Posts up to `count` free RX buffers of one size, lets the device
    /// fill them and checks what it wrote.
    fn rx(&mut self, r: &mut ByteReader<'_>) {
        let count = 1 + r.u8() % 4;
        let size = r.pick(
            &[
                PKT_HEADER_SIZE as u32,
                4096,
                (MAX_RX_PAYLOAD + PKT_HEADER_SIZE) as u32,
                10,
            ],
            |r| u32::from(r.u16()),
        );
        let mut posted = 0;
        for slot in 0..RX_QUEUE_SIZE {
            if posted == count || self.posted[usize::from(slot)].is_some() {
                continue;
            }
            let buf = Buf {
                addr: RX_BUFS + u64::from(slot) * RX_SLOT,
                len: size,
                writable: true,
            };
            if self.rx.post(&self.mem, slot, &[buf]) {
                self.posted[usize::from(slot)] = Some(size);
                posted += 1;
            }
        }
        let _ = fill_rx(&mut self.router, &self.mem, &mut self.rx_queue);
        for (id, len) in self.rx.take_used(&self.mem) {
            let slot = usize::try_from(id).unwrap_or(usize::MAX);
            let Some(size) = self.posted.get_mut(slot).and_then(Option::take) else {
                panic!("vsock: RX used id {id} was never posted");
            };
            self.check_rx_packet(slot as u64, size, len);
        }
    }

    fn check_rx_packet(&self, slot: u64, size: u32, used: u32) {
        assert!(used <= size, "vsock: used length {used} > buffer {size}");
        if used == 0 {
            return;
        }
        let mut raw = [0u8; PKT_HEADER_SIZE];
        let at = GuestAddress(RX_BUFS + slot * RX_SLOT);
        if self.mem.read_slice(&mut raw, at).is_err() {
            panic!("vsock: RX buffer unreadable");
        }
        let h = Header::from_bytes(&raw);
        assert_eq!((h.src_cid, h.dst_cid), (HOST_CID, GUEST_CID), "{h:?}");
        assert_eq!(h.type_, TYPE_STREAM, "{h:?}");
        assert!((OP_REQUEST..=OP_CREDIT_REQUEST).contains(&h.op), "{h:?}");
        assert!(
            h.op == OP_RW || h.len == 0,
            "control packet with data: {h:?}"
        );
        assert!(h.len as usize <= MAX_RX_PAYLOAD, "{h:?}");
        assert_eq!(used, PKT_HEADER_SIZE as u32 + h.len, "used length vs {h:?}");
    }

    fn check_bounds(&self) {
        let conns = self.router.connection_count();
        assert!(conns <= MAX_CONNECTIONS, "{conns} connections");
        assert!(self.router.pending_control() <= MAX_PENDING_CONTROL);
        assert!(self.router.pending_bytes() <= conns * CONN_BUF_ALLOC as usize);
        assert_eq!(self.watch.len(), conns, "watched sockets vs connections");
    }
}

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    if let Ok(raw) = <[u8; PKT_HEADER_SIZE]>::try_from(data.get(..PKT_HEADER_SIZE).unwrap_or(&[])) {
        assert_eq!(Header::from_bytes(&raw).to_bytes(), raw);
    }
    let Some(mut h) = Harness::new() else {
        return;
    };
    let mut r = ByteReader::new(data);
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        match r.u8() % 9 {
            0 | 1 => h.guest_packet(&mut r),
            2 => h.host_connect(&mut r),
            3 => h.accept(),
            4 => h.host_write(&mut r),
            5 => h.host_read(&mut r),
            6 => h.host_close(&mut r),
            7 => {
                h.watch.dispatch(&mut h.router);
            }
            _ => {
                if r.u8() & 1 == 0 {
                    h.rx(&mut r);
                } else {
                    h.watch_failed(&mut r);
                }
            }
        }
        h.watch.apply(&mut h.router);
        h.check_bounds();
    }
});
