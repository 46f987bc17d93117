//! One run of each runtime, timed: vmrun's variants (`vmrun.rs`), the OCI
//! runtimes (`oci.rs`: runc, crun, podman), containerd's clients through
//! a private containerd (`ctr.rs`, `cri.rs`; the daemon in `containerd.rs`,
//! kept up across runs by `daemons.rs`) and the other VMMs booting the
//! same kernel and initramfs (`vmm_peers.rs`: QEMU microvm, Firecracker).
//!
//! Every run returns a [`RunSample`]; a run that fails is a sample with
//! `ok: false` and its error, never a panic or an abort.

pub mod containerd;
pub mod containerd_config;
pub mod containerd_error;
pub mod cri;
pub mod ctr;
pub mod daemons;
pub mod image_archive;
pub mod oci;
pub mod scrub;
pub mod vmm_peers;
pub mod vmrun;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::bundle::Workload;
use super::process::Timed;
use super::report::{Clock, PhaseMark, RunSample};

/// The kernel command line of `vmrun boot` and the VMM peers (the agent
/// prints its ready line, then reboots: `reboot=k` is the i8042 reset,
/// `reboot=t` a triple fault for QEMU's microvm, which has no i8042).
/// Every runtime boots the kernel with the words that keep vmrun's own
/// VMs from writing its pages for nothing (see
/// [`crate::cmdline::DEFAULT_CMDLINE`]).
pub const READY_CMDLINE: &str = concat!(
    "console=ttyS0 panic=-1 pci=off nomodule quiet ",
    crate::cmdline::page_sharing_words!(),
    " vmrun_action=ready"
);

/// What the agent prints once the guest is up.
pub const READY_MARKER: &str = "vmrun-agent: ready";

/// The runtimes `vmrun bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RuntimeKind {
    /// `vmrun run` in the foreground.
    Vmrun,
    /// `vmrun create` + `start` + the VMM's exit + `delete`.
    VmrunLifecycle,
    /// `vmrun boot` of the kernel and initramfs to the ready line and out.
    VmrunBoot,
    /// `runc run`.
    Runc,
    /// `crun run`.
    Crun,
    /// `podman run --rootfs`.
    Podman,
    /// `podman run --rootfs` with vmrun as podman's runtime (conmon drives
    /// vmrun's create/start/state/delete, as a user of podman would).
    PodmanVmrun,
    /// `ctr run --rm` of the bench's image through a private containerd's
    /// runc v2 shim with vmrun as its runc binary.
    CtrVmrun,
    /// The same with runc.
    CtrRunc,
    /// A pod through a private containerd's CRI plugin, runtime handler
    /// `vmrun` (driven by `vmrun-cri`).
    CriVmrun,
    /// The same with the runtime handler `runc`.
    CriRunc,
    /// QEMU's microvm machine on KVM, same kernel and initramfs.
    QemuMicrovm,
    /// Firecracker, same kernel and initramfs.
    Firecracker,
}

