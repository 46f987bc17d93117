//! A read-only share over the queue: reads are served, every change is
//! answered EROFS by the `ShareFs` layer the FUSE server calls after it
//! parsed the request (there is no separate check of guest memory to race).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use fuse_backend_rs::api::filesystem::{Context, FileSystem};
use fuse_backend_rs::api::server::Server;

use super::fs_tests::{fuse_req, mkdir_body, shared_dir, Driver, LOOKUP, MKDIR, OPEN};
use crate::fs::share_fs::{open_flags_change_files, ShareFs};
use crate::fs::{passthrough, Fs};

const GETATTR: u32 = 3;
const SETATTR: u32 = 4;
const SYMLINK: u32 = 6;
const MKNOD: u32 = 8;
const UNLINK: u32 = 10;
const RMDIR: u32 = 11;
const RENAME: u32 = 12;
const LINK: u32 = 13;
const READ: u32 = 15;
const WRITE: u32 = 16;
const STATFS: u32 = 17;
const RELEASE: u32 = 18;
const SETXATTR: u32 = 21;
const REMOVEXATTR: u32 = 24;
const OPENDIR: u32 = 27;
const READDIR: u32 = 28;
const ACCESS: u32 = 34;
const CREATE: u32 = 35;
const IOCTL: u32 = 39;
const FALLOCATE: u32 = 43;
const RENAME2: u32 = 45;

const FATTR_MODE: u32 = 1 << 0;
const FATTR_SIZE: u32 = 1 << 3;
const FATTR_FH: u32 = 1 << 6;
const FS_IOC_SETFLAGS: u32 = 0x4008_6602;

fn words(values: &[u64], widths: &[usize]) -> Vec<u8> {
    let mut v = Vec::new();
    for (value, width) in values.iter().zip(widths) {
        v.extend_from_slice(&value.to_le_bytes()[..*width]);
    }
    v
}

fn open_body(flags: i32) -> Vec<u8> {
    words(&[flags as u64, 0], &[4, 4])
}

/// READ_IN / WRITE_IN (fh, offset, size, flags, lock owner, flags, padding).
fn io_in(fh: u64, offset: u64, size: u32) -> Vec<u8> {
    words(
        &[fh, offset, size.into(), 0, 0, 0, 0],
        &[8, 8, 4, 4, 8, 4, 4],
    )
}

/// SETATTR_IN changing `valid` of size, mode and handle.
fn setattr_body(valid: u32, size: u64, mode: u32, fh: u64) -> Vec<u8> {
    let mut v = words(&[valid.into(), 0, fh, size], &[4, 4, 8, 8]);
    v.extend_from_slice(&[0u8; 5 * 8 + 3 * 4]); // lock owner, times
    v.extend_from_slice(&words(&[mode.into(), 0, 0, 0, 0], &[4; 5]));
    v
}

fn with_names(mut head: Vec<u8>, names: &[&str]) -> Vec<u8> {
    for name in names {
        head.extend_from_slice(name.as_bytes());
        head.push(0);
    }
    head
}

fn fallocate_body(fh: u64) -> Vec<u8> {
    words(&[fh, 0, 4096, 0, 0], &[8, 8, 8, 4, 4])
}

fn write_body(fh: u64, data: &[u8]) -> Vec<u8> {
    let mut v = io_in(fh, 0, data.len() as u32);
    v.extend_from_slice(data);
    v
}

/// Everything of `dir` a change would show in (atimes aside: reads are allowed).
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let m = std::fs::symlink_metadata(&path).unwrap();
        out.push(format!(
            "{} ino={} mode={:o} nlink={} size={} mtime={}.{} ctime={}.{}",
            path.display(),
            m.ino(),
            m.mode(),
            m.nlink(),
            m.size(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec()
        ));
        if m.is_file() {
            out.push(format!("{:?}", std::fs::read(&path).unwrap()));
        } else if m.is_dir() {
            out.extend(tree(&path));
        }
    }
    out
}

fn node_of(entry: &[u8]) -> u64 {
    u64::from_le_bytes(entry[0..8].try_into().unwrap())
}

fn fh_of(opened: &[u8]) -> u64 {
    u64::from_le_bytes(opened[0..8].try_into().unwrap())
}

