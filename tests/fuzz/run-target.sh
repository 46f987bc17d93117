#!/usr/bin/env bash
# Runs one built fuzz target for a bounded time in the sandbox
# (sandbox.sh), on the checked-in seeds plus WORKDIR/corpus (where new
# inputs go; the checked-in corpus is only read), and prints one result
# line:
#   TARGET  execs=N  exec/s=N  cov=N  ft=N  corpus=N  status=ok|CRASH|...
# Crash, timeout and OOM inputs land in WORKDIR/artifacts/. Exits non-zero
# on any finding.
#
# Usage: tests/fuzz/run-target.sh TARGET SECONDS WORKDIR [LIBFUZZER_ARG...]
# Needs the targets built (build.sh, see smoke.sh).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
target="$1"
seconds="$2"
work="$3"
shift 3

bin="$here/target/x86_64-unknown-linux-gnu/release/$target"
[ -x "$bin" ] || { echo "run-target.sh: $bin not built" >&2; exit 2; }
mkdir -p "$work/corpus" "$work/artifacts"
work="$(realpath "$work")"
log="$work/fuzz.log"

args=(
    -max_total_time="$seconds"
    -timeout=10
    -rss_limit_mb=2048
    -max_len=65536
    -print_final_stats=1
    -artifact_prefix="$work/artifacts/"
)
[ -f "$here/dict/$target.dict" ] && args+=(-dict="$here/dict/$target.dict")

status=0
# Run in WORKDIR: libFuzzer's -jobs/-fork modes write their logs there.
(cd "$work" && "$here/sandbox.sh" "$work" -- \
    "$bin" "${args[@]}" "$@" "$work/corpus" "$here/corpus/$target") >"$log" 2>&1 || status=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
last="$(grep -E '^#[0-9]+' "$log" | tail -1 || true)"
cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")"
ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")"
corpus="$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")"
artifacts="$(find "$work/artifacts" -type f | wc -l)"

verdict=ok
if [ "$status" != 0 ] || [ "$artifacts" != 0 ]; then
    verdict="FAILED(exit $status, $artifacts artifacts)"
    grep -qE 'ERROR: libFuzzer: timeout' "$log" && verdict="TIMEOUT"
    grep -qE 'out-of-memory|malloc limit' "$log" && verdict="OOM"
    grep -qE 'deadly signal|panicked at|ERROR: AddressSanitizer' "$log" && verdict="CRASH"
fi
printf '%-20s execs=%-10s exec/s=%-7s cov=%-6s ft=%-7s corpus=%-5s status=%s\n' \
    "$target" "$(stat number_of_executed_units)" "$(stat average_exec_per_sec)" \
    "${cov:-?}" "${ft:-?}" "${corpus:-?}" "$verdict"
if [ "$verdict" != ok ]; then
    echo "---- $target: last 40 lines of $log" >&2
    tail -40 "$log" >&2
    find "$work/artifacts" -type f >&2
    exit 1
fi
