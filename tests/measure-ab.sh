#!/usr/bin/env bash
# A/B of two builds in one place: alternating `vmrun run`s of a busybox
# `true`, variant A and variant B in turn (A B, then B A, ...), where guests
# run (directly on hardware KVM, else in ONE test host, where every run
# pays the same emulation). Prints each variant's phase medians and the
# paired differences B - A per round, with how many rounds B was faster
# in. The README's before/after tables come from here.
#
# A variant is a kernel, an initramfs and a vmrun binary: compare two
# kernels with --kernel-a/--kernel-b, two agents with --initrd-a/--initrd-b,
# two VMMs with --vmrun-a/--vmrun-b (B's defaults to A's file).
#
# Needs tests/setup.sh to have run.
# Usage: tests/measure-ab.sh [-n ROUNDS] [--boot] [--bundle DIR]
#          [--kernel-a FILE] [--kernel-b FILE] [--initrd-a FILE] [--initrd-b FILE]
#          [--vmrun-a BIN] [--vmrun-b BIN]
#   -n ROUNDS   pairs after one warm-up run of each (default 10)
#   --boot      also a `vmrun boot` of A's kernel and initramfs each round,
#               as the reference a run is measured against (and one of B's
#               when the kernels or the initramfses differ)
#   --bundle    the bundle to run (default: rootfs/build-busybox-bundle.sh's,
#               running `true`)
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO"

rounds=10 boot=0 bundle=""
kernel_a="${VMRUN_KERNEL:-$(vmrun_cache_dir)/vmlinux}" kernel_b=""
initrd_a="$(vmrun_cache_dir)/initramfs.cpio" initrd_b=""
vmrun_a="$(cargo_target_dir)/release/vmrun" vmrun_b=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) rounds="$2"; shift 2 ;;
        --boot) boot=1; shift ;;
        --bundle) bundle="$2"; shift 2 ;;
        --kernel-a) kernel_a="$2"; shift 2 ;;
        --kernel-b) kernel_b="$2"; shift 2 ;;
        --initrd-a) initrd_a="$2"; shift 2 ;;
        --initrd-b) initrd_b="$2"; shift 2 ;;
        --vmrun-a) vmrun_a="$2"; shift 2 ;;
        --vmrun-b) vmrun_b="$2"; shift 2 ;;
        *) die "unknown argument: $1 (see the usage at the top of $0)" ;;
    esac
done
kernel_b="${kernel_b:-$kernel_a}" initrd_b="${initrd_b:-$initrd_a}" vmrun_b="${vmrun_b:-$vmrun_a}"
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive number of rounds (is '$rounds')"
for f in "$kernel_a" "$kernel_b" "$initrd_a" "$initrd_b" "$vmrun_a" "$vmrun_b"; do
    [ -f "$f" ] || die "$f missing: run tests/setup.sh, or name an existing file"
done
boot_b=0
[ "$boot" = 1 ] && { ! [ "$kernel_a" -ef "$kernel_b" ] || ! [ "$initrd_a" -ef "$initrd_b" ]; } && boot_b=1
if [ "$kernel_a" -ef "$kernel_b" ] && [ "$initrd_a" -ef "$initrd_b" ] && [ "$vmrun_a" -ef "$vmrun_b" ]; then
    log "A and B are the same files: this measures the noise"
fi

# run.sh asks this vmrun whether guests run here.
export VMRUN_BIN="${VMRUN_BIN:-$vmrun_a}"
results="$(measure_results measure-ab)"
bundle="$(measure_bundle "$results" "$bundle")"

