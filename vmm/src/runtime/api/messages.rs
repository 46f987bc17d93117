//! The messages on a VMM's control socket (`<root>/<id>/vmm.sock`), between
//! the verbs (`start`, `kill`, `state`, `exec`, ...) and the container's
//! VMM. Frames are vmrun-protocol's length-prefixed JSON; every request
//! gets exactly one response, except `Exec`, which turns the connection
//! into an exec session (see [`ApiRequest::Exec`]).

use serde::{Deserialize, Serialize};
use vmrun_protocol::{ExitStatus, GuestProcess};

use crate::runtime::state::Status;

/// A request from a verb to the VMM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApiRequest {
    /// Run the created container's process (`vmrun start`).
    Start,
    /// Send `signal` to the init, or to every process with `all`.
    Kill {
        /// Signal number.
        signal: i32,
        /// Every process of the container (`kill --all`).
        all: bool,
    },
    /// The container's status.
    State,
    /// Freeze the container.
    Pause,
    /// Thaw the container.
    Resume,
    /// Change the container's limits (an OCI `linux.resources` object).
    Update {
        /// The resources.
        resources: serde_json::Value,
    },
    /// Resource usage (runc's `events --stats` data).
    Stats,
    /// The container's processes: host pids and guest processes.
    Processes,
    /// Start an exec session: a new process in the container with the OCI
    /// `process`. Right after this frame the client sends its stdio
    /// descriptors (stdin, stdout, stderr; a terminal process: the pty
    /// slave three times) with SCM_RIGHTS on a one-byte message. The VMM
    /// answers `ExecStarted`, then `Exited` when the process ends (after
    /// its output was delivered). Until then the client may send
    /// `ExecSignal` and `ExecResize`; if the client's connection closes
    /// first, the process is killed.
    Exec {
        /// The OCI runtime-spec `process` object.
        process: serde_json::Value,
    },
    /// In an exec session: signal the exec'd process.
    ExecSignal {
        /// Signal number.
        signal: i32,
    },
    /// In an exec session: resize the exec'd process's terminal.
    ExecResize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// The VMM's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ApiResponse {
    /// Done.
    Ok,
    /// `Start`: the process runs; spec fields the guest ignored.
    Started {
        /// One sentence per ignored field.
        warnings: Vec<String>,
    },
    /// `State`.
    State {
        /// The status.
        status: Status,
    },
    /// `Stats`.
    Stats {
        /// runc's `events --stats` `data` object.
        stats: serde_json::Value,
    },
    /// `Processes`.
    Processes {
        /// Host pids: the VMM first, then each exec session's client.
        host_pids: Vec<i32>,
        /// The container's processes in the guest.
        guest: Vec<GuestProcess>,
    },
    /// `Exec`: the process runs.
    ExecStarted {
        /// Its pid in the guest.
        guest_pid: i32,
    },
    /// In an exec session: the process ended.
    Exited {
        /// How.
        status: ExitStatus,
    },
    /// The request failed.
    Error {
        /// Why, for humans (runc's words where clients match them).
        message: String,
    },
}
