//! Intel MultiProcessor Specification 1.4 table, so an ACPI-less Linux finds
//! every vCPU, the IOAPIC and the ISA interrupt routing.
//!
//! The table is built as bytes (little-endian fields, no `unsafe`), then
//! written with vm-memory's checked accessors. The floating pointer goes to
//! the last KiB of base memory ([`MPTABLE_START`]), where Linux scans for it.

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::layout::{APIC_ADDR, IOAPIC_ADDR, IRQ_MAX, MPTABLE_START};

/// Most vCPUs the MP table describes while fitting in 1 KiB of base memory.
pub const MAX_CPUS: u8 = 32;

const MPF_SIZE: usize = 16;
const MPC_HEADER_SIZE: usize = 44;
const MPC_CPU_SIZE: usize = 20;
const MPC_ENTRY_SIZE: usize = 8;

const MP_PROCESSOR: u8 = 0;
const MP_BUS: u8 = 1;
const MP_IOAPIC: u8 = 2;
const MP_INTSRC: u8 = 3;
const MP_LINTSRC: u8 = 4;

const MP_INT: u8 = 0;
const MP_NMI: u8 = 1;
const MP_EXTINT: u8 = 3;

const CPU_ENABLED: u8 = 1;
const CPU_BOOTPROCESSOR: u8 = 2;
const APIC_VERSION: u8 = 0x14;
const IOAPIC_VERSION: u8 = 0x11;
const CPU_SIGNATURE: u32 = 0x600; // family 6
const CPU_FEATURES: u32 = 0x201; // APIC | FPU
const BUS_ID_ISA: u8 = 0;

/// Errors building or writing the MP table.
#[derive(Debug, thiserror::Error)]
pub enum MptableError {
    /// Zero or too many CPUs.
    #[error("the MP table supports 1..={MAX_CPUS} vCPUs, not {0}")]
    CpuCount(u8),
    /// Writing into guest memory failed.
    #[error("cannot write the MP table into guest memory")]
    Write(#[source] vm_memory::GuestMemoryError),
}

fn checksum(bytes: &[u8]) -> u8 {
    let sum = bytes.iter().fold(0u8, |acc, b| acc.wrapping_add(*b));
    0u8.wrapping_sub(sum)
}

/// The IOAPIC's id in the table (after all CPU APIC ids).
pub fn ioapic_id(cpu_count: u8) -> u8 {
    cpu_count.saturating_add(1)
}

fn entries(cpu_count: u8) -> (Vec<u8>, u16) {
    let fixed_entries = 2 + (IRQ_MAX as usize + 1) + 2; // bus, IOAPIC, IRQs, LINTs
    let mut out =
        Vec::with_capacity(usize::from(cpu_count) * MPC_CPU_SIZE + fixed_entries * MPC_ENTRY_SIZE);
    let mut count = 0u16;
    for cpu in 0..cpu_count {
        out.extend_from_slice(&[MP_PROCESSOR, cpu, APIC_VERSION]);
        let flags = CPU_ENABLED | if cpu == 0 { CPU_BOOTPROCESSOR } else { 0 };
        out.push(flags);
        out.extend_from_slice(&CPU_SIGNATURE.to_le_bytes());
        out.extend_from_slice(&CPU_FEATURES.to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
        count += 1;
    }
    out.extend_from_slice(&[MP_BUS, BUS_ID_ISA]);
    out.extend_from_slice(b"ISA   ");
    count += 1;
    let ioapic = ioapic_id(cpu_count);
    out.extend_from_slice(&[MP_IOAPIC, ioapic, IOAPIC_VERSION, 1]);
    out.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    count += 1;
    for irq in 0..=IRQ_MAX as u8 {
        // type, irqtype, irqflag (u16, default polarity/trigger), bus, bus irq, apic, pin
        out.extend_from_slice(&[MP_INTSRC, MP_INT, 0, 0, BUS_ID_ISA, irq, ioapic, irq]);
        count += 1;
    }
    out.extend_from_slice(&[MP_LINTSRC, MP_EXTINT, 0, 0, BUS_ID_ISA, 0, 0, 0]);
    out.extend_from_slice(&[MP_LINTSRC, MP_NMI, 0, 0, BUS_ID_ISA, 0, 0xff, 1]);
    count += 2;
    (out, count)
}

/// Builds the floating pointer followed by the configuration table, for a
/// table placed at guest address `base`.
pub fn build(cpu_count: u8, base: u64) -> Result<Vec<u8>, MptableError> {
    if cpu_count == 0 || cpu_count > MAX_CPUS {
        return Err(MptableError::CpuCount(cpu_count));
    }
    let table_addr = (base + MPF_SIZE as u64) as u32;

    let mut mpf = Vec::with_capacity(MPF_SIZE);
    mpf.extend_from_slice(b"_MP_");
    mpf.extend_from_slice(&table_addr.to_le_bytes());
    mpf.extend_from_slice(&[1, 4, 0, 0, 0, 0, 0, 0]); // length (16-byte units), spec 1.4, checksum, features
    mpf[10] = checksum(&mpf);

    let (body, entry_count) = entries(cpu_count);
    let length = (MPC_HEADER_SIZE + body.len()) as u16;
    let mut mpc = Vec::with_capacity(usize::from(length));
    mpc.extend_from_slice(b"PCMP");
    mpc.extend_from_slice(&length.to_le_bytes());
    mpc.extend_from_slice(&[4, 0]); // spec 1.4, checksum
    mpc.extend_from_slice(b"VMRUN   ");
    mpc.extend_from_slice(b"MICROVM     ");
    mpc.extend_from_slice(&0u32.to_le_bytes()); // oem table pointer
    mpc.extend_from_slice(&0u16.to_le_bytes()); // oem table size
    mpc.extend_from_slice(&entry_count.to_le_bytes());
    mpc.extend_from_slice(&APIC_ADDR.to_le_bytes());
    mpc.extend_from_slice(&0u32.to_le_bytes());
    mpc.extend_from_slice(&body);
    mpc[7] = checksum(&mpc);

    mpf.extend_from_slice(&mpc);
    Ok(mpf)
}

/// Writes the MP table for `cpu_count` vCPUs at [`MPTABLE_START`].
pub fn setup_mptable(mem: &GuestMemoryMmap, cpu_count: u8) -> Result<(), MptableError> {
    let bytes = build(cpu_count, MPTABLE_START)?;
    mem.write_slice(&bytes, GuestAddress(MPTABLE_START))
        .map_err(MptableError::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b))
    }

