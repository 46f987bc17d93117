//! The microVM flags `create` and `run` share (vmrun's own, beyond runc's),
//! and their resolution into a validated machine.

use std::path::{Path, PathBuf};

use super::CliError;
use crate::check::{default_initrd, default_kernel};
use crate::cmdline::DEFAULT_CMDLINE;
use crate::machine::builder::{BootError, MachineBuilder};
use crate::machine::config::{host_memory_mib, BootConfig, MachineConfig};
use crate::runtime::vm_size::{vm_size, VmSizeError};
pub use crate::runtime::vm_size::{GUEST_OVERHEAD_MIB, MAX_DEFAULT_VCPUS};

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
    /// Initramfs with the agent. Default: $VMRUN_INITRD, else $VMRUN_CACHE_DIR/initramfs.cpio.
    #[arg(long, value_name = "PATH")]
    pub initrd: Option<PathBuf>,
    /// Number of vCPUs. Default: the annotation
    /// `io.katacontainers.config.hypervisor.default_vcpus`, else enough for
    /// the CPU quota of containerd's `io.kubernetes.cri.sandbox-cpu-quota`
    /// annotation or of `linux.resources.cpu` (rounded up), else 1.
    #[arg(long, value_name = "N")]
    pub cpus: Option<u8>,
    /// Guest memory in MiB. Default: the annotation
    /// `io.katacontainers.config.hypervisor.default_memory`, else 128 (a
    /// pod's sandbox: 512), or the memory limit of containerd's
    /// `io.kubernetes.cri.sandbox-memory` annotation or of
    /// `linux.resources.memory` plus 64 MiB for the guest kernel and agent
    /// when that is more (at most the host's RAM).
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
    /// The VM's shape for `spec` (vCPUs, MiB): the flags, else its
    /// annotations, resources or the defaults (see [`vm_size`]); a sizing
    /// annotation that is not a number or out of range is an error naming
    /// it.
    pub fn shape(&self, spec: &serde_json::Value) -> Result<(u8, u64), VmSizeError> {
        self.shape_on_host(spec, host_memory_mib())
    }

    /// [`Self::shape`] on a host with `host_mib` of RAM.
    fn shape_on_host(
        &self,
        spec: &serde_json::Value,
        host_mib: Option<u64>,
    ) -> Result<(u8, u64), VmSizeError> {
        let size = vm_size(self.cpus, self.memory, spec, host_mib)?;
        Ok((size.vcpus, size.memory_mib))
    }

    /// Resolves the default artifacts (a hint to build them if missing)
    /// and validates the machine (cpus, memory, files) once, shaped for
    /// `spec` where no flag says otherwise.
    pub fn resolve(&self, spec: &serde_json::Value) -> Result<ResolvedVm, CliError> {
        // First: a bad sizing annotation is named whatever else is missing.
        let (vcpus, memory_mib) = self.shape(spec)?;
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
    fn the_vm_is_shaped_by_flags_else_by_the_spec() {
        use crate::machine::config::{DEFAULT_MEMORY_MIB, DEFAULT_VCPUS};
        use crate::runtime::pod::POD_MEMORY_MIB;
        let host = Some(64 * 1024);
        let none = VmArgs::default();
        assert_eq!(
            none.shape_on_host(&json!({}), host).unwrap(),
            (DEFAULT_VCPUS, DEFAULT_MEMORY_MIB)
        );
        let spec = json!({"linux": {"resources": {
            "memory": {"limit": 1i64 << 30},
            "cpu": {"quota": 250000, "period": 100000}
        }}});
        assert_eq!(
            none.shape_on_host(&spec, host).unwrap(),
            (3, 1024 + GUEST_OVERHEAD_MIB)
        );
        let sandbox = json!({"annotations": {
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-memory": "2147483648",
            "io.katacontainers.config.hypervisor.default_vcpus": "2"
        }});
        assert_eq!(
            none.shape_on_host(&sandbox, host).unwrap(),
            (2, 2048 + GUEST_OVERHEAD_MIB)
        );
        let pod = json!({"annotations": {"io.kubernetes.cri.container-type": "sandbox"}});
        assert_eq!(none.shape_on_host(&pod, host).unwrap().1, POD_MEMORY_MIB);
        let flags = VmArgs {
            cpus: Some(2),
            memory: Some(300),
            ..VmArgs::default()
        };
        assert_eq!(flags.shape_on_host(&spec, host).unwrap(), (2, 300));
        assert_eq!(flags.shape_on_host(&sandbox, host).unwrap(), (2, 300));
    }

    #[test]
    fn a_bad_sizing_annotation_fails_resolve_naming_it() {
        let spec = json!({"annotations": {
            "io.katacontainers.config.hypervisor.default_memory": "big"
        }});
        let e = VmArgs::default().resolve(&spec).unwrap_err().to_string();
        assert!(
            e.contains("io.katacontainers.config.hypervisor.default_memory"),
            "{e}"
        );
    }
}
