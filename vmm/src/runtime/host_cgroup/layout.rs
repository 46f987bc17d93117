//! Which cgroup hierarchies a host has, and where a process sits in them.
//!
//! v2 (unified): the mount root holds `cgroup.controllers`. v1 (also the
//! v1 side of a hybrid host): every real directory under the mount root
//! holding `cgroup.procs` is a hierarchy, named after its controllers
//! (`memory`, `cpu,cpuacct`, `systemd` for `name=systemd`); symlinks
//! (`cpu` → `cpu,cpuacct`) and the hybrid host's cgroup2 mount
//! (`unified`) are skipped.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::error::HostCgroupError;
use super::path::CgroupPath;

/// The cgroup version of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CgroupVersion {
    /// One hierarchy per controller set.
    V1,
    /// The unified hierarchy.
    V2,
}

/// A mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hierarchy {
    /// Its mount point (v2: the cgroup root itself).
    pub mount: PathBuf,
    /// v1: the controllers it holds (`name=` stripped); v2: empty (ask
    /// each directory's `cgroup.controllers`).
    pub controllers: Vec<String>,
}

/// The hierarchies of a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Layout {
    pub version: CgroupVersion,
    pub hierarchies: Vec<Hierarchy>,
}

/// Finds the hierarchies mounted under `root` (normally `/sys/fs/cgroup`).
pub(super) fn detect(root: &Path) -> Result<Layout, HostCgroupError> {
    if root.join("cgroup.controllers").exists() {
        return Ok(Layout {
            version: CgroupVersion::V2,
            hierarchies: vec![Hierarchy {
                mount: root.to_path_buf(),
                controllers: Vec::new(),
            }],
        });
    }
    let entries = std::fs::read_dir(root).map_err(|e| HostCgroupError::Read(root.into(), e))?;
    let mut hierarchies = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| HostCgroupError::Read(root.into(), e))?;
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let dir = entry.path();
        if !is_dir || !dir.join("cgroup.procs").exists() || dir.join("cgroup.controllers").exists()
        {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        hierarchies.push(Hierarchy {
            mount: dir,
            controllers: name.split(',').map(str::to_owned).collect(),
        });
    }
    if hierarchies.is_empty() {
        return Err(HostCgroupError::NoHierarchy(root.to_path_buf()));
    }
    hierarchies.sort_by(|a, b| a.mount.cmp(&b.mount));
    Ok(Layout {
        version: CgroupVersion::V1,
        hierarchies,
    })
}

/// One line of `/proc/<pid>/cgroup`: `id:controllers:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    /// Controllers, `name=` stripped; empty for the v2 line (`0::/x`).
    controllers: Vec<String>,
    /// The cgroup, from the hierarchy's root (`/a/b`).
    path: String,
}

/// Where a process sits, per hierarchy (`/proc/<pid>/cgroup`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProcCgroups(Vec<Membership>);

impl ProcCgroups {
    /// Reads `/proc/<pid>/cgroup` (or `/proc/self/cgroup`) at `file`.
    pub fn read(file: &Path) -> Result<Self, HostCgroupError> {
        let text =
            std::fs::read_to_string(file).map_err(|e| HostCgroupError::Read(file.into(), e))?;
        Ok(Self::parse(&text))
    }

    fn parse(text: &str) -> Self {
        let lines = text.lines().filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _id = fields.next()?;
            let controllers = fields.next()?;
            let path = fields.next()?;
            Some(Membership {
                controllers: controllers
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(|c| c.strip_prefix("name=").unwrap_or(c).to_owned())
                    .collect(),
                path: path.to_owned(),
            })
        });
        Self(lines.collect())
    }

    /// The cgroup in `hierarchy` (`/` when the file does not say), as a
    /// path relative to its root.
    pub fn path_in(&self, version: CgroupVersion, hierarchy: &Hierarchy) -> PathBuf {
        let found = self.0.iter().find(|m| match version {
            CgroupVersion::V2 => m.controllers.is_empty(),
            CgroupVersion::V1 => same_set(&m.controllers, &hierarchy.controllers),
        });
        let path = found.map_or("/", |m| m.path.as_str());
        PathBuf::from(path.trim_start_matches('/'))
    }
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.contains(x))
}