    #[test]
    fn checksums_are_zero_and_pointer_is_right() {
        for cpus in [1u8, 2, 7, MAX_CPUS] {
            let t = build(cpus, MPTABLE_START).unwrap();
            assert_eq!(&t[0..4], b"_MP_");
            assert_eq!(sum(&t[..MPF_SIZE]), 0, "floating pointer checksum");
            let ptr = u32::from_le_bytes(t[4..8].try_into().unwrap());
            assert_eq!(u64::from(ptr), MPTABLE_START + MPF_SIZE as u64);
            let mpc = &t[MPF_SIZE..];
            assert_eq!(&mpc[0..4], b"PCMP");
            let len = usize::from(u16::from_le_bytes([mpc[4], mpc[5]]));
            assert_eq!(len, mpc.len());
            assert_eq!(sum(mpc), 0, "configuration table checksum");
            assert!(t.len() <= 1024, "fits the last KiB of base memory");
        }
    }

    #[test]
    fn one_processor_entry_per_cpu_with_bsp_first() {
        let cpus = 4u8;
        let t = build(cpus, MPTABLE_START).unwrap();
        let mpc = &t[MPF_SIZE..];
        let count = u16::from_le_bytes([mpc[34], mpc[35]]);
        assert_eq!(count, u16::from(cpus) + 1 + 1 + (IRQ_MAX as u16 + 1) + 2);
        let body = &mpc[MPC_HEADER_SIZE..];
        for cpu in 0..cpus {
            let e = &body[usize::from(cpu) * MPC_CPU_SIZE..];
            assert_eq!(e[0], MP_PROCESSOR);
            assert_eq!(e[1], cpu, "APIC id");
            let bsp = if cpu == 0 { CPU_BOOTPROCESSOR } else { 0 };
            assert_eq!(e[3], CPU_ENABLED | bsp);
        }
        let after_cpus = &body[usize::from(cpus) * MPC_CPU_SIZE..];
        assert_eq!(after_cpus[0], MP_BUS);
        let ioapic = &after_cpus[MPC_ENTRY_SIZE..];
        assert_eq!((ioapic[0], ioapic[1]), (MP_IOAPIC, cpus + 1));
        assert_eq!(
            u32::from_le_bytes(ioapic[4..8].try_into().unwrap()),
            IOAPIC_ADDR
        );
    }

    #[test]
    fn rejects_bad_cpu_counts() {
        assert!(matches!(build(0, 0), Err(MptableError::CpuCount(0))));
        assert!(matches!(
            build(MAX_CPUS + 1, 0),
            Err(MptableError::CpuCount(_))
        ));
    }

    #[test]
    fn written_to_guest_memory() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
        setup_mptable(&mem, 2).unwrap();
        let mut sig = [0u8; 4];
        mem.read_slice(&mut sig, GuestAddress(MPTABLE_START))
            .unwrap();
        assert_eq!(&sig, b"_MP_");
    }
}
