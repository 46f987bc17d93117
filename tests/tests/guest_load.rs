//! Load in real microVMs (#12): many containers started at once, and many
//! create/delete cycles in a row with no growth on the host.
//!
//! - `containers_started_in_parallel_all_succeed`: `VMRUN_LOAD_PARALLEL`
//!   (default 20) `vmrun run`s at the same time, each printing its own
//!   line; all exit 0 with their own output and leave nothing behind.
//! - `create_delete_cycles_leave_no_growth`: `VMRUN_LOAD_CYCLES` (default
//!   200) `create` + `delete` of one id in a row; after a few warm-up
//!   cycles the host's open files, mounts and processes are counted, and
//!   again at the end: the counts are the same, and the memory in use grew
//!   by less than one microVM's RAM.
//!
//! Guest tests skip loudly (or fail under `VMRUN_REQUIRE_GUEST=1`) where
//! guests cannot run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use vmrun_tests::bundle::edit_config;
use vmrun_tests::leftovers::Traces;
use vmrun_tests::runtimes::Runtime;
use vmrun_tests::scratch::GuestScratch;
use vmrun_tests::{boot_timeout, guest_ready, run_ok};

static SCRATCH: GuestScratch = GuestScratch::new("vmrun-guest-load", "512m");

/// Cycles run before the first count (caches, lazily made cgroup parents).
const WARM_UP_CYCLES: usize = 3;

/// `name` from the environment, else `default`.
fn count_from_env(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text} is not a count")),
        Err(_) => default,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// vmrun with a fresh root of its own for `test`, each call limited to
/// `limit`.
fn vmrun_for(test: &str, limit: Duration) -> Option<Runtime> {
    let g = guest_ready(test)?;
    let dir = SCRATCH.dir().join(test);
    std::fs::create_dir_all(&dir).expect("test dir");
    Some(Runtime::vmrun(
        &dir.join("root"),
        &g.kernel,
        &g.initrd,
        limit,
    ))
}

/// A fresh copy of the busybox bundle running `args`.
fn bundle(name: &str, args: &[&str]) -> PathBuf {
    let dir = SCRATCH.dir().join(name);
    let _ = std::fs::remove_dir_all(&dir);
    run_ok(
        Command::new("cp")
            .arg("-a")
            .arg(SCRATCH.base_bundle())
            .arg(&dir),
        "copying the bundle (cp -a)",
    );
    edit_config(&dir, |spec| spec["process"]["args"] = json!(args));
    dir
}

