//! Faults in real microVMs, driven through runc's verbs (#12): a guest
//! kernel panic, the guest agent (PID 1) crashing, the container's init
//! killed from the host, a full disk under `--root`, a guest that never
//! becomes ready and the caller (conmon's part) killed while the container
//! runs. Each ends with [`Traces::assert_nothing_left`]: no process, mount,
//! tap, host cgroup, socket or state file of the container is left.
//! (A VMM killed with SIGKILL is `guest_lifecycle`'s.)
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use vmrun_tests::bundle::edit_config;
use vmrun_tests::caller::Caller;
use vmrun_tests::clients::command::poll;
use vmrun_tests::clients::netns::PrivateNet;
use vmrun_tests::cpio::{newc_archive, Entry};
use vmrun_tests::leftovers::Traces;
use vmrun_tests::runtimes::{code, Runtime};
use vmrun_tests::scratch::mount_tmpfs;
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::{boot_timeout, guest_ready, run_ok};

/// How long a container may take to reach a state (a hang guard).
const STATE_LIMIT: Duration = Duration::from_secs(120);

static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-faults", "512m");

fn scratch() -> &'static Path {
    SCRATCH.dir()
}

fn base_bundle() -> &'static Path {
    SCRATCH.base_bundle()
}

/// A fresh copy of the busybox bundle running `args`, its spec edited.
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

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// vmrun with a fresh root of its own for `test`.
fn vmrun_for(test: &str) -> Option<Runtime> {
    let g = guest_ready(test)?;
    let dir = scratch().join(test);
    std::fs::create_dir_all(&dir).expect("test dir");
    Some(Runtime::vmrun(
        &dir.join("root"),
        &g.kernel,
        &g.initrd,
        boot_timeout(),
    ))
}

/// The caller stand-in (conmon's part).
fn subreaper() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_vmrun-subreaper"))
}

/// The host cgroups `state.json` records; they exist while the VMM runs.
fn recorded_cgroups(vmrun: &Runtime, id: &str) -> Vec<PathBuf> {
    let path = vmrun.root.join(id).join("state.json");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("state.json")).expect("json");
    let dirs: Vec<PathBuf> = record["hostCgroups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(PathBuf::from))
        .collect();
    assert!(!dirs.is_empty(), "the VMM joined no host cgroup: {record}");
    for dir in &dirs {
        assert!(dir.is_dir(), "recorded cgroup {} missing", dir.display());
    }
    dirs
}

/// For a container whose VMM has ended: `state` says stopped, `delete`
/// succeeds and nothing is left.
fn delete_leaves_nothing(vmrun: &Runtime, traces: &Traces, cgroups: &[PathBuf]) {
    assert_eq!(vmrun.status(traces.id), "stopped");
    let out = vmrun.call("delete", &[traces.id]);
    assert!(out.success(), "{}", out.describe());
    for dir in cgroups {
        assert!(!dir.exists(), "host cgroup {} left", dir.display());
    }
    traces.assert_nothing_left();
}

/// Starts the container in `b` as `id` (created by a conmon stand-in),
/// expects the guest to die: the VMM exits non-zero with `log_line` in its
/// log, and `delete` leaves nothing.
fn guest_death_stops_the_vmm(vmrun: &Runtime, b: &Path, id: &str, log_line: &str) {
    let mut caller = Caller::create(subreaper(), vmrun, b, id);
    let cgroups = recorded_cgroups(vmrun, id);
    let out = vmrun.call("start", &[id]);
    assert!(out.success(), "{}", out.describe());
    let exit = caller.wait_exit(STATE_LIMIT);
    assert!(
        exit.starts_with("exited ") && exit != "exited 0",
        "the VMM ended with `{exit}`, not a failure:\n{}",
        caller.output()
    );
    assert!(
        caller.vmm_log().contains(log_line),
        "the VMM's log does not name `{log_line}`:\n{}",
        caller.output()
    );
    let traces = Traces {
        id,
        bundle: b,
        root: &vmrun.root,
        netns: None,
    };
    delete_leaves_nothing(vmrun, &traces, &cgroups);
}

/// Removes `path` (a JSON string) from the spec's `linux.<list>`.
fn unlist(spec: &mut Value, list: &str, path: &str) {
    if let Some(paths) = spec["linux"][list].as_array_mut() {
        paths.retain(|p| p != path);
    }
}

