//! vsock throughput through the device's router and its TX/RX queue code,
//! with the host end a socket pair (as the VMM's host handles are): guest
//! → host and host → guest, 32 KiB per round (`cargo bench -p
//! vmrun-virtio --bench vsock_stream`).
// criterion_group!/criterion_main! expand to undocumented items.
#![allow(missing_docs)]

mod common;

use std::io::{Read, Write};
use std::num::Wrapping;
use std::os::unix::net::UnixStream;
use std::sync::Arc;

use common::{memory, Ring, F_NEXT, F_WRITE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmrun_virtio::vsock::connection::Readiness;
use vmrun_virtio::vsock::host::{Shared, VsockHost};
use vmrun_virtio::vsock::packet::{
    Header, OP_CREDIT_UPDATE, OP_REQUEST, OP_RW, PKT_HEADER_SIZE, TYPE_STREAM,
};
use vmrun_virtio::vsock::router::{InterestChange, Router};
use vmrun_virtio::vsock::{rx, tx};

const GUEST_CID: u64 = 3;
const HOST_PORT: u32 = 1024;
const GUEST_PORT: u32 = 5000;
/// Bytes per round.
const ROUND: usize = 32 * 1024;
/// Payload per guest TX packet.
const TX_CHUNK: usize = 4096;
/// The guest's receive buffer as it advertises it.
const GUEST_BUF: u32 = 256 * 1024;
const RX_BUF: u64 = 0x10_0000;
const RX_BUF_LEN: u32 = PKT_HEADER_SIZE as u32 + 64 * 1024;
const RX_BUFFERS: u16 = 4;
const TX_BUF: u64 = 0x40_0000;

/// A guest driver and the device's router, with one stream open.
struct Driver {
    mem: GuestMemoryMmap,
    rx: Ring,
    tx: Ring,
    rxq: Queue,
    txq: Queue,
    rx_seen: u16,
    router: Router,
    token: u64,
    received: Wrapping<u32>,
}

impl Driver {
    fn hdr(&self, op: u16, len: usize) -> Header {
        Header {
            src_cid: GUEST_CID,
            dst_cid: u64::from(libc::VMADDR_CID_HOST),
            src_port: GUEST_PORT,
            dst_port: HOST_PORT,
            len: len as u32,
            type_: TYPE_STREAM,
            op,
            flags: 0,
            buf_alloc: GUEST_BUF,
            fwd_cnt: self.received.0,
        }
    }

    /// Queues TX packets (header + optional payload each) and runs TX.
    fn send(&mut self, packets: &[(Header, &[u8])]) {
        for (i, (hdr, payload)) in packets.iter().enumerate() {
            let d = (i * 2) as u16;
            let at = TX_BUF + i as u64 * 0x2000;
            self.mem
                .write_slice(&hdr.to_bytes(), GuestAddress(at))
                .expect("header");
            if payload.is_empty() {
                self.tx.desc(&self.mem, d, at, PKT_HEADER_SIZE as u32, 0, 0);
            } else {
                self.mem
                    .write_slice(payload, GuestAddress(at + 0x100))
                    .expect("payload");
                self.tx
                    .desc(&self.mem, d, at, PKT_HEADER_SIZE as u32, F_NEXT, d + 1);
                self.tx
                    .desc(&self.mem, d + 1, at + 0x100, payload.len() as u32, 0, 0);
            }
            self.tx.push(&self.mem, d);
        }
        tx::process_tx(&mut self.router, &self.mem, &mut self.txq).expect("tx");
        for change in self.router.take_interest_changes() {
            if let InterestChange::Add(s) = change {
                self.token = s.token;
            }
        }
    }

    fn post_rx(&mut self, i: u16) {
        self.rx.desc(
            &self.mem,
            i,
            RX_BUF + u64::from(i) * 0x1_1000,
            RX_BUF_LEN,
            F_WRITE,
            0,
        );
        self.rx.push(&self.mem, i);
    }

    /// Runs RX; returns the payload bytes the guest received (and reposts
    /// the buffers).
    fn receive(&mut self) -> usize {
        rx::fill_rx(&mut self.router, &self.mem, &mut self.rxq).expect("rx");
        let _ = self.router.take_interest_changes();
        let mut bytes = 0;
        while self.rx_seen != self.rx.used_idx(&self.mem) {
            let (id, len) = self.rx.used_elem(&self.mem, self.rx_seen);
            self.rx_seen = self.rx_seen.wrapping_add(1);
            bytes += (len as usize).saturating_sub(PKT_HEADER_SIZE);
            self.post_rx(id as u16);
        }
        bytes
    }

    /// The guest connects to the host's listener; returns the host's end.
    fn open() -> (Self, UnixStream) {
        let shared = Arc::new(Shared::new().expect("vsock shared state"));
        let listener = VsockHost::from_shared(shared.clone())
            .listen(HOST_PORT)
            .expect("listen");
        let ring_rx = Ring::new(0);
        let ring_tx = Ring::new(1);
        let mut s = Self {
            mem: memory(),
            rxq: ring_rx.queue(),
            txq: ring_tx.queue(),
            rx: ring_rx,
            tx: ring_tx,
            rx_seen: 0,
            router: Router::new(GUEST_CID, shared),
            token: 0,
            received: Wrapping(0),
        };
        for i in 0..RX_BUFFERS {
            s.post_rx(i);
        }
        let request = s.hdr(OP_REQUEST, 0);
        s.send(&[(request, &[])]);
        s.receive(); // the RESPONSE
        let host = listener.try_accept().expect("the guest's connection");
        (s, host)
    }

    /// Guest → host: TX packets, then the host reads them.
    fn guest_to_host(&mut self, host: &mut UnixStream, data: &[u8], sink: &mut [u8]) {
        let headers: Vec<Header> = data
            .chunks(TX_CHUNK)
            .map(|c| self.hdr(OP_RW, c.len()))
            .collect();
        let packets: Vec<(Header, &[u8])> =
            headers.into_iter().zip(data.chunks(TX_CHUNK)).collect();
        self.send(&packets);
        host.read_exact(sink).expect("host read");
    }

    /// Host → guest: the host writes, the device fills RX until all arrived,
    /// then the guest gives the credit back.
    fn host_to_guest(&mut self, host: &mut UnixStream, data: &[u8]) {
        host.write_all(data).expect("host write");
        let mut got = 0;
        while got < data.len() {
            self.router.on_socket_ready(
                self.token,
                Readiness {
                    readable: true,
                    writable: false,
                },
            );
            got += self.receive();
        }
        self.received += Wrapping(got as u32);
        let update = self.hdr(OP_CREDIT_UPDATE, 0);
        self.send(&[(update, &[])]);
    }
}

fn vsock(c: &mut Criterion) {
    let (mut guest, mut host) = Driver::open();
    let data = vec![0x5au8; ROUND];
    let mut sink = vec![0u8; ROUND];
    let mut group = c.benchmark_group("vsock");
    group.throughput(Throughput::Bytes(ROUND as u64));
    group.bench_function("guest to host 32KiB", |b| {
        b.iter(|| guest.guest_to_host(&mut host, &data, &mut sink))
    });
    group.bench_function("host to guest 32KiB", |b| {
        b.iter(|| guest.host_to_guest(&mut host, &data))
    });
    group.finish();
}

criterion_group!(benches, vsock);
criterion_main!(benches);
