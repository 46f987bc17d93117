//! Other VMMs booting the same guest kernel and initramfs on the same KVM,
//! to the agent's ready line and out (its `vmrun_action=ready` mode: it
//! prints the line, syncs and reboots; each VMM exits on that reboot).

use std::path::Path;
use std::process::Command;

use super::{caller_marks, not_run, sample, Context, RuntimeKind, READY_CMDLINE, READY_MARKER};
use crate::bench::process::{run_timed, Capture, Timed};
use crate::bench::report::RunSample;

/// A VMM run is good when it exited 0 after the ready line.
fn booted(t: &Timed, what: &str) -> RunSample {
    let ok = t.success() && t.marker.is_some();
    let mut s = sample(t, what, ok, caller_marks(t));
    if t.success() && t.marker.is_none() {
        s.error = Some(format!("{what} exited 0 without the agent's ready line"));
    }
    s
}

/// QEMU's microvm machine (no i8042: `reboot=t`, a triple fault, which
/// `-no-reboot` turns into QEMU's exit).
pub fn qemu_microvm(bin: &Path, ctx: &Context) -> RunSample {
    let mut command = Command::new(bin);
    command
        .args(["-M", "microvm,x-option-roms=off,isa-serial=on,rtc=off"])
        .args(["-enable-kvm", "-cpu", "host", "-smp", "1"])
        .arg("-m")
        .arg(ctx.memory_mib.to_string())
        .arg("-kernel")
        .arg(&ctx.kernel)
        .arg("-initrd")
        .arg(&ctx.initrd)
        .arg("-append")
        .arg(format!("{READY_CMDLINE} reboot=t"))
        .args([
            "-nodefaults",
            "-no-user-config",
            "-nographic",
            "-serial",
            "stdio",
            "-no-reboot",
        ]);
    match run_timed(&mut command, &Capture::Pipes, Some(READY_MARKER), ctx.limit) {
        Ok(t) => booted(&t, "qemu-system-x86_64"),
        Err(e) => not_run(format!("cannot start {}: {e}", bin.display())),
    }
}

/// Firecracker's configuration for the same guest.
pub fn firecracker_config(ctx: &Context) -> serde_json::Value {
    serde_json::json!({
        "boot-source": {
            "kernel_image_path": ctx.kernel,
            "initrd_path": ctx.initrd,
            "boot_args": format!("{READY_CMDLINE} reboot=k"),
        },
        "drives": [],
        "machine-config": { "vcpu_count": 1, "mem_size_mib": ctx.memory_mib, "smt": false },
    })
}

/// `firecracker --no-api --config-file F` (exits on the guest's i8042 reset).
pub fn firecracker(bin: &Path, ctx: &Context) -> RunSample {
    let config = ctx.scratch(&format!("{}.json", ctx.next_id(RuntimeKind::Firecracker)));
    if let Err(e) = std::fs::write(&config, firecracker_config(ctx).to_string()) {
        return not_run(format!("cannot write {}: {e}", config.display()));
    }
    let mut command = Command::new(bin);
    command.arg("--no-api").arg("--config-file").arg(&config);
    let result = run_timed(&mut command, &Capture::Pipes, Some(READY_MARKER), ctx.limit);
    let _ = std::fs::remove_file(&config);
    match result {
        Ok(t) => booted(&t, "firecracker"),
        Err(e) => not_run(format!("cannot start {}: {e}", bin.display())),
    }
}
