//! Checks `linux.resources` against what the guest's cgroup v2 hierarchy can
//! apply, so nothing is silently dropped.

use std::collections::HashSet;
use std::path::Path;

use crate::oci_spec::runtime::{LinuxResources, Spec};
use crate::validate::Warning;
use crate::IsolationError;

/// Where the guest mounts cgroup2.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Is `root` a cgroup2 mount (the unified hierarchy)?
pub fn is_cgroup2(root: &Path) -> bool {
    nix::sys::statfs::statfs(root)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// The controllers the root of the hierarchy offers (`cgroup.controllers`).
pub fn available_controllers(root: &Path) -> Result<HashSet<String>, IsolationError> {
    let path = root.join("cgroup.controllers");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| IsolationError::io(format!("reading {}", path.display()), e))?;
    Ok(text.split_whitespace().map(str::to_owned).collect())
}

/// Errors with the field name for every requested resource the guest
/// cannot apply; warns for deprecated fields that runc ignores too.
pub fn check_resources(spec: &Spec, root: &Path) -> Result<Vec<Warning>, IsolationError> {
    let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return Ok(Vec::new());
    };
    let controllers = if is_cgroup2(root) {
        available_controllers(root)?
    } else {
        HashSet::new()
    };
    let swap_supported = Path::new("/proc/swaps").exists();
    check_against(res, &controllers, swap_supported)
}

/// The pure part of [`check_resources`], testable without a cgroup mount.
pub fn check_against(
    res: &LinuxResources,
    controllers: &HashSet<String>,
    swap_supported: bool,
) -> Result<Vec<Warning>, IsolationError> {
    let mut warnings = Vec::new();
    let need = |field: &str, controller: &str| -> Result<(), IsolationError> {
        if controllers.contains(controller) {
            Ok(())
        } else {
            Err(unsupported(
                field,
                format!("the guest's cgroup v2 hierarchy has no {controller} controller"),
            ))
        }
    };
    if let Some(mem) = res.memory() {
        let f = "linux.resources.memory";
        if mem.limit().is_some() || mem.reservation().is_some() || mem.swap().is_some() {
            need(f, "memory")?;
        }
        if mem.swap().is_some_and(|s| s != 0) && !swap_supported {
            return Err(unsupported(
                &format!("{f}.swap"),
                "the guest kernel has no swap support (CONFIG_SWAP)".into(),
            ));
        }
        if mem.swappiness().is_some() {
            return Err(unsupported(
                &format!("{f}.swappiness"),
                "memory.swappiness does not exist in cgroup v2".into(),
            ));
        }
        if mem.kernel().is_some() || mem.kernel_tcp().is_some() {
            warnings.push(Warning {
                field: format!("{f}.kernel/kernelTCP"),
                reason: "deprecated kernel memory limits are ignored (as runc does)".into(),
            });
        }
    }
    if let Some(cpu) = res.cpu() {
        let f = "linux.resources.cpu";
        if cpu.shares().is_some() || cpu.quota().is_some() || cpu.period().is_some() {
            need(f, "cpu")?;
        }
        if cpu.cpus().is_some() || cpu.mems().is_some() {
            need(&format!("{f}.cpus/mems"), "cpuset")?;
        }
        if cpu.realtime_runtime().is_some() || cpu.realtime_period().is_some() {
            return Err(unsupported(
                &format!("{f}.realtimeRuntime/realtimePeriod"),
                "realtime CPU limits do not exist in cgroup v2".into(),
            ));
        }
    }
    if res.pids().is_some() {
        need("linux.resources.pids", "pids")?;
    }
    if res.block_io().is_some() {
        need("linux.resources.blockIO", "io")?;
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        need("linux.resources.hugepageLimits", "hugetlb")?;
    }
    if res.rdma().as_ref().is_some_and(|r| !r.is_empty()) {
        need("linux.resources.rdma", "rdma")?;
    }
    if res.network().is_some() {
        return Err(unsupported(
            "linux.resources.network",
            "net_cls/net_prio (classID, priorities) are cgroup v1 only".into(),
        ));
    }
    for key in res.unified().iter().flat_map(|u| u.keys()) {
        let controller = key.split('.').next().unwrap_or_default();
        if controller != "cgroup" {
            need(&format!("linux.resources.unified.{key}"), controller)?;
        }
    }
    // linux.resources.devices needs no check here: libcontainer always
    // attaches its eBPF device program (default deny, runc's default device
    // list, then these rules) and the guest kernel has CONFIG_CGROUP_BPF.
    // Malformed rules are refused by validate::validate.
    Ok(warnings)
}

fn unsupported(field: &str, reason: String) -> IsolationError {
    IsolationError::UnsupportedResource {
        field: field.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: serde_json::Value) -> LinuxResources {
        serde_json::from_value(json).unwrap()
    }

    fn set(names: &[&str]) -> HashSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn memory_cpu_pids_with_controllers_are_fine() {
        let r = res(serde_json::json!({
            "memory": {"limit": 1048576}, "cpu": {"quota": 5000, "period": 10000},
            "pids": {"limit": 10}
        }));
        assert!(check_against(&r, &set(&["cpu", "memory", "pids"]), false)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn cpuset_without_controller_names_the_field() {
        let r = res(serde_json::json!({"cpu": {"cpus": "0"}}));
        let err = check_against(&r, &set(&["cpu", "memory", "pids"]), false).unwrap_err();
        assert!(
            err.to_string().contains("linux.resources.cpu.cpus/mems"),
            "{err}"
        );
        assert!(err.to_string().contains("cpuset"), "{err}");
    }

    #[test]
    fn hugetlb_without_controller_is_refused() {
        let r = res(serde_json::json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 1}]}));
        let err = check_against(&r, &set(&["memory"]), false).unwrap_err();
        assert!(err.to_string().contains("hugepageLimits"), "{err}");
    }

    #[test]
    fn swap_without_kernel_swap_is_refused() {
        let r = res(serde_json::json!({"memory": {"limit": 1048576, "swap": 2097152}}));
        let err = check_against(&r, &set(&["memory"]), false).unwrap_err();
        assert!(err.to_string().contains("memory.swap"), "{err}");
        check_against(&r, &set(&["memory"]), true).unwrap();
    }

    #[test]
    fn network_class_is_v1_only() {
        let r = res(serde_json::json!({"network": {"classID": 1}}));
        let err = check_against(&r, &set(&["memory"]), true).unwrap_err();
        assert!(err.to_string().contains("linux.resources.network"), "{err}");
    }

    #[test]
    fn unified_key_needs_its_controller() {
        let r = res(serde_json::json!({"unified": {"io.weight": "100"}}));
        let err = check_against(&r, &set(&["memory"]), true).unwrap_err();
        assert!(err.to_string().contains("unified.io.weight"), "{err}");
    }

    #[test]
    fn device_rules_are_enforced_without_warning() {
        let r = res(serde_json::json!({"devices": [
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}
        ]}));
        assert!(check_against(&r, &set(&[]), true).unwrap().is_empty());
    }
}
