#!/usr/bin/env bash
# Sets up everything vmrun needs on Debian 12, idempotently (a second run
# only checks and returns quickly):
#   1. apt packages (build tools, busybox-static, jq, libseccomp, ...);
#   2. Rust (rustup, if cargo is missing) with rustfmt and clippy;
#   3. the guest kernel   (kernel-config/build.sh, cached by hash, ~8 min once);
#   4. the guest initramfs with the agent (rootfs/build-initramfs.sh, cached);
#   5. vmrun itself (cargo build --release);
#   6. if `vmrun check` says this host's KVM cannot run guests: the test host
#      (qemu-system-x86, Debian's generic linux-image-amd64, virtme-ng).
#
# Usage: tests/setup.sh        (as root, or with sudo available)
set -euo pipefail

# shellcheck source=tests/testhost/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/testhost/common.sh"
cd "$VMRUN_REPO"

sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

apt_updated=0
ensure_packages() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing with apt-get: ${missing[*]}"
    if [ "$apt_updated" = 0 ]; then
        "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q \
            -o DPkg::Lock::Timeout=600 || log "apt-get update failed; trying the install anyway"
        apt_updated=1
    fi
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o DPkg::Lock::Timeout=600 --no-install-recommends "${missing[@]}"
}

# 1. Packages for building vmrun, the agent, the kernel and the initramfs.
# (libelf-dev + zlib1g-dev also serve vmrun-isolation's vendored libbpf,
# the cgroup v2 device controller, and the static agent's libelf.a/libz.a.)
log "1/6 apt packages"
ensure_packages build-essential pkg-config git ca-certificates curl jq \
    flex bison bc libelf-dev zlib1g-dev libssl-dev xz-utils cpio gzip binutils \
    libseccomp-dev busybox-static linux-source-6.1 python3 python3-pip
# Real peers the tests compare against or drive: runc (isolation checker,
# lifecycle side by side), umoci/skopeo/podman/docker-registry (images),
# e2fsprogs (virtio-blk rootfs), containerd (ctr, the runc v2 shim and CRI,
# started privately by the client tests; no service is enabled here),
# iproute2 (taps and tc redirects for microVM networking).
ensure_packages runc umoci skopeo podman docker-registry e2fsprogs containerd iproute2

# 2. Rust. Debian's rustc is too old (the workspace needs >= 1.88: rust-version in Cargo.toml).
log "2/6 Rust toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: installing Rust with rustup (https://rustup.rs)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    PATH="$HOME/.cargo/bin:$PATH"
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
cargo --version

# 3. + 4. Guest artifacts (cached; a cache hit returns at once).
log "3/6 guest kernel (kernel-config/build.sh; ~8 min on 2 cores the first time, cached after)"
kernel-config/build.sh
log "4/6 guest initramfs (rootfs/build-initramfs.sh)"
rootfs/build-initramfs.sh

# 5. vmrun.
log "5/6 vmrun (cargo build --release)"
cargo build --release -p vmrun
vmrun_bin="$(cargo_target_dir)/release/vmrun"

# 6. The test host, only where this host's KVM cannot run stock guests.
log "6/6 can this host run guests? (vmrun check)"
if "$vmrun_bin" check; then
    log "yes: guests run directly on this host's KVM"
else
    log "no: installing the test host (QEMU TCG + emulated AMD SVM via virtme-ng; see "How tests run" in README.md)"
    ensure_packages qemu-system-x86 linux-image-amd64
    if ! find_vng >/dev/null; then
        log "installing virtme-ng with pip"
        python3 -m pip install virtme-ng 2>/dev/null \
            || python3 -m pip install --break-system-packages virtme-ng
    fi
    find_vng >/dev/null || die "virtme-ng installed but vng not found on PATH"
    find_testhost_kernel >/dev/null || die "no generic /boot/vmlinuz-*-amd64 after installing linux-image-amd64"
    log "test host ready: $(find_vng), kernel $(find_testhost_kernel)"
fi
log "setup done"
