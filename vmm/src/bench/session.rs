//! One `vmrun bench`: prepare the bundles, find and probe every runtime,
//! run the interleaved rounds, then the memory and density readings.

use std::path::PathBuf;
use std::time::Duration;

use super::bundle::{self, Source};
use super::density;
use super::error::BenchError;
use super::host::host_report;
use super::progress::Progress;
use super::report::{
    BenchReport, Clock, PhaseSummary, RunSample, RuntimeReport, RuntimeStatus, WorkloadReport,
    SCHEMA,
};
use super::runners::{locate, run_once, version_of, Context, RuntimeKind};
use super::stats::{ratio, Summary};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    /// The vmrun binary to measure (normally this one).
    pub vmrun: PathBuf,
    /// The bundle.
    pub source: Source,
    /// The workload's process (`None`: the bundle's, or `true` for busybox).
    pub cmd: Option<Vec<String>>,
    /// Measured runs per runtime.
    pub runs: usize,
    /// Discarded rounds before them.
    pub warmup: usize,
    /// vmrun's variants to measure (`Vmrun` first).
    pub variants: Vec<RuntimeKind>,
    /// The peers asked for.
    pub peers: Vec<RuntimeKind>,
    /// Guest kernel.
    pub kernel: PathBuf,
    /// Guest initramfs.
    pub initrd: PathBuf,
    /// Guest memory (MiB).
    pub memory_mib: u64,
    /// Read vmrun's memory with one idle container.
    pub memory: bool,
    /// `--density K`.
    pub density: Option<usize>,
    /// How long idle containers idle before memory readings.
    pub settle: Duration,
    /// Hang guard of each command.
    pub limit: Duration,
    /// Scratch directory (`None`: a fresh one under $TMPDIR, removed after).
    pub workdir: Option<PathBuf>,
    /// The command line, for the report.
    pub command_line: Vec<String>,
}

/// A runtime found (or not) on this host.
#[derive(Debug)]
struct Entry {
    kind: RuntimeKind,
    bin: PathBuf,
    report: RuntimeReport,
}

impl Entry {
    fn new(kind: RuntimeKind, vmrun: &std::path::Path) -> Self {
        let (found, status, reason) = match locate(kind, vmrun) {
            Ok(bin) => (Some(bin), RuntimeStatus::Measured, None),
            Err(why) => (None, RuntimeStatus::Missing, Some(why)),
        };
        let version = found.as_ref().and_then(|bin| version_of(bin, "--version"));
        Self {
            kind,
            bin: found.unwrap_or_default(),
            report: RuntimeReport {
                name: kind.name().into(),
                what: kind.what().into(),
                version,
                status,
                reason,
                baseline: kind.baseline().name().into(),
                runs: Vec::new(),
                wall_ms: None,
                phases: Vec::new(),
                ratio_to_baseline: None,
            },
        }
    }

    fn active(&self) -> bool {
        self.report.status == RuntimeStatus::Measured
    }
}

/// Phase statistics over the successful runs, in the order phases first
/// appear (VMM clock first, then the caller's).
pub fn phase_summaries(runs: &[RunSample]) -> Vec<PhaseSummary> {
    let mut keys: Vec<(String, Clock)> = Vec::new();
    for run in runs.iter().filter(|r| r.ok) {
        for p in &run.phases {
            let key = (p.name.clone(), p.clock);
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys.sort_by_key(|(_, clock)| *clock != Clock::Vmm);
    keys.into_iter()
        .filter_map(|(name, clock)| {
            let values: Vec<f64> = runs
                .iter()
                .filter(|r| r.ok)
                .flat_map(|r| r.phases.iter())
                .filter(|p| p.name == name && p.clock == clock)
                .map(|p| p.ms)
                .collect();
            Summary::of(&values).map(|ms| PhaseSummary { name, clock, ms })
        })
        .collect()
}

/// Fills in the statistics and the ratios to each runtime's baseline.
pub fn summarise(runtimes: &mut [RuntimeReport]) {
    for r in runtimes.iter_mut() {
        let walls: Vec<f64> = r.runs.iter().filter(|s| s.ok).map(|s| s.wall_ms).collect();
        r.wall_ms = Summary::of(&walls);
        r.phases = phase_summaries(&r.runs);
    }
    let medians: Vec<(String, Option<f64>)> = runtimes
        .iter()
        .map(|r| (r.name.clone(), r.median_wall()))
        .collect();
    for r in runtimes.iter_mut() {
        let base = medians
            .iter()
            .find(|(name, _)| *name == r.baseline)
            .and_then(|(_, m)| *m)
            .or_else(|| {
                medians
                    .iter()
                    .find(|(n, _)| n == "vmrun")
                    .and_then(|(_, m)| *m)
            });
        r.ratio_to_baseline = match (r.median_wall(), base) {
            (Some(m), Some(b)) => ratio(m, b),
            _ => None,
        };
    }
}

/// Runs the whole bench.
pub fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    if config.runs == 0 {
        return Err(BenchError::Usage("-n must be at least 1".into()));
    }
    let started = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (workdir, owned) = match &config.workdir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("vmrun-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&workdir).map_err(|source| BenchError::Io {
        what: format!("creating the work directory {}", workdir.display()),
        source,
    })?;
    let result = run_in(config, &workdir, started);
    if owned {
        if let Err(e) = std::fs::remove_dir_all(&workdir) {
            tracing::warn!("cannot remove {}: {e}", workdir.display());
        }
    }
    result
}

