//! Applies the OCI runtime spec (namespaces, cgroups, mounts, caps, rlimits,
//! seccomp, user) inside the guest and execs the container process.
//!
//! The heavy lifting (clone into namespaces, pivot_root, mounts, devices,
//! cgroups v2 including the eBPF device controller that enforces
//! `linux.resources.devices`, capabilities, rlimits, seccomp, user switch,
//! fd clean-up) is done by youki's `libcontainer`. This crate adds what the
//! agent needs on top of it:
//!
//! - [`spec::parse_spec`]: parse `config.json` with errors that name the field;
//! - [`validate::validate`]: reject specs runc would reject (relative mount
//!   destinations, soft rlimit above hard, mappings without a user namespace,
//!   malformed `linux.resources.devices` rules, ...) and turn fields the
//!   guest cannot honour into warnings or errors;
//! - [`mount_propagation`]: apply the propagation options of `mounts`
//!   (`rshared`, `slave`, `unbindable`, ...), which libcontainer 0.7 drops;
//! - [`ns_paths::check_namespace_paths`]: refuse a `linux.namespaces[].path`
//!   that is missing, not a namespace file, or a namespace of another type;
//! - [`rootfs_check::check_rootfs`]: refuse a rootfs whose `/proc`, `/dev`,
//!   `/sys` or device nodes are symlinks;
//! - [`cgroups::check_resources`]: report `linux.resources` the guest's
//!   cgroup v2 hierarchy cannot apply instead of dropping them;
//! - [`self_exe::ensure_sealed_self_exe`]: run the runtime from a sealed
//!   memfd so the container can never write to its binary on disk (the
//!   agent does this off an initramfs; on one it runs from its unlinked
//!   file, which the kernel keeps from writes while it runs);
//! - [`create`]: make the container as `runc create` does (namespaces,
//!   mounts, cgroup, stdio; its init waits) and return a
//!   [`CreatedContainer`]; [`CreatedContainer::start`] lets the init exec
//!   `process.args` and returns the [`ContainerProcess`] to wait on and
//!   signal; [`run`] is both;
//! - [`ContainerProcess::pause`]/[`resume`](ContainerProcess::resume)
//!   (the cgroup freezer) and [`ContainerProcess::exec_context`] +
//!   [`ExecContext::exec`] (`runc exec`: a new process from an OCI
//!   `process` object, inheriting the container's capabilities, rlimits,
//!   `noNewPrivileges` and seccomp filter where runc does);
//! - [`ContainerCgroup`]: `kill --all`, `update` ([`resources_update`]),
//!   `events --stats` in runc's JSON shape ([`stats`], read by
//!   [`stats_v2`] on cgroup v2) and `ps` ([`processes`]).
//!
//! # How the agent uses it
//!
//! ```no_run
//! use std::os::fd::OwnedFd;
//! use vmrun_isolation::{create, spec, RunOptions, Stdio};
//!
//! # fn fds() -> (OwnedFd, OwnedFd, OwnedFd) { unimplemented!() }
//! # fn main() -> Result<(), vmrun_isolation::IsolationError> {
//! // First thing in main(), before any thread, for a runtime whose binary
//! // stays on disk: run from a sealed copy.
//! vmrun_isolation::self_exe::ensure_sealed_self_exe()?;
//! // ... mount /proc, /sys, /dev, cgroup2 on /sys/fs/cgroup, a tmpfs on /run ...
//! let config_json: Vec<u8> = Vec::new(); // from the host
//! let spec = spec::parse_spec(&config_json)?; // errors name the field
//! let (stdin, stdout, stderr) = fds(); // e.g. vsock streams
//! let mut opts = RunOptions::new("my-container");
//! opts.state_dir = "/run/vmrun".into();
//! let mut created = create(&spec, "/run/vmrun/rootfs/my-container".as_ref(),
//!                          Stdio { stdin, stdout, stderr }, &opts)?;
//! let _pty = created.take_pty_master(); // Some(..) when process.terminal
//! let mut container = created.start()?;
//! // container.signal(nix::sys::signal::Signal::SIGTERM)?;
//! // let stats = container.cgroup().stats()?;
//! let status = container.wait()?; // reaps, deletes cgroup + state
//! std::process::exit(status.code()); // 128+N when killed by signal N
//! # }
//! ```
//!
//! `create` and [`ExecContext::exec`] fork (clone3) from the calling
//! thread; the container's init and exec'd processes become children of
//! the calling process, so the agent (PID 1) must not reap them with a
//! blanket `waitpid(-1)` before [`ContainerProcess::wait`] does (reap
//! other children by pid, or set [`RunOptions::reaped_by_caller`] and
//! report exits with [`ContainerProcess::exited`]). libcontainer briefly
//! changes the process cwd while connecting the console socket (terminal
//! containers and execs): don't rely on relative paths in other threads
//! around `create` and `exec`.

pub mod cgroup_control;
pub mod cgroups;
pub mod console;
mod container;
mod create;
mod error;
pub mod exec;
mod exec_view;
mod exec_workload;
pub mod mount_propagation;
pub mod ns_paths;
mod options;
pub mod process_check;
pub mod processes;
mod program_path;
pub mod resources_update;
pub mod rootfs_check;
pub mod self_exe;
pub mod signal;
pub mod spec;
pub mod stats;
pub mod stats_v2;
pub mod validate;

pub use cgroup_control::ContainerCgroup;
pub use container::ContainerProcess;
pub use create::{create, run, CreatedContainer};
pub use error::IsolationError;
pub use exec::{ExecContext, ExecProcess};
/// The OCI runtime-spec types this crate works with (re-exported from
/// libcontainer, so the agent uses exactly the version libcontainer does).
pub use libcontainer::oci_spec;
pub use options::{ExitStatus, RunOptions, Stdio};
