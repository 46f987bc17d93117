//! virtio-blk request execution as a plain function over guest memory.

use std::fs::File;
use std::os::unix::fs::FileExt;

use tracing::debug;
use vm_memory::{Address, Bytes, GuestMemoryMmap};

use crate::chain::{pieces, read_from, write_to, Chain};
use crate::log_limited;

/// Sector size of the virtio-blk protocol.
pub const SECTOR_SIZE: u64 = 512;
/// Request type: read.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type: write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type: flush.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request type: get device id string.
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;
/// Status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: I/O error.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;
/// Length of the device id returned by GET_ID.
pub const ID_BYTES: usize = 20;

const HEADER_LEN: u64 = 16;
/// Bounce-buffer size between guest memory and the file.
const CHUNK: usize = 64 * 1024;

/// The backing store of a block device.
#[derive(Debug)]
pub struct Disk {
    /// The open image file.
    pub file: File,
    /// Capacity in 512-byte sectors.
    pub sectors: u64,
    /// Whether writes are refused.
    pub read_only: bool,
    /// The id string returned by GET_ID (NUL padded).
    pub id: [u8; ID_BYTES],
}

/// Executes one validated request chain against `disk`; returns the number
/// of bytes written into the chain (data + status byte), as the used length.
pub fn execute(mem: &GuestMemoryMmap, disk: &Disk, chain: &Chain) -> u32 {
    // The status byte is the last writable byte of the chain.
    let writable = chain.writable_len();
    let Some(status_offset) = writable.checked_sub(1) else {
        debug!(
            head = chain.head,
            "virtio-blk: request without a status byte"
        );
        return 0;
    };
    let mut header = [0u8; HEADER_LEN as usize];
    let (status, data_written) = match read_from(mem, &chain.readable, 0, &mut header) {
        Ok(()) => run(mem, disk, chain, &header, status_offset),
        Err(e) => {
            debug!(error = %e, "virtio-blk: bad request header");
            (VIRTIO_BLK_S_IOERR, 0)
        }
    };
    if write_to(mem, &chain.writable, status_offset, &[status]).is_err() {
        return 0;
    }
    (data_written + 1).min(u64::from(u32::MAX)) as u32
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    for (d, s) in a.iter_mut().zip(b) {
        *d = *s;
    }
    u64::from_le_bytes(a)
}

/// Returns (status, bytes of data written to the guest).
fn run(
    mem: &GuestMemoryMmap,
    disk: &Disk,
    chain: &Chain,
    header: &[u8; HEADER_LEN as usize],
    data_in_len: u64,
) -> (u8, u64) {
    let (kind, rest) = header.split_at(4);
    let request_type = le_u32(kind);
    let sector = le_u64(rest.get(4..).map_or(&[][..], |s| s));
    match request_type {
        VIRTIO_BLK_T_IN => {
            let Some(offset) = checked_range(disk, sector, data_in_len) else {
                return (VIRTIO_BLK_S_IOERR, 0);
            };
            match copy_file_to_guest(mem, disk, chain, offset, data_in_len) {
                Ok(()) => (VIRTIO_BLK_S_OK, data_in_len),
                Err(e) => {
                    log_limited!(warn, error = %e, "virtio-blk: read failed");
                    (VIRTIO_BLK_S_IOERR, 0)
                }
            }
        }
        VIRTIO_BLK_T_OUT => {
            if disk.read_only {
                return (VIRTIO_BLK_S_IOERR, 0);
            }
            let len = chain.readable_len().saturating_sub(HEADER_LEN);
            let Some(offset) = checked_range(disk, sector, len) else {
                return (VIRTIO_BLK_S_IOERR, 0);
            };
            match copy_guest_to_file(mem, disk, chain, offset, len) {
                Ok(()) => (VIRTIO_BLK_S_OK, 0),
                Err(e) => {
                    log_limited!(warn, error = %e, "virtio-blk: write failed");
                    (VIRTIO_BLK_S_IOERR, 0)
                }
            }
        }
        VIRTIO_BLK_T_FLUSH => {
            if disk.read_only {
                return (VIRTIO_BLK_S_OK, 0);
            }
            match disk.file.sync_all() {
                Ok(()) => (VIRTIO_BLK_S_OK, 0),
                Err(e) => {
                    log_limited!(warn, error = %e, "virtio-blk: flush failed");
                    (VIRTIO_BLK_S_IOERR, 0)
                }
            }
        }
        VIRTIO_BLK_T_GET_ID => {
            let n = data_in_len.min(ID_BYTES as u64);
            let id = match disk.id.get(..n as usize) {
                Some(id) => id,
                None => &disk.id,
            };
            match write_to(mem, &chain.writable, 0, id) {
                Ok(()) => (VIRTIO_BLK_S_OK, n),
                Err(_) => (VIRTIO_BLK_S_IOERR, 0),
            }
        }
        _ => (VIRTIO_BLK_S_UNSUPP, 0),
    }
}

/// Byte offset of `sector` if `[sector*512, +len)` lies inside the disk and
/// `len` is a whole number of sectors.
fn checked_range(disk: &Disk, sector: u64, len: u64) -> Option<u64> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        debug!(len, "virtio-blk: request length is not a multiple of 512");
        return None;
    }
    let end_sector = sector.checked_add(len / SECTOR_SIZE)?;
    if end_sector > disk.sectors {
        debug!(
            sector,
            len,
            capacity = disk.sectors,
            "virtio-blk: request past the end of the disk"
        );
        return None;
    }
    sector.checked_mul(SECTOR_SIZE)
}

fn copy_file_to_guest(
    mem: &GuestMemoryMmap,
    disk: &Disk,
    chain: &Chain,
    offset: u64,
    len: u64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut file_pos = offset;
    for (addr, piece_len) in pieces(&chain.writable, 0..len) {
        let mut done = 0usize;
        while done < piece_len {
            let n = (piece_len - done).min(CHUNK);
            let chunk = buf.get_mut(..n).ok_or_else(short)?;
            disk.file.read_exact_at(chunk, file_pos)?;
            let at = addr.checked_add(done as u64).ok_or_else(short)?;
            mem.write_slice(chunk, at).map_err(std::io::Error::other)?;
            done += n;
            file_pos += n as u64;
        }
    }
    Ok(())
}

fn copy_guest_to_file(
    mem: &GuestMemoryMmap,
    disk: &Disk,
    chain: &Chain,
    offset: u64,
    len: u64,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut file_pos = offset;
    for (addr, piece_len) in pieces(&chain.readable, HEADER_LEN..HEADER_LEN + len) {
        let mut done = 0usize;
        while done < piece_len {
            let n = (piece_len - done).min(CHUNK);
            let chunk = buf.get_mut(..n).ok_or_else(short)?;
            let at = addr.checked_add(done as u64).ok_or_else(short)?;
            mem.read_slice(chunk, at).map_err(std::io::Error::other)?;
            disk.file.write_all_at(chunk, file_pos)?;
            done += n;
            file_pos += n as u64;
        }
    }
    Ok(())
}

fn short() -> std::io::Error {
    std::io::Error::other("address arithmetic overflow")
}
