//! Refuses a rootfs whose special directories or device nodes are symlinks.
//!
//! libcontainer resolves mount destinations inside the root, so a symlinked
//! `/proc` would land *somewhere* inside the root; runc refuses such a rootfs
//! outright and so do we: a container whose `/proc` is not procfs (or whose
//! `/dev/null` is a regular file it controls) is a confused-deputy trap.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::oci_spec::runtime::Spec;
use crate::IsolationError;

/// Paths (relative to the root) that must not be, or lie under, a symlink.
const FIXED: [&str; 13] = [
    "proc",
    "sys",
    "dev",
    "dev/null",
    "dev/zero",
    "dev/full",
    "dev/random",
    "dev/urandom",
    "dev/tty",
    "dev/console",
    "dev/ptmx",
    "dev/pts",
    "dev/shm",
];

/// A directory holding at least this many of the names checked is listed
/// once instead of looking each name up: on a virtio-fs root every lookup
/// of a missing name is a round trip to the host (the guest caches no
/// negative entry), and an image's `/dev` is usually empty.
const LIST_FROM: usize = 4;

/// Checks that `rootfs` is a directory and that none of the special paths
/// (and none of the spec's special mount destinations) is a symlink or
/// lies below one. A path that does not exist is fine (libcontainer
/// creates it).
pub fn check_rootfs(rootfs: &Path, spec: &Spec) -> Result<(), IsolationError> {
    let meta = std::fs::metadata(rootfs)
        .map_err(|e| IsolationError::io(format!("rootfs {}", rootfs.display()), e))?;
    if !meta.is_dir() {
        return Err(IsolationError::UnsafeRootfs {
            path: rootfs.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    let special_mounts = spec.mounts().iter().flatten().filter(|m| {
        matches!(
            m.typ().as_deref(),
            Some("proc" | "sysfs" | "devpts" | "cgroup" | "cgroup2" | "mqueue")
        )
    });
    let from_spec = special_mounts.map(|m| m.destination().clone());
    let mut paths: Vec<PathBuf> = Vec::new();
    for rel in FIXED.iter().map(PathBuf::from).chain(from_spec) {
        let rel: PathBuf = normal_components(&rel).collect();
        if !rel.as_os_str().is_empty() && !paths.contains(&rel) {
            paths.push(rel);
        }
    }
    let mut dirs = Directories::new(rootfs, &paths);
    for rel in &paths {
        check_no_symlink(&mut dirs, rel)?;
    }
    Ok(())
}

fn normal_components(rel: &Path) -> impl Iterator<Item = &std::ffi::OsStr> {
    rel.components().filter_map(|c| match c {
        Component::Normal(name) => Some(name),
        _ => None,
    })
}

/// What a name in a directory is, as far as the check cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Missing,
    Symlink,
    Other,
}

/// The directories under the root the check looks into: those holding
/// [`LIST_FROM`] or more of the checked names are listed once.
struct Directories<'r> {
    root: &'r Path,
    names_checked: HashMap<PathBuf, usize>,
    listed: HashMap<PathBuf, HashMap<OsString, Entry>>,
}

impl<'r> Directories<'r> {
    fn new(root: &'r Path, paths: &[PathBuf]) -> Self {
        let mut names: HashMap<PathBuf, Vec<&std::ffi::OsStr>> = HashMap::new();
        for rel in paths {
            let mut parent = PathBuf::new();
            for name in normal_components(rel) {
                let seen = names.entry(parent.clone()).or_default();
                if !seen.contains(&name) {
                    seen.push(name);
                }
                parent.push(name);
            }
        }
        Self {
            root,
            names_checked: names.into_iter().map(|(dir, n)| (dir, n.len())).collect(),
            listed: HashMap::new(),
        }
    }

    /// What `name` in directory `dir` (relative to the root) is.
    fn entry(&mut self, dir: &Path, name: &std::ffi::OsStr) -> Result<Entry, IsolationError> {
        let many = self.names_checked.get(dir).copied().unwrap_or(0) >= LIST_FROM;
        if !many {
            return lookup(&self.root.join(dir).join(name));
        }
        if !self.listed.contains_key(dir) {
            let listing = list(&self.root.join(dir))?;
            self.listed.insert(dir.to_path_buf(), listing);
        }
        Ok(self
            .listed
            .get(dir)
            .and_then(|entries| entries.get(name).copied())
            .unwrap_or(Entry::Missing))
    }
}

fn lookup(path: &Path) -> Result<Entry, IsolationError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Ok(Entry::Symlink),
        Ok(_) => Ok(Entry::Other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Entry::Missing),
        Err(e) => Err(IsolationError::io(
            format!("checking {}", path.display()),
            e,
        )),
    }
}

fn list(dir: &Path) -> Result<HashMap<OsString, Entry>, IsolationError> {
    let err = |e| IsolationError::io(format!("listing {}", dir.display()), e);
    let mut entries = HashMap::new();
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        // The type comes with the listing; std looks the entry up only
        // when the file system did not say.
        let kind = match entry.file_type() {
            Ok(t) if t.is_symlink() => Entry::Symlink,
            Ok(_) => Entry::Other,
            Err(e) => return Err(err(e)),
        };
        entries.insert(entry.file_name(), kind);
    }
    Ok(entries)
}

fn check_no_symlink(dirs: &mut Directories<'_>, rel: &Path) -> Result<(), IsolationError> {
    let mut parent = PathBuf::new();
    for name in normal_components(rel) {
        match dirs.entry(&parent, name)? {
            Entry::Missing => return Ok(()),
            Entry::Symlink => {
                let here = dirs.root.join(&parent).join(name);
                let target = std::fs::read_link(&here)
                    .map(|t| t.display().to_string())
                    .unwrap_or_else(|_| "?".into());
                return Err(IsolationError::UnsafeRootfs {
                    path: Path::new("/").join(&parent).join(name),
                    reason: format!("is a symlink (to {target}); refusing to mount over it"),
                });
            }
            Entry::Other => parent.push(name),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_spec;

    fn spec() -> Spec {
        parse_spec(
            br#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
            "mounts":[{"destination":"/run/mq","type":"mqueue","source":"mqueue"}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn plain_rootfs_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev")).unwrap();
        std::fs::create_dir(dir.path().join("proc")).unwrap();
        check_rootfs(dir.path(), &spec()).unwrap();
    }

    #[test]
    fn proc_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("proc")).unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("/proc"), "{err}");
    }

    #[test]
    fn dev_null_symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("dev/null")).unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("/dev/null"), "{err}");
    }

    #[test]
    fn a_listed_dev_finds_a_symlink_and_ignores_others() {
        // /dev holds 10+ checked names: it is listed, not looked up.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev/pts")).unwrap();
        std::fs::write(dir.path().join("dev/null"), b"").unwrap();
        std::os::unix::fs::symlink("/proc/self/fd", dir.path().join("dev/fd")).unwrap();
        check_rootfs(dir.path(), &spec()).expect("only unchecked names are symlinks");
        std::os::unix::fs::symlink("/etc/shadow", dir.path().join("dev/tty")).unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("/dev/tty"), "{err}");
        assert!(err.to_string().contains("/etc/shadow"), "{err}");
    }

    #[test]
    fn a_dev_that_is_a_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dev"), b"").unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("dev"), "{err}");
    }

    #[test]
    fn symlinked_parent_of_special_mount_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/tmp", dir.path().join("run")).unwrap();
        let err = check_rootfs(dir.path(), &spec()).unwrap_err();
        assert!(err.to_string().contains("/run"), "{err}");
    }
}
