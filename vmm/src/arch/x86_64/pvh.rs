//! PVH boot: `hvm_start_info`, the memory map and the initrd module entry,
//! written through linux-loader's PVH boot configurator.

use linux_loader::configurator::pvh::PvhBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::layout::{CMDLINE_START, PVH_INFO_START, PVH_MEMMAP_START, PVH_MODLIST_START};
use super::memory_map::e820_map;

/// Magic value of `hvm_start_info` ("xEn3" with the high bit set).
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// Errors writing PVH boot information.
#[derive(Debug, thiserror::Error)]
pub enum PvhError {
    /// linux-loader rejected or could not write the structures.
    #[error("cannot write the PVH start info")]
    Write(#[source] linux_loader::configurator::Error),
}

/// A loaded initrd: guest address and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InitrdRegion {
    /// Guest physical start.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The start info, memory map and module list for a guest of `mem_size`
/// bytes (pure: nothing written yet).
pub fn start_info(
    mem_size: u64,
    initrd: Option<InitrdRegion>,
) -> (
    hvm_start_info,
    Vec<hvm_memmap_table_entry>,
    Vec<hvm_modlist_entry>,
) {
    let memmap: Vec<hvm_memmap_table_entry> = e820_map(mem_size)
        .into_iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        })
        .collect();
    let modules: Vec<hvm_modlist_entry> = initrd
        .map(|r| hvm_modlist_entry {
            paddr: r.addr,
            size: r.size,
            ..Default::default()
        })
        .into_iter()
        .collect();
    let info = hvm_start_info {
        magic: XEN_HVM_START_MAGIC_VALUE,
        version: 1,
        cmdline_paddr: CMDLINE_START,
        memmap_paddr: PVH_MEMMAP_START,
        memmap_entries: memmap.len() as u32,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() {
            0
        } else {
            PVH_MODLIST_START
        },
        ..Default::default()
    };
    (info, memmap, modules)
}

/// Writes the PVH boot information into guest memory at [`PVH_INFO_START`].
pub fn write_start_info(
    mem: &GuestMemoryMmap,
    mem_size: u64,
    initrd: Option<InitrdRegion>,
) -> Result<(), PvhError> {
    let (info, memmap, modules) = start_info(mem_size, initrd);
    let mut params = BootParams::new(&info, GuestAddress(PVH_INFO_START));
    params.set_sections(&memmap, GuestAddress(PVH_MEMMAP_START));
    if !modules.is_empty() {
        params.set_modules(&modules, GuestAddress(PVH_MODLIST_START));
    }
    PvhBootConfigurator::write_bootparams(&params, mem).map_err(PvhError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn start_info_describes_memory_cmdline_and_initrd() {
        let initrd = InitrdRegion {
            addr: 0x700_0000,
            size: 0x1234,
        };
        let (info, memmap, modules) = start_info(128 << 20, Some(initrd));
        assert_eq!(info.magic, XEN_HVM_START_MAGIC_VALUE);
        assert_eq!(info.version, 1);
        assert_eq!(info.cmdline_paddr, CMDLINE_START);
        assert_eq!(info.memmap_entries as usize, memmap.len());
        assert_eq!(memmap.len(), 2);
        assert_eq!(info.nr_modules, 1);
        assert_eq!(info.modlist_paddr, PVH_MODLIST_START);
        assert_eq!((modules[0].paddr, modules[0].size), (0x700_0000, 0x1234));

        let (info, _, modules) = start_info(128 << 20, None);
        assert_eq!((info.nr_modules, info.modlist_paddr), (0, 0));
        assert!(modules.is_empty());
    }

    #[test]
    fn written_structures_read_back() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let initrd = InitrdRegion {
            addr: 0x8_0000,
            size: 42,
        };
        write_start_info(&mem, 128 << 20, Some(initrd)).unwrap();
        let magic: u32 = mem.read_obj(GuestAddress(PVH_INFO_START)).unwrap();
        assert_eq!(magic, XEN_HVM_START_MAGIC_VALUE);
        let second: hvm_memmap_table_entry =
            mem.read_obj(GuestAddress(PVH_MEMMAP_START + 24)).unwrap();
        assert_eq!(second.addr, 0x10_0000);
        let module: hvm_modlist_entry = mem.read_obj(GuestAddress(PVH_MODLIST_START)).unwrap();
        assert_eq!((module.paddr, module.size), (0x8_0000, 42));
    }
}
