#!/usr/bin/env bash
# Builds an initramfs that is NOT vmrun's: Debian's busybox-static with a
# shell-script /init that prints
#   busybox-init: hello from Linux <release> with <n> cpus
# and reboots (`reboot -f`; with the kernel's `reboot=k` that ends the VM).
# Tests use it to show `vmrun boot` boots any kernel + initrd.
# Reproducible like build-initramfs.sh (sorted, 0:0, mtime 0), then `gzip -n`.
#
# Usage: rootfs/build-busybox-initramfs.sh OUT [--no-install]
#   OUT  the .cpio.gz to write (replaced atomically)
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
# shellcheck source=lib/cpio-newc.sh
source "$HERE/lib/cpio-newc.sh"
LOG_PREFIX=busybox-initramfs
BUSYBOX=/bin/busybox

out="" install=1
for arg in "$@"; do
    case "$arg" in
        --no-install) install=0 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) die "unknown option '$arg' (see --help)" ;;
        *) [[ -z $out ]] || die "only one OUT path expected"; out=$arg ;;
    esac
done
[[ -n $out ]] || die "usage: $0 OUT"
out_dir=$(dirname "$out")
[[ -d $out_dir ]] || die "directory $out_dir does not exist"

ensure_packages "$install" busybox-static gzip
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing (package busybox-static)"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cat > "$stage/init" <<'INIT'
#!/bin/busybox sh
# A plain busybox init (not vmrun's agent).
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
cpus=$(/bin/busybox grep -c '^processor' /proc/cpuinfo)
echo "busybox-init: hello from Linux $(/bin/busybox uname -r) with $cpus cpus"
/bin/busybox sync
/bin/busybox reboot -f
INIT

cat > "$stage/spec" <<SPEC
file init 0755 $stage/init
dir bin 0755
file bin/busybox 0755 $BUSYBOX
slink bin/sh 0777 busybox
dir dev 0755
nod dev/console 0600 c 5 1
dir proc 0555
dir sys 0555
SPEC

tmp_out=$(mktemp "$out_dir/.busybox-initramfs.XXXXXX")
if ! cpio_newc_from_spec "$stage/spec" 0 | gzip -n -9 > "$tmp_out"; then
    rm -f "$tmp_out"
    die "writing the archive failed"
fi
chmod 0644 "$tmp_out"
mv -f "$tmp_out" "$out"
log "wrote $out ($(stat -c %s "$out") bytes)"
