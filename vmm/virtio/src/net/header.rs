//! The virtio-net packet header, `virtio_net_hdr_v1` (12 bytes), which
//! starts every frame on both queues and on the tap (IFF_VNET_HDR with
//! TUNSETVNETHDRSZ = 12).

use virtio_bindings::virtio_net::{VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE};

/// Size of `virtio_net_hdr_v1`: flags, gso_type, hdr_len, gso_size,
/// csum_start, csum_offset, num_buffers.
pub const NET_HDR_LEN: usize = 12;

/// Length of an Ethernet header (destination, source, ethertype).
pub const ETH_HLEN: usize = 14;

/// Room for one 802.1Q tag on top of the MTU and Ethernet header.
pub const VLAN_HLEN: usize = 4;

/// A `virtio_net_hdr_v1` (little endian on the wire, virtio 1.x).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetHeader {
    /// `VIRTIO_NET_HDR_F_*` bits.
    pub flags: u8,
    /// `VIRTIO_NET_HDR_GSO_*` type.
    pub gso_type: u8,
    /// Length of the headers to copy into each segment.
    pub hdr_len: u16,
    /// Segment size for GSO.
    pub gso_size: u16,
    /// Where checksumming starts.
    pub csum_start: u16,
    /// Where the checksum goes, relative to `csum_start`.
    pub csum_offset: u16,
    /// Number of RX buffers the frame spans (1 without MRG_RXBUF).
    pub num_buffers: u16,
}

impl NetHeader {
    /// The header of a frame that needs no offload from anyone: what this
    /// device writes in front of every RX frame (one buffer per frame).
    pub fn plain_rx() -> Self {
        Self {
            num_buffers: 1,
            ..Self::default()
        }
    }

    /// Parses the first [`NET_HDR_LEN`] bytes of a frame.
    pub fn from_bytes(raw: &[u8; NET_HDR_LEN]) -> Self {
        let u16_at = |i: usize| u16::from_le_bytes([raw[i], raw[i + 1]]);
        Self {
            flags: raw[0],
            gso_type: raw[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
            num_buffers: u16_at(10),
        }
    }

    /// The header as it is laid out in memory and on the tap.
    pub fn to_bytes(&self) -> [u8; NET_HDR_LEN] {
        let mut raw = [0u8; NET_HDR_LEN];
        raw[0] = self.flags;
        raw[1] = self.gso_type;
        let fields = [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
            self.num_buffers,
        ];
        for (chunk, field) in raw[2..].chunks_exact_mut(2).zip(fields) {
            chunk.copy_from_slice(&field.to_le_bytes());
        }
        raw
    }

    /// Whether the frame is only complete once someone computes its
    /// checksum or segments it (an offload this device never negotiates).
    pub fn needs_offload(&self) -> bool {
        u32::from(self.flags) & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
            || u32::from(self.gso_type) != VIRTIO_NET_HDR_GSO_NONE
    }
}
