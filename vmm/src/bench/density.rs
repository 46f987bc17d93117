//! Idle containers: one for vmrun's memory reading, K for `--density K`
//! (sequential `vmrun run -d` of a `sleep`, the memory after each, then
//! `delete --force` of all and a check that nothing is left: no process
//! of the bench's state root, no state directory, no host cgroup).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::memory::{mem_available_kib, memory_report, pss_kib, read_proc};
use super::process::{alive, run_timed, Capture};
use super::progress::Progress;
use super::report::{DensityReport, DensityStep, MemoryReport, TeardownReport};
use super::runners::{ms, Context, RuntimeKind};
use super::stats::Summary;

/// A running idle container.
#[derive(Debug, Clone)]
pub struct Idle {
    /// Its id.
    pub id: String,
    /// Its VMM's pid.
    pub pid: u32,
    /// The `run -d` wall time (ms).
    pub create_ms: f64,
    /// Its host cgroup directories (from its state.json).
    pub cgroups: Vec<PathBuf>,
}

fn vmrun(ctx: &Context, verb: &str) -> Command {
    let mut command = Command::new(&ctx.vmrun);
    command.arg("--root").arg(ctx.state_root("vmrun")).arg(verb);
    command
}

/// The `hostCgroups` of container `id`'s state.json.
fn recorded_cgroups(root: &Path, id: &str) -> Vec<PathBuf> {
    let text = std::fs::read_to_string(root.join(id).join("state.json")).unwrap_or_default();
    serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| v.get("hostCgroups").and_then(Value::as_array).cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.as_str().map(PathBuf::from))
        .collect()
}

/// `vmrun run -d` of the idle bundle (its stdio to files: the VMM keeps it).
pub fn start_idle(ctx: &Context) -> Result<Idle, String> {
    let id = ctx.next_id(RuntimeKind::Vmrun);
    let pid_file = ctx.scratch(&format!("{id}.pid"));
    let capture = Capture::Files {
        stdout: ctx.scratch(&format!("{id}.out")),
        stderr: ctx.scratch(&format!("{id}.err")),
    };
    let mut command = vmrun(ctx, "run");
    command
        .arg("--detach")
        .args(ctx.vm_flags())
        .arg("--bundle")
        .arg(&ctx.workload.idle_bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&id);
    let t = run_timed(&mut command, &capture, None, ctx.limit)
        .map_err(|e| format!("cannot start vmrun: {e}"))?;
    if !t.success() {
        let _ = delete(ctx, &id);
        return Err(t.failure("vmrun run -d"));
    }
    let pid = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .ok_or_else(|| format!("vmrun run -d wrote no pid file {}", pid_file.display()))?;
    let _ = std::fs::remove_file(&pid_file);
    let cgroups = recorded_cgroups(&ctx.state_root("vmrun"), &id);
    Ok(Idle {
        id,
        pid,
        create_ms: ms(t.wall),
        cgroups,
    })
}

/// `vmrun delete --force ID`; its wall time (ms).
pub fn delete(ctx: &Context, id: &str) -> Result<f64, String> {
    let mut command = vmrun(ctx, "delete");
    command.arg("--force").arg(id);
    let t = run_timed(&mut command, &Capture::Pipes, None, ctx.limit)
        .map_err(|e| format!("cannot start vmrun: {e}"))?;
    if t.success() {
        Ok(ms(t.wall))
    } else {
        Err(t.failure("vmrun delete --force"))
    }
}

/// vmrun's memory with one idle container, `settle` after `run -d`.
pub fn idle_memory(ctx: &Context, settle: Duration) -> Result<MemoryReport, String> {
    let idle = start_idle(ctx)?;
    std::thread::sleep(settle);
    let read = || -> std::io::Result<(String, String)> {
        Ok((
            read_proc(idle.pid, "smaps_rollup")?,
            read_proc(idle.pid, "smaps")?,
        ))
    };
    let texts = read();
    let deleted = delete(ctx, &idle.id);
    let (rollup, smaps) = texts.map_err(|e| format!("reading /proc/{}/smaps: {e}", idle.pid))?;
    deleted?;
    let settle_ms = u64::try_from(settle.as_millis()).unwrap_or(u64::MAX);
    Ok(memory_report(
        idle.pid,
        ctx.memory_mib,
        settle_ms,
        &rollup,
        &smaps,
    ))
}

/// Processes (other than this one) whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()) && *pid != me)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
            let live = pid.parse().is_ok_and(alive);
            (live && cmdline.contains(needle)).then(|| format!("{pid}: {}", cmdline.trim()))
        })
        .collect()
}

