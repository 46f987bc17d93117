//! virtio-vsock TX then RX processing over guest memory the fuzzer writes
//! (one queue at the layout of `vmrun_virtio::fuzz::fuzz_vsock_queues`),
//! with a host listener on port 1024 so guest REQUESTs open connections.
//! Must never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    vmrun_virtio::fuzz::fuzz_vsock_queues(data);
});
