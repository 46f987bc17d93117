//! Guest memory: anonymous, demand-paged mappings managed by vm-memory.

use vm_memory::{GuestAddress, GuestMemory, GuestMemoryMmap, GuestMemoryRegion};

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
/// also keeps each region its own mapping in `/proc/PID/smaps`).
pub fn create_guest_memory(
    ranges: &[(GuestAddress, usize)],
) -> Result<GuestMemoryMmap, MemoryError> {
    let memory = GuestMemoryMmap::from_ranges(ranges).map_err(|source| MemoryError::Mmap {
        size_mib: ranges.iter().map(|(_, s)| *s as u64).sum::<u64>() >> 20,
        source,
    })?;
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
