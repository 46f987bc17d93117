//! Process plumbing through vmrun-isolation: exit codes, death by signal,
//! stdio, terminal, joining existing namespaces, user namespaces.
//!
//! In the microVM (`vmrun run`): user namespaces with mappings, joining
//! the agent's namespaces by path, and the seccomp kill action. Exit codes,
//! signals and stdio through vmrun are tests/tests/guest_run.rs, the
//! terminal tests/tests/guest_terminal.rs.

mod common;

use std::os::unix::fs::MetadataExt;

use common::*;
use serde_json::json;

fn shell(script: &str) -> serde_json::Value {
    let mut c = base_config();
    c["process"]["args"] = json!(["/bin/sh", "-c", script]);
    c
}

#[test]
fn exit_code_and_stdio_pass_through() {
    if !can_run("exit_code_and_stdio_pass_through")
        || !host_halves("exit_code_and_stdio_pass_through")
    {
        return;
    }
    let bundle = Bundle::new("exit", &shell("echo out; echo err >&2; exit 42"));
    let out = run_ours(&bundle, "exit", &[]);
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(stdout(&out), "out\n");
    assert!(stderr(&out).contains("err\n"));
}

#[test]
fn killed_by_signal_is_128_plus_n() {
    if !can_run("killed_by_signal_is_128_plus_n") || !host_halves("killed_by_signal_is_128_plus_n")
    {
        return;
    }
    // Without a pid namespace the shell is not an init, so a child can
    // SIGKILL it.
    let mut c = shell("sh -c 'kill -9 $PPID'; sleep 5");
    c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}]);
    let bundle = Bundle::new("sig", &c);
    let out = run_ours(&bundle, "sig", &[]);
    assert_eq!(out.status.code(), Some(128 + 9));
}

#[test]
fn container_process_signal_reaches_the_init() {
    if !can_run("container_process_signal_reaches_the_init")
        || !host_halves("container_process_signal_reaches_the_init")
    {
        return;
    }
    let bundle = Bundle::new("sigapi", &shell("sleep 30"));
    let out = run_ours(&bundle, "sigapi", &["--signal-after-start", "9"]);
    assert_eq!(out.status.code(), Some(128 + 9));
}

#[test]
fn terminal_gives_the_container_a_pty() {
    if !can_run("terminal_gives_the_container_a_pty")
        || !host_halves("terminal_gives_the_container_a_pty")
    {
        return;
    }
    let mut c = shell("test -t 0 && test -t 1 && echo TTY-OK; ls -l /proc/self/fd/0");
    c["process"]["terminal"] = true.into();
    let bundle = Bundle::new("tty", &c);
    let out = run_ours(&bundle, "tty", &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    assert!(text.contains("TTY-OK"), "{text}");
    assert!(text.contains("/dev/pts/0"), "{text}");
}

/// A config joining the net, uts and ipc namespaces in `ns_dir` (a
/// `/proc/PID/ns` directory) and creating pid, mount and cgroup ones, with
/// `ns_dir` bound read-only at /run/ref-ns for the checker to compare
/// every namespace with (annotation vmrun.checker/reference-ns-dir): joined ones
/// must be the same, fresh ones different, unlisted ones (user, time) the
/// runtime's own, i.e. the reference process's too. Reading another
/// process's ns links needs ptrace read access: CAP_SYS_PTRACE.
fn joined_namespaces_config(ns_dir: &str) -> serde_json::Value {
    let mut c = base_config();
    c["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "cgroup"},
        {"type": "network", "path": format!("{ns_dir}/net")},
        {"type": "uts", "path": format!("{ns_dir}/uts")},
        {"type": "ipc", "path": format!("{ns_dir}/ipc")}
    ]);
    // libcontainer (unlike runc) leaves the hostname of a joined uts
    // namespace alone; vmrun-isolation warns about it (see validate).
    c.as_object_mut().unwrap().remove("hostname");
    // The runtime makes /run/ref-ns: in the guest a read-only root is
    // shared read-only.
    c["root"]["readonly"] = false.into();
    c["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/run/ref-ns", "type": "bind", "source": ns_dir,
        "options": ["bind", "ro", "nosuid", "nodev", "noexec"]
    }));
    for set in ["bounding", "effective", "permitted"] {
        c["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push("CAP_SYS_PTRACE".into());
    }
    c["annotations"] = json!({"vmrun.checker/reference-ns-dir": "/run/ref-ns"});
    c
}

