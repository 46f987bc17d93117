//! `--chart FILE.svg`: drawn with plotters' SVG backend — the median phases
//! of each measured runtime as stacked bars (each segment ends at the
//! phase it is named after; the last one at the reaped process), and the
//! density curve when `--density` ran.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::error::BenchError;
use super::report::{BenchReport, Clock, DensityReport, RuntimeReport};

/// Width of the picture (pixels).
const WIDTH: u32 = 1100;
/// Height of one bar row (pixels).
const ROW: u32 = 46;
/// Height of the density panel (pixels).
const DENSITY_HEIGHT: u32 = 360;
/// The last segment of every bar.
pub const REAPED: &str = "reaped";

/// One bar: (segment end phase, start ms, end ms).
pub type Bar = Vec<(String, f64, f64)>;

/// A runtime's bar from its median phases: VMM-clock phases when it has
/// some, else the caller's; then up to its median wall time.
pub fn bar(r: &RuntimeReport) -> Option<Bar> {
    let wall = r.median_wall()?;
    let has_vmm = r.phases.iter().any(|p| p.clock == Clock::Vmm);
    let clock = if has_vmm { Clock::Vmm } else { Clock::Caller };
    let mut marks: Vec<(String, f64)> = r
        .phases
        .iter()
        .filter(|p| p.clock == clock && p.ms.median > 0.0)
        .map(|p| (p.name.clone(), p.ms.median.min(wall)))
        .collect();
    marks.sort_by(|a, b| a.1.total_cmp(&b.1));
    marks.push((REAPED.to_string(), wall));
    let mut out = Vec::new();
    let mut at = 0.0;
    for (name, end) in marks {
        out.push((name, at, end));
        at = end;
    }
    Some(out)
}

fn err(path: &Path) -> impl Fn(String) -> BenchError + '_ {
    move |e| BenchError::Chart(path.to_path_buf(), e)
}

fn draw_phases(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    report: &BenchReport,
    path: &Path,
) -> Result<(), BenchError> {
    let bars: Vec<(&str, Bar)> = report
        .runtimes
        .iter()
        .filter_map(|r| bar(r).map(|b| (r.name.as_str(), b)))
        .collect();
    let n = bars.len().max(1);
    let xmax = bars
        .iter()
        .filter_map(|(_, b)| b.last().map(|s| s.2))
        .fold(1.0_f64, f64::max)
        * 1.05;
    let mut phases: Vec<String> = Vec::new();
    for (_, b) in &bars {
        for (name, _, _) in b {
            if !phases.contains(name) {
                phases.push(name.clone());
            }
        }
    }
    let caption = format!(
        "vmrun bench: median phases per runtime ({:?}: {})",
        report.host.virtualization,
        if report.host.virtualization == super::report::Virtualization::Hardware {
            "hardware numbers"
        } else {
            "compare ratios, not absolute ms"
        }
    );
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(140)
        .build_cartesian_2d(0.0..xmax, -0.5..(n as f64 - 0.5))
        .map_err(|e| err(path)(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("ms since the command was spawned (vmrun: since its process started)")
        .draw()
        .map_err(|e| err(path)(e.to_string()))?;
    for (pi, phase) in phases.iter().enumerate() {
        let style: ShapeStyle = Palette99::pick(pi).filled();
        let rects: Vec<Rectangle<(f64, f64)>> = bars
            .iter()
            .enumerate()
            .flat_map(|(i, (_, b))| {
                b.iter()
                    .filter(|(name, _, _)| name == phase)
                    .map(move |(_, x0, x1)| {
                        Rectangle::new([(*x0, i as f64 - 0.33), (*x1, i as f64 + 0.33)], style)
                    })
            })
            .collect();
        chart
            .draw_series(rects)
            .map_err(|e| err(path)(e.to_string()))?
            .label(phase.as_str())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path)(e.to_string()))?;
    let label_style =
        TextStyle::from(("sans-serif", 14).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
    for (i, (name, b)) in bars.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, i as f64));
        let total = b.last().map(|s| s.2).unwrap_or_default();
        area.draw(&Text::new(
            format!("{name} ({total:.0} ms)"),
            (x - 8, y),
            label_style.clone(),
        ))
        .map_err(|e| err(path)(e.to_string()))?;
    }
    Ok(())
}

