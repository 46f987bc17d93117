//! x86_64 machine specifics: memory layout, boot protocols (PVH and the
//! Linux 64-bit zero page), GDT, registers, MSRs, LAPIC, MP table, CPUID
//! (with its XSAVE leaf).

pub mod cpuid;
pub mod gdt;
pub mod lapic;
pub mod layout;
pub mod linux_boot;
pub mod memory_map;
pub mod mptable;
pub mod msrs;
pub mod pvh;
pub mod regs;
pub mod xsave;