/// The namespace comparisons a joined-namespace run must have passed.
fn assert_namespaces_compared(who: &str, text: &str) {
    for (ns, file, how) in [
        ("network", "net", "joined by path"),
        ("uts", "uts", "joined by path"),
        ("ipc", "ipc", "joined by path"),
        ("pid", "pid", "created fresh"),
        ("mount", "mnt", "created fresh"),
        ("cgroup", "cgroup", "created fresh"),
        ("user", "user", "not in the spec"),
    ] {
        let want = format!("PASS namespace.{ns} vs /run/ref-ns/{file}: {how}");
        assert!(text.contains(&want), "{who}: no {want:?}:\n{text}");
    }
}

/// linux.namespaces[].path in the microVM names a namespace of the host
/// (what podman, containerd and CRI hand a runtime): a network namespace
/// is plumbed into the VM, one of another type cannot be joined from a VM
/// and the host's own network namespace is never plumbed. The config that
/// joins /proc/1/ns's net, uts and ipc namespaces on a runc host is
/// refused naming the entry, before any guest boots, and nothing is left.
#[test]
fn namespace_paths_name_host_namespaces_in_the_microvm() {
    let Some(guest) = guest("nspath-guest") else {
        return;
    };
    let config = joined_namespaces_config("/proc/1/ns");
    let bundle = Bundle::new("nspath-guest", &config);
    let out = run_vm(&guest, &bundle, "nspath-guest");
    assert!(
        vm_code(&out).is_some_and(|c| c != 0),
        "joining host namespaces must be refused: {}",
        out.describe()
    );
    assert!(
        out.stderr
            .contains("linux.namespaces[4].path: a microVM cannot join a host uts namespace"),
        "the refusal names the uts entry: {}",
        out.describe()
    );
    assert!(
        !out.stdout.contains("PASS"),
        "the checker ran: {}",
        out.describe()
    );
    // The host's own network namespace alone: refused as such.
    let mut net_only = config.clone();
    net_only["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "mount"}, {"type": "cgroup"},
        {"type": "network", "path": "/proc/1/ns/net"}, {"type": "uts"}, {"type": "ipc"}
    ]);
    let bundle = Bundle::new("nspath-hostnet", &net_only);
    let out = run_vm(&guest, &bundle, "nspath-hostnet");
    assert!(
        vm_code(&out).is_some_and(|c| c != 0)
            && out.stderr.contains(
                "linux.namespaces[3].path /proc/1/ns/net: this is the host's own network namespace"
            ),
        "the host's netns must be refused: {}",
        out.describe()
    );
}

