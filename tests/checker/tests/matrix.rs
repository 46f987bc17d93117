//! The checker against a matrix of config.json variants, each run through
//! vmrun-isolation and (where that makes sense here) through runc, which
//! proves the checker itself right, and through `vmrun run` in a real
//! microVM (the microVM half: the agent applies the spec inside the guest,
//! whose cgroup v2 hierarchy runs the cgroup checks this host skips).

mod common;

use common::*;
use serde_json::{json, Value};

/// Runs `config` through vmrun-isolation, runc and `vmrun run`; all checks
/// must pass in each.
fn both(name: &str, config: Value, min_checks: usize) {
    compare(name, config, min_checks, None);
}

/// Like [`both`]; `runc_skip` gives the reason to skip the runc half.
fn compare(name: &str, config: Value, min_checks: usize, runc_skip: Option<&str>) {
    on_host(name, &config, min_checks, runc_skip);
    vm_half(name, &config, min_checks);
}

/// The halves on this host: vmrun-isolation via the runner, then runc.
fn on_host(name: &str, config: &Value, min_checks: usize, runc_skip: Option<&str>) {
    if !can_run(name) || !host_halves(name) {
        return;
    }
    let bundle = Bundle::new(name, config);
    let ours = run_ours(&bundle, &format!("{name}-ours"), &[]);
    assert_all_pass("vmrun-isolation", &ours, min_checks);
    if let Some(why) = runc_skip {
        eprintln!("SKIPPED: runc half of {name} because {why}");
    } else if have_runc() {
        let theirs = run_runc(&bundle, &format!("{name}-runc"));
        assert_all_pass("runc", &theirs, min_checks);
    } else {
        eprintln!("SKIPPED: runc half of {name} because runc is not installed");
    }
}

#[test]
fn default_runc_spec() {
    both("default", base_config(), 35);
}

/// In the microVM only fds 0-2 reach the container: none of the agent's
/// (vsock connections, its control socket) leak.
#[test]
fn agent_fds_do_not_reach_the_container() {
    let Some(out) = vm_half("agentfds", &base_config(), 35) else {
        return;
    };
    assert!(
        out.stdout.contains("PASS fds: open: [0, 1, 2]"),
        "{}",
        out.describe()
    );
}

#[test]
fn writable_root_and_no_nnp() {
    let mut c = base_config();
    c["root"]["readonly"] = false.into();
    c["process"]["noNewPrivileges"] = false.into();
    both("writable", c, 35);
}

#[test]
fn non_root_user_with_groups_umask_and_cwd() {
    let mut c = base_config();
    c["process"]["user"] =
        json!({"uid": 1000, "gid": 1001, "additionalGids": [5, 100], "umask": 23});
    c["process"]["cwd"] = "/tmp".into();
    c["process"]["env"] = json!(["PATH=/bin", "HOME=/tmp", "GREETING=hello world"]);
    both("user", c, 35);
}

#[test]
fn capability_sets_with_ambient() {
    let mut c = base_config();
    let caps = json!(["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN"]);
    c["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_KILL"],
        "effective": caps, "permitted": caps, "inheritable": caps,
        "ambient": ["CAP_NET_RAW"]
    });
    c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    both("caps", c, 35);
}

#[test]
fn rlimits() {
    let mut c = base_config();
    c["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
        {"type": "RLIMIT_NPROC", "soft": 500, "hard": 600},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        {"type": "RLIMIT_STACK", "soft": 4194304, "hard": 8388608}
    ]);
    both("rlimits", c, 38);
}

#[test]
fn seccomp_errno_rules() {
    let mut c = base_config();
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ]
    });
    both("seccomp", c, 39);
}

#[test]
fn seccomp_argument_filter_and_errno_default() {
    let mut c = base_config();
    c["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
             "args": [{"index": 0, "value": 0xffff_ffffu64, "op": "SCMP_CMP_EQ"}]}
        ]
    });
    both("seccomp-args", c, 37);
}

#[test]
fn hostname_domainname_sysctl_oom() {
    let mut c = base_config();
    c["hostname"] = "box-1".into();
    c["domainname"] = "example.test".into();
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmni": "1000"});
    c["process"]["oomScoreAdj"] = 500.into();
    compare(
        "sysctl",
        c.clone(),
        38,
        Some("runc 1.1 ignores domainname (support came in runc 1.2)"),
    );
    c.as_object_mut().unwrap().remove("domainname");
    both("sysctl-runc", c, 37);
}

