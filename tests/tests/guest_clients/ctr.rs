//! containerd 1.6's `ctr` with the runtime under test as the runc binary
//! of the runc v2 shim.

use serde_json::Value;
use vmrun_tests::clients::{
    poll, PrivateContainerd, PtyChild, RuntimeUnderTest, BUSYBOX_IMAGE, PAUSE_IMAGE,
};
use vmrun_tests::RunOutput;

use crate::{assert_kernel_of, env_dir, images, limit};

/// The clients a ctr test needs.
const TOOLS: &[&str] = &[
    "containerd",
    "ctr",
    "containerd-shim-runc-v2",
    "nsenter",
    "ip",
];

/// A private containerd with the images imported into the test's
/// namespace, or `None` (skipped).
fn ctr_env(test: &str) -> Option<PrivateContainerd> {
    let runtime = RuntimeUnderTest::for_test(test, TOOLS)?;
    let containerd = PrivateContainerd::start(&env_dir(test), &runtime, limit());
    containerd.import_images(containerd.namespace(), images());
    Some(containerd)
}

fn code(out: &RunOutput) -> Option<i32> {
    out.status.and_then(|s| s.code())
}

/// `ctr run <flags> <before...> IMAGE ID <command...>`.
fn ctr_run(
    containerd: &PrivateContainerd,
    before: &[&str],
    id: &str,
    command: &[&str],
) -> RunOutput {
    let flags = containerd.run_flags();
    let mut args = vec!["run"];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(before);
    args.extend([BUSYBOX_IMAGE, id]);
    args.extend_from_slice(command);
    containerd.ctr(&args)
}

/// The `ctr task ls` line of `id`: (pid, status).
fn task_line(containerd: &PrivateContainerd, id: &str) -> Option<(i64, String)> {
    let out = containerd.ctr(&["task", "ls"]);
    out.stdout.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            [task, pid, status] if *task == id => Some((pid.parse().ok()?, status.to_string())),
            _ => None,
        }
    })
}

