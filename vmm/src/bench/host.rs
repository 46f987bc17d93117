//! Is this a hardware host? The bench labels its numbers with the answer.
//!
//! Evidence, each reported as found:
//! - `VMRUN_IN_TESTHOST=1`: the test host (`tests/testhost/run.sh`) sets it;
//!   its CPU is QEMU's software CPU, so everything is emulated.
//! - CPUID leaf 1, ECX bit 31 (the `hypervisor` flag of `/proc/cpuinfo`):
//!   a hypervisor is below us. Its vendor signature (CPUID 0x40000000)
//!   tells which: `TCGTCGTCGTCG` is QEMU's software emulator, anything
//!   else (`KVMKVMKVM`, `Microsoft Hv`, ...) a hardware-assisted one.
//! - `/sys/module/kvm_pvm`: this host's KVM is PVM (guests of a stock
//!   kernel cannot run directly; see `vmrun check`).

use std::path::Path;

use super::report::{HostReport, Virtualization};

/// The test host's marker variable.
pub const TESTHOST_ENV: &str = "VMRUN_IN_TESTHOST";

/// The hypervisor signature of QEMU's software CPU.
pub const TCG_SIGNATURE: &str = "TCGTCGTCGTCG";

/// The CPUID hypervisor bit and vendor signature, if a hypervisor is there.
#[cfg(target_arch = "x86_64")]
fn cpuid_hypervisor() -> Option<String> {
    use std::arch::x86_64::__cpuid;
    // SAFETY: CPUID exists on every x86_64 CPU and only reads registers.
    #[allow(unused_unsafe)]
    let leaf1 = unsafe { __cpuid(1) };
    if leaf1.ecx & (1 << 31) == 0 {
        return None;
    }
    // SAFETY: as above; leaf 0x40000000 is reserved for hypervisors, which
    // the bit above says is present.
    #[allow(unused_unsafe)]
    let sig = unsafe { __cpuid(0x4000_0000) };
    let bytes: Vec<u8> = [sig.ebx, sig.ecx, sig.edx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .collect();
    Some(
        String::from_utf8_lossy(&bytes)
            .trim_end_matches('\0')
            .to_string(),
    )
}

#[cfg(not(target_arch = "x86_64"))]
fn cpuid_hypervisor() -> Option<String> {
    None
}

/// The findings behind the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Findings {
    /// `VMRUN_IN_TESTHOST=1` is set.
    pub in_testhost: bool,
    /// The CPUID hypervisor signature, if a hypervisor is present.
    pub hypervisor: Option<String>,
    /// `/sys/module/kvm_pvm` exists.
    pub pvm: bool,
}

impl Findings {
    /// Looks at this host.
    pub fn gather() -> Self {
        Self {
            in_testhost: std::env::var(TESTHOST_ENV).is_ok_and(|v| v == "1"),
            hypervisor: cpuid_hypervisor(),
            pvm: Path::new("/sys/module/kvm_pvm").exists(),
        }
    }

    /// The verdict and its evidence.
    pub fn verdict(&self) -> (Virtualization, Vec<String>) {
        let mut evidence = Vec::new();
        if self.in_testhost {
            evidence.push(format!(
                "{TESTHOST_ENV}=1: inside the test host (QEMU TCG, nested KVM)"
            ));
        }
        match &self.hypervisor {
            Some(sig) => evidence.push(format!("CPUID: hypervisor present, signature {sig:?}")),
            None => evidence.push("CPUID: no hypervisor bit".to_string()),
        }
        if self.pvm {
            evidence.push("/sys/module/kvm_pvm: this host's KVM is PVM".to_string());
        }
        let tcg = self.hypervisor.as_deref() == Some(TCG_SIGNATURE);
        let verdict = if self.in_testhost || tcg {
            Virtualization::Emulated
        } else if self.hypervisor.is_some() {
            Virtualization::Nested
        } else {
            Virtualization::Hardware
        };
        (verdict, evidence)
    }
}

/// The label printed above the results.
pub fn label(verdict: Virtualization) -> &'static str {
    match verdict {
        Virtualization::Hardware => "hardware KVM: absolute times are hardware numbers",
        Virtualization::Nested => {
            "this host is itself a VM (nested virtualization): absolute times include the outer hypervisor's cost; ratios between runtimes count"
        }
        Virtualization::Emulated => {
            "guests run under software CPU emulation (QEMU TCG): absolute times are NOT hardware numbers; only the ratios between runtimes measured in this run count"
        }
    }
}

/// The host report (kernel release, CPUs, verdict).
pub fn host_report(vmrun_version: String) -> HostReport {
    let (virtualization, evidence) = Findings::gather().verdict();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    HostReport {
        kernel,
        cpus: std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1),
        virtualization,
        evidence,
        label: label(virtualization).to_string(),
        vmrun_version,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn testhost_and_tcg_are_emulated() {
        let f = Findings {
            in_testhost: true,
            ..Default::default()
        };
        assert_eq!(f.verdict().0, Virtualization::Emulated);
        let f = Findings {
            hypervisor: Some(TCG_SIGNATURE.into()),
            ..Default::default()
        };
        assert_eq!(f.verdict().0, Virtualization::Emulated);
    }

    #[test]
    fn other_hypervisors_are_nested_and_none_is_hardware() {
        let f = Findings {
            hypervisor: Some("KVMKVMKVM".into()),
            pvm: true,
            ..Default::default()
        };
        let (v, evidence) = f.verdict();
        assert_eq!(v, Virtualization::Nested);
        assert!(evidence.iter().any(|e| e.contains("KVMKVMKVM")));
        assert!(evidence.iter().any(|e| e.contains("PVM")));
        assert_eq!(Findings::default().verdict().0, Virtualization::Hardware);
    }

    #[test]
    fn the_emulated_label_says_ratios_count() {
        assert!(label(Virtualization::Emulated).contains("NOT hardware numbers"));
    }
}
