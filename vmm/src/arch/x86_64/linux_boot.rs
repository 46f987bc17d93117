//! Linux 64-bit boot protocol ("zero page"), used for bzImage kernels and
//! for ELF kernels without a PVH entry note.

use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::layout::{CMDLINE_START, ZERO_PAGE_START};
use super::memory_map::e820_map;
use super::pvh::InitrdRegion;

const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
const KERNEL_HDR_MAGIC: u32 = 0x5372_6448; // "HdrS"
const KERNEL_LOADER_OTHER: u8 = 0xff;
const KERNEL_MIN_ALIGNMENT_BYTES: u32 = 0x100_0000;

/// Errors writing the zero page.
#[derive(Debug, thiserror::Error)]
pub enum LinuxBootError {
    /// linux-loader could not write the zero page.
    #[error("cannot write the Linux boot parameters")]
    Write(#[source] linux_loader::configurator::Error),
    /// More e820 entries than the zero page holds.
    #[error("too many e820 entries")]
    E820Overflow,
}

/// Builds the zero page (pure).
pub fn boot_params_for(
    header: Option<setup_header>,
    mem_size: u64,
    cmdline_len: usize,
    initrd: Option<InitrdRegion>,
) -> Result<boot_params, LinuxBootError> {
    let mut params = boot_params::default();
    if let Some(hdr) = header {
        params.hdr = hdr;
    }
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    params.hdr.cmdline_size = cmdline_len as u32;
    params.hdr.kernel_alignment = KERNEL_MIN_ALIGNMENT_BYTES;
    if let Some(r) = initrd {
        params.hdr.ramdisk_image = r.addr as u32;
        params.hdr.ramdisk_size = r.size as u32;
    }
    let map = e820_map(mem_size);
    if map.len() > params.e820_table.len() {
        return Err(LinuxBootError::E820Overflow);
    }
    for (slot, e) in params.e820_table.iter_mut().zip(map.iter()) {
        *slot = boot_e820_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
        };
    }
    params.e820_entries = map.len() as u8;
    Ok(params)
}

/// Writes the zero page at [`ZERO_PAGE_START`].
pub fn write_boot_params(
    mem: &GuestMemoryMmap,
    header: Option<setup_header>,
    mem_size: u64,
    cmdline_len: usize,
    initrd: Option<InitrdRegion>,
) -> Result<(), LinuxBootError> {
    let params = boot_params_for(header, mem_size, cmdline_len, initrd)?;
    let bp = BootParams::new(&params, GuestAddress(ZERO_PAGE_START));
    LinuxBootConfigurator::write_bootparams(&bp, mem).map_err(LinuxBootError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_page_has_e820_cmdline_and_initrd() {
        let initrd = InitrdRegion {
            addr: 0x600_0000,
            size: 4096,
        };
        let p = boot_params_for(None, 256 << 20, 100, Some(initrd)).unwrap();
        let (entries, hdr_magic, cmdline) = (p.e820_entries, p.hdr.header, p.hdr.cmd_line_ptr);
        assert_eq!(entries, 2);
        assert_eq!(hdr_magic, KERNEL_HDR_MAGIC);
        assert_eq!(u64::from(cmdline), CMDLINE_START);
        let (image, size) = (p.hdr.ramdisk_image, p.hdr.ramdisk_size);
        assert_eq!((image, size), (0x600_0000, 4096));
        let second = p.e820_table[1];
        let (addr, len) = (second.addr, second.size);
        assert_eq!(addr + len, 256 << 20);
    }
}
