//! Running a command the way a caller sees it: spawn, the first byte of its
//! stdout, a marker text on it, reaped — with a hang guard.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Bytes of each stream kept for error messages.
const TAIL_BYTES: usize = 4096;
/// How long output readers may take after the command exited (a process it
/// left behind may hold the pipe).
const READER_GRACE: Duration = Duration::from_secs(5);

/// Where the command's stdout and stderr go.
#[derive(Debug, Clone)]
pub enum Capture {
    /// Pipes read by the bench (first byte, marker, tails).
    Pipes,
    /// Files (for commands that leave a process holding their stdio, such
    /// as `create`, which gives it to the container); read back for tails.
    Files {
        /// stdout.
        stdout: PathBuf,
        /// stderr.
        stderr: PathBuf,
    },
}

/// What one command did.
#[derive(Debug, Clone, Default)]
pub struct Timed {
    /// How it ended; `None` if the hang guard killed it.
    pub status: Option<ExitStatus>,
    /// Spawn to reaped.
    pub wall: Duration,
    /// Spawn to the first byte on stdout (pipes only).
    pub first_output: Option<Duration>,
    /// Spawn to the marker text on stdout (pipes only).
    pub marker: Option<Duration>,
    /// The last bytes of stdout.
    pub stdout_tail: String,
    /// The last bytes of stderr.
    pub stderr_tail: String,
}

impl Timed {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    /// Why it did not succeed, with its stderr (or stdout) tail.
    pub fn failure(&self, what: &str) -> String {
        let how = match self.status {
            None => "was killed by the bench's hang guard".to_string(),
            Some(s) => format!("ended with {s}"),
        };
        let text = if self.stderr_tail.trim().is_empty() {
            self.stdout_tail.trim()
        } else {
            self.stderr_tail.trim()
        };
        let text: Vec<&str> = text.lines().rev().take(6).collect();
        let text: Vec<&str> = text.into_iter().rev().collect();
        if text.is_empty() {
            format!("{what} {how}")
        } else {
            format!("{what} {how}: {}", text.join(" | "))
        }
    }
}

/// What a stdout reader saw.
#[derive(Debug, Default)]
struct Seen {
    first: Option<Duration>,
    marker: Option<Duration>,
    tail: Vec<u8>,
}

fn keep_tail(tail: &mut Vec<u8>, chunk: &[u8]) {
    tail.extend_from_slice(chunk);
    if tail.len() > TAIL_BYTES {
        tail.drain(..tail.len() - TAIL_BYTES);
    }
}

fn read_stream(mut stream: impl Read, start: Instant, marker: Option<String>) -> Seen {
    let mut seen = Seen::default();
    let mut window: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let chunk = buf.get(..n).unwrap_or_default();
        seen.first.get_or_insert_with(|| start.elapsed());
        if let (Some(m), None) = (&marker, seen.marker) {
            window.extend_from_slice(chunk);
            if window.windows(m.len()).any(|w| w == m.as_bytes()) {
                seen.marker = Some(start.elapsed());
            }
            let keep = m.len().saturating_sub(1);
            if window.len() > keep {
                window.drain(..window.len() - keep);
            }
        }
        keep_tail(&mut seen.tail, chunk);
    }
    seen
}

fn spawn_reader(
    stream: Option<impl Read + Send + 'static>,
    start: Instant,
    marker: Option<String>,
) -> Option<mpsc::Receiver<Seen>> {
    let stream = stream?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(read_stream(stream, start, marker));
    });
    Some(rx)
}

fn collect(rx: Option<mpsc::Receiver<Seen>>) -> Seen {
    rx.and_then(|rx| rx.recv_timeout(READER_GRACE).ok())
        .unwrap_or_default()
}

fn file_tail(path: &PathBuf) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let from = bytes.len().saturating_sub(TAIL_BYTES);
    String::from_utf8_lossy(bytes.get(from..).unwrap_or_default()).into_owned()
}

