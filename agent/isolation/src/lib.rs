//! Applies the OCI runtime spec (namespaces, cgroups, mounts, caps, rlimits,
//! seccomp, user) inside the guest and execs the container process.
//!
//! The heavy lifting (clone into namespaces, pivot_root, mounts, devices,
//! cgroups v2, capabilities, rlimits, seccomp, user switch, fd clean-up) is
//! done by youki's `libcontainer`. This crate adds what the agent needs on
//! top of it:
//!
//! - [`spec::parse_spec`]: parse `config.json` with errors that name the field;
//! - [`validate::validate`]: reject specs runc would reject (relative mount
//!   destinations, soft rlimit above hard, mappings without a user namespace,
//!   ...) and turn fields the guest cannot honour into warnings or errors;
//! - [`rootfs_check::check_rootfs`]: refuse a rootfs whose `/proc`, `/dev`,
//!   `/sys` or device nodes are symlinks;
//! - [`cgroups::check_resources`]: report `linux.resources` the guest's
//!   cgroup v2 hierarchy cannot apply instead of dropping them;
//! - [`self_exe::ensure_sealed_self_exe`]: run the agent from a sealed memfd
//!   so the container can never write to the agent's binary;
//! - [`run`]: start the container with our own stdio fds and return a
//!   [`ContainerProcess`] to wait on and signal.

pub mod cgroups;
mod console;
mod container;
mod error;
pub mod rootfs_check;
pub mod self_exe;
pub mod spec;
pub mod validate;

pub use container::{run, ContainerProcess, ExitStatus, RunOptions, Stdio};
pub use error::IsolationError;
/// The OCI runtime-spec types this crate works with (re-exported from
/// libcontainer, so the agent uses exactly the version libcontainer does).
pub use libcontainer::oci_spec;
