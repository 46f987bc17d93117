//! `podman save` (docker-archive) → unpack, compared with podman's own
//! view of the image (`podman image mount`).

mod common;

use std::path::Path;
use std::process::Command;

use common::image::build_test_layout;
use common::tree::assert_same_tree;
use vmrun_image::{prepare_bundle, BundleOptions, ImageSource, Store};

fn podman(bin: &Path, root: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root")
        .arg(root.join("root"))
        .arg("--runroot")
        .arg(root.join("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--events-backend",
            "none",
            "--cgroup-manager",
            "cgroupfs",
        ]);
    c
}

#[test]
fn podman_save_unpack_equals_podman_image() {
    let name = "podman_save_unpack_equals_podman_image";
    if !common::is_root() {
        common::skip(name, "podman image mount needs root here");
        return;
    }
    let (Some(podman_bin), Some(skopeo)) = (
        common::tool("podman", "podman"),
        common::tool("skopeo", "skopeo"),
    ) else {
        common::skip(
            name,
            "podman or skopeo is not installed and could not be installed",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    build_test_layout(&layout);
    let proot = tmp.path().join("podman");
    let image = "localhost/vmrun-test:1";
    common::run(
        Command::new(&skopeo)
            .args(["--insecure-policy", "copy", "-q"])
            .arg(format!("oci:{}:amd64", layout.display()))
            .arg(format!(
                "containers-storage:[vfs@{}+{}]{image}",
                proot.join("root").display(),
                proot.join("runroot").display()
            )),
    );
    let archive = tmp.path().join("saved.tar");
    common::run(
        podman(&podman_bin, &proot)
            .args(["save", "-q", "--format", "docker-archive", "-o"])
            .arg(&archive)
            .arg(image),
    );

    let store = Store::open(tmp.path().join("store")).unwrap();
    let bundle = tmp.path().join("bundle");
    let src: ImageSource = format!("docker-archive:{}", archive.display())
        .parse()
        .unwrap();
    let info = prepare_bundle(&store, &src, &bundle, None, &BundleOptions::default()).unwrap();
    assert_eq!(info.unpack.layers, 2);
    // Selecting by RepoTag works too, a wrong tag is an error.
    let src: ImageSource = format!("docker-archive:{}:{image}", archive.display())
        .parse()
        .unwrap();
    prepare_bundle(
        &store,
        &src,
        &tmp.path().join("bundle-tag"),
        None,
        &BundleOptions::default(),
    )
    .unwrap();
    let src: ImageSource = format!("docker-archive:{}:localhost/other:2", archive.display())
        .parse()
        .unwrap();
    assert!(prepare_bundle(
        &store,
        &src,
        &tmp.path().join("bundle-bad"),
        None,
        &BundleOptions::default()
    )
    .is_err());

    let mounted = common::run(podman(&podman_bin, &proot).args(["image", "mount", image]));
    let mounted = mounted.trim();
    assert!(!mounted.is_empty(), "podman image mount printed nothing");
    assert_same_tree(
        &bundle.join("rootfs"),
        Path::new(mounted),
        "vmrun-image vs podman image mount",
    );
    common::run(podman(&podman_bin, &proot).args(["image", "unmount", image]));

    // The config survived the round trip.
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["process"]["args"],
        serde_json::json!(["/usr/bin/tool", "--help"])
    );
    assert_eq!(cfg["process"]["user"]["uid"], 1000);
}
