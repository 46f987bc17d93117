use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::chain::ChainError;
use crate::fs::{process_fs_queue, Fs};
use crate::mmio::MmioTransport;
use crate::testing::*;

const REQ: u64 = 0x10_0000;
const REPLY: u64 = 0x14_0000;

pub(super) const INIT: u32 = 26;
pub(super) const LOOKUP: u32 = 1;
pub(super) const MKDIR: u32 = 9;
pub(super) const OPEN: u32 = 14;

/// What a [`Driver`] sends its requests to: a device's server, or a server
/// a test built itself.
pub(super) trait FuseTarget {
    fn serve(
        &self,
        mem: &GuestMemoryMmap,
        q: &mut virtio_queue::Queue,
    ) -> Result<usize, ChainError>;
}

impl FuseTarget for Fs {
    fn serve(
        &self,
        mem: &GuestMemoryMmap,
        q: &mut virtio_queue::Queue,
    ) -> Result<usize, ChainError> {
        crate::fs::process_fs_queue(mem, q, self.server())
    }
}

impl<F: FileSystem + Sync> FuseTarget for Server<F> {
    fn serve(
        &self,
        mem: &GuestMemoryMmap,
        q: &mut virtio_queue::Queue,
    ) -> Result<usize, ChainError> {
        process_fs_queue(mem, q, self)
    }
}

pub(super) fn fuse_req(opcode: u32, unique: u64, nodeid: u64, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&(40 + body.len() as u32).to_le_bytes());
    v.extend_from_slice(&opcode.to_le_bytes());
    v.extend_from_slice(&unique.to_le_bytes());
    v.extend_from_slice(&nodeid.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes()); // uid
    v.extend_from_slice(&0u32.to_le_bytes()); // gid
    v.extend_from_slice(&1u32.to_le_bytes()); // pid
    v.extend_from_slice(&0u32.to_le_bytes()); // padding
    v.extend_from_slice(body);
    v
}

pub(super) struct Driver {
    mem: GuestMemoryMmap,
    r: Rings,
    q: virtio_queue::Queue,
    seen: u16,
}

impl Driver {
    pub(super) fn new() -> Self {
        let mem = memory();
        let r = Rings::for_queue(1, 16);
        Self {
            q: r.queue(),
            mem,
            r,
            seen: 0,
        }
    }

    /// Sends one request; returns (error, reply bytes after the out header).
    pub(super) fn call(&mut self, fs: &impl FuseTarget, req: &[u8]) -> (i32, Vec<u8>) {
        self.mem.write_slice(req, GuestAddress(REQ)).unwrap();
        self.r.desc(&self.mem, 0, REQ, req.len() as u32, F_NEXT, 1);
        self.r.desc(&self.mem, 1, REPLY, 8192, F_WRITE, 0);
        self.r.push(&self.mem, 0);
        let n = fs.serve(&self.mem, &mut self.q).unwrap();
        assert_eq!(n, 1);
        let (_, len) = self.r.used_elem(&self.mem, self.seen);
        self.seen += 1;
        if len == 0 {
            return (i32::MIN, Vec::new());
        }
        let mut out = vec![0u8; len as usize];
        self.mem.read_slice(&mut out, GuestAddress(REPLY)).unwrap();
        assert_eq!(u32::from_le_bytes(out[0..4].try_into().unwrap()), len);
        let error = i32::from_le_bytes(out[4..8].try_into().unwrap());
        (error, out[16..].to_vec())
    }

    pub(super) fn init(&mut self, fs: &impl FuseTarget) {
        self.init_offering(fs, 0);
    }

    /// FUSE INIT with `flags` offered (and 128 KiB of readahead); returns
    /// the reply's body (`fuse_init_out`).
    pub(super) fn init_offering(&mut self, fs: &impl FuseTarget, flags: u32) -> Vec<u8> {
        let mut body = Vec::new();
        for v in [7u32, 31, 128 << 10, flags] {
            body.extend_from_slice(&v.to_le_bytes());
        }
        body.extend_from_slice(&[0u8; 48]); // flags2 + unused (7.36 layout)
        let (err, reply) = self.call(fs, &fuse_req(INIT, 1, 0, &body));
        assert_eq!(err, 0, "FUSE INIT failed");
        reply
    }
}

pub(super) fn shared_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("hello.txt"), b"hello from the host").unwrap();
    d
}

pub(super) fn mkdir_body(name: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0o755u32.to_le_bytes());
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body
}

#[test]
fn lookup_and_mkdir_reach_the_host_directory() {
    let dir = shared_dir();
    let fs = Fs::new("rootfs", dir.path(), false).unwrap();
    let mut d = Driver::new();
    d.init(&fs);
    let (err, entry) = d.call(&fs, &fuse_req(LOOKUP, 2, 1, b"hello.txt\0"));
    assert_eq!(err, 0);
    let size = u64::from_le_bytes(entry[48..56].try_into().unwrap());
    assert_eq!(size, 19);
    let (err, _) = d.call(&fs, &fuse_req(LOOKUP, 3, 1, b"missing\0"));
    assert_eq!(err, -libc::ENOENT);
    let (err, _) = d.call(&fs, &fuse_req(MKDIR, 4, 1, &mkdir_body("made-by-guest")));
    assert_eq!(err, 0);
    assert!(dir.path().join("made-by-guest").is_dir());
}

