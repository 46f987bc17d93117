//! RX scheduling: what goes into the guest's next RX buffer, and copying
//! it there. Header-only control packets go first (oldest first); then
//! host data from a connection that has some and credit to send it with,
//! asking on the way for credit where a connection has none.

use tracing::debug;
use virtio_queue::{Queue, QueueOwnedT};
use vm_memory::GuestMemoryMmap;

use super::connection::{HostRead, RxWant};
use super::packet::{
    Header, OP_CREDIT_REQUEST, OP_RW, OP_SHUTDOWN, PKT_HEADER_SIZE, SHUTDOWN_SEND,
};
use super::router::{Ports, Router};
use crate::chain::{complete, pop_chain, write_to, Chain, ChainError};

/// Largest payload put into one RX packet.
pub const MAX_RX_PAYLOAD: usize = 64 * 1024;

/// The next packet for the guest.
#[derive(Debug)]
enum Next {
    /// A header-only packet.
    Control(Header),
    /// Host data of the connection on these ports.
    Data(Ports),
}

/// Fills RX buffers with control packets and host data while both are
/// available. Returns the number of chains given back.
pub fn fill_rx(
    router: &mut Router,
    mem: &GuestMemoryMmap,
    queue: &mut Queue,
) -> Result<usize, ChainError> {
    let mut done = 0usize;
    while let Some(next) = next(router) {
        let Some((head, chain)) = pop_chain(mem, queue)? else {
            if let Next::Control(hdr) = next {
                router.unpop_control(hdr);
            }
            break;
        };
        let len = match (next, chain) {
            (Next::Control(hdr), chain) => send_control(router, mem, hdr, chain),
            (Next::Data(_), Err(e)) => {
                debug!(error = %e, "vsock: malformed RX chain");
                0
            }
            (Next::Data(ports), Ok(chain)) => match send_data(router, mem, ports, &chain) {
                Some(len) => len,
                None => {
                    // Nothing was read after all: the buffer waits for the next packet.
                    queue.go_to_previous_position();
                    continue;
                }
            },
        };
        complete(mem, queue, head, len)?;
        done += 1;
    }
    Ok(done)
}

/// Chooses the next packet (see the module docs).
fn next(router: &mut Router) -> Option<Next> {
    if let Some(hdr) = router.pop_control() {
        return Some(Next::Control(hdr));
    }
    let mut found = None;
    let mut ask = Vec::new();
    for (ports, conn) in router.connections_mut() {
        match conn.rx_want() {
            RxWant::Nothing => {}
            RxWant::CreditRequest => ask.push(ports),
            RxWant::Data => {
                found = Some(ports);
                break;
            }
        }
    }
    for ports in ask {
        router.queue_control(ports, OP_CREDIT_REQUEST, 0);
    }
    // Without data to send, the credit requests just queued go out.
    found
        .map(Next::Data)
        .or_else(|| router.pop_control().map(Next::Control))
}

/// Writes a control packet (stamped with the connection's current
/// `fwd_cnt`) into `chain`. Returns the used length (0: packet lost).
fn send_control(
    router: &mut Router,
    mem: &GuestMemoryMmap,
    mut hdr: Header,
    chain: Result<Chain, ChainError>,
) -> u32 {
    let ports = Ports {
        host: hdr.src_port,
        guest: hdr.dst_port,
    };
    if let Some(conn) = router.connection_mut(ports) {
        hdr.fwd_cnt = conn.report_fwd_cnt();
    }
    let written = chain.and_then(|c| write_to(mem, &c.writable, 0, &hdr.to_bytes()));
    match written {
        Ok(()) => PKT_HEADER_SIZE as u32,
        Err(e) => {
            debug!(error = %e, "vsock: bad RX buffer; control packet lost");
            0
        }
    }
}

/// Moves one packet of host data of `ports` into `chain`. Returns the used
/// length, or None when nothing was read (the chain is to be put back).
fn send_data(
    router: &mut Router,
    mem: &GuestMemoryMmap,
    ports: Ports,
    chain: &Chain,
) -> Option<u32> {
    let capacity = chain.writable_len().saturating_sub(PKT_HEADER_SIZE as u64);
    let conn = router.connection_mut(ports)?;
    let max = (capacity.min(MAX_RX_PAYLOAD as u64) as usize).min(conn.peer_credit() as usize);
    if max == 0 {
        debug!("vsock: RX buffer has no room for data");
        return Some(0);
    }
    let (op, flags, data) = match conn.read_for_guest(max) {
        HostRead::Data(data) => (OP_RW, 0, data),
        HostRead::Eof => (OP_SHUTDOWN, SHUTDOWN_SEND, Vec::new()),
        HostRead::WouldBlock => {
            router.rearm(ports);
            return None;
        }
        HostRead::Failed => {
            router.reset(ports);
            return None;
        }
    };
    let fwd_cnt = conn.report_fwd_cnt();
    let mut hdr = router.header(ports, op, flags);
    hdr.len = data.len() as u32;
    hdr.fwd_cnt = fwd_cnt;
    let written = write_to(mem, &chain.writable, 0, &hdr.to_bytes())
        .and_then(|()| write_to(mem, &chain.writable, PKT_HEADER_SIZE as u64, &data));
    match written {
        Ok(()) => {
            if op == OP_SHUTDOWN {
                // Reading is over; the socket may still wait to be written.
                router.rearm(ports);
            }
            Some(PKT_HEADER_SIZE as u32 + hdr.len)
        }
        Err(e) => {
            debug!(error = %e, "vsock: cannot write RX packet; resetting");
            router.reset(ports);
            Some(0)
        }
    }
}
