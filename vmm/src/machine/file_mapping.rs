//! Kernel and initrd bytes reach guest memory by mapping the file, not by
//! copying it. [`MappingReader`] is the reader the loaders are handed:
//! when they read a page-aligned run of whole pages from a page-aligned
//! file offset into guest RAM, it maps those pages of the file over that
//! part of guest RAM (`MAP_PRIVATE | MAP_FIXED`: copy-on-write, so the
//! guest's writes stay its own and the file never changes). Pages the
//! guest never touches (most of the kernel's text on a short-lived VM)
//! then cost neither a copy nor host memory, the pages it only reads are
//! the page cache's, shared by every VM booting the same file, and nothing
//! is zeroed first. Everything else (headers, a segment's last partial
//! page, whose bytes past the segment must stay zero, any buffer outside
//! guest RAM) is read as before.
//!
//! Only files on a local filesystem are mapped ([`maps_well`]). On a
//! network or paravirtual one (9p, NFS, FUSE, SMB, Ceph) each page the
//! guest first touches would be a round trip to the server at fault time:
//! in the nested test host, whose artifact cache is a 9p share, mapping
//! made boots slower than one sequential read. Those are copied.
//!
//! A mapped range is marked `MADV_DONTFORK` like the rest of guest RAM
//! (`vstate::memory`). If `mmap` refuses (a filesystem without mmap), the
//! reader copies instead. The files are vmrun's content-addressed cache
//! entries, never rewritten in place: truncating one under a running VM
//! would make the guest's reads of its unmapped pages fail.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

use vm_memory::bitmap::BitmapSlice;
use vm_memory::{
    GuestMemory, GuestMemoryMmap, GuestMemoryRegion, ReadVolatile, VolatileMemoryError,
    VolatileSlice,
};

const PAGE_SIZE: u64 = 4096;

/// Filesystem types (`/proc/self/mountinfo`) whose pages are fetched from
/// elsewhere on a fault. (`statfs` cannot tell: 9p reports the server's
/// filesystem type.)
const REMOTE_FS_TYPES: [&str; 8] = [
    "9p", "nfs", "nfs4", "cifs", "smb3", "ceph", "virtiofs", "fuse",
];

/// Whether `file`'s pages are worth mapping: it is on a local filesystem
/// (its page cache is filled from a local disk or is memory itself).
pub fn maps_well(file: &File) -> bool {
    let Ok(meta) = file.metadata() else {
        return false;
    };
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    fs_type_of(&mountinfo, meta.dev()).is_some_and(|kind| {
        let base = kind.split('.').next().unwrap_or(kind);
        !REMOTE_FS_TYPES.contains(&base)
    })
}

/// The filesystem type of the mount whose device is `dev`, from the text
/// of a `mountinfo` file.
fn fs_type_of(mountinfo: &str, dev: u64) -> Option<&str> {
    let want = format!("{}:{}", libc::major(dev), libc::minor(dev));
    mountinfo.lines().find_map(|line| {
        let mut fields = line.split(' ');
        if fields.nth(2)? != want {
            return None;
        }
        let (_, after) = line.split_once(" - ")?;
        after.split(' ').next()
    })
}

/// A file read into guest memory by mapping where it can (see the module
/// docs).
pub struct MappingReader<'f> {
    file: &'f File,
    /// Whether mapping is tried at all ([`maps_well`]).
    enabled: bool,
    /// The file's size: nothing is mapped past it (a page there would
    /// fault with SIGBUS on access).
    file_len: u64,
    /// Host address ranges `[start, end)` of guest RAM.
    guest_ram: Vec<(usize, usize)>,
    /// Bytes placed by mapping so far.
    mapped: u64,
}

impl<'f> MappingReader<'f> {
    /// A reader of `file` that may map it into `mem`'s RAM.
    pub fn new(file: &'f File, mem: &GuestMemoryMmap) -> io::Result<Self> {
        let file_len = file.metadata()?.len();
        let guest_ram = mem
            .iter()
            .map(|r| {
                let start = r.as_ptr() as usize;
                (start, start + r.len() as usize)
            })
            .collect();
        Ok(Self {
            file,
            enabled: maps_well(file),
            file_len,
            guest_ram,
            mapped: 0,
        })
    }