#[test]
fn read_only_share_refuses_changes() {
    let dir = shared_dir();
    let fs = Fs::new("rootfs", dir.path(), true).unwrap();
    let mut d = Driver::new();
    d.init(&fs);
    let (err, _) = d.call(&fs, &fuse_req(LOOKUP, 2, 1, b"hello.txt\0"));
    assert_eq!(err, 0, "reads still work");
    let (err, _) = d.call(&fs, &fuse_req(MKDIR, 3, 1, &mkdir_body("nope")));
    assert_eq!(err, -libc::EROFS);
    assert!(!dir.path().join("nope").exists());
    // OPEN for writing is refused too.
    let mut open_body = Vec::new();
    open_body.extend_from_slice(&(libc::O_RDWR as u32).to_le_bytes());
    open_body.extend_from_slice(&0u32.to_le_bytes());
    let (err, _) = d.call(&fs, &fuse_req(OPEN, 4, 2, &open_body));
    assert_eq!(err, -libc::EROFS);
}

/// The options fuse-backend-rs's server alone does not ask for:
/// asynchronous reads, 1 MiB requests, big writes, parallel directory
/// operations, cached symlinks; for read-write and read-only shares alike.
#[test]
fn init_asks_for_async_reads_one_mib_requests_and_cached_symlinks() {
    const ASYNC_READ: u32 = 1 << 0;
    const BIG_WRITES: u32 = 1 << 5;
    const PARALLEL_DIROPS: u32 = 1 << 18;
    const MAX_PAGES: u32 = 1 << 22;
    const CACHE_SYMLINKS: u32 = 1 << 23;
    let wanted = ASYNC_READ | BIG_WRITES | PARALLEL_DIROPS | MAX_PAGES | CACHE_SYMLINKS;
    let u32_at = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
    for read_only in [false, true] {
        let dir = shared_dir();
        let fs = Fs::new("rootfs", dir.path(), read_only).unwrap();
        let reply = Driver::new().init_offering(&fs, wanted);
        assert_eq!(
            u32_at(&reply, 12) & wanted,
            wanted,
            "flags, read_only={read_only}"
        );
        assert_eq!(u32_at(&reply, 20), 1 << 20, "max_write");
        assert_eq!(u16::from_le_bytes([reply[28], reply[29]]), 256, "max_pages");
        // Nothing the guest did not offer.
        let reply = Driver::new().init_offering(&fs, ASYNC_READ);
        assert_eq!(u32_at(&reply, 12) & wanted, ASYNC_READ);
    }
}

#[test]
fn malformed_fuse_requests_do_not_panic() {
    let dir = shared_dir();
    let fs = Fs::new("rootfs", dir.path(), false).unwrap();
    let mut d = Driver::new();
    d.init(&fs);
    // Too short for a header.
    let (err, _) = d.call(&fs, &[1, 2, 3]);
    assert_eq!(err, i32::MIN);
    // Unknown opcode.
    let (err, _) = d.call(&fs, &fuse_req(9999, 5, 1, &[]));
    assert_ne!(err, 0);
    // Header claiming a huge length; name without NUL; lookup on a bogus inode.
    let mut huge = fuse_req(LOOKUP, 6, 1, b"x");
    huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
    let _ = d.call(&fs, &huge);
    let _ = d.call(&fs, &fuse_req(LOOKUP, 7, 1, b"no-nul"));
    let (err, _) = d.call(&fs, &fuse_req(LOOKUP, 8, 0xdead_beef, b"x\0"));
    assert_ne!(err, 0);
    // A descriptor loop and a buffer outside RAM on the request queue.
    d.r.desc(&d.mem, 2, REQ, 64, F_NEXT, 2);
    d.r.push(&d.mem, 2);
    d.r.desc(&d.mem, 3, MEM_SIZE as u64, 64, 0, 0);
    d.r.push(&d.mem, 3);
    assert_eq!(fs.serve(&d.mem, &mut d.q).unwrap(), 2);
    assert_eq!(d.r.used_elem(&d.mem, d.seen), (2, 0));
    assert_eq!(d.r.used_elem(&d.mem, d.seen + 1), (3, 0));
    d.seen += 2;
    // Still serving.
    let (err, _) = d.call(&fs, &fuse_req(LOOKUP, 9, 1, b"hello.txt\0"));
    assert_eq!(err, 0);
}

#[test]
fn tag_and_directory_are_validated_and_tag_is_in_config_space() {
    let dir = shared_dir();
    assert!(Fs::new("", dir.path(), false).is_err());
    assert!(Fs::new(&"t".repeat(37), dir.path(), false).is_err());
    assert!(Fs::new("rootfs", &dir.path().join("missing"), false).is_err());
    assert!(Fs::new("rootfs", &dir.path().join("hello.txt"), false).is_err());
    let fs = Fs::new("myroot", dir.path(), false).unwrap();
    let mut t = MmioTransport::new(memory(), Box::new(fs)).unwrap();
    assert_eq!(mmio_read(&mut t, 0x08), 26);
    let mut cfg = [0u8; 40];
    t.bus_read(0x100, &mut cfg);
    assert_eq!(&cfg[..7], b"myroot\0");
    assert_eq!(u32::from_le_bytes(cfg[36..40].try_into().unwrap()), 1);
    let rings = bring_up(&mut t, 0, 16);
    assert_eq!(rings.len(), 2);
    mmio_write(&mut t, 0x70, 0);
    assert!(!t.is_active());
}
