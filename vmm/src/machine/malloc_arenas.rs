//! One malloc arena for the whole process. glibc gives each thread that
//! allocates an arena of its own (up to 8 per CPU), and every arena keeps
//! pages resident of its own: in an idle container VMM in the test host
//! eight thread arenas held 264 KiB, the main heap 128 KiB; with one arena
//! the main heap held 272 KiB and there were no others, ~100 KiB less RSS
//! for each VMM (`/proc/PID/smaps`, three idle VMMs each way). The VMM's
//! threads allocate little and rarely at once, so sharing one lock costs
//! them nothing measurable.

/// Has every thread allocate from the main arena: glibc then makes no
/// thread arena at all. Call it first thing in `main`, before any thread
/// exists: arenas made before it stay in use.
pub fn use_one_arena() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets one of malloc's parameters under its own
    // lock; M_ARENA_MAX with a positive value is a documented setting.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
