//! Running an OCI bundle in a microVM, the way `runc run` runs it in a
//! container: [`bundle`] validates the input before any VM exists, [`run`]
//! boots the VM with the agent in serve mode and drives it over vsock,
//! [`stdio`] relays the process's stdio, [`signals`] forwards
//! SIGINT/SIGTERM/SIGHUP, [`terminal`] handles `process.terminal` (raw
//! mode, window size), [`console_tail`] keeps the guest console for
//! error reports.

pub mod bundle;
pub mod console_tail;
pub mod host_cgroup;
pub mod run;
pub mod signals;
pub mod stdio;
pub mod terminal;

pub use bundle::{Bundle, BundleError, HostRootfs};
pub use run::{run_container, ContainerRunError, RunConfig};
