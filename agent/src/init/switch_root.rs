//! Moves the agent off the initramfs onto a tmpfs root, so containers can
//! be jailed with `pivot_root`.
//!
//! The kernel starts `/init` on `rootfs`, the initial ramfs, which has no
//! parent mount and therefore can never be pivoted away from: a runtime on
//! it must fall back to `MS_MOVE` + `chroot` (runc's `--no-pivot`), which
//! leaves the runtime's root mounted under the container's: a process with
//! `CAP_SYS_ADMIN` and `CAP_SYS_CHROOT` can unmount the container's root and
//! re-enter its mount namespace there (the checker's escape probe). Like
//! `switch_root(8)`, the agent copies the initramfs onto a fresh tmpfs,
//! frees the originals, moves the tmpfs over `/` and chroots into it; from
//! then on `/` is a real mount and the container runtime uses `pivot_root`
//! (unless the host asks for `--no-pivot`).
//!
//! The agent's own binary is the one file not copied: it is unlinked with
//! the rest, and its pages live on as the running program (the agent goes
//! on without re-executing itself), so the guest holds the binary once
//! and the move copies only the few small files around it.

use std::fs;
use std::os::unix::fs::{lchown, symlink, DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sys::stat::{mknod, Mode, SFlag};
use nix::unistd::{chdir, chroot};

/// Where the new root is assembled before it is moved over `/`.
pub const NEW_ROOT: &str = "/.vmrun-root";

/// A file's identity on its filesystem (device and inode numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

impl FileId {
    /// The identity of the file at `path` (symlinks followed).
    pub fn of(path: &Path) -> Result<Self> {
        let meta = fs::metadata(path).with_context(|| format!("inspecting {}", path.display()))?;
        Ok(Self::from_meta(&meta))
    }

    fn from_meta(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// Copies the initramfs at `/` onto a tmpfs, except the file `left_out`
/// (the running binary), frees the originals, makes the tmpfs the root and
/// chroots into it. `left_out` is unlinked too: a running binary's pages
/// outlive its name. Call it from PID 1 before anything is
/// mounted and before any other thread exists.
pub fn switch_to_tmpfs_root(left_out: Option<FileId>) -> Result<()> {
    let root = Path::new("/");
    let new_root = Path::new(NEW_ROOT);
    fs::DirBuilder::new()
        .mode(0o755)
        .create(new_root)
        .with_context(|| format!("creating {}", new_root.display()))?;
    mount(
        Some("tmpfs"),
        new_root,
        Some("tmpfs"),
        MsFlags::MS_NOSUID,
        Some("mode=0755"),
    )
    .with_context(|| format!("mounting a tmpfs on {}", new_root.display()))?;
    copy_tree(
        root,
        new_root,
        &Skip {
            dir: Some(new_root),
            file: left_out,
        },
    )?;
    remove_tree_contents(root, new_root)?;

    chdir(new_root).with_context(|| format!("entering {}", new_root.display()))?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>)
        .with_context(|| format!("moving over / the tmpfs {}", new_root.display()))?;
    chroot(".").with_context(|| format!("chroot into {}", new_root.display()))?;
    chdir("/").with_context(|| format!("entering {}", root.display()))?;
    Ok(())
}

/// What [`copy_tree`] leaves out.
#[derive(Debug, Default, Clone, Copy)]
pub struct Skip<'a> {
    /// A directory not descended into (the target itself when it lies
    /// inside the source).
    pub dir: Option<&'a Path>,
    /// A file not copied.
    pub file: Option<FileId>,
}

/// Copies the directory tree under `from` into `to` (which exists): files,
/// directories, symlinks, device nodes and fifos, with modes and owners,
/// except what `skip` names.
pub fn copy_tree(from: &Path, to: &Path, skip: &Skip<'_>) -> Result<()> {
    for entry in fs::read_dir(from).with_context(|| format!("listing {}", from.display()))? {
        let entry = entry.with_context(|| format!("listing {}", from.display()))?;
        let source = entry.path();
        if Some(source.as_path()) == skip.dir {
            continue;
        }
        let target = to.join(entry.file_name());
        let meta = fs::symlink_metadata(&source)
            .with_context(|| format!("inspecting {}", &source.display()))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            fs::DirBuilder::new()
                .mode(meta.mode() & 0o7777)
                .create(&target)
                .with_context(|| format!("creating {}", &target.display()))?;
            copy_tree(&source, &target, skip)?;
        } else if kind.is_file() {
            if Some(FileId::from_meta(&meta)) == skip.file {
                continue;
            }
            fs::copy(&source, &target)
                .with_context(|| format!("copying to {}", &target.display()))?;
        } else if kind.is_symlink() {
            let link =
                fs::read_link(&source).with_context(|| format!("reading {}", &source.display()))?;
            symlink(&link, &target).with_context(|| format!("creating {}", &target.display()))?;
        } else if kind.is_char_device() || kind.is_block_device() || kind.is_fifo() {
            let node = if kind.is_char_device() {
                SFlag::S_IFCHR
            } else if kind.is_block_device() {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFIFO
            };
            mknod(
                &target,
                node,
                Mode::from_bits_truncate(meta.mode()),
                meta.rdev(),
            )
            .with_context(|| format!("creating {}", &target.display()))?;
        } else {
            continue; // sockets: nothing to carry over
        }
        lchown(&target, Some(meta.uid()), Some(meta.gid()))
            .with_context(|| format!("setting the owner of {}", &target.display()))?;
        if !kind.is_symlink() {
            fs::set_permissions(&target, fs::Permissions::from_mode(meta.mode() & 0o7777))
                .with_context(|| format!("setting the mode of {}", &target.display()))?;
        }
    }
    Ok(())
}

