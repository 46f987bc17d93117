//! `vmrun run` end to end: busybox bundles (rootfs/build-busybox-bundle.sh)
//! run in microVMs with stdio, exit status, signals, virtio-fs and
//! virtio-blk roots. Guest tests skip loudly (or fail under
//! `VMRUN_REQUIRE_GUEST=1`) where guests cannot run; the CLI error tests
//! run everywhere (input is checked before any VM exists).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use vmrun_tests::bundle::edit_config;
use vmrun_tests::guest_env::GuestReadiness;
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::{boot_timeout, guest_ready, run_ok, vmrun_bin, wait_until};

/// A scratch directory for bundles. In the test host the work tree and
/// /tmp are overlays (over 9p): bundles live on a tmpfs mounted here, as a
/// real host's local disk would be.
static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-run", "512m");

fn scratch() -> &'static Path {
    SCRATCH.dir()
}

fn base_bundle() -> &'static Path {
    SCRATCH.base_bundle()
}

/// A fresh copy of the busybox bundle whose process runs `args`.
fn bundle(name: &str, args: &[&str]) -> PathBuf {
    let dir = scratch().join(name);
    run_ok(
        Command::new("cp").arg("-a").arg(base_bundle()).arg(&dir),
        "copying the bundle (cp -a)",
    );
    edit_config(&dir, |spec| {
        spec["process"]["args"] = serde_json::json!(args)
    });
    dir
}

/// What a `vmrun run` produced (stdout as bytes).
struct Ran {
    status: Option<ExitStatus>,
    stdout: Vec<u8>,
    stderr: String,
}

impl Ran {
    fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }

    fn describe(&self) -> String {
        format!(
            "status: {:?}\n--- stdout ({} bytes, first 2000 shown) ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout.len(),
            String::from_utf8_lossy(&self.stdout[..self.stdout.len().min(2000)]),
            self.stderr
        )
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn spawn_vmrun(args: &[&str], stdin: bool) -> Child {
    Command::new(vmrun_bin())
        .args(args)
        .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmrun")
}

/// Waits for `child` (killing it after `limit`) and gathers its output;
/// stdout is empty here if the caller took it.
fn collect(mut child: Child, limit: Duration) -> Ran {
    let out = child.stdout.take();
    let mut err = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(mut out) = out {
            let _ = out.read_to_end(&mut v);
        }
        v
    });
    let err = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_until(&mut child, Instant::now() + limit);
    Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

fn run_args<'a>(g: &'a GuestReadiness, bundle: &'a Path, id: &'a str) -> Vec<&'a str> {
    vec![
        "run",
        "--kernel",
        g.kernel.to_str().expect("UTF-8"),
        "--initrd",
        g.initrd.to_str().expect("UTF-8"),
        "--bundle",
        bundle.to_str().expect("UTF-8"),
        id,
    ]
}

/// Runs the bundle in a microVM with `stdin` (None: /dev/null).
fn run(g: &GuestReadiness, bundle: &Path, id: &str, stdin: Option<&[u8]>) -> Ran {
    run_with(g, bundle, id, &[], stdin)
}

