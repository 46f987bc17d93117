use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::epoll::{Epoll, EventSet};

use super::log_capture::capture;
use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::common::VirtioCommon;
use crate::defs::*;
use crate::device::VirtioDevice;
use crate::failure::DeviceFailure;
use crate::interrupt::Interrupt;
use crate::mmio::MmioTransport;
use crate::testing::*;
use crate::worker::EventHandler;

/// A device whose worker panics when the guest notifies its queue.
struct Fragile(VirtioCommon);

struct FragileWorker {
    queue: ActiveQueue,
}

impl EventHandler for FragileWorker {
    fn initial_fds(&self) -> Vec<(RawFd, u64)> {
        vec![(self.queue.notify.as_raw_fd(), 0)]
    }
    fn handle_event(&mut self, _: u64, _: EventSet, _: &Epoll) {
        let _ = self.queue.notify.read();
        panic!("simulated bug on notify");
    }
}

impl VirtioDevice for Fragile {
    fn common(&self) -> &VirtioCommon {
        &self.0
    }
    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.0
    }
    fn activate(&mut self, link: GuestLink, queues: Vec<ActiveQueue>) -> Result<(), ActivateError> {
        self.0
            .activate(link, queues, |_link, [queue]| Ok(FragileWorker { queue }))
    }
}

fn fragile() -> MmioTransport {
    let dev = Fragile(VirtioCommon::new(42, "fragile", &[8], 0, Vec::new()));
    MmioTransport::new(memory(), Box::new(dev)).unwrap()
}

#[test]
fn a_panicking_worker_sets_needs_reset_and_raises_the_config_interrupt() {
    let mut t = fragile();
    bring_up(&mut t, 0, 8);
    let running = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
    assert_eq!(mmio_read(&mut t, 0x70), running);
    assert_eq!(
        mmio_read(&mut t, 0x60),
        0,
        "no interrupt before the failure"
    );
    mmio_write(&mut t, 0x50, 0); // QueueNotify: the worker panics.
    assert!(wait_evt(t.irq_evt()), "no interrupt after the worker died");
    assert_eq!(
        mmio_read(&mut t, 0x70),
        running | STATUS_DEVICE_NEEDS_RESET,
        "the driver sees the device needs a reset"
    );
    assert_eq!(
        mmio_read(&mut t, 0x60),
        INT_CONFIG,
        "a config-change interrupt"
    );
    // Until the reset, status writes are ignored.
    mmio_write(&mut t, 0x70, running);
    assert_ne!(mmio_read(&mut t, 0x70) & STATUS_DEVICE_NEEDS_RESET, 0);
    // The driver resets: the device works again, with a new worker.
    mmio_write(&mut t, 0x70, 0);
    assert_eq!(mmio_read(&mut t, 0x70), 0);
    assert_eq!(mmio_read(&mut t, 0x60), 0);
    bring_up(&mut t, 0, 8);
    assert_eq!(
        mmio_read(&mut t, 0x70),
        running,
        "a fresh activation is healthy"
    );
    // And the new worker reports its own failure the same way.
    mmio_write(&mut t, 0x50, 0);
    assert!(wait_evt(t.irq_evt()));
    assert_ne!(mmio_read(&mut t, 0x70) & STATUS_DEVICE_NEEDS_RESET, 0);
}

#[test]
fn a_failure_report_names_the_device_and_the_panic_once() {
    let interrupt = Arc::new(Interrupt::new().unwrap());
    let failure = DeviceFailure::new("virtio-test", interrupt.clone());
    let shared = failure.clone();
    assert!(!shared.is_set());
    let ((), lines) = capture(|| {
        failure.report(format_args!("panicked: index out of bounds"));
        failure.report(format_args!("a second report"));
    });
    assert!(shared.is_set(), "clones share the flag");
    assert_eq!(interrupt.status(), INT_CONFIG);
    assert_eq!(lines.len(), 1, "reported once: {lines:?}");
    assert_eq!(lines[0].level, tracing::Level::ERROR);
    assert_eq!(lines[0].field("device"), Some("\"virtio-test\""));
    assert_eq!(
        lines[0].field("cause"),
        Some("panicked: index out of bounds")
    );
}
