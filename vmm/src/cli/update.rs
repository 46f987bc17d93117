//! `vmrun update [--resources FILE|-] [--memory ...] ID`: changes the
//! container's limits (its cgroup in the guest, and the VMM's host cgroup
//! where memory, cpu and pids are bounded), with runc's flags.

use std::io::Read;
use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::pause::call_running;
use super::{CliError, GlobalOpts};
use crate::runtime::api::ApiRequest;

/// Arguments of `vmrun update` (runc 1.1's flags).
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The container id.
    #[arg(value_name = "ID")]
    pub id: String,
    /// A JSON file with the OCI `linux.resources` to apply, or `-` for stdin.
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight", value_name = "N")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (µs).
    #[arg(long = "cpu-period", value_name = "N")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (µs).
    #[arg(long = "cpu-quota", value_name = "N", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares.
    #[arg(long = "cpu-share", value_name = "N")]
    pub cpu_share: Option<u64>,
    /// Real-time period (µs).
    #[arg(long = "cpu-rt-period", value_name = "N")]
    pub cpu_rt_period: Option<u64>,
    /// Real-time runtime (µs).
    #[arg(
        long = "cpu-rt-runtime",
        value_name = "N",
        allow_negative_numbers = true
    )]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs to use.
    #[arg(long = "cpuset-cpus", value_name = "LIST")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes to use.
    #[arg(long = "cpuset-mems", value_name = "LIST")]
    pub cpuset_mems: Option<String>,
    /// Kernel memory limit (deprecated; refused by cgroup v2).
    #[arg(long = "kernel-memory", value_name = "BYTES")]
    pub kernel_memory: Option<String>,
    /// Kernel TCP buffer memory limit.
    #[arg(long = "kernel-memory-tcp", value_name = "BYTES")]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a unit: 512m, 1g).
    #[arg(long, value_name = "BYTES")]
    pub memory: Option<String>,
    /// Memory reservation (soft limit).
    #[arg(long = "memory-reservation", value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Memory + swap limit; -1 for unlimited swap.
    #[arg(long = "memory-swap", value_name = "BYTES", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Most pids in the container.
    #[arg(long = "pids-limit", value_name = "N", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 schema (refused: the guest has none).
    #[arg(long = "l3-cache-schema", value_name = "S")]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT MBA schema (refused: the guest has none).
    #[arg(long = "mem-bw-schema", value_name = "S")]
    pub mem_bw_schema: Option<String>,
}

/// Parses a size as runc does (docker's RAMInBytes): bytes, or a number
/// with b/k/m/g/t/p (binary multiples, optional `b`/`ib` suffix); `-1`
/// means unlimited.
pub fn parse_bytes(flag: &str, raw: &str) -> Result<i64, CliError> {
    let bad = || CliError::Usage(format!("invalid value for --{flag}: {raw:?}"));
    let text = raw.trim().to_ascii_lowercase();
    if text == "-1" {
        return Ok(-1);
    }
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.trim();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let multiplier: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return Err(bad()),
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes < 0.0 || bytes > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as i64)
}

fn set(resources: &mut Map<String, Value>, group: &str, key: &str, value: Value) {
    let entry = resources
        .entry(group.to_owned())
        .or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    if let Some(map) = entry.as_object_mut() {
        map.insert(key.to_owned(), value);
    }
}

/// The `linux.resources` object the flags (over `--resources`) describe.
pub fn resources(args: &UpdateArgs) -> Result<Value, CliError> {
    let mut base = match &args.resources {
        None => json!({}),
        Some(path) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text).map_err(|e| {
                    CliError::Usage(format!("cannot read the resources from stdin: {e}"))
                })?;
            } else {
                text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::Usage(format!("cannot read {}: {e}", path.display())))?;
            }
            serde_json::from_str(&text)
                .map_err(|e| CliError::Usage(format!("the resources are not valid JSON: {e}")))?
        }
    };
    let Some(map) = base.as_object_mut() else {
        return Err(CliError::Usage(
            "the resources must be a JSON object (OCI linux.resources)".into(),
        ));
    };
    if args.l3_cache_schema.is_some() || args.mem_bw_schema.is_some() {
        return Err(CliError::Usage(
            "Intel RDT (--l3-cache-schema, --mem-bw-schema) is not available in a microVM".into(),
        ));
    }
    for (flag, value, key) in [
        ("memory", &args.memory, "limit"),
        (
            "memory-reservation",
            &args.memory_reservation,
            "reservation",
        ),
        ("memory-swap", &args.memory_swap, "swap"),
        ("kernel-memory", &args.kernel_memory, "kernel"),
        ("kernel-memory-tcp", &args.kernel_memory_tcp, "kernelTCP"),
    ] {
        if let Some(raw) = value {
            set(map, "memory", key, json!(parse_bytes(flag, raw)?));
        }
    }
    if let Some(v) = args.cpu_share {
        set(map, "cpu", "shares", json!(v));
    }
    if let Some(v) = args.cpu_quota {
        set(map, "cpu", "quota", json!(v));
    }
    if let Some(v) = args.cpu_period {
        set(map, "cpu", "period", json!(v));
    }
    if let Some(v) = args.cpu_rt_runtime {
        set(map, "cpu", "realtimeRuntime", json!(v));
    }
    if let Some(v) = args.cpu_rt_period {
        set(map, "cpu", "realtimePeriod", json!(v));
    }
    if let Some(v) = &args.cpuset_cpus {
        set(map, "cpu", "cpus", json!(v));
    }
    if let Some(v) = &args.cpuset_mems {
        set(map, "cpu", "mems", json!(v));
    }
    if let Some(v) = args.pids_limit {
        set(map, "pids", "limit", json!(v));
    }
    if let Some(v) = args.blkio_weight {
        set(map, "blockIO", "weight", json!(v));
    }
    Ok(base)
}

/// Runs `vmrun update`.
pub fn run(global: &GlobalOpts, args: UpdateArgs) -> Result<i32, CliError> {
    let resources = resources(&args)?;
    call_running(global, &args.id, &ApiRequest::Update { resources })?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn sizes_parse_like_dockers_ram_in_bytes() {
        for (raw, want) in [
            ("1024", 1024),
            ("512m", 512 << 20),
            ("512M", 512 << 20),
            ("1g", 1 << 30),
            ("1gb", 1 << 30),
            ("2GiB", 2 << 30),
            ("4k", 4096),
            ("-1", -1),
            ("1.5k", 1536),
        ] {
            assert_eq!(parse_bytes("memory", raw).unwrap(), want, "{raw}");
        }
        for bad in ["", "m", "12q", "-5", "1e400"] {
            assert!(parse_bytes("memory", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_become_oci_resources() {
        let cli = crate::cli::Cli::try_parse_from([
            "vmrun",
            "update",
            "--memory",
            "64m",
            "--pids-limit",
            "20",
            "--cpu-quota",
            "50000",
            "--cpu-period",
            "100000",
            "c1",
        ])
        .unwrap();
        let crate::cli::Command::Update(args) = cli.command else {
            panic!("not update");
        };
        let res = resources(&args).unwrap();
        assert_eq!(res["memory"]["limit"], 64 << 20);
        assert_eq!(res["pids"]["limit"], 20);
        assert_eq!(res["cpu"]["quota"], 50000);
        assert_eq!(res["cpu"]["period"], 100000);
    }
}
