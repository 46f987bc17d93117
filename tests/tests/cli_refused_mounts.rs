//! Mounts a microVM cannot honour are refused by every verb that would
//! start a container (`create`, `run`, the one-step `vmrun DIR`) naming
//! `mounts[i]` and the reason, with exit 1, before any VM starts, and
//! leaving nothing behind: no state directory, no change to the bundle.
//! These boot nothing, so they run on any host.

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use vmrun_tests::bundle::edit_config;
use vmrun_tests::{run_vmrun, RunOutput};

/// Hang guard: a refusal comes before anything boots.
const QUICK: Duration = Duration::from_secs(60);

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A bundle with runc's default spec and an empty rootfs.
fn bundle(dir: &Path) -> std::path::PathBuf {
    let bundle = dir.join("bundle");
    std::fs::create_dir_all(bundle.join("rootfs")).expect("mkdir rootfs");
    let out = run_vmrun(&["spec", "--bundle", path_str(&bundle)], QUICK);
    assert!(out.success(), "vmrun spec: {}", out.describe());
    edit_config(&bundle, |spec| spec["process"]["terminal"] = json!(false));
    bundle
}

/// Everything under `dir`, as sorted relative paths.
fn tree(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Appends `mount` to the bundle's mounts and runs every starting verb on
/// it: each must exit 1 naming `mounts[i]` and `reason`, and leave the
/// state root and the bundle as they were.
fn assert_refused(mount: Value, reason: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = bundle(dir.path());
    let mut index = 0;
    edit_config(&bundle, |spec| {
        let mounts = spec["mounts"]
            .as_array_mut()
            .expect("runc's spec has mounts");
        index = mounts.len();
        mounts.push(mount.clone());
    });
    let config_before = std::fs::read(bundle.join("config.json")).expect("read config");
    let bundle_before = tree(&bundle);
    let root = dir.path().join("state");
    let root_s = path_str(&root);
    let bundle_s = path_str(&bundle);
    let verbs: [&[&str]; 3] = [
        &["--root", root_s, "create", "--bundle", bundle_s, "refused"],
        &["--root", root_s, "run", "--bundle", bundle_s, "refused"],
        &["--root", root_s, bundle_s],
    ];
    let expected = format!("mounts[{index}]: ");
    for args in verbs {
        let out: RunOutput = run_vmrun(args, QUICK);
        assert_eq!(
            out.status.and_then(|s| s.code()),
            Some(1),
            "vmrun {args:?} must exit 1\n{}",
            out.describe()
        );
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains(&expected))
            .unwrap_or_else(|| panic!("vmrun {args:?}: no {expected:?} in\n{}", out.describe()));
        assert!(
            line.contains(reason),
            "vmrun {args:?}: the refusal must say {reason:?}: {line}"
        );
        assert!(
            tree(&root).is_empty(),
            "vmrun {args:?} left state behind: {:?}",
            tree(&root)
        );
        assert_eq!(
            tree(&bundle),
            bundle_before,
            "vmrun {args:?} changed the bundle"
        );
        assert_eq!(
            std::fs::read(bundle.join("config.json")).expect("read config"),
            config_before,
            "vmrun {args:?} rewrote config.json"
        );
    }
}

#[test]
fn a_shared_bind_is_refused_naming_the_mount() {
    assert_refused(
        json!({"destination": "/data", "type": "bind", "source": "/tmp",
               "options": ["rbind", "rshared"]}),
        "option \"rshared\"",
    );
    assert_refused(
        json!({"destination": "/data", "type": "none", "source": "/tmp",
               "options": ["bind", "shared"]}),
        "option \"shared\"",
    );
}

#[test]
fn an_id_mapped_bind_is_refused_naming_the_mount() {
    assert_refused(
        json!({"destination": "/data", "type": "bind", "source": "/tmp",
               "options": ["rbind", "idmap"]}),
        "option \"idmap\"",
    );
}

#[test]
fn a_filesystem_the_guest_kernel_does_not_provide_is_refused() {
    assert_refused(
        json!({"destination": "/data", "type": "nfs", "source": "server:/export",
               "options": ["ro"]}),
        "type \"nfs\"",
    );
}

#[test]
fn bind_sources_the_vm_cannot_expose_are_refused() {
    assert_refused(
        json!({"destination": "/data", "type": "bind", "source": "relative/dir",
               "options": ["rbind"]}),
        "must be an absolute host path",
    );
    assert_refused(
        json!({"destination": "/data", "type": "bind",
               "source": "/nonexistent/vmrun-refused-mount", "options": ["rbind"]}),
        "source /nonexistent/vmrun-refused-mount",
    );
    let sockets = tempfile::tempdir().expect("tempdir");
    let socket = sockets.path().join("app.sock");
    let _listener = UnixListener::bind(&socket).expect("bind a unix socket");
    assert_refused(
        json!({"destination": "/run/app.sock", "type": "bind", "source": path_str(&socket),
               "options": ["bind"]}),
        "sockets, fifos and device nodes cannot cross into a microVM",
    );
}
