//! Runs the fuzz entry points on pseudo-random and structured inputs.

use crate::fuzz::{fuzz_block_queue, fuzz_fs_queue, fuzz_mmio, fuzz_vsock_queues};
use crate::testing::Rng;

/// Random rings: an avail index and descriptors with small indices/lengths so
/// chains actually get walked, not just rejected at the first check.
fn structured(rng: &mut Rng) -> Vec<u8> {
    let mut m = vec![0u8; 0x1_0000];
    for i in 0..16usize {
        let addr = (rng.next() % 0x2_1000) & !0x3;
        let len = match rng.next() % 4 {
            0 => u32::MAX - (rng.next() % 16) as u32,
            _ => (rng.next() % 0x3000) as u32,
        };
        let flags = (rng.next() % 8) as u16;
        let next = (rng.next() % 20) as u16;
        let d = &mut m[i * 16..i * 16 + 16];
        d[0..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..16].copy_from_slice(&next.to_le_bytes());
    }
    let idx = (rng.next() % 20) as u16;
    m[0x1002..0x1004].copy_from_slice(&idx.to_le_bytes());
    for i in 0..16usize {
        let head = (rng.next() % 18) as u16;
        m[0x1004 + 2 * i..0x1006 + 2 * i].copy_from_slice(&head.to_le_bytes());
    }
    // Plausible block / vsock headers in the data area.
    let hdr = rng.bytes(64);
    m[0x3000..0x3040].copy_from_slice(&hdr);
    m
}

#[test]
fn fuzz_entry_points_survive_random_input() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    for _ in 0..300 {
        let data = structured(&mut rng);
        fuzz_block_queue(&data);
        fuzz_vsock_queues(&data);
        let n = (rng.next() % 0x2000) as usize;
        let raw = rng.bytes(n);
        fuzz_block_queue(&raw);
        fuzz_vsock_queues(&raw);
        fuzz_mmio(&raw);
    }
    fuzz_block_queue(&[]);
    fuzz_vsock_queues(&[]);
    fuzz_mmio(&[]);
}

#[test]
fn fs_entry_point_survives_random_input_and_keeps_a_read_only_share() {
    let rw = tempfile::tempdir().unwrap();
    let ro = tempfile::tempdir().unwrap();
    std::fs::write(ro.path().join("hello.txt"), b"hello").unwrap();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..100 {
        let data = structured(&mut rng);
        fuzz_fs_queue(&data, rw.path(), false);
        fuzz_fs_queue(&data, ro.path(), true);
        let n = (rng.next() % 0x2000) as usize;
        fuzz_fs_queue(&rng.bytes(n), ro.path(), true);
    }
    fuzz_fs_queue(&[], rw.path(), false);
    let names: Vec<_> = std::fs::read_dir(ro.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["hello.txt"]);
    assert_eq!(
        std::fs::read(ro.path().join("hello.txt")).unwrap(),
        b"hello"
    );
}
