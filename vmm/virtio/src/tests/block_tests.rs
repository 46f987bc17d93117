use std::io::{Read, Seek, SeekFrom, Write};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::block::request::*;
use crate::block::{Block, VIRTIO_BLK_F_RO};
use crate::chain::pop_chain;
use crate::defs::{feature, VIRTIO_RING_F_INDIRECT_DESC};
use crate::mmio::MmioTransport;
use crate::testing::*;

const HDR: u64 = 0x10_0000;
const DATA: u64 = 0x10_1000;
const STATUS: u64 = 0x11_0000;
const SECTORS: u64 = 64;

fn image() -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    let content: Vec<u8> = (0..SECTORS * 512).map(|i| (i % 251) as u8).collect();
    f.write_all(&content).unwrap();
    f
}

fn disk(f: &tempfile::NamedTempFile, read_only: bool) -> Disk {
    Disk {
        file: crate::block::open_image(f.path(), read_only).unwrap(),
        sectors: SECTORS,
        read_only,
        id: *b"test-disk-id\0\0\0\0\0\0\0\0",
    }
}

fn header(mem: &GuestMemoryMmap, kind: u32, sector: u64) {
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&kind.to_le_bytes());
    h[8..16].copy_from_slice(&sector.to_le_bytes());
    mem.write_slice(&h, GuestAddress(HDR)).unwrap();
    mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
}

/// Runs one request (header, data of `len` bytes, status) and returns (status, used len).
fn request(
    disk: &Disk,
    kind: u32,
    sector: u64,
    len: u32,
    data_writable: bool,
) -> (u8, u32, GuestMemoryMmap) {
    let mem = memory();
    let r = Rings::for_queue(0, 16);
    header(&mem, kind, sector);
    r.desc(&mem, 0, HDR, 16, F_NEXT, 1);
    let flags = if data_writable {
        F_NEXT | F_WRITE
    } else {
        F_NEXT
    };
    r.desc(&mem, 1, DATA, len, flags, 2);
    r.desc(&mem, 2, STATUS, 1, F_WRITE, 0);
    r.push(&mem, 0);
    let mut q = r.queue();
    let (_, chain) = pop_chain(&mem, &mut q).unwrap().unwrap();
    let used = execute(&mem, disk, &chain.unwrap());
    let status: u8 = mem.read_obj(GuestAddress(STATUS)).unwrap();
    (status, used, mem)
}

#[test]
fn read_returns_file_content() {
    let f = image();
    let d = disk(&f, false);
    let (status, used, mem) = request(&d, VIRTIO_BLK_T_IN, 2, 1024, true);
    assert_eq!(status, VIRTIO_BLK_S_OK);
    assert_eq!(used, 1025);
    let mut got = vec![0u8; 1024];
    mem.read_slice(&mut got, GuestAddress(DATA)).unwrap();
    let want: Vec<u8> = (1024..2048u64).map(|i| (i % 251) as u8).collect();
    assert_eq!(got, want);
}

#[test]
fn write_lands_in_the_file_and_flush_succeeds() {
    let f = image();
    let d = disk(&f, false);
    let mem = memory();
    let r = Rings::for_queue(0, 16);
    header(&mem, VIRTIO_BLK_T_OUT, 3);
    mem.write_slice(&[0xabu8; 512], GuestAddress(DATA)).unwrap();
    r.desc(&mem, 0, HDR, 16, F_NEXT, 1);
    r.desc(&mem, 1, DATA, 512, F_NEXT, 2);
    r.desc(&mem, 2, STATUS, 1, F_WRITE, 0);
    r.push(&mem, 0);
    let mut q = r.queue();
    let chain = pop_chain(&mem, &mut q).unwrap().unwrap().1.unwrap();
    assert_eq!(execute(&mem, &d, &chain), 1);
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_OK
    );
    let mut file = f.reopen().unwrap();
    file.seek(SeekFrom::Start(3 * 512)).unwrap();
    let mut back = [0u8; 512];
    file.read_exact(&mut back).unwrap();
    assert_eq!(back, [0xab; 512]);
    let (status, _, _) = request(&d, VIRTIO_BLK_T_FLUSH, 0, 0, false);
    assert_eq!(status, VIRTIO_BLK_S_OK);
}

#[test]
fn read_only_disk_refuses_writes() {
    let f = image();
    let d = disk(&f, true);
    let (status, _, _) = request(&d, VIRTIO_BLK_T_OUT, 0, 512, false);
    assert_eq!(status, VIRTIO_BLK_S_IOERR);
    let mut file = f.reopen().unwrap();
    let mut first = [0u8; 4];
    file.read_exact(&mut first).unwrap();
    assert_eq!(first, [0, 1, 2, 3]);
    let blk = Block::from_disk(disk(&f, true));
    use crate::device::VirtioDevice;
    assert_ne!(blk.common().avail_features() & feature(VIRTIO_BLK_F_RO), 0);
}

