//! Passing descriptors over a unix socket (SCM_RIGHTS), for exec sessions
//! (stdio to the VMM) and `--console-socket` (a pty master to the caller).

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Most descriptors accepted in one message.
pub const MAX_FDS: usize = 4;

/// Sends `payload` (at least one byte) with `fds` attached.
pub fn send_fds(socket: &UnixStream, payload: &[u8], fds: &[RawFd]) -> io::Result<()> {
    if payload.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "descriptors need at least one byte of payload",
        ));
    }
    let iov = [IoSlice::new(payload)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let sent = sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(io::Error::from)?;
    if sent != payload.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write of the descriptor message",
        ));
    }
    Ok(())
}

/// Receives one message of at most `buf.len()` bytes and the descriptors
/// attached to it (close-on-exec). Returns the byte count and the fds.
pub fn recv_fds(socket: &UnixStream, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg_space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            for fd in received {
                // SAFETY: the kernel just installed `fd` in this process for
                // us; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("more than {MAX_FDS} descriptors were sent"),
        ));
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn descriptors_cross_the_socket_and_work() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut pipe_r, pipe_w) = std::io::pipe().unwrap();
        send_fds(&a, b"F", &[pipe_w.as_raw_fd()]).unwrap();
        drop(pipe_w);
        let mut buf = [0u8; 8];
        let (n, fds) = recv_fds(&b, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"F");
        assert_eq!(fds.len(), 1);
        let mut writer = std::fs::File::from(fds.into_iter().next().unwrap());
        writer.write_all(b"through").unwrap();
        drop(writer);
        let mut got = String::new();
        pipe_r.read_to_string(&mut got).unwrap();
        assert_eq!(got, "through");
    }

    #[test]
    fn a_plain_message_has_no_descriptors_and_empty_payload_is_refused() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"x").unwrap();
        let mut buf = [0u8; 4];
        let (n, fds) = recv_fds(&b, &mut buf).unwrap();
        assert_eq!((n, fds.len()), (1, 0));
        assert!(send_fds(&a, b"", &[]).is_err());
    }
}
