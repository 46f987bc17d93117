//! Per-thread seccomp filters for the threads that handle guest input.
//!
//! A vCPU thread runs the guest and the device emulation its exits reach;
//! a device worker runs a virtio device's queues. Each installs its filter
//! ([`install`]) before it touches guest input: an allow-list of the
//! system calls that kind of thread makes ([`allowlist`]), anything else
//! trapped ([`sigsys`]): the VMM reports the thread and the call and stops
//! with status 159 (128 + SIGSYS).
//!
//! Filters are inherited by the threads a thread starts, and device
//! workers are started from a vCPU thread (at the guest's DRIVER_OK), so
//! the vCPU list holds the workers' calls too; a worker then adds its own,
//! narrower filter. The host-facing threads (control socket, stdio
//! relays, signal forwarding, the thread that runs the machine) get a
//! filter of what they must never do ([`denylist`]), from the moment the
//! container exists (before its process starts): the VMM's main thread
//! installs it before it serves the control socket, the others when they
//! start. Only the short-lived threads that plumb the network (they run
//! `ip`/`tc`) and the main thread until then have none.
//!
//! `VMRUN_SECCOMP=off` turns the filters off (for debugging, loudly);
//! `VMRUN_SECCOMP=log` allows what is not listed and has the kernel log it
//! (audit), to find a missing entry.

pub mod allowlist;
pub mod denylist;
pub mod sigsys;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// Which filter a thread gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadKind {
    /// A vCPU thread (runs KVM_RUN and device emulation; starts workers).
    Vcpu,
    /// A virtio device worker.
    DeviceWorker,
    /// A host-facing thread (control socket, stdio, signals, the machine's
    /// runner): a deny-list.
    Host,
}

impl ThreadKind {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vcpu => "vCPU",
            Self::DeviceWorker => "device worker",
            Self::Host => "host",
        }
    }

    fn syscalls(self) -> Vec<i64> {
        match self {
            Self::Vcpu => allowlist::vcpu(),
            Self::DeviceWorker => allowlist::device_worker(),
            Self::Host => denylist::HOST_DENIED.to_vec(),
        }
    }
}

/// Why a filter could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The filter could not be built.
    #[error("cannot build the {0} seccomp filter: {1}")]
    Build(&'static str, String),
    /// The kernel refused it.
    #[error("cannot install the {0} seccomp filter: {1}")]
    Install(&'static str, String),
    /// The SIGSYS handler could not be installed.
    #[error("cannot install the SIGSYS handler")]
    Handler(#[source] std::io::Error),
}

/// What `VMRUN_SECCOMP` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Trap what is not allowed (the default).
    Enforce,
    /// Allow it and have the kernel log it.
    Log,
    /// No filters.
    Off,
}

impl Mode {
    /// Reads `VMRUN_SECCOMP` (unset or anything else: enforce).
    pub fn from_env() -> Self {
        match std::env::var("VMRUN_SECCOMP").as_deref() {
            Ok("off") => Self::Off,
            Ok("log") => Self::Log,
            _ => Self::Enforce,
        }
    }
}

/// The mode of this process, read once.
fn mode() -> Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    *MODE.get_or_init(|| {
        let mode = Mode::from_env();
        if mode != Mode::Enforce {
            tracing::warn!(
                "VMRUN_SECCOMP={mode:?}: guest-facing threads run without enforced seccomp filters"
            );
        }
        mode
    })
}

