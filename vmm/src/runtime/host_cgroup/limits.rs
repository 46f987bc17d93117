//! `linux.resources` → the host cgroup files to write, in order.
//!
//! The host cgroup is the outer bound of the whole VM; the spec's
//! resources are also applied to the container inside the guest. So only
//! memory, cpu, cpuset and pids are written here, with the VM's own cost
//! added where it is charged to the VMM: guest RAM and VMM overhead on
//! top of every memory amount, the VMM's threads on top of the pids
//! limit. Conversions follow runc 1.1 (`-1` = unlimited, `0` = unset;
//! v2: `memory.swap.max` = swap − limit, shares → `cpu.weight`,
//! `cpu.max` = `"<quota|max> [period]"`).

use serde_json::Value;

use super::error::HostCgroupError;
use super::layout::CgroupVersion;

/// What the VM costs on top of the container's own limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmOverhead {
    /// Added to every memory amount: guest RAM and the VMM's own memory
    /// are charged to the VMM process.
    pub memory_bytes: u64,
    /// Added to the pids limit: the VMM's threads (vCPUs, devices, ...).
    pub threads: u64,
}

/// Host memory the VMM itself may use on top of guest RAM (MiB).
pub const VMM_OVERHEAD_MIB: u64 = 64;
/// Threads the VMM itself may use on top of one per vCPU.
pub const VMM_THREADS: u64 = 64;

impl VmOverhead {
    /// The cost of a VM with `memory_mib` of guest RAM and `vcpus` vCPUs.
    pub fn for_vm(memory_mib: u64, vcpus: u8) -> Self {
        Self {
            memory_bytes: memory_mib.saturating_add(VMM_OVERHEAD_MIB) << 20,
            threads: u64::from(vcpus) + VMM_THREADS,
        }
    }
}

/// One control-file write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LimitWrite {
    /// The controller owning the file.
    pub controller: &'static str,
    /// The file, in the container's cgroup directory.
    pub file: &'static str,
    /// What to write.
    pub value: String,
    /// The spec field it comes from (for errors).
    pub field: &'static str,
    /// Skipped when the file does not exist.
    pub optional: bool,
}

const MEMORY_LIMIT: &str = "linux.resources.memory.limit";
const MEMORY_SWAP: &str = "linux.resources.memory.swap";
const MEMORY_RESERVATION: &str = "linux.resources.memory.reservation";
const MEMORY_SWAPPINESS: &str = "linux.resources.memory.swappiness";
const CPU_SHARES: &str = "linux.resources.cpu.shares";
const CPU_QUOTA: &str = "linux.resources.cpu.quota";
const CPU_PERIOD: &str = "linux.resources.cpu.period";
const CPU_CPUS: &str = "linux.resources.cpu.cpus";
const CPU_MEMS: &str = "linux.resources.cpu.mems";
const PIDS_LIMIT: &str = "linux.resources.pids.limit";

/// The v1 file that takes memory+swap.
pub(super) const V1_MEMSW: &str = "memory.memsw.limit_in_bytes";

/// The writes for `resources` (a `linux.resources` object; `None` or null:
/// nothing) on a `version` host. Every field is checked before anything
/// is written.
pub(super) fn plan(
    resources: Option<&Value>,
    overhead: VmOverhead,
    version: CgroupVersion,
) -> Result<Vec<LimitWrite>, HostCgroupError> {
    let Some(resources) = resources.filter(|r| !r.is_null()) else {
        return Ok(Vec::new());
    };
    if !resources.is_object() {
        return Err(invalid("linux.resources", "expected an object"));
    }
    let mut writes = Vec::new();
    memory(resources, overhead.memory_bytes, version, &mut writes)?;
    cpu(resources, version, &mut writes)?;
    pids(resources, overhead.threads, &mut writes)?;
    Ok(writes)
}

