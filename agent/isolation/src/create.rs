//! Creating a container the way `runc create` does: namespaces, mounts,
//! cgroup and an init waiting for [`CreatedContainer::start`]; and [`run`]
//! = create + start.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;

use crate::cgroup_control::ContainerCgroup;
use crate::console::{console_size, set_window_size, ConsoleSocket};
use crate::container::ContainerProcess;
use crate::oci_spec::runtime::{RootBuilder, Spec};
use crate::options::{ExitStatus, RunOptions, Stdio};
use crate::program_path::ProgramPath;
use crate::validate::Warning;
use crate::{cgroups, mount_propagation, ns_paths, rootfs_check, validate, IsolationError};

/// A created container: its init exists in the container's namespaces and
/// cgroup, every mount is made (propagation applied), its stdio is
/// connected, and it waits for [`start`](Self::start) to exec
/// `process.args`. Dropping it kills the init and cleans up.
#[derive(Debug)]
pub struct CreatedContainer {
    process: ContainerProcess,
}

/// Validates `spec`, then creates the container with `rootfs` as its root
/// (overriding `root.path`; `root.readonly` is kept), the given stdio, and
/// everything else the spec says: a bad spec, mount or namespace fails
/// here, not at start. Warnings (ignored LSM fields, resources the guest
/// lacks) are logged and available through
/// [`CreatedContainer::warnings`].
///
/// Must be called from a process that can `waitpid` the container (the
/// container's init becomes a child of the caller).
pub fn create(
    spec: &Spec,
    rootfs: &Path,
    stdio: Stdio,
    opts: &RunOptions,
) -> Result<CreatedContainer, IsolationError> {
    check_id("id", &opts.id)?;
    let (mut spec, mut warnings) = validate::validate(spec)?;
    ns_paths::check_namespace_paths(&spec)?;
    let rootfs = std::fs::canonicalize(rootfs)
        .map_err(|e| IsolationError::io(format!("rootfs {}", rootfs.display()), e))?;
    rootfs_check::check_rootfs(&rootfs, &spec)?;
    warnings.extend(cgroups::check_resources(&spec, &opts.cgroup_root)?);
    for w in &warnings {
        tracing::warn!(container = %opts.id, "{w}");
    }
    point_root_at(&mut spec, &rootfs)?;
    if let Some(linux) = spec.linux_mut() {
        if linux.cgroups_path().is_none() {
            linux.set_cgroups_path(Some(PathBuf::from(format!("/vmrun/{}", opts.id))));
        }
    }

    let bundle_dir = opts.state_dir.join("bundles").join(&opts.id);
    write_bundle(&bundle_dir, &spec)?;
    match build_init(&spec, &bundle_dir, stdio, opts) {
        Ok(built) => {
            let resources = spec
                .linux()
                .as_ref()
                .and_then(|l| l.resources().clone())
                .unwrap_or_default();
            let cgroup =
                ContainerCgroup::new(&opts.id, &opts.cgroup_root, built.cgroup_path, resources);
            Ok(CreatedContainer {
                process: ContainerProcess::new(
                    built.container,
                    built.pid,
                    bundle_dir,
                    built.pty_master,
                    warnings,
                    spec,
                    cgroup,
                    opts.clone(),
                ),
            })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&bundle_dir);
            Err(e)
        }
    }
}

/// Creates and starts the container (`runc run`): [`create`], then
/// [`CreatedContainer::start`]. Returns once the container process is
/// running (it has exec'd `process.args` or is about to).
pub fn run(
    spec: &Spec,
    rootfs: &Path,
    stdio: Stdio,
    opts: &RunOptions,
) -> Result<ContainerProcess, IsolationError> {
    create(spec, rootfs, stdio, opts)?.start()
}

impl CreatedContainer {
    /// The init's pid (in the caller's pid namespace).
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// The container id.
    pub fn id(&self) -> &str {
        self.process.id()
    }

    /// What was ignored or not enforced (also logged at `warn`).
    pub fn warnings(&self) -> &[Warning] {
        self.process.warnings()
    }

