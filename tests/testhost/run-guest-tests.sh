#!/usr/bin/env bash
# Runs vmrun's guest test batch where KVM guests can run, and exits with
# the batch's status.
#
# 1. builds `vmrun` (release) and the vmrun-tests and vmrun-checker test
#    binaries on this host (the work tree is read-only inside the test host,
#    which has no cargo);
# 2. builds the foreign busybox initramfs the tests boot;
# 3. runs those test binaries with VMRUN_REQUIRE_GUEST=1 (a guest test
#    that cannot boot a guest FAILS instead of skipping) through
#    tests/testhost/run.sh: directly on a host with hardware KVM, else inside
#    a test host (QEMU TCG + emulated AMD SVM, see shared/TESTHOST.md), one
#    per group: the vmrun-tests binaries, then the vmrun-checker binaries,
#    while the client tests (guest_clients) and a few more guest tests run
#    in a second test host
#    (each group retried on its own when its test host dies, see below).
#
# Needs the guest kernel and initramfs built (tests/setup.sh does it).
# Environment: VMRUN_TESTHOST=auto|always|never, VMRUN_TEST_BOOT_TIMEOUT
# (seconds per guest boot), VMRUN_GUEST_BATCH_TIMEOUT (seconds, whole batch).
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$VMRUN_REPO"
target="$(cargo_target_dir)"
cache="$(vmrun_cache_dir)"

log "building vmrun and vmrun-cri (release)"
# vmrun-cri: the CRI client the client tests drive containerd with.
cargo build --release -p vmrun -p vmrun-cri-client
export VMRUN_BIN="${VMRUN_BIN:-$target/release/vmrun}"
[ -x "$VMRUN_BIN" ] || die "vmrun binary $VMRUN_BIN missing after the build"

log "building the guest test binaries"
# vmrun-checker's tests run the OCI-spec checker matrix, the escape classes
# and the invalid specs in microVMs (`vmrun run`; the checker and its
# libraries are copied into each bundle's rootfs). Only their microVM
# halves run here (VMRUN_CHECKER_HALVES=guest): the halves on this host
# (vmrun-isolation directly, runc) ran in `cargo test --workspace`.
artifacts="$(mktemp)"
trap 'rm -f "$artifacts"' EXIT
cargo test -p vmrun-tests -p vmrun-checker --no-run --message-format=json \
    | jq -c 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null)' \
    >"$artifacts"
