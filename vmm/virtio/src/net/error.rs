//! Why a virtio-net device cannot be created.

use super::tap::TapError;

/// Errors creating a [`Net`](super::Net) device.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The MAC address is all zeros or a multicast address.
    #[error("invalid MAC address {}: zero or multicast", format_mac(.0))]
    Mac([u8; 6]),
    /// The MTU is below the minimum Linux accepts (68).
    #[error("MTU {0} is below 68")]
    Mtu(u16),
    /// The fd is a tap that cannot be used or prepared.
    #[error("unusable tap")]
    Tap(#[source] TapError),
    /// The fd is neither a tap nor a datagram or seqpacket socket.
    #[error("backend fd is neither a tap nor a datagram/seqpacket socket")]
    NotFrameFd,
    /// The fd could not be made non-blocking.
    #[error("cannot make the backend fd non-blocking")]
    NonBlocking(#[source] std::io::Error),
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
