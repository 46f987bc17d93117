//! CPUID leaf 0xD (XSAVE state components) made consistent with the XCR0
//! features the VMM offers.
//!
//! A guest kernel checks leaf 0xD against itself at boot: Linux sums the
//! per-component sizes and offsets (sub-leaves 2..) of the XCR0 features it
//! enables and compares the total with sub-leaf 0 EBX (or sub-leaf 1 EBX in
//! the compacted format); on a mismatch it prints `XSAVE consistency
//! problem` with a WARNING and runs without XSAVE. It also drops a
//! component whose enabling feature flag (AVX, MPX, AVX512F, PKU, AMX-TILE)
//! is not offered. So the offered XCR0 is narrowed to components that are
//! fully described (flag present, sub-leaf with a size, whole group), every
//! size is recomputed from those components, components not offered are
//! zeroed, and flags whose component is not offered are cleared.

use kvm_bindings::kvm_cpuid_entry2;

/// The XSAVE leaf.
pub const XSAVE_LEAF: u32 = 0xd;
/// Size of the legacy (FXSAVE) region plus the XSAVE header: where the
/// extended components start.
pub const XSAVE_LEGACY_AND_HEADER_SIZE: u32 = 512 + 64;
/// XCR0 bit 0: x87 state, always enabled.
pub const XCR0_X87: u64 = 1 << 0;
/// XCR0 bit 1: SSE state.
pub const XCR0_SSE: u64 = 1 << 1;

/// Leaf 1 ECX: XSAVE/XRSTOR/XSETBV/XGETBV supported.
const LEAF1_ECX_XSAVE: u32 = 1 << 26;
/// Sub-leaf 1 EAX: XSAVEC (compacted format) supported.
const SUBLEAF1_EAX_XSAVEC: u32 = 1 << 1;
/// Sub-leaf 1 EAX: XSAVES (compacted, with supervisor state) supported.
const SUBLEAF1_EAX_XSAVES: u32 = 1 << 3;
/// Component sub-leaf ECX bit 1: aligned to 64 bytes in the compacted format.
const COMPONENT_ECX_ALIGNED: u32 = 1 << 1;

/// A CPUID register of one leaf (sub-leaf 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reg {
    Ecx,
    Ebx,
    Edx,
}

/// A user state component group of XCR0 and the feature flag the guest
/// kernel requires before it enables the group.
struct ComponentGroup {
    /// The group's XCR0 bits (enabled all together or not at all).
    xcr0: u64,
    /// The leaf holding the enabling flag (sub-leaf 0).
    leaf: u32,
    /// The register holding the flag.
    reg: Reg,
    /// The flag.
    bit: u32,
}

/// The extended user components a guest may be offered. Any other XCR0 bit
/// is not offered: the guest kernel could not tell whether it may use it.
const COMPONENT_GROUPS: [ComponentGroup; 5] = [
    // AVX: YMM upper halves.
    ComponentGroup {
        xcr0: 1 << 2,
        leaf: 1,
        reg: Reg::Ecx,
        bit: 1 << 28,
    },
    // MPX: BNDREGS, BNDCSR.
    ComponentGroup {
        xcr0: (1 << 3) | (1 << 4),
        leaf: 7,
        reg: Reg::Ebx,
        bit: 1 << 14,
    },
    // AVX-512: opmask, ZMM_Hi256, Hi16_ZMM.
    ComponentGroup {
        xcr0: (1 << 5) | (1 << 6) | (1 << 7),
        leaf: 7,
        reg: Reg::Ebx,
        bit: 1 << 16,
    },
    // Protection keys: PKRU.
    ComponentGroup {
        xcr0: 1 << 9,
        leaf: 7,
        reg: Reg::Ecx,
        bit: 1 << 3,
    },
    // AMX: XTILECFG, XTILEDATA.
    ComponentGroup {
        xcr0: (1 << 17) | (1 << 18),
        leaf: 7,
        reg: Reg::Edx,
        bit: 1 << 24,
    },
];

fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> Option<&kvm_cpuid_entry2> {
    entries
        .iter()
        .find(|e| e.function == function && e.index == index)
}

fn find_mut(
    entries: &mut [kvm_cpuid_entry2],
    function: u32,
    index: u32,
) -> Option<&mut kvm_cpuid_entry2> {
    entries
        .iter_mut()
        .find(|e| e.function == function && e.index == index)
}

fn reg(e: &kvm_cpuid_entry2, reg: Reg) -> u32 {
    match reg {
        Reg::Ecx => e.ecx,
        Reg::Ebx => e.ebx,
        Reg::Edx => e.edx,
    }
}

fn reg_mut(e: &mut kvm_cpuid_entry2, reg: Reg) -> &mut u32 {
    match reg {
        Reg::Ecx => &mut e.ecx,
        Reg::Ebx => &mut e.ebx,
        Reg::Edx => &mut e.edx,
    }
}

