//! Global descriptor table entries and their KVM segment form.

use kvm_bindings::kvm_segment;

/// Encodes a GDT descriptor from its flags (access byte in bits 0..8,
/// G/DB/L/AVL in bits 12..16), base and limit.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0x0000_f0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// 32-bit flat code segment (PVH entry runs in protected mode).
pub const CODE32: u64 = gdt_entry(0xc09b, 0, 0xffff_ffff);
/// 64-bit code segment (long-mode entry).
pub const CODE64: u64 = gdt_entry(0xa09b, 0, 0xfffff);
/// Flat read/write data segment.
pub const DATA: u64 = gdt_entry(0xc093, 0, 0xfffff);
/// 32-bit flat data segment with a 4 GiB limit.
pub const DATA32: u64 = gdt_entry(0xc093, 0, 0xffff_ffff);
/// Busy 64-bit TSS (KVM needs a usable TR even though it is never used).
pub const TSS: u64 = gdt_entry(0x008b, 0, 0x67);

fn bits(entry: u64, mask: u64, shift: u32) -> u8 {
    ((entry & mask) >> shift) as u8
}

fn base(entry: u64) -> u64 {
    ((entry & 0xff00_0000_0000_0000) >> 32)
        | ((entry & 0x0000_00ff_0000_0000) >> 16)
        | ((entry & 0x0000_0000_ffff_0000) >> 16)
}

fn limit(entry: u64) -> u32 {
    let raw = (((entry & 0x000f_0000_0000_0000) >> 32) | (entry & 0x0000_0000_0000_ffff)) as u32;
    if bits(entry, 0x0080_0000_0000_0000, 55) == 0 {
        raw
    } else {
        (raw << 12) | 0xfff
    }
}

/// The KVM segment register value for GDT entry `entry` at index `index`.
pub fn segment_from_gdt(entry: u64, index: u8) -> kvm_segment {
    let present = bits(entry, 0x0000_8000_0000_0000, 47);
    kvm_segment {
        base: base(entry),
        limit: limit(entry),
        selector: u16::from(index) * 8,
        type_: bits(entry, 0x0000_0f00_0000_0000, 40),
        present,
        dpl: bits(entry, 0x0000_6000_0000_0000, 45),
        db: bits(entry, 0x0040_0000_0000_0000, 54),
        s: bits(entry, 0x0000_1000_0000_0000, 44),
        l: bits(entry, 0x0020_0000_0000_0000, 53),
        g: bits(entry, 0x0080_0000_0000_0000, 55),
        avl: bits(entry, 0x0010_0000_0000_0000, 52),
        padding: 0,
        unusable: u8::from(present == 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code32_segment_is_flat_protected_mode() {
        let seg = segment_from_gdt(CODE32, 1);
        assert_eq!(seg.selector, 8);
        assert_eq!(seg.base, 0);
        assert_eq!(seg.limit, 0xffff_ffff);
        assert_eq!(seg.type_, 0xb);
        assert_eq!((seg.present, seg.db, seg.l, seg.g, seg.s), (1, 1, 0, 1, 1));
        assert_eq!(seg.unusable, 0);
    }

    #[test]
    fn code64_segment_is_long_mode() {
        let seg = segment_from_gdt(CODE64, 1);
        assert_eq!((seg.l, seg.db), (1, 0));
        assert_eq!(seg.limit, 0xffff_ffff);
    }

    #[test]
    fn null_entry_is_unusable() {
        assert_eq!(segment_from_gdt(0, 0).unusable, 1);
    }
}
