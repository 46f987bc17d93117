#!/usr/bin/env bash
# The main job: set everything up (tests/setup.sh), then boot the microVM —
# our kernel + the agent as PID 1 — and show the agent's ready line and the
# boot phase timings; then run a busybox OCI bundle in a microVM with
# `vmrun run` (tests/demo-guest.sh). Directly on a host with hardware KVM; otherwise inside
# the test host (QEMU TCG + emulated AMD SVM: timings there are emulated).
#
# Usage: tests/boot-demo.sh [extra `vmrun boot` flags, e.g. --cpus 2]
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO"

"$VMRUN_REPO/tests/setup.sh"

export VMRUN_BIN="${VMRUN_BIN:-$(cargo_target_dir)/release/vmrun}"
log "booting the microVM (vmrun boot --timings $*), then running a busybox bundle (vmrun run)"
"$VMRUN_REPO/tests/testhost/run.sh" --name boot-demo --timeout 900 \
    -- "$VMRUN_REPO/tests/demo-guest.sh" "$VMRUN_BIN" "$@"
