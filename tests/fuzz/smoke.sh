#!/usr/bin/env bash
# CI smoke test of the fuzz targets: installs cargo-fuzz if missing, builds
# every target (libFuzzer + AddressSanitizer, optimized but with debug
# assertions and overflow checks, on the stable toolchain with
# RUSTC_BOOTSTRAP=1), then runs each one for SECONDS (default 20) on the
# checked-in corpus, in the sandbox (sandbox.sh), and prints one line per
# target (execs, exec/s, coverage). Fails on any crash, timeout or OOM;
# the input that caused it is kept under WORK/<target>/artifacts/.
#
# Usage: tests/fuzz/smoke.sh [SECONDS]
#   FUZZ_WORK=DIR  where scratch corpora, logs and artifacts go (kept);
#                  default: a fresh /tmp/vmrun-fuzz-smoke.XXXXXX, removed
#                  when every target passed
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-20}"
work="${FUZZ_WORK:-$(mktemp -d /tmp/vmrun-fuzz-smoke.XXXXXX)}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "smoke.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked --version 0.13.2
fi

cd "$here"
echo "smoke.sh: building the fuzz targets"
RUSTC_BOOTSTRAP=1 cargo fuzz build -O -a

failed=()
start=$(date +%s)
echo "smoke.sh: ${seconds}s per target; work dir $work"
for target in $(cargo fuzz list); do
    "$here/run-target.sh" "$target" "$seconds" "$work/$target" || failed+=("$target")
done
echo "smoke.sh: all targets ran in $(($(date +%s) - start))s"
if [ "${#failed[@]}" != 0 ]; then
    echo "smoke.sh: FAILED: ${failed[*]} (inputs under $work/<target>/artifacts/)"
    exit 1
fi
[ -n "${FUZZ_WORK:-}" ] || rm -rf "$work"
echo "smoke.sh: PASSED"
