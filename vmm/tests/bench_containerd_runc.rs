//! The bench's containerd peers with runc (`ctr-runc`, `cri-runc`), which
//! need no guest: the private containerd comes up, the rootfs is imported,
//! each run succeeds with the workload's exit code and its phases in
//! order, a failing workload's exit code comes back, and the teardown
//! leaves no directory, process, mount, network namespace or cgroup.
//! Durations are never asserted. Needs root, containerd, ctr, the runc v2
//! shim and runc (and `vmrun-cri`, built next to vmrun or named by
//! `$VMRUN_CRI_CLIENT`, for the CRI half); skips loudly otherwise. The
//! vmrun peers (`ctr-vmrun`, `cri-vmrun`) are covered by
//! tests/tests/guest_bench.rs in the test host.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vmrun::bench::bundle::{prepare, Source};
use vmrun::bench::report::{Clock, RunSample};
use vmrun::bench::runners::cri::CRI_CLIENT_ENV;
use vmrun::bench::runners::scrub::{mounts_below, processes_mentioning};
use vmrun::bench::runners::{locate, run_once, Context, RuntimeKind};

fn skipped(why: &str) {
    let stars = "*".repeat(80);
    let _ = writeln!(
        std::io::stderr(),
        "\n{stars}\nSKIPPED: bench_containerd_runc: {why}\n{stars}"
    );
}

fn context(work: &Path, args: &[&str]) -> Context {
    let vmrun = PathBuf::from(env!("CARGO_BIN_EXE_vmrun"));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let workload = prepare(&Source::Busybox, Some(&args), &vmrun, work).expect("the bundle");
    Context::new(
        vmrun,
        workload,
        "/no/kernel".into(),
        "/no/initrd".into(),
        128,
        work.to_path_buf(),
        Duration::from_secs(120),
    )
}

fn caller_phases(s: &RunSample) -> Vec<(&str, f64)> {
    s.phases
        .iter()
        .filter(|p| p.clock == Clock::Caller)
        .map(|p| (p.name.as_str(), p.ms))
        .collect()
}

/// `vmrun-cri` next to the vmrun under test (any profile), unless named.
fn offer_cri_client() {
    if std::env::var_os(CRI_CLIENT_ENV).is_some() {
        return;
    }
    let vmrun = PathBuf::from(env!("CARGO_BIN_EXE_vmrun"));
    let target = vmrun.parent().and_then(Path::parent);
    let found = ["release", "debug"]
        .iter()
        .filter_map(|p| target.map(|t| t.join(p).join("vmrun-cri")))
        .find(|p| p.is_file());
    if let Some(client) = found {
        // The only test of this binary: nothing reads the environment
        // concurrently.
        std::env::set_var(CRI_CLIENT_ENV, client);
    }
}

#[test]
fn ctr_and_cri_with_runc_are_timed_and_leave_nothing() {
    if !nix::unistd::geteuid().is_root() {
        return skipped("not root (containerd needs it)");
    }
    let vmrun = PathBuf::from(env!("CARGO_BIN_EXE_vmrun"));
    if let Err(why) = locate(RuntimeKind::CtrRunc, &vmrun) {
        return skipped(&why);
    }
    offer_cri_client();
    let cri = locate(RuntimeKind::CriRunc, &vmrun);
    if let Err(why) = &cri {
        skipped(&format!("the CRI half: {why}"));
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let work = dir.path().join("w");
    let ctx = context(&work, &["sh", "-c", "echo hi"]);
    let mut kinds = vec![RuntimeKind::CtrRunc];
    if cri.is_ok() {
        kinds.push(RuntimeKind::CriRunc);
    }
    for round in 0..2 {
        for kind in &kinds {
            let s = run_once(*kind, Path::new("/unused"), &ctx);
            assert!(s.ok, "{} round {round}: {s:?}", kind.name());
            assert_eq!(s.exit_code, Some(0), "{s:?}");
            let phases = caller_phases(&s);
            let names: Vec<&str> = phases.iter().map(|(n, _)| *n).collect();
            let want: &[&str] = match kind {
                RuntimeKind::CtrRunc => &["first_output"],
                _ => &["pod_ready", "created", "started", "exited", "pod_removed"],
            };
            assert_eq!(names, want, "{s:?}");
            assert!(
                phases.windows(2).all(|w| w[0].1 <= w[1].1),
                "phases out of order: {s:?}"
            );
            assert!(phases.iter().all(|(_, ms)| *ms <= s.wall_ms), "{s:?}");
        }
    }
    assert_eq!(ctx.daemons.running(), kinds.len());
    ctx.daemons.shutdown();
    assert_eq!(ctx.daemons.running(), 0);
    let left: Vec<PathBuf> = std::fs::read_dir(&work)
        .expect("the work dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("ctd-"))
        })
        .collect();
    assert!(left.is_empty(), "containerd's directories left: {left:?}");
    let needle = work.display().to_string();
    assert_eq!(processes_mentioning(&needle), Vec::<u32>::new());
    assert_eq!(mounts_below(&work), Vec::<PathBuf>::new());
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| d.flatten().map(|e| e.file_name()).collect::<Vec<_>>())
        .unwrap_or_default();
    let ours = format!("vmrb-{}-cri", std::process::id());
    assert!(!netns.iter().any(|n| *n == *ours), "{netns:?}");
    for cgroup in [format!("vmrb-{}", std::process::id()), ours] {
        let root = Path::new("/sys/fs/cgroup");
        let mut found = vec![root.join(&cgroup)];
        if let Ok(controllers) = std::fs::read_dir(root) {
            found.extend(controllers.flatten().map(|c| c.path().join(&cgroup)));
        }
        found.retain(|p| p.is_dir());
        assert!(found.is_empty(), "cgroups left: {found:?}");
    }
    drop(ctx);

    // A workload that fails: its exit code comes back, the run is not ok.
    let work = dir.path().join("fail");
    let ctx = context(&work, &["sh", "-c", "exit 3"]);
    for kind in kinds {
        let s = run_once(kind, Path::new("/unused"), &ctx);
        assert!(!s.ok, "{s:?}");
        assert_eq!(s.exit_code, Some(3), "{}: {s:?}", kind.name());
    }
    drop(ctx);
    assert!(!work.join("ctd-ctr").exists() && !work.join("ctd-cri").exists());
}
