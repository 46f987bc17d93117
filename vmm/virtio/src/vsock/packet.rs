//! The virtio-vsock packet header (44 bytes, little endian) and its codes.

pub use virtio_vsock::packet::PKT_HEADER_SIZE;

/// The only socket type supported: stream.
pub const TYPE_STREAM: u16 = 1;
/// Connection request.
pub const OP_REQUEST: u16 = 1;
/// Connection accepted.
pub const OP_RESPONSE: u16 = 2;
/// Connection reset / refused.
pub const OP_RST: u16 = 3;
/// One direction (or both) shut down; see the `SHUTDOWN_*` flags.
pub const OP_SHUTDOWN: u16 = 4;
/// Data.
pub const OP_RW: u16 = 5;
/// Credit information only.
pub const OP_CREDIT_UPDATE: u16 = 6;
/// Asks the peer to send its credit information.
pub const OP_CREDIT_REQUEST: u16 = 7;
/// Shutdown flag: the sender will receive no more data.
pub const SHUTDOWN_RCV: u32 = 1;
/// Shutdown flag: the sender will send no more data.
pub const SHUTDOWN_SEND: u32 = 2;

/// A decoded packet header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Header {
    /// Source context id.
    pub src_cid: u64,
    /// Destination context id.
    pub dst_cid: u64,
    /// Source port.
    pub src_port: u32,
    /// Destination port.
    pub dst_port: u32,
    /// Payload length.
    pub len: u32,
    /// Socket type ([`TYPE_STREAM`]).
    pub type_: u16,
    /// Operation (`OP_*`).
    pub op: u16,
    /// Operation flags.
    pub flags: u32,
    /// Sender's receive buffer size.
    pub buf_alloc: u32,
    /// Bytes the sender has consumed from its receive buffer so far.
    pub fwd_cnt: u32,
}

fn u16_at(b: &[u8; PKT_HEADER_SIZE], at: usize) -> u16 {
    let mut a = [0u8; 2];
    for (i, d) in a.iter_mut().enumerate() {
        if let Some(v) = b.get(at + i) {
            *d = *v;
        }
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8; PKT_HEADER_SIZE], at: usize) -> u32 {
    let mut a = [0u8; 4];
    for (i, d) in a.iter_mut().enumerate() {
        if let Some(v) = b.get(at + i) {
            *d = *v;
        }
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8; PKT_HEADER_SIZE], at: usize) -> u64 {
    let mut a = [0u8; 8];
    for (i, d) in a.iter_mut().enumerate() {
        if let Some(v) = b.get(at + i) {
            *d = *v;
        }
    }
    u64::from_le_bytes(a)
}

impl Header {
    /// Decodes a raw header.
    pub fn from_bytes(b: &[u8; PKT_HEADER_SIZE]) -> Self {
        Self {
            src_cid: u64_at(b, 0),
            dst_cid: u64_at(b, 8),
            src_port: u32_at(b, 16),
            dst_port: u32_at(b, 20),
            len: u32_at(b, 24),
            type_: u16_at(b, 28),
            op: u16_at(b, 30),
            flags: u32_at(b, 32),
            buf_alloc: u32_at(b, 36),
            fwd_cnt: u32_at(b, 40),
        }
    }

    /// Encodes the header.
    pub fn to_bytes(&self) -> [u8; PKT_HEADER_SIZE] {
        let mut out = Vec::with_capacity(PKT_HEADER_SIZE);
        out.extend_from_slice(&self.src_cid.to_le_bytes());
        out.extend_from_slice(&self.dst_cid.to_le_bytes());
        out.extend_from_slice(&self.src_port.to_le_bytes());
        out.extend_from_slice(&self.dst_port.to_le_bytes());
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.type_.to_le_bytes());
        out.extend_from_slice(&self.op.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.buf_alloc.to_le_bytes());
        out.extend_from_slice(&self.fwd_cnt.to_le_bytes());
        let mut b = [0u8; PKT_HEADER_SIZE];
        for (d, s) in b.iter_mut().zip(out) {
            *d = s;
        }
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = Header {
            src_cid: 3,
            dst_cid: u64::from(libc::VMADDR_CID_HOST),
            src_port: 1234,
            dst_port: 1024,
            len: 77,
            type_: TYPE_STREAM,
            op: OP_RW,
            flags: 3,
            buf_alloc: 65536,
            fwd_cnt: 99,
        };
        assert_eq!(Header::from_bytes(&h.to_bytes()), h);
        assert_eq!(PKT_HEADER_SIZE, 44);
    }
}
