//! Signals by number, realtime ones included.
//!
//! nix's `Signal` has no realtime signals (SIGRTMIN..SIGRTMAX), yet runc
//! passes any signal number on (systemd in a container stops on
//! SIGRTMIN+3), and a process can end by one. nix's `waitpid` even reaps
//! such a child and then fails with EINVAL, losing its status: waiting
//! here reads the raw status instead.

use nix::errno::Errno;
use nix::unistd::Pid;

/// The highest signal number (SIGRTMAX on Linux).
pub const MAX_SIGNAL: i32 = 64;

/// Is `signal` a signal number (1..=64)?
pub fn is_signal(signal: i32) -> bool {
    (1..=MAX_SIGNAL).contains(&signal)
}

/// Sends `signal` (1..=64) to `pid`.
pub fn send(pid: Pid, signal: i32) -> Result<(), Errno> {
    if !is_signal(signal) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid.as_raw(), signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// How a child ended, from its raw wait status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// It called exit with this code.
    Exited(i32),
    /// It was killed by this signal number (realtime ones too).
    Signaled(i32),
}

impl Ended {
    /// The outcome in a raw wait status; `None` for a stop or continue.
    pub fn from_raw(status: i32) -> Option<Self> {
        if libc::WIFEXITED(status) {
            Some(Self::Exited(libc::WEXITSTATUS(status)))
        } else if libc::WIFSIGNALED(status) {
            Some(Self::Signaled(libc::WTERMSIG(status)))
        } else {
            None
        }
    }
}

/// `waitpid(pid, flags)` on the raw status: `Ok(None)` when nothing is
/// ready (WNOHANG), else the pid and how it ended (`None` for a stop or
/// continue notification).
pub fn wait(pid: Option<Pid>, flags: libc::c_int) -> Result<Option<(Pid, Option<Ended>)>, Errno> {
    let mut status: libc::c_int = 0;
    // SAFETY: `status` is a valid, exclusively borrowed out-pointer.
    let rc = unsafe { libc::waitpid(pid.map_or(-1, Pid::as_raw), &mut status, flags) };
    match rc {
        -1 => Err(Errno::last()),
        0 => Ok(None),
        child => Ok(Some((Pid::from_raw(child), Ended::from_raw(status)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    // The children are reaped by `wait` here, not by `Child::wait`.
    #[allow(clippy::zombie_processes)]
    #[test]
    fn a_child_killed_by_a_realtime_signal_is_reaped_with_its_number() {
        let child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let rtmin_plus_3 = libc::SIGRTMIN() + 3;
        send(pid, rtmin_plus_3).expect("kill");
        let (reaped, ended) = wait(Some(pid), 0).expect("waitpid").expect("a child");
        assert_eq!(reaped, pid);
        assert_eq!(ended, Some(Ended::Signaled(rtmin_plus_3)));
    }

    #[allow(clippy::zombie_processes)]
    #[test]
    fn exit_codes_and_bad_numbers() {
        let child = Command::new("sh")
            .args(["-c", "exit 42"])
            .spawn()
            .expect("sh");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        assert_eq!(
            wait(Some(pid), 0).expect("waitpid"),
            Some((pid, Some(Ended::Exited(42))))
        );
        assert_eq!(send(pid, 0), Err(Errno::EINVAL));
        assert_eq!(send(pid, 65), Err(Errno::EINVAL));
        assert!(is_signal(64) && !is_signal(-9));
    }
}
