//! The console sink behind the serial port: forwards guest output and
//! remembers the first `Kernel panic - not syncing: ...` line it sees
//! (with `panic=-1` the guest reboots right after printing it).

use std::io::{self, Write};
use std::sync::{Arc, Mutex};

const PANIC_PREFIX: &str = "Kernel panic - not syncing: ";
/// Longest line kept for panic detection; longer lines are cut.
const MAX_LINE: usize = 1024;

/// The panic message seen on the console, shared with the machine.
pub type PanicSlot = Arc<Mutex<Option<String>>>;

/// A writer that forwards bytes to `out` and watches lines for a kernel panic.
pub struct ConsoleWriter {
    out: Box<dyn Write + Send>,
    line: Vec<u8>,
    panic: PanicSlot,
}

impl ConsoleWriter {
    /// Wraps `out`; a panic line, if seen, is stored into `panic`.
    pub fn new(out: Box<dyn Write + Send>, panic: PanicSlot) -> Self {
        Self {
            out,
            line: Vec::with_capacity(128),
            panic,
        }
    }

    fn end_line(&mut self) {
        let text = String::from_utf8_lossy(&self.line);
        if let Some(pos) = text.find(PANIC_PREFIX) {
            let msg = text[pos + PANIC_PREFIX.len()..].trim_end().to_string();
            let mut slot = self.panic.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(msg);
        }
        self.line.clear();
    }
}

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            if b == b'\n' {
                self.end_line();
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            }
        }
        // The guest's console must never stall or kill the VM: output
        // errors (closed stdout, full disk) are dropped.
        let _ = self.out.write_all(buf);
        if buf.contains(&b'\n') {
            let _ = self.out.flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = self.out.flush();
        Ok(())
    }
}

/// A cloneable in-memory sink (for tests and callers that capture output).
#[derive(Debug, Clone, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything written so far, as raw bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything written so far, lossily decoded.
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_first_panic_line_and_forwards_everything() {
        let buf = SharedBuffer::new();
        let slot = PanicSlot::default();
        let mut w = ConsoleWriter::new(Box::new(buf.clone()), slot.clone());
        w.write_all(b"[    0.5] Run /init as init process\n")
            .unwrap();
        assert!(slot.lock().unwrap().is_none());
        w.write_all(b"[    0.6] Kernel panic - not syschron")
            .unwrap();
        w.write_all(b"\n[    0.6] Kernel panic - not syncing: No working init found.  \r\n")
            .unwrap();
        w.write_all(b"Kernel panic - not syncing: second\n")
            .unwrap();
        assert_eq!(
            slot.lock().unwrap().as_deref(),
            Some("No working init found.")
        );
        assert!(buf.contents().contains("Run /init"));
        assert!(buf.contents().ends_with("second\n"));
    }

    #[test]
    fn long_lines_are_cut_without_growing() {
        let slot = PanicSlot::default();
        let mut w = ConsoleWriter::new(Box::new(io::sink()), slot);
        w.write_all(&vec![b'x'; 10 * MAX_LINE]).unwrap();
        assert_eq!(w.line.len(), MAX_LINE);
    }
}
