//! The system calls each guest-facing thread kind may make.
//!
//! Derived from what the threads do (Rust's std and glibc underneath) and
//! checked against `strace -f` of the guest test suites (lifecycle, host
//! bind mounts and network, terminals, pods, the OCI checker matrix): a
//! call missing here stops the VMM with a report naming it (see
//! [`super::sigsys`]). Nothing here starts programs, changes namespaces or
//! mounts, traces or signals other processes, or loads code into the
//! kernel.

/// What every filtered thread needs: memory, futexes, its own signals,
/// time, logging, epoll and eventfds, ending itself.
const BASE: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_futex,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_sched_yield,
    libc::SYS_getrandom,
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_epoll_create1,
    libc::SYS_eventfd2,
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_fcntl,
    libc::SYS_dup,
    libc::SYS_lseek,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    // Thread names (and reading one back for a report).
    libc::SYS_prctl,
    // Tap and KVM device ioctls.
    libc::SYS_ioctl,
];

/// Block devices: positioned I/O on the image, flushes, discards.
const BLOCK: &[i64] = &[
    libc::SYS_pread64,
    libc::SYS_pwrite64,
    libc::SYS_preadv,
    libc::SYS_pwritev,
    libc::SYS_preadv2,
    libc::SYS_pwritev2,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fallocate,
];

/// vsock: each guest stream's host end is one end of a Unix socket pair
/// the router makes (for a guest connect) or is handed (a host connect).
const VSOCK: &[i64] = &[
    libc::SYS_socketpair,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_recvmsg,
    libc::SYS_sendmsg,
    libc::SYS_shutdown,
    libc::SYS_getsockopt,
    libc::SYS_setsockopt,
];

/// virtio-fs (fuse-backend-rs's passthrough file system over the shared
/// directory): the file-system calls FUSE requests map to, credential
/// switches per request, file handles.
const FILE_SYSTEM: &[i64] = &[
    libc::SYS_openat,
    libc::SYS_open,
    libc::SYS_getdents64,
    libc::SYS_readlinkat,
    libc::SYS_mkdirat,
    libc::SYS_mknodat,
    libc::SYS_symlinkat,
    libc::SYS_linkat,
    libc::SYS_unlinkat,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_fchown,
    libc::SYS_fchownat,
    libc::SYS_utimensat,
    libc::SYS_ftruncate,
    libc::SYS_fstatfs,
    libc::SYS_statfs,
    libc::SYS_fgetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_flistxattr,
    libc::SYS_fremovexattr,
    libc::SYS_getxattr,
    libc::SYS_setxattr,
    libc::SYS_listxattr,
    libc::SYS_removexattr,
    libc::SYS_lgetxattr,
    libc::SYS_lsetxattr,
    libc::SYS_llistxattr,
    libc::SYS_lremovexattr,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_umask,
    libc::SYS_getuid,
    libc::SYS_getgid,
    libc::SYS_geteuid,
    libc::SYS_getegid,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_copy_file_range,
    libc::SYS_flock,
    libc::SYS_syncfs,
    libc::SYS_sendfile,
];

/// Starting a thread (a vCPU thread starts a device's worker when the
/// guest activates the device) and that thread's own setup, including
/// installing its filter.
const THREAD_START: &[i64] = &[
    libc::SYS_clone,
    libc::SYS_clone3,
    libc::SYS_set_robust_list,
    libc::SYS_rseq,
    libc::SYS_sched_getaffinity,
    libc::SYS_seccomp,
    libc::SYS_rt_sigaction,
];

/// What a vCPU thread runs: KVM_RUN (an ioctl), the devices its exits
/// reach, and everything its device workers do (they inherit its filter).
pub fn vcpu() -> Vec<i64> {
    let mut calls = device_worker();
    calls.extend_from_slice(THREAD_START);
    // Waking a thread stuck in KVM_RUN (the kick) and the panic path.
    calls.push(libc::SYS_tgkill);
    dedup(calls)
}

/// What a device worker runs: its queues against their backends.
pub fn device_worker() -> Vec<i64> {
    let mut calls = Vec::new();
    for list in [BASE, BLOCK, VSOCK, FILE_SYSTEM] {
        calls.extend_from_slice(list);
    }
    dedup(calls)
}

fn dedup(mut calls: Vec<i64>) -> Vec<i64> {
    calls.sort_unstable();
    calls.dedup();
    calls
}