/// The same on this host, through vmrun-isolation and runc, against a
/// process holding fresh net, uts and ipc namespaces; then the checker
/// handed a spec that claims the opposite (network fresh, pid joined) must
/// report both as FAIL, so the comparison can fail.
#[test]
fn namespaces_joined_by_path() {
    if !can_run("namespaces_joined_by_path") || !host_halves("namespaces_joined_by_path") {
        return;
    }
    // A process holding fresh net, uts and ipc namespaces to join.
    let mut holder = std::process::Command::new("unshare")
        .args(["--net", "--uts", "--ipc", "sleep", "60"])
        .spawn()
        .expect("unshare");
    let pid = holder.id();
    let ns_dir = format!("/proc/{pid}/ns");
    // unshare(1) forks nothing: wait until it has unshared and exec'd sleep.
    let ino = |p: String| std::fs::metadata(p).map(|m| m.ino()).ok();
    while ino(format!("{ns_dir}/net")) == ino("/proc/self/ns/net".into()) {
        std::thread::yield_now();
    }
    let mut c = joined_namespaces_config(&ns_dir);
    for ns in ["net", "uts", "ipc"] {
        c["annotations"][format!("vmrun.checker/ns-{ns}")] =
            ino(format!("{ns_dir}/{ns}")).unwrap().to_string().into();
    }
    let bundle = Bundle::new("nspath", &c);
    let ours = run_ours(&bundle, "nspath", &[]);
    let theirs = have_runc().then(|| run_runc(&bundle, "nspath-runc"));
    // The checker told the opposite of what the container got.
    let mut wrong = c.clone();
    wrong["linux"]["namespaces"] = json!([
        {"type": "pid", "path": format!("{ns_dir}/pid")}, {"type": "mount"}, {"type": "cgroup"},
        {"type": "network"},
        {"type": "uts", "path": format!("{ns_dir}/uts")},
        {"type": "ipc", "path": format!("{ns_dir}/ipc")}
    ]);
    std::fs::write(
        bundle.rootfs().join("checker-spec.json"),
        serde_json::to_string(&wrong).unwrap(),
    )
    .unwrap();
    let mismatch = run_ours(&bundle, "nspath-wrong", &[]);
    let _ = holder.kill();
    let _ = holder.wait();
    assert_all_pass("vmrun-isolation joined namespaces", &ours, 40);
    assert_namespaces_compared("vmrun-isolation", &stdout(&ours));
    for ns in ["net", "uts", "ipc"] {
        assert!(stdout(&ours).contains(&format!("PASS namespace.{ns} joined by path")));
    }
    match theirs {
        Some(theirs) => {
            assert_all_pass("runc joined namespaces", &theirs, 40);
            assert_namespaces_compared("runc", &stdout(&theirs));
        }
        None => eprintln!("SKIPPED: runc half of namespaces_joined_by_path: runc not installed"),
    }
    let text = stdout(&mismatch);
    assert_eq!(mismatch.status.code(), Some(1), "{text}");
    for want in [
        "FAIL namespace.network vs /run/ref-ns/net: created fresh",
        "FAIL namespace.pid vs /run/ref-ns/pid: joined by path",
    ] {
        assert!(text.contains(want), "checker missed {want:?}:\n{text}");
    }
}

#[test]
fn user_namespace_with_mappings() {
    let c = userns_config();
    if let Some(guest) = guest("user_namespace_with_mappings") {
        let bundle = Bundle::new("userns-vm", &c);
        let out = run_vm(&guest, &bundle, "userns-vm");
        assert_vm_all_pass("vmrun run (microVM) userns", &out, 30);
        assert!(
            out.stdout.contains("PASS linux.uidMappings"),
            "{}",
            out.describe()
        );
    }
    if !can_run("user_namespace_with_mappings") || !host_halves("user_namespace_with_mappings") {
        return;
    }
    let bundle = Bundle::new("userns", &c);
    // The mapped root (host uid 100000) must be able to reach the rootfs.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(bundle.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run_ours(&bundle, "userns", &[]);
    assert_all_pass("vmrun-isolation userns", &out, 30);
    assert!(stdout(&out).contains("PASS linux.uidMappings"));
    if have_runc() {
        let theirs = run_runc(&bundle, "userns-runc");
        assert_all_pass("runc userns", &theirs, 30);
    }
}

/// A user namespace with uid/gid mappings (and no /sys mounts).
fn userns_config() -> serde_json::Value {
    let mut c = base_config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    // sysfs cannot be mounted from a user namespace that does not own the
    // network namespace's... keep it simple: drop /sys and the cgroup mount.
    let mounts: Vec<_> = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !m["destination"].as_str().unwrap().starts_with("/sys"))
        .cloned()
        .collect();
    c["mounts"] = json!(mounts);
    c["linux"]["maskedPaths"] = json!(["/proc/kcore", "/proc/keys"]);
    c
}

