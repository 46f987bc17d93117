//! The error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong while checking a spec or running a container.
#[derive(Debug, thiserror::Error)]
pub enum IsolationError {
    /// `config.json` is not valid JSON or does not match the runtime spec.
    #[error("invalid config.json at {field}")]
    Parse {
        /// JSON path of the offending field, e.g. `linux.namespaces[1].type`.
        field: String,
        /// The deserializer's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// An OCI object of a request (an exec's `process`, an update's
    /// `resources`) does not match the runtime spec.
    #[error("malformed {field}")]
    Malformed {
        /// JSON path of the offending field, e.g. `process.args`.
        field: String,
        /// The deserializer's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The spec parsed but is not acceptable.
    #[error("invalid spec: {field}: {reason}")]
    InvalidSpec {
        /// JSON path of the offending field, e.g. `mounts[2].destination`.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The spec asks for a cgroup resource the guest cannot apply.
    #[error("unsupported cgroup resource {field}: {reason}")]
    UnsupportedResource {
        /// JSON path of the resource, e.g. `linux.resources.hugepageLimits`.
        field: String,
        /// Why it cannot be applied.
        reason: String,
    },
    /// The root filesystem is unsafe to use (e.g. `/proc` is a symlink).
    #[error("unsafe rootfs: {path}: {reason}")]
    UnsafeRootfs {
        /// The offending path inside the rootfs.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },
    /// A file-system or other OS operation of our own failed.
    #[error("{what}")]
    Io {
        /// What we were doing.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// libcontainer failed to create or start the container.
    #[error("failed to {action} container {id}")]
    Runtime {
        /// `create`, `start`, `delete`, ...
        action: &'static str,
        /// The container id.
        id: String,
        /// libcontainer's error.
        #[source]
        source: Box<libcontainer::error::LibcontainerError>,
    },
    /// Reading or changing the container's cgroup failed (freezer, limits,
    /// statistics, process list).
    #[error("{what} (container {id})")]
    Cgroup {
        /// What we were doing, e.g. `freezing the cgroup`.
        what: String,
        /// The container id.
        id: String,
        /// libcgroups' or the kernel's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The request does not fit the container's state (e.g. exec into a
    /// paused container).
    #[error("container {id} {reason}")]
    State {
        /// The container id.
        id: String,
        /// What is wrong, e.g. `is paused`.
        reason: String,
    },
    /// A system call on the container process failed (wait, kill, ...).
    #[error("{what} for container pid {pid}")]
    Process {
        /// What we were doing.
        what: &'static str,
        /// The container's init pid.
        pid: i32,
        /// The errno.
        #[source]
        source: nix::errno::Errno,
    },
}

impl IsolationError {
    /// Shorthand for [`IsolationError::InvalidSpec`].
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidSpec {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`IsolationError::Cgroup`].
    pub(crate) fn cgroup(
        what: impl Into<String>,
        id: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Cgroup {
            what: what.into(),
            id: id.to_owned(),
            source: Box::new(source),
        }
    }

    /// Shorthand for [`IsolationError::Io`].
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
