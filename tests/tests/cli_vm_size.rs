//! The size of a container's microVM from its annotations, checked
//! through the binary on any host: a sizing annotation that is not a
//! number or is out of range fails `create` and `run` with an error naming
//! it, before any VM exists and leaving nothing under `--root` (a good
//! one is read by `vm_size`'s unit tests; booting with it is the guest
//! tests' business).

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use vmrun_tests::bundle::edit_config;
use vmrun_tests::{run_vmrun, RunOutput};

/// Hang guard: nothing here boots.
const QUICK: Duration = Duration::from_secs(60);

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 temp path")
}

/// A bundle (`vmrun spec` without its terminal, an empty rootfs) whose
/// annotations are `annotations`.
fn bundle_with(dir: &Path, annotations: serde_json::Value) {
    std::fs::create_dir_all(dir.join("rootfs")).expect("rootfs");
    let out = run_vmrun(&["spec", "--bundle", path_str(dir)], QUICK);
    assert!(out.success(), "{}", out.describe());
    edit_config(dir, |spec| {
        spec["process"]["terminal"] = json!(false);
        spec["annotations"] = annotations;
    });
}

fn assert_refused_naming(out: &RunOutput, annotation: &str, root: &Path) {
    assert_eq!(
        out.status.and_then(|s| s.code()),
        Some(1),
        "{}",
        out.describe()
    );
    assert!(out.stderr.contains(annotation), "{}", out.describe());
    let left: Vec<_> = std::fs::read_dir(root)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under the root: {left:?}");
}

#[test]
fn a_bad_sizing_annotation_is_refused_before_any_vm_naming_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path().join("root");
    let cases = [
        ("io.katacontainers.config.hypervisor.default_memory", "lots"),
        ("io.katacontainers.config.hypervisor.default_vcpus", "0"),
        ("io.kubernetes.cri.sandbox-memory", "-1"),
        ("io.kubernetes.cri.sandbox-cpu-quota", "1.5"),
    ];
    for (i, (annotation, value)) in cases.into_iter().enumerate() {
        let dir = tmp.path().join(format!("bundle-{i}"));
        bundle_with(
            &dir,
            json!({
                "io.kubernetes.cri.container-type": "sandbox",
                annotation: value,
            }),
        );
        let id = format!("sized-{i}");
        let create = run_vmrun(
            &[
                "--root",
                path_str(&root),
                "create",
                "--bundle",
                path_str(&dir),
                &id,
            ],
            QUICK,
        );
        assert_refused_naming(&create, annotation, &root);
        let run = run_vmrun(
            &[
                "--root",
                path_str(&root),
                "run",
                "--bundle",
                path_str(&dir),
                &id,
            ],
            QUICK,
        );
        assert_refused_naming(&run, annotation, &root);
    }
}
