//! Relaying the container's stdio between vmrun's own stdio and the vsock
//! connections the agent opened, in fixed-size chunks (memory stays bounded
//! whatever the stream's length; vsock credit flow control pushes back on a
//! fast writer).

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Bytes moved per read/write.
pub const RELAY_CHUNK: usize = 64 * 1024;

/// Copies `src` to `dst` until EOF or an error; returns the byte count.
/// Flushes after every chunk so output is not held back.
pub fn pump(src: &mut impl Read, dst: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; RELAY_CHUNK];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = buf.get(..n).unwrap_or_default();
        dst.write_all(chunk)?;
        dst.flush()?;
        total = total.saturating_add(n as u64);
    }
    Ok(total)
}

/// Host input (`src`: our stdin, a pty slave, an exec client's stdin) →
/// the container: copies until EOF, then shuts down the write side so the
/// process sees EOF. The thread is never joined (a terminal may never
/// reach EOF); it ends with the process.
pub fn relay_input(
    name: &'static str,
    src: impl Read + Send + 'static,
    stream: UnixStream,
) -> io::Result<()> {
    std::thread::Builder::new()
        .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
        .name(format!("{name}-relay"))
        .spawn(move || {
            crate::seccomp::install_host_or_warn("stdio relay");
            let mut stream = stream;
            let mut src = src;
            if let Err(e) = pump(&mut src, &mut stream) {
                // EPIPE/reset: the process closed its stdin or exited.
                tracing::debug!("{name} relay: {e}");
            }
            let _ = stream.shutdown(Shutdown::Write);
        })
        .map(drop)
}

/// An output relay (container stdout or stderr → ours) that can be awaited
/// with a bound.
#[derive(Debug)]
pub struct OutputRelay {
    name: &'static str,
    done: mpsc::Receiver<io::Result<u64>>,
    _thread: JoinHandle<()>,
}

impl OutputRelay {
    /// Starts copying `stream` into `out` on its own thread.
    pub fn start<W: Write + Send + 'static>(
        name: &'static str,
        stream: UnixStream,
        mut out: W,
    ) -> io::Result<Self> {
        let (tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .stack_size(vmrun_virtio::worker::THREAD_STACK_SIZE)
            .name(format!("{name}-relay"))
            .spawn(move || {
                crate::seccomp::install_host_or_warn("stdio relay");
                let mut stream = stream;
                let result = pump(&mut stream, &mut out);
                if result.is_err() {
                    // Our side is gone (e.g. `vmrun ... | head`): stop the
                    // guest writer instead of blocking it.
                    let _ = stream.shutdown(Shutdown::Both);
                }
                let _ = tx.send(result);
            })?;
        Ok(Self {
            name,
            done,
            _thread: thread,
        })
    }

    /// Waits until the stream ended (EOF once every holder of the
    /// container's stream exited), at most until `deadline`.
    pub fn finish(self, deadline: Instant) {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.done.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(Ok(bytes)) => tracing::debug!(stream = self.name, bytes, "relay done"),
            Ok(Err(e)) => tracing::warn!(stream = self.name, "relay stopped: {e}"),
            Err(_) => tracing::warn!(
                stream = self.name,
                "the container's {} is still open (a background process?): not waiting for it",
                self.name
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_copies_everything_in_chunks() {
        let data: Vec<u8> = (0..(3 * RELAY_CHUNK + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut out = Vec::new();
        let n = pump(&mut data.as_slice(), &mut out).unwrap();
        assert_eq!(n as usize, data.len());
        assert_eq!(out, data);
    }

    #[test]
    fn output_relay_delivers_and_finishes_at_eof() {
        let (mut guest, host) = UnixStream::pair().unwrap();
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        struct Sink(mpsc::Sender<Vec<u8>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let _ = self.0.send(b.to_vec());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let relay = OutputRelay::start("stdout", host, Sink(tx)).unwrap();
        guest.write_all(b"hello ").unwrap();
        guest.write_all(b"world").unwrap();
        drop(guest);
        relay.finish(Instant::now() + Duration::from_secs(10));
        let got: Vec<u8> = rx.try_iter().flatten().collect();
        assert_eq!(got, b"hello world");
    }
}
