//! Whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`).
//!
//! Both only hide content of *lower* layers: objects created by the layer
//! being applied (tracked by inode in `touched`) are kept.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use super::error::UnpackError;
use super::safe_path::{list_dir, remove_all, Root};
use super::sys;

/// Prefix of whiteout file names.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Name of the opaque-directory marker.
pub const OPAQUE: &[u8] = b".wh..wh..opq";
/// Prefix of AUFS metadata names, which are ignored.
const AUFS_META: &[u8] = b".wh..wh.";

/// Inodes (dev, ino) created or updated by the layer being applied.
pub type Touched = HashSet<(u64, u64)>;

/// Key of a stat result in [`Touched`].
pub fn key(st: &libc::stat) -> (u64, u64) {
    (st.st_dev, st.st_ino)
}

/// Whether the last path component is a whiteout of some kind.
pub fn is_whiteout(name: &OsStr) -> bool {
    name.as_bytes().starts_with(WHITEOUT_PREFIX)
}

/// Apply the whiteout entry `parent/name`.
pub fn apply(
    root: &Root,
    parent: &[OsString],
    name: &OsStr,
    touched: &Touched,
    entry: &str,
) -> Result<(), UnpackError> {
    let io_err = |op: &'static str, source: io::Error| UnpackError::Io {
        path: entry.to_string(),
        op,
        source,
    };
    let bytes = name.as_bytes();
    if bytes == OPAQUE {
        let Some(dir) = root.resolve_dir(parent, true, entry)? else {
            return Ok(());
        };
        return clear_lower(dir.as_fd(), touched)
            .map_err(|e| io_err("clearing opaque directory", e));
    }
    if bytes.starts_with(AUFS_META) {
        tracing::debug!("ignoring AUFS metadata entry {entry}");
        return Ok(());
    }
    let target = &bytes[WHITEOUT_PREFIX.len()..];
    if target.is_empty() || target == b"." || target == b".." {
        return Err(UnpackError::Unsafe {
            path: entry.to_string(),
            reason: "whiteout names no file".into(),
        });
    }
    let target = OsStr::from_bytes(target);
    let Some(dir) = root.resolve_dir(parent, false, entry)? else {
        return Ok(());
    };
    match sys::lstatat(dir.as_fd(), target) {
        Ok(st) if touched.contains(&key(&st)) => Ok(()),
        Ok(_) => remove_all(dir.as_fd(), target).map_err(|e| io_err("removing whited-out file", e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("stat", e)),
    }
}

/// Remove everything under `dir` that this layer did not create; descend
/// into directories this layer did create to clear their lower content.
fn clear_lower(dir: BorrowedFd<'_>, touched: &Touched) -> io::Result<()> {
    for child in list_dir(dir)? {
        let st = sys::lstatat(dir, &child)?;
        if touched.contains(&key(&st)) {
            if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                let sub = sys::openat(
                    dir,
                    &child,
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
                clear_lower(sub.as_fd(), touched)?;
            }
        } else {
            remove_all(dir, &child)?;
        }
    }
    Ok(())
}
