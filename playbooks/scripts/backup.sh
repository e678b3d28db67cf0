# Save PATHs (files or directories, or their absence) under DIR, once: a complete backup is never
# overwritten, so re-running the step after later steps changed the files keeps the originals.
# Usage: backup DIR PATH...   Prints "unchanged" or "changed".
dir=$1
shift
lock_state "${dir%/backup/*}"
if [ -f "$dir/complete" ]; then echo unchanged; exit 0; fi
rm -rf -- "$dir/entries" || exit 20
mkdir -p -m 0700 -- "$dir/entries" || exit 20
i=0
for p do
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
echo changed
