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

    /// Resident pages of this process (`/proc/self/statm`), in KiB.
    fn resident_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
        pages * page / 1024
    }

    #[test]
    fn freed_heap_below_a_live_block_stops_being_resident() {
        // 32 MiB in 16 KiB blocks (below the mmap threshold: they come from
        // the arena), written so they are resident; then all freed but the
        // last, which keeps glibc from trimming the top of the heap.
        let mut blocks: Vec<Vec<u8>> = (0..2048).map(|_| vec![1u8; 16 << 10]).collect();
        let last = blocks.pop().unwrap();
        drop(blocks);
        let before = resident_kib();
        release_free_heap();
        let after = resident_kib();
        drop(last);
        assert!(
            before.saturating_sub(after) >= 16 << 10,
            "resident {before} KiB before, {after} KiB after"
        );
    }
}
