//! runc-compatible verbs that boot nothing, checked through the binary the
//! way callers use them: `--version` (go-runc reads it), `features`
//! (containerd's `shim -info`), `spec`, and the `--log`/`--log-format`
//! error line (containerd's shim reads the last `"level":"error"` line of
//! `log.json`, podman `{level,time,msg}`).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use vmrun_tests::{run_vmrun, RunOutput};

/// Hang guard: none of these does more than print or write a file.
const QUICK: Duration = Duration::from_secs(60);

const EXISTS: &str = "File config.json exists. Remove it first";

fn code(out: &RunOutput) -> Option<i32> {
    out.status.and_then(|s| s.code())
}

fn ok(args: &[&str]) -> RunOutput {
    let out = run_vmrun(args, QUICK);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    out
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// `2026-12-04T10:00:00Z`-shaped (RFC 3339, UTC, whole seconds).
fn is_rfc3339_utc(time: &str) -> bool {
    let b = time.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 20
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b'Z'
}

#[test]
fn version_reads_like_runc() {
    let out = ok(&["--version"]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.describe());
    let version = lines[0]
        .strip_prefix("vmrun version ")
        .unwrap_or_else(|| panic!("first line: {:?}", lines[0]));
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    assert_eq!(lines[1], "spec: 1.1.0");
}

#[test]
fn features_prints_the_runtime_spec_document() {
    let out = ok(&["features"]);
    assert!(
        out.stdout
            .starts_with("{\n    \"ociVersionMin\": \"1.0.0\",\n"),
        "{}",
        out.describe()
    );
    assert!(out.stdout.ends_with("}\n"), "{}", out.describe());
    let v: Value = serde_json::from_str(&out.stdout).expect("features is JSON");
    assert_eq!(v["ociVersionMax"], "1.1.0");
    assert!(v["mountOptions"].as_array().is_some_and(|o| !o.is_empty()));
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    assert_eq!(v["linux"]["apparmor"]["enabled"], false);
    assert_eq!(v["linux"]["selinux"]["enabled"], false);
    assert_eq!(v["linux"]["cgroup"]["v2"], true);
    assert_eq!(
        v["annotations"]["io.github.vmrun.version"],
        env!("CARGO_PKG_VERSION")
    );
}

#[test]
fn spec_writes_runcs_template_once() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = path_str(dir.path());
    ok(&["spec", "--bundle", bundle]);
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.starts_with("{\n\t\"ociVersion\": \"1.0.2-dev\",\n"),
        "{text}"
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["process"]["args"], serde_json::json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    assert_eq!(v["hostname"], "runc");

    let again = run_vmrun(&["spec", "-b", bundle], QUICK);
    assert_eq!(code(&again), Some(1), "{}", again.describe());
    assert!(again.stderr.contains(EXISTS), "{}", again.describe());
    assert_eq!(std::fs::read_to_string(&config).unwrap(), text);
}

#[test]
fn spec_rootless_uses_a_user_namespace() {
    let dir = tempfile::tempdir().unwrap();
    ok(&["spec", "--rootless", "--bundle", path_str(dir.path())]);
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    let namespaces: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(namespaces.contains(&"user"), "{namespaces:?}");
    assert!(!namespaces.contains(&"network"), "{namespaces:?}");
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(v["linux"]["uidMappings"][0]["hostID"], euid);
    assert!(v["linux"].get("resources").is_none());
}

#[test]
fn json_log_ends_with_the_error_as_runc_writes_it() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = path_str(dir.path());
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let log = dir.path().join("log.json");
    let earlier = r#"{"level":"info","msg":"earlier","time":"2026-01-01T00:00:00Z"}"#;
    std::fs::write(&log, format!("{earlier}\n")).unwrap();
    let out = run_vmrun(
        &[
            "--log",
            path_str(&log),
            "--log-format",
            "json",
            "spec",
            "--bundle",
            bundle,
        ],
        QUICK,
    );
    assert_eq!(code(&out), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains(EXISTS),
        "stderr has it too\n{}",
        out.describe()
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with(earlier), "the log is appended to\n{text}");
    // What containerd's shim does: the last line whose level is error.
    let last_error = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in\n{text}"));
    let object = last_error.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["level", "msg", "time"], "{text}");
    assert_eq!(last_error["msg"], EXISTS);
    let time = last_error["time"].as_str().unwrap();
    assert!(is_rfc3339_utc(time), "{time}");
}

#[test]
fn text_log_is_logrus_like() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    let log = dir.path().join("log.txt");
    let out = run_vmrun(
        &[
            "--log",
            path_str(&log),
            "spec",
            "--bundle",
            path_str(dir.path()),
        ],
        QUICK,
    );
    assert_eq!(code(&out), Some(1), "{}", out.describe());
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().last().unwrap_or_else(|| panic!("empty log"));
    let rest = line
        .strip_prefix("time=\"")
        .unwrap_or_else(|| panic!("{line}"));
    let (time, rest) = rest.split_once('"').unwrap();
    assert!(is_rfc3339_utc(time), "{line}");
    assert_eq!(rest, format!(" level=error msg=\"{EXISTS}\""));
}

#[test]
fn usage_errors_exit_1_and_reach_the_log_as_runcs_do() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    for args in [
        vec!["create", "--no-such-flag", "id"],
        vec!["kill"],
        vec!["state"],
    ] {
        let mut argv = vec!["--log", path_str(&log), "--log-format", "json"];
        argv.extend(&args);
        let out = run_vmrun(&argv, QUICK);
        assert_eq!(code(&out), Some(1), "{}", out.describe());
        assert!(!out.stderr.is_empty(), "{}", out.describe());
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let last: Value = text
            .lines()
            .last()
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("{args:?}: no JSON line in the log:\n{text}"));
        assert_eq!(last["level"], "error", "{text}");
        let msg = last["msg"].as_str().unwrap_or_default();
        assert!(!msg.is_empty() && !msg.contains('\n'), "{text}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("--no-such-flag"), "{text}");
    // Help and version are not errors.
    ok(&["--help"]);
    ok(&["create", "--help"]);
}

#[test]
fn a_failed_exec_exits_255_saying_exec_failed_as_runcs_does() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let log = dir.path().join("log.json");
    let exec = |args: &[&str]| {
        let mut words = vec![
            "--root",
            path_str(&root),
            "--log",
            path_str(&log),
            "--log-format",
            "json",
            "exec",
        ];
        words.extend_from_slice(args);
        run_vmrun(&words, QUICK)
    };
    // No such container, and a flag the guest cannot honour: both are
    // runc's "exec failed", status 255 (not the 1 of other verbs).
    for args in [
        &["nope", "true"][..],
        &["--cgroup", "sub", "nope", "true"][..],
    ] {
        let out = exec(args);
        assert_eq!(code(&out), Some(255), "{args:?}: {}", out.describe());
        assert!(
            out.stderr.contains("exec failed: "),
            "{args:?}: {}",
            out.describe()
        );
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error", "{text}");
    assert!(
        last["msg"]
            .as_str()
            .is_some_and(|m| m.starts_with("exec failed: ")),
        "{text}"
    );
    // Other verbs keep 1.
    let out = run_vmrun(&["--root", path_str(&root), "start", "nope"], QUICK);
    assert_eq!(code(&out), Some(1), "{}", out.describe());
}
