//! virtio-fs (FUSE over the request queue) over guest memory the fuzzer
//! writes (layout of `vmrun_virtio::fuzz::fuzz_fs_queue`), serving a fresh
//! shared directory per input. The last input byte chooses a read-only
//! share.
//!
//! Asserted after every input, besides "no panic":
//! - nothing next to the shared directory changed (a sibling `outside/`
//!   that symlinks in the share point to, and the parent directory itself);
//! - nothing there was read (atimes; see `vmrun_fuzz::tree`);
//! - a read-only share is unchanged (but for atimes).

#![no_main]

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use vmrun_fuzz::tree::{first_difference, forget_atimes, snapshot, watch_reads};

/// Lays out `shared/` (what the guest sees) and `outside/` (what it must
/// never reach) under `top`.
fn fixture(top: &Path) -> std::io::Result<()> {
    let shared = top.join("shared");
    let outside = top.join("outside");
    fs::create_dir_all(shared.join("sub"))?;
    fs::create_dir_all(outside.join("dir"))?;
    fs::write(shared.join("hello.txt"), b"hello from the host")?;
    fs::write(shared.join("sub/file"), b"nested")?;
    symlink("../outside", shared.join("up"))?;
    symlink(&outside, shared.join("abs"))?;
    fs::write(outside.join("victim"), b"must not change")?;
    fs::write(outside.join("dir/secret"), b"must not be read")?;
    watch_reads(top)
}

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    let Ok(top) = tempfile::tempdir() else {
        return;
    };
    if fixture(top.path()).is_err() {
        return;
    }
    let read_only = data.last().is_some_and(|b| b & 1 == 1);
    let shared = top.path().join("shared");
    let outside_before = snapshot(top.path(), &["shared"]);
    // Reading a read-only share is what it is for: only atimes may change.
    let without_atimes = |mut s| {
        forget_atimes(&mut s);
        s
    };
    let shared_before = read_only.then(|| without_atimes(snapshot(&shared, &[])));

    vmrun_virtio::fuzz::fuzz_fs_queue(data, &shared, read_only);

    let outside_after = snapshot(top.path(), &["shared"]);
    if let Some(diff) = first_difference(&outside_before, &outside_after) {
        panic!("virtio-fs changed something outside the shared directory: {diff}");
    }
    if let Some(before) = shared_before {
        let after = without_atimes(snapshot(&shared, &[]));
        if let Some(diff) = first_difference(&before, &after) {
            panic!("virtio-fs changed a read-only share: {diff}");
        }
    }
});
