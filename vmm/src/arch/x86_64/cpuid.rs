//! CPUID for a vCPU: what KVM supports (`KVM_GET_SUPPORTED_CPUID`), with the
//! topology rewritten for this VM (one thread per core, one package), the
//! per-vCPU APIC id, the hypervisor bit, and the KVM paravirt leaves
//! (`0x4000_00xx`, so the guest finds kvmclock) passed through untouched,
//! and the XSAVE leaf 0xD made consistent with the XCR0 features offered
//! ([`super::xsave`]).

use kvm_bindings::kvm_cpuid_entry2;

use super::xsave::normalize_xsave;

/// Leaf 1 ECX: running under a hypervisor.
pub const HYPERVISOR_BIT: u32 = 1 << 31;
/// Leaf 1 ECX: TSC-deadline mode of the LAPIC timer.
pub const TSC_DEADLINE_BIT: u32 = 1 << 24;
/// Leaf 1 EDX: more than one logical processor per package.
pub const HTT_BIT: u32 = 1 << 28;
/// First KVM paravirt leaf ("KVMKVMKVM" signature).
pub const KVM_CPUID_SIGNATURE: u32 = 0x4000_0000;

/// CPU vendor, from leaf 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// GenuineIntel.
    Intel,
    /// AuthenticAMD (or HygonGenuine).
    Amd,
    /// Anything else.
    Other,
}

/// Detects the vendor from leaf 0 of a CPUID table.
pub fn vendor(entries: &[kvm_cpuid_entry2]) -> Vendor {
    let Some(leaf0) = entries.iter().find(|e| e.function == 0) else {
        return Vendor::Other;
    };
    let mut sig = Vec::with_capacity(12);
    for reg in [leaf0.ebx, leaf0.edx, leaf0.ecx] {
        sig.extend_from_slice(&reg.to_le_bytes());
    }
    match sig.as_slice() {
        b"GenuineIntel" => Vendor::Intel,
        b"AuthenticAMD" | b"HygonGenuine" => Vendor::Amd,
        _ => Vendor::Other,
    }
}

/// Number of bits needed to number `count` items (ceil(log2(count))).
fn id_bits(count: u32) -> u32 {
    match count {
        0 | 1 => 0,
        n => 32 - (n - 1).leading_zeros(),
    }
}

/// What CPUID must say for one vCPU.
#[derive(Debug, Clone, Copy)]
pub struct VcpuTopology {
    /// This vCPU's index, which is also its APIC id.
    pub cpu_id: u8,
    /// Number of vCPUs in the VM.
    pub cpu_count: u8,
    /// Whether the in-kernel LAPIC supports the TSC-deadline timer.
    pub tsc_deadline: bool,
}

