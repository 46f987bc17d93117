use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::epoll::{Epoll, EpollEvent};

use crate::mmio::MmioTransport;
use crate::testing::*;
use crate::vsock::connection::CONN_BUF_ALLOC;
use crate::vsock::muxer::{Muxer, Shared, HOST_CID};
use crate::vsock::packet::*;
use crate::vsock::{Vsock, VsockHost};

const CID: u64 = 3;
const RX_BUF: u64 = 0x10_0000;
const TX_BUF: u64 = 0x18_0000;
const RX_DATA: u32 = 4096;

/// A fake guest vsock driver plus a muxer driven synchronously.
struct Guest {
    mem: GuestMemoryMmap,
    rx: Rings,
    tx: Rings,
    rxq: Queue,
    txq: Queue,
    rx_seen: u16,
    tx_next: u16,
    muxer: Muxer,
    host: VsockHost,
    epoll: Epoll,
}

impl Guest {
    fn new() -> Self {
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
            muxer: Muxer::new(CID, shared),
            host,
            epoll: Epoll::new().unwrap(),
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

    fn hdr(&self, src_port: u32, dst_port: u32, op: u16) -> Header {
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

    fn send(&mut self, mut hdr: Header, payload: &[u8]) {
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
        self.muxer
            .process_tx(&self.mem, &mut self.txq, &self.epoll)
            .unwrap();
    }

    /// Dispatches socket readiness, fills RX, returns the packets received.
    fn pump(&mut self) -> Vec<(Header, Vec<u8>)> {
        let mut events = vec![EpollEvent::default(); 16];
        let n = self.epoll.wait(0, &mut events).unwrap();
        for ev in events.iter().take(n) {
            self.muxer
                .socket_event(ev.data(), ev.event_set(), &self.epoll);
        }
        self.muxer
            .fill_rx(&self.mem, &mut self.rxq, &self.epoll)
            .unwrap();
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
    fn connect_to_host(&mut self, guest_port: u32, port: u32) -> UnixStream {
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

fn ops(pkts: &[(Header, Vec<u8>)]) -> Vec<u16> {
    pkts.iter().map(|p| p.0.op).collect()
}

#[test]
fn guest_connection_to_listener_carries_data_both_ways_and_closes() {
    let mut g = Guest::new();
    let mut s = g.connect_to_host(5000, 1024);
    g.send(g.hdr(5000, 1024, OP_RW), b"hello host");
    let mut buf = [0u8; 10];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello host");
    s.write_all(b"hello guest").unwrap();
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_RW]);
    assert_eq!(pkts[0].1, b"hello guest");
    assert_eq!(pkts[0].0.fwd_cnt, 10, "forwarded bytes reported");
    // Guest closes: SHUTDOWN both → RST back, host reads EOF.
    let mut h = g.hdr(5000, 1024, OP_SHUTDOWN);
    h.flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
    g.send(h, &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RST]);
    assert_eq!(s.read(&mut buf).unwrap(), 0);
    assert_eq!(g.muxer.connection_count(), 0);
}

#[test]
fn connection_to_unknown_port_is_reset() {
    let mut g = Guest::new();
    g.send(g.hdr(5000, 4444, OP_REQUEST), &[]);
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_RST]);
    assert_eq!((pkts[0].0.src_port, pkts[0].0.dst_port), (4444, 5000));
    // Data for a connection that does not exist is reset too; RST is not answered.
    g.send(g.hdr(5000, 4444, OP_RW), b"x");
    g.send(g.hdr(5000, 4444, OP_RST), &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RST]);
}

#[test]
fn packets_with_wrong_cids_or_type_are_not_routed() {
    let mut g = Guest::new();
    let _listener = g.host.listen(1024).unwrap();
    let mut h = g.hdr(5000, 1024, OP_REQUEST);
    h.src_cid = 7;
    g.send(h, &[]);
    let mut h = g.hdr(5000, 1024, OP_REQUEST);
    h.dst_cid = 9;
    g.send(h, &[]);
    assert!(g.pump().is_empty());
    let mut h = g.hdr(5000, 1024, OP_REQUEST);
    h.type_ = 2; // seqpacket: unsupported
    g.send(h, &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RST]);
    assert_eq!(g.muxer.connection_count(), 0);
}

