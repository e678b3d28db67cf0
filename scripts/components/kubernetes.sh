#!/usr/bin/env bash
# kube-apiserver, kube-controller-manager and kube-scheduler of Kubernetes <version>, from the Go module
# proxy. k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every k8s.io staging module
# with ./staging/..., so a small wrapper module requires k8s.io/kubernetes <version> and replaces each
# staging module with its published v0.<minor>.<patch> twin (and copies the godebug default).
# Usage: scripts/components/kubernetes.sh v1.24.17 <dest>   (binaries into <dest>/bin, versions.txt)
set -euo pipefail
version=${1:?version, e.g. v1.24.17}
dest=${2:?destination directory}
version=v${version#v}
export GOTOOLCHAIN=local GOPROXY=https://proxy.golang.org GOFLAGS=-mod=mod
dest=$(cd "$dest" && pwd)
mkdir -p "$dest/bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/shimshift-kubernetes-${version}.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
go mod init shimshift.local/kubernetes-build >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
[ -f "$gomod" ] || { echo "kubernetes.sh: no go.mod for k8s.io/kubernetes@$version" >&2; exit 1; }
staging=v0.${version#v1.}
for module in $(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) v0.0.0$#\1#p' "$gomod"); do
    go mod edit -replace="$module=$module@$staging"
done
godebug=$(sed -n 's/^godebug \(.*\)$/\1/p' "$gomod")
for setting in $godebug; do go mod edit -godebug="$setting"; done
go get "k8s.io/kubernetes@$version"
minor=${version#v1.}; minor=${minor%%.*}
# both version packages, as upstream's hack/lib/version.sh does: the API server's /version reads
# client-go's (in 1.24), `--version` component-base's
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags="$ldflags -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags="$ldflags -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
programs=(kube-apiserver kube-controller-manager kube-scheduler)
began=$SECONDS
CGO_ENABLED=0 go build -tags providerless -trimpath -o "$dest/bin/" -ldflags "$ldflags" \
    "${programs[@]/#/k8s.io/kubernetes/cmd/}"
echo "kubernetes.sh: go build of ${programs[*]} $version took $((SECONDS - began))s"
: >"$dest/versions.txt"
for program in "${programs[@]}"; do
    echo "$program $("$dest/bin/$program" --version)" >>"$dest/versions.txt"
done
cat "$dest/versions.txt"
