#!/usr/bin/env bash
# Runs one busybox container through the agent's vmrun_action=serve in a
# QEMU microvm (vhost-vsock for the control/stdio connections, virtio-blk
# ext4 rootfs), with the vsock_client example playing vmrun's host side.
# Checks the agent in a real guest without vmrun's VMM.
#
# Prepare on the build host (work tree is read-only in the test host):
#   cargo build -p vmrun-agent --example vsock_client
#   rootfs/build-initramfs.sh
#   rootfs/build-busybox-bundle.sh $W/bundle sh -c 'echo hi; cat; echo err >&2; exit 42'
#   mkfs.ext4 -q -d $W/bundle/rootfs $W/rootfs.ext4 64M
# Run where KVM runs stock guests (here: inside the test host):
#   VMRUN_TESTHOST=always tests/testhost/run.sh --results $W/results -- \
#     env CLIENT=$CARGO_TARGET_DIR/debug/examples/vsock_client \
#     agent/examples/qemu-serve-demo.sh $W
# Expected: the container's stdout/stderr on this script's, the stdin line
# echoed by `cat`, exit status 42, QEMU exit 0 (i8042 reset).
set -u
W=${1:?usage: qemu-serve-demo.sh WORKDIR (with bundle/ and rootfs.ext4)}
CLIENT=${CLIENT:?CLIENT=path to the vsock_client example}
CACHE=${VMRUN_CACHE_DIR:-/var/cache/vmrun}
K=$(readlink -f "${VMRUN_KERNEL:-$CACHE/vmlinux}")
I=$(readlink -f "${VMRUN_INITRD:-$CACHE/initramfs.cpio}")
modprobe vhost_vsock 2>/dev/null
[ -c /dev/vhost-vsock ] || { echo "no /dev/vhost-vsock (modprobe vhost_vsock)" >&2; exit 2; }
disk=$(mktemp /tmp/serve-demo-rootfs.XXXXXX)
trap 'rm -f "$disk"' EXIT
cp "$W/rootfs.ext4" "$disk"
timeout 400 qemu-system-x86_64 -M microvm,acpi=off,x-option-roms=off,rtc=off \
  -accel kvm -cpu host -m 256 -smp 1 -nodefaults -no-user-config -display none \
  -no-reboot -device i8042 -serial "file:$W/serial.log" \
  -kernel "$K" -initrd "$I" \
  -append "console=ttyS0 reboot=k panic=-1 pci=off vmrun_action=serve" \
  -device vhost-vsock-device,guest-cid=3 \
  -drive id=root,file="$disk",format=raw,if=none -device virtio-blk-device,drive=root &
qemu=$!
printf 'data through stdin\n' | timeout 300 "$CLIENT" 3 "$W/bundle/config.json" /dev/vda ext4
status=$?
wait "$qemu"
echo "container exit status $status, qemu exit status $?"
exit "$status"