fn memory(
    r: &Value,
    overhead: u64,
    version: CgroupVersion,
    out: &mut Vec<LimitWrite>,
) -> Result<(), HostCgroupError> {
    let limit = bytes(r, "/memory/limit", MEMORY_LIMIT)?;
    let swap = bytes(r, "/memory/swap", MEMORY_SWAP)?;
    let reservation = bytes(r, "/memory/reservation", MEMORY_RESERVATION)?;
    let swappiness = uint(r, "/memory/swappiness", MEMORY_SWAPPINESS)?;
    if let (Some(l), Some(s)) = (limit, swap) {
        if l > 0 && s > 0 && s < l {
            return Err(invalid(
                MEMORY_SWAP,
                format!("{s} is below memory.limit {l} (swap is memory+swap)"),
            ));
        }
    }
    let plus = |v: i64| (v as u64).saturating_add(overhead).min(i64::MAX as u64);
    let push = |out: &mut Vec<LimitWrite>, file, value: String, field, optional| {
        out.push(LimitWrite {
            controller: "memory",
            file,
            value,
            field,
            optional,
        })
    };
    match version {
        CgroupVersion::V1 => {
            let amount = |v: i64| {
                if v < 0 {
                    "-1".to_owned()
                } else {
                    plus(v).to_string()
                }
            };
            if let Some(l) = limit {
                push(out, "memory.limit_in_bytes", amount(l), MEMORY_LIMIT, false);
            }
            match swap {
                Some(s) => push(out, V1_MEMSW, amount(s), MEMORY_SWAP, false),
                // runc: an unlimited memory with swap unset also lifts
                // memory+swap, where the kernel accounts swap.
                None if limit == Some(-1) => push(out, V1_MEMSW, "-1".into(), MEMORY_LIMIT, true),
                None => {}
            }
            if let Some(v) = reservation {
                let file = "memory.soft_limit_in_bytes";
                push(out, file, amount(v), MEMORY_RESERVATION, false);
            }
            if let Some(v) = swappiness {
                if v > 100 {
                    return Err(invalid(MEMORY_SWAPPINESS, format!("{v} is above 100")));
                }
                push(
                    out,
                    "memory.swappiness",
                    v.to_string(),
                    MEMORY_SWAPPINESS,
                    false,
                );
            }
        }
        CgroupVersion::V2 => {
            let amount = |v: i64| {
                if v < 0 {
                    "max".to_owned()
                } else {
                    plus(v).to_string()
                }
            };
            if let Some(l) = limit {
                push(out, "memory.max", amount(l), MEMORY_LIMIT, false);
            }
            if let Some(value) = v2_swap(limit, swap)? {
                push(out, "memory.swap.max", value, MEMORY_SWAP, false);
            }
            if let Some(v) = reservation {
                push(out, "memory.low", amount(v), MEMORY_RESERVATION, false);
            }
            // memory.swappiness has no v2 file: the guest applies it.
        }
    }
    Ok(())
}

