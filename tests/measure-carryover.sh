#!/usr/bin/env bash
# What one microVM leaves behind for the next, where guests run (directly
# on hardware KVM, else in ONE test host): rounds of the fixed sequence
# boot boot run boot run run (`vmrun boot` of the kernel and initramfs to
# the agent's ready line; `vmrun run` of a busybox `true`), so that each
# kind follows each kind. Prints, per (previous → this) pair, the medians
# of process start → first KVM_RUN, first KVM_RUN → init reached (the
# guest kernel's own boot) and exit → reaped (teardown, wall clock).
#
# In the test host a VM that follows a `vmrun run` boots its kernel slower
# than one that follows a boot: this shows how much, and that the serving
# guest's kernel itself is not slower than the plain boot's.
#
# Needs tests/setup.sh to have run.
# Usage: tests/measure-carryover.sh [-n ROUNDS] [--bundle DIR]
#   -n ROUNDS   sequences of six VMs (default 7)
#   --bundle    the bundle to run (default: rootfs/build-busybox-bundle.sh's,
#               running `true`)
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO"

rounds=7 bundle=""
while [ $# -gt 0 ]; do
    case "$1" in
        -n) rounds="$2"; shift 2 ;;
        --bundle) bundle="$2"; shift 2 ;;
        *) die "unknown argument: $1 (see the usage at the top of $0)" ;;
    esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive number of rounds (is '$rounds')"
vmrun="$(cargo_target_dir)/release/vmrun"
kernel="$(readlink -f "${VMRUN_KERNEL:-$(vmrun_cache_dir)/vmlinux}")"
initrd="$(readlink -f "${VMRUN_INITRD:-$(vmrun_cache_dir)/initramfs.cpio}")"
for f in "$vmrun" "$kernel" "$initrd"; do
    [ -f "$f" ] || die "$f missing: run tests/setup.sh"
done

export VMRUN_BIN="${VMRUN_BIN:-$vmrun}"
results="$(measure_results measure-carryover)"
bundle="$(measure_bundle "$results" "$bundle")"

# What runs where the guests are; not named inner.sh, which run.sh writes
# into the same results directory.
{
    echo '#!/bin/bash'
    echo 'set -u'
    printf 'RES=%q\nROUNDS=%q\n' "$results" "$rounds"
    printf 'SRC=(%q %q %q %q)\n' "$kernel" "$initrd" "$(readlink -f "$vmrun")" \
        "$(readlink -f "$bundle")"
    cat <<'INNER'
# Everything from a tmpfs, as on a host whose page cache holds it.
L=$(mktemp -d /dev/shm/vmrun-carryover.XXXXXX) || exit 1
trap 'rm -rf "$L"' EXIT
cp "${SRC[0]}" "$L/vmlinux" && cp "${SRC[1]}" "$L/initrd" && cp "${SRC[2]}" "$L/vmrun" \
    && cp -a "${SRC[3]}" "$L/bundle" && mkdir "$L/root" || exit 1
: >"$RES/vms.txt"
n=0
# one KIND: one boot or run; its wall time in ms and exit status to
# vms.txt, its phases to N.json.
one() {
    local kind=$1 start end status
    n=$((n + 1))
    start=$(date +%s%N)
    if [ "$kind" = run ]; then
        "$L/vmrun" --root "$L/root" run --kernel "$L/vmlinux" --initrd "$L/initrd" \
            --bundle "$L/bundle" --timings-json "$RES/$n.json" "c$n" \
            </dev/null >/dev/null 2>>"$RES/stderr.log"
    else
        "$L/vmrun" boot --kernel "$L/vmlinux" --initrd "$L/initrd" \
            --timings-json "$RES/$n.json" </dev/null >/dev/null 2>>"$RES/stderr.log"
    fi
    status=$?
    end=$(date +%s%N)
    echo "$n $kind $status $(( (end - start) / 1000000 ))" | tee -a "$RES/vms.txt"
}
for _ in $(seq 1 "$ROUNDS"); do
    for kind in boot boot run boot run run; do one "$kind"; done
done
INNER
} >"$results/carryover.sh"
chmod +x "$results/carryover.sh"
"$VMRUN_REPO/tests/testhost/run.sh" --name measure-carryover --results "$results" \
    --timeout 3000 -- "$results/carryover.sh"

echo
echo "vmrun: $vmrun; kernel: $kernel; initramfs: $initrd"
python3 - "$results" <<'SUMMARY'
import json
import os
import statistics
import sys

res = sys.argv[1]
vms = [line.split() for line in open(os.path.join(res, "vms.txt"))]
failed = [v for v in vms if v[2] != "0"]
if failed:
    print("failed (left out, and so is the VM after each):", *(" ".join(v) for v in failed))

def phases(n):
    try:
        with open(os.path.join(res, f"{n}.json")) as f:
            return {p["name"]: p["ms"] for p in json.load(f)["phases"]}
    except (OSError, ValueError, KeyError):
        return None

pairs = {}  # "prev -> kind" -> [(start, kernel, teardown)]
for (_, prev_kind, prev_status, _), (n, kind, status, wall) in zip(vms, vms[1:]):
    p = phases(n)
    if prev_status != "0" or status != "0" or not p:
        continue
    if not all(k in p for k in ("first_kvm_run", "init_reached", "exit")):
        continue
    pairs.setdefault(f"{prev_kind} -> {kind}", []).append((
        p["first_kvm_run"],
        p["init_reached"] - p["first_kvm_run"],
        float(wall) - p["exit"],
    ))

print(f"\n{'previous -> this':18s} {'n':>3s} {'start -> KVM_RUN':>17s} "
      f"{'KVM_RUN -> init':>16s} {'exit -> reaped':>15s}   (medians, ms; init range)")
for key in ("boot -> boot", "boot -> run", "run -> boot", "run -> run"):
    xs = pairs.get(key, [])
    if not xs:
        continue
    med = [statistics.median(x[i] for x in xs) for i in range(3)]
    kernel = sorted(x[1] for x in xs)
    print(f"{key:18s} {len(xs):3d} {med[0]:17.0f} {med[1]:16.0f} {med[2]:15.0f}"
          f"   [{kernel[0]:.0f}-{kernel[-1]:.0f}]")
SUMMARY
echo "(results: $results)"
