//! OCI hooks through vmrun in real microVMs: every phase runs on the host
//! at its point of the lifecycle (`create`, `start`, `delete`, and the
//! foreground `run`), in order, with the container's state on stdin; a
//! failing create hook fails `create` and leaves nothing but the poststop
//! hooks' traces; a failing poststart hook is only a warning.
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use vmrun_tests::bundle::edit_config;
use vmrun_tests::leftovers::Traces;
use vmrun_tests::runtimes::{code, Observed, Runtime};
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::{boot_timeout, guest_ready, run_ok};

/// How long a container may take to reach a state (a hang guard).
const STATE_LIMIT: Duration = Duration::from_secs(120);

const PHASES: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-hooks", "256m");

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// vmrun with a fresh root, and a fresh copy of the busybox bundle whose
/// process runs `args`, annotated, with `hooks`.
fn setup(test: &str, args: &[&str], hooks: Value) -> Option<(Runtime, PathBuf)> {
    let g = guest_ready(test)?;
    let dir = SCRATCH.dir().join(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("test dir");
    let vmrun = Runtime::vmrun(&dir.join("root"), &g.kernel, &g.initrd, boot_timeout());
    let b = dir.join("bundle");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(SCRATCH.base_bundle())
            .arg(&b),
        "copying the bundle (cp -a)",
    );
    edit_config(&b, |spec| {
        spec["process"]["args"] = json!(args);
        spec["annotations"] = json!({"org.example.hooks": "yes"});
        spec["hooks"] = hooks.clone();
    });
    Some((vmrun, b))
}

/// A hook that appends its phase to `dir/log` and keeps its stdin as
/// `dir/PHASE.json`.
fn recorder(dir: &Path, phase: &str) -> Value {
    let d = dir.display();
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("cat > {d}/{phase}.json; echo {phase} >> {d}/log")],
        "timeout": 30,
    })
}

fn recorders(dir: &Path) -> Value {
    let mut hooks = serde_json::Map::new();
    for phase in PHASES {
        hooks.insert(phase.into(), json!([recorder(dir, phase)]));
    }
    Value::Object(hooks)
}

fn log(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn state_seen(dir: &Path, phase: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(format!("{phase}.json")))
        .unwrap_or_else(|e| panic!("the {phase} hook kept no state: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{phase}'s stdin: {e}: {text}"))
}

fn out_dir(test: &str) -> PathBuf {
    let dir = SCRATCH.dir().join(format!("{test}-hooks"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("hook output dir");
    dir
}

#[test]
fn each_verb_runs_its_hooks_in_order_with_the_state() {
    let test = "each_verb_runs_its_hooks_in_order_with_the_state";
    let out = out_dir(test);
    let Some((vmrun, b)) = setup(test, &["true"], recorders(&out)) else {
        return;
    };
    let create = vmrun.call_detached("create", &["--bundle", s(&b), "h1"]);
    assert!(create.success(), "{}", create.describe());
    assert_eq!(log(&out), PHASES[..3], "after create");
    let Observed::State { pid, .. } = vmrun.state("h1") else {
        panic!("no state after create");
    };
    let start = vmrun.call("start", &["h1"]);
    assert!(start.success(), "{}", start.describe());
    assert_eq!(log(&out), PHASES[..5], "after start");
    assert_eq!(vmrun.wait_status("h1", "stopped", STATE_LIMIT), "stopped");
    let delete = vmrun.call("delete", &["h1"]);
    assert!(delete.success(), "{}", delete.describe());
    assert_eq!(log(&out), PHASES, "after delete");
    for (phase, status) in PHASES.iter().zip([
        "created", "created", "created", "created", "running", "stopped",
    ]) {
        let seen = state_seen(&out, phase);
        assert_eq!(seen["id"], "h1", "{phase}: {seen}");
        assert_eq!(seen["status"], status, "{phase}: {seen}");
        assert_eq!(seen["bundle"], s(&b), "{phase}: {seen}");
        assert_eq!(seen["pid"], pid, "{phase}: the pid is `state`'s: {seen}");
        assert_eq!(
            seen["annotations"],
            json!({"org.example.hooks": "yes"}),
            "{phase}: {seen}"
        );
        assert!(seen["ociVersion"].is_string(), "{phase}: {seen}");
    }
}

#[test]
fn a_failing_create_hook_fails_create_and_leaves_nothing() {
    let test = "a_failing_create_hook_fails_create_and_leaves_nothing";
    let out = out_dir(test);
    let failing = json!({"path": "/bin/sh", "args": ["sh", "-c", "echo no way >&2; exit 7"]});
    let hooks = json!({
        "createRuntime": [recorder(&out, "createRuntime"), failing],
        "createContainer": [recorder(&out, "createContainer")],
        "poststop": [recorder(&out, "poststop")],
    });
    let Some((vmrun, b)) = setup(test, &["sleep", "100"], hooks) else {
        return;
    };
    let create = vmrun.call_detached("create", &["--bundle", s(&b), "h2"]);
    assert_eq!(code(&create), Some(1), "{}", create.describe());
    assert!(
        create.stderr.contains(
            "error running createRuntime hook #1: error running hook: exit status 7, stdout: , stderr: no way"
        ),
        "{}",
        create.describe()
    );
    // The phase ended at the failure; the container went, then poststop ran.
    assert_eq!(log(&out), ["createRuntime", "poststop"]);
    assert!(matches!(vmrun.state("h2"), Observed::Error(..)));
    Traces {
        id: "h2",
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    }
    .assert_nothing_left();
}

#[test]
fn foreground_run_runs_every_phase_and_a_failing_poststart_only_warns() {
    let test = "foreground_run_runs_every_phase_and_a_failing_poststart_only_warns";
    let out = out_dir(test);
    let mut hooks = recorders(&out);
    hooks["poststart"] = json!([
        {"path": "/bin/false", "args": ["false"]},
        recorder(&out, "poststart"),
    ]);
    let Some((vmrun, b)) = setup(test, &["sh", "-c", "exit 3"], hooks) else {
        return;
    };
    let run = vmrun.call("run", &["--bundle", s(&b), "h3"]);
    assert_eq!(code(&run), Some(3), "{}", run.describe());
    assert!(
        run.stderr.contains("error running poststart hook #0"),
        "the failed poststart hook was not reported: {}",
        run.describe()
    );
    assert_eq!(log(&out), PHASES);
    assert_eq!(state_seen(&out, "poststop")["status"], "stopped");
    Traces {
        id: "h3",
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    }
    .assert_nothing_left();
}
