//! Refuses a rootfs whose special directories or device nodes are symlinks.
//!
//! libcontainer resolves mount destinations inside the root, so a symlinked
//! `/proc` would land *somewhere* inside the root; runc refuses such a rootfs
//! outright and so do we: a container whose `/proc` is not procfs (or whose
//! `/dev/null` is a regular file it controls) is a confused-deputy trap.

use std::path::{Component, Path, PathBuf};

use crate::oci_spec::runtime::Spec;
use crate::IsolationError;

/// Paths (relative to the rootfs) that must never be symlinks.
const FIXED: [&str; 13] = [
    "proc",
    "sys",
    "dev",
    "dev/null",
    "dev/zero",
    "dev/full",
    "dev/random",
    "dev/urandom",
    "dev/tty",
    "dev/console",
    "dev/ptmx",
    "dev/pts",
    "dev/shm",
];

/// Checks every component of the special paths and of the spec's `proc`,
/// `sysfs`, `devpts`, `cgroup` and `mqueue` mount destinations: none may be
/// a symlink. Missing paths are fine (the runtime creates them).
pub fn check_rootfs(rootfs: &Path, spec: &Spec) -> Result<(), IsolationError> {
    let meta = std::fs::metadata(rootfs)
        .map_err(|e| IsolationError::io(format!("rootfs {}", rootfs.display()), e))?;
    if !meta.is_dir() {
        return Err(IsolationError::UnsafeRootfs {
            path: rootfs.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let special_mounts = spec.mounts().iter().flatten().filter(|m| {
        matches!(
            m.typ().as_deref(),
            Some("proc" | "sysfs" | "devpts" | "cgroup" | "cgroup2" | "mqueue")
        )
    });
    let from_spec = special_mounts.map(|m| m.destination().clone());
    let fixed = FIXED.iter().map(PathBuf::from);
    for rel in fixed.chain(from_spec) {
        check_no_symlink(rootfs, &rel)?;
    }
    Ok(())
}

/// Walks `rel` below `rootfs` component by component; errors on a symlink.
fn check_no_symlink(rootfs: &Path, rel: &Path) -> Result<(), IsolationError> {
    let mut here = rootfs.to_path_buf();
    let mut shown = PathBuf::from("/");
    for comp in rel.components() {
        let Component::Normal(name) = comp else {
            continue;
        };
        here.push(name);
        shown.push(name);
        match std::fs::symlink_metadata(&here) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = std::fs::read_link(&here)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Err(IsolationError::UnsafeRootfs {
                    path: shown,
                    reason: format!("is a symlink (to {target}); refusing to mount over it"),
                });
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(IsolationError::io(
                    format!("checking {}", here.display()),
                    e,
                ))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec;

    fn spec() -> Spec {
        parse_spec(
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "mounts":[{"destination":"/run/mq","type":"mqueue","source":"mqueue"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn plain_rootfs_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        check_rootfs(dir.path(), &spec()).unwrap();
    }

    #[test]
    fn proc_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("proc")).unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("/proc"), "{err}");
    }

    #[test]
    fn dev_null_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("dev/null")).unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("/dev/null"), "{err}");
    }

    #[test]
    fn symlinked_parent_of_special_mount_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("run")).unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("/run"), "{err}");
    }
}
