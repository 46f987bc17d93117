//! virtio-mmio transport and virtio devices as plain functions over guest memory.
//!
//! The crate has no KVM dependency: devices work on a
//! [`vm_memory::GuestMemoryMmap`] and talk to the VMM through `EventFd`s
//! (queue notifications in, interrupts out), so everything unit-tests and
//! fuzzes without `/dev/kvm`.

pub mod block;
pub mod chain;
pub mod defs;
pub mod device;
pub mod fs;
pub mod interrupt;
pub mod mmio;
pub mod vsock;
pub mod worker;

pub use device::{ActivateError, ActiveQueue, VirtioDevice};
pub use interrupt::Interrupt;
pub use mmio::MmioTransport;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
