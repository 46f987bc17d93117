//! runc's `update`: an OCI `linux.resources` object whose present fields
//! replace the container's current limits. Parsing (errors name the field
//! as `resources.<path>`), refusing what the guest cannot apply, and
//! merging into the limits in force.

use std::collections::HashSet;
use std::path::Path;

use serde_json::Value;

use crate::cgroups::{available_controllers, check_against};
use crate::oci_spec::runtime::LinuxResources;
use crate::validate::Warning;
use crate::IsolationError;

/// The request field an update travels in.
const FIELD: &str = "resources";

/// Parses an update; a mistake is reported with the field's path
/// (`resources.memory.limit: invalid type ...`).
pub fn parse_resources(json: &Value) -> Result<LinuxResources, IsolationError> {
    if !json.is_object() {
        return Err(IsolationError::invalid(FIELD, "must be an object"));
    }
    serde_path_to_error::deserialize(json).map_err(|err| {
        let path = err.path().to_string();
        IsolationError::Malformed {
            field: if path == "." {
                FIELD.to_owned()
            } else {
                format!("{FIELD}.{path}")
            },
            source: err.into_inner(),
        }
    })
}

/// Refuses what the guest cannot apply (naming `resources.<field>`):
/// controllers the hierarchy lacks, cgroup v1-only fields, and device
/// rules (runc's `update` cannot change them either). `unified` says
/// whether `root` is the cgroup2 hierarchy; on a cgroup v1 host (tests
/// only) the mounted v1 controllers count, under their v2 names.
pub fn check_update(
    update: &LinuxResources,
    root: &Path,
    unified: bool,
) -> Result<Vec<Warning>, IsolationError> {
    if update.devices().is_some() {
        return Err(IsolationError::UnsupportedResource {
            field: format!("{FIELD}.devices"),
            reason: "device rules cannot be changed by an update".into(),
        });
    }
    let controllers = if unified {
        available_controllers(root)?
    } else {
        v1_controllers()
    };
    let swap_supported = Path::new("/proc/swaps").exists();
    let rename = |field: String| match field.strip_prefix("linux.resources") {
        Some(rest) => format!("{FIELD}{rest}"),
        None => field,
    };
    match check_against(update, &controllers, swap_supported) {
        Ok(warnings) => Ok(warnings
            .into_iter()
            .map(|w| Warning {
                field: rename(w.field),
                reason: w.reason,
            })
            .collect()),
        Err(IsolationError::UnsupportedResource { field, reason }) => {
            Err(IsolationError::UnsupportedResource {
                field: rename(field),
                reason,
            })
        }
        Err(e) => Err(e),
    }
}

/// The enabled cgroup v1 controllers (`/proc/cgroups`) under their v2
/// names (`blkio` is `io`, `cpuacct` is part of `cpu`).
fn v1_controllers() -> HashSet<String> {
    let text = std::fs::read_to_string("/proc/cgroups").unwrap_or_default();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [name, _, _, "1"] => Some(match *name {
                    "blkio" => "io".to_owned(),
                    "cpuacct" => "cpu".to_owned(),
                    other => other.to_owned(),
                }),
                _ => None,
            }
        })
        .collect()
}

/// `current` with every field present in `update` replacing its
/// counterpart: objects are merged field by field (`memory`, `cpu`,
/// `unified`, ...), anything else (numbers, lists such as
/// `hugepageLimits`) is replaced; `null` counts as absent.
pub fn merge(current: &LinuxResources, update: &LinuxResources) -> LinuxResources {
    let (Ok(mut merged), Ok(update)) =
        (serde_json::to_value(current), serde_json::to_value(update))
    else {
        return current.clone();
    };
    merge_json(&mut merged, &update);
    serde_json::from_value(merged).unwrap_or_else(|_| current.clone())
}

fn merge_json(into: &mut Value, from: &Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                if value.is_null() {
                    continue;
                }
                match into.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge_json(existing, value)
                    }
                    _ => {
                        into.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (into, from) => *into = from.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: Value) -> LinuxResources {
        parse_resources(&json).unwrap()
    }

    #[test]
    fn present_fields_replace_and_absent_ones_stay() {
        let current = res(serde_json::json!({
            "memory": {"limit": 1048576, "reservation": 524288},
            "cpu": {"shares": 512, "cpus": "0"},
            "pids": {"limit": 10},
            "devices": [{"allow": false, "access": "rwm"}],
            "unified": {"memory.high": "900000"}
        }));
        let update = res(serde_json::json!({
            "memory": {"limit": 2097152},
            "cpu": {"quota": 5000, "period": 10000},
            "unified": {"memory.low": "1000"}
        }));
        let merged = merge(&current, &update);
        let memory = merged.memory().as_ref().unwrap();
        assert_eq!(memory.limit(), Some(2097152));
        assert_eq!(memory.reservation(), Some(524288));
        let cpu = merged.cpu().as_ref().unwrap();
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.quota(), Some(5000));
        assert_eq!(cpu.period(), Some(10000));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(merged.pids().as_ref().unwrap().limit(), 10);
        assert_eq!(merged.devices(), current.devices());
        let unified = merged.unified().as_ref().unwrap();
        assert_eq!(unified.get("memory.high").unwrap(), "900000");
        assert_eq!(unified.get("memory.low").unwrap(), "1000");
    }

    #[test]
    fn null_is_absent_and_lists_are_replaced() {
        let current = res(serde_json::json!({
            "memory": {"limit": 1048576},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 1}, {"pageSize": "1GB", "limit": 2}]
        }));
        let update: LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": {"limit": null, "reservation": 4096},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 8}]
        }))
        .unwrap();
        let merged = merge(&current, &update);
        let memory = merged.memory().as_ref().unwrap();
        assert_eq!(memory.limit(), Some(1048576));
        assert_eq!(memory.reservation(), Some(4096));
        let huge = merged.hugepage_limits().as_ref().unwrap();
        assert_eq!(huge.len(), 1);
        assert_eq!(huge[0].limit(), 8);
    }

    #[test]
    fn parse_errors_name_the_field_under_resources() {
        let err = parse_resources(&serde_json::json!({"memory": {"limit": "lots"}})).unwrap_err();
        let IsolationError::Malformed { field, .. } = err else {
            panic!("wrong error {err:?}");
        };
        assert_eq!(field, "resources.memory.limit");
        let err = parse_resources(&serde_json::json!([1])).unwrap_err();
        assert!(err.to_string().contains("resources"), "{err}");
    }

    #[test]
    fn devices_and_v1_only_fields_are_refused_by_name() {
        let root = Path::new("/nonexistent");
        let err = check_update(
            &res(serde_json::json!({"devices": [{"allow": true, "access": "r"}]})),
            root,
            false,
        )
        .unwrap_err();
        assert!(err.to_string().contains("resources.devices"), "{err}");
        let err = check_update(
            &res(serde_json::json!({"memory": {"swappiness": 10}})),
            root,
            false,
        )
        .unwrap_err();
        let IsolationError::UnsupportedResource { field, .. } = err else {
            panic!("wrong error {err:?}");
        };
        assert_eq!(field, "resources.memory.swappiness");
    }
}