#[test]
fn host_connect_sends_request_and_data_after_response() {
    let mut g = Guest::new();
    let mut s = g.host.connect(1024).unwrap();
    s.write_all(b"early").unwrap();
    g.muxer.process_commands(&g.epoll);
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_REQUEST]);
    let host_port = pkts[0].0.src_port;
    assert_eq!(pkts[0].0.dst_port, 1024);
    // Nothing flows before the guest answers.
    assert!(g.pump().is_empty());
    g.send(g.hdr(1024, host_port, OP_RESPONSE), &[]);
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_RW]);
    assert_eq!(pkts[0].1, b"early");
    // Host closes its end: the guest gets SHUTDOWN(SEND).
    drop(s);
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_SHUTDOWN]);
    assert_eq!(pkts[0].0.flags, SHUTDOWN_SEND);
}

#[test]
fn host_connect_refused_reads_eof() {
    let mut g = Guest::new();
    let mut s = g.host.connect(1024).unwrap();
    g.muxer.process_commands(&g.epoll);
    let host_port = g.pump()[0].0.src_port;
    g.send(g.hdr(1024, host_port, OP_RST), &[]);
    let mut b = [0u8; 1];
    assert_eq!(s.read(&mut b).unwrap(), 0);
}

#[test]
fn host_to_guest_respects_guest_credit_and_asks_for_more() {
    let mut g = Guest::new();
    let listener = g.host.listen(1024).unwrap();
    let mut h = g.hdr(5000, 1024, OP_REQUEST);
    h.buf_alloc = 100;
    g.send(h, &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RESPONSE]);
    let mut s = listener.try_accept().unwrap();
    s.write_all(&[7u8; 300]).unwrap();
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_RW, OP_CREDIT_REQUEST]);
    assert_eq!(pkts[0].1.len(), 100);
    assert!(g.pump().is_empty(), "nothing more without credit");
    // A stalled guest answers with no new credit: no request ping-pong.
    let mut upd = g.hdr(5000, 1024, OP_CREDIT_UPDATE);
    upd.buf_alloc = 100;
    upd.fwd_cnt = 0;
    g.send(upd, &[]);
    assert!(g.pump().is_empty(), "credit re-requested without progress");
    let mut upd = g.hdr(5000, 1024, OP_CREDIT_UPDATE);
    upd.buf_alloc = 100;
    upd.fwd_cnt = 100;
    g.send(upd, &[]);
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_RW, OP_CREDIT_REQUEST]);
    assert_eq!(pkts[0].1.len(), 100);
}

#[test]
fn guest_credit_request_is_answered() {
    let mut g = Guest::new();
    let _s = g.connect_to_host(5000, 1024);
    g.send(g.hdr(5000, 1024, OP_CREDIT_REQUEST), &[]);
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_CREDIT_UPDATE]);
    assert_eq!(pkts[0].0.buf_alloc, CONN_BUF_ALLOC);
}

#[test]
fn guest_overrunning_our_credit_is_reset() {
    let mut g = Guest::new();
    let mut s = g.connect_to_host(5000, 1024);
    // Nobody reads `s`: the socket buffer plus our pending buffer fill up.
    let chunk = vec![1u8; 0x800];
    let mut reset = false;
    for _ in 0..(2 * CONN_BUF_ALLOC as usize / chunk.len() + 64) {
        g.send(g.hdr(5000, 1024, OP_RW), &chunk);
        if ops(&g.pump()).contains(&OP_RST) {
            reset = true;
            break;
        }
    }
    assert!(reset, "overrun not detected");
    assert_eq!(g.muxer.connection_count(), 0);
    // The host still gets what was accepted, then EOF.
    s.set_nonblocking(false).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    assert!(!all.is_empty());
}

#[test]
fn guest_shutdown_send_gives_host_eof_and_keeps_reverse_direction() {
    let mut g = Guest::new();
    let mut s = g.connect_to_host(5000, 1024);
    g.send(g.hdr(5000, 1024, OP_RW), b"last");
    let mut h = g.hdr(5000, 1024, OP_SHUTDOWN);
    h.flags = SHUTDOWN_SEND;
    g.send(h, &[]);
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"last");
    s.write_all(b"reply").unwrap();
    let pkts = g.pump();
    assert_eq!(ops(&pkts), vec![OP_RW]);
    // Data after its own SHUTDOWN(SEND) is a violation.
    g.send(g.hdr(5000, 1024, OP_RW), b"more");
    assert_eq!(ops(&g.pump()), vec![OP_RST]);
}

