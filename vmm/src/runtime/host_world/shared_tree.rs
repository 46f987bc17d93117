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
//! vanish with the VMM, however it ends. Each bind in the tree is made
//! private, so the guest's view is fixed at create, unless its mount asks
//! for `slave`/`rslave` propagation ([`BindPropagation::Slave`]): then it
//! is a slave of the host's source, and host mounts and unmounts under the
//! source reach the guest (a directory the guest has already looked up
//! shows the change once its FUSE entry times out, after at most 5 s).
//! `shared`/`rshared` cannot be honoured (the container's mounts are made
//! by the guest kernel and never reach the host) and are refused by
//! [`super::mounts`]. The guest sees only what is bound
//! here: the passthrough server resolves every lookup by one path
//! component relative to a directory it holds open, never following a
//! symlink (the guest resolves symlinks itself, in its own tree), and `..`
//! at the share's root stays at the root.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
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

/// How host mount events under a bind's source reach the tree (and the
/// guest): the propagation type of the bind in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindPropagation {
    /// None do: the guest's view of the source is fixed when it is bound
    /// (`private`, `rprivate`, or no propagation option).
    #[default]
    Private,
    /// Mounts and unmounts made on the host under the source appear in the
    /// guest (`slave`, `rslave`; recursive on this side in both cases).
    Slave,
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

    /// Makes the mount point `rel` in the tree: a directory or an empty
    /// file; returns its path.
    fn mount_point(&self, rel: &Path, is_dir: bool) -> Result<PathBuf, SharedTreeError> {
        let target = self.root.join(rel);
        let parent = target.parent().unwrap_or(&self.root);
        std::fs::create_dir_all(parent).map_err(|e| SharedTreeError::Make(parent.into(), e))?;
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
        Ok(target)
    }

    /// Bind-mounts `source` (a directory or file on the host) at `rel`
    /// within the tree, read-only if asked, recursively if asked (`rbind`),
    /// with `propagation`; returns `rel` for the guest (below
    /// `SHARES_DIR/<tag>`). `source` is resolved in this process's mount
    /// namespace: a mount made on the host after the VMM started shows
    /// here only where the host's mounts propagate (see
    /// [`SharedTree::attach`] for one that is not).
    pub fn bind(
        &self,
        rel: &Path,
        source: &Path,
        readonly: bool,
        recursive: bool,
        propagation: BindPropagation,
    ) -> Result<PathBuf, SharedTreeError> {
        let is_dir = std::fs::metadata(source)
            .map_err(|e| SharedTreeError::Make(source.into(), e))?
            .is_dir();
        let target = self.mount_point(rel, is_dir)?;
        let mut flags = MsFlags::MS_BIND;
        if recursive {
            flags |= MsFlags::MS_REC;
        }
        let what = source.display().to_string();
        mount(Some(source), &target, None::<&str>, flags, None::<&str>)
            .map_err(mount_err(what.clone(), &target))?;
        self.seal(rel, &target, &what, readonly, propagation)
    }

    /// Mounts `tree`, a detached copy of a host directory or file made by
    /// [`detached_tree`] in the host's mount namespace (by the client, which
    /// is there), at `rel` within the tree, read-only if asked; returns
    /// `rel` for the guest. What a client mounted on the host after this
    /// VMM made its namespace (a pod member's rootfs, mounted by containerd
    /// or podman after the sandbox started) reaches the VM this way,
    /// whatever the host's mount propagation. With
    /// [`BindPropagation::Slave`] it becomes a slave of the host mount it
    /// was copied from (when that one is shared).
    pub fn attach(
        &self,
        rel: &Path,
        tree: OwnedFd,
        what: &str,
        readonly: bool,
        propagation: BindPropagation,
    ) -> Result<PathBuf, SharedTreeError> {
        let is_dir = nix::sys::stat::fstat(tree.as_raw_fd())
            .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
            .map_err(|e| SharedTreeError::Make(PathBuf::from(what), e.into()))?;
        let target = self.mount_point(rel, is_dir)?;
        let target_c = CString::new(target.as_os_str().as_bytes())
            .map_err(|e| SharedTreeError::Make(target.clone(), e.into()))?;
        // SAFETY: move_mount reads two NUL-terminated strings that outlive
        // the call; `tree` is an open mount descriptor.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                target_c.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        if rc != 0 {
            return Err(mount_err(what, &target)(nix::Error::last()));
        }
        self.seal(rel, &target, what, readonly, propagation)
    }

    /// Gives the mount at `target` its propagation and makes it read-only
    /// if asked.
    fn seal(
        &self,
        rel: &Path,
        target: &Path,
        what: &str,
        readonly: bool,
        propagation: BindPropagation,
    ) -> Result<PathBuf, SharedTreeError> {
        let target = target.to_path_buf();
        let what = what.to_string();
        // Never shared: nothing propagates from here to the host. Private
        // unless asked: the guest's view must not change under a mount
        // event on the host side of a bind.
        let kind = match propagation {
            BindPropagation::Private => MsFlags::MS_PRIVATE,
            BindPropagation::Slave => MsFlags::MS_SLAVE,
        };
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            kind | MsFlags::MS_REC,
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

/// `OPEN_TREE_CLONE` (linux/mount.h).
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `MOVE_MOUNT_F_EMPTY_PATH` (linux/mount.h).
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// A detached copy of the mount at `source` (recursive if asked, as
/// `rbind`), for [`SharedTree::attach`] in another mount namespace.
/// `source` is resolved in the caller's mount namespace.
pub fn detached_tree(source: &Path, recursive: bool) -> Result<OwnedFd, SharedTreeError> {
    let what = source.display().to_string();
    let source_c = CString::new(source.as_os_str().as_bytes())
        .map_err(|e| SharedTreeError::Make(source.into(), e.into()))?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: open_tree reads a NUL-terminated path that outlives the call
    // and returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            source_c.as_ptr(),
            flags,
        )
    };
    if fd < 0 {
        return Err(mount_err(what, source)(nix::Error::last()));
    }
    // SAFETY: open_tree returned a new descriptor this function owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{can_plumb, in_private_mount_namespace};
    use super::*;
    use std::sync::mpsc;

    fn tmpfs_at(target: &Path) {
        mount(
            Some("test"),
            target,
            Some("tmpfs"),
            MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap();
    }

    /// In a "host" mount namespace of the test's own, `src` is a shared
    /// mount; a "VMM" namespace made from it (as the daemon makes its own)
    /// builds a tree with `src` bound and attached with each propagation;
    /// then the host mounts a tmpfs under `src`. Returns, for each of
    /// (bind private, bind slave, attach private, attach slave), whether
    /// the VMM's tree shows it.
    fn host_mount_seen_in_tree(base: PathBuf) -> [bool; 4] {
        in_private_mount_namespace(move || {
            let src = base.join("src");
            std::fs::create_dir_all(src.join("later")).unwrap();
            mount(
                Some(&src),
                &src,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .unwrap();
            mount(
                None::<&str>,
                &src,
                None::<&str>,
                MsFlags::MS_SHARED,
                None::<&str>,
            )
            .unwrap();
            let (bound_tx, bound_rx) = mpsc::channel();
            let (mounted_tx, mounted_rx) = mpsc::channel::<()>();
            let vmm_base = base.clone();
            let vmm = std::thread::spawn(move || {
                enter_private_mount_namespace().unwrap();
                let src = vmm_base.join("src");
                let tree = SharedTree::create(&vmm_base.join("tree")).unwrap();
                let cases = [
                    (BindPropagation::Private, false),
                    (BindPropagation::Slave, false),
                    (BindPropagation::Private, true),
                    (BindPropagation::Slave, true),
                ];
                let mut rels = Vec::new();
                for (i, (propagation, attach)) in cases.into_iter().enumerate() {
                    let rel = PathBuf::from(format!("c1/mounts/{i}"));
                    let rel = if attach {
                        let fd = detached_tree(&src, true).unwrap();
                        tree.attach(&rel, fd, "src", false, propagation).unwrap()
                    } else {
                        tree.bind(&rel, &src, false, true, propagation).unwrap()
                    };
                    rels.push(rel);
                }
                bound_tx.send(()).unwrap();
                mounted_rx.recv().unwrap();
                let seen: Vec<bool> = rels
                    .iter()
                    .map(|rel| tree.root().join(rel).join("later/marker").exists())
                    .collect();
                [seen[0], seen[1], seen[2], seen[3]]
            });
            bound_rx.recv().unwrap();
            tmpfs_at(&src.join("later"));
            std::fs::write(src.join("later/marker"), "mounted later").unwrap();
            mounted_tx.send(()).unwrap();
            vmm.join().unwrap()
        })
    }

    #[test]
    fn only_a_slave_bind_sees_host_mounts_made_later_under_its_source() {
        if !can_plumb("only_a_slave_bind_sees_host_mounts_made_later_under_its_source") {
            return;
        }
        let base = tempfile::tempdir().unwrap();
        let [bind_private, bind_slave, attach_private, attach_slave] =
            host_mount_seen_in_tree(base.path().to_path_buf());
        assert!(!bind_private, "a private bind saw a later host mount");
        assert!(bind_slave, "a slave bind missed a later host mount");
        assert!(
            !attach_private,
            "a private attached tree saw a later host mount"
        );
        assert!(
            attach_slave,
            "a slave attached tree missed a later host mount"
        );
    }
}
