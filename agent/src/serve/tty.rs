//! `process.terminal: true`: relaying the container's pty master to the
//! host over the stdio connections, as `runc run` relays it to its own
//! stdio.
//!
//! - host stdin connection → master (the process reads it from the slave);
//!   EOF on it only stops the input relay, nothing is sent to the pty
//!   (runc does the same: `io.Copy(console, os.Stdin)` and nothing else);
//! - master → host stdout connection: everything the process writes to
//!   its terminal (stdout and stderr alike);
//! - the stderr connection is closed at once by [`TerminalStreams`]'s
//!   owner: a terminal has no separate stderr;
//! - [`PtyRelay::resize`] sets the window size (`TIOCSWINSZ`);
//! - [`PtyRelay::drain`], once the process exited, waits for the master to
//!   report the end of the slave side (`EIO` after its last byte was read),
//!   so the host gets all the output before the exit status.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::sys::socket::{shutdown, Shutdown};

/// Bytes moved per read.
const CHUNK: usize = 16 * 1024;

/// The host connections a terminal container's pty is relayed over.
#[derive(Debug)]
pub struct TerminalStreams {
    /// Host → master.
    pub stdin: OwnedFd,
    /// Master → host.
    pub stdout: OwnedFd,
}

/// A running relay between a pty master and the host.
#[derive(Debug)]
pub struct PtyRelay {
    master: Arc<OwnedFd>,
    /// Second handles on the connections, to wake the relay threads.
    stdin: OwnedFd,
    stdout: OwnedFd,
    output_done: Mutex<Option<Receiver<()>>>,
    /// Bytes the output relay has passed on so far.
    output_bytes: Arc<AtomicU64>,
}

/// Reads into `buf`, retrying on `EINTR`. `Ok(0)` is EOF; a pty master
/// reports the end of its slave side as `EIO`, mapped to `Ok(0)` too.
fn read_fd(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match nix::unistd::read(fd.as_raw_fd(), buf) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => continue,
            Err(Errno::EIO) => return Ok(0),
            Err(errno) => return Err(errno.into()),
        }
    }
}

/// Writes all of `data`, retrying on `EINTR` and short writes.
fn write_all_fd(fd: &OwnedFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = data.get(n..).unwrap_or_default(),
            Err(Errno::EINTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    }
    Ok(())
}

/// Copies `from` into `to` until EOF (or `EIO`) or an error, counting the
/// bytes passed on in `progress`.
fn copy(from: &OwnedFd, to: &OwnedFd, progress: &AtomicU64) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = read_fd(from, &mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        write_all_fd(to, buf.get(..n).unwrap_or_default())?;
        total = total.saturating_add(n as u64);
        progress.store(total, Ordering::Relaxed);
    }
}

pub use vmrun_isolation::console::set_window_size;

impl PtyRelay {
    /// Starts the two relay threads for container `id`.
    pub fn start(id: &str, master: OwnedFd, streams: TerminalStreams) -> Result<Self> {
        let master = Arc::new(master);
        let stdin_wake = streams.stdin.try_clone().context("duplicating stdin")?;
        let stdout_wake = streams.stdout.try_clone().context("duplicating stdout")?;

        let input_master = Arc::clone(&master);
        let stdin = streams.stdin;
        std::thread::Builder::new()
            .name(format!("tty-in-{id}"))
            .spawn(
                move || match copy(&stdin, &input_master, &AtomicU64::new(0)) {
                    // EOF from the host: stop relaying input, like runc.
                    Ok(bytes) => tracing::debug!(bytes, "terminal input ended"),
                    // EIO/EPIPE: the process and its terminal are gone.
                    Err(err) => tracing::debug!("terminal input relay: {err}"),
                },
            )
            .context("spawning the terminal input relay")?;

        let output_master = Arc::clone(&master);
        let stdout = streams.stdout;
        let (done, output_done) = mpsc::channel();
        let output_bytes = Arc::new(AtomicU64::new(0));
        let progress = Arc::clone(&output_bytes);
        std::thread::Builder::new()
            .name(format!("tty-out-{id}"))
            .spawn(move || {
                match copy(&output_master, &stdout, &progress) {
                    Ok(bytes) => tracing::debug!(bytes, "terminal output ended"),
                    Err(err) => tracing::debug!("terminal output relay: {err}"),
                }
                // EOF for the host even if someone else still holds a copy.
                let _ = shutdown(stdout.as_raw_fd(), Shutdown::Write);
                let _ = done.send(());
            })
            .context("spawning the terminal output relay")?;

        Ok(Self {
            master,
            stdin: stdin_wake,
            stdout: stdout_wake,
            output_done: Mutex::new(Some(output_done)),
            output_bytes,
        })
    }

