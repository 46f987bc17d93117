//! Resolving archive paths inside the rootfs without ever leaving it.
//!
//! Paths are walked one component at a time from a directory fd with
//! `O_NOFOLLOW`. A symlink met on the way (made by an earlier entry or
//! present in a lower layer) is resolved *inside* the root like
//! `openat2(RESOLVE_IN_ROOT)` would: an absolute target restarts at the
//! rootfs, and a `..` that would climb above the rootfs is an error. The
//! final component is never followed; callers operate on it with `*at`
//! calls relative to the returned parent fd.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::error::UnpackError;
use super::sys;

/// Maximum symlinks followed while resolving one path (like the kernel's 40).
const MAX_SYMLINKS: u32 = 40;
/// Maximum length of an archive path in bytes.
const MAX_PATH_BYTES: usize = 4096;

/// The rootfs being extracted into, held open as a directory fd.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

/// Split an archive path into normal components, rejecting anything that
/// could name a location outside the root: absolute paths, `..`, NUL bytes.
/// `./` prefixes and `.` components are dropped.
pub fn normalize(raw: &[u8]) -> Result<Vec<OsString>, UnpackError> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    let bad = |reason: &str| UnpackError::Unsafe {
        path: shown.clone(),
        reason: reason.to_string(),
    };
    if raw.len() > MAX_PATH_BYTES {
        return Err(bad("path is too long"));
    }
    if raw.contains(&0) {
        return Err(bad("path contains a NUL byte"));
    }
    if raw.first() == Some(&b'/') {
        return Err(bad("absolute path"));
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(bad("path contains '..'")),
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

impl Root {
    /// Open `path` (which must be an existing directory) as the root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let cwd = std::fs::File::open(path)?;
        let st = sys::fstat(cwd.as_fd())?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            return Err(io::Error::from(io::ErrorKind::NotADirectory));
        }
        Ok(Root {
            fd: cwd.into(),
            path: path.to_path_buf(),
        })
    }

    /// The rootfs directory path (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Resolve the directory named by `comps` inside the root and return an
    /// `O_PATH` fd for it. Missing directories are created (mode 0755) when
    /// `create` is set, otherwise `Ok(None)` is returned. `entry` names the
    /// archive entry in errors.
    pub fn resolve_dir(
        &self,
        comps: &[OsString],
        create: bool,
        entry: &str,
    ) -> Result<Option<OwnedFd>, UnpackError> {
        let unsafe_err = |reason: String| UnpackError::Unsafe {
            path: entry.to_string(),
            reason,
        };
        let io_err = |op: &'static str, source: io::Error| UnpackError::Io {
            path: entry.to_string(),
            op,
            source,
        };
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut queue: VecDeque<OsString> = comps.iter().cloned().collect();
        let mut links = 0;
        let mut last_link = String::new();
        while let Some(c) = queue.pop_front() {
            match c.as_bytes() {
                b"" | b"." => continue,
                b".." => {
                    if stack.pop().is_none() {
                        return Err(unsafe_err(format!(
                            "symlink {last_link:?} on its path points above the rootfs"
                        )));
                    }
                    continue;
                }
                _ => {}
            }
            let cur = stack.last().map(|f| f.as_fd()).unwrap_or(self.fd.as_fd());
            let st = match sys::lstatat(cur, &c) {
                Ok(st) => st,
                Err(e) if is_not_found(&e) => {
                    if !create {
                        return Ok(None);
                    }
                    match sys::mkdirat(cur, &c, 0o755) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(io_err("creating parent directory", e)),
                    }
                    sys::lstatat(cur, &c).map_err(|e| io_err("stat", e))?
                }
                Err(e) => return Err(io_err("stat", e)),
            };
            match st.st_mode & libc::S_IFMT {
                libc::S_IFDIR => {
                    let fd = sys::openat(
                        cur,
                        &c,
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                        0,
                    )
                    .map_err(|e| io_err("opening directory", e))?;
                    stack.push(fd);
                }
                libc::S_IFLNK => {
                    links += 1;
                    if links > MAX_SYMLINKS {
                        return Err(unsafe_err("too many levels of symlinks".into()));
                    }
                    let target = sys::readlinkat(cur, &c).map_err(|e| io_err("readlink", e))?;
                    last_link = c.to_string_lossy().into_owned();
                    if target.first() == Some(&b'/') {
                        // Absolute targets are relative to the rootfs.
                        stack.clear();
                    }
                    for t in target.split(|&b| b == b'/').rev() {
                        queue.push_front(OsStr::from_bytes(t).to_os_string());
                    }
                }
                _ => {
                    return Err(unsafe_err(format!(
                        "path component {:?} is not a directory",
                        c.to_string_lossy()
                    )))
                }
            }
        }
        match stack.pop() {
            Some(fd) => Ok(Some(fd)),
            None => self.fd.try_clone().map(Some).map_err(|e| io_err("dup", e)),
        }
    }
}

impl Root {
    /// Read a small regular file at `rel` (e.g. `etc/passwd`) inside the
    /// root: parents resolve inside the root, the file itself must not be a
    /// symlink. `Ok(None)` if it does not exist or is not a regular file.
    pub fn read_file(&self, rel: &str, max: u64) -> Result<Option<Vec<u8>>, UnpackError> {
        use std::io::Read;
        let mut comps = normalize(rel.as_bytes())?;
        let Some(name) = comps.pop() else {
            return Ok(None);
        };
        let Some(dir) = self.resolve_dir(&comps, false, rel)? else {
            return Ok(None);
        };
        let fd = match sys::openat(dir.as_fd(), &name, libc::O_RDONLY | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(_) => return Ok(None),
        };
        let st = sys::fstat(fd.as_fd()).map_err(|e| UnpackError::io(rel, "stat", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Ok(None);
        }
        let mut data = Vec::new();
        std::fs::File::from(fd)
            .take(max)
            .read_to_end(&mut data)
            .map_err(|e| UnpackError::io(rel, "read", e))?;
        Ok(Some(data))
    }
}

/// Remove `name` in `dir` and, if it is a directory, everything below it,
/// without following symlinks.
pub fn remove_all(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    let st = match sys::lstatat(dir, name) {
        Ok(st) => st,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let sub = sys::openat(
            dir,
            name,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )?;
        for child in list_dir(sub.as_fd())? {
            remove_all(sub.as_fd(), &child)?;
        }
        sys::unlinkat(dir, name, true)
    } else {
        sys::unlinkat(dir, name, false)
    }
}

/// Names in the directory behind `dir` (an `O_PATH` fd is fine).
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<OsString>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(sys::proc_path(dir))? {
        out.push(e?.file_name());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_rejects_escapes() {
        assert!(normalize(b"/etc/passwd").is_err());
        assert!(normalize(b"a/../../b").is_err());
        assert!(normalize(b"..").is_err());
        assert_eq!(normalize(b"./a//b/./c/").unwrap(), vec!["a", "b", "c"]);
        assert!(normalize(b"./").unwrap().is_empty());
    }
}
