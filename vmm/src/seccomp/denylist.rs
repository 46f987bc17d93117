//! What the VMM's host-facing threads may never do once the container
//! exists: the control socket and its connections (which parse the
//! agent's answers), the stdio relays, signal forwarding and the thread
//! that runs the machine (whose vCPU threads and device workers inherit
//! this filter under their own allow-lists).
//!
//! These threads do too many different things (files under the state
//! directory and the host cgroup, sockets, ptys, bind mounts for a pod's
//! members) for a tight allow-list to stay correct as the code moves, so
//! their filter lists what would turn a compromised VMM into a foothold on
//! the host instead: starting programs or processes, tracing or reading
//! other processes, changing namespaces or the root, loading code into the
//! kernel, keyrings, the clock, rebooting. Threads are still started
//! (`clone` with CLONE_THREAD); `clone3`, whose flags a filter cannot
//! read, answers ENOSYS so that the C library falls back to `clone`.

/// The calls trapped on host-facing threads.
pub const HOST_DENIED: &[i64] = &[
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_fork,
    libc::SYS_vfork,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    libc::SYS_kcmp,
    libc::SYS_setns,
    libc::SYS_unshare,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_personality,
    libc::SYS_quotactl,
];
