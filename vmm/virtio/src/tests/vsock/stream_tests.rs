//! Whole streams: bulk data both ways under credit limits, closes with
//! data still in flight, and the device end to end through the transport
//! and its worker thread.

use std::io::{Read, Write};

use vm_memory::{Bytes, GuestAddress};

use super::harness::*;
use crate::mmio::MmioTransport;
use crate::testing::*;
use crate::vsock::connection::CONN_BUF_ALLOC;
use crate::vsock::packet::*;
use crate::vsock::Vsock;

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
        g.router.pending_bytes() > 0,
        "test needs data the socket could not take"
    );
    assert!(g.router.pending_bytes() <= CONN_BUF_ALLOC as usize);
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
    assert_eq!(g.router.connection_count(), 0);
}

#[test]
fn guest_close_delivers_unread_data_before_reset() {
    close_with_unread_data(false);
}

#[test]
fn guest_reset_after_close_still_delivers_unread_data() {
    close_with_unread_data(true);
}
