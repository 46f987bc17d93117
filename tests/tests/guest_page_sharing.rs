//! What a running microVM keeps of the kernel and initramfs files it was
//! booted from. The VMM maps their pages copy-on-write over guest RAM
//! (`vmm/src/machine/file_mapping.rs`): a page the guest only reads stays
//! the host's page cache, shared by every VM booting the same file, and
//! each page the guest writes becomes a private copy of this VM's. So the
//! guest must not write the kernel's text or the initramfs for nothing:
//! the default command line keeps the kernel from rewriting its text's
//! `lock` prefixes on one CPU (`noreplace-smp`) and from poisoning the
//! unpacked initramfs before freeing it (`retain_initrd`), and the kernel
//! is built without paravirt spinlocks, whose call sites it rewrote.
//!
//! Guest tests: they skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`)
//! where guests cannot run.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use vmrun_tests::bundle::edit_config;
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::{boot_timeout, guest_ready, run_ok, vmrun_bin};

/// Bundles and the copies of the kernel and initramfs live on a tmpfs
/// (in the test host the work tree and the artifact cache are 9p, whose
/// files the VMM copies instead of mapping).
static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-pages", "256m");

/// A `vmrun run` in the foreground, killed (and so its VM) on every way
/// out of the test; `delete --force` then removes what the killed run
/// left under its `--root`.
struct KillOnDrop {
    child: Child,
    root: PathBuf,
    id: &'static str,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(vmrun_bin())
            .arg("--root")
            .arg(&self.root)
            .args(["delete", "--force", self.id])
            .status();
    }
}

/// One mapping of `/proc/PID/smaps`: its start address, its offset in
/// the file and the fields this test reads, in KiB.
#[derive(Debug, Clone, Copy)]
struct Mapping {
    start: u64,
    offset: u64,
    size_kib: u64,
    rss_kib: u64,
    anonymous_kib: u64,
}

/// The mappings of `file` in `smaps`, in address order.
fn mappings_of(smaps: &str, file: &Path) -> Vec<Mapping> {
    let file = file.to_str().expect("UTF-8 path");
    let mut found = Vec::new();
    let mut current: Option<Mapping> = None;
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((start, _)) = first
            .split_once('-')
            .filter(|(s, _)| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            found.extend(current.take());
            // address perms offset dev inode [path]
            let offset = words.nth(1).and_then(|o| u64::from_str_radix(o, 16).ok());
            let path = words.nth(2);
            if let Some(offset) = offset.filter(|_| path == Some(file)) {
                current = Some(Mapping {
                    start: u64::from_str_radix(start, 16).expect("hex address"),
                    offset,
                    size_kib: 0,
                    rss_kib: 0,
                    anonymous_kib: 0,
                });
            }
            continue;
        }
        let Some(m) = current.as_mut() else { continue };
        let kib = words
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match first {
            "Size:" => m.size_kib = kib,
            "Rss:" => m.rss_kib = kib,
            "Anonymous:" => m.anonymous_kib = kib,
            _ => {}
        }
    }
    found.extend(current);
    found.sort_by_key(|m| m.start);
    found
}

