//! Removing what a private client daemon (the bench's containerd) leaves
//! behind when it is stopped: processes started for it, mounts below its
//! directory, the cgroups named after its namespace. Every function is
//! narrowed to a path or name unique to one bench (its work directory, its
//! pid in the name), so nothing of the machine's own is touched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::bench::process::{alive, run_timed, wait_gone, Capture};

/// Pids of the live processes (other than this one) whose command line
/// holds `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|raw| {
                String::from_utf8_lossy(&raw)
                    .replace('\0', " ")
                    .contains(needle)
            })
        })
        .collect()
}

/// SIGKILLs the processes whose command line holds `needle` and waits a
/// little for each to be gone; returns their pids.
pub fn kill_processes_mentioning(needle: &str) -> Vec<u32> {
    let pids = processes_mentioning(needle);
    for pid in &pids {
        if let Ok(pid) = i32::try_from(*pid) {
            // SAFETY: kill(2) with a plain pid and signal number touches no
            // memory of ours.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    for pid in &pids {
        // A hang guard: a killed process is reaped by its parent or init.
        let _ = wait_gone(*pid, Duration::from_secs(5));
    }
    pids
}

/// Deletes (`--force`) every container the runc-compatible `bin` still
/// lists under `root` or a directory in it (shims add the namespace).
pub fn delete_runtime_state(bin: &Path, root: &Path, limit: Duration) {
    let mut roots = vec![root.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(root) {
        roots.extend(entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for root in roots {
        let mut list = Command::new(bin);
        list.arg("--root").arg(&root).args(["list", "-q"]);
        let Ok(t) = run_timed(&mut list, &Capture::Pipes, None, limit) else {
            continue;
        };
        for id in t.stdout_tail.split_whitespace() {
            let mut delete = Command::new(bin);
            delete
                .arg("--root")
                .arg(&root)
                .args(["delete", "--force", id]);
            let _ = run_timed(&mut delete, &Capture::Pipes, None, limit);
        }
    }
}

/// mountinfo's octal escapes (`\040` for a space, ...) undone.
pub fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        let code = digits
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match code {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points and filesystem types of a mountinfo text, in order.
pub fn parse_mountinfo(text: &str) -> Vec<(PathBuf, String)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let point = fields.get(4)?;
            let sep = fields.iter().position(|f| *f == "-")?;
            let fstype = fields.get(sep + 1)?;
            Some((PathBuf::from(unescape(point)), (*fstype).to_string()))
        })
        .collect()
}

fn mounts() -> Vec<(PathBuf, String)> {
    parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The mount points strictly below `dir`, deepest first.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let mut below: Vec<PathBuf> = mounts()
        .into_iter()
        .map(|(point, _)| point)
        .filter(|point| point.starts_with(dir) && point != dir)
        .collect();
    below.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    below.dedup();
    below
}

/// Detaches (`MNT_DETACH`) every mount below `dir`, deepest first; returns
/// those that could not be.
pub fn unmount_below(dir: &Path) -> Vec<PathBuf> {
    let mut stuck = Vec::new();
    // A mount may be stacked: unmount until none is left or none goes.
    for _ in 0..4 {
        let below = mounts_below(dir);
        if below.is_empty() {
            break;
        }
        stuck = below
            .into_iter()
            .filter(|point| nix::mount::umount2(point, nix::mount::MntFlags::MNT_DETACH).is_err())
            .collect();
    }
    stuck
}

/// Removes the cgroup `name` (relative to each hierarchy's root, such as
/// `vmrb-1234`) and everything below it, bottom up, in every mounted cgroup
/// hierarchy; returns the directories that stayed (busy).
pub fn remove_cgroup_tree(name: &str) -> Vec<PathBuf> {
    let name = name.trim_matches('/');
    let mut stuck = Vec::new();
    if name.is_empty() || name.split('/').any(|c| c == ".." || c == ".") {
        return stuck;
    }
    let mut tops: Vec<PathBuf> = mounts()
        .into_iter()
        .filter(|(_, fstype)| fstype == "cgroup" || fstype == "cgroup2")
        .map(|(point, _)| point.join(name))
        .collect();
    tops.dedup();
    for top in tops.into_iter().filter(|t| t.is_dir()) {
        remove_bottom_up(&top, &mut stuck);
    }
    stuck
}

fn remove_bottom_up(dir: &Path, stuck: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_bottom_up(&entry.path(), stuck);
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
    fn mountinfo_lines_give_points_and_types() {
        let text = "36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /run/x/state/ns shared:2 - nsfs nsfs rw\n";
        assert_eq!(
            parse_mountinfo(text),
            [
                (PathBuf::from("/mnt/a b"), "ext3".to_string()),
                (PathBuf::from("/run/x/state/ns"), "nsfs".to_string())
            ]
        );
        assert_eq!(unescape(r"/back\\slash\0"), r"/back\\slash\0");
    }

    #[test]
    fn nothing_is_mounted_below_a_fresh_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(mounts_below(dir.path()).is_empty());
        assert!(unmount_below(dir.path()).is_empty());
        assert!(!mounts_below(Path::new("/")).contains(&PathBuf::from("/")));
    }

    #[test]
    fn cgroup_names_that_climb_are_refused() {
        assert!(remove_cgroup_tree("../x").is_empty());
        assert!(remove_cgroup_tree("/").is_empty());
        let name = format!("vmrb-scrub-test-{}-absent", std::process::id());
        assert!(remove_cgroup_tree(&name).is_empty());
    }

    #[test]
    fn a_process_is_found_by_a_unique_word_and_killed() {
        let word = format!("vmrb-scrub-test-{}", std::process::id());
        // `read` is a builtin: the shell never forks a child carrying the
        // word; its $0 is the word.
        let mut child = std::process::Command::new("/bin/sh")
            .args(["-c", "read line", &word])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut found = Vec::new();
        for _ in 0..100 {
            found = processes_mentioning(&word);
            if !found.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let killed = kill_processes_mentioning(&word);
        let status = child.wait().unwrap();
        assert_eq!((found, killed), (vec![pid], vec![pid]));
        assert!(!status.success());
    }
}