#[test]
fn read_only_share_still_serves_reads() {
    let dir = shared_dir();
    let fs = Fs::new("rootfs", dir.path(), true).unwrap();
    let mut d = Driver::new();
    d.init(&fs);
    let (err, entry) = d.call(&fs, &fuse_req(LOOKUP, 2, 1, b"hello.txt\0"));
    assert_eq!(err, 0);
    let file = node_of(&entry);
    let (err, _) = d.call(&fs, &fuse_req(GETATTR, 3, file, &[0u8; 16]));
    assert_eq!(err, 0);
    let (err, opened) = d.call(&fs, &fuse_req(OPEN, 4, file, &open_body(libc::O_RDONLY)));
    assert_eq!(err, 0);
    let fh = fh_of(&opened);
    let (err, data) = d.call(&fs, &fuse_req(READ, 5, file, &io_in(fh, 0, 100)));
    assert_eq!(err, 0);
    assert_eq!(data, b"hello from the host");
    let (err, _) = d.call(
        &fs,
        &fuse_req(RELEASE, 6, file, &words(&[fh, 0, 0], &[8, 8, 8])),
    );
    assert_eq!(err, 0);
    let dir_flags = libc::O_RDONLY | libc::O_DIRECTORY;
    let (err, opened) = d.call(&fs, &fuse_req(OPENDIR, 7, 1, &open_body(dir_flags)));
    assert_eq!(err, 0);
    let (err, listing) = d.call(
        &fs,
        &fuse_req(READDIR, 8, 1, &io_in(fh_of(&opened), 0, 4096)),
    );
    assert_eq!(err, 0);
    assert!(listing.windows(9).any(|w| w == b"hello.txt"));
    let (err, _) = d.call(&fs, &fuse_req(STATFS, 9, 1, &[]));
    assert_eq!(err, 0);
    let access = |mask: i32| words(&[mask as u64, 0], &[4, 4]);
    let (err, _) = d.call(&fs, &fuse_req(ACCESS, 10, file, &access(libc::R_OK)));
    assert_eq!(err, 0);
    let (err, _) = d.call(&fs, &fuse_req(ACCESS, 11, file, &access(libc::W_OK)));
    assert_eq!(err, -libc::EROFS, "write access is denied as on a ro mount");
}

#[test]
fn read_only_share_refuses_every_change() {
    let dir = shared_dir();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/nested"), b"nested").unwrap();
    let before = tree(dir.path());
    let fs = Fs::new("rootfs", dir.path(), true).unwrap();
    let mut d = Driver::new();
    d.init(&fs);
    let (err, entry) = d.call(&fs, &fuse_req(LOOKUP, 2, 1, b"hello.txt\0"));
    assert_eq!(err, 0);
    let file = node_of(&entry);
    let (err, opened) = d.call(&fs, &fuse_req(OPEN, 3, file, &open_body(libc::O_RDONLY)));
    assert_eq!(err, 0);
    let fh = fh_of(&opened);
    let fifo = (libc::S_IFIFO | 0o644) as u64;
    let changes: Vec<(&str, u32, u64, Vec<u8>)> = vec![
        ("truncate", SETATTR, file, setattr_body(FATTR_SIZE, 0, 0, 0)),
        (
            "chmod",
            SETATTR,
            file,
            setattr_body(FATTR_MODE, 0, 0o777, 0),
        ),
        (
            "ftruncate",
            SETATTR,
            file,
            setattr_body(FATTR_SIZE | FATTR_FH, 0, 0, fh),
        ),
        (
            "symlink",
            SYMLINK,
            1,
            with_names(vec![], &["l", "hello.txt"]),
        ),
        (
            "mknod",
            MKNOD,
            1,
            with_names(words(&[fifo, 0, 0, 0], &[4; 4]), &["fifo"]),
        ),
        ("mkdir", MKDIR, 1, mkdir_body("made")),
        ("unlink", UNLINK, 1, with_names(vec![], &["hello.txt"])),
        ("rmdir", RMDIR, 1, with_names(vec![], &["empty"])),
        (
            "rename",
            RENAME,
            1,
            with_names(words(&[1], &[8]), &["hello.txt", "moved"]),
        ),
        (
            "rename2",
            RENAME2,
            1,
            with_names(words(&[1, 0, 0], &[8, 4, 4]), &["hello.txt", "moved"]),
        ),
        ("link", LINK, 1, with_names(words(&[file], &[8]), &["hard"])),
        ("open O_WRONLY", OPEN, file, open_body(libc::O_WRONLY)),
        ("open O_RDWR", OPEN, file, open_body(libc::O_RDWR)),
        ("open O_TRUNC", OPEN, file, open_body(libc::O_TRUNC)),
        ("open O_APPEND", OPEN, file, open_body(libc::O_APPEND)),
        ("open O_CREAT", OPEN, file, open_body(libc::O_CREAT)),
        (
            "opendir O_RDWR",
            OPENDIR,
            1,
            open_body(libc::O_RDWR | libc::O_DIRECTORY),
        ),
        ("write", WRITE, file, write_body(fh, b"evil")),
        (
            "create",
            CREATE,
            1,
            with_names(
                words(
                    &[(libc::O_WRONLY | libc::O_CREAT) as u64, 0o644, 0, 0],
                    &[4; 4],
                ),
                &["new"],
            ),
        ),
        (
            "setxattr",
            SETXATTR,
            file,
            // SETXATTR_IN (value size, flags), the name, the value "v".
            [
                with_names(words(&[1, 0], &[4, 4]), &["user.x"]),
                b"v".to_vec(),
            ]
            .concat(),
        ),
        (
            "removexattr",
            REMOVEXATTR,
            file,
            with_names(vec![], &["user.x"]),
        ),
        ("fallocate", FALLOCATE, file, fallocate_body(fh)),
        (
            "ioctl",
            IOCTL,
            file,
            words(
                &[fh, 0, FS_IOC_SETFLAGS.into(), 0, 0, 0],
                &[8, 4, 4, 8, 4, 4],
            ),
        ),
    ];
    for (i, (what, opcode, node, body)) in changes.iter().enumerate() {
        let req = fuse_req(*opcode, 100 + i as u64, *node, body);
        let (err, _) = d.call(&fs, &req);
        assert_eq!(err, -libc::EROFS, "{what} on a read-only share");
    }
    assert_eq!(tree(dir.path()), before, "the shared directory changed");
    let (err, _) = d.call(&fs, &fuse_req(LOOKUP, 200, 1, b"hello.txt\0"));
    assert_eq!(err, 0, "still serving");
}

