//! Running `vmrun` as a child process with a hang guard.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Default limit for one `vmrun` run that boots a guest. Guests boot in
/// seconds on hardware KVM and in well under a minute in the emulated test
/// host; this only catches hangs (`VMRUN_TEST_BOOT_TIMEOUT` overrides it,
/// in seconds).
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(240);

/// The hang guard for runs that boot a guest.
pub fn boot_timeout() -> Duration {
    std::env::var("VMRUN_TEST_BOOT_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_BOOT_TIMEOUT)
}

/// What a finished (or killed) `vmrun` run produced.
#[derive(Debug)]
pub struct RunOutput {
    /// Command line, for messages.
    pub command: String,
    /// Exit status; `None` if the run was killed by the hang guard.
    pub status: Option<ExitStatus>,
    /// Everything written to stdout (the guest's serial console by default).
    pub stdout: String,
    /// Everything written to stderr (errors, `--timings` table).
    pub stderr: String,
    /// Wall time of the run (reported in messages, never asserted).
    pub elapsed: Duration,
}

impl RunOutput {
    /// True if the process exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// True if the process exited by itself (not killed by the hang guard).
    pub fn finished(&self) -> bool {
        self.status.is_some()
    }

    /// stdout and stderr together, for "somewhere in the output" checks.
    pub fn all_output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    /// A description of the run for assertion messages.
    pub fn describe(&self) -> String {
        let status = match self.status {
            Some(s) => format!("{s}"),
            None => "KILLED by the test's hang guard (it did not exit)".to_string(),
        };
        format!(
            "`{}` -> {} after {:.1}s\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.command,
            status,
            self.elapsed.as_secs_f64(),
            tail(&self.stdout, 60),
            tail(&self.stderr, 60)
        )
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = String::new();
    if start > 0 {
        out.push_str(&format!("[... {start} earlier lines ...]\n"));
    }
    out.push_str(&all[start..].join("\n"));
    out
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    wait_until(child, Instant::now() + limit)
}

/// Waits for `child` to exit; at `deadline` kills (and reaps) it and
/// returns `None` (the hang guard of every run).
pub fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
    }
}

/// Runs `bin args...` with stdin closed, capturing its output; kills it if
/// it runs longer than `limit`.
pub fn run_with_timeout(bin: &Path, args: &[&str], limit: Duration) -> RunOutput {
    let command = std::iter::once(bin.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .collect::<Vec<_>>()
        .join(" ");
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let status = wait_with_deadline(&mut child, limit);
    RunOutput {
        command,
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed: start.elapsed(),
    }
}

/// Runs a set-up command (`what` names it in messages) to completion and
/// panics with its stderr unless it succeeds (a test set-up error).
pub fn run_ok(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the `vmrun` binary under test (see [`crate::vmrun_bin`]).
pub fn run_vmrun(args: &[&str], limit: Duration) -> RunOutput {
    run_with_timeout(&crate::vmrun_bin(), args, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = run_with_timeout(
            Path::new("/bin/sh"),
            &["-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(30),
        );
        assert_eq!(out.status.and_then(|s| s.code()), Some(3));
        assert_eq!(out.stdout.trim(), "out");
        assert_eq!(out.stderr.trim(), "err");
        assert!(!out.success());
        assert!(out.finished());
    }

    #[test]
    fn kills_a_hanging_child() {
        let out = run_with_timeout(
            Path::new("/bin/sleep"),
            &["600"],
            Duration::from_millis(200),
        );
        assert!(!out.finished(), "{}", out.describe());
        assert!(out.describe().contains("KILLED"));
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let s = (1..=10)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let t = tail(&s, 3);
        assert!(t.starts_with("[... 7 earlier lines ...]"));
        assert!(t.ends_with("8\n9\n10"));
    }
}
