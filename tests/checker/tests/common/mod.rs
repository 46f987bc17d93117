//! Shared helpers for the container tests: busybox rootfs, bundles, and the
//! three ways to run a bundle: through vmrun-isolation on this host (via
//! `vmrun-checker-run`, which plays the agent), through runc, and through
//! `vmrun run` in a real microVM (the product path: the agent applies the
//! spec with vmrun-isolation inside the guest).

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Value};
use vmrun_tests::guest_env::{guest_required, loud, REQUIRE_GUEST_ENV};
use vmrun_tests::RunOutput;

/// The checker binary under test.
pub const CHECKER: &str = env!("CARGO_BIN_EXE_vmrun-checker");
/// The runner that plays the agent.
pub const RUNNER: &str = env!("CARGO_BIN_EXE_vmrun-checker-run");

/// Returns false (after a loud message) when the tests cannot run here.
pub fn can_run(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: {test} because containers need root");
        return false;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("SKIPPED: {test} because /bin/busybox (busybox-static) is missing");
        return false;
    }
    true
}

/// Is runc installed?
pub fn have_runc() -> bool {
    Command::new("runc")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Where scratch dirs go: `$TMPDIR` (default /tmp), except in the test
/// host, where /tmp is an overlay over 9p: there bundles live on a tmpfs
/// mounted once per test process, as a real host's local disk would be
/// (and as virtio-fs expects of the directory it shares).
fn scratch_base() -> &'static Path {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        if vmrun_tests::scratch::in_testhost() {
            vmrun_tests::scratch_dir("vmrun-checker", "768m")
        } else {
            std::env::temp_dir()
        }
    })
}

/// A fresh scratch dir outside the work tree (see [`scratch_base`]).
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("vmrun-iso-{name}-"))
        .tempdir_in(scratch_base())
        .expect("tempdir")
}

/// Copies `bin` and the shared libraries it needs (per ldd) into `rootfs`.
fn install_binary(bin: &Path, rootfs: &Path, dest: &str) {
    std::fs::copy(bin, rootfs.join(dest.trim_start_matches('/'))).expect("copy binary");
    let out = Command::new("ldd").arg(bin).output().expect("ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let lib = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(lib) = lib {
            let target = rootfs.join(lib.strip_prefix("/").unwrap());
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            if !target.exists() {
                std::fs::copy(&lib, &target).expect("copy lib");
            }
        }
    }
}

/// Makes a busybox rootfs with the checker at /bin/vmrun-checker.
pub fn make_rootfs(rootfs: &Path) {
    for d in ["bin", "proc", "dev", "sys", "tmp", "etc", "run"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "ls", "echo", "touch", "mkdir", "id", "sleep", "grep", "test",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    install_binary(Path::new(CHECKER), rootfs, "/bin/vmrun-checker");
}

/// A config like `runc spec` makes (read-only root, default caps, masked
/// and read-only paths, standard mounts) running the checker.
pub fn base_config() -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/vmrun-checker"],
            "env": ["PATH=/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "vmrun-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                           {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"]
        }
    })
}

/// A bundle dir with `rootfs/` and `config.json` (also copied to
/// `rootfs/checker-spec.json` for the checker).
pub struct Bundle {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
}

impl Bundle {
    /// Creates the bundle with a fresh rootfs.
    pub fn new(name: &str, config: &Value) -> Self {
        let dir = scratch(name);
        make_rootfs(&dir.path().join("rootfs"));
        let b = Self { dir };
        b.write_config(config);
        b
    }

    /// The bundle path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs path.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Rewrites config.json (and the checker's copy).
    pub fn write_config(&self, config: &Value) {
        let text = serde_json::to_string_pretty(config).unwrap();
        std::fs::write(self.path().join("config.json"), &text).unwrap();
        std::fs::write(self.rootfs().join("checker-spec.json"), &text).unwrap();
    }