#[test]
fn extra_mounts_devices_masked_and_readonly_paths() {
    let mut c = base_config();
    c["root"]["readonly"] = false.into();
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                       "options": ["nosuid", "nodev", "noexec", "size=1m"]}),
    );
    mounts.push(
        json!({"destination": "/ro-tmpfs", "type": "tmpfs", "source": "tmpfs",
                       "options": ["ro", "size=1m"]}),
    );
    mounts.push(
        json!({"destination": "/hostbin", "type": "bind", "source": "/bin",
                       "options": ["rbind", "ro", "nosuid"]}),
    );
    c["linux"]["devices"] = json!([
        {"path": "/dev/kmsg-copy", "type": "c", "major": 1, "minor": 11,
         "fileMode": 416, "uid": 0, "gid": 0}
    ]);
    c["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push("/etc".into());
    c["linux"]["readonlyPaths"]
        .as_array_mut()
        .unwrap()
        .push("/tmp".into());
    on_host("mounts", &c, 40, None);
    // Bind sources are paths of the machine the runtime runs on: in the
    // guest that is the agent's initramfs, which has no /bin; bind its /tmp
    // (a tmpfs the agent mounts) instead.
    c["mounts"][9]["source"] = "/tmp".into();
    vm_half("mounts", &c, 40);
}

#[test]
fn rootfs_propagation() {
    for (i, prop) in ["rprivate", "rslave", "private"].iter().enumerate() {
        let mut c = base_config();
        c["linux"]["rootfsPropagation"] = (*prop).into();
        both(&format!("prop{i}"), c, 36);
    }
}

/// Propagation options on `mounts` (`rshared`, `runbindable`, `rprivate`,
/// `rslave`): the checker compares each with the mount's optional fields in
/// /proc/self/mountinfo. libcontainer 0.7 drops these options;
/// vmrun-isolation applies them before the container starts (see its
/// mount_propagation module), and runc shows the checker right.
#[test]
fn mount_propagation_options() {
    let config = |bind_source: &str| {
        let mut c = base_config();
        // The runtime makes the mount points: in the guest a read-only
        // root is shared read-only.
        c["root"]["readonly"] = false.into();
        let mounts = c["mounts"].as_array_mut().unwrap();
        for (dest, opts) in [
            ("/prop-shared", json!(["nosuid", "rshared"])),
            ("/prop-unbindable", json!(["nosuid", "runbindable"])),
        ] {
            mounts.push(
                json!({"destination": dest, "type": "tmpfs", "source": "tmpfs",
                               "options": opts}),
            );
        }
        for (dest, prop) in [("/prop-private", "rprivate"), ("/prop-slave", "rslave")] {
            mounts.push(
                json!({"destination": dest, "type": "bind", "source": bind_source,
                               "options": ["rbind", "ro", prop]}),
            );
        }
        c
    };
    let shown = [
        "PASS mount /prop-shared propagation: \"shared\"",
        "PASS mount /prop-unbindable propagation: \"unbindable\"",
        "PASS mount /prop-private propagation: \"private\"",
    ];
    on_host("propagation", &config("/bin"), 43, None);
    // In the guest, bind the agent's /tmp (the guest has no /bin).
    if let Some(out) = vm_half("propagation", &config("/tmp"), 43) {
        for line in shown {
            assert!(out.stdout.contains(line), "no {line:?}: {}", out.describe());
        }
    }
}

/// `--no-pivot` (MS_MOVE + chroot instead of pivot_root) through
/// vmrun-isolation, runc and `vmrun run --no-pivot`: every check still
/// passes, and the checker's root escape probes show what `--no-pivot`
/// costs. The classic `..` chroot climb stays inside (the container's root
/// is a mount stacked on the runtime's `/`, so `..` comes back onto it),
/// but a container with CAP_SYS_ADMIN that lazily unmounts `/` and
/// re-enters its own mount namespace lands in the runtime's root: in the
/// microVM the agent's tmpfs root (its `/init`), on this host the host's
/// `/`. That is why runc documents `--no-pivot` as insecure. Under
/// pivot_root the same escape finds only the hidden initial rootfs
/// (escapes.rs: root_escapes_under_pivot_root), so the probe tells the two
/// apart.
#[test]
fn no_pivot_root() {
    let c = root_escape_config();
    if let Some(guest) = guest("no_pivot_root") {
        let bundle = Bundle::new("nopivot-vm", &c);
        let out = run_vm_with(&guest, &bundle, "nopivot-vm", &["--no-pivot"]);
        assert_vm_all_pass("vmrun run --no-pivot (microVM)", &out, 36);
        assert_vm_escapes("vmrun run --no-pivot", &out.stdout, true);
        assert!(!bundle.rootfs().join("init").exists());
    }
    if !can_run("no_pivot_root") || !host_halves("no_pivot_root") {
        return;
    }
    let bundle = Bundle::new("nopivot", &c);
    let out = run_ours(&bundle, "nopivot", &["--no-pivot"]);
    assert_all_pass("vmrun-isolation --no-pivot", &out, 36);
    assert_host_escapes("vmrun-isolation --no-pivot", &stdout(&out), true);
    if have_runc() {
        let out = run_runc_with(&bundle, "nopivot-runc", &["--no-pivot"]);
        assert_all_pass("runc --no-pivot", &out, 36);
        assert_host_escapes("runc --no-pivot", &stdout(&out), true);
    } else {
        eprintln!("SKIPPED: runc half of no_pivot_root because runc is not installed");
    }
}

