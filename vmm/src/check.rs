//! Can this host run microVMs? And where are the default guest artifacts?

use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Env var naming the artifact cache directory.
pub const CACHE_DIR_ENV: &str = "VMRUN_CACHE_DIR";
/// Default artifact cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/vmrun";
/// Env var overriding the default kernel.
pub const KERNEL_ENV: &str = "VMRUN_KERNEL";
/// Env var overriding the default initramfs.
pub const INITRD_ENV: &str = "VMRUN_INITRD";
/// Env var that lets `vmrun boot` try a KVM that [`check_kvm`] rejects.
pub const FORCE_KVM_ENV: &str = "VMRUN_FORCE_KVM";

/// The artifact cache directory (`$VMRUN_CACHE_DIR` or `/var/cache/vmrun`).
pub fn cache_dir() -> PathBuf {
    std::env::var_os(CACHE_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CACHE_DIR))
}

/// The default kernel: `$VMRUN_KERNEL`, else `<cache>/vmlinux`.
pub fn default_kernel() -> PathBuf {
    std::env::var_os(KERNEL_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("vmlinux"))
}

/// The default initramfs: `$VMRUN_INITRD`, else `<cache>/initramfs.cpio`.
pub fn default_initrd() -> PathBuf {
    std::env::var_os(INITRD_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cache_dir().join("initramfs.cpio"))
}

/// Whether KVM here can run a stock Linux guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvmStatus {
    /// `/dev/kvm` opens and the CPU has hardware virtualization.
    Usable,
    /// No `/dev/kvm`.
    Missing,
    /// `/dev/kvm` exists but this user may not open it.
    NoPermission,
    /// `/dev/kvm` opens but cannot run stock guests.
    CannotRunStockGuests(String),
    /// Opening `/dev/kvm` failed otherwise.
    Unusable(String),
}

impl KvmStatus {
    /// Whether guests can run.
    pub fn is_usable(&self) -> bool {
        matches!(self, KvmStatus::Usable)
    }
}

impl fmt::Display for KvmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvmStatus::Usable => write!(f, "KVM is usable (/dev/kvm with hardware virtualization)"),
            KvmStatus::Missing => write!(
                f,
                "/dev/kvm does not exist: load kvm-intel or kvm-amd, or enable virtualization (VT-x/AMD-V) in the firmware"
            ),
            KvmStatus::NoPermission => write!(
                f,
                "no permission to open /dev/kvm: run as root or add this user to the 'kvm' group"
            ),
            KvmStatus::CannotRunStockGuests(why) => write!(
                f,
                "this host's KVM cannot run stock Linux guests: {why}; run vmrun on a host with VT-x/AMD-V, or inside the nested test host (see tests/)"
            ),
            KvmStatus::Unusable(why) => write!(f, "/dev/kvm cannot be opened: {why}"),
        }
    }
}

/// Where [`check_kvm_at`] looks (replaceable in tests).
#[derive(Debug, Clone)]
pub struct HostPaths {
    /// The KVM device node.
    pub dev_kvm: PathBuf,
    /// Present when the PVM flavour of KVM is loaded.
    pub kvm_pvm_module: PathBuf,
    /// CPU flags source.
    pub cpuinfo: PathBuf,
}

impl Default for HostPaths {
    fn default() -> Self {
        Self {
            dev_kvm: PathBuf::from("/dev/kvm"),
            kvm_pvm_module: PathBuf::from("/sys/module/kvm_pvm"),
            cpuinfo: PathBuf::from("/proc/cpuinfo"),
        }
    }
}

fn has_hw_virt_flag(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

/// Checks KVM using `paths`.
pub fn check_kvm_at(paths: &HostPaths) -> KvmStatus {
    match OpenOptions::new()
        .read(true)
        .write(true)
        .open(&paths.dev_kvm)
    {
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return KvmStatus::Missing,
        Err(e) if e.kind() == ErrorKind::PermissionDenied => return KvmStatus::NoPermission,
        Err(e) => return KvmStatus::Unusable(e.to_string()),
    }
    if paths.kvm_pvm_module.exists() {
        return KvmStatus::CannotRunStockGuests(
            "it is PVM (the kvm_pvm module is loaded: this machine is itself a VM without nested VT-x/AMD-V, and PVM only runs PVM-built guest kernels)".into(),
        );
    }
    match std::fs::read_to_string(&paths.cpuinfo) {
        Ok(text) if !has_hw_virt_flag(&text) => KvmStatus::CannotRunStockGuests(
            "the CPU has neither vmx nor svm in /proc/cpuinfo (no hardware virtualization)".into(),
        ),
        _ => KvmStatus::Usable,
    }
}

/// Checks this host's KVM.
pub fn check_kvm() -> KvmStatus {
    check_kvm_at(&HostPaths::default())
}

/// A guest artifact and whether it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// Its path.
    pub path: PathBuf,
    /// Whether it exists as a file.
    pub built: bool,
}

