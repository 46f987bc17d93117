//! Unit tests acting as a fake (and hostile) driver.

mod block_tests;
mod chain_tests;
mod common_tests;
mod failure_tests;
mod fs_escape_tests;
mod fs_read_only_tests;
mod fs_tests;
mod fuzz_tests;
mod log_capture;
mod log_limit_tests;
mod mmio_tests;
mod net;
mod vsock;
mod worker_tests;
