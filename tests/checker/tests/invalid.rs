//! Invalid specs: a clear error naming the field, non-zero exit, nothing
//! left behind (no state, no cgroup, no process).

mod common;

use common::*;
use serde_json::{json, Value};

fn refused(name: &str, config: Value, field: &str) {
    if !can_run(name) {
        return;
    }
    let bundle = Bundle::new(name, &config);
    let out = run_ours(&bundle, name, &[]);
    assert_eq!(out.status.code(), Some(125), "{name} should be refused");
    let err = stderr(&out);
    assert!(
        err.contains(field),
        "{name}: error does not name {field}: {err}"
    );
    let state = bundle.path().join("state");
    for leftover in [
        state.join("bundles").join(name),
        state.join("state").join(name),
    ] {
        assert!(
            !leftover.exists(),
            "{name}: left {} behind",
            leftover.display()
        );
    }
    assert!(
        !std::path::Path::new(&format!("/sys/fs/cgroup/vmrun/{name}")).exists(),
        "{name}: left a cgroup behind"
    );
}

#[test]
fn relative_mount_destination() {
    let mut c = base_config();
    c["mounts"][0]["destination"] = "proc".into();
    refused("relmount", c, "mounts[0].destination");
}

#[test]
fn soft_rlimit_above_hard() {
    let mut c = base_config();
    c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]);
    refused("rlimit", c, "process.rlimits[0]");
}

#[test]
fn unknown_namespace_type() {
    let mut c = base_config();
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "timewarp"}));
    refused("nstype", c, "linux.namespaces[6].type");
}

#[test]
fn bad_seccomp_action() {
    let mut c = base_config();
    c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_MAYBE"});
    refused("scaction", c, "linux.seccomp.defaultAction");
}

#[test]
fn uid_mapping_without_user_namespace() {
    let mut c = base_config();
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    refused("uidmap", c, "linux.uidMappings");
}

#[test]
fn relative_cwd() {
    let mut c = base_config();
    c["process"]["cwd"] = "tmp".into();
    refused("relcwd", c, "process.cwd");
}

#[test]
fn missing_executable_leaves_nothing_behind() {
    let mut c = base_config();
    c["process"]["args"] = json!(["/bin/does-not-exist"]);
    refused("noexe", c, "does-not-exist");
}

#[test]
fn cgroup_resources_on_a_non_cgroup2_host_are_reported() {
    if host_is_cgroup2() {
        eprintln!("SKIPPED: cgroup_resources_on_a_non_cgroup2_host because this host is cgroup2");
        return;
    }
    let mut c = base_config();
    c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    refused("cgv1", c, "linux.resources.memory");
}
