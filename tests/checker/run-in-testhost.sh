#!/usr/bin/env bash
# Runs the isolation tests (vmrun-isolation unit tests + vmrun-checker's
# matrix/escape/invalid tests) inside the test host: Debian's generic kernel
# booted by virtme-ng under QEMU TCG (see shared/TESTHOST.md), through
# tests/testhost/run.sh, so with its CPU model, its one vCPU and its stall
# watchdog. Unlike this machine (cgroup v1 hybrid) the test host has the
# unified cgroup2 hierarchy, so the cgroup v2 tests run there instead of
# being skipped. The test host is used even where /dev/kvm runs guests
# (VMRUN_TESTHOST=always), for that hierarchy; no nested VM is needed.
#
# Usage: tests/checker/run-in-testhost.sh [RESULTS_DIR]
# Output: RESULTS_DIR/<test-binary>.log and RESULTS_DIR/summary; exit 0 only
# if every test binary passed (a missing summary = failure).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$repo/target}"
export LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu
results="${1:-$(mktemp -d /tmp/vmrun-isolation-testhost.XXXXXX)}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
rm -f "$results/summary" "$results"/*.log

# Build the test binaries here (the work tree is read-only in the test host).
mapfile -t bins < <(cargo test -p vmrun-isolation -p vmrun-checker --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["executable"])
')
[ "${#bins[@]}" -gt 0 ] || { echo "no test binaries built" >&2; exit 1; }

# What runs in the test host; not named inner.sh, which run.sh writes into
# the same results directory.
tests="$results/isolation-tests.sh"
{
    echo '#!/bin/bash'
    printf 'RES=%q\n' "$results"
    cat <<'INNER'
{
  echo "kernel: $(uname -r)"
  echo "/sys/fs/cgroup: $(stat -f -c %T /sys/fs/cgroup)"
  if [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
      mount -t cgroup2 none /sys/fs/cgroup && echo "mounted cgroup2"
  fi
  echo "controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
} >"$RES/env.log" 2>&1
# Bundles on a tmpfs, as a real host's local disk would be (not the overlay).
mkdir -p /run/isotmp && mount -t tmpfs -o size=1g tmpfs /run/isotmp
export TMPDIR=/run/isotmp
fail=0
INNER
    for b in "${bins[@]}"; do
        name="$(basename "$b")"
        # Through tee: run.sh's stall watchdog watches the output grow.
        printf 'timeout 1500 %q --test-threads 1 --nocapture 2>&1 | tee "$RES/%s.log"; rc=${PIPESTATUS[0]}\n' "$b" "$name"
        printf 'echo "%s rc=$rc" >>"$RES/summary.tmp"; [ $rc = 0 ] || fail=1\n' "$name"
    done
    echo 'echo "overall=$fail" >>"$RES/summary.tmp"; mv "$RES/summary.tmp" "$RES/summary"; sync'
    echo 'exit "$fail"'
} >"$tests"
chmod +x "$tests"

VMRUN_TESTHOST=always "$repo/tests/testhost/run.sh" --name isolation --results "$results" \
    --timeout 5400 -- "$tests" || true

cat "$results/env.log" 2>/dev/null || true
if [ ! -f "$results/summary" ]; then
    echo "FAILED: no summary from the test host (see $results/testhost-console.log)" >&2
    exit 1
fi
cat "$results/summary"
# The test binaries' logs (not run.sh's own: output.log holds them too).
for log in "$results"/*.log; do
    case "$(basename "$log")" in output.log | testhost-console.log | kvm.log | vmrun-check.log | env.log) continue ;; esac
    grep -h -E "^test result|SKIPPED|^test .*FAILED" "$log" || true
done
grep -q '^overall=0$' "$results/summary"
