//! A hostile-layer corpus: every case is rejected with a clear error and
//! nothing outside the bundle is touched (checked with a canary dir).

mod common;

use std::path::{Path, PathBuf};

use common::image::{simple_layout, Comp, TarBuilder};
use common::tree::snapshot;
use tar::EntryType;
use vmrun_image::{prepare_bundle, BundleOptions, ImageSource, Store, UnpackLimits};

struct Setup {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    canary: PathBuf,
    store: Store,
}

fn setup() -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().to_path_buf();
    let canary = base.join("canary");
    std::fs::create_dir(&canary).unwrap();
    std::fs::write(canary.join("keep"), b"canary\n").unwrap();
    let store = Store::open(base.join("store")).unwrap();
    Setup {
        _tmp: tmp,
        base,
        canary,
        store,
    }
}

/// Files outside the store and the given bundle.
fn outside(base: &Path) -> Vec<String> {
    snapshot(base)
        .into_iter()
        .map(|(k, v)| format!("{k} {v:?}"))
        .filter(|k| !k.starts_with("store") && !k.starts_with("layout-"))
        .collect()
}

/// Unpack a layout made of `layers`; returns the error text (or panics if
/// it succeeded when `must_fail`).
fn unpack(
    s: &Setup,
    name: &str,
    layers: Vec<(Vec<u8>, Comp)>,
    limits: UnpackLimits,
) -> Result<PathBuf, String> {
    let layout = s.base.join(format!("layout-{name}"));
    simple_layout(&layout, &layers, "t");
    let bundle = s.base.join(format!("bundle-{name}"));
    let src: ImageSource = format!("oci:{}:t", layout.display()).parse().unwrap();
    let opts = BundleOptions {
        limits,
        ..Default::default()
    };
    prepare_bundle(&s.store, &src, &bundle, None, &opts)
        .map(|_| bundle)
        .map_err(|e| format!("{:#}", anyhow::Error::new(e)))
}

fn expect_rejected(name: &str, layers: Vec<(Vec<u8>, Comp)>, limits: UnpackLimits, want: &[&str]) {
    let s = setup();
    let before = outside(&s.base);
    let err = match unpack(&s, name, layers, limits) {
        Ok(b) => panic!("{name}: hostile layer was accepted; bundle {}", b.display()),
        Err(e) => e,
    };
    eprintln!("{name}: rejected: {err}");
    for w in want {
        assert!(
            err.contains(w),
            "{name}: error {err:?} does not mention {w:?}"
        );
    }
    assert!(
        err.contains("layer sha256:"),
        "{name}: error names no layer digest: {err}"
    );
    assert_eq!(std::fs::read(s.canary.join("keep")).unwrap(), b"canary\n");
    assert_eq!(
        outside(&s.base),
        before,
        "{name}: something changed outside the store"
    );
    assert!(
        !s.base.join(format!("bundle-{name}")).exists(),
        "{name}: half-made bundle left behind"
    );
}

fn one(t: TarBuilder) -> Vec<(Vec<u8>, Comp)> {
    vec![(t.finish(), Comp::Gzip)]
}

fn canary_rel() -> &'static str {
    // bundle-X/rootfs/<here> → ../../canary
    "../../canary"
}

#[test]
fn absolute_path() {
    let s = setup();
    let abs = format!("{}/evil", s.canary.display());
    let mut t = TarBuilder::new();
    t.file(&abs, 0o644, b"pwned");
    expect_rejected(
        "absolute",
        one(t),
        UnpackLimits::default(),
        &["absolute path"],
    );
    assert!(!Path::new(&abs).exists());
}

#[test]
fn dotdot_paths() {
    let mut t = TarBuilder::new();
    t.file("../../canary/evil", 0o644, b"pwned");
    expect_rejected(
        "dotdot",
        one(t),
        UnpackLimits::default(),
        &["'..'", "../../canary/evil"],
    );
    let mut t = TarBuilder::new();
    t.dir("a", 0o755)
        .file("a/../../../canary/evil", 0o644, b"pwned");
    expect_rejected("dotdot-inner", one(t), UnpackLimits::default(), &["'..'"]);
}

