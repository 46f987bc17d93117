//! Invalid specs: a clear error naming the field, non-zero exit, nothing
//! left behind (no state, no cgroup, no process) — through vmrun-isolation
//! on this host, and through `vmrun run` in a microVM (the agent refuses
//! the spec; vmrun exits non-zero naming the field and no VM stays up).

mod common;

use common::*;
use serde_json::{json, Value};

/// Refused on this host and in the microVM.
fn refused(name: &str, config: Value, field: &str) {
    refused_in_vm(name, &config, field);
    refused_on_host(name, config, field);
}

/// The host half: through vmrun-isolation via the runner.
fn refused_on_host(name: &str, config: Value, field: &str) {
    if !can_run(name) || !host_halves(name) {
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

/// `linux.namespaces[1]` (network) joining by a path that is not a network
/// namespace file. A namespace path names a namespace of the host (what
/// podman and containerd hand a runtime): `vmrun run` resolves it before
/// any guest boots, vmrun-isolation's runner on this host: /proc/self is
/// the runtime either way.
fn network_namespace_path(path: &str) -> Value {
    let mut c = base_config();
    c["linux"]["namespaces"][1] = json!({"type": "network", "path": path});
    c
}

#[test]
fn namespace_path_that_does_not_exist() {
    let c = network_namespace_path("/proc/self/ns/no-such-namespace");
    refused(
        "nspath-missing",
        c,
        "linux.namespaces[1].path: /proc/self/ns/no-such-namespace: cannot open",
    );
}

#[test]
fn namespace_path_that_is_not_a_namespace() {
    let c = network_namespace_path("/proc/self/status");
    refused(
        "nspath-notns",
        c,
        "linux.namespaces[1].path: /proc/self/status is not a namespace file",
    );
}

#[test]
fn namespace_path_of_the_wrong_type() {
    let c = network_namespace_path("/proc/self/ns/uts");
    refused(
        "nspath-wrongtype",
        c,
        "linux.namespaces[1].path: /proc/self/ns/uts is a uts namespace, not network",
    );
}

/// A resource cgroup v2 cannot apply (net_cls/net_prio are cgroup v1
/// only) is refused naming it, not silently dropped; in the guest too.
#[test]
fn unsupported_cgroup_resource() {
    let mut c = base_config();
    c["linux"]["resources"]["network"] = json!({"classID": 1048577});
    refused("cgnet", c, "linux.resources.network");
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

/// Host only: the guest is always cgroup2 (the microVM half of
/// matrix.rs's cgroup_v2_resources applies these limits there).
#[test]
fn cgroup_resources_on_a_non_cgroup2_host_are_reported() {
    if host_is_cgroup2() {
        eprintln!("SKIPPED: cgroup_resources_on_a_non_cgroup2_host because this host is cgroup2");
        return;
    }
    let mut c = base_config();
    c["linux"]["resources"]["memory"] = json!({"limit": 67108864});
    refused_on_host("cgv1", c, "linux.resources.memory");
}

/// The microVM half: `vmrun run` boots, the agent refuses the spec, vmrun
/// exits non-zero naming `field` on stderr and leaves no VM running
/// ([`run_vm`] checks that no process is left for the bundle).
fn refused_in_vm(name: &str, config: &Value, field: &str) {
    let Some(guest) = guest(name) else {
        return;
    };
    let id = format!("{name}-vm");
    let bundle = Bundle::new(&id, config);
    let out = run_vm(&guest, &bundle, &id);
    let code = vm_code(&out);
    assert!(
        code.is_some_and(|c| c != 0),
        "{name}: vmrun should fail: {}",
        out.describe()
    );
    assert!(
        out.stderr.contains(field),
        "{name}: vmrun's error does not name {field}: {}",
        out.describe()
    );
    assert!(
        !out.stdout.contains("PASS"),
        "{name}: the checker ran: {}",
        out.describe()
    );
}