fn run_with(
    g: &GuestReadiness,
    bundle: &Path,
    id: &str,
    extra: &[&str],
    stdin: Option<&[u8]>,
) -> Ran {
    let mut args = run_args(g, bundle, id);
    args.splice(1..1, extra.iter().copied());
    let mut child = spawn_vmrun(&args, stdin.is_some());
    if let Some(data) = stdin {
        let mut pipe = child.stdin.take().expect("stdin");
        let data = data.to_vec();
        thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    collect(child, boot_timeout())
}

#[test]
fn echo_reaches_stdout_and_stderr_stays_separate() {
    let Some(g) = guest_ready("echo_reaches_stdout_and_stderr_stays_separate") else {
        return;
    };
    let b = bundle(
        "echo",
        &[
            "sh",
            "-c",
            "echo hello from the microVM; echo to-stderr >&2",
        ],
    );
    let ran = run(&g, &b, "echo", None);
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    assert_eq!(
        ran.stdout_text(),
        "hello from the microVM\n",
        "{}",
        ran.describe()
    );
    // Exactly what the container wrote: nothing from the agent or from
    // libcontainer's set-up (they log to the guest console, not fd 2).
    assert_eq!(ran.stderr, "to-stderr\n", "{}", ran.describe());
}

#[test]
fn exit_codes_come_back() {
    let Some(g) = guest_ready("exit_codes_come_back") else {
        return;
    };
    for code in [0, 1, 42] {
        let name = format!("exit{code}");
        let b = bundle(&name, &["sh", "-c", &format!("exit {code}")]);
        let ran = run(&g, &b, &name, None);
        assert_eq!(ran.code(), Some(code), "{}", ran.describe());
    }
}

/// Runs the bundle, waits until the container printed `ready`, then sends
/// `signal` to vmrun; returns the whole run (stdout includes `ready`).
/// Bounded: a vmrun that never prints `ready` or never exits is killed
/// after the boot timeout and the test fails with what it printed (a hang
/// must be a test failure, not a silent test host).
fn signal_when_ready(g: &GuestReadiness, bundle: &Path, id: &str, signal: &str) -> Ran {
    let mut child = spawn_vmrun(&run_args(g, bundle, id), false);
    let mut stdout = child.stdout.take().expect("stdout");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        let mut seen = Vec::new();
        let mut byte = [0u8; 1];
        while let Ok(1) = stdout.read(&mut byte) {
            seen.push(byte[0]);
            if seen.ends_with(b"ready\n") {
                let _ = ready_tx.send(());
            }
        }
        seen
    });
    if ready_rx.recv_timeout(boot_timeout()).is_ok() {
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }
    // collect's deadline kills a hanging vmrun, which ends the reader.
    let mut ran = collect(child, boot_timeout());
    ran.stdout = reader.join().unwrap_or_default();
    ran
}

#[test]
fn killed_by_a_signal_is_128_plus_n() {
    let Some(g) = guest_ready("killed_by_a_signal_is_128_plus_n") else {
        return;
    };
    // Without a PID namespace the shell is not an init (which ignores
    // signals it has no handler for, as with runc), so SIGKILL kills it.
    let b = bundle("killed", &["sh", "-c", "kill -KILL $$; echo survived"]);
    edit_config(&b, |spec| {
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|ns| ns["type"] != "pid");
        }
    });
    let ran = run(&g, &b, "killed", None);
    assert!(
        !ran.stdout_text().contains("survived"),
        "{}",
        ran.describe()
    );
    assert_eq!(ran.code(), Some(128 + 9), "{}", ran.describe());
}

#[test]
fn sigterm_to_vmrun_reaches_the_container() {
    let Some(g) = guest_ready("sigterm_to_vmrun_reaches_the_container") else {
        return;
    };
    let b = bundle(
        "sigterm",
        &[
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 1; done",
        ],
    );
    let ran = signal_when_ready(&g, &b, "sigterm", "-TERM");
    assert_eq!(ran.code(), Some(7), "{}", ran.describe());
    assert!(
        ran.stdout_text().contains("ready\ngot TERM\n"),
        "{}",
        ran.describe()
    );
}

#[test]
fn stdin_reaches_cat_and_comes_back() {
    let Some(g) = guest_ready("stdin_reaches_cat_and_comes_back") else {
        return;
    };
    let b = bundle("cat", &["cat"]);
    let data = b"data\nwith\0binary \xff bytes\n";
    let ran = run(&g, &b, "cat", Some(data));
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    assert_eq!(ran.stdout, data, "{}", ran.describe());
}

#[test]
fn ten_megabytes_of_stdout_arrive_intact() {
    let Some(g) = guest_ready("ten_megabytes_of_stdout_arrive_intact") else {
        return;
    };
    let b = bundle("stream", &["seq", "1", "1500000"]);
    let ran = run(&g, &b, "stream", None);
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    let expected: String = (1..=1_500_000).map(|n| format!("{n}\n")).collect();
    assert!(expected.len() > 10_000_000);
    assert_eq!(ran.stdout.len(), expected.len(), "{}", ran.describe());
    assert!(ran.stdout == expected.as_bytes(), "stream differs");
}

