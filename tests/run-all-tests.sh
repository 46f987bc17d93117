#!/usr/bin/env bash
# Sets everything up (tests/setup.sh) and runs ALL of vmrun's checks:
#   1. cargo fmt --all --check
#   2. cargo clippy --workspace --all-targets -- -D warnings
#   3. cargo test --workspace   (host tests; guest tests print SKIPPED here
#                                unless this host's KVM runs guests)
#   4. tests/testhost/run-guest-tests.sh   (the guest batch: real microVM
#      boots, directly on hardware KVM, else inside the test host; there a
#      guest test that cannot boot FAILS)
#   5. tests/fuzz/smoke.sh   (every fuzz target briefly on its checked-in
#      corpus; runs beside the guest batch at the lowest CPU priority, so
#      it takes the cycles the test hosts leave, mostly once the first of
#      them is done)
# Every stage runs even if an earlier one failed; the exit status is
# non-zero if any failed, and a summary lists them.
#
# Usage: tests/run-all-tests.sh
set -uo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO" || exit 1

all_start=$(date +%s)
"$VMRUN_REPO/tests/setup.sh" || die "tests/setup.sh failed"

summary=()
failed=0
stage() {
    local name="$1"; shift
    log "stage: $name"
    local start status
    start=$(date +%s)
    "$@"
    status=$?
    local line
    line="$(printf '%-8s %-60s %5ss' "$([ "$status" = 0 ] && echo PASS || echo "FAIL($status)")" "$name" "$(($(date +%s) - start))")"
    summary+=("$line")
    [ "$status" = 0 ] || failed=1
    log "$line"
}

stage "cargo fmt --all --check" cargo fmt --all --check
stage "cargo clippy --workspace --all-targets -- -D warnings" \
    cargo clippy --workspace --all-targets -- -D warnings
stage "cargo test --workspace" cargo test --workspace --no-fail-fast
fuzz_log="$(cargo_target_dir)/fuzz-smoke.log"
mkdir -p "$(dirname "$fuzz_log")"
fuzz_start=$(date +%s)
nice -n 19 "$VMRUN_REPO/tests/fuzz/smoke.sh" "${VMRUN_FUZZ_SMOKE_SECS:-10}" >"$fuzz_log" 2>&1 &
fuzz_pid=$!
log "fuzz smoke started beside the guest batch (pid $fuzz_pid, log $fuzz_log)"
stage "guest batch (tests/testhost/run-guest-tests.sh)" \
    "$VMRUN_REPO/tests/testhost/run-guest-tests.sh"
log "stage: fuzz smoke (tests/fuzz/smoke.sh): waiting for it"
fuzz_status=0
wait "$fuzz_pid" || fuzz_status=$?
grep -v '^ *\(Compiling\|Downloaded\|Downloading\)' "$fuzz_log" | tail -n 20 >&2
line="$(printf '%-8s %-60s %5ss' "$([ "$fuzz_status" = 0 ] && echo PASS || echo "FAIL($fuzz_status)")" "fuzz smoke (tests/fuzz/smoke.sh, beside the batch)" "$(($(date +%s) - fuzz_start))")"
summary+=("$line")
[ "$fuzz_status" = 0 ] || failed=1
log "$line"

echo
echo "==================== vmrun test summary ===================="
printf '%s\n' "${summary[@]}"
echo "total (including setup): $(($(date +%s) - all_start))s"
if [ "$failed" != 0 ]; then
    echo "RESULT: FAILED"
    exit 1
fi
echo "RESULT: PASSED"
