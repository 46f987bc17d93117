//! virtio-mmio transport and virtio devices as plain functions over guest memory.
//!
//! The crate has no KVM dependency: devices work on a
//! [`vm_memory::GuestMemoryMmap`] and talk to the VMM through `EventFd`s
//! (queue notifications in, interrupts out), so everything unit-tests and
//! fuzzes without `/dev/kvm`.
//!
//! # Wiring a device into the VMM
//!
//! ```text
//! let dev = vsock::Vsock::new(3)?;               // or block::Block::open(path, ro)?
//! let host = dev.host();                          // vsock only: host endpoints
//! let t = MmioTransport::new(mem.clone(), Box::new(dev))?;  // fs::Fs::new(tag, dir, ro)?
//! for (i, evt) in t.queue_evts().iter().enumerate() {
//!     vm.register_ioevent(evt, IoEventAddress::Mmio(base + mmio::NOTIFY_REG_OFFSET),
//!                         Some(i as u32))?;       // 4-byte datamatch = queue index
//! }
//! vm.register_irqfd(t.irq_evt(), irq)?;           // edge-style pulse per interrupt
//! mmio_bus.insert(base, mmio::MMIO_WINDOW_SIZE, Arc::new(Mutex::new(t)))?;
//! cmdline.push(MmioTransport::cmdline_entry(base, irq));
//! ```
//!
//! The bus forwards guest accesses with [`MmioTransport::bus_read`] /
//! [`MmioTransport::bus_write`] (offset relative to `base`). Each device
//! runs its own worker thread from DRIVER_OK until reset/drop, so the VMM
//! event loop has nothing else to poll; the host side of vsock is used
//! through [`vsock::VsockHost`] from any thread.

pub mod activation;
pub mod block;
pub mod chain;
pub mod common;
pub mod defs;
pub mod device;
pub mod fs;
pub mod fuzz;
pub mod interrupt;
pub mod mmio;
pub mod vsock;
pub mod worker;

pub use activation::{ActivateError, ActiveQueue, GuestLink};
pub use block::Block;
pub use common::VirtioCommon;
pub use device::VirtioDevice;
pub use fs::Fs;
pub use interrupt::Interrupt;
pub use mmio::MmioTransport;
pub use vsock::{Vsock, VsockHost, VsockListener};

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
