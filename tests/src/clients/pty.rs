//! Running a client under a real pty (`podman run -it`, `ctr run --tty`),
//! as a person at a terminal would: the command gets its own session with
//! the pty's slave as controlling terminal and stdio; the test types into
//! the master and reads what the terminal shows.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clients::command::{describe, poll};
use crate::process::wait_until;

/// A command running on a pty.
#[derive(Debug)]
pub struct PtyChild {
    command: String,
    child: Child,
    master: File,
    screen: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
}

/// Opens a pty of `rows` x `cols`; returns (master, slave), both close-on-exec.
fn open_pty(rows: u16, cols: u16) -> std::io::Result<(File, File)> {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two fds into the provided ints; the name
    // buffer is null (not wanted), termios null (defaults) and the winsize
    // pointer refers to a live local.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both fds were just returned by openpty and are owned by
    // nothing else; File takes ownership of each exactly once.
    let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
    for fd in [master.as_raw_fd(), slave.as_raw_fd()] {
        // SAFETY: fcntl on an fd we own, with an integer argument.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok((master, slave))
}

impl PtyChild {
    /// Starts `command` on a new 24x80 pty.
    pub fn spawn(mut command: Command) -> std::io::Result<Self> {
        let (master, slave) = open_pty(24, 80)?;
        command
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: the closure runs in the child between fork and exec and
        // calls only async-signal-safe functions (setsid, ioctl).
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let described = describe(&command);
        let child = command.spawn()?;
        // `command` still holds the slave's copies: drop them so the master
        // reads EOF/EIO once the child's side is closed.
        drop(command);
        let screen = Arc::new(Mutex::new(Vec::new()));
        let mut reading = master.try_clone()?;
        let sink = Arc::clone(&screen);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once every slave fd is closed: the end.
            while let Ok(n @ 1..) = reading.read(&mut buf) {
                if let Ok(mut screen) = sink.lock() {
                    screen.extend_from_slice(&buf[..n]);
                }
            }
        });
        Ok(Self {
            command: described,
            child,
            master,
            screen,
            reader: Some(reader),
        })
    }

    /// Types `text` into the terminal.
    pub fn type_text(&mut self, text: &str) {
        self.master
            .write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("typing into `{}`: {e}", self.command));
    }

    /// Everything the terminal showed so far.
    pub fn screen(&self) -> String {
        let bytes = self.screen.lock().map(|s| s.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until the screen shows `text` (true) or `limit` passed.
    pub fn wait_for(&self, text: &str, limit: Duration) -> bool {
        poll(limit, || self.screen().contains(text).then_some(())).is_some()
    }

    /// Waits for the command to exit (killed at `limit`: `None`); returns
    /// its status and the whole screen.
    pub fn finish(mut self, limit: Duration) -> (Option<ExitStatus>, String) {
        let status = wait_until(&mut self.child, Instant::now() + limit);
        // The slave may stay open in a process the command left behind;
        // give the reader a moment, then take what was read.
        let reader = self.reader.take();
        let _ = poll(Duration::from_secs(5), || {
            reader
                .as_ref()
                .is_some_and(|r| r.is_finished())
                .then_some(())
        });
        (status, self.screen())
    }

    /// The command line, for messages.
    pub fn command(&self) -> &str {
        &self.command
    }
}

impl Drop for PtyChild {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shell_on_the_pty_sees_a_terminal_and_takes_typed_input() {
        let mut sh = PtyChild::spawn({
            let mut c = Command::new("/bin/sh");
            c.env("PS1", "$ ");
            c
        })
        .expect("spawn sh on a pty");
        sh.type_text("tty; test -t 0 && echo is-a-tty; stty size; exit 3\n");
        let (status, screen) = sh.finish(Duration::from_secs(30));
        assert_eq!(status.and_then(|s| s.code()), Some(3), "{screen}");
        assert!(screen.contains("/dev/pts/"), "{screen}");
        assert!(screen.contains("is-a-tty"), "{screen}");
        assert!(screen.contains("24 80"), "{screen}");
    }
}
