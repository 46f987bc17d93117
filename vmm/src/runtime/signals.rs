//! Forwarding the signals vmrun receives to the container (as runc does:
//! every catchable signal but SIGCHLD, SIGPIPE and SIGURG, realtime ones
//! included: systemd in a container stops on SIGRTMIN+3), and receiving
//! SIGWINCH (a resize of vmrun's terminal, passed on as a resize of the
//! container's terminal, never as a signal). Left alone: SIGRTMIN itself
//! (it kicks vCPU threads out of KVM_RUN) and the fault signals (SIGSEGV,
//! SIGBUS, SIGILL, SIGFPE, SIGSYS: the VMM's own faults and seccomp
//! reports).
//!
//! The signals are blocked in the calling thread before any other thread
//! exists (threads inherit the mask), and one thread collects them with
//! `sigwaitinfo` and hands each to a callback. It sleeps until a signal
//! comes: no timeout wakes it while the container runs, and dropping the
//! forwarder wakes it at once with a [`RESIZE`] aimed at it alone.

use std::io;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The standard signals vmrun forwards to the container. The job-control
/// stops (SIGTSTP, SIGTTIN, SIGTTOU) are among them: the container stops,
/// not the VMM that holds it.
pub const FORWARDED: [libc::c_int; 20] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTRAP,
    libc::SIGABRT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGSTKFLT,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGIO,
    libc::SIGPWR,
];

/// Every signal forwarded: [`FORWARDED`] and the realtime signals above
/// SIGRTMIN (the vCPU kick).
pub fn forwarded() -> impl Iterator<Item = libc::c_int> {
    FORWARDED
        .into_iter()
        .chain(libc::SIGRTMIN() + 1..=libc::SIGRTMAX())
}
/// The terminal-resize signal, handed to the callback like the forwarded ones.
pub const RESIZE: libc::c_int = libc::SIGWINCH;

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it fully.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in forwarded().chain([RESIZE]) {
        // SAFETY: as above; `sig` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    set
}

/// Blocks the forwarded signals and [`RESIZE`] in the calling thread (and so in every
/// thread it spawns afterwards). Call before starting other threads.
pub fn block_forwarded() -> io::Result<()> {
    let set = forwarded_set();
    // SAFETY: `set` is initialised; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// The thread that receives the forwarded signals; stops when dropped.
#[derive(Debug)]
pub struct SignalForwarder {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SignalForwarder {
    /// Starts receiving the (already blocked) forwarded signals and
    /// [`RESIZE`], and calls `on_signal` with each.
    pub fn start(on_signal: impl Fn(i32) + Send + 'static) -> io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
            .name("signals".into())
            .spawn(move || {
                crate::seccomp::install_host_or_warn("signals");
                let set = forwarded_set();
                loop {
                    // SAFETY: `set` is initialised; a null siginfo pointer
                    // is allowed.
                    let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
                    if flag.load(Ordering::SeqCst) {
                        break;
                    }
                    if sig > 0 {
                        on_signal(sig);
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for SignalForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // SAFETY: pthread_kill of our own thread, which cannot have
            // ended: it only ends on seeing `stop`, set above, and the
            // handle keeps its id valid until the join. RESIZE is blocked
            // in it, so the signal waits for its sigwaitinfo.
            let rc = unsafe { libc::pthread_kill(thread.as_pthread_t(), RESIZE) };
            if rc == 0 {
                let _ = thread.join();
            } else {
                tracing::warn!(
                    "cannot wake the signal thread: {}",
                    io::Error::from_raw_os_error(rc)
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::time::Duration;

    /// The voluntary context switches of thread `tid` of this process.
    fn voluntary_switches(tid: i32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status"))
            .expect("the thread's status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("voluntary_ctxt_switches")
    }

    #[test]
    fn forwards_signals_sleeps_between_them_and_ends_when_dropped() {
        // The forwarder's thread inherits this thread's mask.
        block_forwarded().expect("block the forwarded signals");
        let (tx, rx) = channel();
        let forwarder = SignalForwarder::start(move |sig| {
            // SAFETY: gettid has no preconditions.
            let _ = tx.send((sig, unsafe { libc::gettid() }));
        })
        .expect("start the forwarder");
        let thread = forwarder
            .thread
            .as_ref()
            .expect("its thread")
            .as_pthread_t();
        // SAFETY: pthread_kill of the forwarder's live thread (it runs until
        // the drop below); SIGUSR1 is blocked there, so sigwaitinfo takes it.
        assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGUSR1) }, 0);
        let (sig, tid) = rx.recv_timeout(Duration::from_secs(30)).expect("forwarded");
        assert_eq!(sig, libc::SIGUSR1);
        // Waiting for the next signal, nothing wakes the thread.
        std::thread::sleep(Duration::from_millis(100));
        let before = voluntary_switches(tid);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(
            voluntary_switches(tid),
            before,
            "the idle signal thread woke up"
        );
        // Only the drop's own signal ends it, and it is not forwarded.
        let (done_tx, done_rx) = channel();
        std::thread::spawn(move || {
            drop(forwarder);
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(30)).is_ok(),
            "dropping the forwarder did not end its thread"
        );
        assert!(
            rx.try_recv().is_err(),
            "the wake-up was forwarded as a signal"
        );
    }

    #[test]
    fn realtime_signals_are_forwarded_but_not_the_kick_or_faults() {
        let all: Vec<i32> = forwarded().collect();
        let rtmin = libc::SIGRTMIN();
        assert!(all.contains(&(rtmin + 3)), "SIGRTMIN+3 (systemd's stop)");
        assert!(all.contains(&libc::SIGRTMAX()));
        assert!(!all.contains(&rtmin), "SIGRTMIN kicks the vCPUs");
        for kept in [
            libc::SIGSEGV,
            libc::SIGBUS,
            libc::SIGILL,
            libc::SIGFPE,
            libc::SIGSYS,
            libc::SIGCHLD,
            libc::SIGPIPE,
            libc::SIGKILL,
            libc::SIGSTOP,
        ] {
            assert!(!all.contains(&kept), "signal {kept} must not be blocked");
        }
    }
}
