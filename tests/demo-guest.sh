#!/usr/bin/env bash
# The guest part of the main job (tests/boot-demo.sh), run where guests can
# run (directly or inside the test host):
# 1. `vmrun boot --timings [FLAGS]`: our kernel + the agent to its ready line;
# 2. builds a busybox OCI bundle (rootfs/build-busybox-bundle.sh, Debian's
#    busybox-static) and runs it in a microVM with `vmrun run --timings`,
#    showing its output, exit status and timings.
#
# Usage: tests/demo-guest.sh VMRUN_BIN [extra `vmrun boot` flags]
set -euo pipefail

vmrun=${1:?usage: $0 VMRUN_BIN [vmrun boot flags]}
shift
echo "==> vmrun boot --timings $*"
"$vmrun" boot --timings "$@"
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
scratch=$(mktemp -d /tmp/vmrun-demo.XXXXXX)
# In the test host /tmp is an overlay over the host's files: put the bundle
# on a tmpfs, as on a real host's local disk.
if [ "${VMRUN_IN_TESTHOST:-0}" = 1 ]; then
    mount -t tmpfs -o size=256m tmpfs "$scratch"
fi
bundle="$scratch/busybox"
# shellcheck disable=SC2016 # expanded by the container's shell
"$repo/rootfs/build-busybox-bundle.sh" --no-install "$bundle" \
    sh -c 'echo "hello from a busybox container in a microVM: $(uname -sr), $(ls /bin | wc -l) applets"; echo "written by the container" > /tmp/proof; exit 0'
echo "==> vmrun run --timings --bundle $bundle demo"
status=0
"$vmrun" run --timings --bundle "$bundle" demo </dev/null || status=$?
echo "==> container exit status: $status"
if [ -f "$bundle/rootfs/tmp/proof" ]; then
    echo "==> the container's write landed in the bundle: $(cat "$bundle/rootfs/tmp/proof")"
fi
exit "$status"
