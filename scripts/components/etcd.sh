#!/usr/bin/env bash
# etcd <version> (the server) from the Go module proxy, for the current control plane (the old one
# runs Debian's etcd-server 3.4). go.etcd.io/etcd/server/v3 cannot be `go install`ed (its go.mod
# replaces its sibling modules with ../api etc.), so a wrapper module requires it and builds its
# main package.
# Usage: scripts/components/etcd.sh v3.6.16 <dest>   (binary into <dest>/bin, versions.txt)
set -euo pipefail
version=${1:?version, e.g. v3.6.16}
dest=${2:?destination directory}
version=v${version#v}
export GOTOOLCHAIN=local GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod
dest=$(cd "$dest" && pwd)
mkdir -p "$dest/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/shimshift-etcd-${version}.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init shimshift.local/etcd-build >/dev/null 2>&1
go get "go.etcd.io/etcd/server/v3@$version"
began=$SECONDS
CGO_ENABLED=0 go build -trimpath -o "$dest/bin/etcd" -ldflags "-s -w" go.etcd.io/etcd/server/v3
echo "etcd.sh: go build of etcd $version took $((SECONDS - began))s"
echo "etcd $("$dest/bin/etcd" --version | head -n 1)" >"$dest/versions.txt"
cat "$dest/versions.txt"