fn draw_density(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    d: &DensityReport,
    path: &Path,
) -> Result<(), BenchError> {
    let mib = |kib: f64| kib / 1024.0;
    let pss: Vec<(f64, f64)> = d
        .steps
        .iter()
        .map(|s| (s.containers as f64, mib(s.pss_sum_kib as f64)))
        .collect();
    let avail: Vec<(f64, f64)> = d
        .steps
        .iter()
        .map(|s| {
            (
                s.containers as f64,
                mib(s.mem_available_drop_kib.max(0) as f64),
            )
        })
        .collect();
    let ymax = pss
        .iter()
        .chain(&avail)
        .map(|p| p.1)
        .fold(1.0_f64, f64::max)
        * 1.1;
    let xmax = (d.requested.max(1)) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("density: {} idle vmrun containers (sleep)", d.created),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax + 0.5, 0.0..ymax)
        .map_err(|e| err(path)(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("containers running")
        .y_desc("MiB")
        .draw()
        .map_err(|e| err(path)(e.to_string()))?;
    for (points, name, color) in [
        (pss, "sum of VMM PSS", BLUE),
        (avail, "MemAvailable drop", RED),
    ] {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| err(path)(e.to_string()))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .map_err(|e| err(path)(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(path)(e.to_string()))?;
    Ok(())
}

/// Draws the chart of `report` into `path` (SVG).
pub fn write_chart(report: &BenchReport, path: &Path) -> Result<(), BenchError> {
    let rows = report
        .runtimes
        .iter()
        .filter(|r| r.median_wall().is_some())
        .count()
        .max(1) as u32;
    let phases_height = 120 + ROW * rows + 24 * 6;
    let density = report.density.as_ref().filter(|d| !d.steps.is_empty());
    let height = phases_height + if density.is_some() { DENSITY_HEIGHT } else { 0 };
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(path)(e.to_string()))?;
    let (top, bottom) = root.split_vertically(phases_height);
    draw_phases(&top, report, path)?;
    if let Some(d) = density {
        draw_density(&bottom, d, path)?;
    }
    root.present().map_err(|e| err(path)(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{PhaseSummary, RuntimeStatus};
    use crate::bench::stats::Summary;

    fn runtime(name: &str, wall: f64, phases: &[(&str, f64, Clock)]) -> RuntimeReport {
        RuntimeReport {
            name: name.into(),
            what: String::new(),
            version: None,
            status: RuntimeStatus::Measured,
            reason: None,
            baseline: "vmrun".into(),
            runs: Vec::new(),
            wall_ms: Summary::of(&[wall]),
            phases: phases
                .iter()
                .map(|(n, ms, clock)| PhaseSummary {
                    name: n.to_string(),
                    clock: *clock,
                    ms: Summary::of(&[*ms]).unwrap(),
                })
                .collect(),
            ratio_to_baseline: None,
        }
    }

    #[test]
    fn bars_stack_phases_up_to_the_wall_time() {
        let r = runtime(
            "vmrun",
            100.0,
            &[
                ("process_start", 0.0, Clock::Vmm),
                ("vm_created", 10.0, Clock::Vmm),
                ("exit", 90.0, Clock::Vmm),
                ("first_output", 95.0, Clock::Caller),
            ],
        );
        let b = bar(&r).unwrap();
        let names: Vec<&str> = b.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["vm_created", "exit", REAPED]);
        assert_eq!((b[0].1, b[0].2, b[1].2, b[2].2), (0.0, 10.0, 90.0, 100.0));
        let peer = runtime("qemu-microvm", 50.0, &[("ready_line", 40.0, Clock::Caller)]);
        assert_eq!(bar(&peer).unwrap().len(), 2);
    }

    #[test]
    fn the_chart_is_an_svg_with_every_runtime() {
        let report = crate::bench::session::tests_support::report(vec![
            runtime("vmrun", 100.0, &[("vm_created", 10.0, Clock::Vmm)]),
            runtime("runc", 20.0, &[]),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.svg");
        write_chart(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(
            svg.contains("vmrun (100 ms)")
                && svg.contains("runc (20 ms)")
                && svg.contains("vm_created")
        );
        assert!(svg.contains("density: 2 idle vmrun containers"));
    }
}
