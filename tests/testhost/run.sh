#!/usr/bin/env bash
# Runs one command where KVM guests can run, and exits with its status.
#
#   tests/testhost/run.sh [--results DIR] [--timeout SECS] [--name NAME] -- CMD [ARG...]
#
# Where:
# - on a host whose /dev/kvm runs stock guests (`vmrun check` exits 0), CMD
#   runs directly;
# - otherwise (e.g. a PVM host, see shared/TESTHOST.md) it boots ONE "test
#   host" with virtme-ng: Debian's generic kernel under QEMU TCG with
#   `-cpu max,-erms,-fsrm` (emulated AMD SVM), loads kvm-amd there and
#   runs CMD inside, where /dev/kvm runs real guests (slowly: everything
#   is emulated).
#
# The test host's console is not trusted for results: CMD's output and exit
# status are written to files in a results directory shared read-write with
# the test host (--rwdir), streamed here while it runs, and the status file
# decides the exit status. No status file (test host did not boot, /dev/kvm
# missing inside, timeout) is a failure, never a pass.
#
# Environment:
#   VMRUN_BIN        vmrun binary used for `vmrun check` (required unless
#                    VMRUN_TESTHOST is always/never)
#   VMRUN_TESTHOST   auto (default) | always (force the test host) |
#                    never (run directly whatever `vmrun check` says)
#   VMRUN_TESTHOST_KERNEL  kernel for the test host (default: newest
#                    generic /boot/vmlinuz-*-amd64)
#   VMRUN_TESTHOST_CPUS  vCPUs of the test host (default 1: with 2, QEMU's
#                    multi-threaded TCG now and then resumed a nested guest
#                    at the test host's own kernel address, so the microVM
#                    triple-faulted: 3 of 10 runs of the stalled-reader
#                    stream test; 0 of 10 with 1 vCPU, at the same speed)
#   VMRUN_TESTHOST_MEMORY  memory of the test host (default 2G)
#   VMRUN_TESTHOST_APPEND  kernel command line options of the test host
#                    (default: "lapic=notscdeadline highres=off nohz=off":
#                    the test host's timer tick runs in the local APIC's
#                    periodic mode, which QEMU re-arms by itself, instead
#                    of one-shot events its kernel re-programs each time.
#                    Under one-shot events, CI's test hosts froze now and
#                    then: the idle vCPU halted with interrupts on and no
#                    timer pending, a wake-up lost in QEMU's TCG (their
#                    stall-report.txt); a periodic timer fires again)
#   VMRUN_TESTHOST_CPU  the test host's CPU model (default "max,-erms,-fsrm":
#                    everything TCG emulates, AMD SVM included, but without
#                    fast-string `rep movsb`/`rep stosb`. With them, Linux
#                    zeroes and copies pages a byte per emulated
#                    iteration. Page zeroing then took 37-63% of a
#                    microVM's samples in the test host, and a VM started
#                    right after a `vmrun run` spent ~1 s more in it (likely
#                    TCG's slow path for stores into pages that held
#                    translated code: the run's guest ran code in many
#                    pages it then freed). Without them the test host
#                    zeroes with `rep stosq`: boots there took 1.4-1.7 s
#                    instead of 2.2-3.5 s, and a VM after a run pays
#                    0.04-0.23 s instead of ~1 s; README, Numbers)
#   VMRUN_TESTHOST_QEMU_OPTS  extra QEMU options for the test host (e.g.
#                    "-d cpu_reset,guest_errors -D /tmp/qemu.log" to log its
#                    CPU resets, such as a triple fault of the test host)
#   VMRUN_*, RUST_*  passed on to CMD (also inside the test host)
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

results=""
timeout_secs=2400
name="run"
while [ $# -gt 0 ]; do
    case "$1" in
        --results) results="$2"; shift 2 ;;
        --timeout) timeout_secs="$2"; shift 2 ;;
        --name) name="$2"; shift 2 ;;
        --) shift; break ;;
        *) die "unknown option '$1' (usage: $0 [--results DIR] [--timeout SECS] [--name NAME] -- CMD [ARG...])" ;;
    esac
