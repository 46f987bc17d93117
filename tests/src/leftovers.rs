//! What a container can leave on the host once it is deleted: processes,
//! mounts, taps (and their ingress qdiscs) in its network namespace, host
//! cgroups and files under the state root. Fault tests end by asserting
//! that none is left; while the container lives, the same scan finds it.

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where one container's traces would be.
#[derive(Debug, Clone, Copy)]
pub struct Traces<'a> {
    /// The container id.
    pub id: &'a str,
    /// Its bundle directory.
    pub bundle: &'a Path,
    /// The runtime's `--root`.
    pub root: &'a Path,
    /// The network namespace the container joined (`linux.namespaces`
    /// path), if any: its taps live there.
    pub netns: Option<&'a Path>,
}

impl Traces<'_> {
    /// The container's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(self.id)
    }

    /// Every trace found, one line each (empty: nothing is left).
    pub fn found(&self) -> Vec<String> {
        let state_dir = self.state_dir();
        let needles = [self.id, path_str(self.bundle), path_str(&state_dir)];
        let mut found = Vec::new();
        found.extend(
            processes_mentioning(&needles)
                .into_iter()
                .map(|p| format!("process {p}")),
        );
        let paths = [self.bundle, state_dir.as_path()];
        found.extend(
            processes_holding(&paths)
                .into_iter()
                .map(|p| format!("process {p}")),
        );
        let mount_needles = [path_str(self.bundle), path_str(&state_dir)];
        found.extend(
            mounts_mentioning(&mount_needles)
                .into_iter()
                .map(|m| format!("mount {m}")),
        );
        if let Some(netns) = self.netns {
            found.extend(taps_in(netns).into_iter().map(|t| format!("tap {t}")));
        }
        found.extend(
            cgroups_named_after(self.id)
                .into_iter()
                .map(|c| format!("cgroup {}", c.display())),
        );
        found.extend(
            state_entries(self.root, self.id)
                .into_iter()
                .map(|e| format!("state {}", e.display())),
        );
        found
    }

    /// Panics listing every trace found.
    pub fn assert_nothing_left(&self) {
        let found = self.found();
        assert!(
            found.is_empty(),
            "container {} left traces behind:\n{}",
            self.id,
            found.join("\n")
        );
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Processes (other than this one) whose command line holds one of
/// `needles`, as `PID: CMDLINE`. Zombies have no command line and are not
/// seen here.
pub fn processes_mentioning(needles: &[&str]) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec!["(cannot read /proc)".into()];
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if needles.iter().any(|n| cmdline.contains(n)) {
            found.push(format!("{pid}: {}", cmdline.trim_end()));
        }
    }
    found
}

/// Processes (other than this one) whose working directory, root or an
/// open descriptor is at or below one of `paths`, as `PID holds LINK ->
/// TARGET` (the first such link of each).
pub fn processes_holding(paths: &[&Path]) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec!["(cannot read /proc)".into()];
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let fds = std::fs::read_dir(dir.join("fd"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|fd| fd.path());
        let links = [dir.join("cwd"), dir.join("root")].into_iter().chain(fds);
        let held = links.filter_map(|link| Some((std::fs::read_link(&link).ok()?, link)));
        if let Some((target, link)) = held
            .into_iter()
            .find(|(target, _)| paths.iter().any(|p| target.starts_with(p)))
        {
            found.push(format!(
                "{pid} holds {} -> {}",
                link.display(),
                target.display()
            ));
        }
    }
    found
}

/// Lines of this process's mountinfo that hold one of `needles`.
pub fn mounts_mentioning(needles: &[&str]) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| needles.iter().any(|n| l.contains(n)))
        .map(str::to_string)
        .collect()
}

