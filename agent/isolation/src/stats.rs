//! A container's resource usage in the JSON shape of runc's `types.Stats`
//! (the `data` of `runc events --stats`): the same keys, the same units
//! (nanoseconds, bytes), and Go's `omitempty` where runc has it.

use std::collections::BTreeMap;

use serde::Serialize;

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// runc's `types.Stats`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// CPU time and throttling.
    pub cpu: Cpu,
    /// The cpuset the container may use.
    pub cpuset: CpuSet,
    /// Memory and swap.
    pub memory: Memory,
    /// Number of tasks.
    pub pids: Pids,
    /// Block I/O.
    pub blkio: Blkio,
    /// Huge pages, by page size (`2MB`, `1GB`).
    pub hugetlb: BTreeMap<String, Hugetlb>,
    /// Intel RDT: never available in the guest (an empty object, as runc
    /// reports it without RDT).
    pub intel_rdt: BTreeMap<String, u64>,
    /// Network interfaces: not collected (`null`, as runc without them).
    pub network_interfaces: Option<Vec<BTreeMap<String, u64>>>,
}

/// runc's `Cpu`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Cpu {
    /// CPU time used.
    pub usage: CpuUsage,
    /// CFS quota throttling.
    pub throttling: Throttling,
    /// Pressure stall information (`cpu.pressure`), when the kernel has it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// runc's `CpuUsage` (nanoseconds).
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CpuUsage {
    /// Total CPU time.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    /// Total CPU time per CPU (cgroup v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    /// Kernel-mode time per CPU (cgroup v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_kernel: Vec<u64>,
    /// User-mode time per CPU (cgroup v1 only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu_user: Vec<u64>,
    /// Kernel-mode time.
    pub kernel: u64,
    /// User-mode time.
    pub user: u64,
}

/// runc's `Throttling`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Throttling {
    /// Enforcement periods elapsed.
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    /// Periods in which the group was throttled.
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// runc's `PSIStats`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Psi {
    /// Some tasks stalled.
    pub some: PsiData,
    /// All tasks stalled.
    pub full: PsiData,
}

/// runc's `PSIData`.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct PsiData {
    /// Share of the last 10 seconds, in percent.
    pub avg10: f64,
    /// Share of the last 60 seconds, in percent.
    pub avg60: f64,
    /// Share of the last 300 seconds, in percent.
    pub avg300: f64,
    /// Total stall time, in microseconds.
    pub total: u64,
}

/// runc's `CPUSet`; in cgroup v2 only `cpus` and `mems` are known.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CpuSet {
    /// CPUs the container may run on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<u16>,
    /// Always 0 in cgroup v2.
    pub cpu_exclusive: u64,
    /// Memory nodes the container may use.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mems: Vec<u16>,
    /// Always 0 in cgroup v2.
    pub mem_hardwall: u64,
    /// Always 0 in cgroup v2.
    pub mem_exclusive: u64,
    /// Always 0 in cgroup v2.
    pub memory_migrate: u64,
    /// Always 0 in cgroup v2.
    pub memory_spread_page: u64,
    /// Always 0 in cgroup v2.
    pub memory_spread_slab: u64,
    /// Always 0 in cgroup v2.
    pub memory_pressure: u64,
    /// Always 0 in cgroup v2.
    pub sched_load_balance: u64,
    /// Always 0 in cgroup v2.
    pub sched_relax_domain_level: i64,
}

/// runc's `Memory` (bytes).
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Memory {
    /// Page cache (`file` in cgroup v2's `memory.stat`).
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    /// Memory.
    pub usage: MemoryEntry,
    /// Memory + swap, as cgroup v1 counts it.
    pub swap: MemoryEntry,
    /// Kernel memory (cgroup v1 only).
    pub kernel: MemoryEntry,
    /// Kernel TCP buffers (cgroup v1 only).
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    /// `memory.stat` as it is.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
    /// Pressure stall information (`memory.pressure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// runc's `MemoryEntry`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct MemoryEntry {
    /// The limit (`u64::MAX` for none).
    pub limit: u64,
    /// Current usage.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Highest usage seen (cgroup v2: `memory.peak`, kernels ≥ 5.19).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Times the limit was hit (cgroup v2: the `max` count of
    /// `memory.events`).
    pub failcnt: u64,
}

/// runc's `Pids`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Pids {
    /// Tasks in the cgroup.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// Their limit (0 for none).
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// runc's `Blkio`; cgroup v2 fills bytes and I/O counts.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Blkio {
    /// Bytes read/written per device.
    #[serde(
        rename = "ioServiceBytesRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    /// I/O operations per device.
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
    /// Queued requests (cgroup v1 only).
    #[serde(rename = "ioQueueRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_queued_recursive: Vec<BlkioEntry>,
    /// Service time (cgroup v1 only).
    #[serde(
        rename = "ioServiceTimeRecursive",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub io_service_time_recursive: Vec<BlkioEntry>,
    /// Wait time (cgroup v1 only).
    #[serde(rename = "ioWaitTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_wait_time_recursive: Vec<BlkioEntry>,
    /// Merged requests (cgroup v1 only).
    #[serde(rename = "ioMergedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_merged_recursive: Vec<BlkioEntry>,
    /// Device time (cgroup v1 only).
    #[serde(rename = "ioTimeRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_time_recursive: Vec<BlkioEntry>,
    /// Sectors (cgroup v1 only).
    #[serde(rename = "sectorsRecursive", skip_serializing_if = "Vec::is_empty")]
    pub sectors_recursive: Vec<BlkioEntry>,
    /// Pressure stall information (`io.pressure`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub psi: Option<Psi>,
}

