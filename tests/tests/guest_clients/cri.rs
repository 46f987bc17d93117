//! containerd 1.6's CRI plugin with the runtime handler `vmrun` (the runc
//! v2 shim running the runtime under test), driven by `vmrun-cri`.

use serde_json::{json, Value};
use vmrun_tests::clients::cni::in_subnet;
use vmrun_tests::clients::containerd::{CRI_HANDLER, CRI_NAMESPACE, CRI_SUBNET};
use vmrun_tests::clients::cri::{log_lines, text_of};
use vmrun_tests::clients::{poll, CriClient, PrivateContainerd, RuntimeUnderTest, BUSYBOX_IMAGE};

use crate::{assert_kernel_of, env_dir, images, limit};

/// The clients a CRI test needs.
const TOOLS: &[&str] = &[
    "containerd",
    "ctr",
    "containerd-shim-runc-v2",
    "nsenter",
    "ip",
];

/// CRI's container states.
const CONTAINER_RUNNING: i64 = 1;
const CONTAINER_EXITED: i64 = 2;
/// CRI's sandbox states.
const SANDBOX_READY: i64 = 0;
const SANDBOX_NOTREADY: i64 = 1;

/// A private containerd with the images imported for CRI, and a client.
fn cri_env(test: &str) -> Option<(PrivateContainerd, CriClient)> {
    let runtime = RuntimeUnderTest::for_test(test, TOOLS)?;
    let containerd = PrivateContainerd::start(&env_dir(test), &runtime, limit());
    containerd.import_images(CRI_NAMESPACE, images());
    let cri = CriClient::new(&containerd.socket(), limit());
    Some((containerd, cri))
}

/// A pod sandbox config named `name` (hostname `vmrt-pod`).
fn pod_config(containerd: &PrivateContainerd, name: &str) -> Value {
    let logs = containerd.pod_log_dir().join(name);
    std::fs::create_dir_all(&logs).expect("the pod's log dir");
    json!({
        "metadata": { "name": name, "uid": format!("uid-{name}"), "namespace": "vmrun-tests", "attempt": 0 },
        "hostname": "vmrt-pod",
        "log_directory": logs,
        "linux": { "cgroup_parent": containerd.cri_cgroup_parent() }
    })
}

/// RunPodSandbox with the `vmrun` handler; returns the pod's id.
fn run_pod(cri: &CriClient, config: &Value) -> String {
    let reply = cri.ok(
        "RunPodSandbox",
        &json!({ "config": config, "runtime_handler": CRI_HANDLER }),
    );
    reply["pod_sandbox_id"]
        .as_str()
        .expect("pod_sandbox_id")
        .to_string()
}

/// CreateContainer + StartContainer of `sh -c script` named `name`;
/// returns the container's id.
fn start_container(
    cri: &CriClient,
    pod: &str,
    pod_config: &Value,
    name: &str,
    script: &str,
) -> String {
    let reply = cri.ok(
        "CreateContainer",
        &json!({
            "pod_sandbox_id": pod,
            "sandbox_config": pod_config,
            "config": {
                "metadata": { "name": name },
                "image": { "image": BUSYBOX_IMAGE },
                "command": ["sh", "-c", script],
                "log_path": format!("{name}.log"),
                "linux": {}
            }
        }),
    );
    let id = reply["container_id"]
        .as_str()
        .expect("container_id")
        .to_string();
    cri.ok("StartContainer", &json!({ "container_id": id }));
    id
}

/// ContainerStatus's `status`.
fn container_status(cri: &CriClient, id: &str) -> Value {
    cri.ok("ContainerStatus", &json!({ "container_id": id }))["status"].clone()
}

/// The stdout lines of a container's CRI log.
fn stdout_log(status: &Value) -> Vec<String> {
    let path = status["log_path"].as_str().unwrap_or_default();
    log_lines(&std::fs::read_to_string(path).unwrap_or_default(), "stdout")
}

/// ExecSync of `sh -c script`: (exit code, stdout).
fn exec_sync(cri: &CriClient, id: &str, script: &str) -> (i64, String) {
    let reply = cri.ok(
        "ExecSync",
        &json!({ "container_id": id, "cmd": ["sh", "-c", script], "timeout": limit().as_secs() }),
    );
    (
        reply["exit_code"].as_i64().unwrap_or(-1),
        text_of(&reply["stdout"]),
    )
}