    /// Writes an executable file into the rootfs.
    pub fn add_script(&self, rel: &str, content: &str) {
        let p = self.rootfs().join(rel);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// Runs the bundle through vmrun-isolation; `extra` are runner flags.
pub fn run_ours(bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
    let state = bundle.path().join("state");
    let mut cmd = Command::new(RUNNER);
    cmd.args(extra)
        .arg("--state-dir")
        .arg(&state)
        .arg("--bundle")
        .arg(bundle.path())
        .arg(id)
        .stdin(Stdio::null());
    let out = cmd.output().expect("spawn runner");
    print_output("vmrun-isolation", &out);
    out
}

/// Runs the bundle under runc (root dir inside the bundle).
pub fn run_runc(bundle: &Bundle, id: &str) -> Output {
    run_runc_with(bundle, id, &[])
}

/// [`run_runc`] with extra `runc run` flags (e.g. `--no-pivot`).
pub fn run_runc_with(bundle: &Bundle, id: &str, extra: &[&str]) -> Output {
    let out = Command::new("runc")
        .arg("--root")
        .arg(bundle.path().join("runc-state"))
        .arg("run")
        .args(extra)
        .arg("--bundle")
        .arg(bundle.path())
        .arg(id)
        .stdin(Stdio::null())
        .output()
        .expect("spawn runc");
    print_output("runc", &out);
    out
}

fn print_output(who: &str, out: &Output) {
    println!("--- {who}: {}", out.status);
    println!("{}", String::from_utf8_lossy(&out.stdout));
    println!(
        "--- {who} stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// stdout as a string.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stderr as a string.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the checker ran and every check passed (and at least `min` did).
pub fn assert_all_pass(who: &str, out: &Output, min: usize) {
    assert_report_passes(who, &stdout(out), out.status.code(), min, &stderr(out));
}

/// [`assert_all_pass`] for a `vmrun run` in a microVM.
pub fn assert_vm_all_pass(who: &str, out: &RunOutput, min: usize) {
    assert_report_passes(who, &out.stdout, vm_code(out), min, &out.describe());
}

fn assert_report_passes(who: &str, text: &str, code: Option<i32>, min: usize, context: &str) {
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        fails.is_empty(),
        "{who}: failing checks: {fails:#?}\n{context}"
    );
    let passes = text.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(
        passes >= min,
        "{who}: only {passes} checks passed:\n{text}\n{context}"
    );
    assert_eq!(code, Some(0), "{who}: exit status\n{context}");
}

/// Is /sys/fs/cgroup the unified cgroup2 hierarchy on this host?
pub fn host_is_cgroup2() -> bool {
    vmrun_isolation::cgroups::is_cgroup2(Path::new("/sys/fs/cgroup"))
}

/// Prints one line straight to stderr: libtest captures `eprintln!` of a
/// passing test, but a skip must be seen.
pub fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

// --- which halves run ----------------------------------------------------

/// `VMRUN_CHECKER_HALVES=guest` (set by the guest batch,
/// tests/testhost/run-guest-tests.sh) runs only the microVM halves: the
/// halves on this host (vmrun-isolation via the runner, runc) already ran in
/// `cargo test --workspace`, and every run costs seconds in the test host.
pub const HALVES_ENV: &str = "VMRUN_CHECKER_HALVES";

/// Whether the halves on this host (vmrun-isolation directly, runc) run;
/// says loudly when not.
pub fn host_halves(test: &str) -> bool {
    if std::env::var(HALVES_ENV).is_ok_and(|v| v == "guest") {
        say(&format!(
            "SKIPPED: the host halves of {test} because {HALVES_ENV}=guest \
             (the guest batch; they run in cargo test --workspace)"
        ));
        return false;
    }
    true
}

// --- the microVM half: `vmrun run` ----------------------------------------

/// What the microVM half needs: our guest kernel and agent initramfs (the
/// `vmrun` binary is `$VMRUN_BIN` or the one next to this test's target dir,
/// see `vmrun_tests::vmrun_bin`).
pub struct Guest {
    /// The guest kernel.
    pub kernel: PathBuf,
    /// The initramfs with the agent as /init.
    pub initrd: PathBuf,
}

/// Is there a `vmrun` binary `vmrun_tests::vmrun_bin` would find (which
/// panics if there is none)?
fn vmrun_binary_exists() -> bool {
    if let Some(p) = std::env::var_os("VMRUN_BIN") {
        return Path::new(&p).is_file();
    }
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    // target/<profile>/deps/<test> -> target/{<profile>,release,debug}/vmrun
    let Some(profile_dir) = exe.parent().and_then(Path::parent) else {
        return false;
    };
    let mut candidates = vec![profile_dir.join("vmrun")];
    if let Some(target) = profile_dir.parent() {
        candidates.extend(["release", "debug"].map(|p| target.join(p).join("vmrun")));
    }
    candidates.iter().any(|p| p.is_file())
}

/// For the microVM half of `test`: the guest to boot, if this host can run
/// guests. Otherwise a loud `SKIPPED:` and `None`, or a panic when
/// `VMRUN_REQUIRE_GUEST=1` (as in vmrun-tests' guest tests).
pub fn guest(test: &str) -> Option<Guest> {
    let what = format!("the microVM half of {test}");
    if !can_run(&what) {
        return None;
    }
    if !vmrun_binary_exists() {
        let reason = "no vmrun binary (cargo build --release -p vmrun, or set VMRUN_BIN)";
        if guest_required() {
            panic!("{what} needs vmrun and {REQUIRE_GUEST_ENV}=1 is set, but: {reason}");
        }
        loud(&format!("SKIPPED: {what} because {reason}"));
        return None;
    }
    let ready = vmrun_tests::guest_ready(&what)?;
    Some(Guest {
        kernel: ready.kernel,
        initrd: ready.initrd,
    })
}

/// Runs the bundle with `vmrun run` in a fresh microVM (the checker's report
/// comes back on vmrun's stdout; the guest console is kept in
/// `<bundle>/console.log`). Panics if vmrun hangs past the boot timeout.
pub fn run_vm(guest: &Guest, bundle: &Bundle, id: &str) -> RunOutput {
    run_vm_with(guest, bundle, id, &[])
}

/// [`run_vm`] with extra `vmrun run` flags (e.g. `--no-pivot`).
pub fn run_vm_with(guest: &Guest, bundle: &Bundle, id: &str, extra: &[&str]) -> RunOutput {
    let console = bundle.path().join("console.log");
    let utf8 = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    let (kernel, initrd, console, dir) = (
        utf8(&guest.kernel),
        utf8(&guest.initrd),
        utf8(&console),
        utf8(bundle.path()),
    );
    let mut args = vec![
        "run",
        "--kernel",
        &kernel,
        "--initrd",
        &initrd,
        "--console-log",
        &console,
    ];
    args.extend_from_slice(extra);
    args.extend(["--bundle", &dir, id]);
    let out = vmrun_tests::run_vmrun(&args, vmrun_tests::boot_timeout());
    println!("--- vmrun run (microVM): {}", out.describe());
    assert!(out.finished(), "vmrun run {id} hung: {}", out.describe());
    assert_no_vm_left(bundle);
    out
}

/// The exit code of a finished `vmrun run`.
pub fn vm_code(out: &RunOutput) -> Option<i32> {
    out.status.and_then(|s| s.code())
}

/// No process (a `vmrun` and its VM) still runs for this bundle.
pub fn assert_no_vm_left(bundle: &Bundle) {
    let needle = bundle.path().to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| e.file_name().to_string_lossy() != me)
        .filter_map(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(&needle).then_some(cmdline)
        })
        .collect();
    assert!(
        left.is_empty(),
        "processes left running for the bundle: {left:#?}"
    );
}

/// The microVM half of a matrix variant: `vmrun run` of `config`; every
/// check must pass (at least `min`). Returns the run for extra asserts.
pub fn vm_half(name: &str, config: &Value, min: usize) -> Option<RunOutput> {
    let guest = guest(name)?;
    let bundle = Bundle::new(&format!("{name}-vm"), config);
    let out = run_vm(&guest, &bundle, &format!("{name}-vm"));
    assert_vm_all_pass(&format!("vmrun run (microVM) {name}"), &out, min);
    Some(out)
}

// --- the root escape probes (checker module chroot_escape) ---------------

/// [`base_config`] plus CAP_SYS_CHROOT and CAP_SYS_ADMIN and both of the
/// checker's root escape probes: the classic `..` climb must stay
/// `contained` (pivot_root and `--no-pivot` alike), the mount-namespace
/// re-entry (lazy umount of `/`, setns into the own mount namespace) must
/// leave the container's root; the tests then check *where* it landed
/// ([`escape_landing`]).
pub fn root_escape_config() -> Value {
    let mut c = base_config();
    for set in ["bounding", "effective", "permitted"] {
        let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
        caps.push("CAP_SYS_CHROOT".into());
        caps.push("CAP_SYS_ADMIN".into());
    }
    c["annotations"] = json!({
        "vmrun.checker/chroot-escape": "contained",
        "vmrun.checker/mntns-escape": "escapes"
    });
    c
}

/// The checker's passing line for probe `check` (panics if the probe did
/// not pass: it did not run, or the outcome was not the expected one).
pub fn probe_line<'a>(who: &str, text: &'a str, check: &str) -> &'a str {
    let prefix = format!("PASS {check}:");
    text.lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{who}: no passing {check:?} probe:\n{text}"))
}

