//! The CRI client for the tests: runs `vmrun-cri` (tests/cri-client), one
//! gRPC call per run, and hands back the response as JSON.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::clients::command::run_client;
use crate::process::RunOutput;

/// Overrides where `vmrun-cri` is.
pub const CRI_CLIENT_ENV: &str = "VMRUN_CRI_CLIENT";

/// `vmrun-cri`: `$VMRUN_CRI_CLIENT`, else the one cargo built next to this
/// test binary (same profile first).
pub fn cri_client_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os(CRI_CLIENT_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!("{CRI_CLIENT_ENV}={} does not exist", p.display()))
        };
    }
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    // target/<profile>/deps/<test binary>
    let profile_dir = exe.parent().and_then(Path::parent).map(Path::to_path_buf);
    let mut candidates: Vec<PathBuf> = profile_dir.iter().map(|d| d.join("vmrun-cri")).collect();
    if let Some(target) = profile_dir.as_deref().and_then(Path::parent) {
        candidates.extend(["release", "debug"].map(|p| target.join(p).join("vmrun-cri")));
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "vmrun-cri is not built (looked at {candidates:?}): run \
             `cargo build --release -p vmrun-cri-client`, or set {CRI_CLIENT_ENV}"
            )
        })
}

/// A CRI client bound to one endpoint.
#[derive(Debug, Clone)]
pub struct CriClient {
    bin: PathBuf,
    endpoint: PathBuf,
    limit: Duration,
}

impl CriClient {
    /// A client of the CRI server on `endpoint`; `limit` guards each call.
    /// Panics with the how-to if `vmrun-cri` is not built.
    pub fn new(endpoint: &Path, limit: Duration) -> Self {
        Self::find(endpoint, limit)
            .unwrap_or_else(|| panic!("{}", cri_client_bin().err().unwrap_or_default()))
    }

    /// Like [`CriClient::new`], `None` if `vmrun-cri` is not built.
    pub fn find(endpoint: &Path, limit: Duration) -> Option<Self> {
        Some(Self {
            bin: cri_client_bin().ok()?,
            endpoint: endpoint.to_path_buf(),
            limit,
        })
    }

    /// Calls `method` with `request`: the response, or the failed run
    /// (its stderr holds `Code: message`).
    pub fn call(&self, method: &str, request: &Value) -> Result<Value, RunOutput> {
        let seconds = self.limit.as_secs().max(1).to_string();
        let out = run_client(
            Command::new(&self.bin)
                .arg("--endpoint")
                .arg(&self.endpoint)
                .args(["--timeout", &seconds, method, &request.to_string()]),
            self.limit + Duration::from_secs(10),
        );
        if !out.success() {
            return Err(out);
        }
        serde_json::from_str(&out.stdout).map_err(|_| out)
    }

    /// Like [`CriClient::call`]; panics with the call's output if it failed.
    pub fn ok(&self, method: &str, request: &Value) -> Value {
        self.call(method, request)
            .unwrap_or_else(|out| panic!("CRI {method} {request} failed:\n{}", out.describe()))
    }

    /// Stops and removes every pod (teardown; errors ignored).
    pub fn remove_all_pods(&self) {
        let Ok(list) = self.call("ListPodSandbox", &json!({})) else {
            return;
        };
        let ids: Vec<String> = list["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["id"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for id in ids {
            let _ = self.call("StopPodSandbox", &json!({ "pod_sandbox_id": id }));
            let _ = self.call("RemovePodSandbox", &json!({ "pod_sandbox_id": id }));
        }
    }
}

/// A `bytes` field of a response (a JSON array of numbers) as text.
pub fn text_of(bytes: &Value) -> String {
    let raw: Vec<u8> = bytes
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect()
        })
        .unwrap_or_default();
    String::from_utf8_lossy(&raw).into_owned()
}

/// The lines a CRI container log holds for `stream` (`stdout`/`stderr`),
/// in order: each log line is `<RFC 3339 time> <stream> <F|P> <text>`;
/// partial (`P`) lines are joined to the next.
pub fn log_lines(log: &str, stream: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut partial = String::new();
    for line in log.lines() {
        let mut fields = line.splitn(4, ' ');
        let (_time, s, tag, text) = (fields.next(), fields.next(), fields.next(), fields.next());
        if s != Some(stream) {
            continue;
        }
        partial.push_str(text.unwrap_or(""));
        if tag != Some("P") {
            lines.push(std::mem::take(&mut partial));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_decoded() {
        assert_eq!(text_of(&json!([104, 105, 10])), "hi\n");
        assert_eq!(text_of(&json!(null)), "");
    }

    #[test]
    fn cri_log_lines_are_split_by_stream_and_joined() {
        let log = "2026-01-01T00:00:00.1Z stdout P hel\n\
                   2026-01-01T00:00:00.2Z stderr F oops\n\
                   2026-01-01T00:00:00.3Z stdout F lo\n\
                   2026-01-01T00:00:00.4Z stdout F with spaces  in it\n";
        assert_eq!(log_lines(log, "stdout"), ["hello", "with spaces  in it"]);
        assert_eq!(log_lines(log, "stderr"), ["oops"]);
    }
}
