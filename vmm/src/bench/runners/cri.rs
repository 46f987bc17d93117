//! `cri-vmrun` and `cri-runc`: the bench's workload as a Kubernetes pod,
//! through the CRI plugin of the bench's private containerd
//! ([`super::containerd`], flavour `cri`) with the runtime handler `vmrun`
//! or `runc`, driven by `vmrun-cri` (tests/cri-client: one CRI v1 call per
//! run, JSON in and out; `$VMRUN_CRI_CLIENT`, else found on PATH). One run
//! is what a kubelet does for a pod that runs to completion:
//! RunPodSandbox, CreateContainer + StartContainer, ContainerStatus until
//! it exited (its exit code checked), StopPodSandbox + RemovePodSandbox,
//! timed from the first call to the last answer, with caller-clock marks
//! after each step. Every call is a `vmrun-cri` process, as every crictl
//! call would be.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::containerd::{Flavour, PrivateContainerd};
use super::containerd_config::WORKLOAD_IMAGE;
use super::ctr::runtime_of;
use super::{ms, not_run, which, Context, RuntimeKind};
use crate::bench::process::{run_timed, Capture};
use crate::bench::report::{Clock, PhaseMark, RunSample};

/// Where `vmrun-cri` is, if not on PATH.
pub const CRI_CLIENT_ENV: &str = "VMRUN_CRI_CLIENT";
/// CRI's container state `CONTAINER_EXITED`.
const CONTAINER_EXITED: i64 = 2;
/// How often ContainerStatus is asked while the container runs.
const STATUS_POLL: Duration = Duration::from_millis(10);

/// `vmrun-cri`: `$VMRUN_CRI_CLIENT`, else on PATH; or why it is missing.
pub fn find_client() -> Result<PathBuf, String> {
    client_from(std::env::var_os(CRI_CLIENT_ENV))
}

/// [`find_client`] with `named` as the variable's value.
fn client_from(named: Option<std::ffi::OsString>) -> Result<PathBuf, String> {
    match named {
        Some(p) if Path::new(&p).is_file() => Ok(PathBuf::from(p)),
        Some(p) => Err(format!(
            "{CRI_CLIENT_ENV}={} is not a file",
            Path::new(&p).display()
        )),
        None => which("vmrun-cri").ok_or_else(|| {
            format!(
                "`vmrun-cri` is not on PATH (cargo build --release -p vmrun-cri-client; or set {CRI_CLIENT_ENV})"
            )
        }),
    }
}

/// [`find_client`], if found.
pub fn client_bin() -> Option<PathBuf> {
    find_client().ok()
}

/// One CRI call: the answer, or the failure with `vmrun-cri`'s message.
/// `out` is a scratch file for the answer (read whole, not as a tail).
pub fn call(
    client: &Path,
    endpoint: &Path,
    limit: Duration,
    out: &Path,
    method: &str,
    request: &Value,
) -> Result<Value, String> {
    let mut command = Command::new(client);
    command
        .arg("--endpoint")
        .arg(endpoint)
        .args(["--timeout", &limit.as_secs().max(1).to_string()])
        .args([method, &request.to_string()]);
    let capture = Capture::Files {
        stdout: out.to_path_buf(),
        stderr: out.with_extension("err"),
    };
    let t = run_timed(
        &mut command,
        &capture,
        None,
        limit + Duration::from_secs(10),
    )
    .map_err(|e| format!("cannot start {}: {e}", client.display()))?;
    if !t.success() {
        return Err(t.failure(&format!("CRI {method}")));
    }
    let text = std::fs::read_to_string(out).unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| format!("CRI {method}: the answer is not JSON ({e})"))
}

/// Stops and removes every pod (teardown; errors ignored); `out` as for
/// [`call`].
pub fn remove_all_pods(client: &Path, endpoint: &Path, limit: Duration, out: &Path) {
    let Ok(list) = call(client, endpoint, limit, out, "ListPodSandbox", &json!({})) else {
        return;
    };
    let items = list["items"].as_array().cloned().unwrap_or_default();
    for id in items.iter().filter_map(|i| i["id"].as_str()) {
        let request = json!({ "pod_sandbox_id": id });
        let _ = call(client, endpoint, limit, out, "StopPodSandbox", &request);
        let _ = call(client, endpoint, limit, out, "RemovePodSandbox", &request);
    }
}

