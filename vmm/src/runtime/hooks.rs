//! OCI lifecycle hooks (`config.json`'s `hooks`), run on the host.
//!
//! A hook's path resolves in the runtime's namespace, and in a microVM the
//! container's namespaces are the guest's, where the host's programs do not
//! exist: so every hook runs on the host, as the runtime's child, in the
//! order and at the points of the lifecycle the spec gives:
//!
//! | phase | run by | state's `status` | a failure |
//! |---|---|---|---|
//! | `prestart`, `createRuntime`, `createContainer` | `create` (and `run`), once the container exists in its VM | `created` | fails `create`: the container is torn down, `poststop` runs |
//! | `startContainer` | `start`, before the process runs | `created` | fails `start`: the container is stopped |
//! | `poststart` | `start`, once the process runs | `running` | a warning; the rest goes on |
//! | `poststop` | `delete` (and `run`'s end), once the container is gone | `stopped` | a warning; the rest goes on |
//!
//! Each hook gets the container's state (`ociVersion`, `id`, `status`,
//! `pid`: its VMM's, `bundle`, `annotations`) as JSON on stdin, its `args`
//! (`args[0]` is its argv\[0\]; the path when there are none), its `env`
//! (vmrun's own environment when the field is absent, as runc's) and is
//! killed past its `timeout`. Its stdout and stderr are kept for the error
//! message, as runc's are.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use oci_spec::runtime::{Hook, Hooks};
use serde::Serialize;

/// How much of a hook's stdout and of its stderr an error keeps.
const OUTPUT_KEPT: usize = 4096;

/// How long, once a hook exited, its output may take to end (a child it
/// left behind may hold the pipes open).
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

/// A point of the lifecycle hooks run at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPhase {
    /// `prestart` (deprecated, run before `createRuntime`).
    Prestart,
    /// `createRuntime`.
    CreateRuntime,
    /// `createContainer`.
    CreateContainer,
    /// `startContainer`.
    StartContainer,
    /// `poststart`.
    Poststart,
    /// `poststop`.
    Poststop,
}

impl HookPhase {
    /// Every phase, in lifecycle order.
    pub const ALL: [Self; 6] = [
        Self::Prestart,
        Self::CreateRuntime,
        Self::CreateContainer,
        Self::StartContainer,
        Self::Poststart,
        Self::Poststop,
    ];

    /// The phases `create` runs, in order.
    pub const CREATE: [Self; 3] = [Self::Prestart, Self::CreateRuntime, Self::CreateContainer];

    /// The field's name in `config.json`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Prestart => "prestart",
            Self::CreateRuntime => "createRuntime",
            Self::CreateContainer => "createContainer",
            Self::StartContainer => "startContainer",
            Self::Poststart => "poststart",
            Self::Poststop => "poststop",
        }
    }

    /// The `status` a hook of this phase is told.
    pub fn status(self) -> &'static str {
        match self {
            Self::Prestart | Self::CreateRuntime | Self::CreateContainer | Self::StartContainer => {
                "created"
            }
            Self::Poststart => "running",
            Self::Poststop => "stopped",
        }
    }

    /// This phase's hooks in `hooks`.
    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)] // prestart: deprecated, still run (as runc does)
        let list = match self {
            Self::Prestart => hooks.prestart(),
            Self::CreateRuntime => hooks.create_runtime(),
            Self::CreateContainer => hooks.create_container(),
            Self::StartContainer => hooks.start_container(),
            Self::Poststart => hooks.poststart(),
            Self::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or_default()
    }
}

/// The state a hook reads on stdin (the runtime spec's `state`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookState {
    /// `ociVersion`.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// `id`.
    pub id: String,
    /// `status` (set per phase by [`run_phase`]).
    pub status: &'static str,
    /// `pid`: the VMM's, as `vmrun state` reports it.
    pub pid: i32,
    /// `bundle`.
    pub bundle: PathBuf,
    /// `annotations`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Why one hook failed.
