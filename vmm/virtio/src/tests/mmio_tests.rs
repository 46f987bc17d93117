use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::common::VirtioCommon;
use crate::defs::*;
use crate::device::VirtioDevice;
use crate::mmio::MmioTransport;
use crate::testing::*;

struct Dummy {
    common: VirtioCommon,
    activations: Arc<AtomicUsize>,
    resets: Arc<AtomicUsize>,
}

impl VirtioDevice for Dummy {
    fn common(&self) -> &VirtioCommon {
        &self.common
    }
    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.common
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let config = self.common.config_mut();
        for (i, b) in data.iter().enumerate() {
            if let Some(slot) = usize::try_from(offset)
                .ok()
                .and_then(|o| o.checked_add(i))
                .and_then(|o| config.get_mut(o))
            {
                *slot = *b;
            }
        }
    }
    fn activate(
        &mut self,
        _link: GuestLink,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError> {
        assert_eq!(queues.len(), 2);
        self.activations.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn reset(&mut self) {
        self.common.reset();
        self.resets.fetch_add(1, Ordering::SeqCst);
    }
}

fn transport() -> (MmioTransport, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let activations = Arc::new(AtomicUsize::new(0));
    let resets = Arc::new(AtomicUsize::new(0));
    let dev = Dummy {
        common: VirtioCommon::new(
            42,
            "dummy",
            &[16, 16],
            feature(VIRTIO_RING_F_INDIRECT_DESC),
            b"abcdefgh".to_vec(),
        ),
        activations: activations.clone(),
        resets: resets.clone(),
    };
    (
        MmioTransport::new(memory(), Box::new(dev)).unwrap(),
        activations,
        resets,
    )
}

const ACK: u32 = STATUS_ACKNOWLEDGE;
const DRV: u32 = STATUS_ACKNOWLEDGE | STATUS_DRIVER;
const FOK: u32 = DRV | STATUS_FEATURES_OK;

#[test]
fn identification_registers() {
    let (mut t, _, _) = transport();
    assert_eq!(mmio_read(&mut t, 0x00), 0x7472_6976);
    assert_eq!(mmio_read(&mut t, 0x04), 2);
    assert_eq!(mmio_read(&mut t, 0x08), 42);
    mmio_write(&mut t, 0x14, 1);
    assert_eq!(mmio_read(&mut t, 0x10), 1, "VERSION_1 is bit 32");
    mmio_write(&mut t, 0x14, 0);
    assert_eq!(mmio_read(&mut t, 0x10), 1 << VIRTIO_RING_F_INDIRECT_DESC);
    mmio_write(&mut t, 0x30, 1);
    assert_eq!(mmio_read(&mut t, 0x34), 16);
    mmio_write(&mut t, 0x30, 2);
    assert_eq!(mmio_read(&mut t, 0x34), 0, "nonexistent queue has max 0");
    assert_eq!(mmio_read(&mut t, 0xb0), u32::MAX, "no shared memory region");
    let mut cfg = [0u8; 4];
    t.bus_read(0x102, &mut cfg);
    assert_eq!(&cfg, b"cdef");
    t.bus_read(0x106, &mut cfg);
    assert_eq!(&cfg, b"gh\0\0", "past the config end reads zero");
    assert_eq!(
        MmioTransport::cmdline_entry(0xd000_0000, 5),
        "virtio_mmio.device=0x1000@0xd0000000:5"
    );
}

#[test]
fn full_bring_up_activates_and_reset_deactivates() {
    let (mut t, activations, resets) = transport();
    bring_up(&mut t, feature(VIRTIO_RING_F_INDIRECT_DESC), 8);
    assert_eq!(activations.load(Ordering::SeqCst), 1);
    assert_eq!(mmio_read(&mut t, 0x70), FOK | STATUS_DRIVER_OK);
    mmio_write(&mut t, 0x70, 0);
    assert_eq!(resets.load(Ordering::SeqCst), 1);
    assert_eq!(mmio_read(&mut t, 0x70), 0);
    assert!(!t.is_active());
    // And it can be brought up again.
    bring_up(&mut t, 0, 16);
    assert_eq!(activations.load(Ordering::SeqCst), 2);
}

#[test]
fn out_of_order_status_marks_device_needing_reset() {
    for bad in [
        DRV,
        STATUS_DRIVER_OK,
        ACK | STATUS_FEATURES_OK,
        FOK | STATUS_DRIVER_OK,
    ] {
        let (mut t, activations, _) = transport();
        mmio_write(&mut t, 0x70, ACK);
        mmio_write(&mut t, 0x70, bad);
        if bad == DRV {
            assert_eq!(mmio_read(&mut t, 0x70), DRV);
            continue;
        }
        let status = mmio_read(&mut t, 0x70);
        assert_ne!(
            status & STATUS_DEVICE_NEEDS_RESET,
            0,
            "{bad:#x} accepted: {status:#x}"
        );
        assert_eq!(activations.load(Ordering::SeqCst), 0);
        assert_ne!(t.interrupt().status() & INT_CONFIG, 0);
        // Stuck until reset, then usable again.
        mmio_write(&mut t, 0x70, ACK);
        assert_ne!(mmio_read(&mut t, 0x70) & STATUS_DEVICE_NEEDS_RESET, 0);
        mmio_write(&mut t, 0x70, 0);
        assert_eq!(mmio_read(&mut t, 0x70), 0);
        bring_up(&mut t, 0, 16);
    }
}

#[test]
fn dropping_status_bits_is_rejected() {
    let (mut t, _, _) = transport();
    mmio_write(&mut t, 0x70, ACK);
    mmio_write(&mut t, 0x70, DRV);
    mmio_write(&mut t, 0x70, STATUS_DRIVER);
    assert_ne!(mmio_read(&mut t, 0x70) & STATUS_DEVICE_NEEDS_RESET, 0);
}

#[test]
fn features_without_version_1_are_refused() {
    let (mut t, _, _) = transport();
    mmio_write(&mut t, 0x70, ACK);
    mmio_write(&mut t, 0x70, DRV);
    mmio_write(&mut t, 0x24, 0);
    mmio_write(&mut t, 0x20, 0);
    mmio_write(&mut t, 0x70, FOK);
    assert_eq!(mmio_read(&mut t, 0x70) & STATUS_FEATURES_OK, 0);
}

#[test]
fn features_never_offered_are_refused() {
    let (mut t, _, _) = transport();
    mmio_write(&mut t, 0x70, ACK);
    mmio_write(&mut t, 0x70, DRV);
    mmio_write(&mut t, 0x24, 1);
    mmio_write(&mut t, 0x20, 1 | 2);
    mmio_write(&mut t, 0x70, FOK);
    assert_eq!(mmio_read(&mut t, 0x70) & STATUS_FEATURES_OK, 0);
}

fn to_queue_setup(t: &mut MmioTransport) {
    mmio_write(t, 0x70, ACK);
    mmio_write(t, 0x70, DRV);
    mmio_write(t, 0x24, 1);
    mmio_write(t, 0x20, 1);
    mmio_write(t, 0x70, FOK);
    assert_eq!(mmio_read(t, 0x70), FOK);
}

fn try_queue(t: &mut MmioTransport, size: u32, desc: u64, avail: u64, used: u64) -> u32 {
    mmio_write(t, 0x30, 0);
    mmio_write(t, 0x38, size);
    mmio_write(t, 0x80, desc as u32);
    mmio_write(t, 0x84, (desc >> 32) as u32);
    mmio_write(t, 0x90, avail as u32);
    mmio_write(t, 0x94, (avail >> 32) as u32);
    mmio_write(t, 0xa0, used as u32);
    mmio_write(t, 0xa4, (used >> 32) as u32);
    mmio_write(t, 0x44, 1);
    mmio_read(t, 0x44)
}

#[test]
fn bad_queue_configurations_are_refused() {
    let ok = Rings::for_queue(0, 16);
    let cases: &[(u32, u64, u64, u64, &str)] = &[
        (12, ok.desc, ok.avail, ok.used, "size not a power of two"),
        (32, ok.desc, ok.avail, ok.used, "size above max"),
        (0, ok.desc, ok.avail, ok.used, "size zero"),
        (0x1_0010, ok.desc, ok.avail, ok.used, "size above u16"),
        (
            16,
            ok.desc + 8,
            ok.avail,
            ok.used,
            "misaligned descriptor table",
        ),
        (16, ok.desc, ok.avail + 1, ok.used, "misaligned avail ring"),
        (16, ok.desc, ok.avail, ok.used + 2, "misaligned used ring"),
        (
            16,
            MEM_SIZE as u64,
            ok.avail,
            ok.used,
            "descriptor table outside RAM",
        ),
        (
            16,
            ok.desc,
            MEM_SIZE as u64 - 4,
            ok.used,
            "avail ring straddling RAM end",
        ),
        (
            16,
            ok.desc,
            ok.avail,
            0xffff_ffff_ffff_fff0,
            "used ring near u64::MAX",
        ),
    ];
    for &(size, desc, avail, used, what) in cases {
        let (mut t, activations, _) = transport();
        to_queue_setup(&mut t);
        assert_eq!(
            try_queue(&mut t, size, desc, avail, used),
            0,
            "{what} accepted"
        );
        // Activation with that queue fails without a panic.
        mmio_write(&mut t, 0x70, FOK | STATUS_DRIVER_OK);
        assert_ne!(
            mmio_read(&mut t, 0x70) & STATUS_DEVICE_NEEDS_RESET,
            0,
            "{what}"
        );
        assert_eq!(activations.load(Ordering::SeqCst), 0, "{what}");
    }
}

#[test]
fn queue_writes_outside_setup_are_ignored() {
    let (mut t, _, _) = transport();
    let r = Rings::for_queue(0, 16);
    assert_eq!(try_queue(&mut t, 16, r.desc, r.avail, r.used), 0);
    bring_up(&mut t, 0, 8);
    mmio_write(&mut t, 0x30, 0);
    mmio_write(&mut t, 0x38, 4);
    mmio_write(&mut t, 0x44, 0);
    assert_eq!(mmio_read(&mut t, 0x44), 1, "ready cleared after DRIVER_OK");
}

#[test]
fn notify_signals_the_queue_eventfd_and_ack_clears_interrupts() {
    let (mut t, _, _) = transport();
    bring_up(&mut t, 0, 16);
    mmio_write(&mut t, 0x50, 1);
    assert_eq!(t.queue_evts()[1].read().unwrap(), 1);
    assert!(t.queue_evts()[0].read().is_err(), "queue 0 not notified");
    mmio_write(&mut t, 0x50, 7); // nonexistent queue: ignored
    t.interrupt().signal_used_queue().unwrap();
    t.interrupt().signal_config_change().unwrap();
    assert_eq!(mmio_read(&mut t, 0x60), INT_VRING | INT_CONFIG);
    assert!(t.irq_evt().read().is_ok());
    mmio_write(&mut t, 0x64, INT_VRING);
    assert_eq!(mmio_read(&mut t, 0x60), INT_CONFIG);
}

#[test]
fn config_writes_reach_the_device_and_bump_generation() {
    let (mut t, _, _) = transport();
    t.bus_write(0x100, b"zz");
    let mut b = [0u8; 2];
    t.bus_read(0x100, &mut b);
    assert_eq!(&b, b"ab", "config write without driver ignored");
    mmio_write(&mut t, 0x70, ACK);
    mmio_write(&mut t, 0x70, DRV);
    let gen = mmio_read(&mut t, 0xfc);
    t.bus_write(0x100, b"zz");
    t.bus_read(0x100, &mut b);
    assert_eq!(&b, b"zz");
    assert_ne!(mmio_read(&mut t, 0xfc), gen);
}

#[test]
fn mmio_sweep_of_every_offset_and_width_leaves_transport_alive() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let statuses = [0, ACK, DRV, FOK, FOK | STATUS_DRIVER_OK];
    for &status in &statuses {
        for round in 0..3 {
            let (mut t, _, _) = transport();
            match status {
                0 => {}
                s if s == FOK | STATUS_DRIVER_OK => {
                    bring_up(&mut t, 0, 16);
                }
                s => {
                    for step in [ACK, DRV, FOK] {
                        if step & s == step {
                            if step == FOK {
                                mmio_write(&mut t, 0x24, 1);
                                mmio_write(&mut t, 0x20, 1);
                            }
                            mmio_write(&mut t, 0x70, step);
                        }
                    }
                }
            }
            for offset in (0u64..0x240).chain([0xfff, 0x1000, 0x1_0000, u64::MAX - 3, u64::MAX]) {
                for width in [1usize, 2, 3, 4, 8] {
                    let mut buf = vec![0u8; width];
                    t.bus_read(offset, &mut buf);
                    let v = rng.next().to_le_bytes();
                    // Avoid resetting via status 0 every time: keep some runs deep.
                    let data = &v[..width];
                    if round == 0 && offset == 0x70 {
                        continue;
                    }
                    t.bus_write(offset, data);
                }
            }
            // Still alive and answering, and a reset brings it back.
            assert_eq!(mmio_read(&mut t, 0x0), 0x7472_6976);
            mmio_write(&mut t, 0x70, 0);
            assert_eq!(mmio_read(&mut t, 0x70), 0);
            bring_up(&mut t, 0, 16);
        }
    }
}
