//! `vmrun bench` itself: its JSON parses, phases are in order, every peer
//! asked for is measured or reported missing/refused with a reason, the
//! containerd clients (`ctr-*`, `cri-*`) are timed and their private
//! containerd leaves nothing, the memory reading finds the guest RAM, and
//! density mode leaves nothing behind. Structure only, never durations. Guest tests skip loudly (or
//! fail under `VMRUN_REQUIRE_GUEST=1`) where guests cannot run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use vmrun_tests::guest_env::{host_can_run_guests, GuestReadiness};
use vmrun_tests::{guest_ready, scratch_dir, vmrun_bin, wait_until};

/// The peers `--vs` accepts, all asked for.
const PEERS: [&str; 6] = [
    "runc",
    "crun",
    "podman",
    "podman-vmrun",
    "qemu-microvm",
    "firecracker",
];

/// containerd's clients (issue 13): `ctr run` and a CRI pod through the
/// bench's private containerd, each with vmrun and with runc.
const CLIENT_PEERS: [&str; 4] = ["ctr-vmrun", "ctr-runc", "cri-vmrun", "cri-runc"];

/// What a client peer needs installed (as the bench checks it).
fn client_peer_installed(peer: &str, cri_client: bool) -> bool {
    let mut needs = vec!["containerd", "ctr", "containerd-shim-runc-v2", "tar"];
    if peer.starts_with("cri-") {
        needs.extend(["ip", "nsenter"]);
    }
    if peer.ends_with("-runc") {
        needs.push("runc");
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let cni = ["bridge", "host-local"].map(|p| Path::new("/usr/lib/cni").join(p).is_file());
    needs
        .iter()
        .all(|program| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
        && (!peer.starts_with("cri-") || (cri_client && cni.iter().all(|c| *c)))
}

/// The order vmrun records a container run's phases in (a subsequence is
/// what one run reports).
const RUN_PHASES: [&str; 9] = [
    "process_start",
    "vm_created",
    "kernel_loaded",
    "first_kvm_run",
    "init_reached",
    "agent_ready",
    "container_created",
    "container_started",
    "exit",
];

/// Is the peer's program on PATH?
fn installed(peer: &str) -> bool {
    let program = match peer {
        "qemu-microvm" => "qemu-system-x86_64",
        "podman-vmrun" => "podman",
        other => other,
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|d| d.join(program).is_file())
}

fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch_dir("vmrun-guest-bench", "768m"))
}

