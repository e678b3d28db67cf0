# shimshift image transfer: stream Docker images into containerd's k8s.io namespace.
#
#   image-transfer.sh [--local] [--snapshotter NAME] [--] IMAGE...
#
#   docker save IMAGE... | dd (counts bytes) | ctr -n k8s.io images import --digests --skip-digest-for-named -
#
# One pipe, no temp file: images that share layers are saved together so each layer crosses once.
# Tags given as IMAGE survive into the archive and become containerd image names; an IMAGE given as
# an image ID (a digest-only image) is imported under a generated `import-<date>@<manifest digest>`
# name that the operator renames to the image's digest references and removes afterwards.
#
# This file is fixed: the operator runs it as `/bin/sh -c <lib.sh + this file> shimshift-image-transfer
# ARGS...`, so every value (image references) arrives as an argument and is never parsed by a shell.
# POSIX sh: each part of the pipe writes its exit status to a file (there is no PIPESTATUS).
# Progress: dd's report of the bytes it moved goes to stderr after the stream; the last line is
#   shimshift-transfer: bytes=<N> save=<rc> import=<rc>
# and the exit status is non-zero if any part of the pipe failed.
set -u
export LC_ALL=C

local_flag=
snapshotter=
while [ "$#" -gt 0 ]; do
    case "$1" in
        --local) local_flag=--local; shift ;;  # containerd 2.x: import without the transfer service
        # the CRI plugin's snapshotter when it is not overlayfs (Docker's zfs or btrfs): unpack there
        --snapshotter) [ "$#" -ge 2 ] || { echo "image-transfer.sh: --snapshotter needs a name" >&2; exit 2; }
            snapshotter=$2; shift 2 ;;
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
codes=$(mktemp /tmp/shimshift-transfer-rc.XXXXXX)
trap 'rm -f "$count" "$codes"' EXIT
{ docker save -- "$@"; echo "save=$?" >>"$codes"; } \
    | { dd bs=1M status=progress 2>"$count"; echo "dd=$?" >>"$codes"; } \
    | {
        ctr -n k8s.io images import --digests --skip-digest-for-named ${local_flag:+"$local_flag"} \
            ${snapshotter:+--snapshotter} ${snapshotter:+"$snapshotter"} -
        echo "import=$?" >>"$codes"
    }
cat "$count" >&2
code() { sed -n "s/^$1=//p" "$codes"; }
save=$(code save) copied=$(code dd) imported=$(code import)
bytes=$(tr '\r' '\n' < "$count" | sed -n 's/^\([0-9][0-9]*\) bytes.*/\1/p' | tail -n 1)
echo "shimshift-transfer: bytes=${bytes:-0} save=${save:-?} import=${imported:-?}" >&2
[ "$save" = 0 ] && [ "$copied" = 0 ] && [ "$imported" = 0 ] || exit 1
