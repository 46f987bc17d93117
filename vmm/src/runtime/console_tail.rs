//! Keeps the last few KiB of the guest console in memory, so a failed run
//! can show what the guest printed without the console mixing with the
//! container's stdout.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex};

/// Bytes of console output kept.
pub const CONSOLE_TAIL_BYTES: usize = 16 * 1024;

/// A `Write` that keeps only the last [`CONSOLE_TAIL_BYTES`] bytes, and
/// optionally copies everything to another writer (a console log file).
#[derive(Clone, Default)]
pub struct ConsoleTail {
    buf: Arc<Mutex<VecDeque<u8>>>,
    copy: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
}

impl std::fmt::Debug for ConsoleTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleTail").finish_non_exhaustive()
    }
}

impl ConsoleTail {
    /// A tail that also writes everything to `copy`.
    pub fn with_copy(copy: Box<dyn Write + Send>) -> Self {
        Self {
            buf: Arc::default(),
            copy: Some(Arc::new(Mutex::new(copy))),
        }
    }

    /// The kept output, lossily decoded.
    pub fn text(&self) -> String {
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = buf.as_slices();
        let mut bytes = a.to_vec();
        bytes.extend_from_slice(b);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for ConsoleTail {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        {
            let mut buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
            buf.extend(data.iter().copied());
            let excess = buf.len().saturating_sub(CONSOLE_TAIL_BYTES);
            buf.drain(..excess);
        }
        if let Some(copy) = &self.copy {
            let mut copy = copy.lock().unwrap_or_else(|p| p.into_inner());
            // A failing log file must not stop the guest's console.
            let _ = copy.write_all(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if let Some(copy) = &self.copy {
            let mut copy = copy.lock().unwrap_or_else(|p| p.into_inner());
            let _ = copy.flush();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_tail() {
        let mut tail = ConsoleTail::default();
        let big = vec![b'a'; CONSOLE_TAIL_BYTES];
        tail.write_all(&big).unwrap();
        tail.write_all(b"the end").unwrap();
        let text = tail.text();
        assert_eq!(text.len(), CONSOLE_TAIL_BYTES);
        assert!(text.ends_with("the end"));
    }
}
