//! Pods as one microVM: which role a container plays, read from the
//! annotations the clients set. containerd's CRI marks the sandbox with
//! `io.kubernetes.cri.container-type: sandbox` and each member with
//! `container` plus `io.kubernetes.cri.sandbox-id`; CRI-O (and podman 4.3
//! for pod members) uses `io.kubernetes.cri-o.ContainerType` and
//! `io.kubernetes.cri-o.SandboxID`. A sandbox boots the VM (podman's infra
//! container carries no annotation and simply boots its own); a member is
//! created inside its sandbox's VM. podman's SandboxID names its pod, not
//! the pod's infra container: the sandbox is then the container whose pid
//! the member's namespace paths name (`/proc/PID/ns/net`, see
//! [`namespace_pids`]).

use serde_json::Value;

/// containerd's container-type annotation.
pub const CRI_TYPE: &str = "io.kubernetes.cri.container-type";
/// containerd's sandbox-id annotation.
pub const CRI_SANDBOX: &str = "io.kubernetes.cri.sandbox-id";
/// CRI-O's (and podman's) container-type annotation.
pub const CRIO_TYPE: &str = "io.kubernetes.cri-o.ContainerType";
/// CRI-O's (and podman's) sandbox-id annotation.
pub const CRIO_SANDBOX: &str = "io.kubernetes.cri-o.SandboxID";

/// Guest memory of a pod's VM when nothing asks for more (MiB): its
/// members share it (guest memory is demand-paged: only what is touched
/// costs host memory).
pub const POD_MEMORY_MIB: u64 = 512;

/// What a container is in a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodRole {
    /// Not in a pod (or an infra container without annotations): its own VM.
    Single,
    /// A pod's sandbox: boots the pod's VM.
    Sandbox,
    /// A member of the sandbox with this id: created in its VM.
    Member {
        /// The sandbox's container id.
        sandbox: String,
    },
}

fn annotation<'a>(spec: &'a Value, key: &str) -> Option<&'a str> {
    spec.get("annotations")?.get(key)?.as_str()
}

/// The role `spec`'s annotations give container `id`.
pub fn pod_role(id: &str, spec: &Value) -> PodRole {
    for (kind_key, sandbox_key) in [(CRI_TYPE, CRI_SANDBOX), (CRIO_TYPE, CRIO_SANDBOX)] {
        match annotation(spec, kind_key) {
            Some("sandbox") => return PodRole::Sandbox,
            Some("container") => {
                if let Some(sandbox) =
                    annotation(spec, sandbox_key).filter(|s| !s.is_empty() && *s != id)
                {
                    return PodRole::Member {
                        sandbox: sandbox.to_owned(),
                    };
                }
            }
            _ => {}
        }
    }
    PodRole::Single
}

/// The pids that `spec`'s namespace paths of the form `/proc/PID/ns/...`
/// name (the process whose namespaces a member joins), in order.
pub fn namespace_pids(spec: &Value) -> Vec<i32> {
    let mut pids: Vec<i32> = Vec::new();
    let entries = spec
        .pointer("/linux/namespaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    for entry in entries {
        let Some(path) = entry.get("path").and_then(Value::as_str) else {
            continue;
        };
        let mut parts = path.split('/');
        let pid = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(""), Some("proc"), Some(pid), Some("ns")) => pid.parse::<i32>().ok(),
            _ => None,
        };
        if let Some(pid) = pid.filter(|p| *p > 0 && !pids.contains(p)) {
            pids.push(pid);
        }
    }
    pids
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn namespace_pids_come_from_proc_paths_only() {
        let spec = json!({"linux": {"namespaces": [
            {"type": "pid"},
            {"type": "network", "path": "/proc/321/ns/net"},
            {"type": "ipc", "path": "/proc/321/ns/ipc"},
            {"type": "uts", "path": "/run/netns/x"},
            {"type": "cgroup", "path": "/proc/self/ns/cgroup"},
            {"type": "mount", "path": "/proc/77/ns/mnt"}
        ]}});
        assert_eq!(namespace_pids(&spec), vec![321, 77]);
        assert!(namespace_pids(&json!({})).is_empty());
    }

    #[test]
    fn roles_from_containerd_cri_o_and_podman_annotations() {
        let spec = |a: Value| json!({"annotations": a});
        assert_eq!(pod_role("x", &json!({})), PodRole::Single);
        assert_eq!(
            pod_role("s", &spec(json!({CRI_TYPE: "sandbox"}))),
            PodRole::Sandbox
        );
        assert_eq!(
            pod_role(
                "m",
                &spec(json!({CRI_TYPE: "container", CRI_SANDBOX: "s1"}))
            ),
            PodRole::Member {
                sandbox: "s1".into()
            }
        );
        assert_eq!(
            pod_role(
                "m",
                &spec(json!({CRIO_TYPE: "container", CRIO_SANDBOX: "infra"}))
            ),
            PodRole::Member {
                sandbox: "infra".into()
            }
        );
        assert_eq!(
            pod_role("s", &spec(json!({CRIO_TYPE: "sandbox", CRIO_SANDBOX: "s"}))),
            PodRole::Sandbox
        );
        // A member of itself, or without a sandbox id, is on its own.
        assert_eq!(
            pod_role("m", &spec(json!({CRI_TYPE: "container", CRI_SANDBOX: "m"}))),
            PodRole::Single
        );
        assert_eq!(
            pod_role("m", &spec(json!({CRI_TYPE: "container"}))),
            PodRole::Single
        );
    }
}