/// runc's `BlkioEntry`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct BlkioEntry {
    /// Device major number.
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    /// Device minor number.
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    /// `Read`, `Write`, `Discard`, ...
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    /// The count.
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// runc's `Hugetlb`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Hugetlb {
    /// Bytes in use.
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// Highest usage (cgroup v1 only).
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    /// Allocations that failed at the limit.
    pub failcnt: u64,
}

/// cgroup v1's `cpuacct.stat` counts clock ticks (`USER_HZ`); runc
/// reports nanoseconds.
fn ticks_to_ns(ticks: u64) -> u64 {
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|hz| u64::try_from(hz).ok())
        .filter(|&hz| hz > 0)
        .unwrap_or(100);
    ticks.saturating_mul(1_000_000_000 / per_second)
}

impl Stats {
    /// From libcgroups' statistics (used on cgroup v1 hosts; kernel and
    /// user CPU time converted from ticks to nanoseconds as runc does).
    pub fn from_libcgroups(stats: &libcgroups::stats::Stats) -> Self {
        let cpu = &stats.cpu;
        let memory = &stats.memory;
        let entry = |m: &libcgroups::stats::MemoryData| MemoryEntry {
            limit: m.limit,
            usage: m.usage,
            max: m.max_usage,
            failcnt: m.fail_count,
        };
        let blkio = |list: &[libcgroups::stats::BlkioDeviceStat]| -> Vec<BlkioEntry> {
            list.iter()
                .map(|s| BlkioEntry {
                    major: s.major,
                    minor: s.minor,
                    op: s.op_type.clone().unwrap_or_default(),
                    value: s.value,
                })
                .collect()
        };
        let io = &stats.blkio;
        Self {
            cpu: Cpu {
                usage: CpuUsage {
                    total: cpu.usage.usage_total,
                    percpu: cpu.usage.per_core_usage_total.clone(),
                    percpu_kernel: cpu.usage.per_core_usage_kernel.clone(),
                    percpu_user: cpu.usage.per_core_usage_user.clone(),
                    kernel: ticks_to_ns(cpu.usage.usage_kernel),
                    user: ticks_to_ns(cpu.usage.usage_user),
                },
                throttling: Throttling {
                    periods: cpu.throttling.periods,
                    throttled_periods: cpu.throttling.throttled_periods,
                    throttled_time: cpu.throttling.throttled_time,
                },
                psi: None,
            },
            memory: Memory {
                cache: memory.cache,
                usage: entry(&memory.memory),
                swap: entry(&memory.memswap),
                kernel: entry(&memory.kernel),
                kernel_tcp: entry(&memory.kernel_tcp),
                raw: memory.stats.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                psi: None,
            },
            pids: Pids {
                current: stats.pids.current,
                limit: stats.pids.limit,
            },
            blkio: Blkio {
                io_service_bytes_recursive: blkio(&io.service_bytes),
                io_serviced_recursive: blkio(&io.serviced),
                io_queued_recursive: blkio(&io.queued),
                io_service_time_recursive: blkio(&io.service_time),
                io_wait_time_recursive: blkio(&io.wait_time),
                io_merged_recursive: blkio(&io.merged),
                io_time_recursive: blkio(&io.time),
                sectors_recursive: blkio(&io.sectors),
                psi: None,
            },
            hugetlb: stats
                .hugetlb
                .iter()
                .map(|(size, h)| {
                    let stats = Hugetlb {
                        usage: h.usage,
                        max: h.max_usage,
                        failcnt: h.fail_count,
                    };
                    (size.clone(), stats)
                })
                .collect(),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_omitempty_follow_runc() {
        let mut stats = Stats::default();
        stats.cpu.usage.total = 5;
        stats.memory.usage.limit = 100;
        stats.memory.usage.usage = 10;
        stats.pids.current = 2;
        stats.blkio.io_service_bytes_recursive.push(BlkioEntry {
            major: 254,
            minor: 0,
            op: "Read".into(),
            value: 4096,
        });
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(
            json["cpu"]["usage"],
            serde_json::json!({"total": 5, "kernel": 0, "user": 0})
        );
        assert_eq!(json["cpu"]["throttling"], serde_json::json!({}));
        assert!(json["cpu"].get("psi").is_none());
        assert_eq!(
            json["memory"]["usage"],
            serde_json::json!({"limit": 100, "usage": 10, "failcnt": 0})
        );
        assert_eq!(
            json["memory"]["kernelTCP"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert_eq!(json["pids"], serde_json::json!({"current": 2}));
        assert_eq!(
            json["blkio"],
            serde_json::json!({"ioServiceBytesRecursive": [
                {"major": 254, "op": "Read", "value": 4096}
            ]})
        );
        assert_eq!(json["hugetlb"], serde_json::json!({}));
        assert_eq!(json["intel_rdt"], serde_json::json!({}));
        assert!(json["network_interfaces"].is_null());
        assert_eq!(json["cpuset"]["sched_relax_domain_level"], 0);
    }
}
