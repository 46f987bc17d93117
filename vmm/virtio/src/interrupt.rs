//! The interrupt line of one virtio-mmio device: an interrupt-status word
//! shared with the transport plus an `EventFd` the VMM registers as a KVM irqfd.

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};

use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::defs::{INT_CONFIG, INT_VRING};

/// Interrupt state of one device (see the module docs).
#[derive(Debug)]
pub struct Interrupt {
    status: AtomicU32,
    irq_evt: EventFd,
}

impl Interrupt {
    /// Creates an interrupt with a fresh non-blocking `EventFd`.
    pub fn new() -> io::Result<Self> {
        Ok(Self {
            status: AtomicU32::new(0),
            irq_evt: EventFd::new(EFD_NONBLOCK)?,
        })
    }

    /// The `EventFd` to register as a KVM irqfd for the device's GSI.
    pub fn irq_evt(&self) -> &EventFd {
        &self.irq_evt
    }

    /// Current value of the InterruptStatus register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// Clears the bits the driver acknowledged through InterruptACK.
    pub fn ack(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// Clears all pending bits (device reset).
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }

    /// Signals that a used ring was updated.
    pub fn signal_used_queue(&self) -> io::Result<()> {
        self.signal(INT_VRING)
    }

    /// Signals that the configuration space changed.
    pub fn signal_config_change(&self) -> io::Result<()> {
        self.signal(INT_CONFIG)
    }

    fn signal(&self, bit: u32) -> io::Result<()> {
        self.status.fetch_or(bit, Ordering::SeqCst);
        self.irq_evt.write(1)
    }
}
