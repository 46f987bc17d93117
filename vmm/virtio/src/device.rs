//! The interface every virtio device implements, independent of the transport.

use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::interrupt::Interrupt;

/// Errors when a device is activated.
#[derive(Debug, thiserror::Error)]
pub enum ActivateError {
    /// The driver handed a different number of queues than the device has.
    #[error("expected {expected} queues, got {got}")]
    QueueCount {
        /// Queues the device needs.
        expected: usize,
        /// Queues the driver set up.
        got: usize,
    },
    /// The device could not start its worker.
    #[error("cannot start the device worker")]
    Worker(#[source] std::io::Error),
    /// The device is already active.
    #[error("device already active")]
    AlreadyActive,
}

/// One queue handed to a device at activation: the queue state and the
/// `EventFd` the guest's notifications for it arrive on.
#[derive(Debug)]
pub struct ActiveQueue {
    /// The queue as configured by the driver (validated by the transport).
    pub queue: Queue,
    /// Signalled when the driver notifies this queue.
    pub notify: EventFd,
}

/// A virtio device model (block, vsock, fs, ...), driven by a transport.
pub trait VirtioDevice: Send {
    /// The virtio device id (e.g. [`crate::defs::TYPE_BLOCK`]).
    fn device_type(&self) -> u32;
    /// Maximum size of each of the device's queues (their count is the queue count).
    fn queue_max_sizes(&self) -> &[u16];
    /// Features the device offers.
    fn avail_features(&self) -> u64;
    /// Records the features the driver accepted (always a subset of
    /// `avail_features`). Default: nothing to record.
    fn ack_features(&mut self, _features: u64) {}
    /// The device configuration space, for the default `read_config`.
    fn config_space(&self) -> &[u8] {
        &[]
    }
    /// Reads the device configuration space at `offset`; bytes past its end read as 0.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        read_config_bytes(self.config_space(), offset, data);
    }
    /// Writes the device configuration space. Default: read-only, ignored.
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        tracing::warn!(
            device_type = self.device_type(),
            offset,
            len = data.len(),
            "virtio: write to a read-only config space ignored"
        );
    }
    /// Starts the device with the driver's queues.
    fn activate(
        &mut self,
        mem: GuestMemoryMmap,
        interrupt: Arc<Interrupt>,
        queues: Vec<ActiveQueue>,
    ) -> Result<(), ActivateError>;
    /// Stops the device (worker stopped, queues dropped) so it can be activated again.
    fn reset(&mut self);
}

/// Turns the queues handed to `activate` into exactly `N` queues.
pub fn expect_queues<const N: usize>(
    queues: Vec<ActiveQueue>,
) -> Result<[ActiveQueue; N], ActivateError> {
    let got = queues.len();
    queues
        .try_into()
        .map_err(|_| ActivateError::QueueCount { expected: N, got })
}

/// Copies `config[offset..]` into `data`, zero-filling whatever lies outside
/// `config`. Never panics, whatever the offset and length.
pub fn read_config_bytes(config: &[u8], offset: u64, data: &mut [u8]) {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(i))
            .and_then(|o| config.get(o))
            .map_or(0, |b| *b);
    }
}
