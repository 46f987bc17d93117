//! Scratch directories for guest tests' bundles.
//!
//! Inside the test host `/tmp` is an overlay over 9p, which virtio-fs (and
//! the image unpacker) would share and stat slowly; a tmpfs there behaves
//! like a real host's local disk.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once, OnceLock};

/// A guest test binary's scratch directory ([`scratch_dir`]) and the
/// busybox bundle its tests copy, each made once, on first use:
/// `static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-run", "512m");`
pub struct GuestScratch {
    prefix: &'static str,
    size: &'static str,
    dir: OnceLock<PathBuf>,
    base: OnceLock<PathBuf>,
}

impl GuestScratch {
    /// `$TMPDIR/<prefix>-<pid>`, a tmpfs of `size` inside the test host.
    pub const fn new(prefix: &'static str, size: &'static str) -> Self {
        Self {
            prefix,
            size,
            dir: OnceLock::new(),
            base: OnceLock::new(),
        }
    }

    /// The scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.get_or_init(|| scratch_dir(self.prefix, self.size))
    }

    /// The busybox bundle in `<dir>/base`.
    pub fn base_bundle(&self) -> &Path {
        self.base.get_or_init(|| {
            let dir = self.dir().join("base");
            crate::bundle::build_busybox_bundle(&dir);
            dir
        })
    }
}

/// Scratch directories to remove when the test binary exits.
static TO_REMOVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Creates `$TMPDIR/<prefix>-<pid>` and, inside the test host
/// (`VMRUN_IN_TESTHOST=1`), mounts a tmpfs of `size` (e.g. `512m`) on it.
/// The directory (and its tmpfs) is removed when the test binary exits,
/// whether its tests passed or failed. Panics with the reason if the set-up
/// fails (a test set-up error).
pub fn scratch_dir(prefix: &str, size: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the scratch dir");
    remove_at_exit(dir.clone());
    if in_testhost() {
        mount_tmpfs(&dir, size);
    }
    dir
}

/// Registers `dir` for removal when the process exits (libtest ends with
/// `exit`, which runs `atexit` handlers, also after failed tests).
fn remove_at_exit(dir: PathBuf) {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: `remove_scratch_dirs` is an `extern "C" fn()` that never
        // unwinds (it only ignores errors), as atexit handlers must.
        let rc = unsafe { libc::atexit(remove_scratch_dirs) };
        if rc != 0 {
            eprintln!(
                "warning: cannot register the scratch-dir clean-up; scratch dirs stay behind"
            );
        }
    });
    if let Ok(mut dirs) = TO_REMOVE.lock() {
        dirs.push(dir);
    }
}

/// Unmounts (inside the test host) and deletes every registered scratch dir.
extern "C" fn remove_scratch_dirs() {
    let dirs = match TO_REMOVE.lock() {
        Ok(mut dirs) => std::mem::take(&mut *dirs),
        Err(_) => return,
    };
    for dir in dirs {
        if in_testhost() {
            let _ = Command::new("umount").arg("--lazy").arg(&dir).status();
        }
        if let Err(err) = std::fs::remove_dir_all(&dir) {
            // Not eprintln!: it panics when stderr is gone, and a panic
            // must not unwind out of an atexit handler.
            let _ = writeln!(
                std::io::stderr(),
                "warning: cannot remove scratch dir {}: {err}",
                dir.display()
            );
        }
    }
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
