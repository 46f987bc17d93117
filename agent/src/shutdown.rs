//! Every way out of the agent ends the VM.
//!
//! - Success: `sync` and `reboot(RB_AUTOBOOT)`. The kernel is booted with
//!   `reboot=k`, so that pulses the i8042 reset line and the VMM exits 0.
//!   There is no ACPI, so a real power-off would only halt the CPUs; a
//!   power-off request therefore also reboots.
//! - Failure: `sync` and exit. PID 1 exiting makes the kernel panic
//!   ("Attempted to kill init!"), which with `panic=-1` (and the kernel's
//!   `CONFIG_PANIC_TIMEOUT=-1`) reboots at once; the VMM sees the panic line
//!   on the console and exits non-zero. A failing agent thus never looks
//!   like a clean run, and never hangs the VM.

use nix::sys::reboot::{reboot, RebootMode};
use nix::unistd::sync;

use crate::config::Action;
use crate::console;

/// Exit status of the agent when it fails (shows in the kernel's panic line
/// as `exitcode=0x00000100`).
pub const FAILURE_EXIT_CODE: i32 = 1;

/// Ends the VM cleanly after a successful run.
pub fn end_vm(action: Action) -> ! {
    tracing::info!(
        "{}={} done: syncing and rebooting (ends the VM)",
        crate::config::ACTION_VAR,
        action.name()
    );
    sync();
    match reboot(RebootMode::RB_AUTOBOOT) {
        Ok(never) => match never {},
        Err(errno) => {
            console::print_line(&format!("vmrun-agent: error: reboot failed: {errno}"));
            fail()
        }
    }
}

/// Ends the VM as a failure: syncs and exits PID 1 (kernel panic, reboot).
pub fn fail() -> ! {
    sync();
    std::process::exit(FAILURE_EXIT_CODE)
}