/// A vmrun process killed and reaped when dropped.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Resident memory of process `pid` in KiB (VmRSS), if it still runs.
fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A reader that stops reading must stop the writer in the guest (flow
/// control end to end: container pipe, agent relay, vsock credit, vmrun's
/// relay), so vmrun's memory stays bounded whatever the container writes.
/// The container writes 32 MiB in 1 MiB chunks and reports each finished
/// chunk on stderr; while the test does not read stdout, the count must
/// stop at a few chunks (what the buffers on the way hold) and vmrun must
/// not grow; once reading resumes, every byte arrives.
#[test]
fn a_stalled_reader_stops_the_writer_and_vmrun_memory_stays_bounded() {
    let Some(g) = guest_ready("a_stalled_reader_stops_the_writer_and_vmrun_memory_stays_bounded")
    else {
        return;
    };
    const CHUNKS: usize = 32;
    const MIB: usize = 1 << 20;
    // The buffers between the container and this test hold far less than
    // this; an unbounded relay would let the writer run through all 32.
    const MAX_CHUNKS_IN_FLIGHT: usize = 8;
    const MAX_GROWTH_KIB: u64 = 16 * 1024;
    let script = format!(
        "echo started >&2; i=0; while [ $i -lt {CHUNKS} ]; do head -c {MIB} /dev/zero || exit 3; \
         i=$((i+1)); echo chunk $i >&2; done; echo finished >&2"
    );
    let b = bundle("stalled-reader", &["sh", "-c", &script]);
    // Killed (with its VM) on every way out, a failed assertion included.
    let mut child = KillOnDrop(spawn_vmrun(&run_args(&g, &b, "stalled-reader"), false));
    let child = &mut child.0;
    let pid = child.id();
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");

    // stderr is read all along (it carries the progress lines).
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    let stderr_reader = thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            let _ = lines_tx.send(line);
        }
        all
    });

    let deadline = Instant::now() + boot_timeout();
    let mut chunks_written = 0usize;
    let mut started = false;
    let mut baseline_kib = None;
    let mut peak_kib = 0u64;
    let mut last_progress = Instant::now();
    // Phase 1: stdout unread. Wait for the writer to start, then until it
    // has made no progress for 10 s (blocked), or has written too much.
    loop {
        assert!(
            Instant::now() < deadline,
            "the container did not start/stall in time (started={started}, chunks={chunks_written})"
        );
        match lines_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line == "started" => {
                started = true;
                last_progress = Instant::now();
                baseline_kib = resident_kib(pid);
            }
            Ok(line) if line.starts_with("chunk ") => {
                chunks_written += 1;
                last_progress = Instant::now();
            }
            Ok(line) => assert_ne!(line, "finished", "the writer finished while nobody read"),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = child.kill();
                panic!(
                    "vmrun closed stderr before the writer stalled: {:?}",
                    child.wait()
                );
            }
        }
        if started {
            peak_kib = peak_kib.max(resident_kib(pid).unwrap_or(0));
        }
        assert!(
            chunks_written <= MAX_CHUNKS_IN_FLIGHT,
            "{chunks_written} MiB were written while nobody read stdout: the relay buffers without bound"
        );
        if started && last_progress.elapsed() >= Duration::from_secs(10) {
            break;
        }
    }
    let baseline_kib = baseline_kib.expect("vmrun's VmRSS when the container started");
    eprintln!(
        "stalled reader: the writer stopped after {chunks_written} MiB; vmrun VmRSS \
         {baseline_kib} KiB at the start, at most {peak_kib} KiB while stdout was unread"
    );
    assert!(
        peak_kib <= baseline_kib + MAX_GROWTH_KIB,
        "vmrun grew from {baseline_kib} KiB to {peak_kib} KiB while its stdout was not read"
    );

    // Phase 2: read everything; all of it arrives and the run succeeds.
    let stdout_reader = thread::spawn(move || {
        let mut data = Vec::new();
        let mut stdout = stdout;
        let _ = stdout.read_to_end(&mut data);
        data
    });
    let status = wait_until(child, deadline);
    let data = stdout_reader.join().unwrap_or_default();
    let stderr_text = stderr_reader.join().unwrap_or_default();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "stderr:\n{stderr_text}"
    );
    assert_eq!(data.len(), CHUNKS * MIB, "stderr:\n{stderr_text}");
    assert!(data.iter().all(|&b| b == 0), "the stream was corrupted");
    assert!(
        stderr_text.contains(&format!("chunk {CHUNKS}\nfinished\n")),
        "stderr:\n{stderr_text}"
    );
}

