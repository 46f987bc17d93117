//! virtio-blk queue processing over guest memory: batches of 64 KiB reads
//! and writes against a memfd-backed disk (`cargo bench -p vmrun-virtio
//! --bench block_queue`).
// criterion_group!/criterion_main! expand to undocumented items.
#![allow(missing_docs)]

mod common;

use std::fs::File;
use std::os::fd::FromRawFd;

use common::{memory, Ring, F_NEXT, F_WRITE};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmrun_virtio::block::request::{execute, Disk, ID_BYTES, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT};
use vmrun_virtio::chain::process_queue;

/// Requests per batch (3 descriptors each).
const BATCH: u16 = 16;
/// Bytes per request.
const IO: u32 = 64 * 1024;
/// Disk size (sectors of 512 bytes).
const SECTORS: u64 = (BATCH as u64 * IO as u64) / 512;
const HEADERS: u64 = 0x10_0000;
const STATUS: u64 = 0x11_0000;
const DATA: u64 = 0x20_0000;

fn disk() -> Disk {
    // SAFETY: memfd_create with a valid NUL-terminated name; the fd is
    // checked, then owned by the File.
    let fd = unsafe { libc::memfd_create(c"vmrun-bench-disk".as_ptr(), 0) };
    assert!(fd >= 0, "memfd_create failed");
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(SECTORS * 512).expect("size the disk");
    Disk {
        file,
        sectors: SECTORS,
        read_only: false,
        id: [0u8; ID_BYTES],
    }
}

/// Publishes a batch of `kind` requests covering the disk.
fn publish(mem: &GuestMemoryMmap, ring: &Ring, kind: u32) {
    for r in 0..BATCH {
        let d = r * 3;
        let header = HEADERS + 16 * u64::from(r);
        let mut raw = [0u8; 16];
        raw[0..4].copy_from_slice(&kind.to_le_bytes());
        raw[8..16].copy_from_slice(&(u64::from(r) * u64::from(IO) / 512).to_le_bytes());
        mem.write_slice(&raw, GuestAddress(header)).expect("header");
        let data_flags = if kind == VIRTIO_BLK_T_IN {
            F_WRITE | F_NEXT
        } else {
            F_NEXT
        };
        ring.desc(mem, d, header, 16, F_NEXT, d + 1);
        ring.desc(
            mem,
            d + 1,
            DATA + u64::from(r) * u64::from(IO),
            IO,
            data_flags,
            d + 2,
        );
        ring.desc(mem, d + 2, STATUS + u64::from(r), 1, F_WRITE, 0);
        ring.push(mem, d);
    }
}

fn block(c: &mut Criterion) {
    let mem = memory();
    let ring = Ring::new(0);
    let mut queue = ring.queue();
    let disk = disk();
    let mut group = c.benchmark_group("virtio-blk");
    group.throughput(Throughput::Bytes(u64::from(BATCH) * u64::from(IO)));
    for (name, kind) in [
        ("read 16x64KiB", VIRTIO_BLK_T_IN),
        ("write 16x64KiB", VIRTIO_BLK_T_OUT),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                publish(&mem, &ring, kind);
                let done = process_queue(&mem, &mut queue, |mem, chain| execute(mem, &disk, chain))
                    .expect("queue");
                assert_eq!(done, usize::from(BATCH));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, block);
criterion_main!(benches);
