//! `vmrun exec [--process FILE | ARGS...] [--detach] [--pid-file F] [--tty]
//! [--console-socket S] [--env K=V] [--cwd D] [--user U:G] [--cap C] ID`:
//! a new process in the running container, with runc's flags. The
//! process is built as runc builds it: `--process`, or the container's own
//! `process` with the arguments and flags applied. The pid (pid file) is a
//! small host process that stands for it (`runtime::exec_client`); with
//! `--detach` that process is left running and this command exits once
//! the process runs.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::create::write_pid_file;
use super::{helper_global_args, CliError, GlobalOpts};
use crate::runtime::api::ApiRequest;
use crate::runtime::container::Container;
use crate::runtime::exec_client::{self, SessionLaunch};
use crate::runtime::spec_check;
use crate::runtime::state::{StateRoot, Status};

/// Arguments of `vmrun exec` (runc 1.1's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct ExecArgs {
    /// The unix socket the pty master is sent to (with --tty).
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// Environment variables to add (KEY=VALUE).
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// The user to run as: UID[:GID].
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group ids.
    #[arg(short = 'g', long = "additional-gids", value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// A JSON file with the OCI process to run (the other process flags
    /// are then ignored, as with runc).
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Detach: exit once the process runs, leaving its host process.
    #[arg(short, long)]
    pub detach: bool,
    /// Write the host pid standing for the process to FILE.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label (ignored by the guest kernel, as the spec's label is).
    #[arg(long = "process-label", value_name = "LABEL")]
    pub process_label: Option<String>,
    /// AppArmor profile (ignored by the guest kernel, as the spec's is).
    #[arg(long, value_name = "PROFILE")]
    pub apparmor: Option<String>,
    /// Set no_new_privs for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability (to the bounding, effective and permitted sets).
    #[arg(short, long = "cap", value_name = "CAP")]
    pub cap: Vec<String>,
    /// Pass N additional descriptors: only 0 (host descriptors cannot
    /// cross into a microVM).
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Join a sub-cgroup (accepted only empty: the process joins the
    /// container's cgroup in the guest).
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The command and its arguments.
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

fn usage(message: impl Into<String>) -> CliError {
    CliError::Usage(message.into())
}

/// `UID[:GID]` as numbers.
fn parse_user(raw: &str) -> Result<(u32, Option<u32>), CliError> {
    let bad = || usage(format!("--user {raw:?}: expected UID[:GID] (numbers)"));
    let (uid, gid) = match raw.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (raw, None),
    };
    let uid = uid.parse().map_err(|_| bad())?;
    let gid = gid.map(|g| g.parse().map_err(|_| bad())).transpose()?;
    Ok((uid, gid))
}

fn push_all(list: &mut Value, items: &[String]) {
    if !list.is_array() {
        *list = json!([]);
    }
    if let Some(array) = list.as_array_mut() {
        array.extend(items.iter().map(|c| json!(c)));
    }
}

/// The OCI process to run, as runc builds it.
pub fn build_process(
    args: &ExecArgs,
    container_process: Option<&Value>,
) -> Result<Value, CliError> {
    if let Some(path) = &args.process {
        let text = std::fs::read_to_string(path)
            .map_err(|e| usage(format!("cannot read --process {}: {e}", path.display())))?;
        let process: Value = serde_json::from_str(&text)
            .map_err(|e| usage(format!("--process {}: not valid JSON: {e}", path.display())))?;
        check_process(&process)?;
        return Ok(process);
    }
    if args.command.is_empty() {
        return Err(usage("exec args cannot be empty"));
    }
    let mut process = container_process.cloned().unwrap_or_else(|| json!({}));
    if !process.is_object() {
        process = json!({});
    }
    process["args"] = json!(args.command);
    if let Some(cwd) = &args.cwd {
        process["cwd"] = json!(cwd);
    }
    if process.get("cwd").and_then(Value::as_str).is_none() {
        process["cwd"] = json!("/");
    }
    if let Some(profile) = &args.apparmor {
        process["apparmorProfile"] = json!(profile);
    }
    if let Some(label) = &args.process_label {
        process["selinuxLabel"] = json!(label);
    }
    if !args.cap.is_empty() {
        let caps = &mut process["capabilities"];
        if !caps.is_object() {
            *caps = json!({});
        }
        let with_inheritable = caps.get("inheritable").is_some_and(|v| !v.is_null());
        for set in ["bounding", "effective", "permitted"] {
            push_all(&mut caps[set], &args.cap);
        }
        if with_inheritable {
            push_all(&mut caps["ambient"], &args.cap);
        }
    }
    push_all(&mut process["env"], &args.env);
    process["terminal"] = json!(args.tty);
    if args.no_new_privs {
        process["noNewPrivileges"] = json!(true);
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        process["user"]["uid"] = json!(uid);
        if let Some(gid) = gid {
            process["user"]["gid"] = json!(gid);
        }
    }
    if !args.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(args.additional_gids);
    }
    if process["user"].get("uid").is_none() {
        process["user"]["uid"] = json!(0);
    }
    if process["user"].get("gid").is_none() {
        process["user"]["gid"] = json!(0);
    }
    check_process(&process)?;
    Ok(process)
}

/// What runc's `validateProcessSpec` checks, and what the guest could not
/// run as given (NUL bytes, types, ranges: [`spec_check`]).
fn check_process(process: &Value) -> Result<(), CliError> {
    let args = process.get("args").and_then(Value::as_array);
    if args.is_none_or(|a| a.is_empty()) {
        return Err(usage("process.args: args must not be empty"));
    }
    match process.get("cwd").and_then(Value::as_str) {
        Some(cwd) if cwd.starts_with('/') => {}
        Some(cwd) => {
            return Err(usage(format!(
                "process.cwd: {cwd:?} is not an absolute path"
            )))
        }
        None => return Err(usage("process.cwd: the working directory must be set")),
    }
    spec_check::check_process(process).map_err(|p| usage(p.to_string()))
}