    /// Takes the pty master when `process.terminal` is true.
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.process.take_pty_master()
    }

    /// Sends `signal` to the waiting init (runc allows `kill` on a created
    /// container; SIGKILL ends it before it ever runs `process.args`).
    pub fn signal(&self, signal: i32) -> Result<(), IsolationError> {
        self.process.signal(signal)
    }

    /// The container's cgroup (limits, statistics, its processes).
    pub fn cgroup(&self) -> &ContainerCgroup {
        self.process.cgroup()
    }

    /// The container's cgroup, to update its limits.
    pub fn cgroup_mut(&mut self) -> &mut ContainerCgroup {
        self.process.cgroup_mut()
    }

    /// For a caller whose own reaper collected the init's exit before it
    /// was started: records `status` and cleans up (see
    /// [`ContainerProcess::exited`]).
    pub fn exited(&mut self, status: ExitStatus) {
        self.process.exited(status);
    }

    /// Freezes the waiting init (runc pauses a created container too);
    /// [`start`](Self::start) is refused until [`resume`](Self::resume).
    pub fn pause(&mut self) -> Result<(), IsolationError> {
        self.process.pause()
    }

    /// Thaws a paused created container: it is created again.
    pub fn resume(&mut self) -> Result<(), IsolationError> {
        self.process.resume()
    }

    /// Is it paused?
    pub fn is_paused(&self) -> bool {
        self.process.is_paused()
    }

    /// What [`ExecContext::exec`](crate::exec::ExecContext::exec) needs to
    /// run a process in the created container (runc execs into one too);
    /// an error while it is paused.
    pub fn exec_context(&self) -> Result<crate::exec::ExecContext, IsolationError> {
        self.process.exec_context()
    }

    /// Lets the init exec `process.args`. On failure the container is
    /// killed and cleaned up; a paused one fails so (check
    /// [`is_paused`](Self::is_paused) first to refuse without that).
    pub fn start(self) -> Result<ContainerProcess, IsolationError> {
        let mut process = self.process;
        process.start()?;
        Ok(process)
    }
}

/// Checks that `value` (the request field `field`) is `[A-Za-z0-9_.-]+`
/// and not `.`/`..`, so it is safe as a path component.
pub(crate) fn check_id(field: &str, value: &str) -> Result<(), IsolationError> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(IsolationError::invalid(
            field,
            format!("{value:?} must be [A-Za-z0-9_.-]+"),
        ))
    }
}

fn point_root_at(spec: &mut Spec, rootfs: &Path) -> Result<(), IsolationError> {
    // Absent means writable (runtime-spec); always set: oci-spec's
    // RootBuilder defaults `readonly` to true.
    let readonly = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    let root = RootBuilder::default()
        .path(rootfs)
        .readonly(readonly)
        .build()
        .map_err(|e| IsolationError::invalid("root", e.to_string()))?;
    spec.set_root(Some(root));
    Ok(())
}

fn write_bundle(bundle_dir: &Path, spec: &Spec) -> Result<(), IsolationError> {
    if bundle_dir.exists() {
        return Err(IsolationError::invalid(
            "id",
            format!(
                "a container bundle already exists at {}",
                bundle_dir.display()
            ),
        ));
    }
    std::fs::create_dir_all(bundle_dir)
        .map_err(|e| IsolationError::io(format!("creating {}", bundle_dir.display()), e))?;
    let json = serde_json::to_vec(spec).map_err(|source| IsolationError::Parse {
        field: ".".into(),
        source,
    })?;
    let path = bundle_dir.join("config.json");
    std::fs::write(&path, json)
        .map_err(|e| IsolationError::io(format!("writing {}", path.display()), e))
}

/// A fresh path for a console socket: short (a unix socket path has at
/// most 107 bytes, a container id alone may have more) and unique.
pub(crate) fn console_socket_path(state_dir: &Path) -> Result<PathBuf, IsolationError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = state_dir.join("tty");
    std::fs::create_dir_all(&dir)
        .map_err(|e| IsolationError::io(format!("creating {}", dir.display()), e))?;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Ok(dir.join(format!("{}-{n}.sock", std::process::id())))
}

/// What [`build_init`] made.
struct BuiltInit {
    container: Container,
    pid: Pid,
    pty_master: Option<OwnedFd>,
    cgroup_path: PathBuf,
}