#[test]
fn symlink_then_write_through() {
    let mut t = TarBuilder::new();
    t.symlink("link", canary_rel())
        .file("link/evil", 0o644, b"pwned");
    expect_rejected(
        "symlink-write",
        one(t),
        UnpackLimits::default(),
        &["link/evil", "above the rootfs"],
    );
    // Nested: a symlink to a directory that itself climbs out.
    let mut t = TarBuilder::new();
    t.dir("d", 0o755)
        .symlink("d/up", "..")
        .symlink("esc", "d/up/d/up/..")
        .file("esc/canary/evil", 0o644, b"pwned");
    expect_rejected(
        "symlink-chain",
        one(t),
        UnpackLimits::default(),
        &["above the rootfs"],
    );
}

#[test]
fn symlink_in_lower_layer() {
    let mut lower = TarBuilder::new();
    lower.symlink("lower", canary_rel());
    let mut upper = TarBuilder::new();
    upper.file("lower/evil", 0o644, b"pwned");
    expect_rejected(
        "symlink-lower",
        vec![(lower.finish(), Comp::Gzip), (upper.finish(), Comp::None)],
        UnpackLimits::default(),
        &["lower/evil", "above the rootfs"],
    );
}

#[test]
fn hardlink_escapes() {
    let mut t = TarBuilder::new();
    t.hardlink("hl", "../../canary/keep");
    expect_rejected(
        "hardlink-dotdot",
        one(t),
        UnpackLimits::default(),
        &["hardlink target", "rejected"],
    );
    let mut t = TarBuilder::new();
    t.hardlink("hl", "/etc/passwd");
    expect_rejected(
        "hardlink-abs",
        one(t),
        UnpackLimits::default(),
        &["hardlink target", "rejected"],
    );
    let mut t = TarBuilder::new();
    t.symlink("sl", canary_rel()).hardlink("hl", "sl/keep");
    expect_rejected(
        "hardlink-via-symlink",
        one(t),
        UnpackLimits::default(),
        &["above the rootfs"],
    );
    let mut t = TarBuilder::new();
    t.hardlink("hl", "does/not/exist");
    expect_rejected(
        "hardlink-missing",
        one(t),
        UnpackLimits::default(),
        &["does not exist inside the rootfs"],
    );
}

#[test]
fn whiteout_escapes() {
    let mut t = TarBuilder::new();
    t.symlink("wl", canary_rel())
        .file("wl/.wh.keep", 0o644, b"");
    expect_rejected(
        "whiteout-via-symlink",
        one(t),
        UnpackLimits::default(),
        &["above the rootfs"],
    );
    let mut t = TarBuilder::new();
    t.file("../canary/.wh.keep", 0o644, b"");
    expect_rejected(
        "whiteout-dotdot",
        one(t),
        UnpackLimits::default(),
        &["'..'"],
    );
    let mut lower = TarBuilder::new();
    lower.symlink("wl", canary_rel());
    let mut upper = TarBuilder::new();
    upper.file("wl/.wh..wh..opq", 0o644, b"");
    expect_rejected(
        "opaque-via-lower-symlink",
        vec![(lower.finish(), Comp::Gzip), (upper.finish(), Comp::None)],
        UnpackLimits::default(),
        &["above the rootfs"],
    );
    let mut t = TarBuilder::new();
    t.file(".wh...", 0o644, b"");
    expect_rejected(
        "whiteout-of-dotdot",
        one(t),
        UnpackLimits::default(),
        &["whiteout names no file"],
    );
}

