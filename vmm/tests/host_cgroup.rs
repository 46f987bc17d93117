//! `HostCgroup` on this machine's real cgroupfs (v1/hybrid here, v2 in
//! the test host): a `sleep` child stands in for the VMM. Needs root and a
//! writable cgroupfs; skips loudly otherwise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use serde_json::json;
use vmrun::runtime::host_cgroup::{remove_cgroup_dirs, HostCgroup, HostCgroupError, VmOverhead};

const MIB: u64 = 1 << 20;
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

fn skipped(test: &str, why: &str) {
    let stars = "*".repeat(80);
    let _ = writeln!(
        std::io::stderr(),
        "\n{stars}\nSKIPPED: {test}: {why}\n{stars}"
    );
}

/// The host's version and where a relative cgroup `name` lands in the
/// memory hierarchy: v1 below the caller's memory cgroup, v2 below the
/// parent of the caller's cgroup (runc's rules).
fn memory_dir_of(name: &str) -> Result<(bool, PathBuf), String> {
    let own = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let path_of = |wanted: &str| {
        own.lines()
            .filter_map(|l| {
                let mut fields = l.splitn(3, ':').skip(1);
                fields.next().zip(fields.next())
            })
            .find(|(controllers, _)| *controllers == wanted)
            .map(|(_, path)| path.trim_start_matches('/').to_owned())
    };
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        let own = PathBuf::from(path_of("").unwrap_or_default());
        let parent = own.parent().map(Path::to_path_buf).unwrap_or_default();
        Ok((true, root.join(parent).join(name)))
    } else if root.join("memory/cgroup.procs").exists() {
        let own = path_of("memory").unwrap_or_default();
        Ok((false, root.join("memory").join(own).join(name)))
    } else {
        Err("no cgroup v2 root and no v1 memory hierarchy".into())
    }
}

/// Whether this test may create cgroups here (root, writable cgroupfs).
fn cgroupfs_writable(test: &str, name: &str) -> Option<(bool, PathBuf)> {
    if !nix::unistd::geteuid().is_root() {
        skipped(test, "not root");
        return None;
    }
    let (v2, dir) = match memory_dir_of(name) {
        Ok(found) => found,
        Err(why) => {
            skipped(test, &why);
            return None;
        }
    };
    let probe = dir.with_file_name(format!("{name}-probe"));
    if let Err(e) = std::fs::create_dir(&probe) {
        skipped(test, &format!("cannot create {}: {e}", probe.display()));
        return None;
    }
    let _ = std::fs::remove_dir(&probe);
    Some((v2, dir))
}

/// Every directory named `name` under the cgroup root (bounded depth).
fn find_named(dir: &Path, name: &str, depth: u32, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if entry.file_name().to_string_lossy() == name {
            found.push(entry.path());
        }
        if depth > 0 {
            find_named(&entry.path(), name, depth - 1, found);
        }
    }
}

fn leftovers(name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    find_named(Path::new(CGROUP_ROOT), name, 6, &mut found);
    found
}

/// A `sleep` standing in for the VMM; killed, and its cgroups removed, on
/// drop (also when an assertion fails).
struct Vmm {
    child: Child,
    dirs: Vec<PathBuf>,
}

impl Vmm {
    fn start() -> Self {
        let child = Command::new("sleep")
            .arg("600")
            .spawn()
            .expect("spawn sleep");
        Self {
            child,
            dirs: Vec::new(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn cgroup_file(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/cgroup", self.pid()))
            .expect("read /proc/pid/cgroup")
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Vmm {
    fn drop(&mut self) {
        self.stop();
        let _ = remove_cgroup_dirs(&self.dirs);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[test]
fn a_process_joins_a_real_cgroup_with_limits_and_leaves_nothing_behind() {
    let test = "a_process_joins_a_real_cgroup_with_limits_and_leaves_nothing_behind";
    let name = format!("vmrun-test-{}", std::process::id());
    let Some((v2, memory_dir)) = cgroupfs_writable(test, &name) else {
        return;
    };
    let mut vmm = Vmm::start();
    let overhead = VmOverhead {
        memory_bytes: 16 * MIB,
        threads: 5,
    };
    let resources = json!({"memory": {"limit": 64 * MIB}, "pids": {"limit": 10}});
    let cgroup = match HostCgroup::join(&name, false, Some(&resources), overhead, vmm.pid()) {
        Ok(c) => c,
        Err(e @ HostCgroupError::ControllerMissing { .. }) => {
            skipped(
                test,
                &format!("this cgroup v2 host does not delegate a controller: {e}"),
            );
            return;
        }
        Err(e) => panic!("join: {e:#?}"),
    };
    vmm.dirs = cgroup.dirs().to_vec();
    assert!(cgroup.dirs().contains(&memory_dir), "{:?}", cgroup.dirs());

    let limit_file = if v2 {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(read(&memory_dir.join(limit_file)), (80 * MIB).to_string());
    let procs = read(&memory_dir.join("cgroup.procs"));
    assert!(
        procs.lines().any(|p| p == vmm.pid().to_string()),
        "pid {} not in {procs:?}",
        vmm.pid()
    );
    let membership = vmm.cgroup_file();
    assert!(membership.contains(&name), "{membership}");
    let pids_dir = if v2 {
        memory_dir.clone()
    } else {
        cgroup
            .dirs()
            .iter()
            .find(|d| d.starts_with(Path::new(CGROUP_ROOT).join("pids")) && d.ends_with(&name))
            .expect("a pids leaf")
            .clone()
    };
    assert_eq!(read(&pids_dir.join("pids.max")), "15");

    cgroup
        .update(&json!({"memory": {"limit": 128 * MIB}}), overhead)
        .unwrap();
    assert_eq!(read(&memory_dir.join(limit_file)), (144 * MIB).to_string());
    let reopened = HostCgroup::reopen(cgroup.dirs()).unwrap();
    reopened
        .update(&json!({"memory": {"limit": 96 * MIB}}), overhead)
        .unwrap();
    assert_eq!(read(&memory_dir.join(limit_file)), (112 * MIB).to_string());

    vmm.stop();
    remove_cgroup_dirs(cgroup.dirs()).unwrap();
    for dir in cgroup.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert_eq!(leftovers(&name), Vec::<PathBuf>::new());
}

#[test]
fn a_failed_join_leaves_the_process_and_the_tree_as_they_were() {
    let test = "a_failed_join_leaves_the_process_and_the_tree_as_they_were";
    let name = format!("vmrun-test-bad-{}", std::process::id());
    if cgroupfs_writable(test, &name).is_none() {
        return;
    }
    let vmm = Vmm::start();
    let before = vmm.cgroup_file();
    let resources = json!({"memory": {"limit": 64 * MIB}, "cpu": {"cpus": "4095"}});
    let err = HostCgroup::join(
        &name,
        false,
        Some(&resources),
        VmOverhead::default(),
        vmm.pid(),
    )
    .expect_err("cpu 4095 does not exist");
    let text = format!("{err}");
    assert!(text.contains("linux.resources.cpu.cpus"), "{text}");
    assert_eq!(
        vmm.cgroup_file(),
        before,
        "the process must stay where it was"
    );
    assert_eq!(leftovers(&name), Vec::<PathBuf>::new());
}
