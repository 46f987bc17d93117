//! Guest tests: boot our kernel + agent (and a foreign initramfs) with the
//! `vmrun` binary, like a user does.
//!
//! They need a host whose KVM runs stock guests. Elsewhere they skip loudly,
//! or fail when `VMRUN_REQUIRE_GUEST=1` (set by
//! `tests/testhost/run-guest-tests.sh`, which runs them in the test host).

use std::path::Path;

use vmrun_tests::console::positions_of;
use vmrun_tests::{boot_timeout, busybox_initrd, guest_ready, run_vmrun, ReadyLine, RunOutput};

/// What a guest kernel prints when something is wrong that does not stop
/// the boot: a WARN() splat, a BUG, a stack trace, and the FPU code's
/// check of CPUID leaf 0xD against the XSAVE features it enabled.
const KERNEL_COMPLAINTS: [&str; 4] = ["WARNING:", "BUG:", "Call Trace", "XSAVE consistency"];

/// The default command line without `quiet`: the kernel prints its
/// warnings (and everything else) on the console.
const VERBOSE_CMDLINE: &str =
    "console=ttyS0 reboot=k panic=-1 pci=off nomodule noreplace-smp retain_initrd";

/// Phases every boot of our agent reports, in order (TEAM contract 6).
const BOOT_PHASES: [&str; 7] = [
    "process_start",
    "vm_created",
    "kernel_loaded",
    "first_kvm_run",
    "init_reached",
    "agent_ready",
    "exit",
];

fn boot(kernel: &Path, initrd: &Path, extra: &[&str]) -> RunOutput {
    let kernel = kernel.to_str().expect("kernel path is UTF-8");
    let initrd = initrd.to_str().expect("initrd path is UTF-8");
    let mut args = vec!["boot", "--kernel", kernel, "--initrd", initrd];
    args.extend_from_slice(extra);
    run_vmrun(&args, boot_timeout())
}

fn the_ready_line(out: &RunOutput) -> ReadyLine {
    let lines = ReadyLine::find_all(&out.stdout);
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one agent ready line on the console\n{}",
        out.describe()
    );
    lines[0].clone()
}

#[test]
fn boots_our_kernel_and_agent_to_the_ready_line() {
    let Some(g) = guest_ready("boots_our_kernel_and_agent_to_the_ready_line") else {
        return;
    };
    let out = boot(&g.kernel, &g.initrd, &["--memory", "256"]);
    assert!(out.success(), "boot did not exit 0\n{}", out.describe());
    let ready = the_ready_line(&out);
    assert_eq!(ready.cpus, 1, "default is one vCPU\n{}", out.describe());
    assert!(
        ready.memory_kib > 128 * 1024 && ready.memory_kib <= 256 * 1024,
        "guest MemTotal {} KiB does not fit --memory 256\n{}",
        ready.memory_kib,
        out.describe()
    );
    assert!(ready.kernel.starts_with("6.1"), "kernel={}", ready.kernel);
}

#[test]
fn guest_sees_both_vcpus() {
    let Some(g) = guest_ready("guest_sees_both_vcpus") else {
        return;
    };
    let out = boot(&g.kernel, &g.initrd, &["--cpus", "2"]);
    assert!(out.success(), "boot did not exit 0\n{}", out.describe());
    assert_eq!(the_ready_line(&out).cpus, 2, "{}", out.describe());
}

/// The console around the first line naming one of `KERNEL_COMPLAINTS`,
/// or None when the kernel complained about nothing.
fn first_kernel_complaint(console: &str) -> Option<String> {
    let lines: Vec<&str> = console.lines().collect();
    let at = lines
        .iter()
        .position(|l| KERNEL_COMPLAINTS.iter().any(|c| l.contains(c)))?;
    let from = at.saturating_sub(10);
    let to = (at + 30).min(lines.len());
    Some(lines[from..to].join("\n"))
}

/// Boots with `cpus` vCPUs and a verbose kernel; the console must hold the
/// ready line and none of `KERNEL_COMPLAINTS`.
fn assert_verbose_boot_is_clean(name: &str, cpus: &str) {
    let Some(g) = guest_ready(name) else {
        return;
    };
    let out = boot(
        &g.kernel,
        &g.initrd,
        &["--cpus", cpus, "--cmdline", VERBOSE_CMDLINE],
    );
    assert!(out.success(), "boot did not exit 0\n{}", out.describe());
    assert_eq!(
        the_ready_line(&out).cpus.to_string(),
        cpus,
        "{}",
        out.describe()
    );
    // The boot really was verbose: the kernel's own banner is there.
    assert!(
        out.stdout.contains("Linux version"),
        "no kernel banner: the boot was not verbose\n{}",
        out.describe()
    );
    if let Some(context) = first_kernel_complaint(&out.stdout) {
        let fpu: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.contains("x86/fpu") || l.contains("xstate"))
            .collect();
        panic!(
            "the guest kernel complained on boot with {cpus} vCPU(s):\n{context}\n\
             --- x86/fpu lines ---\n{}\n{}",
            fpu.join("\n"),
            out.describe()
        );
    }
}

#[test]
fn a_kernel_warning_on_the_console_is_found() {
    let console = "Linux version 6.1\n------------[ cut here ]------------\n\
                   WARNING: CPU: 0 PID: 0 at arch/x86/kernel/fpu/xstate.c:789\nok\n";
    let context = first_kernel_complaint(console).expect("the WARNING line is found");
    assert!(context.contains("cut here") && context.contains("xstate.c"));
    assert_eq!(
        first_kernel_complaint("Linux version 6.1\nRun /init\n"),
        None
    );
}

#[test]
fn a_verbose_boot_with_one_vcpu_has_no_kernel_warnings() {
    assert_verbose_boot_is_clean("a_verbose_boot_with_one_vcpu_has_no_kernel_warnings", "1");
}

