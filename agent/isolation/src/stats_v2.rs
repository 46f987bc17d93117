//! Reading a cgroup v2 directory into runc's [`Stats`], the way runc's
//! `fs2` driver does: CPU times from `cpu.stat` (µs → ns), memory from
//! `memory.{current,max,peak,events,stat}`, swap reported as memory + swap
//! like cgroup v1, pids, `io.stat`, huge pages, the effective cpuset and
//! pressure stall information. A file the guest kernel or the cgroup's
//! controllers do not provide leaves its fields at zero (absent), never an
//! error.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::stats::{
    Blkio, BlkioEntry, Cpu, CpuSet, CpuUsage, Hugetlb, Memory, MemoryEntry, Pids, Psi, Stats,
    Throttling,
};

/// Where the kernel lists the huge page sizes it supports.
pub const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";

/// Reads the statistics of the cgroup at `dir`; `hugepages` is
/// [`HUGEPAGES_DIR`] (a parameter for tests).
pub fn read(dir: &Path, hugepages: &Path) -> Stats {
    Stats {
        cpu: cpu(dir),
        cpuset: CpuSet {
            cpus: read_string(&dir.join("cpuset.cpus.effective"))
                .map(|s| parse_list(&s))
                .unwrap_or_default(),
            mems: read_string(&dir.join("cpuset.mems.effective"))
                .map(|s| parse_list(&s))
                .unwrap_or_default(),
            ..CpuSet::default()
        },
        memory: memory(dir),
        pids: Pids {
            current: read_u64(&dir.join("pids.current")).unwrap_or(0),
            // "max" (no limit) is 0 for runc.
            limit: read_u64(&dir.join("pids.max"))
                .filter(|&l| l != u64::MAX)
                .unwrap_or(0),
        },
        blkio: Blkio {
            psi: psi(&dir.join("io.pressure")),
            ..io(dir)
        },
        hugetlb: hugetlb(dir, hugepages),
        ..Stats::default()
    }
}

