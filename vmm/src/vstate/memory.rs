//! Guest memory: anonymous, demand-paged mappings managed by vm-memory.

use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap, GuestMemoryRegion, GuestRegionMmap};

use super::huge_page_hole::{HugePageHole, HUGE_PAGE_SIZE};

/// Errors creating guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The anonymous mappings could not be created.
    #[error("cannot map {size_mib} MiB of guest memory")]
    Mmap {
        /// Requested size in MiB.
        size_mib: u64,
        /// The mapping error.
        #[source]
        source: vm_memory::mmap::FromRangesError,
    },
}

/// Maps guest memory for the given `(start, size)` ranges.
///
/// The mappings are private, anonymous and `MAP_NORESERVE`: pages are only
/// backed by host memory once the guest touches them. They are not
/// inherited by children (`MADV_DONTFORK`): the VMM runs `ip`/`tc`, and a
/// fork would otherwise copy the page tables of all of guest RAM (this
/// also keeps each region its own mapping in `/proc/PID/smaps`). A range
/// that starts at a 2 MiB-aligned guest address is mapped at a 2 MiB-aligned
/// host address, so that KVM can map the host's huge pages whole (see
/// [`super::huge_page_hole`]).
pub fn create_guest_memory(
    ranges: &[(GuestAddress, usize)],
) -> Result<GuestMemoryMmap, MemoryError> {
    let error = |source| MemoryError::Mmap {
        size_mib: ranges.iter().map(|(_, s)| *s as u64).sum::<u64>() >> 20,
        source,
    };
    let mut regions = Vec::with_capacity(ranges.len());
    for &(start, size) in ranges {
        // Aligned like its guest address where that is a huge page's.
        let aligned = start.0.is_multiple_of(HUGE_PAGE_SIZE as u64) && size >= HUGE_PAGE_SIZE;
        let mut hole = aligned.then(|| HugePageHole::reserve(size)).flatten();
        let region = GuestRegionMmap::from_range(start, size, None).map_err(error)?;
        if let Some(hole) = &mut hole {
            let address = region.as_ptr() as usize;
            // (Kernels since 6.7 align large anonymous mappings to 2 MiB
            // themselves, so the mapping may land aligned elsewhere.)
            if !hole.claim(address) && !address.is_multiple_of(HUGE_PAGE_SIZE) {
                tracing::debug!(
                    "guest RAM at {:#x} is not 2 MiB-aligned on the host: it gets 4 KiB nested pages",
                    start.0
                );
            }
        }
        regions.push(region);
    }
    let memory = GuestMemoryMmap::from_regions(regions)
        .map_err(|e| error(vm_memory::mmap::FromRangesError::Collection(e)))?;
    for region in memory.iter() {
        // SAFETY: the range is exactly one mapping vm-memory made and owns
        // for the lifetime of `memory`; MADV_DONTFORK changes no content.
        let rc = unsafe {
            libc::madvise(
                region.as_ptr().cast(),
                region.len() as usize,
                libc::MADV_DONTFORK,
            )
        };
        if rc != 0 {
            tracing::debug!(
                "madvise(MADV_DONTFORK) on guest memory: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_at_an_aligned_guest_address_is_aligned_on_the_host() {
        let ranges = [
            (GuestAddress(0), 64 << 20),
            (GuestAddress(0x1_0000_0000), 16 << 20),
        ];
        // Another thread of the test harness may take the hole between its
        // reservation and the mapping (a fallback, not an error): one try
        // in three must land.
        let aligned = (0..3).any(|_| {
            let memory = create_guest_memory(&ranges).unwrap();
            assert_eq!(memory.num_regions(), 2);
            let all = memory
                .iter()
                .all(|r| (r.as_ptr() as usize).is_multiple_of(HUGE_PAGE_SIZE));
            all
        });
        assert!(aligned, "guest RAM was never placed 2 MiB-aligned");
    }

    #[test]
    fn unaligned_or_small_ranges_are_mapped_as_asked() {
        let ranges = [
            (GuestAddress(0x1000), 0x3000),
            (GuestAddress(0x10_0000), 1 << 20),
        ];
        let memory = create_guest_memory(&ranges).unwrap();
        let got: Vec<(u64, u64)> = memory.iter().map(|r| (r.start_addr().0, r.len())).collect();
        assert_eq!(got, [(0x1000, 0x3000), (0x10_0000, 1 << 20)]);
    }
}