/// `ctr images import` of the local archive, then `ctr run --rm` (attached):
/// the container's stdout and exit codes come back; it ran on the runtime
/// under test; `--rm` left no container.
#[test]
fn ctr_run_reports_stdout_and_exit_codes() {
    let Some(containerd) = ctr_env("ctr_run_reports_stdout_and_exit_codes") else {
        return;
    };
    let listed = containerd.ctr(&["images", "ls", "-q"]);
    let names: Vec<&str> = listed.stdout.lines().collect();
    assert_eq!(names, [BUSYBOX_IMAGE, PAUSE_IMAGE], "{}", listed.describe());

    let out = ctr_run(&containerd, &["--rm"], "r0", &["sh", "-c", "echo out-line"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_eq!(out.stdout, "out-line\n", "{}", out.describe());

    let out = ctr_run(&containerd, &["--rm"], "r3", &["sh", "-c", "exit 3"]);
    assert_eq!(code(&out), Some(3), "{}", out.describe());

    let out = ctr_run(
        &containerd,
        &["--rm"],
        "r9",
        &["sh", "-c", "echo before; exit 255"],
    );
    assert_eq!(code(&out), Some(255), "{}", out.describe());
    assert_eq!(out.stdout, "before\n", "{}", out.describe());

    let out = ctr_run(&containerd, &["--rm"], "ru", &["uname", "-r"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert_kernel_of(containerd.runtime(), &out.stdout, "ctr run");

    let left = containerd.ctr(&["containers", "ls", "-q"]);
    assert_eq!(
        left.stdout.trim(),
        "",
        "--rm left containers: {}",
        left.describe()
    );
}

/// `ctr run --tty` from a real terminal: the process's stdin is a tty,
/// what is typed reaches it, and its exit code comes back.
#[test]
fn ctr_run_tty_through_a_pty() {
    let Some(containerd) = ctr_env("ctr_run_tty_through_a_pty") else {
        return;
    };
    let flags = containerd.run_flags();
    let mut args = vec!["run", "--rm", "--tty"];
    args.extend(flags.iter().map(String::as_str));
    args.extend([
        BUSYBOX_IMAGE,
        "t1",
        "sh",
        "-c",
        "tty; test -t 0 && echo stdin-is-a-tty; read line; echo got=$line; exit 4",
    ]);
    let mut term = PtyChild::spawn(containerd.ctr_command(containerd.namespace(), &args))
        .expect("ctr on a pty");
    assert!(
        term.wait_for("stdin-is-a-tty", limit()),
        "no tty output from `{}`:\n{}",
        term.command(),
        term.screen()
    );
    term.type_text("typed-text\n");
    let (status, screen) = term.finish(limit());
    assert_eq!(status.and_then(|s| s.code()), Some(4), "{screen}");
    assert!(screen.contains("/dev/pts/0"), "{screen}");
    assert!(screen.contains("got=typed-text"), "{screen}");
}

/// A detached task: `ctr task exec` (output, exit code, the same
/// filesystem, the runtime under test), `ctr task ps` listing the task's
/// pid and a running exec's id, `ctr task metrics` from the task's cgroup,
/// `ctr task kill` delivering SIGTERM to the trap, `ctr task delete`
/// reporting its exit code.
#[test]
fn ctr_task_exec_ps_metrics_kill_delete() {
    let Some(containerd) = ctr_env("ctr_task_exec_ps_metrics_kill_delete") else {
        return;
    };
    let script = "trap 'exit 9' TERM; echo hello > /tmp/mark; while :; do sleep 1 & wait $!; done";
    let out = ctr_run(&containerd, &["--detach"], "d1", &["sh", "-c", script]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let (pid, status) = task_line(&containerd, "d1").expect("d1 in ctr task ls");
    assert_eq!(status, "RUNNING");
    assert!(pid > 0, "task pid {pid}");

    let exec_flags = containerd.exec_flags();
    let exec = |exec_id: &str, extra: &[&str], command: &[&str]| {
        let mut args = vec!["task", "exec"];
        args.extend(exec_flags.iter().map(String::as_str));
        args.extend(["--exec-id", exec_id]);
        args.extend_from_slice(extra);
        args.push("d1");
        args.extend_from_slice(command);
        containerd.ctr(&args)
    };
    let out = exec(
        "e1",
        &[],
        &["sh", "-c", "cat /tmp/mark; echo from-exec; exit 6"],
    );
    assert_eq!(code(&out), Some(6), "{}", out.describe());
    assert_eq!(out.stdout, "hello\nfrom-exec\n", "{}", out.describe());
    let out = exec("e2", &[], &["uname", "-r"]);
    assert_kernel_of(containerd.runtime(), &out.stdout, "ctr task exec");

    let out = exec("long", &["--detach"], &["sleep", "1000"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let ps = containerd.ctr(&["task", "ps", "d1"]);
    assert_eq!(code(&ps), Some(0), "{}", ps.describe());
    let rows: Vec<Vec<&str>> = ps
        .stdout
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.first() == Some(&pid.to_string().as_str())),
        "task pid {pid} in:\n{}",
        ps.stdout
    );
    assert!(
        ps.stdout.lines().any(|l| l.contains("ExecID:long")),
        "the exec `long` in:\n{}",
        ps.stdout
    );
    let out = containerd.ctr(&[
        "task",
        "kill",
        "--exec-id",
        "long",
        "--signal",
        "SIGKILL",
        "d1",
    ]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());

    let metrics = containerd.ctr(&["task", "metrics", "--format", "json", "d1"]);
    assert_eq!(code(&metrics), Some(0), "{}", metrics.describe());
    let json: Value = serde_json::from_str(&metrics.stdout)
        .unwrap_or_else(|e| panic!("metrics JSON ({e}): {}", metrics.stdout));
    let pids = json["pids"]["current"].as_u64().unwrap_or(0);
    assert!(pids >= 1, "the task's cgroup holds its processes: {json}");

    let out = containerd.ctr(&["task", "kill", "--signal", "SIGTERM", "d1"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let stopped = poll(limit(), || {
        task_line(&containerd, "d1").filter(|(_, s)| s == "STOPPED")
    });
    assert!(
        stopped.is_some(),
        "d1 never STOPPED: {}",
        containerd.ctr(&["task", "ls"]).stdout
    );
    let out = containerd.ctr(&["task", "delete", "d1"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    assert!(
        out.stderr.contains("exit code 9"),
        "ctr task delete reports the exit code: {}",
        out.describe()
    );
    let out = containerd.ctr(&["containers", "rm", "d1"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());

    // A task that ignores SIGTERM ends with SIGKILL: exit code 128 + 9.
    let out = ctr_run(
        &containerd,
        &["--detach"],
        "d2",
        &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let out = containerd.ctr(&["task", "kill", "--signal", "SIGKILL", "d2"]);
    assert_eq!(code(&out), Some(0), "{}", out.describe());
    let stopped = poll(limit(), || {
        task_line(&containerd, "d2").filter(|(_, s)| s == "STOPPED")
    });
    assert!(
        stopped.is_some(),
        "d2 never STOPPED: {}",
        containerd.ctr(&["task", "ls"]).stdout
    );
    let out = containerd.ctr(&["task", "delete", "d2"]);
    assert!(out.stderr.contains("exit code 137"), "{}", out.describe());
}
