//! Host tests of `vmrun_action=serve`: the real serve loop over a unix
//! socketpair, containers run through vmrun-isolation from a busybox bundle
//! (rootfs/build-busybox-bundle.sh), stdio over unix sockets standing in
//! for the host's vsock ports.
//!
//! Own `main` (harness = false): the agent's SIGCHLD reaper must start
//! before any other thread exists, exactly as in PID 1. Needs root and
//! Debian's busybox-static; otherwise it says SKIPPED loudly.
//!
//! - [`basics`]: running containers to their end (protocol v1-v3);
//! - [`lifecycle`]: create/start/state, pause/resume, stats, update, ps,
//!   kill --all (protocol v4);
//! - [`exec`]: processes exec'd into running containers;
//! - [`shares`]: shares, a rootfs within one, bind mounts from them, and
//!   [`network`]: NICs moved and configured (protocol v5).

mod basics;
mod exec;
mod fixture;
mod lifecycle;
mod network;
mod shares;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use vmrun_agent::init::reaper::Reaper;

use fixture::World;

type Case = (&'static str, fn(&World));

const CASES: &[Case] = &[
    // protocol v1-v3
    (
        "echo_reaches_stdout_and_stderr_stays_separate",
        basics::echo_reaches_stdout_and_stderr_stays_separate,
    ),
    (
        "ignored_lsm_fields_come_back_as_warnings",
        basics::ignored_lsm_fields_come_back_as_warnings,
    ),
    (
        "container_starts_with_default_signals_and_leaves_no_state",
        basics::container_starts_with_default_signals_and_leaves_no_state,
    ),
    ("exit_codes_come_back", basics::exit_codes_come_back),
    (
        "a_container_ending_the_vm_exits_without_teardown",
        basics::a_container_ending_the_vm_exits_without_teardown,
    ),
    ("killed_by_a_signal", basics::killed_by_a_signal),
    (
        "stdin_bytes_and_eof_reach_the_process",
        basics::stdin_bytes_and_eof_reach_the_process,
    ),
    (
        "signal_requests_reach_the_process_while_wait_is_pending",
        basics::signal_requests_reach_the_process_while_wait_is_pending,
    ),
    (
        "bad_requests_get_errors_naming_the_field",
        basics::bad_requests_get_errors_naming_the_field,
    ),
    (
        "malformed_frames_get_errors_or_close_the_connection",
        basics::malformed_frames_get_errors_or_close_the_connection,
    ),
    (
        "version_mismatch_is_refused",
        basics::version_mismatch_is_refused,
    ),
    (
        "lost_connection_kills_the_container",
        basics::lost_connection_kills_the_container,
    ),
    (
        "shutdown_kills_and_answers",
        basics::shutdown_kills_and_answers,
    ),
    (
        "terminal_gets_a_pty_with_its_size_input_and_resizes",
        basics::terminal_gets_a_pty_with_its_size_input_and_resizes,
    ),
    // protocol v4: the runc lifecycle
    (
        "created_container_has_its_init_and_state",
        lifecycle::created_container_has_its_init_and_state,
    ),
    (
        "the_program_is_found_at_create",
        lifecycle::the_program_is_found_at_create,
    ),
    (
        "pause_resume_stats_update_processes_and_kill_all",
        lifecycle::pause_resume_stats_update_processes_and_kill_all,
    ),
    (
        "lifecycle_requests_in_the_wrong_state_are_refused",
        lifecycle::lifecycle_requests_in_the_wrong_state_are_refused,
    ),
    (
        "exec_runs_in_the_container_with_its_own_stdio_and_status",
        exec::exec_runs_in_the_container_with_its_own_stdio_and_status,
    ),
    (
        "exec_into_a_created_container_leaves_it_created",
        exec::exec_into_a_created_container_leaves_it_created,
    ),
    (
        "exec_with_a_terminal_gets_a_pty_and_resizes",
        exec::exec_with_a_terminal_gets_a_pty_and_resizes,
    ),
    (
        "exec_gets_the_containers_seccomp_filter_and_capabilities",
        exec::exec_gets_the_containers_seccomp_filter_and_capabilities,
    ),
    (
        "exec_errors_name_the_field",
        exec::exec_errors_name_the_field,
    ),
    (
        "a_lost_connection_kills_exec_processes_too",
        exec::a_lost_connection_kills_exec_processes_too,
    ),
    // protocol v5: shares and network
    (
        "rootfs_and_bind_mounts_come_from_a_share",
        shares::rootfs_and_bind_mounts_come_from_a_share,
    ),
    (
        "share_paths_and_tags_are_checked_naming_the_field",
        shares::share_paths_and_tags_are_checked_naming_the_field,
    ),
    (
        "nics_move_into_the_container_and_are_configured",
        network::nics_move_into_the_container_and_are_configured,
    ),
    (
        "a_fresh_network_namespace_has_loopback_up",
        network::a_fresh_network_namespace_has_loopback_up,
    ),
    (
        "nics_are_configured_in_place_without_a_network_namespace",
        network::nics_are_configured_in_place_without_a_network_namespace,
    ),
    (
        "the_guest_namespace_goes_to_the_first_fresh_one",
        network::the_guest_namespace_goes_to_the_first_fresh_one,
    ),
    (
        "the_guest_namespace_without_nics_gets_loopback_up",
        network::the_guest_namespace_without_nics_gets_loopback_up,
    ),
    (
        "nics_configured_in_place_can_swap_names",
        network::nics_configured_in_place_can_swap_names,
    ),
    (
        "network_errors_name_the_field_and_leave_nothing",
        network::network_errors_name_the_field_and_leave_nothing,
    ),
];

fn skip_reason() -> Option<&'static str> {
    if !nix::unistd::geteuid().is_root() {
        return Some("containers need root");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox (Debian busybox-static) is missing");
    }
    None
}

