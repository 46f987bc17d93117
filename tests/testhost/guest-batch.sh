#!/usr/bin/env bash
# Runs precompiled test binaries one after another (each with
# --test-threads=1: every guest boot costs seconds in the test host) and
# exits non-zero if any failed. Run by run-guest-tests.sh, where guests can
# run (directly or inside the test host).
#
#   tests/testhost/guest-batch.sh TEST_BINARY[::TEST | ::-TEST]...
# BINARY::TEST runs only that test of the binary, BINARY::-TEST all but it
# (exact names).
set -uo pipefail

[ $# -gt 0 ] || { echo "usage: $0 TEST_BINARY[::TEST | ::-TEST]..." >&2; exit 2; }
echo "guest batch on $(uname -n) $(uname -r), $(nproc) CPUs; /dev/kvm: $(ls -l /dev/kvm 2>&1)"
echo "vmrun: ${VMRUN_BIN:-?}  kernel: ${VMRUN_KERNEL:-default}  initrd: ${VMRUN_INITRD:-default}"
failed=()
for arg in "$@"; do
    bin="${arg%%::*}"
    filter=()
    case "$arg" in
        *::-*) filter=(--exact --skip "${arg#*::-}") ;;
        *::*) filter=(--exact "${arg#*::}") ;;
    esac
    echo
    echo "=== $(basename "$bin") ${filter[*]} ($(date -u +%T))"
    start=$(date +%s)
    "$bin" --test-threads=1 "${filter[@]}"
    status=$?
    echo "=== $(basename "$bin"): exit $status after $(($(date +%s) - start))s"
    [ "$status" = 0 ] || failed+=("$(basename "$bin")")
done
echo
if [ ${#failed[@]} -gt 0 ]; then
    echo "GUEST BATCH FAILED: ${failed[*]}"
    exit 1
fi
echo "GUEST BATCH PASSED ($# test binaries)"