/// Builds the BPF program for `kind` with `mismatch` for unlisted calls
/// (an allow-list's) or, for [`ThreadKind::Host`], for the listed ones.
pub fn program(kind: ThreadKind, mismatch: SeccompAction) -> Result<BpfProgram, SeccompError> {
    if kind == ThreadKind::Host {
        return host_program(mismatch);
    }
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = kind
        .syscalls()
        .into_iter()
        .map(|nr| (nr, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(rules, mismatch, SeccompAction::Allow, TargetArch::x86_64)
        .map_err(|e| SeccompError::Build(kind.name(), e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| SeccompError::Build(kind.name(), e.to_string()))
}

/// The host threads' deny-list: `action` for the listed calls and for a
/// `clone` that makes a process (no CLONE_THREAD); anything else allowed.
fn host_program(action: SeccompAction) -> Result<BpfProgram, SeccompError> {
    let build = |e: String| SeccompError::Build(ThreadKind::Host.name(), e);
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = denylist::HOST_DENIED
        .iter()
        .map(|nr| (*nr, Vec::new()))
        .collect();
    let makes_a_process = SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
        0,
    )
    .map_err(|e| build(e.to_string()))?;
    rules.insert(
        libc::SYS_clone,
        vec![SeccompRule::new(vec![makes_a_process]).map_err(|e| build(e.to_string()))?],
    );
    let filter = SeccompFilter::new(rules, SeccompAction::Allow, action, TargetArch::x86_64)
        .map_err(|e| build(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| build(e.to_string()))
}

/// `clone3` answers ENOSYS (its flags are out of a filter's reach; the C
/// library then uses `clone`, which [`host_program`] checks).
fn clone3_unavailable() -> Result<BpfProgram, SeccompError> {
    let build = |e: String| SeccompError::Build(ThreadKind::Host.name(), e);
    let rules: BTreeMap<i64, Vec<SeccompRule>> =
        [(libc::SYS_clone3, Vec::new())].into_iter().collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        TargetArch::x86_64,
    )
    .map_err(|e| build(e.to_string()))?;
    filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| build(e.to_string()))
}

/// `kind`'s program, compiled once per process (every vCPU and every
/// worker start, including restarts after a device reset, installs it; the
/// mode, hence `mismatch`, is fixed per process).
fn compiled(
    kind: ThreadKind,
    mismatch: SeccompAction,
) -> Result<&'static BpfProgram, SeccompError> {
    static VCPU: OnceLock<BpfProgram> = OnceLock::new();
    static WORKER: OnceLock<BpfProgram> = OnceLock::new();
    static HOST: OnceLock<BpfProgram> = OnceLock::new();
    let cell = match kind {
        ThreadKind::Vcpu => &VCPU,
        ThreadKind::DeviceWorker => &WORKER,
        ThreadKind::Host => &HOST,
    };
    if let Some(program) = cell.get() {
        return Ok(program);
    }
    let program = program(kind, mismatch)?;
    Ok(cell.get_or_init(|| program))
}

/// Installs `kind`'s filter on the calling thread (and sets its
/// no_new_privs), as the mode says.
pub fn install(kind: ThreadKind) -> Result<(), SeccompError> {
    let mismatch = match mode() {
        Mode::Off => return Ok(()),
        Mode::Log => SeccompAction::Log,
        Mode::Enforce => SeccompAction::Trap,
    };
    sigsys::install_handler().map_err(SeccompError::Handler)?;
    let program = compiled(kind, mismatch)?;
    if kind == ThreadKind::Host {
        static CLONE3: OnceLock<BpfProgram> = OnceLock::new();
        let clone3 = match CLONE3.get() {
            Some(p) => p,
            None => {
                let p = clone3_unavailable()?;
                CLONE3.get_or_init(|| p)
            }
        };
        seccompiler::apply_filter(clone3)
            .map_err(|e| SeccompError::Install(kind.name(), e.to_string()))?;
    }
    sigsys::set_thread_kind(kind);
    seccompiler::apply_filter(program)
        .map_err(|e| SeccompError::Install(kind.name(), e.to_string()))
}

/// Installs the host-facing filter on the calling thread, reporting a
/// failure in the log (the thread runs on, unfiltered, rather than take
/// the container down).
pub fn install_host_or_warn(thread: &str) {
    if let Err(e) = install(ThreadKind::Host) {
        tracing::error!("{thread} thread: {}", crate::error_chain(&e));
    }
}

/// Has every virtio device worker install its filter when it starts.
pub fn filter_device_workers() {
    vmrun_virtio::worker::set_thread_start_hook(|_name| {
        install(ThreadKind::DeviceWorker).map_err(|e| crate::error_chain(&e))
    });
}

#[cfg(test)]
mod tests;