fn build_bundle(scratch: &Path) -> (PathBuf, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rootfs/build-busybox-bundle.sh");
    let bundle = scratch.join("bundle");
    let status = Command::new(script)
        .arg("--no-install")
        .arg(&bundle)
        .arg("true")
        .status()
        .expect("running build-busybox-bundle.sh");
    assert!(status.success(), "build-busybox-bundle.sh failed");
    let config = std::fs::read(bundle.join("config.json")).expect("config.json");
    (
        bundle.join("rootfs"),
        serde_json::from_slice(&config).expect("config.json is JSON"),
    )
}

fn main() {
    let filter: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if let Some(reason) = skip_reason() {
        eprintln!("SKIPPED: every serve test because {reason}");
        return;
    }
    let scratch = tempfile::Builder::new()
        .prefix("vmrun-agent-serve-")
        .tempdir()
        .expect("scratch dir");
    // Before the reaper, which would reap the script's process under
    // Command's feet (PID 1 code uses Reaper::watch instead).
    let (rootfs, config) = build_bundle(scratch.path());
    // Before any thread: blocks SIGCHLD process-wide, as PID 1 does.
    let reaper = Reaper::start().expect("starting the reaper");
    let world = World {
        reaper,
        scratch,
        rootfs,
        config,
    };
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, case) in CASES {
        if filter.as_deref().is_some_and(|f| !name.contains(f)) {
            continue;
        }
        ran += 1;
        println!("test {name} ...");
        match catch_unwind(AssertUnwindSafe(|| case(&world))) {
            Ok(()) => println!("test {name} ... ok"),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(*name);
            }
        }
    }
    println!(
        "\nserve tests: {} passed, {} failed",
        ran - failed.len(),
        failed.len()
    );
    if !failed.is_empty() {
        println!("failed: {}", failed.join(", "));
        // exit() runs no destructors: remove the scratch directory first.
        drop(world);
        std::process::exit(1);
    }
}
