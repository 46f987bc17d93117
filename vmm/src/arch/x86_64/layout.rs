//! Guest physical memory layout of an x86_64 microVM.
//!
//! Low memory (below 1 MiB) holds the boot structures; the kernel is loaded
//! at or above [`HIMEM_START`]; the 768 MiB below 4 GiB are left as an MMIO
//! hole for devices (IOAPIC, LAPIC, virtio-mmio).

/// Guest address of the GDT used at boot.
pub const BOOT_GDT_START: u64 = 0x500;
/// Guest address of the (empty) IDT used at boot.
pub const BOOT_IDT_START: u64 = 0x520;
/// PVH `hvm_start_info` structure.
pub const PVH_INFO_START: u64 = 0x6000;
/// PVH module list (the initrd), right after the start info.
pub const PVH_MODLIST_START: u64 = 0x6040;
/// PVH memory map (e820-style table).
pub const PVH_MEMMAP_START: u64 = 0x7000;
/// Linux boot protocol "zero page" (`boot_params`), used for bzImage boots.
pub const ZERO_PAGE_START: u64 = 0x7000;
/// Initial stack pointer for the boot vCPU.
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// Identity-mapping page tables used for 64-bit (bzImage) boots.
pub const PML4_START: u64 = 0x9000;
/// Page directory pointer table.
pub const PDPTE_START: u64 = 0xa000;
/// Page directory (2 MiB pages covering the first 1 GiB).
pub const PDE_START: u64 = 0xb000;
/// Kernel command line.
pub const CMDLINE_START: u64 = 0x2_0000;
/// Maximum kernel command line size, NUL included (Linux `COMMAND_LINE_SIZE`).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the Extended BIOS Data Area; base memory ends here.
pub const EBDA_START: u64 = 0x9_fc00;
/// The MP table lives in the last KiB of base memory, where Linux scans.
pub const MPTABLE_START: u64 = EBDA_START;
/// Kernel load address (1 MiB): everything below is boot structures.
pub const HIMEM_START: u64 = 0x10_0000;

/// Size of the MMIO hole below 4 GiB.
pub const MMIO_GAP_SIZE: u64 = 768 << 20;
/// Start of the MMIO hole below 4 GiB.
pub const MMIO_GAP_START: u64 = (1 << 32) - MMIO_GAP_SIZE;
/// End of the MMIO hole (4 GiB).
pub const MMIO_GAP_END: u64 = 1 << 32;
/// Address where virtio-mmio devices are placed (start of the MMIO hole),
/// one `vmrun_virtio::mmio::MMIO_WINDOW_SIZE` window each.
pub const VIRTIO_MMIO_START: u64 = MMIO_GAP_START;
/// First IRQ (GSI) handed out to virtio-mmio devices.
pub const VIRTIO_IRQ_START: u32 = 5;
/// Last IRQ (GSI) routable through the IOAPIC.
pub const IRQ_MAX: u32 = 23;

/// Base of the IOAPIC's MMIO window (as KVM's in-kernel IOAPIC uses it).
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Base of the local APIC's MMIO window.
pub const APIC_ADDR: u32 = 0xfee0_0000;

/// Three pages KVM needs for the TSS on Intel VMX, placed inside the MMIO hole.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
/// One page KVM needs for the real-mode identity map (just below the TSS).
pub const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;

/// I/O port of the first serial port (COM1).
pub const SERIAL_PORT_BASE: u16 = 0x3f8;
/// Number of ports of an 8250 UART.
pub const SERIAL_PORT_SIZE: u16 = 8;
/// IRQ of COM1.
pub const SERIAL_IRQ: u32 = 4;
/// I/O port base of the i8042 keyboard controller (data port 0x60 .. command 0x64).
pub const I8042_PORT_BASE: u16 = 0x60;
/// Number of ports the i8042 decodes (0x60..=0x64).
pub const I8042_PORT_SIZE: u16 = 5;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtio_devices_start_where_vmm_readme_says() {
        // vmm/README.md and the guest's `virtio_mmio.device=` words give it.
        assert_eq!(VIRTIO_MMIO_START, 0xd000_0000);
        assert!(VIRTIO_MMIO_START < u64::from(IOAPIC_ADDR));
    }
}
