//! The guest's base filesystems, mounted by PID 1 in order.

use std::fs::DirBuilder;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::mount::{mount, MsFlags};

/// One filesystem to mount.
#[derive(Debug, Clone, Copy)]
pub struct MountSpec {
    /// Source (the filesystem name for virtual filesystems).
    pub source: &'static str,
    /// Absolute mount point; created (with `dir_mode`) if missing.
    pub target: &'static str,
    /// Filesystem type.
    pub fstype: &'static str,
    /// Mount flags.
    pub flags: MsFlags,
    /// Filesystem-specific options.
    pub data: Option<&'static str>,
    /// Mode for a mount point that has to be created.
    pub dir_mode: u32,
}

const NOSUID_NODEV_NOEXEC: MsFlags = MsFlags::MS_NOSUID
    .union(MsFlags::MS_NODEV)
    .union(MsFlags::MS_NOEXEC);
const NOSUID_NODEV: MsFlags = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);

/// What every vmrun guest has, parents before children.
pub const BASE_MOUNTS: &[MountSpec] = &[
    MountSpec {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        dir_mode: 0o555,
    },
    MountSpec {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: NOSUID_NODEV_NOEXEC,
        data: None,
        dir_mode: 0o555,
    },
    MountSpec {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
        dir_mode: 0o755,
    },
    // gid 5 is "tty" in Debian's and busybox's /etc/group.
    MountSpec {
        source: "devpts",
        target: "/dev/pts",
        fstype: "devpts",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
        data: Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        dir_mode: 0o755,
    },
    MountSpec {
        source: "shm",
        target: "/dev/shm",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
        dir_mode: 0o1777,
    },
    // nsdelegate: cgroup namespaces become delegation boundaries, as on
    // systemd hosts (containers get their own cgroup subtree).
    MountSpec {
        source: "cgroup2",
        target: "/sys/fs/cgroup",
        fstype: "cgroup2",
        flags: NOSUID_NODEV_NOEXEC,
        data: Some("nsdelegate"),
        dir_mode: 0o555,
    },
    MountSpec {
        source: "tmpfs",
        target: "/tmp",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=1777"),
        dir_mode: 0o1777,
    },
    MountSpec {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: NOSUID_NODEV,
        data: Some("mode=0755"),
        dir_mode: 0o755,
    },
];

/// Mounts `specs` in order. A target that is already a mount point of the
/// same kind (EBUSY) is kept; any other failure is an error naming it.
pub fn mount_all(specs: &[MountSpec]) -> Result<()> {
    for spec in specs {
        mount_one(spec)?;
    }
    Ok(())
}

fn mount_one(spec: &MountSpec) -> Result<()> {
    let target = Path::new(spec.target);
    match DirBuilder::new()
        .recursive(true)
        .mode(spec.dir_mode)
        .create(target)
    {
        Ok(()) => {}
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(err) => {
            return Err(err).with_context(|| format!("creating mount point {}", spec.target))
        }
    }
    match mount(
        Some(spec.source),
        target,
        Some(spec.fstype),
        spec.flags,
        spec.data,
    ) {
        Ok(()) => Ok(()),
        Err(Errno::EBUSY) => {
            tracing::debug!("{} already mounted", spec.target);
            Ok(())
        }
        Err(errno) => Err(errno).with_context(|| {
            format!(
                "mounting {} on {} (options {:?})",
                spec.fstype,
                spec.target,
                spec.data.unwrap_or("")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_the_base_filesystems() {
        let targets: Vec<&str> = BASE_MOUNTS.iter().map(|m| m.target).collect();
        for wanted in [
            "/proc",
            "/sys",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/sys/fs/cgroup",
            "/tmp",
            "/run",
        ] {
            assert!(targets.contains(&wanted), "{wanted} missing");
        }
        let cgroup = BASE_MOUNTS.iter().find(|m| m.target == "/sys/fs/cgroup");
        assert_eq!(cgroup.map(|m| m.fstype), Some("cgroup2"));
    }

    #[test]
    fn parents_are_mounted_before_children() {
        for (i, child) in BASE_MOUNTS.iter().enumerate() {
            for (j, parent) in BASE_MOUNTS.iter().enumerate() {
                let nested = child
                    .target
                    .strip_prefix(parent.target)
                    .is_some_and(|rest| rest.starts_with('/'));
                if nested {
                    assert!(j < i, "{} must come before {}", parent.target, child.target);
                }
            }
        }
    }

    #[test]
    fn targets_are_absolute_and_unique() {
        for (i, spec) in BASE_MOUNTS.iter().enumerate() {
            assert!(spec.target.starts_with('/'), "{}", spec.target);
            assert!(
                BASE_MOUNTS[..i].iter().all(|m| m.target != spec.target),
                "{} twice",
                spec.target
            );
        }
    }
}
