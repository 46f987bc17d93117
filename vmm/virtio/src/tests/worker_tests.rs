use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use vmm_sys_util::epoll::{Epoll, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::defs::INT_CONFIG;
use crate::failure::DeviceFailure;
use crate::interrupt::Interrupt;
use crate::testing::wait_evt;
use crate::worker::{EventHandler, Worker};

struct Panicky {
    evt: EventFd,
    done: EventFd,
    calls: Arc<AtomicUsize>,
}

impl EventHandler for Panicky {
    fn initial_fds(&self) -> Vec<(RawFd, u64)> {
        vec![(self.evt.as_raw_fd(), 7)]
    }
    fn handle_event(&mut self, token: u64, _events: EventSet, _epoll: &Epoll) {
        assert_eq!(token, 7);
        let _ = self.evt.read();
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        self.done.write(1).unwrap();
        if n == 0 {
            panic!("simulated device bug");
        }
    }
}

#[test]
fn a_panicking_handler_stops_its_worker_not_the_process() {
    let evt = EventFd::new(EFD_NONBLOCK).unwrap();
    let done = EventFd::new(EFD_NONBLOCK).unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = Panicky {
        evt: evt.try_clone().unwrap(),
        done: done.try_clone().unwrap(),
        calls: calls.clone(),
    };
    let interrupt = Arc::new(Interrupt::new().unwrap());
    let failure = DeviceFailure::new("panicky", interrupt.clone());
    let mut worker = Worker::spawn("panicky", failure.clone(), handler).unwrap();
    evt.write(1).unwrap();
    assert!(wait_evt(&done), "handler never ran");
    // The panic is reported: flag set, then the config interrupt raised.
    assert!(wait_evt(interrupt.irq_evt()), "failure never reported");
    assert!(failure.is_set());
    assert_eq!(interrupt.status(), INT_CONFIG);
    // The worker is gone: further events are not handled, stop() returns.
    worker.stop();
    evt.write(1).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}