/// runc's `ConvertMemorySwapToCgroupV2Value` (the overhead is on both
/// sides of the difference, so it cancels).
fn v2_swap(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>, HostCgroupError> {
    match (limit, swap) {
        (Some(-1), None) | (_, Some(-1)) => Ok(Some("max".into())),
        (_, None) => Ok(None),
        (None, Some(_)) | (Some(-1), Some(_)) => Err(invalid(
            MEMORY_SWAP,
            "cannot set a swap limit without memory.limit",
        )),
        (Some(l), Some(s)) => Ok(Some((s - l).to_string())),
    }
}

fn cpu(
    r: &Value,
    version: CgroupVersion,
    out: &mut Vec<LimitWrite>,
) -> Result<(), HostCgroupError> {
    let shares = uint(r, "/cpu/shares", CPU_SHARES)?;
    let quota = int(r, "/cpu/quota", CPU_QUOTA)?.filter(|&q| q != 0);
    let period = uint(r, "/cpu/period", CPU_PERIOD)?;
    let push = |out: &mut Vec<LimitWrite>, controller, file, value: String, field| {
        out.push(LimitWrite {
            controller,
            file,
            value,
            field,
            optional: false,
        })
    };
    if let Some(q) = quota.filter(|&q| q < -1) {
        return Err(invalid(
            CPU_QUOTA,
            format!("{q}: must be -1 (no limit) or positive"),
        ));
    }
    match version {
        CgroupVersion::V1 => {
            if let Some(s) = shares {
                push(out, "cpu", "cpu.shares", s.to_string(), CPU_SHARES);
            }
            if let Some(p) = period {
                push(out, "cpu", "cpu.cfs_period_us", p.to_string(), CPU_PERIOD);
            }
            if let Some(q) = quota {
                push(out, "cpu", "cpu.cfs_quota_us", q.to_string(), CPU_QUOTA);
            }
        }
        CgroupVersion::V2 => {
            if let Some(s) = shares {
                let s = s.clamp(2, 262_144);
                let weight = 1 + ((s - 2) * 9999) / 262_142;
                push(out, "cpu", "cpu.weight", weight.to_string(), CPU_SHARES);
            }
            if quota.is_some() || period.is_some() {
                let mut value = match quota {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_owned(),
                };
                if let Some(p) = period {
                    value.push_str(&format!(" {p}"));
                }
                let field = if quota.is_some() {
                    CPU_QUOTA
                } else {
                    CPU_PERIOD
                };
                push(out, "cpu", "cpu.max", value, field);
            }
        }
    }
    for (pointer, file, field) in [
        ("/cpu/cpus", "cpuset.cpus", CPU_CPUS),
        ("/cpu/mems", "cpuset.mems", CPU_MEMS),
    ] {
        if let Some(list) = string(r, pointer, field)? {
            push(out, "cpuset", file, list.to_owned(), field);
        }
    }
    Ok(())
}

fn pids(r: &Value, threads: u64, out: &mut Vec<LimitWrite>) -> Result<(), HostCgroupError> {
    let Some(limit) = int(r, "/pids/limit", PIDS_LIMIT)?.filter(|&l| l != 0) else {
        return Ok(());
    };
    let value = if limit < 0 {
        "max".to_owned()
    } else {
        (limit as u64).saturating_add(threads).to_string()
    };
    out.push(LimitWrite {
        controller: "pids",
        file: "pids.max",
        value,
        field: PIDS_LIMIT,
        optional: false,
    });
    Ok(())
}

/// v1: memory+swap must never drop below memory, so when memory+swap
/// grows (or becomes unlimited) it is written before memory, else after
/// (runc's `setMemoryAndSwap`). `current_memsw`: the file's value now.
pub(super) fn order_v1_memory(writes: &mut [LimitWrite], current_memsw: Option<u64>) {
    let position = |file: &str| writes.iter().position(|w| w.file == file);
    let (Some(limit), Some(memsw)) = (position("memory.limit_in_bytes"), position(V1_MEMSW)) else {
        return;
    };
    let grows = match writes[memsw].value.parse::<i64>() {
        Ok(v) if v < 0 => true,
        Ok(v) => current_memsw.is_some_and(|c| v as u64 > c),
        Err(_) => false,
    };
    if grows != (memsw < limit) {
        writes.swap(limit, memsw);
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> HostCgroupError {
    HostCgroupError::InvalidField {
        field,
        reason: reason.into(),
    }
}

/// An integer field; absent or null: `None`.
fn int(r: &Value, pointer: &str, field: &'static str) -> Result<Option<i64>, HostCgroupError> {
    match r.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| invalid(field, format!("expected an integer, got {v}"))),
    }
}

fn uint(r: &Value, pointer: &str, field: &'static str) -> Result<Option<u64>, HostCgroupError> {
    match r.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| invalid(field, format!("expected a non-negative integer, got {v}"))),
    }
}

/// A byte amount: `-1` (unlimited) or positive; `0` counts as unset.
fn bytes(r: &Value, pointer: &str, field: &'static str) -> Result<Option<i64>, HostCgroupError> {
    match int(r, pointer, field)? {
        Some(0) | None => Ok(None),
        Some(v) if v < -1 => Err(invalid(
            field,
            format!("{v}: must be -1 (unlimited) or positive"),
        )),
        v => Ok(v),
    }
}

/// A non-empty string field.
fn string<'a>(
    r: &'a Value,
    pointer: &str,
    field: &'static str,
) -> Result<Option<&'a str>, HostCgroupError> {
    match r.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(invalid(field, format!("expected a string, got {v}"))),
    }
}

#[cfg(test)]
#[path = "limits_tests.rs"]
mod tests;
