//! Containers in microVMs with runc's lifecycle.
//!
//! - [`bundle`]: validates `config.json` and the rootfs before any VM exists
//!   ([`spec_check`]: NUL bytes, types and ranges, named by JSON path);
//! - [`state`]: the container's directory under `--root` (record, lock,
//!   liveness of its VMM); [`container`]: a recorded container as the
//!   verbs see it (status, control socket, teardown);
//! - [`container_vmm`]: one container's VMM (microVM, agent session,
//!   status, stdio, exec sessions, control-socket server);
//! - [`api`]: the control socket between the verbs and a VMM;
//! - [`run`]: `vmrun run` in the foreground; [`daemon`]: the VMM daemon
//!   `create` leaves behind; [`detached`]: how such helpers are started;
//!   [`exec_client`]: the host process standing for an exec'd process;
//! - [`pod`]: pods as one microVM (a sandbox boots it, members join it);
//!   [`vm_size`]: a VM's vCPUs and memory (flags, annotations, limits);
//! - [`hooks`]: the spec's lifecycle hooks, run on the host;
//! - [`process_hardening`]: no_new_privs, no inherited descriptors;
//! - [`host_cgroup`]: the VMM in the container's host cgroup;
//!   [`host_world`]: host bind mounts (through the VM's share) and the
//!   host network namespace (through taps) reaching the VM;
//! - [`stdio`], [`signals`], [`terminal`], [`console_socket`]: stdio
//!   relays, signal forwarding, the host terminal, `--console-socket`;
//!   [`console_tail`] keeps the guest console for error reports.

pub mod api;
pub mod bundle;
pub mod console_socket;
pub mod console_tail;
pub mod container;
pub mod container_vmm;
pub mod daemon;
pub mod detached;
pub mod exec_client;
pub mod hooks;
pub mod host_cgroup;
pub mod host_world;
pub mod pod;
pub mod process_hardening;
pub mod run;
pub mod signals;
pub mod spec_check;
pub mod state;
pub mod stdio;
pub mod terminal;
pub mod vm_size;

pub use bundle::{Bundle, BundleError, HostRootfs};
pub use container_vmm::ContainerRunError;
pub use run::{run_container, RunConfig};
