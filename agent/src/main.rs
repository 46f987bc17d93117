//! The in-guest agent: PID 1 of every vmrun microVM.
//!
//! Start-up order matters: the SIGCHLD reaper is started before any other
//! thread exists (it blocks SIGCHLD process-wide), mounts come before
//! anything that reads /proc or /sys, and every exit path ends the VM.

use std::convert::Infallible;

use anyhow::Context;
use vmrun_agent::config::{Action, AgentConfig};
use vmrun_agent::init::{cgroups, dev_links, mounts, reaper::Reaper, switch_root};
use vmrun_agent::marker::{self, Marker};
use vmrun_agent::sysinfo::SystemInfo;
use vmrun_agent::{console, panic, shutdown};

fn main() {
    if std::process::id() != 1 {
        eprintln!(
            "vmrun-agent: refusing to run: this is the init (PID 1) of a vmrun \
             microVM; it mounts filesystems and reboots the machine"
        );
        std::process::exit(2);
    }
    marker::write(Marker::InitReached);
    panic::install_hook();
    if serving() {
        if let Err(err) = prepare_to_serve() {
            console::print_line(&format!("vmrun-agent: error: {err:#}"));
            shutdown::fail()
        }
    }

    match run() {
        Ok(never) => match never {},
        Err(err) => {
            console::print_line(&format!("vmrun-agent: error: {err:#}"));
            shutdown::fail()
        }
    }
}

/// Was the agent asked to run containers (`vmrun_action=serve`)?
fn serving() -> bool {
    std::env::var_os(vmrun_agent::config::ACTION_VAR).is_some_and(|value| value == "serve")
}

/// Before running containers, moves the agent off the initramfs onto a
/// tmpfs root (so containers get `pivot_root`). Needs /proc, mounted here
/// early (the later mount finds it in place).
///
/// The agent's own binary is the one file not copied: it is unlinked with
/// the rest of the initramfs and lives on as the running program, which
/// the agent never leaves (no re-exec). That is also what keeps a
/// container from writing it through `/proc/<pid>/exe` (CVE-2019-5736
/// class): the file has no path left, and the kernel refuses to open the
/// program of a live process for writing (ETXTBSY; since Linux 5.15 for
/// as long as any process runs it, and PID 1 runs it for the VM's whole
/// life). runc copies itself into a sealed memfd instead, because its
/// binary stays on disk after it exits; that copy and re-exec cost the
/// guest 5.8 MB of fresh memory and a second start-up. Elsewhere than on
/// an initramfs the agent still re-executes from a sealed memfd copy
/// (vmrun-isolation's defence).
fn prepare_to_serve() -> anyhow::Result<()> {
    use vmrun_isolation::self_exe;

    let proc_only: Vec<mounts::MountSpec> = mounts::BASE_MOUNTS
        .iter()
        .filter(|spec| spec.target == "/proc")
        .copied()
        .collect();
    mounts::mount_all(&proc_only).context("mounting /proc early")?;
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    if vmrun_agent::serve::root_is_initramfs(&mountinfo) {
        // Containers are jailed with pivot_root, which the initramfs
        // cannot take part in: move to a tmpfs root first.
        let binary = switch_root::FileId::of(std::path::Path::new("/proc/self/exe"))?;
        nix::mount::umount("/proc").context("unmounting the early /proc")?;
        return switch_root::switch_to_tmpfs_root(Some(binary))
            .context("moving the agent from the initramfs to a tmpfs root");
    }
    self_exe::ensure_sealed_self_exe().context("re-executing the agent from a sealed copy")
}

fn run() -> anyhow::Result<Infallible> {
    // Parse first (pure), report after the console is set up. (vars_os:
    // a non-UTF-8 word on the kernel command line must not panic PID 1.)
    let config = AgentConfig::from_env(std::env::vars_os().map(|(key, value)| {
        (
            key.to_string_lossy().into_owned(),
            value.to_string_lossy().into_owned(),
        )
    }));

    // Before any other thread: blocks SIGCHLD for the whole process.
    let reaper = Reaper::start().context("starting the child reaper")?;

    mounts::mount_all(mounts::BASE_MOUNTS)?;
    console::attach_stdio().context("attaching stdio to /dev/console")?;
    let config = config?;
    console::init_logging(config.log_level);
    dev_links::create_all(dev_links::DEV_LINKS)?;
    if let Err(err) = cgroups::enable_all_controllers(cgroups::CGROUP_ROOT) {
        tracing::warn!("cgroup controllers not enabled: {err:#}");
    }

    let info = SystemInfo::read().context("reading system information")?;
    if config.action == Action::Serve {
        // The host waits for the control connection, not for this line:
        // printed only when asked for `info` (see `default_log_level`).
        tracing::info!("{}", info.ready_message());
    } else {
        console::print_line(&info.ready_line());
    }
    match config.action {
        Action::Serve => {
            // The agent listens before it says it is ready: the host
            // connects as soon as the marker is there, and a connection
            // tried before the listen is refused and tried again later.
            let control = vmrun_agent::serve::listen_vsock(vmrun_protocol::CONTROL_PORT)
                .context("listening for the host")?;
            marker::write(Marker::AgentReady);
            vmrun_agent::serve::run_in_guest(reaper, control)
        }
        Action::Ready | Action::Poweroff => {
            marker::write(Marker::AgentReady);
            shutdown::end_vm(config.action)
        }
        Action::Panic => {
            marker::write(Marker::AgentReady);
            panic!("deliberate panic requested with vmrun_action=panic")
        }
    }
}
