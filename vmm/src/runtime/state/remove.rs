//! Removing a state directory without ever crossing into another
//! filesystem: a state directory can hold mount points (the VM's share,
//! with a bind of the bundle's rootfs, in the VMM's own mount namespace),
//! and a plain recursive removal would delete through them into the
//! bundle. A mount point met on the way is detached first (it can only be
//! one of ours), and nothing below it is touched.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::mount::{umount2, MntFlags};

/// The id of the mount `path` is on (statx's `stx_mnt_id`; a bind mount of
/// a directory of the same filesystem has its own, unlike `st_dev`).
fn mount_id(path: &Path) -> io::Result<u64> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path with a NUL byte"))?;
    // SAFETY: statx is plain data; the kernel fills it in.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C path, flags and mask; `stx` is ours to write.
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c_path.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(io::Error::other("this kernel does not report mount ids"));
    }
    Ok(stx.stx_mnt_id)
}

/// Removes `dir` and everything below it that is on `dir`'s filesystem;
/// a missing `dir` is fine.
pub fn remove_state_tree(dir: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return std::fs::remove_file(dir);
    }
    remove_below(dir, mount_id(dir)?)?;
    std::fs::remove_dir(dir)
}

fn remove_below(dir: &Path, mount: u64) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if mount_id(&path)? != mount {
            // A mount point (a directory or a file bind): detach it
            // (lazily), never descend into it.
            umount2(&path, MntFlags::MNT_DETACH).map_err(io::Error::from)?;
            if mount_id(&path)? != mount {
                return Err(io::Error::other(format!(
                    "{} is still a mount point after detaching it",
                    path.display()
                )));
            }
        }
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            remove_below(&path, mount)?;
            std::fs::remove_dir(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_tree_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c1");
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f"), "x").unwrap();
        std::os::unix::fs::symlink("/etc", dir.join("link")).unwrap();
        remove_state_tree(&dir).unwrap();
        assert!(!dir.exists());
        assert!(
            Path::new("/etc").exists(),
            "the symlink's target was touched"
        );
        remove_state_tree(&dir).unwrap();
    }

    #[test]
    fn a_bind_mount_inside_is_detached_never_emptied() {
        // Needs a private mount namespace (root): run in a child thread
        // that unshares? Mount namespaces are per process; do it in a
        // forked child instead.
        let tmp = tempfile::tempdir().unwrap();
        let precious = tmp.path().join("bundle-rootfs");
        std::fs::create_dir_all(&precious).unwrap();
        std::fs::write(precious.join("keep"), "precious").unwrap();
        let state = tmp.path().join("state");
        std::fs::create_dir_all(state.join("shared/c1/rootfs")).unwrap();
        // SAFETY: the child only makes syscalls and exits; the parent waits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let ok = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).is_ok()
                && nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_SLAVE | nix::mount::MsFlags::MS_REC,
                    None::<&str>,
                )
                .is_ok()
                && nix::mount::mount(
                    Some(&precious),
                    &state.join("shared/c1/rootfs"),
                    None::<&str>,
                    nix::mount::MsFlags::MS_BIND,
                    None::<&str>,
                )
                .is_ok();
            if !ok {
                // SAFETY: _exit in the forked child.
                unsafe { libc::_exit(77) };
            }
            let code = if remove_state_tree(&state).is_ok() {
                0
            } else {
                1
            };
            // SAFETY: _exit in the forked child.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waitpid on our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let code = libc::WEXITSTATUS(status);
        if code == 77 {
            eprintln!("SKIPPED: cannot make a mount namespace here (not root?)");
            return;
        }
        assert_eq!(code, 0, "the removal failed in the child");
        assert!(!state.exists(), "the state dir is left");
        assert_eq!(
            std::fs::read_to_string(precious.join("keep")).unwrap(),
            "precious"
        );
    }
}