#[test]
fn malformed_tx_chains_are_returned_and_ignored() {
    let mut g = Guest::new();
    let _listener = g.host.listen(1024).unwrap();
    // Header descriptor shorter than a header.
    g.tx.desc(&g.mem, 0, TX_BUF, 10, 0, 0);
    g.tx.push(&g.mem, 0);
    // Header claiming more payload than the chain holds.
    let mut h = g.hdr(5000, 1024, OP_RW);
    h.len = 1000;
    g.mem
        .write_slice(&h.to_bytes(), GuestAddress(TX_BUF + 0x1000))
        .unwrap();
    g.tx.desc(&g.mem, 1, TX_BUF + 0x1000, PKT_HEADER_SIZE as u32, 0, 0);
    g.tx.push(&g.mem, 1);
    // Payload length near u32::MAX.
    h.len = u32::MAX - 3;
    g.mem
        .write_slice(&h.to_bytes(), GuestAddress(TX_BUF + 0x2000))
        .unwrap();
    g.tx.desc(&g.mem, 2, TX_BUF + 0x2000, PKT_HEADER_SIZE as u32, 0, 0);
    g.tx.push(&g.mem, 2);
    // A descriptor loop.
    g.tx.desc(&g.mem, 3, TX_BUF, 44, F_NEXT, 3);
    g.tx.push(&g.mem, 3);
    let n = g.muxer.process_tx(&g.mem, &mut g.txq, &g.epoll).unwrap();
    assert_eq!(n, 4);
    assert_eq!(g.tx.used_idx(&g.mem), 4);
    assert!(g.pump().is_empty());
    assert_eq!(g.muxer.connection_count(), 0);
}

#[test]
fn duplicate_request_and_stray_response_are_reset() {
    let mut g = Guest::new();
    let _s = g.connect_to_host(5000, 1024);
    g.send(g.hdr(5000, 1024, OP_RESPONSE), &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RST]);
    assert_eq!(g.muxer.connection_count(), 0);
}

#[test]
fn listener_port_conflict_and_unlisten() {
    let g = Guest::new();
    let _l = g.host.listen(77).unwrap();
    assert_eq!(
        g.host.listen(77).unwrap_err().kind(),
        std::io::ErrorKind::AddrInUse
    );
    g.host.unlisten(77);
    assert!(g.host.listen(77).is_ok());
}

#[test]
fn bad_guest_cid_is_refused() {
    assert!(Vsock::new(2).is_err());
    assert!(Vsock::new(1 << 40).is_err());
    assert!(Vsock::new(3).is_ok());
}

