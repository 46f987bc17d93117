//! Starting a detached helper process of vmrun's own: a re-executed
//! `vmrun <hidden verb>` in a session of its own (never a fork of a
//! threaded process), with a socketpair on fd 3 through which the parent
//! sends its configuration and hears back whether it is ready. The
//! container's VMM daemon (`create`) and a detached exec (`exec -d`) are
//! started this way; both outlive the command that started them.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The descriptor the helper finds its channel on.
pub const CHANNEL_FD: RawFd = 3;

/// Spawns `vmrun ARGS...` detached (new session), with the parent's stdio
/// or, with `null_stdio`, none of it; returns the child and the parent's
/// end of the channel.
pub fn spawn(args: &[OsString], null_stdio: bool) -> io::Result<(Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let mut command = Command::new(std::env::current_exe()?);
    command.args(args);
    if null_stdio {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
    }
    let channel = theirs.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe calls (dup2, setsid, close_range/fcntl) on
    // descriptors it owns.
    unsafe {
        command.pre_exec(move || {
            if libc::dup2(channel, CHANNEL_FD) < 0 || libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            // Only stdio and the channel reach the helper: nothing the
            // caller leaked to us lives on in a VMM.
            super::process_hardening::cloexec_from(CHANNEL_FD + 1);
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(theirs);
    Ok((child, ours))
}

/// In the helper: the channel to the parent.
///
/// # Safety
///
/// Call once, in a process started by [`spawn`] (fd 3 is the channel and
/// nothing else owns it).
pub unsafe fn take_channel() -> UnixStream {
    // SAFETY: the caller guarantees fd 3 is the channel, owned by nobody else.
    unsafe { UnixStream::from_raw_fd(CHANNEL_FD) }
}

/// Makes sure a child that failed is gone; describes how it ended.
pub fn reap(child: &mut Child) -> String {
    match child.try_wait() {
        Ok(Some(status)) => return status.to_string(),
        Ok(None) => {}
        Err(e) => return e.to_string(),
    }
    // It is about to exit after its error; give it a moment, then kill it.
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(20));
        if let Ok(Some(status)) = child.try_wait() {
            return status.to_string();
        }
    }
    let _ = child.kill();
    child
        .wait()
        .map(|s| s.to_string())
        .unwrap_or_else(|e| e.to_string())
}
