//! Shared helpers for the container tests: busybox rootfs, bundles, running
//! a bundle through vmrun-isolation (via `vmrun-checker-run`) and runc.

#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

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

/// A fresh scratch dir under `$TMPDIR` (default /tmp), outside the work tree.
pub fn scratch(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("vmrun-iso-{name}-"))
        .tempdir_in(std::env::temp_dir())
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
    let out = Command::new("runc")
        .arg("--root")
        .arg(bundle.path().join("runc-state"))
        .args(["run", "--bundle"])
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
    let text = stdout(out);
    let fails: Vec<&str> = text.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(fails.is_empty(), "{who}: failing checks: {fails:#?}");
    let passes = text.lines().filter(|l| l.starts_with("PASS")).count();
    assert!(passes >= min, "{who}: only {passes} checks passed:\n{text}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{who}: exit status {}",
        out.status
    );
}

/// Is /sys/fs/cgroup the unified cgroup2 hierarchy on this host?
pub fn host_is_cgroup2() -> bool {
    vmrun_isolation::cgroups::is_cgroup2(Path::new("/sys/fs/cgroup"))
}