/// A pod with one container through its whole life: RunPodSandbox
/// (ready), CreateContainer + StartContainer (running, on the runtime
/// under test), ExecSync (stdout, exit codes), the container log, a
/// container that exits with 3 (EXITED, exit code 3, its log),
/// StopPodSandbox (containers exited, sandbox not ready),
/// RemovePodSandbox (nothing listed).
#[test]
fn cri_pod_lifecycle_exec_status_and_logs() {
    let Some((containerd, cri)) = cri_env("cri_pod_lifecycle_exec_status_and_logs") else {
        return;
    };
    let config = pod_config(&containerd, "life");
    let pod = run_pod(&cri, &config);
    let status = cri.ok("PodSandboxStatus", &json!({ "pod_sandbox_id": pod }));
    assert_eq!(
        status["status"]["state"].as_i64(),
        Some(SANDBOX_READY),
        "{status}"
    );

    let main = start_container(
        &cri,
        &pod,
        &config,
        "main",
        "echo main-started; while :; do sleep 1; done",
    );
    let status = container_status(&cri, &main);
    assert_eq!(
        status["state"].as_i64(),
        Some(CONTAINER_RUNNING),
        "{status}"
    );
    assert_eq!(
        status["image"]["image"].as_str(),
        Some(BUSYBOX_IMAGE),
        "{status}"
    );
    let logged = poll(limit(), || {
        stdout_log(&status)
            .contains(&"main-started".to_string())
            .then_some(())
    });
    assert!(logged.is_some(), "main's log: {:?}", stdout_log(&status));

    assert_eq!(
        exec_sync(&cri, &main, "echo exec-out; exit 4"),
        (4, "exec-out\n".to_string())
    );
    assert_eq!(exec_sync(&cri, &main, "echo ok"), (0, "ok\n".to_string()));
    let (code, release) = exec_sync(&cri, &main, "uname -r");
    assert_eq!(code, 0);
    assert_kernel_of(containerd.runtime(), &release, "CRI ExecSync");

    let short = start_container(&cri, &pod, &config, "short", "echo short-lived; exit 3");
    let exited = poll(limit(), || {
        let s = container_status(&cri, &short);
        (s["state"].as_i64() == Some(CONTAINER_EXITED)).then_some(s)
    });
    let exited =
        exited.unwrap_or_else(|| panic!("short never exited: {}", container_status(&cri, &short)));
    assert_eq!(exited["exit_code"].as_i64(), Some(3), "{exited}");
    assert_eq!(stdout_log(&exited), ["short-lived"]);

    cri.ok("StopPodSandbox", &json!({ "pod_sandbox_id": pod }));
    let status = container_status(&cri, &main);
    assert_eq!(status["state"].as_i64(), Some(CONTAINER_EXITED), "{status}");
    let status = cri.ok("PodSandboxStatus", &json!({ "pod_sandbox_id": pod }));
    assert_eq!(
        status["status"]["state"].as_i64(),
        Some(SANDBOX_NOTREADY),
        "{status}"
    );

    cri.ok("RemovePodSandbox", &json!({ "pod_sandbox_id": pod }));
    let pods = cri.ok("ListPodSandbox", &json!({}));
    assert_eq!(pods["items"], json!([]), "{pods}");
    let containers = cri.ok("ListContainers", &json!({}));
    assert_eq!(containers["containers"], json!([]), "{containers}");
}

/// Pods as one microVM, networking through the pod's netns. Two containers of a
/// pod talk over localhost, both see the pod's hostname, and eth0 carries
/// the pod IP CNI gave (from the bridge's subnet).
#[test]
fn cri_pod_containers_share_localhost_and_the_pod_ip() {
    let Some((containerd, cri)) = cri_env("cri_pod_containers_share_localhost_and_the_pod_ip")
    else {
        return;
    };
    let config = pod_config(&containerd, "net");
    let pod = run_pod(&cri, &config);
    let status = cri.ok("PodSandboxStatus", &json!({ "pod_sandbox_id": pod }));
    let pod_ip = status["status"]["network"]["ip"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        in_subnet(&pod_ip, CRI_SUBNET),
        "pod IP {pod_ip:?} not in {CRI_SUBNET}: {status}"
    );

    let srv = start_container(
        &cri,
        &pod,
        &config,
        "srv",
        "while :; do echo pong-from-srv | nc -l -p 7000; done",
    );
    let client = start_container(
        &cri,
        &pod,
        &config,
        "cli",
        "for i in $(seq 120); do if echo ping | nc 127.0.0.1 7000; then break; fi; sleep 1; done; \
         hostname; ip -o -4 addr show eth0",
    );
    let done = poll(limit(), || {
        let s = container_status(&cri, &client);
        (s["state"].as_i64() == Some(CONTAINER_EXITED)).then_some(s)
    });
    let done =
        done.unwrap_or_else(|| panic!("cli never exited: {}", container_status(&cri, &client)));
    let lines = stdout_log(&done);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("pong-from-srv"),
        "cli's log: {lines:?}"
    );
    assert_eq!(
        lines.get(1).map(String::as_str),
        Some("vmrt-pod"),
        "cli's log: {lines:?}"
    );
    assert!(
        lines
            .get(2)
            .is_some_and(|l| l.contains(&format!("inet {pod_ip}/"))),
        "eth0 carries the pod IP {pod_ip}: {lines:?}"
    );

    let (code, out) = exec_sync(&cri, &srv, "hostname; ip -o -4 addr show eth0");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("vmrt-pod\n"), "{out}");
    assert!(out.contains(&format!("inet {pod_ip}/")), "{out}");

    cri.ok("StopPodSandbox", &json!({ "pod_sandbox_id": pod }));
    cri.ok("RemovePodSandbox", &json!({ "pod_sandbox_id": pod }));
}
