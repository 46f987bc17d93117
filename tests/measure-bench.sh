#!/usr/bin/env bash
# Runs `vmrun bench` where guests can run (directly on hardware KVM, else
# inside the test host, where everything is TCG-emulated) and prints its
# table; the JSON and the SVG chart land next to the test host's output.
# The README's Numbers section comes from here.
#
# Needs tests/setup.sh to have run.
# Usage: tests/measure-bench.sh [vmrun bench flags...]
#   (default flags: -n 6 --vs runc,crun,podman,podman-vmrun,qemu-microvm,firecracker --density 5)
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO"

export VMRUN_BIN="${VMRUN_BIN:-$(cargo_target_dir)/release/vmrun}"
[ -x "$VMRUN_BIN" ] || die "$VMRUN_BIN missing: run tests/setup.sh (or cargo build --release -p vmrun)"
[ $# -gt 0 ] || set -- -n 6 --vs runc,crun,podman,podman-vmrun,qemu-microvm,firecracker --density 5

results="$(cargo_target_dir)/testhost/measure-bench-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"
{
    echo '#!/bin/bash'
    printf 'RES=%q\nBIN=%q\n' "$results" "$VMRUN_BIN"
    printf 'ARGS=('; printf '%q ' "$@"; echo ')'
    # The kernel, the initramfs and vmrun itself from a local filesystem,
    # as on a host (the test host sees this machine's files over 9p):
    # every runtime boots the kernel and initramfs. vmrun's own binary
    # too: the test host's 9p keeps no page cache for it between runs
    # (every `vmrun` process took ~270 major faults just to print its
    # version, ~450 for a `vmrun boot`, ~720 for a `vmrun run`, each a
    # 9p round trip; 1.2 s of a boot and 2 s of a run), while QEMU's,
    # runc's and python's pages stay cached after their first run.
    printf 'K=%q\nI=%q\n' "$(readlink -f "${VMRUN_KERNEL:-$(vmrun_cache_dir)/vmlinux}")" \
        "$(readlink -f "${VMRUN_INITRD:-$(vmrun_cache_dir)/initramfs.cpio}")"
    echo 'L=$(mktemp -d /dev/shm/vmrun-bench.XXXXXX) && cp "$K" "$L/vmlinux" && cp "$I" "$L/initramfs.cpio" && cp "$BIN" "$L/vmrun" || exit 1'
    echo 'BIN="$L/vmrun"'
    echo 'echo "vmrun bench ${ARGS[*]} (vmrun, kernel and initramfs copied to $L, a tmpfs)"'
    # The bench prints its table only at the end: a line every two
    # minutes from inside the test host keeps run.sh's stall detector
    # (no output for 6 minutes = a frozen test host) from killing a long
    # bench, and stops with the test host if it freezes.
    echo '( while sleep 120; do echo "(vmrun bench running; load $(cut -d" " -f1-3 /proc/loadavg))"; done ) & beat=$!'
    echo '"$BIN" bench "${ARGS[@]}" --kernel "$L/vmlinux" --initrd "$L/initramfs.cpio" --json "$RES/bench.json" --chart "$RES/bench.svg" --log "$RES/bench.log"'
    echo 'st=$?; kill $beat 2>/dev/null; rm -rf "$L"; exit $st'
} >"$results/bench.sh"
chmod +x "$results/bench.sh"
"$VMRUN_REPO/tests/testhost/run.sh" --name measure-bench-run --results "$results" --timeout 3000 -- "$results/bench.sh"
echo
echo "(JSON: $results/bench.json; chart: $results/bench.svg; host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
