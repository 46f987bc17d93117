//! Applying one tar entry to the rootfs.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use tar::EntryType;

use super::error::UnpackError;
use super::safe_path::{normalize, remove_all, Root};
use super::sys;
use super::whiteout::{self, Touched};

/// Ownership/metadata of an entry, with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// Applies entries of one layer; create a new one per layer.
pub struct LayerApplier<'a> {
    root: &'a Root,
    is_root: bool,
    touched: Touched,
    /// Directories whose mode is set when the layer is done (so a read-only
    /// directory does not block its own children).
    dir_modes: Vec<(Vec<OsString>, u32)>,
    /// File content bytes this layer may still write (sparse files can
    /// expand far beyond the compressed stream, so writes are capped too).
    budget: u64,
    /// The cap `budget` was derived from (for messages).
    max_bytes: u64,
    /// File content bytes written by this layer.
    written: u64,
}

fn meta<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
    let h = entry.header();
    let mut m = Meta {
        mode: h.mode()? & 0o7777,
        uid: u32::try_from(h.uid()?).unwrap_or(u32::MAX),
        gid: u32::try_from(h.gid()?).unwrap_or(u32::MAX),
        mtime: i64::try_from(h.mtime()?).unwrap_or(0),
        xattrs: Vec::new(),
    };
    if let Some(exts) = entry.pax_extensions()? {
        for ext in exts {
            let ext = ext?;
            let Ok(key) = ext.key() else { continue };
            let val = ext.value_bytes();
            let num = || {
                std::str::from_utf8(val)
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
            };
            match key {
                "uid" => m.uid = num().unwrap_or(m.uid),
                "gid" => m.gid = num().unwrap_or(m.gid),
                k if k.starts_with("SCHILY.xattr.") => {
                    m.xattrs
                        .push((k["SCHILY.xattr.".len()..].to_string(), val.to_vec()));
                }
                _ => {}
            }
        }
    }
    Ok(m)
}

impl<'a> LayerApplier<'a> {
    /// Start applying a layer into `root`; at most `budget` bytes of file
    /// content may be written (`max_bytes` is the overall cap, for messages).
    pub fn new(root: &'a Root, budget: u64, max_bytes: u64) -> Self {
        LayerApplier {
            root,
            is_root: sys::euid() == 0,
            touched: Touched::new(),
            dir_modes: Vec::new(),
            budget,
            max_bytes,
            written: 0,
        }
    }

