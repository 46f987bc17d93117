//! Machine and boot configuration, validated before anything is created.

use std::path::{Path, PathBuf};

use crate::arch::x86_64::layout::CMDLINE_MAX_SIZE;
use crate::arch::x86_64::mptable::MAX_CPUS;

/// Default number of vCPUs.
pub const DEFAULT_VCPUS: u8 = 1;
/// Default guest memory in MiB.
pub const DEFAULT_MEMORY_MIB: u64 = 128;
/// Smallest accepted guest memory in MiB.
pub const MIN_MEMORY_MIB: u64 = 2;

/// The virtual hardware: vCPUs, memory, interrupt controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// Number of vCPUs (1..=32).
    pub vcpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// Create KVM's in-kernel irqchip and PIT (always, for real guests;
    /// tiny test guests may go without to see `hlt` exits).
    pub irqchip: bool,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            vcpus: DEFAULT_VCPUS,
            memory_mib: DEFAULT_MEMORY_MIB,
            irqchip: true,
        }
    }
}

/// What to boot on a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootConfig {
    /// The machine.
    pub machine: MachineConfig,
    /// Kernel image (ELF vmlinux with a PVH note, or bzImage).
    pub kernel: PathBuf,
    /// Initial ramdisk, if any.
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    pub cmdline: String,
}

/// Invalid configuration (each message names the offending setting).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// vCPU count out of range.
    #[error("--cpus must be between 1 and {MAX_CPUS}, got {0}")]
    Vcpus(u64),
    /// Memory below the minimum.
    #[error("--memory must be at least {MIN_MEMORY_MIB} MiB, got {0} MiB")]
    MemoryTooSmall(u64),
    /// Memory above what the host has.
    #[error("--memory {requested} MiB is more than this host's {host} MiB of RAM")]
    MemoryTooLarge {
        /// Requested MiB.
        requested: u64,
        /// Host RAM in MiB.
        host: u64,
    },
    /// A file that must exist does not.
    #[error("{what} {path} does not exist")]
    Missing {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// A path that must be a regular file is not.
    #[error("{what} {path} is not a regular file")]
    NotAFile {
        /// "kernel" or "initrd".
        what: &'static str,
        /// The path.
        path: PathBuf,
    },
    /// Command line too long.
    #[error("--cmdline is {0} bytes; the limit is {max}", max = CMDLINE_MAX_SIZE - 1)]
    CmdlineTooLong(usize),
}

/// Host RAM in MiB, from `/proc/meminfo` (None if unreadable).
pub fn host_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

impl MachineConfig {
    /// Checks the vCPU count and the memory size against `host_mib` of host RAM.
    pub fn validate_with_host_memory(&self, host_mib: Option<u64>) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus > MAX_CPUS {
            return Err(ConfigError::Vcpus(u64::from(self.vcpus)));
        }
        if self.memory_mib < MIN_MEMORY_MIB {
            return Err(ConfigError::MemoryTooSmall(self.memory_mib));
        }
        if let Some(host) = host_mib {
            if self.memory_mib > host {
                return Err(ConfigError::MemoryTooLarge {
                    requested: self.memory_mib,
                    host,
                });
            }
        }
        Ok(())
    }

    /// Checks against this host's RAM.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with_host_memory(host_memory_mib())
    }

    /// Guest memory in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib << 20
    }
}

fn check_file(what: &'static str, path: &Path) -> Result<(), ConfigError> {
    match std::fs::metadata(path) {
        Err(_) => Err(ConfigError::Missing {
            what,
            path: path.to_path_buf(),
        }),
        Ok(m) if !m.is_file() => Err(ConfigError::NotAFile {
            what,
            path: path.to_path_buf(),
        }),
        Ok(_) => Ok(()),
    }
}

impl BootConfig {
    /// Validates the machine, the kernel and initrd files and the command line.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_with_host_memory(host_memory_mib())
    }

    /// [`BootConfig::validate`] with an explicit host RAM size.
    pub fn validate_with_host_memory(&self, host_mib: Option<u64>) -> Result<(), ConfigError> {
        self.machine.validate_with_host_memory(host_mib)?;
        check_file("kernel", &self.kernel)?;
        if let Some(initrd) = &self.initrd {
            check_file("initrd", initrd)?;
        }
        if self.cmdline.len() >= CMDLINE_MAX_SIZE {
            return Err(ConfigError::CmdlineTooLong(self.cmdline.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(kernel: &Path) -> BootConfig {
        BootConfig {
            machine: MachineConfig::default(),
            kernel: kernel.to_path_buf(),
            initrd: None,
            cmdline: "console=ttyS0".into(),
        }
    }

    #[test]
    fn zero_and_too_many_cpus_are_rejected() {
        let mut m = MachineConfig {
            vcpus: 0,
            ..Default::default()
        };
        assert_eq!(
            m.validate_with_host_memory(None),
            Err(ConfigError::Vcpus(0))
        );
        m.vcpus = MAX_CPUS + 1;
        let err = m.validate_with_host_memory(None).unwrap_err();
        assert!(err.to_string().contains("--cpus"), "{err}");
        m.vcpus = MAX_CPUS;
        assert_eq!(m.validate_with_host_memory(None), Ok(()));
    }

    #[test]
    fn memory_limits() {
        let m = MachineConfig {
            memory_mib: 1 << 20,
            ..Default::default()
        };
        let err = m.validate_with_host_memory(Some(4096)).unwrap_err();
        assert_eq!(
            err,
            ConfigError::MemoryTooLarge {
                requested: 1 << 20,
                host: 4096
            }
        );
        assert!(err.to_string().contains("--memory"));
        let small = MachineConfig {
            memory_mib: 1,
            ..Default::default()
        };
        assert_eq!(
            small.validate_with_host_memory(Some(4096)),
            Err(ConfigError::MemoryTooSmall(1))
        );
    }

    #[test]
    fn missing_kernel_and_initrd_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("vmlinux");
        let err = boot(&missing).validate_with_host_memory(None).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { what: "kernel", .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));

        let err = boot(dir.path())
            .validate_with_host_memory(None)
            .unwrap_err();
        assert!(matches!(err, ConfigError::NotAFile { .. }));

        let kernel = dir.path().join("k");
        std::fs::write(&kernel, b"x").unwrap();
        let mut cfg = boot(&kernel);
        assert_eq!(cfg.validate_with_host_memory(None), Ok(()));
        cfg.initrd = Some(dir.path().join("nope.cpio"));
        let err = cfg.validate_with_host_memory(None).unwrap_err();
        assert!(matches!(err, ConfigError::Missing { what: "initrd", .. }));
    }

    #[test]
    fn long_cmdline_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let kernel = dir.path().join("k");
        std::fs::write(&kernel, b"x").unwrap();
        let mut cfg = boot(&kernel);
        cfg.cmdline = "x".repeat(CMDLINE_MAX_SIZE);
        assert!(matches!(
            cfg.validate_with_host_memory(None),
            Err(ConfigError::CmdlineTooLong(_))
        ));
    }

    #[test]
    fn host_memory_is_readable_here() {
        assert!(host_memory_mib().unwrap_or(0) > 0);
    }
}
