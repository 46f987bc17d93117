//! vmrun's release binary has the functions of `vmm/hot-text.order` side by
//! side at the start of its code (`vmm/build/hot_text.rs`), and the list
//! still names the binary's functions. Without that, an idle VMM keeps
//! ~1.7 MiB more of the binary resident (README, "The VMM's code, placed"),
//! and the build only warns.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use vmrun_tests::guest_env::loud;

/// Share of the listed functions the binary must still have.
const MIN_FOUND: f64 = 0.5;
/// Share of the lowest-placed functions that must be listed ones.
const MIN_IN_FRONT: f64 = 0.95;

/// `target/release/vmrun` of this test's target directory.
fn release_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test>
    let target = exe.parent()?.parent()?.parent()?;
    Some(target.join("release").join("vmrun")).filter(|p| p.is_file())
}

/// (address, name) of the binary's function symbols, by address.
fn functions(binary: &Path) -> Option<Vec<(u64, String)>> {
    let out = Command::new("nm")
        .args(["--defined-only"])
        .arg(binary)
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    let mut found: Vec<(u64, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
            let kind = fields.next()?;
            let name = fields.next()?;
            ["t", "T", "w", "W"]
                .contains(&kind)
                .then(|| (addr, name.to_string()))
        })
        .collect();
    found.sort();
    Some(found)
}

#[test]
fn the_listed_functions_come_first_in_the_release_binary() {
    let Some(binary) = release_binary() else {
        loud("SKIPPED: the_listed_functions_come_first_in_the_release_binary: no target/release/vmrun (cargo build --release -p vmrun)");
        return;
    };
    let Some(functions) = functions(&binary) else {
        loud("SKIPPED: the_listed_functions_come_first_in_the_release_binary: `nm` (binutils) did not run");
        return;
    };
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vmm/hot-text.order");
    let text = std::fs::read_to_string(&order).expect("read vmm/hot-text.order");
    let listed: HashSet<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(!listed.is_empty(), "vmm/hot-text.order is empty");

    let present: HashSet<&str> = functions.iter().map(|(_, n)| n.as_str()).collect();
    let found = listed.iter().filter(|n| present.contains(*n)).count();
    assert!(
        found as f64 >= MIN_FOUND * listed.len() as f64,
        "vmm/hot-text.order does not match {1}: only {found} of its {0} functions are in it. \
         Build vmrun alone (cargo build --release -p vmrun: with other packages cargo unifies \
         dependency features and the symbol hashes change); if it was, the list is stale: \
         rerun tests/measure-hot-text.sh",
        listed.len(),
        binary.display()
    );

    // The linker puts the ordered functions before every other one.
    let in_front = functions
        .iter()
        .take(found)
        .filter(|(_, n)| listed.contains(n.as_str()))
        .count();
    assert!(
        in_front as f64 >= MIN_IN_FRONT * found as f64,
        "only {in_front} of the {found} lowest-placed functions of {} are listed ones: \
         the linker did not apply vmm/hot-text.order (see the build's warnings)",
        binary.display()
    );
}
