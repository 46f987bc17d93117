//! A minimal virtio driver for the benchmarks: descriptor tables and split
//! rings written into guest memory, as a guest kernel would. Each bench
//! target uses a part of it.
#![allow(dead_code)]

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Guest RAM of the benchmark machine.
pub const MEM_SIZE: usize = 8 << 20;
/// Descriptor flag: chained.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: device-writable.
pub const F_WRITE: u16 = 2;
/// Entries of every queue.
pub const QUEUE_SIZE: u16 = 64;

/// Guest memory.
pub fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("guest memory")
}

/// One split virtqueue's rings (queue `n` gets its own 16 KiB at 0x1000 + n * 0x4000).
#[derive(Debug, Clone, Copy)]
pub struct Ring {
    desc: u64,
    avail: u64,
    used: u64,
}

impl Ring {
    /// The rings of queue `n`.
    pub fn new(n: u64) -> Self {
        let base = 0x1000 + n * 0x4000;
        Self {
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
        }
    }

    /// A ready device-side queue over these rings.
    pub fn queue(&self) -> Queue {
        let mut q = Queue::new(QUEUE_SIZE).expect("queue");
        q.set_size(QUEUE_SIZE);
        q.try_set_desc_table_address(GuestAddress(self.desc))
            .expect("desc");
        q.try_set_avail_ring_address(GuestAddress(self.avail))
            .expect("avail");
        q.try_set_used_ring_address(GuestAddress(self.used))
            .expect("used");
        q.set_ready(true);
        q
    }

    /// Writes descriptor `i`.
    pub fn desc(&self, mem: &GuestMemoryMmap, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        mem.write_slice(&raw, GuestAddress(self.desc + 16 * u64::from(i)))
            .expect("desc");
    }

    /// Makes chain `head` available.
    pub fn push(&self, mem: &GuestMemoryMmap, head: u16) {
        let idx: u16 = mem
            .read_obj(GuestAddress(self.avail + 2))
            .expect("avail idx");
        let slot = self.avail + 4 + 2 * u64::from(idx % QUEUE_SIZE);
        mem.write_obj(head, GuestAddress(slot)).expect("avail slot");
        mem.write_obj(idx.wrapping_add(1), GuestAddress(self.avail + 2))
            .expect("avail idx");
    }

    /// The used index.
    pub fn used_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        mem.read_obj(GuestAddress(self.used + 2)).expect("used idx")
    }

    /// (id, len) of used element `i`.
    pub fn used_elem(&self, mem: &GuestMemoryMmap, i: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(i % QUEUE_SIZE);
        (
            mem.read_obj(GuestAddress(at)).expect("used id"),
            mem.read_obj(GuestAddress(at + 4)).expect("used len"),
        )
    }
}
