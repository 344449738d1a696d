#!/usr/bin/env bash
# build-apiserver.sh VERSION OUTDIR — builds kube-apiserver and kubectl VERSION
# from the Go module proxy into OUTDIR, unless both there already report VERSION.
# (kubectl runs capprof as its plugin in the tests.)
#
# Debian packages no kube-apiserver, and k8s.io/kubernetes cannot be built as a
# dependency as published: its go.mod replaces every k8s.io/* staging module with
# ./staging/src/..., which the module zip lacks. A throwaway module that requires
# k8s.io/kubernetes and replaces each staging module with its published v0.x.y
# twin builds it (measured cold: ~5 min, ~3 GB build cache; warm: seconds).
set -euo pipefail
version=${1:?usage: build-apiserver.sh VERSION OUTDIR}
out=$(realpath -m "${2:?usage: build-apiserver.sh VERSION OUTDIR}")
bin="$out/kube-apiserver"
if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qx "Kubernetes $version" &&
	[[ -x $out/kubectl ]] && "$out/kubectl" version --client 2>/dev/null | grep -qx "Client Version: $version"; then
	exit 0
fi
staging=v0.${version#v1.}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
export GOFLAGS=-mod=mod GOWORK=off
go mod init capprof.local/apiserver >/dev/null 2>&1
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
[[ -f $gomod ]] || { echo "build-apiserver: no go.mod for k8s.io/kubernetes@$version on the module proxy" >&2; exit 1; }
go mod edit -require "k8s.io/kubernetes@$version"
# Every "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.N.M".
sed -n 's#^\s*\(k8s.io/[^ ]*\) => ./staging/src/.*#\1#p' "$gomod" | while read -r mod; do
	case $mod in k8s.io/sample-*) continue ;; esac # examples, never tagged
	go mod edit -replace "$mod=$mod@$staging"
done
printf 'package main\nimport (\n_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n_ "k8s.io/kubectl/pkg/cmd"\n)\nfunc main() {}\n' >keep.go
go mod tidy >/dev/null 2>&1 || go mod tidy
mkdir -p "$out"
go build -trimpath -o "$bin.tmp" \
	-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version" \
	k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -o "$out/kubectl.tmp" \
	-ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$version -X k8s.io/client-go/pkg/version.gitVersion=$version" \
	k8s.io/kubernetes/cmd/kubectl
mv "$bin.tmp" "$bin"
mv "$out/kubectl.tmp" "$out/kubectl"
