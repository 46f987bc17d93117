//! Scratch directories for guest tests' bundles.
//!
//! Inside the test host `/tmp` is an overlay over 9p, which virtio-fs (and
//! the image unpacker) would share and stat slowly; a tmpfs there behaves
//! like a real host's local disk.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Creates `$TMPDIR/<prefix>-<pid>` and, inside the test host
/// (`VMRUN_IN_TESTHOST=1`), mounts a tmpfs of `size` (e.g. `512m`) on it.
/// Panics with the reason if that fails (a test set-up error).
pub fn scratch_dir(prefix: &str, size: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch dir");
    if in_testhost() {
        mount_tmpfs(&dir, size);
    }
    dir
}

/// Are these tests running inside the test host?
pub fn in_testhost() -> bool {
    std::env::var("VMRUN_IN_TESTHOST").is_ok_and(|v| v == "1")
}

/// Mounts a tmpfs of `size` on `dir`; panics if that fails.
pub fn mount_tmpfs(dir: &Path, size: &str) {
    let status = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .expect("run mount");
    assert!(status.success(), "mounting a tmpfs on {}", dir.display());
}
