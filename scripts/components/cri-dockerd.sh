#!/usr/bin/env bash
# cri-dockerd <version> (github.com/Mirantis/cri-dockerd), the CRI adapter for Docker that kubelet 1.24+
# needs, from the Go module proxy. Its go.mod replaces the k8s.io modules with fixed versions, which
# `go install` refuses, so a wrapper module copies that replace block and builds the main package.
# Usage: scripts/components/cri-dockerd.sh v0.4.3 <dest>   (cri-dockerd into <dest>/bin, versions.txt)
set -euo pipefail
version=${1:?version, e.g. v0.4.3}
dest=${2:?destination directory}
version=v${version#v}
module=github.com/Mirantis/cri-dockerd
export GOTOOLCHAIN=local GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod
dest=$(cd "$dest" && pwd)
mkdir -p "$dest/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/shimshift-cri-dockerd-${version}.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init shimshift.local/cri-dockerd-build >/dev/null 2>&1
gomod=$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
[ -f "$gomod" ] || { echo "cri-dockerd.sh: no go.mod for $module@$version" >&2; exit 1; }
sed -n '/^replace (/,/^)/p' "$gomod" | sed -n 's#^\t\([^ ]*\) => \([^ .][^ ]*\) \(v[^ ]*\)$#\1 \2 \3#p' |
    while read -r from target at; do go mod edit -replace="$from=$target@$at"; done
go get "$module@$version"
pkg=$module/cmd/version
began=$SECONDS
CGO_ENABLED=0 go build -trimpath -o "$dest/bin/cri-dockerd" \
    -ldflags "-s -w -X $pkg.Version=${version#v} -X $pkg.GitCommit=$version" "$module"
echo "cri-dockerd.sh: go build of cri-dockerd $version took $((SECONDS - began))s"
echo "cri-dockerd $("$dest/bin/cri-dockerd" --version 2>&1)" >"$dest/versions.txt"
cat "$dest/versions.txt"