fn build_init(
    spec: &Spec,
    bundle_dir: &Path,
    stdio: Stdio,
    opts: &RunOptions,
) -> Result<BuiltInit, IsolationError> {
    let runtime_err = |action, source| IsolationError::Runtime {
        action,
        id: opts.id.clone(),
        source: Box::new(source),
    };
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let size = match spec.process() {
        Some(process) if terminal => console_size(process)?,
        _ => None,
    };
    let console = if terminal {
        Some(ConsoleSocket::bind(&console_socket_path(&opts.state_dir)?)?)
    } else {
        None
    };
    let state_root = opts.state_dir.join("state");
    std::fs::create_dir_all(&state_root)
        .map_err(|e| IsolationError::io(format!("creating {}", state_root.display()), e))?;
    let mut builder = ContainerBuilder::new(opts.id.clone(), SyscallType::Linux)
        .with_root_path(&state_root)
        .map_err(|e| runtime_err("configure", e))?
        .with_preserved_fds(opts.preserve_fds)
        .with_executor(ProgramPath::default())
        .with_console_socket(console.as_ref().map(|c| c.path().to_path_buf()));
    if !terminal {
        builder = builder
            .with_stdin(stdio.stdin)
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr);
    }
    let created = builder
        .as_init(bundle_dir)
        .with_systemd(false)
        .with_detach(true)
        .with_no_pivot(opts.no_pivot)
        .build();
    let mut container = match created {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_dir_all(state_root.join(&opts.id));
            return Err(runtime_err("create", e));
        }
    };
    match finish_init(&container, console.as_ref(), size, spec) {
        Ok((pid, pty_master, cgroup_path)) => Ok(BuiltInit {
            container,
            pid,
            pty_master,
            cgroup_path,
        }),
        Err(e) => {
            let _ = container.delete(true);
            Err(e)
        }
    }
}

/// After libcontainer created the init: takes the pty master (sized to
/// `process.consoleSize`), applies the mounts' propagation options and
/// finds the container's cgroup path.
fn finish_init(
    container: &Container,
    console: Option<&ConsoleSocket>,
    size: Option<(u16, u16)>,
    spec: &Spec,
) -> Result<(Pid, Option<OwnedFd>, PathBuf), IsolationError> {
    let pty_master = match console {
        Some(c) => {
            let master = c.receive_master()?;
            // Before start: the process must see its size from the first
            // instruction (libcontainer does not apply consoleSize).
            if let Some((rows, cols)) = size {
                set_window_size(&master, rows, cols).map_err(|e| {
                    IsolationError::io("setting the terminal size (process.consoleSize)", e)
                })?;
            }
            Some(master)
        }
        None => None,
    };
    let pid = container
        .pid()
        .ok_or_else(|| IsolationError::invalid("id", "container created without a pid"))?;
    // libcontainer made the mounts but dropped their propagation options:
    // apply them while the init waits for the start signal.
    mount_propagation::apply(pid, &mount_propagation::changes(spec)?)?;
    let cgroup_path = container
        .spec()
        .map_err(|source| IsolationError::Runtime {
            action: "create",
            id: container.id().to_owned(),
            source: Box::new(source),
        })?
        .cgroup_path;
    Ok((pid, pty_master, cgroup_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(root: serde_json::Value) -> Spec {
        serde_json::from_value(serde_json::json!({"ociVersion": "1.0.2", "root": root}))
            .expect("spec")
    }

    #[test]
    fn a_root_without_readonly_stays_writable() {
        // podman and containerd omit `readonly` when it is false.
        let mut s = spec(serde_json::json!({"path": "/somewhere/else"}));
        point_root_at(&mut s, Path::new("/run/c/rootfs")).unwrap();
        let root = s.root().as_ref().unwrap();
        assert_eq!(root.path(), Path::new("/run/c/rootfs"));
        assert_eq!(root.readonly(), Some(false));
        let mut s = spec(serde_json::json!({"path": "rootfs", "readonly": true}));
        point_root_at(&mut s, Path::new("/run/c/rootfs")).unwrap();
        assert_eq!(s.root().as_ref().unwrap().readonly(), Some(true));
    }
}
