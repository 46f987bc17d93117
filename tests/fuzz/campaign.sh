#!/usr/bin/env bash
# A long fuzzing campaign: builds the targets and runs TARGET (or every
# target, one after the other) for SECONDS each, keeping the corpus it
# grows in tests/fuzz/work/<target>/corpus (git-ignored) so the next
# campaign starts where this one stopped. Findings land in
# tests/fuzz/work/<target>/artifacts/; the result lines are appended to
# tests/fuzz/work/results.txt.
#
# Usage: tests/fuzz/campaign.sh SECONDS [TARGET] [LIBFUZZER_ARG...]
#   e.g. tests/fuzz/campaign.sh 600 image_unpack
#        tests/fuzz/campaign.sh 3600 vsock_router -jobs=2 -workers=2
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="$1"
shift
cd "$here"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-address}" "$here/build.sh"
targets="$(cd "$here/fuzz_targets" && ls *.rs | sed "s/\\.rs$//")"
if [ $# -gt 0 ] && grep -qx -- "$1" <<<"$targets"; then
    targets="$1"
    shift
fi

status=0
for target in $targets; do
    line="$("$here/run-target.sh" "$target" "$seconds" "$here/work/$target" "$@")" || status=1
    echo "$line"
    echo "$(date -u +%FT%TZ) ${seconds}s $line" >>"$here/work/results.txt"
done
exit "$status"