#[test]
fn end_to_end_through_mmio_and_worker_thread() {
    let dev = Vsock::new(CID).unwrap();
    let host = dev.host();
    let listener = host.listen(1024).unwrap();
    let mem = memory();
    let mut t = MmioTransport::new(mem.clone(), Box::new(dev)).unwrap();
    let mut cid = [0u8; 8];
    t.bus_read(0x100, &mut cid);
    assert_eq!(u64::from_le_bytes(cid), CID);
    let rings = bring_up(&mut t, 0, 16);
    let (rx, tx) = (rings[0], rings[1]);
    for i in 0..4u16 {
        rx.desc(
            &mem,
            i,
            RX_BUF + u64::from(i) * 0x2000,
            44 + RX_DATA,
            F_WRITE,
            0,
        );
        rx.push(&mem, i);
    }
    let hdr = Header {
        src_cid: CID,
        dst_cid: HOST_CID,
        src_port: 5000,
        dst_port: 1024,
        len: 0,
        type_: TYPE_STREAM,
        op: OP_REQUEST,
        flags: 0,
        buf_alloc: 65536,
        fwd_cnt: 0,
    };
    mem.write_slice(&hdr.to_bytes(), GuestAddress(TX_BUF))
        .unwrap();
    tx.desc(&mem, 0, TX_BUF, 44, 0, 0);
    tx.push(&mem, 0);
    mmio_write(&mut t, 0x50, 1);
    let irq = t.irq_evt().try_clone().unwrap();
    while rx.used_idx(&mem) < 1 {
        assert!(wait_evt(&irq), "no interrupt from the vsock worker");
    }
    let mut raw = [0u8; PKT_HEADER_SIZE];
    mem.read_slice(&mut raw, GuestAddress(RX_BUF)).unwrap();
    assert_eq!(Header::from_bytes(&raw).op, OP_RESPONSE);
    let mut s = listener
        .accept_timeout(std::time::Duration::from_secs(20))
        .expect("no connection accepted");
    s.write_all(b"ping").unwrap();
    while rx.used_idx(&mem) < 2 {
        assert!(wait_evt(&irq), "no data from the vsock worker");
    }
    let mut data = [0u8; 4];
    mem.read_slice(&mut data, GuestAddress(RX_BUF + 0x2000 + 44))
        .unwrap();
    assert_eq!(&data, b"ping");
    // Reset drops every connection: the host end reads EOF.
    mmio_write(&mut t, 0x70, 0);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

fn pattern(len: usize) -> Vec<u8> {
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

#[test]
fn bulk_host_to_guest_stream_is_intact_under_small_guest_credit() {
    let mut g = Guest::new();
    let listener = g.host.listen(1024).unwrap();
    let mut h = g.hdr(5000, 1024, OP_REQUEST);
    h.buf_alloc = 16 * 1024;
    g.send(h, &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RESPONSE]);
    let mut s = listener.try_accept().unwrap();
    s.set_nonblocking(true).unwrap();
    let data = pattern(3 << 20);
    let (mut written, mut received) = (0usize, Vec::new());
    let mut eof = false;
    for _ in 0..1_000_000 {
        if written < data.len() {
            match s.write(&data[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
            if written == data.len() {
                s.shutdown(std::net::Shutdown::Write).unwrap();
            }
        }
        for (hdr, payload) in g.pump() {
            match hdr.op {
                OP_RW => {
                    let in_flight = received.len() as u64 + payload.len() as u64;
                    assert!(payload.len() <= 16 * 1024, "packet beyond guest credit");
                    received.extend_from_slice(&payload);
                    assert!(in_flight <= data.len() as u64);
                }
                OP_CREDIT_REQUEST => {}
                OP_SHUTDOWN => eof = true,
                op => panic!("unexpected op {op}"),
            }
        }
        // The guest consumes everything at once and reports it.
        let mut upd = g.hdr(5000, 1024, OP_CREDIT_UPDATE);
        upd.buf_alloc = 16 * 1024;
        upd.fwd_cnt = received.len() as u32;
        g.send(upd, &[]);
        if eof {
            break;
        }
    }
    assert!(
        eof,
        "no EOF after {} of {} bytes",
        received.len(),
        data.len()
    );
    assert!(received == data, "stream corrupted");
}

#[test]
fn bulk_guest_to_host_stream_respects_host_credit() {
    let mut g = Guest::new();
    let mut s = g.connect_to_host(5000, 1024);
    s.set_nonblocking(true).unwrap();
    let data = pattern(3 << 20);
    let (mut sent, mut got) = (0usize, Vec::new());
    let (mut host_buf, mut host_fwd) = (CONN_BUF_ALLOC, 0u32);
    for _ in 0..1_000_000 {
        let credit = host_buf as usize - (sent - host_fwd as usize);
        if sent < data.len() && credit > 0 {
            let n = credit.min(3000).min(data.len() - sent);
            g.send(g.hdr(5000, 1024, OP_RW), &data[sent..sent + n]);
            sent += n;
        } else if sent < data.len() {
            g.send(g.hdr(5000, 1024, OP_CREDIT_REQUEST), &[]);
        }
        for (hdr, _) in g.pump() {
            assert_ne!(hdr.op, OP_RST, "host reset a credit-respecting guest");
            host_buf = hdr.buf_alloc;
            host_fwd = hdr.fwd_cnt;
        }
        let mut buf = [0u8; 8192];
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        if got.len() == data.len() {
            break;
        }
    }
    assert_eq!(got.len(), data.len());
    assert!(got == data, "stream corrupted");
}

/// Guest writes a lot, then closes (SHUTDOWN both, optionally followed by
/// RST as Linux does after its close timeout) before the host has read
/// anything: every byte still reaches the host, then EOF.
fn close_with_unread_data(rst_too: bool) {
    let mut g = Guest::new();
    let mut s = g.connect_to_host(5000, 1024);
    let data = pattern(CONN_BUF_ALLOC as usize - 1000);
    for chunk in data.chunks(3000) {
        g.send(g.hdr(5000, 1024, OP_RW), chunk);
    }
    let mut h = g.hdr(5000, 1024, OP_SHUTDOWN);
    h.flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
    g.send(h, &[]);
    if rst_too {
        g.send(g.hdr(5000, 1024, OP_RST), &[]);
    }
    assert!(
        g.muxer.pending_bytes() > 0,
        "test needs data the socket could not take"
    );
    assert!(g.muxer.pending_bytes() <= CONN_BUF_ALLOC as usize);
    assert!(
        !ops(&g.pump()).contains(&OP_RST),
        "reset before the data was delivered"
    );
    s.set_nonblocking(true).unwrap();
    let (mut got, mut eof, mut rst) = (Vec::new(), false, false);
    for _ in 0..100_000 {
        let mut buf = [0u8; 4096];
        match s.read(&mut buf) {
            Ok(0) => eof = true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        rst |= ops(&g.pump()).contains(&OP_RST);
        if eof {
            break;
        }
    }
    assert!(eof, "no EOF");
    assert!(got == data, "lost data: {} of {}", got.len(), data.len());
    assert_eq!(
        rst, !rst_too,
        "RST answers a close only if the guest did not reset"
    );
    assert_eq!(g.muxer.connection_count(), 0);
}

#[test]
fn guest_close_delivers_unread_data_before_reset() {
    close_with_unread_data(false);
}

#[test]
fn guest_reset_after_close_still_delivers_unread_data() {
    close_with_unread_data(true);
}

#[test]
fn connect_timeout_reports_accept_refuse_and_silence() {
    use std::time::Duration;
    let mut g = Guest::new();
    // Refused: the guest answers RST.
    let host = g.host.clone();
    let refused = std::thread::spawn(move || host.connect_timeout(1024, Duration::from_secs(60)));
    let request = loop {
        g.muxer.process_commands(&g.epoll);
        if let Some(p) = g.pump().into_iter().find(|p| p.0.op == OP_REQUEST) {
            break p.0;
        }
        std::thread::yield_now();
    };
    g.send(g.hdr(1024, request.src_port, OP_RST), &[]);
    let err = refused.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // Accepted: the guest answers RESPONSE.
    let host = g.host.clone();
    let accepted = std::thread::spawn(move || host.connect_timeout(1024, Duration::from_secs(60)));
    let request = loop {
        g.muxer.process_commands(&g.epoll);
        if let Some(p) = g.pump().into_iter().find(|p| p.0.op == OP_REQUEST) {
            break p.0;
        }
        std::thread::yield_now();
    };
    g.send(g.hdr(1024, request.src_port, OP_RESPONSE), &[]);
    let mut s = accepted.join().unwrap().unwrap();
    s.write_all(b"up").unwrap();
    assert_eq!(g.pump()[0].1, b"up");
    // Silence: nobody processes the request.
    let err = g
        .host
        .connect_timeout(1024, Duration::from_millis(1))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
}

#[test]
fn connection_floods_are_bounded() {
    use crate::vsock::muxer::{MAX_CONNECTIONS, MAX_PENDING_ACCEPTS};
    let mut g = Guest::new();
    let listener = g.host.listen(1024).unwrap();
    let mut accepted = 0;
    let mut refused = 0;
    for port in 0..(MAX_PENDING_ACCEPTS as u32 + 10) {
        g.send(g.hdr(10_000 + port, 1024, OP_REQUEST), &[]);
        for (h, _) in g.pump() {
            match h.op {
                OP_RESPONSE => accepted += 1,
                OP_RST => refused += 1,
                op => panic!("op {op}"),
            }
        }
    }
    assert_eq!(
        accepted, MAX_PENDING_ACCEPTS,
        "unaccepted connections not capped"
    );
    assert_eq!(refused, 10);
    // Accepting frees room in the queue.
    let _s = listener.try_accept().unwrap();
    g.send(g.hdr(20_000, 1024, OP_REQUEST), &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RESPONSE]);
    // And the total number of connections is capped too (host ends are
    // dropped at once to keep this test's fd use low; the guest side of
    // each connection stays open, so it still counts).
    let mut port = 30_000;
    while g.muxer.connection_count() < MAX_CONNECTIONS {
        while listener.try_accept().is_some() {}
        g.send(g.hdr(port, 1024, OP_REQUEST), &[]);
        port += 1;
        g.pump();
    }
    while listener.try_accept().is_some() {}
    g.send(g.hdr(port, 1024, OP_REQUEST), &[]);
    assert!(ops(&g.pump()).contains(&OP_RST));
    assert_eq!(g.muxer.connection_count(), MAX_CONNECTIONS);
}
