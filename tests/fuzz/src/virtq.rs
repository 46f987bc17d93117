//! The driver side of one split virtqueue, written into guest memory the
//! way a well-behaved guest driver would: for targets whose hostile input
//! is elsewhere (packets, register writes) and that need sound queues.

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Descriptor flag: chained.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: device-writable.
pub const F_WRITE: u16 = 2;

/// One buffer of a chain: guest address, length, device-writable.
#[derive(Debug, Clone, Copy)]
pub struct Buf {
    /// Guest address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// Whether the device writes it.
    pub writable: bool,
}

/// A queue's rings in guest memory and the driver's indices.
#[derive(Debug)]
pub struct DriverQueue {
    desc: u64,
    avail: u64,
    used: u64,
    size: u16,
    avail_idx: u16,
    used_seen: u16,
}

impl DriverQueue {
    /// Rings at `desc`, `avail`, `used` (aligned, inside guest memory) for
    /// a queue of `size` (a power of two).
    pub fn new(desc: u64, avail: u64, used: u64, size: u16) -> Self {
        Self {
            desc,
            avail,
            used,
            size,
            avail_idx: 0,
            used_seen: 0,
        }
    }

    /// The queue size.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The device's view: a ready queue over these rings.
    pub fn device_queue(&self) -> Option<Queue> {
        let mut q = Queue::new(self.size).ok()?;
        q.try_set_desc_table_address(GuestAddress(self.desc)).ok()?;
        q.try_set_avail_ring_address(GuestAddress(self.avail))
            .ok()?;
        q.try_set_used_ring_address(GuestAddress(self.used)).ok()?;
        q.set_ready(true);
        Some(q)
    }

    /// Writes `bufs` as one chain in descriptors `head`, `head + 1`, ...
    /// and makes it available. Returns false if guest memory refused.
    pub fn post(&mut self, mem: &GuestMemoryMmap, head: u16, bufs: &[Buf]) -> bool {
        let n = bufs.len();
        for (i, b) in bufs.iter().enumerate() {
            let index = head.wrapping_add(i as u16) % self.size;
            let next = index.wrapping_add(1) % self.size;
            let mut flags = if b.writable { F_WRITE } else { 0 };
            if i + 1 < n {
                flags |= F_NEXT;
            }
            let mut raw = [0u8; 16];
            raw[0..8].copy_from_slice(&b.addr.to_le_bytes());
            raw[8..12].copy_from_slice(&b.len.to_le_bytes());
            raw[12..14].copy_from_slice(&flags.to_le_bytes());
            raw[14..16].copy_from_slice(&next.to_le_bytes());
            let at = GuestAddress(self.desc + 16 * u64::from(index));
            if mem.write_slice(&raw, at).is_err() {
                return false;
            }
        }
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        if mem.write_obj(head % self.size, GuestAddress(slot)).is_err() {
            return false;
        }
        self.avail_idx = self.avail_idx.wrapping_add(1);
        mem.write_obj(self.avail_idx, GuestAddress(self.avail + 2))
            .is_ok()
    }

    /// Chains the device put in the used ring since the last call: (head, length).
    pub fn take_used(&mut self, mem: &GuestMemoryMmap) -> Vec<(u32, u32)> {
        let Ok(idx) = mem.read_obj::<u16>(GuestAddress(self.used + 2)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        while self.used_seen != idx {
            let at = self.used + 4 + 8 * u64::from(self.used_seen % self.size);
            let id = mem.read_obj::<u32>(GuestAddress(at)).unwrap_or(u32::MAX);
            let len = mem.read_obj::<u32>(GuestAddress(at + 4)).unwrap_or(0);
            out.push((id, len));
            self.used_seen = self.used_seen.wrapping_add(1);
        }
        out
    }
}
