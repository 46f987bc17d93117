//! `cargo fuzz`-ready entry points: each takes arbitrary bytes, builds a
//! small guest from them and drives device code the way a hostile guest
//! would. None of them may panic, whatever the input. (A `fuzz/` crate can
//! call these from `fuzz_target!`; the unit tests run them on random data.)

use std::fs::File;
use std::io;
use std::os::fd::FromRawFd;
use std::path::Path;
use std::sync::Arc;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::block::request::{execute, Disk, ID_BYTES};
use crate::block::Block;
use crate::chain::process_queue;
use crate::fs::Fs;
use crate::mmio::MmioTransport;
use crate::vsock::host::{Shared, VsockHost};
use crate::vsock::router::Router;
use crate::vsock::{rx, tx};

/// Guest RAM of the fuzzing machine.
const MEM_SIZE: usize = 0x2_0000;
const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
const QUEUE_SIZE: u16 = 16;

fn memfd_disk(sectors: u64) -> io::Result<File> {
    // SAFETY: memfd_create with a valid NUL-terminated name; the returned fd
    // is checked and then owned by the File.
    let fd = unsafe { libc::memfd_create(c"vmrun-fuzz-disk".as_ptr(), 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh, valid descriptor nobody else owns.
    let file = unsafe { File::from_raw_fd(fd) };
    file.set_len(sectors * 512)?;
    Ok(file)
}

/// Guest memory whose first bytes are `data` (the rest zero) and a ready
/// queue whose rings live at fixed addresses inside it.
fn guest(data: &[u8]) -> Option<(GuestMemoryMmap, Queue)> {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).ok()?;
    let n = data.len().min(MEM_SIZE);
    mem.write_slice(data.get(..n)?, GuestAddress(0)).ok()?;
    let mut q = Queue::new(QUEUE_SIZE).ok()?;
    q.try_set_desc_table_address(GuestAddress(DESC)).ok()?;
    q.try_set_avail_ring_address(GuestAddress(AVAIL)).ok()?;
    q.try_set_used_ring_address(GuestAddress(USED)).ok()?;
    q.set_ready(true);
    Some((mem, q))
}

/// Runs virtio-blk request processing over a guest memory image built from `data`.
pub fn fuzz_block_queue(data: &[u8]) {
    let Some((mem, mut q)) = guest(data) else {
        return;
    };
    let Ok(file) = memfd_disk(64) else {
        return;
    };
    let disk = Disk {
        file,
        sectors: 64,
        read_only: data.first().is_some_and(|b| b & 1 == 1),
        id: [0u8; ID_BYTES],
    };
    let _ = process_queue(&mem, &mut q, |mem, chain| execute(mem, &disk, chain));
}

/// Runs the vsock TX path then the RX path over a guest memory image built
/// from `data` (the same queue plays both roles).
pub fn fuzz_vsock_queues(data: &[u8]) {
    let Some((mem, mut q)) = guest(data) else {
        return;
    };
    let Ok(shared) = Shared::new() else {
        return;
    };
    let shared = Arc::new(shared);
    let host = VsockHost::from_shared(shared.clone());
    let _listener = host.listen(1024);
    let mut router = Router::new(3, shared);
    let _ = tx::process_tx(&mut router, &mem, &mut q);
    q.set_next_avail(0);
    let _ = rx::fill_rx(&mut router, &mem, &mut q);
}

/// Runs virtio-fs request processing over a guest memory image built from
/// `data`, serving `shared_dir` (which the guest may change unless
/// `read_only`). Callers check that nothing outside `shared_dir` changed.
pub fn fuzz_fs_queue(data: &[u8], shared_dir: &Path, read_only: bool) {
    let Some((mem, mut q)) = guest(data) else {
        return;
    };
    let Ok(fs) = Fs::new("fuzz", shared_dir, read_only) else {
        return;
    };
    let _ = crate::fs::process_fs_queue(&mem, &mut q, fs.server());
}

/// Interprets `data` as a sequence of MMIO accesses (op, width, offset,
/// value) against a virtio-blk transport.
pub fn fuzz_mmio(data: &[u8]) {
    let Ok(mem) = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]) else {
        return;
    };
    let Ok(file) = memfd_disk(8) else {
        return;
    };
    let disk = Disk {
        file,
        sectors: 8,
        read_only: false,
        id: [0u8; ID_BYTES],
    };
    let Ok(mut t) = MmioTransport::new(mem, Box::new(Block::from_disk(disk))) else {
        return;
    };
    for op in data.chunks(8) {
        let [kind, width, off_lo, off_hi, v0, v1, v2, v3] = match <[u8; 8]>::try_from(op) {
            Ok(a) => a,
            Err(_) => return,
        };
        let width = usize::from(width % 9);
        let offset = u64::from(u16::from_le_bytes([off_lo, off_hi]) % 0x300);
        let value = u64::from(u32::from_le_bytes([v0, v1, v2, v3])).wrapping_mul(0x1_0000_0001);
        let bytes = value.to_le_bytes();
        let Some(bytes) = bytes.get(..width.min(8)) else {
            return;
        };
        if kind & 1 == 0 {
            let mut buf = vec![0u8; width];
            t.bus_read(offset, &mut buf);
        } else {
            t.bus_write(offset, bytes);
        }
    }
}
