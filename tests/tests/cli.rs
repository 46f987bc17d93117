//! CLI tests that boot no guest: `vmrun check` tells the truth about this
//! host, `vmrun boot` fails fast where guests cannot run, and bad input gets
//! a clear error. They run everywhere (also inside the test host).

use std::path::Path;
use std::time::Duration;

use vmrun_tests::guest_env::loud;
use vmrun_tests::{guest_initrd, guest_kernel, run_vmrun, RunOutput};

/// Hang guard for commands that must not boot anything.
const QUICK: Duration = Duration::from_secs(60);

/// What this host is, found without asking vmrun.
#[derive(Debug)]
struct HostFacts {
    kvm_device: bool,
    pvm: bool,
    hardware_virt: bool,
}

fn host_facts() -> HostFacts {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let hardware_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    HostFacts {
        kvm_device: Path::new("/dev/kvm").exists(),
        pvm: Path::new("/sys/module/kvm_pvm").exists(),
        hardware_virt,
    }
}

fn code(out: &RunOutput) -> Option<i32> {
    out.status.and_then(|s| s.code())
}

#[test]
fn check_tells_the_truth_about_this_host() {
    let facts = host_facts();
    let out = run_vmrun(&["check"], QUICK);
    assert!(out.finished(), "{}", out.describe());
    let text = out.all_output();
    if facts.pvm {
        assert_eq!(
            code(&out),
            Some(1),
            "PVM host: check must exit 1\n{}",
            out.describe()
        );
        assert!(
            text.contains("PVM"),
            "check must name PVM ({facts:?})\n{}",
            out.describe()
        );
    } else if !facts.kvm_device {
        assert_eq!(
            code(&out),
            Some(1),
            "no /dev/kvm: check must exit 1\n{}",
            out.describe()
        );
        assert!(
            text.contains("/dev/kvm"),
            "check must name /dev/kvm\n{}",
            out.describe()
        );
    } else if facts.hardware_virt {
        assert_eq!(
            code(&out),
            Some(0),
            "hardware KVM ({facts:?}): check must say guests can run\n{}",
            out.describe()
        );
    } else {
        // /dev/kvm without vmx/svm and not PVM: some other paravirtual KVM.
        // vmrun may go either way, but it must give a reason when it refuses.
        assert!(matches!(code(&out), Some(0 | 1)), "{}", out.describe());
    }
}

#[test]
fn check_says_where_the_guest_artifacts_are() {
    let out = run_vmrun(&["check"], QUICK);
    assert!(out.finished(), "{}", out.describe());
    let text = out.all_output();
    assert!(
        text.contains("vmlinux"),
        "check must name the kernel\n{}",
        out.describe()
    );
    assert!(
        text.contains("initramfs"),
        "check must name the initramfs\n{}",
        out.describe()
    );
}

#[test]
fn boot_fails_fast_where_kvm_cannot_run_guests() {
    let facts = host_facts();
    if !facts.pvm {
        loud(&format!(
            "SKIPPED: boot_fails_fast_where_kvm_cannot_run_guests only applies on a PVM host \
             (this host: {facts:?})"
        ));
        return;
    }
    if std::env::var_os("VMRUN_FORCE_KVM").is_some() {
        loud("SKIPPED: boot_fails_fast_where_kvm_cannot_run_guests: VMRUN_FORCE_KVM is set");
        return;
    }
    // Real artifacts when built (the refusal must not depend on them), else
    // placeholder files.
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = |name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, b"not a kernel").expect("write placeholder");
        p
    };
    let kernel = guest_kernel().unwrap_or_else(|_| fake("vmlinux"));
    let initrd = guest_initrd().unwrap_or_else(|_| fake("initramfs.cpio"));
    let out = run_vmrun(
        &[
            "boot",
            "--kernel",
            kernel.to_str().expect("UTF-8"),
            "--initrd",
            initrd.to_str().expect("UTF-8"),
        ],
        QUICK,
    );
    assert!(
        out.finished(),
        "boot must fail fast on PVM, not hang\n{}",
        out.describe()
    );
    assert_eq!(code(&out), Some(1), "{}", out.describe());
    assert!(
        out.stderr.contains("PVM"),
        "the refusal must name PVM\n{}",
        out.describe()
    );
}

/// Runs `vmrun boot` with bad input and checks the error names `needle`.
/// `kernel`/`initrd` replace the (existing placeholder) files when given.
fn assert_bad_boot_input(kernel: Option<&str>, initrd: Option<&str>, extra: &[&str], needle: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let placeholder = |name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, b"placeholder").expect("write placeholder");
        p.to_str().expect("UTF-8").to_string()
    };
    let kernel = kernel.map_or_else(|| placeholder("vmlinux"), str::to_string);
    let initrd = initrd.map_or_else(|| placeholder("initramfs.cpio"), str::to_string);
    let mut args = vec!["boot", "--kernel", &kernel, "--initrd", &initrd];
    args.extend_from_slice(extra);
    let out = run_vmrun(&args, QUICK);
    assert!(
        out.finished(),
        "bad input must fail at once\n{}",
        out.describe()
    );
    assert!(
        !out.success(),
        "bad input must not exit 0\n{}",
        out.describe()
    );
    assert!(
        out.stderr.contains(needle),
        "the error must name `{needle}`\n{}",
        out.describe()
    );
}

#[test]
fn zero_cpus_is_rejected() {
    assert_bad_boot_input(None, None, &["--cpus", "0"], "--cpus");
}

#[test]
fn zero_memory_is_rejected() {
    assert_bad_boot_input(None, None, &["--memory", "0"], "--memory");
}

#[test]
fn missing_kernel_file_is_named() {
    let missing = "/nonexistent/vmrun-test/vmlinux";
    assert_bad_boot_input(Some(missing), None, &[], missing);
}

#[test]
fn missing_initrd_file_is_named() {
    let missing = "/nonexistent/vmrun-test/initrd.gz";
    assert_bad_boot_input(None, Some(missing), &[], missing);
}