    /// Sets the terminal's window size.
    pub fn resize(&self, rows: u16, cols: u16) -> io::Result<()> {
        set_window_size(&self.master, rows, cols)
    }

    /// After the process exited: waits until the output relay has passed
    /// on the pty's last byte and closed the host's stdout, then stops the
    /// input relay. A relay still moving bytes (a slow host reader) is
    /// waited for; one that moved nothing for `idle_limit` while the
    /// terminal stays open (something else in the guest holds it) is cut.
    pub fn drain(&self, idle_limit: Duration) {
        let done = self
            .output_done
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(done) = done {
            let mut seen = self.output_bytes.load(Ordering::Relaxed);
            loop {
                match done.recv_timeout(idle_limit) {
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    Err(RecvTimeoutError::Timeout) => {
                        let now = self.output_bytes.load(Ordering::Relaxed);
                        if now != seen {
                            seen = now;
                            continue;
                        }
                        tracing::warn!(
                            "the terminal is still open and idle {idle_limit:?} after the \
                             process exited (a background process?): closing its output"
                        );
                        let _ = shutdown(self.stdout.as_raw_fd(), Shutdown::Both);
                        break;
                    }
                }
            }
        }
        // Wakes the input relay, blocked reading the host's stdin.
        let _ = shutdown(self.stdin.as_raw_fd(), Shutdown::Both);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    /// A pty pair from the host's /dev/ptmx: (master, slave).
    fn openpty() -> (OwnedFd, std::fs::File) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        (pty.master, std::fs::File::from(pty.slave))
    }

    #[test]
    fn relays_both_ways_drains_and_resizes() {
        let (master, mut slave) = openpty();
        let (host_in, guest_in) = UnixStream::pair().unwrap();
        let (mut host_out, guest_out) = UnixStream::pair().unwrap();
        let relay = PtyRelay::start(
            "t",
            master,
            TerminalStreams {
                stdin: guest_in.into(),
                stdout: guest_out.into(),
            },
        )
        .unwrap();

        relay.resize(33, 101).unwrap();
        let mut size = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one `struct winsize` into `size`.
        let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCGWINSZ, &mut size) };
        assert_eq!(rc, 0);
        assert_eq!((size.ws_row, size.ws_col), (33, 101));

        // Host input reaches the slave (canonical mode: a whole line).
        (&host_in).write_all(b"typed\n").unwrap();
        let mut line = [0u8; 6];
        slave.read_exact(&mut line).unwrap();
        assert_eq!(&line, b"typed\n");
        // EOF from the host stops the input only: the output still flows.
        host_in.shutdown(std::net::Shutdown::Write).unwrap();

        slave.write_all(b"last words").unwrap();
        drop(slave);
        relay.drain(Duration::from_secs(30));
        let mut out = Vec::new();
        host_out.read_to_end(&mut out).unwrap();
        // The pty echoes the typed line (ONLCR turns \n into \r\n).
        let out = String::from_utf8_lossy(&out);
        assert!(out.ends_with("last words"), "{out:?}");
        assert!(out.starts_with("typed\r\n"), "{out:?}");
    }

    #[test]
    fn a_terminal_held_open_elsewhere_is_cut_when_idle() {
        let (master, mut slave) = openpty();
        let (_host_in, guest_in) = UnixStream::pair().unwrap();
        let (mut host_out, guest_out) = UnixStream::pair().unwrap();
        let relay = PtyRelay::start(
            "held",
            master,
            TerminalStreams {
                stdin: guest_in.into(),
                stdout: guest_out.into(),
            },
        )
        .unwrap();
        slave.write_all(b"before exit").unwrap();
        let mut first = [0u8; 11];
        host_out.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"before exit");
        // `slave` stays open (a background process): no EIO ever comes,
        // yet the host's stdout ends.
        relay.drain(Duration::from_millis(200));
        let mut rest = Vec::new();
        host_out.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, b"");
        drop(slave);
    }
}
