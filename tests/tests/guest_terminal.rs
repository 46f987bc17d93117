//! `process.terminal: true` end to end: `vmrun run` of a busybox bundle
//! whose process gets a pty in the guest, checked from inside the
//! container (`tty`, `test -t`, `stty size`, typed input) with vmrun
//! itself under a real pty on the test side (a small python3 `pty`
//! harness: raw mode, window size, SIGWINCH), and again with plain pipes
//! (no terminal anywhere on the host, as `runc run` allows).
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::Instant;

use vmrun_tests::bundle::{build_busybox_bundle, edit_config};
use vmrun_tests::guest_env::{guest_required, loud, GuestReadiness};
use vmrun_tests::{boot_timeout, guest_ready, scratch_dir, vmrun_bin, wait_until};

/// The python3 the pty harness runs with (Debian's, not a user shim).
const PYTHON: &str = "/usr/bin/python3";

/// Runs a command on the slave side of a fresh pty (its own session, the
/// pty as controlling terminal) of size ROWS x COLS. When MARKER shows up
/// in the output it resizes the pty to ROWS2 x COLS2 (the kernel sends
/// SIGWINCH) and types INPUT. Reads until the pty reports the end (EIO),
/// then prints one JSON line: exit status, the output in hex, and the
/// pty's local flags before and after the run (a terminal left in raw mode
/// shows up there).
const PTY_HARNESS: &str = r#"
import fcntl, json, os, select, signal, struct, sys, termios, time
rows, cols, rows2, cols2 = (int(a) for a in sys.argv[1:5])
marker, typed, limit = sys.argv[5].encode(), sys.argv[6].encode(), float(sys.argv[7])
cmd = sys.argv[8:]
master, slave = os.openpty()
fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
lflag_before = termios.tcgetattr(slave)[3]
pid = os.fork()
if pid == 0:
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    os.close(master)
    os.close(slave)
    os.execv(cmd[0], cmd)
os.close(slave)
out, typed_yet, timed_out = b"", False, False
deadline = time.monotonic() + limit
while True:
    left = deadline - time.monotonic()
    if left <= 0:
        timed_out = True
        os.kill(pid, signal.SIGKILL)
        break
    ready, _, _ = select.select([master], [], [], min(left, 1.0))
    if not ready:
        continue
    try:
        data = os.read(master, 65536)
    except OSError:
        data = b""
    if not data:
        break
    out += data
    if not typed_yet and marker in out:
        typed_yet = True
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", rows2, cols2, 0, 0))
        os.write(master, typed)
_, status = os.waitpid(pid, 0)
lflag_after = termios.tcgetattr(master)[3]
print(json.dumps({
    "code": os.waitstatus_to_exitcode(status),
    "timed_out": timed_out,
    "typed": typed_yet,
    "output": out.hex(),
    "lflag_before": lflag_before,
    "lflag_after": lflag_after,
}))
"#;

/// A scratch directory for bundles (a tmpfs in the test host, whose /tmp
/// is an overlay over 9p).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| scratch_dir("vmrun-guest-terminal", "256m"))
}

/// A busybox bundle (rootfs/build-busybox-bundle.sh) whose process is a
/// terminal running `sh -c script`.
fn terminal_bundle(name: &str, script: &str) -> PathBuf {
    let dir = scratch().join(name);
    build_busybox_bundle(&dir);
    edit_config(&dir, |spec| {
        spec["process"]["args"] = serde_json::json!(["sh", "-c", script]);
        spec["process"]["terminal"] = serde_json::json!(true);
        // The host terminal's size must win over the bundle's (as with runc).
        spec["process"]["consoleSize"] = serde_json::json!({"height": 11, "width": 22});
    });
    dir
}

fn run_args(g: &GuestReadiness, bundle: &Path, id: &str) -> Vec<String> {
    let path = |p: &Path| p.to_str().expect("UTF-8 path").to_owned();
    vec![
        "run".into(),
        "--kernel".into(),
        path(&g.kernel),
        "--initrd".into(),
        path(&g.initrd),
        "--bundle".into(),
        path(bundle),
        id.into(),
    ]
}

/// Output lines without the pty's carriage returns.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r').to_owned())
        .collect()
}

fn decode_hex(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| hex.get(2 * i..2 * i + 2))
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect()
}

