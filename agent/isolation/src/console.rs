//! The pty of `process.terminal`: receiving the master libcontainer
//! creates, and setting its window size.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use crate::IsolationError;

/// A listening console socket; libcontainer's init sends the master to it.
pub(crate) struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Binds the socket at `path` (removed again on drop).
    pub(crate) fn bind(path: &Path) -> Result<Self, IsolationError> {
        let listener = UnixListener::bind(path)
            .map_err(|e| IsolationError::io(format!("binding {}", path.display()), e))?;
        Ok(Self {
            listener,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts libcontainer's connection and takes the pty master from it.
    pub(crate) fn receive_master(&self) -> Result<OwnedFd, IsolationError> {
        let (stream, _) = self
            .listener
            .accept()
            .map_err(|e| IsolationError::io("accepting the console socket connection", e))?;
        let mut name = [0u8; 64];
        let mut iov = [IoSliceMut::new(&mut name)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| IsolationError::io("receiving the pty master", e.into()))?;
        let cmsgs = msg
            .cmsgs()
            .map_err(|e| IsolationError::io("reading the pty master message", e.into()))?;
        for cmsg in cmsgs {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                if let Some(&fd) = fds.first() {
                    // SAFETY: the kernel just installed `fd` in our table for
                    // this message (SCM_RIGHTS); nothing else owns it.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        Err(IsolationError::io(
            "receiving the pty master",
            std::io::Error::new(std::io::ErrorKind::InvalidData, "no fd in the message"),
        ))
    }
}

/// Sets the window size of the pty whose master is `master` (the slave
/// sees it: `TIOCGWINSZ`, `stty size`).
pub fn set_window_size(master: &OwnedFd, rows: u16, cols: u16) -> std::io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `struct winsize` from the pointer, which
    // points at a live, initialised value; the fd is owned and open.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `process.consoleSize` as `(rows, cols)` when the spec has a terminal
/// and a size; an error naming the field when it does not fit a `u16`.
pub(crate) fn console_size(
    process: &crate::oci_spec::runtime::Process,
) -> Result<Option<(u16, u16)>, IsolationError> {
    let Some(size) = process.console_size() else {
        return Ok(None);
    };
    let fit = |field: &str, value: u64| {
        u16::try_from(value).map_err(|_| {
            IsolationError::invalid(
                format!("process.consoleSize.{field}"),
                format!("{value} is larger than {}", u16::MAX),
            )
        })
    };
    Ok(Some((
        fit("height", size.height())?,
        fit("width", size.width())?,
    )))
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
