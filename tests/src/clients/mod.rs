//! Real clients driving a runc-compatible runtime, for
//! `tests/tests/guest_clients`: a private podman (its own storage, run
//! root, containers.conf and CNI network), a private containerd (its own
//! root, state, socket, config with the CRI plugin and a `vmrun` runtime
//! handler) driven with `ctr` and with the CRI client `vmrun-cri`
//! (tests/cri-client), the busybox and pause images they load, a pty to
//! drive `-it`/`--tty`, and teardown that leaves no process, mount,
//! network namespace or cgroup behind.
//!
//! Every client and container runs inside a network namespace of the
//! test's own ([`netns::PrivateNet`]): bridges, iptables rules and
//! published ports live there, never in the machine's own network, and
//! "reached from the host" means from that namespace, where the bridge's
//! host side is.
//!
//! The runtime is a parameter ([`runtime_choice::RuntimeUnderTest`]):
//! vmrun by default; `VMRUN_CLIENTS_RUNTIME=runc` runs the same tests
//! with runc, which validates the harness on any host.

pub mod cni;
pub mod command;
pub mod containerd;
pub mod cri;
pub mod images;
pub mod leftovers;
pub mod netns;
pub mod podman;
pub mod pty;
pub mod runtime_choice;
pub mod toml_text;

pub use command::{poll, run_client};
pub use containerd::PrivateContainerd;
pub use cri::CriClient;
pub use images::{image_archive, BUSYBOX_IMAGE, PAUSE_IMAGE};
pub use netns::PrivateNet;
pub use podman::PrivatePodman;
pub use pty::PtyChild;
pub use runtime_choice::RuntimeUnderTest;