fn read_string(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// A single-value file; `max` is `u64::MAX`.
fn read_u64(path: &Path) -> Option<u64> {
    let text = read_string(path)?;
    let text = text.trim();
    if text == "max" {
        return Some(u64::MAX);
    }
    text.parse().ok()
}

/// A flat keyed file (`key value` per line); malformed lines are skipped.
fn read_keyed(path: &Path) -> HashMap<String, u64> {
    read_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (key, value) = line.split_once(' ')?;
            Some((key.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

fn cpu(dir: &Path) -> Cpu {
    let stat = read_keyed(&dir.join("cpu.stat"));
    let ns = |key: &str| stat.get(key).map_or(0, |us| us.saturating_mul(1000));
    let count = |key: &str| stat.get(key).copied().unwrap_or(0);
    Cpu {
        usage: CpuUsage {
            total: ns("usage_usec"),
            kernel: ns("system_usec"),
            user: ns("user_usec"),
            ..CpuUsage::default()
        },
        throttling: Throttling {
            periods: count("nr_periods"),
            throttled_periods: count("nr_throttled"),
            throttled_time: ns("throttled_usec"),
        },
        psi: psi(&dir.join("cpu.pressure")),
    }
}

/// `memory` or `memory.swap`: current, max, peak; `failcnt` from the
/// `max` count of `memory.events` (swap: `memory.swap.events`).
fn memory_entry(dir: &Path, prefix: &str) -> Option<MemoryEntry> {
    let usage = read_u64(&dir.join(format!("{prefix}.current")))?;
    Some(MemoryEntry {
        usage,
        limit: read_u64(&dir.join(format!("{prefix}.max"))).unwrap_or(u64::MAX),
        max: read_u64(&dir.join(format!("{prefix}.peak"))).unwrap_or(0),
        failcnt: read_keyed(&dir.join(format!("{prefix}.events")))
            .get("max")
            .copied()
            .unwrap_or(0),
    })
}

fn memory(dir: &Path) -> Memory {
    let usage = memory_entry(dir, "memory").unwrap_or_default();
    // cgroup v1 reported swap as memory + swap: runc keeps that meaning.
    let swap = match memory_entry(dir, "memory.swap") {
        Some(swap) => MemoryEntry {
            usage: swap.usage.saturating_add(usage.usage),
            limit: if swap.limit == u64::MAX {
                u64::MAX
            } else {
                swap.limit.saturating_add(usage.limit)
            },
            max: 0,
            failcnt: swap.failcnt,
        },
        None => MemoryEntry::default(),
    };
    let raw: BTreeMap<String, u64> = read_keyed(&dir.join("memory.stat")).into_iter().collect();
    Memory {
        cache: raw.get("file").copied().unwrap_or(0),
        usage,
        swap,
        raw,
        psi: psi(&dir.join("memory.pressure")),
        ..Memory::default()
    }
}

/// `io.stat`: `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..`.
fn io(dir: &Path) -> Blkio {
    let mut blkio = Blkio::default();
    for line in read_string(&dir.join("io.stat"))
        .unwrap_or_default()
        .lines()
    {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(|dev| dev.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        for field in fields {
            let Some((key, value)) = field.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse() else {
                continue;
            };
            let (list, op) = match key {
                "rbytes" => (&mut blkio.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut blkio.io_service_bytes_recursive, "Write"),
                "dbytes" => (&mut blkio.io_service_bytes_recursive, "Discard"),
                "rios" => (&mut blkio.io_serviced_recursive, "Read"),
                "wios" => (&mut blkio.io_serviced_recursive, "Write"),
                "dios" => (&mut blkio.io_serviced_recursive, "Discard"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    blkio
}

/// Huge page usage per size the kernel supports (`hugepages-2048kB` is
/// `2MB`, the name runc and the cgroup files use).
fn hugetlb(dir: &Path, hugepages: &Path) -> BTreeMap<String, Hugetlb> {
    let Ok(entries) = std::fs::read_dir(hugepages) else {
        return BTreeMap::new();
    };
    entries
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let size = page_size_name(&name)?;
            let usage = read_u64(&dir.join(format!("hugetlb.{size}.current")))?;
            let failcnt = read_keyed(&dir.join(format!("hugetlb.{size}.events")))
                .get("max")
                .copied()
                .unwrap_or(0);
            Some((
                size,
                Hugetlb {
                    usage,
                    max: 0,
                    failcnt,
                },
            ))
        })
        .collect()
}

/// `hugepages-2048kB` → `2MB`, `hugepages-1048576kB` → `1GB`.
fn page_size_name(dir_name: &str) -> Option<String> {
    let kib: u64 = dir_name
        .strip_prefix("hugepages-")?
        .strip_suffix("kB")?
        .parse()
        .ok()?;
    Some(if kib >= 1 << 20 {
        format!("{}GB", kib >> 20)
    } else if kib >= 1 << 10 {
        format!("{}MB", kib >> 10)
    } else {
        format!("{kib}KB")
    })
}

/// A pressure file: `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` and
/// the same for `full`.
fn psi(path: &Path) -> Option<Psi> {
    let text = read_string(path)?;
    let mut psi = Psi::default();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let target = match fields.next() {
            Some("some") => &mut psi.some,
            Some("full") => &mut psi.full,
            _ => continue,
        };
        for field in fields {
            match field.split_once('=') {
                Some(("avg10", v)) => target.avg10 = v.parse().unwrap_or(0.0),
                Some(("avg60", v)) => target.avg60 = v.parse().unwrap_or(0.0),
                Some(("avg300", v)) => target.avg300 = v.parse().unwrap_or(0.0),
                Some(("total", v)) => target.total = v.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    Some(psi)
}

/// A cpuset list (`0-3,8,10-11`) as numbers; bounded by `u16` and by the
/// list's own ranges (a malformed or absurd range is skipped).
fn parse_list(text: &str) -> Vec<u16> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u16>(), b.parse::<u16>()),
            None => (part.parse::<u16>(), part.parse::<u16>()),
        };
        if let (Ok(first), Ok(last)) = (first, last) {
            if first <= last {
                out.extend(first..=last);
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "stats_v2_tests.rs"]
mod tests;