#[test]
fn seccomp_kill_action_kills_with_sigsys() {
    let mut c = shell("exec mkdir /tmp/forbidden");
    c["root"]["readonly"] = false.into();
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}]
    });
    if let Some(guest) = guest("seccomp_kill_action_kills_with_sigsys") {
        let bundle = Bundle::new("sckill-vm", &c);
        let out = run_vm(&guest, &bundle, "sckill-vm");
        assert_eq!(
            vm_code(&out),
            Some(128 + libc::SIGSYS),
            "{}",
            out.describe()
        );
        // The rootfs is the host's bundle over virtio-fs: nothing was made.
        assert!(!bundle.rootfs().join("tmp/forbidden").exists());
    }
    if !can_run("seccomp_kill_action_kills_with_sigsys")
        || !host_halves("seccomp_kill_action_kills_with_sigsys")
    {
        return;
    }
    let bundle = Bundle::new("sckill", &c);
    let out = run_ours(&bundle, "sckill", &[]);
    assert_eq!(out.status.code(), Some(128 + libc::SIGSYS));
    assert!(!bundle.rootfs().join("tmp/forbidden").exists());
}

/// After the exit, libcontainer's state, our bundle copy and the cgroup are
/// gone, whether we reaped the init (`wait`) or the caller did (`exited`).
#[test]
fn exit_cleans_up_state_and_cgroup() {
    if !can_run("exit_cleans_up_state_and_cgroup")
        || !host_halves("exit_cleans_up_state_and_cgroup")
    {
        return;
    }
    for (id, flags) in [
        ("clean-wait", &[][..]),
        ("clean-ext", &["--external-reap"][..]),
    ] {
        let bundle = Bundle::new(id, &shell("exit 3"));
        let out = run_ours(&bundle, id, flags);
        assert_eq!(out.status.code(), Some(3), "{id}");
        let state = bundle.path().join("state");
        assert!(
            !state.join("bundles").join(id).exists(),
            "{id}: bundle copy left"
        );
        assert!(
            !state.join("state").join(id).exists(),
            "{id}: libcontainer state left"
        );
        let cgroup_dirs: Vec<_> = ["", "memory", "pids", "cpu"]
            .iter()
            .map(|c| {
                std::path::Path::new("/sys/fs/cgroup")
                    .join(c)
                    .join("vmrun")
                    .join(id)
            })
            .filter(|p| p.exists())
            .collect();
        assert!(
            cgroup_dirs.is_empty(),
            "{id}: cgroups left: {cgroup_dirs:?}"
        );
    }
}

/// AppArmor/SELinux fields are ignored with a warning (the guest kernel has
/// neither LSM); the container still runs.
///
/// In the microVM the agent logs them on the guest console and sends them
/// back with its answer to Start: vmrun prints them on its stderr.
#[test]
fn lsm_fields_warn_and_run() {
    let mut c = shell("echo ran");
    c["process"]["apparmorProfile"] = "docker-default".into();
    c["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into();
    if let Some(guest) = guest("lsm_fields_warn_and_run") {
        let bundle = Bundle::new("lsm-vm", &c);
        let out = run_vm(&guest, &bundle, "lsm-vm");
        assert_eq!(vm_code(&out), Some(0), "{}", out.describe());
        assert_eq!(out.stdout, "ran\n", "{}", out.describe());
        let console = std::fs::read_to_string(bundle.path().join("console.log")).unwrap();
        for field in ["process.apparmorProfile", "process.selinuxLabel"] {
            assert!(
                console.contains(&format!("{field}: ignored")),
                "no warning for {field} in the guest console:\n{console}"
            );
            assert!(
                out.stderr
                    .contains(&format!("vmrun: warning: {field}: ignored")),
                "no warning for {field} on vmrun's stderr: {}",
                out.describe()
            );
        }
    }
    if !can_run("lsm_fields_warn_and_run") || !host_halves("lsm_fields_warn_and_run") {
        return;
    }
    let bundle = Bundle::new("lsm", &c);
    let out = run_ours(&bundle, "lsm", &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), "ran\n");
    let err = stderr(&out);
    assert!(
        err.contains("warning: process.apparmorProfile: ignored"),
        "{err}"
    );
    assert!(
        err.contains("warning: process.selinuxLabel: ignored"),
        "{err}"
    );
}
