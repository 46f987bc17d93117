//! Where a container's root filesystem comes from.
//!
//! In the guest, [`GuestRootfs`] mounts what the host named in `Create`
//! (a virtio-fs tag, a directory within a share, or a virtio-blk device)
//! at `<base>/<id>/rootfs`. Host tests use [`HostDirRootfs`], which hands
//! out directories that already exist, or [`GuestRootfs`] over [`Shares`]
//! whose mounter bind-mounts host directories; both are agent-side test
//! seams, not part of the protocol.

use std::collections::HashMap;
use std::fs::DirBuilder;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use vmrun_protocol::RootfsSource;

use super::shares::{check_share_path, open_beneath, Shares};

/// Makes a container's rootfs available as a directory.
pub trait RootfsProvider: Send + Sync {
    /// Makes `source` available for container `id` (already validated as a
    /// safe path component); read-only if `readonly` (`root.readonly`),
    /// unless that is left to the container runtime, which remounts the
    /// container's `/` read-only in any case. Returns the directory.
    fn prepare(&self, id: &str, source: &RootfsSource, readonly: bool) -> Result<PathBuf>;

    /// Undoes [`prepare`](Self::prepare) (best effort, logged).
    fn release(&self, id: &str, path: &Path);
}

/// Mounts rootfs sources under `<base>/<id>/rootfs` (base `/run/vmrun/rootfs`
/// in the guest): a virtio-fs tag (its root) or a block device directly
/// (read-only when asked), a directory within a share as a bind mount of
/// it (writable: `root.readonly` is then left to the container runtime,
/// which remounts the container's `/` read-only after making its mount
/// points, as runc does).
#[derive(Debug, Clone)]
pub struct GuestRootfs {
    base: PathBuf,
    shares: Arc<Shares>,
}

/// Where the guest mounts container root filesystems.
pub const GUEST_ROOTFS_BASE: &str = "/run/vmrun/rootfs";

impl GuestRootfs {
    /// Mounts below `base`; a rootfs within a share comes from `shares`.
    pub fn new(base: impl Into<PathBuf>, shares: Arc<Shares>) -> Self {
        Self {
            base: base.into(),
            shares,
        }
    }

    /// Bind-mounts directory `path` of share `tag` (mounted first if it is
    /// not yet) on `target`. Writable even for `root.readonly`: the
    /// container runtime creates missing mount points in the rootfs, then
    /// remounts the container's `/` read-only before its init waits for
    /// `Start` (as runc does); a read-only bind here would make every bind
    /// mount onto a path the image lacks fail.
    fn bind_from_share(&self, tag: &str, path: &str, target: &Path) -> Result<()> {
        let path = check_share_path("rootfs.path", path)?;
        let share = self.shares.ensure("rootfs.tag", tag)?;
        let dir = open_beneath("rootfs.path", &share, path)?;
        let source = format!("/proc/self/fd/{}", dir.as_raw_fd());
        mount(
            Some(source.as_str()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "rootfs: bind-mounting {} of share {tag:?} on {}",
                path.display(),
                target.display()
            )
        })
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
            RootfsSource::VirtioFs {
                tag,
                path: Some(path),
            } => self.bind_from_share(tag, path, &target),
            RootfsSource::VirtioFs { tag, path: None } => {
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
                .map(|()| super::readahead::widen(&target))
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
        let RootfsSource::VirtioFs { tag, path: None } = source else {
            bail!("rootfs: only virtio-fs tags (no path) are served from host directories");
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
    use crate::serve::shares::HostDirMounter;

    #[test]
    fn host_dirs_are_found_by_tag_only() {
        let dir = tempfile::tempdir().unwrap();
        let provider = HostDirRootfs::new([("root".to_owned(), dir.path().to_path_buf())]);
        let tag = |tag: &str| RootfsSource::VirtioFs {
            tag: tag.into(),
            path: None,
        };
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
        let shares = Shares::new(
            base.path().join("shares"),
            Box::new(HostDirMounter::default()),
        );
        let provider = GuestRootfs::new(base.path().join("rootfs"), Arc::new(shares));
        let bad_device = RootfsSource::Block {
            device: "vda".into(),
            fstype: "ext4".into(),
        };
        let err = provider.prepare("c", &bad_device, true).unwrap_err();
        assert!(err.to_string().starts_with("rootfs.device"), "{err}");
        let empty_tag = RootfsSource::VirtioFs {
            tag: String::new(),
            path: None,
        };
        let err = provider.prepare("c", &empty_tag, true).unwrap_err();
        assert!(err.to_string().starts_with("rootfs.tag"), "{err}");
        // A device that does not exist: the mount fails, nothing is left.
        let missing = RootfsSource::Block {
            device: "/dev/vmrun-no-such-disk".into(),
            fstype: "ext4".into(),
        };
        let err = format!("{:#}", provider.prepare("c", &missing, true).unwrap_err());
        assert!(err.contains("/dev/vmrun-no-such-disk"), "{err}");
        assert!(
            !base.path().join("rootfs/c").exists(),
            "mount point left behind"
        );
        // A path within a share: checked before anything is mounted.
        let in_share = |path: &str| RootfsSource::VirtioFs {
            tag: "vmrun".into(),
            path: Some(path.into()),
        };
        for bad in ["/abs", "a/../../b"] {
            let err = provider.prepare("c", &in_share(bad), true).unwrap_err();
            assert!(err.to_string().starts_with("rootfs.path: "), "{err}");
        }
        // An unknown share: the error names the tag, nothing is left.
        let err = format!(
            "{:#}",
            provider
                .prepare("c", &in_share("c/rootfs"), true)
                .unwrap_err()
        );
        assert!(err.starts_with("rootfs.tag: "), "{err}");
        assert!(!base.path().join("rootfs/c").exists());
        assert!(!base.path().join("shares/vmrun").exists());
    }
}
