//! runc's lifecycle verbs through vmrun in real microVMs, and the same
//! scripts through runc: both must give the same states, outputs and exit
//! codes (create → created → start → running → kill → stopped → delete;
//! create + delete; verbs on stopped and unknown containers; run --detach;
//! exit codes; concurrent creates of one id). Then what only a VM runtime
//! has to prove: the pid is the VMM's and a subreaper inherits it with the
//! container's status; exec (output, status, a terminal through a console
//! socket, detached with a pid that forwards signals and whose death kills
//! the process); a VMM killed with SIGKILL; bad input leaving nothing;
//! the VMM keeps no descriptor leaked to it and runs with no_new_privs.
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use vmrun_tests::bundle::edit_config;
use vmrun_tests::clients::command::poll;
use vmrun_tests::console_socket::ConsoleSocket;
use vmrun_tests::leftovers::Traces;
use vmrun_tests::runtimes::{code, Observed, Runtime};
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::{boot_timeout, guest_ready, run_ok, wait_until, RunOutput};

/// How long a container may take to reach a state (a hang guard).
const STATE_LIMIT: Duration = Duration::from_secs(120);

static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-lifecycle", "512m");

fn scratch() -> &'static Path {
    SCRATCH.dir()
}

fn base_bundle() -> &'static Path {
    SCRATCH.base_bundle()
}

/// A fresh copy of the busybox bundle whose process runs `args`.
fn bundle(name: &str, args: &[&str]) -> PathBuf {
    let dir = scratch().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    run_ok(
        Command::new("cp").arg("-a").arg(base_bundle()).arg(&dir),
        "copying the bundle (cp -a)",
    );
    edit_config(&dir, |spec| spec["process"]["args"] = json!(args));
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Both runtimes, each with its own fresh root.
fn runtimes(test: &str) -> Option<(Runtime, Runtime)> {
    let g = guest_ready(test)?;
    let dir = scratch().join(test);
    std::fs::create_dir_all(&dir).expect("test dir");
    let runc = Runtime::runc(&dir.join("runc-root"), boot_timeout());
    let vmrun = Runtime::vmrun(
        &dir.join("vmrun-root"),
        &g.kernel,
        &g.initrd,
        boot_timeout(),
    );
    Some((runc, vmrun))
}

/// The kind of error a runtime reported, in the words clients match.
fn error_kind(stderr: &str) -> &'static str {
    let text = stderr.to_ascii_lowercase();
    if text.contains("does not exist") {
        "does-not-exist"
    } else if text.contains("not running") {
        "not-running"
    } else if text.contains("already exists") {
        "already-exists"
    } else if text.contains("not stopped") {
        "not-stopped"
    } else {
        "other"
    }
}

fn outcome(out: &RunOutput) -> String {
    match code(out) {
        Some(0) => "0".into(),
        Some(n) => format!("{n} {}", error_kind(&out.stderr)),
        None => format!("killed/hung: {}", out.describe()),
    }
}

fn observed(o: Observed) -> String {
    match o {
        Observed::State { status, pid } if pid > 0 => format!("{status} pid>0"),
        Observed::State { status, pid } => format!("{status} pid={pid}"),
        Observed::Error(code, stderr) => format!("error {code:?} {}", error_kind(&stderr)),
    }
}

/// `create --bundle b ID` (extra flags in `flags`) with the container's
/// stdout going to `<dir>/out`: create's exit code and that file.
fn create_with_output(
    rt: &Runtime,
    b: &Path,
    id: &str,
    dir: &Path,
    flags: &[&str],
) -> (Option<i32>, PathBuf) {
    let out_file = dir.join("out");
    let mut args = vec!["--bundle", s(b)];
    args.extend_from_slice(flags);
    args.push(id);
    let mut create = rt.spawn("create", &args, &out_file, &dir.join("create-err"));
    let status = wait_until(&mut create, Instant::now() + rt.limit);
    (status.and_then(|s| s.code()), out_file)
}

