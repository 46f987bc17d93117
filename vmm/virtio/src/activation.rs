//! What a device is handed when the driver sets DRIVER_OK: its queues
//! (each with the `EventFd` its notifications arrive on) and a
//! [`GuestLink`] to the guest; and why activation can fail.

use std::sync::Arc;

use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use crate::chain::ChainError;
use crate::failure::DeviceFailure;
use crate::interrupt::Interrupt;
use crate::log_limited;

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

/// Turns the queues handed to `activate` into exactly `N` queues.
pub fn expect_queues<const N: usize>(
    queues: Vec<ActiveQueue>,
) -> Result<[ActiveQueue; N], ActivateError> {
    let got = queues.len();
    queues
        .try_into()
        .map_err(|_| ActivateError::QueueCount { expected: N, got })
}

/// What a running worker needs to reach the guest: its memory, the
/// device's interrupt line and the flag that tells the transport the worker died.
#[derive(Debug, Clone)]
pub struct GuestLink {
    name: &'static str,
    /// Guest RAM the device's queues and buffers live in.
    pub mem: GuestMemoryMmap,
    /// The device's interrupt line.
    pub interrupt: Arc<Interrupt>,
    failure: DeviceFailure,
}

impl GuestLink {
    /// The link of the device named `name` (for logs), with a fresh
    /// [`DeviceFailure`] flag.
    pub fn new(name: &'static str, mem: GuestMemoryMmap, interrupt: Arc<Interrupt>) -> Self {
        Self {
            name,
            mem,
            failure: DeviceFailure::new(name, interrupt.clone()),
            interrupt,
        }
    }

    /// The flag the device's worker sets when it dies (the transport
    /// watches it; [`crate::common::VirtioCommon::activate`] hands it to the worker).
    pub fn failure(&self) -> &DeviceFailure {
        &self.failure
    }

    /// Raises the used-ring interrupt; logs (it cannot fail the guest) if it cannot.
    pub fn signal_used(&self) {
        if let Err(e) = self.interrupt.signal_used_queue() {
            log_limited!(warn, error = %e, device = self.name, "virtio: cannot raise interrupt");
        }
    }

    /// The number of chains a pass over `queue` gave back; logs a broken
    /// queue (the device then waits for the driver's reset) and counts it as 0.
    pub fn chains_used(&self, queue: &str, result: Result<usize, ChainError>) -> usize {
        result.unwrap_or_else(|e| {
            log_limited!(
                warn,
                error = %e,
                device = self.name,
                queue,
                "virtio: queue broken; waiting for a reset"
            );
            0
        })
    }

    /// Signals the guest after a pass over `queue` that gave chains back.
    pub fn finish_pass(&self, queue: &str, result: Result<usize, ChainError>) {
        if self.chains_used(queue, result) > 0 {
            self.signal_used();
        }
    }
}
