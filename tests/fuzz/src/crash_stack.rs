//! An alternate signal stack for libFuzzer's crash handler.
//!
//! libFuzzer installs its SIGSEGV handler with `SA_ONSTACK`, but nothing in
//! a target built without a sanitizer gives the thread an alternate stack
//! (libFuzzer's C++ `main` runs before, and instead of, Rust's runtime set-up,
//! which would). A stack overflow in the code under test then faults again
//! while the kernel pushes the handler's frame, and the process dies of
//! SIGSEGV with no "deadly signal" report and no crash input saved: a silent
//! exit that says nothing about the input. With an alternate stack the
//! handler runs, prints its report and writes the input to the artifacts.
//!
//! libFuzzer keeps `SA_ONSTACK` only when the disposition it replaces had
//! it, so [`install`] (called from the target's `init`, which libFuzzer
//! runs before it installs its handlers) also sets the default disposition
//! with `SA_ONSTACK` for the crash signals.

use std::sync::Once;

/// Size of the alternate stack: libFuzzer's handler prints a report and
/// writes a file; 256 KiB leaves it ample room.
const ALT_STACK_SIZE: usize = 256 * 1024;

/// The signals libFuzzer reports as crashes; SIGSEGV and SIGBUS are the
/// ones a stack overflow raises, SIGABRT the one a handler may raise next.
const CRASH_SIGNALS: [libc::c_int; 5] = [
    libc::SIGSEGV,
    libc::SIGBUS,
    libc::SIGABRT,
    libc::SIGILL,
    libc::SIGFPE,
];

/// Gives the calling thread (libFuzzer runs inputs on the main thread) an
/// alternate signal stack and marks the crash signals' dispositions
/// `SA_ONSTACK`, once. Call it from the target's `init`.
///
/// # Panics
/// When the kernel refuses the stack or a disposition (it never does): a
/// target that cannot report its crashes must not run.
pub fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Leaked on purpose: the stack must live as long as the thread.
        let stack: &'static mut [u8] = Box::leak(vec![0u8; ALT_STACK_SIZE].into_boxed_slice());
        let alt = libc::stack_t {
            ss_sp: stack.as_mut_ptr().cast(),
            ss_flags: 0,
            ss_size: stack.len(),
        };
        // SAFETY: `alt` describes a live, writable buffer of `ss_size` bytes
        // that is never freed; a null old-stack pointer is allowed.
        let rc = unsafe { libc::sigaltstack(&alt, std::ptr::null_mut()) };
        assert_eq!(rc, 0, "sigaltstack: {}", std::io::Error::last_os_error());
        for signal in CRASH_SIGNALS {
            // SAFETY: an all-zero sigaction is a valid value (SIG_DFL, empty
            // mask); it is filled in below before use.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            action.sa_sigaction = libc::SIG_DFL;
            action.sa_flags = libc::SA_ONSTACK;
            // SAFETY: `action` is a valid disposition (the default action,
            // no handler code runs) and the old-action pointer may be null.
            let rc = unsafe { libc::sigaction(signal, &action, std::ptr::null_mut()) };
            assert_eq!(
                rc,
                0,
                "sigaction({signal}): {}",
                std::io::Error::last_os_error()
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_sets_an_enabled_alternate_stack() {
        install();
        let mut current = libc::stack_t {
            ss_sp: std::ptr::null_mut(),
            ss_flags: 0,
            ss_size: 0,
        };
        // SAFETY: a null new stack only queries; `current` is writable.
        let rc = unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
        assert_eq!(rc, 0);
        assert_eq!(current.ss_flags & libc::SS_DISABLE, 0);
        assert_eq!(current.ss_size, ALT_STACK_SIZE);
        for signal in CRASH_SIGNALS {
            // SAFETY: zeroed is a valid sigaction to be overwritten.
            let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
            // SAFETY: a null new action only queries into `action`.
            let rc = unsafe { libc::sigaction(signal, std::ptr::null(), &mut action) };
            assert_eq!(rc, 0);
            assert_ne!(action.sa_flags & libc::SA_ONSTACK, 0, "signal {signal}");
        }
    }
}
