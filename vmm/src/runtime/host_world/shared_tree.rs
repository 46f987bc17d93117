//! The one virtio-fs share of a VM (tag [`SHARE_TAG`]): a small tmpfs in the
//! VMM's own mount namespace into which the VMM bind-mounts, per
//! container, its rootfs (`<id>/rootfs`) and the source of each host bind
//! mount (`<id>/mounts/<i>`). Why one share rather than a device per
//! source: the transport has no hotplug, so a pod's later members can only
//! reach the guest through a share that exists from boot; it costs one
//! IRQ whatever the number of binds; and file binds (resolv.conf, hosts)
//! work, which a virtio-fs root (a directory) cannot be.
//!
//! The mount namespace is private to the VMM ([`enter_private_mount_namespace`],
//! before any thread exists): host mounts still propagate in (root is a
//! slave), but none of these mounts is visible on the host, and all of them
//! vanish with the VMM, however it ends. The guest sees only what is bound
//! here: the passthrough server resolves every lookup by one path
//! component relative to a directory it holds open, never following a
//! symlink (the guest resolves symlinks itself, in its own tree), and `..`
//! at the share's root stays at the root.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};

/// The virtio-fs tag of the share.
pub const SHARE_TAG: &str = "vmrun";
/// Size of the tmpfs holding the mount points (they take no data).
const TREE_TMPFS_OPTIONS: &str = "size=1m,nr_inodes=4096,mode=0755";

/// Errors building the share.
#[derive(Debug, thiserror::Error)]
pub enum SharedTreeError {
    /// The private mount namespace could not be made.
    #[error("cannot make the VMM's private mount namespace")]
    Namespace(#[source] nix::Error),
    /// A directory or mount point could not be made.
    #[error("cannot make {0}")]
    Make(PathBuf, #[source] io::Error),
    /// A mount failed.
    #[error("cannot mount {what} on {target}")]
    Mount {
        /// What was mounted.
        what: String,
        /// Where.
        target: PathBuf,
        /// Why.
        #[source]
        source: nix::Error,
    },
}

/// Gives this process a mount namespace of its own whose root is a slave
/// of the host's (host mounts appear, ours stay private). Must run before
/// the process has threads (unshare(CLONE_NEWNS) needs an unshared fs).
pub fn enter_private_mount_namespace() -> Result<(), SharedTreeError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(SharedTreeError::Namespace)?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(SharedTreeError::Namespace)
}

/// The share's tree (see the module docs).
#[derive(Debug, Clone)]
pub struct SharedTree {
    root: PathBuf,
}

fn mount_err(what: impl Into<String>, target: &Path) -> impl FnOnce(nix::Error) -> SharedTreeError {
    let (what, target) = (what.into(), target.to_path_buf());
    move |source| SharedTreeError::Mount {
        what,
        target,
        source,
    }
}

impl SharedTree {
    /// Makes the tree at `root` (created if missing): a tmpfs mounted there
    /// in this process's (private) mount namespace.
    pub fn create(root: &Path) -> Result<Self, SharedTreeError> {
        std::fs::create_dir_all(root).map_err(|e| SharedTreeError::Make(root.into(), e))?;
        mount(
            Some("vmrun-share"),
            root,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(TREE_TMPFS_OPTIONS),
        )
        .map_err(mount_err("a tmpfs", root))?;
        Ok(Self {
            root: root.to_path_buf(),
        })
    }

    /// The directory the virtio-fs device shares.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Detaches everything below `rel` (a container's part of the tree)
    /// and removes it.
    pub fn release(&self, rel: &Path) -> Result<(), SharedTreeError> {
        let target = self.root.join(rel);
        crate::runtime::state::remove::remove_state_tree(&target)
            .map_err(|e| SharedTreeError::Make(target, e))
    }

    /// Bind-mounts `source` (a directory or file on the host) at `rel`
    /// within the tree, read-only if asked, recursively if asked (`rbind`);
    /// returns `rel` for the guest (below `SHARES_DIR/<tag>`).
    pub fn bind(
        &self,
        rel: &Path,
        source: &Path,
        readonly: bool,
        recursive: bool,
    ) -> Result<PathBuf, SharedTreeError> {
        let target = self.root.join(rel);
        let parent = target.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(|e| SharedTreeError::Make(parent.into(), e))?;
        let is_dir = std::fs::metadata(source)
            .map_err(|e| SharedTreeError::Make(source.into(), e))?
            .is_dir();
        let made = if is_dir {
            std::fs::create_dir(&target)
        } else {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&target)
                .map(drop)
        };
        made.map_err(|e| SharedTreeError::Make(target.clone(), e))?;
        let mut flags = MsFlags::MS_BIND;
        if recursive {
            flags |= MsFlags::MS_REC;
        }
        let what = source.display().to_string();
        mount(Some(source), &target, None::<&str>, flags, None::<&str>)
            .map_err(mount_err(what.clone(), &target))?;
        // Private: the guest's view must not change under a mount event on
        // the host side of a bind (and nothing propagates back).
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(mount_err(what.clone(), &target))?;
        if readonly {
            mount(
                None::<&str>,
                &target,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                None::<&str>,
            )
            .map_err(mount_err(format!("{what} read-only"), &target))?;
        }
        Ok(rel.to_path_buf())
    }
}
