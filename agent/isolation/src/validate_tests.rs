use super::*;
use crate::spec::parse_spec;

/// A valid spec to mutate: busybox-style, all namespaces but user.
fn base() -> serde_json::Value {
    serde_json::json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "hostname": "box",
        "process": {
            "args": ["/bin/sh"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 64, "hard": 128}]
        },
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"},
                           {"type": "ipc"}, {"type": "network"}]
        }
    })
}

fn check(v: serde_json::Value) -> Result<(Spec, Vec<Warning>), IsolationError> {
    let spec = parse_spec(v.to_string().as_bytes())?;
    validate(&spec)
}

/// Asserts the spec is refused and the error names `field`.
fn refused(v: serde_json::Value, field: &str) {
    match check(v) {
        Err(IsolationError::InvalidSpec { field: f, reason }) => {
            assert_eq!(f, field, "reason: {reason}")
        }
        other => panic!("expected InvalidSpec for {field}, got {other:?}"),
    }
}

#[test]
fn base_is_valid() {
    let (_, warnings) = check(base()).unwrap();
    assert!(warnings.is_empty());
}

#[test]
fn relative_mount_destination() {
    let mut v = base();
    v["mounts"][0]["destination"] = "proc".into();
    refused(v, "mounts[0].destination");
}

#[test]
fn dot_dot_mount_destination() {
    let mut v = base();
    v["mounts"][0]["destination"] = "/a/../../etc".into();
    refused(v, "mounts[0].destination");
}

#[test]
fn soft_rlimit_above_hard() {
    let mut v = base();
    v["process"]["rlimits"][0]["soft"] = 256.into();
    refused(v, "process.rlimits[0]");
}

#[test]
fn duplicate_rlimit() {
    let mut v = base();
    v["process"]["rlimits"] = serde_json::json!([
        {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
        {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}
    ]);
    refused(v, "process.rlimits[1].type");
}

#[test]
fn uid_mappings_without_user_namespace() {
    let mut v = base();
    v["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    refused(v, "linux.uidMappings");
}

#[test]
fn uid_mappings_with_user_namespace_are_fine() {
    let mut v = base();
    v["linux"]["uidMappings"] = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "user"}));
    check(v).unwrap();
}

#[test]
fn cwd_not_absolute() {
    let mut v = base();
    v["process"]["cwd"] = "tmp".into();
    refused(v, "process.cwd");
}

#[test]
fn cwd_in_proc_self_fd() {
    let mut v = base();
    v["process"]["cwd"] = "/proc/self/fd/7".into();
    refused(v, "process.cwd");
}

#[test]
fn empty_args() {
    let mut v = base();
    v["process"]["args"] = serde_json::json!([]);
    refused(v, "process.args");
}

#[test]
fn hostname_without_uts() {
    let mut v = base();
    v["linux"]["namespaces"] = serde_json::json!([{"type": "pid"}]);
    refused(v, "hostname");
}

#[test]
fn duplicate_namespace() {
    let mut v = base();
    v["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"type": "pid"}));
    refused(v, "linux.namespaces[5].type");
}

#[test]
fn errno_ret_with_allow_action() {
    let mut v = base();
    v["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]
    });
    refused(v, "linux.seccomp.syscalls[0].errnoRet");
}

#[test]
fn seccomp_arg_index_out_of_range() {
    let mut v = base();
    v["linux"]["seccomp"] = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                      "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]
    });
    refused(v, "linux.seccomp.syscalls[0].args[0].index");
}

#[test]
fn sysctl_not_namespaced() {
    let mut v = base();
    v["linux"]["sysctl"] = serde_json::json!({"kernel.panic": "1"});
    refused(v, "linux.sysctl.kernel.panic");
}

#[test]
fn sysctl_net_needs_netns() {
    let mut v = base();
    v["linux"]["namespaces"] = serde_json::json!([{"type": "uts"}]);
    v["linux"]["sysctl"] = serde_json::json!({"net.ipv4.ip_forward": "1"});
    refused(v, "linux.sysctl.net.ipv4.ip_forward");
}

#[test]
fn masked_path_relative() {
    let mut v = base();
    v["linux"]["maskedPaths"] = serde_json::json!(["/proc/kcore", "proc/keys"]);
    refused(v, "linux.maskedPaths[1]");
}

#[test]
fn device_outside_dev() {
    let mut v = base();
    v["linux"]["devices"] =
        serde_json::json!([{"path": "/etc/null", "type": "c", "major": 1, "minor": 3}]);
    refused(v, "linux.devices[0].path");
}

#[test]
fn bad_version() {
    let mut v = base();
    v["ociVersion"] = "2.0.0".into();
    refused(v, "ociVersion");
}

#[test]
fn umask_too_big() {
    let mut v = base();
    v["process"]["user"]["umask"] = 0o17777.into();
    refused(v, "process.user.umask");
}

