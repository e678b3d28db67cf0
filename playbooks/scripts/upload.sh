# Install stdin as TARGET atomically: temp file next to it, sha256 check, optional validation of the
# temp file, mode and owner, then rename. The target is never half-written: on any failure (a full
# disk, a bad checksum, a rejected config) the temp file is removed and the target is untouched.
# Usage: upload TARGET SHA256 MODE OWNER DONE_IF [VALIDATE-ARGV... with {tmp} for the temp file]
# DONE_IF (may be empty): a path that, when it already holds these bytes, means there is nothing to do
# (a staged file that a later step already moved into place).
# Prints "unchanged" or "changed". Exit 20-26 name the stage that failed.
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
target=$1 want=$2 mode=$3 owner=$4 done_if=$5
shift 5
if [ -n "$done_if" ] && [ -f "$done_if" ] && [ "$(sha256sum <"$done_if" | cut -d' ' -f1)" = "$want" ]; then
    cat >/dev/null
    echo unchanged
    exit 0
fi
if [ -f "$target" ] && [ ! -L "$target" ] &&
    [ "$(sha256sum <"$target" | cut -d' ' -f1)" = "$want" ] &&
    [ "$(stat -c %a -- "$target")" = "$mode" ] && [ "$(stat -c %u:%g -- "$target")" = "$owner" ]; then
    cat >/dev/null
    echo unchanged
    exit 0
fi
dir=$(dirname -- "$target")
if ! mkdir -p -- "$dir"; then cat >/dev/null; exit 20; fi
tmp=$(mktemp -- "$dir/.shimshift-upload.XXXXXX") || { cat >/dev/null; echo "cannot create a temp file in $dir" >&2; exit 21; }
trap 'rm -f -- "$tmp"' EXIT HUP INT TERM
if ! cat >"$tmp"; then
    echo "writing $target failed (disk full?); the target is unchanged" >&2
    exit 22
fi
got=$(sha256sum <"$tmp" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
    echo "checksum mismatch for $target: got $got, want $want; the target is unchanged" >&2
    exit 23
fi
chmod -- "$mode" "$tmp" && chown -- "$owner" "$tmp" || exit 24
if [ $# -gt 0 ]; then
    for a do
        shift
        if [ "$a" = "{tmp}" ]; then set -- "$@" "$tmp"; else set -- "$@" "$a"; fi
    done
    if ! out=$("$@" 2>&1 >/dev/null); then
        echo "validation of $target failed, the target is unchanged: $out" >&2
        exit 25
    fi
fi
sync -- "$tmp" 2>/dev/null || sync
mv -f -- "$tmp" "$target" || exit 26
trap - EXIT HUP INT TERM
echo changed
