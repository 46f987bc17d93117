//! Hooks run as real host programs (`/bin/sh`): what they are given, the
//! order they run in, how their failures and timeouts are reported.

use std::time::Instant;

use oci_spec::runtime::{Hook, Hooks};
use serde_json::{json, Value};

use super::*;

fn sh(script: &str) -> Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script]})
}

fn hooks(value: Value) -> Hooks {
    serde_json::from_value(value).unwrap()
}

fn state() -> HookState {
    HookState {
        oci_version: "1.0.2".into(),
        id: "c1".into(),
        status: "unset",
        pid: 4321,
        bundle: "/b".into(),
        annotations: BTreeMap::from([("k".to_string(), "v".to_string())]),
    }
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn each_phase_gets_the_state_on_stdin_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut all = serde_json::Map::new();
    for phase in [
        HookPhase::Prestart,
        HookPhase::CreateRuntime,
        HookPhase::CreateContainer,
        HookPhase::StartContainer,
        HookPhase::Poststart,
        HookPhase::Poststop,
    ] {
        all.insert(
            phase.name().into(),
            json!([sh(&format!("cat > {d}/{}", phase.name()))]),
        );
    }
    let hooks = hooks(Value::Object(all));
    for phase in HookPhase::CREATE {
        run_phase(phase, &hooks, &state()).unwrap();
    }
    run_phase(HookPhase::StartContainer, &hooks, &state()).unwrap();
    run_phase_warning(HookPhase::Poststart, &hooks, &state());
    run_phase_warning(HookPhase::Poststop, &hooks, &state());
    for (name, status) in [
        ("prestart", "created"),
        ("createRuntime", "created"),
        ("createContainer", "created"),
        ("startContainer", "created"),
        ("poststart", "running"),
        ("poststop", "stopped"),
    ] {
        let got: Value = serde_json::from_str(&read(&dir.path().join(name))).unwrap();
        assert_eq!(
            got,
            json!({"ociVersion": "1.0.2", "id": "c1", "status": status, "pid": 4321,
                   "bundle": "/b", "annotations": {"k": "v"}}),
            "{name}"
        );
    }
}

#[test]
fn hooks_run_in_order_with_their_args_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = out.display();
    let hooks = hooks(json!({"createRuntime": [
        // argv[0] as given (read back from /proc), the env as given only.
        {"path": "/bin/sh", "args": ["first-argv0", "-c",
            format!("head -c 11 /proc/$$/cmdline >> {o}; echo \" $0 [$A] [$HOME]\" >> {o}"), "x"],
         "env": ["A=b=c", "PATH=/bin:/usr/bin"]},
        // No args: argv[0] is the path. No env: vmrun's own.
        {"path": "/bin/true"},
        sh(&format!("echo \"2 [${{PATH:+vmrun's PATH}}]\" >> {o}")),
    ]}));
    run_phase(HookPhase::CreateRuntime, &hooks, &state()).unwrap();
    assert_eq!(read(&out), "first-argv0 x [b=c] []\n2 [vmrun's PATH]\n");
}

#[test]
fn a_failing_hook_ends_its_phase_with_runcs_message() {
    let dir = tempfile::tempdir().unwrap();
    let after = dir.path().join("after");
    let hooks = hooks(json!({"createRuntime": [
        {"path": "/bin/true"},
        sh("echo out; echo err >&2; exit 3"),
        sh(&format!("touch {}", after.display())),
    ]}));
    let e = run_phase(HookPhase::CreateRuntime, &hooks, &state()).unwrap_err();
    assert_eq!(e.index, 1);
    assert_eq!(
        crate::error_chain(&e),
        "error running createRuntime hook #1: error running hook: exit status 3, stdout: out\n, stderr: err\n"
    );
    assert!(!after.exists(), "a hook after the failed one ran");
}

#[test]
fn warning_phases_run_every_hook_past_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let after = dir.path().join("after");
    let hooks = hooks(json!({"poststop": [
        {"path": "/bin/false", "args": ["false"]},
        {"path": "/nonexistent/hook"},
        sh(&format!("touch {}", after.display())),
    ]}));
    run_phase_warning(HookPhase::Poststop, &hooks, &state());
    assert!(after.exists());
}

#[test]
fn a_hook_past_its_timeout_is_killed() {
    let hooks = hooks(json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 30"], "timeout": 1},
    ]}));
    let started = Instant::now();
    let e = run_phase(HookPhase::StartContainer, &hooks, &state()).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(e.source, HookRunError::Timeout(_)), "{e:?}");
    assert_eq!(
        crate::error_chain(&e),
        "error running startContainer hook #0: hook ran past specified timeout of 1.0s"
    );
}

#[test]
fn a_missing_program_is_named() {
    let hooks = hooks(json!({"prestart": [{"path": "/nonexistent/hook"}]}));
    let e = run_phase(HookPhase::Prestart, &hooks, &state()).unwrap_err();
    assert!(
        crate::error_chain(&e)
            .starts_with("error running prestart hook #0: cannot run /nonexistent/hook: "),
        "{}",
        crate::error_chain(&e)
    );
}

#[test]
fn hooks_that_ignore_stdin_or_leave_children_do_not_stall() {
    let mut big = state();
    // More state than a pipe holds, to a hook that never reads it.
    big.annotations.insert("big".into(), "x".repeat(1 << 20));
    let hooks = hooks(json!({"poststart": [
        {"path": "/bin/true"},
        // Fails, leaving a child that holds its stdout and stderr.
        sh("sleep 30 & exit 1"),
    ]}));
    let started = Instant::now();
    let e = run_phase(HookPhase::Poststart, &hooks, &big).unwrap_err();
    assert!(matches!(e.source, HookRunError::Failed { .. }), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_phase_without_hooks_runs_nothing() {
    run_phase(HookPhase::CreateContainer, &Hooks::default(), &state()).unwrap();
    assert!(HookPhase::Poststop.of(&Hooks::default()).is_empty());
    let _: &[Hook] = HookPhase::Prestart.of(&hooks(json!({"prestart": []})));
}

#[test]
fn the_guest_is_sent_no_hooks() {
    let mut spec = json!({"ociVersion": "1.0.2", "hooks": {"poststop": [{"path": "/x"}]}});
    remove_from_guest_spec(&mut spec);
    assert_eq!(spec, json!({"ociVersion": "1.0.2"}));
}