#[test]
fn requests_past_capacity_fail() {
    let f = image();
    let d = disk(&f, false);
    for (sector, len) in [
        (SECTORS, 512),
        (SECTORS - 1, 1024),
        (u64::MAX, 512),
        (u64::MAX / 512, 512),
    ] {
        let (status, _, _) = request(&d, VIRTIO_BLK_T_IN, sector, len, true);
        assert_eq!(status, VIRTIO_BLK_S_IOERR, "sector {sector} len {len}");
        let (status, _, _) = request(&d, VIRTIO_BLK_T_OUT, sector, len, false);
        assert_eq!(status, VIRTIO_BLK_S_IOERR, "sector {sector} len {len}");
    }
    let (status, _, _) = request(&d, VIRTIO_BLK_T_IN, 0, 100, true);
    assert_eq!(status, VIRTIO_BLK_S_IOERR, "partial sector");
    assert_eq!(
        f.as_file().metadata().unwrap().len(),
        SECTORS * 512,
        "file not grown"
    );
}

#[test]
fn get_id_and_unsupported() {
    let f = image();
    let d = disk(&f, false);
    let (status, used, mem) = request(&d, VIRTIO_BLK_T_GET_ID, 0, 20, true);
    assert_eq!(status, VIRTIO_BLK_S_OK);
    assert_eq!(used, 21);
    let mut id = [0u8; 12];
    mem.read_slice(&mut id, GuestAddress(DATA)).unwrap();
    assert_eq!(&id, b"test-disk-id");
    for kind in [11u32, 13, 0xdead] {
        let (status, used, _) = request(&d, kind, 0, 512, true);
        assert_eq!(status, VIRTIO_BLK_S_UNSUPP);
        assert_eq!(used, 1);
    }
}

#[test]
fn short_header_and_missing_status_are_handled() {
    let f = image();
    let d = disk(&f, false);
    let mem = memory();
    let r = Rings::for_queue(0, 16);
    r.desc(&mem, 0, HDR, 8, F_NEXT, 1);
    r.desc(&mem, 1, STATUS, 1, F_WRITE, 0);
    r.desc(&mem, 2, HDR, 16, 0, 0);
    r.push(&mem, 0);
    r.push(&mem, 2);
    let mut q = r.queue();
    let chain = pop_chain(&mem, &mut q).unwrap().unwrap().1.unwrap();
    assert_eq!(execute(&mem, &d, &chain), 1);
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_IOERR
    );
    let chain = pop_chain(&mem, &mut q).unwrap().unwrap().1.unwrap();
    assert_eq!(
        execute(&mem, &d, &chain),
        0,
        "no status byte: nothing written"
    );
}

#[test]
fn end_to_end_through_mmio_and_worker_thread() {
    let f = image();
    let blk = Block::open(f.path(), false).unwrap();
    assert_eq!(blk.sectors(), SECTORS);
    let mem = memory();
    let mut t = MmioTransport::new(mem.clone(), Box::new(blk)).unwrap();
    let mut cap = [0u8; 8];
    t.bus_read(0x100, &mut cap);
    assert_eq!(u64::from_le_bytes(cap), SECTORS);
    let mut seg_max = [0u8; 4];
    t.bus_read(0x10c, &mut seg_max);
    assert_eq!(u32::from_le_bytes(seg_max), 254);
    let rings = bring_up(&mut t, feature(VIRTIO_RING_F_INDIRECT_DESC), 16);
    let r = rings[0];
    header(&mem, VIRTIO_BLK_T_IN, 1);
    r.desc(&mem, 0, HDR, 16, F_NEXT, 1);
    r.desc(&mem, 1, DATA, 512, F_NEXT | F_WRITE, 2);
    r.desc(&mem, 2, STATUS, 1, F_WRITE, 0);
    r.push(&mem, 0);
    // A hostile chain right behind it must not stop the device.
    r.desc(&mem, 5, DATA, 16, F_NEXT, 5);
    r.push(&mem, 5);
    mmio_write(&mut t, 0x50, 0);
    let irq = t.irq_evt().try_clone().unwrap();
    while r.used_idx(&mem) < 2 {
        assert!(wait_evt(&irq), "no interrupt from the block worker");
    }
    assert_eq!(r.used_elem(&mem, 0), (0, 513));
    assert_eq!(r.used_elem(&mem, 1), (5, 0));
    assert_eq!(
        mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        VIRTIO_BLK_S_OK
    );
    assert_ne!(mmio_read(&mut t, 0x60) & 1, 0);
    mmio_write(&mut t, 0x70, 0);
    assert!(!t.is_active());
}

#[test]
fn image_is_locked_against_a_second_writer() {
    let f = image();
    let rw = Block::open(f.path(), false).unwrap();
    let err = Block::open(f.path(), false).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(
        Block::open(f.path(), true).is_err(),
        "reader while a writer holds it"
    );
    drop(rw);
    let ro1 = Block::open(f.path(), true).unwrap();
    let ro2 = Block::open(f.path(), true).unwrap();
    assert!(
        Block::open(f.path(), false).is_err(),
        "writer while readers hold it"
    );
    drop((ro1, ro2));
    assert!(Block::open(f.path(), false).is_ok());
    let missing = Block::open(&f.path().with_extension("missing"), true).unwrap_err();
    assert!(missing.to_string().contains("missing"), "{missing}");
}

#[test]
fn transport_and_devices_can_move_between_threads() {
    fn is_send<T: Send>() {}
    is_send::<MmioTransport>();
    is_send::<crate::vsock::VsockHost>();
    is_send::<crate::vsock::VsockListener>();
}
