//! End-to-end runs of the test front end binary, which wires the `cli`
//! module exactly as `vmrun` is meant to.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::image::build_test_layout;

fn cli(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vmrun-image-cli"))
        .arg("--image-store")
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn unpack_generates_runtime_config() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = tmp.path().join("layout");
    build_test_layout(&layout);
    let store = tmp.path().join("store");
    let bundle = tmp.path().join("bundle");
    let src = format!("oci:{}:multi", layout.display());
    let out = cli(
        &store,
        &[
            "image",
            "unpack",
            "-q",
            &src,
            bundle.to_str().unwrap(),
            "--",
            "echo",
            "hi",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 layers"));

    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    let p = &cfg["process"];
    assert_eq!(
        p["args"],
        serde_json::json!(["/usr/bin/tool", "echo", "hi"])
    );
    assert_eq!(
        p["env"],
        serde_json::json!(["FOO=bar", "PATH=/usr/bin:/bin"])
    );
    assert_eq!(p["cwd"], "/work");
    assert_eq!(p["user"]["uid"], 1000);
    assert_eq!(p["user"]["gid"], 1000);
    assert_eq!(p["user"]["additionalGids"], serde_json::json!([10, 29]));
    assert_eq!(p["terminal"], false);
    assert_eq!(cfg["root"]["path"], "rootfs");
    assert_eq!(cfg["annotations"]["org.example.label"], "yes");
    // runc spec defaults.
    let mounts: Vec<&str> = cfg["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    for m in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
    ] {
        assert!(mounts.contains(&m), "mount {m} missing: {mounts:?}");
    }
    let ns: Vec<&str> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    for n in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(ns.contains(&n), "namespace {n} missing: {ns:?}");
    }
    let caps = &p["capabilities"]["bounding"];
    assert!(
        caps.as_array().unwrap().iter().any(|c| c == "CAP_KILL"),
        "{caps}"
    );
    assert!(cfg["linux"]["maskedPaths"]
        .as_array()
        .is_some_and(|m| !m.is_empty()));

    // Without override the image's Cmd is used; the rootfs is reused.
    let out = cli(
        &store,
        &[
            "run",
            "--image",
            &src,
            "--bundle",
            bundle.to_str().unwrap(),
            "ctr1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("rootfs reused"));
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        cfg["process"]["args"],
        serde_json::json!(["/usr/bin/tool", "--help"])
    );

    // A different image into the same bundle is refused, bundle untouched.
    let out = cli(
        &store,
        &[
            "image",
            "unpack",
            "-q",
            "--platform",
            "linux/arm64",
            &src,
            bundle.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rootfs exists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/usr/bin/tool").exists());
}

#[test]
fn bad_input_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let bundle = tmp.path().join("bundle");
    for (src, want) in [
        (
            format!("oci:{}", tmp.path().join("nope").display()),
            "oci-layout",
        ),
        ("Bad/Name".to_string(), "invalid image reference"),
        (
            format!("docker-archive:{}", tmp.path().join("nope.tar").display()),
            "nope.tar",
        ),
    ] {
        let out = cli(
            &store,
            &["image", "unpack", "-q", &src, bundle.to_str().unwrap()],
        );
        assert!(!out.status.success(), "{src} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{src}: {err}");
        assert!(!bundle.exists(), "{src}: bundle left behind");
    }
    // Image without a command and no override.
    let layout = tmp.path().join("nocmd");
    let mut b = common::image::LayoutBuilder::new(&layout);
    let mut t = common::image::TarBuilder::new();
    t.file("x", 0o644, b"x");
    let d = b.image(
        &[(t.finish(), common::image::Comp::Gzip)],
        serde_json::json!({"config": {}}),
        "amd64",
    );
    b.tag(&d, "t");
    let out = cli(
        &store,
        &[
            "image",
            "unpack",
            "-q",
            &format!("oci:{}:t", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no command"));
    assert!(!bundle.exists());
    // User that does not exist in the image.
    let layout = tmp.path().join("baduser");
    let mut b = common::image::LayoutBuilder::new(&layout);
    let mut t = common::image::TarBuilder::new();
    t.dir("etc", 0o755)
        .file("etc/passwd", 0o644, b"root:x:0:0::/:/bin/sh\n");
    let d = b.image(
        &[(t.finish(), common::image::Comp::Gzip)],
        serde_json::json!({"config": {"User": "ghost", "Cmd": ["x"]}}),
        "amd64",
    );
    b.tag(&d, "t");
    let out = cli(
        &store,
        &[
            "image",
            "unpack",
            "-q",
            &format!("oci:{}:t", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ghost") && err.contains("User"),
        "{err}"
    );
    assert!(!bundle.exists());

    let out = cli(&store, &["images", "--format", "json"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
    let out = cli(&store, &["rmi", "nothere:1"]);
    assert!(!out.status.success());
}
