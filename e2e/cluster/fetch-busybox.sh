#!/usr/bin/env bash
# fetch-busybox.sh OUTDIR — puts a statically linked busybox at OUTDIR/busybox,
# unless one is there.
#
# The pod tests' image holds busybox, which must be static: the image has no
# libraries. /bin/busybox is static only while Debian's busybox-static is
# installed; its dynamic busybox replaces it when installed (the two
# conflict), after which runc fails to start any container ("lstat
# /proc/N/ns/ipc"). So the tests take busybox-static's binary from the
# package itself, whatever the host has installed.
set -euo pipefail
out=$(realpath -m "${1:?usage: fetch-busybox.sh OUTDIR}")
bin="$out/busybox"
static() { [[ -x $1 ]] && ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'Requesting program interpreter'; }
if static "$bin"; then
	exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
chmod 0777 "$work" # apt-get download writes as the _apt user
(cd "$work" && apt-get download busybox-static >/dev/null)
dpkg -x "$work"/busybox-static_*.deb "$work/root"
static "$work/root/bin/busybox" || { echo "fetch-busybox: busybox-static's /bin/busybox is not statically linked" >&2; exit 1; }
mkdir -p "$out"
mv "$work/root/bin/busybox" "$bin"
