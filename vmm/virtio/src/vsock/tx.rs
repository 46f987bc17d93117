//! TX parsing: every packet the guest queued on the TX queue is read out of
//! guest memory (header, then at most [`CONN_BUF_ALLOC`] bytes of payload)
//! and handed to the router. A malformed chain is given back and dropped.

use tracing::debug;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap;

use super::connection::CONN_BUF_ALLOC;
use super::packet::{Header, PKT_HEADER_SIZE};
use super::router::Router;
use crate::chain::{complete, pop_chain, read_from, Chain, ChainError};

/// Processes every packet the guest queued on the TX queue. Returns the
/// number of chains given back.
pub fn process_tx(
    router: &mut Router,
    mem: &GuestMemoryMmap,
    queue: &mut Queue,
) -> Result<usize, ChainError> {
    let mut done = 0;
    for _ in 0..queue.size() {
        let Some((head, chain)) = pop_chain(mem, queue)? else {
            break;
        };
        match chain.and_then(|c| parse_tx(mem, &c)) {
            Ok((hdr, payload)) => router.on_guest_packet(&hdr, &payload),
            Err(e) => debug!(error = %e, "vsock: malformed TX packet dropped"),
        }
        complete(mem, queue, head, 0)?;
        done += 1;
    }
    Ok(done)
}

/// Reads a TX packet's header and payload out of a validated chain.
fn parse_tx(mem: &GuestMemoryMmap, chain: &Chain) -> Result<(Header, Vec<u8>), ChainError> {
    let mut raw = [0u8; PKT_HEADER_SIZE];
    read_from(mem, &chain.readable, 0, &mut raw)?;
    let hdr = Header::from_bytes(&raw);
    if hdr.len > CONN_BUF_ALLOC {
        return Err(ChainError::TooShort {
            need: u64::from(hdr.len),
            have: u64::from(CONN_BUF_ALLOC),
        });
    }
    let mut payload = vec![0u8; hdr.len as usize];
    read_from(mem, &chain.readable, PKT_HEADER_SIZE as u64, &mut payload)?;
    Ok((hdr, payload))
}
