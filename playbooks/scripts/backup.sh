# Save PATHs (files or directories, or their absence) under each DIR, once: a complete backup is never
# overwritten, so re-running the step after later steps changed the files keeps the originals.
# Usage: backup DIR COUNT PATH... [DIR COUNT PATH...]...
# Prints "unchanged DIR" or "changed DIR" per group.
lock_state "${1%/backup/*}"
while [ $# -gt 0 ]; do
    if [ $# -lt 2 ]; then echo "backup: malformed arguments" >&2; exit 2; fi
    dir=$1 count=$2
    shift 2
    if [ $# -lt "$count" ]; then echo "backup: malformed arguments" >&2; exit 2; fi
    if [ -f "$dir/complete" ]; then
        shift "$count"
        printf 'unchanged %s\n' "$dir"
        continue
    fi
    rm -rf -- "$dir/entries" || exit 20
    mkdir -p -m 0700 -- "$dir/entries" || exit 20
    i=0
    while [ "$i" -lt "$count" ]; do
        p=$1
        shift
        case $p in /*) ;; *) echo "backup: not an absolute path: $p" >&2; exit 21 ;; esac
        i=$((i + 1))
        e="$dir/entries/$i"
        mkdir -- "$e" || exit 22
        printf '%s' "$p" >"$e/path" || exit 22
        if [ -e "$p" ] || [ -L "$p" ]; then
            cp -a -- "$p" "$e/data" || { echo "backup: cannot copy $p" >&2; exit 22; }
        else
            : >"$e/absent"
        fi
    done
    sync
    : >"$dir/complete" || exit 23
    printf 'changed %s\n' "$dir"
done