#[test]
fn a_file_written_in_the_container_appears_in_the_bundle() {
    let Some(g) = guest_ready("a_file_written_in_the_container_appears_in_the_bundle") else {
        return;
    };
    let b = bundle(
        "write",
        &["sh", "-c", "echo written inside > /tmp/from-guest.txt"],
    );
    let ran = run(&g, &b, "write", None);
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    let text = std::fs::read_to_string(b.join("rootfs/tmp/from-guest.txt"))
        .unwrap_or_else(|e| panic!("the file is not in the bundle: {e}\n{}", ran.describe()));
    assert_eq!(text, "written inside\n");
}

/// Big files cross the rootfs share intact both ways (the share's reads
/// and writes go in requests of up to 1 MiB, reads asynchronously), and
/// the guest mounted it with a readahead window of one such request.
#[test]
fn big_files_cross_the_share_intact_with_a_one_request_readahead() {
    let Some(g) = guest_ready("big_files_cross_the_share_intact_with_a_one_request_readahead")
    else {
        return;
    };
    // 3 MiB + a bit that no block size divides, with a pattern that shows
    // a misplaced or repeated block.
    let data: Vec<u8> = (0u32..(3 << 20) + 4321)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let script = "d=$(stat -c %d /); \
        echo ra=$(cat /sys/class/bdi/$(( (d >> 8) & 0xfff )):$(( (d & 0xff) | ((d >> 12) & 0xfff00) ))/read_ahead_kb); \
        dd if=/tmp/host.bin of=/tmp/copy.bin bs=1M 2>/dev/null && wc -c < /tmp/host.bin";
    let b = bundle("bigfiles", &["sh", "-c", script]);
    std::fs::write(b.join("rootfs/tmp/host.bin"), &data).unwrap();
    let ran = run(&g, &b, "bigfiles", None);
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    let out = ran.stdout_text();
    assert!(out.contains("ra=1008\n"), "{}", ran.describe());
    assert!(
        out.contains(&format!("\n{}\n", data.len())),
        "{}",
        ran.describe()
    );
    let copy = std::fs::read(b.join("rootfs/tmp/copy.bin")).unwrap();
    assert!(copy == data, "the copy differs ({} bytes)", copy.len());
}

/// The agent listens on its control port before it writes its ready
/// marker, so the host's first connection after the marker is answered
/// (the debug log shows every refused one).
#[test]
fn the_first_connection_after_the_ready_marker_is_answered() {
    let Some(g) = guest_ready("the_first_connection_after_the_ready_marker_is_answered") else {
        return;
    };
    let b = bundle("connect", &["true"]);
    let ran = run_with(&g, &b, "connect", &["--debug"], None);
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    assert!(
        ran.stderr.contains("container created"),
        "the debug log is not there to look at:\n{}",
        ran.describe()
    );
    assert!(
        !ran.stderr
            .contains("the agent refused the connection after its ready marker"),
        "{}",
        ran.describe()
    );
}

#[test]
fn a_readonly_root_refuses_writes() {
    let Some(g) = guest_ready("a_readonly_root_refuses_writes") else {
        return;
    };
    let b = bundle(
        "readonly",
        &["sh", "-c", "echo x > /refused.txt && echo WROTE"],
    );
    edit_config(&b, |spec| spec["root"]["readonly"] = true.into());
    let ran = run(&g, &b, "readonly", None);
    assert_ne!(ran.code(), Some(0), "{}", ran.describe());
    assert!(!ran.stdout_text().contains("WROTE"), "{}", ran.describe());
    assert!(
        ran.stderr.to_lowercase().contains("read-only"),
        "{}",
        ran.describe()
    );
    assert!(!b.join("rootfs/refused.txt").exists());
}

