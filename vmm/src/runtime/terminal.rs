//! `process.terminal: true` on the host side, as `runc run` does it: the
//! container gets a pty in the guest (made by the agent) whose master is
//! relayed over the ordinary stdio streams; when vmrun's own stdin is a
//! terminal, that terminal is put in raw mode for the run (and always
//! restored), its size becomes the container terminal's size and SIGWINCH
//! is forwarded as a resize. Without a host terminal everything still
//! works: the bytes are relayed as they are (as with `runc run` under a
//! pipe).

use std::io;
use std::os::fd::RawFd;
use std::sync::Mutex;

use serde_json::Value;

/// The descriptor whose terminal vmrun uses (runc uses its stdin too).
pub const HOST_TTY_FD: RawFd = libc::STDIN_FILENO;

/// Does the spec ask for a terminal (`process.terminal: true`)?
pub fn spec_wants_terminal(spec: &Value) -> bool {
    spec.pointer("/process/terminal")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Is `fd` a terminal?
pub fn is_terminal(fd: RawFd) -> bool {
    // SAFETY: isatty only inspects the descriptor; any value is allowed.
    unsafe { libc::isatty(fd) == 1 }
}

/// The window size of the terminal on `fd` as `(rows, cols)`, or `None`
/// when `fd` is not a terminal.
pub fn window_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `struct winsize` through the pointer,
    // which points at a live value we own; a bad fd only fails the call.
    let rc = unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut size) };
    (rc == 0).then_some((size.ws_row, size.ws_col))
}

/// Sets `process.consoleSize` in `spec` to `(rows, cols)` (what runc's
/// caller gets: the host terminal's size wins over the bundle's).
pub fn set_console_size(spec: &mut Value, (rows, cols): (u16, u16)) {
    if let Some(process) = spec.get_mut("process").and_then(Value::as_object_mut) {
        process.insert(
            "consoleSize".into(),
            serde_json::json!({ "height": rows, "width": cols }),
        );
    }
}

/// The terminal settings to put back, shared with exit paths that never
/// unwind to [`RawMode`]'s drop (see [`restore_host_terminal`]).
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);

fn set_attributes(fd: RawFd, termios: &libc::termios) -> io::Result<()> {
    // SAFETY: tcsetattr reads one termios from the pointer, which points
    // at a live, initialised value.
    if unsafe { libc::tcsetattr(fd, libc::TCSANOW, termios) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Puts back the terminal settings saved by [`RawMode::enter`], if any are
/// still outstanding. Safe to call more than once and from any thread;
/// for paths that end the process without unwinding (`process::exit`).
pub fn restore_host_terminal() {
    let saved = SAVED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    if let Some((fd, termios)) = saved {
        if let Err(e) = set_attributes(fd, &termios) {
            tracing::warn!("cannot restore the terminal settings: {e}");
        }
    }
}

/// The host terminal in raw mode; dropping it restores the saved settings.
#[derive(Debug)]
pub struct RawMode {
    _private: (),
}

impl RawMode {
    /// Puts the terminal on `fd` in raw mode (no echo, no line editing, no
    /// signals from keys: ^C reaches the container's terminal, which makes
    /// the SIGINT there). `Ok(None)` when `fd` is not a terminal.
    pub fn enter(fd: RawFd) -> io::Result<Option<Self>> {
        if !is_terminal(fd) {
            return Ok(None);
        }
        // SAFETY: termios is plain data; tcgetattr fills it in completely.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr writes one termios through the pointer, which
        // points at a live value we own.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut raw = saved;
        // SAFETY: cfmakeraw only edits the termios it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        *SAVED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((fd, saved));
        if let Err(e) = set_attributes(fd, &raw) {
            SAVED
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take();
            return Err(e);
        }
        Ok(Some(Self { _private: () }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_host_terminal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn openpty() -> (std::fs::File, std::fs::File) {
        let (mut master, mut slave) = (-1, -1);
        // SAFETY: openpty writes two fds; null name/termios/winsize are allowed.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", io::Error::last_os_error());
        use std::os::fd::FromRawFd;
        // SAFETY: openpty just returned these fds; nothing else owns them.
        unsafe {
            (
                std::fs::File::from_raw_fd(master),
                std::fs::File::from_raw_fd(slave),
            )
        }
    }

    fn lflag(fd: RawFd) -> libc::tcflag_t {
        // SAFETY: as in RawMode::enter.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as in RawMode::enter.
        assert_eq!(unsafe { libc::tcgetattr(fd, &mut t) }, 0);
        t.c_lflag
    }

    #[test]
    fn raw_mode_is_entered_and_always_restored() {
        let (_master, slave) = openpty();
        let fd = slave.as_raw_fd();
        let before = lflag(fd);
        assert_ne!(before & libc::ECHO, 0, "a fresh pty echoes");
        {
            let _raw = RawMode::enter(fd).unwrap().expect("a pty is a terminal");
            assert_eq!(lflag(fd) & (libc::ECHO | libc::ICANON | libc::ISIG), 0);
        }
        assert_eq!(lflag(fd), before);
        // The exit-path restore works too, and only once.
        let raw = RawMode::enter(fd).unwrap().expect("terminal");
        restore_host_terminal();
        assert_eq!(lflag(fd), before);
        drop(raw);
        assert_eq!(lflag(fd), before);
    }

    #[test]
    fn pipes_are_not_terminals() {
        let (r, _w) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!is_terminal(r.as_raw_fd()));
        assert!(window_size(r.as_raw_fd()).is_none());
        assert!(RawMode::enter(r.as_raw_fd()).unwrap().is_none());
    }

    #[test]
    fn window_size_comes_from_the_terminal() {
        let (master, slave) = openpty();
        let size = libc::winsize {
            ws_row: 31,
            ws_col: 97,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads one winsize from a live value.
        let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
        assert_eq!(rc, 0);
        assert_eq!(window_size(slave.as_raw_fd()), Some((31, 97)));
    }

    #[test]
    fn terminal_flag_and_console_size_in_the_spec() {
        let mut spec = serde_json::json!({"process": {"terminal": true, "args": ["sh"]}});
        assert!(spec_wants_terminal(&spec));
        set_console_size(&mut spec, (24, 80));
        assert_eq!(spec["process"]["consoleSize"]["height"], 24);
        assert_eq!(spec["process"]["consoleSize"]["width"], 80);
        assert!(!spec_wants_terminal(&serde_json::json!({"process": {}})));
        assert!(!spec_wants_terminal(
            &serde_json::json!({"process": {"terminal": "yes"}})
        ));
    }
}
