//! Links the `vmrun` binary with packed relative relocations (DT_RELR)
//! where the linker and C library have them.
//!
//! A position-independent `vmrun` carries ~19 000 relative relocations.
//! As RELA entries (24 bytes each, ~450 KiB) the dynamic loader reads them
//! all at every start, so those pages are resident in every VMM process;
//! packed (DT_RELR) they take ~6 KiB. Needs GNU ld ≥ 2.38 (or lld) and
//! glibc ≥ 2.36; elsewhere the binary is linked as before.

use std::path::PathBuf;
use std::process::Command;

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

/// Adds the flag to the binary's link where a probe links and runs with it.
pub fn configure(target: &str, host: &str) {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if !target.ends_with("-linux-gnu") {
        return;
    }
    // The probe below runs what it links: not when cross-compiling.
    if target != host {
        println!("cargo:warning=vmrun is linked without packed relocations (DT_RELR): not probed when cross-compiling");
    } else if relr_links_and_runs() {
        println!("cargo:rustc-link-arg-bin=vmrun={FLAG}");
    } else {
        println!("cargo:warning=vmrun is linked without packed relocations (DT_RELR): the linker or C library lacks them");
    }
}

/// Links and runs a C program with the flag using the linker rustc will
/// use, warnings being errors (an older GNU ld only warns that it ignores
/// the flag).
fn relr_links_and_runs() -> bool {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let probe = out_dir.join("relr-probe");
    let linker = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".to_string());
    let mut link = Command::new(&linker);
    link.args([
        "-x",
        "c",
        "-",
        "-fPIE",
        "-pie",
        "-Wl,--fatal-warnings",
        FLAG,
        "-o",
    ])
    .arg(&probe);
    // A relative relocation for the linker to pack.
    let source = b"static int x; int *p = &x; int main(void) { return *p; }\n";
    super::probe::succeeds_on(&mut link, source)
        && Command::new(&probe).status().is_ok_and(|s| s.success())
}