/// Runs `command` (stdin closed) and times it; kills it after `limit`.
/// `marker`: a text to watch for on stdout.
pub fn run_timed(
    command: &mut Command,
    capture: &Capture,
    marker: Option<&str>,
    limit: Duration,
) -> io::Result<Timed> {
    command.stdin(Stdio::null());
    match capture {
        Capture::Pipes => {
            command.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        Capture::Files { stdout, stderr } => {
            command
                .stdout(File::create(stdout)?)
                .stderr(File::create(stderr)?);
        }
    }
    let start = Instant::now();
    let mut child = command.spawn()?;
    let out = spawn_reader(child.stdout.take(), start, marker.map(str::to_owned));
    let err = spawn_reader(child.stderr.take(), start, None);
    let status = wait_child(&mut child, limit)?;
    let wall = start.elapsed();
    let status = match status {
        Some(s) => Some(s),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            None
        }
    };
    let (out, err) = (collect(out), collect(err));
    let (stdout_tail, stderr_tail) = match capture {
        Capture::Pipes => (
            String::from_utf8_lossy(&out.tail).into_owned(),
            String::from_utf8_lossy(&err.tail).into_owned(),
        ),
        Capture::Files { stdout, stderr } => (file_tail(stdout), file_tail(stderr)),
    };
    // The output was written before the command was reaped; a reader
    // thread scheduled late must not make it look later than that.
    Ok(Timed {
        status,
        wall,
        first_output: out.first.map(|t| t.min(wall)),
        marker: out.marker.map(|t| t.min(wall)),
        stdout_tail,
        stderr_tail,
    })
}

/// A pidfd for `pid` (Linux ≥ 5.3), `None` if the process is gone or the
/// kernel has none.
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Waits until the pidfd is readable (the process exited) or `limit`.
fn poll_pidfd(fd: &OwnedFd, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n > 0 {
            return true;
        }
        if n == 0 || Instant::now() >= deadline {
            return false;
        }
        // EINTR: poll again.
    }
}

/// Waits for `child` for at most `limit`; `None` if it is still running.
pub fn wait_child(child: &mut Child, limit: Duration) -> io::Result<Option<ExitStatus>> {
    if let Some(fd) = pidfd_open(child.id()) {
        poll_pidfd(&fd, limit);
        return child.try_wait();
    }
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Is `pid` alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Waits until `pid` (not necessarily our child) exited, for at most
/// `limit`; true if it did.
pub fn wait_gone(pid: u32, limit: Duration) -> bool {
    if let Some(fd) = pidfd_open(pid) {
        if poll_pidfd(&fd, limit) {
            return true;
        }
        return !alive(pid);
    }
    let deadline = Instant::now() + limit;
    while alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(2));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_marker_and_status_are_seen() {
        let t = run_timed(
            Command::new("sh").args([
                "-c",
                "printf 'boot...\\nvmrun-agent: ready cpus=1\\n'; echo oops >&2; exit 3",
            ]),
            &Capture::Pipes,
            Some("vmrun-agent: ready"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(t.code(), Some(3));
        assert!(t.first_output.is_some() && t.marker.is_some());
        assert!(t.first_output <= t.marker && t.marker.unwrap() <= t.wall);
        assert!(t.stdout_tail.contains("ready cpus=1"));
        assert!(t.failure("sh").contains("oops"), "{}", t.failure("sh"));
    }

    #[test]
    fn a_missing_marker_and_silence_are_none() {
        let t = run_timed(
            &mut Command::new("true"),
            &Capture::Pipes,
            Some("never"),
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(t.success());
        assert_eq!((t.first_output, t.marker), (None, None));
    }

    #[test]
    fn the_hang_guard_kills() {
        let t = run_timed(
            Command::new("sleep").arg("30"),
            &Capture::Pipes,
            None,
            Duration::from_millis(200),
        )
        .unwrap();
        assert!(t.status.is_none());
        assert!(t.failure("sleep").contains("hang guard"));
    }

    #[test]
    fn files_capture_is_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let capture = Capture::Files {
            stdout: dir.path().join("out"),
            stderr: dir.path().join("err"),
        };
        let t = run_timed(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            &capture,
            None,
            Duration::from_secs(30),
        )
        .unwrap();
        assert!(t.success());
        assert_eq!((t.stdout_tail.trim(), t.stderr_tail.trim()), ("out", "err"));
    }

    #[test]
    fn a_process_is_waited_for_until_gone() {
        let mut child = Command::new("sleep").arg("0.2").spawn().unwrap();
        let pid = child.id();
        assert!(alive(pid));
        let waiter = std::thread::spawn(move || wait_gone(pid, Duration::from_secs(30)));
        let _ = child.wait();
        assert!(waiter.join().unwrap());
        assert!(!alive(pid));
    }
}
