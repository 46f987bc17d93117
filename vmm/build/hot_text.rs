//! Places the functions an idle VMM executes side by side at the start of
//! the binary's code, in a release build linked by lld (rustc's default
//! linker on x86_64 Linux): the linker's symbol ordering file
//! `hot-text.order`, written by `tests/measure-hot-text.sh`.
//!
//! The kernel maps a file's pages into a process up to 16 at a time
//! (fault-around: every page-cached page in the 64 KiB around a fault), so
//! what a VMM has resident of the binary depends on how many 64 KiB
//! windows its executed code spans. Measured on an idle VMM in the test
//! host (`/proc/PID/smaps`): as the crates happened to be linked, it had
//! executed in 2.0 MiB of pages spread over the 7 MiB of code and had 3.9
//! MiB of the code mapped; with the list, 1.6 and 2.3 MiB. Names the
//! binary no longer has are skipped without a word (a stale list only
//! places less code well); another linker, or a rustc that does not link
//! with lld, gets the binary as before and a build warning.
//!
//! Symbol names carry hashes of their crates' build configuration: the
//! list matches `cargo build --release -p vmrun`. Built together with
//! other packages (`--workspace`, or `-p vmrun -p vmrun-cri-client`),
//! cargo unifies the dependencies' features and most names change (1081
//! of 3514 left with the CRI client); `tests/tests/hot_text.rs` fails then.

use std::path::PathBuf;
use std::process::Command;

/// The ordering file, next to `Cargo.toml`.
const ORDER_FILE: &str = "hot-text.order";

/// Adds the ordering to the binary's link where rustc's linker takes it.
pub fn configure() {
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    if std::env::var("PROFILE").as_deref() != Ok("release") {
        return;
    }
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let order = dir.join(ORDER_FILE);
    if !order.is_file() {
        return;
    }
    let flags = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if rustc_links_with(&flags) {
        for flag in &flags {
            println!("cargo:rustc-link-arg-bin=vmrun={flag}");
        }
    } else {
        println!("cargo:warning=vmrun is linked without its hot-text ordering: rustc's linker does not take --symbol-ordering-file (not lld)");
    }
}

/// Whether rustc, with this build's target and flags, links an empty
/// program with `flags` passed to the linker.
fn rustc_links_with(flags: &[String]) -> bool {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let mut command = Command::new(rustc);
    command
        .args([
            "--crate-type",
            "bin",
            "--crate-name",
            "hot_text_probe",
            "--edition",
            "2021",
        ])
        .args(encoded_rustflags())
        .arg("-o")
        .arg(out_dir.join("hot-text-probe"))
        .arg("-");
    if let Ok(target) = std::env::var("TARGET") {
        command.args(["--target", &target]);
    }
    for flag in flags {
        command.arg("-C").arg(format!("link-arg={flag}"));
    }
    super::probe::succeeds_on(&mut command, b"fn main() {}\n")
}

/// The build's `RUSTFLAGS` as cargo hands them to build scripts.
fn encoded_rustflags() -> Vec<String> {
    std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .unwrap_or_default()
        .split('\x1f')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}