/// The pod's config: `name`, its logs in `log_dir`, its cgroups under
/// `cgroup_parent`, `annotations` (`KEY=VALUE`) as pod annotations.
pub fn pod_config(
    name: &str,
    log_dir: &Path,
    cgroup_parent: &str,
    annotations: &[String],
) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .filter_map(|a| a.split_once('='))
        .map(|(k, v)| (k.to_string(), Value::from(v)))
        .collect();
    json!({
        "metadata": { "name": name, "uid": format!("uid-{name}"), "namespace": "vmrun-bench", "attempt": 0 },
        "hostname": "vmrun-bench",
        "log_directory": log_dir,
        "annotations": annotations,
        "linux": { "cgroup_parent": cgroup_parent }
    })
}

/// CreateContainer's request: the workload image running `args`.
pub fn create_request(pod: &str, pod_config: &Value, args: &[String]) -> Value {
    json!({
        "pod_sandbox_id": pod,
        "sandbox_config": pod_config,
        "config": {
            "metadata": { "name": "workload" },
            "image": { "image": WORKLOAD_IMAGE },
            "command": args,
            "log_path": "workload.log",
            "linux": {}
        }
    })
}

/// The cgroup parent of the bench's pods (removed at teardown).
pub fn cgroup_parent() -> String {
    format!("/vmrb-{}-cri", std::process::id())
}

/// One timed pod of `kind` (`cri-vmrun` or `cri-runc`).
pub fn run(kind: RuntimeKind, ctx: &Context) -> RunSample {
    let Some((_, annotations)) = runtime_of(kind, ctx) else {
        return not_run(format!("{}: its runtime is not installed", kind.name()));
    };
    let client = match find_client() {
        Ok(c) => c,
        Err(e) => return not_run(e),
    };
    let handler = match kind {
        RuntimeKind::CriVmrun => "vmrun",
        _ => "runc",
    };
    let outcome = ctx.daemons.with(
        Flavour::Cri,
        || PrivateContainerd::start(Flavour::Cri, ctx).map_err(|e| crate::error_chain(&e)),
        |daemon| {
            let pod = Pod {
                client: &client,
                endpoint: daemon.socket(),
                limit: ctx.limit,
                out: daemon.dir().join("cri-answer.json"),
            };
            let name = ctx.next_id(kind);
            let logs = daemon.dir().join("pod-logs").join(&name);
            let config = pod_config(&name, &logs, &cgroup_parent(), &annotations);
            let sample = pod.run(handler, &config, &logs, &ctx.workload.args);
            let _ = std::fs::remove_dir_all(&logs);
            sample
        },
    );
    outcome.unwrap_or_else(|e| not_run(format!("the bench's containerd with CRI: {e}")))
}

/// The calls of one pod.
struct Pod<'a> {
    client: &'a Path,
    endpoint: PathBuf,
    limit: Duration,
    out: PathBuf,
}