impl RuntimeKind {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Vmrun => "vmrun",
            RuntimeKind::VmrunLifecycle => "vmrun-lifecycle",
            RuntimeKind::VmrunBoot => "vmrun-boot",
            RuntimeKind::Runc => "runc",
            RuntimeKind::Crun => "crun",
            RuntimeKind::Podman => "podman",
            RuntimeKind::PodmanVmrun => "podman-vmrun",
            RuntimeKind::CtrVmrun => "ctr-vmrun",
            RuntimeKind::CtrRunc => "ctr-runc",
            RuntimeKind::CriVmrun => "cri-vmrun",
            RuntimeKind::CriRunc => "cri-runc",
            RuntimeKind::QemuMicrovm => "qemu-microvm",
            RuntimeKind::Firecracker => "firecracker",
        }
    }

    /// What one run is.
    pub fn what(self) -> &'static str {
        match self {
            RuntimeKind::Vmrun => "vmrun run of the bundle (foreground, microVM)",
            RuntimeKind::VmrunLifecycle => "vmrun create + start + wait for the VMM + delete",
            RuntimeKind::VmrunBoot => "vmrun boot of the kernel + initramfs to the agent's ready line and out",
            RuntimeKind::Runc => "runc run of the bundle (foreground)",
            RuntimeKind::Crun => "crun run of the bundle (foreground)",
            RuntimeKind::Podman => "podman run --rm --network none --rootfs <the bundle's rootfs>",
            RuntimeKind::PodmanVmrun => "podman --runtime vmrun run --rm --network none --rootfs <the bundle's rootfs> (conmon drives vmrun)",
            RuntimeKind::CtrVmrun => "ctr run --rm of the rootfs as an imported image, private containerd, runc v2 shim with --runc-binary vmrun (native snapshotter)",
            RuntimeKind::CtrRunc => "ctr run --rm of the rootfs as an imported image, private containerd, runc v2 shim with --runc-binary runc (native snapshotter)",
            RuntimeKind::CriVmrun => "CRI pod (RunPodSandbox, CreateContainer, StartContainer, ContainerStatus until exited, StopPodSandbox, RemovePodSandbox) through a private containerd, runtime handler vmrun, CNI bridge",
            RuntimeKind::CriRunc => "the same CRI pod with the runtime handler runc",
            RuntimeKind::QemuMicrovm => "qemu-system-x86_64 -M microvm on KVM: same kernel + initramfs to the ready line and out (reboot=t)",
            RuntimeKind::Firecracker => "firecracker --no-api: same kernel + initramfs to the ready line and out",
        }
    }

    /// The program a peer needs on PATH (`None`: vmrun itself).
    pub fn program(self) -> Option<&'static str> {
        match self {
            RuntimeKind::Vmrun | RuntimeKind::VmrunLifecycle | RuntimeKind::VmrunBoot => None,
            RuntimeKind::Runc => Some("runc"),
            RuntimeKind::Crun => Some("crun"),
            RuntimeKind::Podman | RuntimeKind::PodmanVmrun => Some("podman"),
            RuntimeKind::CtrVmrun | RuntimeKind::CtrRunc => Some("ctr"),
            RuntimeKind::CriVmrun | RuntimeKind::CriRunc => Some("containerd"),
            RuntimeKind::QemuMicrovm => Some("qemu-system-x86_64"),
            RuntimeKind::Firecracker => Some("firecracker"),
        }
    }

    /// Everything a peer needs installed: programs on PATH (`vmrun-cri`
    /// also through `$VMRUN_CRI_CLIENT`) and, as absolute paths, files.
    pub fn needs(self) -> Vec<&'static str> {
        const CTR: [&str; 3] = ["ctr", "containerd", "containerd-shim-runc-v2"];
        const CRI: [&str; 9] = [
            "containerd",
            "ctr",
            "containerd-shim-runc-v2",
            "vmrun-cri",
            "ip",
            "nsenter",
            "tar",
            "/usr/lib/cni/bridge",
            "/usr/lib/cni/host-local",
        ];
        let mut needs: Vec<&'static str> = match self {
            RuntimeKind::CtrVmrun | RuntimeKind::CtrRunc => [&CTR[..], &["tar"]].concat(),
            RuntimeKind::CriVmrun | RuntimeKind::CriRunc => CRI.to_vec(),
            other => other.program().into_iter().collect(),
        };
        if matches!(self, RuntimeKind::CtrRunc | RuntimeKind::CriRunc) {
            needs.push("runc");
        }
        needs
    }

    /// The vmrun variant this one's ratio is taken against: the one doing
    /// the same work (a container from the bundle, or a bare boot).
    pub fn baseline(self) -> RuntimeKind {
        match self {
            RuntimeKind::VmrunBoot | RuntimeKind::QemuMicrovm | RuntimeKind::Firecracker => {
                RuntimeKind::VmrunBoot
            }
            _ => RuntimeKind::Vmrun,
        }
    }
}

