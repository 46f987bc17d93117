//! OCI layout → bundle, compared file by file with `umoci unpack`.

mod common;

use std::process::Command;

use common::image::build_test_layout;
use common::tree::assert_same_tree;
use vmrun_image::cli::{run_image_unpack, UnpackArgs};
use vmrun_image::{prepare_bundle, BundleOptions, ImageSource, Platform, Store};

fn unpack_args(source: String, bundle: &std::path::Path) -> UnpackArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct W {
        #[command(flatten)]
        a: UnpackArgs,
    }
    W::parse_from(["x", "-q", &source, bundle.to_str().unwrap()]).a
}

#[test]
fn layout_unpack_matches_umoci() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    build_test_layout(&layout);
    let store = Store::open(tmp.path().join("store")).unwrap();

    let ours = tmp.path().join("ours");
    let info = run_image_unpack(
        &unpack_args(format!("oci:{}:multi", layout.display()), &ours),
        &store,
    )
    .unwrap();
    assert_eq!(info.unpack.layers, 2);
    assert!(
        !ours.join("rootfs/arch-arm64").exists(),
        "default platform must be amd64"
    );

    // Spot checks that hold regardless of umoci.
    let r = ours.join("rootfs");
    assert!(!r.join("delete-me").exists() && !r.join("delete-dir").exists());
    assert!(!r.join("opaque/old-a").exists() && !r.join("opaque/old-sub").exists());
    assert_eq!(
        std::fs::read(r.join("opaque/new")).unwrap(),
        b"new in layer 2\n"
    );
    assert_eq!(
        std::fs::read(r.join("etc/motd")).unwrap(),
        b"replaced in layer 2\n"
    );
    assert_eq!(
        std::fs::read_link(r.join("etc/localtime"))
            .unwrap()
            .to_str(),
        Some("/usr/share/zoneinfo/Europe/Berlin")
    );

    if common::is_root() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let md = std::fs::metadata(r.join("home/app/.profile")).unwrap();
        assert_eq!(
            (md.uid(), md.gid(), md.mode() & 0o7777),
            (1000, 1000, 0o600)
        );
        assert!(std::fs::metadata(r.join("dev/null"))
            .unwrap()
            .file_type()
            .is_char_device());
    }
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(r.join("usr/bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::metadata(r.join("opaque")).unwrap().mode() & 0o7777,
        0o750
    );
    assert_eq!(
        std::fs::metadata(r.join("usr/bin/tool")).unwrap().ino(),
        std::fs::metadata(r.join("usr/bin/tool-link2"))
            .unwrap()
            .ino()
    );
    assert_eq!(common::tree::hardlink_groups(&r).len(), 1);

    // zstd variant of the same image gives the same tree.
    let z = tmp.path().join("zstd");
    run_image_unpack(
        &unpack_args(format!("oci:{}:zstd", layout.display()), &z),
        &store,
    )
    .unwrap();
    assert_same_tree(&r, &z.join("rootfs"), "gzip vs zstd");

    // Platform selection.
    let arm = tmp.path().join("arm");
    let opts = BundleOptions {
        pull: vmrun_image::registry::PullOptions {
            platform: "linux/arm64".parse::<Platform>().unwrap(),
            quiet: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let src: ImageSource = format!("oci:{}:multi", layout.display()).parse().unwrap();
    prepare_bundle(&store, &src, &arm, None, &opts).unwrap();
    assert!(arm.join("rootfs/arch-arm64").exists());
    let opts = BundleOptions {
        pull: vmrun_image::registry::PullOptions {
            platform: "linux/s390x".parse::<Platform>().unwrap(),
            quiet: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let err = prepare_bundle(&store, &src, &tmp.path().join("none"), None, &opts).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("linux/s390x") && msg.contains("linux/arm64/v8"),
        "{msg}"
    );
    assert!(
        !tmp.path().join("none").exists(),
        "failed unpack left a bundle behind"
    );

    let Some(umoci) = common::tool("umoci", "umoci") else {
        common::skip(
            "layout_unpack_matches_umoci (umoci part)",
            "umoci is not installed and could not be installed",
        );
        return;
    };
    if !common::is_root() {
        common::skip(
            "layout_unpack_matches_umoci (umoci part)",
            "umoci unpack needs root here",
        );
        return;
    }
    let theirs = tmp.path().join("umoci");
    common::run(
        Command::new(umoci)
            .args(["unpack", "--image"])
            .arg(format!("{}:amd64", layout.display()))
            .arg(&theirs),
    );
    assert_same_tree(&r, &theirs.join("rootfs"), "vmrun-image vs umoci");
}

fn xattr(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: valid C strings and a writable buffer of the given length.
    let r = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (r >= 0).then(|| {
        buf.truncate(r as usize);
        buf
    })
}

#[test]
fn pax_xattrs_and_ids() {
    use common::image::{simple_layout, Comp, TarBuilder};
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let mut t = TarBuilder::new();
    t.pax(&[
        ("SCHILY.xattr.user.vmrun", b"yes"),
        ("uid", b"3000000"),
        ("gid", b"3000001"),
    ])
    .file("with-xattr", 0o644, b"x")
    .pax(&[("path", b"pax/long/path/name.txt")])
    .file("short", 0o600, b"via pax path");
    let layout = tmp.path().join("layout");
    simple_layout(&layout, &[(t.finish(), Comp::Gzip)], "t");
    let store = Store::open(tmp.path().join("store")).unwrap();
    let bundle = tmp.path().join("b");
    let src: ImageSource = format!("oci:{}:t", layout.display()).parse().unwrap();
    prepare_bundle(&store, &src, &bundle, None, &BundleOptions::default()).unwrap();
    let r = bundle.join("rootfs");
    assert_eq!(
        std::fs::read(r.join("pax/long/path/name.txt")).unwrap(),
        b"via pax path"
    );
    assert!(!r.join("short").exists());
    let f = r.join("with-xattr");
    if common::is_root() {
        let md = std::fs::metadata(&f).unwrap();
        assert_eq!((md.uid(), md.gid()), (3_000_000, 3_000_001));
    }
    // user.* xattrs need file system support; tmp dirs here are on ext4.
    match xattr(&f, "user.vmrun") {
        Some(v) => assert_eq!(v, b"yes"),
        None => {
            let probe = tmp.path().join("probe");
            std::fs::write(&probe, b"").unwrap();
            let p = std::ffi::CString::new(probe.to_str().unwrap()).unwrap();
            // SAFETY: valid C strings and value buffer.
            let ok = unsafe {
                libc::lsetxattr(p.as_ptr(), c"user.x".as_ptr(), b"1".as_ptr().cast(), 1, 0)
            } == 0;
            assert!(
                !ok,
                "file system supports user xattrs but the layer's xattr was not applied"
            );
            common::skip(
                "pax_xattrs_and_ids (xattr part)",
                "the temp file system has no user xattrs",
            );
        }
    }
}
