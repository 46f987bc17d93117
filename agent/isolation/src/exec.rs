//! `runc exec`: a new process in a running container's namespaces, cgroup
//! and root, described by an OCI `process` object, through libcontainer's
//! tenant builder.
//!
//! What the process object leaves out it inherits from the container's
//! own process as runc does: `capabilities`, `noNewPrivileges` and
//! `rlimits` (an exec that names none of them gets the container's, not
//! root's full set). The container's seccomp filter applies too (see
//! [`crate::exec_workload`]).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::console::{console_size, ConsoleSocket};
use crate::create::{check_id, console_socket_path};
use crate::exec_view::StartedView;
use crate::oci_spec::runtime::{LinuxSeccomp, Process, Spec};
use crate::options::Stdio;
use crate::process_check::{check_process, normalize_for_libcontainer, strip_lsm_fields};
use crate::validate::Warning;
use crate::{exec_workload, IsolationError};

/// The request field an exec's process travels in.
const FIELD: &str = "process";

/// Everything needed to exec into one running container, detached from
/// the [`ContainerProcess`](crate::ContainerProcess) so the caller need not
/// hold it meanwhile.
#[derive(Debug, Clone)]
pub struct ExecContext {
    id: String,
    state_dir: PathBuf,
    bundle_dir: PathBuf,
    init_process: Option<Process>,
    seccomp: Option<LinuxSeccomp>,
    /// The container was started; else it is created and the exec goes
    /// through a [`StartedView`].
    started: bool,
}

/// A process exec'd into a container. Its exit is the caller's to collect
/// (it is a child of the calling process, like the container's init).
#[derive(Debug)]
pub struct ExecProcess {
    /// Its pid (in the caller's pid namespace).
    pub pid: i32,
    /// The pty master when `process.terminal` is true.
    pub pty_master: Option<OwnedFd>,
    /// Fields of the process object that were ignored.
    pub warnings: Vec<Warning>,
}

/// Parses an exec's OCI `process` object; a mistake is reported with the
/// field's path (`process.capabilities.bounding[0]: unknown variant ...`).
/// An absent `user` is uid 0 / gid 0 (Go's zero value, as runc reads it);
/// `cwd` is required.
pub fn parse_process(json: &Value) -> Result<Process, IsolationError> {
    let Some(object) = json.as_object() else {
        return Err(IsolationError::invalid(FIELD, "must be an object"));
    };
    if object.get("cwd").is_none_or(Value::is_null) {
        return Err(IsolationError::invalid(
            format!("{FIELD}.cwd"),
            "missing (an absolute path)",
        ));
    }
    let mut object = object.clone();
    if object.get("user").is_none_or(Value::is_null) {
        object.insert("user".into(), Value::Object(Default::default()));
    }
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|err| {
        let path = err.path().to_string();
        IsolationError::Malformed {
            field: if path == "." {
                FIELD.to_owned()
            } else {
                format!("{FIELD}.{path}")
            },
            source: err.into_inner(),
        }
    })
}

/// `process` with what it leaves out taken from the container's `init`
/// process, as runc does: capabilities, noNewPrivileges, rlimits.
pub fn inherit_from_init(mut process: Process, init: Option<&Process>) -> Process {
    let Some(init) = init else {
        return process;
    };
    if process.capabilities().is_none() {
        process.set_capabilities(init.capabilities().clone());
    }
    if process.no_new_privileges().is_none() {
        process.set_no_new_privileges(init.no_new_privileges());
    }
    if process.rlimits().as_ref().is_none_or(Vec::is_empty) {
        process.set_rlimits(init.rlimits().clone());
    }
    process
}

impl ExecContext {
    pub(crate) fn new(
        id: &str,
        state_dir: &Path,
        bundle_dir: &Path,
        spec: &Spec,
        started: bool,
    ) -> Self {
        Self {
            id: id.to_owned(),
            state_dir: state_dir.to_path_buf(),
            bundle_dir: bundle_dir.to_path_buf(),
            init_process: spec.process().clone(),
            seccomp: spec.linux().as_ref().and_then(|l| l.seccomp().clone()),
            started,
        }
    }

    /// Runs `process` in the container as `exec_id` (a name unique among
    /// the container's running execs, `[A-Za-z0-9_.-]+`) with `stdio`
    /// (ignored with `process.terminal`: the pty slave is fd 0-2). Returns
    /// once it has exec'd `process.args`; an error names the field at
    /// fault where there is one (`exec_id`, `process.args`, ...).
    pub fn exec(
        &self,
        exec_id: &str,
        process: Process,
        stdio: Stdio,
    ) -> Result<ExecProcess, IsolationError> {
        check_id("exec_id", exec_id)?;
        let mut process = inherit_from_init(process, self.init_process.as_ref());
        let warnings = strip_lsm_fields(&mut process);
        normalize_for_libcontainer(&mut process);
        check_process(&process)?;
        for w in &warnings {
            tracing::warn!(container = %self.id, exec = %exec_id, "{w}");
        }
        let terminal = process.terminal().unwrap_or(false);
        let window = if terminal {
            console_size(&process)?
        } else {
            None
        };
        let (handed, workload) = exec_workload::prepare(&process, self.seccomp.clone(), window);
        let process_file = self.bundle_dir.join(format!("exec-{exec_id}.json"));
        let json = serde_json::to_vec(&handed).map_err(|source| IsolationError::Malformed {
            field: FIELD.into(),
            source,
        })?;
        std::fs::write(&process_file, json)
            .map_err(|e| IsolationError::io(format!("writing {}", process_file.display()), e))?;
        let console = if terminal {
            Some(ConsoleSocket::bind(&console_socket_path(&self.state_dir)?)?)
        } else {
            None
        };
        let built = self.build(&process_file, console.as_ref(), stdio, workload);
        let _ = std::fs::remove_file(&process_file);
        let pid = built?;
        let pty_master = match console.map(|c| c.receive_master()).transpose() {
            Ok(master) => master,
            Err(e) => {
                // Without its terminal the process is of no use.
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                return Err(e);
            }
        };
        Ok(ExecProcess {
            pid,
            pty_master,
            warnings,
        })
    }

