//! Pods as one microVM, in real guests, driven as containerd's CRI and
//! podman drive runc: a sandbox (annotation `container-type: sandbox`)
//! boots the VM; two members (`container` + `sandbox-id`, namespace paths
//! naming the sandbox's pid) are created inside it, share its network
//! namespace (one serves on localhost, the other fetches from it), each
//! with its own host pid (a host process that exits with its status and
//! forwards signals) and state; deleting the sandbox ends the VM. A member
//! whose pid namespace path names the sandbox (CRI's
//! `PodPidNamespace=POD`, `podman pod create --share pid`) is in the
//! sandbox's pid namespace in the guest, one without such a path in its
//! own; a member's `linux.resources` are its cgroup's in the guest.
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vmrun_tests::bundle::edit_config;
use vmrun_tests::runtimes::{Observed, Runtime};
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::{boot_timeout, guest_ready, run_ok, wait_until};

const STATE_LIMIT: Duration = Duration::from_secs(120);

static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-pod", "256m");

fn scratch() -> &'static Path {
    SCRATCH.dir()
}

fn base_bundle() -> &'static Path {
    SCRATCH.base_bundle()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

fn bundle(name: &str, args: &[&str], edit: impl FnOnce(&mut Value)) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    run_ok(
        Command::new("cp").arg("-a").arg(base_bundle()).arg(&dir),
        "copying the bundle (cp -a)",
    );
    edit_config(&dir, |spec| {
        spec["process"]["args"] = json!(args);
        edit(spec);
    });
    dir
}