/// The container's directory in `hierarchy`: `path` below its root, or
/// (relative) below `own`, the caller's cgroup there — on v2 below its
/// parent, as runc does (the caller's own cgroup has processes, so
/// controllers could not be enabled for a child of it).
pub(super) fn leaf_dir(
    hierarchy: &Hierarchy,
    path: &CgroupPath,
    version: CgroupVersion,
    own: &ProcCgroups,
) -> PathBuf {
    match path {
        CgroupPath::Absolute(p) => hierarchy.mount.join(p.strip_prefix("/").unwrap_or(p)),
        CgroupPath::Relative(p) => {
            let mut base = own.path_in(version, hierarchy);
            if version == CgroupVersion::V2 {
                base.pop();
            }
            hierarchy.mount.join(base).join(p)
        }
    }
}

/// Whether `file` exists (a missing optional control file is no error).
pub(super) fn exists(file: &Path) -> Result<bool, HostCgroupError> {
    match std::fs::symlink_metadata(file) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(HostCgroupError::Read(file.into(), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_hierarchies_are_found_by_their_directories() {
        let root = tempfile::tempdir().unwrap();
        for dir in [
            "cpu,cpuacct",
            "memory",
            "systemd",
            "unified",
            "not-a-cgroup",
        ] {
            std::fs::create_dir(root.path().join(dir)).unwrap();
        }
        for dir in ["cpu,cpuacct", "memory", "systemd", "unified"] {
            std::fs::write(root.path().join(dir).join("cgroup.procs"), "").unwrap();
        }
        std::fs::write(root.path().join("unified/cgroup.controllers"), "").unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", root.path().join("cpu")).unwrap();
        let layout = detect(root.path()).unwrap();
        assert_eq!(layout.version, CgroupVersion::V1);
        let names: Vec<Vec<String>> = layout
            .hierarchies
            .iter()
            .map(|h| h.controllers.clone())
            .collect();
        assert_eq!(
            names,
            [vec!["cpu", "cpuacct"], vec!["memory"], vec!["systemd"]]
        );
    }

    #[test]
    fn a_unified_root_is_v2_and_an_empty_one_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        assert!(detect(root.path())
            .unwrap_err()
            .to_string()
            .contains("no cgroup hierarchy"));
        std::fs::write(root.path().join("cgroup.controllers"), "memory pids").unwrap();
        let layout = detect(root.path()).unwrap();
        assert_eq!(layout.version, CgroupVersion::V2);
        assert_eq!(layout.hierarchies[0].mount, root.path());
    }

    #[test]
    fn proc_cgroup_lines_map_to_hierarchies() {
        let own = ProcCgroups::parse(
            "9:name=systemd:/user.slice\n4:memory:/process_api/x\n2:cpuacct,cpu:/\n0::/init.scope\n",
        );
        let h = |c: &[&str]| Hierarchy {
            mount: PathBuf::from("/cg").join(c.join(",")),
            controllers: c.iter().map(|s| s.to_string()).collect(),
        };
        let v1 = CgroupVersion::V1;
        assert_eq!(
            own.path_in(v1, &h(&["memory"])),
            PathBuf::from("process_api/x")
        );
        assert_eq!(
            own.path_in(v1, &h(&["systemd"])),
            PathBuf::from("user.slice")
        );
        assert_eq!(own.path_in(v1, &h(&["cpu", "cpuacct"])), PathBuf::from(""));
        assert_eq!(own.path_in(v1, &h(&["pids"])), PathBuf::from(""));
        let unified = Hierarchy {
            mount: PathBuf::from("/cg"),
            controllers: Vec::new(),
        };
        assert_eq!(
            own.path_in(CgroupVersion::V2, &unified),
            PathBuf::from("init.scope")
        );

        let relative = CgroupPath::Relative(PathBuf::from("c1"));
        assert_eq!(
            leaf_dir(&h(&["memory"]), &relative, v1, &own),
            PathBuf::from("/cg/memory/process_api/x/c1")
        );
        let absolute = CgroupPath::Absolute(PathBuf::from("/a/b"));
        assert_eq!(
            leaf_dir(&h(&["memory"]), &absolute, v1, &own),
            PathBuf::from("/cg/memory/a/b")
        );
        let v2 = CgroupVersion::V2;
        let nested = ProcCgroups::parse("0::/user.slice/session-1.scope\n");
        assert_eq!(
            leaf_dir(&unified, &relative, v2, &nested),
            PathBuf::from("/cg/user.slice/c1")
        );
        let at_root = ProcCgroups::parse("0::/\n");
        assert_eq!(
            leaf_dir(&unified, &relative, v2, &at_root),
            PathBuf::from("/cg/c1")
        );
    }
}