#[test]
fn read_only_layer_alone_refuses_writes_even_through_a_writable_handle() {
    let dir = shared_dir();
    let inner = Arc::new(passthrough(dir.path()).unwrap());
    // The server the device builds for a read-only share, with nothing in
    // front of it: the layer must refuse on the values the server parsed.
    let read_only = Server::new(ShareFs::read_only(inner.clone()));
    let mut d = Driver::new();
    d.init(&read_only);
    let (err, entry) = d.call(&read_only, &fuse_req(LOOKUP, 2, 1, b"hello.txt\0"));
    assert_eq!(err, 0);
    let file = node_of(&entry);
    // A handle open for writing, as a guest would hold had it fooled a
    // check made on a different read of its request.
    let (fh, _, _) = inner
        .open(&Context::default(), file, libc::O_RDWR as u32, 0)
        .unwrap();
    let fh = fh.unwrap();
    let (err, _) = d.call(
        &read_only,
        &fuse_req(WRITE, 3, file, &write_body(fh, b"evil")),
    );
    assert_eq!(err, -libc::EROFS);
    let (err, _) = d.call(
        &read_only,
        &fuse_req(FALLOCATE, 4, file, &fallocate_body(fh)),
    );
    assert_eq!(err, -libc::EROFS);
    let truncate = setattr_body(FATTR_SIZE | FATTR_FH, 0, 0, fh);
    let (err, _) = d.call(&read_only, &fuse_req(SETATTR, 5, file, &truncate));
    assert_eq!(err, -libc::EROFS);
    let (err, _) = d.call(&read_only, &fuse_req(MKDIR, 6, 1, &mkdir_body("made")));
    assert_eq!(err, -libc::EROFS);
    let hello = dir.path().join("hello.txt");
    assert_eq!(std::fs::read(&hello).unwrap(), b"hello from the host");
    assert!(!dir.path().join("made").exists());

    // The same requests without the layer do land: the checks above can fail.
    let read_write = Server::new(inner);
    let (err, _) = d.call(
        &read_write,
        &fuse_req(WRITE, 7, file, &write_body(fh, b"evil")),
    );
    assert_eq!(err, 0);
    assert_eq!(std::fs::read(&hello).unwrap(), b"evilo from the host");
    let (err, _) = d.call(&read_write, &fuse_req(MKDIR, 8, 1, &mkdir_body("made")));
    assert_eq!(err, 0);
    assert!(dir.path().join("made").is_dir());
}

#[test]
fn open_flags_asking_for_changes_are_recognised() {
    let reading = [
        libc::O_RDONLY,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOATIME | libc::O_LARGEFILE,
    ];
    for flags in reading {
        assert!(!open_flags_change_files(flags as u32), "{flags:#o}");
    }
    let changing = [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_ACCMODE,
        libc::O_TRUNC,
        libc::O_APPEND,
        libc::O_CREAT,
        libc::O_CREAT | libc::O_EXCL,
        libc::O_TMPFILE & !libc::O_DIRECTORY,
        libc::O_RDWR | libc::O_TMPFILE,
    ];
    for flags in changing {
        assert!(open_flags_change_files(flags as u32), "{flags:#o}");
    }
}
