//! [`HostCgroup`] over fake cgroup trees in a tempdir: plain directories
//! and files, plus hooks that do what the kernel does on mkdir (populate
//! the control files) and before rmdir (drop them).

use std::fs;

use serde_json::json;

use super::*;

const MIB: u64 = 1 << 20;
const PID: u32 = 4242;
const UNLIMITED_V1: &str = "9223372036854771712";

fn overhead() -> VmOverhead {
    VmOverhead {
        memory_bytes: 16 * MIB,
        threads: 5,
    }
}

/// The kernel on mkdir: the new cgroup gets its parent's control files;
/// cgroup.procs, cpuset.{cpus,mems} and cgroup.subtree_control start
/// empty, cgroup.controllers is what the parent enabled.
fn fake_mkdir(dir: &Path) -> std::io::Result<()> {
    let parent = dir.parent().expect("a parent");
    for entry in fs::read_dir(parent)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let content = match name.as_str() {
            "cgroup.procs" | "cpuset.cpus" | "cpuset.mems" | "cgroup.subtree_control" => {
                String::new()
            }
            "cgroup.controllers" => fs::read_to_string(parent.join("cgroup.subtree_control"))?
                .split_whitespace()
                .map(|c| c.trim_start_matches('+'))
                .collect::<Vec<_>>()
                .join(" "),
            _ => fs::read_to_string(entry.path())?,
        };
        fs::write(dir.join(&name), content)?;
    }
    Ok(())
}

/// The kernel on rmdir: control files vanish with the directory.
fn fake_rmdir(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_file()) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
}

struct Fake {
    _tmp: tempfile::TempDir,
    mounts: Mounts,
}

impl Fake {
    fn root(&self) -> &Path {
        &self.mounts.cgroup_root
    }

