#!/usr/bin/env bash
# Runs a command in a private mount namespace where every mount is
# read-only except the directories named before `--` and a fresh 2 GiB
# tmpfs on /dev/shm, which becomes TMPDIR.
#
# The fuzz targets run as root and create, chown, link and remove files
# (the layer unpacker, the virtio-fs passthrough). They must stay inside
# their temp directories - that is what they test - so a bug that lets an
# input escape must not be able to damage this machine: here it can only
# reach the tmpfs and the listed output directories.
#
# Usage: tests/fuzz/sandbox.sh DIR... -- COMMAND [ARG...]
set -euo pipefail

writable=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    mkdir -p "$1"
    writable+=("$(realpath "$1")")
    shift
done
[ "${1:-}" = "--" ] || { echo "usage: $0 DIR... -- COMMAND [ARG...]" >&2; exit 2; }
shift
[ "$(id -u)" = 0 ] || { echo "sandbox.sh: needs root (mount namespaces)" >&2; exit 2; }

export SANDBOX_WRITABLE
SANDBOX_WRITABLE="$(printf '%s\n' "${writable[@]}")"
exec unshare --mount --propagation private -- bash -c '
set -euo pipefail
# Deepest mounts first, then their parents; a mount that cannot be made
# read-only is checked below if it matters.
findmnt -rno TARGET | sort -ru | while read -r m; do
    mount -o remount,bind,ro "$(printf "%b" "$m")" 2>/dev/null || true
done
for probe in / /tmp "$HOME" "$PWD"; do
    if ( : > "$probe/.vmrun-fuzz-sandbox-probe" ) 2>/dev/null; then
        rm -f "$probe/.vmrun-fuzz-sandbox-probe"
        echo "sandbox.sh: $probe is still writable; refusing to run" >&2
        exit 2
    fi
done
mount -t tmpfs -o size=2g,mode=1777 vmrun-fuzz-tmp /dev/shm
while read -r dir; do
    [ -n "$dir" ] || continue
    mount --bind "$dir" "$dir"
    mount -o remount,bind,rw "$dir"
done <<< "$SANDBOX_WRITABLE"
export TMPDIR=/dev/shm
exec "$@"
' sandbox "$@"
