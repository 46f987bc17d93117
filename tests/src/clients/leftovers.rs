//! Removing what a client leaves behind when a test stops half-way: its
//! processes, mounts and cgroups. Every function here is narrowed to
//! names and paths unique to one test (its temp directory, its cgroup
//! parent), so nothing of the machine's own is touched.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::clients::command::poll;

/// SIGKILLs every process (other than this one) whose command line holds
/// `needle`; returns their pids.
pub fn kill_processes_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut killed = Vec::new();
    for pid in processes_mentioning(needle) {
        if pid != me {
            // SAFETY: kill(2) with a plain pid and signal number has no
            // memory-safety requirements.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed.push(pid);
        }
    }
    // Give the killed processes a moment to be gone (reaped by their
    // parents or init); a hang guard, nothing asserted.
    let _ = poll(Duration::from_secs(10), || {
        killed.iter().all(|pid| !is_alive(*pid)).then_some(())
    });
    killed
}

/// True if `pid` exists and is not a zombie.
fn is_alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        // `pid (comm) S ...`: the state follows the last `)`.
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

/// Pids of the processes whose command line holds `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                String::from_utf8_lossy(&raw)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// The mount points (and filesystem types) in this process's mount
/// namespace, from /proc/self/mountinfo, in mount order.
pub fn mounts() -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            Some((PathBuf::from(unescape(point)), fstype.to_string()))
        })
        .collect()
}

/// mountinfo's octal escapes (`\040` for a space, ...) undone.
fn unescape(field: &str) -> String {
    let mut out = String::new();
    let mut chars = field.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if let Ok(byte) = u8::from_str_radix(&digits, 8) {
                out.push(byte as char);
                chars.nth(2);
                continue;
            }
        }
        out.push(c);
    }
    out
}

/// Lazily unmounts every mount below `dir` (not `dir` itself), deepest
/// first; returns how many were found.
pub fn unmount_below(dir: &Path) -> usize {
    let mut below: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|(point, _)| point)
        .filter(|point| point.starts_with(dir) && point != dir)
        .collect();
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    below.dedup();
    for point in &below {
        let _ = std::process::Command::new("umount")
            .arg("--lazy")
            .arg(point)
            .status();
    }
    below.len()
}

/// Removes the cgroup `name` (a path relative to each hierarchy's root,
/// e.g. `vmrt-podman-1234`) and every cgroup below it, in every mounted
/// cgroup hierarchy (v1 controllers and v2). Busy cgroups stay (rmdir
/// fails); returns the directories that could not be removed.
pub fn remove_cgroup_tree(name: &str) -> Vec<PathBuf> {
    let name = name.trim_start_matches('/');
    assert!(
        !name.is_empty() && !name.contains(".."),
        "cgroup name {name:?}"
    );
    let mut stuck = Vec::new();
    for (point, fstype) in mounts() {
        if fstype == "cgroup" || fstype == "cgroup2" {
            let top = point.join(name);
            if top.is_dir() {
                remove_tree_bottom_up(&top, &mut stuck);
            }
        }
    }
    stuck
}

fn remove_tree_bottom_up(dir: &Path, stuck: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree_bottom_up(&entry.path(), stuck);
            }
        }
    }
    if std::fs::remove_dir(dir).is_err() {
        stuck.push(dir.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(r"/a\040b/c"), "/a b/c");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/back\\slash"), r"/back\\slash");
    }

    #[test]
    fn the_root_mount_is_listed() {
        assert!(mounts().iter().any(|(p, _)| p == Path::new("/")));
    }

    #[test]
    fn a_process_is_found_by_a_unique_word_and_killed() {
        let word = format!("vmrun-leftover-test-{}", std::process::id());
        // The shell stays and never forks (`read` is a builtin: a forked
        // child would carry the word until it execs): its $0 is the word.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "read line", &word])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let pid = child.id() as i32;
        let found = poll(Duration::from_secs(10), || {
            let pids = processes_mentioning(&word);
            (!pids.is_empty()).then_some(pids)
        });
        let killed = kill_processes_mentioning(&word);
        let _ = child.kill();
        let status = child.wait().expect("wait");
        assert_eq!(found, Some(vec![pid]), "found by {word}");
        assert_eq!(killed, [pid]);
        assert!(!status.success());
    }
}