fn run_in(
    config: &BenchConfig,
    workdir: &std::path::Path,
    started: String,
) -> Result<BenchReport, BenchError> {
    let workload = bundle::prepare(
        &config.source,
        config.cmd.as_deref(),
        &config.vmrun,
        workdir,
    )?;
    let ctx = Context::new(
        config.vmrun.clone(),
        workload,
        config.kernel.clone(),
        config.initrd.clone(),
        config.memory_mib,
        workdir.to_path_buf(),
        config.limit,
    );
    let vmrun_version = version_of(&config.vmrun, "--version").unwrap_or_default();
    let mut entries: Vec<Entry> = Vec::new();
    for kind in config.variants.iter().chain(&config.peers) {
        if !entries.iter().any(|e| e.kind == *kind) {
            entries.push(Entry::new(*kind, &config.vmrun));
        }
    }
    let present = entries.iter().filter(|e| e.active()).count() as u64;
    let rounds = config.warmup + config.runs;
    let progress =
        Progress::new(present * (1 + rounds as u64) + config.density.unwrap_or(0) as u64);
    // One real run each: a peer that cannot run the workload here is
    // reported with its error, not measured.
    for e in entries.iter_mut().filter(|e| e.active()) {
        progress.doing(&format!("probing {}", e.kind.name()));
        let probe = run_once(e.kind, &e.bin, &ctx);
        progress.step();
        if !probe.ok {
            e.report.status = RuntimeStatus::Refused;
            e.report.reason = probe.error.or_else(|| Some("failed".into()));
        }
    }
    if let Some(e) = entries
        .iter()
        .find(|e| e.kind == RuntimeKind::Vmrun && !e.active())
    {
        return Err(BenchError::VmrunRefused {
            variant: e.kind.name().into(),
            reason: e.report.reason.clone().unwrap_or_default(),
        });
    }
    let active: Vec<usize> = (0..entries.len())
        .filter(|&i| entries[i].active())
        .collect();
    for round in 0..rounds {
        for i in round_order(&active, round.saturating_sub(config.warmup)) {
            let e = &mut entries[i];
            progress.doing(&format!("round {}/{rounds}: {}", round + 1, e.kind.name()));
            let mut sample = run_once(e.kind, &e.bin, &ctx);
            progress.step();
            if let Some(index) = round.checked_sub(config.warmup) {
                sample.index = index;
                e.report.runs.push(sample);
            }
        }
    }
    // The peers' daemons (containerd) go before the memory readings.
    ctx.daemons.shutdown();
    let memory = if config.memory {
        progress.doing("memory of an idle container");
        match density::idle_memory(&ctx, config.settle) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!("vmrun's memory was not measured: {e}");
                None
            }
        }
    } else {
        None
    };
    let density = config
        .density
        .map(|k| density::density(&ctx, k, config.settle, &progress));
    progress.finish();
    let mut runtimes: Vec<RuntimeReport> = entries.into_iter().map(|e| e.report).collect();
    summarise(&mut runtimes);
    Ok(BenchReport {
        schema: SCHEMA.into(),
        started,
        command: config.command_line.clone(),
        host: host_report(vmrun_version),
        workload: WorkloadReport {
            bundle: ctx.workload.bundle.clone(),
            rootfs: ctx.workload.rootfs.clone(),
            args: ctx.workload.args.clone(),
            runs: config.runs,
            warmup: config.warmup,
            order: ORDER.into(),
            kernel: config.kernel.clone(),
            initrd: config.initrd.clone(),
            vcpus: 1,
            memory_mib: config.memory_mib,
        },
        runtimes,
        memory,
        density,
    })
}

