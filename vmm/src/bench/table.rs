//! The human report on stdout: Markdown tables (they paste into a README
//! as they are), led by the host's label.

use std::fmt::Write;

use super::report::{BenchReport, Clock, RuntimeReport, RuntimeStatus};

/// Longest reason shown in a table cell.
const MAX_REASON: usize = 240;

/// A table cell: no pipes or newlines, bounded length.
fn cell(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| match c {
            '|' => '/',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    if flat.chars().count() > MAX_REASON {
        let cut: String = flat.chars().take(MAX_REASON).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn status(r: &RuntimeReport) -> String {
    let failed = r.runs.iter().filter(|s| !s.ok).count();
    match r.status {
        RuntimeStatus::Measured if failed > 0 => {
            format!("measured ({failed} of {} runs failed)", r.runs.len())
        }
        RuntimeStatus::Measured => "measured".into(),
        RuntimeStatus::Missing => format!("missing: {}", cell(r.reason.as_deref().unwrap_or(""))),
        RuntimeStatus::Refused => format!("refused: {}", cell(r.reason.as_deref().unwrap_or(""))),
    }
}

fn kib(v: u64) -> String {
    format!("{:.1} MiB", v as f64 / 1024.0)
}

/// Renders the report.
pub fn render(report: &BenchReport) -> String {
    let mut out = String::new();
    let h = &report.host;
    let w = &report.workload;
    let _ = writeln!(
        out,
        "**vmrun bench**, {} — `{}`\n",
        report.started,
        report.command.join(" ")
    );
    let _ = writeln!(out, "**{}** ({:?}).", h.label, h.virtualization);
    let _ = writeln!(
        out,
        "Host: Linux {}, {} CPUs; evidence: {}.",
        h.kernel,
        h.cpus,
        h.evidence.join("; ")
    );
    let _ = writeln!(
        out,
        "Workload: `{}` in the same bundle for every OCI runtime; microVMs of {} vCPU / {} MiB; {} interleaved runs per runtime (each round in another order, balanced so that each runtime follows each other one equally often) after {} warm-up round(s); {}.\n",
        w.args.join(" "),
        w.vcpus,
        w.memory_mib,
        w.runs,
        w.warmup,
        h.vmrun_version
    );
    let _ = writeln!(
        out,
        "| runtime | status | n | median ms | p10 | p90 | min | max | ratio |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &report.runtimes {
        let ratio = r
            .ratio_to_baseline
            .map(|x| format!("{x:.2}× {}", r.baseline))
            .unwrap_or_default();
        match r.wall_ms {
            Some(s) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.name,
                    status(r),
                    s.n,
                    num(s.median),
                    num(s.p10),
                    num(s.p90),
                    num(s.min),
                    num(s.max),
                    ratio
                );
            }
            None => {
                let _ = writeln!(out, "| {} | {} | 0 | | | | | | |", r.name, status(r));
            }
        }
    }
    let _ = writeln!(
        out,
        "\nWall time: spawn to reaped, as the caller sees it. What each runtime ran:"
    );
    for r in &report.runtimes {
        let version = r
            .version
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default();
        let _ = writeln!(out, "- {}{}: {}", r.name, cell(&version), r.what);
    }
    let with_phases: Vec<&RuntimeReport> = report
        .runtimes
        .iter()
        .filter(|r| !r.phases.is_empty())
        .collect();
    if !with_phases.is_empty() {
        let _ = writeln!(
            out,
            "\nPhases (ms; clock `vmm` = the runtime's own timestamps since its process started, `caller` = since the bench spawned it; + = median of this phase minus the previous one):\n"
        );
        let _ = writeln!(out, "| runtime | phase | clock | median | + | p10 | p90 |");
        let _ = writeln!(out, "|---|---|---|---:|---:|---:|---:|");
        for r in with_phases {
            let mut prev: Option<(Clock, f64)> = None;
            for p in &r.phases {
                let delta = match prev {
                    Some((clock, m)) if clock == p.clock => num(p.ms.median - m),
                    _ => String::new(),
                };
                prev = Some((p.clock, p.ms.median));
                let clock = match p.clock {
                    Clock::Vmm => "vmm",
                    Clock::Caller => "caller",
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} |",
                    r.name,
                    p.name,
                    clock,
                    num(p.ms.median),
                    delta,
                    num(p.ms.p10),
                    num(p.ms.p90)
                );
            }
        }
    }
    for r in &report.runtimes {
        for s in r.runs.iter().filter(|s| !s.ok) {
            let _ = writeln!(
                out,
                "\n{} run {} failed: {}",
                r.name,
                s.index,
                cell(s.error.as_deref().unwrap_or(""))
            );
        }
    }
    if let Some(m) = &report.memory {
        let _ = writeln!(
            out,
            "\nMemory of one idle vmrun container (`sleep`, {} ms after `run -d`, guest {} MiB):\n",
            m.settle_ms, m.guest_memory_mib
        );
        let _ = writeln!(out, "| VMM process | RSS | PSS |\n|---|---:|---:|");
        let _ = writeln!(
            out,
            "| whole process | {} | {} |",
            kib(m.rss_kib),
            kib(m.pss_kib)
        );
        match (
            &m.guest_ram,
            m.vmm_rss_without_guest_kib,
            m.vmm_pss_without_guest_kib,
        ) {
            (Some(g), Some(rss), Some(pss)) => {
                let _ = writeln!(out, "| without guest RAM | {} | {} |", kib(rss), kib(pss));
                let _ = writeln!(
                    out,
                    "| guest RAM touched ({} mapped) | {} | {} |",
                    kib(g.size_kib),
                    kib(g.rss_kib),
                    kib(g.pss_kib)
                );
            }
            _ => {
                let _ = writeln!(out, "| guest RAM | not found in smaps | |");
            }
        }
    }
    if let Some(d) = &report.density {
        let _ = writeln!(
            out,
            "\nDensity: {} of {} idle containers (`{}`) created one after the other.\n",
            d.created,
            d.requested,
            d.args.join(" ")
        );
        let _ = writeln!(out, "| containers | elapsed ms | run -d ms | sum of VMM PSS | MemAvailable drop |\n|---:|---:|---:|---:|---:|");
        for s in &d.steps {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.1} MiB |",
                s.containers,
                num(s.elapsed_ms),
                num(s.create_ms),
                kib(s.pss_sum_kib),
                s.mem_available_drop_kib as f64 / 1024.0
            );
        }
        let per = |v: Option<u64>| v.map(kib).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "\nPer container after {} ms idle: PSS {}, MemAvailable drop {}; creation rate {} containers/s.",
            d.settle_ms,
            per(d.pss_per_container_kib),
            d.mem_available_drop_per_container_kib
                .map(|v| format!("{:.1} MiB", v as f64 / 1024.0))
                .unwrap_or_else(|| "-".into()),
            d.creation_rate_per_s.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())
        );
        for f in &d.failures {
            let _ = writeln!(out, "Density: container {} failed", cell(f));
        }
        let t = &d.teardown;
        if t.clean {
            let _ = writeln!(out, "Teardown (`delete --force` of all): clean — no process, state directory or host cgroup left.");
        } else {
            let _ = writeln!(out, "Teardown: NOT CLEAN.");
            for (what, list) in [
                ("delete failed", &t.delete_errors),
                ("process left", &t.leftover_processes),
                ("state left", &t.leftover_state),
                ("cgroup left", &t.leftover_cgroups),
            ] {
                for item in list {
                    let _ = writeln!(out, "- {what}: {}", cell(item));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_have_no_pipes_or_newlines_and_are_bounded() {
        assert_eq!(cell("a | b\nc"), "a / b c");
        assert!(cell(&"x".repeat(1000)).chars().count() <= MAX_REASON + 1);
    }

    #[test]
    fn numbers_keep_a_decimal_below_100() {
        assert_eq!(num(2.71), "2.7");
        assert_eq!(num(1234.56), "1235");
    }
}
