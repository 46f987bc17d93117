//! RX: frames from the tap into the guest's RX buffers.
//!
//! A pass takes the next RX chain first and only then reads a frame, so
//! the device never holds a frame it has no buffer for: frames wait in the
//! tap's own queue (bounded by the kernel) while the guest has no buffers,
//! and the worker stops polling the tap until the guest adds some
//! ([`RxStop::NoBuffers`]). Each frame goes into one chain (no
//! MRG_RXBUF) behind a plain header (no offloads, `num_buffers` = 1).
//! A frame that does not fit the chain, needs an offload or is shorter
//! than an Ethernet header is dropped and counted; the chain waits for the
//! next frame. A chain the device cannot use is given back with length 0.

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::GuestMemoryMmap;

use super::backend::{FrameFd, Received};
use super::header::{NetHeader, ETH_HLEN, NET_HDR_LEN, VLAN_HLEN};
use super::stats::NetStats;
use crate::chain::{complete, pop_chain, write_to, Chain, ChainError};

/// Largest frame (header excluded) a tap can produce without GSO: a
/// 65535-byte MTU plus Ethernet and VLAN headers.
pub const MAX_TAP_FRAME: usize = u16::MAX as usize + ETH_HLEN + VLAN_HLEN;

/// Smallest RX chain the device uses: a header and an Ethernet header.
pub const MIN_RX_CHAIN: u64 = (NET_HDR_LEN + ETH_HLEN) as u64;

/// Why an RX pass ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxStop {
    /// The tap has nothing more to read; keep polling it.
    BackendEmpty,
    /// The guest has no RX buffer left; stop polling the tap until it adds one.
    NoBuffers,
    /// The pass did a queue's worth of work; the tap may have more.
    Budget,
    /// The backend reached end of file (a socket whose peer is gone).
    BackendClosed,
    /// Reading the backend failed.
    BackendFailed,
}

/// What an RX pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxPass {
    /// Chains given back to the guest.
    pub used: usize,
    /// Why the pass ended.
    pub stop: RxStop,
}

/// The RX side of a device: a scratch buffer one frame is read into.
#[derive(Debug)]
pub struct Receiver {
    scratch: Vec<u8>,
}

impl Default for Receiver {
    fn default() -> Self {
        // One byte more than any frame: a read that fills it was cut short.
        Self {
            scratch: vec![0; NET_HDR_LEN + MAX_TAP_FRAME + 1],
        }
    }
}

impl Receiver {
    /// Moves frames from `backend` into RX chains of `queue` while both
    /// are available (at most a queue's worth). `Err`: the queue is broken.
    pub fn fill(
        &mut self,
        mem: &GuestMemoryMmap,
        queue: &mut Queue,
        backend: &FrameFd,
        stats: &NetStats,
    ) -> Result<RxPass, ChainError> {
        let mut used = 0usize;
        let pass = |used, stop| Ok(RxPass { used, stop });
        for _ in 0..queue.size() {
            let Some((head, chain)) = pop_chain(mem, queue)? else {
                return pass(used, RxStop::NoBuffers);
            };
            let chain = match chain.map_err(|e| e.to_string()).and_then(usable) {
                Ok(chain) => chain,
                Err(why) => {
                    stats.bad_chain("RX", &why);
                    complete(mem, queue, head, 0)?;
                    used += 1;
                    continue;
                }
            };
            let stop = match backend.read_frame(&mut self.scratch) {
                Ok(Received::Frame(n)) => match self.deliver(mem, &chain, n, stats) {
                    Some(len) => {
                        complete(mem, queue, head, len)?;
                        used += 1;
                        continue;
                    }
                    None => {
                        // The frame was dropped; the chain waits for the next one.
                        queue.go_to_previous_position();
                        continue;
                    }
                },
                Ok(Received::Empty) => RxStop::BackendEmpty,
                Ok(Received::Closed) => RxStop::BackendClosed,
                Err(e) => {
                    stats.rx_drop(&format_args!("cannot read the tap: {e}"));
                    RxStop::BackendFailed
                }
            };
            queue.go_to_previous_position();
            return pass(used, stop);
        }
        pass(used, RxStop::Budget)
    }

    /// Copies the `n`-byte frame in the scratch buffer into `chain`.
    /// Returns the used length, or None if the frame was dropped.
    fn deliver(
        &self,
        mem: &GuestMemoryMmap,
        chain: &Chain,
        n: usize,
        stats: &NetStats,
    ) -> Option<u32> {
        if n >= self.scratch.len() {
            stats.rx_drop(&"frame longer than any Ethernet frame");
            return None;
        }
        let (Some(raw_hdr), Some(frame)) = (
            self.scratch.first_chunk::<NET_HDR_LEN>(),
            self.scratch.get(NET_HDR_LEN..n),
        ) else {
            stats.rx_drop(&"frame shorter than its header");
            return None;
        };
        if frame.len() < ETH_HLEN {
            stats.rx_drop(&"frame shorter than an Ethernet header");
            return None;
        }
        if NetHeader::from_bytes(raw_hdr).needs_offload() {
            stats.rx_drop(&"frame needs checksum or segmentation offload");
            return None;
        }
        let total = n as u64;
        if total > chain.writable_len() {
            stats.rx_drop(&format_args!(
                "{total}-byte frame larger than the {}-byte RX buffer",
                chain.writable_len()
            ));
            return None;
        }
        let written = write_to(mem, &chain.writable, 0, &NetHeader::plain_rx().to_bytes())
            .and_then(|()| write_to(mem, &chain.writable, NET_HDR_LEN as u64, frame));
        match written {
            Ok(()) => {
                stats.rx_delivered();
                // n < scratch.len(), far below u32::MAX.
                Some(n as u32)
            }
            Err(e) => {
                stats.rx_drop(&format_args!("cannot write the RX buffer: {e}"));
                Some(0)
            }
        }
    }
}

/// An RX chain the device can fill: only device-writable buffers, room
/// for at least a header and an Ethernet header.
fn usable(chain: Chain) -> Result<Chain, String> {
    if !chain.readable.is_empty() {
        return Err("device-readable buffer in an RX chain".to_string());
    }
    if chain.writable_len() < MIN_RX_CHAIN {
        return Err(format!(
            "RX chain of {} bytes, need at least {MIN_RX_CHAIN}",
            chain.writable_len()
        ));
    }
    Ok(chain)
}
