//! PID 1 reaps every child: orphans re-parented to init, and the agent's own
//! children.
//!
//! SIGCHLD is blocked process-wide and read from a signalfd on a dedicated
//! thread, which drains `waitpid(-1, WNOHANG)` on each notification. Because
//! this thread reaps *every* child, code that starts a process must not call
//! `Child::wait` (it would race and get ECHILD); it asks [`Reaper::watch`] for
//! the exit status instead. Statuses that nobody watches yet are kept (a
//! bounded number), so watching after a fast child already exited still works.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use vmrun_isolation::signal::{wait, Ended};

/// How many unwatched exit statuses are kept (orphans nobody asks about).
pub const MAX_UNCLAIMED: usize = 1024;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// Exited with this status.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
}

impl ChildExit {
    /// The outcome of a terminated child.
    pub fn from_ended(ended: Ended) -> Self {
        match ended {
            Ended::Exited(code) => Self::Exited(code),
            Ended::Signaled(signal) => Self::Signaled(signal),
        }
    }

    /// The status a shell (and runc's callers) report: the exit code, or
    /// 128 + the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Exited(code) => code,
            Self::Signaled(signal) => 128 + signal,
        }
    }
}

/// Exit statuses waiting for a watcher, and watchers waiting for a status.
#[derive(Debug, Default)]
struct Exits {
    watchers: HashMap<Pid, Sender<ChildExit>>,
    unclaimed: VecDeque<(Pid, ChildExit)>,
}

impl Exits {
    fn record(&mut self, pid: Pid, exit: ChildExit) {
        if let Some(watcher) = self.watchers.remove(&pid) {
            // The watcher may have given up (dropped its receiver): fine.
            let _ = watcher.send(exit);
            return;
        }
        tracing::debug!("reaped pid {pid}: {exit:?}");
        if self.unclaimed.len() >= MAX_UNCLAIMED {
            self.unclaimed.pop_front();
        }
        self.unclaimed.push_back((pid, exit));
    }

    fn watch(&mut self, pid: Pid) -> Receiver<ChildExit> {
        let (sender, receiver) = channel();
        match self.unclaimed.iter().position(|(p, _)| *p == pid) {
            Some(index) => {
                if let Some((_, exit)) = self.unclaimed.remove(index) {
                    let _ = sender.send(exit);
                }
            }
            None => {
                self.watchers.insert(pid, sender);
            }
        }
        receiver
    }
}

/// Handle on the reaper thread.
#[derive(Debug, Clone)]
pub struct Reaper {
    exits: Arc<Mutex<Exits>>,
}

impl Reaper {
    /// Blocks SIGCHLD and starts the reaper thread.
    ///
    /// Must be called while the calling thread is the only one, so that
    /// every later thread inherits the blocked SIGCHLD (otherwise a thread
    /// could consume it and the signalfd would miss it). Children started
    /// with `std::process::Command` get an empty signal mask.
    pub fn start() -> Result<Self> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.thread_block().context("blocking SIGCHLD")?;
        let signals =
            SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC).context("creating a signalfd")?;
        let reaper = Self {
            exits: Arc::default(),
        };
        let exits = Arc::clone(&reaper.exits);
        thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                let Err(err) = reap_forever(signals, &exits);
                // Without a reaper zombies pile up: treat it as fatal.
                crate::console::print_line(&format!("vmrun-agent: error: reaper: {err:#}"));
                crate::shutdown::fail()
            })
            .context("spawning the reaper thread")?;
        Ok(reaper)
    }

    /// Returns a receiver that gets `pid`'s exit status (at once if the child
    /// already ended). Call it right after starting the child.
    pub fn watch(&self, pid: Pid) -> Receiver<ChildExit> {
        lock(&self.exits).watch(pid)
    }
}

fn lock(exits: &Mutex<Exits>) -> MutexGuard<'_, Exits> {
    // The state stays consistent even if a holder panicked (and a panic
    // ends the agent anyway).
    exits
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reap_forever(signals: SignalFd, exits: &Mutex<Exits>) -> Result<Infallible> {
    loop {
        // Children may have ended before the first notification.
        reap_ready(exits)?;
        match signals.read_signal() {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno).context("reading SIGCHLD from the signalfd"),
        }
    }
}

/// Reaps every child that has ended, without blocking.
fn reap_ready(exits: &Mutex<Exits>) -> Result<()> {
    loop {
        // Raw statuses: nix's WaitStatus has no realtime signals (it would
        // reap a child killed by SIGRTMIN+n and fail with EINVAL).
        match wait(None, libc::WNOHANG) {
            Ok(None) | Err(Errno::ECHILD) => return Ok(()),
            Ok(Some((pid, ended))) => {
                if let Some(ended) = ended {
                    lock(exits).record(pid, ChildExit::from_ended(ended));
                }
            }
            Err(Errno::EINTR) => {}
            Err(errno) => return Err(errno).context("waitpid(-1)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_shell_conventions() {
        assert_eq!(ChildExit::Exited(0).exit_code(), 0);
        assert_eq!(ChildExit::Exited(42).exit_code(), 42);
        assert_eq!(ChildExit::Signaled(9).exit_code(), 137);
        assert_eq!(ChildExit::Signaled(15).exit_code(), 143);
    }

    #[test]
    fn decodes_wait_statuses_realtime_signals_included() {
        let decode = |raw: i32| Ended::from_raw(raw).map(ChildExit::from_ended);
        assert_eq!(decode(3 << 8), Some(ChildExit::Exited(3)));
        assert_eq!(decode(libc::SIGKILL), Some(ChildExit::Signaled(9)));
        // SIGRTMIN+3, which nix's WaitStatus cannot hold.
        assert_eq!(decode(37), Some(ChildExit::Signaled(37)));
        assert_eq!(decode(37).map(ChildExit::exit_code), Some(165));
        // Stopped by SIGSTOP.
        assert_eq!(decode(0x7f | (libc::SIGSTOP << 8)), None);
    }

    #[test]
    fn a_watcher_registered_first_gets_the_status() {
        let mut exits = Exits::default();
        let rx = exits.watch(Pid::from_raw(10));
        assert!(rx.try_recv().is_err());
        exits.record(Pid::from_raw(11), ChildExit::Exited(1));
        assert!(rx.try_recv().is_err(), "another pid's exit was delivered");
        exits.record(Pid::from_raw(10), ChildExit::Signaled(15));
        assert_eq!(rx.try_recv().unwrap(), ChildExit::Signaled(15));
        assert!(exits.watchers.is_empty());
    }

    #[test]
    fn a_child_that_ended_before_the_watch_is_not_lost() {
        let mut exits = Exits::default();
        exits.record(Pid::from_raw(20), ChildExit::Exited(42));
        let rx = exits.watch(Pid::from_raw(20));
        assert_eq!(rx.try_recv().unwrap(), ChildExit::Exited(42));
        assert!(exits.unclaimed.is_empty());
    }

    #[test]
    fn unclaimed_statuses_are_bounded() {
        let mut exits = Exits::default();
        for pid in 1..=(MAX_UNCLAIMED as i32 + 10) {
            exits.record(Pid::from_raw(pid), ChildExit::Exited(0));
        }
        assert_eq!(exits.unclaimed.len(), MAX_UNCLAIMED);
        // The oldest were dropped, the newest kept.
        assert!(exits.watch(Pid::from_raw(1)).try_recv().is_err());
        let newest = Pid::from_raw(MAX_UNCLAIMED as i32 + 10);
        assert_eq!(
            exits.watch(newest).try_recv().unwrap(),
            ChildExit::Exited(0)
        );
    }
}
