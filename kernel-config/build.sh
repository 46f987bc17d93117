#!/usr/bin/env bash
# Builds vmrun's guest kernel: Linux 6.1 from Debian's linux-source-6.1,
# `make tinyconfig` + the fragments in kernel-config/fragments/ (applied in
# file-name order, later lines win), verified, stripped, cached by hash.
#
# Result (contract 1):
#   ${VMRUN_CACHE_DIR:-/var/cache/vmrun}/kernel/<hash>/vmlinux
#   ${VMRUN_CACHE_DIR:-/var/cache/vmrun}/vmlinux -> kernel/<hash>/vmlinux
# <hash> = sha256 over the fragments, this script and the linux-source-6.1
# package version. A cache hit returns at once. The vmlinux path is printed
# on stdout; progress goes to stderr.
#
# Usage: kernel-config/build.sh [--print-hash] [--config-only] [--force] [--no-install]
#   --print-hash  print the cache hash and exit (needs linux-source-6.1)
#   --config-only generate and verify the .config, print it on stdout, stop
#                 (seconds, for iterating on fragments)
#   --force       rebuild even if the cache has this hash
#   --no-install  never call apt-get; fail if a package is missing
set -Eeuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
CACHE=${VMRUN_CACHE_DIR:-/var/cache/vmrun}
SOURCE_PKG=linux-source-6.1
SOURCE_TARBALL=/usr/src/linux-source-6.1.tar.xz
BUILD_PKGS=(build-essential flex bison bc libelf-dev libssl-dev xz-utils "$SOURCE_PKG")
# One progress line per this many compiled objects.
PROGRESS_EVERY=${VMRUN_KERNEL_PROGRESS_EVERY:-100}

log() { echo "kernel-config: $*" >&2; }
die() { log "error: $*"; exit 1; }

print_hash=0 config_only=0 force=0 install=1
for arg in "$@"; do
    case "$arg" in
        --print-hash) print_hash=1 ;;
        --config-only) config_only=1 ;;
        --force) force=1 ;;
        --no-install) install=0 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$SELF"; exit 0 ;;
        *) die "unknown argument '$arg' (see --help)" ;;
    esac
done

