//! One container of a VM: the VM's own (its "main" container: the only
//! one, or a pod's sandbox) or a pod member added later. Its status, the
//! relays of its init's output, its terminal, its exec sessions, and the
//! host pid that stands for it.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use super::execs::ExecTable;
use super::OUTPUT_DRAIN_TIMEOUT;
use crate::runtime::state::Status;
use crate::runtime::stdio::OutputRelay;

/// The init's output relays, finished when it exits.
#[derive(Debug)]
pub struct InitOutput {
    /// stdout.
    pub stdout: OutputRelay,
    /// stderr.
    pub stderr: OutputRelay,
}

/// A container of the VM (see the module docs).
#[derive(Debug)]
pub struct Slot {
    /// The container id.
    pub id: String,
    /// Its status as the VMM tracks it.
    pub status: Mutex<Status>,
    /// Whether `start` ran its process: a paused container resumes to
    /// `running` if so, else (paused while created, as runc allows) to
    /// `created`. Written under the `status` lock.
    started: AtomicBool,
    /// Its init's output relays (until it exited and they were drained).
    pub output: Mutex<Option<InitOutput>>,
    /// The terminal whose size the container's terminal follows.
    pub resize_source: Option<RawFd>,
    /// Keeps a host pty slave open while the container runs.
    pub pty: Option<OwnedFd>,
    /// Its exec sessions.
    pub execs: ExecTable,
    /// The host pid standing for it (the VMM, or a member's host process).
    pub host_pid: i32,
    /// Its init's pid in the guest.
    pub guest_pid: i32,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slot {
    /// A created container.
    pub fn created(
        id: &str,
        output: InitOutput,
        resize_source: Option<RawFd>,
        pty: Option<OwnedFd>,
        host_pid: i32,
        guest_pid: i32,
    ) -> Self {
        Self {
            id: id.to_owned(),
            status: Mutex::new(Status::Created),
            started: AtomicBool::new(false),
            output: Mutex::new(Some(output)),
            resize_source,
            pty,
            execs: ExecTable::default(),
            host_pid,
            guest_pid,
        }
    }

    /// Its status.
    pub fn status(&self) -> Status {
        *lock(&self.status)
    }

    /// Records that `start` ran its process (call under the `status` lock).
    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// The status a paused container resumes to.
    pub fn resumed_status(&self) -> Status {
        if self.started.load(Ordering::Acquire) {
            Status::Running
        } else {
            Status::Created
        }
    }

    /// Marks it stopped and waits (bounded) until everything its init
    /// wrote was delivered.
    pub fn stopped(&self) {
        *lock(&self.status) = Status::Stopped;
        if let Some(output) = lock(&self.output).take() {
            let deadline = Instant::now() + OUTPUT_DRAIN_TIMEOUT;
            output.stdout.finish(deadline);
            output.stderr.finish(deadline);
        }
    }

    /// The host pids standing for it: its own, then its exec sessions'.
    pub fn host_pids(&self) -> Vec<i32> {
        let mut pids = vec![self.host_pid];
        pids.extend(self.execs.client_pids());
        pids
    }
}