/// Finds `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Where `kind`'s program is (vmrun itself for its variants), or why it
/// is `missing`: the first of its [`RuntimeKind::needs`] not installed.
pub fn locate(kind: RuntimeKind, vmrun: &Path) -> Result<PathBuf, String> {
    for need in kind.needs() {
        let found = match need {
            "vmrun-cri" => cri::find_client().map(|_| ()),
            file if file.starts_with('/') => match Path::new(file).is_file() {
                true => Ok(()),
                false => Err(format!("{file} is not installed")),
            },
            program => which(program)
                .map(|_| ())
                .ok_or_else(|| format!("`{program}` is not on PATH")),
        };
        found?;
    }
    match kind.program() {
        None => Ok(vmrun.to_path_buf()),
        Some(program) => which(program).ok_or_else(|| format!("`{program}` is not on PATH")),
    }
}

/// The first line of `bin --version` (or `version`), if it answers.
pub fn version_of(bin: &Path, flag: &str) -> Option<String> {
    let out = Command::new(bin).arg(flag).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

/// Everything a run needs.
#[derive(Debug)]
pub struct Context {
    /// The vmrun binary.
    pub vmrun: PathBuf,
    /// The bundles.
    pub workload: Workload,
    /// Guest kernel.
    pub kernel: PathBuf,
    /// Guest initramfs.
    pub initrd: PathBuf,
    /// Guest memory (MiB).
    pub memory_mib: u64,
    /// The bench's scratch directory (state roots, logs, configs).
    pub workdir: PathBuf,
    /// Hang guard of every command.
    pub limit: Duration,
    /// runc's path, when installed (podman is told to use it).
    pub runc: Option<PathBuf>,
    /// The client daemons started for the peers (torn down on drop).
    pub daemons: daemons::Daemons,
    ids: AtomicUsize,
}

impl Context {
    /// A context; container ids are `vmrb<pid>-<runtime>-<n>`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        vmrun: PathBuf,
        workload: Workload,
        kernel: PathBuf,
        initrd: PathBuf,
        memory_mib: u64,
        workdir: PathBuf,
        limit: Duration,
    ) -> Self {
        Self {
            vmrun,
            workload,
            kernel,
            initrd,
            memory_mib,
            workdir,
            limit,
            runc: which("runc"),
            daemons: daemons::Daemons::default(),
            ids: AtomicUsize::new(0),
        }
    }

    /// A fresh container id for `kind`.
    pub fn next_id(&self, kind: RuntimeKind) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("vmrb{}-{}-{n}", std::process::id(), kind.name())
    }

    /// The state root of `runtime` (made on first use).
    pub fn state_root(&self, runtime: &str) -> PathBuf {
        let dir = self.workdir.join("state").join(runtime);
        let _ = std::fs::create_dir_all(&dir);
        dir
    }

    /// A scratch file path for `name`.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.workdir.join("scratch");
        let _ = std::fs::create_dir_all(&dir);
        dir.join(name)
    }

    /// The guest kernel/initramfs/memory flags of vmrun's VM verbs.
    pub fn vm_flags(&self) -> Vec<String> {
        vec![
            "--kernel".into(),
            self.kernel.display().to_string(),
            "--initrd".into(),
            self.initrd.display().to_string(),
            "--memory".into(),
            self.memory_mib.to_string(),
        ]
    }
}

/// A sample from a timed command; `ok` when `ok` says so, else the
/// command's failure.
pub fn sample(timed: &Timed, what: &str, ok: bool, phases: Vec<PhaseMark>) -> RunSample {
    RunSample {
        index: 0,
        ok,
        wall_ms: ms(timed.wall),
        exit_code: timed.code(),
        phases,
        error: (!ok).then(|| timed.failure(what)),
    }
}

/// A failed sample whose command never started (`wall_ms` 0).
pub fn not_run(error: String) -> RunSample {
    RunSample {
        index: 0,
        ok: false,
        wall_ms: 0.0,
        exit_code: None,
        phases: Vec::new(),
        error: Some(error),
    }
}

