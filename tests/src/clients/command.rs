//! Running one client command (podman, ctr, vmrun-cri, nsenter, ...) with
//! a hang guard. Output goes to files, not pipes: clients start daemons
//! (conmon, shims, VMMs) that may inherit the command's stdio and keep a
//! pipe open long after the command itself exited.

use std::fs::File;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{wait_until, RunOutput};

/// Runs `command` (stdin closed) to its end or until `limit` passed (then
/// it is killed and the result's status is `None`); captures its output.
/// Panics only if the command cannot be started at all (a set-up error).
pub fn run_client(command: &mut Command, limit: Duration) -> RunOutput {
    let dir = tempfile::tempdir().expect("a temp dir for a client's output");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let out = File::create(&out_path).expect("create the stdout file");
    let err = File::create(&err_path).expect("create the stderr file");
    let described = describe(command);
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{described}`: {e}"));
    let status = wait_until(&mut child, Instant::now() + limit);
    RunOutput {
        command: described,
        status,
        stdout: std::fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: std::fs::read_to_string(&err_path).unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// The command line of `command`, for messages.
pub fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Calls `probe` every 200 ms until it returns `Some` or `limit` passed
/// (a hang guard, not a timed assertion); returns the last answer.
pub fn poll<T>(limit: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe() {
            return Some(found);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_of_a_command_whose_child_outlives_it_is_captured() {
        // The background sleep keeps stdout open long after the shell
        // exited: the result must not wait for it.
        let dir = tempfile::tempdir().expect("temp dir");
        let pid_file = dir.path().join("pid");
        let script = format!(
            "echo out; echo err >&2; sleep 600 & echo $! > {}; exit 4",
            pid_file.display()
        );
        let out = run_client(
            Command::new("/bin/sh").args(["-c", &script]),
            Duration::from_secs(300),
        );
        let sleeper: i32 = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(0);
        let still_running =
            sleeper > 0 && std::path::Path::new(&format!("/proc/{sleeper}")).exists();
        if sleeper > 0 {
            // SAFETY: kill(2) of the sleep this test started.
            unsafe { libc::kill(sleeper, libc::SIGKILL) };
        }
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(4),
            "{}",
            out.describe()
        );
        assert_eq!(out.stdout, "out\n");
        assert_eq!(out.stderr, "err\n");
        assert!(
            still_running,
            "the sleeper was alive when the result came back"
        );
    }

    #[test]
    fn poll_returns_the_first_answer_or_none() {
        let mut calls = 0;
        assert_eq!(
            poll(Duration::from_secs(10), || {
                calls += 1;
                (calls == 3).then_some(calls)
            }),
            Some(3)
        );
        assert_eq!(poll(Duration::ZERO, || None::<()>), None);
    }
}