/// The guest kernel panics while the container runs: the container turns
/// `vm.panic_on_oom` on (`/proc/sys` made writable; our kernel has no
/// magic SysRq, so `/proc/sysrq-trigger` cannot do it) and fills a tmpfs
/// until the guest is out of memory.
#[test]
fn a_guest_kernel_panic_stops_the_vmm_non_zero_and_delete_cleans_everything() {
    let test = "a_guest_kernel_panic_stops_the_vmm_non_zero_and_delete_cleans_everything";
    let Some(vmrun) = vmrun_for(test) else {
        return;
    };
    let script = "echo 1 > /proc/sys/vm/panic_on_oom || exit 71; echo filling; \
                  dd if=/dev/zero of=/dev/shm/fill bs=1M; echo survived; exit 72";
    let b = bundle("panic", &["sh", "-c", script], |spec| {
        unlist(spec, "readonlyPaths", "/proc/sys");
        for mount in spec["mounts"].as_array_mut().expect("mounts") {
            if mount["destination"] == "/dev/shm" {
                mount["options"] = json!(["nosuid", "nodev", "mode=1777", "size=4g"]);
            }
        }
    });
    guest_death_stops_the_vmm(
        &vmrun,
        &b,
        "vmflt-panic",
        "guest kernel panicked: Out of memory",
    );
}

/// The guest agent (PID 1) crashes: signals cannot kill a PID 1 that does
/// not handle them, so the container (in the guest's pid namespace, with
/// CAP_SYS_PTRACE) overwrites the agent's code through `/proc/1/mem` and
/// exits; the agent, woken by the exit, faults and dies, which panics the
/// guest kernel ("Attempted to kill init!").
#[test]
fn the_agent_crashing_stops_the_vmm_non_zero_and_delete_cleans_everything() {
    let test = "the_agent_crashing_stops_the_vmm_non_zero_and_delete_cleans_everything";
    let Some(vmrun) = vmrun_for(test) else {
        return;
    };
    let script = "while read -r range perms rest; do [ \"$perms\" = r-xp ] && break; done \
                  < /proc/1/maps; [ \"$perms\" = r-xp ] || exit 70; \
                  start=$((0x${range%-*})); end=$((0x${range#*-})); \
                  echo \"agent $(cat /proc/1/comm) code at $range\"; \
                  dd if=/dev/zero of=/proc/1/mem bs=4096 seek=$((start / 4096)) \
                  count=$(((end - start) / 4096)) conv=notrunc || exit 71; echo zeroed";
    let b = bundle("agent-crash", &["sh", "-c", script], |spec| {
        spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces")
            .retain(|ns| ns["type"] != "pid");
        for set in ["bounding", "effective", "permitted"] {
            spec["process"]["capabilities"][set]
                .as_array_mut()
                .expect("capabilities")
                .push(json!("CAP_SYS_PTRACE"));
        }
    });
    guest_death_stops_the_vmm(
        &vmrun,
        &b,
        "vmflt-agent",
        "guest kernel panicked: Attempted to kill init!",
    );
}

