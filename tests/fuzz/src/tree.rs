//! Snapshots of a directory tree (never following symlinks), to assert that
//! code confined to one directory changed nothing next to it.
//!
//! A snapshot records, per path: type and mode, owner, size, atime, mtime,
//! ctime, link count, inode and symlink target. mtime and ctime catch
//! writes (even of the same bytes), chmod, chown, xattr and hardlink
//! changes; the link count catches a hardlink made to a file from
//! elsewhere; atime catches a read of a file prepared with [`watch_reads`]
//! (under `relatime`, what tmpfs and most mounts use). Snapshots never read
//! file contents, and stat a directory or symlink after reading it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use filetime::FileTime;

/// What a snapshot keeps of one file system object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// `st_mode` (type and permissions).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Access time (s, ns).
    pub atime: (i64, i64),
    /// Modification time (s, ns).
    pub mtime: (i64, i64),
    /// Status change time (s, ns).
    pub ctime: (i64, i64),
    /// Hard link count.
    pub nlink: u64,
    /// Inode number.
    pub ino: u64,
    /// Link target (symlinks; empty otherwise).
    pub target: Vec<u8>,
}

/// A tree: relative path → node (the root itself under the empty path).
pub type Snapshot = BTreeMap<PathBuf, Node>;

/// Snapshots `root` and everything below it, skipping the direct children
/// named in `skip` (e.g. the directory the code under test may change).
pub fn snapshot(root: &Path, skip: &[&str]) -> Snapshot {
    let mut out = Snapshot::new();
    walk(root, Path::new(""), skip, &mut out);
    out
}

fn walk(root: &Path, rel: &Path, skip: &[&str], out: &mut Snapshot) {
    let path = root.join(rel);
    // List a directory before its stat: the listing may update its atime.
    let mut names: Vec<_> = match fs::read_dir(&path) {
        Ok(entries) => entries.flatten().map(|e| e.file_name()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    // The same for reading a symlink (fails on anything else).
    let target = fs::read_link(&path)
        .map(|t| t.into_os_string().into_encoded_bytes())
        .unwrap_or_default();
    let Ok(meta) = fs::symlink_metadata(&path) else {
        return;
    };
    out.insert(
        rel.to_path_buf(),
        Node {
            mode: meta.mode(),
            uid: meta.uid(),
            gid: meta.gid(),
            size: meta.size(),
            atime: (meta.atime(), meta.atime_nsec()),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
            nlink: meta.nlink(),
            ino: meta.ino(),
            target,
        },
    );
    if !meta.file_type().is_dir() {
        return;
    }
    for name in names {
        if rel.as_os_str().is_empty() && skip.iter().any(|s| name == *s) {
            continue;
        }
        walk(root, &rel.join(name), skip, out);
    }
}

/// Makes the first read of each regular file under `root` visible in its
/// atime, and keeps snapshots from changing any atime.
///
/// `relatime` updates an atime on access only while it is not later than
/// the mtime; timestamps are coarse (a clock tick), so a file written and
/// read within one tick would look read twice. So: regular files get an
/// atime one second before their mtime (their next read updates it), and
/// directories and symlinks, which snapshots list and read, one second
/// after it (reads leave it alone).
pub fn watch_reads(root: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(root)?;
    let mtime = FileTime::from_last_modification_time(&meta);
    let shift = if meta.file_type().is_file() { -1 } else { 1 };
    let atime = FileTime::from_unix_time(mtime.unix_seconds() + shift, mtime.nanoseconds());
    filetime::set_symlink_file_times(root, atime, mtime)?;
    if meta.file_type().is_dir() {
        for entry in fs::read_dir(root)? {
            watch_reads(&entry?.path())?;
        }
        // Listing it just now may have moved its atime: set it again.
        filetime::set_symlink_file_times(root, atime, mtime)?;
    }
    Ok(())
}

/// Clears every atime in `snapshot`, for comparisons where reading is
/// allowed.
pub fn forget_atimes(snapshot: &mut Snapshot) {
    for node in snapshot.values_mut() {
        node.atime = (0, 0);
    }
}

/// The first difference between two snapshots, described for a panic
/// message; `None` when they are equal.
pub fn first_difference(before: &Snapshot, after: &Snapshot) -> Option<String> {
    for (path, old) in before {
        match after.get(path) {
            None => return Some(format!("{path:?} was removed")),
            Some(new) if new != old => {
                return Some(format!("{path:?} changed: {old:?} -> {new:?}"));
            }
            Some(_) => {}
        }
    }
    after
        .keys()
        .find(|p| !before.contains_key(*p))
        .map(|p| format!("{p:?} was created"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_changes_but_not_skipped_children() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("inside")).unwrap();
        fs::write(dir.path().join("victim"), b"v").unwrap();
        let before = snapshot(dir.path(), &["inside"]);
        fs::write(dir.path().join("inside/x"), b"ok").unwrap();
        assert_eq!(
            first_difference(&before, &snapshot(dir.path(), &["inside"])),
            None
        );
        fs::write(dir.path().join("victim"), b"w").unwrap();
        let diff = first_difference(&before, &snapshot(dir.path(), &["inside"]));
        assert!(diff.unwrap().contains("victim"));
    }

    #[test]
    fn sees_a_read_and_snapshots_do_not_disturb_each_other() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("d")).unwrap();
        fs::write(dir.path().join("d/secret"), b"s").unwrap();
        std::os::unix::fs::symlink("d/secret", dir.path().join("link")).unwrap();
        watch_reads(dir.path()).unwrap();
        let before = snapshot(dir.path(), &[]);
        assert_eq!(first_difference(&before, &snapshot(dir.path(), &[])), None);
        fs::read(dir.path().join("link")).unwrap();
        let diff = first_difference(&before, &snapshot(dir.path(), &[])).unwrap();
        assert!(diff.contains("secret"), "{diff}");
    }
}
