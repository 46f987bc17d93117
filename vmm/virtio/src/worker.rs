//! The event glue of an active device: one thread per device waiting with
//! epoll on its queue `EventFd`s (and any other fds it needs) and calling
//! the device's plain queue-processing code. Stopped on reset or drop.
//!
//! A panic in the handler (a bug reachable by guest input) costs the
//! device, not the VMM: the worker stops and reports it through the
//! device's [`DeviceFailure`], which makes the transport show
//! DEVICE_NEEDS_RESET and raises the configuration-change interrupt. So
//! does a worker whose epoll wait fails.

use std::io;
use std::os::unix::io::RawFd;
use std::sync::OnceLock;
use std::thread::JoinHandle;

use tracing::warn;
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use crate::activation::ActivateError;
use crate::failure::DeviceFailure;

/// Token reserved for the stop `EventFd`.
const STOP_TOKEN: u64 = u64::MAX;

/// What a device worker does when one of its fds is readable.
pub trait EventHandler: Send + 'static {
    /// The fds to watch from the start, with the token passed back for each.
    fn initial_fds(&self) -> Vec<(RawFd, u64)>;
    /// Called when the fd registered with `token` is ready. The handler may
    /// add or remove fds with [`watch`] / [`unwatch`] on `epoll`.
    fn handle_event(&mut self, token: u64, events: EventSet, epoll: &Epoll);
}

/// Adds `fd` to `epoll` for input (and hang-up) with `token`.
pub fn watch(epoll: &Epoll, fd: RawFd, token: u64) -> io::Result<()> {
    epoll.ctl(
        ControlOperation::Add,
        fd,
        EpollEvent::new(EventSet::IN | EventSet::READ_HANG_UP, token),
    )
}

/// Removes `fd` from `epoll`.
pub fn unwatch(epoll: &Epoll, fd: RawFd) -> io::Result<()> {
    epoll.ctl(ControlOperation::Delete, fd, EpollEvent::default())
}

/// The worker of a device, if it is active: started at activation,
/// stopped on reset or drop.
#[derive(Debug, Default)]
pub struct WorkerSlot(Option<Worker>);

impl WorkerSlot {
    /// Starts `handler` on a thread named `name`, unless one already runs;
    /// the worker's death (a panic of the handler) is reported to `failure`.
    pub fn start<H: EventHandler>(
        &mut self,
        name: &str,
        failure: DeviceFailure,
        handler: H,
    ) -> Result<(), ActivateError> {
        if self.0.is_some() {
            return Err(ActivateError::AlreadyActive);
        }
        self.0 = Some(Worker::spawn(name, failure, handler).map_err(ActivateError::Worker)?);
        Ok(())
    }

    /// Whether a worker runs.
    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }

    /// Stops the worker, if any, and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut worker) = self.0.take() {
            worker.stop();
        }
    }
}

/// What a worker thread runs first, before it handles any guest input
/// (the VMM installs its device-worker seccomp filter here): an error ends
/// the worker and is reported as the device's failure.
pub type ThreadStartHook = fn(name: &str) -> Result<(), String>;

static START_HOOK: OnceLock<ThreadStartHook> = OnceLock::new();

/// Sets the hook every worker thread runs first (once per process; later
/// calls change nothing and return false).
pub fn set_thread_start_hook(hook: ThreadStartHook) -> bool {
    START_HOOK.set(hook).is_ok()
}

/// A running device worker thread.
#[derive(Debug)]
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

/// The stack size of the VMM's long-lived threads (device workers here;
/// vCPUs, stdio relays, signals, the control socket's in `vmrun`): a
/// little under 2 MiB, so that no stack's mapping can hold a whole
/// 2 MiB-aligned range. Where the host gives anonymous memory transparent
/// huge pages (THP `always`), a 2 MiB stack that happens to be aligned
/// otherwise gets a huge page of its own at its first touch: 2 MiB
/// resident for a few KiB of stack.
pub const THREAD_STACK_SIZE: usize = (2 << 20) - (64 << 10);

impl Worker {
    /// Starts a thread named `name` running `handler`; if the handler
    /// panics (or epoll fails), the thread ends and reports it to `failure`.
    pub fn spawn<H: EventHandler>(
        name: &str,
        failure: DeviceFailure,
        mut handler: H,
    ) -> io::Result<Self> {
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        watch(&epoll, stop_fd(&stop), STOP_TOKEN)?;
        for (fd, token) in handler.initial_fds() {
            watch(&epoll, fd, token)?;
        }
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .stack_size(THREAD_STACK_SIZE)
            .spawn(move || {
                if let Some(hook) = START_HOOK.get() {
                    let name = std::thread::current().name().unwrap_or("").to_owned();
                    if let Err(e) = hook(&name) {
                        failure.report(format_args!("cannot start: {e}"));
                        return;
                    }
                }
                let mut events = vec![EpollEvent::default(); 32];
                loop {
                    let n = match epoll.wait(-1, &mut events) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            failure.report(format_args!("epoll_wait failed: {e}"));
                            return;
                        }
                    };
                    for ev in events.iter().take(n) {
                        if ev.data() == STOP_TOKEN {
                            return;
                        }
                        // A bug reachable by guest input must cost this
                        // device, not the VMM: stop the worker, keep the VM.
                        // (panic_guard: the VMM's panic hook reports it
                        // and leaves the process running.)
                        let handled = crate::panic_guard::catch(|| {
                            handler.handle_event(ev.data(), ev.event_set(), &epoll)
                        });
                        if let Err(why) = handled {
                            failure.report(format_args!("panicked: {why}"));
                            return;
                        }
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            if let Err(e) = self.stop.write(1) {
                warn!(error = %e, "virtio worker: cannot signal stop");
                return;
            }
            if thread.join().is_err() {
                warn!("virtio worker thread panicked");
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stop_fd(evt: &EventFd) -> RawFd {
    use std::os::unix::io::AsRawFd;
    evt.as_raw_fd()
}