/// Directories named like one of `ids` in the cgroup mounts (4 levels deep).
fn cgroups_named(ids: &[String]) -> Vec<String> {
    fn walk(dir: &Path, depth: usize, ids: &[String], out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let path = e.path();
            if e.file_name()
                .to_str()
                .is_some_and(|n| ids.iter().any(|id| id == n))
            {
                out.push(path.display().to_string());
            }
            if depth > 0 {
                walk(&path, depth - 1, ids, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), 4, ids, &mut out);
    out
}

/// Deletes `containers` and checks what is left.
pub fn teardown(ctx: &Context, containers: &[Idle]) -> TeardownReport {
    let mut times = Vec::new();
    let mut delete_errors = Vec::new();
    for c in containers {
        match delete(ctx, &c.id) {
            Ok(ms) => times.push(ms),
            Err(e) => delete_errors.push(format!("{}: {e}", c.id)),
        }
    }
    let root = ctx.state_root("vmrun");
    let mut leftover_processes: Vec<String> = containers
        .iter()
        .filter(|c| alive(c.pid))
        .map(|c| format!("{}: the VMM of {}", c.pid, c.id))
        .collect();
    leftover_processes.extend(processes_mentioning(&root.display().to_string()));
    let leftover_state: Vec<String> = std::fs::read_dir(&root)
        .map(|d| {
            d.flatten()
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    let ids: Vec<String> = containers.iter().map(|c| c.id.clone()).collect();
    let mut leftover_cgroups: Vec<String> = containers
        .iter()
        .flat_map(|c| c.cgroups.iter())
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    for found in cgroups_named(&ids) {
        if !leftover_cgroups.contains(&found) {
            leftover_cgroups.push(found);
        }
    }
    let clean = delete_errors.is_empty()
        && leftover_processes.is_empty()
        && leftover_state.is_empty()
        && leftover_cgroups.is_empty();
    TeardownReport {
        delete_ms: Summary::of(&times),
        delete_errors,
        leftover_processes,
        leftover_state,
        leftover_cgroups,
        clean,
    }
}

/// `--density K`: K idle containers one after the other, the memory after
/// each; after `settle`, the final reading; then the teardown.
pub fn density(ctx: &Context, k: usize, settle: Duration, progress: &Progress) -> DensityReport {
    let before = mem_available_kib().ok();
    let drop_now = || -> i64 {
        match (before, mem_available_kib().ok()) {
            (Some(b), Some(n)) => b as i64 - n as i64,
            _ => 0,
        }
    };
    let mut up: Vec<Idle> = Vec::new();
    let mut failures = Vec::new();
    let mut steps = Vec::new();
    let begin = Instant::now();
    for i in 0..k {
        progress.doing(&format!("density: container {}/{k}", i + 1));
        match start_idle(ctx) {
            Ok(idle) => {
                let create_ms = idle.create_ms;
                up.push(idle);
                let pss_sum_kib = up.iter().filter_map(|c| pss_kib(c.pid).ok()).sum();
                steps.push(DensityStep {
                    containers: up.len(),
                    elapsed_ms: ms(begin.elapsed()),
                    create_ms,
                    pss_sum_kib,
                    mem_available_drop_kib: drop_now(),
                });
            }
            Err(e) => failures.push(format!("{i}: {e}")),
        }
        progress.step();
    }
    let total_ms = ms(begin.elapsed());
    std::thread::sleep(settle);
    let n = up.len();
    let final_pss: u64 = up.iter().filter_map(|c| pss_kib(c.pid).ok()).sum();
    let final_drop = drop_now();
    let creates: Vec<f64> = up.iter().map(|c| c.create_ms).collect();
    progress.doing("density: teardown");
    let teardown = teardown(ctx, &up);
    DensityReport {
        requested: k,
        created: n,
        args: super::bundle::IDLE_ARGS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        failures,
        create_ms: Summary::of(&creates),
        creation_rate_per_s: (n > 0 && total_ms > 0.0).then(|| n as f64 / (total_ms / 1000.0)),
        steps,
        settle_ms: u64::try_from(settle.as_millis()).unwrap_or(u64::MAX),
        pss_per_container_kib: (n > 0).then(|| final_pss / n as u64),
        mem_available_drop_per_container_kib: (n > 0 && before.is_some())
            .then(|| final_drop / n as i64),
        teardown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_are_found_by_their_command_line() {
        let mark = format!("vmrun-bench-test-{}", std::process::id());
        // `read` is a shell builtin: the shell never forks a child that
        // would carry the same command line until it execs.
        let mut child = Command::new("sh")
            .args(["-c", "read line", &mark])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // spawn() returns once the child's exec replaced its memory, but
        // the kernel sets the new command line a moment later: wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut found = processes_mentioning(&mark);
        while found.is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = processes_mentioning(&mark);
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with(&child.id().to_string()));
        assert!(processes_mentioning(&mark).is_empty());
    }

    #[test]
    fn recorded_cgroups_come_from_state_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("c1")).unwrap();
        std::fs::write(
            dir.path().join("c1/state.json"),
            r#"{"id":"c1","hostCgroups":["/sys/fs/cgroup/memory/c1"]}"#,
        )
        .unwrap();
        assert_eq!(
            recorded_cgroups(dir.path(), "c1"),
            [PathBuf::from("/sys/fs/cgroup/memory/c1")]
        );
        assert!(recorded_cgroups(dir.path(), "c2").is_empty());
    }
}
