//! COM1: vm-superio's 8250 UART at 0x3f8, interrupting through an irqfd.

use std::io;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;
use vmrun_virtio::log_limited;

use super::bus::BusDevice;
use super::console::ConsoleWriter;

/// Raises the serial IRQ by writing to an EventFd registered as an irqfd.
#[derive(Debug)]
pub struct IrqTrigger(EventFd);

impl IrqTrigger {
    /// A trigger writing to `evt`.
    pub fn new(evt: EventFd) -> Self {
        Self(evt)
    }
}

impl Trigger for IrqTrigger {
    type E = io::Error;

    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// The serial port device on the port-I/O bus.
pub struct SerialDevice {
    serial: Serial<IrqTrigger, NoEvents, ConsoleWriter>,
}

impl SerialDevice {
    /// A UART whose output goes to `out` and whose interrupt writes `irq_evt`.
    pub fn new(irq_evt: EventFd, out: ConsoleWriter) -> Self {
        Self {
            serial: Serial::new(IrqTrigger::new(irq_evt), out),
        }
    }

    /// Queues host input for the guest to read (console input).
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        self.serial.enqueue_raw_bytes(bytes).unwrap_or(0)
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        match (u8::try_from(offset), data) {
            (Ok(off), [byte]) => *byte = self.serial.read(off),
            (_, data) => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let (Ok(off), [byte]) = (u8::try_from(offset), data) {
            if let Err(e) = self.serial.write(off, *byte) {
                log_limited!(debug, "serial write at offset {off}: {e:?}");
            }
        }
    }
}

impl SerialDevice {
    /// Flushes buffered console output.
    pub fn flush_output(&mut self) {
        let _ = std::io::Write::flush(self.serial.writer_mut());
    }
}
