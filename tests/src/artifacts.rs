//! Where the tests find the `vmrun` binary and the guest artifacts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root (this package lives in `tests/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The artifact cache (TEAM contract 1): `$VMRUN_CACHE_DIR` or `/var/cache/vmrun`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("VMRUN_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/vmrun"))
}

/// Candidate `vmrun` binaries next to this test executable: the same cargo
/// profile first (`target/<profile>/deps/<test>` → `target/<profile>/vmrun`),
/// then the other profile.
fn vmrun_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(exe) = std::env::current_exe() else {
        return out;
    };
    // target/<profile>/deps/<exe>
    let Some(profile_dir) = exe.parent().and_then(Path::parent) else {
        return out;
    };
    out.push(profile_dir.join("vmrun"));
    if let Some(target) = profile_dir.parent() {
        for profile in ["release", "debug"] {
            let p = target.join(profile).join("vmrun");
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The `vmrun` binary under test: `$VMRUN_BIN`, else the one cargo built in
/// the same target directory as this test. Panics with a how-to if none.
pub fn vmrun_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("VMRUN_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "VMRUN_BIN={} does not exist", p.display());
        return p;
    }
    let candidates = vmrun_candidates();
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no vmrun binary found (looked at {candidates:?}); build it with \
                 `cargo build -p vmrun` or set VMRUN_BIN"
            )
        })
}

fn artifact(env: &str, default_name: &str, how: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join(default_name));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is not built ({how}, or set {env})",
            path.display()
        ))
    }
}

/// Our guest kernel: `$VMRUN_KERNEL` or `$CACHE/vmlinux`.
pub fn guest_kernel() -> Result<PathBuf, String> {
    artifact("VMRUN_KERNEL", "vmlinux", "run kernel-config/build.sh")
}

/// Our initramfs with the agent as /init: `$VMRUN_INITRD` or
/// `$CACHE/initramfs.cpio`.
pub fn guest_initrd() -> Result<PathBuf, String> {
    artifact(
        "VMRUN_INITRD",
        "initramfs.cpio",
        "run rootfs/build-initramfs.sh",
    )
}

fn build_busybox_initrd() -> Result<PathBuf, String> {
    let script = repo_root().join("rootfs/build-busybox-initramfs.sh");
    if !script.is_file() {
        return Err(format!("{} does not exist", script.display()));
    }
    let dir = std::env::temp_dir().join(format!("vmrun-tests-busybox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let out = dir.join("busybox-initramfs.cpio.gz");
    let result = Command::new(&script)
        .arg(&out)
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    if !result.status.success() || !out.is_file() {
        return Err(format!(
            "{} {} failed ({}):\n{}{}",
            script.display(),
            out.display(),
            result.status,
            String::from_utf8_lossy(&result.stdout),
            String::from_utf8_lossy(&result.stderr)
        ));
    }
    Ok(out)
}

/// A busybox initramfs that is not ours (its /init prints
/// `busybox-init: hello` and reboots): `$VMRUN_TEST_BUSYBOX_INITRD`, else
/// built once per test process with `rootfs/build-busybox-initramfs.sh`.
pub fn busybox_initrd() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("VMRUN_TEST_BUSYBOX_INITRD") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "VMRUN_TEST_BUSYBOX_INITRD={} does not exist",
                p.display()
            ))
        };
    }
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT.get_or_init(build_busybox_initrd).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_holds_the_workspace() {
        assert!(repo_root().join("Cargo.toml").is_file());
        assert!(repo_root().join("tests/Cargo.toml").is_file());
    }

    #[test]
    fn vmrun_candidates_are_in_the_target_dir() {
        let c = vmrun_candidates();
        assert!(!c.is_empty());
        assert!(c.iter().all(|p| p.ends_with("vmrun")));
    }
}
