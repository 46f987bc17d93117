//! A VMM's control socket: how the verbs (`start`, `kill`, `state`, `exec`,
//! `ps`, `pause`, `update`, `events`, ...) reach the long-lived VMM of a
//! container. [`messages`] is the contract, [`client`] the verbs' side,
//! [`fd_passing`] the SCM_RIGHTS helpers; the VMM's side is
//! `runtime::vmm::api_server`.

pub mod client;
pub mod fd_passing;
pub mod messages;
pub mod socket_path;

pub use client::{ApiClient, ApiError};
pub use messages::{ApiCall, ApiRequest, ApiResponse};
