//! The virtio-fs shares of `Create.shares` (protocol v5): each tag is
//! mounted once per VM at `<base>/<tag>` (base [`SHARES_DIR`] in the
//! guest), where the host has pointed the spec's bind-mount sources and,
//! with `RootfsSource::VirtioFs.path`, the container's rootfs.
//!
//! [`Shares`] remembers what it mounted, so asking again (a second
//! container, or two `Create`s at once) is a no-op; the mounting itself
//! goes through a [`ShareMounter`]: [`VirtioFsMounter`] in the guest,
//! [`HostDirMounter`] (a bind mount of a host directory) in host tests.

use std::collections::{BTreeSet, HashMap};
use std::fs::DirBuilder;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use anyhow::{bail, Context, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use super::container::check_name;
use super::readahead;

#[cfg(doc)]
use vmrun_protocol::SHARES_DIR;

/// Mounts one virtio-fs share.
pub trait ShareMounter: Send + Sync {
    /// Mounts the share `tag` on the existing directory `target`.
    fn mount(&self, tag: &str, target: &Path) -> Result<()>;
}

/// The guest's mounter: `mount -t virtiofs <tag> <target>`, with a wider
/// readahead ([`readahead::widen`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct VirtioFsMounter;

impl ShareMounter for VirtioFsMounter {
    fn mount(&self, tag: &str, target: &Path) -> Result<()> {
        mount(
            Some(tag),
            target,
            Some("virtiofs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .with_context(|| format!("mounting virtio-fs tag {tag:?} on {}", target.display()))?;
        readahead::widen(target);
        Ok(())
    }
}

/// Host-test seam: a tag names a host directory, bind-mounted in place of
/// the share. Any other tag is refused.
#[derive(Debug, Clone, Default)]
pub struct HostDirMounter {
    dirs: HashMap<String, PathBuf>,
}

impl HostDirMounter {
    /// Maps each tag to a directory.
    pub fn new(dirs: impl IntoIterator<Item = (String, PathBuf)>) -> Self {
        Self {
            dirs: dirs.into_iter().collect(),
        }
    }
}

impl ShareMounter for HostDirMounter {
    fn mount(&self, tag: &str, target: &Path) -> Result<()> {
        let Some(dir) = self.dirs.get(tag) else {
            bail!("no virtio-fs share with tag {tag:?}");
        };
        mount(
            Some(dir.as_path()),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("bind-mounting {} on {}", dir.display(), target.display()))
    }
}

/// The shares mounted in this VM.
pub struct Shares {
    base: PathBuf,
    mounter: Box<dyn ShareMounter>,
    /// Tags mounted so far; held while mounting, so a tag is mounted once.
    mounted: Mutex<BTreeSet<String>>,
}

impl std::fmt::Debug for Shares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shares")
            .field("base", &self.base)
            .field("mounted", &*self.lock())
            .finish_non_exhaustive()
    }
}

impl Shares {
    /// Shares mounted below `base` by `mounter`.
    pub fn new(base: impl Into<PathBuf>, mounter: Box<dyn ShareMounter>) -> Self {
        Self {
            base: base.into(),
            mounter,
            mounted: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.mounted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Mounts every tag of `Create.shares` not mounted yet; an error names
    /// the entry (`shares[1]: ...`). Tags mounted before an error stay.
    pub fn mount_all(&self, tags: &[String]) -> Result<()> {
        for (i, tag) in tags.iter().enumerate() {
            self.ensure(&format!("shares[{i}]"), tag)?;
        }
        Ok(())
    }

    /// Where share `tag` is mounted, mounting it first if it is not yet;
    /// errors name `field`. The tag must be `[A-Za-z0-9_.-]{1,128}` (it
    /// becomes a path component).
    pub fn ensure(&self, field: &str, tag: &str) -> Result<PathBuf> {
        check_name(field, tag)?;
        let target = self.base.join(tag);
        let mut mounted = self.lock();
        if mounted.contains(tag) {
            return Ok(target);
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&target)
            .with_context(|| format!("{field}: creating {}", target.display()))?;
        if let Err(err) = self.mounter.mount(tag, &target) {
            let _ = std::fs::remove_dir(&target);
            return Err(err.context(field.to_owned()));
        }
        tracing::info!("mounted share {tag:?} at {}", target.display());
        mounted.insert(tag.to_owned());
        Ok(target)
    }

    /// Unmounts every share (lazily: a container that is still alive keeps
    /// its view); best effort, logged.
    pub fn unmount_all(&self) {
        let mut mounted = self.lock();
        for tag in std::mem::take(&mut *mounted) {
            let target = self.base.join(&tag);
            match umount2(&target, MntFlags::MNT_DETACH) {
                Ok(()) => {
                    let _ = std::fs::remove_dir(&target);
                }
                Err(errno) => tracing::warn!("unmounting share {tag:?}: {errno}"),
            }
        }
    }
}

/// Checks a path within a share from the host (`rootfs.path`): relative,
/// not empty, no `..` component, no NUL. Errors name `field`.
pub fn check_share_path<'p>(field: &str, path: &'p str) -> Result<&'p Path> {
    if path.is_empty() {
        bail!("{field}: empty (leave the field out for the share's root)");
    }
    if path.contains('\0') {
        bail!("{field}: {path:?} contains a NUL byte");
    }
    let parsed = Path::new(path);
    for component in parsed.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => {
                bail!("{field}: {path:?} is absolute; it must be relative to the share")
            }
            Component::ParentDir => {
                bail!("{field}: {path:?} has a `..` component; it must stay within the share")
            }
        }
    }
    Ok(parsed)
}

