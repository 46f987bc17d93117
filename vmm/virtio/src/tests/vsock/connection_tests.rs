//! The connection state machine on its own: a socket pair, packets handed
//! in, and what it asks the router to do.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use super::harness::{hdr, pattern};
use crate::vsock::connection::*;
use crate::vsock::packet::*;

const READ: Readiness = Readiness {
    readable: true,
    writable: false,
};
const WRITE: Readiness = Readiness {
    readable: false,
    writable: true,
};

fn packet(op: u16, flags: u32) -> Header {
    let mut h = hdr(5000, 1024, op);
    h.flags = flags;
    h
}

/// An established guest-initiated connection with `buf_alloc` of guest
/// credit, and the host's end of it.
fn established(buf_alloc: u32) -> (Connection, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut request = packet(OP_REQUEST, 0);
    request.buf_alloc = buf_alloc;
    (Connection::guest_initiated(ours, &request).unwrap(), theirs)
}

/// Sends guest data until the host end's socket is full and some waits in
/// the connection. Returns everything sent.
fn fill_host_socket(c: &mut Connection) -> Vec<u8> {
    let data = pattern(CONN_BUF_ALLOC as usize - 4096);
    let mut sent = Vec::new();
    for chunk in data.chunks(3000) {
        let action = c.on_guest_packet(&packet(OP_RW, 0), chunk);
        assert!(matches!(
            action,
            Action::Keep | Action::Send(OP_CREDIT_UPDATE)
        ));
        sent.extend_from_slice(chunk);
        if c.pending_len() > 0 {
            return sent;
        }
    }
    panic!("host socket never filled");
}

/// Reports the socket writable while a thread reads the host end to EOF,
/// until the connection asks for more than [`Action::Keep`]. Returns that
/// action and what the host read.
fn deliver_while_host_reads(c: &mut Connection, mut host: UnixStream) -> (Action, Vec<u8>) {
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        host.read_to_end(&mut got).unwrap();
        got
    });
    let mut action = Action::Keep;
    for _ in 0..1_000_000 {
        action = c.on_socket_ready(WRITE);
        if action != Action::Keep {
            break;
        }
        std::thread::yield_now();
    }
    (action, reader.join().unwrap())
}

#[test]
fn a_host_connection_waits_for_the_guest_then_reports_the_accept() {
    let (tx, rx) = mpsc::channel();
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let mut c = Connection::host_initiated(ours, Some(tx)).unwrap();
    assert_eq!(c.interest(), Interest::default());
    assert_eq!(
        c.rx_want(),
        RxWant::Nothing,
        "data before the guest accepts"
    );
    assert_eq!(
        c.on_guest_packet(&packet(OP_RESPONSE, 0), &[]),
        Action::Keep
    );
    assert_eq!(rx.try_recv(), Ok(true));
    assert_eq!(c.rx_want(), RxWant::Data);
}

#[test]
fn a_refused_host_connection_tells_the_waiter_and_closes_the_host_end() {
    let (tx, rx) = mpsc::channel();
    let (ours, mut theirs) = UnixStream::pair().unwrap();
    let mut c = Connection::host_initiated(ours, Some(tx)).unwrap();
    assert_eq!(c.on_guest_packet(&packet(OP_RST, 0), &[]), Action::Close);
    drop(c.close());
    assert_eq!(rx.try_recv(), Ok(false));
    assert_eq!(theirs.read(&mut [0u8; 1]).unwrap(), 0);
}

#[test]
fn packets_out_of_place_reset_the_connection() {
    let (ours, _theirs) = UnixStream::pair().unwrap();
    let mut connecting = Connection::host_initiated(ours, None).unwrap();
    assert_eq!(
        connecting.on_guest_packet(&packet(OP_RW, 0), b"early"),
        Action::Reset
    );
    for op in [OP_REQUEST, OP_RESPONSE, 0, 99] {
        let (mut c, _host) = established(4096);
        assert_eq!(
            c.on_guest_packet(&packet(op, 0), &[]),
            Action::Reset,
            "op {op}"
        );
    }
}

#[test]
fn guest_data_reaches_the_host_and_consumed_credit_is_reported() {
    let (mut c, mut host) = established(4096);
    let chunk = vec![7u8; 4096];
    let mut sent = 0u32;
    let mut updated = false;
    while sent < 2 * CREDIT_UPDATE_THRESHOLD {
        let action = c.on_guest_packet(&packet(OP_RW, 0), &chunk);
        sent += chunk.len() as u32;
        let mut got = vec![0u8; chunk.len()];
        host.read_exact(&mut got).unwrap();
        assert_eq!(got, chunk);
        if action == Action::Send(OP_CREDIT_UPDATE) {
            assert!(
                sent >= CREDIT_UPDATE_THRESHOLD,
                "update before the threshold"
            );
            assert_eq!(c.report_fwd_cnt(), sent);
            updated = true;
        } else {
            assert_eq!(action, Action::Keep);
        }
    }
    assert!(updated, "no credit update after {sent} bytes");
    assert_eq!(
        c.on_guest_packet(&packet(OP_CREDIT_REQUEST, 0), &[]),
        Action::Send(OP_CREDIT_UPDATE)
    );
}