impl Pod<'_> {
    fn call(&self, method: &str, request: &Value) -> Result<Value, String> {
        call(
            self.client,
            &self.endpoint,
            self.limit,
            &self.out,
            method,
            request,
        )
    }

    /// The pod's whole life, timed; a failure removes what was made.
    fn run(&self, handler: &str, config: &Value, logs: &Path, args: &[String]) -> RunSample {
        let begin = Instant::now();
        let mut phases = Vec::new();
        let mut pod_id: Option<String> = None;
        if let Err(e) = std::fs::create_dir_all(logs) {
            return not_run(format!("cannot create {}: {e}", logs.display()));
        }
        let result = self.steps(handler, config, args, begin, &mut phases, &mut pod_id);
        let wall_ms = ms(begin.elapsed());
        if result.is_err() {
            if let Some(id) = &pod_id {
                let request = json!({ "pod_sandbox_id": id });
                let _ = self.call("StopPodSandbox", &request);
                let _ = self.call("RemovePodSandbox", &request);
            }
        }
        let (ok, exit_code, error) = match result {
            Ok(0) => (true, Some(0), None),
            Ok(code) => (
                false,
                Some(code),
                Some(format!("the container exited with {code}")),
            ),
            Err(e) => (false, None, Some(e)),
        };
        RunSample {
            index: 0,
            ok,
            wall_ms,
            exit_code,
            phases,
            error,
        }
    }

    fn steps(
        &self,
        handler: &str,
        config: &Value,
        args: &[String],
        begin: Instant,
        phases: &mut Vec<PhaseMark>,
        pod_id: &mut Option<String>,
    ) -> Result<i32, String> {
        let mut mark = |name: &str| {
            phases.push(PhaseMark {
                name: name.into(),
                ms: ms(begin.elapsed()),
                clock: Clock::Caller,
            })
        };
        let reply = self.call(
            "RunPodSandbox",
            &json!({ "config": config, "runtime_handler": handler }),
        )?;
        let pod = reply["pod_sandbox_id"]
            .as_str()
            .ok_or_else(|| format!("RunPodSandbox answered no pod_sandbox_id: {reply}"))?;
        *pod_id = Some(pod.to_string());
        mark("pod_ready");
        let reply = self.call("CreateContainer", &create_request(pod, config, args))?;
        let id = reply["container_id"]
            .as_str()
            .ok_or_else(|| format!("CreateContainer answered no container_id: {reply}"))?;
        mark("created");
        self.call("StartContainer", &json!({ "container_id": id }))?;
        mark("started");
        let code = loop {
            let reply = self.call("ContainerStatus", &json!({ "container_id": id }))?;
            let status = &reply["status"];
            if status["state"].as_i64() == Some(CONTAINER_EXITED) {
                break status["exit_code"].as_i64().unwrap_or(-1);
            }
            if begin.elapsed() > self.limit {
                return Err(format!(
                    "the container did not exit within {:?}: {status}",
                    self.limit
                ));
            }
            std::thread::sleep(STATUS_POLL);
        };
        mark("exited");
        let request = json!({ "pod_sandbox_id": pod });
        self.call("StopPodSandbox", &request)?;
        self.call("RemovePodSandbox", &request)?;
        mark("pod_removed");
        Ok(i32::try_from(code).unwrap_or(-1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::vm_size::KATA_MEMORY;

    #[test]
    fn the_pod_carries_its_annotations_cgroup_parent_and_log_dir() {
        let memory = format!("{KATA_MEMORY}=128");
        let pod = pod_config(
            "vmrb1-cri-vmrun-0",
            Path::new("/w/logs/p"),
            "/vmrb-1-cri",
            &[memory],
        );
        assert_eq!(pod["metadata"]["name"], "vmrb1-cri-vmrun-0");
        assert_eq!(pod["metadata"]["uid"], "uid-vmrb1-cri-vmrun-0");
        assert_eq!(pod["annotations"][KATA_MEMORY], "128");
        assert_eq!(pod["linux"]["cgroup_parent"], "/vmrb-1-cri");
        assert_eq!(pod["log_directory"], "/w/logs/p");
        let create = create_request("pod1", &pod, &["true".into()]);
        assert_eq!(create["pod_sandbox_id"], "pod1");
        assert_eq!(create["sandbox_config"], pod);
        assert_eq!(create["config"]["image"]["image"], WORKLOAD_IMAGE);
        assert_eq!(create["config"]["command"], json!(["true"]));
    }

    #[test]
    fn the_client_is_the_one_named_else_found_on_path() {
        let dir = tempfile::tempdir().unwrap();
        let named = dir.path().join("vmrun-cri");
        std::fs::write(&named, "").unwrap();
        assert_eq!(client_from(Some(named.clone().into())), Ok(named.clone()));
        let gone = dir.path().join("gone");
        let why = client_from(Some(gone.into())).unwrap_err();
        assert!(
            why.starts_with("VMRUN_CRI_CLIENT=") && why.ends_with("is not a file"),
            "{why}"
        );
        if which("vmrun-cri").is_none() {
            let why = client_from(None).unwrap_err();
            assert!(why.contains("`vmrun-cri` is not on PATH"), "{why}");
        }
    }

    #[test]
    fn a_cri_call_returns_the_answer_or_the_clients_message() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("fake-cri");
        std::fs::write(
            &fake,
            "#!/bin/sh\n# --endpoint E --timeout S METHOD JSON\n\
             case \"$5\" in Version) echo '{\"version\": \"0.1.0\"}';; \
             *) echo \"NotFound: no $5\" >&2; exit 1;; esac\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = dir.path().join("answer.json");
        let limit = Duration::from_secs(30);
        let sock = Path::new("/nonexistent.sock");
        let v = call(&fake, sock, limit, &out, "Version", &json!({})).unwrap();
        assert_eq!(v["version"], "0.1.0");
        let e = call(&fake, sock, limit, &out, "StartContainer", &json!({})).unwrap_err();
        assert!(
            e.contains("CRI StartContainer") && e.contains("no StartContainer"),
            "{e}"
        );
    }
}
