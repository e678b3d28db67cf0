#!/bin/bash
# shimshift image transfer: stream Docker images into containerd's k8s.io namespace.
#
#   image-transfer.sh [--local] [--] IMAGE...
#
#   docker save IMAGE... | dd (counts bytes) | ctr -n k8s.io images import --digests --skip-digest-for-named -
#
# One pipe, no temp file: images that share layers are saved together so each layer crosses once.
# Tags given as IMAGE survive into the archive and become containerd image names; an IMAGE given as
# an image ID (a digest-only image) is imported under a generated `import-<date>@<manifest digest>`
# name that the operator renames to the image's digest references and removes afterwards.
#
# This file is fixed: the operator runs it as `bash -c <this file> image-transfer.sh ARGS...`, so
# every value (image references) arrives as an argument and is never parsed by a shell.
# Progress: dd reports bytes on stderr while the stream runs; the last line is
#   shimshift-transfer: bytes=<N> save=<rc> import=<rc>
# and the exit status is non-zero if any part of the pipe failed.
set -u -o pipefail
export LC_ALL=C

import_flags=(--digests --skip-digest-for-named)
while [ "$#" -gt 0 ]; do
    case "$1" in
        --local) import_flags+=(--local); shift ;;  # containerd 2.x: import without the transfer service
        --) shift; break ;;
        -*) echo "image-transfer.sh: unknown option $1" >&2; exit 2 ;;
        *) break ;;
    esac
done
if [ "$#" -eq 0 ]; then
    echo "image-transfer.sh: no images given" >&2
    exit 2
fi

count=$(mktemp /tmp/shimshift-transfer.XXXXXX)
trap 'rm -f "$count"' EXIT
docker save -- "$@" \
    | dd bs=1M status=progress 2> >(tee "$count" >&2) \
    | ctr -n k8s.io images import "${import_flags[@]}" -
status=("${PIPESTATUS[@]}")
wait  # bash 5.1+: also waits for the tee of dd's report (a process substitution)
bytes=$(tr '\r' '\n' < "$count" | sed -n 's/^\([0-9][0-9]*\) bytes.*/\1/p' | tail -n 1)
echo "shimshift-transfer: bytes=${bytes:-0} save=${status[0]} import=${status[2]}" >&2
for rc in "${status[@]}"; do
    [ "$rc" -eq 0 ] || exit 1
done