#[test]
fn a_bundle_on_a_virtio_blk_ext4_image_runs() {
    let Some(g) = guest_ready("a_bundle_on_a_virtio_blk_ext4_image_runs") else {
        return;
    };
    let b = bundle(
        "blk",
        &[
            "sh",
            "-c",
            "grep -w / /proc/mounts; echo on-disk > /disk-file; cat /disk-file",
        ],
    );
    let image = scratch().join("blk.ext4");
    run_ok(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(b.join("rootfs"))
            .arg(&image)
            .arg("64M"),
        "mkfs.ext4",
    );
    let image_arg = image.to_str().expect("UTF-8");
    let ran = run_with(&g, &b, "blk", &["--rootfs-image", image_arg], None);
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    let stdout = ran.stdout_text();
    assert!(stdout.contains("/dev/vda / ext4"), "{}", ran.describe());
    assert!(stdout.ends_with("on-disk\n"), "{}", ran.describe());
    // The write went to the image, not to the bundle's directory, and it
    // is in the image: the host stops the VM as soon as the agent has
    // answered Shutdown, which it does only after unmounting and syncing.
    assert!(!b.join("rootfs/disk-file").exists());
    let on_image = Command::new("debugfs")
        .args(["-R", "cat /disk-file"])
        .arg(&image)
        .output()
        .expect("run debugfs (e2fsprogs)");
    assert_eq!(
        String::from_utf8_lossy(&on_image.stdout),
        "on-disk\n",
        "debugfs: {}",
        String::from_utf8_lossy(&on_image.stderr)
    );
}

#[test]
fn two_containers_at_once_do_not_see_each_other() {
    let Some(g) = guest_ready("two_containers_at_once_do_not_see_each_other") else {
        return;
    };
    let script = |me: &str| format!("touch /marker-{me}; sleep 2; ls /; ps; true");
    let a = bundle("two-a", &["sh", "-c", &script("a")]);
    let b = bundle("two-b", &["sh", "-c", &script("b")]);
    let child_a = spawn_vmrun(&run_args(&g, &a, "two-a"), false);
    let child_b = spawn_vmrun(&run_args(&g, &b, "two-b"), false);
    let ran_b = thread::spawn(move || collect(child_b, boot_timeout()));
    let ran_a = collect(child_a, boot_timeout());
    let ran_b = ran_b.join().expect("join");
    for (me, other, ran) in [("a", "b", &ran_a), ("b", "a", &ran_b)] {
        assert_eq!(ran.code(), Some(0), "{me}: {}", ran.describe());
        let out = ran.stdout_text();
        assert!(
            out.contains(&format!("marker-{me}")),
            "{me}: {}",
            ran.describe()
        );
        // Neither the other's file (ls) nor its process (ps shows the
        // other's command line, which names its marker).
        assert!(
            !out.contains(&format!("marker-{other}")),
            "{me}: {}",
            ran.describe()
        );
    }
}

// --- CLI errors: checked before any VM, on any host ----------------------

fn cli_error(args: &[&str]) -> (Option<i32>, String, PathBuf) {
    let console = scratch().join(format!("console-{}.log", args.join("_").replace('/', "_")));
    let mut full = vec!["run", "--console-log", console.to_str().expect("UTF-8")];
    full.extend_from_slice(args);
    let child = spawn_vmrun(&full, false);
    let ran = collect(child, Duration::from_secs(60));
    (ran.code(), ran.stderr, console)
}

fn assert_no_vm(console: &Path, stderr: &str) {
    // The console log is created only when a VM is about to be built.
    assert!(!console.exists(), "a VM was started: {stderr}");
}

