//! The virtio-mmio register interface with a real device model behind it
//! (virtio-blk or virtio-vsock, chosen by the first byte), driven by a
//! sequence of guest operations: reads and writes of any width and offset
//! in the window and config space, writes into guest memory, a full
//! Linux-style bring-up with fuzzer-chosen ring addresses, and queue
//! processing.
//!
//! The device runs synchronously: [`SyncDevice`] wraps the real device
//! (its identity, features and config space) but, instead of starting a
//! worker thread at DRIVER_OK, keeps the queues it was handed; the harness
//! serves notified queues with the device's own queue functions after each
//! operation, so every run is deterministic.
//!
//! Asserted besides "no panic":
//! - identification registers always read their constants;
//! - a device is activated only with the queue count it declared, each
//!   queue ready, of a power-of-two size within its maximum, with all three
//!   rings inside guest memory; and never twice without a reset;
//! - the transport's `is_active` agrees with the device's view, and an
//!   active device's status has DRIVER_OK.

#![no_main]

use std::sync::{Arc, Mutex, MutexGuard};

use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryMmap};
use vmrun_fuzz::input::ByteReader;
use vmrun_virtio::block::request::{execute, Disk, ID_BYTES};
use vmrun_virtio::chain::process_queue;
use vmrun_virtio::defs::*;
use vmrun_virtio::vsock::host::Shared;
use vmrun_virtio::vsock::router::Router;
use vmrun_virtio::vsock::{rx, tx};
use vmrun_virtio::{
    ActivateError, ActiveQueue, Block, GuestLink, MmioTransport, VirtioCommon, VirtioDevice, Vsock,
};

const MEM_SIZE: usize = 0x1_0000;
const MAX_OPS: usize = 512;
const GUEST_CID: u64 = 3;

/// Which device sits behind the transport.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Block,
    Vsock,
}

/// What the device was handed at DRIVER_OK.
struct Active {
    link: GuestLink,
    queues: Vec<ActiveQueue>,
    /// The device state a worker would own.
    backend: Backend,
}

enum Backend {
    Block(Disk),
    Vsock(Box<Router>),
}

type Slot = Arc<Mutex<Option<Active>>>;

fn lock(slot: &Slot) -> MutexGuard<'_, Option<Active>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// The real device without its worker thread (see the module docs).
struct SyncDevice {
    inner: Box<dyn VirtioDevice>,
    kind: Kind,
    disk: Option<std::fs::File>,
    slot: Slot,
}

impl VirtioDevice for SyncDevice {
    fn common(&self) -> &VirtioCommon {
        self.inner.common()
    }

    fn common_mut(&mut self) -> &mut VirtioCommon {
        self.inner.common_mut()
    }

    fn activate(&mut self, link: GuestLink, queues: Vec<ActiveQueue>) -> Result<(), ActivateError> {
        let max_sizes = self.common().queue_max_sizes().to_vec();
        assert_eq!(
            queues.len(),
            max_sizes.len(),
            "activated with a wrong queue count"
        );
        for (q, max) in queues.iter().zip(&max_sizes) {
            assert_queue_sound(&q.queue, *max, &link.mem);
        }
        let mut slot = lock(&self.slot);
        assert!(slot.is_none(), "activated twice without a reset");
        let backend = match self.kind {
            Kind::Block => {
                let file = self
                    .disk
                    .as_ref()
                    .and_then(|f| f.try_clone().ok())
                    .ok_or_else(|| ActivateError::Worker(std::io::Error::other("no disk")))?;
                Backend::Block(Disk {
                    file,
                    sectors: 8,
                    read_only: false,
                    id: [0u8; ID_BYTES],
                })
            }
            Kind::Vsock => {
                let shared = Shared::new().map_err(ActivateError::Worker)?;
                Backend::Vsock(Box::new(Router::new(GUEST_CID, Arc::new(shared))))
            }
        };
        *slot = Some(Active {
            link,
            queues,
            backend,
        });
        Ok(())
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.inner.write_config(offset, data);
    }

    fn reset(&mut self) {
        lock(&self.slot).take();
        self.inner.reset();
    }
}

fn assert_queue_sound(q: &Queue, max: u16, mem: &GuestMemoryMmap) {
    let size = q.size();
    assert!(q.ready(), "activated with a queue not ready");
    assert!(
        size.is_power_of_two() && size <= max,
        "queue size {size} (max {max})"
    );
    let n = u64::from(size);
    for (addr, len) in [
        (q.desc_table(), 16 * n),
        (q.avail_ring(), 6 + 2 * n),
        (q.used_ring(), 6 + 8 * n),
    ] {
        let inside = usize::try_from(len).is_ok_and(|l| mem.check_range(GuestAddress(addr), l));
        assert!(inside, "ring {addr:#x}+{len:#x} outside guest memory");
    }
}