    fn build(
        &self,
        process_file: &Path,
        console: Option<&ConsoleSocket>,
        stdio: Stdio,
        workload: exec_workload::ExecWorkload,
    ) -> Result<i32, IsolationError> {
        let runtime_err = |source| IsolationError::Runtime {
            action: "exec in",
            id: self.id.clone(),
            source: Box::new(source),
        };
        let state_root = self.state_dir.join("state");
        // Kept until the builder returns: the process has joined the
        // container by then.
        let view = if self.started {
            None
        } else {
            Some(StartedView::new(&self.state_dir, &state_root, &self.id)?)
        };
        let root = view
            .as_ref()
            .map_or(state_root.as_path(), StartedView::root);
        let mut builder = ContainerBuilder::new(self.id.clone(), SyscallType::Linux)
            .with_root_path(root)
            .map_err(runtime_err)?
            .with_executor(workload)
            .with_console_socket(console.map(|c| c.path().to_path_buf()));
        if console.is_none() {
            builder = builder
                .with_stdin(stdio.stdin)
                .with_stdout(stdio.stdout)
                .with_stderr(stdio.stderr);
        }
        let pid = builder
            .as_tenant()
            .with_process(Some(process_file))
            .with_detach(true)
            .build()
            .map_err(runtime_err)?;
        Ok(pid.as_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: IsolationError) -> String {
        match err {
            IsolationError::Malformed { field, .. } | IsolationError::InvalidSpec { field, .. } => {
                field
            }
            other => panic!("no field in {other:?}"),
        }
    }

    #[test]
    fn parse_errors_name_the_field_under_process() {
        let err = parse_process(&serde_json::json!("sh")).unwrap_err();
        assert_eq!(field_of(err), "process");
        let err = parse_process(&serde_json::json!({"args": ["sh"]})).unwrap_err();
        assert_eq!(field_of(err), "process.cwd");
        let err = parse_process(&serde_json::json!({"args": "sh", "cwd": "/"})).unwrap_err();
        assert_eq!(field_of(err), "process.args");
        let err = parse_process(&serde_json::json!({
            "args": ["sh"], "cwd": "/", "capabilities": {"bounding": ["CAP_FLY"]}
        }))
        .unwrap_err();
        assert_eq!(field_of(err), "process.capabilities.bounding[0]");
    }

    #[test]
    fn an_absent_user_is_root() {
        let p = parse_process(&serde_json::json!({"args": ["id"], "cwd": "/"})).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    }

    #[test]
    fn absent_fields_come_from_the_init_present_ones_stay() {
        let init = parse_process(&serde_json::json!({
            "args": ["sh"], "cwd": "/", "noNewPrivileges": true,
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"]},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 10}]
        }))
        .unwrap();
        let bare = parse_process(&serde_json::json!({"args": ["id"], "cwd": "/"})).unwrap();
        let merged = inherit_from_init(bare, Some(&init));
        assert_eq!(merged.capabilities(), init.capabilities());
        assert_eq!(merged.no_new_privileges(), Some(true));
        assert_eq!(merged.rlimits(), init.rlimits());
        assert_eq!(merged.args().as_deref(), Some(&["id".to_owned()][..]));

        let own = parse_process(&serde_json::json!({
            "args": ["id"], "cwd": "/", "noNewPrivileges": false,
            "capabilities": {"bounding": [], "effective": []}
        }))
        .unwrap();
        let merged = inherit_from_init(own.clone(), Some(&init));
        assert_eq!(merged.capabilities(), own.capabilities());
        assert_eq!(merged.no_new_privileges(), Some(false));
    }

    #[test]
    fn a_bad_exec_id_or_empty_args_is_refused_before_anything_runs() {
        let ctx = ExecContext {
            id: "c".into(),
            state_dir: "/nonexistent".into(),
            bundle_dir: "/nonexistent".into(),
            init_process: None,
            seccomp: None,
            started: true,
        };
        let null = || -> OwnedFd { std::fs::File::open("/dev/null").unwrap().into() };
        let stdio = || Stdio {
            stdin: null(),
            stdout: null(),
            stderr: null(),
        };
        let ok = parse_process(&serde_json::json!({"args": ["id"], "cwd": "/"})).unwrap();
        let err = ctx.exec("../x", ok, stdio()).unwrap_err();
        assert_eq!(field_of(err), "exec_id");
        let empty = parse_process(&serde_json::json!({"args": [], "cwd": "/"})).unwrap();
        let err = ctx.exec("e1", empty, stdio()).unwrap_err();
        assert_eq!(field_of(err), "process.args");
    }
}
