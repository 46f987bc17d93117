//! `vmrun run` in the foreground, as `runc run`: this process is the
//! container's VMM. It records the container under `--root` (so `state`,
//! `kill`, `exec`, `ps` ... work while it runs), boots it with this
//! process's stdio, starts it at once, waits for it, and removes the
//! container again once it exited. Its hooks run at the same points as
//! with `create`, `start` and `delete`.

use std::sync::Arc;
use std::time::Duration;

use vmrun_protocol::ExitStatus;

use super::bundle::Bundle;
use super::console_tail::ConsoleTail;
use super::container_vmm::api_server::ApiServer;
use super::container_vmm::signal_routing::SignalRouting;
use super::container_vmm::{ContainerRunError, ContainerVmm, InitStdio, VmmOptions};
use super::hooks::{run_create_phases, run_phase, run_phase_warning, HookPhase};
use super::host_cgroup::{HostCgroup, VmOverhead};
use super::host_world::network::UnplumbGuard;
use super::state::{ContainerDir, ContainerRecord, ProcessIdentity};
use super::terminal::{self, HOST_TTY_FD};
use crate::machine::builder::MachineBuilder;
use crate::timings::Timings;

/// Everything needed to run one container in the foreground.
#[derive(Debug)]
pub struct RunConfig {
    /// Container id.
    pub id: String,
    /// The validated bundle.
    pub bundle: Bundle,
    /// The VM: its shape, kernel, initramfs with the agent, command line.
    pub machine: MachineBuilder,
    /// How long the agent may take to answer on its control port.
    pub agent_timeout: Duration,
    /// Where the guest console goes (kept in memory for error reports).
    pub console: ConsoleTail,
    /// Jail with `MS_MOVE` + `chroot` instead of `pivot_root`.
    pub no_pivot: bool,
    /// The container's state directory, made by the caller (exclusively);
    /// removed when the run ends, however it ends.
    pub state: ContainerDir,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
    /// The VM's cost, added to the host cgroup's limits.
    pub overhead: VmOverhead,
}

fn me_pid() -> u32 {
    std::process::id()
}

/// Takes this process out of the container's host cgroup (and removes
/// it) when dropped.
struct LeaveOnDrop(Option<HostCgroup>);

impl Drop for LeaveOnDrop {
    fn drop(&mut self) {
        if let Some(cgroup) = self.0.take() {
            if let Err(e) = cgroup.leave(me_pid()) {
                tracing::warn!(
                    "cannot leave the container's host cgroup: {}",
                    crate::error_chain(&e)
                );
            }
        }
    }
}

/// The run's state directory, removed when the run ends however it ends;
/// the poststop hooks run after it, once the container was recorded.
struct RemoveOnDrop(ContainerDir, Option<ContainerRecord>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.0.remove() {
            tracing::warn!("cannot remove the container's state: {e}");
        }
        if let Some(record) = &self.1 {
            run_phase_warning(HookPhase::Poststop, &record.hooks(), &record.hook_state());
        }
    }
}

/// Runs the bundle's process in a fresh microVM with vmrun's stdio, and
/// returns its exit status once the VM is gone. The forwarded signals must
/// already be blocked ([`super::signals::block_forwarded`]); they reach
/// the container once it exists (before that they end vmrun, and with it
/// the VM, with status 128+N). With `process.terminal` the container gets
/// a pty in the guest relayed over the same streams (stderr stays empty),
/// and vmrun's terminal, if stdin is one, is in raw mode while it runs.
pub fn run_container(
    config: RunConfig,
    timings: Arc<Timings>,
) -> Result<ExitStatus, ContainerRunError> {
    let RunConfig {
        id,
        bundle,
        machine,
        agent_timeout,
        console,
        no_pivot,
        state,
        systemd_cgroup,
        overhead,
    } = config;
    let mut state = RemoveOnDrop(state, None);
    // Before the signal thread: every thread of the VMM gets it.
    if let Err(e) = super::process_hardening::set_no_new_privs() {
        tracing::warn!("cannot set no_new_privs: {e}");
    }
    let me = ProcessIdentity::current().ok_or_else(|| {
        ContainerRunError::Io(
            "read this process's identity",
            std::io::Error::last_os_error(),
        )
    })?;
    let mut record = ContainerRecord::new(&id, &bundle, me);
    let joined = HostCgroup::join_container(&id, &bundle.spec, systemd_cgroup, overhead, me_pid())
        .map_err(|e| ContainerRunError::State(crate::error_chain(&e)))?;
    record.host_cgroups = joined.dirs().to_vec();
    let _cgroup = LeaveOnDrop(Some(joined.clone()));
    let (early_state, early_cgroup) = (state.0.clone(), joined.clone());
    let routing = SignalRouting::start(move || {
        if let Err(e) = early_cgroup.clone().leave(me_pid()) {
            tracing::warn!("cannot leave the container's host cgroup: {e}");
        }
        let _ = early_state.remove();
    })
    .map_err(|e| ContainerRunError::Io("start the signal thread", e))?;
    let tty = terminal::spec_wants_terminal(&bundle.spec) && terminal::is_terminal(HOST_TTY_FD);
    let vmm = Arc::new(ContainerVmm::boot(
        VmmOptions {
            id,
            bundle,
            machine,
            agent_timeout,
            console,
            no_pivot,
            stdio: InitStdio::Inherited,
            host_cgroup: Some((joined, overhead)),
            state_dir: state.0.path().to_path_buf(),
        },
        timings,
    )?);
    // The qdiscs go when the run ends, however it ends (the taps vanish
    // with the VMM), as `delete` removes a created container's.
    let _unplumb = UnplumbGuard::new(vmm.network_record().cloned());
    let _server = ApiServer::start(&state.0.api_socket(), Arc::clone(&vmm))
        .map_err(|e| ContainerRunError::Io("listen on the control socket", e))?;
    record.network = vmm.network_record().cloned();
    state.0.write_record(&record)?;
    state.1 = Some(record.clone());
    let (hooks, hook_state) = (record.hooks(), record.hook_state());
    run_create_phases(&hooks, &hook_state)?;
    routing.forward_to(Arc::clone(&vmm));
    run_phase(HookPhase::StartContainer, &hooks, &hook_state)?;
    let warnings = vmm.start(vmm.main())?;
    run_phase_warning(HookPhase::Poststart, &hooks, &hook_state);
    // Spec fields the guest ignored (e.g. AppArmor: its kernel has no LSM).
    let eol = if tty { "\r\n" } else { "\n" };
    for warning in &warnings {
        eprint!("vmrun: warning: {warning}{eol}");
    }
    let status = vmm.wait_exit();
    routing.exited();
    status
}
