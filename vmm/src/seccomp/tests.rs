use super::sigsys::SECCOMP_EXIT_CODE;
use super::*;
use std::process::Command;

/// Set in the child the tests below start (this test binary again).
const CHILD_ENV: &str = "VMRUN_SECCOMP_TEST_CHILD";

#[test]
fn both_filters_build_and_a_vcpu_allows_what_its_workers_do() {
    for kind in [ThreadKind::Vcpu, ThreadKind::DeviceWorker] {
        let program = program(kind, SeccompAction::Trap).unwrap();
        assert!(!program.is_empty());
    }
    let vcpu = allowlist::vcpu();
    for call in allowlist::device_worker() {
        assert!(
            vcpu.contains(&call),
            "workers inherit the vCPU filter: {call}"
        );
    }
}

#[test]
fn nothing_that_escapes_the_vmm_is_allowed() {
    let forbidden = [
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_fork,
        libc::SYS_vfork,
        libc::SYS_ptrace,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_kill,
        libc::SYS_bpf,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_kexec_load,
        libc::SYS_reboot,
        libc::SYS_process_vm_writev,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
    ];
    for list in [allowlist::vcpu(), allowlist::device_worker()] {
        for call in forbidden {
            assert!(!list.contains(&call), "{call} is allowed");
        }
    }
    assert!(!allowlist::device_worker().contains(&libc::SYS_clone3));
}

/// In the child: a thread installs `kind`'s filter, checks allowed calls
/// still work, then makes a forbidden one.
fn child_main(kind: ThreadKind) {
    std::thread::Builder::new()
        .name("filtered-test".into())
        .spawn(move || {
            install(kind).unwrap();
            // Allowed: files, memory, time.
            let text = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
            assert_eq!(text.trim(), "filtered-test");
            let _ = std::time::Instant::now();
            // Forbidden: start a program.
            // SAFETY: execve with valid NUL-terminated strings; it is
            // trapped before it runs.
            unsafe {
                let path = c"/bin/true";
                let argv = [path.as_ptr(), std::ptr::null()];
                let envp = [std::ptr::null::<libc::c_char>()];
                libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
            }
            std::process::exit(0);
        })
        .unwrap()
        .join()
        .unwrap();
    std::process::exit(0);
}

fn run_child(test: &str, kind: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, kind)
        .env_remove("VMRUN_SECCOMP")
        .output()
        .unwrap()
}

#[test]
fn a_forbidden_call_stops_the_process_naming_the_thread_and_call() {
    let test = "seccomp::tests::a_forbidden_call_stops_the_process_naming_the_thread_and_call";
    match std::env::var(CHILD_ENV).as_deref() {
        Ok("vcpu") => return child_main(ThreadKind::Vcpu),
        Ok("worker") => return child_main(ThreadKind::DeviceWorker),
        _ => {}
    }
    for (kind, label) in [("vcpu", "vCPU"), ("worker", "device worker")] {
        let out = run_child(test, kind);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(SECCOMP_EXIT_CODE), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "vmrun: error: seccomp: {label} thread 'filtered-test' made system call execve (59)"
            )),
            "{stderr}"
        );
    }
}
