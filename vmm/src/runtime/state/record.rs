//! `state.json`: what `create` records of a container (written once,
//! atomically), and the runc-shaped state `vmrun state` prints.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::liveness::ProcessIdentity;

/// The status words runc uses (and podman and the shim match on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created: the init exists, `start` has not run it yet.
    Created,
    /// The init runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// The init exited (or the VMM is gone).
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        })
    }
}

impl From<vmrun_protocol::ContainerStatus> for Status {
    fn from(status: vmrun_protocol::ContainerStatus) -> Self {
        use vmrun_protocol::ContainerStatus as Agent;
        match status {
            Agent::Created => Self::Created,
            Agent::Running => Self::Running,
            Agent::Paused => Self::Paused,
            Agent::Stopped => Self::Stopped,
        }
    }
}

/// What is recorded of a container in `<root>/<id>/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// The bundle's `ociVersion`.
    pub oci_version: String,
    /// The container id.
    pub id: String,
    /// The VMM process: the container's pid as the host sees it.
    pub vmm: ProcessIdentity,
    /// The bundle directory (absolute).
    pub bundle: PathBuf,
    /// The root filesystem (absolute).
    pub rootfs: PathBuf,
    /// When the container was created (RFC 3339, UTC).
    pub created: String,
    /// The owner (empty for root, as runc prints it).
    pub owner: String,
    /// The bundle's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Host cgroup directories the VMM was placed in (removed by `delete`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_cgroups: Vec<PathBuf>,
    /// The network plumbing `delete` undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<crate::runtime::host_world::NetworkRecord>,
    /// For a pod member: the sandbox whose VM holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxRef>,
    /// The bundle's hooks (`start` and `delete` run theirs from here: the
    /// bundle may have changed since).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

/// The sandbox (pod) a member container lives in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxRef {
    /// The sandbox's container id.
    pub id: String,
    /// Its VMM's control socket.
    pub api_socket: PathBuf,
}

/// The JSON `vmrun state` prints: runc's `containerState`, field for field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintedState {
    /// `ociVersion`.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// `id`.
    pub id: String,
    /// `pid`: the VMM's pid, 0 once stopped.
    pub pid: i32,
    /// `status`.
    pub status: Status,
    /// `bundle`.
    pub bundle: PathBuf,
    /// `rootfs`.
    pub rootfs: PathBuf,
    /// `created`.
    pub created: String,
    /// `owner`.
    pub owner: String,
    /// `annotations` (left out when empty, as runc does).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ContainerRecord {
    /// The record of container `id` made from `bundle`, whose VMM is `vmm`.
    pub fn new(id: &str, bundle: &crate::runtime::bundle::Bundle, vmm: ProcessIdentity) -> Self {
        use crate::runtime::bundle::HostRootfs;
        let spec = &bundle.spec;
        let annotations = spec
            .get("annotations")
            .and_then(serde_json::Value::as_object)
            .map(|map| {
                map.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            oci_version: spec
                .get("ociVersion")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            id: id.to_owned(),
            vmm,
            bundle: bundle.dir.clone(),
            rootfs: match &bundle.rootfs {
                HostRootfs::Dir(dir) => dir.clone(),
                HostRootfs::Image { path, .. } => path.clone(),
            },
            created: now_rfc3339(),
            owner: String::new(),
            annotations,
            host_cgroups: Vec::new(),
            network: None,
            sandbox: None,
            // Checked with the bundle (`spec_check`): a spec whose hooks
            // do not parse never gets this far.
            hooks: spec
                .get("hooks")
                .and_then(|hooks| serde_json::from_value(hooks.clone()).ok()),
        }
    }

    /// Its hooks (none when the bundle has none).
    pub fn hooks(&self) -> oci_spec::runtime::Hooks {
        self.hooks.clone().unwrap_or_default()
    }

    /// The state its hooks are given (the phase sets `status`).
    pub fn hook_state(&self) -> crate::runtime::hooks::HookState {
        crate::runtime::hooks::HookState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status: "",
            pid: self.vmm.pid,
            bundle: self.bundle.clone(),
            annotations: self.annotations.clone(),
        }
    }

    /// The printed state for `status` (pid 0 once stopped, as runc).
    pub fn printed(&self, status: Status) -> PrintedState {
        PrintedState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            pid: if status == Status::Stopped {
                0
            } else {
                self.vmm.pid
            },
            status,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Now as RFC 3339 with nanoseconds in UTC (as Go's `time.Time` marshals).
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> ContainerRecord {
        ContainerRecord {
            oci_version: "1.0.2".into(),
            id: "c1".into(),
            vmm: ProcessIdentity {
                pid: 1234,
                start_time: 99,
            },
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-12-04T10:00:00.000000001Z".into(),
            owner: String::new(),
            annotations: BTreeMap::from([("k".to_string(), "v".to_string())]),
            host_cgroups: vec![],
            network: None,
            sandbox: None,
            hooks: None,
        }
    }

    #[test]
    fn printed_state_has_runcs_fields_in_runcs_order() {
        let text = serde_json::to_string(&record().printed(Status::Running)).unwrap();
        assert_eq!(
            text,
            r#"{"ociVersion":"1.0.2","id":"c1","pid":1234,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-12-04T10:00:00.000000001Z","owner":"","annotations":{"k":"v"}}"#
        );
    }

    #[test]
    fn stopped_means_pid_zero_and_empty_annotations_are_left_out() {
        let mut rec = record();
        rec.annotations.clear();
        let printed = rec.printed(Status::Stopped);
        assert_eq!(printed.pid, 0);
        let text = serde_json::to_string(&printed).unwrap();
        assert!(text.contains(r#""status":"stopped""#), "{text}");
        assert!(!text.contains("annotations"), "{text}");
    }

    #[test]
    fn record_round_trips() {
        let rec = record();
        let text = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<ContainerRecord>(&text).unwrap(), rec);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let now = now_rfc3339();
        assert!(chrono::DateTime::parse_from_rfc3339(&now).is_ok(), "{now}");
        assert!(now.ends_with('Z'), "{now}");
    }
}