done
[ $# -gt 0 ] || die "no command given (usage: $0 [options] -- CMD [ARG...])"

if [ -z "$results" ]; then
    results="$(cargo_target_dir)/testhost/$name-$(date -u +%Y%m%dT%H%M%SZ)-$$"
fi
mkdir -p "$results"
results="$(cd "$results" && pwd)"
output="$results/output.log"
status_file="$results/status"
rm -f "$status_file" "$results/started" "$results/kvm.log"
: >"$output"

# Decide where CMD runs.
mode="${VMRUN_TESTHOST:-auto}"
if [ "${VMRUN_IN_TESTHOST:-0}" = 1 ]; then
    mode=never
fi
case "$mode" in
    always) where=testhost ;;
    never) where=direct ;;
    auto)
        [ -n "${VMRUN_BIN:-}" ] && [ -x "${VMRUN_BIN}" ] \
            || die "VMRUN_BIN must point to a built vmrun binary (is '${VMRUN_BIN:-}'); build it with: cargo build --release -p vmrun"
        if "$VMRUN_BIN" check >"$results/vmrun-check.log" 2>&1; then
            where=direct
        else
            where=testhost
        fi
        log "vmrun check on this host:"
        sed 's/^/    /' "$results/vmrun-check.log" >&2
        ;;
    *) die "VMRUN_TESTHOST must be auto, always or never (is '$mode')" ;;
esac

if [ "$where" = direct ]; then
    log "running directly on this host's KVM: $*"
    set +e
    timeout --kill-after=30 "$timeout_secs" "$@" 2>&1 | tee -a "$output"
    status=${PIPESTATUS[0]}
    set -e
    echo "$status" >"$status_file"
    [ "$status" = 124 ] && log "command timed out after ${timeout_secs}s"
    log "exit status $status (output: $output)"
    exit "$status"
fi

# --- test host ---------------------------------------------------------
vng="$(find_vng)" || die "virtme-ng (vng) not found; run tests/setup.sh (pip install virtme-ng)"
kernel="${VMRUN_TESTHOST_KERNEL:-$(find_testhost_kernel || true)}"
[ -n "$kernel" ] && [ -r "$kernel" ] \
    || die "no generic Debian kernel /boot/vmlinuz-*-amd64 for the test host; run tests/setup.sh (apt-get install linux-image-amd64)"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 not found; run tests/setup.sh (apt-get install qemu-system-x86)"

