//! The virtio-mmio device manager: the one place where a virtio device is
//! attached to a machine (as Firecracker's `MMIODeviceManager`).
//!
//! [`MmioDeviceManager::attach_virtio`] takes a device model from
//! `vmrun-virtio`, wraps it in a [`MmioTransport`], assigns it the next
//! MMIO window (from [`VIRTIO_MMIO_START`], [`MMIO_WINDOW_SIZE`] apart) and
//! interrupt line (from [`VIRTIO_IRQ_START`]), registers one KVM ioeventfd
//! per queue (datamatch = queue index) at the notify register and the
//! transport's interrupt as an irqfd, mounts it on the MMIO bus, and
//! records its `virtio_mmio.device=` command-line word. Device worker
//! threads start when the guest driver sets DRIVER_OK and stop when the
//! device is reset or dropped (the machine drops its buses, and so the
//! transports, when [`super::Machine::run`] returns).

use std::sync::{Arc, Mutex};

use kvm_ioctls::IoEventAddress;
use vm_memory::GuestMemoryMmap;
use vmrun_virtio::mmio::{TransportError, MMIO_WINDOW_SIZE, NOTIFY_REG_OFFSET};
use vmrun_virtio::{MmioTransport, VirtioDevice};

use crate::arch::x86_64::layout::{IRQ_MAX, VIRTIO_IRQ_START, VIRTIO_MMIO_START};
use crate::devices::bus::{Bus, BusDevice, BusError};
use crate::vstate::vm::{Vm, VmError};

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.bus_read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.bus_write(offset, data);
    }
}

/// Where an attached device lives: its MMIO window and interrupt line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioSlot {
    /// Guest physical base of the window ([`MMIO_WINDOW_SIZE`] bytes).
    pub base: u64,
    /// The device's interrupt line (GSI).
    pub irq: u32,
}

impl MmioSlot {
    /// The slot of the `index`-th attached device, if an IRQ is left for it.
    fn nth(index: usize) -> Option<Self> {
        let irq = VIRTIO_IRQ_START.checked_add(u32::try_from(index).ok()?)?;
        (irq <= IRQ_MAX).then(|| Self {
            base: VIRTIO_MMIO_START + index as u64 * MMIO_WINDOW_SIZE,
            irq,
        })
    }
}

/// Why a device could not be attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Every interrupt line for virtio devices is taken.
    #[error("no IRQ left for another virtio-mmio device (IRQs {VIRTIO_IRQ_START}..={IRQ_MAX} are in use)")]
    OutOfIrqs,
    /// The transport could not be created.
    #[error("cannot create the virtio-mmio transport")]
    Transport(#[from] TransportError),
    /// An ioeventfd or irqfd could not be registered with KVM.
    #[error("cannot wire the device's notifications into KVM")]
    Kvm(#[from] VmError),
    /// The window could not be mounted on the MMIO bus.
    #[error("cannot mount the device on the MMIO bus")]
    Bus(#[from] BusError),
}

/// The attached virtio-mmio devices of one machine.
#[derive(Debug, Default)]
pub struct MmioDeviceManager {
    slots: Vec<MmioSlot>,
}

impl MmioDeviceManager {
    /// Attaches `device` (see the module docs); returns its slot.
    pub fn attach_virtio(
        &mut self,
        vm: &Vm,
        memory: &GuestMemoryMmap,
        bus: &Bus,
        device: Box<dyn VirtioDevice>,
    ) -> Result<MmioSlot, AttachError> {
        let slot = MmioSlot::nth(self.slots.len()).ok_or(AttachError::OutOfIrqs)?;
        let transport = MmioTransport::new(memory.clone(), device)?;
        for (queue, evt) in transport.queue_evts().iter().enumerate() {
            let queue = u32::try_from(queue).unwrap_or(u32::MAX);
            vm.register_ioevent(
                evt,
                IoEventAddress::Mmio(slot.base + NOTIFY_REG_OFFSET),
                Some(queue),
            )?;
        }
        vm.register_irqfd(transport.irq_evt(), slot.irq)?;
        bus.insert(slot.base, MMIO_WINDOW_SIZE, Arc::new(Mutex::new(transport)))?;
        self.slots.push(slot);
        Ok(slot)
    }

    /// The attached devices' slots, in attachment order.
    pub fn slots(&self) -> &[MmioSlot] {
        &self.slots
    }

    /// One `virtio_mmio.device=` word per attached device, for the kernel
    /// command line (the guest finds devices only through these).
    pub fn cmdline_entries(&self) -> Vec<String> {
        self.slots
            .iter()
            .map(|slot| MmioTransport::cmdline_entry(slot.base, slot.irq))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_consecutive_windows_and_irqs_until_the_last_irq() {
        let first = MmioSlot::nth(0).unwrap();
        assert_eq!(
            first,
            MmioSlot {
                base: VIRTIO_MMIO_START,
                irq: VIRTIO_IRQ_START
            }
        );
        let second = MmioSlot::nth(1).unwrap();
        assert_eq!(second.base, first.base + MMIO_WINDOW_SIZE);
        assert_eq!(second.irq, first.irq + 1);
        let last = (IRQ_MAX - VIRTIO_IRQ_START) as usize;
        assert_eq!(MmioSlot::nth(last).unwrap().irq, IRQ_MAX);
        assert_eq!(MmioSlot::nth(last + 1), None);
    }

    #[test]
    fn cmdline_entries_name_window_base_and_irq() {
        let manager = MmioDeviceManager {
            slots: vec![MmioSlot::nth(0).unwrap(), MmioSlot::nth(1).unwrap()],
        };
        assert_eq!(
            manager.cmdline_entries(),
            [
                format!("virtio_mmio.device=0x1000@{VIRTIO_MMIO_START:#x}:{VIRTIO_IRQ_START}"),
                format!(
                    "virtio_mmio.device=0x1000@{:#x}:{}",
                    VIRTIO_MMIO_START + 0x1000,
                    VIRTIO_IRQ_START + 1
                ),
            ]
        );
    }
}
