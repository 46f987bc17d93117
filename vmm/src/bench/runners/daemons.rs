//! The client daemons a bench starts for its peers (the private containerd
//! of the `ctr-*` peers, the one of the `cri-*` peers): each started on
//! its first run, kept for every later run (so the runs time the client,
//! not the daemon's start), and torn down by [`Daemons::shutdown`] once
//! the rounds are over, or when the bench's context is dropped, on an
//! error too.

use std::sync::{Mutex, MutexGuard};

use super::containerd::{Flavour, PrivateContainerd};

/// One flavour's daemon: up, or why it could not be started (reported
/// again on every run; not retried).
type Slot = (Flavour, Result<PrivateContainerd, String>);

/// The bench's client daemons.
#[derive(Debug, Default)]
pub struct Daemons {
    slots: Mutex<Vec<Slot>>,
}

impl Daemons {
    fn slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `run` with the `flavour` daemon, which `start` makes on the first
    /// call; `Err` with why it could not be started.
    pub fn with<T>(
        &self,
        flavour: Flavour,
        start: impl FnOnce() -> Result<PrivateContainerd, String>,
        run: impl FnOnce(&PrivateContainerd) -> T,
    ) -> Result<T, String> {
        let mut slots = self.slots();
        let index = match slots.iter().position(|(f, _)| *f == flavour) {
            Some(i) => i,
            None => {
                slots.push((flavour, start()));
                slots.len() - 1
            }
        };
        match &slots[index].1 {
            Ok(daemon) => Ok(run(daemon)),
            Err(e) => Err(e.clone()),
        }
    }

    /// How many daemons are up.
    pub fn running(&self) -> usize {
        self.slots().iter().filter(|(_, s)| s.is_ok()).count()
    }

    /// Tears every daemon down (in the order they were started).
    pub fn shutdown(&self) {
        let slots: Vec<Slot> = std::mem::take(&mut *self.slots());
        drop(slots);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_start_is_reported_on_every_run_and_not_retried() {
        let daemons = Daemons::default();
        let mut starts = 0;
        for _ in 0..3 {
            let got = daemons.with(
                Flavour::Ctr,
                || {
                    starts += 1;
                    Err("containerd exited (exit status: 1); its log ends: boom".into())
                },
                |_| 7,
            );
            assert_eq!(
                got.unwrap_err(),
                "containerd exited (exit status: 1); its log ends: boom"
            );
        }
        assert_eq!(starts, 1);
        assert_eq!(daemons.running(), 0);
        daemons.shutdown();
        let again = daemons.with(Flavour::Ctr, || Err("second".into()), |_| 7);
        assert_eq!(again.unwrap_err(), "second", "a shutdown forgets the slot");
    }
}
