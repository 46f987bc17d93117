//! The `--json` document of `vmrun bench` (schema `vmrun-bench/1`, described
//! in the [module docs](super)). Every type here is plain data.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::stats::Summary;

/// The value of [`BenchReport::schema`].
pub const SCHEMA: &str = "vmrun-bench/1";

/// The whole document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// When the bench started (RFC 3339, UTC).
    pub started: String,
    /// The command line that produced it.
    pub command: Vec<String>,
    /// Where it ran, and whether its times are hardware numbers.
    pub host: HostReport,
    /// What every runtime ran.
    pub workload: WorkloadReport,
    /// One entry per runtime: vmrun's variants first, then each requested
    /// peer (measured, missing, refused or failed; never left out).
    pub runtimes: Vec<RuntimeReport>,
    /// vmrun's memory with one idle container (absent with `--no-memory`).
    pub memory: Option<MemoryReport>,
    /// `--density K` results.
    pub density: Option<DensityReport>,
}

/// How the guests run on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Virtualization {
    /// No hypervisor below this host: hardware numbers.
    Hardware,
    /// This host is itself a VM with hardware-assisted virtualization
    /// (nested KVM): real but nested numbers.
    Nested,
    /// The CPU is emulated in software (QEMU TCG, e.g. the test host):
    /// absolute times are not hardware numbers, only ratios count.
    Emulated,
}

/// The host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostReport {
    /// `uname -r`.
    pub kernel: String,
    /// Online CPUs.
    pub cpus: usize,
    /// The verdict.
    pub virtualization: Virtualization,
    /// What the verdict is based on, one finding per entry.
    pub evidence: Vec<String>,
    /// The label printed above the table.
    pub label: String,
    /// `vmrun --version`'s first line.
    pub vmrun_version: String,
}

/// The workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// The bundle every OCI runtime ran (podman: its rootfs).
    pub bundle: PathBuf,
    /// Its root filesystem.
    pub rootfs: PathBuf,
    /// The process's arguments.
    pub args: Vec<String>,
    /// Measured runs per runtime.
    pub runs: usize,
    /// Discarded runs per runtime before them.
    pub warmup: usize,
    /// Always `interleaved-balanced`: each round runs every runtime once,
    /// in the order `session::round_order` gives that round.
    pub order: String,
    /// Guest kernel of the microVMs.
    pub kernel: PathBuf,
    /// Initramfs of the microVMs.
    pub initrd: PathBuf,
    /// vCPUs of each microVM.
    pub vcpus: u8,
    /// Memory of each microVM (MiB).
    pub memory_mib: u64,
}

/// Whether a runtime was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeStatus {
    /// Its probe run succeeded; `runs` holds its measured runs.
    Measured,
    /// Not installed (not on PATH): not run.
    Missing,
    /// Installed, but its probe run failed: `reason` has its error.
    Refused,
}

/// Which clock a phase was read on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// The runtime's own timestamps (vmrun's `--timings-json`): ms since
    /// its process started.
    Vmm,
    /// Seen by the bench: ms since it spawned the command.
    Caller,
}

/// One phase of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseMark {
    /// Phase name (`vm_created`, `first_output`, ...).
    pub name: String,
    /// When it happened (ms).
    pub ms: f64,
    /// Since when.
    pub clock: Clock,
}

/// One measured run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSample {
    /// Round number (0-based, after the warm-up rounds).
    pub index: usize,
    /// Whether the run did what the workload asks (exit 0 / ready line).
    pub ok: bool,
    /// Spawn to reaped, as the caller sees it (ms; 0 when the command
    /// could not be started).
    pub wall_ms: f64,
    /// The command's exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Phases in the order they happened.
    pub phases: Vec<PhaseMark>,
    /// Why the run failed.
    pub error: Option<String>,
}

/// Statistics of one phase over the successful runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseSummary {
    /// Phase name.
    pub name: String,
    /// Its clock.
    pub clock: Clock,
    /// Its times (ms).
    pub ms: Summary,
}

/// One runtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeReport {
    /// `vmrun`, `vmrun-lifecycle`, `vmrun-boot`, `runc`, `crun`, `podman`,
    /// `podman-vmrun`, `ctr-vmrun`, `ctr-runc`, `cri-vmrun`, `cri-runc`,
    /// `qemu-microvm` or `firecracker`.
    pub name: String,
    /// What one run is, in words.
    pub what: String,
    /// Its `--version` (first line), when installed.
    pub version: Option<String>,
    /// Measured, missing or refused.
    pub status: RuntimeStatus,
    /// Why it is missing or refused.
    pub reason: Option<String>,
    /// The vmrun variant its ratio is against.
    pub baseline: String,
    /// Measured runs (successful or not).
    pub runs: Vec<RunSample>,
    /// Wall times of the successful runs.
    pub wall_ms: Option<Summary>,
    /// Phase times of the successful runs, in phase order.
    pub phases: Vec<PhaseSummary>,
    /// Median wall time over the baseline's median wall time.
    pub ratio_to_baseline: Option<f64>,
}