    fn read(&self, rel: &str) -> String {
        let path = self.root().join(rel);
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn join(
        &self,
        path: &str,
        systemd: bool,
        resources: Value,
    ) -> Result<HostCgroup, HostCgroupError> {
        HostCgroup::join_in(
            &self.mounts,
            path,
            systemd,
            Some(&resources),
            overhead(),
            PID,
        )
    }

    fn remove(&self, dirs: &[PathBuf]) {
        remove_dirs(dirs, self.mounts.before_rmdir).unwrap();
    }

    /// Makes `rel` (below the cgroup root) a cgroup as the kernel would.
    fn mkdir(&self, rel: &str) {
        let mut dir = self.root().to_path_buf();
        for part in rel.split('/') {
            dir.push(part);
            if !dir.exists() {
                fs::create_dir(&dir).unwrap();
                fake_mkdir(&dir).unwrap();
            }
        }
    }
}

/// A fake tree; `self_cgroup` and the pid's `/proc/<pid>/cgroup`.
fn fake(build: impl FnOnce(&Path), self_cgroup: &str, pid_cgroup: &str) -> Fake {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("cgroup");
    let proc = tmp.path().join("proc");
    fs::create_dir(&root).unwrap();
    build(&root);
    fs::create_dir_all(proc.join("self")).unwrap();
    fs::create_dir_all(proc.join(PID.to_string())).unwrap();
    fs::write(proc.join("self/cgroup"), self_cgroup).unwrap();
    fs::write(proc.join(PID.to_string()).join("cgroup"), pid_cgroup).unwrap();
    Fake {
        _tmp: tmp,
        mounts: Mounts {
            cgroup_root: root,
            proc_root: proc,
            after_mkdir: fake_mkdir,
            before_rmdir: fake_rmdir,
        },
    }
}

fn write_files(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

/// This machine's shape: v1 hierarchies plus the hybrid cgroup2 mount.
fn v1_tree(root: &Path) {
    write_files(
        &root.join("memory"),
        &[
            ("cgroup.procs", ""),
            ("memory.limit_in_bytes", UNLIMITED_V1),
            ("memory.memsw.limit_in_bytes", UNLIMITED_V1),
            ("memory.soft_limit_in_bytes", UNLIMITED_V1),
            ("memory.swappiness", "60"),
        ],
    );
    write_files(
        &root.join("cpu,cpuacct"),
        &[
            ("cgroup.procs", ""),
            ("cpu.shares", "1024"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "-1"),
        ],
    );
    std::os::unix::fs::symlink("cpu,cpuacct", root.join("cpu")).unwrap();
    write_files(
        &root.join("cpuset"),
        &[
            ("cgroup.procs", ""),
            ("cpuset.cpus", "0-3"),
            ("cpuset.mems", "0"),
        ],
    );
    write_files(
        &root.join("pids"),
        &[("cgroup.procs", ""), ("pids.max", "max")],
    );
    write_files(&root.join("systemd"), &[("cgroup.procs", "")]);
    write_files(
        &root.join("unified"),
        &[("cgroup.procs", ""), ("cgroup.controllers", "")],
    );
}

const V1_HIERARCHIES: [&str; 5] = ["cpu,cpuacct", "cpuset", "memory", "pids", "systemd"];

/// The test host's shape: one unified hierarchy.
fn v2_tree(controllers: &'static str) -> impl FnOnce(&Path) {
    move |root: &Path| {
        write_files(
            root,
            &[
                ("cgroup.procs", ""),
                ("cgroup.controllers", controllers),
                ("cgroup.subtree_control", ""),
                ("memory.max", "max"),
                ("memory.swap.max", "max"),
                ("memory.low", "0"),
                ("cpu.weight", "100"),
                ("cpu.max", "max 100000"),
                ("pids.max", "max"),
                // Only non-root cgroups have these; the fake copies files
                // from the parent, so the root carries them too.
                ("cpuset.cpus", ""),
                ("cpuset.mems", ""),
            ],
        );
    }
}

fn full_resources() -> Value {
    json!({
        "memory": {"limit": 64 * MIB, "swap": 128 * MIB},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "1"},
        "pids": {"limit": 100},
        "devices": [{"allow": false, "access": "rwm"}]
    })
}

#[test]
fn v1_join_creates_every_hierarchy_writes_limits_and_moves_the_pid() {
    let fake = fake(v1_tree, "0::/\n", "0::/\n");
    let cgroup = fake.join("/kube/pod1/c1", false, full_resources()).unwrap();
    let mut expected = Vec::new();
    for h in V1_HIERARCHIES {
        for rel in ["kube", "kube/pod1", "kube/pod1/c1"] {
            expected.push(fake.root().join(h).join(rel));
        }
        assert_eq!(
            fake.read(&format!("{h}/kube/pod1/c1/cgroup.procs")),
            PID.to_string()
        );
    }
    let mut dirs = cgroup.dirs().to_vec();
    dirs.sort();
    expected.sort();
    assert_eq!(dirs, expected);
    assert!(
        !fake.root().join("unified/kube").exists(),
        "the hybrid v2 mount is left alone"
    );

    let leaf = |file: &str| fake.read(file);
    assert_eq!(
        leaf("memory/kube/pod1/c1/memory.limit_in_bytes"),
        (80 * MIB).to_string()
    );
    assert_eq!(
        leaf("memory/kube/pod1/c1/memory.memsw.limit_in_bytes"),
        (144 * MIB).to_string()
    );
    assert_eq!(leaf("cpu,cpuacct/kube/pod1/c1/cpu.shares"), "512");
    assert_eq!(leaf("cpu,cpuacct/kube/pod1/c1/cpu.cfs_quota_us"), "50000");
    assert_eq!(leaf("pids/kube/pod1/c1/pids.max"), "105");
    // New cpusets inherit the parent's cpus and mems; the leaf takes the spec's cpus.
    assert_eq!(leaf("cpuset/kube/cpuset.cpus"), "0-3");
    assert_eq!(leaf("cpuset/kube/pod1/c1/cpuset.cpus"), "1");
    assert_eq!(leaf("cpuset/kube/pod1/c1/cpuset.mems"), "0");
    // The parents' limits are untouched.
    assert_eq!(leaf("memory/kube/memory.limit_in_bytes"), UNLIMITED_V1);

    fake.remove(cgroup.dirs());
    for h in V1_HIERARCHIES {
        assert!(
            !fake.root().join(h).join("kube").exists(),
            "{h}/kube left behind"
        );
        assert!(fake.root().join(h).exists());
    }
}

#[test]
fn v1_relative_paths_are_below_the_callers_own_cgroups() {
    let fake = fake(
        |root| {
            v1_tree(root);
        },
        "4:memory:/process_api/x\n2:cpu,cpuacct:/\n1:name=systemd:/user.slice\n0::/\n",
        "0::/\n",
    );
    fake.mkdir("memory/process_api/x");
    fake.mkdir("systemd/user.slice");
    let cgroup = fake
        .join("c1", false, json!({"memory": {"limit": 64 * MIB}}))
        .unwrap();
    assert_eq!(
        fake.read("memory/process_api/x/c1/memory.limit_in_bytes"),
        (80 * MIB).to_string()
    );
    assert_eq!(
        fake.read("systemd/user.slice/c1/cgroup.procs"),
        PID.to_string()
    );
    assert_eq!(fake.read("cpu,cpuacct/c1/cgroup.procs"), PID.to_string());
    // The caller's cgroups existed: only the leaves are recorded.
    assert!(
        cgroup.dirs().iter().all(|d| d.ends_with("c1")),
        "{:?}",
        cgroup.dirs()
    );
    assert_eq!(cgroup.dirs().len(), V1_HIERARCHIES.len());
    fake.remove(cgroup.dirs());
    assert!(fake.root().join("memory/process_api/x").exists());
    assert!(!fake.root().join("memory/process_api/x/c1").exists());
}

#[test]
fn v2_join_enables_controllers_down_the_path_and_writes_limits() {
    let fake = fake(v2_tree("cpuset cpu io memory pids"), "0::/\n", "0::/\n");
    let cgroup = fake.join("/a/b", false, full_resources()).unwrap();
    assert_eq!(
        cgroup.dirs(),
        [fake.root().join("a"), fake.root().join("a/b")]
    );
    for parent in ["", "a/"] {
        let enabled = fake.read(&format!("{parent}cgroup.subtree_control"));
        for c in ["+cpuset", "+cpu", "+io", "+memory", "+pids"] {
            assert!(
                enabled.split_whitespace().any(|e| e == c),
                "{parent}: {enabled}"
            );
        }
    }
    let read = |f: &str| fake.read(&format!("a/b/{f}"));
    assert_eq!(read("memory.max"), (80 * MIB).to_string());
    assert_eq!(read("memory.swap.max"), (64 * MIB).to_string());
    assert_eq!(read("cpu.weight"), "20");
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpuset.cpus"), "1");
    assert_eq!(read("pids.max"), "105");
    assert_eq!(read("cgroup.procs"), PID.to_string());
    assert_eq!(
        fake.read("a/memory.max"),
        "max",
        "parents keep their limits"
    );
    fake.remove(cgroup.dirs());
    assert!(!fake.root().join("a").exists());
}

#[test]
fn v2_systemd_path_keeps_the_existing_slice() {
    let fake = fake(v2_tree("cpu memory pids"), "0::/\n", "0::/\n");
    // As systemd leaves a host: controllers enabled at the root, the slice there.
    fs::write(
        fake.root().join("cgroup.subtree_control"),
        "+cpu +memory +pids",
    )
    .unwrap();
    fake.mkdir("system.slice");
    let cgroup = fake
        .join(
            "system.slice:docker:abc",
            true,
            json!({"memory": {"limit": 64 * MIB}}),
        )
        .unwrap();
    let leaf = fake.root().join("system.slice/docker-abc.scope");
    assert_eq!(cgroup.dirs(), std::slice::from_ref(&leaf));
    let enabled = fake.read("system.slice/cgroup.subtree_control");
    assert_eq!(enabled, "+cpu +memory +pids");
    assert_eq!(
        fake.read("system.slice/docker-abc.scope/memory.max"),
        (80 * MIB).to_string()
    );
    fake.remove(cgroup.dirs());
    assert!(!leaf.exists());
    assert!(fake.root().join("system.slice").exists());
}

#[test]
fn v2_missing_controller_names_the_field_and_undoes_the_join() {
    let fake = fake(v2_tree("cpu memory"), "0::/\n", "0::/\n");
    let err = fake
        .join(
            "/a/b",
            false,
            json!({"memory": {"limit": 64 * MIB}, "pids": {"limit": 10}}),
        )
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(
            err,
            HostCgroupError::ControllerMissing {
                controller: "pids",
                ..
            }
        ),
        "{text}"
    );
    assert!(text.contains("linux.resources.pids.limit"), "{text}");
    assert!(
        !fake.root().join("a").exists(),
        "created dirs must be removed"
    );
    assert_eq!(fake.read("cgroup.procs"), "");
}