    /// Bytes placed in guest memory by mapping rather than copying.
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped
    }

    /// Whether `[addr, addr + len)` lies inside one range of guest RAM.
    fn in_guest_ram(&self, addr: usize, len: usize) -> bool {
        addr.checked_add(len).is_some_and(|end| {
            self.guest_ram
                .iter()
                .any(|&(start, stop)| addr >= start && end <= stop)
        })
    }

    /// How many bytes at `addr` (a destination of `len` bytes) can be
    /// mapped from the file's current position `pos`: whole pages only,
    /// both sides page-aligned, inside guest RAM and the file. 0 if none.
    fn mappable(&self, addr: usize, len: usize, pos: u64) -> usize {
        let pages = (len as u64).min(self.file_len.saturating_sub(pos)) & !(PAGE_SIZE - 1);
        let aligned = (addr as u64).is_multiple_of(PAGE_SIZE) && pos.is_multiple_of(PAGE_SIZE);
        if !self.enabled || !aligned || pages == 0 || !self.in_guest_ram(addr, pages as usize) {
            return 0;
        }
        pages as usize
    }

    /// Maps `len` bytes of the file at `pos` over guest RAM at `addr`.
    fn map(&mut self, addr: usize, len: usize, pos: u64) -> io::Result<()> {
        let offset = libc::off_t::try_from(pos).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: [addr, addr + len) lies inside one of guest memory's
        // mappings (checked by `mappable`), which vm-memory owns for as
        // long as the VM lives and which nothing else references as Rust
        // memory (guest memory is only reached through volatile
        // accessors). MAP_FIXED replaces exactly those pages with a private
        // copy-on-write view of the file, inside its length, and the
        // region's own munmap at drop covers them.
        let got = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_NORESERVE,
                self.file.as_raw_fd(),
                offset,
            )
        };
        if got == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the range was just mapped above; MADV_DONTFORK changes
        // no content (guest RAM is never inherited by the VMM's children).
        if unsafe { libc::madvise(got, len, libc::MADV_DONTFORK) } != 0 {
            tracing::debug!(
                "madvise(MADV_DONTFORK) on a mapped file range: {}",
                io::Error::last_os_error()
            );
        }
        self.mapped += len as u64;
        Ok(())
    }
}

impl Read for MappingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

impl Seek for MappingReader<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

