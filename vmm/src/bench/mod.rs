//! `vmrun bench`: vmrun against the runtimes and VMMs installed here, on
//! the same workload, with honest labels.
//!
//! # What one bench does
//!
//! 1. **Bundles** ([`bundle`]): the user's bundle (`--bundle`, or the
//!    unpacked `--image`) or a busybox one built from the host's static
//!    busybox; derived copies in the work directory share its rootfs by
//!    absolute path. The workload is `--cmd`, else the bundle's process
//!    (busybox: `true`).
//! 2. **Runtimes** ([`runners`]): vmrun's variants — `vmrun` (`vmrun run`
//!    in the foreground), `vmrun-lifecycle` (`create`, `start`, the VMM's
//!    exit, `delete`), `vmrun-boot` (`vmrun boot` of the same kernel and
//!    initramfs to the agent's ready line and out) — then each peer asked
//!    for with `--vs`: `runc`, `crun` (`run` of the same bundle),
//!    `podman` (`run --rootfs` of its rootfs, a private podman using runc),
//!    `podman-vmrun` (the same podman with vmrun as its runtime: conmon
//!    drives vmrun's verbs, so the client's cost shows next to vmrun's),
//!    `ctr-vmrun` and `ctr-runc` (`ctr run --rm` of the rootfs imported as
//!    an image into a private containerd the bench starts, through the
//!    runc v2 shim with vmrun or runc as its runc binary), `cri-vmrun` and
//!    `cri-runc` (a pod through that containerd's CRI plugin, runtime
//!    handler `vmrun` or `runc`, driven by `vmrun-cri`: RunPodSandbox to
//!    RemovePodSandbox), `qemu-microvm` and `firecracker` (the same kernel
//!    and initramfs on the same KVM, to the ready line and out). A peer
//!    whose programs are not installed is `missing`; each one present is
//!    probed once with a real run, and one whose probe fails is `refused`,
//!    with its error (a containerd that does not start: with its log's
//!    end). Neither is dropped. The containerd instances are started on
//!    their peer's first run (not timed), kept for every round and torn
//!    down after the rounds (and on any error): nothing of theirs is left.
//! 3. **Rounds**: `--warmup` discarded rounds, then `-n` measured ones;
//!    each round runs every runtime once (interleaved, so a slow spell of
//!    the host hits all of them alike), the order changing from round to
//!    round as the rows of a Williams design ([`session::round_order`]:
//!    each runtime follows each other one equally often, as a run can
//!    slow the next).
//! 4. **Memory** ([`density`], [`memory`]): one idle vmrun container
//!    (`run -d` of `sleep`): the VMM's whole RSS and PSS
//!    (`/proc/PID/smaps_rollup`), the guest RAM mappings found in
//!    `/proc/PID/smaps` (those vmrun marks `MADV_DONTFORK`, adding up to
//!    the guest's RAM size: anonymous memory and the kernel and initrd
//!    pages mapped from their files), whose RSS is the guest memory
//!    actually touched, and the VMM without it.
//! 5. **Density** (`--density K`): K idle containers one after the other;
//!    after each, the sum of the VMMs' PSS and the drop of `MemAvailable`;
//!    the creation rate; then `delete --force` of all and a check that no
//!    process of the bench's state root, no state directory and no host
//!    cgroup of theirs is left.
//! 6. **Labels** ([`host`]): `VMRUN_IN_TESTHOST=1`, the CPUID hypervisor
//!    bit and signature (`TCGTCGTCGTCG` = QEMU's software CPU) and
//!    `/sys/module/kvm_pvm` decide whether the numbers are `hardware`,
//!    `nested` or `emulated`; the label says that under emulation only the
//!    ratios count.
//!
//! Output: [`table`] (Markdown on stdout), `--json FILE` ([`report`]),
//! `--chart FILE.svg` ([`chart`], plotters). Progress on a terminal only
//! ([`progress`]).
//!
//! # The JSON document (`schema: "vmrun-bench/1"`)
//!
//! ```text
//! {
//!   "schema": "vmrun-bench/1",
//!   "started": "2026-12-05T10:00:00Z",          // RFC 3339, UTC
//!   "command": ["vmrun", "bench", "-n", "8", ...],
//!   "host": {
//!     "kernel": "6.1.0-28-amd64", "cpus": 1,
//!     "virtualization": "hardware" | "nested" | "emulated",
//!     "evidence": ["VMRUN_IN_TESTHOST=1: ...", "CPUID: ..."],
//!     "label": "guests run under software CPU emulation ...",
//!     "vmrun_version": "vmrun version 0.1.0"
//!   },
//!   "workload": {
//!     "bundle": "/tmp/.../bundles/workload", "rootfs": "/.../rootfs",
//!     "args": ["true"], "runs": 8, "warmup": 1, "order": "interleaved-balanced",
//!     "kernel": "/var/cache/vmrun/vmlinux", "initrd": "...",
//!     "vcpus": 1, "memory_mib": 128
//!   },
//!   "runtimes": [                                // vmrun's variants, then the peers
//!     {
//!       "name": "vmrun",                         // vmrun | vmrun-lifecycle | vmrun-boot |
//!                                                // runc | crun | podman | podman-vmrun |
//!                                                // ctr-vmrun | ctr-runc | cri-vmrun | cri-runc |
//!                                                // qemu-microvm | firecracker
//!       "what": "vmrun run of the bundle (foreground, microVM)",
//!       "version": "vmrun version 0.1.0",        // --version's first line, or null
//!       "status": "measured" | "missing" | "refused",
//!       "reason": null | "why missing/refused",
//!       "baseline": "vmrun",                     // the variant the ratio is against
//!       "runs": [{
//!         "index": 0, "ok": true,
//!         "wall_ms": 812.4,                      // spawn to reaped, caller's view
//!         "exit_code": 0,
//!         "phases": [                            // VMM clock first, then caller's
//!           {"name": "process_start", "ms": 0.0, "clock": "vmm"},
//!           {"name": "vm_created", "ms": 3.1, "clock": "vmm"}, ...
//!           {"name": "first_output", "ms": 640.0, "clock": "caller"}
//!         ],
//!         "error": null
//!       }],
//!       "wall_ms": {"n": 8, "median": 0, "p10": 0, "p90": 0, "min": 0, "max": 0, "mean": 0},
//!       "phases": [{"name": "vm_created", "clock": "vmm", "ms": {<summary>}}],
//!       "ratio_to_baseline": 1.0                 // median wall / baseline's median wall
//!     }
//!   ],
//!   "memory": null | {
//!     "pid": 1234, "guest_memory_mib": 128, "settle_ms": 2000,
//!     "rss_kib": 0, "pss_kib": 0,                // whole VMM process, idle
//!     "guest_ram": null | {"mappings": ["7f..-7f.."], "size_kib": 131072,
//!                          "rss_kib": 0, "pss_kib": 0},  // rss = guest RAM touched
//!     "vmm_rss_without_guest_kib": 0, "vmm_pss_without_guest_kib": 0
//!   },
//!   "density": null | {
//!     "requested": 5, "created": 5, "args": ["sleep", "3600"], "failures": [],
//!     "create_ms": {<summary>}, "creation_rate_per_s": 0.5,
//!     "steps": [{"containers": 1, "elapsed_ms": 0, "create_ms": 0,
//!                "pss_sum_kib": 0, "mem_available_drop_kib": 0}],
//!     "settle_ms": 2000,
//!     "pss_per_container_kib": 0, "mem_available_drop_per_container_kib": 0,
//!     "teardown": {"delete_ms": {<summary>}, "delete_errors": [],
//!                  "leftover_processes": [], "leftover_state": [],
//!                  "leftover_cgroups": [], "clean": true}
//!   }
//! }
//! ```
//!
//! Phase names: the `vmm` clock ones are vmrun's `--timings-json` phases
//! (`process_start`, `vm_created`, `kernel_loaded`, `first_kvm_run`,
//! `init_reached`, `agent_ready`, `container_created`, `container_started`,
//! `exit`, ... in the order vmrun records them). `caller` ones: `first_output` (first byte on
//! stdout), `ready_line` (the agent's ready line on a VMM's console) and,
//! for `vmrun-lifecycle`, `created`, `started`, `exited`, `deleted`; for
//! `cri-*`, `pod_ready`, `created`, `started`, `exited`, `pod_removed`.
//! Statistics cover the successful runs only.

pub mod bundle;
pub mod chart;
pub mod density;
pub mod error;
pub mod host;
pub mod memory;
pub mod process;
pub mod progress;
pub mod report;
pub mod runners;
pub mod session;
pub mod stats;
pub mod table;

pub use error::BenchError;
pub use report::BenchReport;
pub use session::{run, BenchConfig};
