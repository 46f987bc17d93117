#!/usr/bin/env bash
# Builds vmrun's guest initramfs: the static agent (package vmrun-agent) as
# /init plus the mount points and a /dev/console node, as an uncompressed
# cpio "newc" archive. Reproducible: sorted entries, owner 0:0, mtime 0,
# inode numbers by position (same agent binary -> same bytes).
#
# Uncompressed because the VMM maps the archive's pages from this file
# (vmm/src/machine/file_mapping.rs) and the guest keeps them
# (`retain_initrd`): the kernel copies the files out of pages shared with
# every other VM instead of inflating a gzip stream into fresh memory,
# which in the test host made each boot ~50-200 ms longer and left each VM
# ~1.3 MiB more memory of its own (README, "The initramfs, uncompressed").
#
# Result (contract 1):
#   ${VMRUN_CACHE_DIR:-/var/cache/vmrun}/initramfs/<hash>/initramfs.cpio
#   ${VMRUN_CACHE_DIR:-/var/cache/vmrun}/initramfs.cpio -> initramfs/<hash>/...
# <hash> = sha256 over the stripped agent binary, the archive spec and these
# scripts. The path is printed on stdout; progress goes to stderr.
#
# The agent is built as contract 7 says (static glibc, explicit --target)
# into ${CARGO_TARGET_DIR:-<repo>/target}, optimized for size (see
# AGENT_PROFILE below): every guest keeps the agent's file in RAM.
#
# Usage: rootfs/build-initramfs.sh [--no-install]
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${VMRUN_CACHE_DIR:-/var/cache/vmrun}
TARGET=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
MTIME=0

# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
# shellcheck source=lib/cpio-newc.sh
source "$HERE/lib/cpio-newc.sh"
LOG_PREFIX=initramfs

install=1
for arg in "$@"; do
    case "$arg" in
        --no-install) install=0 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$arg' (see --help)" ;;
    esac
done

# libseccomp-dev: libseccomp.a. The cgroup v2 device controller's libbpf is
# built from source (make, pkg-config, libelf/zlib headers) and the static
# agent links Debian's libelf.a and libz.a (libelf-dev, zlib1g-dev).
ensure_packages "$install" binutils libseccomp-dev build-essential \
    pkg-config libelf-dev zlib1g-dev
command -v cargo >/dev/null || die "cargo not found (install Rust with rustup: https://rustup.rs)"

# The agent's release profile, for this build only (the workspace's
# [profile.release] stays as it is for vmrun): the guest kernel keeps the
# agent's file in RAM for the VM's whole life (the sealed memfd copy it
# runs from, in the initramfs before that) and gunzips it at every boot, so
# size wins over speed here; the agent's work is I/O. Measured on the
# agent at the time (stripped): opt-level 3, 16 codegen units, unwind
# 10.2 MB; "s" + fat LTO + 1 unit + abort 6.3 MB; "z" + the same 5.8 MB.
# panic=abort changes nothing the agent does: its panic hook (PID 1 only,
# agent/src/panic.rs) prints, syncs and _exit()s before any unwinding.
AGENT_PROFILE=(
    CARGO_PROFILE_RELEASE_OPT_LEVEL=z
    CARGO_PROFILE_RELEASE_LTO=fat
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1
    CARGO_PROFILE_RELEASE_PANIC=abort
)
log "building the agent (static, --target $TARGET, ${AGENT_PROFILE[*]}) into $CARGO_TARGET_DIR"
(
    cd "$REPO"
    env "${AGENT_PROFILE[@]}" \
    LIBSECCOMP_LINK_TYPE=static LIBSECCOMP_LIB_PATH=/usr/lib/x86_64-linux-gnu \
    RUSTFLAGS="-C target-feature=+crt-static" \
        cargo build --release -p vmrun-agent --target "$TARGET" >&2
) || die "building vmrun-agent failed"
agent="$CARGO_TARGET_DIR/$TARGET/release/vmrun-agent"
[[ -x $agent ]] || die "no agent binary at $agent"
if readelf -lW "$agent" | grep -q 'program interpreter'; then
    die "$agent is dynamically linked (needs an ELF interpreter); the guest has no libc"
fi

mkdir -p "$CACHE/initramfs"
stage=$(mktemp -d "$CACHE/initramfs/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
strip -o "$stage/init" "$agent"

cat > "$stage/spec" <<SPEC
file init 0755 $stage/init
dir dev 0755
nod dev/console 0600 c 5 1
dir proc 0555
dir sys 0555
dir run 0755
dir tmp 1777
dir root 0700
SPEC

hash=$({
    echo "agent"; sha256sum < "$stage/init"
    echo "spec"; sed "s|$stage/||" "$stage/spec"
    echo "scripts"; cat "${BASH_SOURCE[0]}" "$HERE/lib/cpio-newc.sh" "$HERE/lib/common.sh"
} | sha256sum | cut -d' ' -f1)
out="$CACHE/initramfs/$hash/initramfs.cpio"

if [[ ! -s $out ]]; then
    cpio_newc_from_spec "$stage/spec" "$MTIME" > "$stage/initramfs.cpio"
    rm -f "$stage/spec" "$stage/init"
    # Rename into place; a concurrent identical build may win, fine.
    mv -T "$stage" "$CACHE/initramfs/$hash" 2>/dev/null || [[ -s $out ]] \
        || die "could not move the archive into $CACHE/initramfs/$hash"
    log "built $out ($(stat -c %s "$out") bytes)"
else
    log "cache hit: $out"
fi
publish_symlink "$CACHE" "initramfs/$hash/initramfs.cpio" "$CACHE/initramfs.cpio"
echo "$out"