# The client tests (podman, containerd, CRI: ~21 min of the batch) are a
# group of their own, run in a second test host alongside the others (this
# machine has two cores; each test host keeps one busy). `vmrun bench`'s
# guest test (~5 min), the pod, host-world and terminal tests (~3 min
# each) and the load tests (~6 min) join them, so that the two test hosts
# take about as long (~40 min each).
side='contains("/guest_clients/") or (endswith("/guest_bench.rs") or endswith("/guest_pod.rs") or endswith("/guest_host_world.rs") or endswith("/guest_terminal.rs") or endswith("/guest_load.rs"))'
# The nested test host freezes now and then (about one in 130-200 microVM
# boots, see TESTHOST.md; a freeze reruns the whole group): the batch runs
# 40 create/delete cycles of the load test, not its default 200 (one test
# host, 223 boots in a row, froze in the one full run tried; run
# `VMRUN_LOAD_CYCLES=200` by hand for the full count).
export VMRUN_LOAD_CYCLES="${VMRUN_LOAD_CYCLES:-40}"
mapfile -t test_bins < <(jq -r "select(.target.src_path | (contains(\"/tests/checker/\") or $side) | not) | .executable" "$artifacts")
mapfile -t client_bins < <(jq -r "select(.target.src_path | $side) | .executable" "$artifacts")
mapfile -t checker_bins < <(jq -r 'select(.target.src_path | contains("/tests/checker/")) | .executable' "$artifacts")
[ ${#test_bins[@]} -gt 0 ] || die "cargo built no vmrun-tests test binaries"
[ ${#checker_bins[@]} -gt 0 ] || die "cargo built no vmrun-checker test binaries"
export VMRUN_CHECKER_HALVES=guest
for b in "${test_bins[@]}" "${client_bins[@]}" "${checker_bins[@]}"; do log "  $b"; done

export VMRUN_KERNEL="${VMRUN_KERNEL:-$cache/vmlinux}"
export VMRUN_INITRD="${VMRUN_INITRD:-$cache/initramfs.cpio.gz}"
[ -f "$VMRUN_KERNEL" ] || die "guest kernel $VMRUN_KERNEL is not built: run tests/setup.sh (or kernel-config/build.sh)"
[ -f "$VMRUN_INITRD" ] || die "guest initramfs $VMRUN_INITRD is not built: run tests/setup.sh (or rootfs/build-initramfs.sh)"
# Resolve the stable symlinks now: what the tests boot is what was built.
VMRUN_KERNEL="$(readlink -f "$VMRUN_KERNEL")"
VMRUN_INITRD="$(readlink -f "$VMRUN_INITRD")"

run_id="$(date -u +%Y%m%dT%H%M%SZ)"
results="$target/testhost/guest-tests-$run_id"
mkdir -p "$results"
busybox_script="$VMRUN_REPO/rootfs/build-busybox-initramfs.sh"
[ -x "$busybox_script" ] || die "$busybox_script is missing (owned by the kernel/agent engineer)"
log "building the foreign busybox initramfs"
"$busybox_script" "$results/busybox-initramfs.cpio.gz"
export VMRUN_TEST_BUSYBOX_INITRD="$results/busybox-initramfs.cpio.gz"

export VMRUN_REQUIRE_GUEST=1
# A test host that stalls (run.sh exit 96: no output at all for
# VMRUN_TESTHOST_STALL_SECS, far beyond every test's own boot timeout),
# does not boot (98) or dies without writing the batch's exit status (99,
# e.g. QEMU or the test host's kernel going down under nested TCG) is the
# nested-virtualisation trouble TESTHOST.md describes, not a test result:
# the group is run again in a fresh test host (at most twice), loudly,
# after printing the dead test host's console. A failing test (any other
# status) is final. Such deaths came at random boots (about 3 in 90
# microVM boots before the test host held an idle KVM VM and ran on one
# vCPU, see run.sh; one freeze in ~130 boots since), so the ~60 boots are
# split into two groups with a test host each: a death re-runs only its
# group.
#   run_group NAME RESULTS_DIR BINARY... -> the group's final status
run_group() {
    local name="$1" results="$2" status why attempt=1
    shift 2
    mkdir -p "$results"
    while :; do
        status=0
        "$VMRUN_REPO/tests/testhost/run.sh" --name "$name" --results "$results" \
            --timeout "${VMRUN_GUEST_BATCH_TIMEOUT:-3000}" \
            -- "$VMRUN_REPO/tests/testhost/guest-batch.sh" "$@" || status=$?
        case "$status" in
            96) why="the test host stalled" ;;
            98) why="the test host did not boot" ;;
            99) why="the test host died before the batch finished" ;;
            *) return "$status" ;;
        esac
        [ "$attempt" -lt 3 ] || return "$status"
        if [ -s "$results/testhost-console.log" ]; then
            log "the dead test host's console (last 80 lines of $results/testhost-console.log):"
            tail -n 80 "$results/testhost-console.log" >&2 || true
        fi
        attempt=$((attempt + 1))
        log "RETRYING the $name group in a fresh test host (attempt $attempt): $why (exit $status)"
        results="$results-retry$attempt"
        mkdir -p "$results"
    done
}

start=$(date +%s)
# Two test hosts share this machine's two cores: a guest test that boots
# several microVMs can be silent for over 6 min (run.sh's default stall
# limit), which a freeze is not.
export VMRUN_TESTHOST_STALL_SECS="${VMRUN_TESTHOST_STALL_SECS:-600}"
# The clients group in the background, its output kept apart and printed
# once it is done (two groups' lines interleaved would be unreadable).
clients_status=0
clients_log="$target/testhost/clients-$run_id.log"
clients_pid=
if [ ${#client_bins[@]} -gt 0 ]; then
    log "the clients group runs alongside, in a second test host (output: $clients_log once done)"
    # A CRI pod test prints nothing for up to ~5 min while both test
    # hosts share this machine: the stall watchdog waits longer here.
    VMRUN_TESTHOST_STALL_SECS=$((VMRUN_TESTHOST_STALL_SECS > 900 ? VMRUN_TESTHOST_STALL_SECS : 900)) \
        run_group clients "$target/testhost/clients-$run_id" "${client_bins[@]}" >"$clients_log" 2>&1 &
    clients_pid=$!
    trap 'rm -f "$artifacts"; [ -n "$clients_pid" ] && kill "$clients_pid" 2>/dev/null' EXIT
fi
tests_status=0
run_group guest-tests "$results" "${test_bins[@]}" || tests_status=$?
checker_status=0
run_group checker "$target/testhost/checker-$run_id" "${checker_bins[@]}" || checker_status=$?
if [ -n "$clients_pid" ]; then
    wait "$clients_pid" || clients_status=$?
    clients_pid=
    log "the clients group's output:"
    cat "$clients_log"
fi
log "guest batch: vmrun-tests group exit $tests_status, clients group exit $clients_status, vmrun-checker group exit $checker_status ($(($(date +%s) - start))s)"
[ "$tests_status" = 0 ] || exit "$tests_status"
[ "$clients_status" = 0 ] || exit "$clients_status"
exit "$checker_status"