#[test]
fn cli_error_without_config_json() {
    let dir = scratch().join("no-config");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let (code, stderr, console) = cli_error(&["--bundle", dir.to_str().expect("UTF-8"), "x"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("config.json does not exist"), "{stderr}");
    assert_no_vm(&console, &stderr);
}

#[test]
fn cli_error_missing_rootfs() {
    let b = bundle("no-rootfs", &["true"]);
    std::fs::rename(b.join("rootfs"), b.join("moved")).expect("rename");
    let (code, stderr, console) = cli_error(&["--bundle", b.to_str().expect("UTF-8"), "x"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("root.path") && stderr.contains("rootfs"),
        "{stderr}"
    );
    assert_no_vm(&console, &stderr);
}

#[test]
fn cli_error_empty_args() {
    let b = bundle("empty-args", &["true"]);
    edit_config(&b, |spec| spec["process"]["args"] = serde_json::json!([]));
    let (code, stderr, console) = cli_error(&["--bundle", b.to_str().expect("UTF-8"), "x"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("process.args is empty"), "{stderr}");
    assert_no_vm(&console, &stderr);
}

#[test]
fn cli_error_unreadable_image() {
    let b = bundle("bad-image", &["true"]);
    let image = b.join("missing.img");
    let (code, stderr, console) = cli_error(&[
        "--rootfs-image",
        image.to_str().expect("UTF-8"),
        "--bundle",
        b.to_str().expect("UTF-8"),
        "x",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("missing.img"), "{stderr}");
    assert_no_vm(&console, &stderr);
}

#[test]
fn cli_one_step_form_rejects_a_dir_without_config() {
    let dir = scratch().join("not-a-bundle");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let child = spawn_vmrun(&[dir.to_str().expect("UTF-8")], false);
    let ran = collect(child, Duration::from_secs(60));
    assert_eq!(ran.code(), Some(1), "{}", ran.describe());
    assert!(
        ran.stderr.contains("without a config.json"),
        "{}",
        ran.describe()
    );
}

/// An OCI image layout (made with umoci) holding the busybox rootfs, whose
/// Cmd prints a line.
fn busybox_image_layout() -> PathBuf {
    let layout = scratch().join("image-layout");
    let work = scratch().join("image-work");
    let script = format!(
        "set -e; umoci init --layout {l}; umoci new --image {l}:latest; \
         umoci unpack --image {l}:latest {w} >/dev/null; cp -a {r}/. {w}/rootfs/; \
         umoci repack --image {l}:latest {w}; \
         umoci config --image {l}:latest --config.cmd sh --config.cmd -c \
         --config.cmd 'echo from the image cmd'",
        l = layout.display(),
        w = work.display(),
        r = base_bundle().join("rootfs").display(),
    );
    run_ok(
        Command::new("sh").args(["-c", &script]),
        "building the OCI layout with umoci",
    );
    layout
}

#[test]
fn run_image_runs_the_image_cmd_and_args_replace_it() {
    let Some(g) = guest_ready("run_image_runs_the_image_cmd_and_args_replace_it") else {
        return;
    };
    let layout = busybox_image_layout();
    let source = format!("oci:{}:latest", layout.display());
    let root = scratch().join("image-state");
    let store = scratch().join("image-store");
    let common = [
        "--root",
        root.to_str().expect("UTF-8"),
        "--image-store",
        store.to_str().expect("UTF-8"),
        "run",
        "--kernel",
        g.kernel.to_str().expect("UTF-8"),
        "--initrd",
        g.initrd.to_str().expect("UTF-8"),
        "--image",
        &source,
    ];
    let mut args = common.to_vec();
    args.push("img1");
    let ran = collect(spawn_vmrun(&args, false), boot_timeout());
    assert_eq!(ran.code(), Some(0), "{}", ran.describe());
    assert_eq!(
        ran.stdout_text(),
        "from the image cmd\n",
        "{}",
        ran.describe()
    );
    assert!(
        root.join("bundles/img1/config.json").is_file(),
        "the image's bundle lives under --root"
    );

    let mut args = common.to_vec();
    args.extend(["img2", "--", "sh", "-c", "echo replaced; exit 7"]);
    let ran = collect(spawn_vmrun(&args, false), boot_timeout());
    assert_eq!(ran.code(), Some(7), "{}", ran.describe());
    assert_eq!(ran.stdout_text(), "replaced\n", "{}", ran.describe());
}
