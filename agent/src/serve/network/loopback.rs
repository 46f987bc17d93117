//! Bringing `lo` up in the calling thread's network namespace with the
//! interface ioctls (`SIOCGIFFLAGS`, `SIOCSIFFLAGS`), as `ip link set lo
//! up` does without rtnetlink.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Sets `IFF_UP` on `lo` of the calling thread's network namespace (a
/// no-op when it is up already).
pub fn up_here() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the descriptor it returns
    // is owned by nobody else.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor (checked above) that only this
    // `OwnedFd` will close.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: `ifreq` is plain old data (a name and a union of integers
    // and addresses), for which all-zero bytes are a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads the NUL-terminated name in `request` and
    // writes `ifr_ifru.ifru_flags`, both inside `request`, which outlives
    // the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS just set `ifru_flags`, the union's member read
    // and written here.
    let flags = unsafe { request.ifr_ifru.ifru_flags };
    let up = libc::IFF_UP as libc::c_short;
    if flags & up != 0 {
        return Ok(());
    }
    request.ifr_ifru.ifru_flags = flags | up;
    // SAFETY: SIOCSIFFLAGS only reads `request` (name and flags), which
    // outlives the call.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &request) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