/// Milliseconds of `d`.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The caller-side marks of a timed command: `first_output` and, when a
/// marker was looked for, `ready_line`.
pub fn caller_marks(timed: &Timed) -> Vec<PhaseMark> {
    let mut marks = Vec::new();
    if let Some(d) = timed.first_output {
        marks.push(PhaseMark {
            name: "first_output".into(),
            ms: ms(d),
            clock: Clock::Caller,
        });
    }
    if let Some(d) = timed.marker {
        marks.push(PhaseMark {
            name: "ready_line".into(),
            ms: ms(d),
            clock: Clock::Caller,
        });
    }
    marks
}

/// Runs `kind` once.
pub fn run_once(kind: RuntimeKind, bin: &Path, ctx: &Context) -> RunSample {
    match kind {
        RuntimeKind::Vmrun => vmrun::run(ctx),
        RuntimeKind::VmrunLifecycle => vmrun::lifecycle(ctx),
        RuntimeKind::VmrunBoot => vmrun::boot(ctx),
        RuntimeKind::Runc | RuntimeKind::Crun => oci::run_foreground(kind, bin, ctx),
        RuntimeKind::Podman => oci::podman(bin, ctx, oci::PodmanRuntime::Runc),
        RuntimeKind::PodmanVmrun => oci::podman(bin, ctx, oci::PodmanRuntime::Vmrun),
        RuntimeKind::CtrVmrun | RuntimeKind::CtrRunc => ctr::run(kind, ctx),
        RuntimeKind::CriVmrun | RuntimeKind::CriRunc => cri::run(kind, ctx),
        RuntimeKind::QemuMicrovm => vmm_peers::qemu_microvm(bin, ctx),
        RuntimeKind::Firecracker => vmm_peers::firecracker(bin, ctx),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_compare_with_the_vmrun_variant_doing_the_same_work() {
        assert_eq!(RuntimeKind::Runc.baseline(), RuntimeKind::Vmrun);
        assert_eq!(RuntimeKind::Podman.baseline(), RuntimeKind::Vmrun);
        assert_eq!(RuntimeKind::PodmanVmrun.baseline(), RuntimeKind::Vmrun);
        assert_eq!(RuntimeKind::PodmanVmrun.program(), Some("podman"));
        assert_eq!(RuntimeKind::QemuMicrovm.baseline(), RuntimeKind::VmrunBoot);
        assert_eq!(RuntimeKind::Firecracker.baseline(), RuntimeKind::VmrunBoot);
        assert_eq!(RuntimeKind::Vmrun.program(), None);
    }

    #[test]
    fn containerd_peers_need_the_daemon_the_shim_and_their_client() {
        assert_eq!(RuntimeKind::CtrVmrun.baseline(), RuntimeKind::Vmrun);
        assert_eq!(RuntimeKind::CriRunc.baseline(), RuntimeKind::Vmrun);
        assert_eq!(RuntimeKind::CtrVmrun.program(), Some("ctr"));
        let ctr = RuntimeKind::CtrVmrun.needs();
        for need in ["ctr", "containerd", "containerd-shim-runc-v2"] {
            assert!(ctr.contains(&need), "{ctr:?}");
        }
        assert!(!ctr.contains(&"runc") && RuntimeKind::CtrRunc.needs().contains(&"runc"));
        let cri = RuntimeKind::CriVmrun.needs();
        for need in ["vmrun-cri", "nsenter", "/usr/lib/cni/bridge"] {
            assert!(cri.contains(&need), "{cri:?}");
        }
        assert_eq!(RuntimeKind::Podman.needs(), ["podman"]);
        assert!(RuntimeKind::Vmrun.needs().is_empty());
        assert_eq!(
            locate(RuntimeKind::Vmrun, Path::new("/x/vmrun")),
            Ok(PathBuf::from("/x/vmrun"))
        );
    }

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("no-such-program-vmrun-bench").is_none());
    }
}
