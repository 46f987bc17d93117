# shellcheck shell=bash
# Helpers shared by the rootfs/ scripts. Set LOG_PREFIX before logging.

log() { echo "${LOG_PREFIX:-rootfs}: $*" >&2; }
die() { log "error: $*"; exit 1; }

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

# ensure_packages INSTALL(1|0) PKG...: installs missing Debian packages with
# apt-get (waiting for a concurrent apt), or fails naming them if INSTALL=0.
ensure_packages() {
    local install=$1; shift
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $install -eq 1 ]] || die "missing packages: ${missing[*]} (run: apt-get install -y ${missing[*]})"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing ${missing[*]} via apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o DPkg::Lock::Timeout=900 "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

# publish_symlink DIR TARGET LINK: atomically points LINK at TARGET
# (relative to DIR, where LINK lives).
publish_symlink() {
    local dir=$1 target=$2 link=$3 tmp
    tmp=$(mktemp -u "$dir/.link.XXXXXX")
    ln -s "$target" "$tmp"
    mv -T "$tmp" "$link"
}
