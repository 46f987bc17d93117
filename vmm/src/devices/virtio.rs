//! Glue between `vmrun-virtio` devices and the machine: each device is
//! wrapped in a virtio-mmio transport, its queue notifications become KVM
//! ioeventfds, its interrupt a KVM irqfd, and it is mounted on the MMIO bus
//! (announced to the kernel by `Machine::load_linux`).
//!
//! Device worker threads start when the guest driver sets DRIVER_OK and stop
//! when the device is reset or dropped: the machine drops its buses (and so
//! the transports) when [`crate::machine::Machine::run`] returns.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use kvm_ioctls::IoEventAddress;
use vmrun_virtio::block::BlockError;
use vmrun_virtio::fs::FsError;
use vmrun_virtio::mmio::{TransportError, NOTIFY_REG_OFFSET};
use vmrun_virtio::{Block, Fs, MmioTransport, VirtioDevice, Vsock, VsockHost};

use crate::devices::bus::BusDevice;
use crate::machine::{Machine, MachineError};
use crate::vstate::vm::VmError;

impl BusDevice for MmioTransport {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.bus_read(offset, data);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.bus_write(offset, data);
    }
}

/// Errors adding a virtio device to a machine.
#[derive(Debug, thiserror::Error)]
pub enum VirtioSetupError {
    /// The vsock device could not be created.
    #[error("cannot create the virtio-vsock device")]
    Vsock(#[source] std::io::Error),
    /// The virtio-fs device could not share the directory.
    #[error("cannot share {0} over virtio-fs")]
    Fs(PathBuf, #[source] FsError),
    /// The block device could not open its image.
    #[error("cannot use {0} as a virtio-blk disk")]
    Block(PathBuf, #[source] BlockError),
    /// The virtio-mmio transport could not be created.
    #[error("cannot create the virtio-mmio transport")]
    Transport(#[from] TransportError),
    /// Registering an ioeventfd or irqfd failed.
    #[error("cannot wire the device's notifications into KVM")]
    Kvm(#[from] VmError),
    /// No MMIO slot or bus range was left.
    #[error("cannot mount the device")]
    Mount(#[from] MachineError),
}

/// Wraps `device` in a transport, wires its ioeventfds (one per queue,
/// datamatch = queue index) and irqfd, and mounts it on the MMIO bus.
pub fn add_virtio_device(
    machine: &mut Machine,
    device: Box<dyn VirtioDevice>,
) -> Result<(), VirtioSetupError> {
    let slot = machine.allocate_mmio_slot()?;
    let transport = MmioTransport::new(machine.memory().clone(), device)?;
    for (queue, evt) in transport.queue_evts().iter().enumerate() {
        let queue = u32::try_from(queue).unwrap_or(u32::MAX);
        machine.vm().register_ioevent(
            evt,
            IoEventAddress::Mmio(slot.base + NOTIFY_REG_OFFSET),
            Some(queue),
        )?;
    }
    machine.vm().register_irqfd(transport.irq_evt(), slot.irq)?;
    machine.mount_mmio_device(slot, Arc::new(Mutex::new(transport)))?;
    Ok(())
}

/// Adds a virtio-vsock device giving the guest context id `guest_cid`;
/// returns the host side of it.
pub fn add_vsock(machine: &mut Machine, guest_cid: u64) -> Result<VsockHost, VirtioSetupError> {
    let vsock = Vsock::new(guest_cid).map_err(VirtioSetupError::Vsock)?;
    let host = vsock.host();
    add_virtio_device(machine, Box::new(vsock))?;
    Ok(host)
}

/// Adds a virtio-fs device sharing `dir` under `tag` (read-only if asked).
pub fn add_fs(
    machine: &mut Machine,
    tag: &str,
    dir: &Path,
    read_only: bool,
) -> Result<(), VirtioSetupError> {
    let fs = Fs::new(tag, dir, read_only).map_err(|e| VirtioSetupError::Fs(dir.into(), e))?;
    add_virtio_device(machine, Box::new(fs))
}

/// Adds a virtio-blk disk backed by `image` (read-only if asked).
pub fn add_block(
    machine: &mut Machine,
    image: &Path,
    read_only: bool,
) -> Result<(), VirtioSetupError> {
    let block =
        Block::open(image, read_only).map_err(|e| VirtioSetupError::Block(image.into(), e))?;
    add_virtio_device(machine, Box::new(block))
}
