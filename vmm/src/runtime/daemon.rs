//! The VMM daemon `vmrun create` leaves behind: a re-executed `vmrun`
//! (never a fork of a threaded process) that boots the container's
//! microVM, creates the container, serves its control socket, and lives
//! exactly as long as the container's init, exiting with its status.
//!
//! `create` ([`launch`]) hands the daemon its [`LaunchConfig`] over a
//! socketpair on fd 3 ([`detached`]) and waits there for [`Readiness`]: the container is
//! created (or why not). The daemon runs in a session of its own, keeps
//! `create`'s fds 0-2 as the container's stdio (without a terminal), or
//! makes a host pty whose master goes to `--console-socket` (and then
//! holds none of `create`'s descriptors: go-runc waits for EOF on them).

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vmrun_protocol::{read_frame, write_frame};

use super::bundle::Bundle;
use super::console_socket;
use super::console_tail::ConsoleTail;
use super::container_vmm::api_server::ApiServer;
use super::container_vmm::signal_routing::SignalRouting;
use super::container_vmm::{ContainerVmm, InitStdio, VmmOptions};
use super::detached;
use super::host_cgroup::{remove_cgroup_dirs, HostCgroup, VmOverhead};
use super::host_world::network::UnplumbGuard;
use super::host_world::shared_tree::enter_private_mount_namespace;
use super::host_world::NetworkRecord;
use super::state::{ContainerDir, ProcessIdentity};
use crate::cmdline::DEFAULT_CMDLINE;
use crate::machine::builder::MachineBuilder;
use crate::machine::config::{BootConfig, MachineConfig};
use crate::timings::Timings;