#[test]
fn tar_bombs() {
    let mut t = TarBuilder::new();
    t.file("zeros", 0o644, &vec![0u8; 16 << 20]);
    expect_rejected(
        "size-bomb",
        one(t),
        UnpackLimits {
            max_bytes: 4 << 20,
            max_entries: 1000,
        },
        &["decompressed image size exceeds the limit of 4194304"],
    );
    let mut t = TarBuilder::new();
    for i in 0..300 {
        t.file(&format!("f{i}"), 0o644, b"");
    }
    expect_rejected(
        "entry-bomb",
        one(t),
        UnpackLimits {
            max_bytes: 1 << 30,
            max_entries: 100,
        },
        &["number of archive entries exceeds the limit of 100"],
    );
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0width$o}", width = field.len() - 1);
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()..].fill(0);
}

/// A GNU sparse file: 512 stored bytes, 1 GiB apparent size.
fn sparse_bomb() -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..6].copy_from_slice(b"sparse");
    h.set_entry_type(EntryType::GNUSparse);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(common::image::MTIME);
    h.set_size(512);
    {
        let gnu = h.as_gnu_mut().unwrap();
        octal(&mut gnu.sparse[0].offset, (1 << 30) - 512);
        octal(&mut gnu.sparse[0].numbytes, 512);
        octal(&mut gnu.realsize, 1 << 30);
    }
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, &[7u8; 512][..]).unwrap();
    b.into_inner().unwrap()
}

#[test]
fn sparse_file_bomb() {
    expect_rejected(
        "sparse-bomb",
        vec![(sparse_bomb(), Comp::Gzip)],
        UnpackLimits {
            max_bytes: 16 << 20,
            max_entries: 1000,
        },
        &["total size of unpacked files exceeds the limit of 16777216"],
    );
}

#[test]
fn symlink_loop_is_rejected() {
    let mut t = TarBuilder::new();
    t.symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", 0o644, b"");
    expect_rejected(
        "symlink-loop",
        one(t),
        UnpackLimits::default(),
        &["too many levels of symlinks"],
    );
}

#[test]
fn confined_cases_stay_inside() {
    // Not escapes, but classic traps: a file entry replacing a symlink must
    // not write through it, and an absolute symlink resolves inside the rootfs.
    let s = setup();
    let before = outside(&s.base);
    let abs_canary = s.canary.display().to_string();
    let mut t = TarBuilder::new();
    t.symlink("f", "../../canary/keep")
        .file("f", 0o644, b"replaced\n")
        .symlink("abs", &abs_canary)
        .file("abs/inside", 0o644, b"inside\n")
        .symlink("bin", "/usr/bin")
        .file("bin/sh", 0o755, b"sh\n");
    let bundle = unpack(&s, "confined", one(t), UnpackLimits::default()).unwrap();
    let r = bundle.join("rootfs");
    assert_eq!(std::fs::read(r.join("f")).unwrap(), b"replaced\n");
    assert!(!std::fs::symlink_metadata(r.join("f"))
        .unwrap()
        .file_type()
        .is_symlink());
    let inside = r.join(abs_canary.trim_start_matches('/')).join("inside");
    assert_eq!(std::fs::read(&inside).unwrap(), b"inside\n");
    assert_eq!(std::fs::read(r.join("usr/bin/sh")).unwrap(), b"sh\n");
    assert_eq!(std::fs::read(s.canary.join("keep")).unwrap(), b"canary\n");
    let after: Vec<String> = outside(&s.base)
        .into_iter()
        .filter(|k| !k.starts_with("bundle-confined"))
        .collect();
    assert_eq!(after, before);
}

#[test]
fn entry_type_cases() {
    // A raw regular file with a NUL-free name but a path made only of "./"
    // is the archive root: accepted and ignored.
    let s = setup();
    let mut t = TarBuilder::new();
    t.raw(b"./", EntryType::Directory, b"", 0o755, 0, 0, b"")
        .file("ok", 0o644, b"ok");
    let b = unpack(&s, "root-entry", one(t), UnpackLimits::default()).unwrap();
    assert_eq!(std::fs::read(b.join("rootfs/ok")).unwrap(), b"ok");
}
