//! virtio-blk request processing over guest memory the fuzzer writes:
//! descriptor table at 0x0, avail ring at 0x1000, used ring at 0x2000,
//! buffers anywhere in the 128 KiB of guest RAM (see
//! `vmrun_virtio::fuzz::fuzz_block_queue`). Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    vmrun_virtio::fuzz::fuzz_block_queue(data);
});
