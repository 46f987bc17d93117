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
//! let dev = Vsock::new(3)?;                       // or Block::open(path, ro)?, Fs::new(tag, dir, ro)?,
//!                                                 // Net::new(Tap::open("tap0")?.into(), mac, mtu)?
//! let host = dev.host();                          // vsock only: host endpoints
//! let t = MmioTransport::new(mem.clone(), Box::new(dev))?;
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
//! [`MmioTransport::bus_write`] (offset relative to `base`).
//! [`mmio::MMIO_WINDOW_SIZE`] and [`MmioTransport::cmdline_entry`] are the
//! one definition of a device's window and its `virtio_mmio.device=` word.
//! Each device runs its own worker thread from DRIVER_OK until reset/drop,
//! so the VMM event loop has nothing else to poll; the host side of vsock is
//! used through [`VsockHost`] from any thread.
//!
//! # Shape
//!
//! | module | concern |
//! |---|---|
//! | [`mmio`] | the virtio-mmio v2 register interface; hands the queues over at DRIVER_OK |
//! | [`device`] | the small [`VirtioDevice`] trait a transport drives |
//! | [`common`] | [`VirtioCommon`], embedded by every device: identity, features, config space, worker start/stop |
//! | [`activation`] | what a device gets at DRIVER_OK: [`ActiveQueue`]s and a [`GuestLink`] (memory + interrupt) |
//! | [`worker`] | one epoll thread per active device, stopped on reset or drop |
//! | [`failure`] | [`DeviceFailure`]: a worker that panicked tells its transport (DEVICE_NEEDS_RESET) and the guest (config interrupt) |
//! | [`log_limit`] | [`LogLimit`] and [`log_limited!`]: the one rate limiter for log lines a guest can trigger |
//! | [`chain`] | descriptor chains validated before any device reads them |
//! | [`interrupt`], [`defs`] | the interrupt-status word + irqfd; virtio constants |
//! | [`block`], [`fs`] | virtio-blk over an image file; virtio-fs over fuse-backend-rs |
//! | [`net`] | virtio-net over a tap ([`Tap::open`] in the right network namespace, then [`Net::new`]): one RX/TX pair, MAC/MTU/STATUS, no offloads (the module docs say why); RX and TX as plain functions over guest memory and the tap fd, epoll glue |
//! | [`vsock`] | virtio-vsock: a connection state machine per stream, a router that returns the epoll changes it wants (so the protocol is tested without epoll), host handles, RX/TX queue code, epoll glue |
//! | [`fuzz`] | entry points that drive device code with arbitrary bytes |
//! | [`panic_guard`] | panics caught on purpose (workers, vCPUs) told apart from those that must end the VMM |
//!
//! A device embeds a [`VirtioCommon`] and implements only
//! [`VirtioDevice::activate`]: build its worker's handler from the
//! [`GuestLink`] and the queues handed over.

pub mod activation;
pub mod block;
pub mod chain;
pub mod common;
pub mod defs;
pub mod device;
pub mod failure;
pub mod fs;
pub mod fuzz;
pub mod interrupt;
pub mod log_limit;
pub mod mmio;
pub mod net;
pub mod panic_guard;
pub mod vsock;
pub mod worker;

pub use activation::{ActivateError, ActiveQueue, GuestLink};
pub use block::Block;
pub use common::VirtioCommon;
pub use device::VirtioDevice;
pub use failure::DeviceFailure;
pub use fs::Fs;
pub use interrupt::Interrupt;
pub use log_limit::LogLimit;
pub use mmio::MmioTransport;
pub use net::{Net, NetError, Tap, TapError};
pub use vsock::{Vsock, VsockHost, VsockListener};

#[cfg(test)]
mod testing;
#[cfg(test)]
mod tests;
