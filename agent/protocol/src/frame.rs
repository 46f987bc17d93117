//! Length-prefixed frames: a little-endian `u32` payload length, then that
//! many bytes of JSON. Frames larger than [`MAX_FRAME_LEN`] are refused on
//! both sides before anything is allocated, so a hostile peer can neither
//! make us allocate without bound nor panic us with garbage.

use std::io::{self, Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest payload a frame may carry (1 MiB).
pub const MAX_FRAME_LEN: u32 = 1 << 20;

/// Errors reading or writing frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly before a new frame began.
    #[error("connection closed")]
    Closed,
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The announced length exceeds [`MAX_FRAME_LEN`] (or is zero).
    #[error("invalid frame length {0} (must be 1..={MAX_FRAME_LEN})")]
    BadLength(u32),
    /// The payload is not a valid message.
    #[error("malformed message")]
    Malformed(#[source] serde_json::Error),
    /// The message could not be encoded.
    #[error("cannot encode message")]
    Encode(#[source] serde_json::Error),
    /// An I/O error.
    #[error("I/O error on the agent connection")]
    Io(#[from] io::Error),
}

/// Encodes `msg` as one frame (length prefix + JSON).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let payload = serde_json::to_vec(msg).map_err(FrameError::Encode)?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|len| *len <= MAX_FRAME_LEN)
        .ok_or(FrameError::BadLength(u32::MAX))?;
    let mut frame = Vec::with_capacity(payload.len() + 4);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&payload);
    Ok(frame)
}

/// Writes `msg` as one frame and flushes.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), FrameError> {
    let frame = encode(msg)?;
    w.write_all(&frame)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame and decodes it. Blocks until a whole frame has arrived.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, FrameError> {
    let mut len_bytes = [0u8; 4];
    let mut got = 0usize;
    while got < len_bytes.len() {
        let Some(rest) = len_bytes.get_mut(got..) else {
            break;
        };
        match r.read(rest) {
            Ok(0) if got == 0 => return Err(FrameError::Closed),
            Ok(0) => return Err(FrameError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = u32::from_le_bytes(len_bytes);
    if len == 0 || len > MAX_FRAME_LEN {
        return Err(FrameError::BadLength(len));
    }
    let mut payload = Vec::new();
    r.take(u64::from(len)).read_to_end(&mut payload)?;
    if payload.len() != len as usize {
        return Err(FrameError::Truncated);
    }
    decode(&payload)
}

/// Decodes a frame payload (without its length prefix).
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T, FrameError> {
    serde_json::from_slice(payload).map_err(FrameError::Malformed)
}
