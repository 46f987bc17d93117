//! The modules of `vmm/src` depend one way (ARCHITECTURE.md, "Inside
//! `vmm/src`"): each may use only modules of a lower layer. This test reads
//! every source file's `crate::<module>` paths (comments aside) and fails on
//! an upward or sideways use, or on a module missing from the table below,
//! so a cycle such as `machine` → `seccomp` → `cli` → `machine` cannot come
//! back unseen.

use std::path::{Path, PathBuf};

/// Each top-level module of the crate and its layer (higher uses lower).
const LAYERS: &[(&str, u8)] = &[
    ("arch", 0),
    ("exit", 0),
    ("timings", 0),
    ("fatal_log", 0),
    ("check", 0),
    ("vstate", 1),
    ("cmdline", 1),
    ("devices", 2),
    ("seccomp", 2),
    ("panic_report", 2),
    ("machine", 3),
    ("runtime", 4),
    ("bench", 5),
    ("cli", 6),
];

/// Items of the crate root every module may use.
const ROOT_ITEMS: &[&str] = &["error_chain"];

fn layer(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read vmm/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::<name>` paths in `source`, outside comments.
fn crate_paths(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
            rest = after;
        }
    }
    found
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut wrong = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let top = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_string())
            .expect("a first component");
        if top == "lib" || top == "bin" {
            continue;
        }
        let Some(own) = layer(&top) else {
            wrong.push(format!(
                "{}: module `{top}` has no layer in this test's table",
                relative.display()
            ));
            continue;
        };
        let source = std::fs::read_to_string(file).expect("read a source file");
        for used in crate_paths(&source) {
            if used == top || ROOT_ITEMS.contains(&used.as_str()) {
                continue;
            }
            match layer(&used) {
                Some(l) if l < own => {}
                Some(l) => wrong.push(format!(
                    "{}: `{top}` (layer {own}) uses `crate::{used}` (layer {l})",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "{}: uses `crate::{used}`, which has no layer in this test's table",
                    relative.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_scan_sees_paths_and_skips_comments() {
    let source = "use crate::machine::Machine; // crate::cli\n/// [`crate::runtime`]\nlet x = crate::error_chain(&e);";
    assert_eq!(crate_paths(source), vec!["machine", "error_chain"]);
}
