//! Initial vCPU register state for each supported entry mode.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::gdt::{self, segment_from_gdt};
use super::layout::{
    BOOT_GDT_START, BOOT_IDT_START, BOOT_STACK_POINTER, PDE_START, PDPTE_START, PML4_START,
};

const X86_CR0_PE: u64 = 0x1;
const X86_CR0_ET: u64 = 0x10;
const X86_CR0_PG: u64 = 0x8000_0000;
const X86_CR4_PAE: u64 = 0x20;
const EFER_LME: u64 = 0x100;
const EFER_LMA: u64 = 0x400;

/// Where and how the boot vCPU starts executing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEntry {
    /// PVH: 32-bit protected mode, paging off, `%ebx` = start_info address.
    Pvh {
        /// Guest physical entry point (from the kernel's PVH ELF note).
        entry: u64,
        /// Guest physical address of the `hvm_start_info` structure.
        start_info: u64,
    },
    /// 64-bit long mode with the first 1 GiB identity mapped,
    /// `%rsi` = Linux `boot_params` (zero page) address.
    Linux64 {
        /// Guest physical (= virtual) entry point.
        entry: u64,
        /// Guest physical address of the zero page.
        boot_params: u64,
    },
    /// 16-bit real mode at `cs:ip` (used for tiny hand-made guests).
    RealMode {
        /// Code segment (base = `cs << 4`).
        cs: u16,
        /// Instruction pointer.
        ip: u16,
    },
}

/// Errors writing boot tables into guest memory.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    /// The GDT/IDT or page tables could not be written.
    #[error("cannot write the boot {0} into guest memory")]
    WriteTable(&'static str, #[source] vm_memory::GuestMemoryError),
}

fn gdt_for(entry: &BootEntry) -> [u64; 4] {
    match entry {
        BootEntry::Pvh { .. } => [0, gdt::CODE32, gdt::DATA32, gdt::TSS],
        _ => [0, gdt::CODE64, gdt::DATA, gdt::TSS],
    }
}

/// Writes the GDT, an empty IDT and (for long mode) identity-mapping page
/// tables into guest memory. Real mode needs nothing.
pub fn write_boot_tables(mem: &GuestMemoryMmap, entry: &BootEntry) -> Result<(), RegsError> {
    if matches!(entry, BootEntry::RealMode { .. }) {
        return Ok(());
    }
    for (i, desc) in gdt_for(entry).iter().enumerate() {
        mem.write_obj(*desc, GuestAddress(BOOT_GDT_START + 8 * i as u64))
            .map_err(|e| RegsError::WriteTable("GDT", e))?;
    }
    mem.write_obj(0u64, GuestAddress(BOOT_IDT_START))
        .map_err(|e| RegsError::WriteTable("IDT", e))?;
    if let BootEntry::Linux64 { .. } = entry {
        write_identity_page_tables(mem).map_err(|e| RegsError::WriteTable("page tables", e))?;
    }
    Ok(())
}

/// Identity-maps the first 1 GiB with 2 MiB pages.
fn write_identity_page_tables(mem: &GuestMemoryMmap) -> Result<(), vm_memory::GuestMemoryError> {
    mem.write_obj(PDPTE_START | 0x03, GuestAddress(PML4_START))?;
    mem.write_obj(PDE_START | 0x03, GuestAddress(PDPTE_START))?;
    for i in 0..512u64 {
        mem.write_obj((i << 21) | 0x83, GuestAddress(PDE_START + i * 8))?;
    }
    Ok(())
}

/// Special registers for `entry`, starting from the vCPU's current ones.
pub fn boot_sregs(mut sregs: kvm_sregs, entry: &BootEntry) -> kvm_sregs {
    if let BootEntry::RealMode { cs, .. } = *entry {
        sregs.cs.selector = cs;
        sregs.cs.base = u64::from(cs) << 4;
        return sregs;
    }
    let table = gdt_for(entry);
    let code = segment_from_gdt(table[1], 1);
    let data = segment_from_gdt(table[2], 2);
    let tss = segment_from_gdt(table[3], 3);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (table.len() * 8 - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    match entry {
        BootEntry::Pvh { .. } => {
            sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        _ => {
            sregs.cr3 = PML4_START;
            sregs.cr4 |= X86_CR4_PAE;
            sregs.cr0 |= X86_CR0_PE | X86_CR0_ET | X86_CR0_PG;
            sregs.efer |= EFER_LME | EFER_LMA;
        }
    }
    sregs
}

/// General-purpose registers for `entry`.
pub fn boot_regs(entry: &BootEntry) -> kvm_regs {
    let mut regs = kvm_regs {
        rflags: 0x2,
        ..Default::default()
    };
    match *entry {
        BootEntry::Pvh { entry, start_info } => {
            regs.rip = entry;
            regs.rbx = start_info;
        }
        BootEntry::Linux64 { entry, boot_params } => {
            regs.rip = entry;
            regs.rsp = BOOT_STACK_POINTER;
            regs.rbp = BOOT_STACK_POINTER;
            regs.rsi = boot_params;
        }
        BootEntry::RealMode { ip, .. } => {
            regs.rip = u64::from(ip);
        }
    }
    regs
}

/// FPU state at reset: x87 control word and MXCSR defaults.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvh_is_protected_mode_without_paging() {
        let entry = BootEntry::Pvh {
            entry: 0x100_0000,
            start_info: 0x6000,
        };
        let sregs = boot_sregs(kvm_sregs::default(), &entry);
        assert_eq!(sregs.cr0 & X86_CR0_PE, X86_CR0_PE);
        assert_eq!(sregs.cr0 & X86_CR0_PG, 0);
        assert_eq!(sregs.efer, 0);
        assert_eq!(sregs.cs.db, 1);
        assert_eq!(sregs.cs.selector, 8);
        let regs = boot_regs(&entry);
        assert_eq!((regs.rip, regs.rbx, regs.rflags), (0x100_0000, 0x6000, 2));
    }

    #[test]
    fn linux64_enables_long_mode_and_paging() {
        let entry = BootEntry::Linux64 {
            entry: 0x100_0200,
            boot_params: 0x7000,
        };
        let sregs = boot_sregs(kvm_sregs::default(), &entry);
        assert_eq!(sregs.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(sregs.cr0 & X86_CR0_PG, X86_CR0_PG);
        assert_eq!(sregs.cr3, PML4_START);
        assert_eq!(sregs.cs.l, 1);
        assert_eq!(boot_regs(&entry).rsi, 0x7000);
    }

    #[test]
    fn long_mode_page_tables_identity_map_first_gib() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        let entry = BootEntry::Linux64 {
            entry: 0,
            boot_params: 0,
        };
        write_boot_tables(&mem, &entry).unwrap();
        let pde_last: u64 = mem.read_obj(GuestAddress(PDE_START + 511 * 8)).unwrap();
        assert_eq!(pde_last, (511 << 21) | 0x83);
        let gdt1: u64 = mem.read_obj(GuestAddress(BOOT_GDT_START + 8)).unwrap();
        assert_eq!(gdt1, gdt::CODE64);
    }
}
