//! File operations on cgroupfs: creating a cgroup's directory chain
//! (v1 cpuset inheritance, v2 controller enabling), writing control files,
//! moving a pid, removing directories.

use std::cmp::Reverse;
use std::io::{ErrorKind, Write};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use super::error::HostCgroupError;
use super::layout::{CgroupVersion, Hierarchy};

/// How often, and how long apart, a busy cgroup is retried (1 s in all).
const BUSY_RETRIES: u32 = 100;
const BUSY_PAUSE: Duration = Duration::from_millis(10);

/// [`super::remove_cgroup_dirs`], running `before_rmdir` on each directory
/// first (the fake kernel of the tests drops its control files there).
pub(super) fn remove_dirs(
    dirs: &[PathBuf],
    before_rmdir: fn(&Path),
) -> Result<(), HostCgroupError> {
    let mut ordered: Vec<&PathBuf> = dirs.iter().collect();
    ordered.sort_by_key(|d| Reverse(d.components().count()));
    ordered.dedup();
    let mut first_error = None;
    for dir in ordered {
        let result = check_cgroup_dir(dir).and_then(|()| {
            before_rmdir(dir);
            remove_dir_retrying(dir)
        });
        if let Err(e) = result {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn remove_dir_retrying(dir: &Path) -> Result<(), HostCgroupError> {
    let mut attempt = 0;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < BUSY_RETRIES => {
                attempt += 1;
                std::thread::sleep(BUSY_PAUSE);
            }
            Err(e) => return Err(HostCgroupError::Remove(dir.to_path_buf(), e)),
        }
    }
}

/// A recorded directory must be absolute and free of `.`/`..` (state.json
/// is only trusted that far).
pub(super) fn check_cgroup_dir(dir: &Path) -> Result<(), HostCgroupError> {
    let clean = dir.is_absolute()
        && dir
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && dir.components().count() > 1;
    if clean {
        Ok(())
    } else {
        Err(HostCgroupError::NotACgroupDir(dir.to_path_buf()))
    }
}

/// Creates `leaf` and its missing parents in `hierarchy`, recording each
/// created directory in `created`. v1 cpuset: a new directory inherits its
/// parent's cpus and mems (the kernel leaves them empty). v2: each parent
/// enables its available controllers for its children first.
pub(super) fn create_chain(
    after_mkdir: fn(&Path) -> std::io::Result<()>,
    version: CgroupVersion,
    hierarchy: &Hierarchy,
    leaf: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<(), HostCgroupError> {
    let below = leaf
        .strip_prefix(&hierarchy.mount)
        .map_err(|_| HostCgroupError::NotACgroupDir(leaf.to_path_buf()))?;
    let mut dir = hierarchy.mount.clone();
    for component in below.components() {
        let parent = dir.clone();
        dir.push(component);
        if version == CgroupVersion::V2 {
            enable_controllers(&parent);
        }
        match std::fs::create_dir(&dir) {
            Ok(()) => {
                created.push(dir.clone());
                after_mkdir(&dir).map_err(|e| HostCgroupError::Create(dir.clone(), e))?;
                if hierarchy.controllers.iter().any(|c| c == "cpuset") {
                    inherit_cpuset(&parent, &dir)?;
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(HostCgroupError::Create(dir, e)),
        }
    }
    Ok(())
}

/// Writes `value` to a control file (never creating it).
pub(super) fn write_file(file: &Path, value: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(file)?;
    f.write_all(value.as_bytes())
}

/// Moves `pid` into the cgroup `dir`.
pub(super) fn move_pid(dir: &Path, pid: u32) -> Result<(), HostCgroupError> {
    let file = dir.join("cgroup.procs");
    write_file(&file, &pid.to_string()).map_err(|source| HostCgroupError::Join {
        pid,
        file,
        source,
    })
}

/// v2: whether `dir`'s `cgroup.controllers` lists `controller`.
pub(super) fn v2_has_controller(dir: &Path, controller: &str) -> Result<bool, HostCgroupError> {
    let file = dir.join("cgroup.controllers");
    let text = std::fs::read_to_string(&file).map_err(|e| HostCgroupError::Read(file, e))?;
    Ok(text.split_whitespace().any(|c| c == controller))
}

/// v2: enables every controller `dir` has for its children, like runc.
/// Failures are not errors here (a parent with processes of its own
/// cannot enable them); a limit that needs a missing controller fails
/// later, naming its field.
fn enable_controllers(dir: &Path) {
    let Ok(available) = std::fs::read_to_string(dir.join("cgroup.controllers")) else {
        return;
    };
    let file = dir.join("cgroup.subtree_control");
    let all: Vec<String> = available
        .split_whitespace()
        .map(|c| format!("+{c}"))
        .collect();
    if all.is_empty() || write_file(&file, &all.join(" ")).is_ok() {
        return;
    }
    for one in &all {
        if let Err(e) = write_file(&file, one) {
            tracing::debug!("cannot enable {one} in {}: {e}", file.display());
        }
    }
}

/// v1 cpuset: copies the parent's cpus and mems into a new directory
/// whose own are empty (a task cannot join an empty cpuset).
fn inherit_cpuset(parent: &Path, dir: &Path) -> Result<(), HostCgroupError> {
    for name in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(name);
        let current =
            std::fs::read_to_string(&own).map_err(|e| HostCgroupError::Read(own.clone(), e))?;
        if !current.trim().is_empty() {
            continue;
        }
        let from = parent.join(name);
        let value = std::fs::read_to_string(&from).map_err(|e| HostCgroupError::Read(from, e))?;
        write_file(&own, value.trim()).map_err(|source| HostCgroupError::Write {
            file: own,
            value: value.trim().to_owned(),
            field: "the parent cgroup's cpuset (inherited)",
            source,
        })?;
    }
    Ok(())
}
