//! Guest RAM regions and the e820 map that describes them to the guest.

use vm_memory::GuestAddress;

use super::layout::{EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;

/// One e820 entry: `(start, size, type)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Guest physical start.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// e820 type ([`E820_RAM`]).
    pub kind: u32,
}

/// The RAM regions for `mem_size` bytes: below the MMIO hole, and the rest
/// above 4 GiB.
pub fn ram_regions(mem_size: u64) -> Vec<(GuestAddress, usize)> {
    let low = mem_size.min(MMIO_GAP_START);
    let mut regions = vec![(GuestAddress(0), low as usize)];
    if mem_size > MMIO_GAP_START {
        regions.push((
            GuestAddress(MMIO_GAP_END),
            (mem_size - MMIO_GAP_START) as usize,
        ));
    }
    regions
}

/// End (exclusive) of RAM below the MMIO hole.
pub fn low_ram_end(mem_size: u64) -> u64 {
    mem_size.min(MMIO_GAP_START)
}

/// The e820 map: base memory up to the EBDA, RAM from 1 MiB to the hole,
/// and RAM above 4 GiB. The EBDA/MP table, VGA and BIOS areas stay holes.
pub fn e820_map(mem_size: u64) -> Vec<E820Entry> {
    let mut map = vec![E820Entry {
        addr: 0,
        size: EBDA_START,
        kind: E820_RAM,
    }];
    let low_end = low_ram_end(mem_size);
    if low_end > HIMEM_START {
        map.push(E820Entry {
            addr: HIMEM_START,
            size: low_end - HIMEM_START,
            kind: E820_RAM,
        });
    }
    if mem_size > MMIO_GAP_START {
        map.push(E820Entry {
            addr: MMIO_GAP_END,
            size: mem_size - MMIO_GAP_START,
            kind: E820_RAM,
        });
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_vm_has_base_and_high_ram() {
        let map = e820_map(128 << 20);
        assert_eq!(map.len(), 2);
        assert_eq!((map[0].addr, map[0].size), (0, EBDA_START));
        assert_eq!(
            (map[1].addr, map[1].size),
            (HIMEM_START, (128 << 20) - HIMEM_START)
        );
        assert!(map.iter().all(|e| e.kind == E820_RAM));
        assert_eq!(ram_regions(128 << 20), vec![(GuestAddress(0), 128 << 20)]);
    }

    #[test]
    fn big_vm_skips_the_mmio_hole() {
        let size = 4u64 << 30;
        let map = e820_map(size);
        assert_eq!(map.len(), 3);
        assert_eq!(map[1].addr + map[1].size, MMIO_GAP_START);
        assert_eq!(map[2].addr, MMIO_GAP_END);
        let total: u64 = map[1].size + map[2].size + HIMEM_START;
        assert_eq!(total, size);
        let regions = ram_regions(size);
        assert_eq!(
            regions[1],
            (GuestAddress(MMIO_GAP_END), (size - MMIO_GAP_START) as usize)
        );
    }
}
