//! The in-guest agent: PID 1 of every vmrun microVM.
//!
//! The binary (`main.rs`) is thin; the pieces live here so they can be unit
//! tested on the host and so the next stages (the vsock server for
//! `vmrun_action=serve`, the container runner) slot in as new modules:
//!
//! - [`config`]: what the host asks for, read from the environment (kernel
//!   command-line `key=value` words reach init as environment variables).
//! - [`console`]: stdio on `/dev/console` and `vmrun-agent:`-prefixed logs.
//! - [`marker`]: boot-timer markers written to the VMM's I/O port.
//! - [`init`]: PID-1 set-up: mounts, `/dev` links, cgroup controllers, the
//!   child reaper.
//! - [`sysinfo`]: what the ready line reports.
//! - [`serve`]: `vmrun_action=serve`, the host's control connection.
//! - [`shutdown`] and [`panic`]: every way out ends the VM.

pub mod config;
pub mod console;
pub mod init;
pub mod marker;
pub mod panic;
pub mod serve;
pub mod shutdown;
pub mod sysinfo;
