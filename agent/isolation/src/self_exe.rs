//! Keeps the container from ever writing to the agent's binary
//! (CVE-2019-5736 class).
//!
//! A container process can reach the runtime's binary through
//! `/proc/<pid>/exe` (for instance by making its entry point `#!/proc/self/exe`
//! so the runtime's own child re-executes the runtime inside the
//! container). runc's answer, used here too: the runtime runs from a copy of
//! itself in a memfd sealed against writes, so the only file the container
//! can reach is an immutable anonymous copy; the real binary is out of reach.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MemFdCreateFlag};

use crate::IsolationError;

/// The seals that make the memfd immutable.
fn seals() -> SealFlag {
    SealFlag::F_SEAL_SEAL | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_WRITE
}

/// Is this process already running from a write-sealed memfd?
pub fn running_from_sealed_memfd() -> bool {
    let Ok(exe) = File::open("/proc/self/exe") else {
        return false;
    };
    match fcntl(exe.as_raw_fd(), FcntlArg::F_GET_SEALS) {
        Ok(bits) => SealFlag::from_bits_truncate(bits).contains(SealFlag::F_SEAL_WRITE),
        Err(_) => false,
    }
}

/// Re-executes the current program from a sealed memfd copy of itself,
/// with the same arguments and environment, unless it already runs from
/// one. Call it first thing in `main` (before any threads) of a runtime
/// whose binary stays on disk; on success in the original process it does
/// not return.
pub fn ensure_sealed_self_exe() -> Result<(), IsolationError> {
    if running_from_sealed_memfd() {
        return Ok(());
    }
    let copy = sealed_copy()?;
    Err(exec_sealed(&copy))
}

/// A copy of the running program (`/proc/self/exe`) in a memfd sealed
/// against any change, for [`exec_sealed`]. Needs `/proc`; the copy stays
/// valid when the program's file is removed afterwards.
fn sealed_copy() -> Result<File, IsolationError> {
    let io = |what: &str, e: std::io::Error| IsolationError::io(what.to_owned(), e);
    let mut exe = File::open("/proc/self/exe").map_err(|e| io("opening /proc/self/exe", e))?;
    let name = c"vmrun-agent";
    let memfd = memfd_create(
        name,
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )
    .map_err(|e| io("memfd_create", e.into()))?;
    let mut copy = File::from(memfd);
    std::io::copy(&mut exe, &mut copy).map_err(|e| io("copying /proc/self/exe", e))?;
    fcntl(copy.as_fd().as_raw_fd(), FcntlArg::F_ADD_SEALS(seals()))
        .map_err(|e| io("sealing the memfd copy", e.into()))?;
    Ok(copy)
}

/// Re-executes the current program from `copy` (made by [`sealed_copy`])
/// with the same arguments and environment. Returns only on failure, with
/// the error.
fn exec_sealed(copy: &File) -> IsolationError {
    let args = c_strings(std::env::args_os().map(|a| a.as_bytes().to_vec()));
    let env = c_strings(std::env::vars_os().map(|(k, v)| {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        kv
    }));
    let err = match nix::unistd::fexecve(copy.as_raw_fd(), &args, &env) {
        Ok(never) => match never {},
        Err(errno) => errno,
    };
    IsolationError::io("fexecve of the sealed copy".to_owned(), err.into())
}

fn c_strings(items: impl Iterator<Item = Vec<u8>>) -> Vec<CString> {
    // An argument with a NUL byte cannot have come from execve; skip it.
    items.filter_map(|b| CString::new(b).ok()).collect()
}
