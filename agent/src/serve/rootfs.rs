//! Where a container's root filesystem comes from.
//!
//! In the guest, [`GuestRootfs`] mounts what the host named in `Create`
//! (a virtio-fs tag or a virtio-blk device). Host tests use
//! [`HostDirRootfs`], which hands out directories that already exist; it is
//! an agent-side test seam, not part of the protocol.

use std::collections::HashMap;
use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use vmrun_protocol::RootfsSource;

/// Makes a container's rootfs available as a directory.
pub trait RootfsProvider: Send + Sync {
    /// Makes `source` available for container `id` (already validated as a
    /// safe path component); read-only if `readonly`. Returns the directory.
    fn prepare(&self, id: &str, source: &RootfsSource, readonly: bool) -> Result<PathBuf>;

    /// Undoes [`prepare`](Self::prepare) (best effort, logged).
    fn release(&self, id: &str, path: &Path);
}

/// Mounts rootfs sources under `<base>/<id>/rootfs` (base `/run/vmrun/rootfs`
/// in the guest).
#[derive(Debug, Clone)]
pub struct GuestRootfs {
    base: PathBuf,
}

/// Where the guest mounts container root filesystems.
pub const GUEST_ROOTFS_BASE: &str = "/run/vmrun/rootfs";

impl GuestRootfs {
    /// Mounts below `base`.
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }
}

impl RootfsProvider for GuestRootfs {
    fn prepare(&self, id: &str, source: &RootfsSource, readonly: bool) -> Result<PathBuf> {
        let target = self.base.join(id).join("rootfs");
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&target)
            .with_context(|| format!("creating the rootfs mount point {}", target.display()))?;
        let mut flags = MsFlags::empty();
        if readonly {
            flags |= MsFlags::MS_RDONLY;
        }
        let result = match source {
            RootfsSource::VirtioFs { tag } => {
                if tag.is_empty() {
                    bail!("rootfs.tag: the virtio-fs tag is empty");
                }
                mount(
                    Some(tag.as_str()),
                    &target,
                    Some("virtiofs"),
                    flags,
                    None::<&str>,
                )
                .with_context(|| {
                    format!(
                        "rootfs: mounting virtio-fs tag {tag:?} on {}",
                        target.display()
                    )
                })
            }
            RootfsSource::Block { device, fstype } => {
                if !device.starts_with("/dev/") {
                    bail!("rootfs.device: {device:?} is not a /dev path");
                }
                if fstype.is_empty() {
                    bail!("rootfs.fstype: empty");
                }
                mount(
                    Some(device.as_str()),
                    &target,
                    Some(fstype.as_str()),
                    flags,
                    None::<&str>,
                )
                .with_context(|| {
                    format!(
                        "rootfs: mounting {device} ({fstype}) on {}",
                        target.display()
                    )
                })
            }
        };
        if let Err(err) = result {
            let _ = std::fs::remove_dir(&target);
            let _ = std::fs::remove_dir(self.base.join(id));
            return Err(err);
        }
        Ok(target)
    }

    fn release(&self, id: &str, path: &Path) {
        if let Err(errno) = umount2(path, MntFlags::empty()) {
            tracing::warn!(
                "unmounting {}: {errno}; detaching it instead",
                path.display()
            );
            if let Err(errno) = umount2(path, MntFlags::MNT_DETACH) {
                tracing::warn!("detaching {}: {errno}", path.display());
                return;
            }
        }
        let _ = std::fs::remove_dir(path);
        let _ = std::fs::remove_dir(self.base.join(id));
    }
}

/// Host-test seam: a virtio-fs tag names a directory that already exists
/// (nothing is mounted). Any other source is refused.
#[derive(Debug, Clone, Default)]
pub struct HostDirRootfs {
    dirs: HashMap<String, PathBuf>,
}

impl HostDirRootfs {
    /// Maps each tag to a directory.
    pub fn new(dirs: impl IntoIterator<Item = (String, PathBuf)>) -> Self {
        Self {
            dirs: dirs.into_iter().collect(),
        }
    }
}

impl RootfsProvider for HostDirRootfs {
    fn prepare(&self, _id: &str, source: &RootfsSource, _readonly: bool) -> Result<PathBuf> {
        let RootfsSource::VirtioFs { tag } = source else {
            bail!("rootfs: only virtio-fs tags are served from host directories");
        };
        let Some(dir) = self.dirs.get(tag) else {
            bail!("rootfs.tag: no virtio-fs share with tag {tag:?}");
        };
        if !dir.is_dir() {
            bail!("rootfs: {} is not a directory", dir.display());
        }
        Ok(dir.clone())
    }

    fn release(&self, _id: &str, _path: &Path) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_dirs_are_found_by_tag_only() {
        let dir = tempfile::tempdir().unwrap();
        let provider = HostDirRootfs::new([("root".to_owned(), dir.path().to_path_buf())]);
        let tag = |tag: &str| RootfsSource::VirtioFs { tag: tag.into() };
        assert_eq!(
            provider.prepare("c", &tag("root"), false).unwrap(),
            dir.path()
        );
        let err = provider.prepare("c", &tag("other"), false).unwrap_err();
        assert!(err.to_string().contains("\"other\""), "{err}");
        let block = RootfsSource::Block {
            device: "/dev/vda".into(),
            fstype: "ext4".into(),
        };
        assert!(provider.prepare("c", &block, false).is_err());
    }

    #[test]
    fn guest_mount_errors_name_the_source() {
        let base = tempfile::tempdir().unwrap();
        let provider = GuestRootfs::new(base.path());
        let bad_device = RootfsSource::Block {
            device: "vda".into(),
            fstype: "ext4".into(),
        };
        let err = provider.prepare("c", &bad_device, true).unwrap_err();
        assert!(err.to_string().starts_with("rootfs.device"), "{err}");
        let empty_tag = RootfsSource::VirtioFs { tag: String::new() };
        let err = provider.prepare("c", &empty_tag, true).unwrap_err();
        assert!(err.to_string().starts_with("rootfs.tag"), "{err}");
        // A device that does not exist: the mount fails, nothing is left.
        let missing = RootfsSource::Block {
            device: "/dev/vmrun-no-such-disk".into(),
            fstype: "ext4".into(),
        };
        let err = format!("{:#}", provider.prepare("c", &missing, true).unwrap_err());
        assert!(err.contains("/dev/vmrun-no-such-disk"), "{err}");
        assert!(!base.path().join("c").exists(), "mount point left behind");
    }
}
