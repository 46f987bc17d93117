//! TX: frames from the guest's TX chains to the tap.
//!
//! Each chain holds a `virtio_net_hdr_v1` and one Ethernet frame in
//! device-readable buffers. The frame is copied out of guest memory in
//! one piece and written to the tap behind an all-zero header: the guest's
//! header bytes never reach the host, and a header asking for an offload
//! (which the device never negotiates) drops the frame. Every chain is
//! given back with length 0, whatever happened to its frame; the tap not
//! taking a frame (e.g. its queue is full) drops it, as a network may.

use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::backend::FrameFd;
use super::header::{NetHeader, ETH_HLEN, NET_HDR_LEN};
use super::stats::NetStats;
use crate::chain::{complete, pop_chain, read_from, Chain, ChainError};

/// The TX side of a device: the largest frame it accepts and a scratch
/// buffer one frame is assembled in.
#[derive(Debug)]
pub struct Transmitter {
    scratch: Vec<u8>,
}

impl Transmitter {
    /// A transmitter accepting frames of up to `max_frame` bytes (Ethernet
    /// header included, virtio header excluded).
    pub fn new(max_frame: usize) -> Self {
        Self {
            scratch: vec![0; NET_HDR_LEN + max_frame],
        }
    }

    /// Sends every frame queued on `queue` (at most a queue's worth).
    /// Returns the number of chains given back; `Err`: the queue is broken.
    pub fn process(
        &mut self,
        mem: &GuestMemoryMmap,
        queue: &mut Queue,
        backend: &FrameFd,
        stats: &NetStats,
    ) -> Result<usize, ChainError> {
        let mut done = 0usize;
        for _ in 0..queue.size() {
            let Some((head, chain)) = pop_chain(mem, queue)? else {
                break;
            };
            match chain {
                Ok(chain) => self.send(mem, &chain, backend, stats),
                Err(e) => stats.bad_chain("TX", &e),
            }
            complete(mem, queue, head, 0)?;
            done += 1;
        }
        Ok(done)
    }

    /// Writes the frame of `chain` to `backend`, or drops it.
    fn send(&mut self, mem: &GuestMemoryMmap, chain: &Chain, backend: &FrameFd, stats: &NetStats) {
        if !chain.writable.is_empty() {
            stats.bad_chain("TX", &"device-writable buffer in a TX chain");
            return;
        }
        let len = chain.readable_len();
        if len < (NET_HDR_LEN + ETH_HLEN) as u64 {
            stats.tx_drop(&format_args!(
                "{len}-byte chain holds no header and Ethernet frame"
            ));
            return;
        }
        let Some(buf) = usize::try_from(len)
            .ok()
            .and_then(|len| self.scratch.get_mut(..len))
        else {
            stats.tx_drop(&format_args!("{len}-byte chain longer than the MTU allows"));
            return;
        };
        if let Err(e) = read_from(mem, &chain.readable, 0, buf) {
            stats.bad_chain("TX", &e);
            return;
        }
        let Some(raw_hdr) = buf.first_chunk_mut::<NET_HDR_LEN>() else {
            return;
        };
        let hdr = NetHeader::from_bytes(raw_hdr);
        if hdr.flags != 0 || hdr.gso_type != 0 {
            stats.tx_drop(&format_args!(
                "header flags {:#x} gso_type {} ask for offloads never negotiated",
                hdr.flags, hdr.gso_type
            ));
            return;
        }
        *raw_hdr = [0; NET_HDR_LEN];
        match backend.write_frame(buf) {
            Ok(n) if n == buf.len() => stats.tx_sent(),
            Ok(n) => stats.tx_drop(&format_args!("tap took {n} of {} bytes", buf.len())),
            Err(e) => stats.tx_drop(&format_args!("tap refused the frame: {e}")),
        }
    }
}
