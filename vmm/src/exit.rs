//! Why a VM stopped, and the shared flag that tells every vCPU to stop.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// The first event that ended the VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// The guest reset the machine through the i8042 (or a KVM reset/shutdown
    /// system event): a clean guest reboot/power-off.
    Reset,
    /// Every vCPU executed `hlt` without an in-kernel LAPIC (tiny guests).
    AllVcpusHalted,
    /// The host stopped the VM (e.g. vmrun gave up waiting for the agent).
    Stopped,
    /// KVM_EXIT_SHUTDOWN: triple fault.
    TripleFault {
        /// The vCPU that faulted.
        cpu: u8,
    },
    /// KVM_EXIT_INTERNAL_ERROR.
    InternalError {
        /// The vCPU.
        cpu: u8,
        /// KVM's sub-error code (1 = instruction emulation failure).
        suberror: u32,
    },
    /// KVM_EXIT_FAIL_ENTRY.
    FailEntry {
        /// The vCPU.
        cpu: u8,
        /// Hardware entry failure reason.
        reason: u64,
    },
    /// A KVM_EXIT_SYSTEM_EVENT of type crash.
    GuestCrash {
        /// The vCPU.
        cpu: u8,
    },
    /// A vCPU ioctl failed (message of the error chain).
    VcpuFailed {
        /// The vCPU.
        cpu: u8,
        /// What failed.
        error: String,
    },
    /// A vCPU thread panicked (a VMM bug, possibly guest-triggered).
    VcpuPanicked {
        /// The vCPU.
        cpu: u8,
        /// The panic message.
        message: String,
    },
}

/// Shared between the vCPU threads, the devices and the thread waiting for
/// the VM to end. The first reported exit wins.
#[derive(Debug, Default)]
pub struct ExitState {
    exit: Mutex<Option<VmExit>>,
    ended: Condvar,
    stop: AtomicBool,
    halted: AtomicUsize,
}

impl ExitState {
    /// A fresh state: running, nothing reported.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `exit` (unless one is already recorded) and tells all vCPUs to stop.
    pub fn report(&self, exit: VmExit) {
        let mut slot = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(exit);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.ended.notify_all();
    }

    /// Whether vCPUs must stop.
    pub fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Counts a halted vCPU; reports [`VmExit::AllVcpusHalted`] when all of
    /// `total` have halted.
    pub fn vcpu_halted(&self, total: usize) {
        let halted = self.halted.fetch_add(1, Ordering::SeqCst) + 1;
        if halted >= total {
            self.report(VmExit::AllVcpusHalted);
        }
    }

    /// Blocks until an exit is reported and returns it.
    pub fn wait(&self) -> VmExit {
        let mut slot = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(exit) = slot.clone() {
                return exit;
            }
            slot = self.ended.wait(slot).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until an exit is reported or `limit` has passed; whether one
    /// was.
    pub fn wait_for(&self, limit: Duration) -> bool {
        let slot = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        let (slot, _) = self
            .ended
            .wait_timeout_while(slot, limit, |slot| slot.is_none())
            .unwrap_or_else(|p| p.into_inner());
        slot.is_some()
    }

    /// The recorded exit, if any.
    pub fn get(&self) -> Option<VmExit> {
        self.exit.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn wait_for_returns_at_the_exit_or_after_the_limit() {
        let state = Arc::new(ExitState::new());
        assert!(!state.wait_for(Duration::from_millis(10)));
        let reporter = {
            let state = state.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                state.report(VmExit::Reset);
            })
        };
        assert!(state.wait_for(Duration::from_secs(60)));
        assert_eq!(state.get(), Some(VmExit::Reset));
        reporter.join().unwrap();
        assert!(state.wait_for(Duration::ZERO));
    }

    #[test]
    fn first_exit_wins_and_wakes_waiter() {
        let state = Arc::new(ExitState::new());
        let waiter = {
            let state = state.clone();
            std::thread::spawn(move || state.wait())
        };
        state.report(VmExit::Reset);
        state.report(VmExit::TripleFault { cpu: 0 });
        assert_eq!(waiter.join().unwrap(), VmExit::Reset);
        assert!(state.should_stop());
    }

    #[test]
    fn all_halted_only_after_every_vcpu() {
        let state = ExitState::new();
        state.vcpu_halted(2);
        assert_eq!(state.get(), None);
        state.vcpu_halted(2);
        assert_eq!(state.get(), Some(VmExit::AllVcpusHalted));
    }
}
