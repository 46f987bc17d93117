//! `vmrun create`: validates the bundle, starts the container's VMM as a
//! daemon, waits until the guest agent has the container created (its
//! process not yet running), records it under `--root` and writes the pid
//! file last. On any failure nothing is left: no VMM, no state.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::vm_args::{refuse_preserved_fds, VmArgs};
use super::{CliError, GlobalOpts, LogFormat};
use crate::check::ensure_host_can_run_guests;
use crate::runtime::daemon::{self, LaunchConfig};
use crate::runtime::host_cgroup::remove_cgroup_dirs;
use crate::runtime::host_world;
use crate::runtime::host_world::network::unplumb;
use crate::runtime::state::{validate_id, ContainerRecord, StateRoot};
use crate::runtime::terminal::spec_wants_terminal;
use crate::runtime::{Bundle, ContainerRunError};

/// The VMM daemon's log when no `--log` is given (in the state directory).
pub const DAEMON_LOG: &str = "vmm.log";

/// Arguments of `vmrun create` (runc's, plus the microVM's).
#[derive(Debug, Clone, clap::Args)]
pub struct CreateArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// The bundle directory (holding config.json and the rootfs).
    #[arg(short, long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Write the container's pid (its VMM's) to FILE, once it is created.
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<PathBuf>,
    /// With process.terminal: the unix socket the pty master is sent to.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Jail with MS_MOVE + chroot instead of pivot_root (as runc; insecure).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility (each container has its own guest
    /// kernel and so its own keyrings).
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors: only 0 (host descriptors cannot
    /// cross into a microVM).
    #[arg(long = "preserve-fds", value_name = "N", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The microVM.
    #[command(flatten)]
    pub vm: VmArgs,
}

/// What `create` (and `run --detach`) needs.
#[derive(Debug, Clone)]
pub struct CreateRequest {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Pid file.
    pub pid_file: Option<PathBuf>,
    /// Console socket.
    pub console_socket: Option<PathBuf>,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// The microVM.
    pub vm: VmArgs,
}

/// Writes `pid` to `path` atomically, as an absolute path's content.
pub fn write_pid_file(path: &Path, pid: u32) -> Result<(), CliError> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let tmp = path.with_extension("vmrun-tmp");
    let write = || -> std::io::Result<()> {
        std::fs::write(&tmp, pid.to_string())?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::Write(path.clone(), e)
    })
}

/// The global flags the daemon runs with: its log goes to `--log`, or to
/// the state directory (never to the container's stderr).
fn daemon_global_args(global: &GlobalOpts, state_dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec!["--root".into(), global.root.clone().into()];
    let log = global
        .log
        .clone()
        .unwrap_or_else(|| state_dir.join(DAEMON_LOG));
    args.extend([
        "--log".into(),
        std::path::absolute(&log).unwrap_or(log).into(),
    ]);
    if global.log_format == LogFormat::Json {
        args.extend(["--log-format".into(), "json".into()]);
    }
    if global.debug {
        args.push("--debug".into());
    }
    if global.systemd_cgroup {
        args.push("--systemd-cgroup".into());
    }
    args
}

/// Creates the container (see the module docs).
pub fn create_container(global: &GlobalOpts, request: &CreateRequest) -> Result<(), CliError> {
    validate_id(&request.id)?;
    let bundle = Bundle::load(&request.bundle, request.vm.rootfs_image())?;
    host_world::check(&bundle.spec).map_err(ContainerRunError::from)?;
    match (spec_wants_terminal(&bundle.spec), &request.console_socket) {
        (true, None) => {
            return Err(CliError::Usage(
                "cannot allocate tty if runc will detach without setting console socket".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(CliError::Usage(
                "cannot use console socket if runc will not allocate tty".into(),
            ))
        }
        _ => {}
    }
    let vm = request.vm.resolve(&bundle.spec)?;
    ensure_host_can_run_guests()?;
    let root = StateRoot::new(&global.root);
    let dir = root.create(&request.id)?;
    let _lock = dir.lock();
    let config = LaunchConfig {
        id: request.id.clone(),
        state_dir: dir.path().to_path_buf(),
        bundle: bundle.dir.clone(),
        rootfs_image: request
            .vm
            .rootfs_image
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        kernel: std::path::absolute(&vm.kernel).unwrap_or(vm.kernel),
        initrd: std::path::absolute(&vm.initrd).unwrap_or(vm.initrd),
        cpus: vm.vcpus,
        memory_mib: vm.memory_mib,
        agent_timeout_secs: request.vm.agent_timeout,
        no_pivot: request.no_pivot,
        console_socket: request
            .console_socket
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        console_log: request
            .vm
            .console_log
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
        systemd_cgroup: global.systemd_cgroup,
    };
    let launched = match daemon::launch(&config, &daemon_global_args(global, dir.path())) {
        Ok(launched) => launched,
        Err(e) => {
            let _ = dir.remove();
            return Err(e.into());
        }
    };
    let Some(vmm) = daemon::daemon_identity(&launched) else {
        let _ = dir.remove();
        return Err(CliError::Usage(
            "the container's VMM exited right after creating the container".into(),
        ));
    };
    let mut record = ContainerRecord::new(&request.id, &bundle, vmm);
    record.host_cgroups = launched.host_cgroups;
    record.network = launched.network;
    let recorded = dir
        .write_record(&record)
        .map_err(CliError::from)
        .and_then(|()| match &request.pid_file {
            Some(path) => write_pid_file(path, launched.child.id()),
            None => Ok(()),
        });
    if let Err(e) = recorded {
        // Nothing may be left: kill the VMM (still our child), remove its
        // cgroups and state.
        let mut child = launched.child;
        let _ = child.kill();
        let _ = child.wait();
        let _ = remove_cgroup_dirs(&record.host_cgroups);
        if let Some(net) = &record.network {
            let _ = unplumb(&net.ns_path, &net.interfaces);
        }
        let _ = dir.remove();
        return Err(e);
    }
    Ok(())
}

/// Runs `vmrun create`.
pub fn run(global: &GlobalOpts, args: CreateArgs) -> Result<i32, CliError> {
    refuse_preserved_fds(args.preserve_fds)?;
    let request = CreateRequest {
        id: args.id,
        bundle: args.bundle,
        pid_file: args.pid_file,
        console_socket: args.console_socket,
        no_pivot: args.no_pivot,
        vm: args.vm,
    };
    create_container(global, &request)?;
    Ok(0)
}