# The script the test host runs. Everything it reports goes to files in
# $results (shared read-write), never only to the console.
inner="$results/inner.sh"
{
    echo '#!/bin/bash'
    printf 'RES=%q\n' "$results"
    echo 'date -u +%FT%TZ >"$RES/started"'
    echo '{ modprobe kvm-amd; echo "modprobe kvm-amd: exit $?"; ls -l /dev/kvm; uname -r; nproc; } >"$RES/kvm.log" 2>&1'
    # The tun module (/dev/net/tun: taps for the microVMs' virtio-net),
    # as a host running containers has it.
    echo '{ modprobe tun; echo "modprobe tun: exit $?"; ls -l /dev/net/tun; } >>"$RES/kvm.log" 2>&1'
    echo 'if [ ! -c /dev/kvm ]; then'
    echo '    echo "test host: /dev/kvm missing after modprobe kvm-amd (see kvm.log)" >>"$RES/output.log"'
    echo '    echo 97 >"$RES/status"; sync; exit 97'
    echo 'fi'
    # Keep KVM's static keys pinned while the tests create and destroy
    # microVMs: without it the test host stalls now and then (see
    # hold-kvm-vm.py). A failure to hold is reported, not fatal.
    printf 'python3 %q "$RES/kvm-hold.ready" >>"$RES/kvm.log" 2>&1 &\n' "$VMRUN_REPO/tests/testhost/hold-kvm-vm.py"
    echo 'hold_pid=$!'
    echo 'for _ in $(seq 100); do [ -f "$RES/kvm-hold.ready" ] || ! kill -0 $hold_pid 2>/dev/null && break; sleep 0.1; done'
    echo 'if [ -f "$RES/kvm-hold.ready" ]; then cat "$RES/kvm-hold.ready" >>"$RES/kvm.log"; else echo "WARNING: no KVM VM held (see kvm.log): the test host may stall" >>"$RES/output.log"; fi'
    echo 'export VMRUN_IN_TESTHOST=1'
    # Pass the caller's VMRUN_* / RUST_* settings through.
    while IFS= read -r var; do
        case "$var" in VMRUN_IN_TESTHOST | VMRUN_TESTHOST) continue ;; esac
        printf 'export %s=%q\n' "$var" "${!var}"
    done < <(compgen -e | grep -E '^(VMRUN_|RUST_)' || true)
    printf 'cd %q\n' "$PWD"
    # Inner timeout a little shorter than the outer one, so a hanging CMD
    # still leaves a status file behind.
    printf 'timeout --kill-after=20 %q' "$((timeout_secs > 120 ? timeout_secs - 90 : timeout_secs))"
    printf ' %q' "$@"
    echo ' >>"$RES/output.log" 2>&1 </dev/null'
    echo 'st=$?'
    echo 'kill $hold_pid 2>/dev/null'
    echo 'echo "$st" >"$RES/status.tmp" && mv "$RES/status.tmp" "$RES/status"'
    echo 'sync'
    echo 'exit "$st"'
} >"$inner"
chmod +x "$inner"

# virtme-ng hides the host's /var/cache behind a tmpfs: share the artifact
# cache (contract 1) read-only so vmrun's defaults work inside.
share_cache=()
cache="$(vmrun_cache_dir)"
[ -d "$cache" ] && share_cache=(--rodir "$cache")

# A QEMU monitor, read when the test host stalls (stall_report below).
monitor_sock="$(mktemp -u /tmp/vmrun-testhost-monitor.XXXXXX)"
trap 'rm -f "$monitor_sock"' EXIT

log "this host's KVM cannot run stock guests: booting the test host (QEMU TCG + emulated AMD SVM, $(basename "$kernel")) to run: $*"
log "results: $results"
append="${VMRUN_TESTHOST_APPEND-lapic=notscdeadline highres=off nohz=off}"
append_opts=()
[ -z "$append" ] || append_opts=(--append "$append")
start=$(date +%s)
set +e
# stdin: vng dies in its terminal set-up without one.
timeout --kill-after=30 "$timeout_secs" \
    "$vng" -r "$kernel" --verbose --disable-kvm --force-9p --disable-microvm \
    --cpus "${VMRUN_TESTHOST_CPUS:-1}" --memory "${VMRUN_TESTHOST_MEMORY:-2G}" \
    "${append_opts[@]}" \
    --qemu-opts="-cpu ${VMRUN_TESTHOST_CPU:-max,-erms,-fsrm} -monitor unix:$monitor_sock,server=on,wait=off ${VMRUN_TESTHOST_QEMU_OPTS:-}" --rwdir "$results" "${share_cache[@]}" \
    -- "$inner" </dev/null >"$results/testhost-console.log" 2>&1 &
