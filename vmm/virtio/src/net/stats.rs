//! Counters of the frames a virtio-net device moved or dropped, and the
//! bounded logging of drops: each kind of drop has its [`LogLimit`], so a
//! guest (or a peer on the tap) flooding bad frames costs a few log lines
//! per minute, each giving the running total.

use std::fmt::Display;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::warn;

use crate::log_limit::LogLimit;

/// Live counters of one device, shared between the device and its worker
/// (they survive resets).
#[derive(Debug, Default)]
pub struct NetStats {
    tx_frames: AtomicU64,
    tx_dropped: AtomicU64,
    rx_frames: AtomicU64,
    rx_dropped: AtomicU64,
    bad_chains: AtomicU64,
    tx_drop_log: LogLimit,
    rx_drop_log: LogLimit,
    bad_chain_log: LogLimit,
}

/// A snapshot of [`NetStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetCounts {
    /// Frames the guest sent that were written to the tap.
    pub tx_frames: u64,
    /// Frames the guest sent that were dropped (malformed, too long,
    /// asking for offloads, or refused by the tap).
    pub tx_dropped: u64,
    /// Frames read from the tap and delivered to the guest.
    pub rx_frames: u64,
    /// Frames read from the tap and dropped (larger than the guest's
    /// buffer, needing offloads, or shorter than an Ethernet header).
    pub rx_dropped: u64,
    /// Descriptor chains rejected on either queue (given back unused).
    pub bad_chains: u64,
}

impl NetStats {
    /// The counters now.
    pub fn counts(&self) -> NetCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetCounts {
            tx_frames: get(&self.tx_frames),
            tx_dropped: get(&self.tx_dropped),
            rx_frames: get(&self.rx_frames),
            rx_dropped: get(&self.rx_dropped),
            bad_chains: get(&self.bad_chains),
        }
    }

    /// Counts a frame written to the tap.
    pub(crate) fn tx_sent(&self) {
        self.tx_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a frame delivered to the guest.
    pub(crate) fn rx_delivered(&self) {
        self.rx_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts (and logs, bounded) a guest frame dropped because of `why`.
    pub(crate) fn tx_drop(&self, why: &dyn Display) {
        let n = bump(&self.tx_dropped);
        if let Some(suppressed) = self.tx_drop_log.admit() {
            warn!(dropped = n, suppressed, %why, "virtio-net: TX frame dropped");
        }
    }

    /// Counts (and logs, bounded) a tap frame dropped because of `why`.
    pub(crate) fn rx_drop(&self, why: &dyn Display) {
        let n = bump(&self.rx_dropped);
        if let Some(suppressed) = self.rx_drop_log.admit() {
            warn!(dropped = n, suppressed, %why, "virtio-net: RX frame dropped");
        }
    }

    /// Counts (and logs, bounded) a chain of `queue` rejected because of `why`.
    pub(crate) fn bad_chain(&self, queue: &str, why: &dyn Display) {
        let n = bump(&self.bad_chains);
        if let Some(suppressed) = self.bad_chain_log.admit() {
            warn!(rejected = n, suppressed, queue, %why, "virtio-net: bad descriptor chain");
        }
    }
}

/// Increments `counter`; returns its new value.
fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
}