/// How the rounds are ordered (the JSON's `workload.order`).
pub const ORDER: &str = "interleaved-balanced";

/// The runtimes of measured round `round`, in the order they run: every
/// one once, in the rows of a Williams design (a Latin square balanced
/// for carry-over). A run can slow the one after it (in the test host a
/// boot right after a `vmrun run` took about a second longer than one
/// after a boot), so with one fixed order a runtime would always pay for
/// the same predecessor. Over every `k` rounds (`2k` for an odd number
/// `k` of runtimes) each runtime runs right after each other one equally
/// often, and first or last equally often.
pub fn round_order(active: &[usize], round: usize) -> Vec<usize> {
    let k = active.len();
    if k == 0 {
        return Vec::new();
    }
    // 0, 1, k-1, 2, k-2, ...: its successive differences are all distinct.
    let first = (0..k).map(|j| {
        if j % 2 == 1 {
            j.div_ceil(2)
        } else {
            (k - j / 2) % k
        }
    });
    let rows = if k.is_multiple_of(2) { k } else { 2 * k };
    let row = round % rows;
    let mut order: Vec<usize> = first.map(|x| active[(x + row) % k]).collect();
    if row >= k {
        order.reverse();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::PhaseMark;

    /// Every runtime once per round; over a full cycle of rounds each
    /// ordered pair (a right before b) occurs equally often.
    #[test]
    fn round_orders_are_balanced_for_carry_over() {
        for k in 1..=7usize {
            let active: Vec<usize> = (0..k).map(|i| 10 + i).collect();
            let rows = if k.is_multiple_of(2) { k } else { 2 * k };
            let mut pairs = std::collections::HashMap::new();
            let mut firsts = std::collections::HashMap::new();
            for round in 0..rows {
                let order = round_order(&active, round);
                let mut sorted = order.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, active, "k={k} round {round}: {order:?}");
                *firsts.entry(order[0]).or_insert(0) += 1;
                for w in order.windows(2) {
                    *pairs.entry((w[0], w[1])).or_insert(0) += 1;
                }
            }
            if k > 1 {
                assert_eq!(pairs.len(), k * (k - 1), "k={k}: {pairs:?}");
                let counts: std::collections::HashSet<_> = pairs.values().collect();
                assert_eq!(counts.len(), 1, "k={k}: {pairs:?}");
            }
            let counts: std::collections::HashSet<_> = firsts.values().collect();
            assert_eq!((firsts.len(), counts.len()), (k, 1), "k={k}: {firsts:?}");
            assert_eq!(round_order(&active, rows), round_order(&active, 0));
        }
        assert!(round_order(&[], 3).is_empty());
    }

    fn run(ok: bool, wall: f64, phases: &[(&str, f64, Clock)]) -> RunSample {
        RunSample {
            index: 0,
            ok,
            wall_ms: wall,
            exit_code: Some(0),
            phases: phases
                .iter()
                .map(|(n, ms, clock)| PhaseMark {
                    name: n.to_string(),
                    ms: *ms,
                    clock: *clock,
                })
                .collect(),
            error: None,
        }
    }

    fn runtime(name: &str, baseline: &str, runs: Vec<RunSample>) -> RuntimeReport {
        RuntimeReport {
            name: name.into(),
            what: String::new(),
            version: None,
            status: RuntimeStatus::Measured,
            reason: None,
            baseline: baseline.into(),
            runs,
            wall_ms: None,
            phases: Vec::new(),
            ratio_to_baseline: None,
        }
    }

    #[test]
    fn phases_of_successful_runs_vmm_clock_first() {
        let runs = vec![
            run(
                true,
                10.0,
                &[
                    ("first_output", 9.0, Clock::Caller),
                    ("vm_created", 1.0, Clock::Vmm),
                ],
            ),
            run(
                true,
                12.0,
                &[("vm_created", 3.0, Clock::Vmm), ("exit", 11.0, Clock::Vmm)],
            ),
            run(
                false,
                99.0,
                &[("vm_created", 50.0, Clock::Vmm), ("bogus", 1.0, Clock::Vmm)],
            ),
        ];
        let p = phase_summaries(&runs);
        let names: Vec<&str> = p.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["vm_created", "exit", "first_output"]);
        assert_eq!((p[0].ms.n, p[0].ms.median), (2, 2.0));
    }

    #[test]
    fn ratios_are_against_each_baseline_and_failures_are_left_out() {
        let mut rts = vec![
            runtime(
                "vmrun",
                "vmrun",
                vec![run(true, 100.0, &[]), run(true, 300.0, &[])],
            ),
            runtime("vmrun-boot", "vmrun-boot", vec![run(true, 50.0, &[])]),
            runtime(
                "runc",
                "vmrun",
                vec![run(true, 20.0, &[]), run(false, 1.0, &[])],
            ),
            runtime("qemu-microvm", "vmrun-boot", vec![run(true, 100.0, &[])]),
            runtime("crun", "vmrun", vec![]),
        ];
        summarise(&mut rts);
        assert_eq!(rts[0].ratio_to_baseline, Some(1.0));
        assert_eq!(rts[0].wall_ms.unwrap().median, 200.0);
        assert_eq!(rts[2].ratio_to_baseline, Some(0.1));
        assert_eq!(rts[2].wall_ms.unwrap().n, 1);
        assert_eq!(rts[3].ratio_to_baseline, Some(2.0));
        assert_eq!((rts[4].wall_ms, rts[4].ratio_to_baseline), (None, None));
    }

    #[test]
    fn a_report_round_trips_through_json() {
        let mut rts = vec![runtime(
            "vmrun",
            "vmrun",
            vec![run(true, 100.0, &[("vm_created", 1.0, Clock::Vmm)])],
        )];
        summarise(&mut rts);
        let report = tests_support::report(rts);
        let text = serde_json::to_string(&report).unwrap();
        let back: BenchReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["runtimes"][0]["status"], "measured");
        assert_eq!(v["runtimes"][0]["phases"][0]["clock"], "vmm");
        assert_eq!(v["runtimes"][0]["wall_ms"]["median"], 100.0);
    }
}

