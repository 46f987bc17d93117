//! Why a container's VMM could not do what it was asked.

use std::time::Duration;

use vmrun_protocol::{ProtocolError, Response, CONTROL_PORT};

use crate::machine::{MachineError, RunError};

/// How long the agent gets to open a stdio connection.
pub const STDIO_ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of a container's VMM.
#[derive(Debug, thiserror::Error)]
pub enum ContainerRunError {
    /// The VM could not be built or loaded.
    #[error("cannot build the microVM")]
    Machine(#[from] MachineError),
    /// The vsock device could not be created.
    #[error("cannot create the virtio-vsock device")]
    Vsock(#[source] std::io::Error),
    /// The host's mounts or network could not be made to reach the VM.
    #[error(transparent)]
    HostWorld(#[from] crate::runtime::host_world::HostWorldError),
    /// A thread or socket could not be set up.
    #[error("cannot {0}")]
    Io(&'static str, #[source] std::io::Error),
    /// The VM ended before the agent answered.
    #[error("the microVM exited before its agent answered ({0})")]
    VmEndedEarly(String),
    /// The agent never answered.
    #[error("the agent did not answer on vsock port {CONTROL_PORT} within {0:?}")]
    AgentTimeout(Duration),
    /// The agent did not open a stdio connection.
    #[error("the agent did not connect the container's {0} within {STDIO_ACCEPT_TIMEOUT:?}")]
    StdioTimeout(&'static str),
    /// A request failed (the agent's message says why).
    #[error("{0} failed")]
    Request(&'static str, #[source] ProtocolError),
    /// The agent answered with something unexpected.
    #[error("unexpected answer to {0}: {1:?}")]
    Unexpected(&'static str, Response),
    /// The VM failed while the container ran.
    #[error("the microVM failed")]
    Vm(#[source] RunError),
    /// The request does not fit the container's state (runc's words).
    #[error("{0}")]
    State(String),
    /// A pod member's bundle cannot be run.
    #[error(transparent)]
    Bundle(#[from] crate::runtime::bundle::BundleError),
    /// The container's state directory could not be written.
    #[error(transparent)]
    Record(#[from] crate::runtime::state::StateError),
    /// A create or startContainer hook failed.
    #[error(transparent)]
    Hook(#[from] crate::runtime::hooks::HookError),
}

impl ContainerRunError {
    /// Whether nothing the guest printed can explain the error: it came
    /// before the VM existed, or from a host hook.
    pub fn before_vm(&self) -> bool {
        matches!(
            self,
            Self::Machine(_) | Self::Vsock(_) | Self::HostWorld(_) | Self::Hook(_)
        )
    }
}
