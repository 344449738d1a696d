#!/usr/bin/env bash
# build-runc.sh VERSION OUTDIR — builds runc VERSION from the Go module proxy
# into OUTDIR, unless OUTDIR/runc already reports VERSION.
#
# Debian 12 ships runc 1.1; runc 1.4+ starts the processes of `runc exec` with
# clone3(CLONE_INTO_CGROUP), which the pod tests must see recorded as the
# runtime's. It builds without the seccomp tag (libseccomp is not needed: the
# harness asks for no seccomp profile), with cgo for nsexec (gcc).
# Measured cold: ~30 s.
set -euo pipefail
version=${1:?usage: build-runc.sh VERSION OUTDIR}
out=$(realpath -m "${2:?usage: build-runc.sh VERSION OUTDIR}")
bin="$out/runc"
if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -qx "runc version ${version#v}"; then
	exit 0
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=1 GOBIN="$work" \
	go install -trimpath -ldflags "-X main.version=${version#v}" "github.com/opencontainers/runc@$version"
mv "$work/runc" "$bin"