/// Host only: `vmrun run` has no `--preserve-fds` (host fds cannot reach
/// a guest anyway).
#[test]
fn preserved_fds() {
    if !can_run("preserved_fds") || !host_halves("preserved_fds") {
        return;
    }
    let mut c = base_config();
    c["annotations"] = json!({"vmrun.checker/preserved-fds": "1"});
    let bundle = Bundle::new("fds", &c);
    // Fd 3 of the runner: dup2 from a high fd (the file itself might be fd 3,
    // and dup2 onto itself would keep close-on-exec).
    let file = high_fd("/etc/hostname");
    let out = {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let raw = file.as_raw_fd();
        let mut cmd = std::process::Command::new(RUNNER);
        cmd.args(["--preserve-fds", "1", "--state-dir"])
            .arg(bundle.path().join("state"))
            .arg("--bundle")
            .arg(bundle.path())
            .arg("fds")
            .stdin(std::process::Stdio::null());
        // SAFETY: only async-signal-safe dup2 between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.output().unwrap()
    };
    println!("{}\n{}", stdout(&out), stderr(&out));
    assert_all_pass("vmrun-isolation --preserve-fds 1", &out, 35);
}

/// Host only: the runtime's leaked host fds; in the microVM see
/// `agent_fds_do_not_reach_the_container`.
#[test]
fn leaked_fds_do_not_reach_the_container() {
    if !can_run("leaked_fds") || !host_halves("leaked_fds") {
        return;
    }
    let bundle = Bundle::new("leak", &base_config());
    let file = high_fd("/etc/hostname");
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = file.as_raw_fd();
    let mut cmd = std::process::Command::new(RUNNER);
    cmd.arg("--state-dir")
        .arg(bundle.path().join("state"))
        .arg("--bundle")
        .arg(bundle.path())
        .arg("leak")
        .stdin(std::process::Stdio::null());
    // SAFETY: only async-signal-safe dup2 calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [5, 9, 42] {
                if libc::dup2(raw, fd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    println!("{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("PASS fds: open: [0, 1, 2]"));
    assert_all_pass("vmrun-isolation with leaked fds", &out, 35);
}

/// The checks a cgroup v2 run must have made (not skipped).
const CGROUP_CHECKS: [&str; 6] = [
    "memory.max",
    "memory.low",
    "memory.swap.max",
    "cpu.max",
    "cpu.weight",
    "pids.max",
];

#[test]
fn cgroup_v2_resources() {
    let c = cgroup_v2_config();
    // The guest is always cgroup2: this is where the limits are really set.
    if let Some(out) = vm_half("cgroup2", &c, 40) {
        for check in CGROUP_CHECKS
            .iter()
            .chain(&["cpuset.cpus", "unified memory.high"])
        {
            assert!(
                out.stdout.contains(&format!("PASS cgroup {check}")),
                "{check} not checked in the microVM:\n{}",
                out.describe()
            );
        }
    }
    if !can_run("cgroup_v2_resources") || !host_halves("cgroup_v2_resources") {
        return;
    }
    if !host_is_cgroup2() {
        eprintln!(
            "SKIPPED: the host half of cgroup_v2_resources because /sys/fs/cgroup on this host \
             is not cgroup2 (cgroup v1/hybrid); it runs in the microVM half and in the test \
             host (tests/checker/run-in-testhost.sh)"
        );
        return;
    }
    let bundle = Bundle::new("cgroup2", &c);
    let out = run_ours(&bundle, "cgroup2", &[]);
    assert_all_pass("vmrun-isolation cgroup2", &out, 40);
    for check in CGROUP_CHECKS {
        assert!(
            stdout(&out).contains(&format!("PASS cgroup {check}")),
            "{check} not checked"
        );
    }
}

/// linux.resources for memory (limit, reservation, swap), cpu (shares,
/// quota/period, cpuset), pids and a `unified` cgroup v2 file, with a
/// cgroup2 mount.
fn cgroup_v2_config() -> Value {
    let mut c = base_config();
    c["linux"]["resources"] = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 64},
        "unified": {"memory.high": "50331648"}
    });
    c["mounts"][6] = json!({"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup",
                           "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]});
    c
}

/// Opens `path` and moves it to a close-on-exec fd >= 100.
fn high_fd(path: &str) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsRawFd, FromRawFd};
    let f = std::fs::File::open(path).unwrap();
    let fd = nix::fcntl::fcntl(f.as_raw_fd(), nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(100)).unwrap();
    // SAFETY: fcntl just returned this new fd; we are its only owner.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }
}