/// Waits (up to [`STATE_LIMIT`]) until the file at `path` holds `needle`.
fn wait_for_output(path: &Path, needle: &str) {
    let deadline = Instant::now() + STATE_LIMIT;
    while !std::fs::read_to_string(path)
        .unwrap_or_default()
        .contains(needle)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `kill ID SIGNAL`, then the wait for `stopped`: two transcript lines.
fn kill_and_wait(t: &mut Transcript, rt: &Runtime, id: &str, signal: &str) {
    let killed = outcome(&rt.call("kill", &[id, signal]));
    t.push(format!("kill {signal}: {killed}"));
    t.push(format!(
        "waited: {}",
        rt.wait_status(id, "stopped", STATE_LIMIT)
    ));
}

/// create → state → start → state → kill TERM → stopped → kill again →
/// delete → state; and the process's output through create's stdout.
fn lifecycle_script(rt: &Runtime) -> Vec<String> {
    let b = bundle(
        &format!("lifecycle-{}", rt.name),
        &[
            "sh",
            "-c",
            "trap 'echo got-term; exit 3' TERM; echo started; while :; do sleep 1; done",
        ],
    );
    let id = "lc";
    let dir = b.parent().expect("parent").join(format!("lc-{}", rt.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let pid_file = dir.join("pid");
    let mut t = Transcript::new(rt);
    let (code, out_file) = create_with_output(rt, &b, id, &dir, &["--pid-file", s(&pid_file)]);
    t.push(format!("create: {code:?}"));
    let state = rt.state(id);
    if let Observed::State { pid, .. } = &state {
        let recorded = std::fs::read_to_string(&pid_file).unwrap_or_default();
        t.push(format!(
            "pid file matches state: {}",
            recorded.trim() == pid.to_string()
        ));
    }
    t.push(format!("state: {}", observed(state)));
    t.push(format!("start: {}", outcome(&rt.call("start", &[id]))));
    t.push(format!("state: {}", observed(rt.state(id))));
    // Wait for the trap to be set (the process printed `started`).
    wait_for_output(&out_file, "started");
    kill_and_wait(&mut t, rt, id, "TERM");
    t.push(format!("state: {}", observed(rt.state(id))));
    t.push(format!(
        "kill stopped: {}",
        outcome(&rt.call("kill", &[id, "TERM"]))
    ));
    t.push(format!("delete: {}", outcome(&rt.call("delete", &[id]))));
    t.push(format!("state deleted: {}", observed(rt.state(id))));
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    t.push(format!("stdout: {:?}", output.lines().collect::<Vec<_>>()));
    t.lines
}

/// A transcript that also prints each line as it is recorded (a hang then
/// shows where it happened).
struct Transcript {
    runtime: &'static str,
    lines: Vec<String>,
}

impl Transcript {
    fn new(rt: &Runtime) -> Self {
        Self {
            runtime: rt.name,
            lines: Vec::new(),
        }
    }

    fn push(&mut self, line: String) {
        eprintln!("[{}] {line}", self.runtime);
        self.lines.push(line);
    }
}

/// Compares two transcripts line by line with both in the message.
fn assert_same(runc: &[String], vmrun: &[String]) {
    assert_eq!(
        runc,
        vmrun,
        "runc and vmrun differ\n--- runc ---\n{}\n--- vmrun ---\n{}",
        runc.join("\n"),
        vmrun.join("\n")
    );
}

#[test]
fn lifecycle_matches_runc() {
    let Some((runc, vmrun)) = runtimes("lifecycle_matches_runc") else {
        return;
    };
    let want = lifecycle_script(&runc);
    let got = lifecycle_script(&vmrun);
    assert_same(&want, &got);
    // What the transcript must say, whatever runc said.
    assert!(
        got.contains(&"state: created pid>0".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&"state: stopped pid=0".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&"kill stopped: 1 not-running".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&"pid file matches state: true".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&r#"stdout: ["started", "got-term"]"#.to_string()),
        "{got:#?}"
    );
}

/// A container before it was started, as runc allows: a process exec'd
/// into it runs; it can be paused, and while it is, start, exec and delete
/// are refused; resume makes it created again, and then it starts and runs.
fn before_start(rt: &Runtime) -> Vec<String> {
    let b = bundle(
        &format!("pause-created-{}", rt.name),
        &["sh", "-c", "echo started; sleep 1000"],
    );
    let id = "pc";
    let dir = b.parent().expect("parent").join(format!("pc-{}", rt.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut t = Transcript::new(rt);
    let (code, out_file) = create_with_output(rt, &b, id, &dir, &[]);
    t.push(format!("create: {code:?}"));
    let exec = rt.call("exec", &[id, "sh", "-c", "echo exec-ran; exit 4"]);
    t.push(format!(
        "exec created: {} {:?}",
        outcome(&exec),
        exec.stdout.trim()
    ));
    t.push(format!("state: {}", observed(rt.state(id))));
    t.push(format!(
        "pause created: {}",
        outcome(&rt.call("pause", &[id]))
    ));
    t.push(format!("state: {}", observed(rt.state(id))));
    let start = rt.call("start", &[id]);
    t.push(format!("start paused: {}", outcome(&start)));
    t.push(format!(
        "start paused names the state: {}",
        start
            .stderr
            .contains("cannot start a container in the paused state")
    ));
    t.push(format!(
        "exec paused: {}",
        outcome(&rt.call("exec", &[id, "true"]))
    ));
    t.push(format!(
        "pause paused: {}",
        outcome(&rt.call("pause", &[id]))
    ));
    t.push(format!(
        "delete paused: {}",
        outcome(&rt.call("delete", &[id]))
    ));
    t.push(format!("resume: {}", outcome(&rt.call("resume", &[id]))));
    t.push(format!("state: {}", observed(rt.state(id))));
    t.push(format!(
        "resume created: {}",
        outcome(&rt.call("resume", &[id]))
    ));
    t.push(format!("start: {}", outcome(&rt.call("start", &[id]))));
    t.push(format!("state: {}", observed(rt.state(id))));
    wait_for_output(&out_file, "started");
    kill_and_wait(&mut t, rt, id, "KILL");
    t.push(format!("delete: {}", outcome(&rt.call("delete", &[id]))));
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    t.push(format!("stdout: {:?}", output.lines().collect::<Vec<_>>()));
    t.lines
}

#[test]
fn exec_and_pause_before_start_match_runc() {
    let Some((runc, vmrun)) = runtimes("exec_and_pause_before_start_match_runc") else {
        return;
    };
    let want = before_start(&runc);
    let got = before_start(&vmrun);
    assert_same(&want, &got);
    // What the transcript must say, whatever runc said.
    for line in [
        r#"exec created: 4 other "exec-ran""#,
        "exec paused: 255 other",
        "state: paused pid>0",
        "start paused names the state: true",
        "state: created pid>0",
        "state: running pid>0",
        r#"stdout: ["started"]"#,
    ] {
        assert!(got.contains(&line.to_string()), "no {line:?} in {got:#?}");
    }
}

fn create_delete_and_unknown_ids(rt: &Runtime) -> Vec<String> {
    let b = bundle(&format!("cd-{}", rt.name), &["true"]);
    let mut t = Transcript::new(rt);
    let created = rt.call_detached("create", &["--bundle", s(&b), "cd"]);
    t.push(format!("create: {}", outcome(&created)));
    t.push(format!("state: {}", observed(rt.state("cd"))));
    t.push(format!(
        "delete created: {}",
        outcome(&rt.call("delete", &["cd"]))
    ));
    t.push(format!("state: {}", observed(rt.state("cd"))));
    for (what, verb, args) in [
        ("delete unknown", "delete", vec!["nope"]),
        ("delete --force unknown", "delete", vec!["--force", "nope"]),
        ("kill unknown", "kill", vec!["nope", "KILL"]),
        ("start unknown", "start", vec!["nope"]),
    ] {
        t.push(format!("{what}: {}", outcome(&rt.call(verb, &args))));
    }
    t.push(format!("state unknown: {}", observed(rt.state("nope"))));
    t.lines
}

#[test]
fn create_delete_and_unknown_ids_match_runc() {
    let Some((runc, vmrun)) = runtimes("create_delete_and_unknown_ids_match_runc") else {
        return;
    };
    let want = create_delete_and_unknown_ids(&runc);
    let got = create_delete_and_unknown_ids(&vmrun);
    assert_same(&want, &got);
    assert!(
        got.contains(&"delete --force unknown: 0".to_string()),
        "{got:#?}"
    );
    assert!(
        got.contains(&"state: error Some(1) does-not-exist".to_string()),
        "{got:#?}"
    );
}

fn detached_run(rt: &Runtime) -> Vec<String> {
    let b = bundle(&format!("detach-{}", rt.name), &["sleep", "1000"]);
    let pid_file = scratch().join(format!("detach-{}.pid", rt.name));
    let mut t = Transcript::new(rt);
    let ran = rt.call_detached(
        "run",
        &["-d", "--bundle", s(&b), "--pid-file", s(&pid_file), "dt"],
    );
    t.push(format!("run -d: {}", outcome(&ran)));
    t.push(format!("state: {}", observed(rt.state("dt"))));
    t.push(format!(
        "pid file: {}",
        std::fs::read_to_string(&pid_file).is_ok()
    ));
    kill_and_wait(&mut t, rt, "dt", "KILL");
    t.push(format!("delete: {}", outcome(&rt.call("delete", &["dt"]))));
    t.lines
}

#[test]
fn run_detach_matches_runc() {
    let Some((runc, vmrun)) = runtimes("run_detach_matches_runc") else {
        return;
    };
    let want = detached_run(&runc);
    let got = detached_run(&vmrun);
    assert_same(&want, &got);
    assert!(
        got.contains(&"state: running pid>0".to_string()),
        "{got:#?}"
    );
}

fn exit_codes(rt: &Runtime) -> Vec<String> {
    let mut t = Transcript::new(rt);
    for (id, args) in [
        ("x0", vec!["true"]),
        ("x1", vec!["sh", "-c", "exit 1"]),
        ("x42", vec!["sh", "-c", "exit 42"]),
    ] {
        let b = bundle(&format!("{id}-{}", rt.name), &args);
        t.push(format!(
            "{id}: {:?}",
            code(&rt.call("run", &["--bundle", s(&b), id]))
        ));
    }
    // Killed by SIGKILL from outside: 128 + 9.
    let b = bundle(&format!("x137-{}", rt.name), &["sleep", "1000"]);
    let dir = scratch().join(format!("x137-{}", rt.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut run = rt.spawn(
        "run",
        &["--bundle", s(&b), "x137"],
        &dir.join("out"),
        &dir.join("err"),
    );
    t.push(format!(
        "x137 running: {}",
        rt.wait_status("x137", "running", STATE_LIMIT)
    ));
    t.push(format!(
        "kill: {}",
        outcome(&rt.call("kill", &["x137", "KILL"]))
    ));
    let status = wait_until(&mut run, Instant::now() + rt.limit);
    t.push(format!("x137: {:?}", status.and_then(|s| s.code())));
    t.push(format!("gone after run: {}", observed(rt.state("x137"))));
    t.lines
}

#[test]
fn exit_codes_match_runc() {
    let Some((runc, vmrun)) = runtimes("exit_codes_match_runc") else {
        return;
    };
    let want = exit_codes(&runc);
    let got = exit_codes(&vmrun);
    assert_same(&want, &got);
    for line in [
        "x0: Some(0)",
        "x1: Some(1)",
        "x42: Some(42)",
        "x137: Some(137)",
    ] {
        assert!(got.contains(&line.to_string()), "{line}: {got:#?}");
    }
}

fn concurrent_creates(rt: &Runtime) -> Vec<String> {
    let b = bundle(&format!("cc-{}", rt.name), &["sleep", "1000"]);
    let dir = scratch().join(format!("cc-{}", rt.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut children: Vec<_> = (0..2)
        .map(|i| {
            let child = rt.spawn(
                "create",
                &["--bundle", s(&b), "cc"],
                &dir.join(format!("out{i}")),
                &dir.join(format!("err{i}")),
            );
            (i, child)
        })
        .collect();
    let mut results: Vec<String> = children
        .iter_mut()
        .map(|(i, child)| {
            let status = wait_until(child, Instant::now() + rt.limit);
            let err = std::fs::read_to_string(dir.join(format!("err{i}"))).unwrap_or_default();
            match status.and_then(|s| s.code()) {
                Some(0) => "0".to_string(),
                other => format!("{other:?} {}", error_kind(&err)),
            }
        })
        .collect();
    results.sort();
    let mut t = Transcript::new(rt);
    t.push(format!("creates: {results:?}"));
    t.push(format!("state: {}", observed(rt.state("cc"))));
    t.push(format!(
        "delete --force: {}",
        outcome(&rt.call("delete", &["--force", "cc"]))
    ));
    t.lines
}

/// Not compared with runc: runc 1.1 checks for the id with stat and then
/// makes its directory non-exclusively, so two racing creates can both
/// pass its check. vmrun's exclusive mkdir lets exactly one win.
#[test]
fn concurrent_creates_of_one_id_have_one_winner() {
    let Some((_, vmrun)) = runtimes("concurrent_creates_of_one_id_have_one_winner") else {
        return;
    };
    let got = concurrent_creates(&vmrun);
    assert_eq!(
        got[0], r#"creates: ["0", "Some(1) already-exists"]"#,
        "{got:#?}"
    );
    assert_eq!(got[1], "state: created pid>0", "{got:#?}");
    assert_eq!(got[2], "delete --force: 0", "{got:#?}");
}

/// One vmrun with a running container for the vmrun-only tests.
fn vmrun_with(test: &str, id: &str, args: &[&str]) -> Option<(Runtime, PathBuf)> {
    let (_, vmrun) = runtimes(test)?;
    let b = bundle(&format!("{test}-bundle"), args);
    let out = vmrun.call_detached("run", &["-d", "--bundle", s(&b), id]);
    assert!(out.success(), "{}", out.describe());
    Some((vmrun, b))
}

#[test]
fn a_subreaper_inherits_the_vmm_and_gets_the_containers_status() {
    let test = "a_subreaper_inherits_the_vmm_and_gets_the_containers_status";
    let Some((_, vmrun)) = runtimes(test) else {
        return;
    };
    let b = bundle("subreaper", &["sh", "-c", "read x; exit 42"]);
    let pid_file = scratch().join("subreaper.pid");
    let mut argv = vec![s(&pid_file).to_string(), vmrun.bin.display().to_string()];
    argv.extend(vmrun.argv(
        "create",
        &["--bundle", s(&b), "--pid-file", s(&pid_file), "sr"],
    ));
    let mut reaper = Command::new(env!("CARGO_BIN_EXE_vmrun-subreaper"))
        .args(&argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the subreaper");
    // The container's stdin is create's: the subreaper's stdin pipe.
    let mut stdin = reaper.stdin.take().expect("stdin");
    let mut stdout = reaper.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    assert_eq!(
        vmrun.wait_status("sr", "created", STATE_LIMIT),
        "created",
        "the container was not created"
    );
    let start = vmrun.call("start", &["sr"]);
    assert!(start.success(), "{}", start.describe());
    stdin
        .write_all(b"go\n")
        .expect("write to the container's stdin");
    drop(stdin);
    let status = wait_until(&mut reaper, Instant::now() + STATE_LIMIT);
    let text = reader.join().unwrap_or_default();
    let mut err = String::new();
    if let Some(mut e) = reaper.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{text}\n{err}");
    let created = text
        .lines()
        .find(|l| l.starts_with("created "))
        .expect(&text);
    let fields: Vec<&str> = created.split_whitespace().collect();
    let me = fields[3].trim_start_matches("me=");
    assert_eq!(fields[2], format!("parent={me}"), "not reparented: {text}");
    assert!(text.lines().any(|l| l == "exited 42"), "{text}");
    assert_eq!(observed(vmrun.state("sr")), "stopped pid=0");
    assert!(vmrun.call("delete", &["sr"]).success());
}

/// The VMM's descriptors that name `path`.
fn fds_naming(pid: i64, path: &Path) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec!["(cannot read the VMM's fd table)".into()];
    };
    dir.flatten()
        .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t == path))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn exec_relays_output_and_status() {
    let test = "exec_relays_output_and_status";
    let Some((_, vmrun)) = runtimes(test) else {
        return;
    };
    // Started with a descriptor leaked to it (no close-on-exec, as a
    // careless caller leaves them): the VMM must not keep it.
    let b = bundle("exec-bundle", &["sleep", "1000"]);
    let leak_path = scratch().join("leaked-descriptor");
    let leak = std::fs::File::create(&leak_path).expect("create the leak file");
    let leak_fd = leak.as_raw_fd();
    let out_dir = tempfile::tempdir().expect("temp dir");
    let mut command = vmrun.command("run", &["-d", "--bundle", s(&b), "ex"]);
    command
        .stdout(std::fs::File::create(out_dir.path().join("out")).expect("out"))
        .stderr(std::fs::File::create(out_dir.path().join("err")).expect("err"));
    // SAFETY: dup2 is async-signal-safe; fd 9 is free in the child.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            if libc::dup2(leak_fd, 9) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = command.spawn().expect("start vmrun run -d");
    let status = wait_until(&mut child, Instant::now() + STATE_LIMIT);
    let err = std::fs::read_to_string(out_dir.path().join("err")).unwrap_or_default();
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{err}");
    let Observed::State { status, pid } = vmrun.state("ex") else {
        panic!("no state for ex");
    };
    assert_eq!(status, "running");
    assert_eq!(fds_naming(pid, &leak_path), Vec::<String>::new());
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        proc_status
            .lines()
            .any(|l| l.split_whitespace().eq(["NoNewPrivs:", "1"])),
        "the VMM runs without no_new_privs:\n{proc_status}"
    );
    let out = vmrun.call(
        "exec",
        &["ex", "sh", "-c", "echo out; echo err >&2; exit 5"],
    );
    assert_eq!(code(&out), Some(5), "{}", out.describe());
    assert_eq!(out.stdout, "out\n", "{}", out.describe());
    assert!(out.stderr.contains("err"), "{}", out.describe());
    // The exec'd process sees the container's environment and root.
    let out = vmrun.call(
        "exec",
        &[
            "-e",
            "EXTRA=1",
            "--cwd",
            "/tmp",
            "ex",
            "sh",
            "-c",
            "pwd; echo $EXTRA; cat /proc/1/comm",
        ],
    );
    assert!(out.success(), "{}", out.describe());
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["/tmp", "1", "sleep"],
        "{}",
        out.describe()
    );
    let out = vmrun.call("exec", &["ex"]);
    assert!(
        !out.success() && out.stderr.contains("exec args cannot be empty"),
        "{}",
        out.describe()
    );
    assert!(vmrun.call("delete", &["--force", "ex"]).success());
    let out = vmrun.call("exec", &["ex", "true"]);
    assert!(out.stderr.contains("does not exist"), "{}", out.describe());
}

fn window_size(master: &std::fs::File, rows: u16, cols: u16) {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which is live.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    assert_eq!(rc, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}

/// Reads `master` until `needle` appears (or the limit); returns all read.
fn read_until(
    master: &mut std::fs::File,
    needle: &str,
    limit: Duration,
    poke: &mut dyn FnMut(),
) -> String {
    // SAFETY: fcntl on a descriptor we own.
    unsafe {
        let flags = libc::fcntl(master.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(master.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
    let deadline = Instant::now() + limit;
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut last_poke = Instant::now() - Duration::from_secs(10);
    while Instant::now() < deadline && !seen.contains(needle) {
        if last_poke.elapsed() > Duration::from_secs(2) {
            poke();
            last_poke = Instant::now();
        }
        match master.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(_) => break,
        }
    }
    seen
}

fn pid_alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while pid_alive(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("pid file {}: {e}", path.display()))
        .trim()
        .parse()
        .expect("pid file holds a pid")
}

#[test]
fn exec_tty_through_a_console_socket_gets_size_and_input() {
    let test = "exec_tty_through_a_console_socket_gets_size_and_input";
    let Some((vmrun, _)) = vmrun_with(test, "tty", &["sleep", "1000"]) else {
        return;
    };
    let console = ConsoleSocket::bind(&scratch().join("exec-console.sock")).expect("bind");
    let pid_file = scratch().join("exec-tty.pid");
    let out = vmrun.call(
        "exec",
        &[
            "-d",
            "-t",
            "--console-socket",
            s(console.path()),
            "--pid-file",
            s(&pid_file),
            "tty",
            "sh",
        ],
    );
    assert!(out.success(), "{}", out.describe());
    let (mut master, _name) = console.receive_master().expect("the pty master");
    let pid = read_pid(&pid_file);
    window_size(&master, 33, 101);
    let mut writer = master.try_clone().expect("clone");
    let seen = read_until(&mut master, "33 101", STATE_LIMIT, &mut || {
        let _ = writer.write_all(b"stty size\n");
    });
    assert!(seen.contains("33 101"), "no resized terminal in: {seen:?}");
    writer.write_all(b"exit 3\n").expect("write exit");
    assert!(
        wait_gone(pid, STATE_LIMIT),
        "the exec's host process {pid} did not exit"
    );
    assert!(vmrun.call("delete", &["--force", "tty"]).success());
}

#[test]
fn create_tty_through_a_console_socket_follows_resizes() {
    let test = "create_tty_through_a_console_socket_follows_resizes";
    let Some((_, vmrun)) = runtimes(test) else {
        return;
    };
    let b = bundle("create-tty", &["sh"]);
    edit_config(&b, |spec| spec["process"]["terminal"] = json!(true));
    let console = ConsoleSocket::bind(&scratch().join("create-console.sock")).expect("bind");
    let out = vmrun.call_detached(
        "create",
        &[
            "--bundle",
            s(&b),
            "--console-socket",
            s(console.path()),
            "ctty",
        ],
    );
    assert!(out.success(), "{}", out.describe());
    let (mut master, _name) = console.receive_master().expect("the pty master");
    window_size(&master, 27, 88);
    assert!(vmrun.call("start", &["ctty"]).success());
    let mut writer = master.try_clone().expect("clone");
    let seen = read_until(&mut master, "27 88", STATE_LIMIT, &mut || {
        let _ = writer.write_all(b"stty size\n");
    });
    assert!(
        seen.contains("27 88"),
        "the size set before start: {seen:?}"
    );
    // A resize of the running container's terminal, as conmon passes on.
    window_size(&master, 41, 123);
    let seen = read_until(&mut master, "41 123", STATE_LIMIT, &mut || {
        let _ = writer.write_all(b"stty size\n");
    });
    assert!(seen.contains("41 123"), "no resized terminal in: {seen:?}");
    writer.write_all(b"exit 5\n").expect("write exit");
    assert_eq!(vmrun.wait_status("ctty", "stopped", STATE_LIMIT), "stopped");
    assert!(vmrun.call("delete", &["ctty"]).success());
}

#[test]
fn detached_exec_pid_forwards_signals_and_its_death_kills_the_process() {
    let test = "detached_exec_pid_forwards_signals_and_its_death_kills_the_process";
    let Some((vmrun, _)) = vmrun_with(test, "dx", &["sleep", "1000"]) else {
        return;
    };
    let dir = scratch().join(test);
    std::fs::create_dir_all(&dir).expect("dir");
    // 1. A signal to the pid reaches the guest process.
    let pid_file = dir.join("usr1.pid");
    let out_file = dir.join("usr1.out");
    let script = "trap 'echo got-usr1; exit 9' USR1; echo ready; while :; do sleep 1; done";
    let status = vmrun
        .command(
            "exec",
            &["-d", "--pid-file", s(&pid_file), "dx", "sh", "-c", script],
        )
        .stdout(std::fs::File::create(&out_file).expect("out"))
        .stderr(Stdio::null())
        .status()
        .expect("exec -d");
    assert!(status.success());
    let pid = read_pid(&pid_file);
    let deadline = Instant::now() + STATE_LIMIT;
    while !std::fs::read_to_string(&out_file)
        .unwrap_or_default()
        .contains("ready")
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: kill(2) only sends a signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    assert!(
        wait_gone(pid, STATE_LIMIT),
        "exec pid {pid} did not exit after its process did"
    );
    let output = std::fs::read_to_string(&out_file).unwrap_or_default();
    assert!(output.contains("got-usr1"), "{output:?}");
    // 2. Killing the pid kills the guest process.
    let pid_file = dir.join("sleeper.pid");
    let status = vmrun
        .command(
            "exec",
            &["-d", "--pid-file", s(&pid_file), "dx", "sleep", "4242"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("exec -d");
    assert!(status.success());
    let pid = read_pid(&pid_file);
    let listed = vmrun.call("ps", &["--format", "json", "dx"]);
    let host_pids: Vec<i32> = serde_json::from_str(&listed.stdout).expect(&listed.stdout);
    assert!(
        host_pids.contains(&pid),
        "ps --format json lacks the exec pid: {host_pids:?}"
    );
    let guest = || vmrun.call("ps", &["dx"]).stdout;
    assert!(guest().contains("sleep 4242"), "{}", guest());
    // SAFETY: kill(2) only sends a signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + STATE_LIMIT;
    while guest().contains("sleep 4242") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !guest().contains("sleep 4242"),
        "the guest process outlived its host pid"
    );
    assert!(vmrun.call("delete", &["--force", "dx"]).success());
}

#[test]
fn a_vmm_killed_with_sigkill_is_stopped_and_delete_cleans_everything() {
    let test = "a_vmm_killed_with_sigkill_is_stopped_and_delete_cleans_everything";
    let Some((vmrun, b)) = vmrun_with(test, "k9", &["sleep", "1000"]) else {
        return;
    };
    let Observed::State { pid, .. } = vmrun.state("k9") else {
        panic!("no state");
    };
    let pid = i32::try_from(pid).expect("pid");
    let record: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(vmrun.root.join("k9/state.json")).expect("state.json"),
    )
    .expect("json");
    let cgroups: Vec<PathBuf> = record["hostCgroups"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p.as_str().map(PathBuf::from))
                .collect()
        })
        .unwrap_or_default();
    assert!(
        !cgroups.is_empty(),
        "the VMM joined no host cgroup: {record}"
    );
    // SAFETY: kill(2) only sends a signal.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(wait_gone(pid, STATE_LIMIT));
    assert_eq!(observed(vmrun.state("k9")), "stopped pid=0");
    let out = vmrun.call("delete", &["k9"]);
    assert!(out.success(), "{}", out.describe());
    assert!(!vmrun.root.join("k9").exists(), "state dir left");
    for dir in &cgroups {
        assert!(!dir.exists(), "host cgroup {} left", dir.display());
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts.contains(s(&vmrun.root)),
        "a mount under the state root is left: {mounts}"
    );
    Traces {
        id: "k9",
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    }
    .assert_nothing_left();
}

/// `run -d` of `b` as `id` with the container's stdout in a file of its
/// own (read while the container runs); panics if `run -d` fails.
fn run_detached_to_file(vmrun: &Runtime, b: &Path, id: &str) -> PathBuf {
    let (out_path, err_path) = (
        scratch().join(format!("{id}.out")),
        scratch().join(format!("{id}.err")),
    );
    let mut run = vmrun.spawn("run", &["-d", "--bundle", s(b), id], &out_path, &err_path);
    let status = wait_until(&mut run, Instant::now() + STATE_LIMIT);
    assert!(
        status.is_some_and(|s| s.success()),
        "run -d failed: {:?}",
        std::fs::read_to_string(&err_path)
    );
    out_path
}

#[test]
fn pause_resume_update_events_and_ps_reach_the_guest() {
    let test = "pause_resume_update_events_and_ps_reach_the_guest";
    let Some((_, vmrun)) = runtimes(test) else {
        return;
    };
    let b = bundle(
        "pause",
        &[
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
        ],
    );
    let out_path = run_detached_to_file(&vmrun, &b, "pz");
    let ticks = || {
        std::fs::read_to_string(&out_path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with("tick-"))
            .count()
    };
    poll(STATE_LIMIT, || (ticks() >= 2).then_some(())).expect("the container ticks");

    // pause: state says so and the container stops ticking.
    let out = vmrun.call("pause", &["pz"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(vmrun.status("pz"), "paused");
    let frozen_at = ticks();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        ticks() <= frozen_at + 1,
        "a paused container went on ticking: {frozen_at} -> {}",
        ticks()
    );
    let out = vmrun.call("exec", &["pz", "true"]);
    assert!(
        !out.success(),
        "exec in a paused container: {}",
        out.describe()
    );
    let out = vmrun.call("resume", &["pz"]);
    assert!(out.success(), "{}", out.describe());
    assert_eq!(vmrun.status("pz"), "running");
    let resumed_at = ticks();
    poll(STATE_LIMIT, || (ticks() >= resumed_at + 2).then_some(()))
        .expect("a resumed container ticks again");

    // update: the guest cgroup's limits change, events --stats shows them.
    let out = vmrun.call("update", &["--pids-limit", "50", "--memory", "100M", "pz"]);
    assert!(out.success(), "{}", out.describe());
    let out = vmrun.call("events", &["--stats", "pz"]);
    assert!(out.success(), "{}", out.describe());
    let event: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    assert_eq!(event["type"], "stats", "{event}");
    assert_eq!(event["id"], "pz", "{event}");
    assert_eq!(event["data"]["pids"]["limit"], 50, "{event}");
    assert!(
        event["data"]["pids"]["current"].as_u64() >= Some(1),
        "{event}"
    );
    assert_eq!(
        event["data"]["memory"]["usage"]["limit"],
        100 << 20,
        "{event}"
    );
    assert!(
        event["data"]["memory"]["usage"]["usage"].as_u64() > Some(0),
        "{event}"
    );

    // ps --format json: host pids only, the VMM first.
    let Observed::State { pid, .. } = vmrun.state("pz") else {
        panic!("no state");
    };
    let out = vmrun.call("ps", &["--format", "json", "pz"]);
    assert!(out.success(), "{}", out.describe());
    let pids: Vec<i64> = serde_json::from_str(out.stdout.trim()).expect("a JSON list of pids");
    assert!(pids.contains(&pid), "ps {pids:?} lacks the VMM {pid}");

    assert!(vmrun.call("delete", &["--force", "pz"]).success());
}

#[test]
fn signals_sent_to_the_vmm_reach_the_init_realtime_ones_too() {
    let test = "signals_sent_to_the_vmm_reach_the_init_realtime_ones_too";
    let Some((_, vmrun)) = runtimes(test) else {
        return;
    };
    // SIGRTMIN+3 (systemd's stop signal) by the kernel's number, as the
    // host's and the guest's C libraries both number it.
    let rt3 = libc::SIGRTMIN() + 3;
    let script = format!(
        "trap 'echo got-usr1' USR1; trap 'echo got-{rt3}; exit 7' {rt3}; echo ready; \
         while :; do sleep 1; done"
    );
    let b = bundle("signals", &["sh", "-c", &script]);
    let out_path = run_detached_to_file(&vmrun, &b, "sig");
    let output = || std::fs::read_to_string(&out_path).unwrap_or_default();
    let wait_for = |needle: &str| {
        poll(STATE_LIMIT, || output().contains(needle).then_some(()))
            .unwrap_or_else(|| panic!("no {needle:?} in the container's output: {:?}", output()))
    };
    wait_for("ready");
    let Observed::State { pid, .. } = vmrun.state("sig") else {
        panic!("no state");
    };
    let pid = i32::try_from(pid).expect("pid");
    // SAFETY: kill(2) only sends a signal, to the recorded VMM.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGUSR1) }, 0);
    wait_for("got-usr1");
    assert_eq!(vmrun.status("sig"), "running", "SIGUSR1 ended the VMM");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, rt3) }, 0);
    wait_for(&format!("got-{rt3}"));
    assert!(wait_gone(pid, STATE_LIMIT), "the VMM outlived its init");
    assert_eq!(observed(vmrun.state("sig")), "stopped pid=0");
    assert!(vmrun.call("delete", &["sig"]).success());
    // And `kill` by name reaches it too (the agent takes realtime numbers).
    let b = bundle("signals-kill", &["sh", "-c", &script]);
    let out = vmrun.call_detached("run", &["-d", "--bundle", s(&b), "sig2"]);
    assert!(out.success(), "{}", out.describe());
    let out = vmrun.call("kill", &["sig2", "RTMIN+3"]);
    assert!(out.success(), "kill RTMIN+3: {}", out.describe());
    assert_eq!(vmrun.wait_status("sig2", "stopped", STATE_LIMIT), "stopped");
    assert!(vmrun.call("delete", &["sig2"]).success());
}

#[test]
fn bad_input_leaves_nothing_behind() {
    let test = "bad_input_leaves_nothing_behind";
    let Some((vmrun, b)) = vmrun_with(test, "taken", &["sleep", "1000"]) else {
        return;
    };
    let entries = || {
        let mut names: Vec<String> = std::fs::read_dir(&vmrun.root)
            .expect("root")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    };
    let before = entries();
    let bad_config = bundle("bad-config", &["true"]);
    std::fs::write(bad_config.join("config.json"), "{ not json").expect("write");
    for (what, args, needle) in [
        (
            "existing id",
            vec!["create", "--bundle", s(&b), "taken"],
            "already exists",
        ),
        (
            "missing bundle",
            vec!["create", "--bundle", "/nonexistent-bundle", "m1"],
            "nonexistent-bundle",
        ),
        (
            "invalid config",
            vec!["create", "--bundle", s(&bad_config), "m2"],
            "config.json",
        ),
        (
            "unknown flag",
            vec!["create", "--no-such-flag", "m3"],
            "--no-such-flag",
        ),
        (
            "bad signal",
            vec!["kill", "taken", "SIGNOPE"],
            "unknown signal",
        ),
    ] {
        let verb = args[0];
        let out = vmrun.call(verb, &args[1..]);
        assert!(!out.success(), "{what}: {}", out.describe());
        // runc exits 1 for each, usage errors included.
        assert_eq!(code(&out), Some(1), "{what}: {}", out.describe());
        assert!(out.stderr.contains(needle), "{what}: {}", out.describe());
        assert_eq!(entries(), before, "{what} left something under the root");
    }
    assert_eq!(
        vmrun.status("taken"),
        "running",
        "bad input disturbed the container"
    );
    assert!(vmrun.call("delete", &["--force", "taken"]).success());
}
