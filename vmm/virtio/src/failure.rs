//! How a device worker that died tells its transport and the guest.
//!
//! The transport makes one [`DeviceFailure`] per activation and hands it to
//! the device inside its [`GuestLink`](crate::GuestLink); the worker keeps a
//! clone. When the worker dies (its handler panicked), it calls
//! [`DeviceFailure::report`]: the flag is set first, then the
//! configuration-change interrupt is raised, so the driver that reads the
//! status register on that interrupt sees DEVICE_NEEDS_RESET (virtio 1.x
//! §2.1.2) and resets the device instead of waiting forever on its queues.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::interrupt::Interrupt;
use crate::log_limited;

/// The "this device's worker died" flag shared by a transport and a worker
/// (see the module docs). Clones share the flag.
#[derive(Debug, Clone)]
pub struct DeviceFailure {
    device: &'static str,
    failed: Arc<AtomicBool>,
    interrupt: Arc<Interrupt>,
}

impl DeviceFailure {
    /// A clear flag for the device named `device`, raising `interrupt`.
    pub fn new(device: &'static str, interrupt: Arc<Interrupt>) -> Self {
        Self {
            device,
            failed: Arc::new(AtomicBool::new(false)),
            interrupt,
        }
    }

    /// Whether the worker reported a failure.
    pub fn is_set(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Records that the worker stopped because of `cause` (e.g. "panicked:
    /// MESSAGE"), logs it with the device's name (once per activation, rate-limited: a driver can reset and
    /// trigger it again) and raises the configuration-change interrupt.
    pub fn report(&self, cause: std::fmt::Arguments<'_>) {
        if self.failed.swap(true, Ordering::AcqRel) {
            return;
        }
        log_limited!(
            error,
            device = self.device,
            %cause,
            "virtio: device worker died; device needs reset"
        );
        if let Err(e) = self.interrupt.signal_config_change() {
            log_limited!(
                error,
                device = self.device,
                error = %e,
                "virtio: cannot raise config interrupt"
            );
        }
    }
}
