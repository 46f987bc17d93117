//! Queue processing as plain functions over guest memory: pop descriptor
//! chains, validate them completely before a device looks at them, copy
//! bytes in and out of them, and return them to the used ring.
//!
//! The guest writes the descriptors, so every field is hostile: loops,
//! `next` past the table, buffers past the end of RAM, lengths near
//! `u32::MAX`, indirect tables inside indirect tables and avail-index jumps
//! all come back as errors here, never as panics.

use std::ops::Range;

use virtio_queue::{DescriptorChain, Queue, QueueOwnedT, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemory, GuestMemoryMmap};

/// Largest total buffer length of one chain this crate accepts (virtio
/// forbids chains over 4 GiB; virtio-queue stops iterating past that).
pub const MAX_CHAIN_BYTES: u64 = u32::MAX as u64;

/// Why a descriptor chain or a queue was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    /// The avail ring index moved more than a queue size ahead.
    #[error("available ring index jumped past the queue size")]
    AvailIndexJump,
    /// The queue cannot be read (not ready, or its avail ring is unreadable).
    #[error("queue not usable: {0}")]
    Queue(String),
    /// The head index is out of range or its descriptor table is unreadable.
    #[error("empty or unreadable descriptor chain (head {0})")]
    Empty(u16),
    /// The chain was cut short: a loop, a `next` past the table, an
    /// unreadable descriptor, an indirect table inside an indirect table or
    /// more than 4 GiB of buffers.
    #[error("malformed descriptor chain (head {0})")]
    Malformed(u16),
    /// A buffer lies (partly) outside guest RAM.
    #[error("descriptor buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutOfMemory {
        /// Guest address of the buffer.
        addr: u64,
        /// Length of the buffer.
        len: u32,
    },
    /// A device-readable buffer follows a device-writable one.
    #[error("readable descriptor after a writable one (head {0})")]
    ReadAfterWrite(u16),
    /// Copying from or to guest memory failed.
    #[error("guest memory access failed at {0:#x}")]
    Memory(u64),
    /// The chain is too short for what the device needs.
    #[error("descriptor chain too short: need {need} bytes, have {have}")]
    TooShort {
        /// Bytes needed.
        need: u64,
        /// Bytes available.
        have: u64,
    },
}

/// One buffer of a validated chain; it lies wholly inside guest RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buffer {
    /// Guest physical address.
    pub addr: GuestAddress,
    /// Length in bytes.
    pub len: u32,
}

/// A validated descriptor chain: device-readable buffers, then device-writable ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// Head descriptor index, to give back with [`complete`].
    pub head: u16,
    /// Buffers the device reads (driver → device).
    pub readable: Vec<Buffer>,
    /// Buffers the device writes (device → driver).
    pub writable: Vec<Buffer>,
}

impl Chain {
    /// Total length of the readable buffers.
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|b| u64::from(b.len)).sum()
    }

    /// Total length of the writable buffers.
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|b| u64::from(b.len)).sum()
    }
}

/// A popped chain: its head index and the chain, or why it is malformed.
pub type Popped = (u16, Result<Chain, ChainError>);

/// Pops the next available chain of `queue` and validates it.
///
/// `Ok(None)`: nothing available. `Ok(Some(Err(_)))`: a chain was popped but
/// is malformed; give it back with `complete(.., head, 0)` and carry on.
/// `Err(_)`: the queue itself is broken (e.g. the avail index jumped); stop.
pub fn pop_chain(mem: &GuestMemoryMmap, queue: &mut Queue) -> Result<Option<Popped>, ChainError> {
    Ok(pop_raw_chain(mem, queue)?.map(|(raw, chain)| (raw.head_index(), chain)))
}

/// A popped raw descriptor chain (for libraries that walk chains
/// themselves) with the result of validating it.
pub type PoppedRaw<'a> = (
    DescriptorChain<&'a GuestMemoryMmap>,
    Result<Chain, ChainError>,
);

/// Like [`pop_chain`], but also returns the raw chain. Hand the raw chain
/// to other code only if validation succeeded.
pub fn pop_raw_chain<'a>(
    mem: &'a GuestMemoryMmap,
    queue: &mut Queue,
) -> Result<Option<PoppedRaw<'a>>, ChainError> {
    let mut iter = queue.iter(mem).map_err(|e| match e {
        virtio_queue::Error::InvalidAvailRingIndex => ChainError::AvailIndexJump,
        other => ChainError::Queue(other.to_string()),
    })?;
    let Some(desc_chain) = iter.next() else {
        return Ok(None);
    };
    let head = desc_chain.head_index();
    let validated = validate(mem, head, desc_chain.clone());
    Ok(Some((desc_chain, validated)))
}

