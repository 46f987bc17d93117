//! How a process (a container's init or an exec'd process) ended, or why
//! it never ran: set once, waited for by any number of `Wait` requests.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use vmrun_protocol::ExitStatus;

/// How a process ended, or why it never ran; set once.
#[derive(Debug, Default)]
pub struct ExitCell {
    outcome: Mutex<Option<Result<ExitStatus, String>>>,
    changed: Condvar,
}

impl ExitCell {
    fn lock(&self) -> MutexGuard<'_, Option<Result<ExitStatus, String>>> {
        self.outcome
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records the outcome; later calls are ignored (the first one wins).
    pub fn set(&self, outcome: Result<ExitStatus, String>) {
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(outcome);
            self.changed.notify_all();
        }
    }

    /// The outcome, if there is one yet.
    pub fn get(&self) -> Option<Result<ExitStatus, String>> {
        self.lock().clone()
    }

    /// Blocks until there is an outcome.
    pub fn wait(&self) -> Result<ExitStatus, String> {
        let mut slot = self.lock();
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.clone();
            }
            slot = self
                .changed
                .wait(slot)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// Blocks up to `timeout`; `false` if there is still no outcome.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let slot = self.lock();
        let (slot, _) = self
            .changed
            .wait_timeout_while(slot, timeout, |s| s.is_none())
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        slot.is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_first_outcome_wins_and_waiters_see_it() {
        let cell = Arc::new(ExitCell::default());
        assert!(cell.get().is_none());
        assert!(!cell.wait_timeout(Duration::ZERO));
        let waiter = {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || cell.wait())
        };
        cell.set(Ok(ExitStatus::Code(42)));
        cell.set(Err("too late".into()));
        assert_eq!(waiter.join().unwrap(), Ok(ExitStatus::Code(42)));
        assert_eq!(cell.get(), Some(Ok(ExitStatus::Code(42))));
        assert!(cell.wait_timeout(Duration::ZERO));
    }
}
