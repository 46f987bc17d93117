//! What happens when a filtered thread makes a call its filter does not
//! allow: the kernel sends it SIGSYS (SECCOMP_RET_TRAP) and this handler
//! writes one line naming the thread and the call to stderr and to the
//! `--log` file, then ends the process with [`SECCOMP_EXIT_CODE`].
//!
//! Everything here runs in a signal handler: no allocation, no locks, only
//! write(2), prctl(2) and _exit(2) (all on the filters' allow-lists).

use std::cell::Cell;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;

use super::ThreadKind;

/// Exit status of a VMM stopped by its seccomp filter: 128 + SIGSYS, as a
/// shell reports a process killed by that signal.
pub const SECCOMP_EXIT_CODE: i32 = 128 + libc::SIGSYS;

/// `si_code` of a SIGSYS sent by seccomp.
const SYS_SECCOMP: i32 = 1;
/// Offset of `si_syscall` in x86_64's `siginfo_t` (after signo, errno,
/// code, padding and the 8-byte `_call_addr`).
const SI_SYSCALL_OFFSET: usize = 24;

static LOG_FD: AtomicI32 = AtomicI32::new(-1);
static LOG_JSON: AtomicBool = AtomicBool::new(false);

thread_local! {
    static KIND: Cell<Option<ThreadKind>> = const { Cell::new(None) };
}

/// Records the calling thread's filter kind for the report.
pub fn set_thread_kind(kind: ThreadKind) {
    KIND.with(|k| k.set(Some(kind)));
}

/// Installs the SIGSYS handler (once per process).
pub fn install_handler() -> io::Result<()> {
    static RESULT: OnceLock<i32> = OnceLock::new();
    let errno = *RESULT.get_or_init(|| {
        if let Some(log) = crate::fatal_log::target() {
            LOG_FD.store(log.fd, Ordering::Relaxed);
            LOG_JSON.store(log.json, Ordering::Relaxed);
        }
        // SAFETY: a zeroed sigaction is valid; the handler has the
        // SA_SIGINFO signature and only makes async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigsys as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) == 0 {
                0
            } else {
                io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(libc::EINVAL)
            }
        }
    });
    if errno == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(errno))
    }
}

/// A fixed buffer a signal handler can format into.
struct Line {
    buf: [u8; 320],
    len: usize,
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if let Some(slot) = self.buf.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
        }
    }

    fn push_number(&mut self, n: i64) {
        if n < 0 {
            self.push(b"-");
        }
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n.unsigned_abs();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// A few calls' names, for a readable report (the number is always given).
fn syscall_name(nr: i64) -> &'static str {
    match nr {
        libc::SYS_execve => "execve",
        libc::SYS_execveat => "execveat",
        libc::SYS_fork => "fork",
        libc::SYS_clone => "clone",
        libc::SYS_clone3 => "clone3",
        libc::SYS_vfork => "vfork",
        libc::SYS_ptrace => "ptrace",
        libc::SYS_socket => "socket",
        libc::SYS_mount => "mount",
        libc::SYS_umount2 => "umount2",
        libc::SYS_setns => "setns",
        libc::SYS_unshare => "unshare",
        libc::SYS_kill => "kill",
        libc::SYS_chroot => "chroot",
        libc::SYS_pivot_root => "pivot_root",
        libc::SYS_bpf => "bpf",
        libc::SYS_init_module => "init_module",
        libc::SYS_finit_module => "finit_module",
        libc::SYS_reboot => "reboot",
        libc::SYS_process_vm_writev => "process_vm_writev",
        libc::SYS_process_vm_readv => "process_vm_readv",
        _ => "",
    }
}

/// The report line (without a newline) for call `nr` on thread `name`.
fn describe(line: &mut Line, kind: Option<ThreadKind>, name: &[u8], nr: i64) {
    line.push(b"seccomp: ");
    line.push(kind.map_or("a", ThreadKind::name).as_bytes());
    line.push(b" thread '");
    line.push(name);
    line.push(b"' made system call ");
    let known = syscall_name(nr);
    if !known.is_empty() {
        line.push(known.as_bytes());
        line.push(b" (");
        line.push_number(nr);
        line.push(b")");
    } else {
        line.push_number(nr);
    }
    line.push(b", which its filter does not allow; the VMM stops");
}

fn write_all(fd: i32, bytes: &[u8]) {
    // SAFETY: write(2) from a valid buffer; a short or failed write is
    // accepted (best effort, the process ends next).
    unsafe {
        libc::write(fd, bytes.as_ptr().cast(), bytes.len());
    }
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers;
    // for SIGSYS its si_syscall field is at SI_SYSCALL_OFFSET.
    let (code, nr) = unsafe {
        let code = (*info).si_code;
        let nr = info
            .cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<i32>()
            .read_unaligned();
        (code, nr)
    };
    if code != SYS_SECCOMP {
        return;
    }
    let mut name = [0u8; 17];
    // SAFETY: PR_GET_NAME writes at most 16 bytes plus a NUL into `name`.
    unsafe {
        libc::prctl(libc::PR_GET_NAME, name.as_mut_ptr(), 0, 0, 0);
    }
    let name_len = name.iter().position(|&b| b == 0).unwrap_or(16);
    let kind = KIND.try_with(Cell::get).ok().flatten();
    let mut message = Line {
        buf: [0; 320],
        len: 0,
    };
    describe(&mut message, kind, &name[..name_len], i64::from(nr));
    let mut out = Line {
        buf: [0; 320],
        len: 0,
    };
    out.push(b"vmrun: error: ");
    out.push(message.bytes());
    out.push(b"\n");
    write_all(2, out.bytes());
    let log = LOG_FD.load(Ordering::Relaxed);
    if log >= 0 {
        let mut entry = Line {
            buf: [0; 320],
            len: 0,
        };
        // The message holds no quotes or backslashes to escape.
        if LOG_JSON.load(Ordering::Relaxed) {
            entry.push(b"{\"level\":\"error\",\"msg\":\"");
            entry.push(message.bytes());
            entry.push(b"\"}\n");
        } else {
            entry.push(b"level=error msg=\"");
            entry.push(message.bytes());
            entry.push(b"\"\n");
        }
        write_all(log, entry.bytes());
    }
    // SAFETY: _exit ends the process without running anything else.
    unsafe { libc::_exit(SECCOMP_EXIT_CODE) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_thread_and_the_call() {
        let mut line = Line {
            buf: [0; 320],
            len: 0,
        };
        describe(
            &mut line,
            Some(ThreadKind::Vcpu),
            b"vcpu0",
            libc::SYS_execve,
        );
        assert_eq!(
            String::from_utf8_lossy(line.bytes()),
            "seccomp: vCPU thread 'vcpu0' made system call execve (59), which its filter does not allow; the VMM stops"
        );
        let mut line = Line {
            buf: [0; 320],
            len: 0,
        };
        describe(&mut line, None, b"x", 4242);
        assert!(String::from_utf8_lossy(line.bytes()).contains("'x' made system call 4242,"));
    }
}
