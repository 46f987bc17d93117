//! A container's cgroup after creation: its processes (`kill --all`,
//! `ps`), its freezer, its limits (`update`) and its usage (`events
//! --stats`), through the same libcgroups libcontainer created it with.

use std::path::{Path, PathBuf};

use libcgroups::common::{
    create_cgroup_manager_with_root, get_cgroup_setup_with_root, AnyCgroupManager, CgroupConfig,
    CgroupManager, CgroupSetup, ControllerOpt, FreezerState,
};
use nix::errno::Errno;
use nix::unistd::Pid;

use crate::oci_spec::runtime::LinuxResources;
use crate::processes::{self, ProcessInfo};
use crate::resources_update::{check_update, merge};
use crate::stats::Stats;
use crate::validate::Warning;
use crate::{stats_v2, IsolationError};

/// The cgroup of one container.
#[derive(Debug)]
pub struct ContainerCgroup {
    id: String,
    root: PathBuf,
    /// The cgroup path libcontainer used (e.g. `/vmrun/<id>`).
    path: PathBuf,
    /// The limits as applied: the spec's, merged with every update since.
    resources: LinuxResources,
}

impl ContainerCgroup {
    pub(crate) fn new(id: &str, root: &Path, path: PathBuf, resources: LinuxResources) -> Self {
        Self {
            id: id.to_owned(),
            root: root.to_path_buf(),
            path,
            resources,
        }
    }

    fn err(
        &self,
        what: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> IsolationError {
        IsolationError::cgroup(what, &self.id, source)
    }

    /// Is the hierarchy the unified (cgroup v2) one?
    pub fn is_unified(&self) -> Result<bool, IsolationError> {
        get_cgroup_setup_with_root(&self.root)
            .map(|setup| matches!(setup, CgroupSetup::Unified))
            .map_err(|e| self.err("finding the cgroup hierarchy", e))
    }

    fn manager(&self) -> Result<AnyCgroupManager, IsolationError> {
        create_cgroup_manager_with_root(
            Some(&self.root),
            CgroupConfig {
                cgroup_path: self.path.clone(),
                systemd_cgroup: false,
                container_name: self.id.clone(),
            },
        )
        .map_err(|e| self.err("opening the container's cgroup", e))
    }

    /// The cgroup's directory in the unified (v2) hierarchy.
    fn unified_dir(&self) -> PathBuf {
        let relative = self.path.strip_prefix("/").unwrap_or(&self.path);
        self.root.join(relative)
    }

    /// Every pid in the container's cgroup (guest pids, unordered).
    pub fn pids(&self) -> Result<Vec<i32>, IsolationError> {
        let pids = self
            .manager()?
            .get_all_pids()
            .map_err(|e| self.err("listing the cgroup's processes", e))?;
        Ok(pids.into_iter().map(Pid::as_raw).collect())
    }

    /// The container's processes as `ps` shows them, `init` first while it
    /// lives, at most `max` of them (see [`processes::describe_all`]).
    pub fn processes(&self, init: i32, max: usize) -> Result<Vec<ProcessInfo>, IsolationError> {
        Ok(processes::describe_all(&self.pids()?, init, max))
    }

    /// Sends `signal` to every process in the cgroup (runc's
    /// `kill --all`). SIGKILL is one write to `cgroup.kill` where the
    /// hierarchy has it (cgroup v2 on Linux 5.14+), as runc 1.2 does: the
    /// kernel kills the whole cgroup, forks in flight included. Otherwise
    /// a running container is frozen meanwhile, so nothing forks past the
    /// signal sent to each process; a `paused` one stays as it is.
    pub fn signal_all(&self, signal: i32, paused: bool) -> Result<(), IsolationError> {
        if signal == libc::SIGKILL && self.write_cgroup_kill() {
            return Ok(());
        }
        let manager = self.manager()?;
        if !paused {
            if let Err(e) = manager.freeze(FreezerState::Frozen) {
                tracing::warn!(container = %self.id, "freezing for kill --all: {e}");
            }
        }
        let result = manager
            .get_all_pids()
            .map_err(|e| self.err("listing the cgroup's processes", e))
            .and_then(|pids| {
                for pid in pids {
                    match crate::signal::send(pid, signal) {
                        Ok(()) | Err(Errno::ESRCH) => {}
                        Err(e) => {
                            return Err(self
                                .err(format!("sending signal {signal} to pid {pid}").as_str(), e))
                        }
                    }
                }
                Ok(())
            });
        if !paused {
            if let Err(e) = manager.freeze(FreezerState::Thawed) {
                tracing::warn!(container = %self.id, "thawing after kill --all: {e}");
            }
        }
        result
    }

    /// Writes `1` to the cgroup's `cgroup.kill`: whether there was one
    /// and the write took. The file is opened without `create`, so a
    /// hierarchy without it (cgroup v1, Linux before 5.14) gets nothing
    /// made.
    fn write_cgroup_kill(&self) -> bool {
        use std::io::Write;
        std::fs::OpenOptions::new()
            .write(true)
            .open(self.unified_dir().join("cgroup.kill"))
            .and_then(|mut file| file.write_all(b"1"))
            .is_ok()
    }

    /// Freezes the cgroup (a created container's `pause`: libcontainer
    /// pauses only running ones).
    pub(crate) fn freeze(&self) -> Result<(), IsolationError> {
        self.manager()?
            .freeze(FreezerState::Frozen)
            .map_err(|e| self.err("freezing the cgroup", e))
    }

    /// Thaws the cgroup (after SIGKILL to a paused container, to resume a
    /// created one, or before removing it).
    pub(crate) fn thaw(&self) -> Result<(), IsolationError> {
        self.manager()?
            .freeze(FreezerState::Thawed)
            .map_err(|e| self.err("thawing the cgroup", e))
    }

    /// Applies an OCI `linux.resources` update (runc's `update`): the
    /// fields present replace the current ones, absent ones stay as they
    /// are. Fields the guest's hierarchy cannot apply are refused naming
    /// them (`resources.memory.swappiness`, ...), as are device rules.
    /// Returns warnings for fields ignored as runc ignores them.
    pub fn update(&mut self, update: &LinuxResources) -> Result<Vec<Warning>, IsolationError> {
        let unified = self.is_unified()?;
        let warnings = check_update(update, &self.root, unified)?;
        let merged = merge(&self.resources, update);
        let mut applied = merged.clone();
        if !unified {
            // cgroup v1 (test hosts): re-writing the device rules would
            // deny every device for a moment; they do not change anyway.
            applied.set_devices(None);
        }
        let options = ControllerOpt {
            resources: &applied,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        };
        self.manager()?
            .apply(&options)
            .map_err(|e| self.err("applying the new limits", e))?;
        self.resources = merged;
        Ok(warnings)
    }

    /// Resource usage in the shape of runc's `events --stats` data.
    pub fn stats(&self) -> Result<Stats, IsolationError> {
        if self.is_unified()? {
            let dir = self.unified_dir();
            if !dir.is_dir() {
                return Err(self.err(
                    "reading the cgroup's statistics",
                    std::io::Error::from(std::io::ErrorKind::NotFound),
                ));
            }
            return Ok(stats_v2::read(&dir, Path::new(stats_v2::HUGEPAGES_DIR)));
        }
        let stats = self
            .manager()?
            .stats()
            .map_err(|e| self.err("reading the cgroup's statistics", e))?;
        Ok(Stats::from_libcgroups(&stats))
    }
}
