//! Giving the set-up's heap back: by the time the vCPUs run, what parsing
//! the command line (clap builds every verb's arguments) and building the
//! machine allocated is freed, but glibc keeps freed pages below the top of
//! its heap resident for reuse. A VMM lives as long as its guest, so those
//! pages would count in its RSS for its whole life.

/// Returns the whole free pages of every malloc arena to the kernel.
pub fn release_free_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes each arena's lock and only releases pages
    // of chunks that are free; it touches no memory the program owns.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How many of the pages holding `blocks` are resident (`mincore`).
    /// Only those pages are looked at: other tests' threads allocate and
    /// free beside this one, so the whole process's RSS says little.
    fn resident_pages(blocks: &[(usize, usize)]) -> usize {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mut pages = std::collections::BTreeSet::new();
        for &(start, len) in blocks {
            pages.extend((start / page..(start + len).div_ceil(page)).map(|p| p * page));
        }
        pages
            .into_iter()
            .filter(|&at| {
                let mut vec = 0u8;
                // SAFETY: mincore only reports on the page at `at`
                // (page-aligned, one page long), never touching it: an
                // unmapped page is ENOMEM, counted as not resident. It
                // writes one byte, into `vec`, which outlives the call.
                let rc = unsafe { libc::mincore(at as *mut libc::c_void, page, &mut vec) };
                rc == 0 && vec & 1 == 1
            })
            .count()
    }

    #[test]
    fn freed_heap_below_a_live_block_stops_being_resident() {
        // 32 MiB in 16 KiB blocks (below the mmap threshold: they come from
        // the arena), written so they are resident; then all freed but the
        // last, which keeps glibc from trimming the top of the heap.
        let mut blocks: Vec<Vec<u8>> = (0..2048).map(|_| vec![1u8; 16 << 10]).collect();
        let last = blocks.pop().unwrap();
        let freed: Vec<(usize, usize)> = blocks
            .iter()
            .map(|b| (b.as_ptr() as usize, b.len()))
            .collect();
        drop(blocks);
        let before = resident_pages(&freed);
        release_free_heap();
        let after = resident_pages(&freed);
        drop(last);
        // 32 MiB is 8192 pages: at least half of them given back.
        assert!(
            before >= 7 << 10 && after <= before - (4 << 10),
            "{before} of the freed blocks' pages resident before, {after} after"
        );
    }
}
