//! A fake virtio driver for unit tests: writes descriptor tables and rings
//! into a `GuestMemoryMmap` exactly like a (possibly hostile) guest would.

use std::os::unix::io::AsRawFd;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use crate::defs::*;
use crate::mmio::MmioTransport;

/// Guest RAM size of the fake machine.
pub const MEM_SIZE: usize = 0x20_0000;
/// Descriptor flag: chained.
pub const F_NEXT: u16 = 1;
/// Descriptor flag: device-writable.
pub const F_WRITE: u16 = 2;
/// Descriptor flag: indirect table.
pub const F_INDIRECT: u16 = 4;

/// A tiny deterministic PRNG (xorshift) so random tests are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

pub fn memory() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap()
}

/// The rings of queue `q`: each queue gets its own 16 KiB area.
#[derive(Clone, Copy, Debug)]
pub struct Rings {
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub size: u16,
}

impl Rings {
    pub fn for_queue(q: u64, size: u16) -> Self {
        let base = 0x1000 + q * 0x4000;
        Self {
            desc: base,
            avail: base + 0x1000,
            used: base + 0x2000,
            size,
        }
    }

    pub fn desc(&self, mem: &GuestMemoryMmap, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = GuestAddress(self.desc + 16 * u64::from(i));
        write_desc(mem, at, addr, len, flags, next);
    }

    /// Publishes `head` in the avail ring and bumps the avail index.
    pub fn push(&self, mem: &GuestMemoryMmap, head: u16) {
        let idx: u16 = mem.read_obj(GuestAddress(self.avail + 2)).unwrap();
        let slot = self.avail + 4 + 2 * u64::from(idx % self.size);
        mem.write_obj(head, GuestAddress(slot)).unwrap();
        mem.write_obj(idx.wrapping_add(1), GuestAddress(self.avail + 2))
            .unwrap();
    }

    pub fn set_avail_idx(&self, mem: &GuestMemoryMmap, idx: u16) {
        mem.write_obj(idx, GuestAddress(self.avail + 2)).unwrap();
    }

    pub fn used_idx(&self, mem: &GuestMemoryMmap) -> u16 {
        mem.read_obj(GuestAddress(self.used + 2)).unwrap()
    }

    /// (id, len) of used element `i`.
    pub fn used_elem(&self, mem: &GuestMemoryMmap, i: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(i % self.size);
        (
            mem.read_obj(GuestAddress(at)).unwrap(),
            mem.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    /// A ready queue using these rings, bypassing the transport.
    pub fn queue(&self) -> Queue {
        let mut q = Queue::new(self.size).unwrap();
        q.set_size(self.size);
        q.try_set_desc_table_address(GuestAddress(self.desc))
            .unwrap();
        q.try_set_avail_ring_address(GuestAddress(self.avail))
            .unwrap();
        q.try_set_used_ring_address(GuestAddress(self.used))
            .unwrap();
        q.set_ready(true);
        q
    }
}

pub fn write_desc(
    mem: &GuestMemoryMmap,
    at: GuestAddress,
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
) {
    let mut raw = [0u8; 16];
    raw[0..8].copy_from_slice(&addr.to_le_bytes());
    raw[8..12].copy_from_slice(&len.to_le_bytes());
    raw[12..14].copy_from_slice(&flags.to_le_bytes());
    raw[14..16].copy_from_slice(&next.to_le_bytes());
    mem.write_slice(&raw, at).unwrap();
}

pub fn mmio_read(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.bus_read(offset, &mut b);
    u32::from_le_bytes(b)
}

pub fn mmio_write(t: &mut MmioTransport, offset: u64, v: u32) {
    t.bus_write(offset, &v.to_le_bytes());
}

/// Drives the transport through the whole Linux-style probe; `features` are
/// accepted on top of VERSION_1. Returns the rings of each queue.
pub fn bring_up(t: &mut MmioTransport, features: u64, size: u16) -> Vec<Rings> {
    assert_eq!(mmio_read(t, 0x0), 0x7472_6976);
    assert_eq!(mmio_read(t, 0x4), 2);
    mmio_write(t, 0x70, 0);
    mmio_write(t, 0x70, STATUS_ACKNOWLEDGE);
    mmio_write(t, 0x70, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    let all = features | feature(VIRTIO_F_VERSION_1);
    mmio_write(t, 0x24, 0);
    mmio_write(t, 0x20, all as u32);
    mmio_write(t, 0x24, 1);
    mmio_write(t, 0x20, (all >> 32) as u32);
    mmio_write(
        t,
        0x70,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
    );
    assert_ne!(
        mmio_read(t, 0x70) & STATUS_FEATURES_OK,
        0,
        "FEATURES_OK refused"
    );
    let mut rings = Vec::new();
    for q in 0..t.queue_evts().len() as u32 {
        mmio_write(t, 0x30, q);
        let r = Rings::for_queue(u64::from(q), size);
        mmio_write(t, 0x38, u32::from(size));
        mmio_write(t, 0x80, r.desc as u32);
        mmio_write(t, 0x84, 0);
        mmio_write(t, 0x90, r.avail as u32);
        mmio_write(t, 0x94, 0);
        mmio_write(t, 0xa0, r.used as u32);
        mmio_write(t, 0xa4, 0);
        mmio_write(t, 0x44, 1);
        assert_eq!(mmio_read(t, 0x44), 1, "queue {q} refused");
        rings.push(r);
    }
    mmio_write(
        t,
        0x70,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
    assert!(t.is_active(), "device not activated");
    rings
}

/// Waits (up to a generous bound, only to avoid hanging the test suite) for
/// `evt` to become readable, then drains it. Returns false on timeout.
pub fn wait_evt(evt: &EventFd) -> bool {
    let mut pfd = libc::pollfd {
        fd: evt.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `pfd` is a valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut pfd, 1, 20_000) };
    if n == 1 {
        let _ = evt.read();
        true
    } else {
        false
    }
}
