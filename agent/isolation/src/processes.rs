//! What `ps` shows of a container's processes, read from `/proc`.

use std::io::Read;
use std::path::Path;

/// Longest command line reported, in bytes (longer ones are cut): keeps a
/// full process list well inside one protocol frame.
pub const MAX_CMD_LEN: usize = 256;

/// One process of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its pid (in the caller's pid namespace).
    pub pid: i32,
    /// Its parent's pid.
    pub ppid: i32,
    /// Its real user id.
    pub uid: u32,
    /// Its command line, arguments joined by spaces (control characters
    /// shown as `?`, at most [`MAX_CMD_LEN`] bytes), or its name when the
    /// command line is empty (a zombie).
    pub cmd: String,
}

/// Describes `pids`: `init` first (when it is among them), then the others
/// by pid; at most `max` entries. Processes that end meanwhile are left
/// out.
pub fn describe_all(pids: &[i32], init: i32, max: usize) -> Vec<ProcessInfo> {
    let mut sorted: Vec<i32> = pids.to_vec();
    sorted.sort_unstable_by_key(|&pid| (pid != init, pid));
    sorted.dedup();
    sorted
        .into_iter()
        .filter_map(|pid| describe(Path::new("/proc"), pid))
        .take(max)
        .collect()
}

/// Describes one process from `<proc>/<pid>`; `None` if it is gone.
pub fn describe(proc: &Path, pid: i32) -> Option<ProcessInfo> {
    let dir = proc.join(pid.to_string());
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    let (name, ppid) = parse_stat(&stat)?;
    let status = std::fs::read_to_string(dir.join("status")).ok()?;
    let uid = parse_real_uid(&status)?;
    let mut cmdline = Vec::new();
    let file = std::fs::File::open(dir.join("cmdline")).ok()?;
    file.take(MAX_CMD_LEN as u64 + 1)
        .read_to_end(&mut cmdline)
        .ok()?;
    let cmd = command_line(&cmdline).unwrap_or(name);
    Some(ProcessInfo {
        pid,
        ppid,
        uid,
        cmd,
    })
}

/// `(name, ppid)` from `/proc/PID/stat`: `pid (name) state ppid ...`; the
/// name may itself contain spaces and parentheses.
fn parse_stat(stat: &str) -> Option<(String, i32)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?;
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let _state = rest.next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((printable(name.as_bytes()), ppid))
}

/// The real uid from `/proc/PID/status` (`Uid: real effective saved fs`).
fn parse_real_uid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().next())
        .and_then(|uid| uid.parse().ok())
}

/// NUL-separated arguments joined by spaces, cut at [`MAX_CMD_LEN`];
/// `None` when empty.
fn command_line(raw: &[u8]) -> Option<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return None;
    }
    let joined: Vec<u8> = raw
        .iter()
        .take(MAX_CMD_LEN)
        .map(|&b| if b == 0 { b' ' } else { b })
        .collect();
    Some(printable(&joined))
}

/// Lossy UTF-8 with control characters replaced by `?`.
fn printable(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_with_spaces_and_parens() {
        assert_eq!(
            parse_stat("42 (my (odd) name) S 7 42 42 0 -1"),
            Some(("my (odd) name".into(), 7))
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn real_uid_is_the_first_uid() {
        let status = "Name:\tsh\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(parse_real_uid(status), Some(1000));
        assert_eq!(parse_real_uid("Name:\tsh\n"), None);
    }

    #[test]
    fn command_lines_are_joined_cut_and_printable() {
        assert_eq!(
            command_line(b"sleep\x0010\x00").as_deref(),
            Some("sleep 10")
        );
        assert_eq!(command_line(b""), None);
        assert_eq!(command_line(b"a\x07b\x00").as_deref(), Some("a?b"));
        let long = vec![b'x'; MAX_CMD_LEN * 2];
        assert_eq!(command_line(&long).unwrap().len(), MAX_CMD_LEN);
    }

    #[test]
    fn this_process_is_described_and_listed_first_as_init() {
        let me = std::process::id() as i32;
        let info = describe(Path::new("/proc"), me).unwrap();
        assert_eq!(info.pid, me);
        assert_eq!(info.ppid, nix::unistd::getppid().as_raw());
        assert_eq!(info.uid, nix::unistd::getuid().as_raw());
        assert!(!info.cmd.is_empty());
        let list = describe_all(&[1, me, i32::MAX], me, 10);
        assert_eq!(list.first().map(|p| p.pid), Some(me));
        assert!(
            list.iter().all(|p| p.pid != i32::MAX),
            "a pid that does not exist"
        );
        assert_eq!(describe_all(&[1, me], me, 1).len(), 1);
    }
}
