//! The host side of isolation: the VMM process of a container joins the
//! container's `linux.cgroupsPath` on the host, so an orchestrator's limits
//! bound the whole VM and `ctr task metrics` / CRI stats (which read the
//! cgroup of the container's pid) see it.
//!
//! - [`path`]: `linux.cgroupsPath` (cgroupfs or `--systemd-cgroup`'s
//!   `slice:prefix:name`) → the path below each hierarchy's root;
//! - [`layout`]: the host's hierarchies (v1, also hybrid; v2) and where a
//!   process sits in them;
//! - [`limits`]: `linux.resources` → control-file writes, with the VM's
//!   overhead added ([`VmOverhead`]);
//! - [`cgroupfs`]: creating, writing and removing cgroup directories;
//!   [`error`]: [`HostCgroupError`].
//!
//! [`HostCgroup::join`] creates the directories (v1: in every hierarchy;
//! v2: enabling the parents' controllers), writes the limits, then moves
//! the pid in; on any error it undoes what it did. [`HostCgroup::dirs`]
//! lists what `delete` must remove later with [`remove_cgroup_dirs`]:
//! the directories vmrun created plus the leaf, never a pre-existing
//! parent. There is no systemd on these hosts: systemd paths are created
//! as plain directories.

mod cgroupfs;
mod error;
mod layout;
mod limits;
mod path;

use std::path::{Path, PathBuf};

use serde_json::Value;

use cgroupfs::{
    check_cgroup_dir, create_chain, move_pid, remove_dirs, v2_has_controller, write_file,
};
pub use error::HostCgroupError;
use layout::{CgroupVersion, Hierarchy, Layout, ProcCgroups};
use limits::LimitWrite;
pub use limits::VmOverhead;

/// The container's cgroup on the host: one directory per hierarchy (v1)
/// or one (v2), which the VMM process sits in.
#[derive(Debug, Clone)]
pub struct HostCgroup {
    version: CgroupVersion,
    cgroup_root: PathBuf,
    leaves: Vec<Leaf>,
    dirs: Vec<PathBuf>,
    /// Where the joined process was before (to go back with [`HostCgroup::leave`]).
    before: Option<ProcCgroups>,
    mounts: Mounts,
}

/// The container's directory in one hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Leaf {
    dir: PathBuf,
    hierarchy: Hierarchy,
}

/// Where cgroupfs and procfs are, and what the kernel does on mkdir/rmdir
/// that a plain directory tree does not (a parameter for tests).
#[derive(Debug, Clone)]
struct Mounts {
    cgroup_root: PathBuf,
    proc_root: PathBuf,
    after_mkdir: fn(&Path) -> std::io::Result<()>,
    before_rmdir: fn(&Path),
}

impl Mounts {
    fn system() -> Self {
        Self {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            proc_root: PathBuf::from("/proc"),
            after_mkdir: |_| Ok(()),
            before_rmdir: |_| {},
        }
    }
}

/// The `linux.cgroupsPath` to use when the spec has none, as runc picks
/// it: `<id>` below the caller's cgroup, or `:vmrun:<id>`
/// (`system.slice/vmrun-<id>.scope`) with `--systemd-cgroup`.
pub fn default_cgroups_path(container_id: &str, systemd: bool) -> String {
    if systemd {
        format!(":vmrun:{container_id}")
    } else {
        container_id.to_owned()
    }
}

