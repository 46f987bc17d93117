use super::sigsys::SECCOMP_EXIT_CODE;
use super::*;
use std::process::Command;

/// Set in the child the tests below start (this test binary again).
const CHILD_ENV: &str = "VMRUN_SECCOMP_TEST_CHILD";

#[test]
fn every_filter_builds_and_a_vcpu_allows_what_its_workers_do() {
    for kind in [ThreadKind::Vcpu, ThreadKind::DeviceWorker, ThreadKind::Host] {
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
    for call in forbidden {
        if ![libc::SYS_mount, libc::SYS_umount2, libc::SYS_kill].contains(&call) {
            assert!(
                denylist::HOST_DENIED.contains(&call),
                "host threads may {call}"
            );
        }
    }
}

#[test]
fn host_threads_deny_nothing_their_vcpus_and_workers_need() {
    // The machine's runner thread has the host filter; its vCPU threads
    // and workers inherit it under their own.
    let vcpu = allowlist::vcpu();
    for call in denylist::HOST_DENIED {
        assert!(
            !vcpu.contains(call),
            "the host filter denies {call}, which vCPUs use"
        );
    }
}

/// In the child: a thread installs `kind`'s filter, checks allowed calls
/// still work, then makes a forbidden one (`fork` instead of `execve` when
/// `fork` is set).
fn child_main(kind: ThreadKind, fork: bool) {
    std::thread::Builder::new()
        .name("filtered-test".into())
        .spawn(move || {
            install(kind).unwrap();
            // Allowed: files, memory, time.
            let text = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
            assert_eq!(text.trim(), "filtered-test");
            let _ = std::time::Instant::now();
            if kind == ThreadKind::Host {
                // Threads still start (clone3 -> ENOSYS -> clone).
                let answer = std::thread::spawn(|| 42).join().unwrap();
                assert_eq!(answer, 42);
            }
            if fork {
                // SAFETY: fork is trapped before it makes a process.
                let pid = unsafe { libc::fork() };
                if pid == 0 {
                    // SAFETY: the child (were it made) leaves at once.
                    unsafe { libc::_exit(0) };
                }
                std::process::exit(0);
            }
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
        Ok("vcpu") => return child_main(ThreadKind::Vcpu, false),
        Ok("worker") => return child_main(ThreadKind::DeviceWorker, false),
        Ok("host") => return child_main(ThreadKind::Host, false),
        Ok("host-fork") => return child_main(ThreadKind::Host, true),
        _ => {}
    }
    for (kind, label, call) in [
        ("vcpu", "vCPU", "execve (59)"),
        ("worker", "device worker", "execve (59)"),
        ("host", "host", "execve (59)"),
        ("host-fork", "host", "clone (56)"),
    ] {
        let out = run_child(test, kind);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(SECCOMP_EXIT_CODE),
            "{kind}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "vmrun: error: seccomp: {label} thread 'filtered-test' made system call {call}"
            )),
            "{kind}: {stderr}"
        );
    }
}
