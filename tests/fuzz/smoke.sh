#!/usr/bin/env bash
# CI smoke test of the fuzz targets: builds every target (build.sh; by
# default without a sanitizer and without cargo-fuzz, FUZZ_SANITIZER=address
# for ASan), then runs each one for SECONDS (default 20) on the checked-in
# corpus, in the sandbox (sandbox.sh), and prints one line per target
# (execs, exec/s, coverage). Fails on any crash, timeout or OOM; the input
# that caused it is kept under WORK/<target>/artifacts/.
#
# Usage: tests/fuzz/smoke.sh [SECONDS]
#   FUZZ_WORK=DIR  where scratch corpora, logs and artifacts go (kept);
#                  default: a fresh /tmp/vmrun-fuzz-smoke.XXXXXX, removed
#                  when every target passed
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-20}"
work="${FUZZ_WORK:-$(mktemp -d /tmp/vmrun-fuzz-smoke.XXXXXX)}"

start=$(date +%s)
echo "smoke.sh: building the fuzz targets (sanitizer: ${FUZZ_SANITIZER:-none})"
"$here/build.sh"
echo "smoke.sh: built in $(($(date +%s) - start))s"

failed=()
targets=()
for source in "$here"/fuzz_targets/*.rs; do
    targets+=("$(basename "$source" .rs)")
done
[ "${#targets[@]}" -gt 0 ] || { echo "smoke.sh: no fuzz targets found" >&2; exit 1; }
start=$(date +%s)
echo "smoke.sh: ${#targets[@]} targets, ${seconds}s each; work dir $work"
for target in "${targets[@]}"; do
    "$here/run-target.sh" "$target" "$seconds" "$work/$target" || failed+=("$target")
done
echo "smoke.sh: all targets ran in $(($(date +%s) - start))s"
if [ "${#failed[@]}" != 0 ]; then
    echo "smoke.sh: FAILED: ${failed[*]} (inputs under $work/<target>/artifacts/)"
    exit 1
fi
[ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"
echo "smoke.sh: PASSED"