#[test]
fn a_failed_move_puts_the_pid_back_and_removes_only_created_dirs() {
    let fake = fake(v1_tree, "0::/\n", "0::/\n");
    // The pids leaf exists already and refuses the pid (not a file).
    fake.mkdir("pids/c1");
    fs::remove_file(fake.root().join("pids/c1/cgroup.procs")).unwrap();
    fs::create_dir(fake.root().join("pids/c1/cgroup.procs")).unwrap();
    let err = fake.join("/c1", false, json!({})).unwrap_err();
    assert!(
        matches!(err, HostCgroupError::Join { pid: PID, .. }),
        "{err}"
    );
    for h in ["cpu,cpuacct", "cpuset", "memory"] {
        assert!(
            !fake.root().join(h).join("c1").exists(),
            "{h}/c1 left behind"
        );
        assert_eq!(
            fake.read(&format!("{h}/cgroup.procs")),
            PID.to_string(),
            "{h}: moved back"
        );
    }
    assert!(
        fake.root().join("pids/c1").exists(),
        "a pre-existing leaf is not removed on undo"
    );
}

#[test]
fn bad_input_creates_nothing() {
    let fake = fake(v1_tree, "0::/\n", "0::/\n");
    let err = fake
        .join("/c1", false, json!({"memory": {"limit": "lots"}}))
        .unwrap_err();
    assert!(
        err.to_string().contains("linux.resources.memory.limit"),
        "{err}"
    );
    let err = fake.join("/", false, json!({})).unwrap_err();
    assert!(err.to_string().contains("linux.cgroupsPath"), "{err}");
    let err = fake.join("a:b", true, json!({})).unwrap_err();
    assert!(err.to_string().contains("slice:prefix:name"), "{err}");
    for h in V1_HIERARCHIES {
        let entries: Vec<_> = fs::read_dir(fake.root().join(h))
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_dir())
            .collect();
        assert!(entries.is_empty(), "{h}: {entries:?}");
    }
}

