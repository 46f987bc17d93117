//! The images the clients load, built locally without any network: a
//! docker-archive tar (what `podman load` and `ctr images import` both
//! read) holding two images over one layer made from Debian's
//! busybox-static — `vmrun.test/busybox` (command `sh`) and
//! `vmrun.test/pause` (a shell that sleeps until SIGTERM/SIGINT, then
//! exits 0: the pod sandbox's "pause" process).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::json;

use crate::process::run_ok;

/// The busybox image's name (as podman and containerd list it).
pub const BUSYBOX_IMAGE: &str = "vmrun.test/busybox:latest";
/// The pause image's name.
pub const PAUSE_IMAGE: &str = "vmrun.test/pause:latest";
/// The pause image's command.
pub const PAUSE_COMMAND: [&str; 3] = [
    "sh",
    "-c",
    "trap 'exit 0' TERM INT; sleep 2147483647 & wait",
];
/// The images' `PATH`.
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// busybox-static's binary.
const BUSYBOX: &str = "/bin/busybox";

/// The archive, built once per test process under `scratch`.
pub fn image_archive(scratch: &Path) -> &'static Path {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| build_image_archive(&scratch.join("images")))
}

/// Builds the docker-archive in the new directory `dir`; returns its path.
/// Panics if a step fails (a test set-up error).
pub fn build_image_archive(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    let archive_dir = dir.join("archive");
    std::fs::create_dir_all(&archive_dir).expect("create the archive dir");
    build_busybox_rootfs(&rootfs);

    let layer = dir.join("layer.tar");
    run_ok(
        Command::new("tar")
            .args([
                "--numeric-owner",
                "--owner=0",
                "--group=0",
                "--sort=name",
                "--mtime=@0",
                "-C",
            ])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&layer)
            .arg("."),
        "tar of the busybox layer",
    );
    let layer_digest = sha256_file(&layer);
    let layer_dir = archive_dir.join(&layer_digest);
    std::fs::create_dir_all(&layer_dir).expect("create the layer dir");
    std::fs::rename(&layer, layer_dir.join("layer.tar")).expect("move the layer");

    let mut manifest = Vec::new();
    for (name, cmd) in [
        (BUSYBOX_IMAGE, vec!["sh"]),
        (PAUSE_IMAGE, PAUSE_COMMAND.to_vec()),
    ] {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": { "Env": [PATH_ENV], "Cmd": cmd, "WorkingDir": "/" },
            "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{layer_digest}")] },
            "history": [{ "created": "2026-01-01T00:00:00Z", "created_by": "vmrun tests: busybox-static" }]
        });
        let text = serde_json::to_vec(&config).expect("config JSON");
        let staged = dir.join("config.json");
        std::fs::write(&staged, &text).expect("write an image config");
        let config_name = format!("{}.json", sha256_file(&staged));
        std::fs::rename(&staged, archive_dir.join(&config_name)).expect("move the config");
        manifest.push(json!({
            "Config": config_name,
            "RepoTags": [name],
            "Layers": [format!("{layer_digest}/layer.tar")],
        }));
    }
    std::fs::write(
        archive_dir.join("manifest.json"),
        serde_json::to_vec(&manifest).expect("manifest JSON"),
    )
    .expect("write manifest.json");

    let archive = dir.join("images.tar");
    run_ok(
        Command::new("tar")
            .arg("-C")
            .arg(&archive_dir)
            .arg("-cf")
            .arg(&archive)
            .arg("."),
        "tar of the docker-archive",
    );
    archive
}

/// A busybox rootfs: /bin/busybox, every applet as a symlink to it, the
/// usual directories, /etc/passwd and /etc/group.
fn build_busybox_rootfs(root: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "run", "root",
        "var/tmp", "tmp", "data",
    ] {
        std::fs::create_dir_all(root.join(d)).expect("create a rootfs dir");
    }
    run_ok(
        Command::new("chmod").arg("1777").arg(root.join("tmp")),
        "chmod /tmp",
    );
    std::fs::copy(BUSYBOX, root.join("bin/busybox"))
        .unwrap_or_else(|e| panic!("{BUSYBOX} (package busybox-static): {e}"));
    let list = Command::new(BUSYBOX)
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let link = root.join(applet);
        if applet.is_empty() || applet == "bin/busybox" || link.exists() {
            continue;
        }
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).expect("create an applet dir");
        }
        std::os::unix::fs::symlink("/bin/busybox", &link).expect("link an applet");
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .expect("write /etc/passwd");
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .expect("write /etc/group");
}

/// The hex SHA-256 of a file (`sha256sum`; the tests crate has no hasher).
fn sha256_file(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let digest = text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(digest.len(), 64, "sha256sum said {text:?}");
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_both_images_over_one_layer() {
        let dir = tempfile::tempdir().expect("temp dir");
        let archive = build_image_archive(&dir.path().join("img"));
        let list = Command::new("tar")
            .arg("-tf")
            .arg(&archive)
            .output()
            .expect("tar -t");
        let names = String::from_utf8_lossy(&list.stdout);
        assert!(names.lines().any(|l| l == "./manifest.json"), "{names}");
        assert_eq!(
            names.lines().filter(|l| l.ends_with("/layer.tar")).count(),
            1,
            "{names}"
        );
        let manifest: serde_json::Value = serde_json::from_slice(
            &std::fs::read(dir.path().join("img/archive/manifest.json")).expect("manifest"),
        )
        .expect("manifest JSON");
        let tags: Vec<&str> = manifest
            .as_array()
            .expect("an array")
            .iter()
            .filter_map(|m| m["RepoTags"][0].as_str())
            .collect();
        assert_eq!(tags, [BUSYBOX_IMAGE, PAUSE_IMAGE]);
        let sh = dir.path().join("img/rootfs/bin/sh");
        assert_eq!(
            std::fs::read_link(sh).expect("sh is a link"),
            Path::new("/bin/busybox")
        );
    }
}
