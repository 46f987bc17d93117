//! The real clients, unchanged, driving the runtime under test (issue 13):
//! podman 4.3 + conmon (`podman.rs`), containerd 1.6's `ctr` through the
//! runc v2 shim (`ctr.rs`) and containerd's CRI plugin through our CRI
//! client `vmrun-cri` (`cri.rs`). Each test gets its own private podman or
//! containerd (own storage, state, sockets, network namespace, cgroup
//! parent) and leaves nothing behind. Every assertion checks an output or
//! an exit code the client reports.
//!
//! The runtime is vmrun by default: these are guest tests, so they skip
//! loudly where guests cannot run (and fail under `VMRUN_REQUIRE_GUEST=1`).
//! `VMRUN_CLIENTS_RUNTIME=runc` runs the very same tests with runc, which
//! validates the harness on any host.
//!
//! Before running: `cargo build --release -p vmrun -p vmrun-cri-client`
//! (the CRI tests run `vmrun-cri`; `VMRUN_CRI_CLIENT` overrides its path).

mod cri;
mod ctr;
mod podman;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use vmrun_tests::clients::{image_archive, RuntimeUnderTest};
use vmrun_tests::{boot_timeout, scratch_dir};

/// The scratch directory (a tmpfs inside the test host).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch_dir("vmrun-guest-clients", "1g"))
}

/// The image archive (busybox + pause), built once.
fn images() -> &'static Path {
    image_archive(scratch())
}

/// A fresh directory for one test's client environment. Its name is short
/// (`e<n>`): podman refuses a run root longer than 50 characters (conmon's
/// socket paths must fit a sockaddr_un). Printed, to find it in a failure.
fn env_dir(test: &str) -> PathBuf {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    let dir = scratch().join(format!("e{}", COUNT.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("{test}: client environment in {}", dir.display());
    dir
}

/// The hang guard of one client command (a container start takes ~10 s in
/// the test host; this only catches hangs).
fn limit() -> Duration {
    boot_timeout()
}

/// The host's kernel release.
fn host_kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .expect("read the kernel release")
        .trim()
        .to_string()
}

/// Asserts that `uname -r` printed inside a container shows the runtime
/// under test: vmrun's containers run on the guest's own kernel, runc's on
/// the host's.
fn assert_kernel_of(runtime: &RuntimeUnderTest, uname_r: &str, context: &str) {
    let inside = uname_r.trim();
    let host = host_kernel_release();
    assert!(!inside.is_empty(), "{context}: no kernel release printed");
    if runtime.is_vmrun() {
        assert_ne!(
            inside, host,
            "{context}: the container runs on the host's kernel, not in a microVM"
        );
    } else {
        assert_eq!(
            inside, host,
            "{context}: runc containers share the host's kernel"
        );
    }
}
