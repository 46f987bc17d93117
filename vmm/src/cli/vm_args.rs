//! The microVM flags `create` and `run` share (vmrun's own, beyond runc's),
//! and their resolution into a validated machine.

use std::path::{Path, PathBuf};

use super::CliError;
use crate::check::{default_initrd, default_kernel};
use crate::cmdline::DEFAULT_CMDLINE;
use crate::machine::builder::{BootError, MachineBuilder};
use crate::machine::config::{BootConfig, MachineConfig, DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};
use crate::runtime::pod::{pod_role, PodRole, POD_MEMORY_MIB};

/// Guest memory the guest kernel and agent need beside a container's own
/// memory limit (MiB).
pub const GUEST_OVERHEAD_MIB: u64 = 64;
/// Most vCPUs a spec's CPU quota gives a VM by default.
pub const MAX_DEFAULT_VCPUS: u8 = 8;

/// Default seconds the agent may take to answer.
pub const DEFAULT_AGENT_TIMEOUT_SECS: u64 = 120;

/// The microVM's flags.
#[derive(Debug, Clone, clap::Args)]
pub struct VmArgs {
    /// A disk image holding the root filesystem, attached over virtio-blk
    /// (instead of sharing root.path over virtio-fs). Also settable with the
    /// bundle annotation `vmrun.rootfs-image`.
    #[arg(long = "rootfs-image", value_name = "FILE")]
    pub rootfs_image: Option<PathBuf>,
    /// Guest kernel. Default: $VMRUN_KERNEL, else $VMRUN_CACHE_DIR/vmlinux.
    #[arg(long, value_name = "PATH")]
    pub kernel: Option<PathBuf>,
    /// Initramfs with the agent. Default: $VMRUN_INITRD, else $VMRUN_CACHE_DIR/initramfs.cpio.gz.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Number of vCPUs. Default: enough for the spec's CPU quota
    /// (`linux.resources.cpu.quota / period`, rounded up), at least 1.
    #[arg(long, value_name = "N")]
    pub cpus: Option<u8>,
    /// Guest memory in MiB. Default: 128 (a pod's sandbox: 512), or the
    /// spec's memory limit plus 64 MiB for the guest kernel and agent when
    /// that is more.
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u64>,
    /// Seconds to wait for the guest agent to answer.
    #[arg(long = "agent-timeout", default_value_t = DEFAULT_AGENT_TIMEOUT_SECS, value_name = "SECS")]
    pub agent_timeout: u64,
    /// Copy the guest's serial console to FILE.
    #[arg(long = "console-log", value_name = "FILE")]
    pub console_log: Option<PathBuf>,
}

impl Default for VmArgs {
    fn default() -> Self {
        Self {
            rootfs_image: None,
            kernel: None,
            initrd: None,
            cpus: None,
            memory: None,
            agent_timeout: DEFAULT_AGENT_TIMEOUT_SECS,
            console_log: None,
        }
    }
}

fn artifact(
    given: &Option<PathBuf>,
    default: PathBuf,
    what: &'static str,
    script: &'static str,
    flag: &'static str,
) -> Result<PathBuf, CliError> {
    match given {
        Some(path) => Ok(path.clone()),
        None if default.exists() => Ok(default),
        None => Err(CliError::NotBuilt {
            what,
            path: default,
            script,
            flag,
        }),
    }
}

/// The resolved microVM: kernel and initramfs paths and the validated machine.
#[derive(Debug)]
pub struct ResolvedVm {
    /// Guest kernel.
    pub kernel: PathBuf,
    /// Initramfs with the agent.
    pub initrd: PathBuf,
    /// vCPUs.
    pub vcpus: u8,
    /// Guest memory in MiB.
    pub memory_mib: u64,
    /// The validated machine.
    pub machine: MachineBuilder,
}

