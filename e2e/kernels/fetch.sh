#!/bin/sh
# fetch.sh CACHE: downloads the Debian cloud kernels of the kernel matrix into
# CACHE/<name>/vmlinuz (with CACHE/<name>/release holding the kernel release).
#
# Kernels are resolved through Debian's meta-packages at run time, because
# the exact ABI packages (linux-image-6.1.0-NN-...) disappear from the
# archive after each security update. apt runs with a private configuration
# and state under CACHE/apt, so the host's own sources are not touched and
# nothing is installed: packages are downloaded and unpacked with dpkg -x.
#
#   6.1   bookworm(-security)   linux-image-cloud-amd64
#   6.12  bookworm-security     linux-image-6.12-cloud-amd64
#   7.x   trixie-backports      linux-image-cloud-amd64 (the vmlinuz is in
#                               a linux-binary-* package it depends on)
#
# A kernel already in CACHE is kept as long as its meta-package still
# resolves to the same release; when the archive cannot be reached, the
# cached kernels are used as they are.
set -eu

cache=$(realpath -m "${1:?usage: fetch.sh CACHE}")
mkdir -p "$cache"

# apt_for SUITE... prints apt options for a private configuration that sees
# only those suites, and refreshes its package lists once per run.
apt_for() {
	name=$1
	shift
	dir=$cache/apt/$name
	mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/etc/preferences.d"
	: >"$dir/sources.list"
	for suite in "$@"; do
		case $suite in
		*-security) uri=http://deb.debian.org/debian-security ;;
		*) uri=http://deb.debian.org/debian ;;
		esac
		echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main" >>"$dir/sources.list"
	done
	echo "-o Dir::Etc::SourceList=$dir/sources.list -o Dir::Etc::SourceParts=/nonexistent -o Dir::Etc::Preferences=/nonexistent -o Dir::Etc::PreferencesParts=$dir/etc/preferences.d -o Dir::State::Lists=$dir/lists -o Dir::Cache=$dir -o Dir::State::status=/dev/null -o Debug::NoLocking=1 -o APT::Sandbox::User=root -o APT::Get::List-Cleanup=0"
}

refresh() {
	# shellcheck disable=SC2086
	apt-get $1 -qq update >/dev/null 2>"$cache/apt/update.err" || {
		echo "fetch.sh: apt-get update failed (using cached kernels):" >&2
		cat "$cache/apt/update.err" >&2
		return 1
	}
}

# depends OPTS PACKAGE PATTERN: the first dependency of PACKAGE's candidate
# version that matches PATTERN.
depends() {
	# shellcheck disable=SC2086
	apt-cache $1 depends --no-recommends --no-suggests "$2" 2>/dev/null |
		sed -n 's/^ *Depends: //p' | grep -E "$3" | head -n1
}

# fetch NAME OPTS META: resolve META to the package with the vmlinuz, then
# download and unpack it unless CACHE/NAME already holds that release.
fetch() {
	name=$1 opts=$2 meta=$3
	dest=$cache/$name
	image=$(depends "$opts" "$meta" '^linux-image-[0-9]') || true
	if [ -z "$image" ]; then
		if [ -s "$dest/vmlinuz" ]; then
			echo "fetch.sh: $meta does not resolve; keeping cached $name ($(cat "$dest/release"))" >&2
			return 0
		fi
		echo "fetch.sh: cannot resolve $meta for kernel $name" >&2
		return 1
	fi
	# Trixie's image packages hold only a dependency on linux-binary-*.
	binary=$(depends "$opts" "$image" '^linux-binary-') || true
	pkg=${binary:-$image}
	release=${image#linux-image-}
	release=${release%-unsigned}
	if [ -s "$dest/vmlinuz" ] && [ "$(cat "$dest/release" 2>/dev/null)" = "$release" ]; then
		return 0
	fi
	work=$(mktemp -d "$cache/.fetch-XXXXXX")
	# shellcheck disable=SC2086
	(cd "$work" && apt-get $opts -qq download "$pkg" >/dev/null)
	dpkg -x "$work"/*.deb "$work/root"
	# /boot/vmlinuz-RELEASE, or /usr/lib/modules/RELEASE/vmlinuz (trixie).
	vmlinuz=$(find "$work/root" -path '*/boot/vmlinuz-*' -o -path '*/lib/modules/*/vmlinuz' | head -n1)
	[ -n "$vmlinuz" ] || { echo "fetch.sh: no vmlinuz in $pkg" >&2; rm -rf "$work"; return 1; }
	mkdir -p "$dest"
	cp "$vmlinuz" "$dest/vmlinuz.tmp" && mv "$dest/vmlinuz.tmp" "$dest/vmlinuz"
	echo "$release" >"$dest/release"
	rm -rf "$work"
	echo "fetch.sh: kernel $name is $(cat "$dest/release") (from $pkg)" >&2
}

bookworm=$(apt_for bookworm bookworm bookworm-updates bookworm-security)
trixie=$(apt_for trixie-backports trixie trixie-backports)
refresh "$bookworm" || true
refresh "$trixie -o APT::Default-Release=trixie-backports" || true

fetch 6.1 "$bookworm" linux-image-cloud-amd64
fetch 6.12 "$bookworm" linux-image-6.12-cloud-amd64
fetch 7.x "$trixie -o APT::Default-Release=trixie-backports" linux-image-cloud-amd64
