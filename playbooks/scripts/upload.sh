# Install files from stdin atomically, several per call (one SSH round trip): for each, a temp file
# next to the target, a sha256 check, an optional validation of the temp file, mode and owner, then
# rename. A target is never half-written: on any failure (a full disk, a bad checksum, a rejected
# config) its temp file is removed and it is untouched; files installed before it stay installed.
# Usage: upload [TARGET SHA256 MODE OWNER DONE_IF LENGTH NV VALIDATE_1..VALIDATE_NV]...
#   stdin: the files' bytes, concatenated, LENGTH bytes each (read exactly, with GNU head -c).
#   DONE_IF (may be empty): a path that, when it already holds these bytes, means there is nothing
#   to do (a staged file that a later step already moved into place).
#   VALIDATE: an argv run on the temp file, whose path replaces the argument {tmp}.
# Prints "changed TARGET" or "unchanged TARGET" per file. Exit 20-26 name the stage that failed.
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
tmp=
trap '[ -z "$tmp" ] || rm -f -- "$tmp"' EXIT HUP INT TERM

sha_of() { sha256sum <"$1" | cut -d' ' -f1; }

validate() {
    _tmp=$1
    shift
    for _a do
        shift
        if [ "$_a" = "{tmp}" ]; then set -- "$@" "$_tmp"; else set -- "$@" "$_a"; fi
    done
    "$@"
}

while [ $# -gt 0 ]; do
    if [ $# -lt 7 ]; then echo "upload: malformed arguments" >&2; exit 2; fi
    target=$1 want=$2 mode=$3 owner=$4 done_if=$5 len=$6 nv=$7
    shift 7
    if [ $# -lt "$nv" ]; then echo "upload: malformed arguments" >&2; exit 2; fi
    if { [ -n "$done_if" ] && [ -f "$done_if" ] && [ "$(sha_of "$done_if")" = "$want" ]; } ||
        { [ -f "$target" ] && [ ! -L "$target" ] && [ "$(sha_of "$target")" = "$want" ] &&
            [ "$(stat -c %a -- "$target")" = "$mode" ] && [ "$(stat -c %u:%g -- "$target")" = "$owner" ]; }; then
        head -c "$len" >/dev/null
        shift "$nv"
        printf 'unchanged %s\n' "$target"
        continue
    fi
    dir=$(dirname -- "$target")
    mkdir -p -- "$dir" || exit 20
    tmp=$(mktemp -- "$dir/.shimshift-upload.XXXXXX") || { echo "cannot create a temp file in $dir" >&2; exit 21; }
    if ! head -c "$len" >"$tmp" || [ "$(wc -c <"$tmp")" -ne "$len" ]; then
        echo "writing $target failed (disk full?); the target is unchanged" >&2
        exit 22
    fi
    got=$(sha_of "$tmp")
    if [ "$got" != "$want" ]; then
        echo "checksum mismatch for $target: got $got, want $want; the target is unchanged" >&2
        exit 23
    fi
    chmod -- "$mode" "$tmp" && chown -- "$owner" "$tmp" || exit 24
    if [ "$nv" -gt 0 ]; then
        # "${1}" "${2}" ...: references to the validation argv, never its values, go through eval
        refs= k=1
        while [ "$k" -le "$nv" ]; do refs="$refs \"\${$k}\""; k=$((k + 1)); done
        if ! out=$(eval "validate \"\$tmp\" $refs" 2>&1 >/dev/null); then
            echo "validation of $target failed, the target is unchanged: $out" >&2
            exit 25
        fi
        shift "$nv"
    fi
    sync -- "$tmp" 2>/dev/null || sync
    mv -f -- "$tmp" "$target" || exit 26
    tmp=
    printf 'changed %s\n' "$target"
done
