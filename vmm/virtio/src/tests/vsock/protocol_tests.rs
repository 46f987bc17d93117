//! The device's vsock protocol through the fake guest driver: connection
//! set-up, refusals, credit, shutdown and hostile packets.

use std::io::{Read, Write};

use vm_memory::{Bytes, GuestAddress};

use super::harness::*;
use crate::testing::*;
use crate::vsock::connection::CONN_BUF_ALLOC;
use crate::vsock::packet::*;
use crate::vsock::Vsock;

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
    assert_eq!(g.router.connection_count(), 0);
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
    assert_eq!(g.router.connection_count(), 0);
}

#[test]
fn host_connect_sends_request_and_data_after_response() {
    let mut g = Guest::new();
    let mut s = g.host.connect(1024).unwrap();
    s.write_all(b"early").unwrap();
    g.process_commands();
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
    g.process_commands();
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
    assert_eq!(g.router.connection_count(), 0);
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
    let n = g.process_tx();
    assert_eq!(n, 4);
    assert_eq!(g.tx.used_idx(&g.mem), 4);
    assert!(g.pump().is_empty());
    assert_eq!(g.router.connection_count(), 0);
}

#[test]
fn duplicate_request_and_stray_response_are_reset() {
    let mut g = Guest::new();
    let _s = g.connect_to_host(5000, 1024);
    g.send(g.hdr(5000, 1024, OP_RESPONSE), &[]);
    assert_eq!(ops(&g.pump()), vec![OP_RST]);
    assert_eq!(g.router.connection_count(), 0);
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
fn connect_timeout_reports_accept_refuse_and_silence() {
    use std::time::Duration;
    let mut g = Guest::new();
    // Refused: the guest answers RST.
    let host = g.host.clone();
    let refused = std::thread::spawn(move || host.connect_timeout(1024, Duration::from_secs(60)));
    let request = g.wait_for_request();
    g.send(g.hdr(1024, request.src_port, OP_RST), &[]);
    let err = refused.join().unwrap().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    // Accepted: the guest answers RESPONSE.
    let host = g.host.clone();
    let accepted = std::thread::spawn(move || host.connect_timeout(1024, Duration::from_secs(60)));
    let request = g.wait_for_request();
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
    use crate::vsock::host::MAX_PENDING_ACCEPTS;
    use crate::vsock::router::MAX_CONNECTIONS;
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
    while g.router.connection_count() < MAX_CONNECTIONS {
        while listener.try_accept().is_some() {}
        g.send(g.hdr(port, 1024, OP_REQUEST), &[]);
        port += 1;
        g.pump();
    }
    while listener.try_accept().is_some() {}
    g.send(g.hdr(port, 1024, OP_REQUEST), &[]);
    assert!(ops(&g.pump()).contains(&OP_RST));
    assert_eq!(g.router.connection_count(), MAX_CONNECTIONS);
}
