//! Guest memory: anonymous, demand-paged mappings managed by vm-memory.

use vm_memory::{GuestAddress, GuestMemoryMmap};

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
/// backed by host memory once the guest touches them.
pub fn create_guest_memory(
    ranges: &[(GuestAddress, usize)],
) -> Result<GuestMemoryMmap, MemoryError> {
    GuestMemoryMmap::from_ranges(ranges).map_err(|source| MemoryError::Mmap {
        size_mib: ranges.iter().map(|(_, s)| *s as u64).sum::<u64>() >> 20,
        source,
    })
}