#[test]
fn containers_started_in_parallel_all_succeed() {
    let parallel = count_from_env("VMRUN_LOAD_PARALLEL", 20);
    // One emulated CPU boots them all: give each the time of all.
    let limit = boot_timeout() * u32::try_from(parallel.max(1)).unwrap_or(u32::MAX);
    let Some(vmrun) = vmrun_for("parallel", limit.min(Duration::from_secs(1800))) else {
        return;
    };
    let bundles: Vec<(String, PathBuf)> = (0..parallel)
        .map(|i| {
            let id = format!("load-parallel-{i}");
            let line = format!("container {i} ran");
            let b = bundle(
                &id,
                &["sh", "-c", &format!("echo '{line}'; exit {}", i % 3)],
            );
            (id, b)
        })
        .collect();
    let start = Instant::now();
    let outputs: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = bundles
            .iter()
            .map(|(id, b)| {
                let vmrun = &vmrun;
                scope.spawn(move || vmrun.call("run", &["--bundle", s(b), id]))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a runner thread"))
            .collect()
    });
    eprintln!(
        "{parallel} containers in parallel ran in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let mut failures = Vec::new();
    for (i, out) in outputs.iter().enumerate() {
        let want_code = i32::try_from(i % 3).expect("small");
        let want_line = format!("container {i} ran\n");
        if out.status.and_then(|s| s.code()) != Some(want_code) || out.stdout != want_line {
            failures.push(format!(
                "container {i}: wanted exit {want_code} and {want_line:?}:\n{}",
                out.describe()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {parallel} containers failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for (id, b) in &bundles {
        Traces {
            id,
            bundle: b,
            root: &vmrun.root,
            netns: None,
        }
        .assert_nothing_left();
    }
}

/// What the host holds, counted between cycles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HostCounts {
    /// Open files, system-wide (`/proc/sys/fs/file-nr`, allocated).
    open_files: u64,
    /// Mounts in this (the host's) mount namespace.
    mounts: usize,
    /// Processes with a command line (kernel threads come and go with
    /// the kernel's own work and are not counted).
    processes: usize,
}

impl HostCounts {
    fn now() -> Self {
        let file_nr = std::fs::read_to_string("/proc/sys/fs/file-nr").expect("file-nr");
        let open_files = file_nr
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("file-nr's first field");
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .lines()
            .count();
        let processes = std::fs::read_dir("/proc")
            .expect("/proc")
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| !c.is_empty()))
            .count();
        Self {
            open_files,
            mounts,
            processes,
        }
    }
}

/// Memory in use on the host (MemTotal - MemAvailable), in KiB.
fn memory_in_use_kib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").expect("meminfo");
    let field = |name: &str| -> u64 {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/meminfo"))
    };
    field("MemTotal:") - field("MemAvailable:")
}

impl HostCounts {
    /// Is any count above `before`'s?
    fn grew_from(&self, before: &HostCounts) -> bool {
        self.open_files > before.open_files
            || self.mounts > before.mounts
            || self.processes > before.processes
    }
}

/// The counts settle once the processes of the last cycle are reaped:
/// waits (briefly) until none is above `before`.
fn settled_counts(before: HostCounts) -> HostCounts {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let counts = HostCounts::now();
        if !counts.grew_from(&before) || Instant::now() > deadline {
            return counts;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A progress line straight to fd 2 (libtest captures `eprintln!`): the
/// test host's watchdog takes a long silence for a freeze.
fn progress(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "guest_load: {line}");
}

#[test]
fn create_delete_cycles_leave_no_growth() {
    let cycles = count_from_env("VMRUN_LOAD_CYCLES", 200).max(WARM_UP_CYCLES + 1);
    let Some(vmrun) = vmrun_for("cycles", boot_timeout()) else {
        return;
    };
    // The leftovers scan finds processes by the id in their command line:
    // an id no path around the test (e.g. its test host's results
    // directory) contains.
    let id = &format!("cycle-{}", std::process::id());
    let b = bundle(id, &["sh", "-c", "echo never started"]);
    let traces = Traces {
        id,
        bundle: &b,
        root: &vmrun.root,
        netns: None,
    };
    let cycle = |n: usize| {
        let out = vmrun.call_detached("create", &["--bundle", s(&b), id]);
        assert!(out.success(), "cycle {n}: {}", out.describe());
        let out = vmrun.call("delete", &["--force", id]);
        assert!(out.success(), "cycle {n}: {}", out.describe());
        let found = traces.found();
        assert!(found.is_empty(), "cycle {n} left:\n{}", found.join("\n"));
    };
    for n in 0..WARM_UP_CYCLES {
        cycle(n);
    }
    let before = HostCounts::now();
    let memory_before = memory_in_use_kib();
    let start = Instant::now();
    for n in WARM_UP_CYCLES..cycles {
        cycle(n);
        if (n + 1) % 10 == 0 {
            progress(&format!(
                "{} of {cycles} create/delete cycles, {:.0}s",
                n + 1,
                start.elapsed().as_secs_f64()
            ));
        }
    }
    let measured = cycles - WARM_UP_CYCLES;
    eprintln!(
        "{measured} create/delete cycles in {:.1}s ({:.2}s each)",
        start.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64() / measured as f64
    );
    let after = settled_counts(before);
    let memory_after = memory_in_use_kib();
    assert!(
        !after.grew_from(&before),
        "the host holds more after {measured} create/delete cycles: {before:?} -> {after:?}"
    );
    // One leaked microVM would hold its guest RAM (128 MiB by default);
    // page cache and allocator slack move by a few MiB.
    let growth_kib = memory_after.saturating_sub(memory_before);
    assert!(
        growth_kib < 64 * 1024,
        "memory in use grew by {growth_kib} KiB over {measured} create/delete cycles \
         ({memory_before} -> {memory_after} KiB)"
    );
}