    /// File content bytes written so far by this layer.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Apply one entry. `written` is increased by file content bytes.
    pub fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let io_err = |op: &'static str| {
            let shown = shown.clone();
            move |source: io::Error| UnpackError::Io {
                path: shown,
                op,
                source,
            }
        };
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let mut comps = normalize(&raw)?;
        let Some(name) = comps.pop() else {
            // The archive root itself ("./"): nothing to create.
            return Ok(());
        };
        if whiteout::is_whiteout(&name) {
            return whiteout::apply(self.root, &comps, &name, &self.touched, &shown);
        }
        let meta = meta(entry).map_err(io_err("reading header"))?;
        let parent = self
            .root
            .resolve_dir(&comps, true, &shown)?
            .ok_or_else(|| UnpackError::Unsafe {
                path: shown.clone(),
                reason: "parent directory could not be created".into(),
            })?;
        let dir = parent.as_fd();
        let existing = match sys::lstatat(dir, &name) {
            Ok(st) => Some(st),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("stat")(e)),
        };
        let existing_is_dir = existing.is_some_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR);
        if kind != EntryType::Directory || (existing.is_some() && !existing_is_dir) {
            if kind == EntryType::Link {
                // Checked below before anything is removed.
            } else if existing.is_some() {
                remove_all(dir, &name).map_err(io_err("replacing existing entry"))?;
            }
        }
        match kind {
            EntryType::Directory => {
                if !existing_is_dir {
                    sys::mkdirat(dir, &name, 0o755).map_err(io_err("mkdir"))?;
                }
                self.finish_node(dir, &name, &meta, &shown, false)?;
                let mut full = comps.clone();
                full.push(name.clone());
                self.dir_modes.push((full, meta.mode));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = sys::openat(
                    dir,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(io_err("creating file"))?;
                let mut file = File::from(fd);
                let n = io::copy(&mut (&mut *entry).take(self.budget + 1), &mut file)
                    .map_err(|e| UnpackError::from_read(&shown, e))?;
                if n > self.budget {
                    return Err(UnpackError::Limit {
                        what: "total size of unpacked files",
                        limit: self.max_bytes,
                    });
                }
                self.budget -= n;
                self.written += n;
                self.finish_node(dir, &name, &meta, &shown, true)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::Unsafe {
                        path: shown.clone(),
                        reason: "symlink without target".into(),
                    })?
                    .into_owned();
                sys::symlinkat(OsStr::from_bytes(&target), dir, &name)
                    .map_err(io_err("creating symlink"))?;
                if self.is_root {
                    sys::lchownat(dir, &name, meta.uid, meta.gid).map_err(io_err("lchown"))?;
                }
                let _ = sys::lutimesat(dir, &name, meta.mtime);
                self.touch(dir, &name, &shown)?;
            }
            EntryType::Link => self.hardlink(entry, dir, &name, existing.is_some(), &shown)?,
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let fmt = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                if fmt != libc::S_IFIFO && !self.is_root {
                    tracing::warn!("skipping device node {shown}: not running as root");
                    return Ok(());
                }
                let h = entry.header();
                let major = h.device_major().ok().flatten().unwrap_or(0);
                let minor = h.device_minor().ok().flatten().unwrap_or(0);
                let dev = libc::makedev(major, minor);
                sys::mknodat(dir, &name, fmt | 0o600, dev).map_err(io_err("mknod"))?;
                self.finish_node(dir, &name, &meta, &shown, false)?;
            }
            other => {
                tracing::warn!("skipping entry {shown} of unsupported type {other:?}");
            }
        }
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        entry: &tar::Entry<'_, R>,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        exists: bool,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let raw = entry
            .link_name_bytes()
            .ok_or_else(|| UnpackError::Unsafe {
                path: shown.to_string(),
                reason: "hardlink without target".into(),
            })?
            .into_owned();
        let target_shown = String::from_utf8_lossy(&raw).into_owned();
        let mut tcomps = normalize(&raw).map_err(|e| UnpackError::Unsafe {
            path: shown.to_string(),
            reason: match e {
                UnpackError::Unsafe { reason, .. } => {
                    format!("hardlink target {target_shown:?} rejected: {reason}")
                }
                other => format!("hardlink target {target_shown:?} rejected: {other}"),
            },
        })?;
        let not_inside = || UnpackError::Unsafe {
            path: shown.to_string(),
            reason: format!("hardlink target {target_shown:?} does not exist inside the rootfs"),
        };
        let tname = tcomps.pop().ok_or_else(not_inside)?;
        let tdir = self
            .root
            .resolve_dir(&tcomps, false, shown)?
            .ok_or_else(not_inside)?;
        let tst = sys::lstatat(tdir.as_fd(), &tname).map_err(|_| not_inside())?;
        if tst.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(UnpackError::Unsafe {
                path: shown.to_string(),
                reason: "hardlink to a directory".into(),
            });
        }
        if exists {
            let cur = sys::lstatat(dir, name).map_err(|e| UnpackError::io(shown, "stat", e))?;
            if whiteout::key(&cur) == whiteout::key(&tst) {
                return Ok(());
            }
            remove_all(dir, name)
                .map_err(|e| UnpackError::io(shown, "replacing existing entry", e))?;
        }
        sys::linkat(tdir.as_fd(), &tname, dir, name)
            .map_err(|e| UnpackError::io(shown, "creating hardlink", e))?;
        self.touch(dir, name, shown)
    }

    fn touch(&mut self, dir: BorrowedFd<'_>, name: &OsStr, shown: &str) -> Result<(), UnpackError> {
        let st = sys::lstatat(dir, name).map_err(|e| UnpackError::io(shown, "stat", e))?;
        self.touched.insert(whiteout::key(&st));
        Ok(())
    }

    /// Ownership, mode (except directories: deferred), xattrs, mtime.
    fn finish_node(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &OsStr,
        meta: &Meta,
        shown: &str,
        set_mtime: bool,
    ) -> Result<(), UnpackError> {
        let fd: OwnedFd = sys::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)
            .map_err(|e| UnpackError::io(shown, "open", e))?;
        if self.is_root {
            sys::lchownat(dir, name, meta.uid, meta.gid)
                .map_err(|e| UnpackError::io(shown, "chown", e))?;
        }
        for (k, v) in &meta.xattrs {
            if let Err(e) = sys::set_xattr(fd.as_fd(), k, v) {
                tracing::debug!("{shown}: xattr {k} not set: {e}");
            }
        }
        let st = sys::fstat(fd.as_fd()).map_err(|e| UnpackError::io(shown, "stat", e))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
            std::fs::set_permissions(
                sys::proc_path(fd.as_fd()),
                PermissionsExt::from_mode(meta.mode),
            )
            .map_err(|e| UnpackError::io(shown, "chmod", e))?;
        }
        if set_mtime {
            let _ = sys::lutimesat(dir, name, meta.mtime);
        }
        self.touched.insert(whiteout::key(&st));
        Ok(())
    }

    /// Apply deferred directory modes (deepest first).
    pub fn finish(self) -> Result<(), UnpackError> {
        for (comps, mode) in self.dir_modes.iter().rev() {
            let shown = comps
                .iter()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            // The directory may have been removed by a later whiteout.
            let Some(fd) = self.root.resolve_dir(comps, false, &shown)? else {
                continue;
            };
            std::fs::set_permissions(sys::proc_path(fd.as_fd()), PermissionsExt::from_mode(*mode))
                .map_err(|e| UnpackError::io(&shown, "chmod", e))?;
        }
        Ok(())
    }
}
