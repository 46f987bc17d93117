//! virtio-net over a Linux tap: one RX/TX queue pair, no control queue.
//!
//! The VMM opens a tap in the right network namespace ([`tap::Tap::open`])
//! and hands its fd to [`Net::new`]; the guest's `virtio_net` driver then
//! sends and receives Ethernet frames through it. Frames travel with a
//! `virtio_net_hdr_v1` in front, in guest memory and on the tap alike
//! (`IFF_VNET_HDR`, header size 12).
//!
//! # Features
//!
//! Offered: `VIRTIO_F_VERSION_1` (added by the transport),
//! `VIRTIO_NET_F_MAC`, `VIRTIO_NET_F_MTU` and `VIRTIO_NET_F_STATUS` (the
//! link is always up). Config space: `mac`, `status`,
//! `max_virtqueue_pairs` (1) and `mtu`.
//!
//! Not offered, on purpose (this is the correct minimal set; each can be
//! added with the tap's matching `TUNSETOFFLOAD` bits and tests):
//! - no checksum or segmentation offloads (`CSUM`, `GUEST_CSUM`,
//!   `HOST_TSO4/6`, `GUEST_TSO4/6`, UFO/USO): every frame is complete and
//!   checksummed in both directions. The tap's offloads are turned off, so
//!   the host stack checksums and segments before frames reach the tap; a
//!   TX header that asks for an offload is a driver bug and drops its frame;
//!   an RX frame that would need one is dropped. Nothing the guest puts in
//!   a header reaches the host: the tap always gets an all-zero header.
//! - no `MRG_RXBUF`: each RX frame goes into one chain. Linux then posts
//!   buffers of 1518 bytes + header for an MTU up to 1500, and chains of
//!   pages ("big packets") for a larger MTU, so every frame the MTU allows
//!   fits; one that does not is dropped and counted.
//! - no `CTRL_VQ`/`MQ`: one queue pair; the device delivers every frame
//!   the tap gives it (no MAC filtering, as the tap is the guest's alone).
//! - no `EVENT_IDX` and no indirect descriptors (less surface; the driver
//!   does not need them).
//!
//! Frames the guest sends are limited to its MTU plus Ethernet and VLAN
//! headers (the negotiated MTU, or at least 1500 if the driver ignored
//! `VIRTIO_NET_F_MTU`). [`NetStats`] counts frames moved and dropped.
//!
//! # Shape
//!
//! | file | concern |
//! |---|---|
//! | `tap.rs` | open a tap by name, check/prepare a tap fd (flags, header size, offloads) |
//! | `backend.rs` | the backend fd: one frame per read/write, non-blocking |
//! | `header.rs` | `virtio_net_hdr_v1` |
//! | `rx.rs`, `tx.rs` | the queues as plain functions over guest memory and the backend |
//! | `stats.rs` | counters, bounded logging of drops |
//! | `epoll_glue.rs` | the device's worker: queue notifications, tap readiness; the only part that knows epoll |
//! | `error.rs` | [`NetError`] |

pub mod backend;
pub mod error;
pub mod header;
pub mod rx;
pub mod stats;
pub mod tap;
pub mod tx;

mod epoll_glue;

use std::os::fd::OwnedFd;
use std::sync::Arc;

use virtio_bindings::virtio_net::{
    VIRTIO_NET_F_MAC, VIRTIO_NET_F_MTU, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP,
};

use crate::activation::{ActivateError, ActiveQueue, GuestLink};
use crate::common::VirtioCommon;
use crate::defs::{feature, TYPE_NET};
use crate::device::VirtioDevice;
use backend::FrameFd;
use epoll_glue::NetWorker;
pub use error::NetError;
use header::{ETH_HLEN, VLAN_HLEN};
pub use stats::{NetCounts, NetStats};
pub use tap::{Tap, TapError};

/// Size of each of the two queues.
pub const QUEUE_SIZE: u16 = 256;

/// Smallest MTU the device accepts (Linux refuses `VIRTIO_NET_F_MTU` below it).
pub const MIN_MTU: u16 = 68;

/// The MTU a driver uses when it did not negotiate `VIRTIO_NET_F_MTU`.
pub const DEFAULT_MTU: u16 = 1500;

/// The virtio-net device (see the module docs). A reset stops its worker;
/// frames keep waiting in the tap.
#[derive(Debug)]
pub struct Net {
    common: VirtioCommon,
    backend: Arc<FrameFd>,
    stats: Arc<NetStats>,
    mtu: u16,
}

impl Net {
    /// A device over `tap` giving the guest MAC address `mac` and MTU `mtu`.
    ///
    /// `tap` is a tap with `IFF_TAP | IFF_NO_PI | IFF_VNET_HDR` (e.g. from
    /// [`Tap::open`]); its vnet header size is set to 12, its offloads
    /// turned off and it is made non-blocking. A datagram or seqpacket socket
    /// carrying the same framing is accepted too (tests, other plumbing).
    pub fn new(tap: OwnedFd, mac: [u8; 6], mtu: u16) -> Result<Self, NetError> {
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(NetError::Mac(mac));
        }
        if mtu < MIN_MTU {
            return Err(NetError::Mtu(mtu));
        }
        let backend = FrameFd::new(tap)?;
        let features =
            feature(VIRTIO_NET_F_MAC) | feature(VIRTIO_NET_F_MTU) | feature(VIRTIO_NET_F_STATUS);
        Ok(Self {
            common: VirtioCommon::new(
                TYPE_NET,
                "virtio-net",
                &[QUEUE_SIZE; 2],
                features,
                config_space(mac, mtu),
            ),
            backend: Arc::new(backend),
            stats: Arc::new(NetStats::default()),
            mtu,
        })
    }

    /// The device's frame counters (live; they survive resets).
    pub fn stats(&self) -> Arc<NetStats> {
        self.stats.clone()
    }

    /// Largest frame the guest may send, Ethernet and VLAN headers included.
    fn max_tx_frame(&self) -> usize {
        let mtu = if self.common.acked_features() & feature(VIRTIO_NET_F_MTU) != 0 {
            self.mtu
        } else {
            self.mtu.max(DEFAULT_MTU)
        };
        usize::from(mtu) + ETH_HLEN + VLAN_HLEN
    }
}

/// `struct virtio_net_config` up to `mtu`: mac, status, max_virtqueue_pairs, mtu.
fn config_space(mac: [u8; 6], mtu: u16) -> Vec<u8> {
    let status = VIRTIO_NET_S_LINK_UP as u16;
    let mut config = mac.to_vec();
    for field in [status, 1, mtu] {
        config.extend_from_slice(&field.to_le_bytes());
    }
    config
}

impl VirtioDevice for Net {
    fn common(&self) -> &VirtioCommon {
        &self.common
    }

    fn common_mut(&mut self) -> &mut VirtioCommon {
        &mut self.common
    }

    fn activate(&mut self, link: GuestLink, queues: Vec<ActiveQueue>) -> Result<(), ActivateError> {
        let backend = self.backend.clone();
        let stats = self.stats.clone();
        let max_tx_frame = self.max_tx_frame();
        self.common.activate(link, queues, |link, queues| {
            Ok(NetWorker::new(link, queues, backend, stats, max_tx_frame))
        })
    }
}