#[derive(Debug, thiserror::Error)]
pub enum HookRunError {
    /// It could not be started.
    #[error("cannot run {0}")]
    Spawn(PathBuf, #[source] std::io::Error),
    /// It was still running at its timeout (and was killed).
    #[error("hook ran past specified timeout of {0:.1}s")]
    Timeout(f64),
    /// It failed (runc's wording, which callers may match on).
    #[error("error running hook: {status}, stdout: {stdout}, stderr: {stderr}")]
    Failed {
        /// How it ended (`exit status 1`, `signal: killed`).
        status: String,
        /// What it wrote to stdout.
        stdout: String,
        /// What it wrote to stderr.
        stderr: String,
    },
    /// Waiting for it failed.
    #[error("cannot wait for the hook")]
    Wait(#[source] std::io::Error),
}

/// A hook of a phase that failed.
#[derive(Debug, thiserror::Error)]
#[error("error running {} hook #{index}", phase.name())]
pub struct HookError {
    /// The phase.
    pub phase: HookPhase,
    /// The hook's index in its phase's list.
    pub index: usize,
    /// What went wrong.
    #[source]
    pub source: HookRunError,
}

/// Takes the hooks out of the spec the guest is sent: they run on the host
/// only (the guest's runtime would look for the host's programs in the
/// container's root, and fail or run something else).
pub fn remove_from_guest_spec(spec: &mut serde_json::Value) {
    if let Some(object) = spec.as_object_mut() {
        object.remove("hooks");
    }
}

/// Runs `phase`'s hooks in order; the first that fails ends the phase.
pub fn run_phase(phase: HookPhase, hooks: &Hooks, state: &HookState) -> Result<(), HookError> {
    let list = phase.of(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let state = HookState {
        status: phase.status(),
        ..state.clone()
    };
    let stdin = serde_json::to_vec(&state).unwrap_or_default();
    for (index, hook) in list.iter().enumerate() {
        tracing::debug!(
            "running {} hook #{index}: {}",
            phase.name(),
            hook.path().display()
        );
        run_hook(hook, &stdin).map_err(|source| HookError {
            phase,
            index,
            source,
        })?;
    }
    Ok(())
}

/// Runs the phases of `create` ([`HookPhase::CREATE`]) in order; the first
/// hook that fails ends them.
pub fn run_create_phases(hooks: &Hooks, state: &HookState) -> Result<(), HookError> {
    HookPhase::CREATE
        .into_iter()
        .try_for_each(|phase| run_phase(phase, hooks, state))
}

/// Runs `phase`'s hooks, each of them, logging a warning for each that
/// fails (`poststart`, `poststop`: their failures do not stop the lifecycle).
pub fn run_phase_warning(phase: HookPhase, hooks: &Hooks, state: &HookState) {
    let state = HookState {
        status: phase.status(),
        ..state.clone()
    };
    let stdin = serde_json::to_vec(&state).unwrap_or_default();
    for (index, hook) in phase.of(hooks).iter().enumerate() {
        if let Err(source) = run_hook(hook, &stdin) {
            let e = HookError {
                phase,
                index,
                source,
            };
            tracing::warn!("{}", crate::error_chain(&e));
        }
    }
}

/// Runs one hook with `stdin` as its input, to its end or its timeout.
fn run_hook(hook: &Hook, stdin: &[u8]) -> Result<(), HookRunError> {
    let path = hook.path();
    let mut command = Command::new(path);
    if let Some([argv0, rest @ ..]) = hook.args().as_deref() {
        command.arg0(argv0).args(rest);
    }
    if let Some(env) = hook.env() {
        command.env_clear();
        for entry in env {
            match entry.split_once('=') {
                Some((key, value)) if !key.is_empty() => {
                    command.env(key, value);
                }
                _ => tracing::debug!("hook environment entry without a name: {entry:?}"),
            }
        }
    }
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| HookRunError::Spawn(path.clone(), e))?;
    // Each pipe has a thread of its own: a hook that does not read its
    // stdin, or that fills its stdout, never stalls the runtime.
    let input = child.stdin.take().map(|mut pipe| {
        let stdin = stdin.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&stdin);
        })
    });
    let stdout = child.stdout.take().map(keep_output);
    let stderr = child.stderr.take().map(keep_output);
    let timeout = hook
        .timeout()
        .filter(|&secs| secs > 0)
        .map(|secs| Duration::from_secs(secs.unsigned_abs()));
    let status = match wait_until(&mut child, timeout.map(|t| Instant::now() + t)) {
        Ok(Some(status)) => status,
        Ok(None) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookRunError::Timeout(
                timeout.map_or(0.0, |t| t.as_secs_f64()),
            ));
        }
        Err(e) => return Err(HookRunError::Wait(e)),
    };
    drop(input);
    if status.success() {
        return Ok(());
    }
    // The pipes close with the hook, unless it left children holding them:
    // their output is then left out of the error.
    let collect = |output: Option<Receiver<String>>| {
        output
            .and_then(|rx| rx.recv_timeout(OUTPUT_GRACE).ok())
            .unwrap_or_default()
    };
    let (stdout, stderr) = (collect(stdout), collect(stderr));
    Err(HookRunError::Failed {
        status: describe(status),
        stdout,
        stderr,
    })
}

/// Waits for `child` until `deadline`: `None` if it still runs then.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Option<Instant>,
) -> std::io::Result<Option<ExitStatus>> {
    let Some(deadline) = deadline else {
        return child.wait().map(Some);
    };
    let mut pause = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Reads a pipe to its end on a thread of its own, keeping its first
/// [`OUTPUT_KEPT`] bytes, sent once the pipe is closed.
fn keep_output(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(read_kept(pipe));
    });
    rx
}

fn read_kept(mut pipe: impl Read) -> String {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = OUTPUT_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// How a hook ended, in Go's words (runc's messages quote them).
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal: {}", signal_name(signal)),
        (None, None) => status.to_string(),
    }
}

fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGKILL => "killed".into(),
        libc::SIGTERM => "terminated".into(),
        libc::SIGSEGV => "segmentation fault".into(),
        libc::SIGABRT => "aborted".into(),
        libc::SIGINT => "interrupt".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests;