shopt -s nullglob
FRAGMENTS=("$HERE"/fragments/*.config)
shopt -u nullglob
[[ ${#FRAGMENTS[@]} -gt 0 ]] || die "no fragments in $HERE/fragments"

pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

ensure_packages() {
    local missing=() p
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    [[ $install -eq 1 ]] || die "missing packages: ${missing[*]} (run: apt-get install -y ${missing[*]})"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    log "installing ${missing[*]} via apt-get"
    # Wait for a concurrent apt/dpkg instead of failing on its lock.
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        -o DPkg::Lock::Timeout=900 "${missing[@]}" >&2 \
        || die "apt-get install ${missing[*]} failed"
}

source_version() {
    dpkg-query -W -f='${Version}' "$SOURCE_PKG" 2>/dev/null \
        || die "$SOURCE_PKG is not installed"
}

compute_hash() {
    local f
    {
        echo "source $SOURCE_PKG $(source_version)"
        for f in "${FRAGMENTS[@]}"; do
            echo "fragment $(basename "$f")"
            cat "$f"
        done
        echo "script build.sh"
        cat "$SELF"
    } | sha256sum | cut -d' ' -f1
}

# Atomically points $CACHE/vmlinux at kernel/<hash>/vmlinux.
publish_symlink() {
    local hash=$1 tmp
    tmp=$(mktemp -u "$CACHE/.vmlinux.XXXXXX")
    ln -s "kernel/$hash/vmlinux" "$tmp"
    mv -T "$tmp" "$CACHE/vmlinux"
}

# Unpacks the source tarball once per package version into the cache
# (outside the repo); builds use O= so the tree stays pristine.
unpack_source() {
    local version=$1
    local dir="$CACHE/kernel/src/$version" tmp
    if [[ ! -f "$dir/linux-source-6.1/Makefile" ]]; then
        [[ -f $SOURCE_TARBALL ]] || die "$SOURCE_TARBALL missing (reinstall $SOURCE_PKG)"
        mkdir -p "$CACHE/kernel/src"
        tmp=$(mktemp -d "$CACHE/kernel/src/.unpack.XXXXXX")
        log "unpacking $SOURCE_TARBALL (about a minute)"
        tar -xJf "$SOURCE_TARBALL" -C "$tmp" || { rm -rf "$tmp"; die "unpacking $SOURCE_TARBALL failed"; }
        # Another build may have won the race; keep theirs.
        mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
    fi
    [[ -f "$dir/linux-source-6.1/Makefile" ]] || die "no kernel tree in $dir"
    echo "$dir/linux-source-6.1"
}

# Reads the fragments into WANT[symbol]=line (last one wins) and
# WHERE[symbol]=file:line. Lines are either `CONFIG_X=value` or
# `# CONFIG_X is not set`; every other line must be a comment or blank.
declare -A WANT WHERE
ORDER=()
parse_fragments() {
    local f n line sym
    for f in "${FRAGMENTS[@]}"; do
        n=0
        # shellcheck disable=SC2094 # die/log write to stderr, not to $f
        while IFS= read -r line || [[ -n $line ]]; do
            n=$((n + 1))
            if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.+)$ ]]; then
                sym=${BASH_REMATCH[1]}
            elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
                sym=${BASH_REMATCH[1]}
            elif [[ $line =~ ^[[:space:]]*(#.*)?$ ]]; then
                continue
            else
                die "$(basename "$f"):$n: cannot parse '$line'"
            fi
            [[ -n ${WANT[$sym]+x} ]] || ORDER+=("$sym")
            WANT[$sym]=$line
            WHERE[$sym]="$(basename "$f"):$n"
        done < "$f"
    done
}

# Prints the scripts/config arguments for every wanted symbol.
config_args() {
    local sym line value
    for sym in "${ORDER[@]}"; do
        line=${WANT[$sym]}
        if [[ $line == "# $sym is not set" ]]; then
            printf '%s\n' --disable "$sym"
        else
            value=${line#*=}
            case "$value" in
                y) printf '%s\n' --enable "$sym" ;;
                m) printf '%s\n' --module "$sym" ;;
                \"*\") value=${value#\"}; printf '%s\n' --set-str "$sym" "${value%\"}" ;;
                *) printf '%s\n' --set-val "$sym" "$value" ;;
            esac
        fi
    done
}

# Fails loudly, listing every fragment line that olddefconfig did not keep.
verify_config() {
    local config=$1 sym line failed=0
    for sym in "${ORDER[@]}"; do
        line=${WANT[$sym]}
        if [[ $line == "# $sym is not set" ]]; then
            # Unset or absent (its dependencies are off) both mean "not set".
            grep -q "^$sym=" "$config" || continue
        else
            grep -qxF "$line" "$config" && continue
        fi
        log "NOT KEPT by olddefconfig: ${WHERE[$sym]}: '$line' (got: $(grep -E "^$sym=|^# $sym is not set" "$config" || echo absent))"
        failed=1
    done
    return $failed
}

# Runs `make` with a short progress line every $PROGRESS_EVERY objects;
# the full log stays in $log_file, its tail is shown on failure.
make_with_progress() {
    local log_file=$1; shift
    local start=$SECONDS
    if ! make "$@" 2>&1 | tee "$log_file" | awk -v every="$PROGRESS_EVERY" -v start="$start" '
            /^  (CC|AS|LD|AR)  / { n++; if (n % every == 0) { printf "kernel-config:   %d objects built, now %s\n", n, $2 > "/dev/stderr"; fflush("/dev/stderr") } }
            /(warning|error):/ { print "kernel-config:   " $0 > "/dev/stderr"; fflush("/dev/stderr") }
            END { printf "kernel-config:   %d objects in total\n", n > "/dev/stderr" }'; then
        log "make $* failed; last 40 lines of $log_file:"
        tail -n 40 "$log_file" >&2
        return 1
    fi
    log "make $* took $((SECONDS - start)) s"
}

main() {
    ensure_packages "${BUILD_PKGS[@]}"
    local version hash out
    version=$(source_version)
    hash=$(compute_hash)
    if [[ $print_hash -eq 1 ]]; then echo "$hash"; return 0; fi
    out="$CACHE/kernel/$hash/vmlinux"
    mkdir -p "$CACHE/kernel"
    if [[ $force -eq 0 && $config_only -eq 0 && -s $out ]]; then
        publish_symlink "$hash"
        log "cache hit: $out"
        echo "$out"
        return 0
    fi

    parse_fragments
    local src bld
    src=$(unpack_source "$version")
    bld=$(mktemp -d "$CACHE/kernel/.build-$hash.XXXXXX")
    # On any failure keep the logs/config next to the cache, drop the tree.
    trap 'cp -f "$bld/.config" "$CACHE/kernel/last-failed.config" 2>/dev/null || true;
          cp -f "$bld/build.log" "$CACHE/kernel/last-failed-build.log" 2>/dev/null || true;
          rm -rf "$bld"; log "build failed; see $CACHE/kernel/last-failed-build.log and last-failed.config"' ERR
    log "configuring Linux $version (hash $hash) in $bld"

    make -s -C "$src" O="$bld" tinyconfig >/dev/null
    local args
    mapfile -t args < <(config_args)
    "$src/scripts/config" --file "$bld/.config" "${args[@]}"
    make -s -C "$src" O="$bld" olddefconfig >/dev/null
    if ! verify_config "$bld/.config"; then
        false # triggers the ERR trap (keeps last-failed.config)
    fi
    log "config verified: all ${#ORDER[@]} fragment settings kept ($(grep -c '=' "$bld/.config") options set)"
    if [[ $config_only -eq 1 ]]; then
        cat "$bld/.config"
        trap - ERR
        rm -rf "$bld"
        return 0
    fi

    log "compiling vmlinux with -j$(nproc) (~8 min on 2 cores)"
    make_with_progress "$bld/build.log" -C "$src" O="$bld" -j"$(nproc)" vmlinux

    # Stage the result, then rename into place so readers never see a
    # half-written kernel; a concurrent identical build may win the rename.
    local stage
    stage=$(mktemp -d "$CACHE/kernel/.stage-$hash.XXXXXX")
    strip --strip-debug -o "$stage/vmlinux" "$bld/vmlinux"
    cp "$bld/.config" "$stage/config"
    echo "$SOURCE_PKG $version" > "$stage/source-version"
    [[ $force -eq 0 ]] || rm -rf "$CACHE/kernel/$hash"
    if ! mv -T "$stage" "$CACHE/kernel/$hash" 2>/dev/null; then
        rm -rf "$stage"
        [[ -s $out ]] || die "could not move the build into $CACHE/kernel/$hash"
    fi
    trap - ERR
    rm -rf "$bld"
    publish_symlink "$hash"
    log "done: $out ($(du -h "$out" | cut -f1)), symlink $CACHE/vmlinux"
    echo "$out"
}

main
