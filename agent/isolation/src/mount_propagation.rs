//! Per-mount propagation options (`shared`, `rslave`, `runbindable`, ...
//! in `mounts[].options`).
//!
//! libcontainer 0.7 parses these options but never applies them (its
//! fd-based mount flow sets no propagation), so a spec asking for a
//! `rshared` bind mount silently got a private one. We apply them
//! ourselves once the container is created and before it starts: by then
//! its init has made every mount and entered its root, and waits for the
//! start signal. A forked helper enters the container's mount namespace,
//! takes the container's root as its own and sets the propagation type on
//! each destination, in spec order.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::mount::MsFlags;
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult, Pid};

use crate::oci_spec::runtime::Spec;
use crate::IsolationError;

/// The propagation flags a mount option stands for, if it is one.
pub fn propagation_flags(option: &str) -> Option<MsFlags> {
    Some(match option {
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// One propagation change: `mounts[index]`'s destination gets `flags`.
#[derive(Debug)]
pub struct Change {
    index: usize,
    option: String,
    destination: CString,
    flags: MsFlags,
}

/// The propagation changes `spec` asks for, in order.
pub fn changes(spec: &Spec) -> Result<Vec<Change>, IsolationError> {
    let mut out = Vec::new();
    for (index, m) in spec.mounts().iter().flatten().enumerate() {
        for option in m.options().iter().flatten() {
            let Some(flags) = propagation_flags(option) else {
                continue;
            };
            let destination =
                CString::new(m.destination().as_os_str().as_bytes()).map_err(|_| {
                    IsolationError::invalid(format!("mounts[{index}].destination"), "contains NUL")
                })?;
            out.push(Change {
                index,
                option: option.clone(),
                destination,
                flags,
            });
        }
    }
    Ok(out)
}

/// Applies `changes` inside the created (not yet started) container whose
/// init is `pid`.
pub fn apply(pid: Pid, changes: &[Change]) -> Result<(), IsolationError> {
    if changes.is_empty() {
        return Ok(());
    }
    let io = |what: &str, e: Errno| IsolationError::io(what.to_owned(), std::io::Error::from(e));
    let ns_path = format!("/proc/{pid}/ns/mnt");
    let root_path = format!("/proc/{pid}/root");
    let ns = open(
        ns_path.as_str(),
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(&format!("opening {ns_path}"), e))?;
    let root = open(
        root_path.as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(&format!("opening {root_path}"), e))?;
    // SAFETY: `open` returned these fds and nothing else owns them.
    let (ns, root) = unsafe { (owned(ns), owned(root)) };
    let (read_end, write_end) = pipe().map_err(|e| io("pipe", e))?;
    // SAFETY: the child only makes raw system calls (setns, fchdir, chroot,
    // mount, write, _exit), which are async-signal-safe, so forking from a
    // multi-threaded caller is fine.
    match unsafe { fork() }.map_err(|e| io("fork", e))? {
        ForkResult::Child => {
            drop(read_end);
            let failed = in_child(&ns, &root, changes);
            let code = match failed {
                None => 0,
                Some((step, errno)) => {
                    let report = [step as i32, errno];
                    // SAFETY: writes 8 bytes from a live array to our pipe.
                    unsafe {
                        libc::write(write_end.as_raw_fd(), report.as_ptr().cast(), 8);
                    }
                    1
                }
            };
            // SAFETY: ends the forked child without running the parent's
            // atexit handlers or destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut buf = [0u8; 8];
            let got = nix::unistd::read(read_end.as_raw_fd(), &mut buf).unwrap_or(0);
            let status = loop {
                match waitpid(child, None) {
                    Err(Errno::EINTR) => continue,
                    other => break other,
                }
            };
            if matches!(status, Ok(WaitStatus::Exited(_, 0))) {
                return Ok(());
            }
            let step = i32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let errno = Errno::from_raw(i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]));
            Err(
                match usize::try_from(step).ok().and_then(|s| changes.get(s)) {
                    Some(c) if got == 8 => IsolationError::invalid(
                        format!("mounts[{}].options", c.index),
                        format!(
                            "cannot make {} {} in the container: {errno}",
                            c.destination.to_string_lossy(),
                            c.option
                        ),
                    ),
                    _ if got == 8 => io("entering the container's mount namespace", errno),
                    _ => io("applying mount propagation in the container", Errno::ECHILD),
                },
            )
        }
    }
}

/// SAFETY: `fd` must be a valid fd nobody else owns.
unsafe fn owned(fd: std::os::fd::RawFd) -> OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: guaranteed by the caller.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// In the forked child: enter the container's mount namespace and root,
/// apply the changes. Returns the failed step (-1 = entering) and errno.
fn in_child(ns: &OwnedFd, root: &OwnedFd, changes: &[Change]) -> Option<(isize, i32)> {
    let errno = || Errno::last_raw();
    // SAFETY: plain system calls on fds we own and NUL-terminated strings.
    unsafe {
        if libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNS) != 0
            || libc::fchdir(root.as_raw_fd()) != 0
            || libc::chroot(c".".as_ptr()) != 0
        {
            return Some((-1, errno()));
        }
        for (i, c) in changes.iter().enumerate() {
            let rc = libc::mount(
                std::ptr::null(),
                c.destination.as_ptr(),
                std::ptr::null(),
                c.flags.bits(),
                std::ptr::null(),
            );
            if rc != 0 {
                return Some((i as isize, errno()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec;

    #[test]
    fn propagation_options_become_changes_in_order() {
        let spec = parse_spec(
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"mounts":[
              {"destination":"/a","type":"tmpfs","source":"tmpfs","options":["nosuid","rshared"]},
              {"destination":"/b","type":"bind","source":"/tmp","options":["rbind","ro"]},
              {"destination":"/c","type":"bind","source":"/tmp","options":["bind","private","unbindable"]}
            ]}"#,
        )
        .unwrap();
        let got: Vec<(usize, String, MsFlags)> = changes(&spec)
            .unwrap()
            .into_iter()
            .map(|c| {
                (
                    c.index,
                    c.destination.to_string_lossy().into_owned(),
                    c.flags,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "/a".into(), MsFlags::MS_SHARED | MsFlags::MS_REC),
                (2, "/c".into(), MsFlags::MS_PRIVATE),
                (2, "/c".into(), MsFlags::MS_UNBINDABLE),
            ]
        );
    }
}
