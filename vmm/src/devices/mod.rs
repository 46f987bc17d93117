//! Device model: the port-I/O and MMIO buses and the legacy devices
//! (serial console, i8042 reset line, boot timer, CMOS placeholder).
//!
//! Virtio devices plug in as [`bus::BusDevice`]s on the MMIO bus (see
//! `machine::Machine::mmio_bus` and the irqfd/ioeventfd helpers on
//! [`crate::vstate::vm::Vm`]).

pub mod boot_timer;
pub mod bus;
pub mod cmos;
pub mod console;
pub mod i8042;
pub mod serial;
pub mod virtio;
