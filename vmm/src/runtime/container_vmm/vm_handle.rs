//! The microVM of a container: built with its devices, run on a thread of
//! its own, and joined exactly once (its outcome kept for every caller).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::level_filters::LevelFilter;
use vmrun_protocol::GUEST_CID;
use vmrun_virtio::{VirtioDevice, Vsock, VsockHost};

use super::error::ContainerRunError;
use crate::exit::{ExitState, VmExit};
use crate::machine::builder::MachineBuilder;
use crate::machine::{CleanExit, RunError};
use crate::runtime::console_tail::ConsoleTail;
use crate::timings::Timings;

/// The kernel command-line word that makes the agent serve the host.
pub const SERVE_CMDLINE_WORD: &str = "vmrun_action=serve";

/// The agent's log level for a VMM logging up to `vmm_level`: `vmrun
/// --debug` turns on the agent's debug log on the guest console too
/// (`--console-log` keeps it); otherwise the agent's default, which is
/// warnings only while it serves containers.
fn agent_log_word(vmm_level: LevelFilter) -> Option<&'static str> {
    (vmm_level >= LevelFilter::DEBUG).then_some("vmrun_log=debug")
}

/// A running microVM.
#[derive(Debug)]
pub struct VmHandle {
    exit: Arc<ExitState>,
    thread: Mutex<Option<JoinHandle<Result<CleanExit, RunError>>>>,
    outcome: Mutex<Option<Result<CleanExit, RunError>>>,
}

impl VmHandle {
    /// Builds the VM (vsock with the guest CID, then `devices`, the kernel
    /// with `vmrun_action=serve`) and starts it on its own thread.
    pub fn start(
        machine: MachineBuilder,
        devices: Vec<Box<dyn VirtioDevice>>,
        console: &ConsoleTail,
        timings: Arc<Timings>,
    ) -> Result<(Self, VsockHost), ContainerRunError> {
        let vsock = Vsock::new(GUEST_CID).map_err(ContainerRunError::Vsock)?;
        let host = vsock.host();
        let mut machine = machine
            .console(Box::new(console.clone()))
            .timings(timings)
            .cmdline_word(SERVE_CMDLINE_WORD)
            .virtio(Box::new(vsock));
        if let Some(word) = agent_log_word(LevelFilter::current()) {
            machine = machine.cmdline_word(word);
        }
        for device in devices {
            machine = machine.virtio(device);
        }
        let machine = machine.build()?;
        let exit = machine.exit_state().clone();
        let thread = std::thread::Builder::new()
            .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
            .name("vm".into())
            .spawn(move || {
                // The vCPU threads and device workers it starts inherit
                // it under their own allow-lists.
                crate::seccomp::install_host_or_warn("vm");
                machine.run()
            })
            .map_err(|e| ContainerRunError::Io("start the VM thread", e))?;
        let handle = Self {
            exit,
            thread: Mutex::new(Some(thread)),
            outcome: Mutex::new(None),
        };
        Ok((handle, host))
    }

    /// Whether the VM has ended (or been told to stop).
    pub fn ended(&self) -> bool {
        self.exit.should_stop()
    }

    /// Waits for the VM thread (stopping the VM first if asked to) and
    /// returns its outcome; later calls return the same outcome.
    pub fn join(&self, stop: bool) -> Result<CleanExit, RunError> {
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(done) = outcome.as_ref() {
            return done.clone();
        }
        if stop {
            self.exit.report(VmExit::Stopped);
        }
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let result = match thread.map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(RunError::ThreadPanicked(1)),
            None => Ok(CleanExit::Stopped),
        };
        *outcome = Some(result.clone());
        result
    }

    /// Waits up to `limit` for the guest to end by itself, then stops it.
    pub fn join_within(&self, limit: Duration) -> Result<CleanExit, RunError> {
        if !self.exit.wait_for(limit) {
            tracing::warn!("the guest did not power off within {limit:?}: stopping it");
        }
        self.join(true)
    }

    /// When a request failed because the microVM itself went down, the
    /// VM's own reason (triple fault, kernel panic, power-off) is the error
    /// to report, not the lost connection: waits up to `grace` for the VM
    /// to be seen ending.
    pub fn failure_or(&self, err: ContainerRunError, grace: Duration) -> ContainerRunError {
        if !self.exit.wait_for(grace) {
            return err;
        }
        match self.join(false) {
            Ok(exit) => ContainerRunError::VmEndedEarly(format!("it powered off: {exit:?}")),
            Err(e) => ContainerRunError::Vm(e),
        }
    }
}

impl Drop for VmHandle {
    fn drop(&mut self) {
        // Error paths: never leave a VM running behind the caller.
        let _ = self.join(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_logs_debug_only_when_the_vmm_does() {
        assert_eq!(agent_log_word(LevelFilter::DEBUG), Some("vmrun_log=debug"));
        assert_eq!(agent_log_word(LevelFilter::TRACE), Some("vmrun_log=debug"));
        assert_eq!(agent_log_word(LevelFilter::INFO), None);
        assert_eq!(agent_log_word(LevelFilter::OFF), None);
    }
}