fn validate(
    mem: &GuestMemoryMmap,
    head: u16,
    desc_chain: DescriptorChain<&GuestMemoryMmap>,
) -> Result<Chain, ChainError> {
    let mut chain = Chain {
        head,
        readable: Vec::new(),
        writable: Vec::new(),
    };
    let mut last_has_next = false;
    let mut count = 0usize;
    for desc in desc_chain {
        count += 1;
        last_has_next = desc.has_next();
        let buffer = Buffer {
            addr: desc.addr(),
            len: desc.len(),
        };
        let len = usize::try_from(desc.len()).map_err(|_| ChainError::Malformed(head))?;
        if len != 0 && !mem.check_range(buffer.addr, len) {
            return Err(ChainError::OutOfMemory {
                addr: buffer.addr.0,
                len: buffer.len,
            });
        }
        if desc.is_write_only() {
            chain.writable.push(buffer);
        } else if chain.writable.is_empty() {
            chain.readable.push(buffer);
        } else {
            return Err(ChainError::ReadAfterWrite(head));
        }
    }
    if count == 0 {
        return Err(ChainError::Empty(head));
    }
    if last_has_next {
        // virtio-queue stops iterating silently on loops, bad indices,
        // unreadable descriptors and nested indirect tables.
        return Err(ChainError::Malformed(head));
    }
    Ok(chain)
}

/// Returns chain `head` to the driver with `len` bytes written.
pub fn complete(
    mem: &GuestMemoryMmap,
    queue: &mut Queue,
    head: u16,
    len: u32,
) -> Result<(), ChainError> {
    queue
        .add_used(mem, head, len)
        .map_err(|e| ChainError::Queue(e.to_string()))
}

/// Pops every available chain, hands each valid one to `handle` (which
/// returns the number of bytes it wrote into the chain) and puts them all
/// back on the used ring; malformed chains are returned with length 0.
/// Returns how many chains were returned to the driver.
pub fn process_queue<F>(
    mem: &GuestMemoryMmap,
    queue: &mut Queue,
    mut handle: F,
) -> Result<usize, ChainError>
where
    F: FnMut(&GuestMemoryMmap, &Chain) -> u32,
{
    let mut done = 0usize;
    // A queue never holds more than `size` chains at once; bound the loop
    // anyway so a driver refilling the ring concurrently cannot starve us.
    for _ in 0..queue.size() {
        let Some((head, chain)) = pop_chain(mem, queue)? else {
            break;
        };
        let len = match chain {
            Ok(chain) => handle(mem, &chain),
            Err(e) => {
                tracing::debug!(error = %e, "virtio: malformed descriptor chain");
                0
            }
        };
        complete(mem, queue, head, len)?;
        done += 1;
    }
    Ok(done)
}

/// Maps the byte range `range` of the concatenated `buffers` onto guest
/// memory pieces `(address, length)`.
pub fn pieces(buffers: &[Buffer], range: Range<u64>) -> Vec<(GuestAddress, usize)> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for b in buffers {
        let start = pos;
        let end = pos + u64::from(b.len);
        pos = end;
        let lo = range.start.max(start);
        let hi = range.end.min(end);
        if lo >= hi {
            continue;
        }
        let (Some(addr), Ok(len)) = (b.addr.checked_add(lo - start), usize::try_from(hi - lo))
        else {
            continue;
        };
        out.push((addr, len));
    }
    out
}

/// The guest memory pieces of bytes `offset..offset + len` of the
/// concatenated `buffers`, each paired with its position in that range;
/// an error if the buffers are shorter.
fn span(
    buffers: &[Buffer],
    offset: u64,
    len: usize,
) -> Result<Vec<(GuestAddress, Range<usize>)>, ChainError> {
    let want = len as u64;
    let have: u64 = buffers.iter().map(|b| u64::from(b.len)).sum();
    let end = offset
        .checked_add(want)
        .filter(|end| *end <= have)
        .ok_or(ChainError::TooShort {
            need: offset.saturating_add(want),
            have,
        })?;
    let mut done = 0usize;
    Ok(pieces(buffers, offset..end)
        .into_iter()
        .map(|(addr, n)| {
            let range = done..done + n;
            done += n;
            (addr, range)
        })
        .collect())
}

/// Reads `buf.len()` bytes at byte offset `offset` of the concatenated `buffers`.
pub fn read_from(
    mem: &GuestMemoryMmap,
    buffers: &[Buffer],
    offset: u64,
    buf: &mut [u8],
) -> Result<(), ChainError> {
    for (addr, range) in span(buffers, offset, buf.len())? {
        let dst = buf.get_mut(range).ok_or(ChainError::Memory(addr.0))?;
        mem.read_slice(dst, addr)
            .map_err(|_| ChainError::Memory(addr.0))?;
    }
    Ok(())
}

/// Writes `data` at byte offset `offset` of the concatenated `buffers`.
pub fn write_to(
    mem: &GuestMemoryMmap,
    buffers: &[Buffer],
    offset: u64,
    data: &[u8],
) -> Result<(), ChainError> {
    for (addr, range) in span(buffers, offset, data.len())? {
        let src = data.get(range).ok_or(ChainError::Memory(addr.0))?;
        mem.write_slice(src, addr)
            .map_err(|_| ChainError::Memory(addr.0))?;
    }
    Ok(())
}
