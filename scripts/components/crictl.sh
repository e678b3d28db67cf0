#!/usr/bin/env bash
# crictl from sigs.k8s.io/cri-tools (the module path from v1.31 on; no replace lines, so
# `go install` works). The version is stamped as upstream's Makefile does.
# Usage: crictl.sh <version> <dest>   (binary into <dest>/bin, its version into <dest>/versions.txt)
set -euo pipefail
version=$1 dest=$2
mkdir -p "$dest/bin"
export CGO_ENABLED=0 GOBIN="$dest/bin"
go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=v$version" \
    "sigs.k8s.io/cri-tools/cmd/crictl@v$version"
echo "crictl $("$dest/bin/crictl" --version)" >"$dest/versions.txt"
