//! Deciding whether a guest test can run here, and skipping loudly if not.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use crate::artifacts::{guest_initrd, guest_kernel};
use crate::process::run_vmrun;

/// The runner that runs guest tests inside the test host.
pub const RUNNER: &str = "tests/testhost/run-guest-tests.sh";

/// Set to `1` to turn "this host cannot run guests" into a test failure.
pub const REQUIRE_GUEST_ENV: &str = "VMRUN_REQUIRE_GUEST";

/// What a guest test needs to boot our guest.
#[derive(Debug, Clone)]
pub struct GuestReadiness {
    /// Our guest kernel (vmlinux).
    pub kernel: PathBuf,
    /// Our initramfs (agent as /init).
    pub initrd: PathBuf,
}

/// `Ok` if `vmrun check` says this host can run guests, else its reason.
/// Asked once per test process.
pub fn host_can_run_guests() -> Result<(), String> {
    static ANSWER: OnceLock<Result<(), String>> = OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let out = run_vmrun(&["check"], Duration::from_secs(120));
            if out.success() {
                return Ok(());
            }
            // The first line is the KVM verdict (`kvm: <reason>`).
            let text = out.all_output();
            let reason = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(|l| l.strip_prefix("kvm:").unwrap_or(l).trim().to_string())
                .unwrap_or_else(|| {
                    format!("`vmrun check` failed without a message ({:?})", out.status)
                });
            Err(reason)
        })
        .clone()
}

/// True when `VMRUN_REQUIRE_GUEST=1`.
pub fn guest_required() -> bool {
    std::env::var(REQUIRE_GUEST_ENV).is_ok_and(|v| v == "1")
}

fn not_ready(test: &str, need: &str, reason: &str) -> Option<GuestReadiness> {
    if guest_required() {
        panic!("{test} needs {need} and {REQUIRE_GUEST_ENV}=1 is set, but: {reason}");
    }
    loud(&format!(
        "SKIPPED: {test} needs {need} ({reason}); run {RUNNER} to run it in the test host"
    ));
    None
}

/// Prints `message` framed by stars straight to the process's stderr:
/// `eprintln!` output of a passing test is captured by libtest and never
/// shown, but a skip must be seen.
pub fn loud(message: &str) {
    use std::io::Write;
    let stars = "*".repeat(80);
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "\n{stars}\n{message}\n{stars}");
}

/// For a guest test named `test`: the kernel and initramfs to boot if this
/// host can run guests and they are built. Otherwise prints a loud
/// `SKIPPED:` line and returns `None` — or panics if `VMRUN_REQUIRE_GUEST=1`.
pub fn guest_ready(test: &str) -> Option<GuestReadiness> {
    if let Err(reason) = host_can_run_guests() {
        return not_ready(test, "a host that can run KVM guests", &reason);
    }
    let kernel = match guest_kernel() {
        Ok(k) => k,
        Err(e) => return not_ready(test, "the guest kernel", &e),
    };
    let initrd = match guest_initrd() {
        Ok(i) => i,
        Err(e) => return not_ready(test, "the guest initramfs", &e),
    };
    Some(GuestReadiness { kernel, initrd })
}
