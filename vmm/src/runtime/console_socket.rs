//! `--console-socket`: the container's terminal on the host side, as runc
//! makes it. A host pty is opened; its master is sent over the caller's
//! unix socket with SCM_RIGHTS (payload: the pty's name); the slave stays
//! with the VMM, which relays it to the guest pty. The slave is raw (the
//! guest's pty does the line discipline) and becomes the VMM's
//! controlling terminal, so the caller's TIOCSWINSZ on the master reaches
//! the VMM as SIGWINCH (then the container's terminal is resized).

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use super::api::fd_passing::send_fds;

/// Errors making the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No pty could be opened.
    #[error("cannot open a pty")]
    OpenPty(#[source] io::Error),
    /// The slave could not be set up.
    #[error("cannot set up the pty")]
    Setup(#[source] io::Error),
    /// The console socket could not be reached or written.
    #[error("cannot send the pty master over the console socket {0}")]
    Send(PathBuf, #[source] io::Error),
}

/// A host pty pair.
#[derive(Debug)]
pub struct Pty {
    /// The master (for the caller).
    pub master: OwnedFd,
    /// The slave (for the VMM or exec client).
    pub slave: OwnedFd,
    /// The slave's path (`/dev/pts/N`).
    pub name: String,
}

/// Opens a pty pair with a raw slave.
pub fn open_pty() -> Result<Pty, ConsoleError> {
    let (mut master, mut slave) = (-1, -1);
    // SAFETY: openpty writes two descriptors; null name/termios/winsize are allowed.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(ConsoleError::OpenPty(io::Error::last_os_error()));
    }
    // SAFETY: openpty just created both descriptors for us alone.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    for fd in [&master, &slave] {
        // SAFETY: F_SETFD on descriptors we own.
        unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    // SAFETY: termios is plain data; tcgetattr fills it in.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: tcgetattr/cfmakeraw/tcsetattr on a live termios and our slave.
    let ok = unsafe {
        libc::tcgetattr(slave.as_raw_fd(), &mut termios) == 0 && {
            libc::cfmakeraw(&mut termios);
            libc::tcsetattr(slave.as_raw_fd(), libc::TCSANOW, &termios) == 0
        }
    };
    if !ok {
        return Err(ConsoleError::Setup(io::Error::last_os_error()));
    }
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: ttyname_r writes a NUL-terminated name of at most buf.len() bytes.
    let rc = unsafe { libc::ttyname_r(slave.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    let name = if rc == 0 {
        // SAFETY: ttyname_r succeeded, so `buf` holds a NUL-terminated string.
        unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        String::from("/dev/pts/?")
    };
    Ok(Pty {
        master,
        slave,
        name,
    })
}

/// Sends `pty`'s master over the unix socket at `socket`.
pub fn send_master(pty: &Pty, socket: &Path) -> Result<(), ConsoleError> {
    let send = || -> io::Result<()> {
        let stream = super::api::socket_path::connect(socket)?;
        send_fds(&stream, pty.name.as_bytes(), &[pty.master.as_raw_fd()])
    };
    send().map_err(|e| ConsoleError::Send(socket.to_path_buf(), e))
}

/// Makes `slave` the controlling terminal of this process (which must be
/// a session leader without one).
pub fn make_controlling_terminal(slave: &OwnedFd) -> Result<(), ConsoleError> {
    // SAFETY: TIOCSCTTY takes an int argument and changes no memory.
    if unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) } != 0 {
        return Err(ConsoleError::Setup(io::Error::last_os_error()));
    }
    Ok(())
}

/// The init's console for the daemon: a pty whose master goes to
/// `socket`; returns the slave (this process's controlling terminal).
pub fn open_console(socket: &Path) -> Result<OwnedFd, ConsoleError> {
    let pty = open_pty()?;
    make_controlling_terminal(&pty.slave)?;
    send_master(&pty, socket)?;
    Ok(pty.slave)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::api::fd_passing::recv_fds;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixListener;

    #[test]
    fn the_master_reaches_the_console_socket_and_talks_to_the_slave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let pty = open_pty().unwrap();
        assert!(pty.name.starts_with("/dev/pts/"), "{}", pty.name);
        send_master(&pty, &path).unwrap();
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 128];
        let (n, fds) = recv_fds(&conn, &mut buf).unwrap();
        assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), pty.name);
        let mut master = std::fs::File::from(fds.into_iter().next().unwrap());
        let mut slave = std::fs::File::from(pty.slave);
        // Raw slave: bytes pass unchanged (no echo, no CR/LF mapping).
        master.write_all(b"a\rb").unwrap();
        let mut got = [0u8; 3];
        slave.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"a\rb");
        slave.write_all(b"x\n").unwrap();
        let mut back = [0u8; 2];
        master.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"x\n");
    }

    #[test]
    fn a_missing_console_socket_is_named() {
        let pty = open_pty().unwrap();
        let err = send_master(&pty, Path::new("/nonexistent/console.sock")).unwrap_err();
        assert!(
            err.to_string().contains("/nonexistent/console.sock"),
            "{err}"
        );
    }
}