#[test]
fn lsm_fields_become_warnings_and_are_stripped() {
    let mut v = base();
    v["process"]["apparmorProfile"] = "docker-default".into();
    v["process"]["selinuxLabel"] = "system_u:system_r:container_t:s0".into();
    v["linux"]["mountLabel"] = "system_u:object_r:container_file_t:s0".into();
    let (spec, warnings) = check(v).unwrap();
    let fields: Vec<_> = warnings.iter().map(|w| w.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "process.apparmorProfile",
            "process.selinuxLabel",
            "linux.mountLabel"
        ]
    );
    let process = spec.process().as_ref().unwrap();
    assert!(process.apparmor_profile().is_none());
    assert!(process.selinux_label().is_none());
    assert!(spec.linux().as_ref().unwrap().mount_label().is_none());
}

#[test]
fn hostname_in_joined_uts_namespace_warns() {
    let mut v = base();
    v["linux"]["namespaces"] = serde_json::json!([{"type": "uts", "path": "/proc/1/ns/uts"}]);
    let (_, warnings) = check(v).unwrap();
    assert_eq!(warnings.len(), 1);
    assert_eq!(warnings[0].field, "hostname");
}

#[test]
fn rootfs_propagation_is_normalised_or_refused() {
    let mut v = base();
    v["linux"]["rootfsPropagation"] = "rslave".into();
    let (spec, _) = check(v.clone()).unwrap();
    let prop = spec.linux().as_ref().unwrap().rootfs_propagation().clone();
    assert_eq!(prop.as_deref(), Some("slave"));
    v["linux"]["rootfsPropagation"] = "runbindable".into();
    refused(v.clone(), "linux.rootfsPropagation");
    v["linux"]["rootfsPropagation"] = "sideways".into();
    refused(v, "linux.rootfsPropagation");
}

/// `base()` with these `linux.resources.devices` rules.
fn with_device_rules(rules: serde_json::Value) -> serde_json::Value {
    let mut v = base();
    v["linux"]["resources"] = serde_json::json!({ "devices": rules });
    v
}

#[test]
fn device_rules_runc_style_are_fine() {
    let v = with_device_rules(serde_json::json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": true, "type": "b", "major": 8, "minor": -1, "access": "r"},
        {"allow": true, "type": "a"}
    ]));
    let (spec, warnings) = check(v).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    // -1 (any) becomes absent, which every cgroup writer reads as any.
    let rules = spec.linux().as_ref().unwrap().resources().as_ref().unwrap();
    let block = &rules.devices().as_ref().unwrap()[2];
    assert_eq!((block.major(), block.minor()), (Some(8), None));
}

#[test]
fn device_rule_bad_access() {
    let v = with_device_rules(serde_json::json!([
        {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwx"}
    ]));
    refused(v, "linux.resources.devices[0].access");
}

#[test]
fn device_rule_type_not_for_cgroups() {
    let v = with_device_rules(serde_json::json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "p", "access": "rwm"}
    ]));
    refused(v, "linux.resources.devices[1].type");
}

#[test]
fn device_rule_numbers_out_of_range() {
    let v = with_device_rules(serde_json::json!([
        {"allow": true, "type": "c", "major": 4096, "access": "r"}
    ]));
    refused(v, "linux.resources.devices[0].major");
    let v = with_device_rules(serde_json::json!([
        {"allow": true, "type": "c", "major": 1, "minor": -2, "access": "r"}
    ]));
    refused(v, "linux.resources.devices[0].minor");
}

#[test]
fn device_rule_unknown_type_is_a_parse_error_naming_the_field() {
    let v = with_device_rules(serde_json::json!([{"allow": true, "type": "x"}]));
    match check(v) {
        Err(IsolationError::Parse { field, .. }) => {
            assert_eq!(field, "linux.resources.devices[0].type")
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn no_new_privileges_false_is_handed_on_as_absent() {
    let mut v = base();
    v["process"]["noNewPrivileges"] = false.into();
    let (spec, _) = check(v).unwrap();
    assert_eq!(spec.process().as_ref().unwrap().no_new_privileges(), None);
    let mut v = base();
    v["process"]["noNewPrivileges"] = true.into();
    let (spec, _) = check(v).unwrap();
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(true)
    );
}

#[test]
fn ambient_capabilities_the_kernel_would_refuse_are_not_handed_on() {
    use crate::oci_spec::runtime::Capability;
    let ambient_of = |caps: serde_json::Value| {
        let mut v = base();
        v["process"]["capabilities"] = caps;
        let (spec, warnings) = check(v).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let caps = spec.process().as_ref().unwrap().capabilities().clone();
        let mut ambient: Vec<_> = caps
            .unwrap()
            .ambient()
            .clone()
            .unwrap()
            .into_iter()
            .collect();
        ambient.sort_by_key(|c| format!("{c:?}"));
        ambient
    };
    // `runc spec`'s default: ambient without inheritable raises nothing.
    let all = serde_json::json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    let runc_default = serde_json::json!({
        "bounding": all, "effective": all, "permitted": all, "ambient": all
    });
    assert_eq!(ambient_of(runc_default), []);
    // Kept only where both inheritable and permitted hold it.
    let partial = serde_json::json!({
        "bounding": all, "effective": all, "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_AUDIT_WRITE", "CAP_KILL"], "ambient": all
    });
    assert_eq!(ambient_of(partial), [Capability::Kill]);
    let full = serde_json::json!({
        "bounding": all, "effective": all, "permitted": all, "inheritable": all, "ambient": all
    });
    assert_eq!(ambient_of(full).len(), 3);
}
