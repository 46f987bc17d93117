//! The OCI runtimes on the host: `runc`/`crun run` of the same bundle, and
//! `podman run --rootfs` of its root filesystem (a private podman: its own
//! storage, run root and configuration under the bench's work directory,
//! `vfs`, cgroupfs, no network, this host's nofile/nproc limits) with runc
//! as its runtime (when installed), or with vmrun (the `vmrun` entry of
//! its containers.conf: conmon drives vmrun's verbs as for any user of
//! podman).

use std::path::Path;
use std::process::Command;

use super::{caller_marks, not_run, sample, Context, RuntimeKind};
use crate::bench::process::{run_timed, Capture};
use crate::bench::report::RunSample;

/// `RUNTIME --root R run --bundle B ID` in the foreground.
pub fn run_foreground(kind: RuntimeKind, bin: &Path, ctx: &Context) -> RunSample {
    let id = ctx.next_id(kind);
    let mut command = Command::new(bin);
    command
        .arg("--root")
        .arg(ctx.state_root(kind.name()))
        .arg("run")
        .arg("--bundle")
        .arg(&ctx.workload.bundle)
        .arg(&id);
    match run_timed(&mut command, &Capture::Pipes, None, ctx.limit) {
        Ok(t) => {
            let ok = t.success();
            if !ok {
                // A runtime that failed half-way may leave the container.
                let mut delete = Command::new(bin);
                delete
                    .arg("--root")
                    .arg(ctx.state_root(kind.name()))
                    .args(["delete", "--force", &id]);
                let _ = run_timed(&mut delete, &Capture::Pipes, None, ctx.limit);
            }
            sample(&t, &format!("{} run", kind.name()), ok, caller_marks(&t))
        }
        Err(e) => not_run(format!("cannot start {}: {e}", bin.display())),
    }
}

/// The runtime podman is told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodmanRuntime {
    /// runc (when installed; else podman's default).
    Runc,
    /// This vmrun, through the `vmrun` runtime entry.
    Vmrun,
}

/// Writes the private podman's configuration; returns its directory.
fn podman_home(ctx: &Context) -> std::io::Result<std::path::PathBuf> {
    let home = ctx.workdir.join("podman");
    for sub in ["root", "runroot", "tmp"] {
        std::fs::create_dir_all(home.join(sub))?;
    }
    let q = |sub: &str| format!("{:?}", home.join(sub).display().to_string());
    std::fs::write(
        home.join("containers.conf"),
        format!(
            "[containers]\nlog_driver = \"k8s-file\"\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=1024:1024\"]\n\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nevents_logfile_path = {}\ntmp_dir = {}\nruntime_supports_json = [\"crun\", \"runc\", \"kata\", \"runsc\", \"krun\", \"vmrun\"]\n\n[engine.runtimes]\nvmrun = [{:?}]\n",
            q("events.log"),
            q("tmp"),
            ctx.vmrun.display().to_string()
        ),
    )?;
    std::fs::write(
        home.join("storage.conf"),
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = {}\nrunroot = {}\n",
            q("root"),
            q("runroot")
        ),
    )?;
    std::fs::write(
        home.join("registries.conf"),
        "unqualified-search-registries = []\n",
    )?;
    Ok(home)
}

/// `podman run --rm --network none --rootfs ROOTFS ARGS...` with `runtime`.
pub fn podman(bin: &Path, ctx: &Context, runtime: PodmanRuntime) -> RunSample {
    let home = match podman_home(ctx) {
        Ok(h) => h,
        Err(e) => return not_run(format!("cannot write podman's configuration: {e}")),
    };
    let d = |sub: &str| home.join(sub);
    let mut command = Command::new(bin);
    command
        .env("CONTAINERS_CONF", d("containers.conf"))
        .env("CONTAINERS_STORAGE_CONF", d("storage.conf"))
        .env("CONTAINERS_REGISTRIES_CONF", d("registries.conf"))
        .env("TMPDIR", d("tmp"))
        .arg("--root")
        .arg(d("root"))
        .arg("--runroot")
        .arg(d("runroot"))
        .args([
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
        ])
        .arg("--tmpdir")
        .arg(d("tmp"));
    let kind = match runtime {
        PodmanRuntime::Runc => {
            if let Some(runc) = &ctx.runc {
                command.arg("--runtime").arg(runc);
            }
            RuntimeKind::Podman
        }
        PodmanRuntime::Vmrun => {
            // conmon passes podman's environment on to the runtime.
            command
                .env(crate::check::KERNEL_ENV, &ctx.kernel)
                .env(crate::check::INITRD_ENV, &ctx.initrd)
                .args(["--runtime", "vmrun"]);
            RuntimeKind::PodmanVmrun
        }
    };
    command
        .args([
            "run",
            "--rm",
            "--network",
            "none",
            "--name",
            &ctx.next_id(kind),
        ])
        .arg("--rootfs")
        .arg(&ctx.workload.rootfs)
        .args(&ctx.workload.args);
    match run_timed(&mut command, &Capture::Pipes, None, ctx.limit) {
        Ok(t) => sample(&t, kind.name(), t.success(), caller_marks(&t)),
        Err(e) => not_run(format!("cannot start {}: {e}", bin.display())),
    }
}