/// Reports for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::bench::report::{DensityReport, DensityStep, TeardownReport};

    /// A report around `runtimes`, with a two-step density curve.
    pub(crate) fn report(runtimes: Vec<RuntimeReport>) -> BenchReport {
        let step = |containers: usize, kib: u64| DensityStep {
            containers,
            elapsed_ms: containers as f64 * 1000.0,
            create_ms: 1000.0,
            pss_sum_kib: kib,
            mem_available_drop_kib: kib as i64 + 1000,
        };
        BenchReport {
            schema: SCHEMA.into(),
            started: "2026-01-01T00:00:00Z".into(),
            command: vec!["vmrun".into(), "bench".into()],
            host: host_report("vmrun version 0.1.0".into()),
            workload: WorkloadReport {
                bundle: "/b".into(),
                rootfs: "/b/rootfs".into(),
                args: vec!["true".into()],
                runs: 1,
                warmup: 0,
                order: ORDER.into(),
                kernel: "/k".into(),
                initrd: "/i".into(),
                vcpus: 1,
                memory_mib: 128,
            },
            runtimes,
            memory: None,
            density: Some(DensityReport {
                requested: 2,
                created: 2,
                args: vec!["sleep".into(), "3600".into()],
                failures: Vec::new(),
                create_ms: Summary::of(&[1000.0, 1000.0]),
                creation_rate_per_s: Some(1.0),
                steps: vec![step(1, 30_000), step(2, 60_000)],
                settle_ms: 1000,
                pss_per_container_kib: Some(30_000),
                mem_available_drop_per_container_kib: Some(31_000),
                teardown: TeardownReport {
                    delete_ms: Summary::of(&[10.0]),
                    delete_errors: Vec::new(),
                    leftover_processes: Vec::new(),
                    leftover_state: Vec::new(),
                    leftover_cgroups: Vec::new(),
                    clean: true,
                },
            }),
        }
    }
}
