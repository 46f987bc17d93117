//! Busybox bundles for guest tests (built by `rootfs/build-busybox-bundle.sh`)
//! and edits of their `config.json`.

use std::path::Path;
use std::process::Command;

use crate::artifacts::repo_root;

/// Builds a busybox bundle in `dir` (runc's default spec, process `true`).
/// Panics with the script's stderr if it fails (a test set-up error).
pub fn build_busybox_bundle(dir: &Path) {
    let script = repo_root().join("rootfs/build-busybox-bundle.sh");
    crate::run_ok(
        Command::new(&script)
            .arg("--no-install")
            .arg(dir)
            .arg("true"),
        &script.display().to_string(),
    );
}

/// Edits the bundle's config.json in place.
pub fn edit_config(bundle: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read config.json"))
            .expect("parse config.json");
    edit(&mut spec);
    std::fs::write(&path, serde_json::to_string_pretty(&spec).expect("json"))
        .expect("write config.json");
}