#[test]
fn a_verbose_boot_with_two_vcpus_has_no_kernel_warnings() {
    assert_verbose_boot_is_clean("a_verbose_boot_with_two_vcpus_has_no_kernel_warnings", "2");
}

#[test]
fn timings_report_the_boot_phases_in_order() {
    let Some(g) = guest_ready("timings_report_the_boot_phases_in_order") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let json_path = dir.path().join("timings.json");
    let json_arg = json_path.to_str().expect("UTF-8 path");
    let out = boot(
        &g.kernel,
        &g.initrd,
        &["--timings", "--timings-json", json_arg],
    );
    assert!(out.success(), "boot did not exit 0\n{}", out.describe());
    the_ready_line(&out);

    // The table on stderr names every phase, in order.
    let pos = positions_of(&out.stderr, &BOOT_PHASES)
        .unwrap_or_else(|e| panic!("--timings table: {e}\n{}", out.describe()));
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "--timings table lists phases out of order\n{}",
        out.describe()
    );

    // The JSON file: {"phases":[{"name":..,"ms":..},..]} in order, ms
    // never going backwards (ordering only: no durations are asserted).
    let text = std::fs::read_to_string(&json_path)
        .unwrap_or_else(|e| panic!("--timings-json wrote no file: {e}\n{}", out.describe()));
    let doc: serde_json::Value = serde_json::from_str(&text).expect("--timings-json is JSON");
    let phases = doc["phases"].as_array().expect("`phases` is an array");
    let names: Vec<&str> = phases.iter().filter_map(|p| p["name"].as_str()).collect();
    let expected: Vec<&str> = BOOT_PHASES.to_vec();
    assert_eq!(names, expected, "phases in the JSON: {text}");
    let ms: Vec<f64> = phases
        .iter()
        .map(|p| p["ms"].as_f64().expect("`ms` is a number"))
        .collect();
    assert!(
        ms.windows(2).all(|w| w[0] <= w[1]),
        "ms go backwards: {text}"
    );
}

#[test]
fn serial_log_gets_the_console() {
    let Some(g) = guest_ready("serial_log_gets_the_console") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serial.log");
    let out = boot(
        &g.kernel,
        &g.initrd,
        &["--serial-log", log.to_str().expect("UTF-8 path")],
    );
    assert!(out.success(), "boot did not exit 0\n{}", out.describe());
    let console = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("--serial-log wrote no file: {e}\n{}", out.describe()));
    assert_eq!(
        ReadyLine::find_all(&console).len(),
        1,
        "serial log:\n{console}"
    );
    assert!(
        ReadyLine::find_all(&out.stdout).is_empty(),
        "with --serial-log the console must not go to stdout\n{}",
        out.describe()
    );
}

#[test]
fn a_panicking_guest_fails_with_the_panic_message() {
    let Some(g) = guest_ready("a_panicking_guest_fails_with_the_panic_message") else {
        return;
    };
    // No such init: the kernel panics (which message depends on the config).
    let cmdline =
        "console=ttyS0 reboot=k panic=-1 pci=off nomodule rdinit=/nonexistent init=/nonexistent";
    let out = boot(&g.kernel, &g.initrd, &["--cmdline", cmdline]);
    assert!(
        out.finished(),
        "a panicking guest must end the VM\n{}",
        out.describe()
    );
    assert!(
        !out.success(),
        "a panicking guest must not exit 0\n{}",
        out.describe()
    );
    // The console shows the kernel's panic line; the VMM's error repeats it.
    let panic_msg = out
        .stdout
        .lines()
        .find_map(|l| {
            l.split_once("Kernel panic - not syncing: ")
                .map(|(_, m)| m.trim())
        })
        .unwrap_or_else(|| panic!("no kernel panic line on the console\n{}", out.describe()));
    assert!(
        out.stderr.contains("guest kernel panicked"),
        "stderr must say the guest kernel panicked\n{}",
        out.describe()
    );
    let key = panic_msg
        .get(..panic_msg.len().min(24))
        .unwrap_or(panic_msg);
    assert!(
        out.stderr.contains(key),
        "stderr must carry the panic message `{panic_msg}`\n{}",
        out.describe()
    );
    assert!(
        ReadyLine::find_all(&out.stdout).is_empty(),
        "{}",
        out.describe()
    );
}

#[test]
fn boots_a_busybox_initramfs_that_is_not_ours() {
    let Some(g) = guest_ready("boots_a_busybox_initramfs_that_is_not_ours") else {
        return;
    };
    let initrd = busybox_initrd().unwrap_or_else(|e| panic!("busybox initramfs: {e}"));
    let out = boot(&g.kernel, &initrd, &[]);
    assert!(out.success(), "boot did not exit 0\n{}", out.describe());
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("busybox-init: hello")),
        "the busybox /init did not greet\n{}",
        out.describe()
    );
    assert!(
        ReadyLine::find_all(&out.stdout).is_empty(),
        "{}",
        out.describe()
    );
}

#[test]
fn a_file_that_is_not_a_kernel_is_refused_by_name() {
    let Some(g) = guest_ready("a_file_that_is_not_a_kernel_is_refused_by_name") else {
        return;
    };
    // The initramfs is a real file but neither an ELF vmlinux nor a bzImage.
    let out = boot(&g.initrd, &g.initrd, &[]);
    assert!(out.finished(), "{}", out.describe());
    assert!(
        !out.success(),
        "a non-kernel must not boot\n{}",
        out.describe()
    );
    let name = g.initrd.to_str().expect("UTF-8 path");
    assert!(
        out.stderr.contains(name),
        "the error must name the file\n{}",
        out.describe()
    );
}
