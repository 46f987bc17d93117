//! What the VMM process gives up before its guest runs: privileges it
//! could gain by exec (no_new_privs) and descriptors it inherited without
//! needing them (a client's pipes, sockets or files leaked through
//! `vmrun create` must not live on in a process a guest talks to).

use std::io;
use std::os::fd::RawFd;

/// Sets no_new_privs on the calling thread (inherited by every thread and
/// process it starts afterwards): call while the process has one thread.
pub fn set_no_new_privs() -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only and changes
    // nothing but this thread's flag.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Marks every descriptor from `first` on close-on-exec, so that the
/// program about to be exec'd starts without them. Async-signal-safe (for
/// a `pre_exec` closure): close_range(2), else fcntl(2) on each number
/// below the descriptor limit.
pub fn cloexec_from(first: RawFd) {
    let Ok(first) = libc::c_uint::try_from(first) else {
        return;
    };
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors of this process; it takes integer arguments.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if rc == 0 {
        return;
    }
    // Kernels before 5.11: one fcntl per possible descriptor.
    // SAFETY: sysconf takes an integer and reads a limit.
    let limit = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let limit = RawFd::try_from(limit.clamp(0, 65_536)).unwrap_or(1024);
    for fd in (first as RawFd)..limit {
        // SAFETY: fcntl on a number that may not be open fails with EBADF
        // and changes nothing; on an open one it sets FD_CLOEXEC.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn a_child_keeps_only_the_descriptors_below_the_first() {
        let file = tempfile::tempfile().unwrap();
        let leaked = file.as_raw_fd();
        let mut command = Command::new("sh");
        // fd 5 without close-on-exec: inherited unless marked.
        command.args([
            "-c",
            "ls /proc/self/fd/5 2>/dev/null && echo open || echo closed",
        ]);
        let run = |command: &mut Command, harden: bool| {
            // SAFETY: dup2, fcntl and cloexec_from are async-signal-safe.
            unsafe {
                command.pre_exec(move || {
                    if libc::dup2(leaked, 5) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    // When the temp file already is fd 5, dup2 keeps its
                    // close-on-exec flag: clear it either way.
                    if libc::fcntl(5, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                    if harden {
                        cloexec_from(3);
                    }
                    Ok(())
                });
            }
            let out = command.output().unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert!(run(&mut command, false).ends_with("open"));
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "ls /proc/self/fd/5 2>/dev/null && echo open || echo closed",
        ]);
        assert_eq!(run(&mut command, true), "closed");
    }

    #[test]
    fn no_new_privs_is_set_for_the_thread_and_its_children() {
        std::thread::spawn(|| {
            set_no_new_privs().unwrap();
            let out = Command::new("grep")
                .args(["^NoNewPrivs:", "/proc/self/status"])
                .output()
                .unwrap();
            let line = String::from_utf8_lossy(&out.stdout).to_string();
            assert_eq!(line.split_whitespace().last(), Some("1"), "{line}");
        })
        .join()
        .unwrap();
    }
}
