//! The host end of the device: a non-blocking fd carrying exactly one
//! frame (`virtio_net_hdr_v1` + Ethernet frame) per `read`/`write`: a tap
//! opened with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, or (for tests and
//! other plumbing) a datagram or seqpacket socket framing alike.

use std::ffi::c_int;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use super::error::NetError;
use super::tap;

/// What one read from the backend produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A frame of this many bytes (header included) is in the buffer.
    Frame(usize),
    /// Nothing to read now.
    Empty,
    /// The peer of a socket backend is gone (end of file).
    Closed,
}

/// The device's backend fd (see the module docs).
#[derive(Debug)]
pub struct FrameFd {
    fd: OwnedFd,
    /// A socket (written with MSG_NOSIGNAL: a gone peer must not raise SIGPIPE).
    is_socket: bool,
}

impl FrameFd {
    /// Checks `fd` and makes it non-blocking. A tap must have the flags
    /// above; its vnet header size is set to 12 and its offloads turned off.
    pub fn new(fd: OwnedFd) -> Result<Self, NetError> {
        let is_socket = if tap::tun_flags(fd.as_fd()).is_ok() {
            tap::prepare(fd.as_fd()).map_err(NetError::Tap)?;
            false
        } else if is_packet_socket(fd.as_fd()) {
            true
        } else {
            return Err(NetError::NotFrameFd);
        };
        set_nonblocking(fd.as_fd()).map_err(NetError::NonBlocking)?;
        Ok(Self { fd, is_socket })
    }

    /// Reads one frame into `buf`. A frame longer than `buf` is cut short
    /// (the caller makes `buf` longer than any frame it accepts).
    pub fn read_frame(&self, buf: &mut [u8]) -> io::Result<Received> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the call.
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if let Ok(n) = usize::try_from(n) {
                return Ok(if n == 0 {
                    Received::Closed
                } else {
                    Received::Frame(n)
                });
            }
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock => return Ok(Received::Empty),
                _ => return Err(e),
            }
        }
    }

    /// Writes one frame; returns the bytes written.
    pub fn write_frame(&self, frame: &[u8]) -> io::Result<usize> {
        loop {
            let (fd, data, len) = (self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len());
            let n = if self.is_socket {
                // SAFETY: `frame` is valid for reads of `len` bytes for the call.
                unsafe { libc::send(fd, data, len, libc::MSG_NOSIGNAL) }
            } else {
                // SAFETY: `frame` is valid for reads of `len` bytes for the call.
                unsafe { libc::write(fd, data, len) }
            };
            if let Ok(n) = usize::try_from(n) {
                return Ok(n);
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}

impl AsRawFd for FrameFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Whether `fd` is a socket that keeps message boundaries.
fn is_packet_socket(fd: BorrowedFd<'_>) -> bool {
    let mut kind: c_int = 0;
    let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
    // SAFETY: SO_TYPE writes one int into `kind`; `len` holds its size; both
    // outlive the call.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&mut kind as *mut c_int).cast(),
            &mut len,
        )
    };
    rc == 0 && (kind == libc::SOCK_DGRAM || kind == libc::SOCK_SEQPACKET)
}

/// Sets O_NONBLOCK on `fd`.
fn set_nonblocking(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: F_GETFL on a valid fd reads no memory.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: F_SETFL on a valid fd reads no memory.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
