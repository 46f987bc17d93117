//! OCI runtimes driven step by step the way conmon, containerd's shim and
//! scripts drive runc: the same calls against `runc` and against `vmrun`,
//! so a test can compare what each answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{run_with_timeout, RunOutput};

/// A runtime binary with its own `--root`.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// `runc` or `vmrun`, for messages.
    pub name: &'static str,
    /// The binary.
    pub bin: PathBuf,
    /// Its state root.
    pub root: PathBuf,
    /// Extra arguments for `create` and `run` (vmrun: `--kernel`, `--initrd`).
    pub create_args: Vec<String>,
    /// The hang guard of each call.
    pub limit: Duration,
}

/// What `state` said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// The JSON's `status` and `pid`.
    State {
        /// `status`.
        status: String,
        /// `pid`.
        pid: i64,
    },
    /// `state` failed (exit status, stderr).
    Error(Option<i32>, String),
}

impl Runtime {
    /// runc from PATH with `root`.
    pub fn runc(root: &Path, limit: Duration) -> Self {
        Self {
            name: "runc",
            bin: PathBuf::from("runc"),
            root: root.to_path_buf(),
            create_args: Vec::new(),
            limit,
        }
    }

    /// The vmrun under test with `root`, booting `kernel` and `initrd`.
    pub fn vmrun(root: &Path, kernel: &Path, initrd: &Path, limit: Duration) -> Self {
        Self {
            name: "vmrun",
            bin: crate::vmrun_bin(),
            root: root.to_path_buf(),
            create_args: vec![
                "--kernel".into(),
                kernel.display().to_string(),
                "--initrd".into(),
                initrd.display().to_string(),
            ],
            limit,
        }
    }

    /// The full argument list of `verb args...` (global `--root` first).
    pub fn argv(&self, verb: &str, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            "--root".to_string(),
            self.root.display().to_string(),
            verb.into(),
        ];
        if matches!(verb, "create" | "run") {
            argv.extend(self.create_args.iter().cloned());
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        argv
    }

    /// Runs `verb args...` with stdin closed; output captured.
    pub fn call(&self, verb: &str, args: &[&str]) -> RunOutput {
        let argv = self.argv(verb, args);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        run_with_timeout(&self.bin, &refs, self.limit)
    }

    /// Runs `verb args...` whose process outlives it (`create`, `run -d`,
    /// `exec -d`): the container keeps the stdio it was given, so output
    /// goes to files (read back once the command exited) instead of pipes
    /// that would stay open as long as the container runs.
    pub fn call_detached(&self, verb: &str, args: &[&str]) -> RunOutput {
        let dir = tempfile::tempdir().expect("a temp dir for the output");
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        let start = Instant::now();
        let mut child = self.spawn(verb, args, &out_path, &err_path);
        let status = crate::wait_until(&mut child, Instant::now() + self.limit);
        RunOutput {
            command: format!("{} {}", self.bin.display(), self.argv(verb, args).join(" ")),
            status,
            stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
            elapsed: start.elapsed(),
        }
    }

    /// A command for `verb args...`, to run with custom stdio.
    pub fn command(&self, verb: &str, args: &[&str]) -> Command {
        let mut command = Command::new(&self.bin);
        command.args(self.argv(verb, args)).stdin(Stdio::null());
        command
    }

    /// `state ID`, parsed.
    pub fn state(&self, id: &str) -> Observed {
        let out = self.call("state", &[id]);
        if !out.success() {
            return Observed::Error(out.status.and_then(|s| s.code()), out.stderr);
        }
        let json: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{} state {id}: not JSON ({e}): {}", self.name, out.stdout));
        Observed::State {
            status: json["status"].as_str().unwrap_or("?").to_string(),
            pid: json["pid"].as_i64().unwrap_or(-1),
        }
    }

    /// The status word of `state ID` (or `error`).
    pub fn status(&self, id: &str) -> String {
        match self.state(id) {
            Observed::State { status, .. } => status,
            Observed::Error(..) => "error".into(),
        }
    }

    /// Polls `state ID` until its status is `want` or `limit` passed;
    /// returns the last status seen.
    pub fn wait_status(&self, id: &str, want: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let status = self.status(id);
            if status == want || Instant::now() >= deadline {
                return status;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Starts `verb args...` in the background with output to files.
    pub fn spawn(&self, verb: &str, args: &[&str], stdout: &Path, stderr: &Path) -> Child {
        let out = std::fs::File::create(stdout).expect("create the stdout file");
        let err = std::fs::File::create(stderr).expect("create the stderr file");
        self.command(verb, args)
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name))
    }
}

/// Exit code of a run (None if killed by the hang guard or a signal).
pub fn code(out: &RunOutput) -> Option<i32> {
    out.status.and_then(|s| s.code())
}
