//! The sockets `serve` talks over: the control connection (any connected
//! stream socket) and the connections to the host's stdio ports.
//!
//! In the guest both are AF_VSOCK; host tests plug in unix sockets, so the
//! serve loop itself is the same code in both places.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{
    accept4, bind, connect, listen, shutdown, socket, AddressFamily, Backlog, Shutdown, SockFlag,
    SockType, VsockAddr,
};
use vmrun_protocol::HOST_CID;

/// A connected stream socket (vsock in the guest, unix in host tests).
#[derive(Debug)]
pub struct SocketStream {
    fd: OwnedFd,
}

impl SocketStream {
    /// Wraps a connected stream socket.
    pub fn new(fd: OwnedFd) -> Self {
        Self { fd }
    }

    /// A second handle on the same connection (for a reader and a writer).
    pub fn try_clone(&self) -> io::Result<Self> {
        Ok(Self {
            fd: self.fd.try_clone()?,
        })
    }

    /// Shuts both directions down, waking a thread blocked reading it.
    pub fn shutdown(&self) {
        // ENOTCONN once the peer is gone: nothing left to shut down.
        let _ = shutdown(self.fd.as_raw_fd(), Shutdown::Both);
    }
}

impl AsFd for SocketStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Read for SocketStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        nix::unistd::read(self.fd.as_raw_fd(), buf).map_err(io::Error::from)
    }
}

impl Write for SocketStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        nix::unistd::write(&self.fd, buf).map_err(io::Error::from)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Opens the connections that carry a container's stdio.
pub trait StdioConnector: Send + Sync {
    /// Connects to the host's stdio `port`; the socket becomes one of the
    /// container's standard streams (it must be close-on-exec: the
    /// container runtime dup2s it into place).
    fn connect(&self, port: u32) -> io::Result<OwnedFd>;
}

/// The guest's connector: AF_VSOCK to the host (CID [`HOST_CID`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct VsockConnector;

impl StdioConnector for VsockConnector {
    fn connect(&self, port: u32) -> io::Result<OwnedFd> {
        let fd = vsock_socket()?;
        let cid = u32::try_from(HOST_CID).map_err(|_| io::Error::from(Errno::EINVAL))?;
        let addr = VsockAddr::new(cid, port);
        loop {
            match connect(fd.as_raw_fd(), &addr) {
                Ok(()) => return Ok(fd),
                Err(Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

fn vsock_socket() -> io::Result<OwnedFd> {
    Ok(socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?)
}

/// A listening AF_VSOCK socket on `port` (any CID), backlog 1.
pub fn listen_vsock(port: u32) -> Result<OwnedFd> {
    let listener = vsock_socket().context("creating an AF_VSOCK socket")?;
    let addr = VsockAddr::new(libc::VMADDR_CID_ANY, port);
    bind(listener.as_raw_fd(), &addr).with_context(|| format!("binding vsock port {port}"))?;
    let backlog = Backlog::new(1).context("listen backlog")?;
    listen(&listener, backlog).with_context(|| format!("listening on vsock port {port}"))?;
    Ok(listener)
}

/// Accepts one connection on `listener` (from [`listen_vsock`]).
pub fn accept_vsock(listener: &OwnedFd) -> Result<SocketStream> {
    loop {
        match accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            Ok(raw) => {
                // SAFETY: accept4 just returned this new descriptor; nothing
                // else owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(raw) };
                return Ok(SocketStream::new(fd));
            }
            Err(Errno::EINTR | Errno::ECONNABORTED) => continue,
            Err(errno) => return Err(errno).context("accepting the host's connection"),
        }
    }
}