/// A bench's whole run: status, stdout, stderr.
struct Benched {
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Benched {
    fn describe(&self) -> String {
        format!(
            "status: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// Runs `vmrun bench ARGS` (output to files) with a generous hang guard,
/// saying every minute that it still runs (the test host's stall watchdog
/// wants output; the bench itself prints nothing until it is done).
fn bench(name: &str, args: &[&str], env: &[(&str, &Path)]) -> Benched {
    let dir = scratch().join(format!("{name}-out"));
    std::fs::create_dir_all(&dir).expect("output dir");
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(vmrun_bin())
        .arg("bench")
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start vmrun bench");
    let start = Instant::now();
    let deadline = start + Duration::from_secs(3600);
    let status = loop {
        let slice = (Instant::now() + Duration::from_secs(60)).min(deadline);
        if let Some(status) = wait_until_quietly(&mut child, slice) {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break wait_until(&mut child, Instant::now());
        }
        let _ = writeln!(
            std::io::stderr().lock(),
            "{name}: vmrun bench still running ({} s)",
            start.elapsed().as_secs()
        );
    };
    Benched {
        status,
        stdout: std::fs::read_to_string(&out).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

/// Waits for `child` until `until`; `None` if it still runs (not killed).
fn wait_until_quietly(child: &mut std::process::Child, until: Instant) -> Option<ExitStatus> {
    loop {
        if let Some(status) = child.try_wait().expect("wait for vmrun bench") {
            return Some(status);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn guest_args<'a>(g: &'a GuestReadiness, workdir: &'a Path) -> Vec<&'a str> {
    vec![
        "--kernel",
        g.kernel.to_str().expect("UTF-8"),
        "--initrd",
        g.initrd.to_str().expect("UTF-8"),
        "--workdir",
        workdir.to_str().expect("UTF-8"),
        "--settle-ms",
        "500",
    ]
}

/// The command lines of the processes that mention `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

fn read_json(path: &Path, ran: &Benched) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no --json file ({e})\n{}", ran.describe()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("--json is not JSON ({e}):\n{text}"))
}

fn runtime<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["runtimes"]
        .as_array()
        .and_then(|a| a.iter().find(|r| r["name"] == name))
        .unwrap_or_else(|| panic!("runtime {name} is not in the report:\n{doc:#}"))
}

/// The runs' phases of `clock`, as (name, ms) lists.
fn phases_of(run: &Value, clock: &str) -> Vec<(String, f64)> {
    run["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .filter(|p| p["clock"] == clock)
        .map(|p| {
            (
                p["name"].as_str().expect("name").to_string(),
                p["ms"].as_f64().expect("ms"),
            )
        })
        .collect()
}

fn assert_ordered(name: &str, phases: &[(String, f64)], order: &[&str]) {
    let mut last = (0usize, f64::MIN);
    for (phase, ms) in phases {
        let pos = order
            .iter()
            .position(|o| o == phase)
            .unwrap_or_else(|| panic!("{name}: unexpected phase {phase} in {phases:?}"));
        assert!(
            pos >= last.0 && *ms >= last.1,
            "{name}: phases out of order: {phases:?}"
        );
        last = (pos, *ms);
    }
}

#[test]
fn bench_reports_every_runtime_with_ordered_phases() {
    let Some(g) = guest_ready("bench_reports_every_runtime_with_ordered_phases") else {
        return;
    };
    let work = scratch().join("all");
    let json = scratch().join("all.json");
    let chart = scratch().join("all.svg");
    let mut args = guest_args(&g, &work);
    let vs = PEERS.join(",");
    args.extend(["-n", "1", "--warmup", "0", "--vs", &vs]);
    args.extend([
        "--json",
        json.to_str().expect("UTF-8"),
        "--chart",
        chart.to_str().expect("UTF-8"),
    ]);
    let ran = bench("all", &args, &[]);
    assert_eq!(
        ran.status.and_then(|s| s.code()),
        Some(0),
        "vmrun bench failed\n{}",
        ran.describe()
    );
    let doc = read_json(&json, &ran);
    assert_eq!(doc["schema"], "vmrun-bench/1");
    if std::env::var("VMRUN_IN_TESTHOST").is_ok_and(|v| v == "1") {
        assert_eq!(doc["host"]["virtualization"], "emulated", "{doc:#}");
        assert!(
            ran.stdout.contains("NOT hardware numbers"),
            "{}",
            ran.describe()
        );
    }
    // vmrun's variants ran and each run has its phases in order.
    for name in ["vmrun", "vmrun-lifecycle", "vmrun-boot"] {
        let r = runtime(&doc, name);
        assert_eq!(r["status"], "measured", "{name}: {r:#}");
        let runs = r["runs"].as_array().expect("runs");
        assert_eq!(runs.len(), 1, "{name}: {r:#}");
        assert_eq!(runs[0]["ok"], true, "{name}: {r:#}");
        let wall = runs[0]["wall_ms"].as_f64().expect("wall_ms");
        for clock in ["vmm", "caller"] {
            for (phase, ms) in phases_of(&runs[0], clock) {
                assert!(
                    ms >= 0.0 && ms <= wall,
                    "{name}: {phase} at {ms} ms outside the run's {wall} ms"
                );
            }
        }
    }
    let run = &runtime(&doc, "vmrun")["runs"][0];
    let vmm = phases_of(run, "vmm");
    assert_ordered("vmrun", &vmm, &RUN_PHASES);
    for needed in [
        "vm_created",
        "agent_ready",
        "container_created",
        "container_started",
        "exit",
    ] {
        assert!(
            vmm.iter().any(|(p, _)| p == needed),
            "vmrun run lacks {needed}: {vmm:?}"
        );
    }
    let lifecycle = phases_of(&runtime(&doc, "vmrun-lifecycle")["runs"][0], "caller");
    assert_ordered(
        "vmrun-lifecycle",
        &lifecycle,
        &["created", "started", "exited", "deleted"],
    );
    assert_eq!(lifecycle.len(), 4, "{lifecycle:?}");
    let boot = &runtime(&doc, "vmrun-boot")["runs"][0];
    assert_ordered("vmrun-boot", &phases_of(boot, "vmm"), &RUN_PHASES);
    assert!(
        phases_of(boot, "caller")
            .iter()
            .any(|(p, _)| p == "ready_line"),
        "{boot:#}"
    );
    // Every peer asked for: measured, or missing/refused with a reason.
    for peer in PEERS {
        let r = runtime(&doc, peer);
        match r["status"].as_str() {
            Some("measured") => {
                assert_eq!(r["runs"].as_array().map(Vec::len), Some(1), "{peer}: {r:#}");
                assert!(
                    r["ratio_to_baseline"].is_number() || r["runs"][0]["ok"] == false,
                    "{peer}: {r:#}"
                );
            }
            Some("missing") | Some("refused") => {
                assert!(
                    r["reason"].as_str().is_some_and(|s| !s.is_empty()),
                    "{peer}: no reason: {r:#}"
                );
                assert!(
                    ran.stdout.contains(&format!(
                        "| {peer} | {}",
                        r["status"].as_str().unwrap_or("")
                    )),
                    "{peer} not in the table\n{}",
                    ran.stdout
                );
            }
            other => panic!("{peer}: status {other:?}: {r:#}"),
        }
        let installed = installed(peer);
        assert_eq!(
            r["status"] == "missing",
            !installed,
            "{peer}: installed={installed}: {r:#}"
        );
    }
    // podman driving vmrun (conmon calling its verbs) works where podman is.
    let podman_vmrun = runtime(&doc, "podman-vmrun");
    if installed("podman-vmrun") {
        assert_eq!(podman_vmrun["runs"][0]["ok"], true, "{podman_vmrun:#}");
    }
    // The memory reading found the guest RAM and took it out.
    let m = &doc["memory"];
    let rss = m["rss_kib"].as_u64().expect("rss_kib");
    let without = m["vmm_rss_without_guest_kib"]
        .as_u64()
        .unwrap_or_else(|| panic!("guest RAM not found: {m:#}"));
    let touched = m["guest_ram"]["rss_kib"].as_u64().expect("guest RAM rss");
    assert_eq!(m["guest_ram"]["size_kib"], 128 * 1024, "{m:#}");
    assert!(
        touched > 0 && without > 0 && without + touched == rss,
        "{m:#}"
    );
    let svg = std::fs::read_to_string(&chart).expect("--chart file");
    assert!(
        svg.starts_with("<svg") && svg.contains("vmrun-lifecycle"),
        "{}",
        &svg[..svg.len().min(300)]
    );
}

#[test]
fn density_mode_leaves_nothing_behind() {
    let Some(g) = guest_ready("density_mode_leaves_nothing_behind") else {
        return;
    };
    let work = scratch().join("density");
    let json = scratch().join("density.json");
    let mut args = guest_args(&g, &work);
    args.extend([
        "-n",
        "1",
        "--warmup",
        "0",
        "--vmrun",
        "run",
        "--no-memory",
        "--density",
        "3",
    ]);
    args.extend(["--json", json.to_str().expect("UTF-8")]);
    let ran = bench("density", &args, &[]);
    assert_eq!(
        ran.status.and_then(|s| s.code()),
        Some(0),
        "vmrun bench --density failed\n{}",
        ran.describe()
    );
    let doc = read_json(&json, &ran);
    let d = &doc["density"];
    assert_eq!(
        (d["requested"].as_u64(), d["created"].as_u64()),
        (Some(3), Some(3)),
        "{d:#}"
    );
    let steps = d["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 3, "{d:#}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["containers"].as_u64(), Some(i as u64 + 1), "{d:#}");
        assert!(s["pss_sum_kib"].as_u64().is_some_and(|v| v > 0), "{d:#}");
    }
    assert!(
        d["pss_per_container_kib"].as_u64().is_some_and(|v| v > 0),
        "{d:#}"
    );
    let t = &d["teardown"];
    assert_eq!(t["clean"], true, "teardown left something: {t:#}");
    for list in [
        "delete_errors",
        "leftover_processes",
        "leftover_state",
        "leftover_cgroups",
    ] {
        assert_eq!(t[list].as_array().map(Vec::len), Some(0), "{list}: {t:#}");
    }
    // Checked from here too: no state dir, no process of the bench's root.
    let root = work.join("state/vmrun");
    let left: Vec<_> = std::fs::read_dir(&root)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "state left under {}: {left:?}",
        root.display()
    );
    let needle = root.display().to_string();
    let procs = processes_mentioning(&needle);
    assert!(
        procs.is_empty(),
        "processes of the bench's containers left: {procs:?}"
    );
}

/// `--vs ctr-vmrun,ctr-runc,cri-vmrun,cri-runc`: each installed peer is
/// measured and its run succeeds (the CRI ones with their pod's steps in
/// order), each other one is reported missing; the bench's containerd
/// instances leave nothing behind.
#[test]
fn bench_times_containerd_clients() {
    let Some(g) = guest_ready("bench_times_containerd_clients") else {
        return;
    };
    let work = scratch().join("clients");
    let json = scratch().join("clients.json");
    let mut args = guest_args(&g, &work);
    let vs = CLIENT_PEERS.join(",");
    let json_arg = json.to_str().expect("UTF-8");
    args.extend(["-n", "1", "--warmup", "0", "--vmrun", "run", "--no-memory"]);
    args.extend(["--vs", &vs, "--json", json_arg]);
    let client = vmrun_tests::clients::cri::cri_client_bin().ok();
    let env: Vec<(&str, &Path)> = client
        .iter()
        .map(|c| (vmrun_tests::clients::cri::CRI_CLIENT_ENV, c.as_path()))
        .collect();
    let ran = bench("clients", &args, &env);
    assert_eq!(
        ran.status.and_then(|s| s.code()),
        Some(0),
        "vmrun bench failed\n{}",
        ran.describe()
    );
    let doc = read_json(&json, &ran);
    for peer in CLIENT_PEERS {
        let r = runtime(&doc, peer);
        if !client_peer_installed(peer, client.is_some()) {
            assert_eq!(r["status"], "missing", "{peer}: {r:#}");
            assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r:#}");
            assert!(
                ran.stdout.contains(&format!("| {peer} | missing")),
                "{}",
                ran.stdout
            );
            continue;
        }
        assert_eq!(r["status"], "measured", "{peer}: {r:#}");
        assert_eq!(r["baseline"], "vmrun", "{r:#}");
        let run = &r["runs"][0];
        assert_eq!(run["ok"], true, "{peer}: {r:#}");
        assert_eq!(run["exit_code"], 0, "{peer}: {r:#}");
        assert!(r["ratio_to_baseline"].is_number(), "{peer}: {r:#}");
        if peer.starts_with("cri-") {
            let order = ["pod_ready", "created", "started", "exited", "pod_removed"];
            let phases = phases_of(run, "caller");
            assert_ordered(peer, &phases, &order);
            assert_eq!(phases.len(), order.len(), "{peer}: {phases:?}");
        }
        assert!(
            ran.stdout.contains(&format!("| {peer} | measured")),
            "{}",
            ran.stdout
        );
    }
    // containerd and its shims are gone, and their directories with them.
    for sub in ["ctd-ctr", "ctd-cri"] {
        assert!(!work.join(sub).exists(), "{sub} left in {}", work.display());
    }
    let needle = work.display().to_string();
    let procs = processes_mentioning(&needle);
    assert!(
        procs.is_empty(),
        "processes of the bench's containerd left: {procs:?}"
    );
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !netns
            .iter()
            .any(|n| n.starts_with("vmrb-") && n.ends_with("-cri")),
        "{netns:?}"
    );
}

#[test]
fn bench_fails_clearly_where_guests_cannot_run() {
    let Err(reason) = host_can_run_guests() else {
        // Guests run here: the tests above cover the bench.
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("work");
    let out = vmrun_tests::run_vmrun(
        &[
            "bench",
            "-n",
            "1",
            "--warmup",
            "0",
            "--vmrun",
            "run",
            "--no-memory",
            "--workdir",
            work.to_str().expect("UTF-8"),
        ],
        Duration::from_secs(600),
    );
    if out.stderr.contains("is not built") {
        return; // No guest kernel here: the message names the script (cli.rs covers it).
    }
    assert!(!out.success(), "{}", out.describe());
    assert!(
        out.stderr.contains("vmrun cannot run the workload"),
        "{reason}\n{}",
        out.describe()
    );
}