/// Where the mount-namespace escape landed: `/`'s (st_dev, st_ino) after it.
pub fn escape_landing(who: &str, text: &str) -> (u64, u64) {
    let line = probe_line(who, text, "chroot escape (umount / + setns mnt)");
    line.split("after the escape ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|id| id.split_once(':'))
        .and_then(|(d, i)| Some((d.parse().ok()?, i.parse().ok()?)))
        .unwrap_or_else(|| panic!("{who}: no landing in {line}"))
}

/// This process's `/` as (st_dev, st_ino): the runtime's root on this host.
pub fn host_root_id() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/").unwrap();
    (m.dev(), m.ino())
}

/// Asserts the probes' outcome on this host: the `..` climb stayed inside,
/// and the mount-namespace escape reached the runtime's (this host's) `/`
/// exactly when `no_pivot`.
pub fn assert_host_escapes(who: &str, text: &str, no_pivot: bool) {
    let climb = probe_line(who, text, "chroot escape (.. climb)");
    assert!(climb.contains("contained"), "{who}: {climb}");
    let landed = escape_landing(who, text);
    assert_eq!(
        landed == host_root_id(),
        no_pivot,
        "{who}: the mount-namespace escape landed on {landed:?}, the host's / is {:?} \
         (no_pivot={no_pivot})\n{text}",
        host_root_id()
    );
}

/// Asserts the probes' outcome in a microVM: the `..` climb stayed inside,
/// and the mount-namespace escape reached the agent's root exactly when
/// `no_pivot`. The agent's root is its tmpfs copy of the initramfs's
/// directories (`proc`, `run`, ...; the agent binary itself runs from its
/// unlinked initramfs file and is not there), without the container's
/// spec file;
/// with pivot_root the escape finds only the agent's emptied initramfs,
/// which holds none of those directories.
pub fn assert_vm_escapes(who: &str, text: &str, no_pivot: bool) {
    let climb = probe_line(who, text, "chroot escape (.. climb)");
    assert!(climb.contains("contained"), "{who}: {climb}");
    let line = probe_line(who, text, "chroot escape (umount / + setns mnt)");
    let agent_root =
        line.contains("spec file gone") && line.contains("\"proc\"") && line.contains("\"run\"");
    assert_eq!(
        agent_root, no_pivot,
        "{who}: reached the agent's root (its tmpfs: proc, run, no spec file) must be \
         {no_pivot}: {line}"
    );
}
