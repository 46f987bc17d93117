//! The caller's end of `--console-socket` in tests: a listening unix
//! socket that receives the pty master (SCM_RIGHTS), as conmon and
//! containerd's shim do.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// A listening console socket.
#[derive(Debug)]
pub struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    /// Binds a console socket at `path`.
    pub fn bind(path: &Path) -> io::Result<Self> {
        let _ = std::fs::remove_file(path);
        Ok(Self {
            path: path.to_path_buf(),
            listener: UnixListener::bind(path)?,
        })
    }

    /// The socket's path (for `--console-socket`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts one connection and receives the pty master sent on it;
    /// returns the master and the name sent with it.
    pub fn receive_master(&self) -> io::Result<(File, String)> {
        let (conn, _) = self.listener.accept()?;
        receive_fd(&conn)
    }
}

fn receive_fd(conn: &UnixStream) -> io::Result<(File, String)> {
    let mut buf = [0u8; 256];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one descriptor's control message (CMSG_SPACE(sizeof(int)) <= 32).
    let mut control = [0u64; 4];
    // SAFETY: msghdr is plain data; every pointer we set below is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg writes into `buf` and `control` through `msg`, both
    // live and sized as declared.
    let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: CMSG_FIRSTHDR reads the msghdr recvmsg just filled in.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    if cmsg.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no descriptor came with the console message",
        ));
    }
    // SAFETY: `cmsg` points into `control`; it is an SCM_RIGHTS message
    // (checked) whose data holds at least one int.
    let fd = unsafe {
        if (*cmsg).cmsg_level != libc::SOL_SOCKET || (*cmsg).cmsg_type != libc::SCM_RIGHTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the console message carried no SCM_RIGHTS",
            ));
        }
        std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>())
    };
    let name = String::from_utf8_lossy(&buf[..usize::try_from(n).unwrap_or(0)]).into_owned();
    // SAFETY: the kernel just installed `fd` for us alone.
    Ok((unsafe { File::from_raw_fd(fd) }, name))
}
