//! Opening and preparing a Linux tap for the virtio-net device.
//!
//! [`Tap::open`] creates (or attaches to) the tap named `name` in the
//! network namespace of the calling thread, so call it from inside the
//! container's host network namespace. The tap is opened non-blocking and
//! close-on-exec with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR`, its vnet header
//! size set to 12 (`virtio_net_hdr_v1`) and its offloads off (the device
//! negotiates none; see [`crate::net`]). The tap is not persistent: it goes
//! away with its last fd. Bringing the link up and addressing or bridging
//! it is the caller's job.

use std::ffi::c_int;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

use super::header::NET_HDR_LEN;

/// The flags a tap used by the device must have.
pub const TAP_FLAGS: c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

/// Errors opening or preparing a tap.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    /// The name does not fit an interface name.
    #[error("invalid tap name {name:?}: 1 to 15 bytes, no NUL, '/' or whitespace")]
    Name {
        /// The rejected name.
        name: String,
    },
    /// `/dev/net/tun` could not be opened.
    #[error("cannot open /dev/net/tun")]
    Open(#[source] io::Error),
    /// TUNSETIFF failed.
    #[error("cannot create or attach tap {name}")]
    SetIff {
        /// The requested name.
        name: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The fd is not an attached tun/tap device (TUNGETIFF failed).
    #[error("not an attached tun/tap device")]
    NotTun(#[source] io::Error),
    /// The fd is a tun/tap device, but not one the device can use.
    #[error("tun device has flags {flags:#x}; need IFF_TAP | IFF_NO_PI | IFF_VNET_HDR")]
    Flags {
        /// The device's flags (TUNGETIFF).
        flags: c_int,
    },
    /// TUNSETVNETHDRSZ failed.
    #[error("cannot set the tap's vnet header size")]
    VnetHeaderSize(#[source] io::Error),
    /// TUNSETOFFLOAD failed.
    #[error("cannot set the tap's offloads")]
    Offload(#[source] io::Error),
}

/// An open tap (see the module docs).
#[derive(Debug)]
pub struct Tap {
    fd: OwnedFd,
    name: String,
}

impl Tap {
    /// Creates or attaches to the tap `name` (a `%d` in it lets the kernel
    /// pick a number) in the calling thread's network namespace.
    pub fn open(name: &str) -> Result<Self, TapError> {
        let mut req = ifreq_named(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(TapError::Open)?;
        let fd = OwnedFd::from(file);
        req.ifr_ifru.ifru_flags = TAP_FLAGS as libc::c_short;
        // SAFETY: TUNSETIFF reads and writes one ifreq, which `req` is and
        // which outlives the call; `fd` is an open /dev/net/tun descriptor.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) };
        if rc < 0 {
            return Err(TapError::SetIff {
                name: name.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        prepare(fd.as_fd())?;
        Ok(Self {
            name: ifreq_name(&req),
            fd,
        })
    }

    /// The interface name the kernel gave the tap.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl AsFd for Tap {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<Tap> for OwnedFd {
    fn from(tap: Tap) -> OwnedFd {
        tap.fd
    }
}

/// The tun flags of `fd` (TUNGETIFF); fails if `fd` is not an attached
/// tun/tap (ENOTTY, EBADFD, ...).
pub fn tun_flags(fd: BorrowedFd<'_>) -> io::Result<c_int> {
    // SAFETY: an all-zero ifreq is a valid value (a byte array and a union of
    // integers and pointers that the kernel only writes).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF writes one ifreq into `req`, which outlives the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: TUNGETIFF filled the flags member of the union.
    Ok(c_int::from(unsafe { req.ifr_ifru.ifru_flags }))
}

/// Checks that the tap `fd` has [`TAP_FLAGS`], sets its vnet header size to
/// 12 and turns its offloads off.
pub fn prepare(fd: BorrowedFd<'_>) -> Result<(), TapError> {
    let flags = tun_flags(fd).map_err(TapError::NotTun)?;
    if flags & TAP_FLAGS != TAP_FLAGS || flags & libc::IFF_TUN != 0 {
        return Err(TapError::Flags { flags });
    }
    let size = NET_HDR_LEN as c_int;
    // SAFETY: TUNSETVNETHDRSZ reads one int through the pointer, valid for the call.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &size) };
    if rc < 0 {
        return Err(TapError::VnetHeaderSize(io::Error::last_os_error()));
    }
    set_offload(fd, 0)
}

/// Sets the tap's offloads (`TUN_F_*` bits: what the tap may hand the
/// device unchecksummed or unsegmented). The device negotiates no offload,
/// so it uses 0.
pub fn set_offload(fd: BorrowedFd<'_>, tun_flags: libc::c_uint) -> Result<(), TapError> {
    // SAFETY: TUNSETOFFLOAD takes its argument by value; no memory is shared.
    let rc = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            libc::TUNSETOFFLOAD,
            libc::c_ulong::from(tun_flags),
        )
    };
    if rc < 0 {
        return Err(TapError::Offload(io::Error::last_os_error()));
    }
    Ok(())
}

/// An ifreq whose name is `name`, if `name` is a valid interface name.
fn ifreq_named(name: &str) -> Result<libc::ifreq, TapError> {
    let bad = || TapError::Name {
        name: name.to_string(),
    };
    let valid = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && !name
            .bytes()
            .any(|b| b == 0 || b == b'/' || b.is_ascii_whitespace());
    if !valid {
        return Err(bad());
    }
    // SAFETY: an all-zero ifreq is a valid value (see `tun_flags`).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    Ok(req)
}

/// The NUL-terminated name in `req`.
fn ifreq_name(req: &libc::ifreq) -> String {
    let bytes: Vec<u8> = req
        .ifr_name
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
