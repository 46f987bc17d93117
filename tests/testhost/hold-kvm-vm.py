#!/usr/bin/env python3
"""Holds one idle KVM VM open for the test host's lifetime.

Why: creating and destroying a KVM VM flips static keys in the test host's
kernel (the preempt notifier key on every VM, the "APIC software disabled"
key on every vCPU until its guest enables the APIC). Each flip live-patches
kernel text on all CPUs (int3 + IPIs). Under QEMU TCG with several vCPUs
that cross-CPU code patching now and then leaves a vCPU executing stale
code forever: the test host's kernel reports soft lockups and RCU stalls
with a CPU stuck at a patched site (e.g. finish_task_switch, or in
kprobe_int3_handler), and the whole test host stops. Measured: a loop that
only creates and destroys VMs stalled the test host after ~130 VMs; with
this VM held, 300 went through.

With one VM (with an in-kernel irqchip and a vCPU whose APIC is never
enabled) alive, those keys never drop back to zero, so the microVMs the
tests boot and tear down no longer patch kernel text.

Usage: hold-kvm-vm.py READY_FILE
Creates the VM, writes READY_FILE, then sleeps until killed. Exits non-zero
with a message if /dev/kvm refuses.
"""

import fcntl
import os
import signal
import sys

KVM_CREATE_VM = 0xAE01
KVM_CREATE_VCPU = 0xAE41
KVM_CREATE_IRQCHIP = 0xAE60


def main() -> int:
    if len(sys.argv) != 2:
        print("usage: hold-kvm-vm.py READY_FILE", file=sys.stderr)
        return 2
    try:
        kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
        vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
        fcntl.ioctl(vm, KVM_CREATE_IRQCHIP, 0)
        vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
    except OSError as err:
        print(f"hold-kvm-vm: cannot create the held VM: {err}", file=sys.stderr)
        return 1
    with open(sys.argv[1], "w", encoding="ascii") as ready:
        ready.write(f"holding KVM VM fd {vm} with vCPU fd {vcpu}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


if __name__ == "__main__":
    sys.exit(main())
