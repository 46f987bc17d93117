//! Loading the kernel, initrd and command line, and writing the boot
//! structures (MP table, PVH start info or zero page). The kernel's
//! segments and the initrd are mapped into guest memory where they can be
//! ([`MappingReader`]), not copied.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::bzimage::BzImage;
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::{load_cmdline, KernelLoader, KernelLoaderResult};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use crate::arch::x86_64::layout::{CMDLINE_START, HIMEM_START, PVH_INFO_START, ZERO_PAGE_START};
use crate::arch::x86_64::linux_boot::{write_boot_params, LinuxBootError};
use crate::arch::x86_64::memory_map::low_ram_end;
use crate::arch::x86_64::mptable::{setup_mptable, MptableError};
use crate::arch::x86_64::pvh::{write_start_info, InitrdRegion, PvhError};
use crate::arch::x86_64::regs::BootEntry;
use crate::machine::file_mapping::MappingReader;

/// Offset of the 64-bit entry point in a bzImage's protected-mode kernel.
const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
const PAGE_SIZE: u64 = 4096;

/// Errors loading what the guest boots.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// A file could not be opened or read.
    #[error("cannot read {what} {path}")]
    Read {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The ELF kernel could not be loaded.
    #[error("cannot load ELF kernel {0}")]
    Elf(PathBuf, #[source] linux_loader::loader::Error),
    /// The bzImage could not be loaded.
    #[error("cannot load {0} as a bzImage (it is not an ELF vmlinux either)")]
    BzImage(PathBuf, #[source] linux_loader::loader::Error),
    /// The initrd does not fit between the kernel and the end of low memory.
    #[error("initrd {path} ({size} bytes) does not fit in guest memory after the kernel; give the VM more --memory")]
    InitrdTooBig {
        /// The path.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// Copying the initrd into guest memory failed.
    #[error("cannot copy initrd {0} into guest memory")]
    InitrdCopy(PathBuf, #[source] vm_memory::GuestMemoryError),
    /// Writing the command line failed.
    #[error("cannot write the kernel command line")]
    Cmdline(#[source] linux_loader::loader::Error),
    /// Writing the MP table failed.
    #[error("cannot set up the MP table")]
    Mptable(#[from] MptableError),
    /// Writing the PVH start info failed.
    #[error("cannot set up PVH boot")]
    Pvh(#[from] PvhError),
    /// Writing the zero page failed.
    #[error("cannot set up Linux boot parameters")]
    LinuxBoot(#[from] LinuxBootError),
}

fn read_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> KernelError + 'a {
    move |source| KernelError::Read {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn load_image(mem: &GuestMemoryMmap, path: &Path) -> Result<KernelLoaderResult, KernelError> {
    let file = File::open(path).map_err(read_err("kernel", path))?;
    let mut reader = MappingReader::new(&file, mem).map_err(read_err("kernel", path))?;
    let mut magic = [0u8; 4];
    let is_elf = reader.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF";
    reader
        .seek(SeekFrom::Start(0))
        .map_err(read_err("kernel", path))?;
    let loaded = if is_elf {
        Elf::load(mem, None, &mut reader, Some(GuestAddress(HIMEM_START)))
            .map_err(|e| KernelError::Elf(path.to_path_buf(), e))
    } else {
        BzImage::load(mem, None, &mut reader, Some(GuestAddress(HIMEM_START)))
            .map_err(|e| KernelError::BzImage(path.to_path_buf(), e))
    }?;
    tracing::debug!(mapped = reader.mapped_bytes(), "kernel loaded");
    Ok(loaded)
}

/// Places the initrd at the top of low memory (page aligned), above the
/// kernel: mapped where [`MappingReader`] can, else copied.
fn load_initrd(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    kernel_end: u64,
    path: &Path,
) -> Result<InitrdRegion, KernelError> {
    let file = File::open(path).map_err(read_err("initrd", path))?;
    let size = file.metadata().map_err(read_err("initrd", path))?.len();
    let too_big = || KernelError::InitrdTooBig {
        path: path.to_path_buf(),
        size,
    };
    let addr = low_ram_end(mem_size)
        .checked_sub(size)
        .map(|a| a & !(PAGE_SIZE - 1))
        .filter(|a| *a >= kernel_end)
        .ok_or_else(too_big)?;
    let count = usize::try_from(size).map_err(|_| too_big())?;
    let mut reader = MappingReader::new(&file, mem).map_err(read_err("initrd", path))?;
    mem.read_exact_volatile_from(GuestAddress(addr), &mut reader, count)
        .map_err(|e| KernelError::InitrdCopy(path.to_path_buf(), e))?;
    tracing::debug!(mapped = reader.mapped_bytes(), "initrd loaded");
    Ok(InitrdRegion { addr, size })
}

/// Loads `kernel` (+ `initrd`) and `cmdline` into `mem` (a guest of
/// `mem_size` bytes with `vcpus` vCPUs) and returns where to start.
pub fn load_linux(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    vcpus: u8,
    kernel: &Path,
    initrd: Option<&Path>,
    cmdline: &Cmdline,
) -> Result<BootEntry, KernelError> {
    let loaded = load_image(mem, kernel)?;
    // linux-loader reports `kernel_end` as an absolute guest address.
    let initrd = initrd
        .map(|p| load_initrd(mem, mem_size, loaded.kernel_end, p))
        .transpose()?;
    load_cmdline(mem, GuestAddress(CMDLINE_START), cmdline).map_err(KernelError::Cmdline)?;
    setup_mptable(mem, vcpus)?;

    if let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap {
        write_start_info(mem, mem_size, initrd)?;
        tracing::debug!(entry = entry.raw_value(), "PVH boot");
        return Ok(BootEntry::Pvh {
            entry: entry.raw_value(),
            start_info: PVH_INFO_START,
        });
    }
    let cmdline_len = cmdline
        .as_cstring()
        .map(|c| c.as_bytes().len())
        .unwrap_or(0);
    write_boot_params(mem, loaded.setup_header, mem_size, cmdline_len, initrd)?;
    let entry = match loaded.setup_header {
        // bzImage: the 64-bit entry is 0x200 into the protected-mode kernel.
        Some(_) => loaded.kernel_load.raw_value() + BZIMAGE_64BIT_ENTRY_OFFSET,
        // ELF without a PVH note: its entry point, in 64-bit mode.
        None => loaded.kernel_load.raw_value(),
    };
    tracing::debug!(entry, "Linux 64-bit boot");
    Ok(BootEntry::Linux64 {
        entry,
        boot_params: ZERO_PAGE_START,
    })
}

/// Checks that guest memory at `addr` holds `bytes` (test helper for loaders).
pub fn memory_holds(mem: &GuestMemoryMmap, addr: u64, bytes: &[u8]) -> bool {
    let mut buf = vec![0u8; bytes.len()];
    mem.read_slice(&mut buf, GuestAddress(addr)).is_ok() && buf == bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::build_cmdline;

    fn mem(size: u64) -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), size as usize)]).unwrap()
    }

    #[test]
    fn initrd_goes_to_top_of_low_memory_page_aligned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        std::fs::write(&path, vec![0xabu8; 5000]).unwrap();
        let size = 16 << 20;
        let m = mem(size);
        let r = load_initrd(&m, size, 2 << 20, &path).unwrap();
        assert_eq!(r.size, 5000);
        assert_eq!(r.addr % PAGE_SIZE, 0);
        assert!(r.addr + r.size <= size);
        assert!(r.addr + r.size + PAGE_SIZE > size);
        assert!(memory_holds(&m, r.addr, &[0xab; 16]));
    }

    #[test]
    fn initrd_overlapping_kernel_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("initrd");
        std::fs::write(&path, vec![0u8; 3 << 20]).unwrap();
        let size = 4 << 20;
        let err = load_initrd(&mem(size), size, 2 << 20, &path).unwrap_err();
        assert!(matches!(err, KernelError::InitrdTooBig { .. }), "{err}");
    }

    #[test]
    fn garbage_kernel_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vmlinux");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let cmdline = build_cmdline("console=ttyS0", &[]).unwrap();
        let err = load_linux(&mem(16 << 20), 16 << 20, 1, &path, None, &cmdline).unwrap_err();
        assert!(err.to_string().contains("bzImage"), "{err}");
    }
}