/// vmrun's memory with one idle container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryReport {
    /// The VMM's pid.
    pub pid: u32,
    /// Guest memory size (MiB).
    pub guest_memory_mib: u64,
    /// How long the container idled before the reading (ms).
    pub settle_ms: u64,
    /// Whole-process RSS (`smaps_rollup`, KiB).
    pub rss_kib: u64,
    /// Whole-process PSS while idle (KiB).
    pub pss_kib: u64,
    /// The guest RAM mappings, when found.
    pub guest_ram: Option<GuestRamReport>,
    /// RSS without guest RAM (KiB).
    pub vmm_rss_without_guest_kib: Option<u64>,
    /// PSS without guest RAM (KiB).
    pub vmm_pss_without_guest_kib: Option<u64>,
}

/// The guest RAM mappings in `/proc/PID/smaps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuestRamReport {
    /// Their address ranges (`start-end`, hex).
    pub mappings: Vec<String>,
    /// Their size (KiB).
    pub size_kib: u64,
    /// Guest RAM actually touched: their RSS (KiB).
    pub rss_kib: u64,
    /// Their PSS (KiB).
    pub pss_kib: u64,
}

/// One step of the density curve: after the i-th container was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityStep {
    /// Containers running.
    pub containers: usize,
    /// Since the first `run -d` (ms).
    pub elapsed_ms: f64,
    /// This `run -d`'s wall time (ms).
    pub create_ms: f64,
    /// Sum of the VMM processes' PSS (KiB).
    pub pss_sum_kib: u64,
    /// MemAvailable before the first container minus now (KiB).
    pub mem_available_drop_kib: i64,
}

/// What the teardown left behind (all empty = clean).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeardownReport {
    /// `delete --force` wall times (ms).
    pub delete_ms: Option<Summary>,
    /// Deletes that failed (id: error).
    pub delete_errors: Vec<String>,
    /// Live processes of the bench's containers (`pid: cmdline`).
    pub leftover_processes: Vec<String>,
    /// State directories still under the bench's `--root`.
    pub leftover_state: Vec<String>,
    /// Host cgroup directories of the containers still there.
    pub leftover_cgroups: Vec<String>,
    /// True when all of the above are empty.
    pub clean: bool,
}

/// `--density K`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DensityReport {
    /// K.
    pub requested: usize,
    /// Containers that came up.
    pub created: usize,
    /// Their process (`sleep`).
    pub args: Vec<String>,
    /// Creation failures (index: error).
    pub failures: Vec<String>,
    /// `run -d` wall times (ms).
    pub create_ms: Option<Summary>,
    /// Containers created per second (sequentially, one `run -d` after the other).
    pub creation_rate_per_s: Option<f64>,
    /// The curve.
    pub steps: Vec<DensityStep>,
    /// How long all K idled before the final reading (ms).
    pub settle_ms: u64,
    /// Sum of the VMMs' PSS over the containers created (KiB), after settling.
    pub pss_per_container_kib: Option<u64>,
    /// MemAvailable drop over the containers created (KiB), after settling.
    pub mem_available_drop_per_container_kib: Option<i64>,
    /// The teardown and its checks.
    pub teardown: TeardownReport,
}

impl RuntimeReport {
    /// The median wall time, when measured.
    pub fn median_wall(&self) -> Option<f64> {
        self.wall_ms.map(|s| s.median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_use_the_documented_words() {
        let words = serde_json::to_value([
            RuntimeStatus::Measured,
            RuntimeStatus::Missing,
            RuntimeStatus::Refused,
        ])
        .unwrap();
        assert_eq!(words, serde_json::json!(["measured", "missing", "refused"]));
        let words = serde_json::to_value([
            Virtualization::Hardware,
            Virtualization::Nested,
            Virtualization::Emulated,
        ])
        .unwrap();
        assert_eq!(words, serde_json::json!(["hardware", "nested", "emulated"]));
        assert_eq!(serde_json::to_value(Clock::Vmm).unwrap(), "vmm");
        assert_eq!(serde_json::to_value(Clock::Caller).unwrap(), "caller");
    }
}