impl Artifact {
    fn at(path: PathBuf) -> Self {
        let built = Path::new(&path).is_file();
        Self { path, built }
    }
}

/// Everything `vmrun check` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReport {
    /// KVM status.
    pub kvm: KvmStatus,
    /// Default kernel.
    pub kernel: Artifact,
    /// Default initramfs.
    pub initrd: Artifact,
}

impl HostReport {
    /// Gathers the report for this host.
    pub fn gather() -> Self {
        Self {
            kvm: check_kvm(),
            kernel: Artifact::at(default_kernel()),
            initrd: Artifact::at(default_initrd()),
        }
    }

    /// Whether guests can run here (what the exit code of `vmrun check` says).
    pub fn can_run_guests(&self) -> bool {
        self.kvm.is_usable()
    }
}

impl fmt::Display for HostReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let built = |a: &Artifact| if a.built { "built" } else { "NOT BUILT" };
        writeln!(f, "kvm:     {}", self.kvm)?;
        writeln!(
            f,
            "kernel:  {} ({})",
            self.kernel.path.display(),
            built(&self.kernel)
        )?;
        writeln!(
            f,
            "initrd:  {} ({})",
            self.initrd.path.display(),
            built(&self.initrd)
        )?;
        write!(
            f,
            "result:  {}",
            if self.can_run_guests() {
                "this host can run vmrun guests"
            } else {
                "this host can NOT run vmrun guests"
            }
        )
    }
}

/// The host cannot run guests.
#[derive(Debug, thiserror::Error)]
#[error("{0} (set {FORCE_KVM_ENV}=1 to try anyway)")]
pub struct HostUnsupported(pub KvmStatus);

/// Fails fast unless KVM can run stock guests (or `VMRUN_FORCE_KVM=1`).
pub fn ensure_host_can_run_guests() -> Result<(), HostUnsupported> {
    let status = check_kvm();
    if status.is_usable() {
        return Ok(());
    }
    if std::env::var(FORCE_KVM_ENV).is_ok_and(|v| v == "1") {
        tracing::warn!("{status}; continuing because {FORCE_KVM_ENV}=1");
        return Ok(());
    }
    Err(HostUnsupported(status))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(dir: &Path) -> HostPaths {
        HostPaths {
            dev_kvm: dir.join("kvm"),
            kvm_pvm_module: dir.join("kvm_pvm"),
            cpuinfo: dir.join("cpuinfo"),
        }
    }

    #[test]
    fn missing_device() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(check_kvm_at(&paths(dir.path())), KvmStatus::Missing);
    }

    #[test]
    fn pvm_and_no_hw_virt_are_rejected_and_hw_virt_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let p = paths(dir.path());
        std::fs::write(&p.dev_kvm, b"").unwrap();
        std::fs::write(&p.cpuinfo, "processor : 0\nflags : fpu sse2 svm lm\n").unwrap();
        assert_eq!(check_kvm_at(&p), KvmStatus::Usable);

        std::fs::write(&p.cpuinfo, "flags : fpu sse2 lm hypervisor\n").unwrap();
        let status = check_kvm_at(&p);
        assert!(matches!(&status, KvmStatus::CannotRunStockGuests(w) if w.contains("vmx")));

        std::fs::create_dir(&p.kvm_pvm_module).unwrap();
        std::fs::write(&p.cpuinfo, "flags : vmx\n").unwrap();
        let status = check_kvm_at(&p);
        assert!(status.to_string().contains("PVM"), "{status}");
        assert!(!status.is_usable());
    }

    #[test]
    fn report_names_paths_and_build_state() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("vmlinux");
        std::fs::write(&kernel, b"x").unwrap();
        let report = HostReport {
            kvm: KvmStatus::Missing,
            kernel: Artifact::at(kernel.clone()),
            initrd: Artifact::at(dir.path().join("initramfs.cpio")),
        };
        let text = report.to_string();
        assert!(
            text.contains(&format!("{} (built)", kernel.display())),
            "{text}"
        );
        assert!(text.contains("NOT BUILT"), "{text}");
        assert!(text.contains("can NOT run"), "{text}");
        assert!(!report.can_run_guests());
    }

    #[test]
    fn this_host_is_reported_truthfully() {
        // These CI/dev machines have PVM; a real host has vmx/svm.
        let status = check_kvm();
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let expected_usable = Path::new("/dev/kvm").exists()
            && !Path::new("/sys/module/kvm_pvm").exists()
            && has_hw_virt_flag(&cpuinfo);
        assert_eq!(status.is_usable(), expected_usable, "{status}");
        if !Path::new("/dev/kvm").exists() {
            assert_eq!(status, KvmStatus::Missing);
        } else if Path::new("/sys/module/kvm_pvm").exists() {
            assert!(
                matches!(status, KvmStatus::CannotRunStockGuests(_)),
                "{status}"
            );
        }
    }
}
