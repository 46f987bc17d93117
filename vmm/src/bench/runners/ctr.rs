//! `ctr-vmrun` and `ctr-runc`: containerd's own client running the bench's
//! image through the runc v2 shim of the bench's private containerd
//! ([`super::containerd`]), with vmrun or runc as the shim's runc binary:
//! `ctr run --rm`, attached, timed from spawn to reaped, its exit code (the
//! container's) checked. The daemon's start and the image import happen
//! once, before the first run, and are not timed.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::containerd::{Flavour, PrivateContainerd};
use super::containerd_config::{SHIM, SNAPSHOTTER, WORKLOAD_IMAGE};
use super::{caller_marks, not_run, sample, Context, RuntimeKind};
use crate::bench::process::{run_timed, Capture};
use crate::bench::report::RunSample;
use crate::runtime::vm_size::KATA_MEMORY;

/// What one `ctr run` is given besides `ctr --address SOCKET -n NS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtrRun {
    /// The shim's runc binary (vmrun or runc).
    pub runtime: PathBuf,
    /// Its root (`--runc-root`).
    pub runtime_root: PathBuf,
    /// Where ctr makes the container's stdio fifos.
    pub fifo_dir: PathBuf,
    /// OCI annotations (`KEY=VALUE`).
    pub annotations: Vec<String>,
    /// The container's id.
    pub id: String,
    /// Its process.
    pub args: Vec<String>,
}

impl CtrRun {
    /// `run --rm ... IMAGE ID ARGS...`.
    pub fn args(&self) -> Vec<OsString> {
        let mut out: Vec<OsString> = [
            "run",
            "--rm",
            "--snapshotter",
            SNAPSHOTTER,
            "--runtime",
            SHIM,
        ]
        .map(OsString::from)
        .to_vec();
        out.push("--runc-binary".into());
        out.push(self.runtime.clone().into());
        out.push("--runc-root".into());
        out.push(self.runtime_root.clone().into());
        out.push("--fifo-dir".into());
        out.push(self.fifo_dir.clone().into());
        for a in &self.annotations {
            out.push("--annotation".into());
            out.push(a.into());
        }
        out.push(WORKLOAD_IMAGE.into());
        out.push((&self.id).into());
        out.extend(self.args.iter().map(OsString::from));
        out
    }
}

/// The runtime binary of `kind` and the annotations it is given (vmrun:
/// the bench's guest memory, as Kata's annotation says it).
pub fn runtime_of(kind: RuntimeKind, ctx: &Context) -> Option<(PathBuf, Vec<String>)> {
    match kind {
        RuntimeKind::CtrVmrun | RuntimeKind::CriVmrun => Some((
            ctx.vmrun.clone(),
            vec![format!("{KATA_MEMORY}={}", ctx.memory_mib)],
        )),
        RuntimeKind::CtrRunc | RuntimeKind::CriRunc => ctx.runc.clone().map(|r| (r, Vec::new())),
        _ => None,
    }
}

/// One timed `ctr run --rm` of `kind` (`ctr-vmrun` or `ctr-runc`).
pub fn run(kind: RuntimeKind, ctx: &Context) -> RunSample {
    let Some((runtime, annotations)) = runtime_of(kind, ctx) else {
        return not_run(format!("{}: its runtime is not installed", kind.name()));
    };
    let outcome = ctx.daemons.with(
        Flavour::Ctr,
        || PrivateContainerd::start(Flavour::Ctr, ctx).map_err(|e| crate::error_chain(&e)),
        |daemon| run_with(kind, daemon, &runtime, annotations, ctx),
    );
    outcome.unwrap_or_else(|e| not_run(format!("the bench's containerd: {e}")))
}

