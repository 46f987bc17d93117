//! The messages on a VMM's control socket (`<root>/<id>/vmm.sock`), between
//! the verbs (`start`, `kill`, `state`, `exec`, ...) and the VMM of a VM.
//! Frames are vmrun-protocol's length-prefixed JSON, each an [`ApiCall`]
//! naming the container (a VM holds its main container and, for a pod,
//! the members added later); every request gets exactly one response,
//! except `Exec` and `AddMember`, which turn the connection into a session
//! (see [`ApiRequest::Exec`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use vmrun_protocol::{ExitStatus, GuestProcess};

use crate::runtime::state::Status;

/// One frame from a verb: a request for a container of the VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiCall {
    /// The container (absent: the VM's main container).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The request.
    pub request: ApiRequest,
}

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
    /// `SessionSignal` and `SessionResize`; if the client's connection
    /// closes first, the process is killed.
    Exec {
        /// The OCI runtime-spec `process` object.
        process: serde_json::Value,
    },
    /// Start a pod member's session: create container `id` from the
    /// bundle at `bundle` in this VM, joining the main container's
    /// namespaces where its spec names namespace paths. The stdio
    /// descriptors follow as for `Exec`; the VMM answers `MemberCreated`
    /// once the member exists (not started), then `Exited` when its init
    /// ends. `SessionSignal`/`SessionResize` reach its init; if the
    /// connection closes first, the member is killed and removed.
    AddMember {
        /// The member's container id.
        id: String,
        /// Its bundle directory on the host.
        bundle: PathBuf,
        /// `--no-pivot`.
        no_pivot: bool,
        /// How many detached host trees (its rootfs, then each host bind
        /// source in order) follow the stdio descriptors, one descriptor
        /// per message: the member's client makes them in the host's
        /// mount namespace, where a rootfs mounted after the sandbox's VMM
        /// started is (`host_world::member_trees`).
        #[serde(default)]
        trees: usize,
    },
    /// In a session: signal its process.
    SessionSignal {
        /// Signal number.
        signal: i32,
    },
    /// In a session: resize its process's terminal.
    SessionResize {
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
    /// `AddMember`: the member exists (its init waits for `Start`).
    MemberCreated {
        /// Its init's pid in the guest.
        guest_pid: i32,
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
