use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::Arc;

use vmm_sys_util::epoll::{Epoll, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::common::VirtioCommon;
use crate::interrupt::Interrupt;
use crate::testing::*;

/// A handler that only proves it was built from the queues handed over.
struct Idle {
    _link: GuestLink,
    queues: [ActiveQueue; 2],
}

impl crate::worker::EventHandler for Idle {
    fn initial_fds(&self) -> Vec<(RawFd, u64)> {
        vec![(self.queues[0].notify.as_raw_fd(), 0)]
    }
    fn handle_event(&mut self, _token: u64, _events: EventSet, _epoll: &Epoll) {}
}

fn common() -> VirtioCommon {
    VirtioCommon::new(42, "test-dev", &[16, 16], 0b1010, b"abc".to_vec())
}

fn queues(n: usize) -> Vec<ActiveQueue> {
    (0..n)
        .map(|i| ActiveQueue {
            queue: Rings::for_queue(i as u64, 16).queue(),
            notify: EventFd::new(EFD_NONBLOCK).unwrap(),
        })
        .collect()
}

fn activate(c: &mut VirtioCommon, n: usize) -> Result<(), ActivateError> {
    let interrupt = Arc::new(Interrupt::new().unwrap());
    let link = GuestLink::new("test-dev", memory(), interrupt);
    c.activate(link, queues(n), |link, queues| {
        Ok(Idle {
            _link: link,
            queues,
        })
    })
}

#[test]
fn identity_and_config_space() {
    let c = common();
    assert_eq!(c.device_type(), 42);
    assert_eq!(c.name(), "test-dev");
    assert_eq!(c.queue_max_sizes(), &[16, 16]);
    assert_eq!(c.avail_features(), 0b1010);
    let mut b = [0xffu8; 4];
    c.read_config(1, &mut b);
    assert_eq!(&b, b"bc\0\0", "past the end reads zero");
    c.read_config(u64::MAX, &mut b);
    assert_eq!(b, [0; 4]);
}

#[test]
fn acked_features_keep_only_offered_bits_and_reset_forgets_them() {
    let mut c = common();
    c.ack_features(0b1111);
    assert_eq!(c.acked_features(), 0b1010);
    c.reset();
    assert_eq!(c.acked_features(), 0);
}

#[test]
fn activation_checks_queue_count_and_runs_one_worker_until_reset() {
    let mut c = common();
    assert!(matches!(
        activate(&mut c, 1),
        Err(ActivateError::QueueCount {
            expected: 2,
            got: 1
        })
    ));
    assert!(!c.is_active());
    activate(&mut c, 2).unwrap();
    assert!(c.is_active());
    assert!(matches!(
        activate(&mut c, 2),
        Err(ActivateError::AlreadyActive)
    ));
    c.reset();
    assert!(!c.is_active());
    activate(&mut c, 2).unwrap();
    assert!(c.is_active());
}
