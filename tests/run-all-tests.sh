#!/usr/bin/env bash
# Sets everything up (tests/setup.sh) and runs ALL of vmrun's checks:
#   1. cargo fmt --all --check
#   2. cargo clippy --workspace --all-targets -- -D warnings
#   3. cargo test --workspace   (host tests; guest tests print SKIPPED here
#                                unless this host's KVM runs guests)
#   4. tests/testhost/run-guest-tests.sh   (the guest batch: real microVM
#      boots, directly on hardware KVM, else inside the test host; there a
#      guest test that cannot boot FAILS)
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
stage "guest batch (tests/testhost/run-guest-tests.sh)" \
    "$VMRUN_REPO/tests/testhost/run-guest-tests.sh"

echo
echo "==================== vmrun test summary ===================="
printf '%s\n' "${summary[@]}"
echo "total (including setup): $(($(date +%s) - all_start))s"
if [ "$failed" != 0 ]; then
    echo "RESULT: FAILED"
    exit 1
fi
echo "RESULT: PASSED"
