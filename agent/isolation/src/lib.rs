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
//! - [`self_exe::ensure_sealed_self_exe`]: run the agent from a sealed memfd
//!   so the container can never write to the agent's binary;
//! - [`run`]: start the container with our own stdio fds and return a
//!   [`ContainerProcess`] to wait on and signal.
//!
//! # How the agent uses it
//!
//! ```no_run
//! use std::os::fd::OwnedFd;
//! use vmrun_isolation::{run, spec, RunOptions, Stdio};
//!
//! # fn fds() -> (OwnedFd, OwnedFd, OwnedFd) { unimplemented!() }
//! # fn main() -> Result<(), vmrun_isolation::IsolationError> {
//! // First thing in main(), before any thread: run from a sealed copy.
//! vmrun_isolation::self_exe::ensure_sealed_self_exe()?;
//! // ... mount /proc, /sys, /dev, cgroup2 on /sys/fs/cgroup, a tmpfs on /run ...
//! let config_json: Vec<u8> = Vec::new(); // from the host
//! let spec = spec::parse_spec(&config_json)?; // errors name the field
//! let (stdin, stdout, stderr) = fds(); // e.g. vsock streams
//! let mut opts = RunOptions::new("my-container");
//! opts.state_dir = "/run/vmrun".into();
//! let mut container = run(&spec, "/run/vmrun/rootfs/my-container".as_ref(),
//!                         Stdio { stdin, stdout, stderr }, &opts)?;
//! let _pty = container.take_pty_master(); // Some(..) when process.terminal
//! // container.signal(nix::sys::signal::Signal::SIGTERM)?;
//! let status = container.wait()?; // reaps, deletes cgroup + state
//! std::process::exit(status.code()); // 128+N when killed by signal N
//! # }
//! ```
//!
//! `run` forks (clone3) from the calling thread; the container's init
//! becomes a child of the calling process, so the agent (PID 1) must not
//! reap it with a blanket `waitpid(-1)` before [`ContainerProcess::wait`]
//! does (reap other children by pid, or call `try_wait` from the reaper).
//! libcontainer briefly changes the process cwd while connecting the
//! console socket (terminal containers): don't rely on relative paths in
//! other threads around `run`.

pub mod cgroups;
pub mod console;
mod container;
mod error;
pub mod mount_propagation;
pub mod ns_paths;
pub mod rootfs_check;
pub mod self_exe;
pub mod spec;
pub mod validate;

pub use container::{run, ContainerProcess, ExitStatus, RunOptions, Stdio};
pub use error::IsolationError;
/// The OCI runtime-spec types this crate works with (re-exported from
/// libcontainer, so the agent uses exactly the version libcontainer does).
pub use libcontainer::oci_spec;
