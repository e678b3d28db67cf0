#!/usr/bin/env bash
# kubelet of Kubernetes <version>, from the Go module proxy. k8s.io/kubernetes cannot be `go install`ed:
# its go.mod replaces every k8s.io staging module with ./staging/..., so a small wrapper module requires
# k8s.io/kubernetes <version> and replaces each staging module with its published v0.<minor>.<patch>
# twin. Up to 1.23 the go.mod also pins every other dependency with a replace block: the wrapper copies
# it, or MVS picks newer modules than 1.23 was built with. Built with `-tags providerless` (never
# `dockerless`, which strips the in-tree dockershim of 1.23) and with cgo on, as upstream builds kubelet.
# Usage: scripts/components/kubelet.sh v1.23.17 <dest>   (kubelet into <dest>/bin, versions.txt)
set -euo pipefail
version=${1:?version, e.g. v1.23.17}
dest=${2:?destination directory}
version=v${version#v}
export GOTOOLCHAIN=local GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod
dest=$(cd "$dest" && pwd)
mkdir -p "$dest/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/shimshift-kubelet-${version}.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init shimshift.local/kubelet-build >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
[ -f "$gomod" ] || { echo "kubelet.sh: no go.mod for k8s.io/kubernetes@$version" >&2; exit 1; }
staging=v0.${version#v1.}
for module in $(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) v0.0.0$#\1#p' "$gomod"); do
    go mod edit -replace="$module=$module@$staging"
done
# every other replace line that pins a published version (not ./staging, not ./)
sed -n '/^replace (/,/^)/p' "$gomod" | sed -n 's#^\t\([^ ]*\) => \([^ .][^ ]*\) \(v[^ ]*\)$#\1 \2 \3#p' |
    while read -r module target at; do
        case "$module" in k8s.io/kubernetes) continue ;; esac
        if grep -q "^	$module v0.0.0$" "$gomod"; then continue; fi  # a staging module, done above
        go mod edit -replace="$module=$target@$at"
    done
godebug=$(sed -n 's/^godebug \(.*\)$/\1/p' "$gomod")
for setting in $godebug; do go mod edit -godebug="$setting"; done
go get "k8s.io/kubernetes@$version"
minor=${version#v1.}; minor=${minor%%.*}
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
ldflags="$ldflags -X $pkg.buildDate=1970-01-01T00:00:00Z ${KUBELET_EXTRA_LDFLAGS:-}"
began=$SECONDS
CGO_ENABLED=1 go build -tags providerless -trimpath -o "$dest/bin/" -ldflags "$ldflags" \
    k8s.io/kubernetes/cmd/kubelet
echo "kubelet.sh: go build of kubelet $version took $((SECONDS - began))s"
echo "kubelet $("$dest/bin/kubelet" --version)" >"$dest/versions.txt"
cat "$dest/versions.txt"