fn copy_into(dir: &Path, file: &Path, name: &str) -> PathBuf {
    let to = dir.join(name);
    std::fs::copy(file, &to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", file.display(), to.display()));
    to
}

/// A container VM booted from copies of the kernel and initramfs on a
/// local filesystem, left idle: it wrote no page of the initramfs, its
/// kernel left the `lock` prefixes of its text as they are in the file,
/// and it wrote less than half of the kernel text mapping it touched.
#[test]
fn an_idle_container_vm_leaves_the_kernel_text_and_initramfs_shared() {
    let Some(g) = guest_ready("an_idle_container_vm_leaves_the_kernel_text_and_initramfs_shared")
    else {
        return;
    };
    let dir = SCRATCH.dir();
    let kernel = copy_into(dir, &g.kernel, "vmlinux");
    let initrd = copy_into(dir, &g.initrd, "initramfs.cpio");
    let bundle = dir.join("idle");
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(SCRATCH.base_bundle())
            .arg(&bundle),
        "copying the bundle (cp -a)",
    );
    edit_config(&bundle, |spec| {
        spec["process"]["args"] = serde_json::json!(["sh", "-c", "echo up; exec sleep 600"])
    });
    let root = dir.join("root");
    let mut child = KillOnDrop {
        child: Command::new(vmrun_bin())
            .arg("--root")
            .arg(&root)
            .args(["run", "--kernel"])
            .arg(&kernel)
            .arg("--initrd")
            .arg(&initrd)
            .arg("--bundle")
            .arg(&bundle)
            .arg("pages-idle")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start vmrun"),
        root,
        id: "pages-idle",
    };
    let stdout = child.child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let first = BufReader::new(stdout).lines().next();
        let _ = tx.send(first);
    });
    match rx.recv_timeout(boot_timeout()) {
        Ok(Some(Ok(line))) if line == "up" => {}
        other => panic!("the container did not print \"up\": {other:?}"),
    }
    // `vmrun run` is the container's VMM itself.
    let smaps = std::fs::read_to_string(format!("/proc/{}/smaps", child.child.id()))
        .expect("read the VMM's smaps");

    let initrd_maps = mappings_of(&smaps, &initrd);
    assert!(
        !initrd_maps.is_empty(),
        "the VMM did not map {} (copied instead?)",
        initrd.display()
    );
    let mut failures = Vec::new();
    let written: u64 = initrd_maps.iter().map(|m| m.anonymous_kib).sum();
    if written != 0 {
        failures.push(format!(
            "the guest wrote {written} KiB of the initramfs's pages: {initrd_maps:?}"
        ));
    }

    // The kernel's first mapping is its first PT_LOAD segment: text and
    // read-only data.
    let kernel_maps = mappings_of(&smaps, &kernel);
    let text = *kernel_maps
        .first()
        .unwrap_or_else(|| panic!("the VMM did not map {} (copied instead?)", kernel.display()));
    eprintln!(
        "kernel text mapping: {} KiB, {} KiB resident, {} KiB written by the guest; \
         initramfs: {} KiB resident, {written} KiB written",
        text.size_kib,
        text.rss_kib,
        text.anonymous_kib,
        initrd_maps.iter().map(|m| m.rss_kib).sum::<u64>()
    );
    // Some patching is the kernel's own business (alternatives for this
    // CPU's features, paravirt call sites); the one-CPU rewrite of every
    // `lock` prefix (0xf0) into a `ds` prefix (0x3e) is not.
    let rewritten = lock_prefixes_rewritten(child.child.id(), &text, &kernel);
    if !rewritten.is_empty() {
        failures.push(format!(
            "the guest kernel rewrote {} lock prefixes of its text, at file offsets {:x?}...",
            rewritten.len(),
            &rewritten[..rewritten.len().min(8)],
        ));
    }
    // What the kernel still writes of that mapping: the alternatives for
    // this CPU's features and the free space between its text and its
    // read-only data (up to 2 MiB), which it poisons and frees. Each
    // inlined `spin_unlock` of a kernel with paravirt spinlocks was a
    // patch site too (on 591 of the text pages).
    if text.anonymous_kib * 2 > text.rss_kib {
        failures.push(format!(
            "the guest wrote {} of the {} KiB of its kernel text mapping it touched",
            text.anonymous_kib, text.rss_kib
        ));
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&bundle);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// File offsets in `mapping` of `file` where the file has a `lock` prefix
/// and the VMM's memory (the guest's) a `ds` prefix instead.
fn lock_prefixes_rewritten(pid: u32, mapping: &Mapping, file: &Path) -> Vec<u64> {
    let len = usize::try_from(mapping.size_kib * 1024).expect("mapping size");
    let mut in_file = vec![0u8; len];
    let mut in_guest = vec![0u8; len];
    let f = std::fs::File::open(file).expect("open the kernel copy");
    f.read_exact_at(&mut in_file, mapping.offset)
        .expect("read the kernel copy");
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open the VMM's memory");
    mem.read_exact_at(&mut in_guest, mapping.start)
        .expect("read the VMM's mapping of the kernel");
    in_file
        .iter()
        .zip(&in_guest)
        .enumerate()
        .filter(|(_, (&was, &is))| was == 0xf0 && is == 0x3e)
        .map(|(i, _)| mapping.offset + i as u64)
        .collect()
}

#[test]
fn smaps_mappings_of_a_file_are_read_in_address_order() {
    let smaps = "\
7f0000200000-7f0000400000 r-xp 00001000 00:1f 12 /dev/shm/k
Size:               2048 kB
Rss:                 100 kB
Anonymous:            12 kB
7f0000000000-7f0000200000 rw-p 00000000 00:00 0 
Size:               2048 kB
Rss:                2048 kB
Anonymous:          2048 kB
7f0000100000-7f0000180000 r-xp 00200000 00:1f 12 /dev/shm/k
Size:                512 kB
Rss:                   8 kB
Anonymous:             0 kB
7f0000900000-7f0000901000 r--p 00000000 00:1f 13 /dev/shm/other
Size:                  4 kB
Rss:                   4 kB
Anonymous:             4 kB
";
    let maps = mappings_of(smaps, Path::new("/dev/shm/k"));
    assert_eq!(maps.len(), 2, "{maps:?}");
    assert_eq!((maps[0].start, maps[0].offset), (0x7f0000100000, 0x200000));
    assert_eq!((maps[1].start, maps[1].offset), (0x7f0000200000, 0x1000));
    assert_eq!(
        (maps[0].size_kib, maps[0].rss_kib, maps[0].anonymous_kib),
        (512, 8, 0)
    );
    assert_eq!(
        (maps[1].size_kib, maps[1].rss_kib, maps[1].anonymous_kib),
        (2048, 100, 12)
    );
    assert!(mappings_of(smaps, Path::new("/dev/shm/none")).is_empty());
}
