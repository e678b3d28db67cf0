#!/usr/bin/env bash
# containerd 2.x, its ctr and the runc v2 shim from github.com/containerd/containerd/v2 (no replace
# lines, so `go install module/cmd@version` works). CGO_ENABLED=0 leaves out the btrfs snapshotter
# (`//go:build !no_btrfs && cgo`), which needs libbtrfs headers; the shim is built that way upstream.
# The version is stamped as upstream's Makefile does, so `containerd --version` says v<version>.
# Usage: containerd.sh <version> <dest>   (binaries into <dest>/bin, their versions into <dest>/versions.txt)
set -euo pipefail
version=$1 dest=$2
mkdir -p "$dest/bin"
export CGO_ENABLED=0 GOBIN="$dest/bin"
go install -trimpath \
    -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=v$version" \
    "github.com/containerd/containerd/v2/cmd/containerd@v$version" \
    "github.com/containerd/containerd/v2/cmd/ctr@v$version" \
    "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v$version"
{
    echo "containerd $("$dest/bin/containerd" --version)"
    echo "ctr $("$dest/bin/ctr" --version)"
    echo "containerd-shim-runc-v2 $("$dest/bin/containerd-shim-runc-v2" -v | head -n 2 | tr '\n' ' ')"
} | sed 's/ *$//' >"$dest/versions.txt"