/// Opens directory `path` (checked by [`check_share_path`]) below `share`
/// as an `O_PATH` descriptor, resolving every component — symlinks
/// included — beneath the share (`RESOLVE_BENEATH`), so a symlink planted
/// in the share cannot point the open elsewhere in the guest. Errors name
/// `field`.
pub fn open_beneath(field: &str, share: &Path, path: &Path) -> Result<OwnedFd> {
    // O_PATH: on virtio-fs a directory opened for reading is an OPENDIR
    // and a RELEASEDIR, two round trips to the host for nothing.
    let share_dir = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(share)
        .with_context(|| format!("{field}: opening the share at {}", share.display()))?;
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd =
        openat2(std::os::fd::AsRawFd::as_raw_fd(&share_dir), path, how).with_context(|| {
            format!(
                "{field}: {} is not a directory within the share at {}",
                path.display(),
                share.display()
            )
        })?;
    // SAFETY: openat2 just returned this descriptor and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_paths_must_be_relative_and_stay_inside() {
        assert_eq!(
            check_share_path("rootfs.path", "c1/rootfs").unwrap(),
            Path::new("c1/rootfs")
        );
        assert!(check_share_path("rootfs.path", "./a/./b").is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("/c1/rootfs", "absolute"),
            ("..", "`..`"),
            ("c1/../../etc", "`..`"),
            ("a\0b", "NUL"),
        ] {
            let err = check_share_path("rootfs.path", bad)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("rootfs.path: "), "{bad:?}: {err}");
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn opening_beneath_a_share_refuses_symlinks_out_of_it() {
        let share = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(share.path().join("c/rootfs")).unwrap();
        std::os::unix::fs::symlink("c", share.path().join("inside")).unwrap();
        std::os::unix::fs::symlink(outside.path(), share.path().join("escape")).unwrap();
        std::fs::write(share.path().join("file"), b"x").unwrap();
        let open = |p: &str| open_beneath("rootfs.path", share.path(), Path::new(p));
        assert!(open("c/rootfs").is_ok());
        assert!(open("inside/rootfs").is_ok(), "a symlink within the share");
        for bad in ["escape", "missing", "file"] {
            let err = format!("{:#}", open(bad).unwrap_err());
            assert!(err.starts_with("rootfs.path: "), "{bad}: {err}");
        }
    }

    #[test]
    fn tags_are_checked_and_mount_errors_name_the_field() {
        let base = tempfile::tempdir().unwrap();
        let shares = Shares::new(base.path(), Box::new(HostDirMounter::default()));
        let err = shares.ensure("shares[0]", "../x").unwrap_err().to_string();
        assert!(err.starts_with("shares[0]: "), "{err}");
        let err = shares
            .mount_all(&["unknown".to_owned()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("shares[0]"), "{err}");
        // The mount point of a failed mount is not left behind.
        assert!(!base.path().join("unknown").exists());
    }
}
