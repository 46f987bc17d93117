//! A hostile guest driver trying to reach host files outside the shared
//! directory with raw FUSE requests (what a guest kernel would never send
//! but a compromised one can): `..` at the root, names holding `/`,
//! symlinks pointing out, renames, links and directories made "outside".
//! Everything outside `share/` must stay unreachable and untouched.

use super::fs_tests::{fuse_req, mkdir_body, Driver, LOOKUP, MKDIR, OPEN};
use crate::fs::Fs;

const READ: u32 = 15;
const RENAME: u32 = 12;
const LINK: u32 = 13;
const SYMLINK: u32 = 6;
const ROOT: u64 = 1;
const SECRET: &[u8] = b"host secret outside the share";

/// `<tmp>/outside-secret` next to `<tmp>/share/` (holding `hello.txt` and
/// a host-made symlink `esc -> ../outside-secret`).
struct Layout {
    tmp: tempfile::TempDir,
}

impl Layout {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("outside-secret"), SECRET).unwrap();
        let share = tmp.path().join("share");
        std::fs::create_dir(&share).unwrap();
        std::fs::write(share.join("hello.txt"), b"hello").unwrap();
        std::os::unix::fs::symlink("../outside-secret", share.join("esc")).unwrap();
        Self { tmp }
    }

    fn share(&self) -> std::path::PathBuf {
        self.tmp.path().join("share")
    }

    /// Only what the test made is outside the share, unchanged.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<String> = std::fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["outside-secret", "share"]);
        assert_eq!(
            std::fs::read(self.tmp.path().join("outside-secret")).unwrap(),
            SECRET
        );
    }
}

fn nodeid(entry: &[u8]) -> u64 {
    u64::from_le_bytes(entry[0..8].try_into().unwrap())
}

/// Opens `node` read-only and reads it: the bytes, or the error.
fn read_node(d: &mut Driver, fs: &Fs, node: u64, unique: u64) -> Result<Vec<u8>, i32> {
    let mut open = Vec::new();
    open.extend_from_slice(&(libc::O_RDONLY as u32).to_le_bytes());
    open.extend_from_slice(&0u32.to_le_bytes());
    let (err, out) = d.call(fs, &fuse_req(OPEN, unique, node, &open));
    if err != 0 {
        return Err(err);
    }
    let fh = u64::from_le_bytes(out[0..8].try_into().unwrap());
    let mut read = Vec::new();
    read.extend_from_slice(&fh.to_le_bytes());
    read.extend_from_slice(&0u64.to_le_bytes()); // offset
    read.extend_from_slice(&4096u32.to_le_bytes()); // size
    read.extend_from_slice(&0u32.to_le_bytes()); // read flags
    read.extend_from_slice(&0u64.to_le_bytes()); // lock owner
    read.extend_from_slice(&0u32.to_le_bytes()); // flags
    read.extend_from_slice(&0u32.to_le_bytes()); // padding
    let (err, data) = d.call(fs, &fuse_req(READ, unique + 1, node, &read));
    if err != 0 {
        return Err(err);
    }
    Ok(data)
}

fn share_fs(layout: &Layout) -> (Fs, Driver) {
    let fs = Fs::new("escape", &layout.share(), false).unwrap();
    let mut d = Driver::new();
    d.init(&fs);
    (fs, d)
}

#[test]
fn dot_dot_at_the_root_stays_at_the_root() {
    let layout = Layout::new();
    let (fs, mut d) = share_fs(&layout);
    let (err, entry) = d.call(&fs, &fuse_req(LOOKUP, 2, ROOT, b"..\0"));
    if err == 0 {
        // `..` of the root is the root: the host's parent is not reachable
        // through it.
        let parent = nodeid(&entry);
        let (err, _) = d.call(&fs, &fuse_req(LOOKUP, 3, parent, b"outside-secret\0"));
        assert_eq!(err, -libc::ENOENT, "`..` of the share's root left it");
        let (err, _) = d.call(&fs, &fuse_req(LOOKUP, 4, parent, b"hello.txt\0"));
        assert_eq!(err, 0, "`..` of the root is the root");
    }
    layout.assert_outside_untouched();
}

#[test]
fn names_holding_a_slash_are_not_paths() {
    let layout = Layout::new();
    let (fs, mut d) = share_fs(&layout);
    for (unique, name) in [
        (2, &b"../outside-secret\0"[..]),
        (3, b"./../outside-secret\0"),
        (4, b"/etc/passwd\0"),
    ] {
        let (err, _) = d.call(&fs, &fuse_req(LOOKUP, unique, ROOT, name));
        assert_ne!(
            err,
            0,
            "LOOKUP {:?} succeeded",
            String::from_utf8_lossy(name)
        );
    }
    let (err, _) = d.call(
        &fs,
        &fuse_req(MKDIR, 5, ROOT, &mkdir_body("../made-outside")),
    );
    assert_ne!(err, 0, "MKDIR ../made-outside succeeded");
    layout.assert_outside_untouched();
}

#[test]
fn a_symlink_out_of_the_share_is_never_followed_by_the_host() {
    let layout = Layout::new();
    let (fs, mut d) = share_fs(&layout);
    let (err, entry) = d.call(&fs, &fuse_req(LOOKUP, 2, ROOT, b"esc\0"));
    assert_eq!(err, 0, "the symlink itself is visible");
    let link = nodeid(&entry);
    match read_node(&mut d, &fs, link, 3) {
        Ok(data) => assert_ne!(data, SECRET, "the host followed the symlink out"),
        Err(err) => assert_ne!(err, 0),
    }
    layout.assert_outside_untouched();
}

#[test]
fn renames_links_and_symlinks_cannot_place_anything_outside() {
    let layout = Layout::new();
    let (fs, mut d) = share_fs(&layout);
    // RENAME hello.txt -> (root, "../moved").
    let mut rename = Vec::new();
    rename.extend_from_slice(&ROOT.to_le_bytes());
    rename.extend_from_slice(b"hello.txt\0../moved\0");
    let (err, _) = d.call(&fs, &fuse_req(RENAME, 2, ROOT, &rename));
    assert_ne!(err, 0, "RENAME to ../moved succeeded");
    // LINK hello.txt as "../linked".
    let (err, entry) = d.call(&fs, &fuse_req(LOOKUP, 3, ROOT, b"hello.txt\0"));
    assert_eq!(err, 0);
    let mut link = Vec::new();
    link.extend_from_slice(&nodeid(&entry).to_le_bytes());
    link.extend_from_slice(b"../linked\0");
    let (err, _) = d.call(&fs, &fuse_req(LINK, 4, ROOT, &link));
    assert_ne!(err, 0, "LINK as ../linked succeeded");
    // A symlink the guest makes may point anywhere (the guest resolves it
    // in its own tree), but it is made inside the share.
    let (err, _) = d.call(
        &fs,
        &fuse_req(SYMLINK, 5, ROOT, b"guest-link\0/etc/shadow\0"),
    );
    assert_eq!(err, 0);
    assert!(layout.share().join("guest-link").is_symlink());
    let (err, entry) = d.call(&fs, &fuse_req(LOOKUP, 6, ROOT, b"guest-link\0"));
    assert_eq!(err, 0);
    if let Ok(data) = read_node(&mut d, &fs, nodeid(&entry), 7) {
        assert!(
            !String::from_utf8_lossy(&data).contains("root:"),
            "the host followed a guest-made symlink to /etc/shadow"
        );
    }
    layout.assert_outside_untouched();
}