/// containerd CRI's annotations and namespace paths for a member of
/// sandbox `sandbox` whose pid is `sandbox_pid`.
fn as_member(spec: &mut Value, sandbox: &str, sandbox_pid: i64) {
    spec["annotations"] = json!({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.sandbox-id": sandbox,
    });
    let namespaces = spec["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    namespaces.retain(|ns| !matches!(ns["type"].as_str(), Some("network" | "ipc" | "uts")));
    for (kind, file) in [("network", "net"), ("ipc", "ipc"), ("uts", "uts")] {
        namespaces.push(json!({"type": kind, "path": format!("/proc/{sandbox_pid}/ns/{file}")}));
    }
}

fn pid_of(rt: &Runtime, id: &str) -> i64 {
    match rt.state(id) {
        Observed::State { pid, .. } => pid,
        other => panic!("state {id}: {other:?}"),
    }
}

#[test]
fn a_pod_is_one_microvm_whose_members_share_localhost() {
    let Some(g) = guest_ready("a_pod_is_one_microvm_whose_members_share_localhost") else {
        return;
    };
    let dir = scratch().join("pod");
    std::fs::create_dir_all(&dir).expect("dir");
    let rt = Runtime::vmrun(&dir.join("root"), &g.kernel, &g.initrd, boot_timeout());

    // The sandbox: a pause-like process, booting the pod's VM.
    let sandbox = bundle("sandbox", &["sleep", "100000"], |spec| {
        spec["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
    });
    let out = rt.call_detached("run", &["-d", "--bundle", s(&sandbox), "pod-sb"]);
    assert!(out.success(), "{}", out.describe());
    let sandbox_pid = pid_of(&rt, "pod-sb");

    // Member A serves a page on the pod's localhost.
    let server = bundle(
        "member-a",
        &["sh", "-c", "mkdir -p /www && echo hello-from-a > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www"],
        |spec| as_member(spec, "pod-sb", sandbox_pid),
    );
    let pid_a = dir.join("a.pid");
    let out = rt.call_detached(
        "create",
        &["--bundle", s(&server), "--pid-file", s(&pid_a), "pod-a"],
    );
    assert!(out.success(), "{}", out.describe());
    assert_eq!(rt.status("pod-a"), "created");
    let host_pid_a: i64 = std::fs::read_to_string(&pid_a)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    assert_eq!(pid_of(&rt, "pod-a"), host_pid_a);
    assert_ne!(host_pid_a, sandbox_pid, "a member has its own host pid");
    assert!(rt.call("start", &["pod-a"]).success());
    assert_eq!(rt.status("pod-a"), "running");
    // One VM: the sandbox and the member see the same guest kernel.
    let boot_id = |id: &str| {
        let out = rt.call("exec", &[id, "cat", "/proc/sys/kernel/random/boot_id"]);
        assert!(out.success(), "exec in {id}: {}", out.describe());
        out.stdout.trim().to_string()
    };
    let pod_boot = boot_id("pod-sb");
    assert!(!pod_boot.is_empty());
    assert_eq!(
        boot_id("pod-a"),
        pod_boot,
        "the member runs in another kernel"
    );

    // Member B fetches it over localhost, with its output through create's stdio.
    let client = bundle(
        "member-b",
        &["sh", "-c", "i=0; while [ $i -lt 100 ]; do \
                         out=$(printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc 127.0.0.1 8080 2>/dev/null | tail -n 1); \
                         if [ -n \"$out\" ]; then echo \"got: $out\"; hostname; exit 7; fi; \
                         sleep 0.2; i=$((i+1)); done; exit 1"],
        |spec| {
            as_member(spec, "pod-sb", sandbox_pid);
            spec["hostname"] = json!("member-b-own-name");
        },
    );
    let out_b = dir.join("b.out");
    let mut create_b = rt.spawn(
        "create",
        &["--bundle", s(&client), "pod-b"],
        &out_b,
        &dir.join("b.err"),
    );
    let created = wait_until(&mut create_b, Instant::now() + STATE_LIMIT);
    assert_eq!(
        created.and_then(|s| s.code()),
        Some(0),
        "{}",
        std::fs::read_to_string(dir.join("b.err")).unwrap_or_default()
    );
    let host_pid_b = pid_of(&rt, "pod-b");
    assert!(rt.call("start", &["pod-b"]).success());
    assert_eq!(rt.wait_status("pod-b", "stopped", STATE_LIMIT), "stopped");
    let output = std::fs::read_to_string(&out_b).unwrap_or_default();
    assert!(
        output.contains("got: hello-from-a"),
        "member B did not reach A on localhost: {output:?}"
    );
    // The uts namespace is the sandbox's, so B's own hostname is not set.
    assert!(!output.contains("member-b-own-name"), "{output:?}");
    let deadline = Instant::now() + STATE_LIMIT;
    while Path::new(&format!("/proc/{host_pid_b}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }

    // Signals to a member's host pid reach its init; ps lists host pids.
    let ps = rt.call("ps", &["--format", "json", "pod-a"]);
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).expect(&ps.stdout);
    assert_eq!(pids.first(), Some(&host_pid_a), "{}", ps.stdout);
    let listed = rt.call("list", &["-q"]);
    let ids: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(ids, ["pod-a", "pod-b", "pod-sb"], "{}", listed.stdout);
    // SAFETY: kill(2) only sends a signal.
    assert_eq!(unsafe { libc::kill(host_pid_a as i32, libc::SIGKILL) }, 0);
    assert_eq!(rt.wait_status("pod-a", "stopped", STATE_LIMIT), "stopped");
    assert_eq!(
        rt.status("pod-sb"),
        "running",
        "a member's end ended the pod"
    );

    for id in ["pod-a", "pod-b"] {
        let out = rt.call("delete", &[id]);
        assert!(out.success(), "{}", out.describe());
    }

    // Deleting the sandbox ends the pod's VM, and with it a member that
    // still runs: its host pid exits and it reads as stopped.
    let sleeper = bundle("member-c", &["sleep", "100000"], |spec| {
        as_member(spec, "pod-sb", sandbox_pid)
    });
    let out = rt.call_detached("create", &["--bundle", s(&sleeper), "pod-c"]);
    assert!(out.success(), "{}", out.describe());
    assert!(rt.call("start", &["pod-c"]).success());
    assert_eq!(rt.status("pod-c"), "running");
    let host_pid_c = pid_of(&rt, "pod-c");
    let out = rt.call("delete", &["--force", "pod-sb"]);
    assert!(out.success(), "{}", out.describe());
    let gone = |pid: i64| {
        let deadline = Instant::now() + STATE_LIMIT;
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        !Path::new(&format!("/proc/{pid}")).exists()
    };
    assert!(
        gone(sandbox_pid),
        "the pod's VMM outlived the sandbox's delete"
    );
    assert!(
        gone(host_pid_c),
        "a member's host process outlived its pod's VM"
    );
    assert_eq!(rt.status("pod-c"), "stopped");
    let out = rt.call("delete", &["pod-c"]);
    assert!(out.success(), "{}", out.describe());
    let left: Vec<_> = std::fs::read_dir(&rt.root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under the root: {left:?}");
}

#[test]
fn a_member_of_a_missing_sandbox_is_refused_leaving_nothing() {
    let Some(g) = guest_ready("a_member_of_a_missing_sandbox_is_refused_leaving_nothing") else {
        return;
    };
    let dir = scratch().join("orphan");
    std::fs::create_dir_all(&dir).expect("dir");
    let rt = Runtime::vmrun(&dir.join("root"), &g.kernel, &g.initrd, boot_timeout());
    let b = bundle("orphan-member", &["true"], |spec| {
        as_member(spec, "no-such-sandbox", 1)
    });
    let out = rt.call_detached("create", &["--bundle", s(&b), "orphan"]);
    assert!(!out.success(), "{}", out.describe());
    assert!(out.stderr.contains("no-such-sandbox"), "{}", out.describe());
    let left: Vec<_> = std::fs::read_dir(&rt.root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under the root: {left:?}");
}

/// The sandbox of a test pod: a pause-like process booting the pod's VM;
/// returns its host pid.
fn start_sandbox(rt: &Runtime, name: &str, id: &str) -> i64 {
    let sandbox = bundle(name, &["sleep", "100000"], |spec| {
        spec["annotations"] = json!({"io.kubernetes.cri.container-type": "sandbox"});
    });
    let out = rt.call_detached("run", &["-d", "--bundle", s(&sandbox), id]);
    assert!(out.success(), "{}", out.describe());
    pid_of(rt, id)
}

/// Creates and starts member `id` from `bundle` and waits until it ended
/// and its host process exited (so all of its output was delivered);
/// returns its stdout.
fn run_member_to_end(rt: &Runtime, dir: &Path, id: &str, bundle: &Path) -> String {
    let (out, err) = (dir.join(format!("{id}.out")), dir.join(format!("{id}.err")));
    let mut create = rt.spawn("create", &["--bundle", s(bundle), id], &out, &err);
    let created = wait_until(&mut create, Instant::now() + STATE_LIMIT);
    assert_eq!(
        created.and_then(|s| s.code()),
        Some(0),
        "create {id}: {}",
        std::fs::read_to_string(&err).unwrap_or_default()
    );
    let host_pid = pid_of(rt, id);
    let started = rt.call("start", &[id]);
    assert!(started.success(), "start {id}: {}", started.describe());
    assert_eq!(rt.wait_status(id, "stopped", STATE_LIMIT), "stopped");
    let deadline = Instant::now() + STATE_LIMIT;
    while Path::new(&format!("/proc/{host_pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&out).unwrap_or_default()
}

/// The value of `key=` on the line of `output` that has it.
fn field<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key}= in {output:?}"))
}

/// Deletes `members` and then the sandbox, leaving nothing under the root.
fn tear_down_pod(rt: &Runtime, members: &[&str], sandbox: &str) {
    for id in members {
        let out = rt.call("delete", &[id]);
        assert!(out.success(), "delete {id}: {}", out.describe());
    }
    let out = rt.call("delete", &["--force", sandbox]);
    assert!(out.success(), "{}", out.describe());
    let left: Vec<_> = std::fs::read_dir(&rt.root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under the root: {left:?}");
}

/// What a member prints about its pid namespace: the namespace, its own
/// pid, pid 1's command line and the command lines of every process it
/// sees.
const PID_PROBE: &str = r#"echo "ns=$(readlink /proc/self/ns/pid)"; echo "self=$$"; echo "pid1=$(tr '\0' ' ' < /proc/1/cmdline)"; echo "all=$(for c in /proc/[0-9]*/cmdline; do tr '\0' ' ' < $c; echo -n '|'; done)""#;

#[test]
fn a_member_shares_the_sandboxs_pid_namespace_only_when_asked() {
    let Some(g) = guest_ready("a_member_shares_the_sandboxs_pid_namespace_only_when_asked") else {
        return;
    };
    let dir = scratch().join("pidns");
    std::fs::create_dir_all(&dir).expect("dir");
    let rt = Runtime::vmrun(&dir.join("root"), &g.kernel, &g.initrd, boot_timeout());
    let sandbox_pid = start_sandbox(&rt, "pidns-sandbox", "pidns-sb");
    let sandbox_ns = rt.call("exec", &["pidns-sb", "readlink", "/proc/self/ns/pid"]);
    assert!(sandbox_ns.success(), "{}", sandbox_ns.describe());
    let sandbox_ns = sandbox_ns.stdout.trim().to_string();
    assert!(sandbox_ns.starts_with("pid:["), "{sandbox_ns:?}");

    // As containerd's CRI asks with PodPidNamespace=POD: a pid namespace
    // path naming the sandbox's (host) pid.
    let shared = bundle("pidns-shared", &["sh", "-c", PID_PROBE], |spec| {
        as_member(spec, "pidns-sb", sandbox_pid);
        let namespaces = spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        namespaces.retain(|ns| ns["type"] != "pid");
        namespaces.push(json!({"type": "pid", "path": format!("/proc/{sandbox_pid}/ns/pid")}));
    });
    let out = run_member_to_end(&rt, &dir, "pidns-shared", &shared);
    assert_eq!(
        field(&out, "ns"),
        sandbox_ns,
        "the member is not in the sandbox's pid namespace: {out}"
    );
    assert_eq!(
        field(&out, "pid1").trim(),
        "sleep 100000",
        "pid 1 is not the sandbox's process: {out}"
    );
    assert_ne!(field(&out, "self"), "1", "{out}");
    // Each command line ends in a space: its NULs became spaces.
    assert!(field(&out, "all").contains("sleep 100000 |"), "{out}");

    // Without a path: a pid namespace of its own, where it is pid 1 and
    // the sandbox's process is not seen.
    let private = bundle("pidns-private", &["sh", "-c", PID_PROBE], |spec| {
        as_member(spec, "pidns-sb", sandbox_pid)
    });
    let out = run_member_to_end(&rt, &dir, "pidns-private", &private);
    assert_ne!(field(&out, "ns"), sandbox_ns, "{out}");
    assert_eq!(field(&out, "self"), "1", "{out}");
    assert!(field(&out, "pid1").starts_with("sh -c "), "{out}");
    assert!(!field(&out, "all").contains("sleep 100000"), "{out}");

    tear_down_pod(&rt, &["pidns-shared", "pidns-private"], "pidns-sb");
}

#[test]
fn a_members_limits_are_its_cgroup_in_the_guest() {
    let Some(g) = guest_ready("a_members_limits_are_its_cgroup_in_the_guest") else {
        return;
    };
    let dir = scratch().join("limits");
    std::fs::create_dir_all(&dir).expect("dir");
    let rt = Runtime::vmrun(&dir.join("root"), &g.kernel, &g.initrd, boot_timeout());
    let sandbox_pid = start_sandbox(&rt, "limits-sandbox", "limits-sb");

    // The member has a cgroup namespace (the base bundle's): its own
    // cgroup is /sys/fs/cgroup.
    let probe = r#"echo "memory=$(cat /sys/fs/cgroup/memory.max)"; echo "pids=$(cat /sys/fs/cgroup/pids.max)"; echo "cgroup=$(cat /proc/self/cgroup)""#;
    let limited = bundle("limits-member", &["sh", "-c", probe], |spec| {
        as_member(spec, "limits-sb", sandbox_pid);
        spec["linux"]["resources"]["memory"] = json!({"limit": 64i64 << 20});
        spec["linux"]["resources"]["pids"] = json!({"limit": 32});
    });
    let out = run_member_to_end(&rt, &dir, "limits-member", &limited);
    assert_eq!(field(&out, "memory"), (64u64 << 20).to_string(), "{out}");
    assert_eq!(field(&out, "pids"), "32", "{out}");
    assert_eq!(field(&out, "cgroup"), "0::/", "{out}");

    // The limits are the member's, not the pod's: the sandbox has none.
    let sandbox = rt.call(
        "exec",
        &[
            "limits-sb",
            "sh",
            "-c",
            "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max",
        ],
    );
    assert!(sandbox.success(), "{}", sandbox.describe());
    assert_eq!(
        sandbox.stdout.split_whitespace().collect::<Vec<_>>(),
        ["max", "max"],
        "{}",
        sandbox.describe()
    );

    tear_down_pod(&rt, &["limits-member"], "limits-sb");
}
