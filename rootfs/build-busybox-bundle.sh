#!/usr/bin/env bash
# Makes an OCI runtime bundle whose rootfs is Debian's busybox-static:
#   DIR/config.json   runc-style spec (as `runc spec` writes it, except
#                     terminal=false so stdio can be piped, root writable,
#                     hostname "vmrun") running CMD (default: sh)
#   DIR/rootfs/       /bin/busybox + every applet as a symlink to it,
#                     /etc/passwd, /etc/group, the usual empty directories
#
# Usage: rootfs/build-busybox-bundle.sh [--no-install] DIR [CMD [ARG...]]
#   DIR must not exist yet or be empty; it is built next to DIR and renamed
#   into place, so a failure leaves nothing half-made.
# shellcheck source-path=SCRIPTDIR
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/common.sh
source "$HERE/lib/common.sh"
LOG_PREFIX=busybox-bundle
BUSYBOX=/bin/busybox

install=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-install) install=0; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) break ;;
    esac
done
[[ $# -ge 1 ]] || die "usage: $0 DIR [CMD [ARG...]]"
dir=$1; shift
args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(sh)

if [[ -e $dir ]]; then
    [[ -d $dir && -z $(ls -A "$dir") ]] || die "$dir exists and is not an empty directory"
fi
parent=$(dirname "$dir")
[[ -d $parent ]] || die "directory $parent does not exist"

ensure_packages "$install" busybox-static
[[ -x $BUSYBOX ]] || die "$BUSYBOX missing (package busybox-static)"

# json_string S: S as a JSON string literal.
json_string() {
    local s=$1
    [[ $s != *[$'\x01'-$'\x08\x0b\x0c\x0e'-$'\x1f']* ]] || die "control character in argument '$s'"
    s=${s//\\/\\\\}; s=${s//\"/\\\"}; s=${s//$'\n'/\\n}; s=${s//$'\t'/\\t}; s=${s//$'\r'/\\r}
    printf '"%s"' "$s"
}

stage=$(mktemp -d "$parent/.busybox-bundle.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root="$stage/rootfs"

mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,run,var/tmp,home}
install -d -m 0700 "$root/root"
install -d -m 1777 "$root/tmp"
install -m 0755 "$BUSYBOX" "$root/bin/busybox"
count=0
while read -r applet; do
    [[ -n $applet && $applet != bin/busybox ]] || continue
    mkdir -p "$root/$(dirname "$applet")"
    [[ -e $root/$applet ]] || { ln -s /bin/busybox "$root/$applet"; count=$((count + 1)); }
done < <("$BUSYBOX" --list-full)
[[ -e $root/bin/sh ]] || die "busybox has no sh applet"

cat > "$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$root/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
nogroup:x:65534:
GROUP
echo vmrun > "$root/etc/hostname"

args_json=""
for a in "${args[@]}"; do
    args_json+="${args_json:+, }$(json_string "$a")"
done

cat > "$stage/config.json" <<JSON
{
  "ociVersion": "1.0.2-dev",
  "process": {
    "terminal": false,
    "user": { "uid": 0, "gid": 0 },
    "args": [ $args_json ],
    "env": [
      "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      "TERM=xterm",
      "HOME=/root"
    ],
    "cwd": "/",
    "capabilities": {
      "bounding": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "effective": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "permitted": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ],
      "ambient": [ "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE" ]
    },
    "rlimits": [ { "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 } ],
    "noNewPrivileges": true
  },
  "root": { "path": "rootfs", "readonly": false },
  "hostname": "vmrun",
  "mounts": [
    { "destination": "/proc", "type": "proc", "source": "proc" },
    { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
      "options": [ "nosuid", "strictatime", "mode=755", "size=65536k" ] },
    { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
      "options": [ "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5" ] },
    { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
      "options": [ "nosuid", "noexec", "nodev", "mode=1777", "size=65536k" ] },
    { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
      "options": [ "nosuid", "noexec", "nodev" ] },
    { "destination": "/sys", "type": "sysfs", "source": "sysfs",
      "options": [ "nosuid", "noexec", "nodev", "ro" ] },
    { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
      "options": [ "nosuid", "noexec", "nodev", "relatime", "ro" ] }
  ],
  "linux": {
    "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
    "namespaces": [
      { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
      { "type": "uts" }, { "type": "mount" }, { "type": "cgroup" }
    ],
    "maskedPaths": [
      "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
      "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
      "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
    ],
    "readonlyPaths": [
      "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
    ]
  }
}
JSON

[[ -d $dir ]] && rmdir "$dir"
mv -T "$stage" "$dir"
trap - EXIT
log "bundle $dir: busybox with $count applet links, args: ${args[*]}"
