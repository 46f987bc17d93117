//! virtio-fs request processing against the host filesystem: FUSE READ
//! and WRITE of 64 KiB through the device's queue function and
//! fuse-backend-rs's passthrough server, as the device serves them
//! (`cargo bench -p vmrun-virtio --bench fs_requests`).
// criterion_group!/criterion_main! expand to undocumented items.
#![allow(missing_docs)]

mod common;

use std::sync::Arc;

use common::{memory, Ring, F_NEXT, F_WRITE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::passthrough::{Config, PassthroughFs};
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmrun_virtio::fs::process_fs_queue;

const LOOKUP: u32 = 1;
const OPEN: u32 = 14;
const READ: u32 = 15;
const WRITE: u32 = 16;
const INIT: u32 = 26;
/// Requests per batch.
const BATCH: u16 = 8;
/// Bytes per request.
const IO: u32 = 64 * 1024;
const REQ: u64 = 0x10_0000;
const REPLY: u64 = 0x40_0000;
const SLOT: u64 = 0x2_0000;

/// The device's server over a host directory (as `Fs::new` makes it).
type FsServer = Server<Arc<PassthroughFs>>;

fn server(dir: &std::path::Path) -> FsServer {
    let cfg = Config {
        root_dir: dir.display().to_string(),
        do_import: true,
        xattr: false,
        ..Default::default()
    };
    let fs = PassthroughFs::new(cfg).expect("passthrough fs");
    fs.import().expect("import the shared directory");
    Server::new(Arc::new(fs))
}

fn fuse_req(opcode: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(40 + body.len());
    v.extend_from_slice(&(40 + body.len() as u32).to_le_bytes());
    v.extend_from_slice(&opcode.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    v.extend_from_slice(&nodeid.to_le_bytes());
    v.extend_from_slice(&[0u8; 8]); // uid, gid
    v.extend_from_slice(&1u32.to_le_bytes()); // pid
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(body);
    v
}

/// READ_IN / WRITE_IN: fh, offset, size, flags, lock owner, flags, padding.
fn io_in(fh: u64, offset: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(40);
    v.extend_from_slice(&fh.to_le_bytes());
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&IO.to_le_bytes());
    v.extend_from_slice(&[0u8; 20]);
    v
}

struct Driver {
    mem: GuestMemoryMmap,
    ring: Ring,
    queue: Queue,
    seen: u16,
}

impl Driver {
    /// Publishes request `i` of a batch: `req` readable, `reply` bytes writable.
    fn publish(&self, i: u16, req: &[u8], reply: u32) {
        let at = REQ + u64::from(i) * SLOT;
        self.mem
            .write_slice(req, GuestAddress(at))
            .expect("request");
        let d = i * 2;
        self.ring
            .desc(&self.mem, d, at, req.len() as u32, F_NEXT, d + 1);
        self.ring.desc(
            &self.mem,
            d + 1,
            REPLY + u64::from(i) * SLOT,
            reply,
            F_WRITE,
            0,
        );
        self.ring.push(&self.mem, d);
    }

    /// Serves what was published; returns (error, reply body) of each.
    fn serve(&mut self, server: &FsServer) -> Vec<(i32, Vec<u8>)> {
        process_fs_queue(&self.mem, &mut self.queue, server).expect("fs queue");
        let mut out = Vec::new();
        while self.seen != self.ring.used_idx(&self.mem) {
            let (id, len) = self.ring.used_elem(&self.mem, self.seen);
            self.seen = self.seen.wrapping_add(1);
            let mut reply = vec![0u8; len as usize];
            let at = REPLY + u64::from(id as u16 / 2) * SLOT;
            self.mem
                .read_slice(&mut reply, GuestAddress(at))
                .expect("reply");
            let error = reply
                .get(4..8)
                .map_or(i32::MIN, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            out.push((error, reply.get(16..).unwrap_or_default().to_vec()));
        }
        out
    }

    /// One request, answered without error; returns its reply body.
    fn call(&mut self, server: &FsServer, req: &[u8]) -> Vec<u8> {
        self.publish(0, req, 4096);
        let mut replies = self.serve(server);
        let (error, body) = replies.pop().expect("a reply");
        assert_eq!(error, 0, "FUSE request failed");
        body
    }
}

fn fs(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a shared directory");
    std::fs::write(
        dir.path().join("data"),
        vec![0xa5u8; (u64::from(BATCH) * u64::from(IO)) as usize],
    )
    .expect("file");
    let server = server(dir.path());
    let ring = Ring::new(0);
    let mut d = Driver {
        mem: memory(),
        queue: ring.queue(),
        ring,
        seen: 0,
    };
    let mut init = Vec::new();
    for v in [7u32, 31, 0, 0] {
        init.extend_from_slice(&v.to_le_bytes());
    }
    init.extend_from_slice(&[0u8; 48]);
    d.call(&server, &fuse_req(INIT, 1, 0, &init));
    let entry = d.call(&server, &fuse_req(LOOKUP, 2, 1, b"data\0"));
    let node = u64::from_le_bytes(entry[0..8].try_into().expect("nodeid"));
    let mut open = Vec::new();
    open.extend_from_slice(&(libc::O_RDWR as u32).to_le_bytes());
    open.extend_from_slice(&0u32.to_le_bytes());
    let opened = d.call(&server, &fuse_req(OPEN, 3, node, &open));
    let fh = u64::from_le_bytes(opened[0..8].try_into().expect("fh"));
    let payload = vec![0x3cu8; IO as usize];
    let mut group = c.benchmark_group("virtio-fs");
    group.throughput(Throughput::Bytes(u64::from(BATCH) * u64::from(IO)));
    group.bench_function("read 8x64KiB", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let offset = u64::from(i) * u64::from(IO);
                d.publish(
                    i,
                    &fuse_req(READ, 10 + u64::from(i), node, &io_in(fh, offset)),
                    16 + IO,
                );
            }
            let replies = d.serve(&server);
            assert!(replies
                .iter()
                .all(|(e, body)| *e == 0 && body.len() == IO as usize));
        })
    });
    group.bench_function("write 8x64KiB", |b| {
        b.iter(|| {
            for i in 0..BATCH {
                let mut body = io_in(fh, u64::from(i) * u64::from(IO));
                body.extend_from_slice(&payload);
                d.publish(i, &fuse_req(WRITE, 10 + u64::from(i), node, &body), 16 + 8);
            }
            let replies = d.serve(&server);
            assert!(replies.iter().all(|(e, _)| *e == 0));
        })
    });
    group.finish();
}

criterion_group!(benches, fs);
criterion_main!(benches);
