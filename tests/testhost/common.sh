# Shared helpers for the vmrun test scripts (sourced, not executed).
# shellcheck shell=bash

# Repository root (this file lives in tests/testhost/).
VMRUN_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export VMRUN_REPO

# Tools installed by setup.sh may live outside a non-login PATH (CI, sudo).
for d in "$HOME/.cargo/bin" "$HOME/.local/bin" /usr/local/bin /root/.pyenv/shims; do
    case ":$PATH:" in *":$d:"*) ;; *) [ -d "$d" ] && PATH="$PATH:$d" ;; esac
done
export PATH

# Cargo's target dir as the scripts use it: the repo's target/ unless set.
cargo_target_dir() {
    echo "${CARGO_TARGET_DIR:-$VMRUN_REPO/target}"
}

# Artifact cache (TEAM.md contract 1).
vmrun_cache_dir() {
    echo "${VMRUN_CACHE_DIR:-/var/cache/vmrun}"
}

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# Finds the virtme-ng launcher (pip may put it outside PATH).
find_vng() {
    if command -v vng >/dev/null 2>&1; then command -v vng; return 0; fi
    local scripts
    scripts="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
    if [ -n "$scripts" ] && [ -x "$scripts/vng" ]; then echo "$scripts/vng"; return 0; fi
    return 1
}

# The newest generic Debian kernel in /boot (the test host's kernel). The
# cloud flavour lacks 9p, so it is never picked.
find_testhost_kernel() {
    local k
    k="$(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | grep -v -- '-cloud-' | sort -V | tail -n 1)"
    [ -n "$k" ] || return 1
    echo "$k"
}

# A fresh results directory for measuring script NAME, under the target
# dir; prints its path.
measure_results() {
    local dir
    dir="$(cargo_target_dir)/testhost/$1-$(date -u +%Y%m%dT%H%M%SZ)"
    mkdir -p "$dir" || return 1
    echo "$dir"
}

# The bundle a measuring script runs, printed: BUNDLE if given (it must
# hold a config.json), else rootfs/build-busybox-bundle.sh's busybox
# running `true`, built in RESULTS/bundle.
# Usage: measure_bundle RESULTS [BUNDLE]
measure_bundle() {
    local bundle="${2:-}"
    if [ -z "$bundle" ]; then
        bundle="$1/bundle"
        "$VMRUN_REPO/rootfs/build-busybox-bundle.sh" --no-install "$bundle" true >/dev/null \
            || die "building the busybox bundle failed"
    fi
    [ -f "$bundle/config.json" ] || die "$bundle has no config.json"
    echo "$bundle"
}
