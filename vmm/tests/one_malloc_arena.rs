//! `machine::malloc_arenas::use_one_arena`, called before any thread
//! exists, has the allocations of later threads come from the main arena:
//! glibc's main arena is the `[heap]` mapping (brk), a thread arena a
//! mapping of its own. Runs without libtest (`harness = false`), whose
//! threads would have made arenas first.

use std::ops::Range;

fn heap_range() -> Range<usize> {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("reading /proc/self/maps");
    let line = maps
        .lines()
        .find(|line| line.ends_with("[heap]"))
        .expect("no [heap] mapping");
    let range = line.split_whitespace().next().expect("an address range");
    let (start, end) = range.split_once('-').expect("start-end");
    let hex = |s: &str| usize::from_str_radix(s, 16).expect("a hex address");
    hex(start)..hex(end)
}

fn main() {
    vmrun::machine::malloc_arenas::use_one_arena();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            std::thread::spawn(|| {
                // Small blocks, below the mmap threshold: from an arena.
                let blocks: Vec<Box<[u8; 512]>> = (0..64).map(|_| Box::new([7u8; 512])).collect();
                let addresses: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
                (addresses, blocks)
            })
        })
        .collect();
    let results: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("a thread panicked"))
        .collect();
    let heap = heap_range();
    let outside: Vec<usize> = results
        .iter()
        .flat_map(|(addresses, _)| addresses.iter().copied())
        .filter(|a| !heap.contains(a))
        .collect();
    assert!(
        outside.is_empty(),
        "{} of 256 blocks the threads allocated lie outside the main heap {heap:x?}: {:x?}",
        outside.len(),
        &outside[..outside.len().min(4)]
    );
    println!("one_malloc_arena: 256 blocks of 4 threads all in the main heap: ok");
}