fn pair(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

fn split(value: u64) -> (u32, u32) {
    // Truncation intended: the low and the high half.
    (value as u32, (value >> 32) as u32)
}

/// The set bits of `mask` from bit 2 up (the extended components).
fn extended_components(mask: u64) -> impl Iterator<Item = u32> {
    (2..64).filter(move |i| mask & (1u64 << i) != 0)
}

/// Sub-leaf `i`'s size, when it describes a component.
fn component_size(entries: &[kvm_cpuid_entry2], i: u32) -> Option<u32> {
    find(entries, XSAVE_LEAF, i)
        .map(|e| e.eax)
        .filter(|&size| size > 0)
}

/// Size of a standard-format XSAVE area holding the components of `xcr0`:
/// each component sits at its own offset (sub-leaf EBX).
pub fn standard_size(entries: &[kvm_cpuid_entry2], xcr0: u64) -> u32 {
    extended_components(xcr0)
        .filter_map(|i| find(entries, XSAVE_LEAF, i))
        .map(|e| e.ebx.saturating_add(e.eax))
        .fold(XSAVE_LEGACY_AND_HEADER_SIZE, u32::max)
}

/// Size of a compacted-format XSAVE area holding the components of `mask`:
/// packed in bit order, each aligned to 64 bytes when its sub-leaf says so.
pub fn compacted_size(entries: &[kvm_cpuid_entry2], mask: u64) -> u32 {
    extended_components(mask)
        .filter_map(|i| find(entries, XSAVE_LEAF, i))
        .fold(XSAVE_LEGACY_AND_HEADER_SIZE, |size, e| {
            let start = if e.ecx & COMPONENT_ECX_ALIGNED != 0 {
                size.saturating_add(63) & !63
            } else {
                size
            };
            start.saturating_add(e.eax)
        })
}

/// The XCR0 features the table can offer consistently: x87 and SSE (or
/// nothing when leaf 1 has no XSAVE, or sub-leaf 0 lacks either), plus each
/// whole component group whose flag is set and whose sub-leaves have sizes.
fn consistent_xcr0(entries: &[kvm_cpuid_entry2]) -> u64 {
    let has_xsave = find(entries, 1, 0).is_some_and(|e| e.ecx & LEAF1_ECX_XSAVE != 0);
    let Some(leaf0) = find(entries, XSAVE_LEAF, 0).filter(|_| has_xsave) else {
        return 0;
    };
    let supported = pair(leaf0.eax, leaf0.edx);
    let base = XCR0_X87 | XCR0_SSE;
    if supported & base != base {
        return 0;
    }
    COMPONENT_GROUPS
        .iter()
        .filter(|g| supported & g.xcr0 == g.xcr0)
        .filter(|g| find(entries, g.leaf, 0).is_some_and(|e| reg(e, g.reg) & g.bit != 0))
        .filter(|g| extended_components(g.xcr0).all(|i| component_size(entries, i).is_some()))
        .fold(base, |xcr0, g| xcr0 | g.xcr0)
}

/// The supervisor components (IA32_XSS) offered: sub-leaf 1 ECX:EDX when
/// XSAVES is offered, narrowed to components whose sub-leaves have sizes.
fn consistent_xss(entries: &[kvm_cpuid_entry2]) -> u64 {
    let Some(sub1) = find(entries, XSAVE_LEAF, 1) else {
        return 0;
    };
    if sub1.eax & SUBLEAF1_EAX_XSAVES == 0 {
        return 0;
    }
    extended_components(pair(sub1.ecx, sub1.edx))
        .filter(|&i| component_size(entries, i).is_some())
        .fold(0, |xss, i| xss | (1u64 << i))
}

/// Rewrites leaf 0xD (and the flags tied to its components) so that every
/// size and component the guest reads agrees with the XCR0 features
/// offered; returns that XCR0 (0 when XSAVE is not offered at all).
///
/// Sub-leaf 0 EBX is the size for the XCR0 currently set: KVM keeps it up
/// to date from the vCPU's XCR0, and the VMM sets that XCR0 to the value
/// returned here before the guest runs, so EBX starts out as that size.
pub fn normalize_xsave(entries: &mut [kvm_cpuid_entry2]) -> u64 {
    if find(entries, XSAVE_LEAF, 0).is_none() {
        return 0;
    }
    let xcr0 = consistent_xcr0(entries);
    let xss = consistent_xss(entries);
    let offered = xcr0 | xss;
    let standard = standard_size(entries, xcr0);
    let compacted = compacted_size(entries, offered);

    for e in entries.iter_mut().filter(|e| e.function == XSAVE_LEAF) {
        match e.index {
            _ if xcr0 == 0 => {
                (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0);
            }
            0 => {
                (e.eax, e.edx) = split(xcr0);
                e.ebx = standard;
                e.ecx = standard;
            }
            1 => {
                (e.ecx, e.edx) = split(xss);
                e.ebx = if e.eax & (SUBLEAF1_EAX_XSAVEC | SUBLEAF1_EAX_XSAVES) != 0 {
                    compacted
                } else {
                    0
                };
            }
            i if i < 64 && offered & (1u64 << i) != 0 => {}
            _ => {
                (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0);
            }
        }
    }

    if xcr0 == 0 {
        if let Some(leaf1) = find_mut(entries, 1, 0) {
            leaf1.ecx &= !LEAF1_ECX_XSAVE;
        }
    }
    for g in COMPONENT_GROUPS.iter().filter(|g| xcr0 & g.xcr0 == 0) {
        if let Some(e) = find_mut(entries, g.leaf, 0) {
            *reg_mut(e, g.reg) &= !g.bit;
        }
    }
    xcr0
}

/// The XCR0 features a (normalized) table offers: sub-leaf 0 EDX:EAX.
pub fn offered_xcr0(entries: &[kvm_cpuid_entry2]) -> u64 {
    find(entries, XSAVE_LEAF, 0).map_or(0, |e| pair(e.eax, e.edx))
}

#[cfg(test)]
#[path = "xsave_tests.rs"]
mod tests;