# What runs where the guests are; not named inner.sh, which run.sh writes
# into the same results directory.
{
    echo '#!/bin/bash'
    echo 'set -u'
    printf 'RES=%q\nROUNDS=%q\nBOOT=%q\nBOOT_B=%q\n' "$results" "$rounds" "$boot" "$boot_b"
    printf 'SRC=(%q %q %q %q %q %q %q)\n' "$(readlink -f "$kernel_a")" "$(readlink -f "$initrd_a")" \
        "$(readlink -f "$initrd_b")" "$(readlink -f "$vmrun_a")" "$(readlink -f "$vmrun_b")" \
        "$(readlink -f "$bundle")" "$(readlink -f "$kernel_b")"
    cat <<'INNER'
# Everything from a tmpfs, as on a host whose page cache holds it.
L=$(mktemp -d /dev/shm/vmrun-ab.XXXXXX) || exit 1
trap 'rm -rf "$L"' EXIT
cp "${SRC[0]}" "$L/a.vmlinux" && cp "${SRC[6]}" "$L/b.vmlinux" \
    && cp "${SRC[1]}" "$L/a.cpio" && cp "${SRC[2]}" "$L/b.cpio" \
    && cp "${SRC[3]}" "$L/vmrun-a" && cp "${SRC[4]}" "$L/vmrun-b" && cp -a "${SRC[5]}" "$L/bundle" \
    && mkdir "$L/root" || exit 1
: >"$RES/rounds.txt"
# one VARIANT KIND ROUND: one run (or boot), its wall time in ms and exit
# status to rounds.txt, its phases to KIND-VARIANT-ROUND.json.
one() {
    local variant=$1 kind=$2 round=$3 start end status
    local json="$RES/$kind-$variant-$round.json"
    start=$(date +%s%N)
    if [ "$kind" = run ]; then
        "$L/vmrun-$variant" --root "$L/root" run --kernel "$L/$variant.vmlinux" \
            --initrd "$L/$variant.cpio" --bundle "$L/bundle" --timings-json "$json" \
            "ab-$variant-$round" </dev/null >/dev/null 2>>"$RES/stderr.log"
    else
        "$L/vmrun-$variant" boot --kernel "$L/$variant.vmlinux" --initrd "$L/$variant.cpio" \
            --timings-json "$json" </dev/null >/dev/null 2>>"$RES/stderr.log"
    fi
    status=$?
    end=$(date +%s%N)
    echo "$kind $variant $round $status $(( (end - start) / 1000000 ))" | tee -a "$RES/rounds.txt"
}
one a run 0
one b run 0
for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="a b"; else order="b a"; fi
    for variant in $order; do one "$variant" run "$round"; done
    if [ "$BOOT" = 1 ]; then one a boot "$round"; fi
    if [ "$BOOT_B" = 1 ]; then one b boot "$round"; fi
done
INNER
} >"$results/ab.sh"
chmod +x "$results/ab.sh"
"$VMRUN_REPO/tests/testhost/run.sh" --name measure-ab --results "$results" \
    --timeout 3000 -- "$results/ab.sh"

echo
echo "A: $vmrun_a + $kernel_a + $initrd_a"
echo "B: $vmrun_b + $kernel_b + $initrd_b"
python3 - "$results" <<'SUMMARY'
import json
import os
import statistics
import sys

res = sys.argv[1]
PHASES = ["process_start", "first_kvm_run", "init_reached", "agent_ready", "container_created",
          "container_started", "exit"]
runs = {}  # (kind, variant) -> {round: {phase: ms}}
failed = []
for line in open(os.path.join(res, "rounds.txt")):
    kind, variant, rnd, status, wall = line.split()
    if rnd == "0":
        continue  # warm-up
    if status != "0":
        failed.append(line.strip())
        continue
    try:
        with open(os.path.join(res, f"{kind}-{variant}-{rnd}.json")) as f:
            phases = {p["name"]: p["ms"] for p in json.load(f)["phases"]}
    except (OSError, ValueError, KeyError):
        phases = {}
    phases["wall"] = float(wall)
    runs.setdefault((kind, variant), {})[int(rnd)] = phases

if failed:
    print("failed (left out):", *failed, sep="\n  ")

def step_names(names):
    """(label, from, to) for each step between consecutive phases, then wall."""
    steps = [(f"{a} -> {b}", a, b) for a, b in zip(names, names[1:])]
    return steps + [("wall (spawn to reaped)", None, "wall")]

def value(p, start, end):
    if end not in p or (start is not None and start not in p):
        return None
    return p[end] - (p[start] if start is not None else 0.0)

for (kind, variant), by_round in sorted(runs.items()):
    names = [n for n in PHASES if any(n in p for p in by_round.values())]
    print(f"\n{kind} {variant.upper()}: {len(by_round)} rounds, medians (ms)")
    for label, start, end in step_names(names):
        xs = [v for p in by_round.values() if (v := value(p, start, end)) is not None]
        if xs:
            print(f"  {label:40s} {statistics.median(xs):8.1f}   [{min(xs):.0f}-{max(xs):.0f}]")

a, b = runs.get(("run", "a"), {}), runs.get(("run", "b"), {})
paired = sorted(set(a) & set(b))
if paired:
    print(f"\npaired B - A over {len(paired)} rounds (median ms; rounds B was faster in):")
    for label, start, end in step_names(PHASES):
        ds = [vb - va for r in paired
              if (va := value(a[r], start, end)) is not None
              and (vb := value(b[r], start, end)) is not None]
        if ds:
            faster = sum(d < 0 for d in ds)
            print(f"  {label:40s} {statistics.median(ds):+8.1f}   {faster} of {len(ds)}")
SUMMARY
echo "(results: $results)"
