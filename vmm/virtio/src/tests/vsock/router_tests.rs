//! The router without epoll: the socket interest changes it returns over a
//! connection's life, and the bounds that hold under floods and random
//! hostile packets.

use std::io::{ErrorKind, Read, Write};
use std::sync::Arc;

use super::harness::*;
use crate::testing::Rng;
use crate::vsock::connection::{Interest, CONN_BUF_ALLOC};
use crate::vsock::host::Shared;
use crate::vsock::packet::*;
use crate::vsock::router::{Router, MAX_CONNECTIONS, MAX_PENDING_CONTROL};

const READ: Interest = Interest {
    readable: true,
    writable: false,
};

/// Reads whatever `s` (non-blocking) holds now, up to EOF or an error.
fn read_available(s: &mut std::os::unix::net::UnixStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(got),
            Err(e) => return Err(e),
        }
    }
}

#[test]
fn a_guest_connection_is_watched_for_what_it_waits_on_until_it_closes() {
    let mut g = Guest::new();
    let mut s = g.connect_to_host(5000, 1024);
    assert_eq!(g.watch.len(), 1, "one socket watched per connection");
    let token = g.watch.tokens()[0];
    // Nothing to read yet: armed for host data.
    assert_eq!(g.watch.armed(token), Some(READ));
    s.write_all(b"x").unwrap();
    assert_eq!(g.pump()[0].1, b"x");
    assert_eq!(g.watch.armed(token), Some(READ), "re-armed after reading");

    // The host does not read: once its socket is full, guest data waits
    // in the router and the socket is armed for writing too.
    s.set_nonblocking(true).unwrap();
    let data = pattern(CONN_BUF_ALLOC as usize - 4096);
    let mut sent = 0;
    for chunk in data.chunks(3000) {
        g.send(g.hdr(5000, 1024, OP_RW), chunk);
        sent += chunk.len();
        if g.router.pending_bytes() > 0 {
            break;
        }
    }
    assert!(g.router.pending_bytes() > 0, "host socket never filled");
    assert_eq!(
        g.watch.armed(token),
        Some(Interest {
            readable: true,
            writable: true
        })
    );
    // The host drains it: every byte arrives, the guest hears how much was
    // consumed, and the socket is armed for reading only again.
    let (mut got, mut fwd_cnt) = (Vec::new(), 0);
    for _ in 0..1000 {
        got.extend(read_available(&mut s).unwrap());
        let pkts = g.pump();
        for (h, _) in &pkts {
            assert_eq!(h.op, OP_CREDIT_UPDATE);
            fwd_cnt = h.fwd_cnt;
        }
        if got.len() == sent && g.router.pending_bytes() == 0 && pkts.is_empty() {
            break;
        }
    }
    assert!(got == data[..sent], "stream corrupted");
    assert!(fwd_cnt > 0, "no credit update while the host drained");
    assert_eq!(g.watch.armed(token), Some(READ));

    // A full close: RST answers it, the socket is unwatched and closed.
    let mut h = g.hdr(5000, 1024, OP_SHUTDOWN);
    h.flags = SHUTDOWN_RCV | SHUTDOWN_SEND;
    g.send(h, &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RST]);
    assert_eq!(g.watch.len(), 0);
    s.set_nonblocking(false).unwrap();
    assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn a_host_connection_the_guest_refuses_is_unwatched_and_reads_eof() {
    let mut g = Guest::new();
    let mut s = g.host.connect(1024).unwrap();
    g.process_commands();
    assert_eq!(g.watch.len(), 1);
    let token = g.watch.tokens()[0];
    assert_eq!(
        g.watch.armed(token),
        Some(Interest::default()),
        "nothing to wait for before the guest answers"
    );
    let request = g.pump();
    assert_eq!(ops(&request), vec![OP_REQUEST]);
    g.send(g.hdr(1024, request[0].0.src_port, OP_RST), &[]);
    assert!(g.pump().is_empty(), "a refusal is not answered");
    assert_eq!(g.watch.len(), 0);
    assert_eq!(g.router.connection_count(), 0);
    assert_eq!(s.read(&mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn host_connect_floods_are_bounded() {
    let mut g = Guest::new();
    for _ in 0..MAX_CONNECTIONS {
        // Host ends dropped at once to keep the fd count low; the
        // connections still count until the guest answers.
        drop(g.host.connect(1024).unwrap());
    }
    let mut extra: Vec<_> = (0..3).map(|_| g.host.connect(1024).unwrap()).collect();
    g.process_commands();
    assert_eq!(g.router.connection_count(), MAX_CONNECTIONS);
    assert_eq!(g.watch.len(), MAX_CONNECTIONS);
    for s in &mut extra {
        assert_eq!(
            s.read(&mut [0u8; 1]).unwrap(),
            0,
            "dropped connect not closed"
        );
    }
}

#[test]
fn control_backlog_is_bounded_when_the_guest_posts_no_rx_buffers() {
    let shared = Arc::new(Shared::new().unwrap());
    let mut router = Router::new(CID, shared);
    // Every packet for an unknown connection is answered with RST.
    for port in 0..(MAX_PENDING_CONTROL as u32 + 100) {
        router.on_guest_packet(&hdr(port, 7, OP_RW), &[]);
    }
    assert_eq!(router.pending_control(), MAX_PENDING_CONTROL);
    let mut n = 0;
    while let Some(h) = router.pop_control() {
        assert_eq!((h.op, h.src_cid, h.dst_cid), (OP_RST, HOST_CID, CID));
        n += 1;
    }
    assert_eq!(n, MAX_PENDING_CONTROL);
    assert!(router.take_interest_changes().is_empty());
}

#[test]
fn random_hostile_packets_never_panic_and_keep_every_bound() {
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let mut g = Guest::new();
    let listener = g.host.listen(1024).unwrap();
    let mut hosts = Vec::new();
    for step in 0..4000 {
        let mut h = g.hdr(
            5000 + rng.below(6) as u32,
            [1024, 1024, 1024, 99][rng.below(4) as usize],
            rng.below(9) as u16,
        );
        h.type_ = [TYPE_STREAM, TYPE_STREAM, TYPE_STREAM, 2][rng.below(4) as usize];
        h.flags = rng.below(8) as u32;
        h.buf_alloc = [0, 100, 64 * 1024, u32::MAX][rng.below(4) as usize];
        h.fwd_cnt = rng.next() as u32;
        let payload = pattern(rng.below(3000) as usize);
        g.send(h, &payload);
        // The host side: accepts, writes, reads and hangs up at random.
        while let Some(s) = listener.try_accept() {
            s.set_nonblocking(true).unwrap();
            hosts.push(s);
        }
        if !hosts.is_empty() {
            let i = rng.below(hosts.len() as u64) as usize;
            match rng.below(4) {
                0 => {
                    let _ = hosts[i].write(&payload);
                }
                // A reset connection may have dropped unread host data.
                1 => drop(read_available(&mut hosts[i])),
                2 => drop(hosts.swap_remove(i)),
                _ => {}
            }
        }
        if step % 3 == 0 {
            // `pump` checks every RX packet's length against its header.
            g.pump();
        }
        let count = g.router.connection_count();
        assert!(count <= MAX_CONNECTIONS);
        assert_eq!(
            g.watch.len(),
            count,
            "a connection not watched exactly once"
        );
        assert!(g.router.pending_bytes() <= count * CONN_BUF_ALLOC as usize);
        assert!(g.router.pending_control() <= MAX_PENDING_CONTROL);
    }
    // Once the host ends are gone and the guest has taken every packet,
    // it still works for a well-behaved guest.
    drop(hosts);
    let quiet = (0..100).any(|_| g.pump().is_empty());
    assert!(quiet, "the device kept sending");
    let mut s = g.connect_to_host(7000, 2048);
    g.send(g.hdr(7000, 2048, OP_RW), b"still up");
    let mut buf = [0u8; 8];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still up");
}
