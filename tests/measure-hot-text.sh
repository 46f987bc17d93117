#!/usr/bin/env bash
# Regenerates vmm/hot-text.order, the functions an idle VMM executes,
# which the linker places side by side at the start of vmrun's code
# (vmm/build/hot_text.rs). Measured where guests run (the test host here):
# with the kernel's fault-around at one page, the pages of vmrun's code
# that a VMM has mapped are the ones it executed in. Two VMMs are read in
# each round: one of `run -d` (idle, as the bench's memory reading) and one
# of `create` + `start` + `exec` (as podman and containerd drive it). Each
# round builds vmrun with the list so far, laid out differently
# (tests/hot-text.py order --shuffle), so that cold functions that shared
# a page with executed ones drop out; the last writes the list in address
# order. Rerun it after large changes, new dependencies or a new toolchain
# (symbol names carry hashes that change with them); a stale list only
# places less code well.
#
# Needs tests/setup.sh to have run. Usage: tests/measure-hot-text.sh [ROUNDS]
#   (default 3 rounds; each is a release build and a test host boot)
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO"

rounds="${1:-3}"
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$rounds'"
export VMRUN_BIN
VMRUN_BIN="$(cargo_target_dir)/release/vmrun"
results="$(cargo_target_dir)/testhost/measure-hot-text-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$results"

# inner_script DIR: what runs in the test host, reading DIR/vmrun's pages.
inner_script() {
    echo '#!/bin/bash'
    echo 'set -euo pipefail'
    printf 'RES=%q\nBIN=%q\nREPO=%q\n' "$1" "$1/vmrun" "$VMRUN_REPO"
    printf 'K=%q\nI=%q\n' "$(readlink -f "${VMRUN_KERNEL:-$(vmrun_cache_dir)/vmlinux}")" \
        "$(readlink -f "${VMRUN_INITRD:-$(vmrun_cache_dir)/initramfs.cpio}")"
    cat <<'INNER'
L=$(mktemp -d /dev/shm/vmrun-hot.XXXXXX)
cp "$K" "$L/vmlinux"; cp "$I" "$L/initrd"; cp "$BIN" "$L/vmrun"
ROOT=/run/vmrun-hot-text
FAB=/sys/kernel/debug/fault_around_bytes
[ -e "$FAB" ] || mount -t debugfs none /sys/kernel/debug
old=$(cat "$FAB")
cleanup() {
    "$L/vmrun" --root "$ROOT" delete --force hot-run >/dev/null 2>&1 || true
    "$L/vmrun" --root "$ROOT" delete --force hot-life >/dev/null 2>&1 || true
    echo "$old" > "$FAB"
    rm -rf "$L"
}
trap cleanup EXIT
echo 4096 > "$FAB"
"$REPO/rootfs/build-busybox-bundle.sh" --no-install "$L/bundle" sleep 3600 >/dev/null
vm=("--kernel" "$L/vmlinux" "--initrd" "$L/initrd")
vmm_pid() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["vmm"]["pid"])' "$ROOT/$1/state.json"; }
"$L/vmrun" --root "$ROOT" run -d "${vm[@]}" --bundle "$L/bundle" hot-run
sleep 3
python3 "$REPO/tests/hot-text.py" pages "$(vmm_pid hot-run)" "$L/vmrun" > "$RES/pages-run.txt"
"$L/vmrun" --root "$ROOT" create "${vm[@]}" --bundle "$L/bundle" hot-life </dev/null >/dev/null 2>&1
"$L/vmrun" --root "$ROOT" start hot-life
"$L/vmrun" --root "$ROOT" exec hot-life true
"$L/vmrun" --root "$ROOT" state hot-life >/dev/null
sleep 3
python3 "$REPO/tests/hot-text.py" pages "$(vmm_pid hot-life)" "$L/vmrun" > "$RES/pages-life.txt"
wc -l "$RES"/pages-*.txt
INNER
}

measurements=()
for round in $(seq 1 "$rounds"); do
    round_dir="$results/round-$round"
    mkdir -p "$round_dir"
    cargo build --release -p vmrun
    cp "$VMRUN_BIN" "$round_dir/vmrun"
    inner_script "$round_dir" >"$round_dir/hot.sh"
    chmod +x "$round_dir/hot.sh"
    "$VMRUN_REPO/tests/testhost/run.sh" --name measure-hot-text --results "$round_dir" --timeout 900 -- "$round_dir/hot.sh"
    measurements+=("$round_dir/vmrun=$round_dir/pages-run.txt,$round_dir/pages-life.txt")
    if [ "$round" -lt "$rounds" ]; then
        python3 tests/hot-text.py order --shuffle "${measurements[@]}" > vmm/hot-text.order
    else
        python3 tests/hot-text.py order "${measurements[@]}" > vmm/hot-text.order
    fi
    echo "round $round: $(wc -l < vmm/hot-text.order) functions"
done
cargo build --release -p vmrun
echo "vmm/hot-text.order: $(wc -l < vmm/hot-text.order) functions (measurements in $results)"