#[test]
fn terminal_container_under_a_host_pty() {
    let Some(g) = guest_ready("terminal_container_under_a_host_pty") else {
        return;
    };
    if !Path::new(PYTHON).exists() {
        let message = format!("{PYTHON} (the pty harness) is missing");
        if guest_required() {
            panic!("{message} and VMRUN_REQUIRE_GUEST=1 is set");
        }
        loud(&format!(
            "SKIPPED: terminal_container_under_a_host_pty because {message}"
        ));
        return;
    }
    // Waits (bounded) for the resize to arrive after the typed line.
    let script = "tty; stty size; test -t 0 && test -t 1 && test -t 2 && echo all-ttys; \
                  echo ready-for-input; read line; i=0; \
                  while [ \"$(stty size)\" = '31 97' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; \
                  stty size; echo got:$line; exit 7";
    let bundle = terminal_bundle("tty", script);
    let limit = boot_timeout().as_secs().to_string();
    let mut harness = vec![
        "-c".to_owned(),
        PTY_HARNESS.to_owned(),
        "31".into(),
        "97".into(),
        "42".into(),
        "133".into(),
        "ready-for-input".into(),
        "hello\r".into(),
        limit,
        vmrun_bin().to_str().expect("UTF-8").to_owned(),
    ];
    harness.extend(run_args(&g, &bundle, "tty"));
    let out = Command::new(PYTHON)
        .args(&harness)
        .stdin(Stdio::null())
        .output()
        .expect("run the pty harness");
    let report = String::from_utf8_lossy(&out.stdout);
    let result: serde_json::Value = serde_json::from_str(report.trim()).unwrap_or_else(|e| {
        panic!(
            "pty harness said {report:?} ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let output =
        String::from_utf8_lossy(&decode_hex(result["output"].as_str().unwrap_or(""))).into_owned();
    let describe = format!("harness: {result}\n--- output ---\n{output}");
    assert_eq!(result["timed_out"], false, "{describe}");
    assert_eq!(result["typed"], true, "{describe}");
    // The container's exit status is vmrun's.
    assert_eq!(result["code"], 7, "{describe}");
    let lines = lines(&output);
    // A pty in the guest, on every standard stream.
    assert!(
        lines.iter().any(|l| l.starts_with("/dev/pts/")),
        "{describe}"
    );
    assert!(lines.iter().any(|l| l == "all-ttys"), "{describe}");
    // The host terminal's size from the start (not the bundle's 11 22),
    // then the SIGWINCH resize.
    assert!(lines.iter().any(|l| l == "31 97"), "{describe}");
    assert!(!lines.iter().any(|l| l == "11 22"), "{describe}");
    assert!(lines.iter().any(|l| l == "42 133"), "{describe}");
    // Typed input reached the container's `read`.
    assert!(lines.iter().any(|l| l == "got:hello"), "{describe}");
    // Raw mode on the host: only the container's pty echoed the typed
    // word (a cooked host terminal would have echoed it a second time).
    assert_eq!(output.matches("hello").count(), 2, "{describe}");
    // vmrun put its terminal back as it found it.
    assert_eq!(
        result["lflag_after"], result["lflag_before"],
        "the host terminal was not restored: {describe}"
    );
}

#[test]
fn terminal_container_with_plain_pipes() {
    let Some(g) = guest_ready("terminal_container_with_plain_pipes") else {
        return;
    };
    let script = "tty; stty size; test -t 0 && test -t 1 && echo both-ttys; \
                  read line; echo got:$line; echo to-stderr >&2; exit 5";
    let bundle = terminal_bundle("pipes", script);
    let mut child = Command::new(vmrun_bin())
        .args(run_args(&g, &bundle, "pipes"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmrun");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"piped-line\n").expect("write stdin");
    // EOF: with a terminal it only ends the input (the line is still read).
    drop(stdin);
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let deadline = Instant::now() + boot_timeout();
    let status = wait_until(&mut child, deadline);
    let out = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    let describe = format!("status {status:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}");
    assert_eq!(status.and_then(|s| s.code()), Some(5), "{describe}");
    let lines = lines(&out);
    assert!(
        lines.iter().any(|l| l.starts_with("/dev/pts/")),
        "{describe}"
    );
    assert!(lines.iter().any(|l| l == "both-ttys"), "{describe}");
    // No host terminal: the bundle's consoleSize applies.
    assert!(lines.iter().any(|l| l == "11 22"), "{describe}");
    assert!(lines.iter().any(|l| l == "got:piped-line"), "{describe}");
    // A terminal has one output stream: stderr comes through stdout.
    assert!(lines.iter().any(|l| l == "to-stderr"), "{describe}");
    assert!(!err.contains("to-stderr"), "{describe}");
}