/// Rewrites a copy of KVM's supported CPUID for one vCPU; returns the XCR0
/// features it offers (see [`normalize_xsave`]).
pub fn filter_cpuid(entries: &mut [kvm_cpuid_entry2], topo: VcpuTopology) -> u64 {
    let vendor = vendor(entries);
    let count = u32::from(topo.cpu_count.max(1));
    let apic_id = u32::from(topo.cpu_id);
    for e in entries.iter_mut() {
        match e.function {
            0x1 => {
                // EBX: [31:24] initial APIC id, [23:16] logical processors
                // per package, [15:8] CLFLUSH size (kept), [7:0] brand (kept).
                e.ebx = (e.ebx & 0x0000_ffff) | (apic_id << 24) | ((count & 0xff) << 16);
                e.ecx |= HYPERVISOR_BIT;
                if topo.tsc_deadline {
                    e.ecx |= TSC_DEADLINE_BIT;
                }
                if count > 1 {
                    e.edx |= HTT_BIT;
                } else {
                    e.edx &= !HTT_BIT;
                }
            }
            0x4 if vendor == Vendor::Intel => {
                // Deterministic cache parameters: EAX[31:26] cores per
                // package - 1, EAX[25:14] threads sharing this cache - 1.
                let level = (e.eax >> 5) & 0x7;
                let sharing = if level >= 3 { count - 1 } else { 0 };
                e.eax = (e.eax & 0x3fff) | ((count - 1) << 26) | ((sharing & 0xfff) << 14);
            }
            0xa => {
                // No virtual PMU.
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
            0xb | 0x1f => {
                // Extended topology: level 0 = SMT (1 thread per core),
                // level 1 = core (all vCPUs in one package).
                e.edx = apic_id;
                match e.index {
                    0 => {
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = 1 << 8;
                    }
                    1 => {
                        e.eax = id_bits(count);
                        e.ebx = count;
                        e.ecx = 1 | (2 << 8);
                    }
                    n => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = n & 0xff;
                    }
                }
            }
            0x8000_0008 if vendor == Vendor::Amd => {
                // ECX[7:0] cores - 1, ECX[15:12] APIC id bits for cores.
                e.ecx = (e.ecx & !0xf0ff) | (id_bits(count) << 12) | ((count - 1) & 0xff);
            }
            0x8000_001e if vendor == Vendor::Amd => {
                // Extended APIC id; one thread per core; node 0.
                e.eax = apic_id;
                e.ebx = apic_id & 0xff;
                e.ecx = 0;
            }
            _ => {}
        }
    }
    normalize_xsave(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ..Default::default()
        }
    }

    fn with_vendor(sig: &[u8; 12]) -> kvm_cpuid_entry2 {
        let word = |i: usize| u32::from_le_bytes([sig[i], sig[i + 1], sig[i + 2], sig[i + 3]]);
        kvm_cpuid_entry2 {
            function: 0,
            ebx: word(0),
            edx: word(4),
            ecx: word(8),
            ..Default::default()
        }
    }

    fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> kvm_cpuid_entry2 {
        *entries
            .iter()
            .find(|e| e.function == function && e.index == index)
            .unwrap()
    }

    fn topo(cpu_id: u8, cpu_count: u8) -> VcpuTopology {
        VcpuTopology {
            cpu_id,
            cpu_count,
            tsc_deadline: true,
        }
    }

    #[test]
    fn detects_vendor() {
        assert_eq!(vendor(&[with_vendor(b"GenuineIntel")]), Vendor::Intel);
        assert_eq!(vendor(&[with_vendor(b"AuthenticAMD")]), Vendor::Amd);
        assert_eq!(vendor(&[with_vendor(b"KVMKVMKVM\0\0\0")]), Vendor::Other);
        assert_eq!(vendor(&[]), Vendor::Other);
    }

    #[test]
    fn leaf1_has_apic_id_hypervisor_and_htt() {
        let mut e = vec![with_vendor(b"GenuineIntel"), leaf(1, 0)];
        e[1].ebx = 0x0000_0800;
        filter_cpuid(&mut e, topo(3, 4));
        let l1 = find(&e, 1, 0);
        assert_eq!(l1.ebx >> 24, 3);
        assert_eq!((l1.ebx >> 16) & 0xff, 4);
        assert_eq!(l1.ebx & 0xffff, 0x0800, "CLFLUSH size kept");
        assert_ne!(l1.ecx & HYPERVISOR_BIT, 0);
        assert_ne!(l1.ecx & TSC_DEADLINE_BIT, 0);
        assert_ne!(l1.edx & HTT_BIT, 0);

        let mut single = vec![leaf(1, 0)];
        single[0].edx = HTT_BIT;
        filter_cpuid(&mut single, topo(0, 1));
        assert_eq!(single[0].edx & HTT_BIT, 0);
    }

    #[test]
    fn extended_topology_levels() {
        let mut e = vec![
            with_vendor(b"GenuineIntel"),
            leaf(0xb, 0),
            leaf(0xb, 1),
            leaf(0xb, 2),
        ];
        filter_cpuid(&mut e, topo(1, 3));
        let smt = find(&e, 0xb, 0);
        assert_eq!((smt.eax, smt.ebx, smt.ecx >> 8, smt.edx), (0, 1, 1, 1));
        let core = find(&e, 0xb, 1);
        assert_eq!((core.eax, core.ebx, core.ecx >> 8, core.edx), (2, 3, 2, 1));
        let invalid = find(&e, 0xb, 2);
        assert_eq!((invalid.ebx, invalid.ecx >> 8), (0, 0));
    }

    #[test]
    fn intel_cache_leaf_counts_cores() {
        let mut e = vec![with_vendor(b"GenuineIntel"), leaf(4, 0), leaf(4, 3)];
        e[1].eax = (1 << 5) | 0x1; // L1 data
        e[2].eax = (3 << 5) | 0x3; // L3 unified
        filter_cpuid(&mut e, topo(0, 2));
        assert_eq!(find(&e, 4, 0).eax >> 26, 1);
        assert_eq!((find(&e, 4, 0).eax >> 14) & 0xfff, 0);
        assert_eq!((find(&e, 4, 3).eax >> 14) & 0xfff, 1);
        assert_eq!(find(&e, 4, 3).eax & 0x3fff, (3 << 5) | 0x3);
    }

    #[test]
    fn amd_core_count_and_pmu_cleared() {
        let mut e = vec![
            with_vendor(b"AuthenticAMD"),
            leaf(0x8000_0008, 0),
            leaf(0x8000_001e, 0),
            leaf(0xa, 0),
        ];
        e[3].eax = 0x0703_0802;
        filter_cpuid(&mut e, topo(1, 2));
        assert_eq!(find(&e, 0x8000_0008, 0).ecx & 0xff, 1);
        assert_eq!((find(&e, 0x8000_0008, 0).ecx >> 12) & 0xf, 1);
        assert_eq!(find(&e, 0x8000_001e, 0).eax, 1);
        assert_eq!(find(&e, 0xa, 0).eax, 0);
    }

    #[test]
    fn kvm_paravirt_leaves_pass_through() {
        let mut e = vec![
            leaf(KVM_CPUID_SIGNATURE, 0),
            leaf(KVM_CPUID_SIGNATURE + 1, 0),
        ];
        e[0].ebx = 0x4b4d_564b; // "KVMK"
        e[1].eax = 0x0100_00fb; // kvmclock & co.
        let before = e.clone();
        filter_cpuid(&mut e, topo(0, 2));
        assert_eq!(e[0].ebx, before[0].ebx);
        assert_eq!(e[1].eax, before[1].eax);
    }

    #[test]
    fn xsave_leaf_is_normalized_with_the_rest() {
        // AVX offered, sub-leaf 0 EBX left at KVM's size for XCR0 = x87.
        let mut e = vec![
            with_vendor(b"AuthenticAMD"),
            leaf(1, 0),
            leaf(0xd, 0),
            leaf(0xd, 2),
        ];
        e[1].ecx = (1 << 26) | (1 << 28);
        (e[2].eax, e[2].ebx, e[2].ecx) = (0x7, 576, 832);
        (e[3].eax, e[3].ebx) = (256, 576);
        assert_eq!(filter_cpuid(&mut e, topo(0, 1)), 0x7);
        assert_eq!(find(&e, 0xd, 0).ebx, 832);
    }

    #[test]
    fn id_bits_rounds_up() {
        assert_eq!(id_bits(1), 0);
        assert_eq!(id_bits(2), 1);
        assert_eq!(id_bits(3), 2);
        assert_eq!(id_bits(4), 2);
        assert_eq!(id_bits(5), 3);
    }
}
