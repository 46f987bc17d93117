# shellcheck shell=bash
# A reproducible cpio "newc" archive writer in plain bash (sourced by the
# rootfs/ scripts). No root needed (device nodes are only described, never
# created on disk), no file metadata leaks in: every entry is owned by 0:0,
# has the same mtime, and inode numbers follow the sorted entry order.
#
# Input is a spec in the spirit of the kernel's gen_init_cpio, one entry a
# line, names relative to the archive root (no leading slash):
#   dir   NAME MODE
#   file  NAME MODE SOURCE_PATH
#   slink NAME MODE TARGET
#   nod   NAME MODE c|b MAJOR MINOR
# MODE is octal permission bits (e.g. 0755). Entries are sorted by NAME
# (C locale), so parents always precede their children.
#
#   cpio_newc_from_spec SPEC_FILE MTIME > archive.cpio

_cpio_ino=0

# _cpio_header NAME MODE NLINK MTIME SIZE RDEVMAJOR RDEVMINOR
_cpio_header() {
    local name=$1 mode=$2 nlink=$3 mtime=$4 size=$5 rmaj=$6 rmin=$7
    local namesize=$(( ${#name} + 1 ))
    _cpio_ino=$(( _cpio_ino + 1 ))
    # magic ino mode uid gid nlink mtime filesize devmajor devminor
    # rdevmajor rdevminor namesize check
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$_cpio_ino" "$mode" 0 0 "$nlink" "$mtime" "$size" 0 0 "$rmaj" "$rmin" "$namesize" 0
    printf '%s\0' "$name"
    _cpio_pad $(( (110 + namesize) % 4 ))
}

# _cpio_pad REMAINDER: zero bytes up to the next multiple of 4.
_cpio_pad() {
    local rem=$1
    (( rem == 0 )) || head -c $(( 4 - rem )) /dev/zero
}

_cpio_die() { echo "cpio-newc: error: $*" >&2; exit 1; }

cpio_newc_from_spec() {
    local spec=$1 mtime=$2
    local kind name mode a b c size target
    _cpio_ino=0
    [[ $mtime =~ ^[0-9]+$ ]] || _cpio_die "bad mtime '$mtime'"
    local dups
    dups=$(awk 'NF && $1 !~ /^#/ {print $2}' "$spec" | LC_ALL=C sort | uniq -d)
    [[ -z $dups ]] || _cpio_die "duplicate entries: $dups"
    while read -r kind name mode a b c; do
        [[ -z $kind || $kind == \#* ]] && continue
        [[ $name =~ ^[A-Za-z0-9._+-][A-Za-z0-9._+/-]*$ && $name != */ && $name != *//* ]] \
            || _cpio_die "bad entry name '$name' (relative ASCII path expected)"
        [[ $mode =~ ^0?[0-7]{3,4}$ ]] || _cpio_die "$name: bad mode '$mode'"
        mode=$(( 8#$mode ))
        case "$kind" in
            dir)
                _cpio_header "$name" $(( 8#040000 | mode )) 2 "$mtime" 0 0 0 ;;
            file)
                [[ -f $a ]] || _cpio_die "$name: source '$a' is not a file"
                size=$(stat -c %s "$a")
                _cpio_header "$name" $(( 8#0100000 | mode )) 1 "$mtime" "$size" 0 0
                cat "$a"
                _cpio_pad $(( size % 4 )) ;;
            slink)
                target=$a
                [[ -n $target ]] || _cpio_die "$name: empty symlink target"
                size=${#target}
                _cpio_header "$name" $(( 8#0120000 | mode )) 1 "$mtime" "$size" 0 0
                printf '%s' "$target"
                _cpio_pad $(( size % 4 )) ;;
            nod)
                [[ $b =~ ^[0-9]+$ && $c =~ ^[0-9]+$ ]] || _cpio_die "$name: bad device numbers"
                case "$a" in
                    c) _cpio_header "$name" $(( 8#020000 | mode )) 1 "$mtime" 0 "$b" "$c" ;;
                    b) _cpio_header "$name" $(( 8#060000 | mode )) 1 "$mtime" 0 "$b" "$c" ;;
                    *) _cpio_die "$name: device type must be c or b" ;;
                esac ;;
            *) _cpio_die "unknown entry kind '$kind'" ;;
        esac
    done < <(LC_ALL=C sort -k2,2 "$spec")
    _cpio_header "TRAILER!!!" 0 1 0 0 0 0
}