fn run_with(
    kind: RuntimeKind,
    daemon: &PrivateContainerd,
    runtime: &Path,
    annotations: Vec<String>,
    ctx: &Context,
) -> RunSample {
    let run = CtrRun {
        runtime: runtime.to_path_buf(),
        runtime_root: daemon.runtime_root(runtime),
        fifo_dir: daemon.dir().join("fifo"),
        annotations,
        id: ctx.next_id(kind),
        args: ctx.workload.args.clone(),
    };
    let mut command = daemon.ctr_command();
    command.args(run.args());
    let timed = match run_timed(&mut command, &Capture::Pipes, None, ctx.limit) {
        Ok(t) => t,
        Err(e) => return not_run(format!("cannot start ctr: {e}")),
    };
    let ok = timed.success();
    if !ok {
        // A run that failed half-way may leave its task and container.
        for args in [
            vec!["task", "kill", "-a", "-s", "SIGKILL", &run.id],
            vec!["task", "delete", "-f", &run.id],
            vec!["containers", "rm", &run.id],
        ] {
            let mut cleanup = daemon.ctr_command();
            cleanup.args(args);
            let _ = run_timed(&mut cleanup, &Capture::Pipes, None, ctx.limit);
        }
    }
    sample(&timed, "ctr run", ok, caller_marks(&timed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{Clock, PhaseMark};
    use serde_json::Value;

    #[test]
    fn ctr_run_names_the_shim_the_runtime_and_the_image() {
        let run = CtrRun {
            runtime: "/opt/vmrun".into(),
            runtime_root: "/w/ctd-ctr/runc-root/vmrun".into(),
            fifo_dir: "/w/ctd-ctr/fifo".into(),
            annotations: vec![format!("{KATA_MEMORY}=128")],
            id: "vmrb1-ctr-vmrun-0".into(),
            args: vec!["sh".into(), "-c".into(), "exit 0".into()],
        };
        let args: Vec<String> = run
            .args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "run",
                "--rm",
                "--snapshotter",
                "native",
                "--runtime",
                "io.containerd.runc.v2",
                "--runc-binary",
                "/opt/vmrun",
                "--runc-root",
                "/w/ctd-ctr/runc-root/vmrun",
                "--fifo-dir",
                "/w/ctd-ctr/fifo",
                "--annotation",
                "io.katacontainers.config.hypervisor.default_memory=128",
                "vmrun.bench/workload:latest",
                "vmrb1-ctr-vmrun-0",
                "sh",
                "-c",
                "exit 0"
            ]
        );
    }

    #[test]
    fn the_report_lists_client_peers_and_a_pods_steps() {
        use crate::bench::report::{RuntimeReport, RuntimeStatus};
        use crate::bench::session::{summarise, tests_support};
        let peer = |name: &str, status: RuntimeStatus, reason: Option<&str>, runs| RuntimeReport {
            name: name.into(),
            what: String::new(),
            version: None,
            status,
            reason: reason.map(str::to_owned),
            baseline: "vmrun".into(),
            runs,
            wall_ms: None,
            phases: Vec::new(),
            ratio_to_baseline: None,
        };
        let mark = |name: &str, ms: f64| PhaseMark {
            name: name.into(),
            ms,
            clock: Clock::Caller,
        };
        let run = |wall_ms: f64, phases: Vec<PhaseMark>| RunSample {
            index: 0,
            ok: true,
            wall_ms,
            exit_code: Some(0),
            phases,
            error: None,
        };
        let steps = ["pod_ready", "created", "started", "exited", "pod_removed"];
        let pod: Vec<PhaseMark> = steps
            .iter()
            .zip(1..)
            .map(|(s, i)| mark(s, f64::from(i) * 100.0))
            .collect();
        let mut runtimes = vec![
            peer(
                "vmrun",
                RuntimeStatus::Measured,
                None,
                vec![run(500.0, Vec::new())],
            ),
            peer(
                "ctr-vmrun",
                RuntimeStatus::Missing,
                Some("`containerd` is not on PATH"),
                Vec::new(),
            ),
            peer(
                "ctr-runc",
                RuntimeStatus::Refused,
                Some("containerd exited (exit status: 1) before it answered; its log ends:\nboom"),
                Vec::new(),
            ),
            peer(
                "cri-vmrun",
                RuntimeStatus::Measured,
                None,
                vec![run(1000.0, pod)],
            ),
        ];
        summarise(&mut runtimes);
        let report = tests_support::report(runtimes);
        let table = crate::bench::table::render(&report);
        assert!(
            table.contains("| ctr-vmrun | missing: `containerd` is not on PATH | 0 |"),
            "{table}"
        );
        assert!(table.contains("| ctr-runc | refused: containerd exited (exit status: 1) before it answered; its log ends: boom | 0 |"), "{table}");
        assert!(
            table.contains("| cri-vmrun | measured | 1 | 1000 |"),
            "{table}"
        );
        assert!(table.contains("2.00× vmrun |"), "{table}");
        let json: Value = serde_json::to_value(&report).unwrap();
        let cri = &json["runtimes"][3];
        let names: Vec<&str> = cri["phases"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names, steps);
        assert_eq!(cri["phases"][0]["clock"], "caller");
        assert_eq!(json["runtimes"][2]["status"], "refused");
    }
}
