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
#    per group, two test hosts at a time: the vmrun-tests binaries, then the
#    load test's create/delete cycles; alongside, the client tests
#    (guest_clients) and a few more guest tests, then the vmrun-checker
#    binaries (each group retried on its own when its test host dies, see
#    below).
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
# vmrun alone, as tests/setup.sh builds it: built together with another
# package, cargo unifies their dependencies' features, and the changed
# symbol hashes no longer match vmm/hot-text.order (tests/hot_text.rs).
cargo build --release -p vmrun
# vmrun-cri: the CRI client the client tests drive containerd with.
cargo build --release -p vmrun-cri-client
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
# Two test hosts share this machine's two cores, each running two groups
# one after the other (each group in a fresh test host, retried on its
# own, see run_group), so that both take about as long (~30 min):
#   first:  the vmrun-tests binaries, then the load test's 200
#           create/delete cycles in a row (VMRUN_LOAD_CYCLES, ~5 s each);
#   second: the client tests (podman, containerd, CRI: ~10 min) with
#           `vmrun bench`'s guest test, the pod, host-world, network
#           transfer and terminal tests and the rest of the load test
#           (20 containers at once), then the vmrun-checker binaries.
# The cycles are a group of their own, so that a stalled test host reruns
# only them. The test hosts boot with a periodic timer tick (run.sh,
# VMRUN_TESTHOST_APPEND): with one-shot timer events they froze now and
# then (a lost timer wake-up of the idle vCPU under TCG, stall-report.txt),
# at a rate that made ~220 microVM boots in one test host fail three
# attempts in a row.
side='contains("/guest_clients/") or (endswith("/guest_bench.rs") or endswith("/guest_pod.rs") or endswith("/guest_host_world.rs") or endswith("/guest_net_transfer.rs") or endswith("/guest_terminal.rs") or endswith("/guest_load.rs"))'
cycles_test=create_delete_cycles_leave_no_growth
export VMRUN_LOAD_CYCLES="${VMRUN_LOAD_CYCLES:-200}"
mapfile -t test_bins < <(jq -r "select(.target.src_path | (contains(\"/tests/checker/\") or $side) | not) | .executable" "$artifacts")
mapfile -t client_bins < <(jq -r "select(.target.src_path | $side) | .executable" "$artifacts")
load_bin="$(jq -r 'select(.target.src_path | endswith("/guest_load.rs")) | .executable' "$artifacts")"
[ -n "$load_bin" ] || die "cargo built no guest_load test binary"
for i in "${!client_bins[@]}"; do
    [ "${client_bins[$i]}" = "$load_bin" ] && client_bins[i]="$load_bin::-$cycles_test"
done
mapfile -t checker_bins < <(jq -r 'select(.target.src_path | contains("/tests/checker/")) | .executable' "$artifacts")
[ ${#test_bins[@]} -gt 0 ] || die "cargo built no vmrun-tests test binaries"
[ ${#checker_bins[@]} -gt 0 ] || die "cargo built no vmrun-checker test binaries"
export VMRUN_CHECKER_HALVES=guest
for b in "${test_bins[@]}" "${client_bins[@]}" "${checker_bins[@]}"; do log "  $b"; done

export VMRUN_KERNEL="${VMRUN_KERNEL:-$cache/vmlinux}"
export VMRUN_INITRD="${VMRUN_INITRD:-$cache/initramfs.cpio}"
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
# The second test host's groups in the background, their output kept apart
# and printed once done (two test hosts' lines interleaved would be
# unreadable).
clients_status=0
checker_status=0
side_log="$target/testhost/clients-$run_id.log"
side_status="$target/testhost/clients-$run_id.status"
log "the clients and vmrun-checker groups run alongside, in a second test host (output: $side_log once done)"
(
    c=0 k=0
    # A CRI pod test prints nothing for up to ~5 min while both test
    # hosts share this machine: the stall watchdog waits longer here.
    VMRUN_TESTHOST_STALL_SECS=$((VMRUN_TESTHOST_STALL_SECS > 900 ? VMRUN_TESTHOST_STALL_SECS : 900)) \
        run_group clients "$target/testhost/clients-$run_id" "${client_bins[@]}" || c=$?
    run_group checker "$target/testhost/checker-$run_id" "${checker_bins[@]}" || k=$?
    echo "$c $k" >"$side_status"
) >"$side_log" 2>&1 &
side_pid=$!
trap 'rm -f "$artifacts"; [ -n "$side_pid" ] && kill "$side_pid" 2>/dev/null' EXIT
tests_status=0
run_group guest-tests "$results" "${test_bins[@]}" || tests_status=$?
load_status=0
run_group load-cycles "$target/testhost/load-cycles-$run_id" "$load_bin::$cycles_test" || load_status=$?
wait "$side_pid"
side_pid=
log "the clients and vmrun-checker groups' output:"
cat "$side_log"
read -r clients_status checker_status <"$side_status" || { clients_status=1; checker_status=1; }
log "guest batch: vmrun-tests group exit $tests_status, load-cycles group exit $load_status, clients group exit $clients_status, vmrun-checker group exit $checker_status ($(($(date +%s) - start))s)"
for st in "$tests_status" "$load_status" "$clients_status" "$checker_status"; do
    [ "$st" = 0 ] || exit "$st"
done
exit 0