impl HostCgroup {
    /// Joins container `id`'s host cgroup as its spec says: `linux.cgroupsPath`
    /// (or runc's default for the id) with `linux.resources` plus `overhead`.
    pub fn join_container(
        id: &str,
        spec: &Value,
        systemd: bool,
        overhead: VmOverhead,
        pid: u32,
    ) -> Result<Self, HostCgroupError> {
        let path = spec
            .pointer("/linux/cgroupsPath")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| default_cgroups_path(id, systemd));
        Self::join(
            &path,
            systemd,
            spec.pointer("/linux/resources"),
            overhead,
            pid,
        )
    }

    /// Creates the container's cgroup for `cgroups_path` (`systemd`: the
    /// `slice:prefix:name` form), writes the limits of `resources` (the
    /// spec's `linux.resources`) plus `overhead`, and moves `pid` (the
    /// VMM) in. Every field is checked before anything is created; on a
    /// later error the pid is moved back and the created directories are
    /// removed.
    pub fn join(
        cgroups_path: &str,
        systemd: bool,
        resources: Option<&Value>,
        overhead: VmOverhead,
        pid: u32,
    ) -> Result<Self, HostCgroupError> {
        Self::join_in(
            &Mounts::system(),
            cgroups_path,
            systemd,
            resources,
            overhead,
            pid,
        )
    }

    /// The cgroup recorded by an earlier [`join`](Self::join) (its
    /// [`dirs`](Self::dirs)), for `vmrun update` in a later process: the
    /// leaves are the recorded directories no other one is below.
    pub fn reopen(dirs: &[PathBuf]) -> Result<Self, HostCgroupError> {
        Self::reopen_in(&Mounts::system(), dirs)
    }

    /// Every directory to remove when the container is deleted: the ones
    /// [`join`](Self::join) created and the leaves; never a directory that
    /// existed before, except the leaf itself. Record it in state.json.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Moves `pid` (the process [`join`](Self::join) moved in) back to
    /// the cgroups it was in before and removes the directories (for a
    /// VMM that leaves its container's cgroup itself: `vmrun run` in the
    /// foreground, which outlives its container).
    pub fn leave(self, pid: u32) -> Result<(), HostCgroupError> {
        if let Some(before) = &self.before {
            for leaf in &self.leaves {
                let back = leaf
                    .hierarchy
                    .mount
                    .join(before.path_in(self.version, &leaf.hierarchy));
                move_pid(&back, pid)?;
            }
        }
        remove_dirs(&self.dirs, self.mounts.before_rmdir)
    }

    /// Writes new limits (`vmrun update`): `resources` is a
    /// `linux.resources` object, `overhead` as for [`join`](Self::join).
    pub fn update(&self, resources: &Value, overhead: VmOverhead) -> Result<(), HostCgroupError> {
        let writes = limits::plan(Some(resources), overhead, self.version)?;
        self.apply(writes)
    }

    fn join_in(
        mounts: &Mounts,
        cgroups_path: &str,
        systemd: bool,
        resources: Option<&Value>,
        overhead: VmOverhead,
        pid: u32,
    ) -> Result<Self, HostCgroupError> {
        let path = path::parse(cgroups_path, systemd)?;
        let Layout {
            version,
            hierarchies,
        } = layout::detect(&mounts.cgroup_root)?;
        let writes = limits::plan(resources, overhead, version)?;
        let own = ProcCgroups::read(&mounts.proc_root.join("self/cgroup"))?;
        let before = ProcCgroups::read(&mounts.proc_root.join(pid.to_string()).join("cgroup"))?;
        let mut cgroup = Self {
            version,
            cgroup_root: mounts.cgroup_root.clone(),
            leaves: Vec::new(),
            dirs: Vec::new(),
            before: None,
            mounts: mounts.clone(),
        };
        let mut created = Vec::new();
        let mut joined = Vec::new();
        let result = (|| {
            for hierarchy in hierarchies {
                let dir = layout::leaf_dir(&hierarchy, &path, version, &own);
                create_chain(mounts.after_mkdir, version, &hierarchy, &dir, &mut created)?;
                cgroup.leaves.push(Leaf { dir, hierarchy });
            }
            cgroup.apply(writes)?;
            for leaf in &cgroup.leaves {
                move_pid(&leaf.dir, pid)?;
                joined.push(leaf);
            }
            Ok(())
        })();
        if let Err(err) = result {
            for leaf in joined {
                let back = leaf
                    .hierarchy
                    .mount
                    .join(before.path_in(version, &leaf.hierarchy));
                if let Err(e) = move_pid(&back, pid) {
                    tracing::warn!("undoing a failed cgroup join: {e}");
                }
            }
            if let Err(e) = remove_dirs(&created, mounts.before_rmdir) {
                tracing::warn!("undoing a failed cgroup join: {e}");
            }
            return Err(err);
        }
        cgroup.dirs = created;
        cgroup.before = Some(before);
        for leaf in &cgroup.leaves {
            if !cgroup.dirs.contains(&leaf.dir) {
                cgroup.dirs.push(leaf.dir.clone());
            }
        }
        Ok(cgroup)
    }

    fn reopen_in(mounts: &Mounts, dirs: &[PathBuf]) -> Result<Self, HostCgroupError> {
        let Layout {
            version,
            hierarchies,
        } = layout::detect(&mounts.cgroup_root)?;
        let mut leaves = Vec::new();
        for dir in dirs {
            check_cgroup_dir(dir)?;
            if dirs
                .iter()
                .any(|other| other != dir && other.starts_with(dir))
            {
                continue;
            }
            let hierarchy = hierarchies
                .iter()
                .filter(|h| dir.starts_with(&h.mount) && dir != &h.mount)
                .max_by_key(|h| h.mount.components().count())
                .ok_or_else(|| HostCgroupError::NotACgroupDir(dir.clone()))?;
            leaves.push(Leaf {
                dir: dir.clone(),
                hierarchy: hierarchy.clone(),
            });
        }
        Ok(Self {
            version,
            cgroup_root: mounts.cgroup_root.clone(),
            leaves,
            dirs: dirs.to_vec(),
            before: None,
            mounts: mounts.clone(),
        })
    }

    /// Writes `writes` into the leaves owning their controllers.
    fn apply(&self, mut writes: Vec<LimitWrite>) -> Result<(), HostCgroupError> {
        if self.version == CgroupVersion::V1 {
            let memsw = self
                .leaf_for("memory")
                .map(|l| l.dir.join(limits::V1_MEMSW));
            let current = memsw
                .and_then(|f| std::fs::read_to_string(f).ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            limits::order_v1_memory(&mut writes, current);
        }
        for write in &writes {
            let missing = || HostCgroupError::ControllerMissing {
                controller: write.controller,
                dir: self
                    .leaves
                    .first()
                    .filter(|_| self.version == CgroupVersion::V2)
                    .map_or_else(|| self.cgroup_root.clone(), |l| l.dir.clone()),
                field: write.field,
            };
            let leaf = self.leaf_for(write.controller).ok_or_else(missing)?;
            if self.version == CgroupVersion::V2 && !v2_has_controller(&leaf.dir, write.controller)?
            {
                return Err(missing());
            }
            let file = leaf.dir.join(write.file);
            if write.optional && !layout::exists(&file)? {
                continue;
            }
            write_file(&file, &write.value).map_err(|source| HostCgroupError::Write {
                file,
                value: write.value.clone(),
                field: write.field,
                source,
            })?;
        }
        Ok(())
    }

    /// The leaf whose hierarchy holds `controller` (v2: the only one).
    fn leaf_for(&self, controller: &str) -> Option<&Leaf> {
        match self.version {
            CgroupVersion::V2 => self.leaves.first(),
            CgroupVersion::V1 => self
                .leaves
                .iter()
                .find(|l| l.hierarchy.controllers.iter().any(|c| c == controller)),
        }
    }
}

/// Removes the cgroup directories `dirs` (from [`HostCgroup::dirs`]) once
/// the VMM is gone: deepest first, retrying briefly while the kernel still
/// reports one busy (its last task is still being torn down). A missing
/// directory is fine. Every directory is tried; the first error is
/// returned.
pub fn remove_cgroup_dirs(dirs: &[PathBuf]) -> Result<(), HostCgroupError> {
    remove_dirs(dirs, Mounts::system().before_rmdir)
}

#[cfg(test)]
mod tests;
