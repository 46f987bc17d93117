//! The OCI layer unpacker: up to four layers (separated by
//! `\n=LAYER=\n`), each a tar stream, optionally gzip or zstd compressed,
//! applied in order (going on after a layer fails) onto a rootfs that already holds a lower layer with
//! symlinks pointing out of it; then the rootfs's `/etc/passwd` and
//! `/etc/group` are read back the way `config.json` generation does.
//! Plain tar headers get their checksums recomputed first (see
//! `vmrun_fuzz::tar_fixup`), so mutated headers reach the unpacker.
//!
//! Asserted after every input, besides "no panic": nothing outside the
//! rootfs changed and nothing there was read (a sibling `outside/` the
//! lower layer's symlinks point to, and the parent directory itself), and
//! the rootfs is still a directory.

#![no_main]

use std::fs;
use std::io::BufReader;
use std::os::unix::fs::symlink;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vmrun_fuzz::input::sections;
use vmrun_fuzz::tar_fixup::fix_checksums;
use vmrun_fuzz::tree::{first_difference, snapshot, watch_reads};
use vmrun_image::bundle::config::generate;
use vmrun_image::decompress::{Compression, Decompressor};
use vmrun_image::unpack::safe_path::Root;
use vmrun_image::unpack::{UnpackLimits, Unpacker};

/// Separates layers in the input.
const LAYER_SEP: &[u8] = b"\n=LAYER=\n";
/// Most layers per input.
const MAX_LAYERS: usize = 4;
/// Small caps: every input's files fit in a few MiB of tmpfs.
const LIMITS: UnpackLimits = UnpackLimits {
    max_bytes: 1 << 20,
    max_entries: 512,
};
/// The image config whose `User` makes generation read passwd and group.
const CONFIG: &str = r#"{"architecture":"amd64","os":"linux",
    "config":{"User":"www:staff","Cmd":["/bin/sh"]},
    "rootfs":{"type":"layers","diff_ids":[]}}"#;

/// Lays out `rootfs/` (holding a lower layer) and `outside/` under `top`.
fn fixture(top: &Path) -> std::io::Result<()> {
    let rootfs = top.join("rootfs");
    let outside = top.join("outside");
    fs::create_dir_all(rootfs.join("etc"))?;
    fs::create_dir_all(rootfs.join("dir"))?;
    fs::create_dir_all(outside.join("dir"))?;
    fs::write(rootfs.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n")?;
    fs::write(rootfs.join("dir/file"), b"lower")?;
    symlink("../outside", rootfs.join("up"))?;
    symlink(&outside, rootfs.join("abs"))?;
    symlink("..", rootfs.join("dotdot"))?;
    symlink("/", rootfs.join("slash"))?;
    fs::write(outside.join("victim"), b"must not change")?;
    fs::write(outside.join("dir/secret"), b"must not be read")?;
    symlink("victim", outside.join("link"))?;
    watch_reads(top)
}

fn apply_layers(rootfs: &Path, data: &[u8]) {
    let Ok(mut unpacker) = Unpacker::new(rootfs, LIMITS) else {
        return;
    };
    for layer in sections(data, LAYER_SEP, MAX_LAYERS) {
        let mut layer = layer.to_vec();
        if Compression::detect(&layer) == Compression::None {
            fix_checksums(&mut layer);
        }
        // A failed layer ends a real unpack; going on with the next one
        // explores more states, and none may reach outside the rootfs.
        if let Ok(tar) = Decompressor::new(BufReader::new(&layer[..])) {
            let _ = unpacker.apply_layer(tar);
        }
    }
}

fn read_back(rootfs: &Path) {
    let Ok(root) = Root::open(rootfs) else {
        return;
    };
    if let Ok(config) = serde_json::from_str(CONFIG) {
        let _ = generate("fuzz", &config, &root, None);
    }
    for rel in ["dir/file", "up/dir/secret", "dotdot/outside/victim"] {
        let _ = root.read_file(rel, 1 << 16);
    }
}

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    let Ok(top) = tempfile::tempdir() else {
        return;
    };
    if fixture(top.path()).is_err() {
        return;
    }
    let rootfs = top.path().join("rootfs");
    let before = snapshot(top.path(), &["rootfs"]);

    apply_layers(&rootfs, data);
    read_back(&rootfs);

    let after = snapshot(top.path(), &["rootfs"]);
    if let Some(diff) = first_difference(&before, &after) {
        panic!("the unpacker touched something outside the rootfs: {diff}");
    }
    let still_dir = fs::symlink_metadata(&rootfs).is_ok_and(|m| m.is_dir());
    assert!(still_dir, "the rootfs directory was replaced");
});