#[test]
fn reopen_finds_the_leaves_and_update_rewrites_limits() {
    let fake = fake(v1_tree, "0::/\n", "0::/\n");
    let joined = fake.join("/kube/c1", false, full_resources()).unwrap();
    let reopened = HostCgroup::reopen_in(&fake.mounts, joined.dirs()).unwrap();
    assert_eq!(reopened.leaves, joined.leaves);
    reopened
        .update(
            &json!({"memory": {"limit": 256 * MIB, "swap": 512 * MIB}, "pids": {"limit": -1}}),
            overhead(),
        )
        .unwrap();
    assert_eq!(
        fake.read("memory/kube/c1/memory.limit_in_bytes"),
        (272 * MIB).to_string()
    );
    assert_eq!(
        fake.read("memory/kube/c1/memory.memsw.limit_in_bytes"),
        (528 * MIB).to_string()
    );
    assert_eq!(fake.read("pids/kube/c1/pids.max"), "max");
    let err = HostCgroup::reopen_in(&fake.mounts, &[PathBuf::from("/elsewhere/x")]).unwrap_err();
    assert!(matches!(err, HostCgroupError::NotACgroupDir(_)), "{err}");
}

#[test]
fn removal_is_deepest_first_tolerates_missing_dirs_and_refuses_odd_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let b = a.join("b");
    fs::create_dir_all(&b).unwrap();
    // Shallowest first on purpose, plus one that is already gone.
    remove_cgroup_dirs(&[a.clone(), b.clone(), tmp.path().join("gone")]).unwrap();
    assert!(!a.exists());
    for odd in ["relative/dir", "/a/../b", "/"] {
        let err = remove_cgroup_dirs(&[PathBuf::from(odd)]).unwrap_err();
        assert!(
            matches!(err, HostCgroupError::NotACgroupDir(_)),
            "{odd}: {err}"
        );
    }
    // A directory with something in it is reported, not forced.
    fs::create_dir(&a).unwrap();
    fs::write(a.join("file"), "x").unwrap();
    let err = remove_cgroup_dirs(std::slice::from_ref(&a)).unwrap_err();
    assert!(err.to_string().contains(&a.display().to_string()), "{err}");
    assert!(a.join("file").exists());
}

#[test]
fn default_paths_follow_runc() {
    assert_eq!(default_cgroups_path("c1", false), "c1");
    assert_eq!(default_cgroups_path("c1", true), ":vmrun:c1");
    assert_eq!(
        path::parse(&default_cgroups_path("c1", true), true).unwrap(),
        path::CgroupPath::Absolute(PathBuf::from("/system.slice/vmrun-c1.scope"))
    );
}