/// Taps (`vmtap*`) and ingress qdiscs in the network namespace `netns`
/// (a namespace file), from `ip -j link` and `tc -j qdisc` run there.
pub fn taps_in(netns: &Path) -> Vec<String> {
    let in_netns = |args: &[&str]| -> Result<serde_json::Value, String> {
        let out = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args(args)
            .output()
            .map_err(|e| format!("cannot run nsenter: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`{}` in {} failed: {}",
                args.join(" "),
                netns.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        serde_json::from_slice(&out.stdout).map_err(|e| format!("`{}`: {e}", args.join(" ")))
    };
    let mut found = Vec::new();
    match in_netns(&["ip", "-j", "link", "show"]) {
        Ok(links) => found.extend(
            links
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["ifname"].as_str())
                .filter(|name| name.starts_with("vmtap"))
                .map(str::to_string),
        ),
        Err(e) => found.push(e),
    }
    match in_netns(&["tc", "-j", "qdisc", "show"]) {
        Ok(qdiscs) => found.extend(
            qdiscs
                .as_array()
                .into_iter()
                .flatten()
                .filter(|q| q["kind"] == "ingress")
                .map(|q| format!("ingress qdisc on {}", q["dev"].as_str().unwrap_or("?"))),
        ),
        Err(e) => found.push(e),
    }
    found
}

/// Directories under `/sys/fs/cgroup` (every v1 hierarchy and the unified
/// one) whose name holds `id`.
pub fn cgroups_named_after(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 12, &mut |path, file_type| {
        if file_type.is_dir()
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().contains(id))
        {
            found.push(path.to_path_buf());
        }
    });
    found
}

/// Entries under `root` that are sockets or whose path names `id`.
pub fn state_entries(root: &Path, id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk(root, 12, &mut |path, file_type| {
        let relative = path.strip_prefix(root).unwrap_or(path);
        if file_type.is_socket() || relative.to_string_lossy().contains(id) {
            found.push(path.to_path_buf());
        }
    });
    found
}

/// Calls `visit` for every entry under `dir` (symlinks not followed),
/// `depth` levels deep at most.
fn walk(dir: &Path, depth: usize, visit: &mut dyn FnMut(&Path, std::fs::FileType)) {
    if depth == 0 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        visit(&path, file_type);
        if file_type.is_dir() {
            walk(&path, depth - 1, visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_state_entries_and_sockets_until_they_are_removed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("root");
        let id = format!("vmrun-leftovers-{}", std::process::id());
        std::fs::create_dir_all(root.join(&id)).expect("state dir");
        std::fs::write(root.join(&id).join("state.json"), "{}").expect("state file");
        let listener =
            std::os::unix::net::UnixListener::bind(root.join("other.sock")).expect("bind");
        let traces = Traces {
            id: &id,
            bundle: dir.path(),
            root: &root,
            netns: None,
        };
        let mut found = traces.found();
        found.sort();
        let mut want = [
            format!("state {}", root.join(&id).display()),
            format!("state {}", root.join(&id).join("state.json").display()),
            format!("state {}", root.join("other.sock").display()),
        ];
        want.sort();
        assert_eq!(found, want);
        drop(listener);
        std::fs::remove_dir_all(&root).expect("clean");
        std::fs::create_dir_all(&root).expect("root");
        assert_eq!(traces.found(), Vec::<String>::new());
    }

    #[test]
    fn sees_a_process_by_its_command_line() {
        let marker = format!("vmrun-leftovers-marker-{}", std::process::id());
        // The shell waits in its builtin `read` (no child process).
        let mut child = Command::new("sh")
            .args(["-c", "read line", &marker])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        // Poll: right after spawn the new program may not have set up
        // its arguments yet.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut seen = processes_mentioning(&[&marker]);
        while seen.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
            seen = processes_mentioning(&[&marker]);
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].starts_with(&format!("{}: ", child.id())),
            "{seen:?}"
        );
        assert_eq!(processes_mentioning(&[&marker]), Vec::<String>::new());
    }

    #[test]
    fn sees_a_process_holding_a_file_below_a_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held = dir.path().join("held");
        // The shell waits in its builtin `read`, its stdout on `held`.
        let mut child = Command::new("sh")
            .args(["-c", "read line"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::fs::File::create(&held).expect("create"))
            .spawn()
            .expect("spawn");
        let seen = processes_holding(&[dir.path()]);
        let _ = child.kill();
        let _ = child.wait();
        let want = format!(
            "{} holds /proc/{}/fd/1 -> {}",
            child.id(),
            child.id(),
            held.display()
        );
        assert_eq!(seen, [want]);
        assert_eq!(processes_holding(&[dir.path()]), Vec::<String>::new());
    }
}
