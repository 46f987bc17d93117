//! Helpers for vmrun's integration tests, which drive the `vmrun` binary
//! like a user does.
//!
//! Guest tests need a host whose `/dev/kvm` runs stock Linux guests. Where
//! that is missing (e.g. a PVM host) they print a loud `SKIPPED:` line and
//! return, unless `VMRUN_REQUIRE_GUEST=1` is set (the test-host runner
//! `tests/testhost/run-guest-tests.sh` sets it), which turns a missing
//! capability into a failure.

pub mod artifacts;
pub mod bundle;
pub mod caller;
pub mod clients;
pub mod console;
pub mod console_socket;
pub mod cpio;
pub mod guest_env;
pub mod leftovers;
pub mod process;
pub mod runtimes;
pub mod scratch;
pub mod test_network;

pub use artifacts::{busybox_initrd, guest_initrd, guest_kernel, vmrun_bin};
pub use console::ReadyLine;
pub use guest_env::{guest_ready, GuestReadiness};
pub use process::{boot_timeout, run_ok, run_vmrun, wait_until, RunOutput};
pub use scratch::scratch_dir;