/// Removes everything under `dir` except `keep` (frees the initramfs'
/// memory, as `switch_root(8)` does). Never crosses into another mount.
pub fn remove_tree_contents(dir: &Path, keep: &Path) -> Result<()> {
    let dev = fs::symlink_metadata(dir)
        .with_context(|| format!("inspecting {}", dir.display()))?
        .dev();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        if path == keep {
            continue;
        }
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("inspecting {}", &path.display()))?;
        if meta.dev() != dev {
            continue; // a mount point: not ours to empty
        }
        if meta.is_dir() {
            remove_tree_contents(&path, keep)?;
            fs::remove_dir(&path).with_context(|| format!("removing {}", &path.display()))?;
        } else {
            fs::remove_file(&path).with_context(|| format!("removing {}", &path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_then_remove_moves_a_tree_but_the_binary_with_links_and_modes() {
        let base = tempfile::tempdir().expect("tempdir");
        let from = base.path().join("from");
        let to = from.join("inner-target");
        fs::create_dir_all(from.join("dir/sub")).expect("mkdir");
        fs::write(from.join("init"), b"binary").expect("write");
        fs::set_permissions(from.join("init"), fs::Permissions::from_mode(0o755)).expect("chmod");
        fs::write(from.join("dir/sub/file"), b"data").expect("write");
        fs::set_permissions(from.join("dir"), fs::Permissions::from_mode(0o1777)).expect("chmod");
        symlink("../init", from.join("dir/link")).expect("symlink");
        fs::write(from.join("dir/running-binary"), b"left out").expect("write");
        let left_out = FileId::of(&from.join("dir/running-binary")).expect("stat");
        fs::create_dir(&to).expect("mkdir target");

        let skip = Skip {
            dir: Some(&to),
            file: Some(left_out),
        };
        copy_tree(&from, &to, &skip).expect("copy");
        assert!(
            !to.join("dir/running-binary").exists(),
            "the left-out file is not copied"
        );
        assert_eq!(fs::read(to.join("init")).expect("read"), b"binary");
        assert_eq!(
            fs::metadata(to.join("init")).expect("stat").mode() & 0o7777,
            0o755
        );
        assert_eq!(
            fs::metadata(to.join("dir")).expect("stat").mode() & 0o7777,
            0o1777
        );
        assert_eq!(fs::read(to.join("dir/sub/file")).expect("read"), b"data");
        assert_eq!(
            fs::read_link(to.join("dir/link")).expect("readlink"),
            Path::new("../init")
        );
        assert!(
            !to.join("inner-target").exists(),
            "the target is not copied into itself"
        );

        remove_tree_contents(&from, &to).expect("remove");
        let left: Vec<_> = fs::read_dir(&from)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("inner-target")]);
        assert_eq!(fs::read(to.join("dir/sub/file")).expect("read"), b"data");
    }
}
