//! Host <-> agent protocol types and framing, shared by the VMM and the agent.
//!
//! - [`frame`]: length-prefixed JSON frames with a size limit.
//! - [`messages`]: requests, responses and the ports they travel on.
//! - [`handshake`]: the version handshake and blocking call helpers.
//! - [`client`]: a host-side client allowing concurrent requests.

pub mod client;
pub mod frame;
pub mod handshake;
pub mod marker;
pub mod messages;

pub use client::ControlClient;
pub use frame::{read_frame, write_frame, FrameError, MAX_FRAME_LEN};
pub use handshake::{call, client_handshake, server_handshake, ProtocolError};
pub use messages::{
    ContainerStatus, Envelope, ExitStatus, GuestProcess, NetInterface, NetRoute, Request, Response,
    RootfsSource, StdioPorts, CONTROL_PORT, GUEST_CID, HOST_CID, PROTOCOL_VERSION, SHARES_DIR,
};

#[cfg(test)]
mod tests;