#[test]
fn a_guest_overrunning_its_credit_is_reset_with_bounded_memory() {
    let (mut c, _host) = established(4096);
    fill_host_socket(&mut c);
    let chunk = vec![1u8; 3000];
    for _ in 0..(CONN_BUF_ALLOC as usize / chunk.len() + 2) {
        match c.on_guest_packet(&packet(OP_RW, 0), &chunk) {
            Action::Reset => return,
            action => assert!(matches!(action, Action::Keep | Action::Send(_))),
        }
        assert!(c.pending_len() <= CONN_BUF_ALLOC as usize);
    }
    panic!("overrun not detected");
}

#[test]
fn a_full_close_resets_once_everything_reached_the_host() {
    let (mut c, host) = established(4096);
    let sent = fill_host_socket(&mut c);
    let close = packet(OP_SHUTDOWN, SHUTDOWN_RCV | SHUTDOWN_SEND);
    assert_eq!(
        c.on_guest_packet(&close, &[]),
        Action::Keep,
        "reset too early"
    );
    assert!(c.interest().writable);
    assert!(!c.interest().readable, "the guest receives no more");
    assert_eq!(c.rx_want(), RxWant::Nothing);
    let (action, got) = deliver_while_host_reads(&mut c, host);
    assert_eq!(action, Action::Reset);
    assert!(got == sent, "host did not get all, then EOF");
}

#[test]
fn data_after_the_guests_shutdown_resets_even_while_draining() {
    let (mut c, _host) = established(4096);
    let shut = packet(OP_SHUTDOWN, SHUTDOWN_SEND);
    assert_eq!(c.on_guest_packet(&shut, &[]), Action::Keep);
    assert_eq!(c.on_guest_packet(&packet(OP_RW, 0), b"late"), Action::Reset);
    let (mut c, _host) = established(4096);
    fill_host_socket(&mut c);
    assert_eq!(c.on_guest_packet(&shut, &[]), Action::Keep);
    assert_eq!(c.on_guest_packet(&packet(OP_RST, 0), &[]), Action::Keep);
    assert_eq!(c.on_guest_packet(&packet(OP_RW, 0), b"late"), Action::Reset);
}

#[test]
fn a_guest_reset_after_its_shutdown_still_drains_pending_data() {
    let (mut c, host) = established(4096);
    let sent = fill_host_socket(&mut c);
    let shut = packet(OP_SHUTDOWN, SHUTDOWN_SEND);
    assert_eq!(c.on_guest_packet(&shut, &[]), Action::Keep);
    assert_eq!(c.on_guest_packet(&packet(OP_RST, 0), &[]), Action::Keep);
    assert_eq!(c.rx_want(), RxWant::Nothing);
    assert_eq!(
        c.interest(),
        Interest {
            readable: false,
            writable: true
        }
    );
    let (action, got) = deliver_while_host_reads(&mut c, host);
    assert_eq!(
        action,
        Action::Close,
        "a drained connection closes silently"
    );
    assert!(got == sent, "host did not get all, then EOF");
}

#[test]
fn a_guest_reset_with_nothing_pending_closes_at_once() {
    let (mut c, _host) = established(4096);
    assert_eq!(c.on_guest_packet(&packet(OP_RST, 0), &[]), Action::Close);
}

#[test]
fn credit_is_requested_once_until_the_guest_gives_some() {
    let (mut c, mut host) = established(10);
    host.write_all(&[9u8; 30]).unwrap();
    assert_eq!(c.rx_want(), RxWant::Data);
    assert_eq!(
        c.read_for_guest(100.min(c.peer_credit() as usize)),
        HostRead::Data(vec![9; 10])
    );
    assert_eq!(c.peer_credit(), 0);
    assert_eq!(c.rx_want(), RxWant::CreditRequest);
    assert_eq!(c.rx_want(), RxWant::Nothing, "asked twice");
    // A stalled guest answers with no new credit: no ping-pong.
    let mut update = packet(OP_CREDIT_UPDATE, 0);
    update.buf_alloc = 10;
    assert_eq!(c.on_guest_packet(&update, &[]), Action::Keep);
    assert_eq!(c.rx_want(), RxWant::Nothing);
    update.fwd_cnt = 10;
    assert_eq!(c.on_guest_packet(&update, &[]), Action::Keep);
    assert_eq!(c.rx_want(), RxWant::Data);
}

#[test]
fn reading_waits_for_the_socket_and_host_eof_ends_the_host_direction() {
    let (mut c, mut host) = established(4096);
    assert_eq!(c.read_for_guest(100), HostRead::WouldBlock);
    assert_eq!(
        c.interest(),
        Interest {
            readable: true,
            writable: false
        }
    );
    assert_eq!(c.rx_want(), RxWant::Nothing);
    host.write_all(b"hi").unwrap();
    assert_eq!(c.on_socket_ready(READ), Action::Keep);
    assert_eq!(c.rx_want(), RxWant::Data);
    assert_eq!(c.read_for_guest(100), HostRead::Data(b"hi".to_vec()));
    drop(host);
    assert_eq!(c.read_for_guest(100), HostRead::Eof);
    assert_eq!(c.rx_want(), RxWant::Nothing);
    assert_eq!(c.interest(), Interest::default());
}