impl VmArgs {
    /// The VM's shape for `spec`: the flags, else what the spec's limits
    /// need (a container limited to 1 GiB gets a VM that can hold it).
    pub fn shape(&self, spec: &serde_json::Value) -> (u8, u64) {
        let cpus = self.cpus.unwrap_or_else(|| {
            let cpu = spec.pointer("/linux/resources/cpu");
            let quota = cpu
                .and_then(|c| c.get("quota"))
                .and_then(serde_json::Value::as_i64);
            let period = cpu
                .and_then(|c| c.get("period"))
                .and_then(serde_json::Value::as_u64);
            match (quota, period) {
                (Some(q), Some(p)) if q > 0 && p > 0 => {
                    let needed = (q as u64)
                        .div_ceil(p)
                        .clamp(1, u64::from(MAX_DEFAULT_VCPUS));
                    u8::try_from(needed).unwrap_or(DEFAULT_VCPUS)
                }
                _ => DEFAULT_VCPUS,
            }
        });
        let memory = self.memory.unwrap_or_else(|| {
            let limit = spec
                .pointer("/linux/resources/memory/limit")
                .and_then(serde_json::Value::as_i64)
                .filter(|l| *l > 0)
                .map(|l| (l as u64).div_ceil(1 << 20));
            let base = match pod_role("", spec) {
                PodRole::Sandbox => POD_MEMORY_MIB,
                _ => DEFAULT_MEMORY_MIB,
            };
            match limit {
                Some(mib) => base.max(mib.saturating_add(GUEST_OVERHEAD_MIB)),
                None => base,
            }
        });
        (cpus, memory)
    }

    /// Resolves the default artifacts (a hint to build them if missing)
    /// and validates the machine (cpus, memory, files) once, shaped for
    /// `spec` where no flag says otherwise.
    pub fn resolve(&self, spec: &serde_json::Value) -> Result<ResolvedVm, CliError> {
        let kernel = artifact(
            &self.kernel,
            default_kernel(),
            "kernel",
            "kernel-config/build.sh",
            "kernel",
        )?;
        let initrd = artifact(
            &self.initrd,
            default_initrd(),
            "initramfs",
            "rootfs/build-initramfs.sh",
            "initrd",
        )?;
        let (vcpus, memory_mib) = self.shape(spec);
        let machine = MachineBuilder::for_boot(BootConfig {
            machine: MachineConfig {
                vcpus,
                memory_mib,
                irqchip: true,
            },
            kernel: kernel.clone(),
            initrd: Some(initrd.clone()),
            cmdline: DEFAULT_CMDLINE.to_string(),
        })
        .map_err(BootError::from)?;
        Ok(ResolvedVm {
            kernel,
            initrd,
            vcpus,
            memory_mib,
            machine,
        })
    }

    /// The rootfs image, if any.
    pub fn rootfs_image(&self) -> Option<&Path> {
        self.rootfs_image.as_deref()
    }
}

/// `--preserve-fds N`: host descriptors cannot cross into a microVM.
pub fn refuse_preserved_fds(n: u32) -> Result<(), CliError> {
    if n > 0 {
        return Err(CliError::Usage(format!(
            "--preserve-fds {n}: host file descriptors cannot be passed into a microVM"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_vm_is_shaped_by_flags_else_by_the_specs_limits() {
        let none = VmArgs::default();
        assert_eq!(none.shape(&json!({})), (DEFAULT_VCPUS, DEFAULT_MEMORY_MIB));
        let spec = json!({"linux": {"resources": {
            "memory": {"limit": 1i64 << 30},
            "cpu": {"quota": 250000, "period": 100000}
        }}});
        assert_eq!(none.shape(&spec), (3, 1024 + GUEST_OVERHEAD_MIB));
        let small = json!({"linux": {"resources": {"memory": {"limit": 16i64 << 20}}}});
        assert_eq!(none.shape(&small).1, DEFAULT_MEMORY_MIB);
        let sandbox = json!({"annotations": {"io.kubernetes.cri.container-type": "sandbox"}});
        assert_eq!(none.shape(&sandbox).1, POD_MEMORY_MIB);
        let flags = VmArgs {
            cpus: Some(2),
            memory: Some(300),
            ..VmArgs::default()
        };
        assert_eq!(flags.shape(&spec), (2, 300));
    }
}
