//! Is the process a state file names still the same, live process? As runc
//! does it: the pid plus the process's start time (field 22 of
//! `/proc/PID/stat`, clock ticks since boot), so a recycled pid is not
//! mistaken for the container's VMM; a zombie counts as dead.

use std::path::Path;

/// A process identity: pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessIdentity {
    /// The pid.
    pub pid: i32,
    /// Its start time in clock ticks since boot.
    pub start_time: u64,
}

/// What `/proc/PID/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StatFields {
    state: char,
    start_time: u64,
}

/// Parses `/proc/PID/stat`: the command is in parentheses and may itself
/// contain spaces and parentheses, so fields are counted after the last `)`.
fn parse_stat(text: &str) -> Option<StatFields> {
    let after = text.get(text.rfind(')')? + 1..)?;
    let mut fields = after.split_whitespace();
    // Field 3 (state) is the first after the command; field 22 (starttime)
    // is 19 further on.
    let state = fields.next()?.chars().next()?;
    let start_time = fields.nth(18)?.parse().ok()?;
    Some(StatFields { state, start_time })
}

fn read_stat(proc_root: &Path, pid: i32) -> Option<StatFields> {
    if pid <= 0 {
        return None;
    }
    let text = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_stat(&text)
}

impl ProcessIdentity {
    /// The identity of the live process `pid` now (None if there is none).
    pub fn of(pid: i32) -> Option<Self> {
        Self::of_in(Path::new("/proc"), pid)
    }

    fn of_in(proc_root: &Path, pid: i32) -> Option<Self> {
        let stat = read_stat(proc_root, pid)?;
        Some(Self {
            pid,
            start_time: stat.start_time,
        })
    }

    /// The identity of the calling process.
    pub fn current() -> Option<Self> {
        Self::of(i32::try_from(std::process::id()).ok()?)
    }

    /// Whether this very process still runs (same pid, same start time,
    /// not a zombie).
    pub fn is_alive(&self) -> bool {
        self.is_alive_in(Path::new("/proc"))
    }

    fn is_alive_in(&self, proc_root: &Path) -> bool {
        match read_stat(proc_root, self.pid) {
            Some(stat) => stat.start_time == self.start_time && !matches!(stat.state, 'Z' | 'X'),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat_line(comm: &str, state: char, start: u64) -> String {
        let mut fields = vec![state.to_string()];
        // Fields 4..=21, then 22 = starttime, then a few more.
        fields.extend((4..=21).map(|n| n.to_string()));
        fields.push(start.to_string());
        fields.extend(["23".into(), "24".into()]);
        format!("42 ({comm}) {}", fields.join(" "))
    }

    #[test]
    fn start_time_is_field_22_even_with_odd_command_names() {
        for comm in ["vmrun", "a b", "x) (y", ") 1 2 3"] {
            let parsed = parse_stat(&stat_line(comm, 'S', 987_654)).unwrap();
            assert_eq!(parsed.start_time, 987_654, "{comm}");
            assert_eq!(parsed.state, 'S');
        }
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1 2"), None);
    }

    #[test]
    fn a_recycled_pid_or_a_zombie_is_not_alive() {
        let proc_root = tempfile::tempdir().unwrap();
        let dir = proc_root.path().join("42");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("stat"), stat_line("vmrun", 'S', 100)).unwrap();
        let me = ProcessIdentity::of_in(proc_root.path(), 42).unwrap();
        assert!(me.is_alive_in(proc_root.path()));
        // Same pid, another start time: another process.
        std::fs::write(dir.join("stat"), stat_line("vmrun", 'S', 101)).unwrap();
        assert!(!me.is_alive_in(proc_root.path()));
        // Same process, now a zombie waiting for its parent.
        std::fs::write(dir.join("stat"), stat_line("vmrun", 'Z', 100)).unwrap();
        assert!(!me.is_alive_in(proc_root.path()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!me.is_alive_in(proc_root.path()));
        assert_eq!(ProcessIdentity::of_in(proc_root.path(), 0), None);
    }

    #[test]
    fn this_process_is_alive() {
        let me = ProcessIdentity::current().unwrap();
        assert!(me.is_alive());
        assert_eq!(ProcessIdentity::of(me.pid), Some(me));
    }
}
