//! An agent panic ends the VM instead of hanging it.
//!
//! The hook prints the panic to the console, syncs and exits the whole
//! process at once (`_exit`, from whichever thread panicked). As PID 1 that
//! panics the kernel, which reboots immediately (`panic=-1`), and the VMM
//! reports the guest panic as a non-zero exit (see [`crate::shutdown`]).

use std::io::Write;

use nix::unistd::sync;

/// Exit status of PID 1 after a panic (`exitcode=0x00006500` in the
/// kernel's "Attempted to kill init!" line).
pub const PANIC_EXIT_CODE: i32 = 101;

/// Installs the hook. Only for PID 1: it ends the process on any panic.
pub fn install_hook() {
    std::panic::set_hook(Box::new(|info| {
        // Stderr is unbuffered and reentrant, so this works even if the
        // panicking thread held the lock.
        let _ = writeln!(std::io::stderr(), "vmrun-agent: PANIC: {info}");
        sync();
        // SAFETY: _exit ends the process without unwinding or running
        // destructors; nothing after this point relies on either.
        unsafe { libc::_exit(PANIC_EXIT_CODE) }
    }));
}
