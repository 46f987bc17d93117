//! The interface every virtio device implements, independent of the transport.

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::common::VirtioCommon;

/// A virtio device model (block, vsock, fs, ...), driven by a transport.
///
/// What all devices share lives in the [`VirtioCommon`] they embed; a
/// device adds only what differs: how it starts on the driver's queues, and
/// (rarely) a writable config space or extra reset work.
pub trait VirtioDevice: Send {
    /// The state every device shares: identity, features, config space, worker.
    fn common(&self) -> &VirtioCommon;
    /// Mutable access to [`VirtioDevice::common`].
    fn common_mut(&mut self) -> &mut VirtioCommon;
    /// Starts the device with its link to the guest and the driver's
    /// queues (one per entry of [`VirtioCommon::queue_max_sizes`], in
    /// order), typically through [`VirtioCommon::activate`].
    fn activate(&mut self, link: GuestLink, queues: Vec<ActiveQueue>) -> Result<(), ActivateError>;
    /// Writes the device configuration space. Default: read-only, ignored.
    /// Log lines go through [`VirtioCommon::guest_log`].
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if let Some(suppressed) = self.common().guest_log().admit() {
            tracing::warn!(
                device = self.common().name(),
                offset,
                len = data.len(),
                suppressed,
                "virtio: write to a read-only config space ignored"
            );
        }
    }
    /// Stops the device (worker stopped, queues dropped) so it can be
    /// activated again. Default: [`VirtioCommon::reset`].
    fn reset(&mut self) {
        self.common_mut().reset();
    }
}