/// `vmrun kill ID KILL` kills the container's init: the VMM (the
/// container's pid) exits 137, and `delete` also removes the network
/// plumbing. While the container runs, the leftover scan finds it.
#[test]
fn the_init_killed_from_the_host_exits_137_and_delete_cleans_everything() {
    let test = "the_init_killed_from_the_host_exits_137_and_delete_cleans_everything";
    let Some(vmrun) = vmrun_for(test) else {
        return;
    };
    // A network namespace as CNI makes it: a veth pair, one end up with
    // an address (both ends in the namespace, gone with it).
    let net = PrivateNet::create("faults");
    for args in [
        &[
            "link", "add", "eth0", "type", "veth", "peer", "name", "eth1",
        ][..],
        &["addr", "add", "10.98.7.2/24", "dev", "eth0"],
        &["link", "set", "eth0", "up"],
    ] {
        run_ok(
            &mut net.command("ip", args),
            &format!("ip {}", args.join(" ")),
        );
    }
    let b = bundle("init-killed", &["sleep", "1000"], |spec| {
        let namespaces = spec["linux"]["namespaces"]
            .as_array_mut()
            .expect("namespaces");
        namespaces.retain(|ns| ns["type"] != "network");
        namespaces.push(json!({"type": "network", "path": net.path()}));
    });
    let id = "vmflt-killed";
    let mut caller = Caller::create(subreaper(), &vmrun, &b, id);
    let cgroups = recorded_cgroups(&vmrun, id);
    let out = vmrun.call("start", &[id]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(vmrun.status(id), "running");
    let netns = net.path();
    let traces = Traces {
        id,
        bundle: &b,
        root: &vmrun.root,
        netns: Some(&netns),
    };
    let running = traces.found();
    for kind in ["process ", "tap vmtap", "tap ingress qdisc", "state "] {
        assert!(
            running.iter().any(|t| t.starts_with(kind)),
            "the scan misses the running container's `{kind}`: {running:#?}"
        );
    }
    let out = vmrun.call("kill", &[id, "KILL"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(
        caller.wait_exit(STATE_LIMIT),
        "exited 137",
        "{}",
        caller.output()
    );
    delete_leaves_nothing(&vmrun, &traces, &cgroups);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallTmpfs(PathBuf);

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// `--root` on a full disk (a 64 KiB tmpfs, filled first): `create` fails
/// writing the state, names the cause, and leaves no VMM and nothing
/// half-made under the root.
#[test]
fn a_full_disk_under_root_fails_create_cleanly() {
    let test = "a_full_disk_under_root_fails_create_cleanly";
    let Some(vmrun) = vmrun_for(test) else {
        return;
    };
    std::fs::create_dir_all(&vmrun.root).expect("root");
    mount_tmpfs(&vmrun.root, "64k");
    let _mounted = SmallTmpfs(vmrun.root.clone());
    let mut filler = std::fs::File::create(vmrun.root.join("filler")).expect("filler");
    let full = loop {
        if let Err(e) = filler.write_all(&[0xa5; 4096]) {
            break e;
        }
    };
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    drop(filler);
    let b = bundle("disk-full", &["sleep", "1000"], |_| {});
    let id = "vmflt-full";
    let out = vmrun.call_detached("create", &["--bundle", s(&b), id]);
    assert!(out.finished(), "{}", out.describe());
    assert_ne!(code(&out), Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("No space left on device"),
        "the error does not name the cause: {}",
        out.describe()
    );
    let entries: Vec<String> = std::fs::read_dir(&vmrun.root)
        .expect("root")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    assert_eq!(entries, ["filler"], "create left something under the root");
    Traces {
        id,
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    }
    .assert_nothing_left();
}

/// An initramfs whose /init (busybox sh) never starts the agent.
fn initramfs_without_agent() -> PathBuf {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let init = b"#!/bin/busybox sh\necho 'faults-init: no agent here'\n\
                 while :; do /bin/busybox sleep 3600; done\n";
    let archive = newc_archive(&[
        Entry::Dir { path: "bin" },
        Entry::File {
            path: "bin/busybox",
            mode: 0o755,
            data: &busybox,
        },
        Entry::Dir { path: "dev" },
        Entry::CharDevice {
            path: "dev/console",
            major: 5,
            minor: 1,
        },
        Entry::File {
            path: "init",
            mode: 0o755,
            data: init,
        },
    ]);
    let path = scratch().join("no-agent-initramfs.cpio");
    std::fs::write(&path, archive).expect("write the initramfs");
    path
}

/// A guest whose agent never answers: `create` gives up after
/// `--agent-timeout`, says so, and leaves no VMM and no state.
#[test]
fn a_guest_that_never_becomes_ready_fails_create_with_a_timeout() {
    let test = "a_guest_that_never_becomes_ready_fails_create_with_a_timeout";
    let Some(g) = guest_ready(test) else {
        return;
    };
    let dir = scratch().join(test);
    std::fs::create_dir_all(&dir).expect("test dir");
    let console = dir.join("console.log");
    let mut vmrun = Runtime::vmrun(
        &dir.join("root"),
        &g.kernel,
        &initramfs_without_agent(),
        boot_timeout(),
    );
    vmrun
        .create_args
        .extend(["--agent-timeout", "20", "--console-log", s(&console)].map(String::from));
    let b = bundle("never-ready", &["true"], |_| {});
    let id = "vmflt-never";
    let out = vmrun.call_detached("create", &["--bundle", s(&b), id]);
    let console_text = std::fs::read_to_string(&console).unwrap_or_default();
    assert!(out.finished(), "{}", out.describe());
    assert_ne!(code(&out), Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("the agent did not answer") && out.stderr.contains("20s"),
        "no timeout error: {}\n--- console ---\n{console_text}",
        out.describe()
    );
    let state = vmrun.call("state", &[id]);
    assert!(
        state.stderr.contains("does not exist"),
        "{}",
        state.describe()
    );
    Traces {
        id,
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    }
    .assert_nothing_left();
}

fn parent_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 1..)?;
    after.split_whitespace().nth(1)?.parse().ok()
}

/// The caller (conmon's stand-in, the VMM's parent) is killed with
/// SIGKILL while the container runs: the VMM is reparented and the
/// container keeps running and answering; kill and delete then clean up.
#[test]
fn the_caller_killed_leaves_the_container_running_and_delete_cleans_everything() {
    let test = "the_caller_killed_leaves_the_container_running_and_delete_cleans_everything";
    let Some(vmrun) = vmrun_for(test) else {
        return;
    };
    let b = bundle("caller-killed", &["sleep", "1000"], |_| {});
    let id = "vmflt-orphan";
    let mut caller = Caller::create(subreaper(), &vmrun, &b, id);
    let vmm = caller.vmm_pid();
    let cgroups = recorded_cgroups(&vmrun, id);
    let out = vmrun.call("start", &[id]);
    assert!(out.success(), "{}", out.describe());
    let caller_pid = i32::try_from(caller.child.id()).expect("pid");
    assert_eq!(parent_of(vmm), Some(caller_pid), "{}", caller.output());
    caller.child.kill().expect("SIGKILL the caller");
    let status = caller.child.wait().expect("reap the caller");
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let parent = parent_of(vmm);
    assert!(
        parent.is_some_and(|p| p != caller_pid),
        "the VMM {vmm} is gone or not reparented (parent {parent:?})"
    );
    assert_eq!(vmrun.status(id), "running");
    let out = vmrun.call("exec", &[id, "echo", "still-here"]);
    assert_eq!(out.stdout, "still-here\n", "{}", out.describe());
    let out = vmrun.call("kill", &[id, "KILL"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(vmrun.wait_status(id, "stopped", STATE_LIMIT), "stopped");
    let traces = Traces {
        id,
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    };
    delete_leaves_nothing(&vmrun, &traces, &cgroups);
}

/// `create` killed while the microVM boots (a client giving up): the VMM
/// finds its caller gone before it would report the container created,
/// powers the VM off and removes what it made. Nothing is left, and no VMM
/// runs on that nobody could see or delete.
#[test]
fn create_killed_while_the_vm_boots_leaves_nothing() {
    let test = "create_killed_while_the_vm_boots_leaves_nothing";
    let Some(vmrun) = vmrun_for(test) else {
        return;
    };
    let b = bundle("create-killed", &["sleep", "1000"], |_| {});
    let id = "vmflt-abandoned";
    let mut create = vmrun.command("create", &["--bundle", s(&b), id]);
    create
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut create = create.spawn().expect("start vmrun create");
    let traces = Traces {
        id,
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    };
    // The VMM daemon exists (its state directory holds its socket or log)
    // well before the guest is up: kill `create` then.
    let daemon_seen = poll(STATE_LIMIT, || {
        let root = vmrun.root.to_string_lossy().into_owned();
        let procs = vmrun_tests::leftovers::processes_mentioning(&[&root]);
        procs.iter().any(|p| p.contains("__vmm")).then_some(())
    });
    assert!(daemon_seen.is_some(), "no VMM daemon appeared for {id}");
    create.kill().expect("SIGKILL create");
    let _ = create.wait();
    // The VMM ends by itself once it finds `create` gone.
    let gone = poll(STATE_LIMIT, || traces.found().is_empty().then_some(()));
    assert!(
        gone.is_some(),
        "left behind after create was killed:\n{}",
        traces.found().join("\n")
    );
    assert!(vmrun.call("state", &[id]).stderr.contains("does not exist"));
}