/// Serves every queue whose notification fired, as the worker would.
fn serve_notified(slot: &Slot) {
    let mut guard = lock(slot);
    let Some(active) = guard.as_mut() else {
        return;
    };
    let mem = active.link.mem.clone();
    for i in 0..active.queues.len() {
        let Some(q) = active.queues.get_mut(i) else {
            continue;
        };
        if q.notify.read().is_err() {
            continue;
        }
        let queue = &mut q.queue;
        let result = match &mut active.backend {
            Backend::Block(disk) => process_queue(&mem, queue, |m, c| execute(m, disk, c)),
            Backend::Vsock(router) if i == 1 => tx::process_tx(router, &mem, queue),
            Backend::Vsock(_) => Ok(0),
        };
        active.link.finish_pass("fuzz", result);
    }
    if let Backend::Vsock(router) = &mut active.backend {
        if let Some(q) = active.queues.first_mut() {
            let result = rx::fill_rx(router, &mem, &mut q.queue);
            active.link.finish_pass("fuzz", result);
        }
        drop(router.take_interest_changes());
    }
}

fn device(kind: Kind, slot: Slot) -> Option<SyncDevice> {
    Some(match kind {
        Kind::Block => {
            let file = tempfile::tempfile().ok()?;
            file.set_len(8 * 512).ok()?;
            let disk = Disk {
                file: file.try_clone().ok()?,
                sectors: 8,
                read_only: false,
                id: *b"fuzz-disk\0\0\0\0\0\0\0\0\0\0\0",
            };
            SyncDevice {
                inner: Box::new(Block::from_disk(disk)),
                kind,
                disk: Some(file),
                slot,
            }
        }
        Kind::Vsock => SyncDevice {
            inner: Box::new(Vsock::new(GUEST_CID).ok()?),
            kind,
            disk: None,
            slot,
        },
    })
}

fn read32(t: &mut MmioTransport, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    t.bus_read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn write32(t: &mut MmioTransport, offset: u64, v: u32) {
    t.bus_write(offset, &v.to_le_bytes());
}

/// The Linux driver's probe: status bits, all offered features, each queue
/// at the largest size with rings at fuzzer-chosen addresses, DRIVER_OK.
fn bring_up(t: &mut MmioTransport, r: &mut ByteReader<'_>) {
    write32(t, 0x70, 0);
    write32(t, 0x70, STATUS_ACKNOWLEDGE);
    write32(t, 0x70, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    for page in 0..2u32 {
        write32(t, 0x14, page);
        let offered = read32(t, 0x10);
        write32(t, 0x24, page);
        write32(t, 0x20, offered);
    }
    write32(
        t,
        0x70,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK,
    );
    for q in 0..t.queue_evts().len() as u32 {
        write32(t, 0x30, q);
        let max = read32(t, 0x34);
        let size = max >> (r.u8() % 16);
        write32(t, 0x38, size);
        for (low, high) in [(0x80, 0x84), (0x90, 0x94), (0xa0, 0xa4)] {
            write32(t, low, u32::from(r.u16()) << 4);
            write32(t, high, 0);
        }
        write32(t, 0x44, 1);
    }
    write32(
        t,
        0x70,
        STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK,
    );
}

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    let mut r = ByteReader::new(data);
    let kind = if r.u8() & 1 == 0 {
        Kind::Block
    } else {
        Kind::Vsock
    };
    let Ok(mem) = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]) else {
        return;
    };
    let slot = Slot::default();
    let Some(dev) = device(kind, slot.clone()) else {
        return;
    };
    let Ok(mut t) = MmioTransport::new(mem.clone(), Box::new(dev)) else {
        return;
    };
    for _ in 0..MAX_OPS {
        if r.is_empty() {
            break;
        }
        match r.u8() % 6 {
            0 => {
                let width = usize::from(r.pick(&[4u8, 1, 2, 8], |r| r.u8() % 16));
                let offset = u64::from(r.u16() % 0x200);
                let mut buf = vec![0u8; width];
                t.bus_read(offset, &mut buf);
                let expect = match offset {
                    0x0 => Some(0x7472_6976),
                    0x4 => Some(2),
                    0x8 => Some(if kind == Kind::Block {
                        TYPE_BLOCK
                    } else {
                        TYPE_VSOCK
                    }),
                    0xc => Some(0x554D_5652),
                    _ => None,
                };
                if let (Some(v), 4) = (expect, width) {
                    assert_eq!(buf, u32::to_le_bytes(v), "register {offset:#x}");
                }
            }
            1 | 2 => {
                let width = usize::from(r.pick(&[4u8, 1, 2, 8], |r| r.u8() % 16));
                let offset = u64::from(r.u16() % 0x200);
                let value = r.u64().to_le_bytes();
                let bytes: Vec<u8> = (0..width).map(|i| value[i % 8]).collect();
                t.bus_write(offset, &bytes);
            }
            3 => {
                let at = u64::from(r.u16()) % MEM_SIZE as u64;
                let n = usize::from(r.u8() % 32);
                let bytes = r.bytes(n).to_vec();
                let _ = mem.write_slice(&bytes, GuestAddress(at));
            }
            4 => bring_up(&mut t, &mut r),
            _ => {}
        }
        serve_notified(&slot);
        let device_active = lock(&slot).is_some();
        assert_eq!(
            t.is_active(),
            device_active,
            "transport and device disagree"
        );
        if device_active {
            assert_ne!(t.status() & STATUS_DRIVER_OK, 0, "active without DRIVER_OK");
        }
    }
});
