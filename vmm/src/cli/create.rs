//! `vmrun create`: validates the bundle, starts the container's VMM as a
//! daemon, waits until the guest agent has the container created (its
//! process not yet running), records it under `--root`, runs the create
//! hooks and writes the pid file last. On any failure nothing is left: no
//! VMM, no state (and the poststop hooks have run).

use std::path::{Path, PathBuf};

use super::vm_args::{refuse_preserved_fds, VmArgs};
use super::{helper_global_args, CliError, GlobalOpts};
use crate::check::ensure_host_can_run_guests;
use crate::runtime::api::ApiRequest;
use crate::runtime::container::Container;
use crate::runtime::daemon::{self, LaunchConfig};
use crate::runtime::exec_client::{self, SessionLaunch};
use crate::runtime::hooks::{run_create_phases, run_phase_warning, HookPhase};
use crate::runtime::host_cgroup::{remove_cgroup_dirs, HostCgroup, VmOverhead};
use crate::runtime::host_world;
use crate::runtime::host_world::network::unplumb;
use crate::runtime::pod::{pod_role, PodRole};
use crate::runtime::state::{
    validate_id, ContainerRecord, ProcessIdentity, SandboxRef, StateRoot, Status,
};
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

/// Creates the container (see the module docs).
pub fn create_container(global: &GlobalOpts, request: &CreateRequest) -> Result<(), CliError> {
    validate_id(&request.id)?;
    let bundle = Bundle::load(&request.bundle, request.vm.rootfs_image())?;
    match (spec_wants_terminal(&bundle.spec), &request.console_socket) {
        (true, None) => {
            return Err(CliError::Usage(
                "cannot allocate tty if runc will detach without setting console socket".into(),
            ))
        }
        (false, Some(_)) => {
            return Err(CliError::Usage(
                "cannot use console socket if runc will not detach or allocate tty".into(),
            ))
        }
        _ => {}
    }
    if let PodRole::Member { sandbox } = pod_role(&request.id, &bundle.spec) {
        return create_member(global, request, &bundle, &sandbox);
    }
    host_world::check(&bundle.spec).map_err(ContainerRunError::from)?;
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
    let launched = match daemon::launch(
        &config,
        &helper_global_args(global, Some(&dir.path().join(DAEMON_LOG))),
    ) {
        Ok(launched) => launched,
        Err(e) => {
            let _ = dir.remove();
            return Err(e.into());
        }
    };
    let Some(vmm) = daemon::daemon_identity(&launched) else {
        // Gone before it was recorded: undo what it left on the host.
        let _ = remove_cgroup_dirs(&launched.host_cgroups);
        if let Some(net) = &launched.network {
            let _ = unplumb(&net.ns_path, &net.interfaces);
        }
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
        .and_then(|()| run_create_hooks(&record))
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
        run_phase_warning(HookPhase::Poststop, &record.hooks(), &record.hook_state());
        return Err(e);
    }
    Ok(())
}

/// Runs the hooks of `create` (prestart, createRuntime, createContainer),
/// once the container exists in its VM and is recorded.
pub fn run_create_hooks(record: &ContainerRecord) -> Result<(), CliError> {
    run_create_phases(&record.hooks(), &record.hook_state())
        .map_err(|e| CliError::Usage(crate::error_chain(&e)))
}

/// The sandbox a member names: container `sandbox_id`, or else (podman
/// names its pod, not the pod's infra container) the container whose pid
/// the member's `/proc/PID/ns/...` namespace paths name.
fn find_sandbox(root: &StateRoot, sandbox_id: &str, spec: &serde_json::Value) -> Option<Container> {
    if let Ok(sandbox) = Container::load(root, sandbox_id) {
        return Some(sandbox);
    }
    let pids = crate::runtime::pod::namespace_pids(spec);
    if pids.is_empty() {
        return None;
    }
    root.ids()
        .ok()?
        .into_iter()
        .filter_map(|id| Container::load(root, &id).ok())
        .find(|c| pids.contains(&c.record().vmm.pid) && c.vmm_alive())
}

/// Creates pod member `request.id` in the VM of its sandbox `sandbox_id`:
/// its pid is a host process standing for its init (a detached session,
/// in the member's host cgroup) that holds `create`'s stdio, forwards
/// signals and exits with the init's status.
fn create_member(
    global: &GlobalOpts,
    request: &CreateRequest,
    bundle: &Bundle,
    sandbox_id: &str,
) -> Result<(), CliError> {
    let root = StateRoot::new(&global.root);
    let sandbox = find_sandbox(&root, sandbox_id, &bundle.spec).ok_or_else(|| {
        CliError::Usage(format!(
            "the pod's sandbox {sandbox_id} does not exist (its members run in its microVM)"
        ))
    })?;
    if sandbox.record().sandbox.is_some() || sandbox.status() == Status::Stopped {
        return Err(CliError::Usage(format!(
            "the pod's sandbox {sandbox_id} is not running"
        )));
    }
    let dir = root.create(&request.id)?;
    let _lock = dir.lock();
    let api_socket = sandbox.dir().api_socket();
    let launch = SessionLaunch {
        api_socket: api_socket.clone(),
        container: None,
        first: ApiRequest::AddMember {
            id: request.id.clone(),
            bundle: bundle.dir.clone(),
            no_pivot: request.no_pivot,
            // Filled in by the session client, which makes the trees.
            trees: 0,
        },
        terminal: spec_wants_terminal(&bundle.spec),
        console_socket: request
            .console_socket
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone())),
    };
    let helper_args = helper_global_args(global, Some(&dir.path().join(DAEMON_LOG)));
    let mut child = match exec_client::launch_detached(&helper_args, &launch) {
        Ok(child) => child,
        Err(e) => {
            let _ = dir.remove();
            return Err(CliError::Usage(crate::error_chain(&e)));
        }
    };
    let fail = |child: &mut std::process::Child, dirs: &[std::path::PathBuf], e: CliError| {
        let _ = child.kill();
        let _ = child.wait();
        let _ = remove_cgroup_dirs(dirs);
        let _ = dir.remove();
        e
    };
    let pid = child.id();
    let cgroup = match HostCgroup::join_container(
        &request.id,
        &bundle.spec,
        global.systemd_cgroup,
        VmOverhead::default(),
        pid,
    ) {
        Ok(cgroup) => cgroup,
        Err(e) => {
            return Err(fail(
                &mut child,
                &[],
                CliError::Usage(crate::error_chain(&e)),
            ));
        }
    };
    let Some(identity) = ProcessIdentity::of(i32::try_from(pid).unwrap_or(-1)) else {
        return Err(fail(
            &mut child,
            cgroup.dirs(),
            CliError::Usage("the member's host process exited during create".into()),
        ));
    };
    let mut record = ContainerRecord::new(&request.id, bundle, identity);
    record.host_cgroups = cgroup.dirs().to_vec();
    record.sandbox = Some(SandboxRef {
        id: sandbox.record().id.clone(),
        api_socket,
    });
    let recorded = dir
        .write_record(&record)
        .map_err(CliError::from)
        .and_then(|()| run_create_hooks(&record))
        .and_then(|()| match &request.pid_file {
            Some(path) => write_pid_file(path, pid),
            None => Ok(()),
        });
    if let Err(e) = recorded {
        let e = fail(&mut child, cgroup.dirs(), e);
        run_phase_warning(HookPhase::Poststop, &record.hooks(), &record.hook_state());
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
