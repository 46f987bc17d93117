//! vmrun's variants: `run` (foreground, with its own phase timestamps from
//! `--timings-json`), the lifecycle verbs (`create`, `start`, the VMM's
//! exit, `delete`, timed by the caller) and `boot` (phases + ready line).

use std::process::Command;

use serde_json::Value;

use super::{caller_marks, ms, not_run, sample, Context, RuntimeKind, READY_CMDLINE, READY_MARKER};
use crate::bench::process::{run_timed, wait_gone, Capture, Timed};
use crate::bench::report::{Clock, PhaseMark, RunSample};

/// The phases of a `--timings-json` file (VMM clock), in file order.
pub fn parse_timings(text: &str) -> Result<Vec<PhaseMark>, String> {
    let doc: Value = serde_json::from_str(text).map_err(|e| format!("timings JSON: {e}"))?;
    let phases = doc
        .get("phases")
        .and_then(Value::as_array)
        .ok_or("timings JSON has no phases array")?;
    phases
        .iter()
        .map(|p| {
            let name = p
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a phase without a name")?;
            let ms = p
                .get("ms")
                .and_then(Value::as_f64)
                .ok_or("a phase without ms")?;
            Ok(PhaseMark {
                name: name.to_string(),
                ms,
                clock: Clock::Vmm,
            })
        })
        .collect()
}

/// `vmrun --root R` + `verb`.
fn vmrun(ctx: &Context, verb: &str) -> Command {
    let mut command = Command::new(&ctx.vmrun);
    command.arg("--root").arg(ctx.state_root("vmrun")).arg(verb);
    command
}

/// A sample whose VMM phases come from `timings` (then the caller's marks).
fn with_timings(timed: &Timed, what: &str, ok: bool, timings: &std::path::Path) -> RunSample {
    let vmm = std::fs::read_to_string(timings)
        .map_err(|e| format!("no timings from vmrun ({}): {e}", timings.display()))
        .and_then(|text| parse_timings(&text));
    let _ = std::fs::remove_file(timings);
    let mut phases = vmm.clone().unwrap_or_default();
    phases.extend(caller_marks(timed));
    let mut s = sample(timed, what, ok, phases);
    if let (true, Err(e)) = (ok, vmm) {
        s.ok = false;
        s.error = Some(e);
    }
    s
}

/// `vmrun run --timings-json F --bundle B ID` in the foreground.
pub fn run(ctx: &Context) -> RunSample {
    let id = ctx.next_id(RuntimeKind::Vmrun);
    let timings = ctx.scratch(&format!("{id}.timings.json"));
    let mut command = vmrun(ctx, "run");
    command
        .args(ctx.vm_flags())
        .arg("--timings-json")
        .arg(&timings)
        .arg("--bundle")
        .arg(&ctx.workload.bundle)
        .arg(&id);
    match run_timed(&mut command, &Capture::Pipes, None, ctx.limit) {
        Ok(t) => with_timings(&t, "vmrun run", t.success(), &timings),
        Err(e) => not_run(format!("cannot start vmrun: {e}")),
    }
}

/// `vmrun boot --timings-json F` of the kernel and initramfs (console on
/// stdout, watched for the agent's ready line).
pub fn boot(ctx: &Context) -> RunSample {
    let timings = ctx.scratch(&format!(
        "{}.timings.json",
        ctx.next_id(RuntimeKind::VmrunBoot)
    ));
    let mut command = Command::new(&ctx.vmrun);
    command
        .arg("boot")
        .args(ctx.vm_flags())
        .arg("--cmdline")
        .arg(format!("{READY_CMDLINE} reboot=k"))
        .arg("--timings-json")
        .arg(&timings);
    match run_timed(&mut command, &Capture::Pipes, Some(READY_MARKER), ctx.limit) {
        Ok(t) => {
            let ok = t.success() && t.marker.is_some();
            let mut s = with_timings(&t, "vmrun boot", ok, &timings);
            if t.success() && t.marker.is_none() {
                s.error = Some("vmrun boot exited 0 without the agent's ready line".into());
            }
            s
        }
        Err(e) => not_run(format!("cannot start vmrun: {e}")),
    }
}