/// The container's own `process` (from its bundle's config.json).
fn container_process(container: &Container) -> Option<Value> {
    let text = std::fs::read_to_string(container.record().bundle.join("config.json")).ok()?;
    let spec: Value = serde_json::from_str(&text).ok()?;
    spec.get("process").cloned()
}

/// Runs `vmrun exec`: the process's exit status, or (as runc) an
/// "exec failed" error that ends vmrun with 255.
pub fn run(global: &GlobalOpts, args: ExecArgs) -> Result<i32, CliError> {
    exec(global, args).map_err(|e| CliError::ExecFailed(Box::new(e)))
}

fn exec(global: &GlobalOpts, args: ExecArgs) -> Result<i32, CliError> {
    super::vm_args::refuse_preserved_fds(args.preserve_fds)?;
    if args.cgroup.iter().any(|c| !c.is_empty()) {
        return Err(usage(
            "--cgroup: the process always joins the container's own cgroup in the guest",
        ));
    }
    let container = Container::load(&StateRoot::new(&global.root), &args.id)?;
    match container.status() {
        Status::Stopped => return Err(usage("cannot exec in a stopped container")),
        Status::Paused if !args.ignore_paused => {
            return Err(usage(
                "cannot exec in a paused container (use --ignore-paused to override)",
            ))
        }
        _ => {}
    }
    let process = build_process(&args, container_process(&container).as_ref())?;
    let terminal = process.get("terminal").and_then(Value::as_bool) == Some(true);
    // runc's rule and words: a console socket only for a detached
    // process with a terminal.
    if (!terminal || !args.detach) && args.console_socket.is_some() {
        return Err(usage(
            "cannot use console socket if runc will not detach or allocate tty",
        ));
    }
    if terminal && args.detach && args.console_socket.is_none() {
        return Err(usage(
            "cannot allocate tty if runc will detach without setting console socket",
        ));
    }
    let (api_socket, target) = container.api_target();
    let launch = SessionLaunch {
        api_socket,
        container: target,
        first: ApiRequest::Exec { process },
        terminal,
        console_socket: args
            .console_socket
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
    };
    if args.detach {
        return detach(global, &launch, args.pid_file.as_deref());
    }
    if let Some(path) = &args.pid_file {
        write_pid_file(path, std::process::id())?;
    }
    let status = exec_client::run(launch, None).map_err(|e| usage(crate::error_chain(&e)))?;
    Ok(status.as_shell_status())
}

/// `exec --detach`: starts the host process standing for the exec'd
/// process, waits until the process runs, writes its pid.
fn detach(
    global: &GlobalOpts,
    launch: &SessionLaunch,
    pid_file: Option<&std::path::Path>,
) -> Result<i32, CliError> {
    let mut child = exec_client::launch_detached(&helper_global_args(global, None), launch)
        .map_err(|e| usage(crate::error_chain(&e)))?;
    if let Some(path) = pid_file {
        if let Err(e) = write_pid_file(path, child.id()) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(words: &[&str]) -> ExecArgs {
        let mut argv = vec!["vmrun", "exec"];
        argv.extend_from_slice(words);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Exec(args) = cli.command else {
            panic!("not exec");
        };
        args
    }

    #[test]
    fn the_process_is_the_containers_with_flags_applied() {
        let base = json!({
            "args": ["sh"], "cwd": "/", "env": ["PATH=/bin"], "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}
        });
        let args = parse(&[
            "-e",
            "A=1",
            "--cwd",
            "/tmp",
            "-u",
            "1000:100",
            "--cap",
            "CAP_CHOWN",
            "c1",
            "ls",
            "-l",
        ]);
        let p = build_process(&args, Some(&base)).unwrap();
        assert_eq!(p["args"], json!(["ls", "-l"]));
        assert_eq!(p["cwd"], "/tmp");
        assert_eq!(p["env"], json!(["PATH=/bin", "A=1"]));
        assert_eq!(p["terminal"], false);
        assert_eq!(p["user"], json!({"uid": 1000, "gid": 100}));
        assert_eq!(
            p["capabilities"]["bounding"],
            json!(["CAP_KILL", "CAP_CHOWN"])
        );
        assert!(p["capabilities"].get("ambient").is_none());
    }

    #[test]
    fn bad_exec_input_is_refused_naming_it() {
        let err = build_process(&parse(&["c1"]), None).unwrap_err();
        assert!(
            err.to_string().contains("exec args cannot be empty"),
            "{err}"
        );
        let err = build_process(&parse(&["-u", "bob", "c1", "true"]), None).unwrap_err();
        assert!(err.to_string().contains("--user"), "{err}");
        let err = build_process(&parse(&["--cwd", "rel", "c1", "true"]), None).unwrap_err();
        assert!(err.to_string().contains("process.cwd"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, r#"{"args": [], "cwd": "/"}"#).unwrap();
        let args = parse(&["-p", file.to_str().unwrap(), "c1"]);
        let err = build_process(&args, None).unwrap_err();
        assert!(err.to_string().contains("process.args"), "{err}");
        let err = build_process(&parse(&["c1", "echo", "a\0b"]), None).unwrap_err();
        assert!(
            err.to_string()
                .contains("process.args[1]: contains a NUL byte"),
            "{err}"
        );
        let err = build_process(&parse(&["-e", "A=\0", "c1", "true"]), None).unwrap_err();
        assert!(err.to_string().contains("process.env[0]"), "{err}");
    }
}
