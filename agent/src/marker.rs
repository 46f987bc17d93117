//! Boot-timer markers (contract 2): one byte written with `outb` to
//! [`vmrun_protocol::marker::PORT`]; the VMM timestamps it.
//!
//! Port access comes from `ioperm(2)`, which is per thread (threads and
//! children created afterwards inherit it), so each thread asks for it on
//! its first write. A kernel without `CONFIG_X86_IOPL_IOPERM` makes the
//! markers a no-op with one warning, never an error: they only time the boot.
//! (Processes the agent later execs for containers must not keep the
//! permission: drop it with `ioperm(PORT, 1, 0)` in the child before exec.)

use std::cell::Cell;

pub use vmrun_protocol::marker::Marker;
use vmrun_protocol::marker::PORT;

thread_local! {
    /// `None` until this thread tried `ioperm`, then whether it worked.
    static PORT_ACCESS: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Writes `marker` to the boot-timer port (best effort).
pub fn write(marker: Marker) {
    if !port_access() {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: this thread holds I/O permission for exactly PORT (ioperm
    // succeeded); `out` to it touches no memory, stack or flags. The VMM
    // owns the port and only records the byte.
    unsafe {
        core::arch::asm!(
            "out dx, al",
            in("dx") PORT,
            in("al") marker as u8,
            options(nomem, nostack, preserves_flags)
        );
    }
}

/// Gives up this thread's access to [`PORT`] (and stops it from asking
/// again), so processes cloned from this thread cannot write markers.
pub fn drop_port_access() {
    PORT_ACCESS.with(|cell| cell.set(Some(false)));
    // SAFETY: ioperm only changes this thread's I/O permission bitmap; the
    // arguments are plain integers. Turning access off needs no privilege
    // and cannot fail in a way that matters (no access is the goal).
    let _ = unsafe { libc::ioperm(libc::c_ulong::from(PORT), 1, 0) };
}

/// Asks once per thread for access to [`PORT`].
fn port_access() -> bool {
    PORT_ACCESS.with(|cell| {
        if let Some(ok) = cell.get() {
            return ok;
        }
        // SAFETY: ioperm only changes this thread's I/O permission bitmap;
        // the arguments are plain integers.
        let rc = unsafe { libc::ioperm(libc::c_ulong::from(PORT), 1, 1) };
        let ok = rc == 0;
        if !ok {
            // Logging may not be set up yet (InitReached is the first thing
            // PID 1 does): write to stderr, which the kernel opened on the
            // console.
            eprintln!(
                "vmrun-agent: warning: no boot-timer markers: ioperm(0x{PORT:x}) failed: {}",
                std::io::Error::last_os_error()
            );
        }
        cell.set(Some(ok));
        ok
    })
}