fn mark(name: &str, at: std::time::Duration) -> PhaseMark {
    PhaseMark {
        name: name.into(),
        ms: ms(at),
        clock: Clock::Caller,
    }
}

/// Removes a container the lifecycle left behind after a failure.
fn force_delete(ctx: &Context, id: &str) {
    let mut command = vmrun(ctx, "delete");
    command.arg("--force").arg(id);
    let _ = run_timed(&mut command, &Capture::Pipes, None, ctx.limit);
}

/// `create` (its stdio to files: the container keeps it), `start`, the
/// VMM's exit, `delete`; phases on the caller's clock since `create` was
/// spawned; wall time through `delete`.
pub fn lifecycle(ctx: &Context) -> RunSample {
    let id = ctx.next_id(RuntimeKind::VmrunLifecycle);
    let pid_file = ctx.scratch(&format!("{id}.pid"));
    let capture = Capture::Files {
        stdout: ctx.scratch(&format!("{id}.out")),
        stderr: ctx.scratch(&format!("{id}.err")),
    };
    let begin = std::time::Instant::now();
    let mut create = vmrun(ctx, "create");
    create
        .args(ctx.vm_flags())
        .arg("--bundle")
        .arg(&ctx.workload.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id);
    let created = match run_timed(&mut create, &capture, None, ctx.limit) {
        Ok(t) => t,
        Err(e) => return not_run(format!("cannot start vmrun create: {e}")),
    };
    let mut phases = vec![mark("created", begin.elapsed())];
    let fail = |what: &str, t: &Timed, phases: Vec<PhaseMark>| {
        force_delete(ctx, &id);
        let mut s = sample(t, what, false, phases);
        s.wall_ms = ms(begin.elapsed());
        s
    };
    if !created.success() {
        return fail("vmrun create", &created, phases);
    }
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    let _ = std::fs::remove_file(&pid_file);
    let Some(pid) = pid else {
        let mut s = fail("vmrun create", &created, phases);
        s.error = Some("vmrun create wrote no pid file".into());
        return s;
    };
    let mut start = vmrun(ctx, "start");
    start.arg(&id);
    let started = match run_timed(&mut start, &Capture::Pipes, None, ctx.limit) {
        Ok(t) => t,
        Err(e) => return not_run(format!("cannot start vmrun start: {e}")),
    };
    phases.push(mark("started", begin.elapsed()));
    if !started.success() {
        return fail("vmrun start", &started, phases);
    }
    if !wait_gone(pid, ctx.limit) {
        let mut s = fail("the container", &started, phases);
        s.error = Some(format!(
            "the VMM (pid {pid}) did not exit within {:?}",
            ctx.limit
        ));
        return s;
    }
    phases.push(mark("exited", begin.elapsed()));
    let mut delete = vmrun(ctx, "delete");
    delete.arg(&id);
    let deleted = match run_timed(&mut delete, &Capture::Pipes, None, ctx.limit) {
        Ok(t) => t,
        Err(e) => return not_run(format!("cannot start vmrun delete: {e}")),
    };
    phases.push(mark("deleted", begin.elapsed()));
    let mut s = sample(&deleted, "vmrun delete", deleted.success(), phases);
    s.wall_ms = ms(begin.elapsed());
    s.exit_code = deleted.code();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_json_becomes_vmm_phases() {
        let p = parse_timings(
            r#"{"phases":[{"name":"process_start","ms":0.0},{"name":"vm_created","ms":1.5}]}"#,
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[1].name.as_str(), p[1].ms, p[1].clock),
            ("vm_created", 1.5, Clock::Vmm)
        );
        assert!(parse_timings("{}").is_err());
        assert!(parse_timings(r#"{"phases":[{"ms":1}]}"#).is_err());
    }
}
