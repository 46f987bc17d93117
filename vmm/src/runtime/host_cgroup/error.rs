//! The errors of host cgroup handling.

use std::path::PathBuf;

/// Errors of host cgroup handling; each names the file or the spec field.
#[derive(Debug, thiserror::Error)]
pub enum HostCgroupError {
    /// `linux.cgroupsPath` cannot be used.
    #[error("invalid linux.cgroupsPath {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `linux.resources` field has a bad value.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The spec field, e.g. `linux.resources.memory.limit`.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// No cgroup hierarchy is mounted where expected.
    #[error("no cgroup hierarchy under {0}")]
    NoHierarchy(PathBuf),
    /// A recorded directory is in no mounted hierarchy, or is not a clean
    /// absolute path.
    #[error("{0} is not a cgroup directory vmrun could have created")]
    NotACgroupDir(PathBuf),
    /// A limit needs a controller the container's cgroup does not have.
    #[error("the {controller} controller is not available for {dir} (needed for {field})")]
    ControllerMissing {
        /// The controller, e.g. `pids`.
        controller: &'static str,
        /// The container's cgroup (v2) or the cgroup mount root (v1).
        dir: PathBuf,
        /// The spec field that needs it.
        field: &'static str,
    },
    /// A file could not be read.
    #[error("cannot read {0}")]
    Read(PathBuf, #[source] std::io::Error),
    /// A cgroup directory could not be created.
    #[error("cannot create {0}")]
    Create(PathBuf, #[source] std::io::Error),
    /// A control file could not be written.
    #[error("cannot write {value:?} to {file} (for {field})")]
    Write {
        /// The control file.
        file: PathBuf,
        /// The value.
        value: String,
        /// The spec field it comes from.
        field: &'static str,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// The pid could not be moved into the cgroup.
    #[error("cannot move pid {pid} into {file}")]
    Join {
        /// The process.
        pid: u32,
        /// The `cgroup.procs` file.
        file: PathBuf,
        /// The kernel's answer.
        #[source]
        source: std::io::Error,
    },
    /// A cgroup directory could not be removed.
    #[error("cannot remove {0}")]
    Remove(PathBuf, #[source] std::io::Error),
}
