# Record containerd's image names before the images step's first run: stdin is written to "$1" only if
# "$1" does not exist yet (the first run wins), atomically; prints what "$1" holds.
# Usage: images_record PATH
set -eu
if [ ! -e "$1" ]; then
    mkdir -p "${1%/*}"
    cat >"$1.tmp"
    mv "$1.tmp" "$1"
fi
cat "$1"
