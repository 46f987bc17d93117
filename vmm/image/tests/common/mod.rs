//! Shared helpers for the integration tests: building images from scratch,
//! snapshotting trees, finding tools.
#![allow(dead_code)]

pub mod image;
pub mod registry;
pub mod tls_server;
pub mod token_server;
pub mod tree;

use std::path::PathBuf;
use std::process::Command;

/// Path of an installed tool, or None (after trying `apt-get install`).
pub fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let find = || {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|c| c.is_file())
        })
    };
    if let Some(p) = find() {
        return Some(p);
    }
    if is_root() {
        let _ = Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    find()
}

/// Print a loud skip message.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
    eprintln!("SKIPPED: {test}: {why}");
}

/// Whether we run as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Run a command, panicking with its output on failure.
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
