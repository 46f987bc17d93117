#!/usr/bin/env bash
# Measures `vmrun boot` of our kernel + agent N times (default 10) where
# guests can run (directly on hardware KVM, else inside the test host, where
# everything is TCG-emulated) and prints the median of each phase (ms since
# process start) as a Markdown table (the README's Numbers come from
# tests/measure-bench.sh, which compares against other runtimes).
#
# Needs tests/setup.sh to have run. Usage: tests/measure-boot.sh [N] [vmrun boot flags...]
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO"

runs="${1:-10}"
shift || true
case "$runs" in '' | *[!0-9]*) die "N must be a number (got '$runs')" ;; esac
export VMRUN_BIN="${VMRUN_BIN:-$(cargo_target_dir)/release/vmrun}"
[ -x "$VMRUN_BIN" ] || die "$VMRUN_BIN missing: run tests/setup.sh (or cargo build --release -p vmrun)"
command -v jq >/dev/null || die "jq missing: run tests/setup.sh"

results="$(cargo_target_dir)/testhost/measure-boot-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"
# The loop runs where guests run; each boot writes its JSON into $results.
{
    echo '#!/bin/bash'
    printf 'RES=%q\nBIN=%q\n' "$results" "$VMRUN_BIN"
    printf 'EXTRA=('; [ $# -gt 0 ] && printf '%q ' "$@"; echo ')'
    echo "for i in \$(seq 1 $runs); do"
    echo '    "$BIN" boot --timings-json "$RES/boot-$i.json" "${EXTRA[@]}" >"$RES/console-$i.log" 2>&1 \'
    echo '        || { echo "boot $i failed:"; tail -n 20 "$RES/console-$i.log"; exit 1; }'
    echo '    grep -h "vmrun-agent: ready" "$RES/console-$i.log"'
    echo 'done'
} >"$results/loop.sh"
chmod +x "$results/loop.sh"
"$VMRUN_REPO/tests/testhost/run.sh" --name measure-boot-run --results "$results" --timeout 1800 -- "$results/loop.sh"

where="directly on this host's KVM"
[ -f "$results/started" ] && where="inside the test host (QEMU TCG + emulated AMD SVM: software-emulated, compare ratios only)"
echo
echo "vmrun boot, $runs runs, $where; median ms since process start:"
echo
echo "| phase | median ms | min ms | max ms |"
echo "|---|---:|---:|---:|"
jq -s -r '
  [.[].phases[]] | group_by(.name) as $g
  | ($g | map({name: .[0].name, ms: (map(.ms) | sort)})) as $p
  | ["process_start","vm_created","kernel_loaded","first_kvm_run","init_reached","agent_ready","container_started","exit"][] as $n
  | ($p[] | select(.name == $n)) as $x
  | ($x.ms | length) as $len
  | "| \($n) | \(($x.ms[(($len - 1) / 2 | floor)] + $x.ms[($len / 2 | floor)]) / 2 | . * 10 | round / 10) | \($x.ms[0] | . * 10 | round / 10) | \($x.ms[-1] | . * 10 | round / 10) |"
' "$results"/boot-*.json
echo
echo "(raw: $results/boot-*.json; host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
