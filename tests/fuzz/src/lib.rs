//! Harness code shared by the libFuzzer targets in `fuzz_targets/`.
//!
//! The targets drive vmrun's hostile-input code (virtio queues and the
//! MMIO transport, the vsock router, the agent protocol, OCI image
//! documents and the layer unpacker) with bytes from libFuzzer. What they
//! share lives here:
//!
//! | module | concern |
//! |---|---|
//! | [`crash_stack`] | an alternate signal stack, so a stack overflow is reported and its input saved |
//! | [`input`] | reading small numbers and sections out of the fuzzer's bytes |
//! | [`tree`] | directory snapshots, to assert that nothing outside a sandbox directory changed |
//! | [`tar_fixup`] | recomputing tar header checksums, so mutated archives reach the unpacker |
//! | [`socket_watch`] | epoll's one-shot semantics, standing in for the vsock worker's event loop |
//! | [`virtq`] | a well-behaved driver side of one virtqueue (rings in guest memory) |

pub mod crash_stack;
pub mod input;
pub mod socket_watch;
pub mod tar_fixup;
pub mod tree;
pub mod virtq;