vng_pid=$!
# Stream CMD's output from the results file while the test host runs.
tail -n +1 --pid="$vng_pid" -f "$output" &
tail_pid=$!
# Stall watchdog: every guest test bounds each of its runs (a hang guard of
# VMRUN_TEST_BOOT_TIMEOUT, 240 s, after which the test fails and says so),
# so output that stops growing for longer means the test host itself
# stopped making progress (TESTHOST.md: nested KVM under TCG can wedge; its
# kernel then reports soft lockups on idle CPUs). Kill it and say so (exit
# 96) instead of waiting for --timeout.
stall_secs="${VMRUN_TESTHOST_STALL_SECS:-360}"
kill_tree() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do kill_tree "$child"; done
    kill "$1" 2>/dev/null || true
}
# What a stalled test host was doing, for finding the freeze: its vCPU's
# registers and QEMU's threads (state, CPU time, kernel wait channel), in
# $results/stall-report.txt, the registers' first lines also on stderr.
stall_report() {
    local report="$results/stall-report.txt" qemu
    {
        echo "== QEMU monitor: info cpus / info registers (twice, 2 s apart) / info irq"
        python3 - "$monitor_sock" <<'PY' 2>&1
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
def cmd(c):
    s.sendall(c.encode() + b"\n")
    time.sleep(1)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if out.endswith(b"(qemu) "):
                break
    except socket.timeout:
        pass
    print(out.decode(errors="replace"))
cmd("")
for c in ["info cpus", "info registers", "info registers", "info irq"]:
    cmd(c)
PY
        for qemu in $(pgrep -f "qemu-system-x86_64.*$monitor_sock"); do
            echo "== QEMU pid $qemu threads: tid state utime stime wchan"
            for t in /proc/"$qemu"/task/*; do
                echo "$(basename "$t") $(cut -d' ' -f3,14,15 "$t/stat" 2>/dev/null) $(cat "$t/wchan" 2>/dev/null) $(cat "$t/comm" 2>/dev/null)"
            done
        done
    } >"$report" 2>&1
    log "stall report (QEMU monitor and threads): $report"
    grep -E "^(RIP|RSP|EFL|CR0|HLT)|CPU #|halted" "$report" | head -12 >&2 || true
}
(
    touch "$output"
    while kill -0 "$vng_pid" 2>/dev/null; do
        sleep 10
        if [ $(($(date +%s) - $(stat -c %Y "$output"))) -ge "$stall_secs" ]; then
            log "STALLED: no output from the test host for ${stall_secs}s; killing it"
            stall_report || true
            touch "$results/stalled"
            kill_tree "$vng_pid"
            exit 0
        fi
    done
) &
watchdog_pid=$!
wait "$vng_pid"
vng_status=$?
kill "$watchdog_pid" 2>/dev/null
wait "$tail_pid" "$watchdog_pid" 2>/dev/null
set -e
elapsed=$(($(date +%s) - start))

if [ ! -f "$results/started" ]; then
    log "the test host did not boot or did not run the command (vng exit $vng_status after ${elapsed}s); last console lines:"
    tail -n 40 "$results/testhost-console.log" >&2 || true
    exit 98
fi
if [ -f "$results/stalled" ] && [ ! -f "$status_file" ]; then
    log "the test host stalled (no output for ${stall_secs}s); last console lines:"
    tail -n 40 "$results/testhost-console.log" >&2 || true
    exit 96
fi
if [ ! -f "$status_file" ]; then
    if [ "$vng_status" = 124 ] || [ "$vng_status" = 137 ]; then
        log "the test host timed out after ${timeout_secs}s before the command finished"
    else
        log "the test host ended (vng exit $vng_status) without the command's exit status"
    fi
    log "last console lines:"
    tail -n 40 "$results/testhost-console.log" >&2 || true
    exit 99
fi
status="$(cat "$status_file")"
case "$status" in '' | *[!0-9]*) die "corrupt status file $status_file: '$status'" ;; esac
[ "$status" = 124 ] && log "command timed out inside the test host"
[ "$status" = 97 ] && { log "kvm inside the test host:"; cat "$results/kvm.log" >&2 || true; }
if [ "$vng_status" != "$status" ]; then
    log "note: vng exited $vng_status, the command's status file says $status (the file is authoritative)"
fi
log "exit status $status inside the test host (${elapsed}s including its boot; output: $output)"
exit "$status"
