//! Device model: the port-I/O and MMIO buses and the legacy devices
//! (serial console, i8042 reset line, boot timer, CMOS placeholder).
//!
//! Virtio devices are attached by the machine's device manager
//! (`machine::mmio_devices`), which mounts their transports on the MMIO bus.

pub mod boot_timer;
pub mod bus;
pub mod cmos;
pub mod console;
pub mod i8042;
pub mod serial;