/// The hidden verb that runs the daemon.
pub const DAEMON_VERB: &str = "__vmm";
/// What the daemon needs to know (everything already validated by
/// `create`; the daemon checks again what it loads).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchConfig {
    /// Container id.
    pub id: String,
    /// The container's state directory.
    pub state_dir: PathBuf,
    /// The bundle directory.
    pub bundle: PathBuf,
    /// A disk image for the rootfs (virtio-blk), if any.
    pub rootfs_image: Option<PathBuf>,
    /// Guest kernel.
    pub kernel: PathBuf,
    /// Initramfs with the agent.
    pub initrd: PathBuf,
    /// vCPUs.
    pub cpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Seconds the agent may take to answer.
    pub agent_timeout_secs: u64,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--console-socket` (only with `process.terminal`).
    pub console_socket: Option<PathBuf>,
    /// Copy of the guest console.
    pub console_log: Option<PathBuf>,
    /// `--systemd-cgroup`: `linux.cgroupsPath` is `slice:prefix:name`.
    pub systemd_cgroup: bool,
}

/// The daemon's answer to `create`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// The container is created; its control socket listens.
    Created {
        /// Host cgroup directories the daemon joined (for `delete`).
        host_cgroups: Vec<PathBuf>,
        /// The network plumbing (for `delete`).
        network: Option<NetworkRecord>,
    },
    /// It could not be created.
    Failed {
        /// The error chain.
        message: String,
        /// Host cgroup directories the daemon made (for `create` to remove
        /// once the daemon is gone).
        host_cgroups: Vec<PathBuf>,
    },
}

/// Why [`launch`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The daemon could not be started or talked to.
    #[error("cannot start the container's VMM")]
    Spawn(#[source] io::Error),
    /// The daemon reported an error (it is gone, its cgroups removed).
    #[error("{0}")]
    Failed(String),
    /// The daemon ended without a word (killed, crashed).
    #[error("the container's VMM exited before the container was created ({0})")]
    Died(String),
}

/// A daemon that reported the container created.
#[derive(Debug)]
pub struct Launched {
    /// The daemon (not waited for: it outlives `create`).
    pub child: Child,
    /// Host cgroup directories it joined.
    pub host_cgroups: Vec<PathBuf>,
    /// The network plumbing it made.
    pub network: Option<NetworkRecord>,
}

/// Starts the daemon for `config` with `create`'s stdio (or none, with a
/// console socket) and waits until it says the container is created. On
/// failure the daemon is gone when this returns.
pub fn launch(config: &LaunchConfig, global_args: &[OsString]) -> Result<Launched, LaunchError> {
    let mut args = global_args.to_vec();
    args.push(DAEMON_VERB.into());
    let (mut child, mut channel) =
        detached::spawn(&args, config.console_socket.is_some()).map_err(LaunchError::Spawn)?;
    let answer =
        write_frame(&mut channel, config).and_then(|()| read_frame::<_, Readiness>(&mut channel));
    match answer {
        Ok(Readiness::Created {
            host_cgroups,
            network,
        }) => Ok(Launched {
            child,
            host_cgroups,
            network,
        }),
        Ok(Readiness::Failed {
            message,
            host_cgroups,
        }) => {
            detached::reap(&mut child);
            if let Err(e) = remove_cgroup_dirs(&host_cgroups) {
                tracing::warn!("{}", crate::error_chain(&e));
            }
            Err(LaunchError::Failed(message))
        }
        Err(_) => Err(LaunchError::Died(detached::reap(&mut child))),
    }
}

/// The daemon: runs the container until its init exits; returns the exit
/// code for the process (the init's status, 128+N for signal N; 1 if the
/// container could not be created, after telling `create`).
pub fn run_daemon() -> i32 {
    // SAFETY: this process was started by `launch` (the daemon verb is
    // hidden), so fd 3 is its channel.
    let mut channel = unsafe { detached::take_channel() };
    let config: LaunchConfig = match read_frame(&mut channel) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("vmrun: the VMM daemon got no launch configuration: {e}");
            return 1;
        }
    };
    let timings = Arc::new(Timings::default());
    let mut host_cgroups = Vec::new();
    // While this process has one thread, so that every thread has it.
    if let Err(e) = super::process_hardening::set_no_new_privs() {
        tracing::warn!("cannot set no_new_privs: {e}");
    }
    // First, while this process has one thread: its own mount namespace,
    // where the VM's share is built.
    if let Err(e) = enter_private_mount_namespace() {
        let message = crate::error_chain(&e);
        let failed = Readiness::Failed {
            message,
            host_cgroups,
        };
        let _ = write_frame(&mut channel, &failed);
        return 1;
    }
    match boot(&config, &channel, timings, &mut host_cgroups) {
        Ok((vmm, routing, _server)) => {
            let created = Readiness::Created {
                host_cgroups,
                network: vmm.network_record().cloned(),
            };
            let _ = write_frame(&mut channel, &created);
            drop(channel);
            let status = vmm.wait_exit();
            routing.exited();
            match status {
                Ok(status) => status.as_shell_status(),
                Err(e) => {
                    tracing::error!("{}", crate::error_chain(&e));
                    vmm.restore_terminal();
                    1
                }
            }
        }
        Err(message) => {
            tracing::error!("{message}");
            let failed = Readiness::Failed {
                message,
                host_cgroups,
            };
            let _ = write_frame(&mut channel, &failed);
            1
        }
    }
}

type Booted = (Arc<ContainerVmm>, SignalRouting, ApiServer);

/// Has the other end of `channel` (`create`) closed it?
fn caller_gone(channel: &UnixStream) -> bool {
    let mut poll = libc::pollfd {
        fd: channel.as_raw_fd(),
        events: libc::POLLRDHUP,
        revents: 0,
    };
    // SAFETY: one valid pollfd, no timeout.
    let ready = unsafe { libc::poll(&mut poll, 1, 0) };
    ready > 0 && poll.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
}

fn boot(
    config: &LaunchConfig,
    caller: &UnixStream,
    timings: Arc<Timings>,
    host_cgroups: &mut Vec<PathBuf>,
) -> Result<Booted, String> {
    let chain = |e: &dyn std::error::Error| crate::error_chain(e);
    super::signals::block_forwarded().map_err(|e| format!("cannot block signals: {e}"))?;
    let routing =
        SignalRouting::start(|| {}).map_err(|e| format!("cannot start the signal thread: {e}"))?;
    let bundle =
        Bundle::load(&config.bundle, config.rootfs_image.as_deref()).map_err(|e| chain(&e))?;
    let overhead = VmOverhead::for_vm(config.memory_mib, config.cpus);
    let cgroup_spec = bundle.spec.clone();
    let machine = MachineBuilder::for_boot(BootConfig {
        machine: MachineConfig {
            vcpus: config.cpus,
            memory_mib: config.memory_mib,
            irqchip: true,
        },
        kernel: config.kernel.clone(),
        initrd: Some(config.initrd.clone()),
        cmdline: DEFAULT_CMDLINE.to_string(),
    })
    .map_err(|e| chain(&e))?;
    let console = match &config.console_log {
        Some(path) => ConsoleTail::with_copy(Box::new(
            File::create(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        )),
        None => ConsoleTail::default(),
    };
    let stdio = match &config.console_socket {
        Some(socket) => {
            InitStdio::Pty(console_socket::open_console(socket).map_err(|e| chain(&e))?)
        }
        None => InitStdio::Inherited,
    };
    let vmm = ContainerVmm::boot(
        VmmOptions {
            id: config.id.clone(),
            bundle,
            machine,
            agent_timeout: Duration::from_secs(config.agent_timeout_secs),
            console: console.clone(),
            no_pivot: config.no_pivot,
            stdio,
            // Joined below, once booted.
            host_cgroup: None,
            state_dir: config.state_dir.clone(),
        },
        timings,
    )
    .map_err(|e| {
        let mut message = chain(&e);
        if !e.before_vm() {
            let tail = console.text();
            let lines: Vec<&str> = tail.lines().collect();
            let start = lines.len().saturating_sub(20);
            if start < lines.len() {
                message.push_str("\nlast guest console lines:\n    ");
                message.push_str(&lines[start..].join("\n    "));
            }
        }
        message
    })?;
    // Undone on any error below, until `create` gets the record with
    // `Created` (and `delete` undoes it).
    let plumbing = UnplumbGuard::new(vmm.network_record().cloned());
    // `create` waits on the channel for the outcome. If it is gone (killed
    // while the VM booted), nobody will record, start or delete this
    // container: undo it here rather than run on unseen.
    if caller_gone(caller) {
        vmm.shutdown();
        drop(plumbing);
        if let Err(e) = ContainerDir::at(&config.state_dir, &config.id).remove() {
            tracing::warn!("{}", chain(&e));
        }
        return Err(
            "vmrun create went away while the microVM booted; the container was not created".into(),
        );
    }
    // The VMM joins the container's host cgroup once every device it needs
    // is open (/dev/kvm, /dev/net/tun, ptys) and the network is plumbed:
    // a client may have given that cgroup a device policy for the
    // container (podman's pod cgroups on cgroup v2 deny every device),
    // which applies in the guest, not to the VMM. Guest memory touched
    // from here on is charged to it.
    let cgroup = HostCgroup::join_container(
        &config.id,
        &cgroup_spec,
        config.systemd_cgroup,
        overhead,
        std::process::id(),
    )
    .map_err(|e| chain(&e))?;
    host_cgroups.extend_from_slice(cgroup.dirs());
    vmm.joined_host_cgroup(cgroup, overhead);
    let vmm = Arc::new(vmm);
    let dir = ContainerDir::at(&config.state_dir, &config.id);
    let server = ApiServer::start(&dir.api_socket(), Arc::clone(&vmm))
        .map_err(|e| format!("cannot listen on {}: {e}", dir.api_socket().display()))?;
    routing.forward_to(Arc::clone(&vmm));
    // Nothing can fail from here: the plumbing goes to `create` in
    // `Created`. Disarmed before the filter below, which forbids the `tc`
    // the guard would run.
    plumbing.disarm();
    // From here on this thread only serves the container (nothing left to
    // plumb or undo with `ip`/`tc`): no programs, no processes.
    crate::seccomp::install_host_or_warn("VMM main");
    Ok((vmm, routing, server))
}

/// The identity of a launched daemon (None if it is already gone).
pub fn daemon_identity(launched: &Launched) -> Option<ProcessIdentity> {
    ProcessIdentity::of(i32::try_from(launched.child.id()).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caller_that_closed_its_end_is_gone() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        assert!(!caller_gone(&ours));
        drop(theirs);
        assert!(caller_gone(&ours));
    }
}