/// The checker must catch a container that differs from its spec: give it
/// an expectation the container does not meet and every such check fails.
#[test]
fn checker_reports_mismatches() {
    if let Some(guest) = guest("checker_reports_mismatches") {
        let bundle = mismatched_bundle("mismatch-vm");
        let out = run_vm(&guest, &bundle, "mismatch-vm");
        assert_mismatches_reported(vm_code(&out), &out.stdout);
    }
    if !can_run("checker_reports_mismatches") || !host_halves("checker_reports_mismatches") {
        return;
    }
    let bundle = mismatched_bundle("mismatch");
    let out = run_ours(&bundle, "mismatch", &[]);
    assert_mismatches_reported(out.status.code(), &stdout(&out));
}

/// A bundle whose checker expects a different spec than the container's.
fn mismatched_bundle(name: &str) -> Bundle {
    let bundle = Bundle::new(name, &base_config());
    let mut wrong = base_config();
    wrong["hostname"] = "someone-else".into();
    wrong["process"]["rlimits"][0]["soft"] = 77.into();
    wrong["process"]["user"]["uid"] = 4242.into();
    wrong["process"]["noNewPrivileges"] = false.into();
    wrong["process"]["env"] = json!(["PATH=/bin", "MISSING=yes"]);
    wrong["root"]["readonly"] = false.into();
    wrong["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]});
    let text = serde_json::to_string(&wrong).unwrap();
    std::fs::write(bundle.rootfs().join("checker-spec.json"), text).unwrap();
    bundle
}

/// Every mismatch planted by [`mismatched_bundle`] is a FAIL, and exit 1.
fn assert_mismatches_reported(code: Option<i32>, text: &str) {
    assert_eq!(code, Some(1), "{text}");
    for check in [
        "FAIL hostname",
        "FAIL rlimit RLIMIT_NOFILE",
        "FAIL user.uid",
        "FAIL noNewPrivileges",
        "FAIL env.MISSING",
        "FAIL root.readonly",
        "FAIL seccomp.mode",
        "FAIL seccomp getppid errno",
        "FAIL capabilities.effective",
    ] {
        assert!(text.contains(check), "checker missed {check}:\n{text}");
    }
}

/// `linux.resources.devices` enforced by the device cgroup: nodes made from
/// `linux.devices` with numbers no driver uses (char/block major 120, local
/// use) are allowed exactly as the rules say (read-write, read-only, a
/// block wildcard) and denied (EPERM) otherwise; /dev/kmsg's number is
/// denied by the leading deny-all. The checker's `device cgroup` checks
/// open every node in /dev for reading and for writing.
#[test]
fn device_cgroup_rules() {
    let mut c = base_config();
    let node = |path: &str, typ: &str, major: u32, minor: u32| {
        json!({"path": path, "type": typ, "major": major, "minor": minor,
               "fileMode": 438, "uid": 0, "gid": 0})
    };
    c["linux"]["devices"] = json!([
        node("/dev/local-rw", "c", 120, 0),
        node("/dev/local-ro", "c", 120, 1),
        node("/dev/local-denied", "c", 120, 2),
        node("/dev/local-blk", "b", 120, 0),
        node("/dev/kmsg-denied", "c", 1, 11),
    ]);
    c["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 120, "minor": 0, "access": "rwm"},
        {"allow": true, "type": "c", "major": 120, "minor": 1, "access": "r"},
        {"allow": true, "type": "b", "major": 120, "minor": -1, "access": "rw"}
    ]);
    both("devices", c, 50);
}
