use super::*;

fn leaf(function: u32, index: u32, eax: u32, ebx: u32, ecx: u32, edx: u32) -> kvm_cpuid_entry2 {
    kvm_cpuid_entry2 {
        function,
        index,
        eax,
        ebx,
        ecx,
        edx,
        ..Default::default()
    }
}

fn get(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> kvm_cpuid_entry2 {
    *find(entries, function, index).expect("leaf present")
}

/// What `KVM_GET_SUPPORTED_CPUID` returned in the test host (QEMU TCG
/// `-cpu max`, kvm-amd), except sub-leaf 0 EBX, which KVM had set to the
/// size for XCR0 = x87 only (576) when the guest read it.
fn test_host_table() -> Vec<kvm_cpuid_entry2> {
    vec![
        leaf(1, 0, 0x0006_0fb1, 0x0000_0800, 0x76f8_3203, 0x0f8b_fbfd),
        leaf(7, 0, 0, 0x0198_03ab, 0x0001_020c, 0x2000_0000),
        leaf(XSAVE_LEAF, 0, 0x207, 576, 0xa88, 0),
        leaf(XSAVE_LEAF, 1, 0x5, 0, 0, 0),
        leaf(XSAVE_LEAF, 2, 0x100, 0x240, 0, 0),
        leaf(XSAVE_LEAF, 9, 0x8, 0xa80, 0, 0),
    ]
}

/// A server CPU's table: AVX, MPX, AVX-512, PKRU and AMX in XCR0, all
/// their flags, XSAVEC and XSAVES offered.
fn server_table() -> Vec<kvm_cpuid_entry2> {
    let avx = 1 << 28;
    let xsave = 1 << 26;
    let mpx_avx512f = (1 << 14) | (1 << 16);
    let pku = 1 << 3;
    let amx_tile = 1 << 24;
    vec![
        leaf(1, 0, 0, 0, avx | xsave, 0),
        leaf(7, 0, 0, mpx_avx512f, pku, amx_tile),
        leaf(XSAVE_LEAF, 0, 0x6_02ff, 0, 0, 0),
        leaf(XSAVE_LEAF, 1, 0xf, 0, 0, 0),
        leaf(XSAVE_LEAF, 2, 256, 576, 0, 0),
        leaf(XSAVE_LEAF, 3, 64, 960, 0, 0),
        leaf(XSAVE_LEAF, 4, 64, 1024, 0, 0),
        leaf(XSAVE_LEAF, 5, 64, 1088, 0, 0),
        leaf(XSAVE_LEAF, 6, 512, 1152, 0, 0),
        leaf(XSAVE_LEAF, 7, 1024, 1664, 0, 0),
        leaf(XSAVE_LEAF, 9, 8, 2688, 0, 0),
        leaf(XSAVE_LEAF, 17, 64, 2752, 0, 0),
        leaf(XSAVE_LEAF, 18, 8192, 2816, COMPONENT_ECX_ALIGNED, 0),
    ]
}

/// The guest kernel's own check (Linux `paranoid_xstate_size_valid`,
/// standard format): the last enabled component's offset + size, from the
/// per-component sub-leaves, must equal sub-leaf 0 EBX.
fn kernel_computed_size(entries: &[kvm_cpuid_entry2], xcr0: u64) -> u32 {
    let mut size = 576;
    for i in 2..64 {
        if xcr0 & (1 << i) != 0 {
            let e = get(entries, XSAVE_LEAF, i);
            assert!(e.eax > 0, "component {i} enabled but its sub-leaf is empty");
            size = e.ebx + e.eax;
        }
    }
    size
}

/// Sub-leaf 0's XCR0 with the components whose flags the kernel checks.
fn kernel_enabled_xcr0(entries: &[kvm_cpuid_entry2]) -> u64 {
    let l1 = get(entries, 1, 0);
    let l7 = get(entries, 7, 0);
    let mut xcr0 = offered_xcr0(entries);
    let flags: [(u64, bool); 5] = [
        (0x4, l1.ecx & (1 << 28) != 0),
        (0x18, l7.ebx & (1 << 14) != 0),
        (0xe0, l7.ebx & (1 << 16) != 0),
        (0x200, l7.ecx & (1 << 3) != 0),
        (0x6_0000, l7.edx & (1 << 24) != 0),
    ];
    for (bits, flag) in flags {
        if !flag {
            xcr0 &= !bits;
        }
    }
    xcr0
}

#[test]
fn test_host_table_sizes_match_the_offered_xcr0() {
    let mut e = test_host_table();
    let xcr0 = normalize_xsave(&mut e);
    assert_eq!(xcr0, 0x207, "x87, SSE, AVX, PKRU");
    assert_eq!(offered_xcr0(&e), xcr0);
    assert_eq!(kernel_enabled_xcr0(&e), xcr0);
    let sub0 = get(&e, XSAVE_LEAF, 0);
    assert_eq!(sub0.ebx, 2696, "was 576: the warning's kernel_size");
    assert_eq!(sub0.ebx, kernel_computed_size(&e, xcr0));
    assert_eq!(sub0.ecx, 2696);
    let sub1 = get(&e, XSAVE_LEAF, 1);
    assert_eq!((sub1.eax, sub1.ebx, sub1.ecx, sub1.edx), (0x5, 0, 0, 0));
    assert_eq!(get(&e, XSAVE_LEAF, 2).eax, 0x100, "AVX sub-leaf kept");
    assert_eq!(get(&e, XSAVE_LEAF, 9).ebx, 0xa80, "PKRU sub-leaf kept");
}

#[test]
fn server_table_offers_everything_with_consistent_sizes() {
    let mut e = server_table();
    let xcr0 = normalize_xsave(&mut e);
    assert_eq!(xcr0, 0x6_02ff);
    assert_eq!(kernel_enabled_xcr0(&e), xcr0);
    let sub0 = get(&e, XSAVE_LEAF, 0);
    assert_eq!(sub0.ebx, 2816 + 8192);
    assert_eq!(sub0.ebx, kernel_computed_size(&e, xcr0));
    assert_eq!(sub0.ecx, sub0.ebx);
    // Compacted: 576 + 256 + 64 + 64 + 64 + 512 + 1024 + 8 = 2568, + 64
    // (XTILECFG) = 2632, aligned to 2688 for XTILEDATA, + 8192.
    assert_eq!(get(&e, XSAVE_LEAF, 1).ebx, 2688 + 8192);
}

#[test]
fn a_component_without_its_flag_is_not_offered() {
    let mut e = server_table();
    // No AVX512F flag: the kernel would not enable opmask/ZMM state.
    find_mut(&mut e, 7, 0).expect("leaf 7").ebx &= !(1 << 16);
    let xcr0 = normalize_xsave(&mut e);
    assert_eq!(xcr0 & 0xe0, 0);
    assert_eq!(xcr0, 0x6_021f);
    for i in 5..=7 {
        let s = get(&e, XSAVE_LEAF, i);
        assert_eq!((s.eax, s.ebx, s.ecx, s.edx), (0, 0, 0, 0), "sub-leaf {i}");
    }
    assert_eq!(get(&e, XSAVE_LEAF, 0).ebx, kernel_computed_size(&e, xcr0));
    // Compacted size no longer counts the AVX-512 components.
    // 576 + 256 + 64 + 64 + 8 + 64 = 1032, aligned to 1088, + 8192.
    assert_eq!(get(&e, XSAVE_LEAF, 1).ebx, 1088 + 8192);
}

#[test]
fn a_flag_without_its_component_is_cleared() {
    let mut e = test_host_table();
    // MPX and AVX512F flags, AMX-TILE flag: none of their components is
    // in sub-leaf 0.
    find_mut(&mut e, 7, 0).expect("leaf 7").ebx |= (1 << 14) | (1 << 16);
    find_mut(&mut e, 7, 0).expect("leaf 7").edx |= 1 << 24;
    normalize_xsave(&mut e);
    let l7 = get(&e, 7, 0);
    assert_eq!(l7.ebx & ((1 << 14) | (1 << 16)), 0);
    assert_eq!(l7.edx & (1 << 24), 0);
    assert_eq!(l7.ebx, 0x0198_03ab, "other leaf 7 flags kept");
    assert_ne!(l7.ecx & (1 << 3), 0, "PKU stays: PKRU is offered");
}

#[test]
fn a_partial_group_or_a_missing_sub_leaf_is_not_offered() {
    let mut e = server_table();
    // Hi16_ZMM missing from XCR0: the AVX-512 group is incomplete.
    find_mut(&mut e, XSAVE_LEAF, 0).expect("sub-leaf 0").eax &= !0x80;
    // No sub-leaf describes PKRU.
    e.retain(|x| !(x.function == XSAVE_LEAF && x.index == 9));
    let xcr0 = normalize_xsave(&mut e);
    assert_eq!(xcr0, 0x6_001f);
    assert_eq!(get(&e, 7, 0).ecx & (1 << 3), 0, "PKU cleared");
    assert_eq!(get(&e, 7, 0).ebx & (1 << 16), 0, "AVX512F cleared");
    assert_eq!(get(&e, XSAVE_LEAF, 0).ebx, kernel_computed_size(&e, xcr0));
}

#[test]
fn without_xsave_leaf_d_is_empty() {
    let mut e = test_host_table();
    find_mut(&mut e, 1, 0).expect("leaf 1").ecx &= !(1 << 26);
    assert_eq!(normalize_xsave(&mut e), 0);
    for x in e.iter().filter(|x| x.function == XSAVE_LEAF) {
        assert_eq!((x.eax, x.ebx, x.ecx, x.edx), (0, 0, 0, 0), "{}", x.index);
    }
    assert_eq!(get(&e, 1, 0).ecx & (1 << 28), 0, "AVX cleared");
    assert_eq!(get(&e, 7, 0).ecx & (1 << 3), 0, "PKU cleared");

    // Sub-leaf 0 without SSE: no usable XSAVE either.
    let mut e = test_host_table();
    find_mut(&mut e, XSAVE_LEAF, 0).expect("sub-leaf 0").eax = 0x1;
    assert_eq!(normalize_xsave(&mut e), 0);
    assert_eq!(get(&e, 1, 0).ecx & (1 << 26), 0, "XSAVE cleared");
}

#[test]
fn supervisor_state_only_with_xsaves() {
    let mut e = test_host_table();
    let sub1 = find_mut(&mut e, XSAVE_LEAF, 1).expect("sub-leaf 1");
    sub1.ecx = 1 << 11; // CET user state, but no XSAVES
    e.push(leaf(XSAVE_LEAF, 11, 16, 0, 1, 0));
    normalize_xsave(&mut e);
    let sub1 = get(&e, XSAVE_LEAF, 1);
    assert_eq!((sub1.ebx, sub1.ecx, sub1.edx), (0, 0, 0));
    let s = get(&e, XSAVE_LEAF, 11);
    assert_eq!((s.eax, s.ecx), (0, 0), "component 11 zeroed");

    let mut e = server_table();
    find_mut(&mut e, XSAVE_LEAF, 1).expect("sub-leaf 1").ecx = 1 << 11;
    e.push(leaf(XSAVE_LEAF, 11, 64, 0, 1, 0));
    normalize_xsave(&mut e);
    let sub1 = get(&e, XSAVE_LEAF, 1);
    assert_eq!(sub1.ecx, 1 << 11);
    // In bit order: 2568 up to PKRU, + 64 (component 11) + 64 (XTILECFG)
    // = 2696, aligned to 2752 for XTILEDATA, + 8192.
    assert_eq!(sub1.ebx, 2752 + 8192, "XSS component counted");
    assert_eq!(get(&e, XSAVE_LEAF, 11).eax, 64);
    assert_eq!(
        get(&e, XSAVE_LEAF, 0).ebx,
        2816 + 8192,
        "supervisor state is not in the standard size"
    );
}

#[test]
fn a_table_without_leaf_d_is_left_alone() {
    let mut e = vec![leaf(1, 0, 0, 0, 1 << 28, 0)];
    assert_eq!(normalize_xsave(&mut e), 0);
    assert_eq!(e[0].ecx, 1 << 28);
    assert_eq!(offered_xcr0(&e), 0);
}