impl ReadVolatile for MappingReader<'_> {
    /// Fills as much of `buf` as the file holds: vm-memory's
    /// `read_volatile_from` reads each guest memory slice with one call.
    fn read_volatile<B: BitmapSlice>(
        &mut self,
        buf: &mut VolatileSlice<B>,
    ) -> Result<usize, VolatileMemoryError> {
        let pos = self
            .file
            .stream_position()
            .map_err(VolatileMemoryError::IOError)?;
        let addr = buf.ptr_guard_mut().as_ptr() as usize;
        let mut done = self.mappable(addr, buf.len(), pos);
        if done > 0 {
            match self.map(addr, done, pos) {
                Ok(()) => {
                    self.file
                        .seek(SeekFrom::Current(done as i64))
                        .map_err(VolatileMemoryError::IOError)?;
                    buf.bitmap().mark_dirty(0, done);
                }
                Err(err) => {
                    tracing::debug!("cannot map the file into guest memory, copying: {err}");
                    done = 0;
                }
            }
        }
        let mut file = self.file;
        while done < buf.len() {
            let mut rest = buf.offset(done)?;
            match file.read_volatile(&mut rest) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(VolatileMemoryError::IOError(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use vm_memory::{Bytes, GuestAddress};

    /// A file of `pages` pages plus `tail` bytes, byte i = i % 251.
    fn file(pages: usize, tail: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..pages * 4096 + tail).map(|i| (i % 251) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        f.as_file().rewind().unwrap();
        (f, data)
    }

    fn mem() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap()
    }

    #[test]
    fn whole_pages_are_mapped_the_tail_is_copied_and_bytes_past_it_stay_zero() {
        let (f, data) = file(5, 100);
        let mem = mem();
        let mut reader = MappingReader::new(f.as_file(), &mem).unwrap();
        mem.read_exact_volatile_from(GuestAddress(0x10000), &mut reader, data.len())
            .unwrap();
        assert_eq!(reader.mapped_bytes(), 5 * 4096);
        let mut back = vec![0u8; data.len() + 4096];
        mem.read_slice(&mut back, GuestAddress(0x10000)).unwrap();
        assert_eq!(&back[..data.len()], &data[..]);
        assert!(back[data.len()..].iter().all(|&b| b == 0));
        // Past the mapped pages, guest RAM is still its own.
        mem.write_slice(&[7; 16], GuestAddress(0x10000 + 6 * 4096))
            .unwrap();
    }

    #[test]
    fn guest_writes_stay_private_to_the_guest() {
        let (f, data) = file(2, 0);
        let mem = mem();
        let mut reader = MappingReader::new(f.as_file(), &mem).unwrap();
        mem.read_exact_volatile_from(GuestAddress(0x2000), &mut reader, data.len())
            .unwrap();
        assert_eq!(reader.mapped_bytes(), 2 * 4096);
        mem.write_slice(&[0xee; 64], GuestAddress(0x2000)).unwrap();
        assert_eq!(std::fs::read(f.path()).unwrap(), data);
        let mut back = [0u8; 64];
        mem.read_slice(&mut back, GuestAddress(0x2000)).unwrap();
        assert_eq!(back, [0xee; 64]);
    }

    #[test]
    fn unaligned_destinations_or_offsets_are_copied() {
        let (f, data) = file(3, 0);
        let mem = mem();
        let mut reader = MappingReader::new(f.as_file(), &mem).unwrap();
        mem.read_exact_volatile_from(GuestAddress(0x3010), &mut reader, data.len())
            .unwrap();
        assert_eq!(reader.mapped_bytes(), 0);
        let mut back = vec![0u8; data.len()];
        mem.read_slice(&mut back, GuestAddress(0x3010)).unwrap();
        assert_eq!(back, data);

        f.as_file().rewind().unwrap();
        let mut reader = MappingReader::new(f.as_file(), &mem).unwrap();
        reader.seek(SeekFrom::Start(10)).unwrap();
        mem.read_exact_volatile_from(GuestAddress(0x8000), &mut reader, 4096)
            .unwrap();
        assert_eq!(reader.mapped_bytes(), 0);
        let mut back = vec![0u8; 4096];
        mem.read_slice(&mut back, GuestAddress(0x8000)).unwrap();
        assert_eq!(back, &data[10..4106]);
    }

    #[test]
    fn files_on_a_local_filesystem_map() {
        let (f, _) = file(1, 0);
        assert!(maps_well(f.as_file()), "a temp file is local");
    }

    #[test]
    fn the_filesystem_type_comes_from_the_mount_of_the_files_device() {
        let mountinfo = "\
22 1 0:21 / / rw,relatime shared:1 - 9p /dev/root ro,trans=virtio
40 22 8:1 / /boot rw,relatime shared:2 - ext4 /dev/sda1 rw
41 22 0:45 / /mnt/fuse rw shared:3 - fuse.sshfs host:/ rw
42 22 0:46 / /dev/shm rw shared:4 - tmpfs tmpfs rw
";
        assert_eq!(fs_type_of(mountinfo, libc::makedev(0, 21)), Some("9p"));
        assert_eq!(fs_type_of(mountinfo, libc::makedev(8, 1)), Some("ext4"));
        assert_eq!(fs_type_of(mountinfo, libc::makedev(0, 46)), Some("tmpfs"));
        assert_eq!(
            fs_type_of(mountinfo, libc::makedev(0, 45)),
            Some("fuse.sshfs")
        );
        assert_eq!(fs_type_of(mountinfo, libc::makedev(9, 9)), None);
    }

    #[test]
    fn buffers_outside_guest_ram_are_never_mapped() {
        let (f, data) = file(2, 0);
        let mem = mem();
        let reader = MappingReader::new(f.as_file(), &mem).unwrap();
        let mut own = vec![0u8; 3 * 4096];
        let start = own.as_mut_ptr() as usize;
        let aligned = (start + 4095) & !4095;
        assert_eq!(reader.mappable(aligned, 4096, 0), 0);
        // Inside guest RAM and the file: mapped.
        let ram = mem.get_host_address(GuestAddress(0x4000)).unwrap() as usize;
        assert_eq!(reader.mappable(ram, 8192, 0), 8192);
        // Never past the end of the file, nor past the end of guest RAM.
        assert_eq!(reader.mappable(ram, 3 * 4096, 4096), 4096);
        let last = mem
            .get_host_address(GuestAddress((1 << 20) - 4096))
            .unwrap() as usize;
        assert_eq!(reader.mappable(last, 8192, 0), 0);
        let _ = data;
    }
}
