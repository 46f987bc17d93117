//! Read-only enforcement for virtio-fs on the host side: FUSE requests that
//! would modify the shared directory are answered with EROFS before they
//! reach the passthrough file system (the guest should also mount it `ro`).

use vm_memory::GuestMemoryMmap;

use crate::chain::{read_from, write_to, Chain};

/// Size of `fuse_in_header`.
pub const IN_HEADER_LEN: u64 = 40;
/// Size of `fuse_out_header`.
pub const OUT_HEADER_LEN: u32 = 16;

const OPEN: u32 = 14;
const CREATE: u32 = 35;
/// Opcodes that modify the file system.
const MUTATING: &[u32] = &[
    4,  // SETATTR
    6,  // SYMLINK
    8,  // MKNOD
    9,  // MKDIR
    10, // UNLINK
    11, // RMDIR
    12, // RENAME
    13, // LINK
    16, // WRITE
    21, // SETXATTR
    24, // REMOVEXATTR
    CREATE, 39, // IOCTL
    43, // FALLOCATE
    45, // RENAME2
    47, // COPY_FILE_RANGE
    51, // TMPFILE
];

/// The fields of `fuse_in_header` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InHeader {
    /// FUSE opcode.
    pub opcode: u32,
    /// Request id, echoed in the reply.
    pub unique: u64,
}

/// Reads the request header, if the chain has one.
pub fn in_header(mem: &GuestMemoryMmap, chain: &Chain) -> Option<InHeader> {
    let mut raw = [0u8; IN_HEADER_LEN as usize];
    read_from(mem, &chain.readable, 0, &mut raw).ok()?;
    let opcode = u32::from_le_bytes(raw.get(4..8)?.try_into().ok()?);
    let unique = u64::from_le_bytes(raw.get(8..16)?.try_into().ok()?);
    Some(InHeader { opcode, unique })
}

/// Whether the request would modify the shared directory.
pub fn is_mutating(mem: &GuestMemoryMmap, chain: &Chain, header: InHeader) -> bool {
    if MUTATING.contains(&header.opcode) {
        return true;
    }
    if header.opcode == OPEN {
        let mut flags = [0u8; 4];
        if read_from(mem, &chain.readable, IN_HEADER_LEN, &mut flags).is_err() {
            return false; // malformed: the FUSE server rejects it
        }
        let flags = i32::from_le_bytes(flags);
        return flags & libc::O_ACCMODE != libc::O_RDONLY || flags & libc::O_TRUNC != 0;
    }
    false
}

/// Writes a FUSE error reply (`-errno`); returns the used length.
pub fn reply_error(mem: &GuestMemoryMmap, chain: &Chain, unique: u64, errno: i32) -> u32 {
    let mut out = Vec::with_capacity(OUT_HEADER_LEN as usize);
    out.extend_from_slice(&OUT_HEADER_LEN.to_le_bytes());
    out.extend_from_slice(&(-errno).to_le_bytes());
    out.extend_from_slice(&unique.to_le_bytes());
    match write_to(mem, &chain.writable, 0, &out) {
        Ok(()) => OUT_HEADER_LEN,
        Err(_) => 0,
    }
}
